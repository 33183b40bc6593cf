//! Calls, rebuilt from their SIP messages: the offer and the answer, and
//! the timeline between INVITE and BYE. A call is built as its messages
//! arrive (`CallBuilder`), so that it can be finished — diagnosed,
//! reported and dropped — as soon as it ends.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diagnose::Finding;
use crate::input::{Format, Item};
use crate::sdp::{self, Description};
use crate::sip::SipMessage;
use crate::stream::Summary;

/// One side's description of the media: an offer, an answer, or a bare SDP.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// `offer`, `answer` or `description`.
    pub role: &'static str,
    /// Who sent it (the From of a request, the To of a response).
    pub party: String,
    /// Where it was read.
    pub file: String,
    /// The line of its message (or of the SDP).
    pub line: usize,
    /// When the log says it was sent or received.
    pub timestamp: Option<String>,
    /// Only the OCS 2007 fallback part was there.
    pub fallback_only: bool,
    /// Where a Lync/Skype for Business client says its media is
    /// (`ms-endpoint-location-data: …;ms-media-location-type=Intranet`):
    /// `Intranet` or `Internet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_location: Option<String>,
    /// The media and candidates.
    pub description: Description,
}

/// One step of a call.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// When, if the log says.
    pub timestamp: Option<String>,
    /// The start line of the message.
    pub what: String,
    /// Where it was read.
    pub file: String,
    /// Its line.
    pub line: usize,
    /// Its `ms-client-diagnostics` / `ms-diagnostics` headers, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<crate::sip::MsDiagnostics>,
}

/// One call (one Call-ID, one webrtc-internals peer connection, or one or
/// two `edgeice call --trace` files).
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    /// The Call-ID (for a trace, `ice:` and the ICE usernames).
    pub call_id: String,
    /// Where the call was read from: `sip`, `webrtc-internals` or `trace`.
    pub source: &'static str,
    /// The INVITE's description (for traces, the controlling agent's).
    pub offer: Option<Side>,
    /// The answer's description (18x or 2xx to the INVITE; for traces, the
    /// controlled agent's).
    pub answer: Option<Side>,
    /// Every message, in order (at most [`MAX_TIMELINE`]).
    pub timeline: Vec<Event>,
    /// Events left out of the timeline past [`MAX_TIMELINE`].
    #[serde(skip_serializing_if = "is_zero")]
    pub timeline_omitted: usize,
    /// A later INVITE carried `a=remote-candidates`, or the agent replaced
    /// its selected pair: the media moved to a chosen pair (what Lync
    /// engineers call candidate promotion).
    pub promoted: bool,
    /// Seconds from the 200 OK to the BYE, when both have timestamps.
    pub seconds_to_bye: Option<f64>,
    /// The agent itself reported ICE failed (webrtc-internals, traces).
    pub ice_failed: bool,
    /// The agent's own log shows the media connected (a `connected` ICE
    /// state, a selected pair whose checks succeeded): what the
    /// candidates suggest is then no reason to say nothing can connect.
    pub connected: bool,
    /// For a webrtc-internals peer connection, what the dump says beyond
    /// the descriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<Box<Browser>>,
    /// How the analysis closed the call: `bye`, `cancel`, `rejected` (a
    /// final non-2xx to the INVITE), `input-end` (still open when the input
    /// ended), `evicted` (still open when too many other calls were: it was
    /// finished early, and later messages of it start a new entry), or
    /// `complete` (a dump or trace, read whole).
    pub end: &'static str,
    /// The findings about this call.
    pub findings: Vec<Finding>,
    /// Connectivity checks the agents' own logs show, with their outcome
    /// (traces' checks, a browser's selected pair, the answered checks a
    /// capture shows between the call's candidates), at most
    /// [`crate::pairs::MAX_CHECKS`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::pairs::PairCheck>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Timeline events kept per call: a dialog that lives for hours (a
/// REGISTER refreshed all day) must not grow without bound.
pub const MAX_TIMELINE: usize = 200;

/// A file read, and as what.
#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    /// The name given.
    pub file: String,
    /// What it was recognised as.
    pub format: &'static str,
    /// What was read from it.
    pub read: crate::stream::ReadCounts,
}

