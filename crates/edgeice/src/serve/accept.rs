//! Accepting TCP connections without ever giving up. `accept()` fails when
//! the process or the system is out of files or memory (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM) and for reasons that concern one connection only
//! (ECONNABORTED, EPROTO, EPERM from a firewall...). None of them is a
//! reason to stop serving: the first kind is backed off (the connection
//! stays ready, so retrying at once would spin), the second skipped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use super::log_throttle::LogThrottle;

/// First wait after running out of files; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A listener whose `accept` only returns connections.
pub struct Acceptor {
    listener: TcpListener,
    /// A file held back for the moment the process runs out: closing it
    /// lets one waiting connection be accepted and closed at once, so a
    /// client learns the server is full instead of hanging in the backlog.
    reserve: Option<std::fs::File>,
    backoff: Duration,
    failures: LogThrottle,
}

impl Acceptor {
    /// Wraps a client listener: it keeps a file in reserve.
    pub fn new(listener: TcpListener) -> Self {
        Acceptor {
            reserve: open_reserve(),
            ..Acceptor::without_reserve(listener)
        }
    }

    /// Wraps a listener of which there may be thousands (a TCP relay's):
    /// one file each held back would cost too much.
    pub fn without_reserve(listener: TcpListener) -> Self {
        Acceptor {
            listener,
            reserve: None,
            backoff: Duration::ZERO,
            failures: LogThrottle::new(Duration::from_secs(10)),
        }
    }

    /// The next connection, however many accepts fail before it.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = Duration::ZERO;
                    return accepted;
                }
                Err(e) => self.failed(e).await,
            }
        }
    }

    async fn failed(&mut self, error: std::io::Error) {
        let exhausted = is_exhaustion(&error);
        if let Some(suppressed) = self.failures.ready(Instant::now()) {
            let local = self.listener.local_addr().ok();
            if exhausted {
                tracing::warn!(
                    listener = ?local,
                    suppressed,
                    "accepting TCP: {error}; closing waiting connections and backing off \
                     (raise the open-file limit, or lower --max-tcp-connections)"
                );
            } else {
                tracing::debug!(listener = ?local, suppressed, "accepting TCP: {error}");
            }
        }
        if !exhausted {
            return;
        }
        if self.reserve.take().is_some() {
            if let Some(Ok((stream, _))) = self.accept_now().await {
                drop(stream);
            }
            // If even this fails, the next exhaustion sheds nothing: the
            // backoff still holds.
            self.reserve = open_reserve();
        }
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        tokio::time::sleep(self.backoff).await;
    }

    /// A connection already waiting, without waiting for one.
    async fn accept_now(&self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        std::future::poll_fn(|cx| match self.listener.poll_accept(cx) {
            std::task::Poll::Ready(result) => std::task::Poll::Ready(Some(result)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Whether an error says the process or system is out of a resource,
/// rather than something about one connection.
fn is_exhaustion(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
