//! Packet captures (pcap and pcapng, through the `pcap-parser` crate): SIP
//! over UDP and TCP, and STUN/TURN on any port, recognised by the magic
//! cookie — so that connectivity checks, their answers and TURN errors are
//! part of the story.
//!
//! Frames go through the `link` module (Ethernet with VLAN tags, Linux
//! cooked SLL/SLL2, raw IP, loopback/null) and the `network` module (IPv4,
//! IPv6 and its extension headers); IP fragments are put back together by
//! the `fragments` module (bounded, as Linux does it). UDP datagrams are
//! then read one by one; TCP segments go through the `reassembly` module,
//! which puts SIP messages split over several segments back together and
//! cuts STUN out of TURN-TCP (RFC 6062) and ICE-TCP (RFC 4571) framing.
//! STUN is recognised by the magic cookie, and RFC 3489's classic STUN,
//! which has none, by its exact shape (`classic_stun`).
//!
//! A damaged or truncated file is read up to the damage; what was read,
//! and where and why it stopped, is handed on ([`CaptureRead`]).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use edgeice_stun::{Attribute, AttributeType, Class, Message};
use pcap_parser::{Linktype, PcapBlockOwned, PcapError, pcapng::Block};
use serde::Serialize;

pub use crate::fragments::FragmentCounts;
use crate::fragments::Fragments;
use crate::input::{Emit, InputError, Item};
use crate::reassembly::Streams;
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
    /// `udp` or `tcp` (an RFC 4571 frame, TURN over TCP or TLS).
    pub transport: &'static str,
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
    /// `standard` (RFC STUN/TURN/ICE), `ms-turn` (Lync and Skype for
    /// Business relays: MAGIC-COOKIE attribute) or `ms-ice2` (their
    /// connectivity checks: IMPLEMENTATION-VERSION, CANDIDATE-IDENTIFIER or
    /// unpadded attributes), `rfc3489` (classic STUN, without the magic
    /// cookie).
    pub dialect: &'static str,
    /// The address a Binding response reports (XOR-MAPPED-ADDRESS, or
    /// classic STUN's MAPPED-ADDRESS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped_address: Option<SocketAddr>,
    /// A classic STUN CHANGE-REQUEST asking for another address or port
    /// (a NAT-type test).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub change_request: bool,
    /// The peers a TURN request names (XOR-PEER-ADDRESS: CreatePermission,
    /// ChannelBind, Send), at most [`MAX_PEERS`], so that an error answer
    /// can say which peer it refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<SocketAddr>,
}

/// XOR-PEER-ADDRESS values kept per packet: a CreatePermission may list
/// many, and a few name the refusal well enough.
pub const MAX_PEERS: usize = 8;

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

/// A packet's capture time, written out (`MM/DD/YYYY|HH:MM:SS.mmm`) only
/// for the messages kept: most packets of a capture are media, and
/// formatting every one's time cost a tenth of the reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Seconds since the epoch.
    pub seconds: u64,
    /// Milliseconds within the second.
    pub millis: u32,
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (year, month, day) = civil((self.seconds / 86_400) as i64);
        let s = self.seconds % 86_400;
        write!(
            f,
            "{month:02}/{day:02}/{year:04}|{:02}:{:02}:{:02}.{:03}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.millis
        )
    }
}

/// A capture's timestamp clock: pcap counts micro- or nanoseconds, and a
/// pcapng interface says its own resolution (`if_tsresol`) and offset.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Timestamp units per second (never 0).
    units_per_second: u64,
    /// Seconds to add (`if_tsoffset`).
    offset_seconds: i64,
}

impl Clock {
    const MICROSECONDS: Clock = Clock {
        units_per_second: 1_000_000,
        offset_seconds: 0,
    };
    const NANOSECONDS: Clock = Clock {
        units_per_second: 1_000_000_000,
        offset_seconds: 0,
    };

    /// Units per second for a pcapng `if_tsresol`: `10^n`, or `2^n` when
    /// the top bit is set. pcap-parser 0.17's `ts_resolution` rejects every
    /// binary resolution (it range-checks the byte before masking the
    /// flag), hence this.
    fn resolution(tsresol: u8) -> Option<u64> {
        let exponent = u32::from(tsresol & 0x7F);
        if tsresol & 0x80 == 0 {
            10u64.checked_pow(exponent)
        } else {
            1u64.checked_shl(exponent)
        }
    }

