//! Tiny GGUF files (llama, Qwen2, Qwen3, GPT-2) with random weights, written on the fly, so tests of the engine, the
//! server and the CLI run fast and offline.

use crate::quant::{ggml, QMatrix, WeightFormat};
use inferbench_data::gguf::{write_gguf, GgufValue, TensorData};
use std::path::Path;

/// Shape of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// `general.architecture`.
    pub arch: String,
    /// Blocks.
    pub layers: usize,
    /// Hidden size (a multiple of 32).
    pub embd: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Feed-forward size (a multiple of 32).
    pub ff: usize,
    /// Context length.
    pub ctx: usize,
    /// ggml type of the layer matrices (Q4_1, Q8_0, F16, F32, or an unsupported one for tests).
    pub matrix_type: u32,
    /// Weight seed.
    pub seed: u64,
    /// How many of the whole words the vocabulary holds (24 at most; fewer makes a different
    /// tokenizer, for mismatch tests).
    pub words: usize,
    /// `attention.key_length` when a head is not `embd / heads` wide (Qwen3's are wider).
    pub head_dim: Option<usize>,
    /// Rotary base (Qwen2.5 and Qwen3 use 1,000,000).
    pub rope_base: f32,
    /// ggml type of the token embeddings (also the output matrix: the files tie them).
    pub embd_type: u32,
    /// ggml type of `attn_v` where it differs from the other matrices' (a Q4_K_M file makes
    /// some layers' value matrix Q6_K beside Q4_K queries and keys).
    pub v_type: Option<u32>,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            arch: "llama".into(),
            layers: 2,
            embd: 64,
            heads: 4,
            kv_heads: 2,
            ff: 128,
            ctx: 256,
            matrix_type: ggml::Q4_1,
            seed: 1,
            words: WORDS.len(),
            head_dim: None,
            rope_base: 10000.0,
            embd_type: ggml::Q8_0,
            v_type: None,
        }
    }
}

/// Words the tiny vocabulary holds whole.
const WORDS: [&str; 24] = [
    "the", "model", "token", "bench", "serve", "fast", "slow", "cache", "batch", "queue", "latency", "stream", "river", "stone", "cloud",
    "green", "house", "light", "music", "paper", "table", "water", "window", "garden",
];

/// GPT-2's byte-to-character table: every byte gets a printable character.
fn byte_chars() -> Vec<char> {
    let mut out = vec!['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        out[b as usize] = if printable {
            char::from(b as u8)
        } else {
            extra += 1;
            // 256..324: below the surrogates, so always a char.
            char::from_u32(255 + extra).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
    }
    out
}

fn f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// Encodes `f32` values as ggml bytes of type `t`.
pub fn encode(t: u32, w: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match t {
        ggml::F32 => w.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        ggml::F16 => w.iter().for_each(|x| out.extend_from_slice(&f16(*x))),
        ggml::Q8_0 => out = QMatrix::quantize(w, 1, w.len(), WeightFormat::Q8_0).to_ggml(),
        ggml::Q4_1 => out = QMatrix::quantize(w, 1, w.len(), WeightFormat::Q4_1).to_ggml(),
        ggml::Q4_K | ggml::Q5_K => w.chunks_exact(256).for_each(|b| encode_k45(b, t == ggml::Q5_K, &mut out)),
        ggml::Q6_K => w.chunks_exact(256).for_each(|b| encode_q6k(b, &mut out)),
        // Unsupported types get plausible-length filler, so the loader's type check is what fails.
        _ => out.resize(w.len() / 32 * 210, 0),
    }
    out
}

