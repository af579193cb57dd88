//! Speculative decoding as seed 001 runs it: a target-only arm and one speculative arm per gamma,
//! each the same requests (a fixed count at once, or Poisson arrivals at a rate for a duration)
//! through the engine's scheduler with a batch size and a step length, and the two models placed
//! on this machine's cores as asked. Every request is timed from its scheduled arrival; the
//! engine's own counters give the acceptance, by draft position too.

use super::recorder::{Recorder, Timed};
use super::{config, dist, Result};
use crate::error::{BenchError, Context};
use crate::observer::{Event, Observer};
use inferbench_core::engine_bench::{SpecArm, SpecConfig, SpecResult};
use inferbench_engine::{DraftConfig, Engine, EngineConfig, Request, SamplingParams};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the draft and the target run, resolved against this machine's CPUs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    /// Target threads and the CPUs they are pinned to (`None`: not pinned).
    pub target: (usize, Option<Vec<usize>>),
    /// The draft's own threads and CPUs (`None`: it shares the target's pool).
    pub draft: Option<(usize, Vec<usize>)>,
    /// What was chosen, in words.
    pub label: String,
}

/// Resolves `same`, `separate`, `ratio T:D` or `auto` over `cpus` (the CPUs this process may
/// use), with `threads` for a shared pool.
pub(crate) fn placement(spec: &str, threads: usize, cpus: &[usize]) -> Result<Placement> {
    let split = |t: usize, what: String| -> Result<Placement> {
        if cpus.len() < 2 {
            return Err(BenchError::invalid(format!(
                "speculative.placement '{spec}' needs two CPUs or more; this process has {}",
                cpus.len()
            )));
        }
        let t = t.clamp(1, cpus.len() - 1);
        let (a, b) = cpus.split_at(t);
        Ok(Placement {
            target: (a.len(), Some(a.to_vec())),
            draft: Some((b.len(), b.to_vec())),
            label: format!("{what}: target on CPUs {a:?}, draft on CPUs {b:?}"),
        })
    };
    match spec.trim() {
        "same" => Ok(Placement { target: (threads, None), draft: None, label: format!("same: {threads} threads shared") }),
        // Draft and target take turns within each step, so a shared pool gives each every core
        // in its turn, where disjoint sets leave one set idle at any moment.
        "auto" => Ok(Placement {
            target: (threads, None),
            draft: None,
            label: format!("auto -> same: {threads} threads shared (the two models take turns within a step)"),
        }),
        "separate" => split(cpus.len().div_ceil(2), "separate".into()),
        r => {
            let bad = || {
                BenchError::invalid(format!(
                    "speculative.placement '{spec}': expected same, separate, auto or 'ratio T:D' (e.g. ratio 3:1)"
                ))
            };
            let ratio = r.strip_prefix("ratio").ok_or_else(bad)?.trim();
            let (t, d) = ratio.split_once(':').ok_or_else(bad)?;
            let (t, d): (f64, f64) = (t.trim().parse().map_err(|_| bad())?, d.trim().parse().map_err(|_| bad())?);
            if !(t > 0.0 && d > 0.0 && t.is_finite() && d.is_finite()) {
                return Err(bad());
            }
            split((cpus.len() as f64 * t / (t + d)).round() as usize, format!("ratio {ratio}"))
        }
    }
}

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    #[allow(unsafe_code)]
    // SAFETY: cpu_set_t is plain data that sched_getaffinity fills; CPU_ISSET reads it in bounds.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        set
    };
    #[allow(unsafe_code)]
    // SAFETY: as above.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// When each request arrives, seconds after the arm starts: Poisson at `rate`, for