    /// Seconds since the epoch and microseconds, from a count of units.
    /// Wrapping, not panicking: the numbers come from the file.
    fn split(self, units: u64) -> (u64, u32) {
        let per_second = self.units_per_second.max(1);
        let secs = (units / per_second).wrapping_add_signed(self.offset_seconds);
        let micros = u128::from(units % per_second) * 1_000_000 / u128::from(per_second);
        (secs, micros as u32)
    }
}

/// What was read from a capture, and where it stopped if it could not be
/// read to its end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureRead {
    /// Packets (frames) read.
    pub packets: usize,
    /// Bytes of the file read (up to where it stopped, if it did).
    pub bytes: u64,
    /// Packets whose link layer or network layer is not read (not IP, or
    /// a link type not decoded; ESP; cut short by the snapshot length
    /// before their transport header).
    pub packets_not_ip: usize,
    /// The link types seen, by their tcpdump names.
    pub link_types: Vec<&'static str>,
    /// IP fragment reassembly.
    #[serde(skip_serializing_if = "FragmentCounts::is_empty")]
    pub fragments: FragmentCounts,
    /// Set when the file could not be read to its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// Where and why a damaged or truncated capture stopped being read.
#[derive(Clone, Debug, Serialize)]
pub struct Stopped {
    /// The byte offset in the file where the unreadable block starts.
    pub byte_offset: u64,
    /// The last packet read whole (0: none).
    pub after_packet: usize,
    /// What was wrong there.
    pub reason: String,
}

impl FragmentCounts {
    fn is_empty(&self) -> bool {
        self.fragments == 0
    }
}

/// The finding about a capture that could not be read to its end: where
/// it stopped, why, and what was read before (a warning: what was read is
/// analyzed, but the report cannot say the rest was fine).
pub(crate) fn damaged(
    file: &str,
    capture: &CaptureRead,
    stopped: &Stopped,
    read: &crate::stream::ReadCounts,
) -> crate::diagnose::Finding {
    crate::diagnose::Finding {
        code: "capture-damaged",
        severity: crate::diagnose::Severity::Warning,
        message: format!(
            "{file} could not be read past byte {} (after packet {}): {}; the {} packets before it were read ({} SIP messages, {} STUN packets), what follows was not",
            stopped.byte_offset,
            stopped.after_packet,
            stopped.reason,
            capture.packets,
            read.sip_messages,
            read.stun_packets
        ),
        fix: "Copy the capture again from the machine that took it (stop tcpdump with Ctrl-C or SIGTERM so that it writes its last block), or cut the damage off with `editcap -r` and read the rest; the verdict covers only the packets read.".into(),
        call_id: None,
        evidence: vec![crate::sip::Evidence {
            file: file.to_owned(),
            line: stopped.after_packet,
            text: format!("byte {}: {}", stopped.byte_offset, stopped.reason),
        }],
    }
}

/// The tcpdump name of a link type read, or `None` for one not decoded.
fn link_type_name(linktype: i32) -> Option<&'static str> {
    Some(match linktype {
        0 => "NULL",
        1 => "ETHERNET",
        12 | 14 | 101 => "RAW",
        108 => "LOOP",
        113 => "LINUX_SLL",
        228 => "IPV4",
        229 => "IPV6",
        276 => "LINUX_SLL2",
        _ => return None,
    })
}

/// The largest block read: pcapng blocks and pcap records bigger than this
/// are damage (a real frame is at most 256 KiB, tcpdump's snapshot
/// length).
const MAX_BLOCK: usize = 1 << 20;

