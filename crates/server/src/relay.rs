//! The relay path: client → peer (ChannelData, Send indications) and
//! peer → client (ChannelData, Data indications).
//!
//! This is the hot path. Nothing here allocates, logs or locks: ChannelData
//! is forwarded as a slice of the input, and a peer's datagram gets its
//! ChannelData header written into the headroom the driver left before it.
//! Only Data indications are built, into the server's reusable buffer.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, Message, MessageBuilder, MessageType, Method,
    TransactionId,
};

use crate::interface::{FiveTuple, PEER_DATA_HEADROOM, Transmit, Transport};
use crate::server::{Server, reply};

impl Server {
    /// ChannelData from a client: strip the header and send the data from
    /// the relay address to the channel's peer.
    pub(crate) fn relay_channel_data<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        contents: &'s [u8],
    ) -> Option<Transmit<'s>> {
        let Some(allocation) = self.allocations.get_mut(&from) else {
            if ChannelData::parse(contents).is_err() {
                self.stats.dropped += 1;
            }
            return None;
        };
        if let Some(state) = &allocation.ms_turn {
            // MS-TURN has no channels: from a client with an active
            // destination, 0x40..0x7F is just a raw datagram's first byte.
            let destination = state.active_destination?;
            return self.relay_raw_to_destination(now, from, destination, contents);
        }
        let Ok(frame) = ChannelData::parse(contents) else {
            self.stats.dropped += 1;
            return None;
        };
        let Some(binding) = allocation.channel(frame.channel, now) else {
            self.stats.permission_denied += 1;
            return None;
        };
        let (Some(relay), true) = (
            allocation.relay_for(binding.peer.ip()),
            allocation.permits(binding.peer.ip(), now),
        ) else {
            self.stats.permission_denied += 1;
            return None;
        };
        let peer = binding.peer;
        if !within_budget(allocation, frame.data.len(), now) {
            self.stats.over_bandwidth += 1;
            return None;
        }
        self.stats.count_to_peer(from.transport, frame.data.len());
        allocation.traffic.packets_to_peer += 1;
        allocation.traffic.bytes_to_peer += frame.data.len() as u64;
        Some(Transmit {
            transport: Transport::Udp,
            source: relay,
            destination: peer,
            payload: frame.data,
        })
    }

    /// A Send indication from a client: send its DATA to its
    /// XOR-PEER-ADDRESS if a permission allows.
    pub(crate) fn relay_send_indication<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        message: &Message<'s>,
    ) -> Option<Transmit<'s>> {
        let allocation = self
            .allocations
            .get_mut(&from)
            .filter(|a| a.relay_transport == crate::RelayTransport::Udp)?;
        let (Some(Ok(Attribute::XorPeerAddress(peer))), Some(Ok(Attribute::Data(data)))) = (
            message.get(AttributeType::XOR_PEER_ADDRESS),
            message.get(AttributeType::DATA),
        ) else {
            self.stats.dropped += 1;
            return None;
        };
        // A permission for one of the server's own addresses carries data
        // to its relay ports only (another allocation's relay), not to
        // the services listening on its other ports.
        let relay_ports = &self.config.peer_policy.relay_ports;
        let permitted =
            allocation
                .permission(peer.ip(), now)
                .is_some_and(|(_, relay_ports_only)| {
                    !relay_ports_only
                        || relay_ports
                            .as_ref()
                            .is_some_and(|ports| ports.contains(&peer.port()))
                });
        let (Some(relay), true) = (allocation.relay_for(peer.ip()), permitted) else {
            self.stats.permission_denied += 1;
            return None;
        };
        self.relay_out(now, from, relay, peer, data)
    }

    /// Sends `data` from `relay` to `peer` for the allocation of `from`, if
    /// its bandwidth cap allows, and counts it.
    pub(crate) fn relay_out<'s>(
        &'s mut self,
        now: Instant,
        from: FiveTuple,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &'s [u8],
    ) -> Option<Transmit<'s>> {
        let allocation = self.allocations.get_mut(&from)?;
        if !within_budget(allocation, data.len(), now) {
            self.stats.over_bandwidth += 1;
            return None;
        }
        self.stats.count_to_peer(from.transport, data.len());
        allocation.traffic.packets_to_peer += 1;
        allocation.traffic.bytes_to_peer += data.len() as u64;
        Some(Transmit {
            transport: Transport::Udp,
            source: relay,
            destination: peer,
            payload: data,
        })
    }

    /// A datagram from a peer to a relay address: to the client as
    /// ChannelData if a channel is bound to the peer, else as a Data
    /// indication; dropped without a permission.
    pub(crate) fn relay_to_client<'s>(
        &'s mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        datagram: &'s mut [u8],
    ) -> Option<Transmit<'s>> {
        let from = *self.by_relay.get(&relay)?;
        let allocation = self.allocations.get_mut(&from)?;
        // For an MS-TURN client: the layout its messages use.
        let ms_layout = allocation.ms_turn.as_ref().map(|s| s.layout);
        // The active destination needs no permission of its own: choosing
        // it was one.
        let active = allocation
            .ms_turn
            .as_ref()
            .is_some_and(|s| s.active_destination == Some(peer));
        if !active && !allocation.permits(peer.ip(), now) {
            self.stats.permission_denied += 1;
            allocation.traffic.dropped_from_peers += 1;
            return None;
        }
        let channel = allocation.channel_for_peer(peer, now);
        let payload_len = datagram.len().checked_sub(PEER_DATA_HEADROOM)?;
        if !within_budget(allocation, payload_len, now) {
            self.stats.over_bandwidth += 1;
            return None;
        }
        self.stats.count_to_client(from.transport, payload_len);
        allocation.traffic.packets_to_client += 1;
        allocation.traffic.bytes_to_client += payload_len as u64;
        if let Some(layout) = ms_layout {
            if active {
                return Some(reply(from, &datagram[PEER_DATA_HEADROOM..]));
            }
            return self.ms_data_indication(from, layout, peer, PEER_DATA_HEADROOM, datagram);
        }
        match channel {
            // Over UDP the header goes in the headroom: no copy at all.
            Some(number) if from.transport == Transport::Udp => {
                let len = u16::try_from(payload_len).ok()?;
                datagram[..PEER_DATA_HEADROOM].copy_from_slice(&ChannelData::header(number, len));
                Some(reply(from, datagram))
            }
            // Streams need the data padded to 4 bytes (RFC 8656 §12.5).
            Some(number) => {
                let data = &datagram[PEER_DATA_HEADROOM..];
                ChannelData {
                    channel: number,
                    data,
                }
                .encode(true, &mut self.scratch)
                .ok()?;
                Some(reply(from, &self.scratch))
            }
            None => {
                let data = &datagram[PEER_DATA_HEADROOM..];
                let kind = MessageType::new(Method::DATA, Class::Indication);
                // Indications get no response, so the ID only has to differ
                // between messages; the packet count does that for free.
                let mut id = [0u8; 12];
                id[4..].copy_from_slice(&self.stats.relayed_to_client.0.to_be_bytes());
                let mut b = MessageBuilder::new(&mut self.scratch, kind, TransactionId(id));
                b.add(&Attribute::XorPeerAddress(peer)).ok()?;
                b.add(&Attribute::Data(data)).ok()?;
                Some(reply(from, b.finish()))
            }
        }
    }
}

/// Whether the allocation's bandwidth cap lets `bytes` more through now.
fn within_budget(
    allocation: &mut crate::allocation::Allocation,
    bytes: usize,
    now: Instant,
) -> bool {
    allocation
        .budget
        .as_mut()
        .is_none_or(|budget| budget.spend(bytes, now))
}
