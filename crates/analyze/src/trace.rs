//! `edgeice call --trace` files (the format is `docs/call-trace.md`): one
//! JSON object per line, from a `start` line to the end of the command,
//! written by one side of a call. A trace is read into a [`Trace`] — that
//! side's candidates, the remote candidates it learned, its gathering
//! errors and a timeline of checks, selections and states — and one or two
//! traces make a call: two belong together when one's `local_ufrag` is the
//! other's `remote_ufrag`.
//!
//! The format may grow: unknown fields and events are ignored. A line that
//! is not a JSON object, or whose `event` or `t_ms` is missing or of the
//! wrong type, is an error naming the line.

use std::collections::BTreeSet;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::call::{Call, Event, MAX_TIMELINE, Side};
use crate::diagnose::{Finding, Severity, turn_auth_failed, turn_error};
use crate::input::{Emit, InputError, Item, Lines};
use crate::sdp::{Description, Media};
use crate::sip::Evidence;

/// Candidates kept per side of a trace; an agent gathers a handful.
const MAX_CANDIDATES: usize = 500;
/// Gathering errors kept per trace.
const MAX_GATHER_ERRORS: usize = 50;

/// One side of a call, as its `edgeice call --trace` file tells it.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The file.
    pub file: String,
    /// The line of its `start` event.
    pub line: usize,
    /// `controlling` or `controlled` (as written, when it is neither).
    pub role: String,
    /// The tool that wrote it.
    pub tool: Option<String>,
    /// This side's ICE username fragment.
    pub local_ufrag: String,
    /// The other side's, once its description was read.
    pub remote_ufrag: Option<String>,
    /// The line of the `remote-description` event.
    pub remote_line: Option<usize>,
    /// Local candidates: (line, `a=candidate:...`).
    pub local: Vec<(usize, String)>,
    /// Remote candidates learned: (line, `a=candidate:...`).
    pub remote: Vec<(usize, String)>,
    /// Gathering errors, in order.
    pub gather_errors: Vec<GatherError>,
    /// What happened, in order: (milliseconds since start, line, what).
    pub events: Vec<(f64, usize, String)>,
    /// Events left out past the timeline's bound.
    pub events_omitted: usize,
    /// A selected pair was replaced by a better one.
    pub promoted: bool,
    /// The agent's state went to `failed`: (line, reason).
    pub failed: Option<(usize, String)>,
    /// Checks that succeeded or failed (at most
    /// [`crate::pairs::MAX_CHECKS`]).
    pub checks: Vec<crate::pairs::PairCheck>,
}

/// A STUN/TURN server that gave no candidate.
#[derive(Clone, Debug)]
pub struct GatherError {
    /// The line.
    pub line: usize,
    /// The server's URL.
    pub server: String,
    /// The STUN error code, absent on timeout or socket errors.
    pub code: Option<u16>,
    /// Why, in the agent's words.
    pub reason: String,
    /// The line as written.
    pub text: String,
}

/// Whether `line` is the first line of a trace.
pub fn is_start(line: &str) -> bool {
    // Cheap tests first: most first lines are not JSON at all.
    line.starts_with('{')
        && line.contains("\"event\"")
        && line.contains("\"start\"")
        && serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v.get("event").and_then(Value::as_str) == Some("start"))
}

/// One line's object, with typed access to its fields.
struct Fields<'a> {
    file: &'a str,
    line: usize,
    map: Map<String, Value>,
}

