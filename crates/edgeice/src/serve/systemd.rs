//! Telling a service manager how the server is doing, as `sd_notify(3)`
//! describes: READY=1 once every listener is bound, RELOADING=1 and READY=1
//! around a reload, STOPPING=1 on the way out, WATCHDOG=1 from the timer
//! loop (so a wedged loop gets the service restarted), and a STATUS= line
//! that `systemctl status` shows.
//!
//! Everything here does nothing unless NOTIFY_SOCKET is set, that is, unless
//! systemd (or another manager speaking the protocol) started the server
//! with `Type=notify`. The `sd-notify` crate writes the datagrams; it takes
//! NOTIFY_SOCKET as a file path, which is what systemd passes (abstract
//! `@` names are not supported). A failed notification is logged once and
//! never stops the server: the manager then times the start out, which
//! says more than a server that refuses to run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Whether a notification has failed already (warned about once).
static FAILED: AtomicBool = AtomicBool::new(false);

/// Whether a service manager listens.
fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState<'_>]) {
    if !enabled() {
        return;
    }
    if let Err(e) = sd_notify::notify(states)
        && !FAILED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!("cannot notify the service manager through NOTIFY_SOCKET: {e}");
    }
}

/// The server is up: every listener is bound and announced.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A reload (SIGHUP) starts; [`ready`] says when it is over. The
/// MONOTONIC_USEC= field is what `Type=notify-reload` (systemd 253 and
/// later) needs to match the notification to its own signal.
pub fn reloading() {
    if !enabled() {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// A free-form STATUS= line (a drain starting).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The server is stopping (SIGTERM, Ctrl-C).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// How often the timer loop must run for the watchdog: `tick`, or a quarter
/// of WATCHDOG_USEC when that is shorter. Pings are due every half, so one
/// is sent at most a quarter late, well before the manager gives up.
pub fn timer_tick(tick: Duration) -> Duration {
    match sd_notify::watchdog_enabled() {
        Some(watchdog) if enabled() => tick.min(watchdog / 4).max(Duration::from_millis(10)),
        _ => tick,
    }
}

/// What the timer loop reports: a watchdog ping every half WATCHDOG_USEC,
/// and the STATUS= line when the number of allocations changes.
pub struct Heartbeat {
    /// Half of WATCHDOG_USEC, when a watchdog is armed.
    every: Option<Duration>,
    last_ping: Option<Instant>,
    last_allocations: Option<(usize, bool)>,
}

impl Heartbeat {
    /// Reads WATCHDOG_USEC (and WATCHDOG_PID: it must be this process).
    pub fn from_env() -> Self {
        let every = sd_notify::watchdog_enabled()
            .filter(|_| enabled())
            .map(|d| d / 2);
        Heartbeat {
            every,
            last_ping: None,
            last_allocations: None,
        }
    }

    /// Called on every timer tick, after the shards' timers ran: their
    /// running is what the watchdog vouches for.
    pub fn tick(&mut self, now: Instant, allocations: usize, draining: bool) {
        if !enabled() {
            return;
        }
        if let Some(every) = self.every
            && self
                .last_ping
                .is_none_or(|last| now.saturating_duration_since(last) >= every)
        {
            send(&[NotifyState::Watchdog]);
            self.last_ping = Some(now);
        }
        if self.last_allocations != Some((allocations, draining)) {
            self.last_allocations = Some((allocations, draining));
            let status = match draining {
                true => format!("draining: {allocations} allocations left"),
                false => format!("serving: {allocations} allocations"),
            };
            send(&[NotifyState::Status(&status)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    /// What a reload says, in the form `Type=notify-reload` needs: the
    /// RELOADING=1 datagram carries the monotonic clock, then READY=1.
    /// (The only test here that sets NOTIFY_SOCKET: no other reads it.)
    #[test]
    fn a_reload_is_announced_with_the_monotonic_clock() {
        let dir = std::env::temp_dir().join(format!("edgeice-sd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        // SAFETY: no other test of this binary reads or writes NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        super::reloading();
        super::ready();
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        let reloading = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut lines = reloading.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading}");
        let usec = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(usec.is_some_and(|u| u > 0), "{reloading}");
        let n = socket.recv(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
