//! Which bound channels the driver may relay in the kernel (the XDP
//! program of `edgeice-fastpath`), and when each must stop.
//!
//! A channel goes to the kernel once it is bound and its peer permitted,
//! on an allocation the kernel can relay exactly like the socket path:
//! a UDP client, IPv4 throughout, no bandwidth cap to enforce. It comes
//! back the moment its channel or permission lapses (checked at every
//! sweep, once a second) or its allocation ends: without a live
//! permission nothing may be relayed.

use std::net::SocketAddr;
use std::time::Instant;

use crate::allocation::Allocation;
use crate::interface::{Event, FastRoute, FiveTuple, Transport};
use crate::server::Server;

impl Server {
    /// After a ChannelBind succeeded: hands the channel to the kernel if
    /// it can relay it.
    pub(crate) fn offer_fast_path(&mut self, now: Instant, from: &FiveTuple, channel: u16) {
        if !self.config.kernel_fast_path {
            return;
        }
        let Some(allocation) = self.allocations.get_mut(from) else {
            return;
        };
        let Some(binding) = allocation.channel(channel, now).copied() else {
            return;
        };
        let Some(relay) = allocation.relay_for(binding.peer.ip()) else {
            return;
        };
        let eligible = from.transport == Transport::Udp
            && allocation.budget.is_none()
            && [from.client, from.server, relay, binding.peer]
                .iter()
                .all(SocketAddr::is_ipv4)
            && allocation.permits(binding.peer.ip(), now)
            && !allocation.fast_routes.contains(&(channel, binding.peer));
        if eligible {
            allocation.fast_routes.push((channel, binding.peer));
            self.events.push_back(Event::FastPathInstall(FastRoute {
                client: *from,
                relay,
                peer: binding.peer,
                channel,
            }));
        }
    }

    /// At a sweep: takes back from the kernel every channel whose binding
    /// or permission has lapsed.
    pub(crate) fn sweep_fast_paths(&mut self, now: Instant) {
        for allocation in self.allocations.values_mut() {
            if allocation.fast_routes.is_empty() {
                continue;
            }
            let routes = std::mem::take(&mut allocation.fast_routes);
            for (channel, peer) in routes {
                let live = allocation
                    .channel(channel, now)
                    .is_some_and(|c| c.peer == peer)
                    && allocation.permits(peer.ip(), now);
                if live {
                    allocation.fast_routes.push((channel, peer));
                } else {
                    let route = route_of(allocation, channel, peer);
                    self.events.push_back(Event::FastPathRemove(route));
                }
            }
        }
    }

    /// When an allocation ends: takes all its channels back.
    pub(crate) fn drop_fast_paths(&mut self, allocation: &Allocation) {
        for &(channel, peer) in &allocation.fast_routes {
            self.events
                .push_back(Event::FastPathRemove(route_of(allocation, channel, peer)));
        }
    }
}

fn route_of(allocation: &Allocation, channel: u16, peer: SocketAddr) -> FastRoute {
    FastRoute {
        client: allocation.five_tuple,
        relay: allocation.relay_for(peer.ip()).unwrap_or(allocation.relay),
        peer,
        channel,
    }
}
