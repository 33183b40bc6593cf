//! A parsed STUN message: a validated, borrowed view over a datagram.
//!
//! Parsing checks the header and walks the attribute list once to prove every
//! attribute lies inside the message and to note where the integrity and
//! fingerprint attributes are. Nothing is copied; attribute values are decoded
//! only when asked for.

use crate::attribute::{Attribute, AttributeError, AttributeType};
use crate::header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
use crate::integrity::{self, IntegrityError, IntegrityKey};

/// Why a datagram is not a well-formed STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than 20 bytes.
    #[error("shorter than a STUN header ({0} bytes)")]
    TooShort(usize),
    /// One of the two top bits is set: not STUN (RFC 7983 demultiplexing).
    #[error("first two bits are not zero: not a STUN message")]
    NotStun,
    /// The magic cookie is missing (an RFC 3489 message, or not STUN at all).
    #[error("magic cookie missing")]
    NoMagicCookie,
    /// The header's length is not a multiple of 4.
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The header's length does not match the datagram's.
    #[error("header says {declared} bytes of attributes, datagram has {actual}")]
    LengthMismatch {
        /// Length from the header.
        declared: usize,
        /// Bytes present after the header.
        actual: usize,
    },
    /// An attribute runs past the end of the message.
    #[error("attribute at offset {0} runs past the end of the message")]
    TruncatedAttribute(usize),
    /// An attribute follows FINGERPRINT, which must be last.
    #[error("attribute after FINGERPRINT")]
    AttributeAfterFingerprint,
}

/// How attributes sit in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Each value padded to a multiple of 4 bytes (RFC 8489 §14).
    Padded,
    /// Values back to back, with no padding: how libnice writes and
    /// expects Microsoft's MS-TURN and MS-ICE2 dialects (a USERNAME those
    /// dialects want aligned carries its padding inside its length).
    Unpadded,
}

/// A STUN message parsed from a byte slice, borrowing it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    layout: Layout,
    kind: MessageType,
    transaction_id: TransactionId,
    integrity: Option<usize>,
    integrity_sha256: Option<usize>,
    fingerprint: Option<usize>,
}

