//! # edgeice-fastpath: TURN ChannelData relayed in the kernel
//!
//! `ebpf/relay.c` holds an XDP program and a TC one sharing its maps and
//! packet logic that, for the channels user space has
//! installed, do what the socket path does for ChannelData over UDP,
//! IPv4 or IPv6 (a client, its relayed address and its peer all of one
//! family): a client's ChannelData loses its 4-byte header and leaves from the
//! relayed address to the peer; a peer's datagram gets the header and
//! leaves from the server's address to the client. Everything else is
//! passed up untouched, so the socket path stays the reference.
//!
//! User space stays in charge: [`FastPath::install`] adds a
//! [`ChannelRoute`] when a channel is bound (and its permission live),
//! [`FastPath::remove`] takes it out the moment the channel, the
//! permission or the allocation lapses, and returns the packets and bytes
//! that went the fast way, so accounting stays exact.
//!
//! Each interface gets the XDP program in the driver where it can; where
//! it cannot (most often because the interface already has another XDP
//! program, which is never replaced) the TC program on ingress, and
//! generic XDP only where neither works: [`Hook`] says which.
//!
//! The programs are in every build: `ebpf/relay.bpf.o`, compiled from
//! `ebpf/relay.c` by `ebpf/build.sh` with a pinned clang and committed, is
//! included as it is (building needs no clang; a test rebuilds it and
//! compares the bytes), and loaded with aya.

#![warn(missing_docs)]
#![deny(unsafe_code)]

use std::net::SocketAddr;

/// Why the fast path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// The kernel refused the program (no privileges, no BPF, the
    /// verifier said no).
    #[error("the kernel refused the XDP program: {0}")]
    Load(String),
    /// Neither program could be attached to the interface, by any hook.
    #[error("could not attach XDP or TC to {interface}: {reason}")]
    Attach {
        /// The interface.
        interface: String,
        /// Why.
        reason: String,
    },
    /// A map update failed (full, or gone).
    #[error("fast path map: {0}")]
    Map(String),
    /// The route's four addresses are not all of one family: the
    /// programs keep a packet's header size, so they cannot relay it.
    #[error("a route's addresses must all be IPv4 or all IPv6")]
    MixedFamilies,
}

/// Where the relay runs on an interface, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// XDP in the driver, before any socket buffer exists.
    XdpNative,
    /// The TC program on ingress, through a tcx link (Linux 6.6 and later):
    /// after the socket buffer is built, alongside other TC programs. Used
    /// where native XDP cannot be attached. Detached when the process ends,
    /// however it ends.
    Tc,
    /// The TC program as a cls_bpf direct-action filter on the clsact
    /// qdisc's ingress (kernels without tcx). Detached when the
    /// [`FastPath`] is dropped; a filter left by a killed process is
    /// removed by the next [`FastPath::attach`].
    TcFilter,
    /// XDP in generic (skb) mode: the last resort.
    XdpGeneric,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hook::XdpNative => "native",
            Hook::Tc => "tc",
            Hook::TcFilter => "tc, clsact filter",
            Hook::XdpGeneric => "generic",
        })
    }
}

/// One bound channel, both ways: what the programs need to relay it. Its
/// four addresses are all IPv4 or all IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRoute {
    /// The client's transport address (its 5-tuple's far end).
    pub client: SocketAddr,
    /// The server address the client talks to.
    pub server: SocketAddr,
    /// The relayed address.
    pub relay: SocketAddr,
    /// The peer the channel is bound to.
    pub peer: SocketAddr,
    /// The channel number.
    pub channel: u16,
}

/// Packets and payload bytes relayed the fast way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Payload bytes (without the ChannelData header).
    pub bytes: u64,
}

/// What a route took out of the kernel: what went that way, and what its
/// allocation's loan had left when it was the last of its routes there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Client → peer.
    pub to_peer: Counters,
    /// Peer → client.
    pub to_client: Counters,
    /// Payload bytes lent and not spent, to go back to the cap.
    pub unspent: u64,
}

/// `struct addr` of relay.c: an address as the packet carries it, read as
/// native integers: IPv4 in the first word and zeros after it, or IPv6.
type WireIp = [u32; 4];

/// `struct to_peer_key` of relay.c: addresses and ports in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ToPeerKey {
    client_ip: WireIp,
    server_ip: WireIp,
    client_port: u16,
    server_port: u16,
    channel: u16,
    /// 4 or 6.
    family: u16,
}

/// `struct to_client_key` of relay.c.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ToClientKey {
    peer_ip: WireIp,
    relay_ip: WireIp,
    peer_port: u16,
    relay_port: u16,
    family: u16,
    pad: u16,
}

/// `struct route` of relay.c: where a rewritten packet goes, and counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route {
    from_ip: WireIp,
    to_ip: WireIp,
    from_port: u16,
    to_port: u16,
    channel: u16,
    pad: u16,
    /// Its deadline's index in the `deadlines` array.
    slot: u32,
    /// Its allocation's loan's index in `lent` and `spent`; 0: no cap.
    budget: u32,
    packets: u64,
    bytes: u64,
}

