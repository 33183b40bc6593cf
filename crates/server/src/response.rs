//! Writing responses into the server's reusable buffer.

use edgeice_stun::{
    Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Layout, Message,
    MessageBuilder, MessageType, Method, TransactionId, ms,
};

/// Which dialect a request spoke, and so how its answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// STUN and TURN as the RFCs have them (RFC 3489 Binding included).
    Standard,
    /// Microsoft's MS-TURN, with the client's attribute layout: answers
    /// start with MAGIC-COOKIE, are signed the RFC 3489 way and carry no
    /// FINGERPRINT.
    MsTurn(Layout),
}

/// What a response must echo from its request, kept so that a response can
/// be sent after the request's bytes are gone (an Allocate waits for its
/// relay socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The request's method.
    pub method: Method,
    /// The request's transaction ID.
    pub transaction_id: TransactionId,
    /// The request's cookie field (not the magic cookie for RFC 3489).
    pub cookie: [u8; 4],
    /// Whether the request carried the magic cookie (so FINGERPRINT is understood).
    pub rfc5389: bool,
    /// Whether the request used MESSAGE-INTEGRITY-SHA256.
    pub sha256: bool,
    /// The request's size, which bounds unauthenticated answers.
    pub request_len: usize,
    /// The request's dialect.
    pub dialect: Dialect,
}

impl ReplyTo {
    /// What to echo from `request`.
    pub fn of(request: &Message<'_>) -> Self {
        ReplyTo {
            method: request.method(),
            transaction_id: *request.transaction_id(),
            cookie: request.cookie_field(),
            rfc5389: request.has_magic_cookie(),
            sha256: request.has_integrity_sha256(),
            request_len: request.as_bytes().len(),
            dialect: Dialect::Standard,
        }
    }

    /// What to echo from an MS-TURN request.
    pub fn of_ms_turn(request: &Message<'_>) -> Self {
        ReplyTo {
            dialect: Dialect::MsTurn(request.layout()),
            ..Self::of(request)
        }
    }

    /// The 16 bytes after the length field of the answer: MS-XOR-MAPPED-
    /// ADDRESS's key.
    pub(crate) fn header_tail(&self) -> [u8; 16] {
        let mut tail = [0u8; 16];
        tail[..4].copy_from_slice(&self.cookie);
        tail[4..].copy_from_slice(self.transaction_id.as_bytes());
        tail
    }
}

/// How many times its request's size an unauthenticated answer may be
/// before optional attributes are left out: a spoofed request must not buy
/// much more traffic towards its victim than it cost.
const AMPLIFICATION_LIMIT: usize = 3;

/// How many times its request's size a 401 or 438 over UDP may be at most,
/// REALM and NONCE counted; beyond it (even with SOFTWARE and the reason
/// phrase left out) the request goes unanswered. The smallest Allocate (28 bytes)
/// is answered with a realm of up to 20 characters, reason included.
pub(crate) const AMPLIFICATION_CAP: usize = 4;

/// The smallest UDP request that still gets a 401 with `realm`: the 401
/// without SOFTWARE and reason phrase (header, ERROR-CODE, REALM, a
/// 40-character NONCE, FINGERPRINT) must be within `AMPLIFICATION_CAP` (4)
/// times its size. The smallest Allocate is 28 bytes; with a realm that
/// makes this larger, clients that send one get no answer over UDP.
pub fn smallest_challenged_request(realm: &str) -> usize {
    let padded = |len: usize| len.div_ceil(4) * 4;
    let answer = 20 + 8 + (4 + padded(realm.len())) + (4 + 40) + 8;
    answer.div_ceil(AMPLIFICATION_CAP)
}

/// Writes a response of `class` into `scratch`: the attributes `body` adds,
/// then SOFTWARE, integrity with `key` when given, and FINGERPRINT.
/// Without a key, SOFTWARE is left out where it would take the answer past
/// [`AMPLIFICATION_LIMIT`] times the request's size.
pub(crate) fn build<'s>(
    scratch: &'s mut Vec<u8>,
    to: &ReplyTo,
    class: Class,
    software: Option<&str>,
    key: Option<&IntegrityKey>,
    body: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
) -> Option<&'s [u8]> {
    let kind = MessageType::new(to.method, class);
    let mut b = MessageBuilder::with_cookie(scratch, kind, to.cookie, to.transaction_id);
    if let Dialect::MsTurn(layout) = to.dialect {
        b = b.layout(layout);
        b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())
            .ok()?;
        body(&mut b).ok()?;
        // MS-TURN defines neither SOFTWARE nor FINGERPRINT.
        if let Some(key) = key {
            b.add_integrity_sha1_rfc3489(key, false).ok()?;
        }
        return Some(b.finish());
    }
    body(&mut b).ok()?;
    if let Some(software) = software {
        let trailer = if to.rfc5389 { 8 } else { 0 };
        let with_software = b.as_bytes().len() + 4 + software.len().next_multiple_of(4) + trailer;
        if key.is_some() || with_software <= AMPLIFICATION_LIMIT * to.request_len {
            b.add(&Attribute::Software(software)).ok()?;
        }
    }
    match key {
        Some(key) if to.sha256 => b.add_integrity_sha256(key).ok()?,
        Some(key) => b.add_integrity_sha1(key).ok()?,
        None => &mut b,
    };
    if to.rfc5389 {
        b.add_fingerprint().ok()?;
    }
    Some(b.finish())
}

/// The body of an error response: ERROR-CODE with its RFC reason.
pub(crate) fn error_code(
    code: u16,
) -> impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError> {
    move |b| {
        b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(code)))?;
        Ok(())
    }
}

/// The body of a 420 response: ERROR-CODE and UNKNOWN-ATTRIBUTES.
pub(crate) fn unknown_attributes(
    unknown: &[AttributeType],
) -> impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError> + '_ {
    move |b| {
        error_code(ErrorCode::UNKNOWN_ATTRIBUTE)(b)?;
        let mut list = Vec::with_capacity(unknown.len() * 2);
        let list = edgeice_stun::attribute::UnknownAttributes::encode_into(unknown, &mut list);
        b.add(&Attribute::UnknownAttributes(list))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::smallest_challenged_request;

    #[test]
    fn realms_of_up_to_28_characters_let_the_smallest_allocate_be_challenged() {
        assert!(smallest_challenged_request("edgeice") <= 28);
        assert!(smallest_challenged_request(&"r".repeat(28)) <= 28);
        assert!(smallest_challenged_request(&"r".repeat(29)) > 28);
    }
}
