//! Recognising a file's format and reading the SIP messages and SDP bodies
//! out of it, line by line.
//!
//! - bare SDP (`v=0` first);
//! - SIP traces: messages one after another;
//! - Lync/Skype for Business client logs (`.uccapilog`): lines
//!   `MM/DD/YYYY|HH:MM:SS.mmm PID:TID LEVEL :: text`, with each SIP message
//!   between a `Sending Packet` or `Data Received` line and an `End of` line;
//! - Lync/Skype for Business server logs (CLS/OCSLogger SIPStack text):
//!   records between `$$begin_record` and `$$end_record` with `Direction:`,
//!   `Peer:`, `Start-Line:` and `Message-Body:` fields;
//! - Chrome `webrtc-internals` dumps (JSON, read whole);
//! - packet captures, pcap and pcapng (see [`crate::capture`]).
//!
//! Only the messages are kept: a log's size does not matter, the number of
//! SIP messages in it does.

use std::io::BufRead;

use crate::sip::{SipMessage, is_start_line};

/// What a file held.
#[derive(Clone, Debug)]
pub enum Item {
    /// A STUN or TURN message seen in a capture.
    Stun(crate::capture::StunPacket),
    /// One peer connection of a webrtc-internals dump, as a call.
    PeerConnection(crate::webrtc_internals::PeerConnection),
    /// A SIP message.
    Sip(SipMessage),
    /// A bare SDP description.
    Sdp {
        /// The file.
        file: String,
        /// The line it starts on.
        line: usize,
        /// The text.
        text: String,
    },
}

/// The formats recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A bare SDP description.
    Sdp,
    /// SIP messages.
    SipTrace,
    /// A Lync/Skype for Business client log.
    Uccapilog,
    /// A Lync/Skype for Business server log (CLS/OCSLogger SIPStack text).
    ServerLog,
    /// A Chrome `webrtc-internals` dump (JSON).
    WebrtcInternals,
    /// A packet capture (pcap or pcapng).
    Capture,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// Nothing in it looks like SDP, SIP or a client log.
    #[error("{0}: neither SDP, a SIP trace nor a Lync/Skype for Business client log")]
    Unrecognised(String),
}

/// Whether `line` starts like a uccapilog line: `MM/DD/YYYY|HH:MM:SS.mmm`.
fn log_timestamp(line: &str) -> Option<&str> {
    let stamp = line.get(..23)?;
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..2) && b[2] == b'/' && digits(3..5) && b[5] == b'/' && digits(6..10) && b[10] == b'|')
        .then_some(stamp)
}

/// Reads the items of one file.
pub fn read(
    file: &str,
    mut reader: impl BufRead + Send,
) -> Result<(Format, Vec<Item>), InputError> {
    let head = reader.fill_buf().map_err(|source| InputError::Io {
        file: file.to_owned(),
        source,
    })?;
    if crate::capture::is_capture(head) {
        return crate::capture::read(file, reader).map(|items| (Format::Capture, items));
    }
    let mut lines = Lines {
        reader,
        number: 0,
        buf: Vec::new(),
    };
    let io = |source| InputError::Io {
        file: file.to_owned(),
        source,
    };
    // The first non-empty line decides.
    let first = loop {
        match lines.next_line().map_err(io)? {
            None => return Err(InputError::Unrecognised(file.to_owned())),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some(first) => break first,
        }
    };
    if first.1.trim_start().starts_with('{') {
        let mut text = first.1.clone();
        while let Some((_, line)) = lines.next_line().map_err(io)? {
            text.push('\n');
            text.push_str(&line);
        }
        return crate::webrtc_internals::read(file, &text)
            .map(|items| (Format::WebrtcInternals, items))
            .ok_or_else(|| InputError::Unrecognised(file.to_owned()));
    }
    if first.1.contains("$$begin_record") {
        return read_server_log(file, first, &mut lines).map(|items| (Format::ServerLog, items));
    }
    if log_timestamp(&first.1).is_some() {
        return read_uccapilog(file, first, &mut lines).map(|items| (Format::Uccapilog, items));
    }
    if first.1.trim_end() == "v=0" {
        let mut text = first.1.clone();
        while let Some((_, line)) = lines.next_line().map_err(io)? {
            text.push('\n');
            text.push_str(&line);
        }
        let item = Item::Sdp {
            file: file.to_owned(),
            line: first.0,
            text,
        };
        return Ok((Format::Sdp, vec![item]));
    }
    let items = read_sip_trace(file, first, &mut lines)?;
    if items.is_empty() {
        return Err(InputError::Unrecognised(file.to_owned()));
    }
    Ok((Format::SipTrace, items))
}

/// Lines as text whatever their bytes (invalid UTF-8 is replaced), numbered.
struct Lines<R> {
    reader: R,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn next_line(&mut self) -> std::io::Result<Option<(usize, String)>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let text = String::from_utf8_lossy(&self.buf);
        Ok(Some((
            self.number,
            text.trim_end_matches(['\n', '\r']).to_owned(),
        )))
    }
}

