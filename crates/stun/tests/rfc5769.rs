//! The test vectors of RFC 5769, parsed, checked and rebuilt byte for byte.

use std::net::SocketAddr;

use edgeice_stun::credentials::{Preparation, long_term_key, short_term_key};
use edgeice_stun::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TXID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

/// §2.1: Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
/// MESSAGE-INTEGRITY and FINGERPRINT; padding bytes are 0x20.
const SAMPLE_REQUEST: &str = "
    0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 0010 5354554e 20746573 7420636c 69656e74
    0024 0004 6e0001ff
    8029 0008 932ff9b1 51263b36
    0006 0009 6576746a 3a683676 59202020
    0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
    8028 0004 e57a3bcf";

/// §2.2: Binding success with XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const SAMPLE_IPV4_RESPONSE: &str = "
    0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0008 0001a147 e112a643
    0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
    8028 0004 c07d4c96";

/// §2.3: Binding success with XOR-MAPPED-ADDRESS
/// [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const SAMPLE_IPV6_RESPONSE: &str = "
    0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
    0008 0014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
    8028 0004 c8fb0b4c";

/// §2.4: Binding request with long-term credentials (USERNAME, NONCE,
/// REALM, MESSAGE-INTEGRITY); padding bytes are zero.
const SAMPLE_LONG_TERM_REQUEST: &str = "
    0001 0060 2112a442 78ad3433 c6ad72c0 29da412e
    0006 0012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
    0015 001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
    0014 000b 6578616d 706c652e 6f726700
    0008 0014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666";

fn decoded(message: &Message<'_>) -> Vec<String> {
    message
        .attributes()
        .map(|a| format!("{:?}", a.unwrap()))
        .collect()
}

#[test]
fn sample_request_parses_verifies_and_rebuilds() {
    let bytes = hex(SAMPLE_REQUEST);
    assert_eq!(bytes.len(), 108);
    let key = short_term_key(SHORT_TERM_PASSWORD, Preparation::OpaqueString).unwrap();
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(
        message.kind(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(message.transaction_id(), &TransactionId(TXID));
    message.verify_integrity(&key).unwrap();
    message.verify_fingerprint().unwrap();
    assert_eq!(
        message.get(AttributeType::SOFTWARE),
        Some(Ok(Attribute::Software("STUN test client")))
    );
    assert_eq!(
        message.get(AttributeType::USERNAME),
        Some(Ok(Attribute::Username("evtj:h6vY")))
    );
    assert_eq!(
        message.get(AttributeType::PRIORITY),
        Some(Ok(Attribute::Priority(0x6e0001ff)))
    );
    assert_eq!(
        message.get(AttributeType::ICE_CONTROLLED),
        Some(Ok(Attribute::IceControlled(0x932ff9b151263b36)))
    );
    assert_eq!(decoded(&message).len(), 6);

    let mut buf = Vec::new();
    let mut b =
        MessageBuilder::new(&mut buf, message.kind(), TransactionId(TXID)).padding_byte(0x20);
    b.add(&Attribute::Software("STUN test client")).unwrap();
    b.add(&Attribute::Priority(0x6e0001ff)).unwrap();
    b.add(&Attribute::IceControlled(0x932ff9b151263b36))
        .unwrap();
    b.add(&Attribute::Username("evtj:h6vY")).unwrap();
    b.add_integrity_sha1(&key).unwrap();
    b.add_fingerprint().unwrap();
    assert_eq!(b.finish(), &bytes[..]);
}

fn check_response(vector: &str, mapped: SocketAddr) {
    let bytes = hex(vector);
    let key = short_term_key(SHORT_TERM_PASSWORD, Preparation::OpaqueString).unwrap();
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(
        message.kind(),
        MessageType::new(Method::BINDING, Class::Success)
    );
    message.verify_integrity(&key).unwrap();
    message.verify_fingerprint().unwrap();
    assert_eq!(
        message.get(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(mapped)))
    );
    assert_eq!(
        message.get(AttributeType::SOFTWARE),
        Some(Ok(Attribute::Software("test vector")))
    );

    let mut buf = Vec::new();
    let mut b =
        MessageBuilder::new(&mut buf, message.kind(), TransactionId(TXID)).padding_byte(0x20);
    b.add(&Attribute::Software("test vector")).unwrap();
    b.add(&Attribute::XorMappedAddress(mapped)).unwrap();
    b.add_integrity_sha1(&key).unwrap();
    b.add_fingerprint().unwrap();
    assert_eq!(b.finish(), &bytes[..]);
}

#[test]
fn sample_ipv4_response_parses_verifies_and_rebuilds() {
    check_response(SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853".parse().unwrap());
}

#[test]
fn sample_ipv6_response_parses_verifies_and_rebuilds() {
    check_response(
        SAMPLE_IPV6_RESPONSE,
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap(),
    );
}

#[test]
fn sample_long_term_request_parses_verifies_and_rebuilds() {
    let bytes = hex(SAMPLE_LONG_TERM_REQUEST);
    let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    let password = "The\u{00AD}M\u{00AA}tr\u{2168}";
    let nonce = "f//499k954d6OL34oL9FSTvy64sA";
    // SASLprep maps the soft hyphen to nothing, U+00AA to "a" and the roman
    // numeral nine to "IX": the key is MD5("<username>:example.org:TheMatrIX").
    let key = long_term_key(username, "example.org", password, 1, Preparation::SaslPrep).unwrap();
    let message = Message::parse(&bytes).unwrap();
    assert!(!message.has_fingerprint());
    message.verify_integrity(&key).unwrap();
    assert_eq!(
        message.get(AttributeType::USERNAME),
        Some(Ok(Attribute::Username(username)))
    );
    assert_eq!(
        message.get(AttributeType::NONCE),
        Some(Ok(Attribute::Nonce(nonce)))
    );
    assert_eq!(
        message.get(AttributeType::REALM),
        Some(Ok(Attribute::Realm("example.org")))
    );
    let wrong = long_term_key(
        username,
        "example.org",
        "TheMatrix",
        1,
        Preparation::SaslPrep,
    )
    .unwrap();
    assert_eq!(
        message.verify_integrity(&wrong),
        Err(IntegrityError::Mismatch)
    );

    let mut buf = Vec::new();
    let txid: [u8; 12] = bytes[8..20].try_into().unwrap();
    let mut b = MessageBuilder::new(&mut buf, message.kind(), TransactionId(txid));
    b.add(&Attribute::Username(username)).unwrap();
    b.add(&Attribute::Nonce(nonce)).unwrap();
    b.add(&Attribute::Realm("example.org")).unwrap();
    b.add_integrity_sha1(&key).unwrap();
    assert_eq!(b.finish(), &bytes[..]);
}

#[test]
fn flipping_any_bit_breaks_integrity_or_parsing() {
    let bytes = hex(SAMPLE_REQUEST);
    let key = short_term_key(SHORT_TERM_PASSWORD, Preparation::OpaqueString).unwrap();
    // Every bit before the FINGERPRINT value is covered by it.
    for bit in 0..(bytes.len() - 4) * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        if let Ok(message) = Message::parse(&damaged) {
            let both_ok =
                message.verify_integrity(&key).is_ok() && message.verify_fingerprint().is_ok();
            assert!(!both_ok, "bit {bit} flipped unnoticed");
        }
    }
}
