//! IPv4 and IPv6 fragment reassembly for captures. A SIP INVITE with a
//! Lync client's candidates is 3–6 KB: over UDP it leaves the sender in
//! fragments, and without reassembly the offer is lost.
//!
//! It behaves as Linux does (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c,
//! both through inet_fragment.c): an exact duplicate of a fragment already
//! held is ignored; any other overlap discards the whole datagram
//! (RFC 5722, which Linux applies to IPv4 as well since 4.19); a datagram
//! still incomplete 30 s (IPv4) or 60 s (IPv6) after its first fragment, by
//! the capture's clock, is discarded; fragments are refused, not older
//! datagrams evicted, once the memory caps are reached. The caps: a flow
//! (source and destination address) holds at most [`MAX_FLOW_BYTES`], all
//! flows together [`MAX_TOTAL_BYTES`] (Linux's `ipfrag_high_thresh`), and a
//! datagram at most [`MAX_PIECES`] fragments; every piece is charged
//! [`PIECE_OVERHEAD`] beyond its bytes, so a flood of tiny fragments is
//! bounded too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use crate::capture::Stamp;
use crate::network::Fragment;

/// Bytes held for incomplete datagrams of one source–destination pair:
/// four datagrams of the largest size.
pub(crate) const MAX_FLOW_BYTES: usize = 256 * 1024;
/// Bytes held for incomplete datagrams in all.
pub(crate) const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;
/// Fragments per datagram: 64 KiB in 576-byte fragments is 117, but tools
/// that test reassembly send hundreds of 16-byte ones (nDPI's
/// ip_fragmented_garbage.pcap: 313), and Linux takes them. Each fragment
/// is checked against those held, so this also bounds the work.
pub(crate) const MAX_PIECES: usize = 1024;
/// What a piece costs beyond its bytes, for the caps.
pub(crate) const PIECE_OVERHEAD: usize = 64;
/// Incomplete datagrams held at once.
pub(crate) const MAX_DATAGRAMS: usize = 4096;
/// An IP datagram's largest size (no jumbograms).
const MAX_DATAGRAM: usize = 65_535;
/// Reassembly timeouts, in microseconds of capture time.
const TIMEOUT_V4_US: u64 = 30_000_000;
const TIMEOUT_V6_US: u64 = 60_000_000;

/// What reassembly did in a capture, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FragmentCounts {
    /// Fragments read.
    pub fragments: usize,
    /// Datagrams put back together.
    pub reassembled: usize,
    /// Datagrams discarded because fragments overlapped (other than exact
    /// duplicates), disagreed on the datagram's length, or made it larger
    /// than an IP datagram can be.
    pub discarded_overlap: usize,
    /// Datagrams discarded when their reassembly time ran out.
    pub discarded_timeout: usize,
    /// Fragments refused because a memory or count cap was reached.
    pub refused_over_limit: usize,
    /// Datagrams still incomplete when the capture ended.
    pub incomplete_at_end: usize,
}

/// One datagram's identity: addresses, protocol (IPv4 only: IPv6 keys on
/// addresses and the 32-bit identification) and identification.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

/// A datagram whose fragments are coming in.
struct Datagram {
    /// Capture time of its first fragment, in microseconds.
    first_seen: u64,
    /// The packet number and time of its first fragment.
    packet: usize,
    stamp: Stamp,
    /// Fragments held: (offset, bytes), in order of offset and never
    /// overlapping (an overlap discards the datagram), so that a fragment
    /// is checked against its two neighbours only.
    pieces: Vec<(usize, Vec<u8>)>,
    /// Their bytes, in all.
    held: usize,
    /// The datagram's length, once its last fragment came.
    total: Option<usize>,
    /// The upper-layer protocol, from the fragment at offset 0 (IPv6 names
    /// it per fragment; only the first fragment's counts).
    protocol: Option<u8>,
    /// Bytes charged to the caps.
    charged: usize,
    /// Tells this datagram from a later one with the same key, for the
    /// expiry queue.
    generation: u64,
}

/// A datagram put back together.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Whole {
    /// Its transport protocol (IPv4) or the next header after the fragment
    /// header (IPv6: may be another extension header).
    pub protocol: u8,
    /// The bytes after the IP header (IPv4) or the fragment header (IPv6).
    pub bytes: Vec<u8>,
    /// The packet that carried its first fragment to arrive, and its time.
    pub packet: usize,
    pub stamp: Stamp,
}

