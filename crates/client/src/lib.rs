//! # edgeice-client: STUN and TURN client state machines
//!
//! Sans-IO, like the rest of edgeice: no sockets, no clocks, no async. The
//! caller feeds in what its socket received and the current time, sends
//! what comes out, and calls back at the instant asked for:
//!
//! - `handle_input(now, bytes)` — a datagram (UDP) or one frame (TCP/TLS)
//!   from the server;
//! - `poll_transmit()` — the next request to send to the server;
//! - `poll_event()` — what happened (an address learnt, a failure…);
//! - `poll_timeout()` / `handle_timeout(now)` — retransmissions, timeouts
//!   and refreshes.
//!
//! [`BindingClient`] asks a STUN server for the client's reflexive address
//! (RFC 8489). [`Allocation`] is a TURN client (RFC 8656): it allocates a
//! relayed address with long-term credentials, keeps it, its permissions
//! and its channels alive, wraps payloads for the relay (ChannelData or Send
//! indications) and unwraps what the relay sends back; with a TCP relay it
//! also does RFC 6062's Connect and ConnectionBind. [`transaction`] holds
//! the retransmission logic both share.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//! use edgeice_client::*;
//!
//! let socket = UdpSocket::bind("0.0.0.0:0")?;
//! let server = "192.0.2.1:3478".parse()?;
//! let credentials = Credentials { username: "alice".into(), password: "s3cret".into() };
//! let mut turn = Allocation::new(AllocationConfig::new(server, Transport::Udp, credentials));
//! turn.allocate(Instant::now())?;
//! let (mut buf, mut out) = (vec![0; 65536], Vec::new());
//! loop {
//!     while let Some(t) = turn.poll_transmit() {
//!         socket.send_to(t.payload, t.destination)?;
//!     }
//!     while let Some(event) = turn.poll_event() {
//!         if let AllocationEvent::Allocated { relayed, .. } = event {
//!             println!("relayed address {relayed}");
//!             let peer = "198.51.100.7:5000".parse()?;
//!             turn.send_to(Instant::now(), peer, b"hello", &mut out)?;
//!             socket.send_to(&out, server)?;
//!         }
//!     }
//!     let wait = turn.poll_timeout().map_or(Duration::from_secs(1), |t| {
//!         t.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
//!     });
//!     socket.set_read_timeout(Some(wait))?;
//!     if let Ok((n, from)) = socket.recv_from(&mut buf) {
//!         if from == server {
//!             if let Ok(Some((peer, data))) = turn.handle_input(Instant::now(), &buf[..n]) {
//!                 println!("{} bytes from {peer}", data.len());
//!             }
//!         }
//!     }
//!     turn.handle_timeout(Instant::now());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Streams
//!
//! Over TCP and TLS the caller cuts the byte stream into frames — with
//! [`edgeice_stun::StreamDecoder`], re-exported here — and hands each frame
//! to `handle_input` as it was on the wire ([`StreamDecoder::next_raw`]).
//! That keeps the data path free of copies: peer data comes back as a slice
//! of the caller's buffer. Everything this crate writes for a stream is
//! already framed (ChannelData padded to 4 bytes, RFC 8656 §12.5).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod allocation;
mod binding;
mod error;
mod ids;
mod ms_turn;
mod response;
pub mod transaction;

#[doc(hidden)]
pub mod fuzzing;

pub use allocation::{
    Allocation, AllocationConfig, AllocationEvent, AllocationState, ConnectionBind,
    ConnectionBindOutcome, Credentials, RelayProtocol,
};
pub use binding::{BindingClient, BindingEvent};
pub use edgeice_stun::{AddressFamily, StreamDecoder};
pub use error::{ClientError, InputError};
pub use ms_turn::{MsTurnClient, MsTurnConfig, MsTurnEvent};
pub use transaction::{TransactionConfig, Transport};

/// A request for the caller to send to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The server's address.
    pub destination: std::net::SocketAddr,
    /// The bytes to send (one datagram over UDP; already framed for a stream).
    pub payload: &'a [u8],
}
