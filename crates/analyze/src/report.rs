//! Writing an analysis for people (text) and for scripts (JSON), call by
//! call as the analysis finishes them: [`TextReport`] and [`JsonReport`]
//! are [`Sink`]s. The text report puts its verdict first, so its call
//! sections wait in a spool (memory, then a temporary file) until the
//! summary is known; the JSON report streams its `calls` array straight to
//! its output, and writes what is known only at the end after it.

use std::fmt::Write as _;
use std::io::{self, Write};

use edgeice_candidate::{Candidate, CandidateType, Dialect, Priority, Transport};

use crate::call::{Analysis, Call, Side};
use crate::capture::StunPacket;
use crate::diagnose::Severity;
use crate::spool::Spool;
use crate::stream::{Sink, Summary};

/// The analysis as JSON (see `docs/analyze-json.md`), as `edgeice analyze
/// --format json` writes it.
pub fn json(analysis: &Analysis) -> String {
    let mut report = JsonReport::new(Vec::new());
    let written = replay(analysis, &mut report).and_then(|()| report.finish(analysis, None));
    match written {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("{{\"error\": \"{e}\"}}"),
    }
}

/// Hands an in-memory analysis's calls and packets to a sink.
fn replay(analysis: &Analysis, sink: &mut dyn Sink) -> io::Result<()> {
    for call in &analysis.calls {
        sink.call(call)?;
    }
    for packet in &analysis.stun {
        sink.stun(packet)?;
    }
    Ok(())
}