/// The incomplete datagrams of one capture.
#[derive(Default)]
pub(crate) struct Fragments {
    pending: HashMap<Key, Datagram>,
    /// Deadlines in order of arrival (first fragments arrive in capture
    /// order, so deadlines of one family are in order; IPv4 and IPv6 are
    /// mixed, so a later IPv4 deadline may wait behind an IPv6 one — never
    /// longer than 30 s extra).
    expiry: VecDeque<(u64, Key, u64)>,
    per_flow: HashMap<(IpAddr, IpAddr), usize>,
    total: usize,
    generation: u64,
    /// What happened so far.
    pub counts: FragmentCounts,
}

impl Fragments {
    /// Takes one fragment of the datagram from `src` to `dst`; returns the
    /// datagram when this fragment completes it. `now_us` is the capture
    /// time of the packet.
    pub fn push(
        &mut self,
        (src, dst): (IpAddr, IpAddr),
        protocol: u8,
        fragment: Fragment,
        data: &[u8],
        now_us: u64,
        (packet, stamp): (usize, Stamp),
    ) -> Option<Whole> {
        self.counts.fragments += 1;
        self.expire(now_us);
        let v6 = src.is_ipv6();
        let key = Key {
            src,
            dst,
            protocol: if v6 { 0 } else { protocol },
            id: fragment.id,
        };
        let end = fragment.offset.saturating_add(data.len());
        // A fragment other than the last carries a multiple of 8 bytes; a
        // datagram fits in 64 KiB. Anything else discards the datagram.
        if end > MAX_DATAGRAM
            || (fragment.more && (data.is_empty() || !data.len().is_multiple_of(8)))
        {
            self.discard(&key);
            self.counts.discarded_overlap += 1;
            return None;
        }
        let cost = data.len() + PIECE_OVERHEAD;
        let flow = (src, dst);
        let held_by_flow = self.per_flow.get(&flow).copied().unwrap_or(0);
        if held_by_flow + cost > MAX_FLOW_BYTES
            || self.total + cost > MAX_TOTAL_BYTES
            || (!self.pending.contains_key(&key) && self.pending.len() >= MAX_DATAGRAMS)
        {
            self.counts.refused_over_limit += 1;
            return None;
        }
        if !self.pending.contains_key(&key) {
            self.generation += 1;
            let timeout = if v6 { TIMEOUT_V6_US } else { TIMEOUT_V4_US };
            self.expiry
                .push_back((now_us.saturating_add(timeout), key, self.generation));
            self.pending.insert(
                key,
                Datagram {
                    first_seen: now_us,
                    packet,
                    stamp,
                    pieces: Vec::new(),
                    held: 0,
                    total: None,
                    protocol: None,
                    charged: 0,
                    generation: self.generation,
                },
            );
        }
        let datagram = self.pending.get_mut(&key)?;
        let start = fragment.offset;
        // Exact duplicates are ignored; other overlaps are an attack or a
        // broken sender, and the datagram goes.
        let at = datagram
            .pieces
            .partition_point(|(offset, _)| *offset < start);
        let piece_end = |i: usize| datagram.pieces.get(i).map(|(o, b)| o + b.len());
        if datagram.pieces.get(at).is_some_and(|(o, _)| *o == start) && piece_end(at) == Some(end) {
            return None;
        }
        // An empty (last) fragment holds no bytes to overlap: it only says
        // where the datagram ends.
        let overlap = !data.is_empty()
            && (at
                .checked_sub(1)
                .and_then(piece_end)
                .is_some_and(|before_end| before_end > start)
                || datagram.pieces.get(at).is_some_and(|(o, _)| *o < end));
        let bad_total = match (datagram.total, fragment.more) {
            (Some(total), false) => total != end,
            (Some(total), true) => end > total,
            // The last piece ends furthest: none may pass the end.
            (None, false) => datagram
                .pieces
                .len()
                .checked_sub(1)
                .and_then(piece_end)
                .is_some_and(|last_end| last_end > end),
            (None, true) => false,
        };
        if overlap || bad_total || datagram.pieces.len() >= MAX_PIECES {
            let over_pieces = !overlap && !bad_total;
            self.discard(&key);
            if over_pieces {
                self.counts.refused_over_limit += 1;
            } else {
                self.counts.discarded_overlap += 1;
            }
            return None;
        }
        if !fragment.more {
            datagram.total = Some(end);
        }
        if start == 0 {
            datagram.protocol = Some(protocol);
        }
        if !data.is_empty() {
            datagram.pieces.insert(at, (start, data.to_vec()));
            datagram.held += data.len();
        }
        datagram.charged += cost;
        *self.per_flow.entry(flow).or_default() += cost;
        self.total += cost;
        // Whole when the pieces, which never overlap and none past the
        // total, add up to it.
        let total = datagram.total?;
        if datagram.held < total {
            return None;
        }
        let datagram = self.remove(&key)?;
        let mut bytes = Vec::with_capacity(total);
        for (_, piece) in datagram.pieces {
            bytes.extend_from_slice(&piece);
        }
        self.counts.reassembled += 1;
        Some(Whole {
            protocol: datagram.protocol.unwrap_or(protocol),
            bytes,
            packet: datagram.packet,
            stamp: datagram.stamp,
        })
    }

