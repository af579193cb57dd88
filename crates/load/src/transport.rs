//! How a connection reaches the server: straight or through an HTTP proxy (`CONNECT` tunnel for
//! `https://`, absolute-form requests for `http://`, as curl does), then TLS when the target is
//! `https://`. The handshake is part of opening a connection, so it counts towards the connect
//! timeout and the per-record `connect_ns`.

use crate::http1::HttpError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How to treat the server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of extra CA certificates to trust (`--ca-cert`), beside the system's roots and
    /// the webpki roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (`--insecure`): the connection is encrypted but not authenticated.
    pub insecure: bool,
}

/// The proxy settings of the environment, read the way curl reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// Proxy for `http://` targets (`http_proxy`, `HTTP_PROXY`, else `all_proxy`).
    pub http: Option<String>,
    /// Proxy for `https://` targets (`https_proxy`, `HTTPS_PROXY`, else `all_proxy`).
    pub https: Option<String>,
    /// Hosts reached directly (`no_proxy`, `NO_PROXY`): names matched with their subdomains,
    /// addresses exactly, `*` for all.
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Reads the process environment (lower-case names first, as curl does).
    pub fn from_env() -> Self {
        let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()));
        let all = var(&["all_proxy", "ALL_PROXY"]);
        Self {
            http: var(&["http_proxy", "HTTP_PROXY"]).or_else(|| all.clone()),
            https: var(&["https_proxy", "HTTPS_PROXY"]).or(all),
            no_proxy: var(&["no_proxy", "NO_PROXY"]),
        }
    }

    /// The proxy to use for `host` over `scheme`, if any. Loopback hosts are always reached
    /// directly, as Go's clients do: a server on this machine is never behind a proxy.
    pub fn proxy_for(&self, scheme: &str, host: &str) -> Option<&str> {
        let proxy = if scheme == "https" { self.https.as_deref() } else { self.http.as_deref() }?;
        if is_loopback(host) {
            return None;
        }
        if self.no_proxy.as_deref().is_some_and(|list| no_proxy_matches(list, host)) {
            return None;
        }
        Some(proxy)
    }
}

/// `localhost`, `*.localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    bare == "localhost" || bare.ends_with(".localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` is in a `NO_PROXY` list: `*` matches all; `example.com` and `.example.com`
/// match that name and its subdomains; an address matches itself (IPv6 with or without brackets).
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        // A port on a name entry (`host:8000`) is ignored, as curl ignores it.
        let entry = match entry.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => entry,
        };
        host == entry || host.ends_with(&format!(".{entry}"))
    })
}

/// A proxy: where to dial it, and the `Proxy-Authorization` value from its URL's user info.
#[derive(Clone)]
struct Proxy {
    authority: String,
    shown: String,
    auth: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({})", self.shown)
    }
}

impl Proxy {
    fn parse(url: &str) -> Result<Self, String> {
        let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("http", &with_scheme));
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("proxy scheme {scheme}:// is not supported (only http:// proxies)"));
        }
        let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match hostport.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, hostport),
        };
        if hostport.is_empty() {
            return Err("the proxy URL has no host".into());
        }
        let has_port = if hostport.ends_with(']') { false } else { hostport.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty()) };
        let authority = if has_port { hostport.to_owned() } else { format!("{}:1080", hostport.trim_end_matches(':')) };
        let auth = userinfo.map(|u| {
            use base64::Engine as _;
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let plain = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(plain))
        });
        let shown = format!("http://{}{authority}", if auth.is_some() { "***@" } else { "" });
        Ok(Self { authority, shown, auth })
    }
}

/// `%XX` escapes in proxy user names and passwords, as in curl.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything needed to open a connection to one server: built once per run.
#[derive(Clone)]
pub struct Dialer {
    /// `host:port` of the server.
    target: String,
    proxy: Option<Proxy>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("target", &self.target).field("proxy", &self.proxy).field("tls", &self.tls.is_some()).finish()
    }
}

impl Dialer {
    /// A plain TCP dialer for `host:port`, no proxy.
    pub fn plain(target: impl Into<String>) -> Self {
        Self { target: target.into(), proxy: None, tls: None }
    }

