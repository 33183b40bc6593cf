//! What Microsoft's candidate lines mean, beyond what they say.
//!
//! Lync and Skype for Business publish their active-TCP host candidate as
//! `TCP-ACT … typ srflx raddr A rport P` with `raddr` equal to the address:
//! no STUN server was involved (a client cannot learn a mapped address for
//! a connection it has not opened yet), the line is the client's own
//! interface, typed srflx so that its priority sorts below the UDP hosts.

use edgeice_candidate::{Candidate, CandidateType, Transport};

/// Whether `c` is Lync's active-TCP host candidate written as srflx.
pub fn is_ms_active_tcp_host(c: &Candidate<'_>) -> bool {
    c.transport == Transport::TcpActive
        && c.kind == Some(CandidateType::ServerReflexive)
        && c.related
            .is_some_and(|(address, _)| address.to_string() == c.address.to_string())
}

/// The candidate's type as the analysis reads it: Lync's active-TCP host
/// candidate is a host, whatever its line says.
pub fn effective_kind<'a>(c: &Candidate<'a>) -> Option<CandidateType<'a>> {
    if is_ms_active_tcp_host(c) {
        Some(CandidateType::Host)
    } else {
        c.kind
    }
}