/// Everything found in the inputs, in memory: the calls and STUN packets
/// next to the [`Summary`] (reached through `Deref`: `analysis.findings`).
/// For small inputs and tests; `edgeice analyze` streams instead (see
/// [`crate::stream`]), so that memory does not grow with the calls.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The calls, in the order they ended.
    pub calls: Vec<Call>,
    /// STUN and TURN messages seen in captures.
    pub stun: Vec<crate::capture::StunPacket>,
    /// Inputs, bare descriptions and findings.
    pub summary: Summary,
}

impl std::ops::Deref for Analysis {
    type Target = Summary;
    fn deref(&self) -> &Summary {
        &self.summary
    }
}

pub(crate) fn format_name(format: Format) -> &'static str {
    match format {
        Format::Sdp => "sdp",
        Format::SipTrace => "sip",
        Format::Uccapilog => "uccapilog",
        Format::ServerLog => "server-log",
        Format::WebrtcInternals => "webrtc-internals",
        Format::Capture => "capture",
        Format::CallTrace => "call-trace",
        Format::ServeLog => "edgeice-serve-log",
        Format::Excerpt => "excerpt",
    }
}

/// The URI of a From or To header (`<sip:a@b>;tag=x` → `sip:a@b`).
fn uri_of(header: &str) -> &str {
    match (header.find('<'), header.find('>')) {
        (Some(open), Some(close)) if open < close => &header[open + 1..close],
        _ => header.split(';').next().unwrap_or(header).trim(),
    }
}

/// The description a message carries: the real one, else the fallback.
fn side_of(message: &SipMessage, role: &'static str, party: &str) -> Option<Side> {
    let party = uri_of(party);
    let parts = message.sdp_parts();
    let (part, fallback_only) = match parts.iter().find(|p| !p.fallback) {
        Some(part) => (part, false),
        None => (parts.first()?, true),
    };
    Some(Side {
        role,
        party: party.to_owned(),
        file: message.file.clone(),
        line: message.line,
        timestamp: message.timestamp.clone(),
        fallback_only,
        media_location: message.header("ms-endpoint-location-data").and_then(|v| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix("ms-media-location-type="))
                .map(|t| t.trim().to_owned())
        }),
        description: sdp::parse(part.text, part.line),
    })
}

/// A bare SDP description as a side of no call.
pub(crate) fn description_side(file: String, line: usize, text: &str) -> Side {
    Side {
        role: "description",
        party: String::new(),
        file,
        line,
        timestamp: None,
        fallback_only: false,
        media_location: None,
        description: sdp::parse(text, line),
    }
}

/// Seconds since the start of the day of a `MM/DD/YYYY|HH:MM:SS.mmm` stamp
/// (days counted roughly, enough for an interval within a call).
fn seconds(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.split_once('|')?;
    let mut d = date.split('/').map(|x| x.parse::<f64>().ok());
    let (month, day) = (d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    Some(((month * 31.0 + day) * 24.0 + h) * 3600.0 + m * 60.0 + s)
}

/// Rebuilds calls from everything read, and diagnoses them, in memory.
/// The same path as the streaming one, with every call kept.
pub fn analyze(files: Vec<(String, Format, Vec<Item>)>) -> Analysis {
    let limits = crate::stream::Limits {
        keep_ended: files.len() > 1,
        ..crate::stream::Limits::default()
    };
    let mut analyzer = crate::stream::Analyzer::new(limits);
    let mut collect = crate::stream::Collect::default();
    for (file, format, items) in files {
        for item in items {
            // Collecting in memory cannot fail.
            let _ = analyzer.push(item, &mut collect);
        }
        analyzer.input(&file, format);
    }
    let summary = analyzer.finish(&mut collect);
    Analysis {
        calls: collect.calls,
        stun: collect.stun,
        summary,
    }
}

/// Where a call stands, as its messages arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Not ended (or not a call that ends: a REGISTER or SUBSCRIBE dialog).
    Open,
    /// Ended (BYE, CANCEL, a final non-2xx), its last transaction not yet
    /// complete: a response or ACK may still come.
    Ending,
    /// Ended, and its closing transaction is complete.
    Complete,
}

