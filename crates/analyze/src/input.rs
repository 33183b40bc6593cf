//! Recognising a file's format and reading the SIP messages and SDP bodies
//! out of it, line by line.
//!
//! - bare SDP (`v=0` first);
//! - SIP traces: messages one after another;
//! - Lync/Skype for Business client logs (`.uccapilog`): lines
//!   `MM/DD/YYYY|HH:MM:SS.mmm PID:TID LEVEL :: text`, with each SIP message
//!   between a `Sending Packet` or `Data Received` line and an `End of` line.
//!
//! Only the messages are kept: a log's size does not matter, the number of
//! SIP messages in it does.

use std::io::BufRead;

use crate::sip::{SipMessage, is_start_line};

/// What a file held.
#[derive(Clone, Debug)]
pub enum Item {
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
pub fn read(file: &str, reader: impl BufRead) -> Result<(Format, Vec<Item>), InputError> {
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
        let refs: Vec<&str> = current.iter().map(String::as_str).collect();
        if let Some(m) = SipMessage::parse(&refs, file, at, None) {
            items.push(Item::Sip(m));
        }
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
                    let refs: Vec<&str> = collected.iter().map(String::as_str).collect();
                    if let Some(m) = SipMessage::parse(&refs, file, at, Some(stamp)) {
                        items.push(Item::Sip(m));
                    }
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
