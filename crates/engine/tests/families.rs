//! The model families (llama, Qwen2, Qwen3, GPT-2) on tiny random files the tests write, against
//! llama.cpp's own logits for the same files (`fixtures/families/<arch>.json`, made by
//! `scripts/gen-family-reference` through llama-cpp-python): every position of a 10-token
//! sequence, so causal attention, the rotary layout, biases, norms and learned positions all show.

use inferbench_engine::llama::{Family, Model};
use inferbench_engine::quant::{ggml, WeightFormat};
use inferbench_engine::testing::{write_tiny_model, TinySpec};
use inferbench_engine::{KvCache, LoadOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The tiny model of each family that the reference was made from.
fn spec(arch: &str) -> TinySpec {
    let base = TinySpec { arch: arch.into(), matrix_type: ggml::F32, embd_type: ggml::F32, seed: 11, ..TinySpec::default() };
    match arch {
        "llama" => base,
        "qwen2" => TinySpec { rope_base: 1_000_000.0, ..base },
        // Heads wider than embd / heads, as Qwen3's are (0.6B: 1,024 wide, 16 heads of 128).
        "qwen3" => TinySpec { rope_base: 1_000_000.0, head_dim: Some(32), ..base },
        // No grouped-query attention in GPT-2; 64 learned positions.
        "gpt2" => TinySpec { kv_heads: 4, ctx: 64, ..base },
        _ => unreachable!("{arch}"),
    }
}

const FAMILIES: [&str; 4] = ["llama", "qwen2", "qwen3", "gpt2"];

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families").join(format!("{arch}.json"))
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the four files for the reference script (`scripts/gen-family-reference` runs this
/// with `INFERBENCH_FAMILY_DIR` set).
#[test]
#[ignore = "run by scripts/gen-family-reference"]
fn write_family_models() {
    let dir = PathBuf::from(std::env::var("INFERBENCH_FAMILY_DIR").expect("INFERBENCH_FAMILY_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in FAMILIES {
        write_tiny_model(&dir.join(format!("{arch}.gguf")), &spec(arch)).unwrap();
    }
    inferbench_engine::testing::write_spm_vocab(&dir.join("spm.gguf")).unwrap();
    write_tiny_model(&dir.join("q4k-source.gguf"), &q4k_source()).unwrap();
    std::fs::write(dir.join("spm-corpus.json"), serde_json::to_string(&SPM_CORPUS).unwrap()).unwrap();
}

/// The texts the SentencePiece tokenizer is checked on: spaces (leading, doubled, runs),
/// Unicode in and out of the vocabulary (byte fallback), digits, punctuation, tabs and newlines.
pub const SPM_CORPUS: [&str; 10] = [
    "the cat sat on the world",
    "The cat, the hat!",
    "  two leading spaces and    four inside",
    "naïve café 123 4567 12",
    "emoji 🙂 and 日本語 fall back to bytes",
    "tabs\tand\nnew lines",
    "thethe catcat atat",
    "",
    " ",
    "Zebra? xylophone; QUIZ 0000",
];

#[test]
fn the_sentencepiece_tokenizer_matches_llama_cpp_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spm.gguf");
    inferbench_engine::testing::write_spm_vocab(&path).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("spm")).unwrap()).unwrap();
    assert_eq!(reference["sha256"].as_str().unwrap(), sha256(&path), "spm: the vocabulary changed; run scripts/gen-family-reference");
    let tok = inferbench_data::tokenizer::Tokenizer::by_name(path.to_str().unwrap()).unwrap();
    for (text, want) in SPM_CORPUS.iter().zip(reference["ids"].as_array().unwrap()) {
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = tok.encode(text);
        assert_eq!(got, want, "{text:?}");
        // And back: the text again (llama.cpp drops the leading space it added).
        assert_eq!(tok.decode(&got).unwrap(), *text, "{text:?}");
    }
}

