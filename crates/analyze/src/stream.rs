//! The analysis as a stream: items go in one at a time, each call is
//! finished — built, diagnosed, handed to a [`Sink`] and dropped — as soon
//! as it ends, and what stays is bounded: the calls still open (at most
//! [`Limits::max_open_calls`]), a window of recently finished Call-IDs, and
//! a [`Summary`] whose finding list is capped per code. So memory stays
//! flat however large the log.
//!
//! A call ends with its BYE, its CANCEL or a final non-2xx to its INVITE;
//! it is finished once that last transaction completes (the BYE's response,
//! the ACK of the refusal), or when [`Limits::max_ending`] other calls have
//! ended since (logs often miss the last response). Calls that never end
//! are finished early, least recently active first, once more than
//! [`Limits::max_open_calls`] are open; such a call says `end: evicted`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;

use serde::Serialize;

use crate::call::{Call, CallBuilder, InputFile, Progress, Side};
use crate::capture::StunPacket;
use crate::diagnose::{Finding, Severity, StunFindings};
use crate::input::{Format, Item};
use crate::trace::Trace;

/// Where finished calls and STUN packets go: a report writer, or a
/// collection in memory.
pub trait Sink {
    /// A finished call, with its findings.
    fn call(&mut self, call: &Call) -> io::Result<()>;
    /// A STUN or TURN packet from a capture.
    fn stun(&mut self, packet: &StunPacket) -> io::Result<()>;
}

/// Keeps everything, for [`crate::analyze`] and tests.
#[derive(Debug, Default)]
pub struct Collect {
    /// The calls, in the order they were finished.
    pub calls: Vec<Call>,
    /// The STUN packets.
    pub stun: Vec<StunPacket>,
}

impl Sink for Collect {
    fn call(&mut self, call: &Call) -> io::Result<()> {
        self.calls.push(call.clone());
        Ok(())
    }
    fn stun(&mut self, packet: &StunPacket) -> io::Result<()> {
        self.stun.push(packet.clone());
        Ok(())
    }
}

/// The bounds of a streamed analysis.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Calls open at once; past it the least recently active is finished
    /// early. A busy front-end's log has hundreds of calls up at a time.
    pub max_open_calls: usize,
    /// Ended calls waiting for their last response or ACK.
    pub max_ending: usize,
    /// Keep ended calls until the input ends (within `max_open_calls`):
    /// with several files, the other side's log of a call comes later.
    pub keep_ended: bool,
    /// Findings listed in full per code in the [`Summary`]; the rest are
    /// counted (each call still carries its own).
    pub findings_per_code: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_open_calls: 2000,
            max_ending: 32,
            keep_ended: false,
            findings_per_code: 50,
        }
    }
}

/// What was read from one file (or, in [`ReadTotals`], from all).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReadCounts {
    /// SIP messages.
    pub sip_messages: usize,
    /// STUN and TURN messages (captures), classic ones included.
    pub stun_packets: usize,
    /// Of those, RFC 3489 classic STUN (no magic cookie).
    #[serde(skip_serializing_if = "is_zero")]
    pub classic_stun_packets: usize,
    /// Bare SDP descriptions.
    #[serde(skip_serializing_if = "is_zero")]
    pub descriptions: usize,
    /// webrtc-internals peer connections.
    #[serde(skip_serializing_if = "is_zero")]
    pub peer_connections: usize,
    /// `edgeice call --trace` traces.
    #[serde(skip_serializing_if = "is_zero")]
    pub traces: usize,
    /// `edgeice serve` session and refusal records.
    #[serde(skip_serializing_if = "is_zero")]
    pub serve_records: usize,
    /// For a capture: packets, link types, fragments, and where it stopped
    /// if it was damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureRead>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ReadCounts {
    /// Whether anything an analysis uses was read.
    pub fn is_empty(&self) -> bool {
        self.sip_messages == 0
            && self.stun_packets == 0
            && self.descriptions == 0
            && self.peer_connections == 0
            && self.traces == 0
            && self.serve_records == 0
    }
}

