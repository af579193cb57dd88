//! HTTPS, proxies and IPv6 against local servers the tests start: a TLS server with a
//! certificate made here, a CONNECT proxy, and a server standing in for a forward proxy.

use inferbench_load::client::get;
use inferbench_load::{http_client, HttpTarget, ProxyEnv, TlsOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Seen = Arc<Mutex<Vec<String>>>;

/// Reads one request head, notes its lines, and answers `ok`.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, seen: Seen) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match s.read_u8().await {
            Ok(b) => head.push(b),
            Err(_) => return,
        }
    }
    seen.lock().unwrap().extend(String::from_utf8_lossy(&head).lines().filter(|l| !l.is_empty()).map(String::from));
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
    let _ = s.shutdown().await;
}

struct Tls {
    port: u16,
    ca: tempfile::NamedTempFile,
    seen: Seen,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

/// An HTTPS server on 127.0.0.1 with a self-signed certificate for `localhost` and `model.test`.
async fn tls_server() -> Tls {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "model.test".to_string()]).unwrap();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca, ck.cert.pem().as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, sni): (Seen, Arc<Mutex<Vec<Option<String>>>>) = Default::default();
    let (seen2, sni2) = (seen.clone(), Arc::clone(&sni));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen, sni) = (acceptor.clone(), seen2.clone(), Arc::clone(&sni2));
            tokio::spawn(async move {
                // A client that rejects the certificate aborts the handshake: nothing to answer.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    sni.lock().unwrap().push(tls.get_ref().1.server_name().map(String::from));
                    answer(tls, seen).await;
                }
            });
        }
    });
    Tls { port, ca, seen, sni }
}

/// A CONNECT proxy on 127.0.0.1 that notes each request line and splices every tunnel to
/// 127.0.0.1:`upstream`, whatever name it was asked for (as a proxy resolving `model.test` would).
async fn connect_proxy(upstream: u16) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Default::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(client.read_u8().await.unwrap());
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap().to_owned();
                seen.lock().unwrap().push(line.clone());
                let mut upstream = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, seen)
}

fn target(url: &str, tls: TlsOptions, proxies: ProxyEnv) -> HttpTarget {
    HttpTarget::with_transport(url, "/v1/completions", None, Duration::from_secs(10), &tls, &proxies).unwrap()
}