/// A call built message by message: each message updates the offer,
/// answer and timeline and is then dropped, so an open call costs its two
/// descriptions and a bounded timeline, not its messages.
#[derive(Debug)]
pub(crate) struct CallBuilder {
    call_id: String,
    offer: Option<Side>,
    answer: Option<Side>,
    timeline: Vec<Event>,
    timeline_omitted: usize,
    promoted: bool,
    answered: bool,
    answered_at: Option<f64>,
    bye_at: Option<f64>,
    /// How it ended, once it has.
    pub(crate) ended: Option<&'static str>,
    /// A final non-2xx to the INVITE was seen: the ACK completes the call.
    awaiting_ack: bool,
    /// The BYE was sent: its final response completes the call.
    awaiting_bye_response: bool,
    complete: bool,
    /// An INVITE was seen: a call, not an OPTIONS ping or a REGISTER.
    invited: bool,
}

impl CallBuilder {
    /// A call with no message yet.
    pub(crate) fn new(call_id: String) -> Self {
        CallBuilder {
            call_id,
            offer: None,
            answer: None,
            timeline: Vec::new(),
            timeline_omitted: 0,
            promoted: false,
            answered: false,
            answered_at: None,
            bye_at: None,
            ended: None,
            awaiting_ack: false,
            awaiting_bye_response: false,
            complete: false,
            invited: false,
        }
    }

    /// Whether an INVITE was seen: dialogs without one (OPTIONS pings,
    /// REGISTER, SUBSCRIBE) have no end to wait for.
    pub(crate) fn is_call(&self) -> bool {
        self.invited
    }

    /// Takes one message of the call into account.
    pub(crate) fn push(&mut self, message: &SipMessage) -> Progress {
        let is_invite = message.method() == Some("INVITE");
        self.invited |= is_invite || message.cseq_method() == Some("INVITE");
        if is_invite && self.offer.is_none() {
            self.offer = side_of(message, "offer", message.header("From").unwrap_or(""));
        } else if is_invite && message.body.contains("a=remote-candidates:") {
            self.promoted = true;
        }
        if let Some(status) = message.status() {
            match message.cseq_method() {
                Some("INVITE") => {
                    if (180..300).contains(&status) && self.answer.is_none() {
                        self.answer =
                            side_of(message, "answer", message.header("To").unwrap_or(""));
                    }
                    if (200..300).contains(&status) && !self.answered {
                        self.answered = true;
                        self.answered_at = message.timestamp.as_deref().and_then(seconds);
                    }
                    // A re-INVITE refused (491, 488) leaves the call up;
                    // only a refusal of the first one ends it.
                    if status >= 300 && !self.answered {
                        self.ended.get_or_insert("rejected");
                        self.awaiting_ack = true;
                    }
                }
                Some("BYE") if status >= 200 && self.awaiting_bye_response => {
                    self.complete = true;
                }
                _ => {}
            }
        }
        match message.method() {
            Some("BYE") => {
                if self.bye_at.is_none() {
                    self.bye_at = message.timestamp.as_deref().and_then(seconds);
                }
                self.ended.get_or_insert("bye");
                self.awaiting_bye_response = true;
            }
            Some("CANCEL") => {
                self.ended.get_or_insert("cancel");
            }
            Some("ACK") if self.awaiting_ack => self.complete = true,
            _ => {}
        }
        if self.timeline.len() < MAX_TIMELINE {
            self.timeline.push(Event {
                timestamp: message.timestamp.clone(),
                what: message.start_line.clone(),
                file: message.file.clone(),
                line: message.line,
                diagnostics: message.ms_diagnostics(),
            });
        } else {
            self.timeline_omitted += 1;
        }
        self.progress()
    }

    /// Where the call stands.
    pub(crate) fn progress(&self) -> Progress {
        match (self.ended, self.complete) {
            (None, _) => Progress::Open,
            (Some(_), false) => Progress::Ending,
            (Some(_), true) => Progress::Complete,
        }
    }

    /// The call, closed as `end` says when it has not ended by itself.
    pub(crate) fn build(self, end: &'static str) -> Call {
        let seconds_to_bye = match (self.answered_at, self.bye_at) {
            (Some(a), Some(b)) if b >= a => Some(((b - a) * 1000.0).round() / 1000.0),
            _ => None,
        };
        Call {
            call_id: self.call_id,
            source: "sip",
            offer: self.offer,
            answer: self.answer,
            timeline: self.timeline,
            timeline_omitted: self.timeline_omitted,
            promoted: self.promoted,
            seconds_to_bye,
            ice_failed: false,
            connected: false,
            browser: None,
            end: self.ended.unwrap_or(end),
            findings: Vec::new(),
            checks: Vec::new(),
        }
    }
}

