//! Reading responses: error codes, and the attributes several requests share.

use edgeice_stun::{Attribute, AttributeType, Message};

/// The ERROR-CODE of an error response, or 0 and a note when it has none
/// or a malformed one.
pub(crate) fn error_code(message: &Message<'_>) -> (u16, String) {
    match message.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => (e.code, e.reason.to_owned()),
        _ => (0, "error response without a valid ERROR-CODE".to_owned()),
    }
}
