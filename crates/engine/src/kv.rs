//! A sequence's KV cache: keys and values of every layer for a fixed number of positions,
//! reserved when the sequence is admitted and written in place as it grows. Held as IEEE half
//! floats (as llama.cpp's default `f16` cache): half the memory and half the bytes attention
//! reads per step, which at long context is what attention's time goes to.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

/// Keys and values of one sequence, `[layer][position][kv_dim]` each, as `f16` bits.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<u16>,
    v: Vec<u16>,
    layers: usize,
    kv_dim: usize,
    cap: usize,
    len: usize,
}

impl KvCache {
    /// Reserves room for `cap` positions. The zeroed allocation is lazily mapped by the OS, so
    /// memory is only touched as positions are written.
    pub fn new(layers: usize, kv_dim: usize, cap: usize) -> Self {
        Self { k: vec![0; layers * cap * kv_dim], v: vec![0; layers * cap * kv_dim], layers, kv_dim, cap, len: 0 }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions reserved.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes reserved.
    pub fn reserved_bytes(&self) -> usize {
        2 * self.layers * self.cap * self.kv_dim * 2
    }

    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = (layer * self.cap + pos) * self.kv_dim;
        // half's slice conversion uses F16C where the CPU has it.
        self.k[at..at + self.kv_dim].reinterpret_cast_mut::<f16>().convert_from_f32_slice(k);
        self.v[at..at + self.kv_dim].reinterpret_cast_mut::<f16>().convert_from_f32_slice(v);
    }

    /// Forgets positions from `len` on (rejected speculative tokens); they are overwritten later.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// One head's key at one position, as `f16` bits.
    pub(crate) fn key(&self, layer: usize, pos: usize, head: usize, hd: usize) -> &[u16] {
        let at = (layer * self.cap + pos) * self.kv_dim + head * hd;
        &self.k[at..at + hd]
    }

    /// One head's value at one position, as `f16` bits.
    pub(crate) fn value(&self, layer: usize, pos: usize, head: usize, hd: usize) -> &[u16] {
        let at = (layer * self.cap + pos) * self.kv_dim + head * hd;
        &self.v[at..at + hd]
    }
}
