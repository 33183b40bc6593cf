//! Steering new Allocates away: 300 Try Alternate with ALTERNATE-SERVER
//! (RFC 8489 §10, RFC 8656 §7.2) while the server drains or is full, and
//! 508 while it drains with nowhere to send them.
//!
//! The decision comes after authentication, as RFC 8656 §7.2 orders an
//! Allocate's checks, so the 300 carries MESSAGE-INTEGRITY and a client
//! that authenticated can trust it (RFC 8489 §10: a client ignores an
//! unauthenticated 300 to an authenticated request). coturn redirects
//! before authentication; both its client and libwebrtc's accept either.

use edgeice_stun::{Attribute, BuildError, Class, ErrorCode, IntegrityKey, MessageBuilder};

use crate::interface::{FiveTuple, Transmit, Transport};
use crate::response::ReplyTo;
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
        let body = |b: &mut MessageBuilder<'_>| -> Result<(), BuildError> {
            b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(
                ErrorCode::TRY_ALTERNATE,
            )))?;
            b.add(&Attribute::AlternateServer(alternate.address))?;
            if let Some(domain) = domain {
                b.add(&Attribute::AlternateDomain(domain))?;
            }
            Ok(())
        };
        self.respond(from, to, Class::Error, Some(key), body)
    }
}
