//! Pasted excerpts: what people put in a ticket, a forum thread or a chat
//! after a failed call — candidate lines out of a console log, a signalling
//! message or a JSON dump (`candidate:…` anywhere on a line, several per
//! line when an SDP is quoted with `\r\n` escapes), the odd `m=`/`c=` line,
//! rows of the Trickle ICE sample page's table, and Lync/Skype for
//! Business diagnostics headers
//! (`ms-client-diagnostics: 23; reason="…"; CalleeMediaDebug="…"`).
//!
//! An excerpt becomes one call of its own (its Call-ID is the file name):
//! the candidates are its one description, each diagnostics header an
//! event of its timeline, so the same findings apply as to a full trace.
//! Lines that hold neither are skipped; a masked address (`x.x.x.x`,
//! `*.*.*.*`) is kept, to be reported as a malformed candidate.

use crate::call::{Call, Event, Side};
use crate::input::{Emit, InputError, Item, Lines};
use crate::sdp::{Description, Media};
use crate::sip::MsDiagnostics;

/// The media kind given to candidates that come before any `m=` line.
const UNNAMED_MEDIA: &str = "listed";

/// Candidates kept per excerpt (a runaway paste is cut off, not kept whole).
const MAX_CANDIDATES: usize = 10_000;

/// Lines a wrapped diagnostics header may run on for.
const MAX_WRAPPED_LINES: usize = 20;

/// Diagnostics headers kept per excerpt.
const MAX_DIAGNOSTICS: usize = 200;

/// The diagnostics header a line starts with, and its value.
fn diagnostics_header(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '"');
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    (name.eq_ignore_ascii_case("ms-client-diagnostics")
        || name.eq_ignore_ascii_case("ms-diagnostics")
        || name.eq_ignore_ascii_case("ms-diagnostics-public"))
    .then_some((name, value.trim()))
}

/// Whether a line starts something of its own (an SDP line, a candidate,
/// another header) rather than continuing a wrapped header.
fn starts_something(line: &str) -> bool {
    let t = line.trim_start();
    ["a=", "m=", "c=", "v="].iter().any(|p| t.starts_with(p))
        || !candidates_in(line).is_empty()
        || diagnostics_header(line).is_some()
}

/// Whether the first bytes of a file look like an excerpt rather than SIP
/// messages: a candidate or a diagnostics header, and no SIP start line.
pub(crate) fn looks_like(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut found = false;
    for line in text.lines() {
        if crate::sip::is_start_line(line.trim_end()) {
            return false;
        }
        found |= !candidates_in(line).is_empty()
            || trickle_ice_row(line).is_some()
            || diagnostics_header(line).is_some();
    }
    found
}

/// The candidate texts on one line: each `candidate:` that starts a
/// candidate (not `candidate: candidate:…`, the label of an old Chrome
/// dump), up to the end of the quoted string or the line.
fn candidates_in(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    // An SDP quoted in JSON or a log keeps its line breaks as `\r\n`.
    for piece in line.split("\\r\\n").flat_map(|p| p.split("\\n")) {
        let mut from = 0;
        while let Some(at) = piece[from..].find("candidate:") {
            let start = from + at;
            from = start + "candidate:".len();
            let rest = &piece[from..];
            if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/') {
                continue;
            }
            // Keep `a=` and `x-candidate-ipv6`'s prefix with the line.
            let begin = if piece[..start].ends_with("a=") {
                start - 2
            } else if piece[..start].ends_with("a=x-") {
                start - 4
            } else {
                start
            };
            let end = rest
                .find(['"', '\'', '}', ']', '\\', '<'])
                .map_or(piece.len(), |e| from + e);
            let text = piece[begin..end].trim_end_matches([' ', '\t', ',', ')', ';']);
            if text.split_ascii_whitespace().count() >= 6 {
                found.push(text);
            }
            from = end.max(from);
        }
    }
    found
}