impl Fields<'_> {
    fn malformed(&self, reason: String) -> InputError {
        InputError::Malformed {
            file: self.file.to_owned(),
            line: self.line,
            reason,
        }
    }

    /// A string field; absent or `null` is `None`.
    fn text(&self, name: &str) -> Result<Option<&str>, InputError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.malformed(format!("\"{name}\" should be a string, not {other}")))
            }
        }
    }

    fn required_text(&self, name: &str) -> Result<&str, InputError> {
        self.text(name)?
            .ok_or_else(|| self.malformed(format!("no \"{name}\" field")))
    }

    /// A number field; absent or `null` is `None`.
    fn number(&self, name: &str) -> Result<Option<f64>, InputError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => {
                Err(self.malformed(format!("\"{name}\" should be a number, not {other}")))
            }
        }
    }

    /// A STUN error code: an integer from 300 to 699.
    fn code(&self) -> Result<Option<u16>, InputError> {
        match self.map.get("code") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|c| (300..700).contains(c))
                .map(|c| Some(c as u16))
                .ok_or_else(|| self.malformed(format!("\"code\" {n} is not a STUN error code"))),
            Some(other) => Err(self.malformed(format!("\"code\" should be a number, not {other}"))),
        }
    }

    /// A `{local, remote}` pair object (of `promoted`).
    fn pair(&self, name: &str) -> Result<Option<(String, String)>, InputError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => {
                let get = |side: &str| o.get(side).and_then(Value::as_str).unwrap_or("?");
                Ok(Some((
                    short_candidate(get("local")),
                    short_candidate(get("remote")),
                )))
            }
            Some(other) => Err(self.malformed(format!(
                "\"{name}\" should be an object with local and remote, not {other}"
            ))),
        }
    }
}

/// Parses one line into its object, `event` and `t_ms`.
fn parse_line<'f>(file: &'f str, line: usize, text: &str) -> Result<(Fields<'f>, f64), InputError> {
    let malformed = |reason: String| InputError::Malformed {
        file: file.to_owned(),
        line,
        reason,
    };
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(malformed("not a JSON object".into())),
        Err(e) => return Err(malformed(format!("not JSON ({e})"))),
    };
    let fields = Fields { file, line, map };
    fields.required_text("event")?;
    let t_ms = fields
        .number("t_ms")?
        .ok_or_else(|| fields.malformed("no \"t_ms\" field".into()))?;
    Ok((fields, t_ms))
}

/// A candidate attribute value in a few words: `relay 198.51.100.7:61002 udp`.
fn short_candidate(text: &str) -> String {
    let line = format!("a={text}");
    match edgeice_candidate::Candidate::parse(&line) {
        Ok(c) => format!(
            "{} {}:{} {}",
            c.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
            c.address,
            c.port,
            c.transport
        ),
        Err(_) => text.to_owned(),
    }
}

/// The candidate as an SDP attribute line, as the other readers keep them.
fn as_attribute(text: &str) -> String {
    if text.starts_with("a=") {
        text.to_owned()
    } else {
        format!("a={text}")
    }
}

impl Trace {
    fn new(file: &str, line: usize, start: &Fields<'_>) -> Result<Self, InputError> {
        Ok(Trace {
            file: file.to_owned(),
            line,
            role: start.text("role")?.unwrap_or("controlling").to_owned(),
            tool: start.text("tool")?.map(str::to_owned),
            local_ufrag: start.required_text("local_ufrag")?.to_owned(),
            remote_ufrag: None,
            remote_line: None,
            local: Vec::new(),
            remote: Vec::new(),
            gather_errors: Vec::new(),
            events: Vec::new(),
            events_omitted: 0,
            promoted: false,
            failed: None,
            checks: Vec::new(),
        })
    }

    /// Whether `other` is the other end of this trace's call.
    pub fn belongs_with(&self, other: &Trace) -> bool {
        other.remote_ufrag.as_deref() == Some(self.local_ufrag.as_str())
            || self.remote_ufrag.as_deref() == Some(other.local_ufrag.as_str())
    }

    fn event(&mut self, t_ms: f64, line: usize, what: String) {
        if self.events.len() < MAX_TIMELINE {
            self.events.push((t_ms, line, what));
        } else {
            self.events_omitted += 1;
        }
    }

