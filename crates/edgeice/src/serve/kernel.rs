//! `--kernel-fast-path`: bound channels relayed by the XDP (or TC) program
//! of `edgeice-fastpath`, installed and removed as the cores say
//! ([`Event::FastPathInstall`](edgeice_server::Event) and its removal), with
//! what went the fast way added to the metrics.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, bail};
use edgeice_fastpath::{ChannelRoute, Counters, FastPath};
use edgeice_server::{FastRoute, FiveTuple, Stats};

use super::driver::lock;

/// When to relay in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FastPathMode {
    /// Never: every packet goes through the sockets.
    Off,
    /// When the kernel, the privileges and the interfaces allow; otherwise
    /// the sockets, saying why in one line.
    #[default]
    Auto,
    /// Always: refuse to start if the kernel path cannot be set up.
    On,
}

/// The attached program and what it has relayed.
pub struct KernelPath {
    /// `None` once shut down: the programs are detached then.
    fast: Mutex<Option<FastPath>>,
    /// Whether IPv4 channels go to the kernel: forwarding is on for IPv4
    /// where the IPv4 addresses are (the kernel's route lookup answers
    /// only there).
    ipv4: bool,
    /// The same for IPv6 (at least one of the two is on).
    ipv6: bool,
    /// Routes installed now.
    routes: Mutex<HashSet<FastRoute>>,
    /// Counters of the routes already removed: (to peer, to client).
    removed: Mutex<(Counters, Counters)>,
}