async fn fetch(t: &HttpTarget) -> Result<(u16, Vec<u8>), String> {
    get(&http_client(t), t, "/v1/models").await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn https_refuses_an_unknown_certificate_and_accepts_it_with_ca_cert_or_insecure() {
    let server = tls_server().await;
    let url = format!("https://localhost:{}", server.port);

    let e = fetch(&target(&url, TlsOptions::default(), ProxyEnv::default())).await.unwrap_err();
    assert!(e.contains("invalid peer certificate") && e.contains("UnknownIssuer"), "names the certificate problem: {e}");
    assert!(e.contains("--ca-cert") && e.contains("--insecure"), "says what to do: {e}");

    let with_ca = TlsOptions { ca_cert: Some(server.ca.path().to_owned()), insecure: false };
    assert_eq!(fetch(&target(&url, with_ca, ProxyEnv::default())).await.unwrap(), (200, b"ok".to_vec()));

    let insecure = TlsOptions { ca_cert: None, insecure: true };
    assert_eq!(fetch(&target(&url, insecure, ProxyEnv::default())).await.unwrap(), (200, b"ok".to_vec()));

    let seen = server.seen.lock().unwrap().clone();
    assert!(seen.contains(&"GET /v1/models HTTP/1.1".to_string()), "{seen:?}");
    assert!(seen.contains(&format!("Host: localhost:{}", server.port)), "{seen:?}");
    let sni = server.sni.lock().unwrap().clone();
    assert_eq!(sni, vec![Some("localhost".to_string()); 2], "SNI names the host on both successful handshakes");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_even_with_its_ca() {
    let server = tls_server().await;
    // The certificate names `localhost`, not 127.0.0.1.
    let url = format!("https://127.0.0.1:{}", server.port);
    let with_ca = TlsOptions { ca_cert: Some(server.ca.path().to_owned()), insecure: false };
    let e = fetch(&target(&url, with_ca, ProxyEnv::default())).await.unwrap_err();
    assert!(e.contains("certificate not valid for name \"127.0.0.1\"") && e.contains("a host name the certificate names"), "{e}");
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_servers_own_is_named() {
    // What `openssl req -x509` makes by default: basicConstraints CA:TRUE.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca, cert.pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let tls = TlsOptions { ca_cert: Some(ca.path().to_owned()), insecure: false };
    let e = fetch(&target(&format!("https://localhost:{port}"), tls, ProxyEnv::default())).await.unwrap_err();
    assert!(e.contains("CaUsedAsEndEntity") && e.contains("CA:FALSE"), "{e}");
}

#[tokio::test]
async fn https_goes_through_the_environments_connect_proxy() {
    let server = tls_server().await;
    let (proxy, tunnels) = connect_proxy(server.port).await;
    // A name only the proxy can resolve: the client must not try to.
    let url = "https://model.test";
    let tls = TlsOptions { ca_cert: Some(server.ca.path().to_owned()), insecure: false };
    let via = ProxyEnv { https: Some(proxy.clone()), ..Default::default() };
    assert_eq!(fetch(&target(url, tls.clone(), via.clone())).await.unwrap(), (200, b"ok".to_vec()));
    assert_eq!(*tunnels.lock().unwrap(), vec!["CONNECT model.test:443 HTTP/1.1".to_string()]);
    assert!(server.seen.lock().unwrap().contains(&"Host: model.test".to_string()), "the default port is left out of Host");
    assert_eq!(server.sni.lock().unwrap().clone(), vec![Some("model.test".to_string())]);

    // A loopback target is reached directly, proxy or not; so is a host NO_PROXY names.
    let local = format!("https://localhost:{}", server.port);
    assert_eq!(fetch(&target(&local, tls.clone(), via)).await.unwrap().0, 200);
    let bypass = ProxyEnv { https: Some(proxy), no_proxy: Some("example.com,model.test".into()), ..Default::default() };
    // (Not fetched: the client would resolve model.test itself, and tests stay off DNS.)
    assert!(format!("{:?}", target(url, tls, bypass)).contains("proxy: None"));
    assert_eq!(tunnels.lock().unwrap().len(), 1, "the proxy saw only the first");
}

#[tokio::test]
async fn http_through_a_proxy_sends_the_whole_url_and_the_proxys_credentials() {
    // A server standing in for the forward proxy: it answers whatever it is asked.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://user:p%40ss@{}", listener.local_addr().unwrap());
    let seen: Seen = Default::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(answer(s, seen2.clone()));
        }
    });
    let via = ProxyEnv { http: Some(proxy), ..Default::default() };
    let t = target("http://model.invalid:8000/base", TlsOptions::default(), via);
    assert_eq!(fetch(&t).await.unwrap(), (200, b"ok".to_vec()));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "GET http://model.invalid:8000/base/v1/models HTTP/1.1");
    // base64("user:p@ss")
    assert!(seen.contains(&"Proxy-Authorization: Basic dXNlcjpwQHNz".to_string()), "{seen:?}");
    assert!(format!("{t:?}").contains("***@") && !format!("{t:?}").contains("p%40ss"), "no credential in Debug: {t:?}");
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_one_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await;
        }
    });
    let via = ProxyEnv { https: Some(proxy.clone()), ..Default::default() };
    let e = fetch(&target("https://api.example.com", TlsOptions::default(), via)).await.unwrap_err();
    assert!(e.contains(&proxy) && e.contains("api.example.com:443") && e.contains("403 Forbidden"), "{e}");
}

#[tokio::test]
async fn ipv6_literals_are_reached() {
    let listener = match TcpListener::bind("[::1]:0").await {
        Ok(l) => l,
        Err(e) => {
            // Some containers have no IPv6 loopback; the URL handling is still checked.
            eprintln!("no IPv6 loopback here ({e}); checking the URL only");
            let t = target("http://[::1]:8000", TlsOptions::default(), ProxyEnv::default());
            assert_eq!(t.authority, "[::1]:8000");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Default::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(answer(s, seen2.clone()));
        }
    });
    let t = target(&format!("http://[::1]:{port}"), TlsOptions::default(), ProxyEnv::default());
    assert_eq!(fetch(&t).await.unwrap(), (200, b"ok".to_vec()));
    assert!(seen.lock().unwrap().contains(&format!("Host: [::1]:{port}")));
}
