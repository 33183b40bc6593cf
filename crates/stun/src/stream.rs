//! Framing STUN messages and ChannelData over a byte stream (TCP or TLS,
//! RFC 8656 §12.5 and RFC 6062).
//!
//! A stream carries no boundaries: a read may hold half a message or
//! several. [`StreamDecoder`] buffers what arrives and hands out whole
//! frames, telling STUN (first two bits `00`, length from the header) from
//! ChannelData (`01`, padded to a multiple of 4 on streams).

use crate::channel_data::{ChannelData, is_valid_channel};
use crate::message::declared_len;

/// Why a stream cannot be framed any further. The connection should be
/// closed: framing is lost for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The next frame starts with bits that are neither STUN nor ChannelData.
    #[error("byte {0:#04x} starts neither a STUN message nor ChannelData")]
    UnknownFrame(u8),
    /// A STUN header declares a length that is not a multiple of 4.
    #[error("STUN length {0} is not a multiple of 4")]
    UnalignedStun(u16),
    /// A ChannelData header names an invalid channel.
    #[error("ChannelData on invalid channel {0:#06x}")]
    InvalidChannel(u16),
    /// An MS-TURN frame header of a type other than control (2) or data (3).
    #[error("MS-TURN frame type {0:#04x} is neither control nor data")]
    UnknownMsFrame(u8),
}

/// One frame cut from a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// What an MS-TURN frame header framed ([`Framing::MsTurn`]): an
    /// MS-TURN message, or data for the active destination.
    MsTurn(&'a [u8]),
    /// A whole STUN message, ready for [`crate::Message::parse`].
    Stun(&'a [u8]),
    /// A ChannelData message, its padding removed.
    ChannelData(ChannelData<'a>),
}

/// The length of the frame at the front of `bytes`, padding included, or
/// `None` while the 4 bytes that say it have not all arrived.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>, StreamError> {
    let &[b0, b1, l0, l1, ..] = bytes else {
        return match bytes.first() {
            Some(&b) if b >> 6 > 1 => Err(StreamError::UnknownFrame(b)),
            _ => Ok(None),
        };
    };
    match b0 >> 6 {
        0 => {
            let len = u16::from_be_bytes([l0, l1]);
            if len % 4 != 0 {
                return Err(StreamError::UnalignedStun(len));
            }
            Ok(declared_len(bytes))
        }
        1 => {
            let channel = u16::from_be_bytes([b0, b1]);
            if !is_valid_channel(channel) {
                return Err(StreamError::InvalidChannel(channel));
            }
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            Ok(Some(4 + len.next_multiple_of(4)))
        }
        _ => Err(StreamError::UnknownFrame(b0)),
    }
}

/// How a stream is cut into messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// STUN messages and ChannelData back to back (RFC 8656 §11.5): each
    /// says its own length.
    #[default]
    Turn,
    /// Microsoft's MS-TURN over TCP: every message behind a 4-byte header
    /// (type 2 for TURN control, 3 for data; a zero byte; a 16-bit length).
    /// [`StreamDecoder::next_raw`] returns what the header frames.
    MsTurn,
}

/// Buffers a byte stream and cuts it into [`Frame`]s.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    framing: Framing,
    /// With [`Framing::MsTurn`]: whether frames lack their length (libnice),
    /// once the first frame told.
    ms_lack_length: Option<bool>,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes.
    start: usize,
    /// Length of the frame last returned, consumed at the next call.
    returned: usize,
}

/// Unconsumed bytes are moved to the front once this many are dead.
const COMPACT_AFTER: usize = 16 * 1024;

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts what follows with `framing` (a server learns it from a
    /// connection's first bytes: see [`crate::ms::starts_tcp_framed`]).
    pub fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// How the stream is being cut.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.reclaim();
        self.buf.extend_from_slice(bytes);
    }

    /// A zeroed slice of `len` bytes at the end of the buffer to read into
    /// directly; follow with [`StreamDecoder::commit`] with the count read.
    pub fn read_buf(&mut self, len: usize) -> &mut [u8] {
        self.reclaim();
        let old = self.buf.len();
        self.buf.resize(old + len, 0);
        &mut self.buf[old..]
    }

    /// Keeps the first `read` bytes of the last [`StreamDecoder::read_buf`].
    pub fn commit(&mut self, read_len: usize, read: usize) {
        let keep = self.buf.len() - read_len + read.min(read_len);
        self.buf.truncate(keep);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.pending().len()
    }

    /// The buffered bytes not yet returned as frames: what a connection
    /// that stops framing (an RFC 6062 data connection) must pass on.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start + self.returned..]
    }

    /// The next whole frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, StreamError> {
        let framing = self.framing;
        let Some(frame) = self.next_raw()? else {
            return Ok(None);
        };
        if framing == Framing::MsTurn {
            return Ok(Some(Frame::MsTurn(frame)));
        }
        if frame[0] >> 6 == 0 {
            return Ok(Some(Frame::Stun(frame)));
        }
        let channel = u16::from_be_bytes([frame[0], frame[1]]);
        let data_len = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
        Ok(Some(Frame::ChannelData(ChannelData {
            channel,
            data: &frame[4..4 + data_len],
        })))
    }

    /// The next whole frame as it was on the wire (ChannelData with its
    /// header and padding), or `None` until more bytes arrive.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>, StreamError> {
        self.start += std::mem::take(&mut self.returned);
        let available = &self.buf[self.start..];
        if self.framing == Framing::MsTurn {
            if self.ms_lack_length.is_none() {
                self.ms_lack_length = crate::ms::tcp_frames_lack_length(available);
            }
            let Some(lack_length) = self.ms_lack_length else {
                return Ok(None);
            };
            let Some((start, end)) = crate::ms::tcp_frame(available, lack_length)? else {
                return Ok(None);
            };
            let Some(payload) = available.get(start..end) else {
                return Ok(None);
            };
            self.returned = end;
            return Ok(Some(payload));
        }
        let Some(len) = frame_len(available)? else {
            return Ok(None);
        };
        let Some(frame) = available.get(..len) else {
            return Ok(None);
        };
        self.returned = len;
        Ok(Some(frame))
    }

    /// Drops consumed bytes, moving the rest to the front when worthwhile.
    fn reclaim(&mut self) {
        self.start += std::mem::take(&mut self.returned);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= COMPACT_AFTER {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}
