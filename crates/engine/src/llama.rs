//! A decoder-only transformer read from GGUF (the llama, Qwen2, Qwen3 and GPT-2 families), and
//! its forward pass over a batch of sequences. The families differ in a few well-known places
//! (see [`Family`]); everything else — batching, the KV cache, attention — is shared.
//!
//! The batch is flattened: every scheduled token of every sequence is one row, so the linear layers
//! read each weight once per step however many sequences run. Attention is per sequence against its
//! own KV cache, with each row's own position (rotary embedding and causal limit).

use crate::kv::KvCache;
use crate::quant::{dequantize, ggml, ggml_size, matmul, quantize_q4_k, QActs, QMatrix, Quantization, WeightFormat, QK, QK_K};
use crate::EngineError;
use inferbench_data::gguf::{GgufMetadata, GgufValue, TensorInfo};
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::PoisonError;

/// The model families the engine runs, named by `general.architecture`. Where they differ:
///
/// | | norm | rotary pairs | q/k/v bias | per-head q/k norm | feed-forward | positions |
/// |---|---|---|---|---|---|---|
/// | `llama` | RMS | adjacent | no | no | SwiGLU | RoPE |
/// | `qwen2` | RMS | halves (NeoX) | yes | no | SwiGLU | RoPE |
/// | `qwen3` | RMS | halves (NeoX) | no | RMS | SwiGLU | RoPE |
/// | `gpt2` | LayerNorm + bias | — | fused QKV + bias | no | GELU, biases | learned |
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Llama 1–3, SmolLM, TinyLlama, Mistral: llama.cpp's `llama` architecture.
    Llama,
    /// Qwen2 and Qwen2.5.
    Qwen2,
    /// Qwen3 (dense).
    Qwen3,
    /// GPT-2.
    Gpt2,
}

/// The architectures [`Family`] covers, for the message a file of another one gets.
pub const SUPPORTED_ARCHITECTURES: &str = "llama (Llama, SmolLM2, TinyLlama, Mistral), qwen2, qwen3, gpt2";

impl Family {
    fn from_arch(arch: &str) -> Option<Self> {
        Some(match arch {
            "llama" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            "gpt2" => Self::Gpt2,
            _ => return None,
        })
    }

    /// Whether the rotary embedding rotates the two halves of a head (NeoX) rather than adjacent
    /// pairs (llama's GGUF layout, whose converter permutes q and k for it).
    fn neox(self) -> bool {
        matches!(self, Self::Qwen2 | Self::Qwen3)
    }
}

/// Model dimensions, from the GGUF metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// The family that architecture belongs to.
    pub family: Family,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of one head (`attention.key_length`; Qwen3's is not `n_embd / n_head`).
    pub head_dim: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length the model was trained for (GPT-2 has no position past it).
    pub context_length: usize,
    /// Rotary embedding base.
    pub rope_base: f32,
    /// Norm epsilon (RMS norm, or LayerNorm for GPT-2).
    pub eps: f32,
}

impl Config {
    /// Dimension of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Width of all query heads of one token.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key (and value) vectors of one token.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// KV-cache bytes one token occupies (keys and values, all layers, `f16`).
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.n_layer * self.kv_dim() * 2
    }

    fn from_metadata(md: &GgufMetadata, path: &Path) -> Result<Self, EngineError> {
        let arch = md.str("general.architecture").unwrap_or("").to_owned();
        let Some(family) = Family::from_arch(&arch) else {
            return Err(EngineError::Unsupported(format!(
                "{}: architecture '{arch}' is not supported (supported: {SUPPORTED_ARCHITECTURES})",
                path.display()
            )));
        };
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
        let eps = match family {
            Family::Gpt2 => float("attention.layer_norm_epsilon", 1e-5),
            _ => float("attention.layer_norm_rms_epsilon", 1e-5),
        };
        let value_length = int("attention.value_length");
        let mut cfg = Config {
            n_layer: int("block_count")?,
            n_embd,
            n_head,
            n_head_kv: int("attention.head_count_kv").unwrap_or(n_head),
            head_dim: int("attention.key_length").unwrap_or(n_embd / n_head),
            n_ff: int("feed_forward_length")?,
            vocab,
            context_length: int("context_length")?,
            rope_base: float("rope.freq_base", 10000.0),
            eps,
            arch: String::new(),
            family,
        };
        let value_length = value_length.unwrap_or(cfg.head_dim);
        cfg.arch = arch;
        if cfg.head_dim == 0
            || value_length != cfg.head_dim
            || cfg.n_head % cfg.n_head_kv != 0
            || n_embd % QK != 0
            || cfg.q_dim() % QK != 0
            || cfg.n_ff % QK != 0
            || cfg.head_dim % 2 != 0
        {
            return Err(EngineError::Unsupported(format!("{}: model dimensions {cfg:?} are not supported", path.display())));
        }
        Ok(cfg)
    }
}