    /// Takes one line's event into account.
    fn take(&mut self, fields: &Fields<'_>, t_ms: f64, text: &str) -> Result<(), InputError> {
        let line = fields.line;
        let what = match fields.required_text("event")? {
            "candidate" => {
                let candidate = fields.required_text("candidate")?;
                let side = fields.text("side")?.unwrap_or("local");
                let list = if side == "remote" {
                    &mut self.remote
                } else {
                    &mut self.local
                };
                if list.len() < MAX_CANDIDATES {
                    list.push((line, as_attribute(candidate)));
                }
                let from = fields
                    .text("server")?
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default();
                let learned = if matches!(fields.map.get("learned"), Some(Value::Bool(true))) {
                    " (learned from a check)"
                } else {
                    ""
                };
                format!(
                    "{side} candidate {}{from}{learned}",
                    short_candidate(candidate)
                )
            }
            "gather-error" => {
                let server = fields.text("server")?.unwrap_or("a server").to_owned();
                let code = fields.code()?;
                let reason = fields.text("reason")?.unwrap_or("").to_owned();
                let what = match code {
                    Some(code) => format!("gathering from {server} failed: {code} {reason}"),
                    None => format!("no answer from {server}: {reason}"),
                };
                if self.gather_errors.len() < MAX_GATHER_ERRORS {
                    self.gather_errors.push(GatherError {
                        line,
                        server,
                        code,
                        reason,
                        text: text.to_owned(),
                    });
                }
                what
            }
            "end-of-candidates" => format!(
                "end of {} candidates",
                fields.text("side")?.unwrap_or("local")
            ),
            "remote-description" => {
                let ufrag = fields.text("remote_ufrag")?.unwrap_or("").to_owned();
                let lite = matches!(fields.map.get("ice_lite"), Some(Value::Bool(true)));
                let what = format!(
                    "remote description: ufrag {ufrag}{}",
                    if lite { " (ICE lite)" } else { "" }
                );
                self.remote_ufrag = Some(ufrag);
                self.remote_line = Some(line);
                what
            }
            "check" => {
                let state = fields.required_text("state")?;
                // Waiting and in-progress are every pair's first steps:
                // the outcome is the story.
                if !matches!(state, "succeeded" | "failed") {
                    return Ok(());
                }
                let endpoint = |text: Option<&str>| {
                    edgeice_candidate::Candidate::parse(&format!("a={}", text.unwrap_or("")))
                        .ok()
                        .map(|c| crate::pairs::endpoint(&c))
                };
                if let (Some(local), Some(remote)) = (
                    endpoint(fields.text("local")?),
                    endpoint(fields.text("remote")?),
                ) && self.checks.len() < crate::pairs::MAX_CHECKS
                {
                    self.checks.push(crate::pairs::PairCheck {
                        local,
                        remote,
                        succeeded: state == "succeeded",
                    });
                }
                let mut what = format!(
                    "check {state}: {} → {}",
                    short_candidate(fields.text("local")?.unwrap_or("?")),
                    short_candidate(fields.text("remote")?.unwrap_or("?"))
                );
                if let Some(rtt) = fields.number("rtt_ms")? {
                    what.push_str(&format!(", rtt {rtt} ms"));
                }
                if let Some(code) = fields.code()? {
                    what.push_str(&format!(", error {code}"));
                }
                if let Some(reason) = fields.text("reason")? {
                    what.push_str(&format!(", {reason}"));
                }
                if matches!(fields.map.get("nominated"), Some(Value::Bool(true))) {
                    what.push_str(", nominated");
                }
                what
            }
            "selected" => format!(
                "selected: {} → {}",
                short_candidate(fields.text("local")?.unwrap_or("?")),
                short_candidate(fields.text("remote")?.unwrap_or("?"))
            ),
            "promoted" => {
                self.promoted = true;
                let pair = |p: Option<(String, String)>| {
                    p.map(|(l, r)| format!("{l} → {r}"))
                        .unwrap_or_else(|| "?".into())
                };
                format!(
                    "promoted: from {} to {} ({})",
                    pair(fields.pair("from")?),
                    pair(fields.pair("to")?),
                    fields.text("reason")?.unwrap_or("no reason given")
                )
            }
            "state" => {
                let state = fields.required_text("state")?;
                let reason = fields.text("reason")?;
                if state == "failed" && self.failed.is_none() {
                    self.failed = Some((line, reason.unwrap_or("").to_owned()));
                }
                match reason {
                    Some(reason) => format!("state {state} ({reason})"),
                    None => format!("state {state}"),
                }
            }
            // A role conflict (RFC 8445 §7.3.1.1) switched the agent's
            // role: the side it plays in the call is the new one.
            "role" => {
                let role = fields.required_text("role")?;
                self.role = role.to_owned();
                format!("role conflict: now {role}")
            }
            "data" => {
                let count = |name| -> Result<String, InputError> {
                    Ok(fields
                        .number(name)?
                        .map_or_else(|| "?".to_owned(), |n| n.to_string()))
                };
                format!(
                    "media: {} sent, {} received",
                    count("sent")?,
                    count("received")?
                )
            }
            // A second start: another call appended to the same file is
            // handled by the reader; other events are newer than this
            // reader and ignored.
            _ => return Ok(()),
        };
        self.event(t_ms, line, what);
        Ok(())
    }
}