/// Reads the SIP messages and STUN packets of a capture, handing each to
/// `emit` as soon as it is whole, then an [`Item::CaptureRead`] saying what
/// was read and, for a damaged or truncated file, where it stopped.
pub fn read(file: &str, reader: impl Read + Send, emit: &mut Emit<'_>) -> Result<(), InputError> {
    let mut capture = pcap_parser::create_reader(MAX_BLOCK, reader)
        .map_err(|_| InputError::Unrecognised(file.to_owned()))?;
    // Per pcapng interface: its link type and timestamp clock.
    let mut interfaces: Vec<(Linktype, Clock)> = Vec::new();
    let mut legacy = (Linktype::ETHERNET, Clock::MICROSECONDS);
    let mut state = State::default();
    let mut read = CaptureRead::default();
    loop {
        match capture.next() {
            Ok((offset, block)) => {
                let data = match &block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        let clock = if header.is_nanosecond_precision() {
                            Clock::NANOSECONDS
                        } else {
                            Clock::MICROSECONDS
                        };
                        legacy = (header.network, clock);
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let time = legacy.1.split(
                            u64::from(b.ts_sec) * legacy.1.units_per_second + u64::from(b.ts_usec),
                        );
                        Some((legacy.0, b.data, b.caplen, time))
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let clock = Clock {
                            // An invalid if_tsresol: assume the default.
                            units_per_second: Clock::resolution(idb.if_tsresol)
                                .unwrap_or(1_000_000),
                            offset_seconds: idb.ts_offset(),
                        };
                        interfaces.push((idb.linktype, clock));
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (linktype, clock) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((Linktype::ETHERNET, Clock::MICROSECONDS));
                        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        Some((linktype, epb.data, epb.caplen, clock.split(units)))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let linktype = interfaces.first().map_or(Linktype::ETHERNET, |i| i.0);
                        Some((linktype, spb.data, spb.data.len() as u32, (0, 0)))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((linktype, data, caplen, (secs, micros))) = data {
                    read.packets += 1;
                    let caplen = (caplen as usize).min(data.len());
                    let name = link_type_name(linktype.0);
                    if let Some(name) = name
                        && !read.link_types.contains(&name)
                    {
                        read.link_types.push(name);
                    }
                    let frame = &data[..caplen];
                    let at = At {
                        packet: read.packets,
                        stamp: Stamp {
                            seconds: secs,
                            millis: micros / 1000,
                        },
                        micros: secs.wrapping_mul(1_000_000).wrapping_add(u64::from(micros)),
                    };
                    match crate::link::network_packet(linktype.0, frame) {
                        Some((ethertype, l3)) => {
                            if !read_packet(file, &at, ethertype, l3, &mut state, emit)? {
                                read.packets_not_ip += 1;
                            }
                        }
                        None => read.packets_not_ip += 1,
                    }
                }
                read.bytes += offset as u64;
                capture.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if capture.refill().is_err() {
                    read.stopped = Some(Stopped {
                        byte_offset: read.bytes,
                        after_packet: read.packets,
                        reason: "the file could not be read further".into(),
                    });
                    break;
                }
            }
            // A damaged capture: keep what was read, and say where.
            Err(e) => {
                let reason = match e {
                    PcapError::UnexpectedEof => {
                        "the file ends in the middle of a block (cut short: a copy \
                         stopped early, or tcpdump was killed)"
                            .to_owned()
                    }
                    PcapError::BufferTooSmall => format!(
                        "a block claims to be larger than {} KiB (the length field is \
                         damaged)",
                        MAX_BLOCK / 1024
                    ),
                    PcapError::ReadError => "reading the file failed".to_owned(),
                    _ => "a block whose header is not pcap or pcapng (the file is damaged \
                          here)"
                        .to_owned(),
                };
                read.stopped = Some(Stopped {
                    byte_offset: read.bytes,
                    after_packet: read.packets,
                    reason,
                });
                break;
            }
        }
    }
    read.fragments = state.fragments.finish();
    emit(Item::CaptureRead(file.to_owned(), read))
}

/// Where a packet is in the capture.
struct At {
    /// Its number (1-based).
    packet: usize,
    /// Its time.
    stamp: Stamp,
    /// Its time in microseconds since the epoch (for reassembly timeouts).
    micros: u64,
}

/// What a capture's reading keeps between packets: TCP streams and IP
/// fragments being put back together.
#[derive(Default)]
struct State {
    streams: Streams,
    fragments: Fragments,
}

