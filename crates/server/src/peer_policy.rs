//! Which peers a relay may send to.
//!
//! A TURN server relays from its own address, so a peer address is a
//! request to reach that address from inside the server's network. Refused
//! by default:
//!
//! - loopback, unspecified (0.0.0.0/8, `::`), multicast and broadcast:
//!   services bound to the server itself (coturn's CVE-2020-26262);
//! - link-local (169.254.0.0/16, fe80::/10), and the cloud metadata
//!   services (169.254.169.254, AWS's fd00:ec2::254, GCP's fd20:ce::254, Alibaba's
//!   100.100.100.200): a client that reaches them reads the instance's
//!   credentials (server-side request forgery);
//! - every address of the server itself (listening, relay and interface
//!   addresses, given by the driver in [`PeerPolicy::own_addresses`]): a
//!   datagram sent from the relay to one of them arrives over `lo`, which
//!   host firewalls usually accept, so it would reach services meant to be
//!   local.
//!
//! Each rule is applied to the address as given and to every IPv4 address
//! an IPv6 form of it may stand for (mapped, translated, compatible, NAT64 with the
//! well-known prefix 64:ff9b::/96 or within the local-use 64:ff9b:1::/48,
//! 6to4, Teredo, ISATAP): a peer is refused if any reading is. Private
//! addresses are allowed by default, since an enterprise edge relays to its
//! own media servers; [`PeerPolicy::deny_private`] refuses them too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The cloud metadata services, reachable from any instance that hosts a
/// relay: AWS, GCP, Azure, OpenStack... (169.254.169.254, also in
/// 169.254.0.0/16), AWS and GCP over IPv6 (both inside fc00::/7, which is
/// otherwise allowed), Alibaba Cloud.
pub const METADATA_ADDRESSES: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V6(Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// [`PRIVATE_NETS`] as networks, parsed once (the rule runs per packet
/// on some paths).
fn private_nets() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        PRIVATE_NETS
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect()
    })
}

/// What [`PeerPolicy::deny_private`] refuses: RFC 1918, CGNAT (RFC 6598),
/// IPv6 unique-local (RFC 4193).
pub const PRIVATE_NETS: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// The peer rule: built-in refusals, with allow and deny lists over them.
#[derive(Clone, Debug, Default)]
pub struct PeerPolicy {
    /// Peers allowed even if a built-in rule refuses them (tests allow
    /// 127.0.0.0/8). An entry that covers one of the server's own addresses
    /// lets clients reach it.
    pub allow: Vec<IpNet>,
    /// Peers refused whatever else says.
    pub deny: Vec<IpNet>,
    /// The server's own addresses (listening, relay, interfaces): refused
    /// unless allowed. The driver gathers them; the core does no I/O.
    pub own_addresses: Vec<IpAddr>,
    /// Also refuse private peers ([`PRIVATE_NETS`]) unless allowed, for an
    /// edge that serves only the public internet.
    pub deny_private: bool,
    /// The relay port range: a peer that is one of the server's own
    /// addresses is allowed on these ports only, where it is another
    /// allocation's relay (two clients of one server calling relay to
    /// relay). `None` refuses the server's own addresses on every port.
    pub relay_ports: Option<std::ops::RangeInclusive<u16>>,
}

/// At most this many readings of one address: itself and the IPv4
/// addresses its IPv6 form may embed.
const MAX_FORMS: usize = 8;

/// An address and the IPv4 addresses it may stand for, without allocating.
struct Forms {
    forms: [Option<IpAddr>; MAX_FORMS],
}

impl Forms {
    fn of(ip: IpAddr) -> Self {
        let mut forms = [None; MAX_FORMS];
        forms[0] = Some(ip);
        if let IpAddr::V6(v6) = ip {
            for (slot, v4) in forms[1..].iter_mut().zip(embedded_ipv4s(v6)) {
                *slot = v4.map(IpAddr::V4);
            }
        }
        Forms { forms }
    }

    fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.forms.iter().flatten().copied()
    }
}

impl PeerPolicy {
    /// Whether data may be relayed to `ip`: no reading of it is denied,
    /// and each reading refused by a built-in rule is allowed explicitly.
    ///
    /// On every port: the server's own addresses are refused here even on
    /// relay ports (see [`PeerPolicy::permits_peer`]).
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.judge(ip, None)
    }

    /// Whether data may be relayed to the transport address `peer`: as
    /// [`PeerPolicy::permits`], except that one of the server's own
    /// addresses is allowed on a relay port.
    pub fn permits_peer(&self, peer: std::net::SocketAddr) -> bool {
        self.judge(peer.ip(), Some(peer.port()))
    }

    /// Whether `ip` is allowed on the relay ports only (one of the server's
    /// own addresses): a permission for it must not carry data to its
    /// other ports.
    pub fn only_on_relay_ports(&self, ip: IpAddr) -> bool {
        !self.permits(ip) && self.relay_ports.is_some() && self.judge(ip, self.relay_port())
    }

    /// The rule that refuses `peer`, if one does: what a refusal is
    /// logged with (a control path; the checks above are the fast ones).
    pub fn refusing_rule(&self, peer: std::net::SocketAddr) -> Option<PeerRule> {
        if self.permits_peer(peer) {
            return None;
        }
        let forms = Forms::of(peer.ip());
        for form in forms.iter() {
            if let Some(net) = self
                .deny
                .iter()
                .find(|net| listed(std::slice::from_ref(net), form))
            {
                return Some(PeerRule::Denied(*net));
            }
        }
        let on_relay_port = self
            .relay_ports
            .as_ref()
            .is_some_and(|ports| ports.contains(&peer.port()));
        for form in forms.iter().filter(|form| !listed(&self.allow, *form)) {
            // Before link-local, which 169.254.169.254 also is: the more
            // telling name.
            if METADATA_ADDRESSES.contains(&form) {
                return Some(PeerRule::Builtin("cloud-metadata"));
            }
            if let Some(name) = dangerous_kind(form) {
                return Some(PeerRule::Builtin(name));
            }
            if self.own_addresses.contains(&form) && !on_relay_port {
                return Some(PeerRule::OwnAddress);
            }
            if self.deny_private && private_nets().iter().any(|net| net.contains(&form)) {
                return Some(PeerRule::Private);
            }
        }
        Some(PeerRule::Builtin("unknown"))
    }

    fn relay_port(&self) -> Option<u16> {
        self.relay_ports.as_ref().map(|ports| *ports.start())
    }

    fn judge(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let forms = Forms::of(ip);
        if forms.iter().any(|form| listed(&self.deny, form)) {
            return false;
        }
        forms
            .iter()
            .all(|form| !self.refused_by_default(form, port) || listed(&self.allow, form))
    }

    /// Whether a built-in rule refuses this one reading of an address, on
    /// `port` (`None`: on some port).
    fn refused_by_default(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let on_relay_port = port.is_some_and(|port| {
            self.relay_ports
                .as_ref()
                .is_some_and(|ports| ports.contains(&port))
        });
        is_dangerous(ip)
            || METADATA_ADDRESSES.contains(&ip)
            || (self.own_addresses.contains(&ip) && !on_relay_port)
            || (self.deny_private && private_nets().iter().any(|net| net.contains(&ip)))
    }
}

/// Whether a net of `list` covers `ip`. A net written as IPv4-mapped IPv6
/// (`::ffff:10.0.0.0/104`) also covers the IPv4 addresses it maps, since
/// that is what it says.
fn listed(list: &[IpNet], ip: IpAddr) -> bool {
    list.iter().any(|net| {
        net.contains(&ip)
            || match (net, ip) {
                (IpNet::V6(net), IpAddr::V4(v4)) if net.prefix_len() >= 96 => {
                    net.network().to_ipv4_mapped().is_some() && net.contains(&v4.to_ipv6_mapped())
                }
                _ => false,
            }
    })
}

