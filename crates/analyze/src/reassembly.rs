//! TCP stream reassembly for captures. Over TCP a SIP message (a Lync
//! INVITE of 4 KB, say) spans several segments, and a segment may carry
//! several messages or TURN frames; this puts each flow's bytes back in
//! order and cuts whole messages out of them.
//!
//! Segments are taken in capture order. A retransmission is skipped, the
//! new tail of an overlapping one kept; a gap (a segment the capture
//! missed) drops what was buffered and starts again at the next message
//! boundary it can see. Memory is bounded: so many flows, so many bytes each.
//!
//! STUN comes in two framings on TCP: TURN-TCP (RFC 6062, and RFC 8656's
//! TURN over TCP) puts STUN messages and ChannelData straight on the
//! stream; ICE-TCP (RFC 6544) puts every packet — STUN checks, then RTP,
//! RTCP, DTLS — behind a 16-bit length (RFC 4571). A flow whose first frame
//! is a length followed by exactly one STUN message is taken as the latter.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::capture::Stamp;
use crate::sip::{full_name, is_start_line};

/// Flows followed at once; more are not reassembled (their segments are
/// still read one by one).
const MAX_FLOWS: usize = 1024;
/// Bytes buffered per flow while a message is incomplete: a Lync INVITE
/// with all its candidates is a few KB (the seed's is 4 KB). With
/// `MAX_FLOWS`, 64 MiB at worst.
const MAX_BUFFERED: usize = 64 * 1024;
/// The longest SIP start line waited for.
const MAX_START_LINE: usize = 1024;

/// A whole message cut from a stream, with where it started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamMessage {
    /// The packet that carried its first byte.
    pub packet: usize,
    /// That packet's timestamp.
    pub stamp: Stamp,
    /// The message: SIP text, or one STUN frame.
    pub bytes: Vec<u8>,
}

/// The TCP flows of one capture.
#[derive(Default)]
pub(crate) struct Streams {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
}

struct Flow {
    /// The sequence number the next new byte will have.
    next_seq: u32,
    /// Bytes not yet cut into messages.
    buffer: Vec<u8>,
    /// The packet and time of the buffer's first byte.
    start: (usize, Stamp),
    /// A STUN message was seen: the flow is TURN over TCP, so ChannelData
    /// frames are expected (elsewhere those bytes are a lost message's tail).
    turn: bool,
    /// A STUN message was seen in RFC 4571 framing (a 16-bit length before
    /// each packet): the flow is ICE-TCP, and every frame is so framed.
    rfc4571: bool,
}

/// What the front of a stream holds.
enum Front {
    /// A whole message of this many bytes.
    Message(usize),
    /// An RFC 4571 frame of this many bytes after its 2-byte length, and
    /// whether it holds STUN (else RTP, RTCP or DTLS: skipped).
    Framed(usize, bool),
    /// Bytes to skip (a ChannelData frame: media, not of interest).
    Skip(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// Nothing this reader understands (TLS, say): drop the buffer.
    Unreadable,
}

impl Streams {
    /// Whether another flow can be followed.
    pub fn can_follow(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.flows.len() < MAX_FLOWS || self.flows.contains_key(&(from, to))
    }

    /// Adds a segment of the flow `from` → `to`; returns the messages it
    /// completes.
    pub fn push(
        &mut self,
        (from, to): (SocketAddr, SocketAddr),
        seq: u32,
        payload: &[u8],
        (packet, stamp): (usize, Stamp),
    ) -> Vec<StreamMessage> {
        let flow = self.flows.entry((from, to)).or_insert_with(|| Flow {
            next_seq: seq,
            buffer: Vec::new(),
            start: (packet, stamp),
            turn: false,
            rfc4571: false,
        });
        // Where this segment starts relative to the next expected byte.
        let offset = seq.wrapping_sub(flow.next_seq) as i32;
        let new = if offset < 0 {
            let seen = offset.unsigned_abs() as usize;
            if seen >= payload.len() {
                return Vec::new(); // a retransmission
            }
            &payload[seen..]
        } else {
            if offset > 0 {
                // The capture missed bytes: what was buffered cannot be
                // completed.
                flow.buffer.clear();
            }
            payload
        };
        flow.next_seq = seq.wrapping_add(payload.len() as u32);
        if flow.buffer.is_empty() {
            flow.start = (packet, stamp);
        }
        flow.buffer.extend_from_slice(new);

        let mut messages = Vec::new();
        let mut consumed = 0;
        loop {
            let rest = &flow.buffer[consumed..];
            if rest.is_empty() {
                break;
            }
            match front(rest, flow.turn, flow.rfc4571) {
                Front::Framed(len, stun) => {
                    flow.rfc4571 = true;
                    if stun {
                        messages.push(StreamMessage {
                            packet: flow.start.0,
                            stamp: flow.start.1,
                            bytes: rest[2..2 + len].to_vec(),
                        });
                    }
                    consumed += 2 + len;
                    flow.start = (packet, stamp);
                }
                Front::Message(len) => {
                    flow.turn |= rest[0] >> 6 == 0;
                    messages.push(StreamMessage {
                        packet: flow.start.0,
                        stamp: flow.start.1,
                        bytes: rest[..len].to_vec(),
                    });
                    consumed += len;
                    // A message that follows began in this packet, as far
                    // as can be told.
                    flow.start = (packet, stamp);
                }
                Front::Skip(len) => consumed += len,
                Front::Incomplete => break,
                Front::Unreadable => {
                    consumed = flow.buffer.len();
                    break;
                }
            }
        }
        flow.buffer.drain(..consumed);
        if flow.buffer.len() > MAX_BUFFERED {
            flow.buffer.clear();
        }
        if flow.buffer.is_empty() {
            // Idle flows keep no memory: most flows of a capture end.
            flow.buffer = Vec::new();
        }
        messages
    }
}

/// Whether `bytes` is a STUN message (with the magic cookie) of exactly
/// its declared length.
fn is_whole_stun(bytes: &[u8]) -> bool {
    bytes.len() >= 20
        && bytes[0] >> 6 == 0
        && bytes[4..8] == edgeice_stun::MAGIC_COOKIE.to_be_bytes()
        && usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) + 20 == bytes.len()
}