/// Reads a trace whose first line is `first`; every `start` line begins a
/// new trace (two runs appended to one file).
pub(crate) fn read<R: BufRead>(
    file: &str,
    first: (usize, String),
    lines: &mut Lines<R>,
    emit: &mut Emit<'_>,
) -> Result<(), InputError> {
    let io = InputError::io(file);
    let mut current: Option<Trace> = None;
    let mut next = Some(first);
    while let Some((number, text)) = next {
        let text = text.trim();
        if !text.is_empty() {
            let (fields, t_ms) = parse_line(file, number, text)?;
            if fields.text("event")? == Some("start") {
                if let Some(done) = current.take() {
                    emit(Item::Trace(Box::new(done)))?;
                }
                let mut trace = Trace::new(file, number, &fields)?;
                trace.event(
                    t_ms,
                    number,
                    format!(
                        "start: {} agent, ufrag {}{}",
                        trace.role,
                        trace.local_ufrag,
                        trace
                            .tool
                            .as_deref()
                            .map(|t| format!(" ({t})"))
                            .unwrap_or_default()
                    ),
                );
                current = Some(trace);
            } else if let Some(trace) = current.as_mut() {
                trace.take(&fields, t_ms, text)?;
            } else {
                return Err(InputError::Malformed {
                    file: file.to_owned(),
                    line: number,
                    reason: "the first event of a trace must be \"start\"".into(),
                });
            }
        }
        next = lines.next_line().map_err(io)?;
    }
    match current {
        Some(trace) => emit(Item::Trace(Box::new(trace))),
        None => Ok(()),
    }
}

/// A side of the call from its own trace.
fn local_side(trace: &Trace) -> Side {
    side(
        trace.role.clone(),
        format!("{}, ufrag {}", trace.file, trace.local_ufrag),
        trace,
        trace.line,
        Some(trace.local_ufrag.clone()),
        trace.local.clone(),
    )
}

/// The other side as a lone trace learned it.
fn remote_side(trace: &Trace) -> Side {
    let role = match trace.role.as_str() {
        "controlling" => "controlled",
        _ => "controlling",
    };
    let ufrag = trace.remote_ufrag.clone().unwrap_or_default();
    side(
        role.to_owned(),
        format!("the peer of {}, ufrag {ufrag}", trace.file),
        trace,
        trace.remote_line.unwrap_or(trace.line),
        Some(ufrag),
        trace.remote.clone(),
    )
}

fn side(
    role: String,
    party: String,
    trace: &Trace,
    line: usize,
    ufrag: Option<String>,
    candidates: Vec<(usize, String)>,
) -> Side {
    Side {
        role: match role.as_str() {
            "controlled" => "controlled",
            _ => "controlling",
        },
        party,
        file: trace.file.clone(),
        line,
        timestamp: None,
        fallback_only: false,
        media_location: None,
        description: Description {
            media: vec![Media {
                // Traces name no media: the call's one ICE stream.
                kind: "ICE".into(),
                ufrag,
                // Traces never write passwords; the agent had them.
                has_pwd: true,
                candidates,
                remote_candidates: false,
                connection: None,
            }],
        },
    }
}