/// A valid (not llama.cpp's optimal-rounding) Q4_K / Q5_K super-block of 256 values: per 32
/// values a range scale and minimum, both 6-bit under an f16 super-scale, packed as llama.cpp's
/// `get_scale_min_k4` reads them.
fn encode_k45(x: &[f32], five: bool, out: &mut Vec<u8>) {
    let top = if five { 31.0 } else { 15.0 };
    let (mut sub_s, mut sub_m) = ([0f32; 8], [0f32; 8]);
    for j in 0..8 {
        let v = &x[32 * j..32 * j + 32];
        let lo = v.iter().copied().fold(0f32, f32::min);
        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        sub_s[j] = ((hi - lo) / top).max(1e-8);
        sub_m[j] = -lo;
    }
    let h = |v: f32| half::f16::from_f32(v);
    let d = h(sub_s.iter().copied().fold(0f32, f32::max) / 63.0);
    let dmin = h(sub_m.iter().copied().fold(0f32, f32::max).max(1e-8) / 63.0);
    let (df, mf) = (d.to_f32(), dmin.to_f32());
    let sc: Vec<u8> = sub_s.iter().map(|s| (s / df).round().clamp(1.0, 63.0) as u8).collect();
    let mq: Vec<u8> = sub_m.iter().map(|m| (m / mf).round().clamp(0.0, 63.0) as u8).collect();
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = (mq[j] & 63) | ((mq[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0xF) | ((mq[j + 4] & 0xF) << 4);
    }
    let q: Vec<u8> = (0..256)
        .map(|i| {
            let j = i / 32;
            ((x[i] + mf * f32::from(mq[j])) / (df * f32::from(sc[j]))).round().clamp(0.0, top) as u8
        })
        .collect();
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&scales);
    if five {
        let mut qh = [0u8; 32];
        for (i, v) in q.iter().enumerate() {
            if v & 16 != 0 {
                qh[i % 32] |= 1 << (i / 32);
            }
        }
        out.extend_from_slice(&qh);
    }
    for k in 0..4 {
        out.extend((0..32).map(|l| (q[64 * k + l] & 0xF) | ((q[64 * k + 32 + l] & 0xF) << 4)));
    }
}

