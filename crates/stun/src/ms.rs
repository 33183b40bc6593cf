//! Microsoft's dialects: the numbers of MS-TURN ([MS-TURN], the TURN of
//! Lync and Skype for Business edges) and of MS-ICE2's connectivity checks.
//!
//! MS-TURN grew from an early TURN draft on RFC 3489: its header has no
//! magic cookie (the request carries a MAGIC-COOKIE *attribute* first
//! instead), REALM and NONCE have each other's numbers, addresses are plain
//! except MS-XOR-MAPPED-ADDRESS, and MESSAGE-INTEGRITY is computed over an
//! input zero-padded to 64 bytes
//! ([`crate::MessageBuilder::add_integrity_sha1_rfc3489`]). Messages are
//! built and parsed with the generic codec; this module names the numbers.

use crate::attribute::AttributeType;
use crate::header::{Class, HEADER_LEN, MessageType, Method};

/// The MAGIC-COOKIE attribute's value, which marks an MS-TURN message.
pub const MAGIC_COOKIE_VALUE: u32 = 0x72C6_4BC6;

/// MAGIC-COOKIE (0x000F): first attribute of every MS-TURN message.
pub const MAGIC_COOKIE: AttributeType = AttributeType(0x000F);
/// MS-ALTERNATE-SERVER (0x000E), a redirect.
pub const ALTERNATE_SERVER: AttributeType = AttributeType(0x000E);
/// BANDWIDTH (0x0010), kilobits per second a client asks for.
pub const BANDWIDTH: AttributeType = AttributeType(0x0010);
/// DESTINATION-ADDRESS (0x0011): the peer of a Send request or of Set
/// Active Destination, plain.
pub const DESTINATION_ADDRESS: AttributeType = AttributeType(0x0011);
/// REMOTE-ADDRESS (0x0012): the peer a Data indication comes from, plain.
pub const REMOTE_ADDRESS: AttributeType = AttributeType(0x0012);
/// DATA (0x0013), the same number as RFC 8656's.
pub const DATA: AttributeType = AttributeType(0x0013);
/// NONCE (0x0014): RFC 8489's REALM number.
pub const NONCE: AttributeType = AttributeType(0x0014);
/// REALM (0x0015): RFC 8489's NONCE number.
pub const REALM: AttributeType = AttributeType(0x0015);
/// MS-VERSION (0x8008): the dialect's version, 1 to 6.
pub const MS_VERSION: AttributeType = AttributeType(0x8008);
/// MS-XOR-MAPPED-ADDRESS (0x8020): the client's reflexive address, XOR-ed
/// with the 16 header bytes after the length.
pub const MS_XOR_MAPPED_ADDRESS: AttributeType = AttributeType(0x8020);
/// MS-SEQUENCE-NUMBER (0x8050): a 20-byte connection ID and a 32-bit
/// number that orders a client's requests.
pub const MS_SEQUENCE_NUMBER: AttributeType = AttributeType(0x8050);
/// CANDIDATE-IDENTIFIER (0x8054), MS-ICE2: the checking candidate's
/// foundation.
pub const CANDIDATE_IDENTIFIER: AttributeType = AttributeType(0x8054);
/// IMPLEMENTATION-VERSION (0x8070), MS-ICE2: 2 for Lync 2010 and later.
pub const IMPLEMENTATION_VERSION: AttributeType = AttributeType(0x8070);

/// Allocate (0x003): creates, refreshes (same 5-tuple) and, with LIFETIME
/// 0, deletes an allocation.
pub const ALLOCATE: Method = Method::known(0x003);
/// Send (0x004), a request that is never answered: relays DATA to
/// DESTINATION-ADDRESS and lets that peer in.
pub const SEND: Method = Method::known(0x004);
/// Data indication: type 0x0115 on the wire (method 0x005 in the error
/// class when read with RFC 8489's bit layout).
pub const DATA_INDICATION: MessageType = MessageType::new(Method::known(0x005), Class::Error);
/// Set Active Destination (0x006): after it, the client and that peer
/// exchange raw datagrams through the relay.
pub const SET_ACTIVE_DESTINATION: Method = Method::known(0x006);

/// The name of an MS-TURN or MS-ICE2 attribute type, where the dialect
/// names it differently from RFC 8489 or adds it.
pub fn attribute_name(kind: AttributeType) -> Option<&'static str> {
    Some(match kind {
        MAGIC_COOKIE => "MAGIC-COOKIE",
        ALTERNATE_SERVER => "MS-ALTERNATE-SERVER",
        BANDWIDTH => "BANDWIDTH",
        DESTINATION_ADDRESS => "DESTINATION-ADDRESS",
        REMOTE_ADDRESS => "REMOTE-ADDRESS",
        DATA => "DATA",
        NONCE => "NONCE",
        REALM => "REALM",
        MS_VERSION => "MS-VERSION",
        MS_XOR_MAPPED_ADDRESS => "MS-XOR-MAPPED-ADDRESS",
        MS_SEQUENCE_NUMBER => "MS-SEQUENCE-NUMBER",
        CANDIDATE_IDENTIFIER => "CANDIDATE-IDENTIFIER",
        IMPLEMENTATION_VERSION => "IMPLEMENTATION-VERSION",
        _ => return None,
    })
}