/// An RFC 4571 frame at the front: its length after the 2-byte prefix.
/// Before the flow is known to be framed so, only a frame holding exactly
/// one STUN message counts (an ICE-TCP connection starts with a check).
fn rfc4571_frame(bytes: &[u8], known: bool) -> Option<Front> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    if known {
        return Some(match bytes.get(2..2 + len) {
            Some(inner) => Front::Framed(len, is_whole_stun(inner)),
            None => Front::Incomplete,
        });
    }
    // Not yet known: the STUN header must be there to tell.
    let header = bytes.get(2..22)?;
    let stun_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let looks = header[0] >> 6 == 0
        && header[4..8] == edgeice_stun::MAGIC_COOKIE.to_be_bytes()
        && stun_len + 20 == len;
    if !looks {
        return None;
    }
    Some(match bytes.get(2..2 + len) {
        Some(_) => Front::Framed(len, true),
        None => Front::Incomplete,
    })
}

/// Classifies the front of a stream; `turn` allows ChannelData, `rfc4571`
/// says every frame has a 16-bit length first.
fn front(bytes: &[u8], turn: bool, rfc4571: bool) -> Front {
    if rfc4571 {
        return rfc4571_frame(bytes, true).unwrap_or(Front::Incomplete);
    }
    if bytes[0] >> 6 == 0
        && let Some(framed) = rfc4571_frame(bytes, false)
    {
        return framed;
    }
    // Too short to tell an RFC 4571 frame (the cookie at 6..10) from a
    // STUN header (the cookie at 4..8) yet: wait.
    if bytes[0] >> 6 == 0 && bytes.len() < 22 {
        let cookie = edgeice_stun::MAGIC_COOKIE.to_be_bytes();
        let plain = bytes.get(4..8).map(|c| c == cookie);
        let framed = bytes.get(6..10).map(|c| c == cookie);
        if plain != Some(true) && framed != Some(false) {
            return Front::Incomplete;
        }
    }
    // SIP first: its letters would also read as ChannelData channel numbers.
    if bytes[0].is_ascii_uppercase() {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = String::from_utf8_lossy(&bytes[..end]);
                if is_start_line(line.trim_end_matches('\r')) {
                    return sip_message(bytes);
                }
            }
            None if bytes.len() < MAX_START_LINE => return Front::Incomplete,
            None => {}
        }
    }
    // STUN carries the magic cookie in bytes 4..8 (TLS records, which also
    // start below 0x40, do not).
    if bytes[0] >> 6 == 0 {
        match bytes.get(4..8) {
            None => return Front::Incomplete,
            Some(cookie) if cookie != edgeice_stun::MAGIC_COOKIE.to_be_bytes() => {
                return Front::Unreadable;
            }
            Some(_) => {}
        }
    }
    match edgeice_stun::frame_len(bytes) {
        Ok(None) => Front::Incomplete,
        Ok(Some(len)) if bytes.len() < len => Front::Incomplete,
        Ok(Some(len)) if bytes[0] >> 6 == 0 => Front::Message(len),
        Ok(Some(len)) if turn => Front::Skip(len),
        Ok(_) | Err(_) => Front::Unreadable,
    }
}