/// A norm's weight, and its bias where the family has one (GPT-2's LayerNorm).
struct Norm {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
}

impl Norm {
    /// RMS norm, or LayerNorm where there is a bias, of each row of `x`.
    fn apply(&self, x: &[f32], eps: f32, out: &mut [f32]) {
        match &self.b {
            None => rms_norm(x, &self.w, eps, out),
            Some(b) => layer_norm(x, &self.w, b, eps, out),
        }
    }
}

/// Adds `bias` to each row of `x`.
fn add_bias(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }
}

struct Layer {
    attn_norm: Norm,
    /// Query, key and value projections as one matrix (`q_dim + 2 kv_dim` rows).
    wqkv: QMatrix,
    bqkv: Option<Vec<f32>>,
    /// Qwen3's RMS norms of each query and key head (`head_dim` weights).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: QMatrix,
    bo: Option<Vec<f32>>,
    ffn_norm: Norm,
    /// Gate and up projections as one matrix (SwiGLU), or GPT-2's up projection alone.
    w_gate_up: QMatrix,
    b_up: Option<Vec<f32>>,
    w_down: QMatrix,
    b_down: Option<Vec<f32>>,
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Re-quantize every matrix to this format at load (None: hold every block type without
    /// changing a weight, see [`QMatrix::lossless_format`]; F16 is rounded to Q8_0).
    pub requantize: Option<Quantization>,
}

/// A loaded model: weights shared by every sequence.
pub struct Model {
    /// Dimensions.
    pub cfg: Config,
    tok_embd: QMatrix,
    /// GPT-2's learned position embeddings, `[context_length][n_embd]`.
    pos_embd: Option<Vec<f32>>,
    output: Option<QMatrix>,
    out_norm: Norm,
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