impl KernelPath {
    /// Attaches the program to the interfaces carrying `ips` (the listening
    /// and relay addresses), as `mode` says: `None` when off, or when auto
    /// and it cannot be.
    pub fn start(mode: FastPathMode, ips: &[IpAddr]) -> Result<Option<KernelPath>> {
        if mode == FastPathMode::Off {
            return Ok(None);
        }
        let interfaces = interfaces_of(ips);
        let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
        let v6: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv6).collect();
        // The kernel's route lookup answers for a family only where its
        // forwarding is on: each family needs it on its interfaces.
        let v4_interfaces = interfaces_of(&v4);
        let not_forwarding: Vec<String> = v4_interfaces
            .iter()
            .filter(|name| !forwarding_on(4, name))
            .cloned()
            .collect();
        let v6_interfaces = interfaces_of(&v6);
        let v6_not_forwarding: Vec<String> = v6_interfaces
            .iter()
            .filter(|name| !forwarding_on(6, name))
            .cloned()
            .collect();
        let ipv6 = !v6_interfaces.is_empty() && v6_not_forwarding.is_empty();
        let ipv4 = !v4_interfaces.is_empty() && not_forwarding.is_empty();
        // `auto` asks first what `on` leaves to the kernel to refuse (with
        // its verifier log): a short reason, and no attempt bound to fail.
        let lacking = match mode {
            FastPathMode::Auto => missing_capabilities(),
            _ => Vec::new(),
        };
        let attached = if !lacking.is_empty() {
            Err(anyhow::anyhow!(
                "the process lacks {} (run as root, or grant CAP_BPF CAP_NET_ADMIN CAP_PERFMON, as packaging/edgeice.service does)",
                lacking.join(" ")
            ))
        } else if interfaces.is_empty() {
            Err(anyhow::anyhow!("no interface carries {ips:?}"))
        } else if let (false, false, Some(name)) = (ipv4, ipv6, not_forwarding.first()) {
            Err(anyhow::anyhow!(
                "IPv4 forwarding is off on {name}: enable it (sysctl -w net.ipv4.conf.{name}.forwarding=1) for the kernel to route relayed packets"
            ))
        } else if let (false, false, Some(name)) = (ipv4, ipv6, v6_not_forwarding.first()) {
            Err(anyhow::anyhow!(
                "IPv6 forwarding is off on {name}: enable it (sysctl -w net.ipv6.conf.{name}.forwarding=1, and accept_ra=2 where the address comes from router advertisements) for the kernel to route relayed packets"
            ))
        } else {
            FastPath::attach(&interfaces).map_err(anyhow::Error::from)
        };
        match (attached, mode) {
            (Ok(fast), _) => {
                // Each interface with its hook: native (XDP in the driver),
                // tc (where another XDP program holds the interface) or
                // generic XDP.
                let how: Vec<String> = fast
                    .interfaces()
                    .iter()
                    .map(|(name, hook)| format!("{name} ({hook})"))
                    .collect();
                // A family whose forwarding is off goes through the
                // sockets: said on the same line.
                let mut through_sockets = String::new();
                if let (false, Some(name)) = (ipv4, not_forwarding.first()) {
                    through_sockets.push_str(&format!(
                        "; IPv4 through the sockets: forwarding is off on {name} (sysctl -w net.ipv4.conf.{name}.forwarding=1)"
                    ));
                }
                if let (false, Some(name)) = (ipv6, v6_not_forwarding.first()) {
                    through_sockets.push_str(&format!(
                        "; IPv6 through the sockets: forwarding is off on {name} (sysctl -w net.ipv6.conf.{name}.forwarding=1, and accept_ra=2 where the address comes from router advertisements)"
                    ));
                }
                tracing::info!(
                    "kernel fast path on: bound channels are relayed in the kernel on {}{through_sockets}",
                    how.join(", ")
                );
                if ipv4 {
                    warn_forwarding(&v4_interfaces);
                }
                Ok(Some(KernelPath {
                    fast: Mutex::new(Some(fast)),
                    ipv4,
                    ipv6,
                    routes: Mutex::new(HashSet::new()),
                    removed: Mutex::new(Default::default()),
                }))
            }
            (Err(e), FastPathMode::Auto) => {
                // One line: the first of a verifier's log is its reason.
                let why = format!("{e:#}");
                let why = why.lines().next().unwrap_or_default();
                tracing::info!("kernel fast path off, relaying through sockets: {why}");
                Ok(None)
            }
            (Err(e), _) => bail!("--kernel-fast-path on: {e:#}"),
        }
    }

    /// Relays `route` in the kernel from now on until `until` (all four
    /// addresses of one family, as the core offers; a family only where
    /// its forwarding is on), within what is lent to its allocation if
    /// `capped`; for a route already there, moves its deadline.
    pub fn install(&self, route: &FastRoute, until: Instant, capped: bool) {
        let channel_route = channel_route(route);
        let family_on = if channel_route.client.is_ipv6() {
            self.ipv6
        } else {
            self.ipv4
        };
        if !family_on {
            return;
        }
        let mut fast = lock(&self.fast);
        let Some(fast) = fast.as_mut() else {
            return;
        };
        match fast.install(&channel_route, until, capped) {
            Ok(()) => {
                tracing::debug!("fast path installed for {route:?}");
                lock(&self.routes).insert(*route);
            }
            // The socket path carries on: nothing is lost but speed.
            Err(e) => tracing::debug!("fast path not installed for {route:?}: {e}"),
        }
    }

    /// Lends `client`'s capped allocation `bytes` for its kernel routes;
    /// returns what was left of the last loan (all of `bytes` back if it
    /// has no route in the kernel).
    pub fn lend(&self, client: &FiveTuple, bytes: u64) -> u64 {
        match lock(&self.fast).as_mut() {
            Some(fast) => fast.lend(client.client, client.server, bytes),
            None => bytes,
        }
    }

    /// Stops relaying `route` in the kernel and keeps its counters;
    /// returns the bytes its allocation's loan had left, if it was the
    /// last of its routes there (to go back to the cap), and what the
    /// kernel relayed on it (to peer, to client), for the session record.
    pub fn remove(&self, route: &FastRoute) -> (u64, Counters, Counters) {
        let none = (0, Counters::default(), Counters::default());
        let channel_route = channel_route(route);
        if !lock(&self.routes).remove(route) {
            return none;
        }
        let Some(out) = lock(&self.fast)
            .as_mut()
            .map(|fast| fast.remove(&channel_route))
        else {
            return none;
        };
        let mut removed = lock(&self.removed);
        add(&mut removed.0, out.to_peer);
        add(&mut removed.1, out.to_client);
        (out.unspent, out.to_peer, out.to_client)
    }

    /// Adds what went the kernel way to `stats`: relayed packets and bytes
    /// both ways; returns the kernel's share alone (to peer, to client).
    pub fn absorb_into(&self, stats: &mut Stats) -> (Counters, Counters) {
        let (mut to_peer, mut to_client) = *lock(&self.removed);
        let fast = lock(&self.fast);
        for route in lock(&self.routes).iter() {
            if let Some(fast) = fast.as_ref() {
                let (p, c) = fast.counters(&channel_route(route));
                add(&mut to_peer, p);
                add(&mut to_client, c);
            }
        }
        stats.relayed_to_peer.0 += to_peer.packets;
        stats.relayed_to_peer.1 += to_peer.bytes;
        stats.relayed_to_client.0 += to_client.packets;
        stats.relayed_to_client.1 += to_client.bytes;
        // Only UDP clients' channels take the kernel path.
        let udp = &mut stats.relayed_by_transport[edgeice_server::Transport::Udp.index()];
        udp.to_peer.0 += to_peer.packets;
        udp.to_peer.1 += to_peer.bytes;
        udp.to_client.0 += to_client.packets;
        udp.to_client.1 += to_client.bytes;
        (to_peer, to_client)
    }
}

