//! The process's limit on open files. Every relay socket and every TCP/TLS
//! connection is a file, so the usual soft limit of 1,024 is what stops a
//! server (or a load generator) first.

use std::io;

/// The soft limit on open files before and after [`raise_to_hard_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now in force.
    pub now: u64,
}

/// Raises the soft limit on open files to the hard one (which only root
/// could raise further: that is the operator's choice, systemd's
/// `LimitNOFILE=`).
pub fn raise_to_hard_limit() -> io::Result<OpenFileLimit> {
    // SAFETY: rlimit is plain old data written by the kernel.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: limit is a valid rlimit for both calls.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(OpenFileLimit {
        before,
        now: limit.rlim_cur,
    })
}