    /// A dialer for `host:port` over `scheme` (`http` or `https`), through the environment's proxy
    /// for that host unless `NO_PROXY` lists it.
    pub fn new(scheme: &str, host: &str, port: u16, tls: &TlsOptions, proxies: &ProxyEnv) -> Result<Self, String> {
        let target = if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let proxy = match proxies.proxy_for(scheme, host) {
            Some(url) => Some(Proxy::parse(url).map_err(|e| format!("{} proxy {url:?}: {e}", scheme.to_ascii_uppercase()))?),
            None => None,
        };
        let tls = if scheme == "https" {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned()).map_err(|e| format!("{bare} is not a valid TLS server name: {e}"))?;
            Some((TlsConnector::from(Arc::new(client_config(tls)?)), name))
        } else {
            None
        };
        Ok(Self { target, proxy, tls })
    }

    /// `host:port` of the server.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether requests go to an HTTP proxy in absolute form (an `http://` target behind a proxy):
    /// the request line then names the whole URL and carries the proxy's credentials.
    pub fn forward_proxy_auth(&self) -> Option<Option<&str>> {
        match (&self.proxy, &self.tls) {
            (Some(p), None) => Some(p.auth.as_deref()),
            _ => None,
        }
    }

    /// The proxy, redacted, for messages.
    pub fn proxy_shown(&self) -> Option<&str> {
        self.proxy.as_ref().map(|p| p.shown.as_str())
    }

    /// Opens a stream to the server: TCP (to the proxy, if any), the `CONNECT` tunnel for TLS
    /// through a proxy, and the TLS handshake. The caller bounds the whole with its timeout.
    pub async fn dial(&self) -> Result<Stream, HttpError> {
        let first_hop = self.proxy.as_ref().map_or(self.target.as_str(), |p| p.authority.as_str());
        let tcp = TcpStream::connect(first_hop).await.map_err(|e| {
            tracing::debug!(first_hop, error = %e, "connect failed");
            match &self.proxy {
                Some(p) => HttpError::Connection(format!("connect to proxy {}: {e}", p.shown)),
                None => HttpError::Connection(format!("connect to {first_hop}: {e}")),
            }
        })?;
        tcp.set_nodelay(true).map_err(|e| HttpError::Connection(e.to_string()))?;
        let Some((connector, name)) = &self.tls else { return Ok(Stream::Plain(tcp)) };
        let mut tcp = tcp;
        if let Some(p) = &self.proxy {
            tunnel(&mut tcp, p, &self.target).await?;
        }
        let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
            let why = e.to_string();
            let hint = if why.contains("not valid for name") {
                " (use a host name the certificate names, or --insecure)"
            } else if why.contains("CaUsedAsEndEntity") {
                " (the server presents a CA certificate as its own: reissue it with basicConstraints CA:FALSE, or --insecure)"
            } else if why.contains("certificate") {
                " (--ca-cert FILE trusts a private CA; --insecure skips the check)"
            } else {
                ""
            };
            HttpError::Connection(format!("TLS handshake with {}: {e}{hint}", self.target))
        })?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// Asks the proxy for a tunnel to `target` and reads its answer head.
async fn tunnel(tcp: &mut TcpStream, proxy: &Proxy, target: &str) -> Result<(), HttpError> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = &proxy.auth {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let fail = |why: String| HttpError::Connection(format!("proxy {} tunnel to {target}: {why}", proxy.shown));
    tcp.write_all(req.as_bytes()).await.map_err(|e| fail(e.to_string()))?;
    // Read byte-wise up to the blank line: nothing of the tunnelled stream may be read here.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 {
            return Err(fail("the proxy's answer head is over 16 KiB".into()));
        }
        let b = tcp.read_u8().await.map_err(|e| fail(format!("reading its answer: {e}")))?;
        head.push(b);
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(fail(format!("refused: {line}"))),
    }
}

/// The rustls client configuration: system roots, webpki roots and `--ca-cert`, or no check at
/// all with `--insecure`. Only HTTP/1.1 is offered by ALPN (the client speaks nothing else).
fn client_config(opts: &TlsOptions) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if opts.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider))).with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(opts.ca_cert.as_deref())?).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn roots(ca_cert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(system_roots = added, errors = native.errors.len(), "TLS roots loaded");
    if let Some(path) = ca_cert {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("--ca-cert {shown}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--ca-cert {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("--ca-cert {shown}: no PEM certificate in the file"));
        }
        for c in certs {
            roots.add(c).map_err(|e| format!("--ca-cert {shown}: {e}"))?;
        }
    }
    Ok(roots)
}

/// The `--insecure` verifier: any certificate is accepted, but handshake signatures are still
/// checked, so the session is at least consistent with the certificate shown.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An open connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                // A server that closes without close_notify ends the stream as TCP would: the body
                // framing decides whether that was a truncation.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
                other => other,
            },
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_names_subdomains_addresses_and_star() {
        let list = "localhost, .internal.example, 10.0.0.1,[::1],api.host:8443";
        for (host, hit) in [
            ("localhost", true),
            ("LOCALHOST", true),
            ("internal.example", true),
            ("a.internal.example", true),
            ("xinternal.example", false),
            ("10.0.0.1", true),
            ("10.0.0.10", false),
            ("[::1]", true),
            ("::1", true),
            ("api.host", true),
            ("example.com", false),
        ] {
            assert_eq!(no_proxy_matches(list, host), hit, "{host}");
        }
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("", "anything"));
    }

    #[test]
    fn proxy_is_chosen_by_scheme_and_skipped_for_no_proxy_hosts() {
        let env = ProxyEnv { http: Some("http://p:3128".into()), https: None, no_proxy: Some("skip.me".into()) };
        assert_eq!(env.proxy_for("http", "a.b"), Some("http://p:3128"));
        assert_eq!(env.proxy_for("https", "a.b"), None);
        assert_eq!(env.proxy_for("http", "skip.me"), None);
        for local in ["localhost", "api.localhost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert_eq!(env.proxy_for("http", local), None, "{local} is reached directly");
        }
    }

    #[test]
    fn proxy_urls_parse_with_default_port_and_redacted_credentials() {
        let p = Proxy::parse("user:p%40ss@proxy.corp").unwrap();
        assert_eq!(p.authority, "proxy.corp:1080");
        assert_eq!(p.shown, "http://***@proxy.corp:1080");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(p.auth.unwrap().trim_start_matches("Basic ")).unwrap();
        assert_eq!(decoded, b"user:p@ss");
        assert_eq!(Proxy::parse("http://[::1]:3128/").unwrap().authority, "[::1]:3128");
        assert!(Proxy::parse("socks5://h:1").unwrap_err().contains("socks5"));
        assert!(!format!("{:?}", Proxy::parse("http://u:secret@h:1").unwrap()).contains("secret"));
    }

    #[test]
    fn a_ca_cert_file_without_certificates_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("ib-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let e = roots(Some(&dir)).unwrap_err();
        std::fs::remove_file(&dir).ok();
        assert!(e.contains("--ca-cert") && e.contains("no PEM certificate"), "{e}");
        let missing = roots(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }
}
