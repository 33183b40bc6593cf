//! Property tests: every attribute survives build → parse → decode, and
//! parsers accept any input without panicking.

use std::net::{IpAddr, SocketAddr};

use edgeice_stun::attribute::{PasswordAlgorithm, PasswordAlgorithms, UnknownAttributes};
use edgeice_stun::*;
use proptest::prelude::*;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (any::<IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn text(max_chars: usize) -> impl Strategy<Value = &'static str> {
    proptest::string::string_regex(&format!("\\PC{{0,{max_chars}}}"))
        .unwrap()
        .prop_map(leak_str)
}

fn bytes(len: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = &'static [u8]> {
    proptest::collection::vec(any::<u8>(), len).prop_map(leak_bytes)
}

fn error_code() -> impl Strategy<Value = ErrorCode<'static>> {
    (300u16..700, text(100)).prop_map(|(code, reason)| ErrorCode { code, reason })
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
}

fn password_algorithm() -> impl Strategy<Value = PasswordAlgorithm<'static>> {
    (any::<u16>(), bytes(0..12))
        .prop_map(|(algorithm, params)| PasswordAlgorithm { algorithm, params })
}

/// Every attribute variant, with values inside their RFC's limits.
fn attribute() -> impl Strategy<Value = Attribute<'static>> {
    use Attribute as A;
    prop_oneof![
        socket_addr().prop_map(A::MappedAddress),
        socket_addr().prop_map(A::XorMappedAddress),
        text(120).prop_map(A::Username),
        bytes(32).prop_map(|b| A::UserHash(b.try_into().unwrap())),
        bytes(20).prop_map(|b| A::MessageIntegrity(b.try_into().unwrap())),
        (4usize..=8)
            .prop_flat_map(|words| bytes(words * 4))
            .prop_map(A::MessageIntegritySha256),
        any::<u32>().prop_map(A::Fingerprint),
        error_code().prop_map(A::ErrorCode),
        text(127).prop_map(A::Realm),
        text(127).prop_map(A::Nonce),
        proptest::collection::vec(password_algorithm(), 0..4).prop_map(|algs| {
            let buf = Box::leak(Box::new(Vec::new()));
            A::PasswordAlgorithms(PasswordAlgorithms::encode_into(&algs, buf).unwrap())
        }),
        password_algorithm().prop_map(A::PasswordAlgorithm),
        proptest::collection::vec(any::<u16>(), 0..8).prop_map(|types| {
            let types: Vec<AttributeType> = types.into_iter().map(AttributeType).collect();
            let buf = Box::leak(Box::new(Vec::new()));
            A::UnknownAttributes(UnknownAttributes::encode_into(&types, buf))
        }),
        text(127).prop_map(A::Software),
        socket_addr().prop_map(A::AlternateServer),
        text(127).prop_map(A::AlternateDomain),
        any::<u16>().prop_map(A::ChannelNumber),
        any::<u32>().prop_map(A::Lifetime),
        socket_addr().prop_map(A::XorPeerAddress),
        bytes(0..1500).prop_map(A::Data),
        socket_addr().prop_map(A::XorRelayedAddress),
        family().prop_map(A::RequestedAddressFamily),
        any::<bool>().prop_map(A::EvenPort),
        any::<u8>().prop_map(A::RequestedTransport),
        Just(A::DontFragment),
        any::<u64>().prop_map(A::ReservationToken),
        family().prop_map(A::AdditionalAddressFamily),
        (family(), error_code()).prop_map(|(family, error)| A::AddressErrorCode { family, error }),
        (0u8..128, 0u16..512, any::<u32>()).prop_map(|(icmp_type, code, data)| A::Icmp {
            icmp_type,
            code,
            data
        }),
        any::<u32>().prop_map(A::ConnectionId),
        any::<u32>().prop_map(A::Priority),
        Just(A::UseCandidate),
        any::<u64>().prop_map(A::IceControlled),
        any::<u64>().prop_map(A::IceControlling),
        (any::<bool>(), any::<bool>()).prop_map(|(change_ip, change_port)| A::ChangeRequest {
            change_ip,
            change_port
        }),
        socket_addr().prop_map(A::ResponseOrigin),
        socket_addr().prop_map(A::OtherAddress),
        any::<u16>().prop_map(A::ResponsePort),
        bytes(0..64).prop_map(A::Padding),
        (any::<u16>(), bytes(0..40))
            .prop_filter("unknown types only", |(t, _)| !AttributeType(*t).is_known())
            .prop_map(|(t, value)| A::Unknown {
                kind: AttributeType(t),
                value
            }),
    ]
}