/// Network layer → transport payload. `false` when the packet is not read
/// (not IP, or damaged below the transport).
fn read_packet(
    file: &str,
    at: &At,
    ethertype: u16,
    l3: &[u8],
    state: &mut State,
    emit: &mut Emit<'_>,
) -> Result<bool, InputError> {
    let Ok(ip) = crate::network::parse(ethertype, l3) else {
        return Ok(false);
    };
    let Some(fragment) = ip.fragment else {
        return read_transport(
            file,
            (at.packet, at.stamp),
            (ip.src, ip.dst),
            ip.protocol,
            ip.payload,
            state,
            emit,
        )
        .map(|()| true);
    };
    let Some(whole) = state.fragments.push(
        (ip.src, ip.dst),
        ip.protocol,
        fragment,
        ip.payload,
        at.micros,
        (at.packet, at.stamp),
    ) else {
        return Ok(true);
    };
    // IPv6: the fragmentable part may begin with more extension headers.
    let (protocol, payload) = if ip.src.is_ipv6() {
        match crate::network::extension_headers(whole.protocol, &whole.bytes) {
            Ok((protocol, payload, None)) => (protocol, payload),
            _ => return Ok(true),
        }
    } else {
        (whole.protocol, whole.bytes.as_slice())
    };
    read_transport(
        file,
        (whole.packet, whole.stamp),
        (ip.src, ip.dst),
        protocol,
        payload,
        state,
        emit,
    )
    .map(|()| true)
}

/// Transport → messages: UDP datagrams one by one, TCP through the
/// stream reassembly.
fn read_transport(
    file: &str,
    (packet, stamp): (usize, Stamp),
    (src, dst): (IpAddr, IpAddr),
    protocol: u8,
    l4: &[u8],
    state: &mut State,
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let (Some(ports), Some(header_len)) = (l4.get(0..4), l4_header_len(protocol, l4)) else {
        return Ok(());
    };
    let payload = match protocol {
        // The UDP length, so that padding is not read as payload (0 is a
        // jumbogram or offload: take what is there).
        17 => {
            let length = l4
                .get(4..6)
                .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
            let end = if length >= 8 {
                length.min(l4.len())
            } else {
                l4.len()
            };
            l4.get(header_len..end)
        }
        _ => l4.get(header_len..),
    };
    let Some(payload) = payload else {
        return Ok(());
    };
    let from = SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]]));
    let to = SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]]));
    let transport = if protocol == 6 { "tcp" } else { "udp" };
    if payload.is_empty() {
        return Ok(());
    }
    if protocol == 6 && state.streams.can_follow(from, to) {
        let Some(&[s0, s1, s2, s3]) = l4.get(4..8) else {
            return Ok(());
        };
        let seq = u32::from_be_bytes([s0, s1, s2, s3]);
        for message in state
            .streams
            .push((from, to), seq, payload, (packet, stamp))
        {
            read_message(
                file,
                (message.packet, message.stamp),
                (transport, from, to),
                &message.bytes,
                emit,
            )?;
        }
        Ok(())
    } else {
        read_message(file, (packet, stamp), (transport, from, to), payload, emit)
    }
}

/// The length of the UDP (17) or TCP (6) header; `None` for the rest.
fn l4_header_len(protocol: u8, l4: &[u8]) -> Option<usize> {
    match protocol {
        17 => Some(8),
        6 => Some(l4.get(12).map_or(20, |b| usize::from(b >> 4) * 4)),
        _ => None,
    }
}