/// What a browser's dump says about a peer connection beyond its
/// descriptions: its configuration, its errors and what it observed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Browser {
    /// Which ICE generation of the peer connection this call is (1 for
    /// the first; an ICE restart starts the next).
    pub generation: usize,
    /// How many generations the peer connection had.
    pub generations: usize,
    /// The ICE servers and policy the page configured.
    pub configuration: Option<crate::webrtc_internals::Configuration>,
    /// The browser's `icecandidateerror` events in this generation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidate_errors: Vec<crate::webrtc_internals::CandidateError>,
    /// The pair the ICE agent selected, as its stats describe it (last
    /// generation only: the stats are the connection's latest state).
    pub selected_pair: Option<String>,
    /// Candidate pairs per state, from the stats (last generation only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pair_states: BTreeMap<String, usize>,
}

/// The ICE ufrag of a description (its first media's).
fn ufrag_of(sdp: &Description) -> Option<&str> {
    sdp.media.iter().find_map(|m| m.ufrag.as_deref())
}

/// The ufrag a trickled candidate line names (`… ufrag kz5u …`).
fn candidate_ufrag(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "ufrag" {
            return words.next();
        }
    }
    None
}

/// A candidate line without its `a=` and its `ufrag` extension, to see
/// the same candidate in a description and in a trickled line.
fn candidate_key(line: &str) -> Vec<&str> {
    let line = line.strip_prefix("a=").unwrap_or(line);
    let mut key = Vec::new();
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "ufrag" {
            words.next();
        } else {
            key.push(w);
        }
    }
    key
}

