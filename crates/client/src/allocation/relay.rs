//! The data path: wrapping payloads for the relay (ChannelData or Send
//! indications) and unwrapping what it sends back (ChannelData or Data
//! indications), in the caller's buffers, allocating nothing.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, Message, MessageBuilder, MessageType, Method,
};

use super::{Allocation, AllocationEvent};
use crate::error::{ClientError, InputError};

impl Allocation {
    /// Wraps `payload` for `peer` into `out` (cleared first), ready to send
    /// to the server: ChannelData when a channel is bound to `peer` (padded
    /// to 4 bytes on a stream), else a Send indication. Creates the missing
    /// permission for `peer`'s IP (its CreatePermission comes out of
    /// [`Allocation::poll_transmit`]; the relay drops data for `peer` until
    /// it is installed, so wait for [`AllocationEvent::PermissionCreated`]
    /// if the first packets matter). Allocates nothing once `out` is large
    /// enough.
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        self.require_allocated()?;
        self.require_udp_relay()?;
        if let Some(channel) = self.channels.get(&peer).filter(|c| c.bound) {
            let data = ChannelData {
                channel: channel.number,
                data: payload,
            };
            return data
                .encode(self.config.transport.is_stream(), out)
                .map_err(|_| ClientError::PayloadTooLong(payload.len()));
        }
        if !self.permissions.contains_key(&peer.ip()) {
            self.create_permission(now, peer.ip())?;
        }
        let kind = MessageType::new(Method::SEND, Class::Indication);
        let mut builder = MessageBuilder::new(out, kind, self.indication_ids.next_id());
        builder.add(&Attribute::XorPeerAddress(peer))?;
        builder
            .add(&Attribute::Data(payload))
            .map_err(|_| ClientError::PayloadTooLong(payload.len()))?;
        builder.add_fingerprint()?;
        Ok(())
    }

    /// Handles one datagram (UDP) or one frame (TCP/TLS, as cut by
    /// [`edgeice_stun::StreamDecoder::next_raw`]) from the server.
    ///
    /// Returns `Some((peer, data))` for relayed data — a Data indication or
    /// ChannelData on a channel of this allocation — with `data` borrowing
    /// `bytes`; `None` for responses and other indications, whose outcome
    /// comes out of [`Allocation::poll_event`]. An error means the input
    /// was dropped; the allocation is unaffected.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
        if bytes.first().is_some_and(|b| b >> 6 == 1) {
            let data = ChannelData::parse(bytes)?;
            let Some(&peer) = self.channel_peers.get(&data.channel) else {
                return Err(InputError::UnknownChannel(data.channel));
            };
            return Ok(Some((peer, data.data)));
        }
        let message = Message::parse(bytes)?;
        if message.has_fingerprint() && message.verify_fingerprint().is_err() {
            return Err(InputError::Integrity);
        }
        match message.class() {
            Class::Indication => self.handle_indication(&message),
            Class::Success | Class::Error => {
                self.handle_response(now, &message)?;
                Ok(None)
            }
            Class::Request => Err(InputError::Unexpected("request")),
        }
    }

    pub(super) fn handle_indication<'a>(
        &mut self,
        message: &Message<'a>,
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
        if self.relayed.is_none() {
            return Err(InputError::Unexpected("indication before allocation"));
        }
        let peer = match message.get(AttributeType::XOR_PEER_ADDRESS) {
            Some(Ok(Attribute::XorPeerAddress(peer))) => peer,
            _ => return Err(InputError::Malformed("XOR-PEER-ADDRESS")),
        };
        match message.method() {
            Method::DATA => match message.get(AttributeType::DATA) {
                Some(Ok(Attribute::Data(data))) => Ok(Some((peer, data))),
                _ => Err(InputError::Malformed("DATA")),
            },
            Method::CONNECTION_ATTEMPT => {
                let connection_id = match message.get(AttributeType::CONNECTION_ID) {
                    Some(Ok(Attribute::ConnectionId(id))) => id,
                    _ => return Err(InputError::Malformed("CONNECTION-ID")),
                };
                self.push_event(AllocationEvent::ConnectionAttempt {
                    peer,
                    connection_id,
                });
                Ok(None)
            }
            _ => Err(InputError::Unexpected("indication")),
        }
    }
}