/// What was read from all the files.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReadTotals {
    /// Files read to their end or up to their damage.
    pub files: usize,
    /// Calls found.
    pub calls: usize,
    /// SIP messages.
    pub sip_messages: usize,
    /// STUN and TURN messages, classic ones included.
    pub stun_packets: usize,
    /// Of those, RFC 3489 classic STUN.
    pub classic_stun_packets: usize,
    /// Bare SDP descriptions.
    pub descriptions: usize,
    /// webrtc-internals peer connections.
    pub peer_connections: usize,
    /// `edgeice call --trace` traces.
    pub traces: usize,
    /// `edgeice serve` records.
    pub serve_records: usize,
    /// Capture packets.
    pub capture_packets: usize,
    /// Files that could not be read to their end (a damaged capture): each
    /// says where it stopped in `inputs`.
    pub files_stopped_early: usize,
}

impl ReadTotals {
    /// Whether anything an analysis uses was read.
    pub fn is_empty(&self) -> bool {
        self.sip_messages == 0
            && self.stun_packets == 0
            && self.descriptions == 0
            && self.peer_connections == 0
            && self.traces == 0
            && self.serve_records == 0
    }
}

/// What a report needs besides the calls, bounded whatever the input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// The files read.
    pub inputs: Vec<InputFile>,
    /// What was read, in all.
    pub read: ReadTotals,
    /// Bare SDP descriptions, outside any call (one per SDP file).
    pub descriptions: Vec<Side>,
    /// What is wrong, most severe first: every finding about the STUN
    /// traffic and bare descriptions, and about calls at most
    /// [`Limits::findings_per_code`] per code.
    pub findings: Vec<Finding>,
    /// Every finding counted by code, listed or not.
    pub finding_counts: BTreeMap<&'static str, usize>,
    /// Calls finished (the length of the report's `calls`).
    #[serde(rename = "call_count")]
    pub calls: usize,
    /// Calls (with an INVITE) finished early because too many were open;
    /// other dialogs (OPTIONS pings, REGISTER) are finished so silently.
    pub calls_evicted: usize,
    /// Responses and ACKs that came after their call was finished, and were
    /// left out.
    pub late_messages: usize,
    /// Error findings, listed or not.
    #[serde(skip)]
    errors: usize,
}

impl Summary {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// How many findings of `code` were left out of [`Summary::findings`].
    pub fn unlisted(&self, code: &str) -> usize {
        let listed = self.findings.iter().filter(|f| f.code == code).count();
        self.finding_counts
            .get(code)
            .copied()
            .unwrap_or(0)
            .saturating_sub(listed)
    }

    fn count(&mut self, finding: &Finding) -> usize {
        if finding.severity == Severity::Error {
            self.errors += 1;
        }
        let n = self.finding_counts.entry(finding.code).or_default();
        *n += 1;
        *n
    }
}

/// A call being read.
struct Open {
    builder: CallBuilder,
    /// When a message of it was last read (a counter, not a clock).
    last_active: u64,
    /// When it ended, if it has.
    ended_at: Option<u64>,
}

/// The streaming analyzer.
pub struct Analyzer {
    limits: Limits,
    open: HashMap<String, Open>,
    /// Messages read so far: the order of activity.
    tick: u64,
    /// The open calls by when they were last active (each tick is one
    /// message, so keys are unique): the least recently active is first.
    by_activity: BTreeMap<u64, String>,
    /// The ended calls in `open`, by when they ended.
    by_end: BTreeMap<u64, String>,
    /// Recently finished Call-IDs, to recognise the responses and ACKs
    /// that trail a finished call.
    finished: HashSet<String>,
    finished_order: VecDeque<String>,
    stun: StunFindings,
    /// The connectivity checks captures showed, for the calls they belong to.
    checks: crate::captured_checks::CapturedChecks,
    /// Traces waiting for the other side of their call.
    traces: Vec<Trace>,
    summary: Summary,
    /// Findings not about calls (STUN, descriptions), added at the end.
    global: Vec<Finding>,
    /// `edgeice serve` records: sessions and refusals.
    serve_log: crate::serve_log::ServeLog,
    /// What was read since the last [`Analyzer::input`]: the next file's.
    reading: ReadCounts,
}

/// Call-IDs remembered after their call is finished.
const MAX_FINISHED: usize = 4096;
/// Traces waiting for the other side of their call.
const MAX_WAITING_TRACES: usize = 256;

impl Analyzer {
    /// An analyzer with nothing read.
    pub fn new(limits: Limits) -> Self {
        Analyzer {
            limits,
            open: HashMap::new(),
            tick: 0,
            by_activity: BTreeMap::new(),
            by_end: BTreeMap::new(),
            finished: HashSet::new(),
            finished_order: VecDeque::new(),
            stun: StunFindings::default(),
            checks: Default::default(),
            traces: Vec::new(),
            summary: Summary::default(),
            global: Vec::new(),
            serve_log: Default::default(),
            reading: ReadCounts::default(),
        }
    }

