//! # edgeice-ice: an ICE agent that does no I/O
//!
//! An [`Agent`] runs the four phases of RFC 8445 for one media stream:
//! gathering (host sockets the application binds, server-reflexive and
//! relayed candidates from STUN and TURN servers, trickled as found),
//! exchange (candidates and credentials in and out, [`sdp`] reads and
//! writes the ICE lines of a description), connectivity checks (paced,
//! retransmitted, triggered, with peer-reflexive candidates and role
//! conflicts) and nomination (regular or aggressive), then keeps checking:
//! a better pair that works later is promoted, and consent freshness
//! (RFC 7675) watches the selected one.
//!
//! Nothing here opens a socket or reads a clock: the application hands in
//! datagrams and `Instant`s and sends what comes out, so tests run whole
//! calls over simulated networks deterministically.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
pub mod candidate;
mod check;
mod checklist;
mod config;
mod dialect;
mod event;
pub mod framing;
mod gather;
mod io;
mod rng;
pub mod sdp;
mod timer;

#[doc(hidden)]
pub mod fuzzing;

pub use agent::{
    Agent, ConnectionId, Datagram, Input, Output, Received, Route, SendError, TcpCommand, Transmit,
};
pub use candidate::{Candidate, CandidateKind, CandidateLineError, TcpType};
pub use config::{AgentConfig, Dialect, Nomination, ServerTransport, StunServer, TurnServer};
pub use event::{CheckState, Event, PairDescription, State};
pub use gather::RelayError;
pub use timer::Timer;
