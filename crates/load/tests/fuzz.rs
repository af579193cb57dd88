//! Fuzz targets (property-based, with shrinking) for what the client parses from servers: the SSE
//! stream, the HTTP/1.1 response head and body framing, and the OpenAI / TGI chunks. `scripts/fuzz` runs them for minutes with fresh seeds;
//! the test suite runs a short pass. Counterexamples found are kept in `tests/fuzz.proptest-regressions` and re-run first.

use bytes::{Buf, BytesMut};
use inferbench_load::http1::{BodyDecoder, Decoded, Head, MAX_HEAD_BYTES, MAX_LINE_BYTES};
use inferbench_load::sse::SseParser;
use inferbench_load::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    let cases = std::env::var("INFERBENCH_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let seed = std::env::var("INFERBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).map_or(RngSeed::Random, RngSeed::Fixed);
    Config { cases, rng_seed: seed, ..Config::default() }
}

fn events(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut p = SseParser::with_limit(1 << 20);
    let mut out = Vec::new();
    for c in chunks {
        p.feed::<()>(c, |d| {
            out.push(d.to_vec());
            Ok(())
        })
        .unwrap();
    }
    out
}

/// Bytes that look like SSE often enough to reach every state.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b": comment\n".to_vec()),
        Just(b"event: x\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    /// However the bytes are cut into reads, the same events come out, and nothing panics.
    #[test]
    fn sse_events_do_not_depend_on_read_boundaries(bytes in sse_bytes(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let whole = events(&[&bytes]);
        prop_assert_eq!(events(&cut(&bytes, &cuts)), whole);
    }

    /// Arbitrary bytes never panic any chunk parser.
    #[test]
    fn chunks_of_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for b in [Backend::OpenAi, Backend::OpenAiChat, Backend::Vllm, Backend::Tgi] {
            let _ = b.parse_chunk(&bytes);
        }
    }

    /// The fast path never accepts what the full parse would not, nor reads different text.
    #[test]
    fn the_chunk_fast_path_agrees_with_the_full_parse(text in "\\PC{0,24}", extra in 0u8..6, noise in proptest::collection::vec(any::<u8>(), 0..8)) {
        let t = serde_json::to_string(&text).unwrap();
        let mut chunks: Vec<String> = vec![
            format!(r#"{{"id":"c","choices":[{{"index":0,"text":{t},"finish_reason":null}}]}}"#),
            format!(r#"{{"choices":[{{"index":0,"delta":{{"content":{t}}}}}]}}"#),
            format!(r#"{{"choices":[{{"index":0,"text":{t}}}],"usage":{{"prompt_tokens":{extra},"completion_tokens":1}}}}"#),
            format!(r#"{{"choices":[{{"index":0, "text" : {t} }}]}}"#),
        ];
        // Truncated and noisy variants: malformed chunks must stay errors on both paths.
        let cut = chunks[0].len() * usize::from(extra) / 6;
        let truncated = chunks[0].as_bytes()[..cut].to_vec();
        let mut noisy = chunks[1].clone().into_bytes();
        noisy.extend_from_slice(&noise);
        chunks.truncate(4);
        for b in [Backend::OpenAi, Backend::OpenAiChat] {
            for c in chunks.iter().map(|c| c.as_bytes()).chain([truncated.as_slice(), noisy.as_slice()]) {
                let fast = b.parse_chunk(c);
                let full = b.parse_chunk_fully(c);
                match (&fast, &full) {
                    (Ok(f), Ok(g)) => prop_assert_eq!(f, g, "{} {}", b, String::from_utf8_lossy(c)),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "{b}: fast {fast:?} vs full {full:?} on {}", String::from_utf8_lossy(c)),
                }
            }
        }
    }
}

/// What a whole response came to, as the client's read loop would see it.
#[derive(Debug, PartialEq, Eq)]
enum Response {
    /// No head: the error, or `None` for a close before one arrived.
    NoHead(Option<String>),
    /// A head and the body bytes decoded; `end` is `Ok(true)` for a body that ended by its
    /// framing, `Ok(false)` for one ended by the close, or the error.
    Body { status: u16, keep_alive: bool, body: Vec<u8>, end: Result<bool, String> },
}

/// Feeds `pieces` (the reads, then a close) through the head parser and body decoder, as
/// `Conn` does, and returns the response and the most bytes left buffered between reads while
/// the head, then the body, was incomplete.
fn drive(pieces: &[&[u8]]) -> (Response, usize, usize) {
    let mut buf = BytesMut::new();
    let (mut held_head, mut held_body) = (0, 0);
    let mut got: Option<(Head, BodyDecoder)> = None;
    let mut body = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        if got.is_none() {
            match Head::parse(&buf) {
                Err(e) => return (Response::NoHead(Some(e.to_string())), held_head, held_body),
                Ok(None) => {
                    held_head = held_head.max(buf.len());
                    continue;
                }
                Ok(Some((head, n))) => {
                    buf.advance(n);
                    got = Some((head, BodyDecoder::new(&head)));
                }
            }
        }
        let Some((head, dec)) = got.as_mut() else { continue };
        let (status, keep_alive) = (head.status, head.keep_alive());
        match dec.decode::<()>(&mut buf, |d| {
            body.extend_from_slice(d);
            Ok(())
        }) {
            Ok(Decoded::NeedMore) => held_body = held_body.max(buf.len()),
            Ok(Decoded::Done) => return (Response::Body { status, keep_alive, body, end: Ok(true) }, held_head, held_body),
            Ok(Decoded::Stopped(())) => unreachable!("the callback never stops"),
            Err(e) => return (Response::Body { status, keep_alive, body, end: Err(e.to_string()) }, held_head, held_body),
        }
    }
    let r = match got {
        None => Response::NoHead(None),
        Some((head, dec)) => {
            let end = dec.finish().map(|()| false).map_err(|e| e.to_string());
            Response::Body { status: head.status, keep_alive: head.keep_alive(), body, end }
        }
    };
    (r, held_head, held_body)
}

/// `bytes` split at the given points, as reads would deliver it.
fn cut<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for c in at {
        pieces.push(&bytes[last..c]);
        last = c;
    }
    pieces.push(&bytes[last..]);
    pieces
}

/// Bytes that look like an HTTP/1.1 response often enough to reach every state, with long runs
/// to reach the size bounds.
fn http_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
        1 => Just(b"HTTP/1.0 204 No Content\r\n".to_vec()),
        1 => Just(b"HTTP/1.1 101 Switching\r\n".to_vec()),
        2 => Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        2 => Just(b"Content-Length: 5\r\n".to_vec()),
        1 => Just(b"Content-Length: 99999999999999999999999\r\n".to_vec()),
        1 => Just(b"Connection: close\r\n".to_vec()),
        1 => Just(b"Connection: keep-alive\r\n".to_vec()),
        4 => Just(b"\r\n".to_vec()),
        2 => Just(b"5\r\nhello\r\n".to_vec()),
        1 => Just(b"0\r\n".to_vec()),
        1 => Just(b"a;ext=\"x\"\r\n".to_vec()),
        1 => Just(b"ffffffffffffffffff\r\n".to_vec()),
        1 => Just(b"X-Trailer: t\r\n".to_vec()),
        1 => Just(vec![b'f'; 9000]),
        1 => Just(vec![b'a'; 70_000]),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// A well-formed response: its bytes, status, body and whether it may be kept alive.
fn http_response() -> impl Strategy<Value = (Vec<u8>, u16, Vec<u8>, bool)> {
    (
        prop_oneof![Just(200u16), Just(400), Just(404), Just(500), Just(503)],
        proptest::collection::vec(any::<u8>(), 0..600),
        0u8..3,
        proptest::collection::vec(1usize..200, 1..8),
        proptest::bool::ANY,
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,24}"), 0..4),
    )
        .prop_map(|(status, body, framing, sizes, close, extra)| {
            let mut r = format!("HTTP/1.1 {status} X\r\n").into_bytes();
            for (k, v) in &extra {
                let k = format!("X-{k}");
                r.extend_from_slice(format!("{k}: {}\r\n", v.trim()).as_bytes());
            }
            let keep_alive = !close && framing != 2;
            if close {
                r.extend_from_slice(b"Connection: close\r\n");
            }
            match framing {
                0 => {
                    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                    r.extend_from_slice(&body);
                }
                1 => {
                    r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    let mut rest = &body[..];
                    let mut i = 0;
                    while !rest.is_empty() {
                        let n = sizes[i % sizes.len()].min(rest.len());
                        let ext = if i % 3 == 1 { ";name=value" } else { "" };
                        r.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                        r.extend_from_slice(&rest[..n]);
                        r.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                        i += 1;
                    }
                    r.extend_from_slice(if sizes[0] % 2 == 0 { b"0\r\nX-Trailer: t\r\n\r\n" } else { b"0\r\n\r\n" });
                }
                _ => {
                    r.extend_from_slice(b"Connection: close\r\n\r\n");
                    r.extend_from_slice(&body);
                }
            }
            (r, status, body, keep_alive)
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes from a server: no panic, the same response however the reads are cut, and
    /// never more buffered than the head and line bounds.
    #[test]
    fn http_responses_do_not_depend_on_read_boundaries(bytes in http_bytes(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let (whole, _, _) = drive(&[&bytes]);
        let (pieces, held_head, held_body) = drive(&cut(&bytes, &cuts));
        prop_assert_eq!(pieces, whole);
        prop_assert!(held_head <= MAX_HEAD_BYTES, "{} bytes of head buffered", held_head);
        prop_assert!(held_body <= MAX_LINE_BYTES + 1, "{} bytes of body framing buffered", held_body);
    }

    /// A well-formed response, cut anywhere, decodes to its status and exact body.
    #[test]
    fn well_formed_http_responses_decode_to_their_body((bytes, status, body, keep_alive) in http_response(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let (r, _, _) = drive(&cut(&bytes, &cuts));
        let Response::Body { status: s, keep_alive: k, body: b, end } = r else {
            return Err(TestCaseError::fail(format!("no head: {r:?}")));
        };
        prop_assert_eq!(s, status);
        prop_assert_eq!(k, keep_alive);
        prop_assert_eq!(b, body);
        prop_assert!(end.is_ok(), "{:?}", end);
    }
}
