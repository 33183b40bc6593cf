//! TCP stream reassembly for captures. Over TCP a SIP message (a Lync
//! INVITE of 4 KB, say) spans several segments, and a segment may carry
//! several messages or TURN frames; this puts each flow's bytes back in
//! order and cuts whole messages out of them.
//!
//! Segments are taken in capture order. A retransmission is skipped, the
//! new tail of an overlapping one kept; a gap (a segment the capture
//! missed) drops what was buffered and starts again at the next message
//! boundary it can see. Memory is bounded: so many flows, so many bytes each.

use std::collections::HashMap;
use std::net::SocketAddr;

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
    pub stamp: String,
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
    start: (usize, String),
    /// A STUN message was seen: the flow is TURN over TCP, so ChannelData
    /// frames are expected (elsewhere those bytes are a lost message's tail).
    turn: bool,
}

/// What the front of a stream holds.
enum Front {
    /// A whole message of this many bytes.
    Message(usize),
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
        (packet, stamp): (usize, &str),
    ) -> Vec<StreamMessage> {
        let flow = self.flows.entry((from, to)).or_insert_with(|| Flow {
            next_seq: seq,
            buffer: Vec::new(),
            start: (packet, stamp.to_owned()),
            turn: false,
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
            flow.start = (packet, stamp.to_owned());
        }
        flow.buffer.extend_from_slice(new);

        let mut messages = Vec::new();
        let mut consumed = 0;
        loop {
            let rest = &flow.buffer[consumed..];
            if rest.is_empty() {
                break;
            }
            match front(rest, flow.turn) {
                Front::Message(len) => {
                    flow.turn |= rest[0] >> 6 == 0;
                    messages.push(StreamMessage {
                        packet: flow.start.0,
                        stamp: flow.start.1.clone(),
                        bytes: rest[..len].to_vec(),
                    });
                    consumed += len;
                    // A message that follows began in this packet, as far
                    // as can be told.
                    flow.start = (packet, stamp.to_owned());
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

/// Classifies the front of a stream; `turn` allows ChannelData.
fn front(bytes: &[u8], turn: bool) -> Front {
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
        assert!(streams.push(flow(), 1000, first, (1, "t1")).is_empty());
        // A retransmission of the first segment changes nothing.
        assert!(streams.push(flow(), 1000, first, (2, "t2")).is_empty());
        let out = streams.push(flow(), 1040, second, (3, "t3"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, message.as_bytes());
        assert_eq!((out[0].packet, out[0].stamp.as_str()), (1, "t1"));
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
        let out = streams.push(flow(), 7, &bytes, (5, "t"));
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
                .push(flow(), 0, &lost.as_bytes()[..20], (1, "t"))
                .is_empty()
        );
        // Bytes 20..40 never captured; the next segment starts a message.
        let out = streams.push(flow(), 40, next.as_bytes(), (2, "t"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, next.as_bytes());
    }

    #[test]
    fn unreadable_streams_and_absurd_lengths_are_dropped() {
        let mut streams = Streams::default();
        // A TLS record.
        assert!(
            streams
                .push(flow(), 0, &[0x16, 0x03, 0x01, 0x00, 0x05], (1, "t"))
                .is_empty()
        );
        let huge = "INVITE sip:b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert!(
            streams
                .push(flow(), 5, huge.as_bytes(), (2, "t"))
                .is_empty()
        );
        let fine = invite("");
        let out = streams.push(flow(), 5 + huge.len() as u32, fine.as_bytes(), (3, "t"));
        assert_eq!(out.len(), 1);
    }
}