/// A valid Q6_K super-block: 16 values per signed 8-bit scale under an f16 super-scale.
fn encode_q6k(x: &[f32], out: &mut Vec<u8>) {
    let sub: Vec<f32> = x.chunks_exact(16).map(|v| v.iter().fold(0f32, |a, b| a.max(b.abs())) / 31.0).collect();
    let d = half::f16::from_f32(sub.iter().copied().fold(0f32, f32::max).max(1e-8) / 127.0);
    let df = d.to_f32();
    let sc: Vec<i8> = sub.iter().map(|s| (s / df).round().clamp(1.0, 127.0) as i8).collect();
    let q: Vec<u8> = (0..256).map(|i| ((x[i] / (df * f32::from(sc[i / 16]))).round().clamp(-32.0, 31.0) + 32.0) as u8).collect();
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for n in 0..2 {
        for l in 0..32 {
            let e = |k: usize| q[128 * n + l + 32 * k];
            ql[64 * n + l] = (e(0) & 0xF) | ((e(2) & 0xF) << 4);
            ql[64 * n + l + 32] = (e(1) & 0xF) | ((e(3) & 0xF) << 4);
            qh[32 * n + l] = (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&v| v as u8));
    out.extend_from_slice(&d.to_le_bytes());
}

/// Writes a tiny GGUF of `spec.arch` (`llama`, `qwen2`, `qwen3` or `gpt2`, each with its
/// family's tensors: biases, per-head norms, learned positions; norms of the other families get
/// random weights so a mix-up shows): a byte-level vocabulary (256 bytes, `<|im_start|>`, `<|im_end|>`
/// (the end token), and a few whole words), a chat template, and random weights.
pub fn write_tiny_model(path: &Path, spec: &TinySpec) -> std::io::Result<()> {
    let chars = byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    tokens.extend(["<|im_start|>".to_owned(), "<|im_end|>".to_owned()]);
    // Whole words with a leading space (`Ġword`), built up by merges, so benchmarks can make
    // random prompts of exact lengths with this tokenizer.
    let mut merges = Vec::new();
    for w in WORDS.iter().take(spec.words) {
        let mut cur = chars[b' ' as usize].to_string();
        for c in w.chars() {
            let next = format!("{cur}{c}");
            if !tokens.contains(&next) {
                merges.push(GgufValue::Str(format!("{cur} {c}")));
                tokens.push(next.clone());
            }
            cur = next;
        }
    }
    let vocab = tokens.len();
    let mut types = vec![GgufValue::Int(1); 256];
    types.extend([GgufValue::Int(3), GgufValue::Int(3)]);
    types.resize(vocab, GgufValue::Int(1));
    let s = spec;
    let arch = s.arch.as_str();
    let key = |k: &str| format!("{arch}.{k}");
    let keys: Vec<String> = [
        "block_count",
        "embedding_length",
        "attention.head_count",
        "attention.head_count_kv",
        "feed_forward_length",
        "context_length",
        "rope.freq_base",
        "attention.layer_norm_rms_epsilon",
    ]
    .iter()
    .map(|k| key(k))
    .collect();
    let kv: Vec<(&str, GgufValue)> = vec![
        ("general.architecture", GgufValue::Str(arch.into())),
        ("general.name", GgufValue::Str("tiny-random".into())),
        ("general.file_type", GgufValue::Int(3)),
        (&keys[0], GgufValue::Int(s.layers as i64)),
        (&keys[1], GgufValue::Int(s.embd as i64)),
        (&keys[2], GgufValue::Int(s.heads as i64)),
        (&keys[3], GgufValue::Int(s.kv_heads as i64)),
        (&keys[4], GgufValue::Int(s.ff as i64)),
        (&keys[5], GgufValue::Int(s.ctx as i64)),
        (&keys[6], GgufValue::Float(f64::from(s.rope_base))),
        (&keys[7], GgufValue::Float(1e-5)),
        ("tokenizer.ggml.model", GgufValue::Str("gpt2".into())),
        ("tokenizer.ggml.tokens", GgufValue::Array(tokens.into_iter().map(GgufValue::Str).collect())),
        ("tokenizer.ggml.merges", GgufValue::Array(merges)),
        ("tokenizer.ggml.token_type", GgufValue::Array(types)),
        ("tokenizer.ggml.bos_token_id", GgufValue::Int(256)),
        ("tokenizer.ggml.eos_token_id", GgufValue::Int(257)),
        (
            "tokenizer.chat_template",
            GgufValue::Str("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".into()),
        ),
    ];
    let hd = s.head_dim.unwrap_or(s.embd / s.heads);
    let extra_keys = [key("attention.key_length"), key("attention.value_length"), key("attention.layer_norm_epsilon")];
    let mut kv = kv;
    if s.head_dim.is_some() {
        kv.push((&extra_keys[0], GgufValue::Int(hd as i64)));
        kv.push((&extra_keys[1], GgufValue::Int(hd as i64)));
    }
    if arch == "gpt2" {
        // GPT-2 has LayerNorm: its epsilon key replaces the RMS one.
        kv.retain(|(k, _)| *k != keys[7].as_str());
        kv.push((&extra_keys[2], GgufValue::Float(1e-5)));
    }
    let mut state = s.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    };
    let (e, ff, kvd, qd) = (s.embd, s.ff, hd * s.kv_heads, hd * s.heads);
    let mut tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)> = Vec::new();
    tensors.push(("token_embd.weight".into(), vec![e as u64, vocab as u64], s.embd_type, encode(s.embd_type, &rand(vocab * e, 0.3))));
    let ones = vec![1f32; e];
    let mt = s.matrix_type;
    let one_vec = |name: String, w: Vec<f32>| (name, vec![w.len() as u64], ggml::F32, encode(ggml::F32, &w));
    if arch != "llama" {
        // Near-one norm weights and small biases, random, so that a norm or bias read wrong shows.
        let near_one = |v: Vec<f32>| v.into_iter().map(|v| 1.0 + v).collect::<Vec<f32>>();
        let sc = 1.0 / (e as f32).sqrt();
        if arch == "gpt2" {
            let pos = rand(s.ctx * e, 0.3);
            tensors.push(("position_embd.weight".into(), vec![e as u64, s.ctx as u64], ggml::F32, encode(ggml::F32, &pos)));
        }
        for l in 0..s.layers {
            let name = |n: &str, kind: &str| format!("blk.{l}.{n}.{kind}");
            let mat =
                |n: &str, cols: usize, rows: usize, w: Vec<f32>| (name(n, "weight"), vec![cols as u64, rows as u64], mt, encode(mt, &w));
            let mut t = Vec::new();
            if arch == "gpt2" {
                t.push(one_vec(name("attn_norm", "weight"), near_one(rand(e, 0.2))));
                t.push(one_vec(name("attn_norm", "bias"), rand(e, 0.1)));
                t.push(mat("attn_qkv", e, qd + 2 * kvd, rand(e * (qd + 2 * kvd), sc * 2.0)));
                t.push(one_vec(name("attn_qkv", "bias"), rand(qd + 2 * kvd, 0.1)));
                t.push(mat("attn_output", qd, e, rand(qd * e, sc)));
                t.push(one_vec(name("attn_output", "bias"), rand(e, 0.1)));
                t.push(one_vec(name("ffn_norm", "weight"), near_one(rand(e, 0.2))));
                t.push(one_vec(name("ffn_norm", "bias"), rand(e, 0.1)));
                t.push(mat("ffn_up", e, ff, rand(e * ff, sc * 2.0)));
                t.push(one_vec(name("ffn_up", "bias"), rand(ff, 0.1)));
                t.push(mat("ffn_down", ff, e, rand(ff * e, 1.0 / (ff as f32).sqrt())));
                t.push(one_vec(name("ffn_down", "bias"), rand(e, 0.1)));
            } else {
                t.push(one_vec(name("attn_norm", "weight"), near_one(rand(e, 0.2))));
                t.push(mat("attn_q", e, qd, rand(e * qd, sc * 2.0)));
                t.push(mat("attn_k", e, kvd, rand(e * kvd, sc * 2.0)));
                let vt = s.v_type.unwrap_or(mt);
                t.push((name("attn_v", "weight"), vec![e as u64, kvd as u64], vt, encode(vt, &rand(e * kvd, sc))));
                if arch == "qwen2" {
                    t.push(one_vec(name("attn_q", "bias"), rand(qd, 0.2)));
                    t.push(one_vec(name("attn_k", "bias"), rand(kvd, 0.2)));
                    t.push(one_vec(name("attn_v", "bias"), rand(kvd, 0.2)));
                }
                if arch == "qwen3" {
                    t.push(one_vec(name("attn_q_norm", "weight"), near_one(rand(hd, 0.2))));
                    t.push(one_vec(name("attn_k_norm", "weight"), near_one(rand(hd, 0.2))));
                }
                t.push(mat("attn_output", qd, e, rand(qd * e, 1.0 / (qd as f32).sqrt())));
                t.push(one_vec(name("ffn_norm", "weight"), near_one(rand(e, 0.2))));
                t.push(mat("ffn_gate", e, ff, rand(e * ff, sc)));
                t.push(mat("ffn_up", e, ff, rand(e * ff, sc)));
                t.push(mat("ffn_down", ff, e, rand(ff * e, 1.0 / (ff as f32).sqrt())));
            }
            tensors.extend(t);
        }
        tensors.push(one_vec("output_norm.weight".into(), near_one(rand(e, 0.2))));
        if arch == "gpt2" {
            tensors.push(one_vec("output_norm.bias".into(), rand(e, 0.1)));
        }
        let refs: Vec<TensorData<'_>> = tensors.iter().map(|(n, d, t, b)| (n.as_str(), d.clone(), *t, b.clone())).collect();
        return write_gguf(path, &kv, &refs);
    }
    for l in 0..s.layers {
        let mut push = |name: &str, cols: usize, rows: usize, t: u32, w: Vec<f32>| {
            tensors.push((
                format!("blk.{l}.{name}.weight"),
                if rows == 1 { vec![cols as u64] } else { vec![cols as u64, rows as u64] },
                t,
                encode(t, &w),
            ));
        };
        let sc = 1.0 / (e as f32).sqrt();
        push("attn_norm", e, 1, ggml::F32, ones.clone());
        push("attn_q", e, e, mt, rand(e * e, sc * 2.0));
        push("attn_k", e, kvd, mt, rand(e * kvd, sc * 2.0));
        push("attn_v", e, kvd, s.v_type.unwrap_or(mt), rand(e * kvd, sc));
        push("attn_output", e, e, mt, rand(e * e, sc));
        push("ffn_norm", e, 1, ggml::F32, ones.clone());
        push("ffn_gate", e, ff, mt, rand(e * ff, sc));
        push("ffn_up", e, ff, mt, rand(e * ff, sc));
        push("ffn_down", ff, e, mt, rand(ff * e, 1.0 / (ff as f32).sqrt()));
    }
    tensors.push(("output_norm.weight".into(), vec![e as u64], ggml::F32, encode(ggml::F32, &ones)));
    let refs: Vec<TensorData<'_>> = tensors.iter().map(|(n, d, t, b)| (n.as_str(), d.clone(), *t, b.clone())).collect();
    write_gguf(path, &kv, &refs)
}