/// `duration_seconds` (or until `prompts` have arrived); `None` without a rate (rounds at once).
pub(crate) fn arrivals(c: &SpecConfig) -> Option<Vec<f64>> {
    let rate = c.rate?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(c.seed);
    let (mut t, mut out) = (0.0, Vec::new());
    loop {
        if (c.duration_seconds > 0.0 && t >= c.duration_seconds) || (c.duration_seconds <= 0.0 && out.len() >= c.prompts) {
            return Some(out);
        }
        out.push(t);
        // Exponential gaps: -ln(U) / rate, U in (0, 1].
        t += -(1.0 - rng.random::<f64>()).ln() / rate;
    }
}

/// One request's outcome in an arm.
struct Done {
    ids: Vec<u32>,
    prompt: usize,
    ttft_ms: f64,
    e2e_ms: f64,
    end: Instant,
}

/// Runs every arm.
pub(super) fn run(c: &SpecConfig, path: &Path, prompts: &[Vec<u32>], threads: usize, rec: &Recorder, obs: &Observer) -> Result<SpecResult> {
    use inferbench_engine::speculative::check_tokenizers;
    let target = inferbench_engine::load(path, &config::load_options(&c.target_quantization)?).ctx("loading the target")?;
    let draft_path = match &c.draft {
        Some(d) => crate::models::resolve(Some(d), &mut super::pull_notes(obs))?.0,
        None => path.to_owned(),
    };
    let draft = inferbench_engine::load(&draft_path, &config::load_options(&c.draft_quantization)?).ctx("loading the draft")?;
    check_tokenizers(&target, &draft).map_err(|e| BenchError::failed(e.to_string()))?;
    let place = placement(&c.placement, threads, &allowed_cpus())?;
    let schedule = arrivals(c);
    let arrivals_text = match (&schedule, c.rate) {
        (Some(s), Some(r)) if c.duration_seconds > 0.0 => format!("Poisson {r} req/s for {} s ({} requests)", c.duration_seconds, s.len()),
        (Some(s), Some(r)) => format!("Poisson {r} req/s ({} requests)", s.len()),
        _ if c.duration_seconds > 0.0 => format!("rounds of {} at once for {} s", c.prompts, c.duration_seconds),
        _ => format!("{} at once", c.prompts),
    };
    (obs)(&Event::Progress(&format!(
        "  speculative: {arrivals_text}, batch size {}, step length {}, placement {}",
        c.batch_size, c.max_batch_length, place.label
    )));
    let mut arms: Vec<SpecArm> = Vec::new();
    let mut target_ids: Vec<Vec<u32>> = Vec::new();
    let gammas: Vec<Option<usize>> = std::iter::once(None).chain(c.gamma.iter().map(|&g| Some(g))).collect();
    for gamma in gammas {
        if rec.cancelled() {
            break;
        }
        let name = match gamma {
            None => "target".to_owned(),
            Some(_) if c.gamma.len() == 1 => "speculative".to_owned(),
            Some(g) => format!("speculative_gamma{g}"),
        };
        let cfg = EngineConfig {
            max_num_seqs: c.batch_size,
            max_num_batched_tokens: c.max_batch_length,
            kv_cache_bytes: 1 << 30,
            threads: place.target.0,
            cpus: place.target.1.clone(),
            draft: gamma.map(|g| DraftConfig {
                model: draft.model.clone(),
                num_speculative_tokens: g,
                threads: place.draft.as_ref().map(|d| d.0),
                cpus: place.draft.as_ref().map(|d| d.1.clone()),
            }),
            ..Default::default()
        };
        let engine = Engine::start(target.model.clone(), target.tokenizer.clone(), target.eos.clone(), cfg)
            .map_err(|e| BenchError::failed(format!("cannot start the {name} arm: {e}")))?;
        let (done, wall) = run_arm(&engine, c, prompts, schedule.as_deref(), rec, &format!("speculative/{name}"))?;
        let ids: Vec<Vec<u32>> = done.iter().map(|d| d.ids.clone()).collect();
        let mut arm = summarize(&name, gamma, &done, wall, &Counters::of(&engine));
        if gamma.is_none() {
            target_ids = ids;
        } else {
            let tps = arms.first().map_or(0.0, |t| t.output_tokens_per_second);
            arm.speedup = (tps > 0.0).then(|| arm.output_tokens_per_second / tps);
            // Request i has the same prompt and seed in every arm, and verification keeps the
            // target's own tokens, so outputs must match greedy or sampled.
            arm.identical_to_target = Some(ids.iter().zip(&target_ids).all(|(a, b)| a == b));
        }
        (obs)(&Event::Progress(&arm_line(&arm)));
        arms.push(arm);
    }
    let Some(tgt) = arms.first().cloned() else { return Err(BenchError::failed("cancelled before the target arm")) };
    let best = arms.iter().skip(1).max_by(|a, b| a.output_tokens_per_second.total_cmp(&b.output_tokens_per_second)).cloned();
    let Some(best) = best else { return Err(BenchError::failed("cancelled before a speculative arm")) };
    Ok(SpecResult {
        target: format!("{} as {}", path.display(), c.target_quantization),
        draft: format!("{} as {}", draft_path.display(), c.draft_quantization),
        gamma: best.gamma.unwrap_or(0),
        temperature: c.temperature,
        prompts_run: best.requests,
        target_only_tokens_per_second: tgt.output_tokens_per_second,
        speculative_tokens_per_second: best.output_tokens_per_second,
        speedup: best.speedup.unwrap_or(0.0),
        acceptance_rate: best.acceptance_rate.unwrap_or(0.0),
        mean_accepted_length: best.mean_acceptance_length.unwrap_or(1.0),
        identical_to_target: Some(arms.iter().all(|a| a.identical_to_target != Some(false))),
        placement: place.label,
        arrivals: arrivals_text,
        batch_size: c.batch_size,
        arms,
    })
}

