//! A small HTTP/1.1 client made for load generation: one task owns each connection and reads the
//! response itself, so a streamed token costs one socket read and no hand-off between tasks
//! (a general client runs a connection task and passes every body chunk through a channel).
//! Requests are written with a single `write`; responses may be `Content-Length`, chunked or
//! close-delimited. Idle keep-alive connections wait in a [`ConnPool`].

use crate::transport::{Dialer, Stream};
use bytes::{Buf, BytesMut};
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What went wrong on the wire, split by whether the response had started.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Could not connect, send, or read a response head.
    #[error("{0}")]
    Connection(String),
    /// The body broke off or was malformed after the head arrived.
    #[error("{0}")]
    Body(String),
    /// The connection was not open within the connect timeout.
    #[error("{0}")]
    ConnectTimeout(String),
    /// The answer had started, then no byte came within the idle timeout.
    #[error("{0}")]
    Idle(String),
}

/// How long a connection may take to open and, once an answer has started, to go quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Most time one connect may take.
    pub connect: Duration,
    /// Most time without a byte mid-answer; `None` for no limit.
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), idle: None }
    }
}

/// The parts of a response head a benchmark needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    framing: Framing,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// One connection to the server.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    buf: BytesMut,
    /// True once a response was read on it (a failure then may just be a stale idle connection).
    reused: bool,
    /// When the last request's first byte was handed to the kernel.
    sent_at: Instant,
    /// When the last read that returned bytes returned.
    read_at: Instant,
    /// Most time a read mid-answer may wait.
    idle: Option<Duration>,
}

impl Conn {
    /// Opens a connection with `dialer` (TCP with Nagle off, any proxy tunnel and TLS
    /// handshake), all within `timeouts.connect`.
    pub async fn connect(dialer: &Dialer, timeouts: Timeouts) -> Result<Conn, HttpError> {
        let t = std::time::Instant::now();
        let stream = match tokio::time::timeout(timeouts.connect, dialer.dial()).await {
            Ok(s) => s?,
            Err(_) => {
                let (authority, limit) = (dialer.target(), timeouts.connect.as_secs_f64());
                let hint = "--connect-timeout; a full listen queue drops connects";
                return Err(HttpError::ConnectTimeout(format!("connect to {authority} timed out after {limit} s ({hint})")));
            }
        };
        tracing::trace!(authority = dialer.target(), us = t.elapsed().as_micros() as u64, "connected");
        let now = Instant::now();
        Ok(Conn { stream, buf: BytesMut::with_capacity(4 << 10), reused: false, sent_at: now, read_at: now, idle: timeouts.idle })
    }

    /// Writes a whole request (head and body already serialised together), noting the instant
    /// just before the write that hands its first byte to the kernel: the request's send time.
    pub async fn send(&mut self, request: &[u8]) -> Result<(), HttpError> {
        self.sent_at = Instant::now();
        let sending = |e: io::Error| HttpError::Connection(format!("sending the request: {e}"));
        self.stream.write_all(request).await.map_err(sending)?;
        // A no-op on TCP; pushes TLS records out.
        self.stream.flush().await.map_err(sending)
    }

    /// When the last request sent on this connection started its write.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    /// Whether an earlier response was read on this connection (it came from the idle pool).
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    async fn fill(&mut self) -> io::Result<usize> {
        // Small to start (10,000 idle streams must stay cheap), growing for fast streams.
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 << 10);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        // Taken as the read returns, before any parsing: the bytes' arrival as the client sees it.
        self.read_at = Instant::now();
        Ok(n)
    }

    /// Reads the response head.
    pub async fn read_head(&mut self) -> Result<Head, HttpError> {
        loop {
            if let Some((head, n)) = Head::parse(&self.buf)? {
                self.buf.advance(n);
                return Ok(head);
            }
            match self.fill().await {
                Ok(0) => return Err(HttpError::Connection("the server closed the connection before answering".into())),
                Ok(_) => {}
                Err(e) => return Err(HttpError::Connection(format!("reading the response: {e}"))),
            }
        }
    }

    /// Reads the body, calling `on_data` with each piece and the instant its bytes were read
    /// (body bytes that came with the head carry the head's read instant, not a later one).
    /// A callback error stops reading and is returned inside `Ok`; the connection is then left
    /// mid-response and must not be reused.
    pub async fn read_body<E>(
        &mut self,
        head: &Head,
        mut on_data: impl FnMut(&[u8], Instant) -> Result<(), E>,
    ) -> Result<Result<(), E>, HttpError> {
        let mut body = BodyDecoder::new(head);
        loop {
            let now = self.read_at;
            match body.decode(&mut self.buf, |d| on_data(d, now))? {
                Decoded::Done => return Ok(Ok(())),
                Decoded::Stopped(e) => return Ok(Err(e)),
                Decoded::NeedMore => {}
            }
            let read = match self.idle {
                None => self.fill().await,
                Some(limit) => match tokio::time::timeout(limit, self.fill()).await {
                    Ok(r) => r,
                    Err(_) => {
                        let s = limit.as_secs_f64();
                        return Err(HttpError::Idle(format!("no byte for {s} s mid-answer (--idle-timeout)")));
                    }
                },
            };
            match read {
                Ok(0) => return body.finish().map(Ok),
                Ok(_) => {}
                Err(e) => return Err(HttpError::Body(format!("reading the response: {e}"))),
            }
        }
    }
}