/// The analysis as text: the verdict first, then each call's candidates,
/// then every finding with its evidence and fix. With `explain`, each
/// candidate line is explained in words.
pub fn text(analysis: &Analysis, explain: bool) -> String {
    let mut report = TextReport::new(explain);
    let mut out = Vec::new();
    let written = replay(analysis, &mut report).and_then(|()| report.finish(analysis, &mut out));
    if let Err(e) = written {
        let _ = writeln!(out, "(report incomplete: {e})");
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The text report, written as calls are finished.
pub struct TextReport {
    explain: bool,
    calls: Spool,
    section: String,
}

impl TextReport {
    /// A report with no call yet; `explain` puts each candidate in words.
    pub fn new(explain: bool) -> Self {
        TextReport {
            explain,
            calls: Spool::default(),
            section: String::new(),
        }
    }

    /// Writes the whole report: verdict, calls, descriptions, findings.
    pub fn finish(self, summary: &Summary, out: &mut dyn Write) -> io::Result<()> {
        let mut head = String::new();
        verdict(&mut head, summary);
        out.write_all(head.as_bytes())?;
        self.calls.copy_into(out)?;
        let mut tail = String::new();
        for side in &summary.descriptions {
            side_text(&mut tail, side, self.explain);
            tail.push('\n');
        }
        notes(&mut tail, summary);
        findings_text(&mut tail, summary);
        out.write_all(tail.as_bytes())
    }
}

impl Sink for TextReport {
    fn call(&mut self, call: &Call) -> io::Result<()> {
        self.section.clear();
        call_text(&mut self.section, call, self.explain);
        self.calls.write_all(self.section.as_bytes())
    }

    fn stun(&mut self, _: &StunPacket) -> io::Result<()> {
        // The text report shows packets only as findings' evidence.
        Ok(())
    }
}

fn verdict(out: &mut String, summary: &Summary) {
    match summary.findings.first() {
        Some(top) if top.severity == Severity::Error => {
            let _ = writeln!(out, "Verdict: {} — {}", top.code, top.message);
            let _ = writeln!(out, "Fix: {}\n", top.fix);
        }
        Some(top) if top.severity == Severity::Warning => {
            let _ = writeln!(
                out,
                "Verdict: no error; warnings first: {} — {}\n",
                top.code, top.message
            );
        }
        Some(top) => {
            let _ = writeln!(
                out,
                "Verdict: no error or warning; notes first: {} — {}\n",
                top.code, top.message
            );
        }
        None if summary.read.is_empty() => {
            let _ = writeln!(
                out,
                "Verdict: nothing to analyze — no SIP message, SDP description, STUN packet, peer connection, trace or serve record in what was read.\n"
            );
        }
        None => {
            let _ = writeln!(out, "Verdict: nothing wrong found.\n");
        }
    }
    let _ = writeln!(out, "{}\n", what_was_read(summary));
}

/// `n thing`, `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One paragraph saying what the report is about: the files and what each
/// gave, and where a damaged one stopped (text and HTML).
pub fn what_was_read(summary: &Summary) -> String {
    let read = &summary.read;
    let mut parts = vec![
        count(read.files, "file", "files"),
        count(read.sip_messages, "SIP message", "SIP messages"),
        count(read.calls, "call", "calls"),
    ];
    let mut stun = count(read.stun_packets, "STUN packet", "STUN packets");
    if read.classic_stun_packets > 0 {
        stun.push_str(&format!(
            " ({} classic RFC 3489)",
            read.classic_stun_packets
        ));
    }
    parts.push(stun);
    for (n, one, many) in [
        (read.descriptions, "SDP description", "SDP descriptions"),
        (read.peer_connections, "peer connection", "peer connections"),
        (read.traces, "call trace", "call traces"),
        (read.serve_records, "serve record", "serve records"),
    ] {
        if n > 0 {
            parts.push(count(n, one, many));
        }
    }
    let mut text = format!("Read: {}.", parts.join(", "));
    for input in &summary.inputs {
        let Some(capture) = &input.read.capture else {
            continue;
        };
        let _ = write!(
            text,
            "\n  {}: {} ({}){}",
            input.file,
            count(capture.packets, "packet", "packets"),
            if capture.link_types.is_empty() {
                "no link type read".to_owned()
            } else {
                capture.link_types.join(", ")
            },
            if capture.fragments.fragments > 0 {
                let f = &capture.fragments;
                let mut s = format!(
                    ", {} from {}",
                    count(
                        f.reassembled,
                        "datagram reassembled",
                        "datagrams reassembled"
                    ),
                    count(f.fragments, "fragment", "fragments")
                );
                let lost = f.discarded_overlap
                    + f.discarded_timeout
                    + f.refused_over_limit
                    + f.incomplete_at_end;
                if lost > 0 {
                    let _ = write!(
                        s,
                        " ({} overlapping or inconsistent, {} timed out, {} over a limit, {} incomplete at the end)",
                        f.discarded_overlap,
                        f.discarded_timeout,
                        f.refused_over_limit,
                        f.incomplete_at_end
                    );
                }
                s
            } else {
                String::new()
            }
        );
        if let Some(stopped) = &capture.stopped {
            let _ = write!(
                text,
                "; STOPPED at byte {} after packet {}: {}",
                stopped.byte_offset, stopped.after_packet, stopped.reason
            );
        }
    }
    text
}

fn call_text(out: &mut String, call: &Call, explain: bool) {
    let _ = writeln!(out, "Call {}", call.call_id);
    for event in &call.timeline {
        let stamp = event.timestamp.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "  {stamp:23} {}  ({}:{})",
            event.what, event.file, event.line
        );
        for d in &event.diagnostics {
            let _ = writeln!(out, "  {:23}   {}", "", describe_diagnostics(d));
        }
    }
    if call.timeline_omitted > 0 {
        let _ = writeln!(out, "  ({} more messages not shown)", call.timeline_omitted);
    }
    if let Some(seconds) = call.seconds_to_bye {
        let promoted = if call.promoted {
            "after a promotion"
        } else {
            "with no promotion"
        };
        let _ = writeln!(out, "  BYE {seconds:.1} s after the answer, {promoted}");
    }
    match call.end {
        "evicted" if call.offer.is_some() || call.answer.is_some() => {
            let _ = writeln!(
                out,
                "  (still open when too many other calls were: finished early; later messages of it, if any, are another entry)"
            );
        }
        "input-end" if call.source == "sip" && call.offer.is_some() => {
            let _ = writeln!(out, "  (no end of the call in the input)");
        }
        _ => {}
    }
    for side in call.offer.iter().chain(call.answer.iter()) {
        side_text(out, side, explain);
    }
    if !call.findings.is_empty() {
        let codes: Vec<String> = call
            .findings
            .iter()
            .map(|f| format!("{} ({})", f.code, severity_name(f.severity)))
            .collect();
        let _ = writeln!(out, "  findings: {}", codes.join(", "));
    }
    out.push('\n');
}

fn notes(out: &mut String, summary: &Summary) {
    if summary.calls_evicted > 0 {
        let _ = writeln!(
            out,
            "Note: {} calls never ended while too many others were open; they were finished early (their `end` is `evicted`).\n",
            summary.calls_evicted
        );
    }
    if summary.late_messages > 0 {
        let _ = writeln!(
            out,
            "Note: {} responses or ACKs came after their call was finished and are left out of its timeline.\n",
            summary.late_messages
        );
    }
}

fn findings_text(out: &mut String, summary: &Summary) {
    if !summary.findings.is_empty() {
        let _ = writeln!(out, "Findings");
    }
    for finding in &summary.findings {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            severity_name(finding.severity),
            finding.code,
            finding.message
        );
        for e in &finding.evidence {
            let _ = writeln!(out, "      {}:{}: {}", e.file, e.line, e.text);
        }
        let _ = writeln!(out, "      fix: {}", finding.fix);
    }
    for code in summary.finding_counts.keys() {
        let more = summary.unlisted(code);
        if more > 0 {
            let _ = writeln!(
                out,
                "  … and {more} more {code} findings, each listed with its call above"
            );
        }
    }
}

