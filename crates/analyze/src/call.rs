//! Calls, rebuilt from their SIP messages: the offer and the answer, and
//! the timeline between INVITE and BYE.

use serde::Serialize;

use crate::diagnose::{self, Finding};
use crate::input::{Format, Item};
use crate::sdp::{self, Description};
use crate::sip::SipMessage;

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

/// One call (one Call-ID).
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    /// The Call-ID.
    pub call_id: String,
    /// The INVITE's description.
    pub offer: Option<Side>,
    /// The answer's description (18x or 2xx to the INVITE).
    pub answer: Option<Side>,
    /// Every message, in order.
    pub timeline: Vec<Event>,
    /// A later INVITE carried `a=remote-candidates`: the media moved to a
    /// chosen pair (what Lync engineers call candidate promotion).
    pub promoted: bool,
    /// Seconds from the 200 OK to the BYE, when both have timestamps.
    pub seconds_to_bye: Option<f64>,
    /// The agent itself reported ICE failed (webrtc-internals).
    pub ice_failed: bool,
}

/// A file read, and as what.
#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    /// The name given.
    pub file: String,
    /// What it was recognised as.
    pub format: &'static str,
}

/// Everything found in the inputs.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// The files read.
    pub inputs: Vec<InputFile>,
    /// The calls found in SIP messages.
    pub calls: Vec<Call>,
    /// Bare SDP descriptions, outside any call.
    pub descriptions: Vec<Side>,
    /// STUN and TURN messages seen in captures.
    pub stun: Vec<crate::capture::StunPacket>,
    /// What is wrong, most severe first.
    pub findings: Vec<Finding>,
}

impl Analysis {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::Severity::Error)
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Sdp => "sdp",
        Format::SipTrace => "sip",
        Format::Uccapilog => "uccapilog",
        Format::ServerLog => "server-log",
        Format::WebrtcInternals => "webrtc-internals",
        Format::Capture => "capture",
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

/// Rebuilds calls from everything read, and diagnoses them.
pub fn analyze(files: Vec<(String, Format, Vec<Item>)>) -> Analysis {
    let mut inputs = Vec::new();
    let mut descriptions = Vec::new();
    let mut by_call: Vec<(String, Vec<SipMessage>)> = Vec::new();
    let mut peer_connections = Vec::new();
    let mut stun = Vec::new();
    for (file, format, items) in files {
        inputs.push(InputFile {
            file: file.clone(),
            format: format_name(format),
        });
        for item in items {
            match item {
                Item::Sdp { file, line, text } => descriptions.push(Side {
                    role: "description",
                    party: String::new(),
                    file,
                    line,
                    timestamp: None,
                    fallback_only: false,
                    description: sdp::parse(&text, line),
                }),
                Item::PeerConnection(pc) => peer_connections.push(call_of_peer_connection(pc)),
                Item::Stun(packet) => stun.push(packet),
                Item::Sip(message) => {
                    let id = message.call_id().unwrap_or("(no Call-ID)").to_owned();
                    match by_call.iter_mut().find(|(c, _)| *c == id) {
                        Some((_, messages)) => messages.push(message),
                        None => by_call.push((id, vec![message])),
                    }
                }
            }
        }
    }
    let mut calls: Vec<Call> = by_call
        .into_iter()
        .map(|(call_id, messages)| build_call(call_id, &messages))
        .collect();
    calls.extend(peer_connections);
    let findings = diagnose::diagnose(&calls, &descriptions, &stun);
    Analysis {
        inputs,
        calls,
        descriptions,
        stun,
        findings,
    }
}

fn build_call(call_id: String, messages: &[SipMessage]) -> Call {
    let mut offer = None;
    let mut answer = None;
    let mut promoted = false;
    let mut answered_at = None;
    let mut bye_at = None;
    for message in messages {
        let is_invite = message.method() == Some("INVITE");
        if is_invite && offer.is_none() {
            offer = side_of(message, "offer", message.header("From").unwrap_or(""));
        } else if is_invite && message.body.contains("a=remote-candidates:") {
            promoted = true;
        }
        if let Some(status) = message.status()
            && message.cseq_method() == Some("INVITE")
        {
            if (180..300).contains(&status) && answer.is_none() {
                answer = side_of(message, "answer", message.header("To").unwrap_or(""));
            }
            if (200..300).contains(&status) && answered_at.is_none() {
                answered_at = message.timestamp.as_deref().and_then(seconds);
            }
        }
        if message.method() == Some("BYE") && bye_at.is_none() {
            bye_at = message.timestamp.as_deref().and_then(seconds);
        }
    }
    let seconds_to_bye = match (answered_at, bye_at) {
        (Some(a), Some(b)) if b >= a => Some(((b - a) * 1000.0).round() / 1000.0),
        _ => None,
    };
    let timeline = messages
        .iter()
        .map(|m| Event {
            timestamp: m.timestamp.clone(),
            what: m.start_line.clone(),
            file: m.file.clone(),
            line: m.line,
            diagnostics: m.ms_diagnostics(),
        })
        .collect();
    Call {
        call_id,
        offer,
        answer,
        timeline,
        promoted,
        seconds_to_bye,
        ice_failed: false,
    }
}

/// A browser's peer connection as a call: its offer and answer (local or
/// remote), with the candidates trickled after them put in their media.
/// Line numbers are positions in the dump's update log.
fn call_of_peer_connection(pc: crate::webrtc_internals::PeerConnection) -> Call {
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
        offer,
        answer,
        timeline,
        promoted: false,
        seconds_to_bye: None,
        ice_failed,
    }
}
