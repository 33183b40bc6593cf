//! Recognising a file's format and reading the SIP messages and SDP bodies
//! out of it, line by line.
//!
//! - bare SDP (`v=0` first);
//! - SIP traces: messages one after another;
//! - Lync/Skype for Business client logs (`.uccapilog`): lines
//!   `MM/DD/YYYY|HH:MM:SS.mmm PID:TID LEVEL :: text`, with each SIP message
//!   between a `Sending Packet` or `Data Received` line and an `End of` line
//!   — its start line written with the log prefix, as the client does, or
//!   without — and pasted excerpts that have only the prefixed start line;
//! - Lync/Skype for Business server logs (CLS/OCSLogger SIPStack text):
//!   records between `$$begin_record` and `$$end_record` with `Direction:`,
//!   `Peer:`, `Start-Line:` and `Message-Body:` fields;
//! - Chrome `webrtc-internals` dumps (JSON, old text values or current
//!   JSON values, streamed: see [`crate::webrtc_internals`]);
//! - packet captures, pcap and pcapng (see [`crate::capture`]);
//! - `edgeice call --trace` files (JSON lines, see [`crate::trace`]);
//! - `edgeice serve`'s own log, JSON lines or text (see
//!   [`crate::serve_log`]);
//! - pasted excerpts: candidate lines and diagnostics headers out of a
//!   ticket or a thread (see [`crate::excerpt`]).
//!
//! [`open`] recognises the format from the first bytes or line, then
//! [`Source::read`] hands each item over as soon as it is read: nothing is
//! kept, so a log's size does not matter.

use std::io::BufRead;

use crate::sip::{SipMessage, is_start_line};

/// What a file held.
#[derive(Clone, Debug)]
pub enum Item {
    /// A STUN or TURN message seen in a capture.
    Stun(crate::capture::StunPacket),
    /// The end of a capture (the file's name): what was read from it, and
    /// where it stopped if it was damaged.
    CaptureRead(String, crate::capture::CaptureRead),
    /// One peer connection of a webrtc-internals dump, as a call.
    PeerConnection(crate::webrtc_internals::PeerConnection),
    /// A SIP message.
    Sip(SipMessage),
    /// One side of a call, from an `edgeice call --trace` file.
    Trace(Box<crate::trace::Trace>),
    /// A session or refusal record of `edgeice serve`'s log.
    ServeRecord(Box<crate::serve_log::Record>),
    /// A pasted excerpt (candidate lines, diagnostics headers), as a call
    /// of its own: see [`crate::excerpt`].
    Excerpt(Box<crate::call::Call>),
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
    /// An `edgeice call --trace` file (JSON lines).
    CallTrace,
    /// `edgeice serve`'s log (JSON lines or text), with its session and
    /// refusal records.
    ServeLog,
    /// A pasted excerpt: candidate lines and Lync/Skype for Business
    /// diagnostics headers out of a ticket or a thread.
    Excerpt,
}

impl InputError {
    /// Turns a read error on `file` into [`InputError::Io`] (for `map_err`).
    pub(crate) fn io(file: &str) -> impl Fn(std::io::Error) -> InputError + Copy + '_ {
        move |source| InputError::Io {
            file: file.to_owned(),
            source,
        }
    }
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
    #[error(
        "{0}: not a format edgeice analyze reads — bare SDP (starts with v=0), SIP messages, a Lync/Skype for Business client log (MM/DD/YYYY|HH:MM:SS.mmm lines) or server log ($$begin_record), a Chrome webrtc-internals dump (JSON with PeerConnections), a pcap/pcapng capture, an edgeice call --trace file, edgeice serve's log, or a pasted excerpt with candidate lines (candidate:…) or ms-client-diagnostics headers; nothing in it reads as any of them"
    )]
    Unrecognised(String),
    /// Nothing in it reads as any format; it begins with `start`, which
    /// says why (a text line that starts no SIP message, or binary data).
    #[error(
        "{file}: not a format edgeice analyze reads — bare SDP (starts with v=0), SIP messages, a Lync/Skype for Business client log (MM/DD/YYYY|HH:MM:SS.mmm lines) or server log ($$begin_record), a Chrome webrtc-internals dump (JSON with PeerConnections), a pcap/pcapng capture, an edgeice call --trace file or edgeice serve's log; it begins with {start}, which is none of them, and no SIP start line follows"
    )]
    UnrecognisedStart {
        /// The file.
        file: String,
        /// Its beginning, described.
        start: String,
    },
    /// A line of a structured file (an `edgeice call --trace` file) is not
    /// what its format says.
    #[error("{file}:{line}: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// What was read could not be handed on (writing the report failed).
    #[error("writing the report: {0}")]
    Output(std::io::Error),
}

