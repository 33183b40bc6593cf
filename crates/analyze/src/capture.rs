//! Packet captures (pcap and pcapng, through the `pcap-parser` crate): SIP
//! over UDP and TCP, and STUN/TURN on any port, recognised by the magic
//! cookie — so that connectivity checks, their answers and TURN errors are
//! part of the story.
//!
//! Each packet is read on its own: a SIP message split over several TCP
//! segments is seen only if its first segment holds the start line and the
//! SDP (stream reassembly is not done yet).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use edgeice_stun::{Attribute, AttributeType, Class, Message};
use pcap_parser::{Linktype, PcapBlockOwned, PcapError, data::PacketData, pcapng::Block};
use serde::Serialize;

use crate::input::{InputError, Item};
use crate::sip::{SipMessage, is_start_line};

/// A STUN or TURN message seen in a capture.
#[derive(Clone, Debug, Serialize)]
pub struct StunPacket {
    /// The file.
    pub file: String,
    /// The packet's number in the capture (1-based).
    pub packet: usize,
    /// When it was captured (`MM/DD/YYYY|HH:MM:SS.mmm`, UTC).
    pub timestamp: String,
    /// Source and destination.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// `Allocate request`, `Binding success`...
    pub what: String,
    /// The transaction ID, to pair requests with answers.
    pub transaction: String,
    /// The error code of an error response.
    pub error: Option<u16>,
    /// Whether it carried MESSAGE-INTEGRITY (credentials).
    pub authenticated: bool,
    /// The USERNAME, if any.
    pub username: Option<String>,
}

/// Whether `head` starts a pcap or pcapng file.
pub fn is_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

/// A civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn stamp(seconds: u64, millis: u32) -> String {
    let (year, month, day) = civil((seconds / 86_400) as i64);
    let s = seconds % 86_400;
    format!(
        "{month:02}/{day:02}/{year:04}|{:02}:{:02}:{:02}.{millis:03}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Reads the SIP messages and STUN packets of a capture.
pub fn read(file: &str, reader: impl Read + Send) -> Result<Vec<Item>, InputError> {
    let mut capture = pcap_parser::create_reader(1 << 20, reader)
        .map_err(|_| InputError::Unrecognised(file.to_owned()))?;
    let mut linktypes: Vec<Linktype> = Vec::new();
    let mut legacy_linktype = Linktype::ETHERNET;
    let mut items = Vec::new();
    let mut packet = 0;
    loop {
        match capture.next() {
            Ok((offset, block)) => {
                let data = match &block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        legacy_linktype = header.network;
                        None
                    }
                    PcapBlockOwned::Legacy(b) => Some((
                        legacy_linktype,
                        b.data,
                        b.caplen,
                        u64::from(b.ts_sec),
                        b.ts_usec / 1000,
                    )),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        linktypes.push(idb.linktype);
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let linktype = linktypes
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or(Linktype::ETHERNET);
                        // Microseconds by default (if_tsresol not read).
                        let micros = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        Some((
                            linktype,
                            epb.data,
                            epb.caplen,
                            micros / 1_000_000,
                            ((micros % 1_000_000) / 1000) as u32,
                        ))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let linktype = linktypes.first().copied().unwrap_or(Linktype::ETHERNET);
                        Some((linktype, spb.data, spb.data.len() as u32, 0, 0))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((linktype, data, caplen, secs, millis)) = data {
                    packet += 1;
                    let caplen = (caplen as usize).min(data.len());
                    if let Some(l3) = pcap_parser::data::get_packetdata(data, linktype, caplen) {
                        read_packet(file, packet, &stamp(secs, millis), l3, &mut items);
                    }
                }
                capture.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if capture.refill().is_err() {
                    break;
                }
            }
            // A damaged capture: keep what was read.
            Err(_) => break,
        }
    }
    Ok(items)
}