/// Reads one datagram or one reassembled message: STUN, or SIP.
fn read_message(
    file: &str,
    (packet, stamp): (usize, Stamp),
    (transport, from, to): (&'static str, SocketAddr, SocketAddr),
    payload: &[u8],
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    if let Some((message, dialect)) = stun_message(payload) {
        let mut packet = stun_packet(file, packet, stamp, (transport, from, to), &message);
        packet.dialect = dialect;
        if dialect == "ms-turn" {
            packet.what = ms_turn_what(&message);
        }
        return emit(Item::Stun(packet));
    }
    if let Some(classic) = crate::classic_stun::parse(payload) {
        return emit(Item::Stun(StunPacket {
            file: file.to_owned(),
            packet,
            timestamp: stamp.to_string(),
            transport,
            from,
            to,
            what: classic.what.to_owned(),
            transaction: classic.transaction,
            error: classic.error,
            authenticated: classic.authenticated,
            username: classic.username,
            dialect: "rfc3489",
            mapped_address: classic.mapped,
            change_request: classic.change_request,
            peers: Vec::new(),
        }));
    }
    // A SIP start line begins with a capital (a method or `SIP/2.0`); most
    // payloads are media, which are never decoded as text.
    if !payload.first().is_some_and(u8::is_ascii_uppercase) {
        return Ok(());
    }
    let first_line = &payload[..memchr::memchr(b'\n', payload).unwrap_or(payload.len())];
    if !is_start_line(String::from_utf8_lossy(first_line).trim_end_matches('\r')) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(payload);
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    match SipMessage::parse(&lines, file, packet, Some(stamp.to_string())) {
        Some(message) => emit(Item::Sip(message)),
        None => Ok(()),
    }
}

/// The STUN message at the front of a datagram or TCP segment, in any
/// dialect, and which: `standard`, `ms-turn` or `ms-ice2`.
fn stun_message(payload: &[u8]) -> Option<(Message<'_>, &'static str)> {
    use edgeice_stun::ms;
    // MS-TURN over UDP, then over TCP inside its own framing.
    if ms::is_ms_turn(payload) {
        return Some((Message::parse_either_layout(payload).ok()?, "ms-turn"));
    }
    if ms::starts_tcp_framed(payload) {
        let lack_length = ms::tcp_frames_lack_length(payload).unwrap_or(false);
        if let Ok(Some((start, end))) = ms::tcp_frame(payload, lack_length)
            && let Some(inner) = payload.get(start..end)
            && ms::is_ms_turn(inner)
        {
            return Some((Message::parse_either_layout(inner).ok()?, "ms-turn"));
        }
    }
    // TURN over TCP frames STUN too: the first frame of the segment.
    let stun = match edgeice_stun::frame_len(payload) {
        Ok(Some(len)) if payload[0] >> 6 == 0 => payload.get(..len),
        _ => None,
    };
    if let Some(message) = stun.and_then(|s| Message::parse(s).ok()) {
        let ms_ice2 = message.get_raw(ms::IMPLEMENTATION_VERSION).is_some()
            || message.get_raw(ms::CANDIDATE_IDENTIFIER).is_some();
        return Some((message, if ms_ice2 { "ms-ice2" } else { "standard" }));
    }
    // MS-ICE2 checks carry the cookie but may leave attributes unpadded.
    let message = Message::parse_unpadded(payload).ok()?;
    message.has_magic_cookie().then_some((message, "ms-ice2"))
}

/// `Allocate request`, `Data indication`... for an MS-TURN message, whose
/// Data indication and Set Active Destination RFC 8489 does not name.
fn ms_turn_what(message: &Message<'_>) -> String {
    use edgeice_stun::ms;
    if message.kind() == ms::DATA_INDICATION {
        return "Data indication".to_owned();
    }
    let method = match message.method() {
        ms::ALLOCATE => "Allocate",
        ms::SEND => "Send",
        ms::SET_ACTIVE_DESTINATION => "Set Active Destination",
        other => return format!("{other} {}", class_word(message.class())),
    };
    format!("{method} {}", class_word(message.class()))
}

fn class_word(class: Class) -> &'static str {
    match class {
        Class::Request => "request",
        Class::Indication => "indication",
        Class::Success => "success",
        Class::Error => "error",
    }
}

