//! # edgeice-server: the STUN/TURN server as a state machine
//!
//! No sockets and no clocks. The I/O driver (the `edgeice serve` command)
//! feeds every datagram or stream frame in with [`Server::handle_input`],
//! sends the [`Transmit`] it returns (a response, or a relayed packet),
//! then carries out the [`Event`]s from [`Server::poll_event`] (bind a relay
//! socket, close one) and calls [`Server::handle_timeout`] when
//! [`Server::poll_timeout`] says. Tests drive the same type directly.
//!
//! Modules, one concern each:
//! - `binding`: STUN Binding (RFC 8489), RFC 3489 clients included;
//! - `auth`: long-term credentials and stateless nonces;
//! - `guesses`: backoff after failed integrity checks;
//! - `turn`: Allocate, Refresh, CreatePermission, ChannelBind (RFC 8656);
//! - `redirect`: new Allocates sent elsewhere (300 Try Alternate) or
//!   refused while the server drains;
//! - `relay`: the data path, ChannelData and Send/Data indications;
//! - `ms_turn`: Microsoft's MS-TURN dialect (Lync, Skype for Business),
//!   recognised per request and served on the same ports;
//! - `tcp_relay`: TCP allocations (RFC 6062): Connect, ConnectionBind,
//!   ConnectionAttempt;
//! - `fast_path`: which bound channels the driver may relay in the kernel;
//! - [`allocation`]: an allocation with its permissions and channels;
//! - [`peer_policy`]: which peers may be relayed to;
//! - [`session`]: the operator's records (allocations started and ended,
//!   requests refused), drained with [`Server::poll_report`];
//! - [`nat`]: noticing a private relay address that no NAT mapping covers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod allocation;
mod auth;
mod binding;
mod config;
mod fast_path;
mod guesses;
pub mod histogram;
mod interface;
mod limiter;
mod ms_turn;
pub mod nat;
pub mod peer_policy;
mod quota;
mod redirect;
mod relay;
mod response;
mod server;
pub mod session;
mod shared;
mod tcp_relay;
mod turn;

#[doc(hidden)]
pub mod fuzzing;

pub use auth::rest_api_password;
pub use config::{AlternateAddress, Reloadable, ServerConfig};
pub use guesses::GuessLimits;
pub use interface::{
    ConnectionId, Event, FastRoute, FiveTuple, Input, PEER_DATA_HEADROOM, RelayPort,
    RelayRequestId, RelayTransport, Transmit, Transport,
};
pub use quota::QuotaLedger;
pub use redirect::RedirectReason;
pub use response::{Dialect, ReplyTo, smallest_challenged_request};
pub use server::{Server, Stats, TransportTraffic};
pub use session::{EndReason, Refusal, RefusalReason, Report, Session, SessionId, Traffic};
pub use shared::{Alternate, SharedState, Throttles};
