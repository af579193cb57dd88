//! Our GGUF tokenizers against llama.cpp's own tokenizer test vectors: the vocabulary-only GGUF
//! files of real models that llama.cpp ships (`models/ggml-vocab-*.gguf`) with the texts
//! (`.inp`) and the token ids llama.cpp's tests expect (`.out`). `scripts/check-tokenizers-llama`
//! fetches them (from the llama.cpp sources inside llama-cpp-python's source package) and runs
//! this with `INFERBENCH_LLAMA_VOCABS` set; without it the test says it is skipped.

use inferbench_data::Tokenizer;
use std::path::Path;

/// The vocabularies whose tokenizers we claim: byte-level BPE (GPT-2, Llama 3, Qwen2 and Qwen3,
/// MPT, Command-R, Refact) and SentencePiece (Llama 2, Phi-3). The rest are tried and reported.
const CLAIMED: [&str; 8] = ["gpt-2", "llama-bpe", "qwen2", "mpt", "command-r", "refact", "llama-spm", "phi-3"];

const SEP: &str = "\n__ggml_vocab_test__\n";

fn cases(dir: &Path, name: &str) -> Vec<(String, Vec<u32>)> {
    let base = dir.join(format!("ggml-vocab-{name}.gguf"));
    let inp = std::fs::read_to_string(base.with_extension("gguf.inp")).unwrap();
    let out = std::fs::read_to_string(base.with_extension("gguf.out")).unwrap();
    // As llama.cpp's test-tokenizer-0 reads them: texts end at each separator.
    let inp = inp.strip_suffix(SEP).unwrap_or(&inp);
    let texts: Vec<&str> = inp.split(SEP).collect();
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{name}: {} texts, {} expected encodings", texts.len(), ids.len());
    texts.into_iter().map(str::to_owned).zip(ids).collect()
}

#[test]
fn gguf_tokenizers_match_llama_cpp_on_its_test_vectors() {
    let Some(dir) = std::env::var_os("INFERBENCH_LLAMA_VOCABS") else {
        eprintln!("skipped: set INFERBENCH_LLAMA_VOCABS (scripts/check-tokenizers-llama does)");
        return;
    };
    let dir = Path::new(&dir);
    let mut failed = Vec::new();
    // Every vocabulary with test vectors is tried and reported; the claimed ones must match.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("ggml-vocab-")?.strip_suffix(".gguf.inp").map(str::to_owned))
        .collect();
    names.sort();
    for c in CLAIMED {
        assert!(names.iter().any(|n| n == c), "{c}: no test vectors in {}", dir.display());
    }
    for name in &names {
        let claimed = CLAIMED.contains(&name.as_str());
        let tok = match Tokenizer::by_name(dir.join(format!("ggml-vocab-{name}.gguf")).to_str().unwrap()) {
            Ok(t) => t,
            Err(e) if !claimed => {
                eprintln!("{name}: not supported ({e})");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let cases = cases(dir, name);
        let mut same = 0;
        for (text, want) in &cases {
            let got = tok.encode(text);
            if &got == want {
                same += 1;
            } else if claimed {
                eprintln!("{name}: {text:?}\n  llama.cpp {want:?}\n  ours      {got:?}");
            }
        }
        let note = if claimed { "" } else { " (not claimed)" };
        eprintln!("{name}: {same} of {} texts tokenized as llama.cpp does{note}", cases.len());
        if claimed && same != cases.len() {
            failed.push(name.clone());
        }
    }
    assert!(failed.is_empty(), "differs from llama.cpp: {failed:?}");
}
