//! Reading GGUF metadata: enough to build the tokenizer a model file embeds (its vocabulary,
//! merges, special tokens and chat template) without loading any tensor.

use crate::DataError;
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Any integer type, widened.
    Int(i64),
    /// Unsigned 64-bit integers that do not fit `i64`.
    U64(u64),
    /// `f32` / `f64`, widened.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            GgufValue::Int(i) => Some(*i),
            GgufValue::U64(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A GGUF file's header facts and key–value metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufMetadata {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors the file holds.
    pub tensor_count: u64,
    /// The metadata.
    pub kv: BTreeMap<String, GgufValue>,
    /// Where each tensor lies, so a model loader can read just the tensors it needs.
    pub tensors: Vec<TensorInfo>,
    /// Byte offset of the tensor data section (tensor offsets are relative to it).
    pub data_offset: u64,
}

/// One tensor's name, shape, element type and place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as GGUF stores them.
    pub dims: Vec<u64>,
    /// The ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, ...).
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        // Saturating: a corrupt directory must not overflow (the loader then finds the size
        // impossible for the file).
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// Limits that keep a corrupt file from asking for absurd allocations.
const MAX_STRING: u64 = 64 << 20;
const MAX_ARRAY: u64 = 16 << 20;

/// Arrays nest at most this deep (real files use one level).
const MAX_DEPTH: u32 = 4;

struct Reader<R> {
    r: R,
    path: String,
    pos: u64,
    /// The file's length: nothing read from it can be larger than what is left of it.
    len: u64,
    depth: u32,
}

impl<R: Read> Reader<R> {
    fn err(&self, m: impl Into<String>) -> DataError {
        DataError::Gguf { path: self.path.clone(), message: m.into() }
    }
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], DataError> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| self.err(format!("truncated metadata ({e})")))?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, DataError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, DataError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String, DataError> {
        let n = self.u64()?;
        if n > MAX_STRING || n > self.len.saturating_sub(self.pos) {
            return Err(self.err(format!("a string of {n} bytes runs past the end of the file; it is corrupt or truncated")));
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b).map_err(|e| self.err(format!("truncated string ({e})")))?;
        self.pos += n;
        String::from_utf8(b).map_err(|_| self.err("a metadata string is not UTF-8"))
    }
    fn value(&mut self, ty: u32) -> Result<GgufValue, DataError> {
        Ok(match ty {
            0 => GgufValue::Int(self.bytes::<1>()?[0] as i64),
            1 => GgufValue::Int(self.bytes::<1>()?[0] as i8 as i64),
            2 => GgufValue::Int(u16::from_le_bytes(self.bytes()?) as i64),
            3 => GgufValue::Int(i16::from_le_bytes(self.bytes()?) as i64),
            4 => GgufValue::Int(self.u32()? as i64),
            5 => GgufValue::Int(i32::from_le_bytes(self.bytes()?) as i64),
            6 => GgufValue::Float(f32::from_le_bytes(self.bytes()?) as f64),
            7 => GgufValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => GgufValue::Str(self.string()?),
            9 => {
                let inner = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY || n > self.len.saturating_sub(self.pos) {
                    return Err(self.err(format!("an array of {n} items is implausible; the file is corrupt")));
                }
                if self.depth >= MAX_DEPTH {
                    return Err(self.err("arrays nested too deep; the file is corrupt"));
                }
                self.depth += 1;
                // Every item takes at least a byte of the file, so this never reserves more
                // than the file holds.
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(inner)?);
                }
                self.depth -= 1;
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.bytes()?)),
            t => return Err(self.err(format!("unknown metadata value type {t}"))),
        })
    }
}

