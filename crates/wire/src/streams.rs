//! TCP segments in, HTTP exchanges out: each request's first packet, and the packets that
//! completed each token event of its streamed answer.
//!
//! The answer is decoded with the client's own code (`http1::Head`, `http1::BodyDecoder`,
//! `sse::SseParser`, the backend's chunk parser), so a "token" on the wire is exactly what the
//! client counts as one; only the clock differs.

use crate::capture::Segment;
use bytes::{Buf, BytesMut};
use inferbench_load::http1::{BodyDecoder, Decoded, Head};
use inferbench_load::sse::SseParser;
use inferbench_load::Backend;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// One request and its answer, as the wire saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireExchange {
    /// The `X-Request-Id` header, if the request had one.
    pub request_id: Option<String>,
    /// The client's address: which connection it went on.
    pub client: SocketAddr,
    /// Position on its connection (0 for the connection's first request).
    pub nth: u32,
    /// Capture time of the packet that carried the request's first byte.
    pub request_ns: u64,
    /// Capture time of the packet that completed each token event (non-empty text).
    pub tokens_ns: Vec<u64>,
    /// True once the whole answer was seen.
    pub complete: bool,
}

/// The exchanges of a capture, and what could not be followed.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// Every request seen, in the order its connection opened, then in order on it.
    pub exchanges: Vec<WireExchange>,
    /// Connections given up on: a gap in the sequence (the capture dropped packets), or bytes
    /// that are not HTTP.
    pub broken_connections: u64,
}

/// Follows every connection to one server.
pub struct Follower {
    server_port: u16,
    backend: Backend,
    conns: HashMap<SocketAddr, Conn>,
    order: Vec<SocketAddr>,
    done: Vec<WireExchange>,
}

#[derive(Default)]
struct Direction {
    next_seq: Option<u32>,
    buf: BytesMut,
}

impl Direction {
    /// The part of `s`'s payload that is new, or `Err` on a gap (lost bytes).
    fn accept<'a>(&mut self, s: &Segment<'a>) -> Result<&'a [u8], ()> {
        if s.syn {
            self.next_seq = Some(s.seq.wrapping_add(1));
            return Ok(&[]);
        }
        if s.payload.is_empty() {
            return Ok(&[]);
        }
        let next = *self.next_seq.get_or_insert(s.seq);
        let ahead = s.seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            return Err(());
        }
        // A retransmission overlapping what we have: keep only the new bytes.
        let skip = (-ahead) as usize;
        let new = s.payload.get(skip..).unwrap_or(&[]);
        self.next_seq = Some(next.wrapping_add(new.len() as u32));
        Ok(new)
    }
}

struct Answer {
    body: BodyDecoder,
    sse: SseParser,
    done: bool,
}

#[derive(Default)]
struct Conn {
    up: Direction,
    down: Direction,
    /// Capture time of the first byte of the request being read, once it arrived.
    request_ns: Option<u64>,
    /// Body bytes of the current request still to skip.
    skip: u64,
    /// Requests whose answers are not over yet, oldest first.
    waiting: VecDeque<WireExchange>,
    answer: Option<Answer>,
    requests: u32,
    broken: bool,
}

impl Follower {
    /// Follows connections to `server_port`, decoding answers as `backend` streams them.
    pub fn new(server_port: u16, backend: Backend) -> Self {
        Self { server_port, backend, conns: HashMap::new(), order: Vec::new(), done: Vec::new() }
    }

