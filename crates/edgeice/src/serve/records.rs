//! The operator's records: what the cores report (an allocation started or
//! ended, a request refused) written as log events with fields, so that
//! `--log-format json` gives one JSON object per record and text mode the
//! same fields as `key=value`.
//!
//! Session records go to target `edgeice::session`; refusals to
//! `edgeice::refused`, each reason rate-limited on its own (a burst, then a
//! steady trickle) so that a flood of bad passwords cannot fill the disk;
//! the next line written says how many of its reason were left out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_server::{Refusal, RefusalReason, Report, Session, Transport};

/// Refusal lines of one reason written at once before the rate applies.
const REFUSAL_BURST: u32 = 20;

/// Then one line of that reason per this interval.
const REFUSAL_INTERVAL: Duration = Duration::from_millis(200);

/// A token bucket of log lines that counts what it leaves out.
#[derive(Debug)]
struct LineBudget {
    tokens: u32,
    last: Option<Instant>,
    suppressed: u64,
}

impl LineBudget {
    const fn new() -> Self {
        LineBudget {
            tokens: REFUSAL_BURST,
            last: None,
            suppressed: 0,
        }
    }

    /// A token if one is there now, without counting a line left out.
    fn take_quiet(&mut self, now: Instant) -> Option<()> {
        let suppressed = self.suppressed;
        let taken = self.take(now);
        self.suppressed = suppressed;
        taken.map(|_| ())
    }

    /// `Some(n)` when a line may be written now, `n` being how many were
    /// left out since the last one.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let last = *self.last.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last);
        let earned = (elapsed.as_nanos() / REFUSAL_INTERVAL.as_nanos()) as u64;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(REFUSAL_BURST);
            self.last = Some(if self.tokens == REFUSAL_BURST {
                now
            } else {
                last + REFUSAL_INTERVAL * earned
            });
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The reasons' labels, by [`RefusalReason::index`].
const REASON_LABELS: [&str; RefusalReason::KINDS] = [
    "wrong-password",
    "unknown-user",
    "guessing-backoff",
    "wrong-user",
    "peer-forbidden",
    "user-quota",
    "total-quota",
    "no-relay-port",
    "too-many-permissions",
    "too-many-channels",
    "bad-request",
    "error",
    "draining",
];

/// One shard's record writer: its refusal budgets live with the shard, so
/// writing a record takes no lock beyond the shard's own.
#[derive(Debug)]
pub struct Records {
    refusals: [LineBudget; RefusalReason::KINDS],
}

impl Default for Records {
    fn default() -> Self {
        Records {
            refusals: std::array::from_fn(|_| LineBudget::new()),
        }
    }
}

/// `udp`, `tcp` or `tls`.
pub fn transport_label(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// The relayed addresses of a session, comma-separated.
pub fn relays(session: &Session) -> String {
    let mut out = session.relay.to_string();
    if let Some(additional) = session.additional_relay {
        out.push(',');
        out.push_str(&additional.to_string());
    }
    out
}

/// The first peers of a session, comma-separated.
pub fn peer_addresses(session: &Session) -> String {
    let ips: Vec<String> = session
        .first_peers
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    ips.join(",")
}

fn relay_transport(session: &Session) -> &'static str {
    match session.relay_transport {
        edgeice_server::RelayTransport::Udp => "udp",
        edgeice_server::RelayTransport::Tcp => "tcp",
    }
}

impl Records {
    /// Says how many refusals of each reason were left out since their
    /// last line, where no later line of that reason said it (called by
    /// the timer, so a count is never lost to a flood that stops).
    pub fn flush(&mut self, now: Instant) {
        for (index, budget) in self.refusals.iter_mut().enumerate() {
            if budget.suppressed == 0 || budget.take_quiet(now).is_none() {
                continue;
            }
            let suppressed = std::mem::take(&mut budget.suppressed);
            let reason = REASON_LABELS[index];
            tracing::warn!(
                target: "edgeice::refused",
                event = "refusals-left-out",
                reason,
                suppressed,
                "{suppressed} more refusals ({reason}) were not logged, over the rate limit"
            );
        }
    }