/// Whether a datagram is an MS-TURN message: STUN's top bits, and the
/// MAGIC-COOKIE attribute right after the header. Raw MS-ICE2 checks
/// relayed through an active destination look like STUN too; this is what
/// tells them apart.
pub fn is_ms_turn(bytes: &[u8]) -> bool {
    let cookie = MAGIC_COOKIE_VALUE.to_be_bytes();
    matches!(
        bytes.get(HEADER_LEN..HEADER_LEN + 8),
        Some(&[0x00, 0x0F, 0x00, 0x04, c0, c1, c2, c3]) if [c0, c1, c2, c3] == cookie
    ) && bytes[0] >> 6 == 0
}

/// The 16 bytes MS-XOR-MAPPED-ADDRESS is XOR-ed with: the message's bytes
/// 4 to 19 (in MS-TURN, the whole 128-bit transaction ID). `None` if
/// `message` is shorter than a header.
pub fn xor_key(message: &[u8]) -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    key.copy_from_slice(message.get(4..HEADER_LEN)?);
    Some(key)
}

/// A copy of `message`, whose last attribute is FINGERPRINT, with that
/// FINGERPRINT computed with Microsoft's legacy CRC-32 — the second copy
/// an MS-ICE2 agent sends until its peer shows IMPLEMENTATION-VERSION.
/// `None` when the two CRCs agree (the copy would be the same bytes: most
/// messages never reach the table's wrong entry) or there is no
/// FINGERPRINT at the end.
pub fn legacy_fingerprint_copy(message: &[u8]) -> Option<Vec<u8>> {
    let at = message.len().checked_sub(8)?;
    let fingerprint = crate::AttributeType::FINGERPRINT.0.to_be_bytes();
    if at < HEADER_LEN || message[at..at + 4] != [fingerprint[0], fingerprint[1], 0, 4] {
        return None;
    }
    let legacy = crate::integrity::legacy_fingerprint(&message[..at]).to_be_bytes();
    if message[at + 4..] == legacy {
        return None;
    }
    let mut copy = message.to_vec();
    copy[at + 4..].copy_from_slice(&legacy);
    Some(copy)
}

/// Bytes of the header MS-TURN puts before each message on TCP.
pub const TCP_FRAME_HEADER_LEN: usize = 4;

/// Frame type of an MS-TURN message on TCP.
const TCP_CONTROL: u8 = 0x02;
/// Frame type of data for the active destination on TCP.
const TCP_DATA: u8 = 0x03;

/// Whether a TCP connection's first bytes are MS-TURN's framing: a frame
/// type (2 or 3) and a zero byte. No STUN message starts with 0x0200 or
/// 0x0300 (methods 0x080 and 0x0C0 are unassigned), so a standard client
/// is never taken for one.
pub fn starts_tcp_framed(bytes: &[u8]) -> bool {
    matches!(bytes, [TCP_CONTROL | TCP_DATA, 0x00, ..])
}

/// Whether a connection's first MS-TURN frame, at the front of `bytes`,
/// lacks the 16-bit length [MS-TURN] §2.1 gives it: `None` until enough
/// bytes are there to tell.
///
/// libnice 0.1.21 writes its TURN requests as a frame type and a zero byte
/// and the message right after them. A connection's first frame is always
/// an Allocate request, so its bytes 2 and 3 are either a length or
/// Allocate's type, 0x0003, followed by a whole MS-TURN message.
pub fn tcp_frames_lack_length(bytes: &[u8]) -> Option<bool> {
    let allocate = MessageType::new(ALLOCATE, Class::Request)
        .to_u16()
        .to_be_bytes();
    match bytes {
        [_, _, l0, l1, ..] if [*l0, *l1] != allocate => Some(false),
        _ if bytes.len() < 2 + HEADER_LEN + 8 => None,
        _ => Some(is_ms_turn(&bytes[2..])),
    }
}

/// Where the MS-TURN TCP frame at the front of `bytes` has its payload:
/// `(start, end)`, or `None` until enough bytes are there. On a connection
/// whose frames lack their length ([`tcp_frames_lack_length`]), a frame
/// that holds an MS-TURN message ends where the message's own length says;
/// anything else is read with a length.
pub fn tcp_frame(
    bytes: &[u8],
    lack_length: bool,
) -> Result<Option<(usize, usize)>, crate::StreamError> {
    let &[kind, _, l0, l1, ..] = bytes else {
        return Ok(None);
    };
    if kind != TCP_CONTROL && kind != TCP_DATA {
        return Err(crate::StreamError::UnknownMsFrame(kind));
    }
    if lack_length {
        if bytes.len() < 2 + HEADER_LEN + 8 {
            return Ok(None);
        }
        if is_ms_turn(&bytes[2..]) {
            let stun_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            return Ok(Some((2, 2 + HEADER_LEN + stun_len)));
        }
    }
    let declared = usize::from(u16::from_be_bytes([l0, l1]));
    Ok(Some((
        TCP_FRAME_HEADER_LEN,
        TCP_FRAME_HEADER_LEN + declared,
    )))
}

