//! Walking a JSON document too large to hold, over a stream: its objects'
//! keys and arrays' elements are handed out one at a time, and each value
//! is either skipped or captured as raw bytes for `serde_json::from_slice`.
//!
//! Why not a serde visitor over `serde_json::from_reader`: that reads the
//! stream one byte at a time through `io::Read` and decodes every string
//! it skips, which held a webrtc-internals dump to 82 MB/s (BENCHMARKS.md).
//! Here the bytes are scanned in large chunks (`memchr` through strings),
//! what is skipped is never decoded, and what is read is parsed from a
//! slice. Only the structure is checked while walking (brackets and
//! strings closed before the end); a captured value is checked by
//! serde_json when it is parsed.

use std::io::Read;

use memchr::memchr2;

/// How much is read from the stream at a time.
const CHUNK: usize = 256 * 1024;
/// The longest key taken: no format this reads has keys near it.
const MAX_KEY: usize = 64 * 1024;

/// Why a walk stopped.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// The stream could not be read.
    Io(std::io::Error),
    /// The document is not what it should be here (1-based line).
    Damaged {
        /// Where.
        line: usize,
        /// What was found instead.
        reason: String,
    },
}

/// The state of a value being scanned: how deep in brackets, and whether
/// inside a string (after a backslash).
#[derive(Clone, Copy, Default)]
struct Scan {
    depth: usize,
    in_string: bool,
    escape: bool,
}

impl Scan {
    /// Whether the value has ended.
    fn done(&self) -> bool {
        self.depth == 0 && !self.in_string
    }
}

/// A JSON document read from `R`, a chunk at a time.
pub(crate) struct Walker<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    /// Newlines in the chunks already consumed.
    lines_before: usize,
}

impl<R: Read> Walker<R> {
    /// A walk over `reader` from its first byte.
    pub(crate) fn new(reader: R) -> Self {
        Walker {
            reader,
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            lines_before: 0,
        }
    }

    /// The 1-based line of the next byte.
    pub(crate) fn line(&self) -> usize {
        self.lines_before + memchr::memchr_iter(b'\n', &self.buf[..self.pos]).count() + 1
    }

    fn damaged(&self, reason: impl Into<String>) -> WalkError {
        WalkError::Damaged {
            line: self.line(),
            reason: reason.into(),
        }
    }

