//! ERROR-CODE (RFC 8489 §14.8), whose layout ADDRESS-ERROR-CODE
//! (RFC 8656 §18.12) reuses with an address family in the first byte.

use super::{AttributeError, MAX_TEXT_LEN};

/// An error code and its reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// The code, 300..=699.
    pub code: u16,
    /// The reason phrase, for humans.
    pub reason: &'a str,
}

impl<'a> ErrorCode<'a> {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 403 Forbidden.
    pub const FORBIDDEN: u16 = 403;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 437 Allocation Mismatch.
    pub const ALLOCATION_MISMATCH: u16 = 437;
    /// 438 Stale Nonce.
    pub const STALE_NONCE: u16 = 438;
    /// 440 Address Family not Supported.
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    /// 441 Wrong Credentials.
    pub const WRONG_CREDENTIALS: u16 = 441;
    /// 442 Unsupported Transport Protocol.
    pub const UNSUPPORTED_TRANSPORT: u16 = 442;
    /// 443 Peer Address Family Mismatch.
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    /// 446 Connection Already Exists (RFC 6062).
    pub const CONNECTION_ALREADY_EXISTS: u16 = 446;
    /// 447 Connection Timeout or Failure (RFC 6062).
    pub const CONNECTION_TIMEOUT_OR_FAILURE: u16 = 447;
    /// 486 Allocation Quota Reached.
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// 487 Role Conflict (ICE).
    pub const ROLE_CONFLICT: u16 = 487;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;
    /// 508 Insufficient Capacity.
    pub const INSUFFICIENT_CAPACITY: u16 = 508;

    /// An error with the reason phrase its RFC suggests for `code`.
    pub fn with_default_reason(code: u16) -> ErrorCode<'static> {
        ErrorCode {
            code,
            reason: default_reason(code),
        }
    }

    /// Decodes the value; the first byte (reserved, or the family of an
    /// ADDRESS-ERROR-CODE) is not looked at.
    pub(crate) fn decode(value: &'a [u8]) -> Result<Self, AttributeError> {
        let Some((&[_, _, class, number], reason)) = value.split_first_chunk::<4>() else {
            return Err(AttributeError::Length);
        };
        let class = class & 0x07;
        if !(3..=6).contains(&class) || number > 99 {
            return Err(AttributeError::Invalid("error code outside 300..=699"));
        }
        if reason.len() > MAX_TEXT_LEN {
            return Err(AttributeError::Length);
        }
        let reason = std::str::from_utf8(reason).map_err(|_| AttributeError::Utf8)?;
        Ok(ErrorCode {
            code: u16::from(class) * 100 + u16::from(number),
            reason,
        })
    }

    /// Appends the value with `first_byte` in front (zero, or a family).
    pub(crate) fn encode(&self, first_byte: u8, out: &mut Vec<u8>) -> Result<(), AttributeError> {
        if !(300..=699).contains(&self.code) {
            return Err(AttributeError::Invalid("error code outside 300..=699"));
        }
        if self.reason.len() > MAX_TEXT_LEN {
            return Err(AttributeError::Length);
        }
        let class = (self.code / 100) as u8;
        let number = (self.code % 100) as u8;
        out.extend_from_slice(&[first_byte, 0, class, number]);
        out.extend_from_slice(self.reason.as_bytes());
        Ok(())
    }
}

/// The reason phrase RFC 8489, 8656, 6062 and 8445 give for a code.
pub fn default_reason(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthenticated",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        446 => "Connection Already Exists",
        447 => "Connection Timeout or Failure",
        486 => "Allocation Quota Reached",
        487 => "Role Conflict",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "",
    }
}