    /// The end of the capture: what is still incomplete is counted.
    pub fn finish(&mut self) -> FragmentCounts {
        self.counts.incomplete_at_end += self.pending.len();
        self.pending.clear();
        self.expiry.clear();
        self.per_flow.clear();
        self.total = 0;
        self.counts.clone()
    }

    /// Bytes held now (for the tests of the caps).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.total
    }

    /// Incomplete datagrams held now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now_us: u64) {
        while let Some(&(deadline, key, generation)) = self.expiry.front() {
            if deadline > now_us {
                break;
            }
            self.expiry.pop_front();
            let current = self
                .pending
                .get(&key)
                .is_some_and(|d| d.generation == generation && d.first_seen <= now_us);
            if current {
                self.remove(&key);
                self.counts.discarded_timeout += 1;
            }
        }
    }

    fn discard(&mut self, key: &Key) {
        self.remove(key);
    }

    fn remove(&mut self, key: &Key) -> Option<Datagram> {
        let datagram = self.pending.remove(key)?;
        let flow = (key.src, key.dst);
        if let Some(held) = self.per_flow.get_mut(&flow) {
            *held = held.saturating_sub(datagram.charged);
            if *held == 0 {
                self.per_flow.remove(&flow);
            }
        }
        self.total = self.total.saturating_sub(datagram.charged);
        Some(datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "192.0.2.1";
    const B: &str = "192.0.2.2";

    fn flow() -> (IpAddr, IpAddr) {
        (A.parse().unwrap(), B.parse().unwrap())
    }

    fn frag(id: u32, offset: usize, more: bool) -> Fragment {
        Fragment { id, offset, more }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn out_of_order_fragments_make_the_datagram() {
        let all = data(3000);
        let mut f = Fragments::default();
        let t = (7, Stamp::default());
        assert!(
            f.push(flow(), 17, frag(1, 1480, true), &all[1480..2960], 0, t)
                .is_none()
        );
        assert!(
            f.push(flow(), 17, frag(1, 2960, false), &all[2960..], 1, t)
                .is_none()
        );
        let whole = f.push(
            flow(),
            17,
            frag(1, 0, true),
            &all[..1480],
            2,
            (9, Stamp::default()),
        );
        let whole = whole.expect("complete");
        assert_eq!(whole.bytes, all);
        assert_eq!((whole.protocol, whole.packet), (17, 7));
        assert_eq!(f.held(), 0);
        assert_eq!(f.counts.reassembled, 1);
    }

    #[test]
    fn exact_duplicates_are_ignored_and_overlaps_discard_the_datagram() {
        let all = data(2000);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        assert!(
            f.push(flow(), 17, frag(2, 0, true), &all[..1000], 0, t)
                .is_none()
        );
        assert!(
            f.push(flow(), 17, frag(2, 0, true), &all[..1000], 0, t)
                .is_none()
        );
        let whole = f.push(flow(), 17, frag(2, 1000, false), &all[1000..], 0, t);
        assert_eq!(whole.map(|w| w.bytes), Some(all.clone()));

        // An overlapping fragment (a Teardrop-style rewrite of bytes
        // 992..1000) throws the datagram away, as Linux does.
        assert!(
            f.push(flow(), 17, frag(3, 0, true), &all[..1000], 0, t)
                .is_none()
        );
        assert!(
            f.push(flow(), 17, frag(3, 992, true), &all[992..1200], 0, t)
                .is_none()
        );
        assert_eq!(f.counts.discarded_overlap, 1);
        assert_eq!(f.held(), 0);
        // Its remaining fragments start a new datagram that never completes.
        assert!(
            f.push(flow(), 17, frag(3, 1000, false), &all[1000..], 0, t)
                .is_none()
        );
        assert_eq!(f.finish().incomplete_at_end, 1);
    }

    #[test]
    fn inconsistent_lengths_discard_the_datagram() {
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        let d = data(800);
        // Two different last fragments (with a gap, so that the first
        // does not complete the datagram).
        f.push(flow(), 17, frag(4, 0, true), &d[..400], 0, t);
        f.push(flow(), 17, frag(4, 600, false), &d[600..], 0, t);
        assert!(
            f.push(flow(), 17, frag(4, 800, false), &d[..8], 0, t)
                .is_none()
        );
        // A non-last fragment not a multiple of 8, and one past 64 KiB.
        assert!(
            f.push(flow(), 17, frag(5, 0, true), &d[..7], 0, t)
                .is_none()
        );
        assert!(
            f.push(flow(), 17, frag(6, 65_528, false), &d[..16], 0, t)
                .is_none()
        );
        assert_eq!(f.counts.discarded_overlap, 3);
    }

    #[test]
    fn datagrams_time_out_by_capture_time() {
        let d = data(16);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        f.push(flow(), 17, frag(7, 0, true), &d[..8], 0, t);
        // 31 s later (capture time) the first half is gone: the second
        // half alone does not complete it.
        assert!(
            f.push(flow(), 17, frag(7, 8, false), &d[8..], 31_000_000, t)
                .is_none()
        );
        assert_eq!(f.counts.discarded_timeout, 1);
        // IPv6 waits 60 s.
        let v6: (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        f.push(v6, 17, frag(8, 0, true), &d[..8], 40_000_000, t);
        let whole = f.push(v6, 17, frag(8, 8, false), &d[8..], 95_000_000, t);
        assert_eq!(whole.map(|w| w.bytes), Some(d));
    }

    #[test]
    fn a_flood_from_one_flow_is_capped_and_does_not_starve_another() {
        let chunk = data(1024);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        // One flow sends first fragments of ever new datagrams.
        for id in 0..10_000 {
            f.push(flow(), 17, frag(id, 0, true), &chunk, 0, t);
        }
        assert!(f.held() <= MAX_FLOW_BYTES, "{}", f.held());
        assert!(f.counts.refused_over_limit > 9000);
        // Another flow's datagram still goes through.
        let other: (IpAddr, IpAddr) = ("198.51.100.1".parse().unwrap(), B.parse().unwrap());
        f.push(other, 17, frag(1, 0, true), &chunk, 0, t);
        assert!(
            f.push(other, 17, frag(1, 1024, false), &chunk, 0, t)
                .is_some()
        );
    }

    #[test]
    fn many_flows_together_stay_under_the_total_cap() {
        let chunk = data(8 * 1000);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        for host in 0..4000u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + host));
            f.push(
                (src, B.parse().unwrap()),
                17,
                frag(1, 0, true),
                &chunk,
                0,
                t,
            );
        }
        assert!(f.held() <= MAX_TOTAL_BYTES, "{}", f.held());
        assert!(f.counts.refused_over_limit > 0);
        // Time frees it all.
        f.push(flow(), 17, frag(9, 0, true), &chunk[..8], 60_000_001, t);
        assert_eq!(f.held(), 8 + PIECE_OVERHEAD);
    }

    #[test]
    fn the_count_of_incomplete_datagrams_is_capped() {
        // Tiny first fragments from many sources: under the byte caps, so
        // the count cap is the one that holds.
        let d = data(8);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        for host in 0..(MAX_DATAGRAMS as u32 + 500) {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + host));
            f.push((src, B.parse().unwrap()), 17, frag(1, 0, true), &d, 0, t);
        }
        assert_eq!(f.pending(), MAX_DATAGRAMS);
        assert_eq!(f.counts.refused_over_limit, 500);
    }

    #[test]
    fn tiny_fragments_are_capped_per_datagram() {
        let d = data(8);
        let mut f = Fragments::default();
        let t = (1, Stamp::default());
        for i in 0..MAX_PIECES + 10 {
            f.push(flow(), 17, frag(11, i * 8, true), &d, 0, t);
        }
        assert!(f.held() <= MAX_PIECES * (8 + PIECE_OVERHEAD));
        assert!(f.counts.refused_over_limit >= 1);
    }
}
