//! Calls, rebuilt from their SIP messages: the offer and the answer, and
//! the timeline between INVITE and BYE. A call is built as its messages
//! arrive (`CallBuilder`), so that it can be finished — diagnosed,
//! reported and dropped — as soon as it ends.

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
    /// How the analysis closed the call: `bye`, `cancel`, `rejected` (a
    /// final non-2xx to the INVITE), `input-end` (still open when the input
    /// ended), `evicted` (still open when too many other calls were: it was
    /// finished early, and later messages of it start a new entry), or
    /// `complete` (a dump or trace, read whole).
    pub end: &'static str,
    /// The findings about this call.
    pub findings: Vec<Finding>,
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
        analyzer.input(&file, format);
        for item in items {
            // Collecting in memory cannot fail.
            let _ = analyzer.push(item, &mut collect);
        }
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
            end: self.ended.unwrap_or(end),
            findings: Vec::new(),
        }
    }
}

/// A browser's peer connection as a call: its offer and answer (local or
/// remote), with the candidates trickled after them put in their media.
/// Line numbers are positions in the dump's update log.
pub(crate) fn call_of_peer_connection(pc: crate::webrtc_internals::PeerConnection) -> Call {
    let side = |sdp_type: &str| {
        pc.descriptions
            .iter()
            .find(|(_, _, t, _)| t == sdp_type)
            .map(|(index, who, t, sdp)| Side {
                role: if t == "offer" { "offer" } else { "answer" },
                party: (*who).to_owned(),
                file: pc.file.clone(),
                line: *index,
                timestamp: None,
                fallback_only: false,
                description: sdp::parse(sdp, 0),
            })
    };
    let (mut offer, mut answer) = (side("offer"), side("answer"));
    for (index, who, mline, line) in &pc.candidates {
        let target = [offer.as_mut(), answer.as_mut()]
            .into_iter()
            .flatten()
            .find(|s| s.party == *who);
        if let Some(media) = target.and_then(|s| s.description.media.get_mut(*mline)) {
            media.candidates.push((*index, format!("a={line}")));
        }
    }
    let ice_failed = pc
        .events
        .iter()
        .any(|(_, _, what)| what.to_ascii_lowercase().contains("statechange: failed"));
    let timeline = pc
        .events
        .iter()
        .map(|(index, time, what)| Event {
            timestamp: time.clone(),
            what: what.clone(),
            file: pc.file.clone(),
            line: *index,
            diagnostics: Vec::new(),
        })
        .collect();
    Call {
        call_id: pc.id,
        source: "webrtc-internals",
        offer,
        answer,
        timeline,
        timeline_omitted: 0,
        promoted: false,
        seconds_to_bye: None,
        ice_failed,
        end: "complete",
        findings: Vec::new(),
    }
}