    /// A file read (to its end, or to where a damaged capture stopped),
    /// and what it was recognised as: what was pushed since the previous
    /// call is counted as its.
    pub fn input(&mut self, file: &str, format: Format) {
        let read = std::mem::take(&mut self.reading);
        let totals = &mut self.summary.read;
        totals.files += 1;
        totals.sip_messages += read.sip_messages;
        totals.stun_packets += read.stun_packets;
        totals.classic_stun_packets += read.classic_stun_packets;
        totals.descriptions += read.descriptions;
        totals.peer_connections += read.peer_connections;
        totals.traces += read.traces;
        totals.serve_records += read.serve_records;
        if let Some(capture) = &read.capture {
            totals.capture_packets += capture.packets;
            if let Some(stopped) = &capture.stopped {
                totals.files_stopped_early += 1;
                self.global
                    .push(crate::capture::damaged(file, capture, stopped, &read));
            }
        }
        self.summary.inputs.push(InputFile {
            file: file.to_owned(),
            format: crate::call::format_name(format),
            read,
        });
    }

    /// Reads one item; finished calls and packets go to `sink`.
    pub fn push(&mut self, item: Item, sink: &mut dyn Sink) -> io::Result<()> {
        match &item {
            Item::Sip(_) => self.reading.sip_messages += 1,
            Item::Stun(packet) => {
                self.reading.stun_packets += 1;
                if packet.dialect == "rfc3489" {
                    self.reading.classic_stun_packets += 1;
                }
            }
            Item::Sdp { .. } => self.reading.descriptions += 1,
            Item::PeerConnection(_) => self.reading.peer_connections += 1,
            Item::Trace(_) => self.reading.traces += 1,
            Item::ServeRecord(_) => self.reading.serve_records += 1,
            Item::CaptureRead(..) | Item::Excerpt(_) => {}
        }
        match item {
            Item::CaptureRead(_, read) => {
                self.reading.capture = Some(read);
                Ok(())
            }
            Item::Sdp { file, line, text } => {
                let side = crate::call::description_side(file, line, &text);
                self.global
                    .extend(crate::diagnose::diagnose_description(&side));
                self.summary.descriptions.push(side);
                Ok(())
            }
            Item::PeerConnection(pc) => {
                for call in crate::call::calls_of_peer_connection(pc) {
                    self.emit(call, sink)?;
                }
                Ok(())
            }
            Item::Stun(packet) => {
                self.stun.push(&packet);
                self.checks.push(&packet);
                sink.stun(&packet)
            }
            Item::Trace(trace) => self.trace(*trace, sink),
            Item::Excerpt(call) => self.emit(*call, sink),
            Item::ServeRecord(record) => {
                self.serve_log.push(*record);
                Ok(())
            }
            Item::Sip(message) => self.sip(message, sink),
        }
    }

    fn sip(&mut self, message: crate::sip::SipMessage, sink: &mut dyn Sink) -> io::Result<()> {
        self.tick += 1;
        let id = message.call_id().unwrap_or("(no Call-ID)");
        if !self.open.contains_key(id) && self.finished.contains(id) {
            // The tail of a finished call's last transaction.
            if message.status().is_some() || message.method() == Some("ACK") {
                self.summary.late_messages += 1;
                return Ok(());
            }
        }
        let tick = self.tick;
        let open = self.open.entry(id.to_owned()).or_insert_with(|| Open {
            builder: CallBuilder::new(id.to_owned()),
            last_active: tick,
            ended_at: None,
        });
        // Keep the activity index in step: the entry moves to the end.
        self.by_activity.remove(&open.last_active);
        self.by_activity.insert(tick, id.to_owned());
        open.last_active = tick;
        let progress = open.builder.push(&message);
        if progress != Progress::Open && open.ended_at.is_none() {
            open.ended_at = Some(tick);
            self.by_end.insert(tick, id.to_owned());
        }
        if progress == Progress::Complete && !self.limits.keep_ended {
            self.close(id, "complete", sink)?;
        }
        if !self.limits.keep_ended && self.by_end.len() > self.limits.max_ending {
            self.finish_oldest(true, sink)?;
        }
        if self.open.len() > self.limits.max_open_calls {
            // Ended calls go first; only if none has, an open one.
            let ended = !self.by_end.is_empty();
            self.finish_oldest(ended, sink)?;
        }
        Ok(())
    }