/// Network layer → transport payload.
fn read_packet(
    file: &str,
    packet: usize,
    stamp: &str,
    data: PacketData<'_>,
    items: &mut Vec<Item>,
) {
    let (ethertype, l3) = match data {
        PacketData::L2(frame) => {
            let Some(&[t0, t1]) = frame.get(12..14) else {
                return;
            };
            let mut ethertype = u16::from_be_bytes([t0, t1]);
            let mut at = 14;
            if ethertype == 0x8100 {
                let Some(&[t0, t1]) = frame.get(16..18) else {
                    return;
                };
                ethertype = u16::from_be_bytes([t0, t1]);
                at = 18;
            }
            (ethertype, frame.get(at..).unwrap_or(&[]))
        }
        PacketData::L3(ethertype, l3) => (ethertype, l3),
        _ => return,
    };
    let (src, dst, protocol, l4) = match ethertype {
        0x0800 => {
            let Some(&first) = l3.first() else { return };
            let header = usize::from(first & 0x0f) * 4;
            let (Some(s), Some(d), Some(&proto)) = (l3.get(12..16), l3.get(16..20), l3.get(9))
            else {
                return;
            };
            let src = IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]));
            let dst = IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3]));
            (src, dst, proto, l3.get(header..).unwrap_or(&[]))
        }
        0x86dd => {
            let (Some(s), Some(d), Some(&proto)) = (l3.get(8..24), l3.get(24..40), l3.get(6))
            else {
                return;
            };
            let mut src = [0u8; 16];
            src.copy_from_slice(s);
            let mut dst = [0u8; 16];
            dst.copy_from_slice(d);
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                proto,
                l3.get(40..).unwrap_or(&[]),
            )
        }
        _ => return,
    };
    let (ports, payload) = match protocol {
        17 => (l4.get(0..4), l4.get(8..)),
        6 => {
            let offset = l4.get(12).map_or(20, |b| usize::from(b >> 4) * 4);
            (l4.get(0..4), l4.get(offset..))
        }
        _ => return,
    };
    let (Some(ports), Some(payload)) = (ports, payload) else {
        return;
    };
    let from = SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]]));
    let to = SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]]));
    if payload.is_empty() {
        return;
    }
    // TURN over TCP frames STUN too: the first frame of the segment.
    let stun = match edgeice_stun::frame_len(payload) {
        Ok(Some(len)) if payload[0] >> 6 == 0 => payload.get(..len),
        _ => None,
    };
    if let Some(message) = stun.and_then(|s| Message::parse(s).ok()) {
        items.push(Item::Stun(stun_packet(
            file, packet, stamp, from, to, &message,
        )));
        return;
    }
    let text = String::from_utf8_lossy(payload);
    let lines: Vec<&str> = text.split('\n').collect();
    if lines
        .first()
        .is_some_and(|l| is_start_line(l.trim_end_matches('\r')))
    {
        let lines: Vec<&str> = lines.iter().map(|l| l.trim_end_matches('\r')).collect();
        if let Some(message) = SipMessage::parse(&lines, file, packet, Some(stamp.to_owned())) {
            items.push(Item::Sip(message));
        }
    }
}

fn stun_packet(
    file: &str,
    packet: usize,
    stamp: &str,
    from: SocketAddr,
    to: SocketAddr,
    message: &Message<'_>,
) -> StunPacket {
    let class = match message.class() {
        Class::Request => "request",
        Class::Indication => "indication",
        Class::Success => "success",
        Class::Error => "error",
    };
    let error = match message.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    };
    let username = match message.get(AttributeType::USERNAME) {
        Some(Ok(Attribute::Username(u))) => Some(u.to_owned()),
        _ => None,
    };
    StunPacket {
        file: file.to_owned(),
        packet,
        timestamp: stamp.to_owned(),
        from,
        to,
        what: format!("{} {class}", message.method()),
        transaction: message.transaction_id().to_string(),
        error,
        authenticated: message.has_integrity() || message.has_integrity_sha256(),
        username,
    }
}