/// The most bytes a response head may take. A server that never ends its head is an error, not a
/// buffer that grows until the client runs out of memory.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// The most bytes a chunk-size or trailer line may take (chunk extensions included).
pub const MAX_LINE_BYTES: usize = 8 << 10;

impl Head {
    /// Parses a response head at the start of `buf`: `None` while it is incomplete, else the
    /// head and how many bytes it took. Kept free of I/O so it can be fuzzed on any bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let too_big = || HttpError::Connection(format!("the response head is over {} KiB", MAX_HEAD_BYTES >> 10));
        // The same bound whether the head came in one read or many: only the first
        // MAX_HEAD_BYTES are ever parsed, so the answer depends on those bytes and on whether more
        // are buffered, never on how the reads were cut.
        let n = match resp.parse(&buf[..buf.len().min(MAX_HEAD_BYTES)]) {
            Ok(httparse::Status::Complete(n)) if n > MAX_HEAD_BYTES => return Err(too_big()),
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(too_big()),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HttpError::Connection(format!("malformed response head: {e}"))),
        };
        let status = resp.code.unwrap_or(0);
        let mut framing = Framing::UntilClose;
        let mut keep_alive = resp.version == Some(1);
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
                framing = Framing::Chunked;
            } else if h.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
                let len = value.parse().map_err(|_| HttpError::Connection(format!("bad Content-Length '{value}'")))?;
                framing = Framing::Length(len);
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                keep_alive = if v.contains("close") { false } else { keep_alive || v.contains("keep-alive") };
            }
        }
        if status == 204 || status == 304 || (100..200).contains(&status) {
            framing = Framing::Length(0);
        }
        if framing == Framing::UntilClose {
            keep_alive = false;
        }
        Ok(Some((Head { status, framing, keep_alive }, n)))
    }

    /// Whether the connection may carry another request once this response is read.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

/// Decodes a response body from bytes as they arrive, whatever the read boundaries: the
/// `Content-Length`, chunked and close-delimited framings, with no I/O of its own.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    framing: Framing,
    state: State,
}

/// How far one [`BodyDecoder::decode`] call got.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<E> {
    /// Everything buffered was consumed and the body is not over: read more.
    NeedMore,
    /// The body ended; bytes after it are left in the buffer.
    Done,
    /// The callback returned an error; the body was left part-read.
    Stopped(E),
}

impl BodyDecoder {
    /// A decoder for the body that follows `head`.
    pub fn new(head: &Head) -> Self {
        let state = match head.framing {
            Framing::Length(n) => State::Data(n),
            Framing::Chunked => State::Size,
            Framing::UntilClose => State::Data(u64::MAX),
        };
        Self { framing: head.framing, state }
    }