/// Where items go as they are read.
pub type Emit<'a> = dyn FnMut(Item) -> Result<(), InputError> + 'a;

/// Whether `line` starts like a uccapilog line: `MM/DD/YYYY|HH:MM:SS.mmm`.
fn log_timestamp(line: &str) -> Option<&str> {
    let stamp = line.get(..23)?;
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..2) && b[2] == b'/' && digits(3..5) && b[5] == b'/' && digits(6..10) && b[10] == b'|')
        .then_some(stamp)
}

/// Reads all the items of one file into memory.
pub fn read(file: &str, reader: impl BufRead + Send) -> Result<(Format, Vec<Item>), InputError> {
    let source = open(file, reader)?;
    let format = source.format();
    let mut items = Vec::new();
    source.read(&mut |item| {
        items.push(item);
        Ok(())
    })?;
    Ok((format, items))
}

/// A file whose format is known, ready to be read.
pub struct Source<R> {
    file: String,
    format: Format,
    body: Body<R>,
}

enum Body<R> {
    Capture(R),
    Lines(Lines<R>, (usize, String)),
}

/// Recognises a file's format from its first bytes, or its first non-empty
/// line; nothing else is read yet.
pub fn open<R: BufRead + Send>(file: &str, mut reader: R) -> Result<Source<R>, InputError> {
    let io = InputError::io(file);
    let head = reader.fill_buf().map_err(io)?;
    let excerpt = crate::excerpt::looks_like(head);
    if crate::capture::is_capture(head) {
        return Ok(Source {
            file: file.to_owned(),
            format: Format::Capture,
            body: Body::Capture(reader),
        });
    }
    let mut lines = Lines {
        reader,
        number: 0,
        buf: Vec::new(),
    };
    let first = loop {
        match lines.next_line().map_err(io)? {
            None => return Err(InputError::Unrecognised(file.to_owned())),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some(first) => break first,
        }
    };
    let text = first.1.trim_start();
    let format = if crate::trace::is_start(text) {
        Format::CallTrace
    } else if crate::serve_log::is_start(text) {
        Format::ServeLog
    } else if text.starts_with('{') {
        Format::WebrtcInternals
    } else if first.1.contains("$$begin_record") {
        Format::ServerLog
    } else if log_timestamp(&first.1).is_some() {
        Format::Uccapilog
    } else if first.1.trim_end() == "v=0" {
        Format::Sdp
    } else if excerpt {
        Format::Excerpt
    } else {
        Format::SipTrace
    };
    Ok(Source {
        file: file.to_owned(),
        format,
        body: Body::Lines(lines, first),
    })
}

impl<R: BufRead + Send> Source<R> {
    /// The format recognised.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Reads the file to its end, handing each item to `emit` as soon as
    /// it is complete.
    pub fn read(self, emit: &mut Emit<'_>) -> Result<(), InputError> {
        let file = self.file.as_str();
        let (mut lines, first) = match self.body {
            Body::Capture(reader) => return crate::capture::read(file, reader, emit),
            Body::Lines(lines, first) => (lines, first),
        };
        let io = InputError::io(file);
        match self.format {
            Format::Capture => Ok(()),
            Format::CallTrace => crate::trace::read(file, first, &mut lines, emit),
            Format::WebrtcInternals => {
                // The first line was read to recognise the format: put it
                // back in front of the rest, and stream the whole.
                let head = std::io::Cursor::new(format!("{}\n", first.1).into_bytes());
                let found = crate::webrtc_internals::read_stream(
                    file,
                    std::io::Read::chain(head, lines.reader),
                    emit,
                )?;
                if found {
                    Ok(())
                } else {
                    Err(InputError::Unrecognised(file.to_owned()))
                }
            }
            Format::ServerLog => read_server_log(file, first, &mut lines, emit),
            Format::ServeLog => {
                let mut line = Some(first);
                while let Some((number, text)) = line {
                    if let Some(record) = crate::serve_log::parse(file, number, &text) {
                        emit(Item::ServeRecord(Box::new(record)))?;
                    }
                    line = lines.next_line().map_err(io)?;
                }
                Ok(())
            }
            Format::Uccapilog => read_uccapilog(file, first, &mut lines, emit),
            Format::Sdp => {
                let mut text = first.1;
                while let Some((_, line)) = lines.next_line().map_err(io)? {
                    text.push('\n');
                    text.push_str(&line);
                }
                emit(Item::Sdp {
                    file: file.to_owned(),
                    line: first.0,
                    text,
                })
            }
            Format::SipTrace => read_sip_trace(file, first, &mut lines, emit),
            Format::Excerpt => crate::excerpt::read(file, first, &mut lines, emit),
        }
    }
}

