//! The built-in echo peer: every datagram the relay forwards to it goes
//! straight back to where it came from (the relayed address), a batch per
//! `recvmmsg`/`sendmmsg`, so that the peer costs far less than the server.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::sys::{Batch, Poller};

/// How long a wait for input lasts before the stop flag is checked again.
const STOP_CHECK_MS: i32 = 50;

/// Echoes datagrams on `socket` until `stop` is set; counts them in
/// `echoed` (once per batch).
pub fn run(socket: UdpSocket, stop: Arc<AtomicBool>, echoed: Arc<AtomicU64>) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let mut poller = Poller::new(1)?;
    poller.add(fd, 0)?;
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        if poller.wait(STOP_CHECK_MS)?.next().is_none() {
            continue;
        }
        loop {
            let n = batch.recv(fd)?;
            if n == 0 {
                break;
            }
            // What does not fit in the send buffer is dropped, as a real
            // peer would: the generator counts it as loss.
            let sent = batch.send(fd, n, true)?;
            echoed.fetch_add(sent as u64, Ordering::Relaxed);
            if n < super::sys::BATCH {
                break;
            }
        }
    }
    Ok(())
}