    /// A vector the family may have (a bias, a per-head norm): `None` where the file has none.
    fn optional(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, EngineError> {
        match self.md.tensor(name) {
            Some(_) => self.vector(name, len).map(Some),
            None => Ok(None),
        }
    }

    /// A norm's weight, with its bias where the family's norm is LayerNorm.
    fn norm(&self, name: &str, len: usize, family: Family) -> Result<Norm, EngineError> {
        let b = match family {
            Family::Gpt2 => Some(self.vector(&format!("{name}.bias"), len)?),
            _ => None,
        };
        Ok(Norm { w: self.vector(&format!("{name}.weight"), len)?, b })
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
        // Every block type has a lossless home (QMatrix::lossless_format); F16 is rounded to Q8_0.
        let lossless = QMatrix::lossless_format(t.ggml_type, cols);
        let want = match self.opts.requantize {
            Some(Quantization::To(f)) => Some(f),
            Some(Quantization::Q4K) if cols % QK_K == 0 => {
                if t.ggml_type == ggml::Q4_K {
                    return QMatrix::repack_ggml(t.ggml_type, &raw, rows, cols);
                }
                let f = dequantize(t.ggml_type, &raw, rows * cols)?;
                return QMatrix::repack_ggml(ggml::Q4_K, &quantize_q4_k(&f), rows, cols);
            }
            Some(Quantization::Q4K) => Some(WeightFormat::Q8_0),
            None => None,
        };
        if want == Some(WeightFormat::F32) {
            let f = dequantize(t.ggml_type, &raw, rows * cols)?;
            return Ok(QMatrix::quantize(&f, rows, cols, WeightFormat::F32));
        }
        match (lossless, want) {
            (Some(_), None) => QMatrix::repack_ggml(t.ggml_type, &raw, rows, cols),
            (Some(n), Some(want)) if n == want => QMatrix::repack_ggml(t.ggml_type, &raw, rows, cols),
            (_, want) => {
                let f = dequantize(t.ggml_type, &raw, rows * cols)?;
                Ok(QMatrix::quantize(&f, rows, cols, want.unwrap_or(WeightFormat::Q8_0)))
            }
        }
    }
}

/// `general.file_type` as llama.cpp names it (`Q4_K - Medium` for a Q4_K_M file), so that
/// model descriptions read the same in both tools' tables.
pub fn file_type_name(t: i64) -> String {
    let name = match t {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        _ => return format!("file type {t}"),
    };
    name.into()
}

impl Model {
    /// Loads a GGUF model, reading tensors one at a time (the file is not mapped, so peak memory
    /// is the weights as held plus one tensor).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let md = GgufMetadata::read(path).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let cfg = Config::from_metadata(&md, path)?;
        let file = File::open(path).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
        let r = Reader { file, md: &md, path, opts };
        let (e, kv, ff, qd, hd) = (cfg.n_embd, cfg.kv_dim(), cfg.n_ff, cfg.q_dim(), cfg.head_dim);
        let fam = cfg.family;
        let tok_embd = r.matrix("token_embd.weight", cfg.vocab, e)?;
        let output = match md.tensor("output.weight") {
            Some(_) => Some(r.matrix("output.weight", cfg.vocab, e)?),
            None => None,
        };
        let pos_embd = match fam {
            Family::Gpt2 => Some(r.vector("position_embd.weight", cfg.context_length * e)?),
            _ => None,
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
            let bias = |s: &str| format!("blk.{l}.{s}.bias");
            let (wqkv, bqkv) = match fam {
                Family::Gpt2 => (r.matrix(&name("attn_qkv"), qd + 2 * kv, e)?, Some(r.vector(&bias("attn_qkv"), qd + 2 * kv)?)),
                _ => {
                    let w = QMatrix::concat(vec![
                        r.matrix(&name("attn_q"), qd, e)?,
                        r.matrix(&name("attn_k"), kv, e)?,
                        r.matrix(&name("attn_v"), kv, e)?,
                    ]);
                    let b = match fam {
                        Family::Qwen2 => {
                            let mut b = r.vector(&bias("attn_q"), qd)?;
                            b.extend(r.vector(&bias("attn_k"), kv)?);
                            b.extend(r.vector(&bias("attn_v"), kv)?);
                            Some(b)
                        }
                        _ => None,
                    };
                    (w, b)
                }
            };
            let (q_norm, k_norm) = match fam {
                Family::Qwen3 => (Some(r.vector(&name("attn_q_norm"), hd)?), Some(r.vector(&name("attn_k_norm"), hd)?)),
                _ => (None, None),
            };
            let gpt2 = fam == Family::Gpt2;
            layers.push(Layer {
                attn_norm: r.norm(&format!("blk.{l}.attn_norm"), e, fam)?,
                wqkv,
                bqkv,
                q_norm,
                k_norm,
                wo: r.matrix(&name("attn_output"), e, qd)?,
                bo: if gpt2 { Some(r.vector(&bias("attn_output"), e)?) } else { r.optional(&bias("attn_output"), e)? },
                ffn_norm: r.norm(&format!("blk.{l}.ffn_norm"), e, fam)?,
                w_gate_up: if gpt2 {
                    r.matrix(&name("ffn_up"), ff, e)?
                } else {
                    QMatrix::concat(vec![r.matrix(&name("ffn_gate"), ff, e)?, r.matrix(&name("ffn_up"), ff, e)?])
                },
                b_up: if gpt2 { Some(r.vector(&bias("ffn_up"), ff)?) } else { None },
                w_down: r.matrix(&name("ffn_down"), e, ff)?,
                b_down: if gpt2 { Some(r.vector(&bias("ffn_down"), e)?) } else { None },
            });
        }
        let out_norm = r.norm("output_norm", e, fam)?;
        let vec_bytes = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, |v| 4 * v.len());
        let weight_bytes = tok_embd.bytes()
            + output.as_ref().map_or(0, QMatrix::bytes)
            + vec_bytes(&pos_embd)
            + layers
                .iter()
                .map(|l| {
                    l.wqkv.bytes()
                        + l.wo.bytes()
                        + l.w_gate_up.bytes()
                        + l.w_down.bytes()
                        + 8 * e
                        + [&l.bqkv, &l.q_norm, &l.k_norm, &l.bo, &l.b_up, &l.b_down, &l.attn_norm.b, &l.ffn_norm.b]
                            .into_iter()
                            .map(vec_bytes)
                            .sum::<usize>()
                })
                .sum::<usize>();
        let file_format = match md.kv.get("general.file_type").and_then(GgufValue::as_i64) {
            Some(t) => file_type_name(t),
            None => "unknown".into(),
        };
        Ok(Model { cfg, tok_embd, pos_embd, output, out_norm, layers, rope: Default::default(), weight_bytes, file_format })
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
        self.forward_rows(items, &[])
    }

