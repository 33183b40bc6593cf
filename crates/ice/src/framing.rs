//! RFC 4571 framing, which ICE-TCP (RFC 6544 §3) puts around every STUN
//! message and media packet on a TCP connection: a 16-bit length, then
//! that many bytes.

/// Most bytes a frame carries.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Appends `payload` with its length prefix to `out`; false (and nothing
/// written) if it is longer than a frame can be.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = u16::try_from(payload.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    true
}

/// Cuts a TCP byte stream into frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's payload, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let pending = &self.buf[self.start..];
        let header = pending.get(..2)?;
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        if pending.len() < 2 + len {
            // Keep the buffer from growing without bound: move the partial
            // frame to the front before reading more.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            return None;
        }
        let begin = self.start + 2;
        self.start = begin + len;
        self.buf.get(begin..begin + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let mut stream = Vec::new();
        assert!(frame(b"hello", &mut stream));
        assert!(frame(b"", &mut stream));
        assert!(frame(&[7; 300], &mut stream));
        for split in 0..stream.len() {
            let mut decoder = FrameDecoder::new();
            let mut frames = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                decoder.push(part);
                while let Some(f) = decoder.next_frame() {
                    frames.push(f.to_vec());
                }
            }
            assert_eq!(
                frames,
                vec![b"hello".to_vec(), Vec::new(), vec![7; 300]],
                "split at {split}"
            );
        }
        assert!(!frame(&vec![0; MAX_FRAME + 1], &mut Vec::new()));
    }
}