impl<'a> Message<'a> {
    /// Parses a datagram holding exactly one RFC 8489 message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_inner(bytes, true, Layout::Padded)
    }

    /// Parses a message whether or not it carries the magic cookie: RFC 3489
    /// clients and Microsoft's MS-TURN put a transaction ID there instead.
    pub fn parse_any_cookie(bytes: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_inner(bytes, false, Layout::Padded)
    }

    /// Parses a message whose attributes are not padded ([`Layout::Unpadded`]),
    /// with or without the magic cookie. Its length need not be a multiple
    /// of 4, but the attributes must tile it exactly.
    pub fn parse_unpadded(bytes: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_inner(bytes, false, Layout::Unpadded)
    }

    /// Parses a message in whichever layout its attributes tile exactly,
    /// trying [`Layout::Unpadded`] first: what a server does for a dialect
    /// whose clients differ in padding. A message with only 4-byte-aligned
    /// values reads the same both ways.
    pub fn parse_either_layout(bytes: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_unpadded(bytes).or_else(|_| Self::parse_any_cookie(bytes))
    }

    fn parse_inner(
        bytes: &'a [u8],
        require_cookie: bool,
        layout: Layout,
    ) -> Result<Self, ParseError> {
        let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(ParseError::TooShort(bytes.len()));
        };
        let kind = MessageType::from_u16(u16::from_be_bytes([header[0], header[1]]))
            .ok_or(ParseError::NotStun)?;
        let declared = u16::from_be_bytes([header[2], header[3]]);
        if layout == Layout::Padded && declared % 4 != 0 {
            return Err(ParseError::UnalignedLength(declared));
        }
        if usize::from(declared) != body.len() {
            return Err(ParseError::LengthMismatch {
                declared: declared.into(),
                actual: body.len(),
            });
        }
        if require_cookie && header[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(ParseError::NoMagicCookie);
        }
        let mut transaction_id = TransactionId::default();
        transaction_id.0.copy_from_slice(&header[8..20]);

        let mut message = Message {
            bytes,
            layout,
            kind,
            transaction_id,
            integrity: None,
            integrity_sha256: None,
            fingerprint: None,
        };
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            if message.fingerprint.is_some() {
                return Err(ParseError::AttributeAfterFingerprint);
            }
            let (kind, value_len) = raw_header(bytes, offset)?;
            // Kept as usize: a message is up to 20 + 0xFFFC bytes, so an
            // attribute can start beyond u16::MAX (a u16 here once wrapped
            // to the header and made the integrity check slice backwards).
            let at = offset;
            match kind {
                AttributeType::MESSAGE_INTEGRITY
                    if message.integrity.is_none() && message.integrity_sha256.is_none() =>
                {
                    message.integrity = Some(at)
                }
                AttributeType::MESSAGE_INTEGRITY_SHA256 if message.integrity_sha256.is_none() => {
                    message.integrity_sha256 = Some(at)
                }
                AttributeType::FINGERPRINT => message.fingerprint = Some(at),
                _ => {}
            }
            offset += 4 + layout.stored_len(value_len);
        }
        Ok(message)
    }

    /// How its attributes are laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Method and class.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.kind.method
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.kind.class
    }

    /// The transaction ID.
    pub fn transaction_id(&self) -> &TransactionId {
        &self.transaction_id
    }

    /// Whether the header carries the RFC 5389/8489 magic cookie.
    pub fn has_magic_cookie(&self) -> bool {
        self.bytes[4..8] == MAGIC_COOKIE.to_be_bytes()
    }

    /// The four bytes where the magic cookie belongs (a transaction ID part
    /// in RFC 3489 and MS-TURN messages).
    pub fn cookie_field(&self) -> [u8; 4] {
        [self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]]
    }

    /// The attributes a receiver processes, raw, in order: everything up to
    /// MESSAGE-INTEGRITY, then only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    /// (RFC 8489 §14.5: attributes after the integrity are ignored).
    pub fn raw_attributes(&self) -> RawAttributes<'a> {
        RawAttributes {
            bytes: self.bytes,
            layout: self.layout,
            offset: HEADER_LEN,
            integrity_seen: false,
            integrity_sha256_seen: false,
        }
    }

    /// The attributes a receiver processes, decoded.
    pub fn attributes(&self) -> impl Iterator<Item = Result<Attribute<'a>, AttributeError>> + 'a {
        let txid = self.transaction_id;
        self.raw_attributes()
            .map(move |(kind, value)| Attribute::decode(kind, value, &txid))
    }

    /// The raw value of the first processed attribute of type `kind`.
    pub fn get_raw(&self, kind: AttributeType) -> Option<&'a [u8]> {
        self.raw_attributes()
            .find(|(k, _)| *k == kind)
            .map(|(_, value)| value)
    }

    /// The first processed attribute of type `kind`, decoded.
    pub fn get(&self, kind: AttributeType) -> Option<Result<Attribute<'a>, AttributeError>> {
        self.get_raw(kind)
            .map(|value| Attribute::decode(kind, value, &self.transaction_id))
    }

    /// Comprehension-required attribute types this codec does not know:
    /// a server answers a request that has any with 420 and lists them in
    /// UNKNOWN-ATTRIBUTES.
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.raw_attributes()
            .map(|(kind, _)| kind)
            .filter(|kind| kind.is_comprehension_required() && !kind.is_known())
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key`, in constant time.
    pub fn verify_integrity_sha1(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let at = self.integrity.ok_or(IntegrityError::Missing)?;
        let tag = self.value_at(at);
        integrity::verify_sha1(key, self.bytes, at, tag)
    }

    /// Checks MESSAGE-INTEGRITY the RFC 3489 way Microsoft's dialects keep:
    /// the HMAC input is zero-padded to a multiple of 64 bytes, and the
    /// header's length is taken as received (MS-ICE2 counts a FINGERPRINT
    /// that follows the integrity).
    pub fn verify_integrity_sha1_rfc3489(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let at = self.integrity.ok_or(IntegrityError::Missing)?;
        let tag = self.value_at(at);
        let length = u16::from_be_bytes([self.bytes[2], self.bytes[3]]);
        integrity::verify_sha1_rfc3489(key, self.bytes, at, length, tag)
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 with `key`, in constant time.
    pub fn verify_integrity_sha256(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let at = self.integrity_sha256.ok_or(IntegrityError::Missing)?;
        let tag = self.value_at(at);
        integrity::verify_sha256(key, self.bytes, at, tag)
    }

    /// Checks the strongest integrity attribute present: SHA-256 when there
    /// is one, SHA-1 otherwise (RFC 8489 §9.1.4).
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        if self.integrity_sha256.is_some() {
            self.verify_integrity_sha256(key)
        } else {
            self.verify_integrity_sha1(key)
        }
    }

    /// Checks FINGERPRINT.
    pub fn verify_fingerprint(&self) -> Result<(), IntegrityError> {
        let at = self.fingerprint.ok_or(IntegrityError::Missing)?;
        let value = self.value_at(at);
        let expected = integrity::fingerprint(&self.bytes[..at]);
        if value == expected.to_be_bytes() {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch)
        }
    }

    /// Checks FINGERPRINT against Microsoft's legacy CRC-32, which MS-ICE2
    /// peers without IMPLEMENTATION-VERSION use
    /// ([`crate::MessageBuilder::add_fingerprint_legacy`]).
    pub fn verify_fingerprint_legacy(&self) -> Result<(), IntegrityError> {
        let at = self.fingerprint.ok_or(IntegrityError::Missing)?;
        let value = self.value_at(at);
        if value == integrity::legacy_fingerprint(&self.bytes[..at]).to_be_bytes() {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch)
        }
    }

    /// The value of the attribute whose header starts at `at` (an offset
    /// recorded during parsing, so known to be in bounds).
    fn value_at(&self, at: usize) -> &'a [u8] {
        let len = usize::from(u16::from_be_bytes([self.bytes[at + 2], self.bytes[at + 3]]));
        &self.bytes[at + 4..at + 4 + len]
    }
}

impl Layout {
    /// How many bytes a value of `len` bytes takes in the message.
    pub(crate) fn stored_len(self, len: usize) -> usize {
        match self {
            Layout::Padded => len.next_multiple_of(4),
            Layout::Unpadded => len,
        }
    }
}

/// Reads the type and length of the attribute at `offset`, checking that its
/// value fits in the message.
fn raw_header(bytes: &[u8], offset: usize) -> Result<(AttributeType, usize), ParseError> {
    let Some(&[t0, t1, l0, l1]) = bytes.get(offset..offset + 4) else {
        return Err(ParseError::TruncatedAttribute(offset));
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if offset + 4 + len > bytes.len() {
        return Err(ParseError::TruncatedAttribute(offset));
    }
    Ok((AttributeType(u16::from_be_bytes([t0, t1])), len))
}

/// Iterator over the processed attributes of a [`Message`], as
/// `(type, value)` pairs without padding.
#[derive(Clone, Debug)]
pub struct RawAttributes<'a> {
    bytes: &'a [u8],
    layout: Layout,
    offset: usize,
    integrity_seen: bool,
    integrity_sha256_seen: bool,
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = (AttributeType, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.offset < self.bytes.len() {
            // The message was validated when parsed, so this cannot fail.
            let (kind, len) = raw_header(self.bytes, self.offset).ok()?;
            let value = &self.bytes[self.offset + 4..self.offset + 4 + len];
            self.offset += 4 + self.layout.stored_len(len);
            let processed = match kind {
                AttributeType::FINGERPRINT => true,
                AttributeType::MESSAGE_INTEGRITY_SHA256 => !self.integrity_sha256_seen,
                AttributeType::MESSAGE_INTEGRITY => {
                    !self.integrity_seen && !self.integrity_sha256_seen
                }
                _ => !self.integrity_seen && !self.integrity_sha256_seen,
            };
            match kind {
                AttributeType::MESSAGE_INTEGRITY => self.integrity_seen = true,
                AttributeType::MESSAGE_INTEGRITY_SHA256 => self.integrity_sha256_seen = true,
                _ => {}
            }
            if processed {
                return Some((kind, value));
            }
        }
        None
    }
}

/// The length of the STUN message at the front of `bytes`, from its header,
/// or `None` when fewer than 4 bytes are there. Used to frame streams.
pub(crate) fn declared_len(bytes: &[u8]) -> Option<usize> {
    let &[_, _, l0, l1, ..] = bytes else {
        return None;
    };
    Some(HEADER_LEN + usize::from(u16::from_be_bytes([l0, l1])))
}
