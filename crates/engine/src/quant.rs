//! Quantized weight matrices and the matrix product the whole engine spends its time in.
//!
//! Weights stay in 32-element blocks (Q4_1 as shipped, or Q8_0); activations are quantized to 8 bits
//! per block, and each block's dot product is done in integers (AVX2 `maddubs`) and scaled once.
//! One pass over a weight row serves every activation row of the batch, which is what makes
//! batched decoding cheaper per token than single-sequence decoding. Each output element is computed
//! by the same instruction sequence whatever the batch holds, so batching never changes results.

use crate::EngineError;
use rayon::prelude::*;

/// Elements per quantization block.
pub const QK: usize = 32;

/// ggml type ids this engine reads.
pub mod ggml {
    /// 32-bit float.
    pub const F32: u32 = 0;
    /// 16-bit float.
    pub const F16: u32 = 1;
    /// 4-bit, one scale per block.
    pub const Q4_0: u32 = 2;
    /// 4-bit, scale and minimum per block.
    pub const Q4_1: u32 = 3;
    /// 5-bit, one scale per block.
    pub const Q5_0: u32 = 6;
    /// 5-bit, scale and minimum per block.
    pub const Q5_1: u32 = 7;
    /// 8-bit, one scale per block.
    pub const Q8_0: u32 = 8;
    /// K-quant, 4-bit in 256-element super-blocks with 6-bit sub-block scales and minimums.
    pub const Q4_K: u32 = 12;
    /// K-quant, 5-bit (Q4_K plus a high bit per weight).
    pub const Q5_K: u32 = 13;
    /// K-quant, 6-bit with 8-bit sub-block scales.
    pub const Q6_K: u32 = 14;
    /// K-quant, 8-bit with an f32 scale (llama.cpp's activation format).
    pub const Q8_K: u32 = 15;

    /// A readable name for a ggml type id.
    pub fn name(t: u32) -> String {
        match t {
            0 => "F32".into(),
            1 => "F16".into(),
            2 => "Q4_0".into(),
            3 => "Q4_1".into(),
            6 => "Q5_0".into(),
            7 => "Q5_1".into(),
            8 => "Q8_0".into(),
            10 => "Q2_K".into(),
            11 => "Q3_K".into(),
            12 => "Q4_K".into(),
            13 => "Q5_K".into(),
            14 => "Q6_K".into(),
            15 => "Q8_K".into(),
            30 => "BF16".into(),
            t => format!("type {t}"),
        }
    }
}

/// How a weight matrix is held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// 4-bit with a scale and a minimum per block (5 bits a weight as held here).
    Q4_1,
    /// 8-bit with a scale per block (9 bits a weight as held here).
    Q8_0,
    /// 5-bit with a scale and a minimum per block (7 bits a weight with `f32` scales): Q5_1
    /// and Q5_K without loss.
    Q5_1,
    /// 6-bit, signed about 32, with a scale per 16 values (8 bits a weight): Q6_K without loss.
    Q6,
    /// 32-bit floats: the reference the quantized formats are compared with.
    F32,
}

/// What `--quantization` asks of the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Every matrix re-quantized to this held format.
    To(WeightFormat),
    /// Every matrix with rows of a multiple of 256 values quantized to llama.cpp's Q4_K (kept
    /// as is where the file already has Q4_K) and held as Q4_1 without further loss; narrower
    /// matrices, which llama.cpp cannot make Q4_K either, are held as Q8_0.
    Q4K,
}

impl Quantization {
    /// Parses `q4_k`, or a [`WeightFormat`] name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "q4_k" => Some(Self::Q4K),
            other => WeightFormat::parse(other).map(Self::To),
        }
    }
}

impl From<WeightFormat> for Quantization {
    fn from(f: WeightFormat) -> Self {
        Self::To(f)
    }
}

impl WeightFormat {
    /// Parses `q4_1` / `q8_0` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "q4_1" => Some(Self::Q4_1),
            "q8_0" => Some(Self::Q8_0),
            "f32" => Some(Self::F32),
            _ => None,
        }
    }
}

impl WeightFormat {
    /// Bytes of quantized values per 32-value block.
    const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 16,
            Self::Q5_1 => 20,
            Self::Q6 => 24,
            Self::Q8_0 => 32,
            Self::F32 => 0,
        }
    }
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Q4_1 => "Q4_1",
            Self::Q8_0 => "Q8_0",
            Self::Q5_1 => "Q5_1",
            Self::Q6 => "Q6_K",
            Self::F32 => "F32",
        })
    }
}

