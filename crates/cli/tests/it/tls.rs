//! HTTPS end to end: `inferbench serve --sim` with a certificate the test makes, and `run`
//! against it straight, with `--ca-cert`, with `--insecure`, and through a CONNECT proxy named by
//! `HTTPS_PROXY`.

use crate::harness::{run, run_cmd, Sim};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A self-signed certificate for `localhost` and `model.test`, written as PEM files.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "model.test".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

/// A CONNECT proxy on 127.0.0.1 that splices every tunnel to 127.0.0.1:`upstream` and notes
/// each request line.
fn connect_proxy(upstream: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let seen = seen2.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.lock().unwrap().push(line.trim_end().to_owned());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut client = client;
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
                let (mut up_r, mut up_w) = (server.try_clone().unwrap(), server);
                let mut down_w = client.try_clone().unwrap();
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                });
                // Bytes the reader buffered past the head belong to the tunnel.
                let buffered = reader.buffer().to_vec();
                let _ = up_w.write_all(&buffered);
                let mut rest = reader.into_inner();
                let mut buf = [0u8; 16384];
                while let Ok(n) = rest.read(&mut buf) {
                    if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = up_w.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
            });
        }
    });
    (url, seen)
}

const FLAGS: [&str; 6] = ["--num-prompts", "8", "--random-input-len", "16", "--random-output-len", "4"];

#[test]
fn https_runs_need_the_certificate_trusted_or_insecure() {
    let _machine = crate::harness::machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--ssl-certfile", &cert, "--ssl-keyfile", &key]);
    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
    let url = sim.url.replace("127.0.0.1", "localhost");

    let untrusted = run(&url, &FLAGS);
    let err = untrusted.stderr();
    assert_eq!(untrusted.out.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid peer certificate") && err.contains("--ca-cert"), "names the certificate problem: {err}");
    assert_eq!(err.matches("error:").count(), 1, "one line: {err}");

    let trusted = run(&url, &[&FLAGS[..], &["--ca-cert", &cert]].concat());
    let j = trusted.assert_ok().json();
    assert_eq!(j["completed"], 8);
    assert_eq!(j["spec"]["ca_cert"], cert.as_str());
    assert!(j["spec"].get("insecure").is_none(), "insecure appears only when set");
    let ttft = &j["summary"]["metrics"]["ttft"]["mean"];
    assert!(ttft.as_f64().unwrap() > 0.0, "real timings over TLS: {ttft}");

    let insecure = run(&url, &[&FLAGS[..], &["--insecure"]].concat());
    let j = insecure.assert_ok().json();
    assert_eq!(j["completed"], 8);
    assert_eq!(j["spec"]["insecure"], true, "written into the result");
    let err = insecure.stderr();
    assert_eq!(err.matches("--insecure").count(), 1, "warned once: {err}");

    let bad_ca = run(&url, &[&FLAGS[..], &["--ca-cert", &key]].concat());
    let err = bad_ca.stderr();
    assert_eq!(bad_ca.out.status.code(), Some(2), "a bad --ca-cert is a usage error: {err}");
    assert!(err.contains("--ca-cert") && err.contains("key.pem"), "{err}");
}

#[test]
fn https_proxy_from_the_environment_carries_the_run() {
    let _machine = crate::harness::machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--ssl-certfile", &cert, "--ssl-keyfile", &key]);
    let port: u16 = sim.url.rsplit(':').next().unwrap().parse().unwrap();
    let (proxy, seen) = connect_proxy(port);
    // model.test resolves nowhere: only the proxy knows where it is.
    let (mut c, out_dir) = run_cmd("https://model.test", &[&FLAGS[..], &["--ca-cert", &cert, "--max-concurrency", "2"]].concat());
    c.env("HTTPS_PROXY", &proxy);
    let out = c.output().unwrap();
    let r = crate::harness::Run { out, dir: out_dir };
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 8);
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|l| l == "CONNECT model.test:443 HTTP/1.1"), "{seen:?}");
    assert!(seen.len() <= 4, "connections are kept alive through the tunnel: {} opened", seen.len());
}
