//! Writing an analysis for people (text) and for scripts (JSON).

use std::fmt::Write;

use edgeice_candidate::{Candidate, CandidateType, Dialect, Priority, Transport};

use crate::call::{Analysis, Side};
use crate::diagnose::Severity;

/// The analysis as JSON (the schema is the serialized [`Analysis`]).
pub fn json(analysis: &Analysis) -> String {
    serde_json::to_string_pretty(analysis).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The analysis as text: the verdict first, then each call's candidates,
/// then every finding with its evidence and fix. With `explain`, each
/// candidate line is explained in words.
pub fn text(analysis: &Analysis, explain: bool) -> String {
    let mut out = String::new();
    match analysis.findings.first() {
        Some(top) if top.severity == Severity::Error => {
            let _ = writeln!(out, "Verdict: {} — {}", top.code, top.message);
            let _ = writeln!(out, "Fix: {}\n", top.fix);
        }
        Some(top) => {
            let _ = writeln!(
                out,
                "Verdict: no error; warnings first: {} — {}\n",
                top.code, top.message
            );
        }
        None => {
            let _ = writeln!(out, "Verdict: nothing wrong found.\n");
        }
    }
    for call in &analysis.calls {
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
        if let Some(seconds) = call.seconds_to_bye {
            let promoted = if call.promoted {
                "after a promotion"
            } else {
                "with no promotion"
            };
            let _ = writeln!(out, "  BYE {seconds:.1} s after the answer, {promoted}");
        }
        for side in call.offer.iter().chain(call.answer.iter()) {
            side_text(&mut out, side, explain);
        }
        out.push('\n');
    }
    for side in &analysis.descriptions {
        side_text(&mut out, side, explain);
        out.push('\n');
    }
    if !analysis.findings.is_empty() {
        let _ = writeln!(out, "Findings");
    }
    for finding in &analysis.findings {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = writeln!(out, "  [{severity}] {}: {}", finding.code, finding.message);
        for e in &finding.evidence {
            let _ = writeln!(out, "      {}:{}: {}", e.file, e.line, e.text);
        }
        let _ = writeln!(out, "      fix: {}", finding.fix);
    }
    out
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
                    let kind = c.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
                    let related = c
                        .related
                        .map(|(a, p)| format!(" via {a}:{p}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      {:>2} {:8} {:6} {}:{} [{:?}]{related}",
                        c.component,
                        c.transport,
                        kind,
                        c.address,
                        c.port,
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
    format!("{}{code}: {reason}", d.header)
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
    let at = format!("{}:{}", c.address, c.port);
    let reach = if c.address.class().is_reachable_from_internet() {
        "reachable from anywhere".to_owned()
    } else {
        format!(
            "reachable only from inside its network ({:?})",
            c.address.class()
        )
    };
    match (c.kind, c.related) {
        (Some(CandidateType::Relay), Some((raddr, rport))) => format!(
            "a relay on the edge/TURN server at {at} {transport} for {stream}, forwarding to the client at {raddr}:{rport} — usable only if {} is reachable from the other side; it is {reach}",
            c.address
        ),
        (Some(CandidateType::ServerReflexive), Some((raddr, rport))) => format!(
            "the client's address as a STUN server saw it, {at} {transport} for {stream}, mapped from its local {raddr}:{rport}; {reach}"
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
