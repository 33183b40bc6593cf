//! Answering STUN Binding requests (RFC 8489 §§6.3, 12).

use std::net::SocketAddr;

use edgeice_stun::{Attribute, AttributeType, BuildError, Class, Message, MessageBuilder};

use crate::response::{self, ReplyTo};

/// Answers a Binding request from `client`, into `scratch`.
///
/// RFC 3489 clients (no magic cookie) get MAPPED-ADDRESS, which they
/// understand; others get XOR-MAPPED-ADDRESS. A CHANGE-REQUEST asking for
/// another address or port needs the second address of RFC 5780; without
/// one the attribute is reported as not understood (420).
pub(crate) fn respond<'s>(
    scratch: &'s mut Vec<u8>,
    request: &Message<'_>,
    client: SocketAddr,
    software: Option<&str>,
) -> Option<&'s [u8]> {
    let to = ReplyTo::of(request);
    let mut unknown: Vec<AttributeType> = request.unknown_comprehension_required().collect();
    if let Some(Ok(Attribute::ChangeRequest {
        change_ip,
        change_port,
    })) = request.get(AttributeType::CHANGE_REQUEST)
        && (change_ip || change_port)
    {
        unknown.push(AttributeType::CHANGE_REQUEST);
    }
    if !unknown.is_empty() {
        let body = response::unknown_attributes(&unknown);
        return response::build(scratch, &to, Class::Error, software, None, body);
    }
    let classic = !request.has_magic_cookie();
    let body = move |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
        if classic {
            b.add(&Attribute::MappedAddress(client))?;
        } else {
            b.add(&Attribute::XorMappedAddress(client))?;
        }
        Ok(())
    };
    response::build(scratch, &to, Class::Success, software, None, body)
}
