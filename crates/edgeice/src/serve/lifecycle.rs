//! The points in a server's life a service manager wants to hear about.
//! Each is called exactly once per occurrence, from the main task; they do
//! nothing yet. systemd's sd_notify goes here: `READY=1` in [`ready`] and
//! [`reloaded`], `RELOADING=1` (with `MONOTONIC_USEC`) in [`reloading`],
//! `STOPPING=1` in [`stopping`].

/// Every listener is bound and announced; the server answers.
pub fn ready() {}

/// A reload (SIGHUP) starts.
pub fn reloading() {}

/// A reload ended, put in force or refused (the old settings then stay):
/// either way the server serves again.
pub fn reloaded() {}

/// The server stops (SIGTERM, SIGINT).
pub fn stopping() {}