    /// Takes the next segment of the capture (in capture order).
    pub fn segment(&mut self, s: &Segment<'_>) {
        let (client, upward) = if s.dst.port() == self.server_port {
            (s.src, true)
        } else if s.src.port() == self.server_port {
            (s.dst, false)
        } else {
            return;
        };
        if s.syn && upward {
            // A new connection (a reused port starts afresh).
            if let Some(old) = self.conns.remove(&client) {
                self.done.extend(old.waiting);
            }
        }
        let order = &mut self.order;
        let conn = self.conns.entry(client).or_insert_with(|| {
            order.push(client);
            Conn::default()
        });
        if conn.broken {
            return;
        }
        let ok = if upward { conn.upward(s, client) } else { conn.downward(s, self.backend, &mut self.done) };
        if ok.is_err() {
            conn.broken = true;
            self.done.extend(conn.waiting.drain(..));
        }
    }

    /// Everything seen; answers still open are returned incomplete.
    pub fn finish(mut self) -> Exchanges {
        let mut broken = 0;
        for c in self.order.iter().filter_map(|a| self.conns.remove(a)) {
            broken += u64::from(c.broken);
            self.done.extend(c.waiting);
        }
        Exchanges { exchanges: self.done, broken_connections: broken }
    }
}

impl Conn {
    fn upward(&mut self, s: &Segment<'_>, client: SocketAddr) -> Result<(), ()> {
        let new = self.up.accept(s)?;
        if new.is_empty() {
            return Ok(());
        }
        self.up.buf.extend_from_slice(new);
        loop {
            if self.skip > 0 {
                let n = (self.up.buf.len() as u64).min(self.skip);
                self.up.buf.advance(n as usize);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
            }
            if self.up.buf.is_empty() {
                return Ok(());
            }
            // The first byte of a request arrived in this segment.
            let request_ns = *self.request_ns.get_or_insert(s.ts_ns);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&self.up.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.up.buf.len() < 64 << 10 => return Ok(()),
                _ => return Err(()),
            };
            let header = |name: &str| {
                req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
            };
            let request_id = header("x-request-id");
            self.skip = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            self.waiting.push_back(WireExchange {
                request_id,
                client,
                nth: self.requests,
                request_ns,
                tokens_ns: Vec::new(),
                complete: false,
            });
            self.requests += 1;
            self.request_ns = None;
            self.up.buf.advance(n);
        }
    }

    fn downward(&mut self, s: &Segment<'_>, backend: Backend, done: &mut Vec<WireExchange>) -> Result<(), ()> {
        let new = self.down.accept(s)?;
        if new.is_empty() {
            return Ok(());
        }
        self.down.buf.extend_from_slice(new);
        loop {
            let answer = match &mut self.answer {
                Some(a) => a,
                None => {
                    let Some((head, n)) = Head::parse(&self.down.buf).map_err(|_| ())? else { return Ok(()) };
                    if self.waiting.is_empty() {
                        return Err(()); // an answer to no request
                    }
                    self.down.buf.advance(n);
                    self.answer.insert(Answer { body: BodyDecoder::new(&head), sse: SseParser::new(), done: false })
                }
            };
            let Some(exchange) = self.waiting.front_mut() else { return Err(()) };
            let tokens = &mut exchange.tokens_ns;
            let Answer { body, sse, done: stream_done } = answer;
            let decoded = body
                .decode(&mut self.down.buf, |data| {
                    sse.feed(data, |payload| {
                        if *stream_done || payload == b"[DONE]" {
                            *stream_done = true;
                            return Ok::<(), ()>(());
                        }
                        if let Ok(c) = backend.parse_chunk(payload) {
                            if !c.text.is_empty() {
                                tokens.push(s.ts_ns);
                            }
                            *stream_done |= c.done;
                        }
                        Ok(())
                    })
                })
                .map_err(|_| ())?;
            match decoded {
                Decoded::NeedMore => return Ok(()),
                Decoded::Stopped(()) => return Err(()),
                Decoded::Done => {
                    self.answer = None;
                    if let Some(mut e) = self.waiting.pop_front() {
                        e.complete = true;
                        done.push(e);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:8000";

    fn seg<'a>(ts: u64, from_client: bool, seq: u32, payload: &'a [u8]) -> Segment<'a> {
        let (c, s): (SocketAddr, SocketAddr) = ("127.0.0.1:40000".parse().unwrap(), SERVER.parse().unwrap());
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        Segment { ts_ns: ts, src, dst, seq, syn: false, payload }
    }

    fn event(text: &str) -> String {
        let data = format!("data: {{\"choices\":[{{\"text\":\"{text}\"}}]}}\n\n");
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    #[test]
    fn tokens_are_timed_by_the_packet_that_completes_their_event() {
        let req = b"POST /v1/completions HTTP/1.1\r\nX-Request-Id: inferbench-7\r\nContent-Length: 4\r\n\r\n{}{}";
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let first = event("Hel");
        let (a, b) = first.split_at(20);
        let second = event("lo");
        let tail = format!("{}0\r\n\r\n", event_done());
        let mut f = Follower::new(8000, Backend::OpenAi);
        let mut seqs = [1000u32, 5000u32];
        let mut send = |f: &mut Follower, ts: u64, client: bool, bytes: &[u8]| {
            let seq = &mut seqs[usize::from(!client)];
            f.segment(&seg(ts, client, *seq, bytes));
            *seq += bytes.len() as u32;
        };
        // The request in two packets: its time is the first one's.
        send(&mut f, 100, true, &req[..30]);
        send(&mut f, 105, true, &req[30..]);
        // The head alone, then a token event split over two packets, then one whole.
        send(&mut f, 200, false, head.as_bytes());
        send(&mut f, 300, false, a.as_bytes());
        send(&mut f, 310, false, b.as_bytes());
        // A retransmission of bytes already seen changes nothing.
        let down = 5000 + (head.len() + first.len()) as u32;
        f.segment(&seg(315, false, down - 5, &b.as_bytes()[b.len() - 5..]));
        send(&mut f, 400, false, second.as_bytes());
        send(&mut f, 500, false, tail.as_bytes());
        let out = f.finish();
        assert_eq!(out.broken_connections, 0);
        assert_eq!(out.exchanges.len(), 1);
        let e = &out.exchanges[0];
        assert_eq!(e.request_id.as_deref(), Some("inferbench-7"));
        assert_eq!((e.request_ns, e.nth, e.complete), (100, 0, true));
        assert_eq!(e.tokens_ns, vec![310, 400], "the first token is the packet that completed its event");
    }

    fn event_done() -> String {
        let data = "data: [DONE]\n\n";
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    #[test]
    fn requests_on_one_connection_pair_with_answers_in_order_and_gaps_break_only_their_connection() {
        let r = |id: u32| format!("POST / HTTP/1.1\r\nX-Request-Id: p{id}\r\nContent-Length: 0\r\n\r\n");
        let answer = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}{}0\r\n\r\n", event("x"), event_done());
        let mut f = Follower::new(8000, Backend::OpenAi);
        let (mut up, mut down) = (0u32, 0u32);
        for (i, t) in [(0u32, 10u64), (1, 20)] {
            let q = r(i);
            f.segment(&seg(t, true, up, q.as_bytes()));
            up += q.len() as u32;
            f.segment(&seg(t + 5, false, down, answer.as_bytes()));
            down += answer.len() as u32;
        }
        // A third request, then an answer that starts past a hole in the sequence.
        let q = r(2);
        f.segment(&seg(30, true, up, q.as_bytes()));
        f.segment(&seg(35, false, down + 100, answer.as_bytes()));
        let out = f.finish();
        let got: Vec<_> =
            out.exchanges.iter().map(|e| (e.request_id.clone().unwrap(), e.nth, e.request_ns, e.tokens_ns.clone(), e.complete)).collect();
        assert_eq!(
            got,
            vec![("p0".into(), 0, 10, vec![15], true), ("p1".into(), 1, 20, vec![25], true), ("p2".into(), 2, 30, vec![], false)]
        );
        assert_eq!(out.broken_connections, 1);
    }
}
