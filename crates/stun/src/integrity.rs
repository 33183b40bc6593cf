//! MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
//! (RFC 8489 §14.5–14.7).
//!
//! Both HMACs cover the message up to the integrity attribute, with the
//! header's length field rewritten to end just after it. The HMAC input is
//! fed in three pieces so nothing is copied.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::header::HEADER_LEN;

/// XOR-ed into the CRC-32 of FINGERPRINT, so that a STUN CRC never matches
/// the CRC another protocol puts in the same place.
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Why an integrity or fingerprint check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The attribute is not in the message.
    #[error("integrity attribute missing")]
    Missing,
    /// The attribute does not match the message.
    #[error("integrity check failed")]
    Mismatch,
}

/// A key for MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256, with both HMACs'
/// inner and outer pads already hashed: checking a message then costs only
/// the message's own blocks. Derive the key bytes with
/// [`crate::credentials`].
#[derive(Clone)]
pub struct IntegrityKey {
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl IntegrityKey {
    /// A key from raw key bytes (a short-term password after preparation, or
    /// a long-term key from MD5 or SHA-256).
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so these constructors cannot fail.
        let sha1 = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        let sha256 = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        IntegrityKey { sha1, sha256 }
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey(..)")
    }
}

/// Feeds `mac` the message bytes before the attribute at `at`, with the
/// header length set to end `attr_len` bytes after `at`.
fn feed<M: Mac>(mac: &mut M, message: &[u8], at: usize, attr_len: usize) {
    let length = (at + attr_len - HEADER_LEN) as u16;
    mac.update(&message[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&message[4..at]);
}

/// HMAC-SHA1 for a MESSAGE-INTEGRITY attribute placed at offset `at`.
pub(crate) fn sign_sha1(key: &IntegrityKey, message: &[u8], at: usize) -> [u8; 20] {
    let mut mac = key.sha1.clone();
    feed(&mut mac, message, at, 24);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 for a MESSAGE-INTEGRITY-SHA256 attribute placed at `at`.
pub(crate) fn sign_sha256(key: &IntegrityKey, message: &[u8], at: usize) -> [u8; 32] {
    let mut mac = key.sha256.clone();
    feed(&mut mac, message, at, 36);
    mac.finalize().into_bytes().into()
}

pub(crate) fn verify_sha1(
    key: &IntegrityKey,
    message: &[u8],
    at: usize,
    tag: &[u8],
) -> Result<(), IntegrityError> {
    let mut mac = key.sha1.clone();
    feed(&mut mac, message, at, 4 + tag.len());
    // `verify_slice` compares in constant time.
    mac.verify_slice(tag).map_err(|_| IntegrityError::Mismatch)
}

pub(crate) fn verify_sha256(
    key: &IntegrityKey,
    message: &[u8],
    at: usize,
    tag: &[u8],
) -> Result<(), IntegrityError> {
    if !is_valid_sha256_tag_len(tag.len()) {
        return Err(IntegrityError::Mismatch);
    }
    let mut mac = key.sha256.clone();
    feed(&mut mac, message, at, 4 + tag.len());
    // A truncated tag keeps its leftmost bytes (RFC 8489 §14.6); this
    // comparison is constant time too.
    mac.verify_truncated_left(tag)
        .map_err(|_| IntegrityError::Mismatch)
}

/// MESSAGE-INTEGRITY-SHA256 may be truncated, to no fewer than 16 bytes
/// and a multiple of 4 (RFC 8489 §14.6).
pub(crate) fn is_valid_sha256_tag_len(len: usize) -> bool {
    (16..=32).contains(&len) && len.is_multiple_of(4)
}

/// The FINGERPRINT value for a message whose bytes before the attribute are
/// `prefix` (with the header length already covering the attribute).
pub(crate) fn fingerprint(prefix: &[u8]) -> u32 {
    crc32fast::hash(prefix) ^ FINGERPRINT_XOR
}

/// Feeds `mac` the message before the attribute at `at` with the header
/// length set to `length`, then zeros up to a multiple of 64 bytes: RFC
/// 3489's MESSAGE-INTEGRITY input, kept by Microsoft's dialects.
fn feed_rfc3489<M: Mac>(mac: &mut M, message: &[u8], at: usize, length: u16) {
    const ZEROS: [u8; 64] = [0; 64];
    mac.update(&message[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&message[4..at]);
    mac.update(&ZEROS[..at.next_multiple_of(64) - at]);
}

/// HMAC-SHA1 the RFC 3489 way for a MESSAGE-INTEGRITY at `at`, with the
/// header length `length` (the message's final length).
pub(crate) fn sign_sha1_rfc3489(
    key: &IntegrityKey,
    message: &[u8],
    at: usize,
    length: u16,
) -> [u8; 20] {
    let mut mac = key.sha1.clone();
    feed_rfc3489(&mut mac, message, at, length);
    mac.finalize().into_bytes().into()
}

pub(crate) fn verify_sha1_rfc3489(
    key: &IntegrityKey,
    message: &[u8],
    at: usize,
    length: u16,
    tag: &[u8],
) -> Result<(), IntegrityError> {
    let mut mac = key.sha1.clone();
    feed_rfc3489(&mut mac, message, at, length);
    mac.verify_slice(tag).map_err(|_| IntegrityError::Mismatch)
}

/// The CRC-32 table with the one wrong entry that Windows Live Messenger
/// 2009 shipped and Microsoft's MS-ICE2 peers kept as the "legacy"
/// FINGERPRINT: 0x8BBEB8EA written as 0x08BBE8EA.
const LEGACY_CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = if crc == 0x8BBE_B8EA { 0x08BB_E8EA } else { crc };
        i += 1;
    }
    table
};

/// FINGERPRINT computed with Microsoft's legacy CRC-32 (see
/// [`LEGACY_CRC_TABLE`]). Table-driven by hand because no CRC crate carries
/// a wrong table; it runs only on MS-ICE2 checks, never on the relay path.
pub(crate) fn legacy_fingerprint(prefix: &[u8]) -> u32 {
    let crc = prefix.iter().fold(!0u32, |crc, &byte| {
        LEGACY_CRC_TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    });
    !crc ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_crc_differs_from_the_standard_only_through_its_wrong_entry() {
        // Without the entry it is the standard CRC-32.
        let plain = b"no byte here reaches the wrong entry";
        assert_eq!(legacy_fingerprint(plain), fingerprint(plain));
        assert_eq!(
            LEGACY_CRC_TABLE
                .iter()
                .filter(|&&e| e == 0x08BB_E8EA)
                .count(),
            1
        );
        // Some byte string hits the wrong entry, and then they differ.
        let differs = (0u8..=255).any(|b| legacy_fingerprint(&[b]) != fingerprint(&[b]));
        assert!(differs);
    }
}
