//! Answering STUN Binding requests (RFC 8489 §§6.3, 12).

use std::net::SocketAddr;

use edgeice_stun::attribute::UnknownAttributes;
use edgeice_stun::{
    Attribute, AttributeType, Class, ErrorCode, Message, MessageBuilder, MessageType, Method,
};

use crate::Transport;

/// What a response depends on besides the request.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The transport the request came in on.
    pub transport: Transport,
    /// The address it came from: the reflexive address to report.
    pub remote: SocketAddr,
    /// SOFTWARE to include, if any.
    pub software: Option<&'a str>,
}

/// What to do with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send `contents` back to the sender.
    Respond {
        /// The response.
        contents: Vec<u8>,
        /// Whether it is a success response.
        success: bool,
    },
    /// Send nothing: not STUN, not a request, or failed its fingerprint.
    Ignore,
}

/// Processes one message received from `context.remote`.
pub fn respond(context: &Context<'_>, bytes: &[u8]) -> Outcome {
    // RFC 3489 clients put no magic cookie in the header; they are answered
    // in their own dialect (MAPPED-ADDRESS only) rather than ignored.
    let Ok(request) = Message::parse_any_cookie(bytes) else {
        return Outcome::Ignore;
    };
    if request.has_fingerprint() && request.verify_fingerprint().is_err() {
        return Outcome::Ignore;
    }
    if request.class() != Class::Request {
        // Binding indications are keepalives; responses are not ours.
        return Outcome::Ignore;
    }
    let classic = !request.has_magic_cookie();

    let mut unknown: Vec<AttributeType> = request.unknown_comprehension_required().collect();
    if request.method() != Method::BINDING {
        return error_response(context, &request, ErrorCode::BAD_REQUEST, &[]);
    }
    // A CHANGE-REQUEST asking for another address or port needs the second
    // address RFC 5780 uses; without one, the attribute is not understood.
    if let Some(Ok(Attribute::ChangeRequest {
        change_ip,
        change_port,
    })) = request.get(AttributeType::CHANGE_REQUEST)
        && (change_ip || change_port)
    {
        unknown.push(AttributeType::CHANGE_REQUEST);
    }
    if !unknown.is_empty() {
        return error_response(context, &request, ErrorCode::UNKNOWN_ATTRIBUTE, &unknown);
    }

    let mut contents = Vec::with_capacity(64);
    let kind = MessageType::new(Method::BINDING, Class::Success);
    let mut response = MessageBuilder::with_cookie(
        &mut contents,
        kind,
        request.cookie_field(),
        *request.transaction_id(),
    );
    let added = if classic {
        response
            .add(&Attribute::MappedAddress(context.remote))
            .map(|_| ())
    } else {
        add_success_attributes(&mut response, context)
    };
    if added.is_err() {
        return Outcome::Ignore;
    }
    Outcome::Respond {
        contents,
        success: true,
    }
}

fn add_success_attributes(
    response: &mut MessageBuilder<'_>,
    context: &Context<'_>,
) -> Result<(), edgeice_stun::BuildError> {
    response.add(&Attribute::XorMappedAddress(context.remote))?;
    if let Some(software) = context.software {
        response.add(&Attribute::Software(software))?;
    }
    response.add_fingerprint()?;
    Ok(())
}

fn error_response(
    context: &Context<'_>,
    request: &Message<'_>,
    code: u16,
    unknown: &[AttributeType],
) -> Outcome {
    let mut contents = Vec::with_capacity(64);
    let mut list = Vec::new();
    let kind = MessageType::new(request.method(), Class::Error);
    let mut response = MessageBuilder::with_cookie(
        &mut contents,
        kind,
        request.cookie_field(),
        *request.transaction_id(),
    );
    let mut build = || -> Result<(), edgeice_stun::BuildError> {
        response.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(code)))?;
        if !unknown.is_empty() {
            let list = UnknownAttributes::encode_into(unknown, &mut list);
            response.add(&Attribute::UnknownAttributes(list))?;
        }
        if let Some(software) = context.software {
            response.add(&Attribute::Software(software))?;
        }
        if request.has_magic_cookie() {
            response.add_fingerprint()?;
        }
        Ok(())
    };
    if build().is_err() {
        return Outcome::Ignore;
    }
    Outcome::Respond {
        contents,
        success: false,
    }
}
