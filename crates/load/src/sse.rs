//! Incremental Server-Sent Events parsing: bytes in as they arrive, `data` payloads out.
//!
//! Hand-written rather than taken from a crate because it sits on the per-token hot path: events
//! wholly inside the bytes just read are handed out as slices of those bytes (no copy, no
//! allocation); only an event split across reads is buffered. Only the `data` field matters to a
//! benchmark client (`event`, `id`, `retry` and comments are skipped, as the spec allows).

/// Splits a byte stream into SSE events and hands each event's `data` to a callback.
#[derive(Debug, Default)]
pub struct SseParser {
    /// An incomplete line carried over from the previous read.
    partial: Vec<u8>,
    /// The data of an event whose lines are still arriving (multi-line or split events).
    data: Vec<u8>,
    has_data: bool,
    /// Most bytes one line or event may buffer; `None` for no bound.
    limit: Option<usize>,
    overflow: bool,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that stops buffering past `max` bytes of one line or event (see
    /// [`SseParser::overflowed`]): a server streaming one endless line cannot exhaust memory.
    pub fn with_limit(max: usize) -> Self {
        Self { limit: Some(max), ..Self::default() }
    }

    /// True once a line or an event outgrew the limit; nothing more is buffered.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    fn over(&mut self) -> bool {
        if let Some(max) = self.limit {
            if self.partial.len() > max || self.data.len() > max {
                self.overflow = true;
                self.partial = Vec::new();
                self.data = Vec::new();
            }
        }
        self.overflow
    }

    /// Feeds bytes; calls `on_data` with the data of every event completed by them.
    /// Returns early with the callback's error, if it gives one.
    pub fn feed<E>(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.overflow {
            return Ok(());
        }
        let mut rest = bytes;
        if !self.partial.is_empty() {
            // Finish the carried-over line first.
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                self.over();
                return Ok(());
            };
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            self.line(&line, &mut on_data)?;
        }
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let line = &rest[..nl];
            // Fast path: a one-line event (`data: ...\n\n`) entirely in this read.
            if !self.has_data && rest.get(nl + 1) == Some(&b'\n') {
                // A CR before the LF ends the line too (found by the fuzz target: `\r\n\n`).
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(v) = line.strip_prefix(b"data:") {
                    on_data(v.strip_prefix(b" ").unwrap_or(v))?;
                    rest = &rest[nl + 2..];
                    continue;
                }
            }
            rest = &rest[nl + 1..];
            self.line(line, &mut on_data)?;
            if self.over() {
                return Ok(());
            }
        }
        self.partial.extend_from_slice(rest);
        self.over();
        Ok(())
    }

    fn line<E>(&mut self, line: &[u8], on_data: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                let r = on_data(&self.data);
                self.data.clear();
                return r;
            }
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        Ok(())
    }

    /// True when bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.partial.iter().all(u8::is_ascii_whitespace)
    }
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
        for cut in 0..s.len() {
            assert_eq!(events(&[&s[..cut], &s[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_endless_line_stops_buffering_at_the_limit() {
        let mut p = SseParser::with_limit(1000);
        let chunk = [b'x'; 300];
        for _ in 0..100 {
            p.feed::<()>(&chunk, |_| Ok(())).unwrap();
        }
        assert!(p.overflowed());
        assert!(p.partial.capacity() < 2000, "nothing past the limit stays buffered");
        // An ordinary stream under the limit is untouched.
        let mut p = SseParser::with_limit(1000);
        let mut n = 0;
        p.feed::<()>(b"data: a\n\ndata: b\n\n", |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert!(!p.overflowed() && n == 2);
    }

    #[test]
    fn callback_error_stops_and_partial_is_reported() {
        let mut p = SseParser::new();
        let r = p.feed(b"data: x\n\ndata: y\n\n", |_| Err("stop"));
        assert_eq!(r, Err("stop"));
        let mut p = SseParser::new();
        p.feed::<()>(b"data: {\"trunc", |_| Ok(())).unwrap();
        assert!(p.has_partial());
        let mut p = SseParser::new();
        p.feed::<()>(b"data: a\n", |_| Ok(())).unwrap();
        assert!(p.has_partial(), "an event without its blank line is unfinished");
    }
}