/// A browser's peer connection as calls: one per ICE generation (an ICE
/// restart changes the ufrag and starts a new one; a renegotiation that
/// keeps the ufrag replaces the descriptions of its generation). Each has
/// its offer and answer (local or remote), with the candidates trickled
/// for it put in their media. Line numbers are positions in the dump's
/// update log.
pub(crate) fn calls_of_peer_connection(pc: crate::webrtc_internals::PeerConnection) -> Vec<Call> {
    let parsed: Vec<(usize, &'static str, String, Description)> = pc
        .descriptions
        .iter()
        .map(|(i, who, t, sdp)| (*i, *who, t.clone(), sdp::parse(sdp, 0)))
        .collect();
    // Where each generation starts, in update-log positions.
    let mut starts: Vec<usize> = Vec::new();
    let mut current: [Option<String>; 2] = [None, None];
    let mut last_offer = 0;
    for (i, who, t, d) in &parsed {
        let slot = usize::from(*who == "remote");
        let ufrag = ufrag_of(d).map(str::to_owned);
        if starts.is_empty() {
            starts.push(0);
        } else if ufrag.is_some() && current[slot].is_some() && ufrag != current[slot] {
            // An answer with a new ufrag answers the offer before it: the
            // generation starts there (the offer kept its own ufrag).
            let from = if t == "answer" && last_offer > starts[starts.len() - 1] {
                last_offer
            } else {
                *i
            };
            starts.push(from);
            current = [None, None];
        }
        if t == "offer" {
            last_offer = *i;
        }
        if ufrag.is_some() {
            current[slot] = ufrag;
        }
    }
    if starts.is_empty() {
        starts.push(0);
    }
    let generations = starts.len();
    let mut calls = Vec::with_capacity(generations);
    for (g, &from) in starts.iter().enumerate() {
        let to = starts.get(g + 1).copied().unwrap_or(usize::MAX);
        let within = |i: usize| i >= from && i < to;
        let last = g + 1 == generations;
        // The latest description of each type in the generation: a
        // renegotiation replaces what came before.
        let side = |sdp_type: &str| {
            parsed
                .iter()
                .rev()
                .find(|(i, _, t, _)| within(*i) && t == sdp_type)
                .map(|(index, who, t, d)| Side {
                    role: if t == "offer" { "offer" } else { "answer" },
                    party: (*who).to_owned(),
                    file: pc.file.clone(),
                    line: *index,
                    timestamp: None,
                    fallback_only: false,
                    media_location: None,
                    description: d.clone(),
                })
        };
        let (mut offer, mut answer) = (side("offer"), side("answer"));
        for (index, who, mline, line) in &pc.candidates {
            let target = [offer.as_mut(), answer.as_mut()]
                .into_iter()
                .flatten()
                .find(|s| s.party == *who);
            let Some(s) = target else { continue };
            // A candidate names its generation's ufrag; one that does not
            // belongs where it was trickled.
            let belongs = match candidate_ufrag(line) {
                Some(u) => {
                    ufrag_of(&s.description) == Some(u)
                        || (ufrag_of(&s.description).is_none() && within(*index))
                }
                None => within(*index),
            };
            if !belongs {
                continue;
            }
            if let Some(media) = s.description.media.get_mut(*mline) {
                let text = format!("a={line}");
                // Later descriptions repeat candidates trickled before them
                // (without the ufrag the trickled line names).
                let key = candidate_key(&text);
                if !media
                    .candidates
                    .iter()
                    .any(|(_, t)| candidate_key(t) == key)
                {
                    media.candidates.push((*index, text));
                }
            }
        }
        let events: Vec<&(usize, Option<String>, String)> =
            pc.events.iter().filter(|(i, _, _)| within(*i)).collect();
        // The last ICE or connection state of the generation decides.
        let states: Vec<String> = events
            .iter()
            .filter(|(_, _, w)| {
                let w = w.to_ascii_lowercase();
                w.starts_with("iceconnectionstatechange")
                    || w.starts_with("legacyiceconnectionstatechange")
                    || w.starts_with("connectionstatechange")
            })
            .filter_map(|(_, _, w)| {
                w.split_once(": ")
                    .map(|(_, s)| s.trim().to_ascii_lowercase())
            })
            .collect();
        let mut connected = states.iter().any(|s| s == "connected" || s == "completed");
        let mut checks = Vec::new();
        let mut ice_failed = states.iter().any(|s| s == "failed")
            && !matches!(
                states.last().map(String::as_str),
                Some("connected" | "completed")
            );
        let mut browser = Browser {
            generation: g + 1,
            generations,
            configuration: pc.config.clone(),
            candidate_errors: pc
                .errors
                .iter()
                .filter(|e| within(e.index))
                .cloned()
                .collect(),
            ..Browser::default()
        };
        if last {
            // Observed results beat guesses: a pair whose checks succeeded
            // is a connection, whatever the candidates suggest.
            if let Some((_, local, remote)) = pc.observed.selected_pair() {
                if let (Some(l), Some(r)) = (local, remote) {
                    let end = |c: &crate::webrtc_internals::ObservedCandidate| {
                        let address = if c.address.contains(':') {
                            format!("[{}]", c.address)
                        } else {
                            c.address.clone()
                        };
                        format!("{} {address}:{}", c.protocol.to_ascii_lowercase(), c.port)
                    };
                    checks.push(crate::pairs::PairCheck {
                        local: end(l),
                        remote: end(r),
                        succeeded: true,
                    });
                }
                connected = true;
                ice_failed = false;
                let describe = |c: Option<&crate::webrtc_internals::ObservedCandidate>| {
                    c.map_or("(unknown)".to_owned(), |c| c.describe())
                };
                browser.selected_pair = Some(format!(
                    "local {} ↔ remote {}",
                    describe(local),
                    describe(remote)
                ));
            } else if pc.observed.transport_state.as_deref() == Some("failed") {
                ice_failed = true;
            }
            browser.pair_states = pc
                .observed
                .pair_states()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        }
        let timeline = events
            .iter()
            .map(|(index, time, what)| Event {
                timestamp: time.clone(),
                what: what.clone(),
                file: pc.file.clone(),
                line: *index,
                diagnostics: Vec::new(),
            })
            .collect();
        calls.push(Call {
            call_id: if g == 0 {
                pc.id.clone()
            } else {
                format!("{} (ICE restart {g})", pc.id)
            },
            source: "webrtc-internals",
            offer,
            answer,
            timeline,
            timeline_omitted: 0,
            promoted: false,
            seconds_to_bye: None,
            ice_failed,
            connected,
            browser: Some(Box::new(browser)),
            end: "complete",
            findings: Vec::new(),
            checks,
        });
    }
    calls
}
