//! # edgeice-candidate: the `a=candidate` grammar, in every dialect
//!
//! One parser for the candidate lines a call's descriptions carry, shared
//! by the ICE agent (which writes and reads them) and the call analyzer
//! (which explains them):
//!
//! - RFC 8839 / RFC 5245: `candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host`,
//!   with `raddr`/`rport` and extensions (`generation`, `ufrag`,
//!   `network-id`, `network-cost`), and RFC 6544 `tcptype`;
//! - Microsoft MS-ICE2 (Lync, Skype for Business): the same shape with the
//!   transports `TCP-ACT` and `TCP-PASS`, and `a=x-candidate-ipv6:` lines;
//! - MS-ICE draft 6, in the OCS 2007 fallback part of a Lync INVITE:
//!   `candidate:<username> <component> <password> <transport> 0.830 <address> <port>`;
//! - mDNS `.local` host names in place of an address.
//!
//! [`Candidate::parse`] borrows from the line; [`Candidate`]'s `Display`
//! writes it back. Nothing panics on any input. [`AddressClass`] says what
//! kind of network an address belongs to, which is what decides whether
//! the other side can reach it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address;
mod candidate;
mod priority;

#[doc(hidden)]
pub mod fuzzing;

pub use address::{AddressClass, CandidateAddress};
pub use candidate::{
    Candidate, CandidateError, CandidateType, Dialect, RemoteCandidate, TcpType, Transport,
    parse_remote_candidates,
};
pub use priority::{MsIce2LocalPreference, Priority};
