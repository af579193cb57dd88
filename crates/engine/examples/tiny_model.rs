//! Writes the tests' tiny random GGUF model to the path given, for checks on machines that cannot
//! download the default model (`scripts/check-gpu` on the lent GPU machine, which has no network).
fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "tiny.gguf".into());
    inferbench_engine::testing::write_tiny_model(std::path::Path::new(&path), &inferbench_engine::testing::TinySpec::default())?;
    println!("wrote {path}");
    Ok(())
}