/// The call that one trace, or two traces of its two ends, tell. The
/// controlling side is the `offer`, the controlled the `answer`; with one
/// trace the other side is what it learned. Each trace's clock starts at
/// its own `start`: the timeline interleaves two traces as if they started
/// together, which is close for two agents started by one test, and each
/// side's own order is exact either way.
pub(crate) fn call_of(first: Trace, second: Option<Trace>) -> Call {
    // The controlling side first: it is the offer.
    let (first, second) = match second {
        Some(other) if first.role != "controlling" && other.role == "controlling" => {
            (other, Some(first))
        }
        second => (first, second),
    };
    let (offer, answer) = match &second {
        Some(other) => (local_side(&first), local_side(other)),
        None if first.role == "controlling" => (local_side(&first), remote_side(&first)),
        None => (remote_side(&first), local_side(&first)),
    };
    let traces: Vec<Trace> = std::iter::once(first).chain(second).collect();
    let call_id = format!(
        "ice:{}",
        traces
            .iter()
            .map(|t| t.local_ufrag.as_str())
            .collect::<Vec<_>>()
            .join("/")
    );
    let two = traces.len() > 1;
    let mut events: Vec<(f64, Event)> = Vec::new();
    let mut omitted = 0;
    for trace in &traces {
        omitted += trace.events_omitted;
        for (t_ms, line, what) in &trace.events {
            events.push((
                *t_ms,
                Event {
                    timestamp: Some(format!("+{:.3} s", t_ms / 1000.0)),
                    what: if two {
                        format!("[{}] {what}", trace.role)
                    } else {
                        what.clone()
                    },
                    file: trace.file.clone(),
                    line: *line,
                    diagnostics: Vec::new(),
                },
            ));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    omitted += events.len().saturating_sub(MAX_TIMELINE);
    events.truncate(MAX_TIMELINE);
    let mut findings = Vec::new();
    for trace in &traces {
        gather_findings(trace, &call_id, &mut findings);
    }
    Call {
        call_id,
        source: "trace",
        offer: Some(offer),
        answer: Some(answer),
        timeline: events.into_iter().map(|(_, e)| e).collect(),
        timeline_omitted: omitted,
        promoted: traces.iter().any(|t| t.promoted),
        seconds_to_bye: None,
        ice_failed: traces.iter().any(|t| t.failed.is_some()),
        connected: false,
        browser: None,
        end: "complete",
        findings,
        checks: traces
            .iter()
            .flat_map(|t| t.checks.iter().cloned())
            .take(crate::pairs::MAX_CHECKS)
            .collect(),
    }
}

/// Findings from a trace's gathering errors: refused credentials, other
/// TURN errors, and servers that never answered.
fn gather_findings(trace: &Trace, call_id: &str, findings: &mut Vec<Finding>) {
    let who = format!("the {} agent of {}", trace.role, trace.file);
    let evidence = |e: &GatherError| Evidence {
        file: trace.file.clone(),
        line: e.line,
        text: e.text.clone(),
    };
    let call = Some(call_id.to_owned());
    let refused: Vec<&GatherError> = trace
        .gather_errors
        .iter()
        .filter(|e| matches!(e.code, Some(401 | 441)))
        .collect();
    if !refused.is_empty() {
        let servers: BTreeSet<String> = refused
            .iter()
            .map(|e| format!("{} from {}", e.code.unwrap_or(401), e.server))
            .collect();
        findings.push(turn_auth_failed(
            &who,
            &servers.into_iter().collect::<Vec<_>>().join(", "),
            call.clone(),
            refused.into_iter().map(evidence).collect(),
        ));
    }
    let others: Vec<&GatherError> = trace
        .gather_errors
        .iter()
        .filter(|e| e.code.is_some_and(|c| c != 401 && c != 441))
        .collect();
    if !others.is_empty() {
        let codes: BTreeSet<u16> = others.iter().filter_map(|e| e.code).collect();
        findings.push(turn_error(
            &codes,
            call.clone(),
            others.into_iter().map(evidence).collect(),
        ));
    }
    let silent: Vec<&GatherError> = trace
        .gather_errors
        .iter()
        .filter(|e| e.code.is_none())
        .collect();
    if !silent.is_empty() {
        let servers: BTreeSet<&str> = silent.iter().map(|e| e.server.as_str()).collect();
        let reasons: BTreeSet<&str> = silent
            .iter()
            .map(|e| e.reason.as_str())
            .filter(|r| !r.is_empty())
            .collect();
        findings.push(Finding {
            code: "server-unreachable",
            severity: Severity::Warning,
            message: format!(
                "{who} got no answer from {}{}: no server-reflexive or relay candidate came from it",
                servers.into_iter().collect::<Vec<_>>().join(", "),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.into_iter().collect::<Vec<_>>().join("; "))
                }
            ),
            fix: "Check the server's address and port in the agent's configuration, that the server is running, and that firewalls on the way let UDP (and TCP/TLS, if used) to its port through from the agent's network.".into(),
            call_id: call,
            evidence: silent.into_iter().map(evidence).collect(),
        });
    }
}