    /// Makes at least one unread byte available; false at the end.
    fn fill(&mut self) -> Result<bool, WalkError> {
        if self.pos < self.len {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.lines_before += memchr::memchr_iter(b'\n', &self.buf[..self.len]).count();
        self.pos = 0;
        self.len = 0;
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WalkError::Io(e)),
            }
        }
    }

    /// The next byte that is not white space, not consumed.
    fn peek(&mut self) -> Result<Option<u8>, WalkError> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let chunk = &self.buf[self.pos..self.len];
            match chunk.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    self.pos += i;
                    return Ok(Some(self.buf[self.pos]));
                }
                None => self.pos = self.len,
            }
        }
    }

    /// Consumes `expected`, the next byte that is not white space.
    fn expect(&mut self, expected: u8, what: &str) -> Result<(), WalkError> {
        match self.peek()? {
            Some(b) if b == expected => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.damaged(format!("expected {what}, found {:?}", char::from(b)))),
            None => Err(self.damaged(format!("the file ends where {what} should be"))),
        }
    }

    /// Enters an object if one comes next (true); otherwise nothing is
    /// consumed.
    pub(crate) fn enter_object(&mut self) -> Result<bool, WalkError> {
        self.enter(b'{')
    }

    /// Enters an array if one comes next (true); otherwise nothing is
    /// consumed.
    pub(crate) fn enter_array(&mut self) -> Result<bool, WalkError> {
        self.enter(b'[')
    }

    fn enter(&mut self, open: u8) -> Result<bool, WalkError> {
        if self.peek()? == Some(open) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// The next key of the object entered (its `:` consumed), or `None` at
    /// its end. `first` is true for the first call on an object.
    pub(crate) fn next_key(&mut self, first: bool) -> Result<Option<String>, WalkError> {
        if !self.next_member(b'}', first)? {
            return Ok(None);
        }
        if self.peek()? != Some(b'"') {
            return Err(self.damaged("expected a key (a string)"));
        }
        let mut raw = Vec::new();
        if !self.capture(&mut raw, MAX_KEY)? {
            return Err(self.damaged("a key longer than 64 KiB"));
        }
        // Between its quotes (a captured string is at least `""`).
        let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
        let key = if inner.contains(&b'\\') {
            serde_json::from_slice::<String>(&raw)
                .map_err(|e| self.damaged(format!("a key that is no JSON string: {e}")))?
        } else {
            String::from_utf8_lossy(inner).into_owned()
        };
        self.expect(b':', "':' after a key")?;
        Ok(Some(key))
    }

    /// Whether another element of the array entered follows (false at its
    /// end). `first` is true for the first call on an array.
    pub(crate) fn next_element(&mut self, first: bool) -> Result<bool, WalkError> {
        self.next_member(b']', first)
    }

    fn next_member(&mut self, close: u8, first: bool) -> Result<bool, WalkError> {
        if self.peek()? == Some(close) {
            self.pos += 1;
            return Ok(false);
        }
        if !first {
            self.expect(b',', "',' or the end of the object or array")?;
        }
        Ok(true)
    }

    /// Skips the next value.
    pub(crate) fn skip(&mut self) -> Result<(), WalkError> {
        self.value(None, 0)
    }

    /// Appends the next value's bytes to `out` (cleared first); false, with
    /// the value skipped and `out` empty, if it is longer than `max` bytes.
    pub(crate) fn capture(&mut self, out: &mut Vec<u8>, max: usize) -> Result<bool, WalkError> {
        out.clear();
        self.value(Some(out), max)?;
        if out.len() > max {
            out.clear();
            return Ok(false);
        }
        Ok(true)
    }

    /// Consumes the next value, appending its bytes to `out` (while they
    /// stay within `max`).
    fn value(&mut self, mut out: Option<&mut Vec<u8>>, max: usize) -> Result<(), WalkError> {
        let Some(first) = self.peek()? else {
            return Err(self.damaged("the file ends where a value should be"));
        };
        let mut scan = match first {
            b'"' => Scan {
                in_string: true,
                ..Scan::default()
            },
            b'{' | b'[' => Scan {
                depth: 1,
                ..Scan::default()
            },
            b'}' | b']' | b',' | b':' => {
                return Err(
                    self.damaged(format!("expected a value, found {:?}", char::from(first)))
                );
            }
            _ => return self.scalar(out, max),
        };
        keep(&mut out, &self.buf[self.pos..=self.pos], max);
        self.pos += 1;
        while !scan.done() {
            if !self.fill()? {
                return Err(self.damaged(if scan.in_string {
                    "the file ends inside a string"
                } else {
                    "the file ends inside an object or array"
                }));
            }
            let chunk = &self.buf[self.pos..self.len];
            let used = scan_chunk(&mut scan, chunk);
            keep(&mut out, &chunk[..used], max);
            self.pos += used;
        }
        Ok(())
    }

    /// A number, `true`, `false` or `null`: up to the next delimiter.
    fn scalar(&mut self, mut out: Option<&mut Vec<u8>>, max: usize) -> Result<(), WalkError> {
        loop {
            if !self.fill()? {
                return Ok(());
            }
            let chunk = &self.buf[self.pos..self.len];
            let end = chunk
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']' | b':') || b.is_ascii_whitespace());
            let used = end.unwrap_or(chunk.len());
            keep(&mut out, &chunk[..used], max);
            self.pos += used;
            if end.is_some() {
                return Ok(());
            }
        }
    }
}

