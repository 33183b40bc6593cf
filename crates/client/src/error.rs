//! The errors of the client: what a caller asked for that cannot be done
//! ([`ClientError`]) and input that was not taken ([`InputError`]).

use edgeice_stun::credentials::CredentialError;
use edgeice_stun::{BuildError, ChannelDataError, ParseError};

/// Why a request or a send could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Bytes handed to a transaction are not a STUN message.
    #[error("not a STUN request")]
    NotARequest,
    /// Too many requests are already waiting for their responses.
    #[error("too many requests in flight")]
    TooManyTransactions,
    /// The operating system gave no random bytes for a transaction ID.
    #[error("no system randomness for a transaction ID")]
    NoRandomness,
    /// A message could not be built (an attribute too long, say).
    #[error("cannot build the message: {0}")]
    Build(#[from] BuildError),
    /// The user name, realm or password cannot be prepared.
    #[error("bad credentials: {0}")]
    Credentials(#[from] CredentialError),
    /// The allocation is not (or no longer) usable for this.
    #[error("the allocation is {0}")]
    WrongState(&'static str),
    /// The allocation already has as many permissions as it may keep.
    #[error("too many permissions")]
    TooManyPermissions,
    /// Every channel number is in use.
    #[error("no channel number left")]
    NoChannelLeft,
    /// A payload longer than a STUN message or ChannelData can carry.
    #[error("payload of {0} bytes is too long to relay")]
    PayloadTooLong(usize),
    /// RFC 6062 requests need an allocation with a TCP relay.
    #[error("the allocation does not relay TCP")]
    NotTcpRelay,
    /// Channels and Send indications are for UDP relays; a TCP relay's
    /// data goes over RFC 6062 data connections.
    #[error("the allocation relays TCP: data goes over data connections")]
    NotUdpRelay,
}

/// Why input from the server was not taken. None of these is fatal: the
/// caller may log and drop the datagram.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Neither a STUN message nor ChannelData.
    #[error("not STUN: {0}")]
    Parse(#[from] ParseError),
    /// Malformed ChannelData.
    #[error("bad ChannelData: {0}")]
    ChannelData(#[from] ChannelDataError),
    /// ChannelData on a channel this client did not bind.
    #[error("ChannelData on unbound channel {0:#06x}")]
    UnknownChannel(u16),
    /// A response to no request in flight (late, duplicated or forged).
    #[error("response to no request in flight")]
    UnknownTransaction,
    /// A response whose MESSAGE-INTEGRITY or FINGERPRINT does not check out.
    #[error("integrity or fingerprint check failed")]
    Integrity,
    /// A message this client does not expect (a request, an unknown
    /// indication).
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// A message without an attribute it needs, or with a malformed one.
    #[error("missing or malformed {0}")]
    Malformed(&'static str),
}
