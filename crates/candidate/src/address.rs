//! Candidate addresses and the class of network they belong to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address of a candidate: an IP, or an mDNS or other host name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateAddress<'a> {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name (mDNS `<uuid>.local` when browsers hide local IPs).
    Name(&'a str),
}

impl CandidateAddress<'_> {
    /// Reads an address token: an IP literal, else a host name.
    pub(crate) fn parse(token: &str) -> CandidateAddress<'_> {
        match token.parse::<IpAddr>() {
            Ok(ip) => CandidateAddress::Ip(ip),
            Err(_) => CandidateAddress::Name(token),
        }
    }

    /// The class of network the address belongs to.
    pub fn class(&self) -> AddressClass {
        match self {
            CandidateAddress::Ip(ip) => AddressClass::of(*ip),
            CandidateAddress::Name(name) if name.ends_with(".local") => AddressClass::Mdns,
            CandidateAddress::Name(_) => AddressClass::HostName,
        }
    }
}

impl fmt::Display for CandidateAddress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CandidateAddress::Ip(ip) => write!(f, "{ip}"),
            CandidateAddress::Name(name) => f.write_str(name),
        }
    }
}

/// What kind of network an address is on: whether the other side of a
/// call can reach it depends on this first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// RFC 1918 private (10/8, 172.16/12, 192.168/16).
    Private,
    /// Carrier-grade NAT space (100.64.0.0/10, RFC 6598).
    Cgnat,
    /// IPv6 unique local (fc00::/7).
    UniqueLocal,
    /// Link-local (169.254/16, fe80::/10).
    LinkLocal,
    /// Loopback (127/8, ::1).
    Loopback,
    /// Unspecified, multicast or otherwise not a host's address.
    Unusable,
    /// An mDNS `.local` name: only the same link can resolve it.
    Mdns,
    /// Another host name, to be resolved by DNS.
    HostName,
}

impl AddressClass {
    /// A stable, lower-case name for reports (`public`, `private`,
    /// `cgnat`, `unique-local`, `link-local`, `loopback`, `unusable`,
    /// `mdns`, `host-name`).
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Private => "private",
            AddressClass::Cgnat => "cgnat",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Loopback => "loopback",
            AddressClass::Unusable => "unusable",
            AddressClass::Mdns => "mdns",
            AddressClass::HostName => "host-name",
        }
    }

    /// The class of `ip`; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of_v4(v4),
                None => Self::of_v6(v6),
            },
        }
    }

    fn of_v4(ip: Ipv4Addr) -> AddressClass {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() {
            AddressClass::Loopback
        } else if ip.is_private() {
            AddressClass::Private
        } else if a == 100 && (64..128).contains(&b) {
            AddressClass::Cgnat
        } else if ip.is_link_local() {
            AddressClass::LinkLocal
        } else if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || a == 0 {
            AddressClass::Unusable
        } else {
            AddressClass::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> AddressClass {
        let first = ip.segments()[0];
        if ip.is_loopback() {
            AddressClass::Loopback
        } else if ip.is_unspecified() || ip.is_multicast() {
            AddressClass::Unusable
        } else if first & 0xfe00 == 0xfc00 {
            AddressClass::UniqueLocal
        } else if first & 0xffc0 == 0xfe80 {
            AddressClass::LinkLocal
        } else {
            AddressClass::Public
        }
    }

    /// Whether a peer elsewhere on the internet could send to it.
    pub fn is_reachable_from_internet(self) -> bool {
        matches!(self, AddressClass::Public | AddressClass::HostName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let class = |s: &str| CandidateAddress::parse(s).class();
        assert_eq!(class("10.0.1.5"), AddressClass::Private);
        assert_eq!(class("192.168.1.10"), AddressClass::Private);
        assert_eq!(class("172.31.0.1"), AddressClass::Private);
        assert_eq!(class("100.64.1.1"), AddressClass::Cgnat);
        assert_eq!(class("203.0.113.5"), AddressClass::Public);
        assert_eq!(class("169.254.3.4"), AddressClass::LinkLocal);
        assert_eq!(class("fd12::1"), AddressClass::UniqueLocal);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(class("2001:db8::1"), AddressClass::Public);
        assert_eq!(class("::ffff:10.1.2.3"), AddressClass::Private);
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("0.0.0.0"), AddressClass::Unusable);
        assert_eq!(
            class("1f2e3d4c-aaaa-bbbb-cccc-123456789abc.local"),
            AddressClass::Mdns
        );
        assert_eq!(class("turn.example.org"), AddressClass::HostName);
    }
}