/// Parses collected lines as one SIP message and keeps it if it is one.
fn push_message(
    items: &mut Vec<Item>,
    lines: &[String],
    file: &str,
    at: usize,
    stamp: Option<String>,
) -> Option<()> {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let message = SipMessage::parse(&refs, file, at, stamp)?;
    items.push(Item::Sip(message));
    Some(())
}

fn read_sip_trace<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
) -> Result<Vec<Item>, InputError> {
    let io = |source| InputError::Io {
        file: file.to_owned(),
        source,
    };
    let mut items = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_line = 0;
    let mut flush = |current: &mut Vec<String>, at: usize| {
        push_message(&mut items, current, file, at, None);
        current.clear();
    };
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if is_start_line(&line) {
            flush(&mut current, current_line);
            current_line = number;
        }
        if current_line != 0 {
            current.push(line);
        }
        next = lines.next_line().map_err(io)?;
    }
    flush(&mut current, current_line);
    Ok(items)
}

fn read_uccapilog<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
) -> Result<Vec<Item>, InputError> {
    let io = |source| InputError::Io {
        file: file.to_owned(),
        source,
    };
    let mut items = Vec::new();
    // The message being collected: its timestamp, first line, and lines.
    let mut open: Option<(String, usize, Vec<String>)> = None;
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if let Some(stamp) = log_timestamp(&line) {
            let text = line.split_once(":: ").map_or("", |(_, t)| t);
            if text.starts_with("End of") {
                if let Some((stamp, at, collected)) = open.take() {
                    push_message(&mut items, &collected, file, at, Some(stamp));
                }
            } else if text.starts_with("Sending Packet") || text.starts_with("Data Received") {
                open = Some((stamp.to_owned(), number + 1, Vec::new()));
            } else {
                // Any other log line ends a half-written message.
                open = None;
            }
        } else if let Some((_, _, collected)) = open.as_mut() {
            // A runaway message (no End marker) is cut off, not kept whole.
            if collected.len() < 10_000 {
                collected.push(line);
            }
        }
        next = lines.next_line().map_err(io)?;
    }
    Ok(items)
}

/// The record fields of a server log that are not SIP headers.
const RECORD_FIELDS: [&str; 6] = [
    "Trace-Correlation-Id:",
    "Instance-Id:",
    "Direction:",
    "Peer:",
    "Message-Type:",
    "Start-Line:",
];

/// The time of a `$$begin_record` line (`...::MM/DD/YYYY-HH:MM:SS.mmm...`),
/// as a client log writes it (`MM/DD/YYYY|HH:MM:SS.mmm`).
fn record_timestamp(line: &str) -> Option<String> {
    let at = line.find("::")? + 2;
    let stamp = line.get(at..at + 23)?;
    let b = stamp.as_bytes();
    (b.get(2) == Some(&b'/') && b.get(10) == Some(&b'-')).then(|| stamp.replacen('-', "|", 1))
}

fn read_server_log<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
) -> Result<Vec<Item>, InputError> {
    let io = |source| InputError::Io {
        file: file.to_owned(),
        source,
    };
    let mut items = Vec::new();
    // The record being read: its time, the start line's number, the
    // message's lines, and whether the body has begun.
    let mut record: Option<(Option<String>, usize, Vec<String>, bool)> = None;
    // The body starts on the `Message-Body:` line itself: one line earlier
    // than the blank line put before it in the message suggests.
    let mut inline_body = false;
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if line.contains("$$begin_record") {
            record = Some((record_timestamp(&line), number, Vec::new(), false));
            inline_body = false;
        } else if line.contains("$$end_record") {
            if let Some((stamp, at, collected, _)) = record.take()
                && push_message(&mut items, &collected, file, at, stamp).is_some()
                && inline_body
                && let Some(Item::Sip(m)) = items.last_mut()
            {
                m.body_line = m.body_line.saturating_sub(1);
            }
        } else if let Some((_, at, collected, in_body)) = record.as_mut() {
            if collected.len() >= 10_000 {
                // A runaway record is cut off, not kept whole.
            } else if *in_body {
                collected.push(line);
            } else if let Some(start) = line.strip_prefix("Start-Line:") {
                *at = number;
                collected.insert(0, start.trim().to_owned());
            } else if let Some(body) = line.strip_prefix("Message-Body:") {
                *in_body = true;
                collected.push(String::new());
                if !body.trim().is_empty() {
                    inline_body = true;
                    collected.push(body.trim_start().to_owned());
                }
            } else if !RECORD_FIELDS.iter().any(|f| line.starts_with(f)) {
                collected.push(line);
            }
        }
        next = lines.next_line().map_err(io)?;
    }
    Ok(items)
}