/// Lines as text whatever their bytes (invalid UTF-8 is replaced), numbered.
pub(crate) struct Lines<R> {
    reader: R,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<(usize, String)>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let end = self
            .buf
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        let line = &self.buf[..end];
        // Logs are nearly always valid UTF-8: check it the fast way (the
        // standard library's word-at-a-time ASCII path) and fall back to the
        // lossy decoding only for the odd line that is not (BENCHMARKS.md).
        let text = match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(line).into_owned(),
        };
        Ok(Some((self.number, text)))
    }
}

/// Parses collected lines as one SIP message and keeps it if it is one.
fn push_message(
    emit: &mut Emit<'_>,
    lines: &[String],
    file: &str,
    at: usize,
    stamp: Option<String>,
) -> Result<Option<()>, InputError> {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    match SipMessage::parse(&refs, file, at, stamp) {
        Some(message) => emit(Item::Sip(message)).map(Some),
        None => Ok(None),
    }
}

/// A message longer than this many lines is cut off, not kept whole.
const MAX_MESSAGE_LINES: usize = 10_000;

fn read_sip_trace<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let io = InputError::io(file);
    let mut current: Vec<String> = Vec::new();
    let mut current_line = 0;
    let mut messages = 0;
    let start = describe_start(&first.1);
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if is_start_line(&line) {
            if push_message(emit, &current, file, current_line, None)?.is_some() {
                messages += 1;
            }
            current.clear();
            current_line = number;
        }
        if current_line != 0 && current.len() < MAX_MESSAGE_LINES {
            current.push(line);
        }
        next = lines.next_line().map_err(io)?;
    }
    if push_message(emit, &current, file, current_line, None)?.is_some() {
        messages += 1;
    }
    if messages == 0 {
        return Err(InputError::UnrecognisedStart {
            file: file.to_owned(),
            start,
        });
    }
    Ok(())
}

/// A file's first line, for a refusal: quoted (cut at 60 characters) when
/// it is text, else said to be binary.
fn describe_start(line: &str) -> String {
    let binary = line
        .chars()
        .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'));
    if binary {
        return "binary data, not text".to_owned();
    }
    let text: String = line.trim().chars().take(60).collect();
    format!("the line `{text}`")
}

fn read_uccapilog<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let io = InputError::io(file);
    // The message being collected: its timestamp, first line, and lines.
    let mut open: Option<(String, usize, Vec<String>)> = None;
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if let Some(stamp) = log_timestamp(&line) {
            let text = line.split_once(":: ").map_or("", |(_, t)| t);
            if open.as_ref().is_some_and(|(_, _, c)| c.is_empty()) && is_start_line(text) {
                // The client writes the start line with the log prefix,
                // on the line after `Sending Packet`/`Data Received`.
                if let Some((_, at, collected)) = open.as_mut() {
                    *at = number;
                    collected.push(text.to_owned());
                }
            } else if text.starts_with("End of") {
                if let Some((stamp, at, collected)) = open.take() {
                    push_message(emit, &collected, file, at, Some(stamp))?;
                }
            } else {
                // Any other log line ends the message being read: pasted
                // excerpts often lack the `End of` line, so what was read
                // is kept if it is a SIP message.
                if let Some((stamp, at, collected)) = open.take() {
                    push_message(emit, &collected, file, at, Some(stamp))?;
                }
                if text.starts_with("Sending Packet") || text.starts_with("Data Received") {
                    open = Some((stamp.to_owned(), number + 1, Vec::new()));
                } else if is_start_line(text) {
                    // An excerpt without the packet line: the start line
                    // itself, with its prefix.
                    open = Some((stamp.to_owned(), number, vec![text.to_owned()]));
                }
            }
        } else if let Some((_, _, collected)) = open.as_mut() {
            // A runaway message (no End marker) is cut off, not kept whole.
            if collected.len() < MAX_MESSAGE_LINES {
                collected.push(line);
            }
        }
        next = lines.next_line().map_err(io)?;
    }
    if let Some((stamp, at, collected)) = open.take() {
        push_message(emit, &collected, file, at, Some(stamp))?;
    }
    Ok(())
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
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let io = InputError::io(file);
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
            if let Some((stamp, at, collected, _)) = record.take() {
                let refs: Vec<&str> = collected.iter().map(String::as_str).collect();
                if let Some(mut message) = SipMessage::parse(&refs, file, at, stamp) {
                    if inline_body {
                        message.body_line = message.body_line.saturating_sub(1);
                    }
                    emit(Item::Sip(message))?;
                }
            }
        } else if let Some((_, at, collected, in_body)) = record.as_mut() {
            if collected.len() >= MAX_MESSAGE_LINES {
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
    Ok(())
}
