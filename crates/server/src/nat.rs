//! Knowing when the edge sits behind NAT — the failure this project was
//! born from. An edge whose relay address is private hands that address to
//! clients as their relay candidate; nobody outside can reach it, and calls
//! connect their signalling, then die after the connectivity checks.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Ranges no client on the internet can reach: RFC 1918, CGNAT (RFC 6598),
/// link-local, loopback, unspecified, IPv6 unique-local and link-local.
/// The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
/// 2001:db8::/32) stand for public addresses in labs and examples, so they
/// count as public here.
const NOT_ROUTABLE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "::/128",
];

/// Whether clients on the internet could reach `ip`.
pub fn is_publicly_routable(ip: IpAddr) -> bool {
    let ip = crate::peer_policy::canonical(ip);
    !NOT_ROUTABLE
        .iter()
        .filter_map(|net| net.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// A relay IP that will be advertised as is, although only its own network
/// can reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateRelay {
    /// The relay IP.
    pub ip: IpAddr,
}

/// The relay IPs that are private and that no `--external-ip` maps.
pub fn private_relays(
    relay_ips: &[IpAddr],
    external_ips: &HashMap<IpAddr, IpAddr>,
) -> Vec<PrivateRelay> {
    relay_ips
        .iter()
        .filter(|ip| !is_publicly_routable(**ip) && !external_ips.contains_key(ip))
        .map(|&ip| PrivateRelay { ip })
        .collect()
}

impl fmt::Display for PrivateRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.ip;
        write!(
            f,
            "relay address {ip} is private and no --external-ip maps it. Clients outside this \
             network will be given relay candidates at {ip}, which they cannot reach: their calls \
             will connect, then drop after the ICE connectivity checks fail (about 10 seconds). \
             If this server is behind a 1:1 NAT, run it with --external-ip PUBLIC_IP/{ip}. If it \
             serves only its own private network, silence this with --private-relay-ok."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_not_routable() {
        for ip in [
            "10.0.1.5",
            "172.16.20.1",
            "192.168.10.2",
            "100.64.0.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_publicly_routable(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "203.0.113.5",
            "198.51.100.7",
            "8.8.8.8",
            "2001:db8::1",
            "172.32.0.1",
        ] {
            assert!(is_publicly_routable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_mapped_private_relay_is_fine() {
        let private: IpAddr = "10.0.1.5".parse().unwrap();
        let mut external = HashMap::new();
        assert_eq!(
            private_relays(&[private], &external),
            vec![PrivateRelay { ip: private }]
        );
        external.insert(private, "203.0.113.5".parse().unwrap());
        assert!(private_relays(&[private], &external).is_empty());
        let warning = PrivateRelay { ip: private }.to_string();
        assert!(warning.contains("--external-ip PUBLIC_IP/10.0.1.5"));
    }
}