#[test]
fn each_family_matches_llama_cpp_logits_at_every_position() {
    let dir = tempfile::tempdir().unwrap();
    for arch in FAMILIES {
        let path = dir.path().join(format!("{arch}.gguf"));
        write_tiny_model(&path, &spec(arch)).unwrap();
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture(arch)).unwrap()).unwrap();
        assert_eq!(
            reference["sha256"].as_str().unwrap(),
            sha256(&path),
            "{arch}: the tiny file is no longer the one the reference was made from; run scripts/gen-family-reference"
        );
        let tokens: Vec<u32> = reference["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
        let want: Vec<Vec<f32>> = reference["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
            .collect();
        let model = Model::load(&path, &LoadOptions { requantize: Some(WeightFormat::F32.into()) }).unwrap();
        let mut cache = KvCache::new(model.cfg.n_layer, model.cfg.kv_dim(), tokens.len());
        let got = model.forward_all(&tokens, 0, &mut cache).unwrap();
        assert_eq!(got.len(), want.len(), "{arch}");
        let mut worst = 0f32;
        for (pos, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len(), "{arch}: vocabulary");
            let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(argmax(g), argmax(w), "{arch}: position {pos}: the top token differs from llama.cpp's");
            worst = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
        }
        let spread = want.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("{arch}: max |ours - llama.cpp| = {worst:.2e} over logits up to {spread:.2}");
        assert!(worst < LOGIT_TOLERANCE, "{arch}: logits differ from llama.cpp's by up to {worst} (tolerance {LOGIT_TOLERANCE})");
    }
}

/// Largest difference allowed between our logits and llama.cpp's on the same F32 file. Both keep
/// the KV cache in f16; the rest is f32 rounding in a different order, and ggml rounds GELU's input
/// and output to f16 (its lookup table). Measured: 1.3e-3 to 2.1e-3; a wrong rotary layout or a
/// missing bias or norm gives 0.1 or more.
const LOGIT_TOLERANCE: f32 = 4e-3;

/// The dimensions each family's loader derives, checked by hand against the specs above.
#[test]
fn the_loaders_derive_each_familys_shapes() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, family, head_dim, q_dim, kv_dim, neox_base) in [
        ("llama", Family::Llama, 16, 64, 32, 10_000.0),
        ("qwen2", Family::Qwen2, 16, 64, 32, 1_000_000.0),
        ("qwen3", Family::Qwen3, 32, 128, 64, 1_000_000.0),
        ("gpt2", Family::Gpt2, 16, 64, 64, 10_000.0),
    ] {
        let path = dir.path().join(format!("{arch}.gguf"));
        write_tiny_model(&path, &spec(arch)).unwrap();
        let m = Model::load(&path, &LoadOptions::default()).unwrap();
        let c = &m.cfg;
        assert_eq!((c.family, c.head_dim(), c.q_dim(), c.kv_dim(), c.rope_base), (family, head_dim, q_dim, kv_dim, neox_base), "{arch}");
        // Keys and values, 2 layers, f16.
        assert_eq!(c.kv_bytes_per_token(), 2 * 2 * kv_dim * 2, "{arch}");
    }
}

#[test]
fn gpt2_refuses_positions_past_its_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpt2.gguf");
    write_tiny_model(&path, &spec("gpt2")).unwrap();
    let m = Model::load(&path, &LoadOptions::default()).unwrap();
    let tokens = vec![5u32; 65];
    let mut cache = KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), 65);
    let err = m.forward_all(&tokens, 0, &mut cache).unwrap_err().to_string();
    assert!(err.contains("position 64 is past the 64 positions"), "{err}");
}

#[test]
fn an_unknown_architecture_names_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    write_tiny_model(&path, &TinySpec { arch: "falcon".into(), ..TinySpec::default() }).unwrap();
    let err = Model::load(&path, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("architecture 'falcon' is not supported") && err.contains("qwen3") && err.contains("gpt2"), "{err}");
}