    /// Finishes the call that ended first (`ended`), or the least recently
    /// active one.
    fn finish_oldest(&mut self, ended: bool, sink: &mut dyn Sink) -> io::Result<()> {
        let index = if ended {
            &self.by_end
        } else {
            &self.by_activity
        };
        match index.first_key_value().map(|(_, id)| id.clone()) {
            Some(id) => self.close(&id, "evicted", sink),
            None => Ok(()),
        }
    }

    /// Builds, diagnoses and hands over one open call.
    fn close(&mut self, id: &str, end: &'static str, sink: &mut dyn Sink) -> io::Result<()> {
        let Some(open) = self.open.remove(id) else {
            return Ok(());
        };
        self.by_activity.remove(&open.last_active);
        match open.ended_at {
            Some(at) => {
                self.by_end.remove(&at);
            }
            None if end == "evicted" && open.builder.is_call() => self.summary.calls_evicted += 1,
            None => {}
        }
        if self.finished_order.len() >= MAX_FINISHED
            && let Some(old) = self.finished_order.pop_front()
        {
            self.finished.remove(&old);
        }
        self.finished.insert(id.to_owned());
        self.finished_order.push_back(id.to_owned());
        self.emit(open.builder.build(end), sink)
    }

    /// Diagnoses a whole call, keeps its summary and hands it over. The
    /// findings its reader made (a trace's gathering errors) come first:
    /// they are causes, what the candidates show are consequences.
    fn emit(&mut self, mut call: Call, sink: &mut dyn Sink) -> io::Result<()> {
        let captured = self.checks.of(&call);
        call.checks.extend(captured);
        call.checks.truncate(crate::pairs::MAX_CHECKS);
        call.findings.extend(crate::diagnose::diagnose_call(&call));
        call.findings.sort_by_key(|f| f.severity);
        self.summary.calls += 1;
        for finding in &call.findings {
            if self.summary.count(finding) <= self.limits.findings_per_code {
                self.summary.findings.push(finding.clone());
            }
        }
        sink.call(&call)
    }

    /// A trace: the other side's trace may be waiting, else it waits.
    fn trace(&mut self, trace: Trace, sink: &mut dyn Sink) -> io::Result<()> {
        match self.traces.iter().position(|t| t.belongs_with(&trace)) {
            Some(at) => {
                let other = self.traces.swap_remove(at);
                self.emit(crate::trace::call_of(other, Some(trace)), sink)
            }
            None => {
                self.traces.push(trace);
                if self.traces.len() > MAX_WAITING_TRACES {
                    // Traces are one per run of `edgeice call`: this many
                    // unpaired ones is a pile of runs, not one call's two
                    // sides, and the oldest is reported alone.
                    let oldest = self.traces.remove(0);
                    return self.emit(crate::trace::call_of(oldest, None), sink);
                }
                Ok(())
            }
        }
    }

    /// Finishes what is still open and returns the summary.
    pub fn finish_all(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        // Oldest first, so that the report's order follows the input's.
        let mut left: Vec<(u64, String)> = self
            .open
            .iter()
            .map(|(id, o)| (o.ended_at.unwrap_or(o.last_active), id.clone()))
            .collect();
        left.sort();
        for (_, id) in left {
            self.close(&id, "input-end", sink)?;
        }
        for trace in std::mem::take(&mut self.traces) {
            self.emit(crate::trace::call_of(trace, None), sink)?;
        }
        Ok(())
    }

    /// Finishes everything (see [`Analyzer::finish_all`]) and returns the
    /// summary; an error from the sink ends the calls' reporting early.
    pub fn finish(mut self, sink: &mut dyn Sink) -> Summary {
        let _ = self.finish_all(sink);
        self.into_summary()
    }

    /// The summary, once everything is finished: the STUN findings first,
    /// then the rest, most severe first.
    pub fn into_summary(mut self) -> Summary {
        let mut global = self.stun.findings();
        global.append(&mut self.global);
        global.extend(std::mem::take(&mut self.serve_log).findings());
        for finding in &global {
            self.summary.count(finding);
        }
        global.append(&mut self.summary.findings);
        global.sort_by_key(|f| f.severity);
        self.summary.findings = global;
        self.summary.read.calls = self.summary.calls;
        self.summary
    }
}
