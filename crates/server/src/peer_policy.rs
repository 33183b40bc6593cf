//! Which peers a relay may send to.
//!
//! By default a relay refuses loopback, unspecified, multicast and broadcast
//! peers: relaying there would let anyone with credentials reach services
//! bound to the server itself. Addresses are canonicalised first, so an IPv4
//! address hidden in an IPv6 form (mapped, compatible, 6to4, NAT64) is judged
//! as the IPv4 address it is — coturn's CVE-2020-26262 came from missing
//! that. Private addresses are allowed: an enterprise edge relays to its own
//! clients.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Allow and deny lists over the built-in rule.
#[derive(Clone, Debug, Default)]
pub struct PeerPolicy {
    /// Peers allowed even if the built-in rule refuses them (tests allow
    /// 127.0.0.0/8).
    pub allow: Vec<IpNet>,
    /// Peers refused whatever else says.
    pub deny: Vec<IpNet>,
}

impl PeerPolicy {
    /// Whether data may be relayed to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        !is_dangerous(ip)
    }
}

/// The address an IPv6 form of an IPv4 address stands for, or `ip` itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    embedded_ipv4(v6).map_or(ip, IpAddr::V4)
}

fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // ::a.b.c.d (compatible, deprecated), except :: and ::1 themselves
        [0, 0, 0, 0, 0, 0, _, _] if !matches!(s[6..], [0, 0] | [0, 1]) => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Some(Ipv4Addr::new(a, b, c, d))
        }
        _ => None,
    }
}

fn is_dangerous(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || v6.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(policy: &PeerPolicy, ip: &str) -> bool {
        policy.permits(ip.parse().unwrap())
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
        ] {
            assert!(!permits(&p, ip), "{ip} must be refused");
        }
    }

    #[test]
    fn allows_public_and_private_peers() {
        let p = PeerPolicy::default();
        for ip in [
            "192.168.1.10",
            "10.0.0.1",
            "203.0.113.5",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(permits(&p, ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn allow_and_deny_lists_override() {
        let p = PeerPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            deny: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert!(permits(&p, "127.0.0.1"));
        assert!(permits(&p, "::ffff:127.0.0.1"));
        assert!(!permits(&p, "10.1.1.1"));
        assert!(!permits(&p, "::ffff:10.1.1.1"));
        assert!(!permits(&p, "::1"));
    }
}