fn stun_packet(
    file: &str,
    packet: usize,
    stamp: Stamp,
    (transport, from, to): (&'static str, SocketAddr, SocketAddr),
    message: &Message<'_>,
) -> StunPacket {
    let class = class_word(message.class());
    let error = match message.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    };
    // MS-ICE2 pads USERNAME with NULs inside its length.
    let username = match message.get(AttributeType::USERNAME) {
        Some(Ok(Attribute::Username(u))) => Some(u.trim_end_matches('\0').to_owned()),
        _ => None,
    };
    StunPacket {
        file: file.to_owned(),
        packet,
        timestamp: stamp.to_string(),
        transport,
        from,
        to,
        what: format!("{} {class}", message.method()),
        transaction: message.transaction_id().to_string(),
        error,
        authenticated: message.has_integrity() || message.has_integrity_sha256(),
        username,
        dialect: "standard",
        mapped_address: match message.get(AttributeType::XOR_MAPPED_ADDRESS) {
            Some(Ok(Attribute::XorMappedAddress(a))) => Some(a),
            _ => None,
        },
        change_request: false,
        peers: message
            .attributes()
            .filter_map(|attribute| match attribute {
                Ok(Attribute::XorPeerAddress(peer)) => Some(peer),
                _ => None,
            })
            .take(MAX_PEERS)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcapng block: type, body, padded, with both length fields.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(8 + padded, 0);
        out.extend_from_slice(&total.to_le_bytes());
        out
    }

    /// A pcapng capture of raw IPv4 packets, each with its timestamp in
    /// units of the interface's `if_tsresol`.
    fn pcapng(tsresol: u8, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());

        let mut idb = Vec::new();
        idb.extend_from_slice(&101u16.to_le_bytes()); // LINKTYPE_RAW
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&65535u32.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[tsresol, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt

        let mut out = [block(0x0A0D_0D0A, &shb), block(1, &idb)].concat();
        for (units, ip) in packets {
            let mut epb = Vec::new();
            epb.extend_from_slice(&0u32.to_le_bytes());
            epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*units as u32).to_le_bytes());
            epb.extend_from_slice(&(ip.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(ip.len() as u32).to_le_bytes());
            epb.extend_from_slice(ip);
            out.extend(block(6, &epb));
        }
        out
    }

    /// An IPv4 packet from 127.0.0.1 to 127.0.0.2 (checksums left 0).
    fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, protocol, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2]);
        ip.extend_from_slice(l4);
        ip
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&40000u16.to_be_bytes());
        l4.extend_from_slice(&3478u16.to_be_bytes());
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&0u16.to_be_bytes());
        l4.extend_from_slice(payload);
        ipv4(17, &l4)
    }

    fn tcp(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&50444u16.to_be_bytes());
        l4.extend_from_slice(&5060u16.to_be_bytes());
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(&0u32.to_be_bytes()); // ack
        l4.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]); // 20-byte header, PSH+ACK
        l4.extend_from_slice(payload);
        ipv4(6, &l4)
    }

    const BINDING_REQUEST: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];

    fn items(data: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        read(
            "test.pcapng",
            std::io::Cursor::new(data.to_vec()),
            &mut |item| {
                items.push(item);
                Ok(())
            },
        )
        .unwrap();
        items
    }

    fn first_stamp(data: &[u8]) -> String {
        match items(data).first() {
            Some(Item::Stun(packet)) => packet.timestamp.clone(),
            other => panic!("expected a STUN packet, got {other:?}"),
        }
    }

    fn capture(tsresol: u8, units: u64) -> Vec<u8> {
        pcapng(tsresol, &[(units, udp(&BINDING_REQUEST))])
    }

    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        // 2026-11-24 10:20:01.123456789 UTC.
        let seconds = 1_795_515_601u64;
        let nanos = seconds * 1_000_000_000 + 123_456_789;
        assert_eq!(first_stamp(&capture(9, nanos)), "11/24/2026|10:20:01.123");
        assert_eq!(
            first_stamp(&capture(6, nanos / 1000)),
            "11/24/2026|10:20:01.123"
        );
        // Binary resolution (2^-10 s): 126 units is 123 ms.
        assert_eq!(
            first_stamp(&capture(0x80 | 10, (seconds << 10) + 126)),
            "11/24/2026|10:20:01.123"
        );
    }

    #[test]
    fn absurd_clocks_do_not_panic() {
        for tsresol in [0, 19, 20, 0x80 | 63, 0xFF] {
            let _ = first_stamp(&capture(tsresol, u64::MAX));
        }
    }

    #[test]
    fn a_sip_message_split_over_tcp_segments_is_read_whole() {
        let body = "v=0\r\nm=audio 50010 RTP/AVP 0\r\n\
                    a=candidate:3 1 UDP 16648703 10.0.1.5 56402 typ relay raddr 192.168.1.10 rport 50010\r\n";
        let invite = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nCall-ID: split-1\r\nCSeq: 1 INVITE\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (head, tail) = invite.as_bytes().split_at(90);
        let data = pcapng(
            6,
            &[
                (1_000_000, tcp(7000, head)),
                (1_100_000, tcp(7000, head)), // retransmitted
                (1_200_000, tcp(7000 + head.len() as u32, tail)),
            ],
        );
        let sip: Vec<SipMessage> = items(&data)
            .into_iter()
            .filter_map(|item| match item {
                Item::Sip(message) => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(sip.len(), 1, "{sip:?}");
        let text = format!("{sip:?}");
        assert!(
            text.contains("split-1") && text.contains("10.0.1.5 56402"),
            "{text}"
        );
    }
}
