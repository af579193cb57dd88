//! A llama-family transformer read from GGUF, and its forward pass over a batch of sequences.
//!
//! The batch is flattened: every scheduled token of every sequence is one row, so the linear layers
//! read each weight once per step however many sequences run. Attention is per sequence against its
//! own KV cache, with each row's own position (rotary embedding and causal limit).

use crate::kv::KvCache;
use crate::quant::{dequantize, ggml, ggml_size, matmul, QActs, QMatrix, WeightFormat, QK};
use crate::EngineError;
use inferbench_data::gguf::{GgufMetadata, GgufValue, TensorInfo};
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::PoisonError;

/// Model dimensions, from the GGUF metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// Rotary embedding base.
    pub rope_base: f32,
    /// RMS norm epsilon.
    pub eps: f32,
}

impl Config {
    /// Dimension of one head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the key (and value) vectors of one token.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim()
    }

    /// KV-cache bytes one token occupies (keys and values, all layers, `f32`).
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.n_layer * self.kv_dim() * 4
    }

    fn from_metadata(md: &GgufMetadata, path: &Path) -> Result<Self, EngineError> {
        let arch = md.str("general.architecture").unwrap_or("").to_owned();
        if arch != "llama" {
            return Err(EngineError::Unsupported(format!(
                "{}: architecture '{arch}' is not supported (llama-family models such as SmolLM2, Llama and TinyLlama are)",
                path.display()
            )));
        }
        let int = |key: &str| -> Result<usize, EngineError> {
            md.kv
                .get(&format!("{arch}.{key}"))
                .and_then(GgufValue::as_i64)
                .filter(|v| *v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| EngineError::Corrupt(format!("{}: metadata {arch}.{key} is missing", path.display())))
        };
        let float = |key: &str, default: f64| match md.kv.get(&format!("{arch}.{key}")) {
            Some(GgufValue::Float(f)) => *f as f32,
            _ => default as f32,
        };
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        let vocab = match md.kv.get(&format!("{arch}.vocab_size")).and_then(GgufValue::as_i64) {
            Some(v) => v as usize,
            None => md.kv.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map_or(0, |a| a.len()),
        };
        let cfg = Config {
            n_layer: int("block_count")?,
            n_embd,
            n_head,
            n_head_kv: int("attention.head_count_kv").unwrap_or(n_head),
            n_ff: int("feed_forward_length")?,
            vocab,
            context_length: int("context_length")?,
            rope_base: float("rope.freq_base", 10000.0),
            eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            arch,
        };
        if n_embd % n_head != 0 || cfg.n_head % cfg.n_head_kv != 0 || n_embd % QK != 0 || cfg.n_ff % QK != 0 || cfg.head_dim() % 2 != 0 {
            return Err(EngineError::Unsupported(format!("{}: model dimensions {cfg:?} are not supported", path.display())));
        }
        Ok(cfg)
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wqkv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate_up: QMatrix,
    w_down: QMatrix,
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Re-quantize every matrix to this format at load (None: keep Q4_1/Q8_0 as shipped, convert
    /// anything else to Q8_0).
    pub requantize: Option<WeightFormat>,
}

/// A loaded model: weights shared by every sequence.
pub struct Model {
    /// Dimensions.
    pub cfg: Config,
    tok_embd: QMatrix,
    output: Option<QMatrix>,
    out_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// cos/sin of the rotary embedding, `[position][head_dim / 2]`, grown on demand.
    rope: std::sync::RwLock<(Vec<f32>, Vec<f32>)>,
    /// Bytes of weights held.
    pub weight_bytes: usize,
    /// The file's own quantization (`general.file_type` as a name, or the type of most tensors).
    pub file_format: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("cfg", &self.cfg).field("weight_bytes", &self.weight_bytes).finish()
    }
}

/// One sequence's share of a forward step.
pub struct BatchItem<'a> {
    /// The tokens to run (a prefill chunk, or the one token being decoded).
    pub tokens: &'a [u32],
    /// Position of the first of them (the number already in the cache).
    pub start: usize,
    /// The sequence's cache; the step appends `tokens.len()` entries.
    pub cache: &'a mut KvCache,
    /// Whether the step must return logits for the last token.
    pub want_logits: bool,
}

struct Reader<'a> {
    file: File,
    md: &'a GgufMetadata,
    path: &'a Path,
    opts: &'a LoadOptions,
}