/// The address an IPv6 form of an IPv4 address stands for, or `ip` itself:
/// the first IPv4 address its form embeds. For judging whether an address
/// is routable; the peer rule judges every reading.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    embedded_ipv4s(v6)
        .into_iter()
        .flatten()
        .next()
        .map_or(ip, IpAddr::V4)
}

/// Every IPv4 address `v6` may embed, by the form it has. NAT64 prefixes
/// in the local-use 64:ff9b:1::/48 may be /48, /56, /64 or /96 long
/// (RFC 8215, RFC 6052 §2.2), which the address does not say: each layout
/// whose reserved octet and suffix are zero gives a reading.
fn embedded_ipv4s(v6: Ipv6Addr) -> [Option<Ipv4Addr>; MAX_FORMS - 1] {
    let s = v6.segments();
    let o = v6.octets();
    let v4 = |a: u8, b: u8, c: u8, d: u8| Some(Ipv4Addr::new(a, b, c, d));
    let tail = v4(o[12], o[13], o[14], o[15]);
    let mut found = [None; MAX_FORMS - 1];
    match s {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => found[0] = tail,
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765)
        [0, 0, 0, 0, 0xffff, 0, _, _] => found[0] = tail,
        // ::a.b.c.d (compatible, deprecated), except :: and ::1 themselves
        [0, 0, 0, 0, 0, 0, _, _] if !matches!(s[6..], [0, 0] | [0, 1]) => found[0] = tail,
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix, /96 only)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => found[0] = tail,
        // 64:ff9b:1::/48 (NAT64 local-use): every layout that fits.
        [0x64, 0xff9b, 1, ..] => {
            let zero = |range: std::ops::Range<usize>| o[range].iter().all(|b| *b == 0);
            found[0] = tail; // /96
            if o[8] == 0 && zero(13..16) {
                found[1] = v4(o[9], o[10], o[11], o[12]); // /64
            }
            if o[8] == 0 && zero(12..16) {
                found[2] = v4(o[7], o[9], o[10], o[11]); // /56
            }
            if o[8] == 0 && zero(11..16) {
                found[3] = v4(o[6], o[7], o[9], o[10]); // /48
            }
        }
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, ..] => found[0] = v4(o[2], o[3], o[4], o[5]),
        // 2001:0::/32 (Teredo): the client's public IPv4, inverted, in the
        // last 32 bits; the Teredo server's in bits 32..64.
        [0x2001, 0, ..] => {
            found[0] = v4(!o[12], !o[13], !o[14], !o[15]);
            found[1] = v4(o[4], o[5], o[6], o[7]);
        }
        _ => {}
    }
    // ISATAP (RFC 5214): interface ID 0?00:5efe:a.b.c.d, under any prefix.
    if s[4] & 0xfcff == 0 && s[5] == 0x5efe && found[0].is_none() {
        found[0] = tail;
    }
    found
}

/// Which rule refused a peer ([`PeerPolicy::refusing_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerRule {
    /// An entry of [`PeerPolicy::deny`].
    Denied(IpNet),
    /// A built-in refusal: loopback, unspecified, multicast, broadcast,
    /// link-local or cloud-metadata.
    Builtin(&'static str),
    /// One of the server's own addresses, off the relay ports.
    OwnAddress,
    /// A private address, with [`PeerPolicy::deny_private`].
    Private,
}

impl fmt::Display for PeerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerRule::Denied(net) => write!(f, "deny-peer {net}"),
            PeerRule::Builtin(name) => write!(f, "{name}"),
            PeerRule::OwnAddress => write!(f, "own-address"),
            PeerRule::Private => write!(f, "deny-private-peers"),
        }
    }
}