/// Bytes a tensor of `elements` of ggml type `t` occupies in a GGUF file, or `None` if unsupported.
pub fn ggml_size(t: u32, elements: usize) -> Option<usize> {
    Some(match t {
        ggml::F32 => elements * 4,
        ggml::F16 => elements * 2,
        ggml::Q4_0 => elements / QK * 18,
        ggml::Q4_1 => elements / QK * 20,
        ggml::Q8_0 => elements / QK * 34,
        ggml::Q5_0 => elements / QK * 22,
        ggml::Q5_1 => elements / QK * 24,
        // K-quants come in super-blocks of 256 (a row shorter than that is stored otherwise).
        ggml::Q4_K if elements % QK_K == 0 => elements / QK_K * 144,
        ggml::Q5_K if elements % QK_K == 0 => elements / QK_K * 176,
        ggml::Q6_K if elements % QK_K == 0 => elements / QK_K * 210,
        ggml::Q8_K if elements % QK_K == 0 => elements / QK_K * 292,
        _ => return None,
    })
}

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// llama.cpp's `nearest_int`: round half to even.
fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// llama.cpp's `make_qkx2_quants`: the scale and minimum of `x` (`L` its levels in 0..=nmax)
/// that minimise the weighted squared error, searched over 21 trial scales.
fn make_qkx2_quants(x: &[f32], weights: &[f32], nmax: i32, levels: &mut [u8]) -> (f32, f32) {
    let (rmin, rdelta, nstep) = (-1.0f32, 0.1f32, 20);
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (weights[0], weights[0] * x[0]);
    for i in 1..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0f32;
    for i in 0..n {
        let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best += weights[i] * diff * diff;
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let (w, l) = (weights[i], l as f32);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                mad += weights[i] * diff * diff;
            }
            if mad < best {
                levels[..n].copy_from_slice(&aux[..n]);
                best = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Quantizes `x` (a multiple of 256 values) to Q4_K blocks exactly as llama.cpp's
/// `quantize_row_q4_K_ref` does (no importance matrix): per 32 values a searched scale and
/// minimum, both stored as 6 bits under the super-block's f16 scales. Checked byte for byte
/// against llama.cpp's own quantizer (`tests/fixtures/q4_k-llama-cpp.json`).
pub fn quantize_q4_k(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / QK_K * 144);
    for x in x.chunks_exact(QK_K) {
        let mut levels = [0u8; QK_K];
        let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
        let mut weights = [0f32; 32];
        for j in 0..8 {
            let xs = &x[32 * j..32 * j + 32];
            let av_x = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
            weights.iter_mut().zip(xs).for_each(|(w, v)| *w = av_x + v.abs());
            (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, 15, &mut levels[32 * j..32 * j + 32]);
        }
        let max_scale = scales.iter().copied().fold(0f32, f32::max);
        let max_min = mins.iter().copied().fold(0f32, f32::max);
        let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut packed = [0u8; 12];
        for j in 0..8 {
            let ls = (nearest(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                packed[j] = ls;
                packed[j + 4] = lm;
            } else {
                packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                packed[j - 4] |= (ls >> 4) << 6;
                packed[j] |= (lm >> 4) << 6;
            }
        }
        let d = half::f16::from_f32(max_scale / 63.0);
        let dmin = half::f16::from_f32(max_min / 63.0);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &packed);
            let dj = d.to_f32() * f32::from(sc);
            if dj == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * f32::from(m);
            for i in 0..32 {
                levels[32 * j + i] = nearest((x[32 * j + i] + dm) / dj).clamp(0, 15) as u8;
            }
        }
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&dmin.to_le_bytes());
        out.extend_from_slice(&packed);
        for g in levels.chunks_exact(64) {
            out.extend((0..32).map(|l| g[l] | (g[l + 32] << 4)));
        }
    }
    out
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) from a K-quant's 12 packed bytes, as
/// llama.cpp's `get_scale_min_k4`.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K and Q5_K (with `qh`): per 64 elements two sub-blocks, low nibbles then high nibbles.
fn dequant_k45(b: &[u8], five: bool, out: &mut Vec<f32>) {
    let (d, dmin) = (f16(b), f16(&b[2..]));
    let scales = &b[4..16];
    let (qh, ql) = if five { (&b[16..48], &b[48..176]) } else { (&b[0..0], &b[16..144]) };
    for (k, q) in ql.chunks_exact(32).enumerate() {
        let (s1, m1) = scale_min_k4(2 * k, scales);
        let (s2, m2) = scale_min_k4(2 * k + 1, scales);
        let (d1, m1, d2, m2) = (d * f32::from(s1), dmin * f32::from(m1), d * f32::from(s2), dmin * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
        let high = |l: usize, u: u8| if five && qh[l] & u != 0 { 16.0 } else { 0.0 };
        out.extend(q.iter().enumerate().map(|(l, v)| d1 * (f32::from(v & 0xF) + high(l, u1)) - m1));
        out.extend(q.iter().enumerate().map(|(l, v)| d2 * (f32::from(v >> 4) + high(l, u2)) - m2));
    }
}

/// Q6_K: 128 elements at a time from 64 low-nibble bytes and 32 bytes of 2-bit highs.
fn dequant_q6k(b: &[u8], out: &mut Vec<f32>) {
    let (ql, qh, sc, d) = (&b[0..128], &b[128..192], &b[192..208], f16(&b[208..]));
    for n in 0..2 {
        let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
        let mut y = [0f32; 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |i: usize| d * f32::from(sc[is + i] as i8);
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
        out.extend_from_slice(&y);
    }
}

/// The 32 integers of a Q5_0 / Q5_1 block (`rest`: the 4-byte mask of fifth bits, then the
/// nibbles), less `offset` (16 for Q5_0's signed values).
fn q5_ints(rest: &[u8], offset: i32) -> [i32; 32] {
    let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let qs = &rest[4..20];
    let mut x = [0i32; 32];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        x[j] = (u32::from(qs[j] & 0xF) | h0) as i32 - offset;
        x[j + 16] = (u32::from(qs[j] >> 4) | h1) as i32 - offset;
    }
    x
}

/// Q5_0 and Q5_1: a fifth bit per weight from a 32-bit mask.
fn dequant_q5(b: &[u8], with_min: bool, out: &mut Vec<f32>) {
    let d = f16(b);
    let (m, rest) = if with_min { (f16(&b[2..]), &b[4..]) } else { (0.0, &b[2..]) };
    out.extend(q5_ints(rest, if with_min { 0 } else { 16 }).iter().map(|&x| x as f32 * d + m));
}

/// Appends 32 values (below 16, 32 or 64 as `fmt` is Q4_1, Q5_1 or Q6) in the held layout: 16
/// bytes of nibbles (byte `j`: value `j` low, `j + 16` high); for Q5_1 a 32-bit little-endian
/// plane of fifth bits (bit `e` for value `e`); for Q6 8 bytes of top-two-bit pairs, value
/// `8k + i` in bits `2k..2k + 2` of byte `i`, so that one 64-bit broadcast and one shift per
/// 64-bit lane put every pair under its value.
fn push_packed(qs: &mut Vec<u8>, v: &[u8; QK], fmt: WeightFormat) {
    qs.extend((0..16).map(|j| (v[j] & 0xF) | ((v[j + 16] & 0xF) << 4)));
    match fmt {
        WeightFormat::Q5_1 => {
            let bits = v.iter().enumerate().fold(0u32, |a, (e, &x)| a | (u32::from((x >> 4) & 1) << e));
            qs.extend_from_slice(&bits.to_le_bytes());
        }
        WeightFormat::Q6 => qs.extend((0..8).map(|i| (0..4).fold(0u8, |a, k| a | ((v[8 * k + i] >> 4) << (2 * k))))),
        _ => {}
    }
}

fn f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Dequantizes raw GGUF tensor bytes of type `t` to `f32`.
pub fn dequantize(t: u32, raw: &[u8], elements: usize) -> Result<Vec<f32>, EngineError> {
    let mut out = Vec::with_capacity(elements);
    match t {
        ggml::F32 => out.extend(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        ggml::F16 => out.extend(raw.chunks_exact(2).map(f16)),
        ggml::Q4_0 => {
            for b in raw.chunks_exact(18) {
                let d = f16(b);
                let qs = &b[2..];
                out.extend(qs.iter().map(|q| ((q & 0xF) as f32 - 8.0) * d));
                out.extend(qs.iter().map(|q| ((q >> 4) as f32 - 8.0) * d));
            }
        }
        ggml::Q4_1 => {
            for b in raw.chunks_exact(20) {
                let (d, m) = (f16(b), f16(&b[2..]));
                let qs = &b[4..];
                out.extend(qs.iter().map(|q| (q & 0xF) as f32 * d + m));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
            }
        }
        ggml::Q8_0 => {
            for b in raw.chunks_exact(34) {
                let d = f16(b);
                out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        ggml::Q5_0 => raw.chunks_exact(22).for_each(|b| dequant_q5(b, false, &mut out)),
        ggml::Q5_1 => raw.chunks_exact(24).for_each(|b| dequant_q5(b, true, &mut out)),
        ggml::Q4_K => raw.chunks_exact(144).for_each(|b| dequant_k45(b, false, &mut out)),
        ggml::Q5_K => raw.chunks_exact(176).for_each(|b| dequant_k45(b, true, &mut out)),
        ggml::Q6_K => raw.chunks_exact(210).for_each(|b| dequant_q6k(b, &mut out)),
        ggml::Q8_K => {
            for b in raw.chunks_exact(292) {
                let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                out.extend(b[4..260].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        t => return Err(EngineError::Unsupported(format!("tensor type {} cannot be read", ggml::name(t)))),
    }
    if out.len() != elements {
        return Err(EngineError::Corrupt(format!("tensor holds {} values, expected {elements}", out.len())));
    }
    Ok(out)
}

/// Per-block scales or minimums: the file's own `f16` bits where it had them (half the bytes of
/// `f32`; converting is exact, so results are the same), or `f32` where a value is a product no
/// `f16` holds (Q4_K's sub-block scales folded into Q4_1) or our own quantization chose it.
#[derive(Debug, Clone)]
pub(crate) enum Scales {
    /// IEEE half bits.
    Half(Vec<u16>),
    /// Single precision.
    Full(Vec<f32>),
}

impl Scales {
    fn half(cap: usize) -> Self {
        Self::Half(Vec::with_capacity(cap))
    }

    fn full(cap: usize) -> Self {
        Self::Full(Vec::with_capacity(cap))
    }

    /// Value `i`.
    #[inline]
    fn get(&self, i: usize) -> f32 {
        match self {
            Self::Half(v) => half::f16::from_bits(v[i]).to_f32(),
            Self::Full(v) => v[i],
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Half(v) => v.len(),
            Self::Full(v) => v.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::Half(v) => v.len() * 2,
            Self::Full(v) => v.len() * 4,
        }
    }

    /// Appends the little-endian `f16` at the start of `b` (a GGUF block's scale).
    fn push_bits(&mut self, b: &[u8]) {
        let bits = u16::from_le_bytes([b[0], b[1]]);
        match self {
            Self::Half(v) => v.push(bits),
            Self::Full(v) => v.push(half::f16::from_bits(bits).to_f32()),
        }
    }

    fn push(&mut self, x: f32) {
        self.widen_in_place().push(x);
    }

    /// Appends `other`, widening to `f32` when the two differ.
    fn append(&mut self, other: Scales) {
        match (&mut *self, other) {
            (Self::Half(a), Self::Half(b)) => a.extend(b),
            (_, other) => {
                let a = self.widen_in_place();
                match other {
                    Self::Half(b) => a.extend(b.into_iter().map(|x| half::f16::from_bits(x).to_f32())),
                    Self::Full(b) => a.extend(b),
                }
            }
        }
    }

    /// The values as `f32`, widened in place if they were halves.
    fn widen_in_place(&mut self) -> &mut Vec<f32> {
        if let Self::Half(v) = self {
            *self = Self::Full(v.iter().map(|&x| half::f16::from_bits(x).to_f32()).collect());
        }
        match self {
            Self::Full(v) => v,
            Self::Half(_) => unreachable!("widened above"),
        }
    }
}

/// A weight matrix of `rows` × `cols` (`cols` a multiple of 32), row-major, in blocks.
#[derive(Debug, Clone)]
pub struct QMatrix {
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    fmt: WeightFormat,
    /// Per-block scales (Q6: two a block, one per 16 values).
    d: Scales,
    /// Per-block minimums (Q4_1 and Q5_1).
    m: Scales,
    /// Quantized values, [`WeightFormat::block_bytes`] a block: 16 bytes of nibbles (byte `j`
    /// holds value `j` low and `j + 16` high), then for Q5_1 a 32-bit plane of fifth bits and
    /// for Q6 planes of fifth and sixth bits (bit `e` for value `e`); Q8_0 32 signed bytes.
    qs: Vec<u8>,
    /// The values of an F32 matrix.
    f: Vec<f32>,
    /// Row ranges in formats of their own, one after another (a fused Q/K/V whose files mix
    /// types); empty for a matrix in one format, which holds its data itself.
    parts: Vec<QMatrix>,
}

impl QMatrix {
    /// A matrix of no values yet, to be filled block by block.
    fn empty(rows: usize, cols: usize, fmt: WeightFormat, d: Scales, m: Scales, qs: Vec<u8>) -> Self {
        Self { rows, cols, fmt, d, m, qs, f: Vec::new(), parts: Vec::new() }
    }

    /// The storage format.
    pub fn format(&self) -> WeightFormat {
        self.fmt
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.d.bytes() + self.m.bytes() + self.qs.len() + self.f.len() * 4 + self.parts.iter().map(QMatrix::bytes).sum::<usize>()
    }

    /// The matrix in one format, or its parts in theirs.
    fn each_part(&self) -> &[QMatrix] {
        if self.parts.is_empty() {
            std::slice::from_ref(self)
        } else {
            &self.parts
        }
    }

    fn blocks(&self) -> usize {
        self.cols / QK
    }

    /// The format a GGUF type can be held in without changing a single weight: Q4_0 as Q4_1 (a
    /// minimum of -8 times the scale), Q5_0 as Q5_1 (-16 times the scale), Q4_K as Q4_1 and
    /// Q5_K as Q5_1 (each 32-value sub-block's 6-bit scale and minimum folded into an `f32` scale and
    /// minimum), Q6_K as Q6 (each 16 values' 8-bit scale folded into an `f32` scale). `None` for
    /// F32/F16 and for K-quant rows (`cols`) that are not whole super-blocks.
    pub fn lossless_format(t: u32, cols: usize) -> Option<WeightFormat> {
        match t {
            ggml::Q4_1 => Some(WeightFormat::Q4_1),
            ggml::Q4_K if cols % QK_K == 0 => Some(WeightFormat::Q4_1),
            ggml::Q5_1 => Some(WeightFormat::Q5_1),
            ggml::Q5_K if cols % QK_K == 0 => Some(WeightFormat::Q5_1),
            ggml::Q6_K if cols % QK_K == 0 => Some(WeightFormat::Q6),
            ggml::Q4_0 => Some(WeightFormat::Q4_1),
            ggml::Q5_0 => Some(WeightFormat::Q5_1),
            ggml::Q8_0 => Some(WeightFormat::Q8_0),
            _ => None,
        }
    }

    /// Repacks Q4_0 (into Q4_1), Q5_0 (into Q5_1), Q4_K (into Q4_1), Q5_1 and Q5_K (into Q5_1) and Q6_K
    /// (into Q6) blocks exactly: the matrix's values are llama.cpp's dequantized values, bit for
    /// bit (tested against [`dequantize`]).
    pub fn repack_ggml(t: u32, raw: &[u8], rows: usize, cols: usize) -> Result<Self, EngineError> {
        let nb = rows * cols / QK;
        let size_ok = ggml_size(t, rows * cols) == Some(raw.len()) && cols % QK == 0;
        let mut q = Self::empty(rows, cols, WeightFormat::Q8_0, Scales::half(nb), Scales::half(0), Vec::new());
        match t {
            _ if !size_ok => {}
            ggml::Q4_1 | ggml::Q8_0 => return Self::from_ggml(t, raw, rows, cols),
            ggml::Q4_0 | ggml::Q5_0 => {
                // d * (q - 8) = d * q + (-8 * d): Q4_1 with a minimum of -8 * d (Q5_0: Q5_1 with
                // -16 * d), exact in f16 (a power of two times an f16) unless it overflows, when
                // the minimums are f32. Q5_0 used to be held as Q8_0 (8.5 bits a weight against
                // 6), which prefilled faster until large batches unpacked weights once a task.
                let five = t == ggml::Q5_0;
                q.fmt = if five { WeightFormat::Q5_1 } else { WeightFormat::Q4_1 };
                q.m = Scales::half(nb);
                q.qs.reserve(nb * q.fmt.block_bytes());
                for b in raw.chunks_exact(if five { 22 } else { 18 }) {
                    q.d.push_bits(b);
                    let m = if five { -16.0 } else { -8.0 } * f16(b);
                    let m16 = half::f16::from_f32(m);
                    if m16.to_f32() == m {
                        q.m.push_bits(&m16.to_le_bytes());
                    } else {
                        q.m.push(m);
                    }
                    if five {
                        q.qs.extend_from_slice(&b[6..22]);
                        q.qs.extend_from_slice(&b[2..6]);
                    } else {
                        q.qs.extend_from_slice(&b[2..18]);
                    }
                }
                return Ok(q);
            }
            ggml::Q4_K | ggml::Q5_K if cols % QK_K == 0 => {
                // Sub-block scale times block scale needs more bits than an f16 has.
                let five = t == ggml::Q5_K;
                q.fmt = if five { WeightFormat::Q5_1 } else { WeightFormat::Q4_1 };
                (q.d, q.m) = (Scales::full(nb), Scales::full(nb));
                q.qs.reserve(nb * q.fmt.block_bytes());
                for b in raw.chunks_exact(if five { 176 } else { 144 }) {
                    let (d, dmin) = (f16(b), f16(&b[2..]));
                    let (qh, ql) = if five { (&b[16..48], &b[48..176]) } else { (&b[0..0], &b[16..144]) };
                    for (k, ql) in ql.chunks_exact(32).enumerate() {
                        for (j, high) in [(2 * k, false), (2 * k + 1, true)] {
                            let (sc, mn) = scale_min_k4(j, &b[4..16]);
                            q.d.push(d * f32::from(sc));
                            q.m.push(-(dmin * f32::from(mn)));
                            let fifth = |l: usize| if five { ((qh[l] >> j) & 1) << 4 } else { 0 };
                            let v = |l: usize| (if high { ql[l] >> 4 } else { ql[l] & 0xF }) | fifth(l);
                            push_packed(&mut q.qs, &std::array::from_fn(v), q.fmt);
                        }
                    }
                }
                return Ok(q);
            }
            ggml::Q5_1 => {
                q.fmt = WeightFormat::Q5_1;
                q.m = Scales::half(nb);
                q.qs.reserve(nb * 20);
                for b in raw.chunks_exact(24) {
                    q.d.push_bits(b);
                    q.m.push_bits(&b[2..]);
                    q.qs.extend_from_slice(&b[8..24]);
                    q.qs.extend_from_slice(&b[4..8]);
                }
                return Ok(q);
            }
            ggml::Q6_K if cols % QK_K == 0 => {
                q.fmt = WeightFormat::Q6;
                q.d = Scales::full(nb * 2);
                q.qs.reserve(nb * 24);
                for b in raw.chunks_exact(210) {
                    let (ql, qh, sc, d) = (&b[0..128], &b[128..192], &b[192..208], f16(&b[208..]));
                    // The 256 values (0..=63) in order, as llama.cpp's dequantize_row_q6_K lays them out.
                    let mut u = [0u8; QK_K];
                    for n in 0..2 {
                        let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
                        for l in 0..32 {
                            let o = 128 * n + l;
                            u[o] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                            u[o + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                            u[o + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                            u[o + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                        }
                    }
                    for (i, vals) in u.chunks_exact(QK).enumerate() {
                        q.d.push(d * f32::from(sc[2 * i] as i8));
                        q.d.push(d * f32::from(sc[2 * i + 1] as i8));
                        push_packed(&mut q.qs, &std::array::from_fn(|e| vals[e]), WeightFormat::Q6);
                    }
                }
                return Ok(q);
            }
            _ => {}
        }
        Err(EngineError::Corrupt(format!(
            "{} tensor of {rows}x{cols} has {} bytes, or has no lossless repacking",
            ggml::name(t),
            raw.len()
        )))
    }

    /// Takes GGUF Q4_1 / Q8_0 bytes as they are (no loss).
    pub fn from_ggml(t: u32, raw: &[u8], rows: usize, cols: usize) -> Result<Self, EngineError> {
        let nb = rows * cols / QK;
        match t {
            ggml::Q4_1 if raw.len() == nb * 20 => {
                let mut q = Self::empty(rows, cols, WeightFormat::Q4_1, Scales::half(nb), Scales::half(nb), Vec::with_capacity(nb * 16));
                for b in raw.chunks_exact(20) {
                    q.d.push_bits(b);
                    q.m.push_bits(&b[2..]);
                    q.qs.extend_from_slice(&b[4..20]);
                }
                Ok(q)
            }
            ggml::Q8_0 if raw.len() == nb * 34 => {
                let mut q = Self::empty(rows, cols, WeightFormat::Q8_0, Scales::half(nb), Scales::half(0), Vec::with_capacity(nb * 32));
                for b in raw.chunks_exact(34) {
                    q.d.push_bits(b);
                    q.qs.extend_from_slice(&b[2..34]);
                }
                Ok(q)
            }
            _ => Err(EngineError::Corrupt(format!("{} tensor of {rows}x{cols} has {} bytes", ggml::name(t), raw.len()))),
        }
    }

    /// The matrix as GGUF block bytes (scales rounded to f16), for writing test models: Q4_1,
    /// Q5_1 and Q8_0 blocks, F32 values, and Q6 as F32 values (no ggml type holds it).
    pub fn to_ggml(&self) -> Vec<u8> {
        if !self.parts.is_empty() {
            return self.parts.iter().flat_map(QMatrix::to_ggml).collect();
        }
        let f16 = |x: f32| half::f16::from_f32(x).to_le_bytes();
        let mut out = Vec::new();
        if self.fmt == WeightFormat::Q6 {
            self.to_f32().iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            return out;
        }
        self.f.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        for b in 0..self.d.len() {
            out.extend_from_slice(&f16(self.d.get(b)));
            match self.fmt {
                WeightFormat::Q4_1 => {
                    out.extend_from_slice(&f16(self.m.get(b)));
                    out.extend_from_slice(&self.qs[b * 16..b * 16 + 16]);
                }
                WeightFormat::Q5_1 => {
                    out.extend_from_slice(&f16(self.m.get(b)));
                    out.extend_from_slice(&self.qs[b * 20 + 16..b * 20 + 20]);
                    out.extend_from_slice(&self.qs[b * 20..b * 20 + 16]);
                }
                WeightFormat::Q8_0 => out.extend_from_slice(&self.qs[b * 32..b * 32 + 32]),
                WeightFormat::F32 | WeightFormat::Q6 => {}
            }
        }
        out
    }

    /// Quantizes `f32` weights (`rows` × `cols`) to `fmt`.
    pub fn quantize(w: &[f32], rows: usize, cols: usize, fmt: WeightFormat) -> Self {
        let nb = rows * cols / QK;
        let mut q = Self::empty(rows, cols, fmt, Scales::full(nb), Scales::full(0), Vec::new());
        match fmt {
            WeightFormat::F32 => q.f = w.to_vec(),
            WeightFormat::Q8_0 => {
                q.qs.reserve(nb * 32);
                for b in w.chunks_exact(QK) {
                    let amax = b.iter().fold(0f32, |a, x| a.max(x.abs()));
                    let d = amax / 127.0;
                    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                    q.d.push(d);
                    q.qs.extend(b.iter().map(|x| (x * id).round() as i8 as u8));
                }
            }
            WeightFormat::Q4_1 | WeightFormat::Q5_1 => {
                let levels = if fmt == WeightFormat::Q4_1 { 15 } else { 31 };
                q.m = Scales::full(nb);
                q.qs.reserve(nb * fmt.block_bytes());
                for b in w.chunks_exact(QK) {
                    let min = b.iter().fold(f32::INFINITY, |a, &x| a.min(x));
                    let max = b.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                    let d = (max - min) / levels as f32;
                    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                    q.d.push(d);
                    q.m.push(min);
                    let v = |j: usize| (((b[j] - min) * id).round() as i32).clamp(0, levels) as u8;
                    push_packed(&mut q.qs, &std::array::from_fn(v), fmt);
                }
            }
            WeightFormat::Q6 => {
                q.qs.reserve(nb * 24);
                for b in w.chunks_exact(QK) {
                    let mut u = [0u8; QK];
                    for (h, half) in b.chunks_exact(16).enumerate() {
                        let amax = half.iter().fold(0f32, |a, x| a.max(x.abs()));
                        let d = amax / 31.0;
                        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                        q.d.push(d);
                        for (j, x) in half.iter().enumerate() {
                            u[16 * h + j] = ((x * id).round() as i32 + 32).clamp(0, 63) as u8;
                        }
                    }
                    push_packed(&mut q.qs, &u, WeightFormat::Q6);
                }
            }
        }
        q
    }

    /// The weights as `f32` (for re-quantizing and for reference computations).
    pub fn to_f32(&self) -> Vec<f32> {
        if !self.parts.is_empty() {
            return self.parts.iter().flat_map(QMatrix::to_f32).collect();
        }
        if self.fmt == WeightFormat::F32 {
            return self.f.clone();
        }
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for b in 0..self.rows * self.blocks() {
            out.extend_from_slice(&self.block_f32(b));
        }
        out
    }

    /// Block `b`'s integers as the kernels multiply them: unsigned for Q4_1 / Q5_1 (scale and
    /// minimum apply), signed for Q8_0 and Q6 (less 32).
    fn block_ints(&self, b: usize) -> [i32; QK] {
        let bb = self.fmt.block_bytes();
        let q = &self.qs[b * bb..(b + 1) * bb];
        std::array::from_fn(|e| {
            let nib = i32::from(if e < 16 { q[e] & 0xF } else { q[e - 16] >> 4 });
            match self.fmt {
                WeightFormat::Q8_0 => q[e] as i8 as i32,
                WeightFormat::Q4_1 => nib,
                WeightFormat::Q5_1 => nib | (((q[16 + e / 8] >> (e % 8)) & 1) << 4) as i32,
                WeightFormat::Q6 => (nib | (((q[16 + e % 8] >> (2 * (e / 8))) & 3) << 4) as i32) - 32,
                WeightFormat::F32 => 0,
            }
        })
    }

    fn block_f32(&self, b: usize) -> [f32; QK] {
        if self.fmt == WeightFormat::F32 {
            return std::array::from_fn(|e| self.f[b * QK + e]);
        }
        let q = self.block_ints(b);
        std::array::from_fn(|e| match self.fmt {
            WeightFormat::Q4_1 | WeightFormat::Q5_1 => q[e] as f32 * self.d.get(b) + self.m.get(b),
            WeightFormat::Q6 => q[e] as f32 * self.d.get(2 * b + e / 16),
            _ => q[e] as f32 * self.d.get(b),
        })
    }

    /// One row as `f32` (the embedding lookup).
    pub fn row_f32(&self, row: usize, out: &mut [f32]) {
        if !self.parts.is_empty() {
            let mut row = row;
            for p in &self.parts {
                if row < p.rows {
                    return p.row_f32(row, out);
                }
                row -= p.rows;
            }
        }
        let nb = self.blocks();
        for b in 0..nb {
            out[b * QK..(b + 1) * QK].copy_from_slice(&self.block_f32(row * nb + b));
        }
    }

    /// Stacks matrices with the same column count (fusing Q, K and V into one product). Parts in
    /// one format are merged; parts in different formats (a Q4_K_M file's Q4_K query beside its
    /// Q6_K value matrix) stay as they are, each multiplied by its own kernel, so no weight
    /// changes. [`QMatrix::format`] is then the first part's.
    pub fn concat(parts: Vec<QMatrix>) -> QMatrix {
        let cols = parts[0].cols;
        let parts: Vec<QMatrix> = parts.into_iter().flat_map(|p| if p.parts.is_empty() { vec![p] } else { p.parts }).collect();
        let mut out = QMatrix {
            rows: 0,
            cols,
            fmt: parts[0].fmt,
            d: Scales::half(0),
            m: Scales::half(0),
            qs: Vec::new(),
            f: Vec::new(),
            parts: Vec::new(),
        };
        if parts.iter().any(|p| p.fmt != parts[0].fmt) {
            out.rows = parts.iter().map(|p| p.rows).sum();
            out.parts = parts;
            return out;
        }
        for p in parts {
            out.rows += p.rows;
            out.d.append(p.d);
            out.m.append(p.m);
            out.qs.extend(p.qs);
            out.f.extend(p.f);
        }
        out
    }
}

/// Activations quantized to 8 bits per 32-element block, row by row.
#[derive(Debug, Default)]
pub struct QActs {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    /// `d * sum(q)` per block, for the Q4_1 minimum term.
    s: Vec<f32>,
    /// The same sums transposed, `[block][row]`, with 3 rows of padding, so a kernel can load
    /// the sums of 4 consecutive rows at once.
    st: Vec<f32>,
    /// The activations unquantized, kept only for F32 weights ([`QActs::for_matrix`]).
    raw: Vec<f32>,
}

impl QActs {
    /// The activations in the form `w` multiplies: kept as `f32` for F32 weights, quantized to
    /// int8 blocks otherwise (so neither path pays for the other).
    pub fn for_matrix(w: &QMatrix, x: &[f32], rows: usize, cols: usize) -> Self {
        let parts = w.each_part();
        let raw = if parts.iter().any(|p| p.fmt == WeightFormat::F32) { x[..rows * cols].to_vec() } else { Vec::new() };
        if parts.iter().all(|p| p.fmt == WeightFormat::F32) {
            return QActs { rows, cols, raw, ..QActs::default() };
        }
        QActs { raw, ..QActs::quantize(x, rows, cols) }
    }

    /// Quantizes `x` (`rows` × `cols`) to int8 blocks.
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Self {
        let nb = rows * cols / QK;
        let mut a = QActs { rows, cols, qs: vec![0; rows * cols], d: vec![0.0; nb], s: vec![0.0; nb], st: Vec::new(), raw: Vec::new() };
        #[cfg(target_arch = "x86_64")]
        let vector = matches!(Kernel::detect(), Kernel::Avx2);
        #[cfg(not(target_arch = "x86_64"))]
        let vector = false;
        for (b, (src, dst)) in x.chunks_exact(QK).zip(a.qs.chunks_exact_mut(QK)).enumerate() {
            let (d, sum) = if vector {
                #[cfg(target_arch = "x86_64")]
                {
                    avx2::quantize_block(src, dst)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            } else {
                quantize_block_scalar(src, dst)
            };
            a.d[b] = d;
            a.s[b] = d * sum as f32;
        }
        let bpr = cols / QK;
        let pad = rows + 3;
        a.st = vec![0.0; bpr * pad];
        for r in 0..rows {
            for b in 0..bpr {
                a.st[b * pad + r] = a.s[r * bpr + b];
            }
        }
        a
    }
}

fn quantize_block_scalar(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
    let amax = src.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, v) in dst.iter_mut().zip(src) {
        *q = (v * id).round_ties_even() as i8;
        sum += *q as i32;
    }
    (d, sum)
}

/// A pointer to the output that the parallel tasks share; each writes its own columns only.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (their own weight rows' columns) and the owner waits
// for all of them before reading.
#[allow(unsafe_code)]
unsafe impl Send for OutPtr {}
#[allow(unsafe_code)]
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `out[r][n] = sum_k x[r][k] * w[n][k]` for every activation row `r` and weight row `n`, in
/// parallel over weight rows on the current rayon pool.
pub fn matmul(w: &QMatrix, x: &QActs, out: &mut [f32]) {
    assert_eq!(w.cols, x.cols, "matmul: inner dimensions differ");
    assert_eq!(out.len(), x.rows * w.rows, "matmul: output size");
    let parts = w.each_part();
    for p in parts {
        if p.fmt == WeightFormat::F32 {
            assert_eq!(x.raw.len(), x.rows * x.cols, "matmul: F32 weights need QActs::for_matrix");
        } else {
            assert_eq!(x.qs.len(), x.rows * x.cols, "matmul: quantized weights need quantized activations");
        }
    }
    // One parallel loop over every part's row ranges: a fused Q/K/V of mixed formats is as
    // many tasks as one of a single format, not a fork-join per part.
    let per_task = (w.rows / (rayon::current_num_threads() * 8)).clamp(4, 256) & !1;
    let mut tasks = Vec::with_capacity(w.rows.div_ceil(per_task) + parts.len());
    let mut col0 = 0;
    for p in parts {
        tasks.extend((0..p.rows).step_by(per_task).map(|n0| (p, col0, n0, (n0 + per_task).min(p.rows))));
        col0 += p.rows;
    }
    let kernel = Kernel::detect();
    let ptr = OutPtr(out.as_mut_ptr());
    tasks.into_par_iter().for_each(|(p, col0, n0, n1)| rows_task(kernel, p, x, ptr, w.rows, col0, n0, n1));
}

/// Weight rows `n0..n1` of the single-format `w` against every activation row, into columns
/// `col0 + n0..col0 + n1` of an output whose rows are `stride` wide.
#[allow(clippy::too_many_arguments)]
fn rows_task(kernel: Kernel, w: &QMatrix, x: &QActs, out: OutPtr, stride: usize, col0: usize, n0: usize, n1: usize) {
    let rows = x.rows;
    // Packed formats are unpacked once per task, not once per tile of 4 activation rows, when
    // a batch has enough rows for that to pay.
    let widen = rows >= WIDEN_MIN_ROWS && matches!(w.fmt, WeightFormat::Q4_1 | WeightFormat::Q5_1 | WeightFormat::Q6);
    let mut strip = [0f32; 256 * 4];
    WIDE.with_borrow_mut(|buf| {
        let wide = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if widen => {
                avx2::widen_rows(w, n0, n1, buf);
                Some((&buf[..], n0))
            }
            _ => None,
        };
        // Rows of activations in groups of 4 keep the strip on the stack.
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(4);
            let strip = &mut strip[..(n1 - n0) * nr];
            kernel.rows(w, n0, x, r0, nr, strip, wide);
            for (j, col) in strip.chunks_exact(nr).enumerate() {
                for (r, v) in col.iter().enumerate() {
                    // SAFETY: (r0 + r, col0 + n0 + j) is inside `out` (`matmul` asserted the
                    // sizes) and only this task writes that column.
                    #[allow(unsafe_code)]
                    unsafe {
                        *out.get().add((r0 + r) * stride + col0 + n0 + j) = *v;
                    }
                }
            }
            r0 += nr;
        }
    });
}

/// Activation rows from which a matrix product unpacks its weights once per task (the unpacking
/// then costs a small share of the work, and decode steps keep reading packed weights).
const WIDEN_MIN_ROWS: usize = 16;

thread_local! {
    /// Each worker's unpacked weight rows (at most 256 rows of one matrix: 256 × 1536 bytes for
    /// SmolLM2's feed-forward down matrix).
    static WIDE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            return Kernel::Avx2;
        }
        Kernel::Scalar
    }

    /// Dots weight rows `n..n + out.len() / nr` with activation rows `r0..r0 + nr` (at most 4),
    /// writing `out[j * nr + r]`.
    /// `wide`: rows from `wide.1` already a byte a value (AVX2 only).
    #[allow(clippy::too_many_arguments)]
    fn rows(self, w: &QMatrix, n: usize, x: &QActs, r0: usize, nr: usize, out: &mut [f32], wide: Option<(&[u8], usize)>) {
        match self {
            Kernel::Scalar => {
                for (j, col) in out.chunks_exact_mut(nr).enumerate() {
                    for (r, o) in col.iter_mut().enumerate() {
                        *o = scalar_dot(w, n + j, x, r0 + r);
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::rows(w, n, x, r0, nr, out, wide),
        }
    }
}

fn scalar_dot(w: &QMatrix, n: usize, x: &QActs, r: usize) -> f32 {
    if w.fmt == WeightFormat::F32 {
        let (wr, xr) = (&w.f[n * w.cols..(n + 1) * w.cols], &x.raw[r * x.cols..(r + 1) * x.cols]);
        return wr.iter().zip(xr).map(|(a, b)| a * b).sum();
    }
    let nb = w.blocks();
    let mut acc = 0f32;
    for b in 0..nb {
        let wb = n * nb + b;
        let xb = r * nb + b;
        let xq = &x.qs[xb * QK..(xb + 1) * QK];
        let wq = w.block_ints(wb);
        let dot = |r: std::ops::Range<usize>| r.map(|e| wq[e] * i32::from(xq[e])).sum::<i32>() as f32;
        match w.fmt {
            WeightFormat::Q4_1 | WeightFormat::Q5_1 => acc += dot(0..QK) * w.d.get(wb) * x.d[xb] + w.m.get(wb) * x.s[xb],
            WeightFormat::Q6 => {
                acc += dot(0..16) * x.d[xb] * w.d.get(2 * wb) + dot(16..QK) * x.d[xb] * w.d.get(2 * wb + 1);
            }
            _ => acc += dot(0..QK) * w.d.get(wb) * x.d[xb],
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    //! The AVX2 block dot products, register-blocked: a tile of up to 2 weight rows by 4
    //! activation rows shares every load. Each output element goes through the same operations
    //! in the same order whatever the tile shape, so results do not depend on the batch.
    //! Every pointer offset below stays inside the slices whose lengths the callers fix
    //! (`rows * cols` elements, `cols` a multiple of 32).
    use super::{QActs, QMatrix, Scales, WeightFormat, QK};
    use std::arch::x86_64::*;

    /// Activation rows per tile.
    const TR: usize = 4;

    /// Fills `out[j * nr + i]` for weight rows `n + j` and activation rows `r0 + i` (`nr` <= 4).
    pub(super) fn rows(w: &QMatrix, n: usize, x: &QActs, r0: usize, nr: usize, out: &mut [f32], wide: Option<(&[u8], usize)>) {
        let nw = out.len() / nr;
        if w.fmt == WeightFormat::F32 {
            for j in 0..nw {
                // SAFETY: AVX2 and FMA were detected; rows and columns are in range.
                let res = unsafe { tile_f32(w, n + j, x, r0, nr) };
                out[j * nr..(j + 1) * nr].copy_from_slice(&res[..nr]);
            }
            return;
        }
        let mut j = 0;
        while j < nw {
            let two = j + 1 < nw;
            let half = matches!(w.d, Scales::Half(_));
            // SAFETY: `Kernel::Avx2` is only chosen after runtime detection of AVX2, FMA and F16C.
            let res: [[f32; TR]; 2] = unsafe {
                match (w.fmt, half) {
                    (WeightFormat::Q4_1, true) => tiles::<Q4_1, true>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::Q4_1, false) => tiles::<Q4_1, false>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::Q8_0, true) => tiles::<Q8_0, true>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::Q8_0, false) => tiles::<Q8_0, false>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::Q5_1, true) => tiles::<Q5_1, true>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::Q5_1, false) => tiles::<Q5_1, false>(w, n + j, x, r0, two, nr, wide),
                    // Q6's scales are products no f16 holds.
                    (WeightFormat::Q6, _) => tiles::<Q6, false>(w, n + j, x, r0, two, nr, wide),
                    (WeightFormat::F32, _) => unreachable!("handled above"),
                }
            };
            for (jj, row) in res.iter().enumerate().take(if two { 2 } else { 1 }) {
                out[(j + jj) * nr..(j + jj + 1) * nr].copy_from_slice(&row[..nr]);
            }
            j += if two { 2 } else { 1 };
        }
    }

    /// Quantizes one block of 32 to 8 bits (round to nearest even); returns the scale and the
    /// sum of the quantized values.
    pub(super) fn quantize_block(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
        assert!(src.len() == QK && dst.len() == QK);
        // SAFETY: AVX2 was detected by the caller's `Kernel::detect`; both slices hold 32 items.
        unsafe { quantize_block_avx2(src, dst) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn quantize_block_avx2(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
        let p = src.as_ptr();
        let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_andnot_ps(sign, v[0]);
        for x in &v[1..] {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *x));
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let amax = _mm_cvtss_f32(m4);
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let q: [__m256i; 4] = std::array::from_fn(|i| {
            _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
        });
        let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
        let sum = _mm_cvtsi128_si32(s4);
        // Pack to i8; the packs work within 128-bit lanes, so restore the order at the end.
        let a = _mm256_packs_epi32(q[0], q[1]);
        let b = _mm256_packs_epi32(q[2], q[3]);
        let ab = _mm256_packs_epi16(a, b);
        let ordered = _mm256_permutevar8x32_epi32(ab, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, ordered);
        (d, sum)
    }

    /// One F32 weight row against up to 4 activation rows, 8 lanes at a time.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // indices keep the register tile readable
    unsafe fn tile_f32(w: &QMatrix, n: usize, x: &QActs, r0: usize, nr: usize) -> [f32; TR] {
        let k = w.cols;
        let wp = w.f.as_ptr().add(n * k);
        let mut acc = [_mm256_setzero_ps(); TR];
        let mut c = 0;
        while c < k {
            let wv = _mm256_loadu_ps(wp.add(c));
            for i in 0..nr {
                let xv = _mm256_loadu_ps(x.raw.as_ptr().add((r0 + i) * k + c));
                acc[i] = _mm256_fmadd_ps(wv, xv, acc[i]);
            }
            c += 8;
        }
        let mut out = [0f32; TR];
        for i in 0..nr {
            out[i] = hsum(acc[i]);
        }
        out
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Held formats as the kernel's const parameter.
    const Q4_1: u8 = 0;
    const Q8_0: u8 = 1;
    const Q5_1: u8 = 2;
    const Q6: u8 = 3;

    /// The tile shape for one (or two) weight rows and `nr` activation rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tiles<const F: u8, const H: bool>(
        w: &QMatrix,
        n: usize,
        x: &QActs,
        r0: usize,
        two: bool,
        nr: usize,
        wide: Option<(&[u8], usize)>,
    ) -> [[f32; TR]; 2] {
        match wide {
            Some((bytes, n0)) => shape::<F, H, true>(w, n, x, r0, two, nr, (bytes.as_ptr(), n0)),
            None => shape::<F, H, false>(w, n, x, r0, two, nr, (std::ptr::null(), 0)),
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn shape<const F: u8, const H: bool, const U: bool>(
        w: &QMatrix,
        n: usize,
        x: &QActs,
        r0: usize,
        two: bool,
        nr: usize,
        wide: (*const u8, usize),
    ) -> [[f32; TR]; 2] {
        match (two, nr) {
            (true, 4) => tile::<F, H, U, 2, 4>(w, n, x, r0, wide),
            (true, 3) => tile::<F, H, U, 2, 3>(w, n, x, r0, wide),
            (true, 2) => tile::<F, H, U, 2, 2>(w, n, x, r0, wide),
            (true, _) => tile::<F, H, U, 2, 1>(w, n, x, r0, wide),
            (false, 4) => tile::<F, H, U, 1, 4>(w, n, x, r0, wide),
            (false, 3) => tile::<F, H, U, 1, 3>(w, n, x, r0, wide),
            (false, 2) => tile::<F, H, U, 1, 2>(w, n, x, r0, wide),
            (false, _) => tile::<F, H, U, 1, 1>(w, n, x, r0, wide),
        }
    }

    /// 32 bytes, byte `e` 0xFF where bit `e` of the plane at `p` is set (llama.cpp's
    /// `bytes_from_bits_32`).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn plane_bytes(p: *const u8) -> __m256i {
        let bits = _mm256_set1_epi32((p as *const i32).read_unaligned());
        let spread = _mm256_shuffle_epi8(bits, _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
        let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
        _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1))
    }

    /// Raw pointers to a matrix's scales: `f16` bits, or `f32`.
    fn scale_ptrs(s: &Scales) -> (*const u16, *const f32) {
        match s {
            Scales::Half(v) => (v.as_ptr(), std::ptr::null()),
            Scales::Full(v) => (std::ptr::null(), v.as_ptr()),
        }
    }

    /// Blocks whose `f16` scales are widened together before their dot products (8 per F16C
    /// instruction, instead of one conversion per block and weight row).
    const CHUNK: usize = 32;

    /// Widens `n` `f16` values from `src` into `dst` (exactly).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn widen(src: *const u16, dst: *mut f32, n: usize) {
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(dst.add(i), _mm256_cvtph_ps(_mm_loadu_si128(src.add(i) as *const __m128i)));
            i += 8;
        }
        while i < n {
            *dst.add(i) = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(*src.add(i)))));
            i += 1;
        }
    }

    /// Block `q`'s 32 values as the kernels multiply them, a byte each: unsigned for Q4_1 and
    /// Q5_1 (the minimum is added apart), signed for Q8_0 and Q6.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_values<const F: u8>(q: *const u8) -> __m256i {
        if F == Q8_0 {
            return _mm256_loadu_si256(q as *const __m256i);
        }
        let mask = _mm_set1_epi8(0x0F);
        let raw = _mm_loadu_si128(q as *const __m128i);
        let lo = _mm_and_si128(raw, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
        let mut v = _mm256_set_m128i(hi, lo);
        if F == Q5_1 {
            v = _mm256_or_si256(v, _mm256_and_si256(plane_bytes(q.add(16)), _mm256_set1_epi8(0x10)));
        }
        if F == Q6 {
            // 64-bit lane k takes values 8k..8k + 8: their pairs sit at bits 2k of each byte,
            // moved to bits 4-5.
            let pairs = _mm256_set1_epi64x((q.add(16) as *const i64).read_unaligned());
            let up = _mm256_srlv_epi64(_mm256_sllv_epi64(pairs, _mm256_setr_epi64x(4, 2, 0, 0)), _mm256_setr_epi64x(0, 0, 0, 2));
            let top = _mm256_and_si256(up, _mm256_set1_epi8(0x30));
            v = _mm256_sub_epi8(_mm256_or_si256(v, top), _mm256_set1_epi8(32));
        }
        v
    }

    /// Writes the values of weight rows `n0..n1` a byte each (32 bytes a block, row after row)
    /// into `dst`: a large batch then unpacks each block once, not once per tile of activation
    /// rows. The bytes are those the kernels would unpack, so results do not change.
    pub(super) fn widen_rows(w: &QMatrix, n0: usize, n1: usize, dst: &mut Vec<u8>) {
        let blocks = (n1 - n0) * (w.cols / QK);
        assert!(n1 <= w.rows && w.fmt != WeightFormat::F32);
        dst.resize(blocks * QK, 0);
        // SAFETY: `Kernel::Avx2` is only chosen after runtime detection of AVX2; blocks
        // `n0 * nb..` of `w` and `blocks` blocks of `dst` exist.
        unsafe {
            match w.fmt {
                WeightFormat::Q4_1 => widen_blocks::<Q4_1>(w, n0, blocks, dst),
                WeightFormat::Q5_1 => widen_blocks::<Q5_1>(w, n0, blocks, dst),
                WeightFormat::Q6 => widen_blocks::<Q6>(w, n0, blocks, dst),
                _ => widen_blocks::<Q8_0>(w, n0, blocks, dst),
            }
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn widen_blocks<const F: u8>(w: &QMatrix, n0: usize, blocks: usize, dst: &mut [u8]) {
        let (bpb, first) = (w.fmt.block_bytes(), n0 * (w.cols / QK));
        for b in 0..blocks {
            let v = block_values::<F>(w.qs.as_ptr().add((first + b) * bpb));
            _mm256_storeu_si256(dst.as_mut_ptr().add(b * QK) as *mut __m256i, v);
        }
    }

    /// `NW` weight rows from `n` by `NR` activation rows from `r0`; `F` the held format, `H`
    /// scales held as `f16` (else `f32`), `U` values read from `wide` (rows from `wide.1`, as
    /// [`widen_rows`] writes them) instead of unpacked here.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::needless_range_loop)] // indices keep the register tile readable
    unsafe fn tile<const F: u8, const H: bool, const U: bool, const NW: usize, const NR: usize>(
        w: &QMatrix,
        n: usize,
        x: &QActs,
        r0: usize,
        wide: (*const u8, usize),
    ) -> [[f32; TR]; 2] {
        let nb = w.cols / QK;
        let (dp, mp) = (scale_ptrs(&w.d), scale_ptrs(&w.m));
        let ones = _mm256_set1_epi16(1);
        let (wide, wide_n0) = wide;
        let mut acc = [[_mm256_setzero_ps(); NR]; NW];
        let mut mins = [_mm_setzero_ps(); NW];
        let pad = x.rows + 3;
        // Unsigned values with a minimum (Q4_1, Q5_1), or signed ones (Q8_0, Q6).
        let with_min = F == Q4_1 || F == Q5_1;
        // Small tiles have registers to spare for the minimums' terms in the main loop.
        let mins_inline = NW * NR <= 4;
        let bpb = w.fmt.block_bytes();
        // Written by `widen` before each read (only when `H`): no need to zero them per call.
        let mut dbuf = [[std::mem::MaybeUninit::<f32>::uninit(); CHUNK]; NW];
        let mut mbuf = [[std::mem::MaybeUninit::<f32>::uninit(); CHUNK]; NW];
        let mut c0 = 0;
        while c0 < nb {
            let cn = (nb - c0).min(CHUNK);
            if H {
                for j in 0..NW {
                    let base = (n + j) * nb + c0;
                    widen(dp.0.add(base), dbuf[j].as_mut_ptr().cast(), cn);
                    if with_min {
                        widen(mp.0.add(base), mbuf[j].as_mut_ptr().cast(), cn);
                    }
                }
            }
            for b in c0..c0 + cn {
                let mut wv = [_mm256_setzero_si256(); NW];
                let mut aw = [_mm256_setzero_si256(); NW];
                let mut dw = [_mm256_setzero_ps(); NW];
                for j in 0..NW {
                    let blk = (n + j) * nb + b;
                    wv[j] = if U {
                        _mm256_loadu_si256(wide.add(((n + j - wide_n0) * nb + b) * QK) as *const __m256i)
                    } else {
                        block_values::<F>(w.qs.as_ptr().add(blk * bpb))
                    };
                    if !with_min {
                        aw[j] = _mm256_sign_epi8(wv[j], wv[j]);
                    }
                    dw[j] = if F == Q6 {
                        // Lanes 0-3 sum values 0-15, lanes 4-7 values 16-31: one scale each.
                        let pair = _mm_castpd_ps(_mm_load_sd(dp.1.add(2 * blk) as *const f64));
                        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(pair), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1))
                    } else {
                        _mm256_set1_ps(if H { dbuf[j].get_unchecked(b - c0).assume_init() } else { *dp.1.add(blk) })
                    };
                    if with_min && mins_inline {
                        let st = _mm_loadu_ps(x.st.as_ptr().add(b * pad + r0));
                        let m = if H { mbuf[j].get_unchecked(b - c0).assume_init() } else { *mp.1.add(blk) };
                        mins[j] = _mm_fmadd_ps(_mm_set1_ps(m), st, mins[j]);
                    }
                }
                for i in 0..NR {
                    let xb = (r0 + i) * nb + b;
                    let xv = _mm256_loadu_si256(x.qs.as_ptr().add(xb * QK) as *const __m256i);
                    let dx = _mm256_set1_ps(*x.d.get_unchecked(xb));
                    for j in 0..NW {
                        let p16 = if with_min {
                            _mm256_maddubs_epi16(wv[j], xv)
                        } else {
                            _mm256_maddubs_epi16(aw[j], _mm256_sign_epi8(xv, wv[j]))
                        };
                        let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                        acc[j][i] = _mm256_fmadd_ps(_mm256_mul_ps(p, dx), dw[j], acc[j][i]);
                    }
                }
            }
            if with_min && !mins_inline {
                // The minimums' terms, block by block as inline, but outside the loop above,
                // whose 8 accumulators, weights and scales already fill the 16 vector registers.
                for j in 0..NW {
                    for b in c0..c0 + cn {
                        let st = _mm_loadu_ps(x.st.as_ptr().add(b * pad + r0));
                        let m = if H { mbuf[j].get_unchecked(b - c0).assume_init() } else { *mp.1.add((n + j) * nb + b) };
                        mins[j] = _mm_fmadd_ps(_mm_set1_ps(m), st, mins[j]);
                    }
                }
            }
            c0 += cn;
        }
        let mut out = [[0f32; TR]; 2];
        for j in 0..NW {
            let mut m = [0f32; 4];
            _mm_storeu_ps(m.as_mut_ptr(), mins[j]);
            for i in 0..NR {
                out[j][i] = hsum(acc[j][i]) + m[i];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn reference(w: &[f32], x: &[f32], rows: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                out[r * n + j] = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
            }
        }
        out
    }

    #[test]
    fn matmul_matches_f32_reference_in_both_formats() {
        let (n, k) = (37, 96);
        let w = rand_vec(n * k, 1);
        for fmt in [WeightFormat::Q8_0, WeightFormat::Q4_1, WeightFormat::Q5_1, WeightFormat::Q6, WeightFormat::F32] {
            let q = QMatrix::quantize(&w, n, k, fmt);
            let wd = q.to_f32();
            // Within half a step of the format's grid (|w| <= 1).
            let step = match fmt {
                WeightFormat::Q4_1 => 2.0 / 15.0,
                WeightFormat::Q5_1 => 2.0 / 31.0,
                WeightFormat::Q6 => 1.0 / 31.0,
                WeightFormat::Q8_0 => 1.0 / 127.0,
                WeightFormat::F32 => 0.0,
            };
            let err = w.iter().zip(&wd).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= step / 2.0 + 1e-6, "{fmt}: quantization error {err}");
            for rows in [1, 3, 4, 9, WIDEN_MIN_ROWS + 3] {
                let x = rand_vec(rows * k, 7 + rows as u64);
                let a = QActs::for_matrix(&q, &x, rows, k);
                let mut out = vec![0f32; rows * n];
                matmul(&q, &a, &mut out);
                let want = reference(&wd, &x, rows, n, k);
                for (o, e) in out.iter().zip(&want) {
                    // Activation quantization error only: |x| <= 1, 96 terms, step 1/127.
                    assert!((o - e).abs() < 0.05, "{fmt}: {o} vs {e}");
                }
                // The scalar kernel agrees with the vector one.
                for r in 0..rows {
                    for j in 0..n {
                        assert!((scalar_dot(&q, j, &a, r) - out[r * n + j]).abs() < 1e-3);
                    }
                }
            }
        }
    }

    /// A file's Q4_1 / Q8_0 blocks keep their `f16` scales (two bytes a block less than `f32`)
    /// and give the same bits as the same values held in `f32`.
    #[test]
    fn half_scales_give_the_same_bits_as_full_ones_in_less_memory() {
        let (n, k) = (37, 96);
        for (fmt, t) in [(WeightFormat::Q8_0, ggml::Q8_0), (WeightFormat::Q4_1, ggml::Q4_1), (WeightFormat::Q5_1, ggml::Q5_1)] {
            let file = QMatrix::quantize(&rand_vec(n * k, 5), n, k, fmt).to_ggml();
            let half = QMatrix::repack_ggml(t, &file, n, k).unwrap();
            assert!(matches!(half.d, Scales::Half(_)));
            let mut full = half.clone();
            full.d.widen_in_place();
            full.m.widen_in_place();
            let blocks = n * k / QK;
            let per_block = if fmt == WeightFormat::Q8_0 { 2 } else { 4 };
            assert_eq!(full.bytes() - half.bytes(), blocks * per_block, "{fmt}");
            assert_eq!(half.to_f32(), full.to_f32());
            for rows in [1, 2, 3, 4, 9] {
                let x = rand_vec(rows * k, 17 + rows as u64);
                let a = QActs::for_matrix(&half, &x, rows, k);
                let (mut oh, mut of) = (vec![0f32; rows * n], vec![0f32; rows * n]);
                matmul(&half, &a, &mut oh);
                matmul(&full, &a, &mut of);
                assert_eq!(oh, of, "{fmt}, {rows} rows");
                for r in 0..rows {
                    for j in 0..n {
                        assert_eq!(scalar_dot(&half, j, &a, r).to_bits(), scalar_dot(&full, j, &a, r).to_bits());
                    }
                }
            }
        }
        // Mixed parts widen to f32 when fused.
        let file = QMatrix::quantize(&rand_vec(4 * 64, 9), 4, 64, WeightFormat::Q8_0).to_ggml();
        let h = QMatrix::from_ggml(ggml::Q8_0, &file, 4, 64).unwrap();
        let f = QMatrix::quantize(&rand_vec(4 * 64, 10), 4, 64, WeightFormat::Q8_0);
        let both = QMatrix::concat(vec![h.clone(), f.clone()]);
        assert!(matches!(both.d, Scales::Full(_)));
        assert_eq!(both.to_f32(), [h.to_f32(), f.to_f32()].concat());
        assert!(matches!(QMatrix::concat(vec![h.clone(), h]).d, Scales::Half(_)));
    }

    /// Fusing matrices of different formats keeps each part's weights and kernel: the fused
    /// product equals the parts' own products bit for bit, column range by column range.
    #[test]
    fn mixed_formats_fuse_without_changing_a_weight() {
        let k = 64;
        let fmts = [WeightFormat::Q4_1, WeightFormat::Q6, WeightFormat::Q5_1, WeightFormat::F32, WeightFormat::Q4_1];
        let parts: Vec<QMatrix> =
            fmts.iter().enumerate().map(|(i, &f)| QMatrix::quantize(&rand_vec(5 * k, 40 + i as u64), 5, k, f)).collect();
        let fused = QMatrix::concat(parts.clone());
        assert_eq!((fused.rows, fused.format(), fused.parts.len()), (25, WeightFormat::Q4_1, 5));
        assert_eq!(fused.to_f32(), parts.iter().flat_map(QMatrix::to_f32).collect::<Vec<f32>>());
        assert_eq!(fused.bytes(), parts.iter().map(QMatrix::bytes).sum::<usize>());
        let mut row = vec![0f32; k];
        fused.row_f32(17, &mut row);
        assert_eq!(row, parts[3].to_f32()[2 * k..3 * k].to_vec());
        for rows in [1, 3, 6] {
            let x = rand_vec(rows * k, 50 + rows as u64);
            let mut out = vec![0f32; rows * 25];
            matmul(&fused, &QActs::for_matrix(&fused, &x, rows, k), &mut out);
            for (i, p) in parts.iter().enumerate() {
                let mut own = vec![0f32; rows * 5];
                matmul(p, &QActs::for_matrix(p, &x, rows, k), &mut own);
                for r in 0..rows {
                    assert_eq!(out[r * 25 + 5 * i..r * 25 + 5 * i + 5], own[r * 5..r * 5 + 5], "part {i}, {rows} rows");
                }
            }
        }
        // Same-format parts still merge into one matrix.
        assert!(QMatrix::concat(vec![parts[0].clone(), parts[4].clone()]).parts.is_empty());
    }

    /// A row's result does not depend on its batch, including batches large enough that the
    /// weights are unpacked once up front (`WIDEN_MIN_ROWS`) instead of in each tile.
    #[test]
    fn a_row_gives_the_same_bits_alone_and_in_a_batch() {
        let (n, k) = (16, 64);
        let rows = WIDEN_MIN_ROWS + 5;
        for fmt in [WeightFormat::Q4_1, WeightFormat::Q5_1, WeightFormat::Q6, WeightFormat::Q8_0] {
            let q = QMatrix::quantize(&rand_vec(n * k, 3), n, k, fmt);
            let x = rand_vec(rows * k, 11);
            let mut all = vec![0f32; rows * n];
            matmul(&q, &QActs::quantize(&x, rows, k), &mut all);
            for r in 0..rows {
                let mut one = vec![0f32; n];
                matmul(&q, &QActs::quantize(&x[r * k..(r + 1) * k], 1, k), &mut one);
                assert_eq!(one, all[r * n..(r + 1) * n].to_vec(), "{fmt}, row {r}");
            }
        }
    }

    #[test]
    fn ggml_blocks_round_trip() {
        // One Q8_0 block: scale 0.5 (f16 0x3800), values 0..32.
        let mut raw = vec![0x00, 0x38];
        raw.extend((0..32).map(|i| i as u8));
        let f = dequantize(ggml::Q8_0, &raw, 32).unwrap();
        assert_eq!(f[3], 1.5);
        let q = QMatrix::from_ggml(ggml::Q8_0, &raw, 1, 32).unwrap();
        assert_eq!(q.to_f32(), f);
        // One Q4_1 block: d = 1, m = -8 (f16 0xC800), nibbles 0..16 low and 15..0 high.
        let mut raw = vec![0x00, 0x3C, 0x00, 0xC8];
        raw.extend((0..16).map(|i| i as u8 | ((15 - i as u8) << 4)));
        let f = dequantize(ggml::Q4_1, &raw, 32).unwrap();
        assert_eq!((f[0], f[15], f[16], f[31]), (-8.0, 7.0, 7.0, -8.0));
        assert_eq!(QMatrix::from_ggml(ggml::Q4_1, &raw, 1, 32).unwrap().to_f32(), f);
        assert!(dequantize(14, &raw, 32).is_err());
    }
}