impl Reader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo, EngineError> {
        self.md.tensor(name).ok_or_else(|| EngineError::Corrupt(format!("{}: tensor '{name}' is missing", self.path.display())))
    }

    fn raw(&self, t: &TensorInfo) -> Result<Vec<u8>, EngineError> {
        let file_len = self.file.metadata().map_or(u64::MAX, |m| m.len());
        let corrupt = || {
            EngineError::Corrupt(format!(
                "{}: tensor '{}' ({} values at offset {}) runs past the end of the file; it is truncated or corrupt",
                self.path.display(),
                t.name,
                t.elements(),
                t.offset
            ))
        };
        // No tensor holds more values than the file has bytes (the smallest type takes more
        // than half a byte per value): checked before anything is allocated.
        if t.elements() > file_len.saturating_mul(2) {
            return Err(corrupt());
        }
        let n = t.elements() as usize;
        let size = ggml_size(t.ggml_type, n).ok_or_else(|| {
            EngineError::Unsupported(format!(
                "{}: tensor '{}' is {}; this engine reads F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K",
                self.path.display(),
                t.name,
                ggml::name(t.ggml_type)
            ))
        })?;
        let start = self.md.data_offset.checked_add(t.offset).ok_or_else(corrupt)?;
        if start.checked_add(size as u64).is_none_or(|end| end > file_len) {
            return Err(corrupt());
        }
        let mut buf = vec![0u8; size];
        self.file.read_exact_at(&mut buf, start).map_err(|e| {
            EngineError::Corrupt(format!(
                "{}: cannot read tensor '{}' ({e}); the file is truncated or corrupt",
                self.path.display(),
                t.name
            ))
        })?;
        Ok(buf)
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, EngineError> {
        let t = self.info(name)?;
        if t.elements() as usize != len {
            return Err(EngineError::Corrupt(format!(
                "{}: tensor '{name}' has {} values, expected {len}",
                self.path.display(),
                t.elements()
            )));
        }
        dequantize(t.ggml_type, &self.raw(t)?, len)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix, EngineError> {
        let t = self.info(name)?;
        if t.dims != [cols as u64, rows as u64] {
            return Err(EngineError::Corrupt(format!(
                "{}: tensor '{name}' has shape {:?}, expected [{cols}, {rows}]",
                self.path.display(),
                t.dims
            )));
        }
        let raw = self.raw(t)?;
        let native = match t.ggml_type {
            ggml::Q4_1 => Some(WeightFormat::Q4_1),
            ggml::Q8_0 => Some(WeightFormat::Q8_0),
            _ => None,
        };
        if self.opts.requantize == Some(WeightFormat::F32) {
            let f = dequantize(t.ggml_type, &raw, rows * cols)?;
            return Ok(QMatrix::quantize(&f, rows, cols, WeightFormat::F32));
        }
        match (native, self.opts.requantize) {
            (Some(_), None) => QMatrix::from_ggml(t.ggml_type, &raw, rows, cols),
            (Some(n), Some(want)) if n == want => QMatrix::from_ggml(t.ggml_type, &raw, rows, cols),
            (_, want) => {
                let f = dequantize(t.ggml_type, &raw, rows * cols)?;
                Ok(QMatrix::quantize(&f, rows, cols, want.unwrap_or(WeightFormat::Q8_0)))
            }
        }
    }
}

impl Model {
    /// Loads a GGUF model, reading tensors one at a time (the file is not mapped, so peak memory
    /// is the weights as held plus one tensor).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let md = GgufMetadata::read(path).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let cfg = Config::from_metadata(&md, path)?;
        let file = File::open(path).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
        let r = Reader { file, md: &md, path, opts };
        let (e, kv, ff) = (cfg.n_embd, cfg.kv_dim(), cfg.n_ff);
        let tok_embd = r.matrix("token_embd.weight", cfg.vocab, e)?;
        let output = match md.tensor("output.weight") {
            Some(_) => Some(r.matrix("output.weight", cfg.vocab, e)?),
            None => None,
        };
        // Every layer has several tensors: a block count beyond them is corrupt metadata, and
        // must not size an allocation (found by the fuzz target: 200 GB for `Vec<Layer>`).
        if cfg.n_layer > md.tensors.len() {
            return Err(EngineError::Corrupt(format!(
                "{}: block_count {} is more than the {} tensors in the file",
                path.display(),
                cfg.n_layer,
                md.tensors.len()
            )));
        }
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let name = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: r.vector(&name("attn_norm"), e)?,
                wqkv: QMatrix::concat(vec![
                    r.matrix(&name("attn_q"), e, e)?,
                    r.matrix(&name("attn_k"), kv, e)?,
                    r.matrix(&name("attn_v"), kv, e)?,
                ]),
                wo: r.matrix(&name("attn_output"), e, e)?,
                ffn_norm: r.vector(&name("ffn_norm"), e)?,
                w_gate_up: QMatrix::concat(vec![r.matrix(&name("ffn_gate"), ff, e)?, r.matrix(&name("ffn_up"), ff, e)?]),
                w_down: r.matrix(&name("ffn_down"), e, ff)?,
            });
        }
        let out_norm = r.vector("output_norm.weight", e)?;
        let weight_bytes = tok_embd.bytes()
            + output.as_ref().map_or(0, QMatrix::bytes)
            + layers.iter().map(|l| l.wqkv.bytes() + l.wo.bytes() + l.w_gate_up.bytes() + l.w_down.bytes() + 8 * e).sum::<usize>();
        let file_format = match md.kv.get("general.file_type").and_then(GgufValue::as_i64) {
            Some(0) => "F32".into(),
            Some(1) => "F16".into(),
            Some(2) => "Q4_0".into(),
            Some(3) => "Q4_1".into(),
            Some(7) => "Q8_0".into(),
            Some(t) => format!("file type {t}"),
            None => "unknown".into(),
        };
        Ok(Model { cfg, tok_embd, output, out_norm, layers, rope: Default::default(), weight_bytes, file_format })
    }

    /// The format the layer matrices are held in.
    pub fn weight_format(&self) -> WeightFormat {
        self.layers.first().map_or(self.tok_embd.format(), |l| l.wqkv.format())
    }

    fn ensure_rope(&self, max_pos: usize) {
        let half = self.cfg.head_dim() / 2;
        if self.rope.read().unwrap_or_else(PoisonError::into_inner).0.len() >= max_pos * half {
            return;
        }
        let mut g = self.rope.write().unwrap_or_else(PoisonError::into_inner);
        let have = g.0.len() / half;
        let want = max_pos.next_power_of_two().max(256);
        for p in have..want {
            for i in 0..half {
                let freq = self.cfg.rope_base.powf(-((2 * i) as f32) / self.cfg.head_dim() as f32);
                let a = p as f32 * freq;
                g.0.push(a.cos());
                g.1.push(a.sin());
            }
        }
    }

    /// Runs one step for a batch of sequences: appends their tokens to their caches and returns
    /// the next-token logits of each item that asked (in item order).
    pub fn forward(&self, items: &mut [BatchItem<'_>]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.forward_rows(items, false)
    }

    /// Runs one sequence's tokens and returns the logits after every one of them (speculative
    /// decoding verifies all the draft's proposals in this one pass).
    pub fn forward_all(&self, tokens: &[u32], start: usize, cache: &mut KvCache) -> Result<Vec<Vec<f32>>, EngineError> {
        self.forward_rows(&mut [BatchItem { tokens, start, cache, want_logits: true }], true)
    }

    fn forward_rows(&self, items: &mut [BatchItem<'_>], every_row: bool) -> Result<Vec<Vec<f32>>, EngineError> {
        let c = &self.cfg;
        let (e, hd, kvd) = (c.n_embd, c.head_dim(), c.kv_dim());
        // Row bookkeeping: which item and position each row belongs to.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if it.start != it.cache.len() {
                return Err(EngineError::Internal(format!("cache holds {} tokens, step starts at {}", it.cache.len(), it.start)));
            }
            if it.start + it.tokens.len() > it.cache.capacity() {
                return Err(EngineError::Internal("a step overruns its sequence's KV reservation".into()));
            }
            for (j, &t) in it.tokens.iter().enumerate() {
                if t as usize >= c.vocab {
                    return Err(EngineError::BadInput(format!("token id {t} is outside the vocabulary of {}", c.vocab)));
                }
                rows.push((i, it.start + j));
            }
        }
        let n = rows.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        self.ensure_rope(rows.iter().map(|r| r.1 + 1).max().unwrap_or(1));
        let rope = self.rope.read().unwrap_or_else(PoisonError::into_inner);
        let mut x = vec![0f32; n * e];
        let mut r = 0;
        for it in items.iter() {
            for &t in it.tokens {
                self.tok_embd.row_f32(t as usize, &mut x[r * e..(r + 1) * e]);
                r += 1;
            }
        }
        let qkv_w = e + 2 * kvd;
        let mut h = vec![0f32; n * e];
        let mut qkv = vec![0f32; n * qkv_w];
        let mut att = vec![0f32; n * e];
        let mut proj = vec![0f32; n * e];
        let mut gu = vec![0f32; n * 2 * c.n_ff];
        let mut act = vec![0f32; n * c.n_ff];
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut h);
            matmul(&layer.wqkv, &QActs::for_matrix(&layer.wqkv, &h, n, e), &mut qkv);
            for (row, &(_, pos)) in rows.iter().enumerate() {
                let v = &mut qkv[row * qkv_w..row * qkv_w + e + kvd];
                apply_rope(v, hd, &rope.0, &rope.1, pos);
            }
            // Append this layer's keys and values to each sequence's cache.
            let mut row = 0;
            for it in items.iter_mut() {
                for j in 0..it.tokens.len() {
                    let q = &qkv[row * qkv_w..(row + 1) * qkv_w];
                    it.cache.write(l, it.start + j, &q[e..e + kvd], &q[e + kvd..]);
                    row += 1;
                }
            }
            let caches: Vec<&KvCache> = items.iter().map(|it| &*it.cache).collect();
            let group = c.n_head / c.n_head_kv;
            let scale = 1.0 / (hd as f32).sqrt();
            att.par_chunks_mut(hd).enumerate().for_each(|(idx, out)| {
                let (row, head) = (idx / c.n_head, idx % c.n_head);
                let (item, pos) = rows[row];
                let q = &qkv[row * qkv_w + head * hd..row * qkv_w + (head + 1) * hd];
                attend(q, caches[item], l, head / group, hd, pos, scale, out);
            });
            matmul(&layer.wo, &QActs::for_matrix(&layer.wo, &att, n, e), &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut h);
            matmul(&layer.w_gate_up, &QActs::for_matrix(&layer.w_gate_up, &h, n, e), &mut gu);
            let ff = c.n_ff;
            for row in 0..n {
                let g = &gu[row * 2 * ff..row * 2 * ff + ff];
                let u = &gu[row * 2 * ff + ff..(row + 1) * 2 * ff];
                for ((a, &g), &u) in act[row * ff..(row + 1) * ff].iter_mut().zip(g).zip(u) {
                    *a = g / (1.0 + (-g).exp()) * u;
                }
            }
            matmul(&layer.w_down, &QActs::for_matrix(&layer.w_down, &act, n, ff), &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for it in items.iter_mut() {
            it.cache.advance(it.tokens.len());
        }
        // Only the last row of each item that wants logits goes through the output layer.
        let mut last = Vec::new();
        let mut row = 0;
        for it in items.iter() {
            if it.want_logits && every_row {
                last.extend(row..row + it.tokens.len());
            } else if it.want_logits {
                last.push(row + it.tokens.len() - 1);
            }
            row += it.tokens.len();
        }
        if last.is_empty() {
            return Ok(Vec::new());
        }
        let mut sel = vec![0f32; last.len() * e];
        for (i, &r) in last.iter().enumerate() {
            sel[i * e..(i + 1) * e].copy_from_slice(&x[r * e..(r + 1) * e]);
        }
        let mut normed = vec![0f32; sel.len()];
        rms_norm(&sel, &self.out_norm, c.eps, &mut normed);
        let out_w = self.output.as_ref().unwrap_or(&self.tok_embd);
        let mut logits = vec![0f32; last.len() * c.vocab];
        matmul(out_w, &QActs::for_matrix(out_w, &normed, last.len(), e), &mut logits);
        Ok(logits.chunks_exact(c.vocab).map(<[f32]>::to_vec).collect())
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let e = w.len();
    for (xr, or) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / e as f32;
        let s = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * s * g;
        }
    }
}