/// Writes a vocabulary-only GGUF with a SentencePiece tokenizer (`tokenizer.ggml.model = llama`,
/// as Llama 2, Mistral and TinyLlama files have): `<unk>`, `<s>`, `</s>`, the 256 byte tokens
/// `<0xXX>`, then pieces with descending scores, some of them joinable in more than one way so
/// that the merge order matters. The hyper-parameters are a tiny llama's, for llama.cpp to read.
pub fn write_spm_vocab(path: &Path) -> std::io::Result<()> {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![GgufValue::Int(2), GgufValue::Int(3), GgufValue::Int(3)];
    types.extend((0..256).map(|_| GgufValue::Int(6)));
    let pieces = [
        "▁the",
        "▁",
        "e",
        "t",
        "a",
        "h",
        "s",
        "n",
        "i",
        "o",
        "r",
        "c",
        "d",
        "l",
        "u",
        "m",
        "w",
        "f",
        "g",
        "y",
        "p",
        "b",
        "v",
        "k",
        "x",
        "j",
        "q",
        "z",
        "▁t",
        "th",
        "he",
        "▁th",
        "at",
        "▁c",
        "▁ca",
        "ca",
        "▁cat",
        "▁s",
        "▁sa",
        "▁sat",
        "er",
        "in",
        "on",
        "an",
        "▁a",
        "▁an",
        "▁and",
        "nd",
        "▁o",
        "▁on",
        "en",
        "▁w",
        "or",
        "▁wor",
        "ld",
        "▁world",
        "1",
        "2",
        "3",
        "4",
        "0",
        "12",
        "123",
        "▁1",
        "é",
        "caf",
        "café",
        "▁café",
        "▁▁",
        "▁▁▁▁",
        "ï",
        "na",
        "ve",
        "▁na",
        "▁naï",
        "T",
        "H",
        "E",
        "▁T",
        "▁The",
        "he",
        ".",
        ",",
        "!",
        "?",
        "ing",
        "▁ing",
    ];
    let mut seen = std::collections::HashSet::new();
    for p in pieces {
        if seen.insert(p) {
            tokens.push(p.to_owned());
            types.push(GgufValue::Int(1));
        }
    }
    let scores: Vec<GgufValue> = (0..tokens.len()).map(|i| GgufValue::Float(if i < 259 { 0.0 } else { -((i - 259) as f64) })).collect();
    let n = tokens.len() as i64;
    let kv: Vec<(&str, GgufValue)> = vec![
        ("general.architecture", GgufValue::Str("llama".into())),
        ("general.name", GgufValue::Str("tiny-spm".into())),
        ("llama.block_count", GgufValue::Int(1)),
        ("llama.embedding_length", GgufValue::Int(32)),
        ("llama.attention.head_count", GgufValue::Int(2)),
        ("llama.feed_forward_length", GgufValue::Int(32)),
        ("llama.context_length", GgufValue::Int(64)),
        ("llama.attention.layer_norm_rms_epsilon", GgufValue::Float(1e-5)),
        ("llama.vocab_size", GgufValue::Int(n)),
        ("tokenizer.ggml.model", GgufValue::Str("llama".into())),
        ("tokenizer.ggml.tokens", GgufValue::Array(tokens.into_iter().map(GgufValue::Str).collect())),
        ("tokenizer.ggml.scores", GgufValue::Array(scores)),
        ("tokenizer.ggml.token_type", GgufValue::Array(types)),
        ("tokenizer.ggml.bos_token_id", GgufValue::Int(1)),
        ("tokenizer.ggml.eos_token_id", GgufValue::Int(2)),
        ("tokenizer.ggml.unknown_token_id", GgufValue::Int(0)),
    ];
    write_gguf(path, &kv, &[])
}

/// Submits `reqs` to `e` at once and waits for all of them: each one's token ids, text and last
/// event (tests compare engines configured differently on the same requests).
pub fn run_requests(e: &crate::Engine, reqs: Vec<crate::Request>) -> Result<Vec<(Vec<u32>, String, crate::Event)>, crate::EngineError> {
    let mut rxs = Vec::with_capacity(reqs.len());
    for r in reqs {
        let (tx, rx) = std::sync::mpsc::channel();
        e.submit(r, Box::new(tx))?;
        rxs.push(rx);
    }
    rxs.into_iter()
        .map(|rx| {
            let (mut ids, mut text) = (Vec::new(), String::new());
            loop {
                match rx.recv().map_err(|_| crate::EngineError::Internal("the engine stopped answering".into()))? {
                    crate::Event::Token { id, text: t } => {
                        ids.push(id);
                        text.push_str(&t);
                    }
                    end => return Ok((ids, text, end)),
                }
            }
        })
        .collect()
}
