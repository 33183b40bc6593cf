//! Answering STUN Binding requests (RFC 8489 §§6.3, 12), with NAT behaviour
//! discovery (RFC 5780) when the server has an alternate address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use edgeice_stun::{Attribute, AttributeType, BuildError, Class, Message, MessageBuilder};

use crate::config::AlternateAddress;
use crate::interface::{FiveTuple, Transport};
use crate::response::{self, ReplyTo};

/// A Binding response and where it goes.
pub(crate) struct Answer<'s> {
    pub bytes: &'s [u8],
    /// The local address to send it from (another one for CHANGE-REQUEST).
    pub source: SocketAddr,
    /// Where to send it (another port for RESPONSE-PORT).
    pub destination: SocketAddr,
    pub success: bool,
}

/// Whether `request` asks, and the listener of `from` can, to answer from
/// another address (CHANGE-REQUEST) or to another port (RESPONSE-PORT)
/// than the request's: those answers are rate-limited per source, since a
/// spoofed request could aim them at any port of its victim.
pub(crate) fn asks_elsewhere(
    request: &Message<'_>,
    from: FiveTuple,
    alternates: &[AlternateAddress],
) -> bool {
    let served = from.transport == Transport::Udp
        && alternates.iter().any(|pair| pair.contains(from.server));
    let change = matches!(
        request.get(AttributeType::CHANGE_REQUEST),
        Some(Ok(Attribute::ChangeRequest { change_ip, change_port })) if change_ip || change_port
    );
    served && (change || request.get(AttributeType::RESPONSE_PORT).is_some())
}

/// Answers a Binding request that came in on `from`, into `scratch`.
///
/// RFC 3489 clients (no magic cookie) get MAPPED-ADDRESS, which they
/// understand; others get XOR-MAPPED-ADDRESS. When the listener belongs to
/// an RFC 5780 address pair, responses carry RESPONSE-ORIGIN and
/// OTHER-ADDRESS, and CHANGE-REQUEST and RESPONSE-PORT are honoured over
/// UDP; otherwise those two attributes are reported as not understood (420),
/// so a client knows not to rely on them.
pub(crate) fn respond<'s>(
    scratch: &'s mut Vec<u8>,
    request: &Message<'_>,
    from: FiveTuple,
    alternates: &[AlternateAddress],
    external_ips: &HashMap<IpAddr, IpAddr>,
    software: Option<&str>,
) -> Option<Answer<'s>> {
    let to = ReplyTo::of(request);
    let pair = alternates
        .iter()
        .find(|pair| pair.contains(from.server))
        .filter(|_| from.transport == Transport::Udp);
    let mut unknown: Vec<AttributeType> = request.unknown_comprehension_required().collect();
    let mut source = from.server;
    let mut destination = from.client;
    if let Some(Ok(Attribute::ChangeRequest {
        change_ip,
        change_port,
    })) = request.get(AttributeType::CHANGE_REQUEST)
        && (change_ip || change_port)
    {
        match pair {
            Some(pair) => source = pair.changed(from.server, change_ip, change_port),
            None => unknown.push(AttributeType::CHANGE_REQUEST),
        }
    }
    if let Some(Ok(Attribute::ResponsePort(port))) = request.get(AttributeType::RESPONSE_PORT) {
        match pair {
            Some(_) => destination.set_port(port),
            None => unknown.push(AttributeType::RESPONSE_PORT),
        }
    }
    if !unknown.is_empty() {
        let body = response::unknown_attributes(&unknown);
        let bytes = response::build(scratch, &to, Class::Error, software, None, body)?;
        return Some(Answer {
            bytes,
            source: from.server,
            destination: from.client,
            success: false,
        });
    }
    let classic = !request.has_magic_cookie();
    let client = from.client;
    let body = move |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
        if classic {
            b.add(&Attribute::MappedAddress(client))?;
        } else {
            b.add(&Attribute::XorMappedAddress(client))?;
        }
        if let Some(pair) = pair {
            // Behind NAT, the addresses clients can reach are the public ones.
            let public = |addr: SocketAddr| match external_ips.get(&addr.ip()) {
                Some(ip) => SocketAddr::new(*ip, addr.port()),
                None => addr,
            };
            let other = pair.changed(from.server, true, true);
            b.add(&Attribute::ResponseOrigin(public(source)))?;
            b.add(&Attribute::OtherAddress(public(other)))?;
        }
        Ok(())
    };
    let bytes = response::build(scratch, &to, Class::Success, software, None, body)?;
    Some(Answer {
        bytes,
        source,
        destination,
        success: true,
    })
}
