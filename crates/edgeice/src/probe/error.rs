//! Why a probe step could not be carried out. These become `fail` lines in
//! the checklist (the server under test is at fault, or the path to it),
//! never panics.

use std::io;
use std::net::SocketAddr;

/// What went wrong while talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A local socket could not be opened or set up.
    #[error("local socket: {0}")]
    Socket(io::Error),
    /// The TCP connection was refused or timed out.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, io::Error),
    /// The TLS handshake or set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Sending failed (no route, for instance).
    #[error("cannot send: {0}")]
    Send(io::Error),
    /// Receiving failed.
    #[error("cannot receive: {0}")]
    Receive(io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The stream carried something that is neither STUN nor ChannelData.
    #[error("the stream is not STUN: {0}")]
    Framing(String),
    /// The operating system gave no random bytes (for the probe's nonce).
    #[error("no system randomness")]
    NoRandomness,
    /// The client state machine refused a request.
    #[error("{0}")]
    Client(#[from] edgeice_client::ClientError),
}
