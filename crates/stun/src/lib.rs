//! # edgeice-stun: the STUN and TURN wire format
//!
//! A sans-IO codec: no sockets, no clocks, no async. It turns bytes into
//! values and values into bytes; the protocol state machines (the TURN
//! server, the ICE agent) are built on it elsewhere.
//!
//! - [`Message::parse`] validates a datagram and returns a view that
//!   borrows it; attributes are decoded on demand ([`Message::get`],
//!   [`Message::attributes`]). Any input, of any length, yields a value or
//!   an error, never a panic.
//! - [`MessageBuilder`] writes a message into a reusable `Vec<u8>`, and
//!   appends MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
//!   computed in place.
//! - [`credentials`] prepares strings (OpaqueString, SASLprep) and derives
//!   short- and long-term keys (MD5, SHA-256); [`IntegrityKey`] holds a key
//!   ready for constant-time checks.
//! - [`ChannelData`] frames TURN channel traffic; [`StreamDecoder`] cuts a
//!   TCP/TLS byte stream into STUN messages and ChannelData frames;
//!   [`demux::classify`] tells STUN from DTLS, RTP and RTCP (RFC 7983).
//!
//! ```
//! use edgeice_stun::*;
//!
//! let key = credentials::short_term_key("secret", credentials::Preparation::OpaqueString).unwrap();
//! let mut buf = Vec::new();
//! let request = MessageType::new(Method::BINDING, Class::Request);
//! let mut builder = MessageBuilder::new(&mut buf, request, TransactionId([7; 12]));
//! builder.add(&Attribute::Username("alice:bob")).unwrap();
//! builder.add_integrity_sha1(&key).unwrap();
//! builder.add_fingerprint().unwrap();
//! let bytes = builder.finish();
//!
//! let message = Message::parse(bytes).unwrap();
//! assert_eq!(message.method(), Method::BINDING);
//! assert!(message.verify_integrity(&key).is_ok());
//! assert!(message.verify_fingerprint().is_ok());
//! assert_eq!(message.get(AttributeType::USERNAME), Some(Ok(Attribute::Username("alice:bob"))));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attribute;
mod builder;
mod channel_data;
pub mod credentials;
pub mod demux;
mod header;
mod integrity;
mod message;
pub mod ms;
mod stream;
mod transport;

#[doc(hidden)]
pub mod fuzzing;

pub use attribute::{AddressFamily, Attribute, AttributeError, AttributeType, ErrorCode};
pub use builder::{BuildError, MessageBuilder};
pub use channel_data::{
    CHANNEL_DATA_HEADER_LEN, ChannelData, ChannelDataError, MAX_CHANNEL, MIN_CHANNEL,
    is_valid_channel,
};
pub use header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
pub use integrity::{IntegrityError, IntegrityKey};
pub use message::{Layout, Message, ParseError, RawAttributes};
pub use stream::{Frame, Framing, StreamDecoder, StreamError, frame_len};
pub use transport::Transport;
