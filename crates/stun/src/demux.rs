//! Telling apart the protocols that share a media port (RFC 7983, with
//! RFC 5761 for RTP and RTCP), from the first bytes of a datagram.

/// What a datagram on a multiplexed port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// STUN (first byte 0..=3).
    Stun,
    /// ZRTP (16..=19).
    Zrtp,
    /// DTLS (20..=63).
    Dtls,
    /// TURN ChannelData (64..=79).
    ChannelData,
    /// RTP (128..=191, payload type outside the RTCP range).
    Rtp,
    /// RTCP (128..=191, packet type 192..=223).
    Rtcp,
    /// Anything else, or an empty datagram.
    Unknown,
}

/// Classifies a datagram by its first one or two bytes.
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram {
        [0..=3, ..] => PacketKind::Stun,
        [16..=19, ..] => PacketKind::Zrtp,
        [20..=63, ..] => PacketKind::Dtls,
        [64..=79, ..] => PacketKind::ChannelData,
        [128..=191, second, ..] if (192..=223).contains(second) => PacketKind::Rtcp,
        [128..=191, _, ..] => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun);
        assert_eq!(classify(&[0x16, 0xfe]), PacketKind::Dtls);
        assert_eq!(classify(&[0x40, 0x00]), PacketKind::ChannelData);
        assert_eq!(classify(&[0x80, 0x60]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 0xc8]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x10]), PacketKind::Zrtp);
        assert_eq!(classify(&[0xff]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
    }
}