/// The built-in rule name for a dangerous address.
fn dangerous_kind(ip: IpAddr) -> Option<&'static str> {
    let name = match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "loopback",
        IpAddr::V4(v4) if v4.octets()[0] == 0 => "unspecified",
        IpAddr::V4(v4) if v4.is_multicast() => "multicast",
        IpAddr::V4(v4) if v4.is_broadcast() => "broadcast",
        IpAddr::V4(v4) if v4.is_link_local() => "link-local",
        IpAddr::V6(v6) if v6.is_loopback() => "loopback",
        IpAddr::V6(v6) if v6.is_unspecified() => "unspecified",
        IpAddr::V6(v6) if v6.is_multicast() => "multicast",
        IpAddr::V6(v6) if v6.is_unicast_link_local() => "link-local",
        _ => return None,
    };
    Some(name)
}

fn is_dangerous(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.octets()[0] == 0
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_link_local()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
        }
    }
}

impl fmt::Display for PeerPolicy {
    /// One line for the log: what is refused, and what is allowed anyway.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peers refused: loopback, 0.0.0.0/8, ::, multicast, broadcast, \
             link-local (169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254, \
             fd00:ec2::254, fd20:ce::254, 100.100.100.200)"
        )?;
        if self.deny_private {
            write!(f, ", private ({})", PRIVATE_NETS.join(", "))?;
        }
        write!(f, ", the server's own addresses (")?;
        join(f, &self.own_addresses)?;
        if let Some(ports) = &self.relay_ports {
            write!(f, "; except relay ports {}-{}", ports.start(), ports.end())?;
        }
        write!(
            f,
            "), in any IPv6 form (mapped, translated, compatible, NAT64, 6to4, Teredo, ISATAP); denied: "
        )?;
        join(f, &self.deny)?;
        write!(f, "; allowed despite the above: ")?;
        join(f, &self.allow)
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    if items.is_empty() {
        return write!(f, "none");
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(policy: &PeerPolicy, ip: &str) -> bool {
        policy.permits(ip.parse().unwrap())
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn refuses_loopback_in_every_disguise() {
        let p = PeerPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::ffff:0.0.0.0",
            "::ffff:0:7f00:1",
            // NAT64 local-use, /96 and /64 layouts
            "64:ff9b:1::7f00:1",
            "64:ff9b:1:0:7f:0:100:0",
            // Teredo: client 127.0.0.1 inverted is 80ff:fffe
            "2001:0:c000:201:0:0:80ff:fffe",
            // ISATAP
            "2001:db8::5efe:7f00:1",
            "2001:db8::200:5efe:7f00:1",
        ] {
            assert!(!permits(&p, ip), "{ip} must be refused");
        }
    }

    #[test]
    fn refuses_link_local_and_cloud_metadata_in_every_disguise() {
        let p = PeerPolicy::default();
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "fd20:ce::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:c000:201:0:0:5601:5601",
            "::ffff:100.100.100.200",
        ] {
            assert!(!permits(&p, ip), "{ip} must be refused");
        }
    }

    #[test]
    fn refuses_the_servers_own_addresses_in_every_disguise() {
        let p = PeerPolicy {
            own_addresses: vec![
                "198.51.100.7".parse().unwrap(),
                "2001:db8::7".parse().unwrap(),
            ],
            ..PeerPolicy::default()
        };
        for ip in [
            "198.51.100.7",
            "::ffff:198.51.100.7",
            "64:ff9b::c633:6407",
            "2002:c633:6407::",
            "2001:0:c000:201::39cc:9bf8",
            "2001:db8::7",
        ] {
            assert!(!permits(&p, ip), "{ip} must be refused");
        }
        assert!(permits(&p, "198.51.100.8"));
        assert!(permits(&p, "2001:db8::8"));
    }

    #[test]
    fn the_servers_own_addresses_are_allowed_on_relay_ports_only() {
        // Two clients of one server call relay to relay: each one's peer is
        // the other's relay, at the server's own address.
        let p = PeerPolicy {
            own_addresses: vec!["198.51.100.7".parse().unwrap()],
            relay_ports: Some(49152..=65535),
            ..PeerPolicy::default()
        };
        let peer = |s: &str| p.permits_peer(s.parse().unwrap());
        assert!(peer("198.51.100.7:50000"));
        assert!(peer("[::ffff:198.51.100.7]:50000"));
        assert!(!peer("198.51.100.7:3478"));
        assert!(!peer("198.51.100.7:22"));
        assert!(!p.permits("198.51.100.7".parse().unwrap()));
        assert!(p.only_on_relay_ports("198.51.100.7".parse().unwrap()));
        assert!(!p.only_on_relay_ports("198.51.100.8".parse().unwrap()));
        assert!(!p.only_on_relay_ports("127.0.0.1".parse().unwrap()));
        // Loopback and metadata stay refused on every port.
        assert!(!peer("127.0.0.1:50000"));
        assert!(!peer("169.254.169.254:50000"));
    }

    #[test]
    fn allows_public_and_private_peers() {
        let p = PeerPolicy::default();
        for ip in [
            "192.168.1.10",
            "10.0.0.1",
            "100.64.0.1",
            "203.0.113.5",
            "2001:db8::1",
            "fd12::1",
            "::ffff:10.0.0.1",
            "64:ff9b::cb00:7105",
            "64:ff9b:1::cb00:7105",
        ] {
            assert!(permits(&p, ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn the_private_preset_refuses_private_peers_unless_allowed() {
        let p = PeerPolicy {
            deny_private: true,
            allow: nets(&["10.9.0.0/16"]),
            ..PeerPolicy::default()
        };
        for ip in [
            "10.0.0.1",
            "172.16.5.5",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "::ffff:192.168.1.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!permits(&p, ip), "{ip} must be refused");
        }
        assert!(permits(&p, "10.9.1.1"));
        assert!(permits(&p, "203.0.113.5"));
    }

    #[test]
    fn allow_and_deny_lists_override() {
        let p = PeerPolicy {
            allow: nets(&["127.0.0.0/8"]),
            deny: nets(&["10.0.0.0/8"]),
            ..PeerPolicy::default()
        };
        assert!(permits(&p, "127.0.0.1"));
        assert!(permits(&p, "::ffff:127.0.0.1"));
        assert!(!permits(&p, "10.1.1.1"));
        assert!(!permits(&p, "::ffff:10.1.1.1"));
        assert!(!permits(&p, "64:ff9b::a01:101"));
        assert!(!permits(&p, "::1"));
    }

    #[test]
    fn deny_entries_in_ipv6_form_match_what_they_say() {
        // Before: the peer was turned into IPv4 before matching, so these
        // entries never matched anything.
        let p = PeerPolicy {
            deny: nets(&["64:ff9b::/96", "::ffff:10.0.0.0/104", "2002::/16"]),
            ..PeerPolicy::default()
        };
        assert!(!permits(&p, "64:ff9b::cb00:7105"));
        assert!(!permits(&p, "::ffff:10.1.2.3"));
        assert!(
            !permits(&p, "10.1.2.3"),
            "a mapped net covers its IPv4 addresses"
        );
        assert!(!permits(&p, "2002:cb00:7105::1"));
        assert!(permits(&p, "203.0.113.5"));
        assert!(permits(&p, "11.0.0.1"));
    }

    #[test]
    fn the_log_line_says_what_is_refused_and_allowed() {
        let p = PeerPolicy {
            allow: nets(&["127.0.0.0/8"]),
            deny: nets(&["64:ff9b::/96"]),
            own_addresses: vec!["192.0.2.1".parse().unwrap()],
            deny_private: true,
            relay_ports: Some(49152..=65535),
        };
        let line = p.to_string();
        assert!(!line.contains('\n'));
        for part in [
            "169.254.169.254",
            "192.0.2.1",
            "64:ff9b::/96",
            "127.0.0.0/8",
            "fc00::/7",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
    }
}