/// The length of the SIP message at the front, from its Content-Length.
fn sip_message(bytes: &[u8]) -> Front {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Front::Incomplete;
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let body_len = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| full_name(name.trim()).eq_ignore_ascii_case("Content-Length"))
        .map_or(Some(0), |(_, value)| value.trim().parse::<usize>().ok());
    let Some(body_len) = body_len else {
        return Front::Unreadable;
    };
    let total = head_end.saturating_add(4).saturating_add(body_len);
    if total > MAX_BUFFERED {
        Front::Unreadable
    } else if bytes.len() < total {
        Front::Incomplete
    } else {
        Front::Message(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "192.0.2.1:5061";
    const B: &str = "192.0.2.2:50444";

    fn flow() -> (SocketAddr, SocketAddr) {
        (A.parse().unwrap(), B.parse().unwrap())
    }

    fn invite(body: &str) -> String {
        format!(
            "INVITE sip:b@example.com SIP/2.0\r\nCall-ID: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn joins_a_message_split_over_segments() {
        let message = invite("v=0\r\na=candidate:1 1 UDP 1 10.0.0.1 5000 typ host\r\n");
        let (first, second) = message.as_bytes().split_at(40);
        let mut streams = Streams::default();
        let t = |millis| Stamp { seconds: 1, millis };
        assert!(streams.push(flow(), 1000, first, (1, t(1))).is_empty());
        // A retransmission of the first segment changes nothing.
        assert!(streams.push(flow(), 1000, first, (2, t(2))).is_empty());
        let out = streams.push(flow(), 1040, second, (3, t(3)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, message.as_bytes());
        assert_eq!((out[0].packet, out[0].stamp), (1, t(1)));
    }

    #[test]
    fn cuts_several_messages_and_skips_channel_data() {
        let one = invite("");
        let two = "SIP/2.0 200 OK\r\nl: 3\r\n\r\nabc";
        // A STUN Binding request makes it a TURN flow: ChannelData is skipped.
        let stun = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let channel_data = [0x40, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x00];
        let mut bytes = one.clone().into_bytes();
        bytes.extend_from_slice(&stun);
        bytes.extend_from_slice(&channel_data);
        bytes.extend_from_slice(two.as_bytes());
        let mut streams = Streams::default();
        let out = streams.push(flow(), 7, &bytes, (5, Stamp::default()));
        let texts: Vec<&[u8]> = out.iter().map(|m| m.bytes.as_slice()).collect();
        assert_eq!(texts, [one.as_bytes(), &stun[..], two.as_bytes()]);
    }

    #[test]
    fn a_gap_drops_the_partial_message_and_resynchronises() {
        let lost = invite("0123456789");
        let next = invite("");
        let mut streams = Streams::default();
        assert!(
            streams
                .push(flow(), 0, &lost.as_bytes()[..20], (1, Stamp::default()))
                .is_empty()
        );
        // Bytes 20..40 never captured; the next segment starts a message.
        let out = streams.push(flow(), 40, next.as_bytes(), (2, Stamp::default()));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, next.as_bytes());
    }

    fn stun(txid: u8) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[txid; 12]);
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x04, b'i', b'c', b'e', b'!']);
        m
    }

    fn framed(packet: &[u8]) -> Vec<u8> {
        let mut f = (packet.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(packet);
        f
    }

    #[test]
    fn ice_tcp_rfc4571_frames_yield_their_stun_and_skip_media() {
        let (one, two) = (stun(1), stun(2));
        let rtp = [0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xAA];
        let mut bytes = framed(&one);
        bytes.extend(framed(&rtp));
        bytes.extend(framed(&two));
        // Split mid-frame, and mid-length.
        let mut streams = Streams::default();
        let mut out = Vec::new();
        let cuts = [0, 5, 31, bytes.len() - 1, bytes.len()];
        for w in cuts.windows(2) {
            out.extend(streams.push(
                flow(),
                w[0] as u32,
                &bytes[w[0]..w[1]],
                (1, Stamp::default()),
            ));
        }
        let got: Vec<&[u8]> = out.iter().map(|m| m.bytes.as_slice()).collect();
        assert_eq!(got, [one.as_slice(), two.as_slice()]);
    }

    #[test]
    fn turn_tcp_stun_is_not_taken_for_rfc4571() {
        let mut streams = Streams::default();
        let out = streams.push(flow(), 0, &stun(3), (1, Stamp::default()));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, stun(3));
    }

    #[test]
    fn unreadable_streams_and_absurd_lengths_are_dropped() {
        let mut streams = Streams::default();
        // A TLS record.
        assert!(
            streams
                .push(
                    flow(),
                    0,
                    &[0x16, 0x03, 0x01, 0x00, 0x05],
                    (1, Stamp::default())
                )
                .is_empty()
        );
        let huge = "INVITE sip:b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert!(
            streams
                .push(flow(), 5, huge.as_bytes(), (2, Stamp::default()))
                .is_empty()
        );
        let fine = invite("");
        let out = streams.push(
            flow(),
            5 + huge.len() as u32,
            fine.as_bytes(),
            (3, Stamp::default()),
        );
        assert_eq!(out.len(), 1);
    }
}
