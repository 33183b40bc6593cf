//! Microsoft's dialects through the generic codec: unpadded attributes,
//! RFC 3489-style MESSAGE-INTEGRITY, the legacy FINGERPRINT and the
//! MS-XOR-MAPPED-ADDRESS key.

use edgeice_stun::attribute::{decode_xor_keyed, encode_xor_keyed};
use edgeice_stun::*;

fn allocate_request(buf: &mut Vec<u8>, key: &IntegrityKey) -> usize {
    let kind = MessageType::new(ms::ALLOCATE, Class::Request);
    let mut b = MessageBuilder::with_cookie(buf, kind, [9, 8, 7, 6], TransactionId([5; 12]))
        .layout(Layout::Unpadded);
    b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())
        .unwrap();
    b.add_raw(ms::MS_VERSION, &1u32.to_be_bytes()).unwrap();
    b.add(&Attribute::Username("odd")).unwrap();
    b.add_raw(ms::REALM, b"realm").unwrap();
    b.add_integrity_sha1_rfc3489(key, false).unwrap();
    b.finish().len()
}

#[test]
fn unpadded_messages_round_trip_and_sign_the_rfc3489_way() {
    let key = IntegrityKey::new(b"long-term key");
    let mut buf = Vec::new();
    let len = allocate_request(&mut buf, &key);
    // 20 header + 8 + 8 + (4 + 3) + (4 + 5) + 24: no padding anywhere.
    assert_eq!(len, 20 + 8 + 8 + 7 + 9 + 24);
    assert!(ms::is_ms_turn(&buf));
    assert!(Message::parse_any_cookie(&buf).is_err());
    let message = Message::parse_either_layout(&buf).unwrap();
    assert_eq!(message.layout(), Layout::Unpadded);
    assert_eq!(message.get_raw(ms::REALM), Some(&b"realm"[..]));
    assert_eq!(message.get_raw(AttributeType::USERNAME), Some(&b"odd"[..]));
    assert!(message.verify_integrity_sha1_rfc3489(&key).is_ok());
    // RFC 8489's integrity is over a different input.
    assert!(message.verify_integrity_sha1(&key).is_err());
    assert!(
        message
            .verify_integrity_sha1_rfc3489(&IntegrityKey::new(b"other"))
            .is_err()
    );
    let mut tampered = buf.clone();
    tampered[len - 27] ^= 1;
    let tampered = Message::parse_unpadded(&tampered).unwrap();
    assert!(tampered.verify_integrity_sha1_rfc3489(&key).is_err());
}

#[test]
fn ms_ice2_integrity_counts_the_fingerprint_after_it() {
    let key = IntegrityKey::new(b"short-term password");
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b =
        MessageBuilder::new(&mut buf, kind, TransactionId([1; 12])).layout(Layout::Unpadded);
    b.add(&Attribute::Username("abcd:efgh")).unwrap();
    b.add_raw(ms::IMPLEMENTATION_VERSION, &2u32.to_be_bytes())
        .unwrap();
    b.add_integrity_sha1_rfc3489(&key, true).unwrap();
    b.add_fingerprint().unwrap();
    let message = Message::parse_unpadded(b.finish()).unwrap();
    assert!(message.verify_fingerprint().is_ok());
    assert!(message.verify_integrity_sha1_rfc3489(&key).is_ok());

    let mut legacy = Vec::new();
    let mut b = MessageBuilder::new(&mut legacy, kind, TransactionId([1; 12]));
    b.add(&Attribute::Username("abcd:efgh")).unwrap();
    b.add_integrity_sha1_rfc3489(&key, true).unwrap();
    b.add_fingerprint_legacy().unwrap();
    let message = Message::parse(b.finish()).unwrap();
    assert!(message.verify_fingerprint_legacy().is_ok());
    assert!(message.verify_integrity_sha1_rfc3489(&key).is_ok());
}

#[test]
fn ms_xor_mapped_address_is_keyed_by_the_whole_transaction_id() {
    let mut message = vec![0u8; 20];
    message[4..20].copy_from_slice(&[0xA5; 16]);
    let key = ms::xor_key(&message).unwrap();
    for addr in ["192.0.2.7:40000", "[2001:db8::9]:3478"] {
        let addr = addr.parse().unwrap();
        let mut out = Vec::new();
        encode_xor_keyed(&addr, &key, &mut out);
        assert_eq!(decode_xor_keyed(&out, &key), Ok(addr));
        assert_ne!(out[2..4], addr.port().to_be_bytes());
    }
}

#[test]
fn plain_address_values_match_mapped_address() {
    use edgeice_stun::attribute::{address_value, decode_address};
    for addr in ["192.0.2.7:40000", "[2001:db8::9]:3478"] {
        let addr = addr.parse().unwrap();
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Success),
            TransactionId([3; 12]),
        );
        b.add(&Attribute::MappedAddress(addr)).unwrap();
        let message = Message::parse(b.finish()).unwrap();
        let value = message.get_raw(AttributeType::MAPPED_ADDRESS).unwrap();
        assert_eq!(&*address_value(&addr), value);
        assert_eq!(decode_address(value), Ok(addr));
    }
}