/// Submits the arm's requests on schedule (or in rounds at once) and waits for every one.
fn run_arm(
    e: &Engine,
    c: &SpecConfig,
    prompts: &[Vec<u32>],
    schedule: Option<&[f64]>,
    rec: &Recorder,
    category: &str,
) -> Result<(Vec<Done>, f64)> {
    let start = Instant::now();
    let mut done = Vec::new();
    let mut next = 0usize;
    // Request `i` always gets the same prompt and seed, so arms compare request for request.
    let submit = |i: usize, at: Instant| -> Result<(usize, Instant, mpsc::Receiver<_>)> {
        let prompt = prompts[i % prompts.len()].clone();
        let sampling = SamplingParams { temperature: c.temperature, top_p: 1.0, top_k: 0, seed: Some(c.seed.wrapping_add(i as u64)) };
        let (tx, rx) = mpsc::channel();
        let n = prompt.len();
        e.submit(Request { prompt, max_tokens: c.max_tokens, ignore_eos: true, sampling, ..Default::default() }, Box::new(Timed(tx)))
            .map_err(|err| BenchError::failed(err.to_string()))?;
        Ok((n, at, rx))
    };
    match schedule {
        Some(times) => {
            let mut pending = Vec::with_capacity(times.len());
            for &t in times {
                if rec.cancelled() {
                    break;
                }
                let at = start + Duration::from_secs_f64(t);
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                pending.push(submit(next, at)?);
                next += 1;
            }
            for (n, at, rx) in pending {
                done.push(collect(at, rx, n, rec, category)?);
            }
        }
        None => loop {
            let at = Instant::now();
            let round: Vec<_> = (0..c.prompts).map(|k| submit(next + k, at)).collect::<Result<_>>()?;
            next += c.prompts;
            for (n, at, rx) in round {
                done.push(collect(at, rx, n, rec, category)?);
            }
            if start.elapsed().as_secs_f64() >= c.duration_seconds || rec.cancelled() {
                break;
            }
        },
    }
    let wall = done.iter().map(|d| d.end).max().map_or(0.0, |end| (end - start).as_secs_f64());
    Ok((done, wall))
}

