//! Draining an edge (SIGUSR1, `edgeice drain`, SIGTERM with
//! `--drain-timeout`): new Allocates go to an alternate server (300) or
//! get 508, the running ones go on until they end or the deadline; then
//! the process stops by itself. The core does the steering (its
//! `SharedState` holds the flag and the alternates); this is the shell's
//! part: when it started, until when, and when it is over.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgeice_server::Alternate;

use super::driver::{Shared, lock};

/// The alternates of `--alternate-server` (or `--tls-alternate-server`)
/// values, HOST:PORT each: every address a name resolves to (the core
/// picks one of the client's family), with the name as its TLS domain.
pub fn resolve(values: &[String], flag: &str) -> Result<Vec<Alternate>> {
    let mut alternates = Vec::new();
    for value in values {
        let host = value
            .rsplit_once(':')
            .map_or(value.as_str(), |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let domain = host.parse::<IpAddr>().is_err().then(|| host.to_owned());
        let addresses = value
            .to_socket_addrs()
            .with_context(|| format!("--{flag} {value}: cannot resolve it"))?;
        for address in addresses {
            let alternate = Alternate {
                address,
                domain: domain.clone(),
            };
            if !alternates.contains(&alternate) {
                alternates.push(alternate);
            }
        }
    }
    Ok(alternates)
}

/// A drain under way.
#[derive(Clone, Copy, Debug)]
struct Draining {
    /// When what is left is cut; `None`: when the last allocation ends.
    deadline: Option<Instant>,
}

/// Whether and until when the server drains.
#[derive(Debug, Default)]
pub struct Drain {
    state: Mutex<Option<Draining>>,
}

/// What asking for a drain did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// A drain started.
    Started,
    /// One was under way already; its deadline is the sooner of the two.
    AlreadyDraining,
}

impl Shared {
    /// Starts a drain (or, if one is under way, brings its deadline
    /// forward to `deadline` when that is sooner; never later). `why`
    /// names the trigger for the log.
    pub fn drain(&self, deadline: Option<Instant>, why: &str) -> Asked {
        let now = Instant::now();
        let mut state = lock(&self.drain.state);
        let asked = match state.as_mut() {
            Some(draining) => {
                draining.deadline = match (draining.deadline, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Asked::AlreadyDraining
            }
            None => {
                *state = Some(Draining { deadline });
                Asked::Started
            }
        };
        let deadline = state.and_then(|d| d.deadline);
        drop(state);
        let left = self.core.allocations();
        let until = match deadline {
            Some(d) => format!(
                "exiting when the last ends, or in {} s",
                seconds_until(now, d)
            ),
            None => "exiting when the last ends".to_owned(),
        };
        if asked == Asked::AlreadyDraining {
            tracing::info!("{why}: already draining ({left} allocations left, {until})");
            return asked;
        }
        self.core.set_draining(true);
        self.health.set(super::health::Readiness::Draining);
        let alternates = (
            self.core.alternates().len(),
            self.core.tls_alternates().len(),
        );
        let elsewhere = match alternates {
            (0, 0) => "refused with 508 (no --alternate-server)".to_owned(),
            (n, 0) => format!("redirected to {n} alternate server address(es)"),
            (n, tls) => format!("redirected to {n} alternate server address(es), {tls} for TLS"),
        };
        tracing::warn!(
            "{why}: draining: {left} allocations go on, new ones are {elsewhere}; {until}"
        );
        super::systemd::status(&format!("draining: {left} allocations left"));
        asked
    }

    /// Whether a drain is under way, and its deadline.
    pub fn drain_deadline(&self) -> Option<Option<Instant>> {
        lock(&self.drain.state).map(|d| d.deadline)
    }

    /// Whether a drain is over at `now`: the last allocation ended, or the
    /// deadline came (what is left is then ended, each with a
    /// session-end record saying `drained`). Says so in the log.
    pub fn drain_over(self: &Arc<Self>, now: Instant) -> bool {
        let Some(deadline) = self.drain_deadline() else {
            return false;
        };
        let left = self.core.allocations();
        if left == 0 {
            tracing::info!("drained: no allocation left, stopping");
            return true;
        }
        if deadline.is_some_and(|d| now >= d) {
            let cut = self.end_all(edgeice_server::EndReason::Drained);
            tracing::warn!("drain deadline reached: {cut} allocations cut, stopping");
            return true;
        }
        false
    }
}

/// How often the serve loop asks [`Shared::drain_over`].
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Whole seconds from `now` to `deadline`, rounded up (a deadline 4.9 s
/// away is said to be in 5 s).
pub fn seconds_until(now: Instant, deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// The deadline `seconds` from now.
pub fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_have_no_domain_and_names_keep_theirs() {
        let values = ["192.0.2.7:3478", "[2001:db8::7]:3478", "192.0.2.7:3478"].map(String::from);
        let alternates = resolve(&values, "alternate-server").unwrap();
        let addresses: Vec<String> = alternates.iter().map(|a| a.address.to_string()).collect();
        assert_eq!(
            addresses,
            ["192.0.2.7:3478", "[2001:db8::7]:3478"],
            "each once"
        );
        assert!(alternates.iter().all(|a| a.domain.is_none()));
    }

    #[test]
    fn deadlines_are_said_in_whole_seconds_rounded_up() {
        let now = Instant::now();
        assert_eq!(seconds_until(now, now + Duration::from_millis(4_900)), 5);
        assert_eq!(seconds_until(now, now + Duration::from_secs(5)), 5);
        assert_eq!(seconds_until(now + Duration::from_secs(1), now), 0);
    }
}
