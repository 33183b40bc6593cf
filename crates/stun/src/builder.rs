//! Building STUN messages into a caller's reusable buffer.
//!
//! The header's length field is kept current after every attribute, which
//! is what lets MESSAGE-INTEGRITY and FINGERPRINT be computed in place, over
//! the bytes already written.

use crate::attribute::{Attribute, AttributeError, AttributeType};
use crate::header::{HEADER_LEN, MAGIC_COOKIE, MessageType, TransactionId};
use crate::integrity::{self, IntegrityKey};
use crate::message::Layout;

/// Why an attribute could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The message would exceed 65535 bytes of attributes.
    #[error("message too long")]
    TooLong,
    /// The attribute's value breaks its RFC's limits.
    #[error(transparent)]
    Attribute(#[from] AttributeError),
    /// Nothing may follow FINGERPRINT, and only MESSAGE-INTEGRITY-SHA256 or
    /// FINGERPRINT may follow MESSAGE-INTEGRITY.
    #[error("{0} cannot be added after the integrity or fingerprint attributes")]
    OutOfOrder(AttributeType),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Attributes,
    AfterIntegrity,
    AfterIntegritySha256,
    AfterFingerprint,
}

/// Writes one STUN message into a borrowed `Vec<u8>`, which is cleared
/// first and can be reused for the next message without reallocating.
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut Vec<u8>,
    transaction_id: TransactionId,
    padding: u8,
    layout: Layout,
    stage: Stage,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message of type `kind` with the RFC 8489 magic cookie.
    pub fn new(buf: &'b mut Vec<u8>, kind: MessageType, transaction_id: TransactionId) -> Self {
        Self::with_cookie(buf, kind, MAGIC_COOKIE.to_be_bytes(), transaction_id)
    }

    /// Starts a message with `cookie` in the magic cookie's place, for the
    /// RFC 3489 and MS-TURN dialects.
    pub fn with_cookie(
        buf: &'b mut Vec<u8>,
        kind: MessageType,
        cookie: [u8; 4],
        transaction_id: TransactionId,
    ) -> Self {
        buf.clear();
        buf.extend_from_slice(&kind.to_u16().to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&cookie);
        buf.extend_from_slice(transaction_id.as_bytes());
        MessageBuilder {
            buf,
            transaction_id,
            padding: 0,
            layout: Layout::Padded,
            stage: Stage::Attributes,
        }
    }

    /// Sets the byte used to pad attribute values to 4 bytes (zero by
    /// default; receivers must ignore it, and the RFC 5769 vectors use 0x20).
    pub fn padding_byte(mut self, byte: u8) -> Self {
        self.padding = byte;
        self
    }

    /// Lays the attributes out as `layout` says: [`Layout::Unpadded`] for
    /// peers of Microsoft's dialects that reject padding.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The transaction ID of the message being built.
    pub fn transaction_id(&self) -> &TransactionId {
        &self.transaction_id
    }

    /// Appends an attribute.
    pub fn add(&mut self, attribute: &Attribute<'_>) -> Result<&mut Self, BuildError> {
        let kind = attribute.kind();
        self.check_order(kind)?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&kind.0.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        if let Err(e) = attribute.encode_value(&self.transaction_id, self.buf) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        self.close_attribute(start)?;
        Ok(self)
    }

    /// Appends an attribute from its raw type and value, for types this
    /// codec does not model.
    pub fn add_raw(&mut self, kind: AttributeType, value: &[u8]) -> Result<&mut Self, BuildError> {
        self.add(&Attribute::Unknown { kind, value })
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1) over everything before it.
    pub fn add_integrity_sha1(&mut self, key: &IntegrityKey) -> Result<&mut Self, BuildError> {
        self.check_order(AttributeType::MESSAGE_INTEGRITY)?;
        let at = self.buf.len();
        self.set_length(at + 24)?;
        let tag = integrity::sign_sha1(key, self.buf, at);
        self.push_attribute(AttributeType::MESSAGE_INTEGRITY, &tag);
        self.stage = Stage::AfterIntegrity;
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY computed the RFC 3489 way Microsoft's
    /// dialects keep (input zero-padded to 64 bytes). MS-ICE2 counts the
    /// FINGERPRINT that will follow in the header length the HMAC sees:
    /// say so with `fingerprint_follows`, then add it with
    /// [`MessageBuilder::add_fingerprint`] or
    /// [`MessageBuilder::add_fingerprint_legacy`].
    pub fn add_integrity_sha1_rfc3489(
        &mut self,
        key: &IntegrityKey,
        fingerprint_follows: bool,
    ) -> Result<&mut Self, BuildError> {
        self.check_order(AttributeType::MESSAGE_INTEGRITY)?;
        let at = self.buf.len();
        let end = at + 24 + if fingerprint_follows { 8 } else { 0 };
        self.set_length(end)?;
        let length = u16::from_be_bytes([self.buf[2], self.buf[3]]);
        let tag = integrity::sign_sha1_rfc3489(key, self.buf, at, length);
        self.set_length(at + 24)?;
        self.push_attribute(AttributeType::MESSAGE_INTEGRITY, &tag);
        self.stage = Stage::AfterIntegrity;
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (untruncated) over everything before it.
    pub fn add_integrity_sha256(&mut self, key: &IntegrityKey) -> Result<&mut Self, BuildError> {
        self.check_order(AttributeType::MESSAGE_INTEGRITY_SHA256)?;
        let at = self.buf.len();
        self.set_length(at + 36)?;
        let tag = integrity::sign_sha256(key, self.buf, at);
        self.push_attribute(AttributeType::MESSAGE_INTEGRITY_SHA256, &tag);
        self.stage = Stage::AfterIntegritySha256;
        Ok(self)
    }

    /// Appends FINGERPRINT; nothing can follow it.
    pub fn add_fingerprint(&mut self) -> Result<&mut Self, BuildError> {
        self.check_order(AttributeType::FINGERPRINT)?;
        let at = self.buf.len();
        self.set_length(at + 8)?;
        let crc = integrity::fingerprint(self.buf);
        self.push_attribute(AttributeType::FINGERPRINT, &crc.to_be_bytes());
        self.stage = Stage::AfterFingerprint;
        Ok(self)
    }

    /// Appends FINGERPRINT computed with Microsoft's legacy CRC-32, for
    /// MS-ICE2 peers that predate IMPLEMENTATION-VERSION.
    pub fn add_fingerprint_legacy(&mut self) -> Result<&mut Self, BuildError> {
        self.check_order(AttributeType::FINGERPRINT)?;
        let at = self.buf.len();
        self.set_length(at + 8)?;
        let crc = integrity::legacy_fingerprint(self.buf);
        self.push_attribute(AttributeType::FINGERPRINT, &crc.to_be_bytes());
        self.stage = Stage::AfterFingerprint;
        Ok(self)
    }

    /// The bytes built so far (a complete message after every call).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
    }

    /// Ends building and returns the message.
    pub fn finish(self) -> &'b [u8] {
        self.buf
    }

    fn check_order(&self, kind: AttributeType) -> Result<(), BuildError> {
        let allowed = match kind {
            AttributeType::FINGERPRINT => self.stage < Stage::AfterFingerprint,
            AttributeType::MESSAGE_INTEGRITY_SHA256 => self.stage < Stage::AfterIntegritySha256,
            _ => self.stage == Stage::Attributes,
        };
        if allowed {
            Ok(())
        } else {
            Err(BuildError::OutOfOrder(kind))
        }
    }

    /// Writes an attribute header and value that are known to fit.
    fn push_attribute(&mut self, kind: AttributeType, value: &[u8]) {
        self.buf.extend_from_slice(&kind.0.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    /// Fills in the length of the attribute that starts at `start`, pads it
    /// and updates the header; undoes the attribute if it does not fit.
    fn close_attribute(&mut self, start: usize) -> Result<(), BuildError> {
        let value_len = self.buf.len() - start - 4;
        let padded_end = start + 4 + self.layout.stored_len(value_len);
        let Ok(len16) = u16::try_from(value_len) else {
            self.buf.truncate(start);
            return Err(BuildError::TooLong);
        };
        if let Err(e) = self.set_length(padded_end) {
            self.buf.truncate(start);
            return Err(e);
        }
        self.buf[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
        self.buf.resize(padded_end, self.padding);
        Ok(())
    }

    /// Sets the header length so the message ends at `end`.
    fn set_length(&mut self, end: usize) -> Result<(), BuildError> {
        let len = u16::try_from(end - HEADER_LEN).map_err(|_| BuildError::TooLong)?;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}