/// Appends `bytes` to `out` unless that passes `max` (then one byte more
/// than `max` marks the value as too long, and nothing else is kept).
fn keep(out: &mut Option<&mut Vec<u8>>, bytes: &[u8], max: usize) {
    if let Some(out) = out {
        if out.len() > max {
            return;
        }
        if out.len() + bytes.len() > max {
            out.resize(max + 1, 0);
            return;
        }
        out.extend_from_slice(bytes);
    }
}

/// Scans `chunk` until the value of `scan` ends (or the chunk does);
/// returns the bytes used.
fn scan_chunk(scan: &mut Scan, chunk: &[u8]) -> usize {
    let mut i = 0;
    while i < chunk.len() {
        if scan.in_string {
            if scan.escape {
                scan.escape = false;
                i += 1;
                continue;
            }
            match memchr2(b'"', b'\\', &chunk[i..]) {
                None => return chunk.len(),
                Some(k) => {
                    if chunk[i + k] == b'\\' {
                        scan.escape = true;
                    } else {
                        scan.in_string = false;
                    }
                    i += k + 1;
                    if scan.done() {
                        return i;
                    }
                }
            }
            continue;
        }
        let b = chunk[i];
        i += 1;
        match b {
            b'"' => scan.in_string = true,
            b'{' | b'[' => scan.depth += 1,
            b'}' | b']' => {
                scan.depth -= 1;
                if scan.depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte at a time: every value crosses
    /// chunk boundaries.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    fn members(text: &str, trickle: bool) -> Result<Vec<(String, String)>, WalkError> {
        let walk = |mut w: Walker<Box<dyn Read + '_>>| {
            let mut out = Vec::new();
            assert!(w.enter_object()?);
            let mut first = true;
            while let Some(key) = w.next_key(first)? {
                first = false;
                let mut raw = Vec::new();
                if key == "skipped" {
                    w.skip()?;
                } else {
                    assert!(w.capture(&mut raw, 64)?);
                }
                out.push((key, String::from_utf8(raw).unwrap()));
            }
            Ok(out)
        };
        if trickle {
            walk(Walker::new(Box::new(Trickle(text.as_bytes()))))
        } else {
            walk(Walker::new(Box::new(text.as_bytes())))
        }
    }

    #[test]
    fn keys_and_values_come_out_whole_however_the_stream_is_cut() {
        let text = r#" { "a\"b" : [1, {"x": "}]\\"}], "n":-1.5e3 , "skipped": {"deep": [[["]"]]]}, "s": "q\"\\", "t" :true}"#;
        for trickle in [false, true] {
            let got = members(text, trickle).unwrap();
            let want = [
                ("a\"b", r#"[1, {"x": "}]\\"}]"#),
                ("n", "-1.5e3"),
                ("skipped", ""),
                ("s", r#""q\"\\""#),
                ("t", "true"),
            ];
            assert_eq!(got.len(), want.len());
            for ((k, v), (wk, wv)) in got.iter().zip(want) {
                assert_eq!((k.as_str(), v.as_str()), (wk, wv));
            }
        }
    }

    #[test]
    fn a_cut_document_says_where_it_stopped() {
        for text in [
            "{\"a\":\n[1,\n2",
            "{\"a\": \"open",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
        ] {
            for trickle in [false, true] {
                match members(text, trickle) {
                    Err(WalkError::Damaged { line, .. }) => assert!(line >= 1),
                    other => panic!("{text:?}: {:?}", other.map(|m| m.len())),
                }
            }
        }
    }

    #[test]
    fn a_value_longer_than_allowed_is_skipped_not_kept() {
        let mut w = Walker::new(&br#"["0123456789abcdef", 1]"#[..]);
        assert!(w.enter_array().unwrap());
        assert!(w.next_element(true).unwrap());
        let mut out = Vec::new();
        assert!(!w.capture(&mut out, 8).unwrap());
        assert!(out.is_empty());
        assert!(w.next_element(false).unwrap());
        assert!(w.capture(&mut out, 8).unwrap());
        assert_eq!(out, b"1");
        assert!(!w.next_element(false).unwrap());
    }
}