/// A row of the Trickle ICE sample page's table, as people copy it
/// (`0.076<TAB>relay<TAB>5<TAB>udp<TAB>10.53.34.156<TAB>65535<TAB>5 | 32285 | 255`:
/// time, type, foundation, protocol, address, port, and the priority as
/// type preference | local preference | 256 − component), written as the
/// candidate line it stands for.
fn trickle_ice_row(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    let [
        time,
        kind,
        foundation,
        protocol,
        address,
        port,
        priority,
        ..,
    ] = fields[..]
    else {
        return None;
    };
    time.parse::<f64>().ok()?;
    if !matches!(kind, "host" | "srflx" | "prflx" | "relay") {
        return None;
    }
    port.parse::<u16>().ok()?;
    let parts: Vec<u32> = priority
        .split('|')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [type_preference, local_preference, complement] = parts[..] else {
        return None;
    };
    if type_preference > 126 || local_preference > 65535 || !(1..=255).contains(&complement) {
        return None;
    }
    let component = 256 - complement;
    let value = (type_preference << 24) | (local_preference << 8) | complement;
    Some(format!(
        "candidate:{foundation} {component} {protocol} {value} {address} {port} typ {kind}"
    ))
}

/// Reads an excerpt to its end and emits it as one call.
pub(crate) fn read<R: std::io::BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let io = InputError::io(file);
    let mut media: Vec<Media> = Vec::new();
    let mut timeline = Vec::new();
    let mut candidates = 0;
    let mut first_line = None;
    let mut next = Some(first);
    while let Some((number, line)) = next {
        if let Some((name, value)) = diagnostics_header(&line) {
            // A header wrapped for a blog or a ticket goes on until its
            // quotes close.
            let mut value = value.to_owned();
            let mut wrapped = 0;
            next = lines.next_line().map_err(io)?;
            while value.matches('"').count() % 2 == 1 && wrapped < MAX_WRAPPED_LINES {
                let Some((_, more)) = &next else { break };
                // A value the paste cut short: the candidates that follow
                // are not part of it.
                if starts_something(more) {
                    break;
                }
                value.push(' ');
                value.push_str(more.trim());
                wrapped += 1;
                next = lines.next_line().map_err(io)?;
            }
            if timeline.len() < MAX_DIAGNOSTICS {
                first_line.get_or_insert(number);
                timeline.push(Event {
                    timestamp: None,
                    what: format!("{name} (pasted)"),
                    file: file.to_owned(),
                    line: number,
                    diagnostics: vec![MsDiagnostics::parse(name, &value)],
                });
            }
            continue;
        } else {
            let trimmed = line.trim();
            if let Some(m) = trimmed.strip_prefix("m=") {
                media.push(Media {
                    kind: m.split_whitespace().next().unwrap_or("").to_owned(),
                    ..Media::default()
                });
            } else if let Some(c) = trimmed.strip_prefix("c=")
                && let Some(address) = c.split_whitespace().nth(2)
            {
                let address = address.split('/').next().unwrap_or(address).to_owned();
                if let Some(m) = media.last_mut() {
                    m.connection = Some((number, address));
                }
            } else if let Some(ufrag) = trimmed.strip_prefix("a=ice-ufrag:") {
                if let Some(m) = media.last_mut() {
                    m.ufrag = Some(ufrag.trim().to_owned());
                }
            } else if trimmed.starts_with("a=ice-pwd:")
                && let Some(m) = media.last_mut()
            {
                m.has_pwd = true;
            }
            let row = trickle_ice_row(&line);
            let found: Vec<String> = match &row {
                Some(candidate) => vec![candidate.clone()],
                None => candidates_in(&line)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            };
            for text in found {
                if candidates >= MAX_CANDIDATES {
                    break;
                }
                candidates += 1;
                first_line.get_or_insert(number);
                if media.is_empty() {
                    media.push(Media {
                        kind: UNNAMED_MEDIA.to_owned(),
                        ..Media::default()
                    });
                }
                if let Some(m) = media.last_mut() {
                    m.candidates.push((number, text));
                }
            }
        }
        next = lines.next_line().map_err(io)?;
    }
    let Some(line) = first_line else {
        return Err(InputError::Unrecognised(file.to_owned()));
    };
    // Sections that gained nothing (an `m=` line quoted on its own) say
    // nothing about the call.
    media.retain(|m| !m.candidates.is_empty() || m.connection.is_some());
    let offer = (!media.is_empty()).then(|| Side {
        role: "excerpt",
        party: String::new(),
        file: file.to_owned(),
        line,
        timestamp: None,
        fallback_only: false,
        media_location: None,
        description: Description { media },
    });
    emit(Item::Excerpt(Box::new(Call {
        call_id: file.to_owned(),
        source: "excerpt",
        offer,
        answer: None,
        timeline,
        timeline_omitted: 0,
        promoted: false,
        seconds_to_bye: None,
        ice_failed: false,
        connected: false,
        browser: None,
        end: "complete",
        findings: Vec::new(),
        checks: Vec::new(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_found_wherever_they_are_pasted() {
        assert_eq!(
            candidates_in(
                r#"  "value": "sdpMid: , sdpMLineIndex: 0, candidate: candidate:135 2 UDP 503316988 0.0.0.0 64812 typ relay raddr 172.17.0.1 rport 57505""#
            ),
            ["candidate:135 2 UDP 503316988 0.0.0.0 64812 typ relay raddr 172.17.0.1 rport 57505"]
        );
        assert_eq!(
            candidates_in(
                r"a=candidate:1 1 UDP 1 10.0.0.1 5000 typ host\r\na=candidate:2 1 UDP 1 192.0.2.1 5000 typ srflx raddr 10.0.0.1 rport 5000\r\n"
            )
            .len(),
            2
        );
        assert!(candidates_in("the candidate: is missing").is_empty());
        assert_eq!(
            trickle_ice_row("0.076\trelay\t5\tudp\t10.53.34.156\t65535\t5 | 32285 | 255\t\t")
                .unwrap(),
            "candidate:5 1 udp 92151295 10.53.34.156 65535 typ relay"
        );
        assert_eq!(trickle_ice_row("0.116\tDone"), None);
        assert_eq!(
            diagnostics_header("ms-client-diagnostics: 23; reason=\"x\""),
            Some(("ms-client-diagnostics", "23; reason=\"x\""))
        );
    }

    #[test]
    fn an_excerpt_is_told_from_sip() {
        assert!(looks_like(
            b"some text\ncandidate:1 1 udp 1 10.0.0.1 5 typ host\n"
        ));
        assert!(!looks_like(
            b"INVITE sip:a@b SIP/2.0\r\n\r\na=candidate:1 1 udp 1 10.0.0.1 5 typ host\r\n"
        ));
        assert!(!looks_like(b"nothing here\n"));
    }

    fn read_excerpt(text: &str) -> Call {
        let (format, items) = crate::input::read("paste.txt", text.as_bytes()).unwrap();
        assert_eq!(format, crate::input::Format::Excerpt);
        match items.into_iter().next() {
            Some(Item::Excerpt(call)) => *call,
            _ => panic!("no excerpt call"),
        }
    }

    #[test]
    fn a_runaway_paste_is_cut_off() {
        let mut text = String::new();
        for i in 0..(MAX_CANDIDATES + 500) {
            text.push_str(&format!(
                "candidate:{i} 1 udp 1 10.0.0.1 {} typ host\n",
                i % 60000 + 1
            ));
        }
        let call = read_excerpt(&text);
        let kept: usize = call
            .offer
            .unwrap()
            .description
            .media
            .iter()
            .map(|m| m.candidates.len())
            .sum();
        assert_eq!(kept, MAX_CANDIDATES);
    }

    #[test]
    fn a_wrapped_header_that_never_closes_stops() {
        let mut text = String::from("ms-client-diagnostics: 23; reason=\"never closed\n");
        for _ in 0..1000 {
            text.push_str("more words of the reason\n");
        }
        text.push_str("a=candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host\n");
        let call = read_excerpt(&text);
        assert_eq!(call.timeline.len(), 1);
        // The header took at most its limit of lines, and the candidate
        // after them is still read.
        assert!(
            call.timeline[0].diagnostics[0]
                .reason
                .as_deref()
                .unwrap()
                .len()
                < 30 * MAX_WRAPPED_LINES
        );
        assert_eq!(call.offer.unwrap().description.media[0].candidates.len(), 1);
    }

    #[test]
    fn many_headers_are_capped() {
        let text = "ms-diagnostics: 1018;reason=\"Timeout\"\n".repeat(MAX_DIAGNOSTICS * 3);
        assert_eq!(read_excerpt(&text).timeline.len(), MAX_DIAGNOSTICS);
    }
}
