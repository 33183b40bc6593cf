//! A message of the largest size a STUN header allows (20 + 0xFFFC bytes,
//! possible over TCP) with MESSAGE-INTEGRITY beyond offset 0xFFFF: its
//! offset once wrapped in a u16, and checking the integrity panicked.

use edgeice_stun::{IntegrityKey, Message};

fn attribute(out: &mut Vec<u8>, kind: u16, len: u16) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.resize(out.len() + usize::from(len), 0);
}

#[test]
fn integrity_beyond_offset_0xffff_is_checked_without_panic() {
    let mut bytes = vec![0x00, 0x01, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42];
    bytes.extend_from_slice(&[7; 12]);
    attribute(&mut bytes, 0x8022, 65512); // SOFTWARE, up to offset 65536
    attribute(&mut bytes, 0x0008, 0); // MESSAGE-INTEGRITY at offset 65536
    attribute(&mut bytes, 0x8022, 8);
    assert_eq!(bytes.len(), 20 + 0xFFFC);

    let message = Message::parse(&bytes).expect("a well-formed message");
    assert!(message.has_integrity());
    assert!(
        message
            .verify_integrity_sha1(&IntegrityKey::new(b"key"))
            .is_err()
    );
    assert!(
        message
            .verify_integrity(&IntegrityKey::new(b"key"))
            .is_err()
    );
}