/// The header to put before `contents` on an MS-TURN TCP connection:
/// control for MS-TURN messages, data for anything else. `None` if it is
/// too long for the 16-bit length.
pub fn tcp_frame_header(contents: &[u8]) -> Option<[u8; TCP_FRAME_HEADER_LEN]> {
    let len = u16::try_from(contents.len()).ok()?.to_be_bytes();
    let kind = if is_ms_turn(contents) {
        TCP_CONTROL
    } else {
        TCP_DATA
    };
    Some([kind, 0, len[0], len[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_types_match_ms_turn() {
        assert_eq!(DATA_INDICATION.to_u16(), 0x0115);
        assert_eq!(
            MessageType::new(SET_ACTIVE_DESTINATION, Class::Success).to_u16(),
            0x0106
        );
        assert_eq!(MessageType::new(ALLOCATE, Class::Error).to_u16(), 0x0113);
        assert_eq!(MessageType::new(SEND, Class::Request).to_u16(), 0x0004);
    }

    #[test]
    fn tcp_frames_round_trip() {
        let mut message = vec![0u8; 28];
        message[1] = 0x03;
        message[3] = 8;
        message[20..28].copy_from_slice(&[0x00, 0x0F, 0x00, 0x04, 0x72, 0xC6, 0x4B, 0xC6]);
        let header = tcp_frame_header(&message).unwrap();
        assert_eq!(header, [2, 0, 0, 28]);
        assert!(starts_tcp_framed(&header));
        assert_eq!(tcp_frame_header(b"rtp").unwrap(), [3, 0, 0, 3]);
        let mut decoder = crate::StreamDecoder::new();
        decoder.set_framing(crate::Framing::MsTurn);
        decoder.push(&header);
        decoder.push(&message[..10]);
        assert_eq!(decoder.next_raw(), Ok(None));
        decoder.push(&message[10..]);
        decoder.push(&[3, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(decoder.next_raw(), Ok(Some(&message[..])));
        assert_eq!(decoder.next_raw(), Ok(Some(&[][..])));
        assert_eq!(
            decoder.next_raw(),
            Err(crate::StreamError::UnknownMsFrame(9))
        );

        // libnice's requests: type and zero byte, then the message.
        let mut decoder = crate::StreamDecoder::new();
        decoder.set_framing(crate::Framing::MsTurn);
        decoder.push(&[3, 0]);
        decoder.push(&message[..20]);
        assert_eq!(decoder.next_raw(), Ok(None));
        decoder.push(&message[20..]);
        assert_eq!(decoder.next_raw(), Ok(Some(&message[..])));
        // Data there is framed with a length (and read once 30 bytes are in).
        decoder.push(&[3, 0, 0, 30]);
        decoder.push(&[7; 30]);
        assert_eq!(decoder.next_raw(), Ok(Some(&[7; 30][..])));

        // A spec-framed connection takes a short data frame by its length,
        // even one whose length reads like a request type.
        let mut decoder = crate::StreamDecoder::new();
        decoder.set_framing(crate::Framing::MsTurn);
        decoder.push(&header);
        decoder.push(&message);
        decoder.push(&[3, 0, 0, 4, 1, 2, 3, 4]);
        assert_eq!(decoder.next_raw(), Ok(Some(&message[..])));
        assert_eq!(decoder.next_raw(), Ok(Some(&[1, 2, 3, 4][..])));
    }

    #[test]
    fn legacy_copies_differ_only_in_the_fingerprint_and_only_when_it_does() {
        use crate::{Message, MessageBuilder, TransactionId};
        let mut copies = 0;
        for id in 0..=255u8 {
            let mut buf = Vec::new();
            let kind = MessageType::new(Method::BINDING, Class::Request);
            let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([id; 12]));
            b.add_fingerprint().unwrap();
            let original = b.finish().to_vec();
            if let Some(copy) = legacy_fingerprint_copy(&original) {
                copies += 1;
                assert_eq!(copy[..copy.len() - 4], original[..original.len() - 4]);
                let copy = Message::parse(&copy).unwrap();
                assert!(copy.verify_fingerprint_legacy().is_ok());
                assert!(copy.verify_fingerprint().is_err());
            }
        }
        // Some of 256 messages reach the wrong table entry, most do not.
        assert!((1..128).contains(&copies), "{copies}");
        assert_eq!(legacy_fingerprint_copy(&[0; 10]), None);
    }

    #[test]
    fn recognises_the_magic_cookie_attribute() {
        let mut bytes = vec![0u8; 28];
        bytes[1] = 0x03;
        bytes[20..28].copy_from_slice(&[0x00, 0x0F, 0x00, 0x04, 0x72, 0xC6, 0x4B, 0xC6]);
        assert!(is_ms_turn(&bytes));
        bytes[27] = 0;
        assert!(!is_ms_turn(&bytes));
        assert!(!is_ms_turn(&bytes[..10]));
    }
}
