//! Link layers of a capture: from a frame to its network-layer packet.
//!
//! What people capture on: Ethernet (with 802.1Q/802.1ad VLAN tags, stacked
//! too), Linux "any" captures (cooked SLL and SLL2), raw IP (DLT 12, 14 and
//! 101, and 228/229), BSD loopback/null (a 4-byte family in the capturing
//! machine's byte order) and OpenBSD loop (the family in network order).
//! Decoded here rather than by `pcap-parser`, whose null decoder assumes a
//! little-endian capturing machine and which knows neither DLT 12/14 nor
//! VLAN tags.

/// EtherType of IPv4.
pub(crate) const IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub(crate) const IPV6: u16 = 0x86dd;

/// VLAN tags followed at most (QinQ is two; more is not a real frame).
const MAX_VLAN_TAGS: usize = 4;

/// The network-layer packet of a frame: its EtherType (IPv4 or IPv6) and
/// bytes; `None` for every other link type or payload.
pub(crate) fn network_packet(linktype: i32, frame: &[u8]) -> Option<(u16, &[u8])> {
    match linktype {
        // DLT_NULL: the family in the capturing host's byte order.
        0 => {
            let family = frame.get(..4)?;
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let be = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            family_ethertype(if le < 256 { le } else { be }).map(|t| (t, &frame[4..]))
        }
        1 => ethernet(frame),
        // Raw IP: the version nibble says which.
        12 | 14 | 101 => raw(frame),
        // DLT_LOOP (OpenBSD): the family in network byte order.
        108 => {
            let family = frame.get(..4)?;
            family_ethertype(u32::from_be_bytes([
                family[0], family[1], family[2], family[3],
            ]))
            .map(|t| (t, &frame[4..]))
        }
        // Linux cooked v1: protocol at 14..16, 16-byte header.
        113 => {
            let protocol = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            after_vlan(protocol, frame.get(16..)?)
        }
        228 => Some((IPV4, frame)),
        229 => Some((IPV6, frame)),
        // Linux cooked v2: protocol first, 20-byte header.
        276 => {
            let protocol = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            after_vlan(protocol, frame.get(20..)?)
        }
        _ => None,
    }
}

/// BSD address families: AF_INET 2, AF_INET6 24 (NetBSD/OpenBSD), 28
/// (FreeBSD), 30 (macOS).
fn family_ethertype(family: u32) -> Option<u16> {
    match family {
        2 => Some(IPV4),
        24 | 28 | 30 => Some(IPV6),
        _ => None,
    }
}

fn raw(packet: &[u8]) -> Option<(u16, &[u8])> {
    match packet.first()? >> 4 {
        4 => Some((IPV4, packet)),
        6 => Some((IPV6, packet)),
        _ => None,
    }
}

fn ethernet(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    after_vlan(ethertype, frame.get(14..)?)
}

/// Skips 802.1Q (0x8100), 802.1ad (0x88a8) and the old QinQ (0x9100) tags.
fn after_vlan(mut ethertype: u16, mut rest: &[u8]) -> Option<(u16, &[u8])> {
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        ethertype = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
        rest = rest.get(4..)?;
    }
    matches!(ethertype, IPV4 | IPV6).then_some((ethertype, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: [u8; 2] = [0x45, 0x00];

    #[test]
    fn every_link_type_reaches_the_ip_header() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x88, 0xa8, 0, 9, 0x08, 0x00]);
        // (0x88a8 inside 0x8100: tags in either order are skipped.)
        eth.extend_from_slice(&V4);
        assert_eq!(network_packet(1, &eth), Some((IPV4, &V4[..])));

        let null_le = [[2, 0, 0, 0].as_slice(), &V4].concat();
        let null_be = [[0, 0, 0, 2].as_slice(), &V4].concat();
        let null_v6 = [[0, 0, 0, 30].as_slice(), &[0x60]].concat();
        assert_eq!(network_packet(0, &null_le), Some((IPV4, &V4[..])));
        assert_eq!(network_packet(0, &null_be), Some((IPV4, &V4[..])));
        assert_eq!(network_packet(0, &null_v6), Some((IPV6, &[0x60][..])));
        assert_eq!(network_packet(108, &null_be), Some((IPV4, &V4[..])));

        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(network_packet(113, &sll), Some((IPV6, &[0x60][..])));
        let mut sll2 = vec![0x08, 0x00];
        sll2.resize(20, 0);
        sll2.extend_from_slice(&V4);
        assert_eq!(network_packet(276, &sll2), Some((IPV4, &V4[..])));

        for raw in [12, 14, 101, 228] {
            assert_eq!(network_packet(raw, &V4), Some((IPV4, &V4[..])), "{raw}");
        }
    }

    #[test]
    fn short_or_foreign_frames_are_none() {
        assert_eq!(network_packet(1, &[0; 13]), None);
        assert_eq!(network_packet(0, &[2, 0]), None);
        assert_eq!(network_packet(113, &[0; 15]), None);
        assert_eq!(network_packet(101, &[]), None);
        // ARP.
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(network_packet(1, &arp), None);
        // Endless VLAN tags stop at the cap.
        let mut tags = vec![0u8; 12];
        for _ in 0..10 {
            tags.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        tags.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(network_packet(1, &tags), None);
    }
}