impl GgufMetadata {
    /// Reads the header, metadata and tensor directory of a GGUF file (tensor data is not read).
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let f = std::fs::File::open(path).map_err(|e| DataError::Io { path: path.to_owned(), message: e.to_string() })?;
        let file_len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        let mut r = Reader { r: BufReader::new(f), path: path.display().to_string(), pos: 0, len: file_len, depth: 0 };
        if &r.bytes::<4>()? != b"GGUF" {
            return Err(r.err("not a GGUF file (bad magic)"));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.err(format!("GGUF version {version} is not supported (2 and 3 are)")));
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;
        let mut kv = BTreeMap::new();
        for _ in 0..kv_count {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty)?;
            kv.insert(key, v);
        }
        if tensor_count > MAX_ARRAY || tensor_count > r.len.saturating_sub(r.pos) {
            return Err(r.err(format!("{tensor_count} tensors is implausible; the file is corrupt")));
        }
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 8 {
                return Err(r.err(format!("tensor '{name}' has {n_dims} dimensions; the file is corrupt")));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let align = kv.get("general.alignment").and_then(GgufValue::as_i64).filter(|a| *a > 0).unwrap_or(32) as u64;
        let data_offset = r.pos.div_ceil(align) * align;
        if tensor_count > 0 && data_offset > file_len {
            return Err(r.err("the file ends before its tensor data; it is truncated"));
        }
        Ok(Self { version, tensor_count, kv, tensors, data_offset })
    }

    /// A tensor's directory entry by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.kv.get(key).and_then(GgufValue::as_str)
    }
}

/// Writes GGUF metadata (no tensors), for tests that need a tokenizer file.
pub fn write_metadata(path: &Path, kv: &[(&str, GgufValue)]) -> std::io::Result<()> {
    write_gguf(path, kv, &[])
}

/// A tensor to write: name, dims (innermost first), ggml type id and raw data.
pub type TensorData<'a> = (&'a str, Vec<u64>, u32, Vec<u8>);

/// Writes a GGUF file with metadata and tensors, for tests that need a model file.
pub fn write_gguf(path: &Path, kv: &[(&str, GgufValue)], tensors: &[TensorData<'_>]) -> std::io::Result<()> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    // Types as llama.cpp's own writer chooses them, so that llama.cpp reads these files: scalar
    // integers as u32 (i64 when they do not fit), integer arrays as i32, reals as f32.
    fn ty(v: &GgufValue, in_array: bool) -> u32 {
        match v {
            GgufValue::Int(i) if !in_array && u32::try_from(*i).is_ok() => 4,
            GgufValue::Int(i) if in_array && i32::try_from(*i).is_ok() => 5,
            GgufValue::Int(_) => 11,
            GgufValue::U64(_) => 10,
            GgufValue::Float(_) => 6,
            GgufValue::Bool(_) => 7,
            GgufValue::Str(_) => 8,
            GgufValue::Array(_) => 9,
        }
    }
    fn put(out: &mut Vec<u8>, v: &GgufValue, t: u32) {
        match v {
            GgufValue::Int(i) if t == 4 => out.extend_from_slice(&(*i as u32).to_le_bytes()),
            GgufValue::Int(i) if t == 5 => out.extend_from_slice(&(*i as i32).to_le_bytes()),
            GgufValue::Int(i) => out.extend_from_slice(&i.to_le_bytes()),
            GgufValue::U64(u) => out.extend_from_slice(&u.to_le_bytes()),
            GgufValue::Float(f) => out.extend_from_slice(&(*f as f32).to_le_bytes()),
            GgufValue::Bool(b) => out.push(*b as u8),
            GgufValue::Str(s) => put_str(out, s),
            GgufValue::Array(a) => {
                // One element type for the whole array: i64 if any integer needs it.
                let t = match a.iter().any(|x| ty(x, true) == 11) {
                    true => 11,
                    false => a.first().map_or(8, |x| ty(x, true)),
                };
                out.extend_from_slice(&t.to_le_bytes());
                out.extend_from_slice(&(a.len() as u64).to_le_bytes());
                a.iter().for_each(|x| put(out, x, t));
            }
        }
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut out, k);
        let t = ty(v, false);
        out.extend_from_slice(&t.to_le_bytes());
        put(&mut out, v, t);
    }
    let mut offset = 0u64;
    for (name, dims, ggml_type, data) in tensors {
        put_str(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        out.extend_from_slice(&ggml_type.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += (data.len() as u64).div_ceil(32) * 32;
    }
    if !tensors.is_empty() {
        out.resize(out.len().div_ceil(32) * 32, 0);
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(32) * 32, 0);
        }
    }
    std::fs::write(path, out)
}