/// Each family runs in the engine with the tokenizer its file embeds: concurrent requests with
/// chunked prefill return exactly what they return alone (the batch-invariance promise).
#[test]
fn each_family_serves_batched_requests_as_it_serves_them_alone() {
    use inferbench_engine::{load, Engine, EngineConfig, Event, Request};
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    for arch in ["qwen2", "qwen3", "gpt2"] {
        let path = dir.path().join(format!("{arch}.gguf"));
        write_tiny_model(&path, &TinySpec { matrix_type: ggml::Q4_1, embd_type: ggml::Q8_0, ..spec(arch) }).unwrap();
        let l = load(&path, &LoadOptions::default()).unwrap();
        let e = Engine::start(
            l.model.clone(),
            l.tokenizer.clone(),
            l.eos.clone(),
            EngineConfig { max_num_seqs: 4, max_num_batched_tokens: 8, ..Default::default() },
        )
        .unwrap();
        let prompt = |k: usize| l.tokenizer.encode(["the model", "serve fast the cache", "a queue of light and water"][k]);
        let run = |ks: &[usize]| -> Vec<Vec<u32>> {
            let rxs: Vec<_> = ks
                .iter()
                .map(|&k| {
                    let (tx, rx) = mpsc::channel();
                    let r = Request { prompt: prompt(k), max_tokens: 10, ignore_eos: true, ..Default::default() };
                    e.submit(r, Box::new(tx)).unwrap();
                    rx
                })
                .collect();
            rxs.into_iter()
                .map(|rx| {
                    let mut ids = Vec::new();
                    while let Event::Token { id, .. } = rx.recv().unwrap() {
                        ids.push(id);
                    }
                    ids
                })
                .collect()
        };
        let alone: Vec<Vec<u32>> = (0..3).map(|k| run(&[k]).remove(0)).collect();
        assert!(alone.iter().all(|ids| ids.len() == 10), "{arch}: {alone:?}");
        assert_eq!(run(&[0, 1, 2]), alone, "{arch}");
    }
}

/// An F32 llama 256 wide (K-quant blocks need rows of 256), for the Q4_K quantizer's reference.
fn q4k_source() -> TinySpec {
    TinySpec {
        layers: 1,
        embd: 256,
        heads: 4,
        kv_heads: 1,
        ff: 256,
        matrix_type: ggml::F32,
        embd_type: ggml::F32,
        seed: 5,
        ..TinySpec::default()
    }
}

/// Our Q4_K quantizer writes llama.cpp's bytes: the reference is `llama_model_quantize` (Q4_K_S)
/// of the same F32 file, one of its Q4_K tensors byte for byte.
#[test]
fn the_q4_k_quantizer_writes_llama_cpps_bytes() {
    use inferbench_data::gguf::GgufMetadata;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4k-source.gguf");
    write_tiny_model(&path, &q4k_source()).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("q4_k")).unwrap()).unwrap();
    assert_eq!(reference["sha256"].as_str().unwrap(), sha256(&path), "the source file changed; run scripts/gen-family-reference");
    let md = GgufMetadata::read(&path).unwrap();
    let name = reference["tensor"].as_str().unwrap();
    let t = md.tensor(name).unwrap();
    assert_eq!(t.ggml_type, ggml::F32);
    let mut raw = vec![0u8; t.elements() as usize * 4];
    std::fs::File::open(&path).unwrap().read_exact_at(&mut raw, md.data_offset + t.offset).unwrap();
    let values: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let ours: String = inferbench_engine::quant::quantize_q4_k(&values).iter().map(|b| format!("{b:02x}")).collect();
    let want = reference["hex"].as_str().unwrap();
    assert_eq!(ours.len(), want.len());
    let first = ours.as_bytes().iter().zip(want.as_bytes()).position(|(a, b)| a != b);
    assert!(first.is_none(), "{name}: first difference in block {} (byte {})", first.unwrap() / 288, first.unwrap() / 2 % 144);
}

/// `--quantization q4_k`: every 256-wide matrix becomes llama.cpp's Q4_K, held as Q4_1, and the
/// model still computes what its F32 weights do, within 4-bit rounding.
#[test]
fn q4_k_requantization_holds_q4_1_and_stays_close_to_f32() {
    use inferbench_engine::Quantization;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4k-source.gguf");
    write_tiny_model(&path, &q4k_source()).unwrap();
    let exact = Model::load(&path, &LoadOptions { requantize: Some(WeightFormat::F32.into()) }).unwrap();
    let q4k = Model::load(&path, &LoadOptions { requantize: Some(Quantization::Q4K) }).unwrap();
    assert_eq!(q4k.weight_format(), WeightFormat::Q4_1);
    // 4.5 bits a weight plus this engine's f32 scales: well under the F32 model's bytes.
    assert!(q4k.weight_bytes * 4 < exact.weight_bytes, "{} vs {}", q4k.weight_bytes, exact.weight_bytes);
    let tokens = [256u32, 72, 101, 108, 258];
    let logits = |m: &Model| {
        let mut cache = KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), tokens.len());
        m.forward_all(&tokens, 0, &mut cache).unwrap().pop().unwrap()
    };
    let (a, b) = (logits(&exact), logits(&q4k));
    let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let cos = dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt());
    assert!(cos > 0.99, "cosine {cos}");
}