fn is_trailer(kind: AttributeType) -> bool {
    matches!(
        kind,
        AttributeType::MESSAGE_INTEGRITY
            | AttributeType::MESSAGE_INTEGRITY_SHA256
            | AttributeType::FINGERPRINT
    )
}

fn any_kind() -> impl Strategy<Value = MessageType> {
    (0u16..0x1000, 0u8..4).prop_map(|(m, c)| {
        let class = [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ][usize::from(c)];
        MessageType::new(Method::new(m).unwrap(), class)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_attribute_round_trips_alone(attr in attribute(), txid in any::<[u8; 12]>(), pad in any::<u8>()) {
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::BINDING, Class::Request);
        let mut builder = MessageBuilder::new(&mut buf, kind, TransactionId(txid)).padding_byte(pad);
        builder.add(&attr).unwrap();
        let bytes = builder.finish();
        let message = Message::parse(bytes).unwrap();
        prop_assert_eq!(message.get(attr.kind()), Some(Ok(attr)));
        prop_assert_eq!(message.attributes().count(), 1);
    }

    #[test]
    fn messages_round_trip_with_integrity_and_fingerprint(
        kind in any_kind(),
        txid in any::<[u8; 12]>(),
        attrs in proptest::collection::vec(attribute(), 0..10),
        key in proptest::collection::vec(any::<u8>(), 0..80),
        sha256 in any::<bool>(),
    ) {
        let attrs: Vec<_> = attrs.into_iter().filter(|a| !is_trailer(a.kind())).collect();
        let key = IntegrityKey::new(&key);
        let mut buf = Vec::new();
        let mut builder = MessageBuilder::new(&mut buf, kind, TransactionId(txid));
        for a in &attrs {
            builder.add(a).unwrap();
        }
        if sha256 {
            builder.add_integrity_sha256(&key).unwrap();
        } else {
            builder.add_integrity_sha1(&key).unwrap();
        }
        builder.add_fingerprint().unwrap();
        let bytes = builder.finish().to_vec();

        let message = Message::parse(&bytes).unwrap();
        prop_assert_eq!(message.kind(), kind);
        prop_assert_eq!(message.transaction_id(), &TransactionId(txid));
        prop_assert!(message.verify_integrity(&key).is_ok());
        prop_assert!(message.verify_fingerprint().is_ok());
        let decoded: Vec<_> = message
            .attributes()
            .map(Result::unwrap)
            .filter(|a| !is_trailer(a.kind()))
            .collect();
        prop_assert_eq!(&decoded, &attrs);
        let unknown: Vec<_> = message.unknown_comprehension_required().collect();
        let expected: Vec<_> = attrs
            .iter()
            .map(Attribute::kind)
            .filter(|k| k.is_comprehension_required() && !k.is_known())
            .collect();
        prop_assert_eq!(unknown, expected);
    }

    #[test]
    fn channel_data_round_trips(channel in MIN_CHANNEL..=MAX_CHANNEL, data in proptest::collection::vec(any::<u8>(), 0..2000), pad in any::<bool>()) {
        let mut buf = Vec::new();
        ChannelData { channel, data: &data }.encode(pad, &mut buf).unwrap();
        let parsed = ChannelData::parse(&buf).unwrap();
        prop_assert_eq!(parsed, ChannelData { channel, data: &data });
    }

    #[test]
    fn a_stream_of_frames_is_cut_the_same_in_any_chunking(
        frames in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
        chunk in 1usize..64,
    ) {
        let mut stream = Vec::new();
        let mut frame = Vec::new();
        for (i, (is_stun, payload)) in frames.iter().enumerate() {
            if *is_stun {
                let kind = MessageType::new(Method::SEND, Class::Indication);
                let mut b = MessageBuilder::new(&mut frame, kind, TransactionId([i as u8; 12]));
                b.add(&Attribute::Data(payload)).unwrap();
            } else {
                ChannelData { channel: 0x4000 + i as u16, data: payload }.encode(true, &mut frame).unwrap();
            }
            stream.extend_from_slice(&frame);
        }
        let mut decoder = StreamDecoder::new();
        let mut seen = 0;
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                let (is_stun, payload) = &frames[seen];
                match frame {
                    Frame::Stun(bytes) => {
                        prop_assert!(*is_stun);
                        let m = Message::parse(bytes).unwrap();
                        prop_assert_eq!(m.get(AttributeType::DATA), Some(Ok(Attribute::Data(payload))));
                    }
                    Frame::ChannelData(cd) => {
                        prop_assert!(!*is_stun);
                        prop_assert_eq!(cd.data, &payload[..]);
                    }
                    Frame::MsTurn(_) => prop_assert!(false, "MS-TURN framing was not asked for"),
                }
                seen += 1;
            }
        }
        prop_assert_eq!(seen, frames.len());
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn parsing_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        edgeice_stun::fuzzing::parse_message(&data);
        edgeice_stun::fuzzing::stream_decoder(&data);
        let _ = ChannelData::parse(&data);
        let _ = demux::classify(&data);
    }

    #[test]
    fn parsing_mutated_valid_messages_never_panics(
        attrs in proptest::collection::vec(attribute(), 0..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(&mut buf, MessageType::new(Method::ALLOCATE, Class::Request), TransactionId([1; 12]));
        for a in attrs.iter().filter(|a| !is_trailer(a.kind())) {
            b.add(a).unwrap();
        }
        b.add_fingerprint().unwrap();
        let mut bytes = b.finish().to_vec();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        edgeice_stun::fuzzing::parse_message(&bytes);
    }
}

