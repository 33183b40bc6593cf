//! ChannelData messages (RFC 8656 §12.4): a 4-byte header, channel number
//! and length, in front of application data, for relaying with less
//! overhead than Send and Data indications.

/// The lowest valid channel number.
pub const MIN_CHANNEL: u16 = 0x4000;
/// The highest channel number accepted. RFC 8656 narrowed the range to
/// 0x4FFF, but RFC 5766's 0x4000..=0x7FFF is what deployed clients (coturn's
/// own, restund, libre) still pick from, and coturn accepts it; so does
/// edgeice. Channels it chooses itself stay below 0x5000.
pub const MAX_CHANNEL: u16 = 0x7FFF;
/// Size of the ChannelData header.
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// Why bytes are not a ChannelData message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    /// Fewer than 4 bytes.
    #[error("shorter than a ChannelData header")]
    TooShort,
    /// The channel number is outside 0x4000..=0x7FFF.
    #[error("channel number {0:#06x} outside 0x4000..=0x7FFF")]
    InvalidChannel(u16),
    /// The length field says more bytes than there are.
    #[error("length field {declared} exceeds the {available} bytes present")]
    Truncated {
        /// Length from the header.
        declared: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// More bytes follow the data than padding to 4 allows.
    #[error("{0} bytes trail the data, more than padding allows")]
    TrailingBytes(usize),
}

/// A ChannelData message, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel number.
    pub channel: u16,
    /// The application data.
    pub data: &'a [u8],
}

/// Whether `channel` is a valid channel number.
pub const fn is_valid_channel(channel: u16) -> bool {
    channel >= MIN_CHANNEL && channel <= MAX_CHANNEL
}

impl<'a> ChannelData<'a> {
    /// Parses a datagram holding one ChannelData message. Padding to a
    /// multiple of 4 is accepted (required over TCP, optional over UDP).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ChannelDataError> {
        let Some((&[c0, c1, l0, l1], rest)) = bytes.split_first_chunk::<4>() else {
            return Err(ChannelDataError::TooShort);
        };
        let channel = u16::from_be_bytes([c0, c1]);
        if !is_valid_channel(channel) {
            return Err(ChannelDataError::InvalidChannel(channel));
        }
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len > rest.len() {
            return Err(ChannelDataError::Truncated {
                declared: len,
                available: rest.len(),
            });
        }
        if rest.len() > len.next_multiple_of(4) {
            return Err(ChannelDataError::TrailingBytes(rest.len() - len));
        }
        Ok(ChannelData {
            channel,
            data: &rest[..len],
        })
    }

    /// The 4-byte header for `len` bytes of data on `channel`.
    pub fn header(channel: u16, len: u16) -> [u8; 4] {
        let [c0, c1] = channel.to_be_bytes();
        let [l0, l1] = len.to_be_bytes();
        [c0, c1, l0, l1]
    }

    /// Writes this message into `out` (cleared first); `pad` adds the
    /// zero padding to 4 bytes that stream transports require.
    pub fn encode(&self, pad: bool, out: &mut Vec<u8>) -> Result<(), ChannelDataError> {
        if !is_valid_channel(self.channel) {
            return Err(ChannelDataError::InvalidChannel(self.channel));
        }
        let Ok(len) = u16::try_from(self.data.len()) else {
            return Err(ChannelDataError::Truncated {
                declared: self.data.len(),
                available: usize::from(u16::MAX),
            });
        };
        out.clear();
        out.extend_from_slice(&Self::header(self.channel, len));
        out.extend_from_slice(self.data);
        if pad {
            out.resize(
                CHANNEL_DATA_HEADER_LEN + self.data.len().next_multiple_of(4),
                0,
            );
        }
        Ok(())
    }
}
