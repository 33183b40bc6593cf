//! IPv4 and IPv6 headers of captured packets: addresses, the transport
//! protocol and its bytes — trimmed to the length the header gives, so
//! that Ethernet padding is not read as payload — with IPv6 extension
//! headers walked (hop-by-hop, routing, destination options, fragment,
//! authentication) and fragments described for the `fragments` module to
//! put back together.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::link::{IPV4, IPV6};

/// IPv6 extension headers walked at most before giving up on a packet: a
/// real packet has two or three; a chain of hundreds is an attack on
/// readers.
pub(crate) const MAX_EXTENSION_HEADERS: usize = 8;

/// A network-layer packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol (6 TCP, 17 UDP), or for a fragment the
    /// protocol the fragment header names (known for certain only in the
    /// first fragment).
    pub protocol: u8,
    /// The transport bytes, or this fragment's share of them.
    pub payload: &'a [u8],
    /// Set when the packet is one fragment of a larger datagram.
    pub fragment: Option<Fragment>,
}

/// Where a fragment goes in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fragment {
    /// The datagram's identification (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
    /// Offset of this fragment's first byte, in bytes.
    pub offset: usize,
    /// More fragments follow (the MF flag).
    pub more: bool,
}

/// Why a packet was not read (counted, never an error: a capture holds
/// all sorts of traffic).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Shorter than its headers say.
    Truncated,
    /// More IPv6 extension headers than [`MAX_EXTENSION_HEADERS`], or ESP
    /// (encrypted: nothing to read).
    Unreadable,
    /// Not IP.
    NotIp,
}

/// Parses the packet `l3` whose link layer said `ethertype`.
pub(crate) fn parse(ethertype: u16, l3: &[u8]) -> Result<Packet<'_>, Skip> {
    match ethertype {
        IPV4 => ipv4(l3),
        IPV6 => ipv6(l3),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4(l3: &[u8]) -> Result<Packet<'_>, Skip> {
    let header = usize::from(l3.first().ok_or(Skip::Truncated)? & 0x0f) * 4;
    if header < 20 || l3.len() < header {
        return Err(Skip::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
    // A total length of 0 is what TCP segmentation offload leaves in
    // captures taken on the sending host: trust the captured length then.
    let end = if total == 0 { l3.len() } else { total };
    if end < header {
        return Err(Skip::Truncated);
    }
    let payload = l3.get(header..end.min(l3.len())).ok_or(Skip::Truncated)?;
    let flags = u16::from_be_bytes([l3[6], l3[7]]);
    let offset = usize::from(flags & 0x1fff) * 8;
    let more = flags & 0x2000 != 0;
    let fragment = (more || offset > 0).then_some(Fragment {
        id: u32::from(u16::from_be_bytes([l3[4], l3[5]])),
        offset,
        more,
    });
    Ok(Packet {
        src: IpAddr::V4(Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15])),
        dst: IpAddr::V4(Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19])),
        protocol: l3[9],
        payload,
        fragment,
    })
}

fn ipv6(l3: &[u8]) -> Result<Packet<'_>, Skip> {
    if l3.len() < 40 {
        return Err(Skip::Truncated);
    }
    let length = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
    // 0 is a jumbogram or offload: take what was captured.
    let end = if length == 0 {
        l3.len()
    } else {
        (40 + length).min(l3.len())
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(&l3[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&l3[24..40]);
    let (protocol, payload, fragment) = extension_headers(l3[6], &l3[40..end])?;
    Ok(Packet {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol,
        payload,
        fragment,
    })
}

/// Walks IPv6 extension headers from `next`, to the upper-layer protocol
/// and its bytes, stopping at a fragment header (what follows it is only
/// readable once the datagram is whole). Also used on a reassembled
/// datagram, whose fragmentable part may start with destination options.
pub(crate) fn extension_headers(
    mut next: u8,
    mut rest: &[u8],
) -> Result<(u8, &[u8], Option<Fragment>), Skip> {
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte
            // units, not counting the first 8.
            0 | 43 | 60 => {
                let len = (usize::from(*rest.get(1).ok_or(Skip::Truncated)?) + 1) * 8;
                next = rest[0];
                rest = rest.get(len..).ok_or(Skip::Truncated)?;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let len = (usize::from(*rest.get(1).ok_or(Skip::Truncated)?) + 2) * 4;
                next = rest[0];
                rest = rest.get(len..).ok_or(Skip::Truncated)?;
            }
            44 => {
                let header = rest.get(..8).ok_or(Skip::Truncated)?;
                let field = u16::from_be_bytes([header[2], header[3]]);
                let fragment = Fragment {
                    id: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
                    offset: usize::from(field >> 3) * 8,
                    more: field & 1 != 0,
                };
                // An atomic fragment (offset 0, no more: RFC 6946) is a
                // whole datagram.
                if fragment.offset == 0 && !fragment.more {
                    next = header[0];
                    rest = &rest[8..];
                    continue;
                }
                return Ok((header[0], &rest[8..], Some(fragment)));
            }
            // ESP: encrypted from here on.
            50 => return Err(Skip::Unreadable),
            protocol => return Ok((protocol, rest, None)),
        }
    }
    Err(Skip::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(1);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(2);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn ipv6_extension_headers_are_walked_to_udp() {
        // Hop-by-hop (8 bytes) → destination options (16 bytes) → UDP.
        let mut body = vec![60, 0, 1, 4, 0, 0, 0, 0];
        body.extend_from_slice(&[17, 1, 1, 12]);
        body.extend_from_slice(&[0; 12]);
        body.extend_from_slice(b"udp!");
        let packet = v6(0, &body);
        let p = ipv6(&packet).unwrap();
        assert_eq!(
            (p.protocol, p.payload, p.fragment),
            (17, &b"udp!"[..], None)
        );
    }

    #[test]
    fn an_ipv6_fragment_header_is_described() {
        // Offset 1448 (181 units), more fragments, id 0xdeadbeef.
        let field: u16 = (181 << 3) | 1;
        let mut body = vec![17, 0];
        body.extend_from_slice(&field.to_be_bytes());
        body.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        body.extend_from_slice(b"tail");
        let packet = v6(44, &body);
        let p = ipv6(&packet).unwrap();
        assert_eq!(p.protocol, 17);
        assert_eq!(p.payload, b"tail");
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 0xdead_beef,
                offset: 1448,
                more: true
            })
        );
    }

    #[test]
    fn endless_or_short_extension_chains_are_skipped() {
        let mut body = Vec::new();
        for _ in 0..20 {
            body.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(ipv6(&v6(60, &body)), Err(Skip::Unreadable));
        assert_eq!(ipv6(&v6(60, &[17, 9])), Err(Skip::Truncated));
        assert_eq!(ipv6(&v6(50, &[0; 16])), Err(Skip::Unreadable));
        assert_eq!(ipv6(&[0x60; 39]), Err(Skip::Truncated));
    }

    #[test]
    fn ipv4_is_trimmed_to_its_total_length_and_fragments_described() {
        let mut p = vec![0x45, 0, 0, 24, 0x12, 0x34, 0x20, 0x03, 64, 17, 0, 0];
        p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(b"data");
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        let packet = ipv4(&p).unwrap();
        assert_eq!(packet.payload, b"data");
        assert_eq!(
            packet.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 24,
                more: true
            })
        );
        assert_eq!(ipv4(&[0x4f; 30]), Err(Skip::Truncated));
        assert_eq!(ipv4(&[0x41; 30]), Err(Skip::Truncated));
    }
}
