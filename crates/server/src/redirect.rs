//! Steering new Allocates away: 300 Try Alternate with ALTERNATE-SERVER
//! (RFC 8489 §10, RFC 8656 §7.2) while the server drains or is full, and
//! 508 while it drains with nowhere to send them.
//!
//! A client's first Allocate, unauthenticated, is redirected at once,
//! unsigned (RFC 8489 §10 allows it), as coturn does: libwebrtc goes to the
//! alternate with the credentials it holds and gives up on a 401 there, so
//! a redirect after this server's 401 would strand it unless the nodes
//! share their nonce key. Such answers spend the source's 401 budget and
//! stay within the amplification cap, as a 401 does. An authenticated new
//! Allocate (a client that got its 401 before the drain began) gets a
//! signed 300, so that it can trust it (RFC 8489 §10: a client ignores an
//! unsigned 300 to a signed request). A refusal (508) always comes after
//! authentication, signed.

use std::time::Instant;

use edgeice_stun::{
    Attribute, AttributeType, BuildError, Class, ErrorCode, IntegrityKey, Message, MessageBuilder,
    Method,
};

use crate::interface::{FiveTuple, Transmit, Transport};
use crate::response::{self, ReplyTo};
use crate::server::Server;
use crate::session::RefusalReason;
use crate::shared::Alternate;

/// Why a new Allocate was redirected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedirectReason {
    /// The server drains.
    Draining,
    /// The server holds as many allocations as it redirects above
    /// (`redirect_above`, else its limit).
    Full,
}

impl RedirectReason {
    /// How many kinds there are, for [`crate::Stats::redirects`].
    pub const KINDS: usize = 2;

    /// Every kind, in [`RedirectReason::index`] order.
    pub const ALL: [RedirectReason; 2] = [RedirectReason::Draining, RedirectReason::Full];

    /// A small index per kind, below [`RedirectReason::KINDS`].
    pub fn index(self) -> usize {
        match self {
            RedirectReason::Draining => 0,
            RedirectReason::Full => 1,
        }
    }

    /// A short lowercase name, for metrics and records.
    pub fn label(self) -> &'static str {
        match self {
            RedirectReason::Draining => "draining",
            RedirectReason::Full => "full",
        }
    }
}

/// What to do with a new Allocate.
pub(crate) enum Steer {
    /// Serve it here.
    Here,
    /// Send the client to `Alternate`.
    Elsewhere(Alternate, RedirectReason),
    /// Refuse it: the server drains and knows no alternate.
    Refuse,
}

impl Server {
    /// Where a new Allocate from `from` should be served.
    pub(crate) fn steer(&self, from: &FiveTuple) -> Steer {
        let shared = &self.config.shared;
        let draining = shared.draining();
        let above = self
            .config
            .redirect_above
            .unwrap_or(self.config.max_allocations);
        let reason = if draining {
            RedirectReason::Draining
        } else if shared.allocations() >= above {
            RedirectReason::Full
        } else {
            return Steer::Here;
        };
        match shared.alternate_for(from.transport, from.server) {
            Some(alternate) => Steer::Elsewhere(alternate, reason),
            None if draining => Steer::Refuse,
            // Full with nowhere to send it: the quota refuses it (508).
            None => Steer::Here,
        }
    }

    /// Where an unauthenticated request is redirected before its 401: a
    /// new Allocate (no allocation on its 5-tuple, no reservation token)
    /// when the server steers new ones elsewhere.
    pub(crate) fn redirect_before_auth(
        &self,
        from: &FiveTuple,
        request: &Message<'_>,
    ) -> Option<(Alternate, RedirectReason)> {
        let new_allocate = request.method() == Method::ALLOCATE
            && !request.has_integrity()
            && !request.has_integrity_sha256()
            && request.get_raw(AttributeType::RESERVATION_TOKEN).is_none()
            && !self.allocations.contains_key(from);
        if !new_allocate {
            return None;
        }
        match self.steer(from) {
            Steer::Elsewhere(alternate, reason) => Some((alternate, reason)),
            _ => None,
        }
    }

    /// The unsigned 300 of [`Server::redirect_before_auth`]: within the
    /// source's 401 budget and the amplification cap, else no answer.
    pub(crate) fn redirect_unauthenticated<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        to: &ReplyTo,
        (alternate, reason): (Alternate, RedirectReason),
    ) -> Option<Transmit<'s>> {
        if !self.config.shared.allow_challenge(from.client.ip(), now) {
            self.stats.challenges_dropped += 1;
            return None;
        }
        let limit = match from.transport {
            Transport::Udp => response::AMPLIFICATION_CAP * to.request_len,
            _ => usize::MAX,
        };
        let software = self.config.software.as_deref();
        let body = redirect_body(&alternate, None);
        let built = response::build(&mut self.scratch, to, Class::Error, software, None, body);
        if built.is_none_or(|bytes| bytes.len() > limit) {
            self.stats.challenges_dropped += 1;
            return None;
        }
        self.stats.redirects[reason.index()] += 1;
        self.stats.count_error(ErrorCode::TRY_ALTERNATE);
        Some(crate::server::reply(from, &self.scratch))
    }

    /// Answers a new Allocate that is not served here: 300 naming the
    /// alternate, or 508 while draining.
    pub(crate) fn send_elsewhere<'s>(
        &'s mut self,
        from: FiveTuple,
        to: &ReplyTo,
        key: &IntegrityKey,
        user: &str,
        steer: Steer,
    ) -> Option<Transmit<'s>> {
        let (alternate, reason) = match steer {
            Steer::Here => return None,
            Steer::Refuse => {
                self.stats.drain_refusals += 1;
                let code = ErrorCode::INSUFFICIENT_CAPACITY;
                return self.refused(
                    from,
                    to,
                    code,
                    Some(key),
                    Some(user),
                    RefusalReason::Draining,
                );
            }
            Steer::Elsewhere(alternate, reason) => (alternate, reason),
        };
        self.stats.redirects[reason.index()] += 1;
        self.stats.count_error(ErrorCode::TRY_ALTERNATE);
        // RFC 8489 §10: ALTERNATE-DOMAIN only over TLS, and only when the
        // transaction is authenticated with MESSAGE-INTEGRITY-SHA256.
        let domain = alternate
            .domain
            .as_deref()
            .filter(|_| from.transport == Transport::Tls && to.sha256);
        self.respond(
            from,
            to,
            Class::Error,
            Some(key),
            redirect_body(&alternate, domain),
        )
    }
}

/// The attributes of a 300: ERROR-CODE, ALTERNATE-SERVER and, when given,
/// ALTERNATE-DOMAIN.
fn redirect_body<'a>(
    alternate: &'a Alternate,
    domain: Option<&'a str>,
) -> impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError> + 'a {
    move |b| {
        b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(
            ErrorCode::TRY_ALTERNATE,
        )))?;
        b.add(&Attribute::AlternateServer(alternate.address))?;
        if let Some(domain) = domain {
            b.add(&Attribute::AlternateDomain(domain))?;
        }
        Ok(())
    }
}
