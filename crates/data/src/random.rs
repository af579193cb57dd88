//! The `random` dataset: prompts of an exact token length, deterministic under a seed.

use crate::{DataError, Prompt, Tokenizer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Parameters of the random dataset (vLLM's `--random-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomConfig {
    /// Mean prompt length in tokens, excluding the shared prefix.
    pub input_len: u32,
    /// Mean output length in tokens.
    pub output_len: u32,
    /// Lengths are drawn uniformly from `[len * (1 - r), len * (1 + r)]`.
    pub range_ratio: f64,
    /// Tokens of a prefix shared by every prompt.
    pub prefix_len: u32,
    /// How many prompts.
    pub num_prompts: usize,
    /// RNG seed.
    pub seed: u64,
}

/// How many generated prompts are re-encoded to check their length.
pub const VERIFY_SAMPLE: usize = 1000;

/// Generates prompts whose token count (prefix + body) is exact in `tok`, checked by re-encoding
/// (every prompt up to [`VERIFY_SAMPLE`], an even sample beyond).
pub fn random_prompts(tok: &Tokenizer, cfg: &RandomConfig) -> Result<Vec<Prompt>, DataError> {
    if !(0.0..1.0).contains(&cfg.range_ratio) {
        return Err(DataError::BadParameter(format!("--random-range-ratio must be in [0, 1), got {}", cfg.range_ratio)));
    }
    if cfg.input_len == 0 && cfg.prefix_len == 0 {
        return Err(DataError::BadParameter("--random-input-len must be at least 1".into()));
    }
    if cfg.output_len == 0 {
        return Err(DataError::BadParameter("--random-output-len must be at least 1".into()));
    }
    let words = tok.single_token_words();
    if words.is_empty() {
        return Err(DataError::BadParameter(format!(
            "tokenizer {} has no single-token words, so random prompts of exact lengths cannot be built with it; pass another --tokenizer",
            tok.name()
        )));
    }
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let pick = |n: u32, out: &mut String, rng: &mut SmallRng| {
        for _ in 0..n {
            out.push_str(&words[rng.random_range(0..words.len())]);
        }
    };
    let mut prefix = String::new();
    pick(cfg.prefix_len, &mut prefix, &mut rng);
    let range = |len: u32, rng: &mut SmallRng| -> u32 {
        let lo = ((len as f64) * (1.0 - cfg.range_ratio)).floor().max(1.0) as u32;
        let hi = ((len as f64) * (1.0 + cfg.range_ratio)).ceil().max(lo as f64) as u32;
        rng.random_range(lo..=hi)
    };
    // Exactness holds by construction (one-token words the pre-tokenizer splits at spaces);
    // re-encoding checks it on up to VERIFY_SAMPLE evenly spaced prompts, because encoding every
    // prompt would cost 100x the generation itself.
    let every = cfg.num_prompts.div_ceil(VERIFY_SAMPLE).max(1);
    (0..cfg.num_prompts)
        .map(|i| {
            let n_in = if cfg.input_len == 0 { 0 } else { range(cfg.input_len, &mut rng) };
            let n_out = range(cfg.output_len, &mut rng);
            let mut text = String::with_capacity(prefix.len() + n_in as usize * 7);
            text.push_str(&prefix);
            pick(n_in, &mut text, &mut rng);
            let text = tok.words_prompt(text);
            let input_tokens = cfg.prefix_len + n_in;
            let counted = if i % every == 0 { tok.count(&text) } else { input_tokens as usize };
            if counted != input_tokens as usize {
                return Err(DataError::Tokenizer {
                    name: tok.name().into(),
                    message: format!("random prompt re-encoded to {counted} tokens, expected {input_tokens}"),
                });
            }
            Ok(Prompt::new(text, input_tokens, n_out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RandomConfig {
        RandomConfig { input_len: 64, output_len: 16, range_ratio: 0.5, prefix_len: 8, num_prompts: 50, seed: 7 }
    }

    #[test]
    fn lengths_are_exact_and_in_range() {
        let tok = Tokenizer::by_name("cl100k_base").unwrap();
        let ps = random_prompts(&tok, &cfg()).unwrap();
        assert_eq!(ps.len(), 50);
        for p in &ps {
            assert_eq!(tok.count(&p.text), p.input_tokens as usize);
            assert!((8 + 32..=8 + 96).contains(&p.input_tokens), "{}", p.input_tokens);
            assert!((8..=24).contains(&p.output_tokens));
        }
        let first_prefix: String = ps[0].text.split(' ').take(9).collect::<Vec<_>>().join(" ");
        assert!(ps.iter().all(|p| p.text.starts_with(&first_prefix)), "shared prefix");
    }

    #[test]
    fn lengths_are_exact_with_hugging_face_gguf_and_sentencepiece_tokenizers() {
        let dir = tempfile::tempdir().unwrap();
        let (gguf, _) = crate::tokenizer::tests::write_tiny_gguf(dir.path());
        let spm = crate::tokenizer::tests::write_spm_gguf(dir.path(), true);
        for spec in [dir.path().join("tokenizer.json"), gguf, spm] {
            let tok = Tokenizer::by_name(spec.to_str().unwrap()).unwrap();
            let ps = random_prompts(&tok, &cfg()).unwrap();
            for p in &ps {
                assert_eq!(tok.count(&p.text), p.input_tokens as usize, "{}", spec.display());
            }
        }
    }

    #[test]
    fn deterministic_under_seed() {
        let tok = Tokenizer::by_name("gpt2").unwrap();
        assert_eq!(random_prompts(&tok, &cfg()).unwrap(), random_prompts(&tok, &cfg()).unwrap());
        let other = RandomConfig { seed: 8, ..cfg() };
        assert_ne!(random_prompts(&tok, &cfg()).unwrap(), random_prompts(&tok, &other).unwrap());
    }

    #[test]
    fn bad_parameters_are_named() {
        let tok = Tokenizer::by_name("gpt2").unwrap();
        let e = random_prompts(&tok, &RandomConfig { range_ratio: 1.5, ..cfg() }).unwrap_err();
        assert!(e.to_string().contains("--random-range-ratio"));
    }
}