/// The JSON report, streamed: `{"calls": [` at once, each call as it is
/// finished (one per line), then the STUN packets and the summary.
pub struct JsonReport<W: Write> {
    out: W,
    calls: usize,
    stun: Spool,
    packets: usize,
    /// Writing the document's opening failed: said at the next write.
    failed: Option<io::Error>,
    /// Each call or packet is serialized here first, then written at once:
    /// serde_json makes many small writes, each a trip through the
    /// (boxed, buffered) output otherwise (BENCHMARKS.md).
    scratch: Vec<u8>,
}

impl<W: Write> JsonReport<W> {
    /// Starts the document on `out`.
    pub fn new(mut out: W) -> Self {
        let failed = out.write_all(b"{\n  \"calls\": [").err();
        JsonReport {
            out,
            calls: 0,
            stun: Spool::default(),
            packets: 0,
            failed,
            scratch: Vec::with_capacity(64 * 1024),
        }
    }

    /// Closes the document with what only the end knows; `error` says why
    /// the input was not read to its end, if it was not.
    pub fn finish(mut self, summary: &Summary, error: Option<&str>) -> io::Result<W> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.out.write_all(b"\n  ],\n  \"stun\": [")?;
        self.stun.copy_into(&mut self.out)?;
        self.out.write_all(b"\n  ],\n")?;
        if let Some(error) = error {
            write!(self.out, "  \"error\": ")?;
            serde_json::to_writer(&mut self.out, error)?;
            self.out.write_all(b",\n")?;
        }
        // The summary's own fields, without its opening brace.
        let rest = serde_json::to_string_pretty(summary)?;
        self.out
            .write_all(rest.strip_prefix("{\n").unwrap_or(&rest).as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for JsonReport<W> {
    fn call(&mut self, call: &Call) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let separator: &[u8] = if self.calls == 0 {
            b"\n    "
        } else {
            b",\n    "
        };
        self.calls += 1;
        self.scratch.clear();
        self.scratch.extend_from_slice(separator);
        serde_json::to_writer(&mut self.scratch, call)?;
        self.out.write_all(&self.scratch)
    }

    fn stun(&mut self, packet: &StunPacket) -> io::Result<()> {
        let separator: &[u8] = if self.packets == 0 {
            b"\n    "
        } else {
            b",\n    "
        };
        self.packets += 1;
        self.scratch.clear();
        self.scratch.extend_from_slice(separator);
        serde_json::to_writer(&mut self.scratch, packet)?;
        self.stun.write_all(&self.scratch)
    }
}

fn side_text(out: &mut String, side: &Side, explain: bool) {
    let from = if side.party.is_empty() {
        String::new()
    } else {
        format!(" from {}", side.party)
    };
    let fallback = if side.fallback_only {
        " (OCS 2007 fallback part only)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  {}{from}{fallback}  ({}:{})",
        side.role, side.file, side.line
    );
    for media in &side.description.media {
        let _ = writeln!(
            out,
            "    {} — {} candidates",
            media.kind,
            media.candidates.len()
        );
        for (line, text) in &media.candidates {
            match Candidate::parse(text) {
                Ok(c) => {
                    let kind = crate::dialect::effective_kind(&c)
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| "-".into());
                    let tcptype = c
                        .tcp_type
                        .map(|t| format!(" tcptype {}", t.as_str()))
                        .unwrap_or_default();
                    let related = c
                        .related
                        .map(|(a, p)| format!(" via {}", endpoint(&a, p)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      {:>2} {:8} {:6} {} [{:?}]{related}{tcptype}",
                        c.component,
                        c.transport,
                        kind,
                        endpoint(&c.address, c.port),
                        c.address.class()
                    );
                    if explain {
                        let _ = writeln!(out, "         {}", explain_candidate(&c));
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "      line {line}: unreadable ({e})");
                }
            }
        }
    }
}

/// A diagnostics header in one line: `ms-client-diagnostics 51004: Action
/// initiated by user`.
pub fn describe_diagnostics(d: &crate::sip::MsDiagnostics) -> String {
    let code = d.code.map(|c| format!(" {c}")).unwrap_or_default();
    let reason = d.reason.as_deref().unwrap_or("(no reason given)");
    let client = d.header.eq_ignore_ascii_case("ms-client-diagnostics");
    match d
        .code
        .and_then(|c| crate::ms_codes::code_meaning(c, client))
    {
        Some(m) => format!("{}{code}: {reason} ({})", d.header, m.meaning),
        None => format!("{}{code}: {reason}", d.header),
    }
}

/// `address:port`, an IPv6 address in brackets (`[2001:db8::1]:5000`).
fn endpoint(address: &edgeice_candidate::CandidateAddress<'_>, port: u16) -> String {
    let text = address.to_string();
    if text.contains(':') {
        format!("[{text}]:{port}")
    } else {
        format!("{text}:{port}")
    }
}

/// A candidate in plain words, the way a colleague would at a whiteboard:
/// what it is, then what its priority says.
pub fn explain_candidate(c: &Candidate<'_>) -> String {
    let what = explain_what(c);
    match explain_priority(c) {
        Some(priority) => format!("{what}. {priority}"),
        None => what,
    }
}

/// The priority's fields in words; MS-ICE2's bit fields for its candidates.
fn explain_priority(c: &Candidate<'_>) -> Option<String> {
    let Priority::Ice(value) = c.priority else {
        return None;
    };
    let type_preference = c.priority.type_preference()?;
    let local = c.priority.local_preference()?;
    let mut text =
        format!("Priority {value}: type preference {type_preference}, local preference {local}");
    if c.dialect == Dialect::MsIce2
        && let Some(ms) = c.priority.ms_ice2_local_preference()
    {
        let transport = ms.transport_name().unwrap_or("unknown transport");
        let direction = ms.direction_name().unwrap_or("no TCP direction");
        text.push_str(&format!(
            " (MS-ICE2: {transport} {}, {direction} {}, interface order {})",
            ms.transport, ms.direction, ms.other
        ));
    }
    if c.priority.component() != Some(c.component) {
        text.push_str(&format!(
            "; its low byte says component {}, not {}",
            c.priority.component().unwrap_or_default(),
            c.component
        ));
    }
    Some(text)
}

fn explain_what(c: &Candidate<'_>) -> String {
    let stream = match c.component {
        1 => "RTP".to_owned(),
        2 => "RTCP".to_owned(),
        n => format!("component {n}"),
    };
    let transport = match c.transport {
        Transport::Udp => "over UDP".to_owned(),
        Transport::Tcp => "over TCP".to_owned(),
        Transport::TcpActive => "over TCP, connecting out (TCP-ACT)".to_owned(),
        Transport::TcpPassive => "over TCP, waiting for connections (TCP-PASS)".to_owned(),
        Transport::Other(t) => format!("over {t}"),
    };
    let at = endpoint(&c.address, c.port);
    let reach = if crate::diagnose::teredo(&c.address) {
        "a Teredo address (2001::/32: Windows' IPv6-over-IPv4-UDP tunnel, reached through a Teredo relay, rarely a path that works for media)".to_owned()
    } else if let Some(doc) = crate::diagnose::documentation(&c.address) {
        format!("{doc}: not an address anyone can reach")
    } else if c.address.class().is_reachable_from_internet() {
        "reachable from anywhere".to_owned()
    } else {
        format!(
            "reachable only from inside its network ({:?})",
            c.address.class()
        )
    };
    if crate::dialect::is_ms_active_tcp_host(c) {
        return format!(
            "the client's own interface address {at} {transport} for {stream}: Lync and Skype for Business write their active-TCP host candidate as srflx with raddr equal to the address (no STUN server was involved; the type only sorts it below the UDP hosts); {reach}"
        );
    }
    if c.dialect == Dialect::MsIceDraft6 {
        return format!(
            "an OCS 2007 (MS-ICE draft 6) candidate {at} {transport} for {stream}, priority {}, with its own credentials: username {} and a password (not shown), so it needs no a=ice-ufrag/a=ice-pwd",
            c.priority, c.foundation
        );
    }
    match (c.kind, c.related) {
        (Some(CandidateType::Relay), Some((raddr, rport))) => format!(
            "a relay on the edge/TURN server at {at} {transport} for {stream}, forwarding to the client at {} — usable only if {} is reachable from the other side; it is {reach}",
            endpoint(&raddr, rport),
            c.address
        ),
        (Some(CandidateType::ServerReflexive), Some((raddr, rport))) => format!(
            "the client's address as a STUN server saw it, {at} {transport} for {stream}, mapped from its local {}; {reach}",
            endpoint(&raddr, rport)
        ),
        (Some(CandidateType::Host), _) => {
            format!("the client's own interface address {at} {transport} for {stream}; {reach}")
        }
        (None, _) => format!(
            "an OCS 2007 (MS-ICE draft 6) candidate {at} {transport} for {stream}, priority {}",
            c.priority
        ),
        (Some(kind), _) => format!("a {kind} candidate at {at} {transport} for {stream}; {reach}"),
    }
}
