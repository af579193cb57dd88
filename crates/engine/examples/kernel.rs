//! Times the quantized matrix product alone: GMAC/s for the layer shapes of SmolLM2-135M at
//! batch sizes 1 to 512 (from 16 rows packed formats are unpacked once per task), in each held
//! format. `cargo run --release -p inferbench-engine --example kernel [THREADS]`

use inferbench_engine::quant::{ggml, matmul, QActs, QMatrix, WeightFormat};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let shapes = [
        ("qkv", 960, 576, WeightFormat::Q4_1),
        // A Q4_K_M file's Q/K/V fuses Q5_0 (held as Q5_1) and Q8_0 parts: each multiplied alone.
        ("q", 576, 576, WeightFormat::Q5_1),
        ("k", 192, 576, WeightFormat::Q5_1),
        ("k", 192, 576, WeightFormat::Q8_0),
        ("gate_up", 3072, 576, WeightFormat::Q4_1),
        // A Q4_K_M file's narrow matrices are Q5_0, held as Q5_1.
        ("gate_up", 3072, 576, WeightFormat::Q5_1),
        ("gate_up", 3072, 576, WeightFormat::Q8_0),
        ("down", 576, 1536, WeightFormat::Q4_1),
        // The held forms of a K-quant file's feed-forward down matrix (Q5_K, Q6_K).
        ("down", 576, 1536, WeightFormat::Q5_1),
        ("down", 576, 1536, WeightFormat::Q6),
        ("down", 576, 1536, WeightFormat::Q8_0),
        ("output", 49152, 576, WeightFormat::Q8_0),
    ];
    for (name, n, k, fmt) in shapes {
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let q = QMatrix::quantize(&w, n, k, fmt);
        // Through the file's block bytes, so the scales are held in f16 as a loaded model's are.
        let t = match fmt {
            WeightFormat::Q4_1 => Some(ggml::Q4_1),
            WeightFormat::Q5_1 => Some(ggml::Q5_1),
            WeightFormat::Q8_0 => Some(ggml::Q8_0),
            _ => None,
        };
        let q = t.map_or(q.clone(), |t| QMatrix::repack_ggml(t, &q.to_ggml(), n, k).unwrap());
        for rows in [1usize, 4, 8, 16, 64, 512] {
            let x: Vec<f32> = (0..rows * k).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
            let a = QActs::for_matrix(&q, &x, rows, k);
            let mut out = vec![0f32; rows * n];
            let reps = (2_000_000_000 / (n * k * rows)).max(3);
            matmul(&q, &a, &mut out);
            let t = Instant::now();
            for _ in 0..reps {
                matmul(&q, &a, &mut out);
            }
            let dt = t.elapsed().as_secs_f64() / reps as f64;
            println!("{name:8} {fmt} {n:6}x{k:<5} rows {rows:3}: {:8.1} us  {:6.1} GMAC/s", dt * 1e6, (n * k * rows) as f64 / dt / 1e9);
        }
    }
}
