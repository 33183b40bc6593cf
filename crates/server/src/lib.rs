//! # edgeice-server: the STUN/TURN server as a state machine
//!
//! No sockets and no clocks: the I/O shell (the `edgeice serve` command)
//! feeds each received datagram or stream frame in with
//! [`Server::handle_input`], then drains [`Server::poll_transmit`] and sends
//! what comes out. Tests drive the same type directly.
//!
//! Today the server answers STUN Binding requests (RFC 8489), including
//! RFC 3489 clients that send no magic cookie. TURN allocations come next
//! and will live beside [`binding`], each protocol concern in its own module.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binding;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// The transport a message came in on, and a response goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// A TCP connection (messages framed by [`edgeice_stun::StreamDecoder`]).
    Tcp,
    /// A TLS connection over TCP.
    Tls,
}

/// What the I/O shell hands the server.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// One datagram, or one frame cut from a stream.
    Receive {
        /// The transport it arrived on.
        transport: Transport,
        /// The local address it arrived at.
        local: SocketAddr,
        /// The address it came from.
        remote: SocketAddr,
        /// The bytes.
        contents: &'a [u8],
    },
}

/// A message for the I/O shell to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The transport to send on.
    pub transport: Transport,
    /// The local address to send from.
    pub source: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// Settings of the server core.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// SOFTWARE attribute for responses; `None` leaves it out (some
    /// operators prefer not to advertise a version).
    pub software: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            software: Some(concat!("edgeice ", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

/// Counters an operator watches; cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Binding requests answered with a success response.
    pub binding_success: u64,
    /// Requests answered with an error response.
    pub error_responses: u64,
    /// Inputs dropped: not STUN, bad fingerprint, or not a request.
    pub dropped: u64,
}

/// The server state machine.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    transmits: VecDeque<Transmit>,
    stats: Stats,
}

impl Server {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        Server {
            config,
            transmits: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Processes one input. Responses queue up for [`Server::poll_transmit`].
    pub fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        match input {
            Input::Receive {
                transport,
                local,
                remote,
                contents,
            } => {
                let context = binding::Context {
                    transport,
                    remote,
                    software: self.config.software.as_deref(),
                };
                match binding::respond(&context, contents) {
                    binding::Outcome::Respond { contents, success } => {
                        if success {
                            self.stats.binding_success += 1;
                        } else {
                            self.stats.error_responses += 1;
                        }
                        self.transmits.push_back(Transmit {
                            transport,
                            source: local,
                            destination: remote,
                            contents,
                        });
                    }
                    binding::Outcome::Ignore => self.stats.dropped += 1,
                }
            }
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When the server next needs [`Server::handle_timeout`]; `None` while
    /// nothing is scheduled (a Binding-only server keeps no state).
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}