/// One request's events into its outcome and a record (timed from its scheduled arrival).
fn collect(
    at: Instant,
    rx: mpsc::Receiver<(Instant, inferbench_engine::Event)>,
    input: usize,
    rec: &Recorder,
    category: &str,
) -> Result<Done> {
    let (mut ids, mut times) = (Vec::new(), Vec::new());
    for (t, ev) in rx {
        match ev {
            inferbench_engine::Event::Token { id, .. } => {
                ids.push(id);
                times.push(t);
            }
            inferbench_engine::Event::Finished { .. } => break,
            inferbench_engine::Event::Failed(m) => return Err(BenchError::failed(format!("the engine failed a request: {m}"))),
        }
    }
    let (Some(&first), Some(&end)) = (times.first(), times.last()) else { return Err(BenchError::failed("a request produced no token")) };
    rec.add_run(at, &times, input, ids.len(), category)?;
    let ms = |t: Instant| (t - at).as_secs_f64() * 1e3;
    Ok(Done { ids, prompt: input, ttft_ms: ms(first), e2e_ms: ms(end), end })
}

/// An arm's speculative-decoding counters, read from its engine when the arm is over.
#[derive(Debug, Default)]
struct Counters {
    drafts: u64,
    proposed: u64,
    accepted: u64,
    per_position: Vec<u64>,
}

impl Counters {
    fn of(e: &Engine) -> Self {
        let st = e.stats();
        Self {
            drafts: st.spec_drafts.load(Relaxed),
            proposed: st.spec_draft_tokens.load(Relaxed),
            accepted: st.spec_accepted_tokens.load(Relaxed),
            per_position: st.spec_accepted_per_pos.iter().map(|c| c.load(Relaxed)).collect(),
        }
    }
}

/// The arm's figures from its requests, its wall time and its counters (docs/metrics.md).
fn summarize(name: &str, gamma: Option<usize>, done: &[Done], wall: f64, k: &Counters) -> SpecArm {
    let prompt_tokens: u64 = done.iter().map(|d| d.prompt as u64).sum();
    let generated_tokens: u64 = done.iter().map(|d| d.ids.len() as u64).sum();
    let per_s = |x: f64| if wall > 0.0 { x / wall } else { 0.0 };
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    SpecArm {
        name: name.to_owned(),
        gamma,
        requests: done.len(),
        prompt_tokens,
        generated_tokens,
        total_tokens: prompt_tokens + generated_tokens,
        duration_s: wall,
        output_tokens_per_second: per_s(generated_tokens as f64),
        total_tokens_per_second: per_s((prompt_tokens + generated_tokens) as f64),
        requests_per_second: per_s(done.len() as f64),
        ttft_ms: dist(done.iter().map(|d| d.ttft_ms)),
        e2e_ms: dist(done.iter().map(|d| d.e2e_ms)),
        speedup: None,
        acceptance_rate: gamma.and_then(|_| ratio(k.accepted, k.proposed)),
        mean_acceptance_length: gamma.and_then(|_| ratio(k.accepted, k.drafts)).map(|a| 1.0 + a),
        acceptance_by_position: match k.drafts {
            0 => Vec::new(),
            d => k.per_position.iter().map(|&c| c as f64 / d as f64).collect(),
        },
        identical_to_target: None,
    }
}