/// An address as the packet carries it, read as native integers.
fn wire_ip(addr: &SocketAddr) -> WireIp {
    let mut words = [0; 4];
    match addr {
        SocketAddr::V4(a) => words[0] = u32::from_ne_bytes(a.ip().octets()),
        SocketAddr::V6(a) => {
            for (word, bytes) in words.iter_mut().zip(a.ip().octets().chunks_exact(4)) {
                *word = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
    }
    words
}

/// A port as the packet carries it, read as a native integer.
fn wire_port(addr: &SocketAddr) -> u16 {
    u16::from_ne_bytes(addr.port().to_be_bytes())
}

impl ChannelRoute {
    /// The keys' family field (relay.c's FAMILY_IPV4, FAMILY_IPV6), or
    /// `None` if the four addresses are not all of one family.
    fn family(&self) -> Option<u16> {
        let v4 = self.client.is_ipv4();
        [self.server, self.relay, self.peer]
            .iter()
            .all(|a| a.is_ipv4() == v4)
            .then_some(if v4 { 4 } else { 6 })
    }

    fn to_peer_key(self) -> ToPeerKey {
        ToPeerKey {
            client_ip: wire_ip(&self.client),
            server_ip: wire_ip(&self.server),
            client_port: wire_port(&self.client),
            server_port: wire_port(&self.server),
            channel: self.channel,
            family: self.family().unwrap_or(0),
        }
    }

    fn to_client_key(self) -> ToClientKey {
        ToClientKey {
            peer_ip: wire_ip(&self.peer),
            relay_ip: wire_ip(&self.relay),
            peer_port: wire_port(&self.peer),
            relay_port: wire_port(&self.relay),
            family: self.family().unwrap_or(0),
            pad: 0,
        }
    }

    fn to_peer_route(self, slot: u32, budget: u32) -> Route {
        Route {
            from_ip: wire_ip(&self.relay),
            to_ip: wire_ip(&self.peer),
            from_port: wire_port(&self.relay),
            to_port: wire_port(&self.peer),
            channel: self.channel,
            pad: 0,
            slot,
            budget,
            packets: 0,
            bytes: 0,
        }
    }

    fn to_client_route(self, slot: u32, budget: u32) -> Route {
        Route {
            from_ip: wire_ip(&self.server),
            to_ip: wire_ip(&self.client),
            from_port: wire_port(&self.server),
            to_port: wire_port(&self.client),
            channel: self.channel,
            pad: 0,
            slot,
            budget,
            packets: 0,
            bytes: 0,
        }
    }
}

mod loaded;
mod slots;
mod terms;
pub use loaded::FastPath;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_routes_carry_network_order() {
        let route = ChannelRoute {
            client: "192.0.2.1:5000".parse().unwrap(),
            server: "10.0.0.1:3478".parse().unwrap(),
            relay: "10.0.0.1:61000".parse().unwrap(),
            peer: "198.51.100.7:9000".parse().unwrap(),
            channel: 0x4001,
        };
        let key = route.to_peer_key();
        assert_eq!(key.client_ip[0].to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(key.client_ip[1..], [0, 0, 0]);
        assert_eq!(key.client_port.to_ne_bytes(), 5000u16.to_be_bytes());
        assert_eq!(key.channel, 0x4001);
        assert_eq!(key.family, 4);
        let back = route.to_client_route(7, 0);
        assert_eq!(back.to_ip[0].to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(back.from_port.to_ne_bytes(), 3478u16.to_be_bytes());
        // relay.c's sizes: a change on one side only would misread every
        // entry.
        assert_eq!(std::mem::size_of::<ToPeerKey>(), 40);
        assert_eq!(std::mem::size_of::<ToClientKey>(), 40);
        assert_eq!(back.slot, 7);
        assert_eq!(std::mem::size_of::<Route>(), 64);
    }

    #[test]
    fn ipv6_routes_carry_all_sixteen_bytes_and_mixed_families_have_none() {
        let route = ChannelRoute {
            client: "[2001:db8::1]:5000".parse().unwrap(),
            server: "[fd77::1]:3478".parse().unwrap(),
            relay: "[fd77::1]:61000".parse().unwrap(),
            peer: "[2001:db8:1::7]:9000".parse().unwrap(),
            channel: 0x4001,
        };
        let key = route.to_client_key();
        assert_eq!(key.family, 6);
        let bytes: Vec<u8> = key.peer_ip.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(
            bytes,
            "2001:db8:1::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        let mixed = ChannelRoute {
            peer: "198.51.100.7:9000".parse().unwrap(),
            ..route
        };
        assert_eq!(mixed.family(), None);
    }

    #[test]
    fn hooks_are_named_as_the_log_and_the_lab_expect() {
        // lab/fast-path.sh reads the hook back from serve's log line.
        assert_eq!(Hook::XdpNative.to_string(), "native");
        assert_eq!(Hook::Tc.to_string(), "tc");
        assert_eq!(Hook::TcFilter.to_string(), "tc, clsact filter");
        assert_eq!(Hook::XdpGeneric.to_string(), "generic");
    }
}
