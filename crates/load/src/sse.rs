//! Incremental Server-Sent Events parsing: bytes in as they arrive, `data` payloads out.
//!
//! Hand-written rather than taken from a crate because it sits on the per-token hot path: it
//! borrows the payload instead of allocating an event per token, and only the `data` field matters
//! to a benchmark client (`event`, `id`, `retry` and comments are skipped, as the spec allows).

/// Splits a byte stream into SSE events and hands each event's `data` to a callback.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `on_data` with the data of every event completed by them.
    /// Returns early with the callback's error, if it gives one.
    pub fn feed<E>(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = memchr(b'\n', &self.buf[start..]) {
            let end = start + nl;
            let mut line = &self.buf[start..end];
            start = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                if self.has_data {
                    let r = on_data(&self.data);
                    self.data.clear();
                    self.has_data = false;
                    if r.is_err() {
                        self.buf.drain(..start);
                        return r;
                    }
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// True when bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.buf.iter().all(u8::is_ascii_whitespace)
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed::<()>(c.as_bytes(), |d| {
                out.push(String::from_utf8(d.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn splits_events_across_arbitrary_chunk_boundaries() {
        let s = "data: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\n: comment\nevent: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
        let whole = events(&[s]);
        assert_eq!(whole, vec!["{\"a\":1}", "{\"b\":2}", "l1\nl2", "[DONE]"]);
        let bytes: Vec<String> = s.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(events(&refs), whole);
    }

    #[test]
    fn callback_error_stops_and_partial_is_reported() {
        let mut p = SseParser::new();
        let r = p.feed(b"data: x\n\ndata: y\n\n", |_| Err("stop"));
        assert_eq!(r, Err("stop"));
        let mut p = SseParser::new();
        p.feed::<()>(b"data: {\"trunc", |_| Ok(())).unwrap();
        assert!(p.has_partial());
    }
}