impl KernelPath {
    /// Detaches the programs (at SIGTERM), so that nothing is relayed in
    /// the kernel once the server is gone: on a kernel without tcx a TC
    /// filter would otherwise outlive the process.
    pub fn shut_down(&self) {
        // Dropping the program's handle (at the end of this statement)
        // detaches it.
        let Some(names) = lock(&self.fast).take().map(|fast| {
            let names: Vec<String> = fast.interfaces().iter().map(|(n, _)| n.clone()).collect();
            names
        }) else {
            return;
        };
        tracing::info!("kernel fast path removed from {}", names.join(", "));
    }
}

fn add(sum: &mut Counters, more: Counters) {
    sum.packets += more.packets;
    sum.bytes += more.bytes;
}

/// The four transport addresses of a route.
fn channel_route(route: &FastRoute) -> ChannelRoute {
    ChannelRoute {
        client: route.client.client,
        server: route.client.server,
        relay: route.relay,
        peer: route.peer,
        channel: route.channel,
    }
}

/// Says, once, that the IPv4 forwarding the fast path needs on
/// `interfaces` makes the host a router for everything else too, unless
/// the firewall's FORWARD policy drops what is not for the host.
fn warn_forwarding(interfaces: &[String]) {
    let global = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .is_ok_and(|value| value.trim() == "1");
    let also = if global {
        " and globally (net.ipv4.ip_forward)"
    } else {
        ""
    };
    tracing::warn!(
        "IPv4 forwarding is on for {}{} (the kernel fast path needs it): this host routes \
         packets between its interfaces unless the firewall's FORWARD policy drops them; \
         what the fast path relays is not affected by that policy: `iptables -P FORWARD DROP`, \
         or `nft add chain inet filter forward '{{ type filter hook forward priority 0; policy drop; }}'`",
        interfaces.join(", "),
        also,
    );
}

/// The capabilities the fast path needs that this process lacks in its
/// effective set: CAP_NET_ADMIN to attach, and CAP_BPF and CAP_PERFMON to
/// load (or CAP_SYS_ADMIN for both, as root has; the only way before
/// Linux 5.8).
fn missing_capabilities() -> Vec<&'static str> {
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(effective) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        // Unreadable: let the kernel say.
        return Vec::new();
    };
    let has = |cap: u32| effective & (1 << cap) != 0;
    let mut lacking = Vec::new();
    if !has(NET_ADMIN) {
        lacking.push("CAP_NET_ADMIN");
    }
    if !has(SYS_ADMIN) {
        if !has(BPF) {
            lacking.push("CAP_BPF");
        }
        if !has(PERFMON) {
            lacking.push("CAP_PERFMON");
        }
    }
    lacking
}

/// Whether forwarding of IP `version` (4 or 6) is on for interface `name`.
fn forwarding_on(version: u8, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv{version}/conf/{name}/forwarding"))
        .is_ok_and(|value| value.trim() == "1")
}

/// The interfaces that carry any of `ips` (a wildcard matches none).
fn interfaces_of(ips: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| ips.contains(&i.ip()))
        .map(|i| i.name)
        .collect();
    names.sort();
    names.dedup();
    names
}