    /// Writes one report.
    pub fn write(&mut self, report: Report, now: Instant) {
        match report {
            Report::SessionStart(session) => session_start(&session),
            Report::SessionEnd(session, why) => session_end(&session, why.label()),
            Report::Refused(refusal) => {
                let budget = &mut self.refusals[refusal.reason.index()];
                if let Some(suppressed) = budget.take(now) {
                    refused(&refusal, suppressed);
                }
            }
        }
    }
}

fn session_start(s: &Session) {
    tracing::info!(
        target: "edgeice::session",
        event = "session-start",
        session = s.id.0,
        user = %s.user,
        realm = %s.realm,
        client = %s.five_tuple.client,
        transport = transport_label(s.five_tuple.transport),
        listener = %s.five_tuple.server,
        relay = %relays(s),
        relay_transport = relay_transport(s),
        dialect = s.dialect.label(),
        lifetime_s = s.expires_in.as_secs(),
        "session {} started: user {} from {} over {}, relay {}",
        s.id,
        s.user,
        s.five_tuple.client,
        transport_label(s.five_tuple.transport),
        relays(s),
    );
}

fn session_end(s: &Session, reason: &'static str) {
    let t = s.traffic;
    // Milliseconds are enough, and keep the number short.
    let duration_s = (s.age.as_millis() as f64) / 1000.0;
    tracing::info!(
        target: "edgeice::session",
        event = "session-end",
        session = s.id.0,
        user = %s.user,
        realm = %s.realm,
        client = %s.five_tuple.client,
        transport = transport_label(s.five_tuple.transport),
        listener = %s.five_tuple.server,
        relay = %relays(s),
        relay_transport = relay_transport(s),
        dialect = s.dialect.label(),
        peers = s.peers,
        peer_addrs = %peer_addresses(s),
        duration_s,
        bytes_to_peer = t.bytes_to_peer,
        bytes_to_client = t.bytes_to_client,
        packets_to_peer = t.packets_to_peer,
        packets_to_client = t.packets_to_client,
        dropped_from_peers = t.dropped_from_peers,
        reason,
        "session {} ended ({reason}) after {duration_s} s: {} packets to peers, {} back",
        s.id,
        t.packets_to_peer,
        t.packets_to_client,
    );
}

/// What a refusal says in words.
fn explain(refusal: &Refusal) -> String {
    let user = refusal.user.as_deref().unwrap_or("?");
    match refusal.reason {
        RefusalReason::WrongPassword => format!("wrong password for user {user}"),
        RefusalReason::UnknownUser => format!("unknown user {user}"),
        RefusalReason::GuessingBackoff => {
            format!("user {user} held back after repeated wrong passwords")
        }
        RefusalReason::WrongUser => format!("user {user} is not the allocation's owner"),
        RefusalReason::PeerForbidden { peer, rule } => {
            format!("peer {peer} refused by rule {rule}")
        }
        RefusalReason::UserQuota => format!("user {user} holds as many allocations as allowed"),
        RefusalReason::TotalQuota => "the server holds as many allocations as allowed".to_owned(),
        RefusalReason::NoRelayPort => "no relay port free (or out of files)".to_owned(),
        RefusalReason::TooManyPermissions => {
            "the allocation holds as many permissions as allowed".to_owned()
        }
        RefusalReason::TooManyChannels => {
            "the allocation holds as many channels as allowed".to_owned()
        }
        RefusalReason::BadRequest => "bad request (400)".to_owned(),
        RefusalReason::Draining => "draining, and no alternate server to send it to".to_owned(),
        RefusalReason::Other => format!("error {}", refusal.code),
    }
}

fn refused(refusal: &Refusal, suppressed: u64) {
    let from: SocketAddr = refusal.five_tuple.client;
    let (peer, rule) = match refusal.reason {
        RefusalReason::PeerForbidden { peer, rule } => (Some(peer), Some(rule.to_string())),
        _ => (None, None),
    };
    let method = refusal.method.to_string();
    let what = explain(refusal);
    // One stable line shape per reason: "refused METHOD from IP: WHAT",
    // which a fail2ban filter matches with `from <HOST>:`.
    tracing::warn!(
        target: "edgeice::refused",
        event = "refused",
        reason = refusal.reason.label(),
        code = refusal.code,
        method = %method,
        user = refusal.user.as_deref(),
        ip = %from.ip(),
        client = %from,
        transport = transport_label(refusal.five_tuple.transport),
        peer = peer.map(tracing::field::display),
        rule = rule.as_deref(),
        suppressed,
        "refused {method} from {}: {what}",
        from.ip(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval_with_the_count_left_out() {
        let mut budget = LineBudget::new();
        let t0 = Instant::now();
        for _ in 0..REFUSAL_BURST {
            assert_eq!(budget.take(t0), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(budget.take(t0), None);
        }
        assert_eq!(budget.take(t0 + REFUSAL_INTERVAL), Some(1000));
        assert_eq!(budget.take(t0 + REFUSAL_INTERVAL), None);
        // A long quiet spell refills the burst, no more.
        let later = t0 + REFUSAL_INTERVAL * 10_000;
        for _ in 0..REFUSAL_BURST {
            assert!(budget.take(later).is_some());
        }
        assert_eq!(budget.take(later), None);
    }

    #[test]
    fn the_labels_table_follows_the_reasons_index() {
        let peer = "192.0.2.1:1".parse().unwrap();
        let reasons = [
            RefusalReason::WrongPassword,
            RefusalReason::UnknownUser,
            RefusalReason::GuessingBackoff,
            RefusalReason::WrongUser,
            RefusalReason::PeerForbidden {
                peer,
                rule: edgeice_server::peer_policy::PeerRule::OwnAddress,
            },
            RefusalReason::UserQuota,
            RefusalReason::TotalQuota,
            RefusalReason::NoRelayPort,
            RefusalReason::TooManyPermissions,
            RefusalReason::TooManyChannels,
            RefusalReason::BadRequest,
            RefusalReason::Other,
            RefusalReason::Draining,
        ];
        for reason in reasons {
            assert_eq!(REASON_LABELS[reason.index()], reason.label());
        }
    }
}