/// Rotates adjacent pairs of each head (GGUF llama layout) by the position's angles.
fn apply_rope(v: &mut [f32], hd: usize, cos: &[f32], sin: &[f32], pos: usize) {
    let half = hd / 2;
    let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
    for head in v.chunks_exact_mut(hd) {
        for i in 0..half {
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * c[i] - b * s[i];
            head[2 * i + 1] = a * s[i] + b * c[i];
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums so the compiler vectorizes.
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    let tail = a.len() / 8 * 8;
    for i in tail..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// One head of one row: softmax(q·K / sqrt(d)) · V over positions `0..=pos`; compiled for
/// AVX2 when the CPU has it (the loops vectorize 8 wide).
#[allow(clippy::too_many_arguments)]
fn attend(q: &[f32], cache: &KvCache, layer: usize, kv_head: usize, hd: usize, pos: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn attend_avx2(q: &[f32], cache: &KvCache, layer: usize, kv_head: usize, hd: usize, pos: usize, scale: f32, out: &mut [f32]) {
            attend_body(q, cache, layer, kv_head, hd, pos, scale, out)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        #[allow(unsafe_code)]
        unsafe {
            return attend_avx2(q, cache, layer, kv_head, hd, pos, scale, out);
        }
    }
    attend_body(q, cache, layer, kv_head, hd, pos, scale, out)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body(q: &[f32], cache: &KvCache, layer: usize, kv_head: usize, hd: usize, pos: usize, scale: f32, out: &mut [f32]) {
    // Plain loops, no closures: a closure would not inherit the caller's AVX2 target feature.
    let mut scores = vec![0f32; pos + 1];
    let mut max = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate() {
        *s = dot(q, cache.key(layer, t, kv_head, hd)) * scale;
        max = max.max(*s);
    }
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for o in out.iter_mut() {
        *o = 0.0;
    }
    let inv = 1.0 / sum;
    for (t, &p) in scores.iter().enumerate() {
        let w = p * inv;
        let v = cache.value(layer, t, kv_head, hd);
        for i in 0..out.len().min(v.len()) {
            out[i] += w * v[i];
        }
    }
}