    /// Consumes what it can of `buf`, passing each piece of body to `on_data`.
    pub fn decode<E>(&mut self, buf: &mut BytesMut, mut on_data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<Decoded<E>, HttpError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Data(0) if self.framing == Framing::Chunked => self.state = State::DataEnd,
                State::Data(0) => self.state = State::Done,
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    if let Err(e) = on_data(&buf[..n]) {
                        return Ok(Decoded::Stopped(e));
                    }
                    buf.advance(n);
                    self.state = State::Data(left - n as u64);
                }
                State::Size => {
                    let Some(end) = line_end(buf, "chunk size")? else { return Ok(Decoded::NeedMore) };
                    let line = std::str::from_utf8(&buf[..end]).unwrap_or("");
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| HttpError::Body(format!("bad chunk size '{hex}'")))?;
                    buf.advance(end + 2);
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        // One byte can already be judged: a chunk must end in CR.
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(HttpError::Body("chunk not followed by CRLF".into()));
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(HttpError::Body("chunk not followed by CRLF".into()));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(end) = line_end(buf, "trailer")? else { return Ok(Decoded::NeedMore) };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// The connection closed: the end of a close-delimited body, a truncation of any other.
    pub fn finish(&self) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::Data(_) if self.framing == Framing::UntilClose => Ok(()),
            _ => Err(HttpError::Body("the connection closed mid-response".into())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Where the CRLF ending the line at the start of `b` is; an error once the line is longer
/// than [`MAX_LINE_BYTES`] without one.
fn line_end(b: &[u8], what: &str) -> Result<Option<usize>, HttpError> {
    match find_crlf(b) {
        Some(i) if i <= MAX_LINE_BYTES => Ok(Some(i)),
        None if b.len() <= MAX_LINE_BYTES + 1 => Ok(None),
        _ => Err(HttpError::Body(format!("a {what} line over {} KiB", MAX_LINE_BYTES >> 10))),
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &b[from..]) {
        let nl = from + i;
        if nl > 0 && b[nl - 1] == b'\r' {
            return Some(nl - 1);
        }
        from = nl + 1;
    }
    None
}

/// Idle connections to one server.
#[derive(Debug)]
pub struct ConnPool {
    dialer: Dialer,
    timeouts: Timeouts,
    idle: Mutex<Vec<Conn>>,
}

impl ConnPool {
    /// A pool for plain TCP to `authority` (`host:port`), with the default timeouts.
    pub fn new(authority: impl Into<String>) -> Self {
        Self::with_dialer(Dialer::plain(authority))
    }

    /// A pool whose connections `dialer` opens (proxy, TLS), with the default timeouts.
    pub fn with_dialer(dialer: Dialer) -> Self {
        Self { dialer, timeouts: Timeouts::default(), idle: Mutex::new(Vec::new()) }
    }

    /// Sets the connect and idle timeouts of the connections it opens.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Opens connections until `n` are idle (all at once, as the first wave of a run would), so
    /// that a measured window starts with none to make. Returns how many were opened.
    pub async fn warm(&self, n: usize) -> Result<usize, HttpError> {
        let have = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        let mut opening = tokio::task::JoinSet::new();
        for _ in have..n {
            let (dialer, timeouts) = (self.dialer.clone(), self.timeouts);
            opening.spawn(async move { Conn::connect(&dialer, timeouts).await });
        }
        let mut opened = 0;
        while let Some(done) = opening.join_next().await {
            let mut conn = done.map_err(|e| HttpError::Connection(format!("opening a connection: {e}")))??;
            // Marked as reused: a failure on first use may be the server's idle timeout.
            conn.reused = true;
            if let Ok(mut v) = self.idle.lock() {
                v.push(conn);
            }
            opened += 1;
        }
        Ok(opened)
    }

    /// An idle connection, or a new one.
    pub async fn get(&self) -> Result<Conn, HttpError> {
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        match idle {
            Some(c) => Ok(c),
            None => Conn::connect(&self.dialer, self.timeouts).await,
        }
    }

    /// Returns a connection whose response was read to the end and may be kept alive.
    pub fn put(&self, mut c: Conn, head: &Head) {
        if head.keep_alive && c.buf.is_empty() {
            c.reused = true;
            if let Ok(mut v) = self.idle.lock() {
                v.push(c);
            }
        }
    }

    /// Sends `request` and reads the head, retrying once on a fresh connection when a kept-alive
    /// one turns out to have been closed by the server while idle. `sent` gets the instant the
    /// answered request's write began, and whether its connection was already open.
    pub async fn exchange(&self, request: &[u8], sent: &mut Option<(Instant, bool)>) -> Result<(Conn, Head), HttpError> {
        let mut conn = self.get().await?;
        let reused = conn.reused;
        let first = async {
            conn.send(request).await?;
            *sent = Some((conn.sent_at, reused));
            conn.read_head().await
        }
        .await;
        match first {
            Ok(head) => Ok((conn, head)),
            Err(e) if reused => {
                // A kept-alive connection the server had closed: one retry on a fresh one.
                tracing::debug!(error = %e, "reused connection failed; retrying on a new one");
                let mut fresh = Conn::connect(&self.dialer, self.timeouts).await?;
                fresh.send(request).await?;
                *sent = Some((fresh.sent_at, false));
                let head = fresh.read_head().await?;
                Ok((fresh, head))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Found by the HTTP fuzz target: a head over the bound whose bad header byte lay beyond
    /// 64 KiB was "malformed" when read at once and "over 64 KiB" when read in pieces.
    #[test]
    fn an_oversized_head_is_judged_the_same_however_it_is_read() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend(std::iter::repeat_n(b'a', 70_000));
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let whole = Head::parse(&head).map(|_| ()).map_err(|e| e.to_string());
        let mut part = Err(String::new());
        for end in [1000, 40_000, 65_537, head.len()] {
            part = Head::parse(&head[..end]).map(|_| ()).map_err(|e| e.to_string());
            if !matches!(part, Ok(())) {
                break;
            }
        }
        assert_eq!(whole, part);
        assert!(whole.unwrap_err().contains("over 64 KiB"));
    }

    /// A one-shot server that answers every request on a connection with `answers` in turn.
    async fn server(answers: Vec<&'static [u8]>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for a in answers {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await.unwrap();
                // Dribble the answer byte by byte to exercise every parser state.
                for b in a.chunks(3) {
                    s.write_all(b).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        addr
    }

    async fn body(pool: &ConnPool) -> (u16, String) {
        let mut sent = None;
        let before = Instant::now();
        let idle = pool.idle.lock().unwrap().len();
        let (mut c, head) = pool.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut sent).await.unwrap();
        let (at, reused) = sent.unwrap();
        assert!(at >= before && at <= Instant::now());
        assert_eq!(reused, idle > 0, "a request says whether it went out on an idle connection");
        let mut out = Vec::new();
        c.read_body::<()>(&head, |d, _| {
            out.extend_from_slice(d);
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
        pool.put(c, &head);
        (head.status, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn chunked_then_length_on_one_kept_alive_connection() {
        let addr = server(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
        ])
        .await;
        let pool = ConnPool::new(addr);
        assert_eq!(body(&pool).await, (200, "hello world".into()));
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        assert_eq!(body(&pool).await, (404, "nope".into()));
    }

    #[tokio::test]
    async fn close_delimited_and_truncated_bodies() {
        let addr = server(vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof"]).await;
        let pool = ConnPool::new(addr);
        assert_eq!(body(&pool).await, (200, "until eof".into()));
        assert!(pool.idle.lock().unwrap().is_empty(), "close-delimited connections are not reused");

        let addr = server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let pool = ConnPool::new(addr);
        let (mut c, head) = pool.exchange(b"GET / HTTP/1.1\r\n\r\n", &mut None).await.unwrap();
        let r = c.read_body::<()>(&head, |_, _| Ok(())).await;
        assert!(matches!(r, Err(HttpError::Body(_))), "{r:?}");
    }

    /// Body bytes that arrived in the same read as the head were read then, not when the body
    /// reader started: the first token's time is the read's, before any parsing.
    #[tokio::test]
    async fn body_bytes_read_with_the_head_carry_that_read_instant() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
            let _ = s.read(&mut buf).await;
        });
        let pool = ConnPool::new(addr);
        let mut sent = None;
        let (mut c, head) = pool.exchange(b"GET / HTTP/1.1\r\n\r\n", &mut sent).await.unwrap();
        let after_head = Instant::now();
        let mut seen = None;
        c.read_body::<()>(&head, |_, t| {
            seen = Some(t);
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
        let seen = seen.unwrap();
        assert!(seen <= after_head, "the body's instant is the read that brought it, not a later one");
        assert!(seen >= sent.unwrap().0);
    }

    #[tokio::test]
    async fn warmed_connections_are_open_before_the_first_request() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = l.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                            break;
                        }
                    }
                }));
            }
        });
        let pool = ConnPool::new(addr);
        assert_eq!(pool.warm(3).await.unwrap(), 3);
        assert_eq!(pool.warm(3).await.unwrap(), 0, "already warm");
        assert_eq!(pool.idle.lock().unwrap().len(), 3);
        assert_eq!(body(&pool).await, (200, "ok".into()));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3, "the request used a warmed connection");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connection_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = ConnPool::new(format!("127.0.0.1:{port}")).get().await.unwrap_err();
        assert!(matches!(e, HttpError::Connection(ref m) if m.contains("connect to 127.0.0.1")), "{e}");
    }
}