fn arm_line(a: &SpecArm) -> String {
    let mut s = format!(
        "  {:<22} {:>4} requests  {:>7.1} output tok/s  TTFT p50 {:.0} ms  E2E p50 {:.0} ms",
        a.name,
        a.requests,
        a.output_tokens_per_second,
        a.ttft_ms.percentile(50.0).unwrap_or(a.ttft_ms.mean),
        a.e2e_ms.percentile(50.0).unwrap_or(a.e2e_ms.mean)
    );
    if let (Some(sp), Some(acc)) = (a.speedup, a.acceptance_rate) {
        let by: Vec<String> = a.acceptance_by_position.iter().map(|p| format!("{:.0}", p * 100.0)).collect();
        s.push_str(&format!("  {sp:.2}x  acceptance {:.1}% (by position {})", acc * 100.0, by.join("/")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_split_the_cpus_as_named() {
        let cpus = [0, 1, 2, 3, 4, 5, 6, 7];
        let same = placement("same", 8, &cpus).unwrap();
        assert_eq!((same.target, same.draft), ((8, None), None));
        let sep = placement("separate", 8, &cpus).unwrap();
        assert_eq!(sep.target, (4, Some(vec![0, 1, 2, 3])));
        assert_eq!(sep.draft, Some((4, vec![4, 5, 6, 7])));
        // Seed 001's 6:2 split of eight devices.
        let r = placement("ratio 6:2", 8, &cpus).unwrap();
        assert_eq!((r.target.0, r.draft.as_ref().unwrap().0), (6, 2));
        // Each side keeps at least one CPU.
        let r = placement("ratio 100:1", 8, &cpus).unwrap();
        assert_eq!((r.target.0, r.draft.unwrap().0), (7, 1));
        assert_eq!(placement("auto", 2, &[0, 1]).unwrap().draft, None);
        for bad in ["ratio", "ratio 3", "ratio a:b", "ratio 0:1", "split"] {
            let e = placement(bad, 2, &[0, 1]).unwrap_err().to_string();
            assert!(e.contains("speculative.placement"), "{bad}: {e}");
        }
        let e = placement("separate", 1, &[0]).unwrap_err().to_string();
        assert!(e.contains("two CPUs"), "{e}");
        assert!(!allowed_cpus().is_empty());
    }

    /// Two requests over a 2-second arm, 10 drafts of 4: every figure by hand.
    #[test]
    fn an_arm_summary_is_computed_as_documented() {
        let end = Instant::now();
        let done = [
            Done { ids: vec![1; 30], prompt: 10, ttft_ms: 100.0, e2e_ms: 1500.0, end },
            Done { ids: vec![2; 50], prompt: 20, ttft_ms: 300.0, e2e_ms: 2000.0, end },
        ];
        let k = Counters { drafts: 10, proposed: 40, accepted: 30, per_position: vec![9, 8, 7, 6] };
        let a = summarize("speculative", Some(4), &done, 2.0, &k);
        assert_eq!((a.requests, a.prompt_tokens, a.generated_tokens, a.total_tokens), (2, 30, 80, 110));
        assert_eq!((a.output_tokens_per_second, a.total_tokens_per_second, a.requests_per_second), (40.0, 55.0, 1.0));
        assert_eq!((a.ttft_ms.mean, a.e2e_ms.mean, a.e2e_ms.max), (200.0, 1750.0, 2000.0));
        assert_eq!((a.acceptance_rate, a.mean_acceptance_length), (Some(0.75), Some(4.0)));
        assert_eq!(a.acceptance_by_position, vec![0.9, 0.8, 0.7, 0.6]);
        // The target arm has no draft: no acceptance figures.
        let t = summarize("target", None, &done, 4.0, &Counters::default());
        assert_eq!((t.output_tokens_per_second, t.acceptance_rate, t.acceptance_by_position.len()), (20.0, None, 0));
    }

    #[test]
    fn poisson_arrivals_follow_the_rate_and_stop_at_the_duration_or_count() {
        let c = SpecConfig { rate: Some(50.0), duration_seconds: 100.0, ..Default::default() };
        let a = arrivals(&c).unwrap();
        assert_eq!(a[0], 0.0);
        assert!(a.windows(2).all(|w| w[0] <= w[1]) && *a.last().unwrap() < 100.0);
        // 5,000 expected; a Poisson count's standard deviation is sqrt(5000) ~ 71.
        assert!((4700..5300).contains(&a.len()), "{}", a.len());
        assert_eq!(arrivals(&c), Some(a), "seeded");
        let c = SpecConfig { rate: Some(2.0), prompts: 7, ..Default::default() };
        assert_eq!(arrivals(&c).unwrap().len(), 7);
        assert_eq!(arrivals(&SpecConfig::default()), None, "no rate: at once");
    }
}