    /// Like [`Model::forward`], but items flagged in `every_row` get logits after each of their
    /// tokens: the serving engine verifies draft proposals beside ordinary decode and prefill
    /// items in one step.
    pub fn forward_mixed(&self, items: &mut [BatchItem<'_>], every_row: &[bool]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.forward_rows(items, every_row)
    }

    /// Runs one sequence's tokens and returns the logits after every one of them (speculative
    /// decoding verifies all the draft's proposals in this one pass).
    pub fn forward_all(&self, tokens: &[u32], start: usize, cache: &mut KvCache) -> Result<Vec<Vec<f32>>, EngineError> {
        self.forward_rows(&mut [BatchItem { tokens, start, cache, want_logits: true }], &[true])
    }

    fn forward_rows(&self, items: &mut [BatchItem<'_>], every_row: &[bool]) -> Result<Vec<Vec<f32>>, EngineError> {
        let c = &self.cfg;
        let (e, hd, kvd, qd) = (c.n_embd, c.head_dim, c.kv_dim(), c.q_dim());
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
        let max_pos = rows.iter().map(|r| r.1 + 1).max().unwrap_or(1);
        if self.pos_embd.is_some() && max_pos > c.context_length {
            return Err(EngineError::BadInput(format!(
                "position {} is past the {} positions this model has embeddings for",
                max_pos - 1,
                c.context_length
            )));
        }
        if c.family != Family::Gpt2 {
            self.ensure_rope(max_pos);
        }
        let rope = self.rope.read().unwrap_or_else(PoisonError::into_inner);
        let mut x = vec![0f32; n * e];
        for (r, &(item, pos)) in rows.iter().enumerate() {
            let t = items[item].tokens[pos - items[item].start];
            let xr = &mut x[r * e..(r + 1) * e];
            self.tok_embd.row_f32(t as usize, xr);
            if let Some(p) = &self.pos_embd {
                xr.iter_mut().zip(&p[pos * e..(pos + 1) * e]).for_each(|(a, b)| *a += b);
            }
        }
        let qkv_w = qd + 2 * kvd;
        let mut h = vec![0f32; n * e];
        let mut qkv = vec![0f32; n * qkv_w];
        let mut att = vec![0f32; n * qd];
        let mut proj = vec![0f32; n * e];
        let mut gu = vec![0f32; n * 2 * c.n_ff];
        let mut act = vec![0f32; n * c.n_ff];
        let group = c.n_head / c.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        // Attention work items, the same for every layer: (row, KV head, first and end position).
        // Chunk bounds depend on the position only, so a row's result is the same bits alone or
        // in any batch.
        let mut tasks: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut row_tasks = vec![0usize];
        for (row, &(_, pos)) in rows.iter().enumerate() {
            for kv_head in 0..c.n_head_kv {
                tasks.extend((0..=pos).step_by(ATTN_CHUNK).map(|t0| (row, kv_head, t0, (t0 + ATTN_CHUNK).min(pos + 1))));
            }
            row_tasks.push(tasks.len());
        }
        let stride = group * (hd + 2);
        // Rows go through attention in blocks of about ATTN_BLOCK_TASKS work items, so the
        // partial results of a long prefill at depth (512 rows × 36 chunks × 3 heads: 39 MB)
        // never exist at once.
        let mut blocks = vec![0usize];
        for row in 1..=n {
            if row == n || row_tasks[row] - row_tasks[blocks[blocks.len() - 1]] >= ATTN_BLOCK_TASKS {
                blocks.push(row);
            }
        }
        let widest = blocks.windows(2).map(|w| row_tasks[w[1]] - row_tasks[w[0]]).max().unwrap_or(0);
        let mut part = vec![0f32; widest * stride];
        for (l, layer) in self.layers.iter().enumerate() {
            layer.attn_norm.apply(&x, c.eps, &mut h);
            matmul(&layer.wqkv, &QActs::for_matrix(&layer.wqkv, &h, n, e), &mut qkv);
            add_bias(&mut qkv, layer.bqkv.as_deref());
            for (row, &(_, pos)) in rows.iter().enumerate() {
                let v = &mut qkv[row * qkv_w..row * qkv_w + qd + kvd];
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    let (q, k) = v.split_at_mut(qd);
                    rms_norm_in_place(q, qn, c.eps);
                    rms_norm_in_place(k, kn, c.eps);
                }
                match c.family {
                    Family::Gpt2 => {}
                    f if f.neox() => apply_rope_neox(v, hd, &rope.0, &rope.1, pos),
                    _ => apply_rope(v, hd, &rope.0, &rope.1, pos),
                }
            }
            // Append this layer's keys and values to each sequence's cache.
            let mut row = 0;
            for it in items.iter_mut() {
                for j in 0..it.tokens.len() {
                    let q = &qkv[row * qkv_w..(row + 1) * qkv_w];
                    it.cache.write(l, it.start + j, &q[qd..qd + kvd], &q[qd + kvd..]);
                    row += 1;
                }
            }
            let caches: Vec<&KvCache> = items.iter().map(|it| &*it.cache).collect();
            // Partial attention per (row, KV head, chunk of positions), all in parallel: the
            // query heads sharing a KV head read each cached key and value once, and a long
            // context is split so both cores work on a single decoding sequence. Then each
            // row's chunks are merged (log-sum-exp), in order.
            for w in blocks.windows(2) {
                let (r0, r1) = (w[0], w[1]);
                let (first, last) = (row_tasks[r0], row_tasks[r1]);
                let part = &mut part[..(last - first) * stride];
                part.par_chunks_mut(stride).zip(tasks[first..last].par_iter()).for_each(|(p, &(row, kv_head, t0, t1))| {
                    let (item, _) = rows[row];
                    let q0 = row * qkv_w + kv_head * group * hd;
                    attend_chunk(&qkv[q0..q0 + group * hd], caches[item], l, kv_head, hd, t0, t1, scale, p);
                });
                let part = &*part;
                let merge_row = |(i, out): (usize, &mut [f32])| {
                    let row = r0 + i;
                    let (a, b) = (row_tasks[row] - first, row_tasks[row + 1] - first);
                    let per_head = (b - a) / c.n_head_kv;
                    for (kv_head, o) in out.chunks_exact_mut(group * hd).enumerate() {
                        let t = a + kv_head * per_head;
                        merge_chunks(&part[t * stride..(t + per_head) * stride], group, hd, o);
                    }
                };
                let att = &mut att[r0 * qd..r1 * qd];
                // A few decoding rows merge faster here than a second parallel dispatch takes.
                if r1 - r0 <= 8 {
                    att.chunks_mut(qd).enumerate().for_each(merge_row);
                } else {
                    att.par_chunks_mut(qd).enumerate().for_each(merge_row);
                }
            }
            matmul(&layer.wo, &QActs::for_matrix(&layer.wo, &att, n, qd), &mut proj);
            add_bias(&mut proj, layer.bo.as_deref());
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            layer.ffn_norm.apply(&x, c.eps, &mut h);
            let ff = c.n_ff;
            if let Some(b_up) = &layer.b_up {
                // GPT-2: GELU(up · h + b), no gate.
                let up = &mut gu[..n * ff];
                matmul(&layer.w_gate_up, &QActs::for_matrix(&layer.w_gate_up, &h, n, e), up);
                add_bias(up, Some(b_up));
                act.iter_mut().zip(up.iter()).for_each(|(a, &u)| *a = gelu(u));
            } else {
                matmul(&layer.w_gate_up, &QActs::for_matrix(&layer.w_gate_up, &h, n, e), &mut gu);
                for row in 0..n {
                    let g = &gu[row * 2 * ff..row * 2 * ff + ff];
                    let u = &gu[row * 2 * ff + ff..(row + 1) * 2 * ff];
                    for ((a, &g), &u) in act[row * ff..(row + 1) * ff].iter_mut().zip(g).zip(u) {
                        *a = g / (1.0 + (-g).exp()) * u;
                    }
                }
            }
            matmul(&layer.w_down, &QActs::for_matrix(&layer.w_down, &act, n, ff), &mut proj);
            add_bias(&mut proj, layer.b_down.as_deref());
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for it in items.iter_mut() {
            it.cache.advance(it.tokens.len());
        }
        // Only the last row of each item that wants logits goes through the output layer.
        let mut last = Vec::new();
        let mut row = 0;
        for (i, it) in items.iter().enumerate() {
            if it.want_logits && every_row.get(i).copied().unwrap_or(false) {
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
        self.out_norm.apply(&sel, c.eps, &mut normed);
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

/// RMS norm of `x` with weight `w`, in place, one `w.len()`-wide piece at a time (Qwen3's per-head
/// norms of queries and keys).
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for piece in x.chunks_exact_mut(w.len()) {
        let ms = piece.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let s = 1.0 / (ms + eps).sqrt();
        piece.iter_mut().zip(w).for_each(|(v, &g)| *v *= s * g);
    }
}

/// LayerNorm (mean and variance over the row, then weight and bias), GPT-2's norm.
fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let e = w.len();
    for (xr, or) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let mean = xr.iter().sum::<f32>() / e as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / e as f32;
        let s = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &bb) in or.iter_mut().zip(xr).zip(w).zip(b) {
            *o = (v - mean) * s * g + bb;
        }
    }
}

/// GELU in its tanh form, as GPT-2 and ggml compute it.
fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
}

/// Rotates the two halves of each head (element `i` with `i + head_dim / 2`), the NeoX layout
/// Qwen's GGUF files keep.
fn apply_rope_neox(v: &mut [f32], hd: usize, cos: &[f32], sin: &[f32], pos: usize) {
    let half = hd / 2;
    let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
    for head in v.chunks_exact_mut(hd) {
        let (lo, hi) = head.split_at_mut(half);
        for i in 0..half {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * c[i] - b * s[i];
            hi[i] = a * s[i] + b * c[i];
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

/// Positions one attention work item covers.
const ATTN_CHUNK: usize = 32;

/// Attention work items whose partial results are held at once (2,048 × 3 heads × 66 floats for
/// SmolLM2: 1.6 MB).
const ATTN_BLOCK_TASKS: usize = 2048;

/// The query heads (`q`: `group × hd`) sharing one KV head, over positions `t0..t1`: for each
/// head, the chunk's maximum score, the sum of exp(score − max) and the exp-weighted sum of
/// values, written to `out` as `[max, sum, acc[hd]]` per head (merged by [`merge_chunks`]).
/// With AVX2, FMA and F16C the half-float keys and values are widened 8 at a time and a 64- or
/// 128-wide head keeps its sums in registers.
#[allow(clippy::too_many_arguments)]
fn attend_chunk(q: &[f32], cache: &KvCache, layer: usize, kv_head: usize, hd: usize, t0: usize, t1: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
        let run = match hd {
            64 => simd::chunk::<8>,
            128 => simd::chunk::<16>,
            _ => chunk_dyn,
        };
        // SAFETY: the CPU has AVX2, FMA and F16C (checked just above); `chunk` checks its slices.
        #[allow(unsafe_code)]
        unsafe {
            return run(q, cache, layer, kv_head, hd, t0, t1, scale, out);
        }
    }
    chunk_dyn(q, cache, layer, kv_head, hd, t0, t1, scale, out)
}

/// A half float's bits as `f32`.
#[inline(always)]
fn h(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// Any head size, any CPU.
#[allow(clippy::too_many_arguments)]
fn chunk_dyn(q: &[f32], cache: &KvCache, layer: usize, kv_head: usize, hd: usize, t0: usize, t1: usize, scale: f32, out: &mut [f32]) {
    let group = q.len() / hd;
    let mut scores = [0f32; ATTN_CHUNK];
    for g in 0..group {
        let qg = &q[g * hd..(g + 1) * hd];
        let mut max = f32::NEG_INFINITY;
        for (i, t) in (t0..t1).enumerate() {
            scores[i] = qg.iter().zip(cache.key(layer, t, kv_head, hd)).map(|(a, &b)| a * h(b)).sum::<f32>() * scale;
            max = max.max(scores[i]);
        }
        let o = &mut out[g * (hd + 2)..(g + 1) * (hd + 2)];
        o[2..].iter_mut().for_each(|a| *a = 0.0);
        exp_shifted(&mut scores[..t1 - t0], max);
        let mut sum = 0f32;
        for (i, t) in (t0..t1).enumerate() {
            let w = scores[i];
            sum += w;
            for (a, &v) in o[2..].iter_mut().zip(cache.value(layer, t, kv_head, hd)) {
                *a += w * h(v);
            }
        }
        o[0] = max;
        o[1] = sum;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    use super::{exp_shifted, KvCache, ATTN_CHUNK};
    use std::arch::x86_64::*;

    /// Eight half floats widened.
    #[inline(always)]
    unsafe fn load_h(p: &[u16]) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.as_ptr() as *const __m128i))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// [`super::chunk_dyn`] for a head of `8 × N` dimensions.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn chunk<const N: usize>(
        q: &[f32],
        cache: &KvCache,
        layer: usize,
        kv_head: usize,
        hd: usize,
        t0: usize,
        t1: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let group = q.len() / hd;
        if hd != 8 * N || out.len() < group * (hd + 2) || t1 - t0 > ATTN_CHUNK {
            return super::chunk_dyn(q, cache, layer, kv_head, hd, t0, t1, scale, out);
        }
        let mut scores = [0f32; ATTN_CHUNK];
        for g in 0..group {
            let mut qv = [_mm256_setzero_ps(); N];
            for (j, v) in qv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(q.as_ptr().add(g * hd + 8 * j));
            }
            let mut max = f32::NEG_INFINITY;
            for (i, t) in (t0..t1).enumerate() {
                let k = cache.key(layer, t, kv_head, hd);
                let mut acc = _mm256_setzero_ps();
                for (j, qj) in qv.iter().enumerate() {
                    acc = _mm256_fmadd_ps(*qj, load_h(&k[8 * j..]), acc);
                }
                scores[i] = hsum(acc) * scale;
                max = max.max(scores[i]);
            }
            exp_shifted(&mut scores[..t1 - t0], max);
            let mut acc = [_mm256_setzero_ps(); N];
            let mut sum = 0f32;
            for (i, t) in (t0..t1).enumerate() {
                let w = scores[i];
                sum += w;
                let wv = _mm256_set1_ps(w);
                let v = cache.value(layer, t, kv_head, hd);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(wv, load_h(&v[8 * j..]), *a);
                }
            }
            let o = &mut out[g * (hd + 2)..(g + 1) * (hd + 2)];
            o[0] = max;
            o[1] = sum;
            for (j, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.as_mut_ptr().add(2 + 8 * j), *a);
            }
        }
    }
}

