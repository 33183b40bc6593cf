//! The HTML report: one self-contained file (no external resources) with,
//! for each call, a diagram of its candidates — the offering side on the
//! left, the answering side on the right, each candidate pair drawn green
//! when one end is reachable from the other's side, red when both ends are
//! private — above the findings. Written call by call ([`HtmlReport`]).

use std::fmt::Write as _;
use std::io::{self, Write};

use edgeice_candidate::{AddressClass, Candidate};

use crate::call::{Analysis, Call, Side};
use crate::capture::StunPacket;
use crate::diagnose::Severity;
use crate::spool::Spool;
use crate::stream::{Sink, Summary};

/// HTML-escapes text.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Candidates drawn per side, at most.
const MAX_DRAWN: usize = 12;

/// The report as one HTML document.
pub fn html(analysis: &Analysis) -> String {
    let mut report = HtmlReport::default();
    let mut out = Vec::new();
    let mut written = Ok(());
    for call in &analysis.calls {
        written = written.and_then(|()| report.call(call));
    }
    if let Err(e) = written.and_then(|()| report.finish(analysis, &mut out)) {
        out.extend_from_slice(
            format!("<p>(report incomplete: {})</p>", esc(&e.to_string())).as_bytes(),
        );
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTML report, written as calls are finished: their sections wait in
/// a spool until the verdict at the top is known.
#[derive(Default)]
pub struct HtmlReport {
    calls: Spool,
    section: String,
}

impl HtmlReport {
    /// Writes the whole document.
    pub fn finish(self, summary: &Summary, out: &mut dyn Write) -> io::Result<()> {
        let mut head = String::new();
        head.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgeice analyze</title><style>");
        head.push_str(
            "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
             h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}\
             .verdict{padding:.8em 1em;border-radius:6px;background:#eef6ee;border:1px solid #9c9}\
             .verdict.error{background:#fbeaea;border-color:#d99}\
             table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
             .error{color:#a00}.warning{color:#a60}code{font-size:12px}\
             svg text{font:11px monospace}",
        );
        head.push_str("</style></head><body><h1>edgeice analyze</h1>");
        match summary.findings.first() {
            Some(top) => {
                let class = if top.severity == Severity::Error {
                    "verdict error"
                } else {
                    "verdict"
                };
                let _ = write!(
                    head,
                    "<div class=\"{class}\" id=\"verdict\"><b>{}</b>: {}<br><b>Fix:</b> {}</div>",
                    esc(top.code),
                    esc(&top.message),
                    esc(&top.fix)
                );
            }
            None if summary.read.is_empty() => head.push_str(
                "<div class=\"verdict\" id=\"verdict\">Nothing to analyze: no SIP message, SDP description, STUN packet, peer connection, trace or serve record in what was read.</div>",
            ),
            None => {
                head.push_str("<div class=\"verdict\" id=\"verdict\">Nothing wrong found.</div>")
            }
        }
        let _ = write!(
            head,
            "<pre id=\"read\">{}</pre>",
            esc(&crate::report::what_was_read(summary))
        );
        out.write_all(head.as_bytes())?;
        self.calls.copy_into(out)?;
        let mut tail = String::new();
        tail.push_str("<h2>Findings</h2><table><tr><th>severity</th><th>code</th><th>what</th><th>evidence</th><th>fix</th></tr>");
        for f in &summary.findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let evidence: Vec<String> = f
                .evidence
                .iter()
                .map(|e| format!("{}:{} <code>{}</code>", esc(&e.file), e.line, esc(&e.text)))
                .collect();
            let _ = write!(
                tail,
                "<tr class=\"finding\"><td class=\"{severity}\">{severity}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(f.code),
                esc(&f.message),
                evidence.join("<br>"),
                esc(&f.fix)
            );
        }
        tail.push_str("</table>");
        for code in summary.finding_counts.keys() {
            let more = summary.unlisted(code);
            if more > 0 {
                let _ = write!(
                    tail,
                    "<p>… and {more} more <code>{}</code> findings, each listed with its call above.</p>",
                    esc(code)
                );
            }
        }
        if summary.calls_evicted > 0 {
            let _ = write!(
                tail,
                "<p>{} calls never ended while too many others were open; they were finished early.</p>",
                summary.calls_evicted
            );
        }
        tail.push_str("</body></html>\n");
        out.write_all(tail.as_bytes())
    }
}

impl Sink for HtmlReport {
    fn call(&mut self, call: &Call) -> io::Result<()> {
        self.section.clear();
        let out = &mut self.section;
        let _ = write!(out, "<h2>Call {}</h2>", esc(&call.call_id));
        diagram(out, call);
        timeline(out, call);
        if !call.findings.is_empty() {
            let codes: Vec<String> = call.findings.iter().map(|f| esc(f.code)).collect();
            let _ = write!(out, "<p>Findings: {}</p>", codes.join(", "));
        }
        self.calls.write_all(self.section.as_bytes())
    }

    fn stun(&mut self, _: &StunPacket) -> io::Result<()> {
        Ok(())
    }
}

fn timeline(out: &mut String, call: &Call) {
    out.push_str("<table><tr><th>time</th><th>message</th><th>where</th></tr>");
    for e in &call.timeline {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}{}</td><td>{}:{}</td></tr>",
            esc(e.timestamp.as_deref().unwrap_or("")),
            esc(&e.what),
            e.diagnostics
                .iter()
                .map(|d| format!(
                    "<br><small>{}</small>",
                    esc(&crate::report::describe_diagnostics(d))
                ))
                .collect::<String>(),
            esc(&e.file),
            e.line
        );
    }
    out.push_str("</table>");
}

/// The first media's candidates of a side, decoded (component 1 first).
fn drawn(side: &Side) -> Vec<Candidate<'_>> {
    let Some(media) = side.description.media.first() else {
        return Vec::new();
    };
    let mut candidates: Vec<Candidate<'_>> = media
        .candidates
        .iter()
        .filter_map(|(_, text)| Candidate::parse(text).ok())
        .collect();
    candidates.sort_by_key(|c| c.component);
    candidates.truncate(MAX_DRAWN);
    candidates
}