#[test]
fn builder_refuses_what_a_parser_would_reject() {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([0; 12]));
    let long = "x".repeat(800);
    assert!(b.add(&Attribute::Realm(&long)).is_err());
    assert!(
        b.add(&Attribute::ErrorCode(ErrorCode {
            code: 200,
            reason: ""
        }))
        .is_err()
    );
    let huge = vec![0u8; 70_000];
    assert_eq!(
        b.add(&Attribute::Data(&huge)).unwrap_err(),
        BuildError::TooLong
    );
    // Failed adds leave the message as it was: a bare header.
    assert_eq!(b.as_bytes().len(), HEADER_LEN);
    b.add_fingerprint().unwrap();
    assert!(matches!(
        b.add(&Attribute::Lifetime(1)),
        Err(BuildError::OutOfOrder(_))
    ));
    assert!(
        Message::parse(b.finish())
            .unwrap()
            .verify_fingerprint()
            .is_ok()
    );
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let key = IntegrityKey::new(b"k");
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([0; 12]));
    b.add(&Attribute::Username("u")).unwrap();
    b.add_integrity_sha1(&key).unwrap();
    let mut bytes = b.finish().to_vec();
    // Append a SOFTWARE attribute by hand after MESSAGE-INTEGRITY.
    bytes.extend_from_slice(&[0x80, 0x22, 0, 4, b'e', b'v', b'i', b'l']);
    let len = (bytes.len() - HEADER_LEN) as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let message = Message::parse(&bytes).unwrap();
    assert!(message.verify_integrity(&key).is_ok());
    assert_eq!(message.get(AttributeType::SOFTWARE), None);
}

#[test]
fn unknown_comprehension_required_attributes_are_reported() {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::ALLOCATE, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([0; 12]));
    b.add_raw(AttributeType(0x7777), b"?").unwrap();
    b.add_raw(AttributeType(0xC001), b"optional").unwrap();
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    let message = Message::parse(b.finish()).unwrap();
    let unknown: Vec<_> = message.unknown_comprehension_required().collect();
    assert_eq!(unknown, vec![AttributeType(0x7777)]);
}

#[test]
fn malformed_headers_are_errors() {
    let err = |bytes: &[u8]| Message::parse(bytes).err();
    assert_eq!(err(&[]), Some(ParseError::TooShort(0)));
    let mut header = [0u8; 20];
    header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    assert_eq!(err(&header), None);
    let mut rtp = header;
    rtp[0] = 0x80;
    assert_eq!(err(&rtp), Some(ParseError::NotStun));
    let mut unaligned = header;
    unaligned[3] = 2;
    assert_eq!(err(&unaligned), Some(ParseError::UnalignedLength(2)));
    let mut long = header;
    long[3] = 4;
    assert_eq!(
        err(&long),
        Some(ParseError::LengthMismatch {
            declared: 4,
            actual: 0
        })
    );
    let mut truncated = header.to_vec();
    truncated[3] = 4;
    truncated.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
    assert_eq!(err(&truncated), Some(ParseError::TruncatedAttribute(20)));
    let mut classic = header;
    classic[4] = 0;
    assert_eq!(err(&classic), Some(ParseError::NoMagicCookie));
    assert!(Message::parse_any_cookie(&classic).is_ok());
}