/// `s[i] = exp(s[i] - max)` for a chunk of scores, in a branch-free form the compiler
/// vectorizes (the C library's `expf` is one call per score: at 512 tokens of context it was
/// most of attention's time). Range reduction by ln 2 and a degree-7 Taylor polynomial on
/// |r| ≤ ln 2 / 2: relative error under 3e-7 (a few units in the last place). Inputs are ≤ 0; below −87 the result is ~0.
#[inline(always)]
fn exp_shifted(s: &mut [f32], max: f32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    for v in s.iter_mut() {
        let x = (*v - max).clamp(-87.0, 0.0);
        let n = (x * LOG2E + 0.5).floor();
        let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
        let p =
            1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        *v = p * f32::from_bits(((n as i32 + 127) as u32) << 23);
    }
}

/// Combines one row's chunks for one KV head's query heads (`parts`: chunks in position order,
/// each `group × [max, sum, acc[hd]]`) into softmax(q·K)·V per head, written to `out`.
fn merge_chunks(parts: &[f32], group: usize, hd: usize, out: &mut [f32]) {
    let stride = group * (hd + 2);
    for g in 0..group {
        let chunk = |c: &[f32]| -> (f32, f32) { (c[g * (hd + 2)], c[g * (hd + 2) + 1]) };
        let max = parts.chunks_exact(stride).map(|c| chunk(c).0).fold(f32::NEG_INFINITY, f32::max);
        let o = &mut out[g * hd..(g + 1) * hd];
        o.iter_mut().for_each(|a| *a = 0.0);
        let mut total = 0f32;
        for c in parts.chunks_exact(stride) {
            let (m, sum) = chunk(c);
            let f = (m - max).exp();
            total += sum * f;
            for (a, v) in o.iter_mut().zip(&c[g * (hd + 2) + 2..(g + 1) * (hd + 2)]) {
                *a += v * f;
            }
        }
        let inv = 1.0 / total;
        o.iter_mut().for_each(|a| *a *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunked attention merged by log-sum-exp equals softmax(q·K / sqrt(d)) · V computed
    /// directly, for the register (64) and general head sizes and contexts of 1 to several chunks.
    #[test]
    fn the_vectorized_exp_is_within_3e_7_of_the_exact_one() {
        let xs: Vec<f32> = (0..=87_000).map(|i| -(i as f32) / 1000.0).collect();
        let mut got = xs.clone();
        exp_shifted(&mut got, 0.0);
        for (x, g) in xs.iter().zip(&got) {
            let want = f64::from(*x).exp();
            assert!(((f64::from(*g) - want) / want).abs() < 3e-7, "exp({x}) = {g}, want {want}");
        }
        let mut tiny = [-200.0f32, f32::NEG_INFINITY];
        exp_shifted(&mut tiny, 0.0);
        assert!(tiny.iter().all(|v| (0.0..1e-37).contains(v)), "{tiny:?}");
    }

    /// The family pieces on hand-computed values.
    #[test]
    fn layer_norm_gelu_and_neox_rotation_on_hand_computed_values() {
        // [1, 2, 3, 4]: mean 2.5, variance 1.25; weight 2, bias 1.
        let mut out = [0f32; 4];
        layer_norm(&[1.0, 2.0, 3.0, 4.0], &[2.0; 4], &[1.0; 4], 0.0, &mut out);
        let s = 1.0 / 1.25f32.sqrt();
        for (o, x) in out.iter().zip([1.0f32, 2.0, 3.0, 4.0]) {
            assert!((o - ((x - 2.5) * s * 2.0 + 1.0)).abs() < 1e-6, "{out:?}");
        }
        // GELU (tanh form): 0 at 0, 0.841192 at 1, -0.158808 at -1, ~x for large x.
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5 && (gelu(-1.0) + 0.158_808).abs() < 1e-5);
        assert!((gelu(10.0) - 10.0).abs() < 1e-5);
        // NeoX: element i pairs with i + 2 in a 4-wide head; llama's layout pairs 0-1 and 2-3.
        // Angles at position 1: 1 and base^(-1/2) = 0.01 (base 10,000).
        let (a0, a1) = (1.0f32, 0.01f32);
        let (cos, sin) = (vec![1.0, 1.0, a0.cos(), a1.cos()], vec![0.0, 0.0, a0.sin(), a1.sin()]);
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        apply_rope_neox(&mut v, 4, &cos, &sin, 1);
        let want = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            1.0 * a0.sin() + 3.0 * a0.cos(),
            2.0 * a1.sin() + 4.0 * a1.cos(),
        ];
        assert!(v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{v:?} vs {want:?}");
        let mut w = [1.0f32, 2.0, 3.0, 4.0];
        apply_rope(&mut w, 4, &cos, &sin, 1);
        assert!((w[0] - (1.0 * a0.cos() - 2.0 * a0.sin())).abs() < 1e-6, "{w:?}");
        // Per-head RMS norm: each 2-wide piece on its own.
        let mut q = [3.0f32, 4.0, 1.0, 1.0];
        rms_norm_in_place(&mut q, &[1.0, 2.0], 0.0);
        let (r1, r2) = ((12.5f32).sqrt(), 1.0f32);
        assert!(q.iter().zip([3.0 / r1, 8.0 / r1, 1.0 / r2, 2.0 / r2]).all(|(a, b)| (a - b).abs() < 1e-6), "{q:?}");
    }

    #[test]
    fn chunked_attention_equals_the_direct_formula() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        };
        for (hd, group, kv_heads, len) in [(64, 3, 2, 1), (64, 3, 2, 100), (8, 2, 1, 33), (128, 1, 1, 70)] {
            let mut cache = KvCache::new(1, kv_heads * hd, len);
            for t in 0..len {
                let k: Vec<f32> = (0..kv_heads * hd).map(|_| rnd()).collect();
                let v: Vec<f32> = (0..kv_heads * hd).map(|_| rnd()).collect();
                cache.write(0, t, &k, &v);
            }
            let scale = 1.0 / (hd as f32).sqrt();
            for kv_head in 0..kv_heads {
                let q: Vec<f32> = (0..group * hd).map(|_| rnd()).collect();
                let chunks: Vec<(usize, usize)> = (0..len).step_by(ATTN_CHUNK).map(|t0| (t0, (t0 + ATTN_CHUNK).min(len))).collect();
                let stride = group * (hd + 2);
                let mut part = vec![0f32; chunks.len() * stride];
                // The SIMD kernel (where the CPU has it) and the portable one agree with the formula.
                let mut portable = vec![0f32; chunks.len() * stride];
                for ((p, d), &(t0, t1)) in part.chunks_exact_mut(stride).zip(portable.chunks_exact_mut(stride)).zip(&chunks) {
                    attend_chunk(&q, &cache, 0, kv_head, hd, t0, t1, scale, p);
                    chunk_dyn(&q, &cache, 0, kv_head, hd, t0, t1, scale, d);
                }
                let mut out = vec![0f32; group * hd];
                merge_chunks(&part, group, hd, &mut out);
                let mut out_dyn = vec![0f32; group * hd];
                merge_chunks(&portable, group, hd, &mut out_dyn);
                for g in 0..group {
                    let qg = &q[g * hd..(g + 1) * hd];
                    let s: Vec<f64> = (0..len)
                        .map(|t| {
                            qg.iter().zip(cache.key(0, t, kv_head, hd)).map(|(a, &b)| f64::from(*a) * f64::from(h(b))).sum::<f64>()
                                * f64::from(scale)
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for i in 0..hd {
                        let want: f64 = (0..len).map(|t| (s[t] - m).exp() / z * f64::from(h(cache.value(0, t, kv_head, hd)[i]))).sum();
                        for (kind, o) in [("simd", &out), ("portable", &out_dyn)] {
                            let got = f64::from(o[g * hd + i]);
                            assert!((got - want).abs() < 1e-5, "{kind}: hd {hd} len {len} head {g} dim {i}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