fn color(class: AddressClass) -> &'static str {
    if class.is_reachable_from_internet() {
        "#2a7"
    } else {
        "#c44"
    }
}

/// Whether checks between two candidates can get through: transports and
/// families must match, and at least one end must be reachable from the
/// other's network (both private means separate networks in a call that
/// crosses the internet).
fn viable(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    let reachable = |c: &Candidate<'_>| c.address.class().is_reachable_from_internet();
    pairable(a, b) && (reachable(a) || reachable(b))
}

/// Whether ICE would pair the two at all: same component, transport and
/// address family (a name may resolve to either).
fn pairable(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    use edgeice_candidate::CandidateAddress::Ip;
    let same_family = match (a.address, b.address) {
        (Ip(x), Ip(y)) => x.is_ipv4() == y.is_ipv4(),
        _ => true,
    };
    a.component == b.component && a.transport.is_tcp() == b.transport.is_tcp() && same_family
}

fn diagram(out: &mut String, call: &Call) {
    let (Some(offer), Some(answer)) = (&call.offer, &call.answer) else {
        return;
    };
    let (left, right) = (drawn(offer), drawn(answer));
    let rows = left.len().max(right.len()).max(1);
    let height = 60 + rows * 28;
    let _ = write!(
        out,
        "<svg id=\"diagram\" width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\">\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">{}</text>\
         <text x=\"610\" y=\"20\" font-weight=\"bold\">{}</text>",
        esc(&offer.party),
        esc(&answer.party)
    );
    let y = |i: usize| 45 + i * 28;
    for (i, a) in left.iter().enumerate() {
        for (j, b) in right.iter().enumerate() {
            if !pairable(a, b) {
                continue;
            }
            let (stroke, dash) = if viable(a, b) {
                ("#2a7", "")
            } else {
                ("#c44", " stroke-dasharray=\"4 3\"")
            };
            let _ = write!(
                out,
                "<line class=\"pair\" x1=\"290\" y1=\"{}\" x2=\"610\" y2=\"{}\" stroke=\"{stroke}\" stroke-opacity=\"0.45\"{dash}/>",
                y(i),
                y(j)
            );
        }
    }
    for (x, candidates) in [(10, &left), (610, &right)] {
        for (i, c) in candidates.iter().enumerate() {
            let kind = c.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
            let _ = write!(
                out,
                "<g class=\"candidate\"><rect x=\"{x}\" y=\"{}\" width=\"280\" height=\"22\" rx=\"4\" fill=\"#fff\" stroke=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{} {} {} {}:{}</text></g>",
                y(i) - 11,
                color(c.address.class()),
                x + 6,
                y(i) + 4,
                c.component,
                esc(&c.transport.to_string()),
                esc(&kind),
                esc(&c.address.to_string()),
                c.port
            );
        }
    }
    out.push_str("</svg><p>Boxes: green border, reachable from the internet; red, private. Lines: green, a pair checks can cross; red dashed, both ends private.</p>");
}
