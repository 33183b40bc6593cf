//! The STUN messages of a connectivity check (RFC 8445 §7.1–7.3): what a
//! request carries, what a response says, and how both are authenticated
//! with short-term credentials. How they are encoded and authenticated in
//! each wire dialect is `crate::dialect`'s business.

use std::net::SocketAddr;

use edgeice_stun::{Attribute, AttributeType, Class, ErrorCode, IntegrityKey, Message};

use crate::config::Dialect;

/// The role attribute a request carries, with the sender's tie-breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoleAttribute {
    Controlling(u64),
    Controlled(u64),
}

/// What goes into one check request.
pub(crate) struct CheckRequest<'a> {
    pub username: &'a str,
    pub priority: u32,
    pub role: RoleAttribute,
    pub use_candidate: bool,
    /// The local candidate's foundation (MS-ICE2's CANDIDATE-IDENTIFIER).
    pub foundation: &'a str,
}

/// What an incoming request asked, once it is authenticated.
#[derive(Debug)]
pub(crate) struct IncomingRequest {
    pub priority: u32,
    pub role: Option<RoleAttribute>,
    pub use_candidate: bool,
}

/// Why an incoming request is refused, and with which code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Drop without answering (bad fingerprint: maybe not STUN at all).
    Silently,
    /// Answer with this error code.
    Code(u16),
}

/// Authenticates a check request addressed to `local_ufrag` and reads it.
pub(crate) fn read_request(
    message: &Message<'_>,
    local_ufrag: &str,
    key: &IntegrityKey,
    dialect: Dialect,
) -> Result<IncomingRequest, Refusal> {
    if !dialect.fingerprint_ok(message) {
        return Err(Refusal::Silently);
    }
    let username = match message.get(AttributeType::USERNAME) {
        Some(Ok(Attribute::Username(name))) => name,
        _ => return Err(Refusal::Code(ErrorCode::BAD_REQUEST)),
    };
    if !message.has_integrity() {
        return Err(Refusal::Code(ErrorCode::BAD_REQUEST));
    }
    let addressed_to_us = username
        .split_once(':')
        .is_some_and(|(ours, _)| ours == local_ufrag);
    if !addressed_to_us || !dialect.integrity_ok(message, key) {
        return Err(Refusal::Code(ErrorCode::UNAUTHENTICATED));
    }
    let priority = match message.get(AttributeType::PRIORITY) {
        Some(Ok(Attribute::Priority(p))) => p,
        _ => return Err(Refusal::Code(ErrorCode::BAD_REQUEST)),
    };
    let mut role = None;
    let mut use_candidate = false;
    for attribute in message.attributes().flatten() {
        match attribute {
            Attribute::IceControlling(tie) => role = Some(RoleAttribute::Controlling(tie)),
            Attribute::IceControlled(tie) => role = Some(RoleAttribute::Controlled(tie)),
            Attribute::UseCandidate => use_candidate = true,
            _ => {}
        }
    }
    Ok(IncomingRequest {
        priority,
        role,
        use_candidate,
    })
}

/// What a response to one of our checks said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CheckOutcome {
    /// It worked; the other side saw us at this address.
    Success { mapped: SocketAddr },
    /// The other side answered with an error.
    Error { code: u16, reason: String },
}

/// Reads a response to a check, authenticated with the remote password.
/// `None`: not authentic (or malformed); ignore it, as if lost.
pub(crate) fn read_response(
    message: &Message<'_>,
    key: &IntegrityKey,
    dialect: Dialect,
) -> Option<CheckOutcome> {
    if !dialect.fingerprint_ok(message) {
        return None;
    }
    match message.class() {
        Class::Success => {
            if !dialect.integrity_ok(message, key) {
                return None;
            }
            let mapped = match message.get(AttributeType::XOR_MAPPED_ADDRESS) {
                Some(Ok(Attribute::XorMappedAddress(addr))) => addr,
                _ => match message.get(AttributeType::MAPPED_ADDRESS) {
                    Some(Ok(Attribute::MappedAddress(addr))) => addr,
                    _ => return None,
                },
            };
            Some(CheckOutcome::Success { mapped })
        }
        Class::Error => {
            if message.has_integrity() && !dialect.integrity_ok(message, key) {
                return None;
            }
            let error = match message.get(AttributeType::ERROR_CODE) {
                Some(Ok(Attribute::ErrorCode(error))) => error,
                _ => return None,
            };
            // Only 400 and 401 may come unsigned (the other side could not
            // check ours); an unsigned 487 could be anyone's, forcing a
            // role switch.
            if !message.has_integrity() && !matches!(error.code, 400 | 401) {
                return None;
            }
            Some(CheckOutcome::Error {
                code: error.code,
                reason: error.reason.to_string(),
            })
        }
        _ => None,
    }
}
