//! Which bound channels the driver may relay in the kernel (the XDP
//! program of `edgeice-fastpath`), and until when.
//!
//! A channel goes to the kernel once it is bound and its peer permitted,
//! on an allocation the kernel can relay exactly like the socket path:
//! a UDP client, IPv4 throughout or IPv6 throughout. An allocation with a bandwidth cap lends
//! the kernel bytes from its budget, at its first route and at every
//! sweep; the kernel relays while they last and passes the rest up, and
//! what it leaves comes back to the budget. Each route
//! carries a deadline — the first of its channel's, its permission's and
//! its allocation's expiry — that the kernel checks on every packet, so
//! nothing is relayed a moment after a lapse; a refresh that moves the
//! deadline installs the route again with the new one. The sweep (once a
//! second) takes lapsed routes out of the kernel's tables, and an
//! allocation's end takes all of its routes out at once.

use std::net::SocketAddr;
use std::time::Instant;

use crate::allocation::Allocation;
use crate::interface::{Event, FastRoute, FiveTuple, Transport};
use crate::server::Server;

/// A channel in the kernel: its number, its peer, and the deadline the
/// kernel was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KernelChannel {
    channel: u16,
    peer: SocketAddr,
    until: Instant,
}

impl Server {
    /// After a ChannelBind succeeded: hands the channel to the kernel if
    /// it can relay it, and moves the deadlines a refreshed permission
    /// extends.
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
        // One family throughout: the kernel keeps a packet's header size.
        let eligible = from.transport == Transport::Udp
            && [from.server, relay, binding.peer]
                .iter()
                .all(|a| a.is_ipv4() == from.client.is_ipv4())
            && allocation.permits(binding.peer.ip(), now)
            && !allocation
                .fast_routes
                .iter()
                .any(|k| k.channel == channel && k.peer == binding.peer);
        if let (true, Some(until)) = (eligible, deadline(allocation, channel, binding.peer, now)) {
            let first = allocation.fast_routes.is_empty();
            allocation.fast_routes.push(KernelChannel {
                channel,
                peer: binding.peer,
                until,
            });
            self.events.push_back(Event::FastPathInstall {
                route: route_of(allocation, channel, binding.peer),
                until,
                capped: allocation.budget.is_some(),
            });
            if first {
                lend(allocation, now, &mut self.events);
            }
        }
        self.extend_fast_paths(now, from);
    }

    /// After a request that may have refreshed the allocation, a permission
    /// or a channel of `from`: installs again, with its new deadline, every
    /// kernel route whose deadline moved (later, or earlier: a Refresh may
    /// ask for a shorter lifetime).
    pub(crate) fn extend_fast_paths(&mut self, now: Instant, from: &FiveTuple) {
        let Some(allocation) = self.allocations.get_mut(from) else {
            return;
        };
        for k in 0..allocation.fast_routes.len() {
            let KernelChannel {
                channel,
                peer,
                until,
            } = allocation.fast_routes[k];
            match deadline(allocation, channel, peer, now) {
                Some(moved) if moved != until => {
                    allocation.fast_routes[k].until = moved;
                    self.events.push_back(Event::FastPathInstall {
                        route: route_of(allocation, channel, peer),
                        until: moved,
                        capped: allocation.budget.is_some(),
                    });
                }
                // Lapsed (the kernel stopped on its own): the sweep takes it out.
                _ => {}
            }
        }
    }

    /// At a sweep: takes out of the kernel every channel whose binding or
    /// permission has lapsed (the kernel has stopped relaying it already,
    /// by its deadline), and lends capped allocations the next second's
    /// bytes.
    pub(crate) fn sweep_fast_paths(&mut self, now: Instant) {
        for allocation in self.allocations.values_mut() {
            if allocation.fast_routes.is_empty() {
                continue;
            }
            let routes = std::mem::take(&mut allocation.fast_routes);
            for kernel in routes {
                if deadline(allocation, kernel.channel, kernel.peer, now).is_some() {
                    allocation.fast_routes.push(kernel);
                } else {
                    let route = route_of(allocation, kernel.channel, kernel.peer);
                    self.events.push_back(Event::FastPathRemove(route));
                }
            }
            if !allocation.fast_routes.is_empty() {
                lend(allocation, now, &mut self.events);
            }
        }
    }

    /// What the kernel left of the last loan to `client`'s allocation
    /// ([`Event::FastPathAllowance`]): back into its bandwidth budget.
    pub fn return_fast_path_allowance(&mut self, client: &FiveTuple, bytes: u64) {
        if let Some(budget) = self
            .allocations
            .get_mut(client)
            .and_then(|a| a.budget.as_mut())
        {
            budget.give_back(bytes);
        }
    }

    /// When an allocation ends: takes all its channels back.
    pub(crate) fn drop_fast_paths(&mut self, allocation: &Allocation) {
        for kernel in &allocation.fast_routes {
            self.events.push_back(Event::FastPathRemove(route_of(
                allocation,
                kernel.channel,
                kernel.peer,
            )));
        }
    }
}

/// Lends a capped allocation's kernel routes every byte its budget holds.
fn lend(allocation: &mut Allocation, now: Instant, events: &mut std::collections::VecDeque<Event>) {
    if let Some(budget) = allocation.budget.as_mut() {
        events.push_back(Event::FastPathAllowance {
            client: allocation.five_tuple,
            bytes: budget.lend_all(now),
        });
    }
}

/// Until when the kernel may relay `channel` to `peer`: the first of the
/// channel's, the peer's permission's and the allocation's expiry, or
/// `None` if any has lapsed (or the channel is bound to another peer).
fn deadline(
    allocation: &Allocation,
    channel: u16,
    peer: SocketAddr,
    now: Instant,
) -> Option<Instant> {
    let binding = allocation
        .channel(channel, now)
        .filter(|c| c.peer == peer)?;
    let permission = allocation.permission_expiry(peer.ip(), now)?;
    let until = binding.expires.min(permission).min(allocation.expires);
    (until > now).then_some(until)
}

fn route_of(allocation: &Allocation, channel: u16, peer: SocketAddr) -> FastRoute {
    FastRoute {
        client: allocation.five_tuple,
        relay: allocation.relay_for(peer.ip()).unwrap_or(allocation.relay),
        peer,
        channel,
    }
}
