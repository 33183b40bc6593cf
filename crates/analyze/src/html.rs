//! The HTML report: one self-contained file (no external resources) with,
//! for each call, a diagram of each media line's candidates — the offering
//! side on the left, the answering side on the right, and the pairs ICE
//! forms between them, coloured by what [`crate::pairs`] concludes (green
//! where checks cross, red where the verdict says they cannot, grey where
//! nothing says) — above the findings. Written call by call
//! ([`HtmlReport`]).

use std::fmt::Write as _;
use std::io::{self, Write};

use edgeice_candidate::Candidate;

use crate::call::{Analysis, Call, Side};
use crate::capture::StunPacket;
use crate::diagnose::Severity;
use crate::pairs::{Crossing, MediaPairs};
use crate::spool::Spool;
use crate::stream::{Sink, Summary};

/// HTML-escapes text.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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
        for side in &summary.descriptions {
            let _ = write!(
                tail,
                "<h2>Description {}:{}</h2>",
                esc(&side.file),
                side.line
            );
            description_diagram(&mut tail, side);
        }
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
        out.push_str(LEGEND);
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

fn box_color(c: &Candidate<'_>) -> &'static str {
    if crate::diagnose::reachable_from_elsewhere(&c.address) {
        "#2a7"
    } else {
        "#c44"
    }
}

/// A pair's line: green where checks cross (or crossed), red where they
/// cannot (or failed), grey where nothing says.
fn pair_style(crossing: Crossing) -> (&'static str, &'static str) {
    match crossing {
        Crossing::Succeeded | Crossing::CanCross => ("#2a7", ""),
        Crossing::Cannot | Crossing::Failed => ("#c44", " stroke-dasharray=\"6 3\""),
        Crossing::Unknown => ("#999", " stroke-dasharray=\"2 3\""),
    }
}

/// Each media line of the call: the offer's candidates on the left, the
/// answer's on the right (either may be missing: its column stays empty),
/// and the pairs ICE forms, coloured by [`crate::pairs`]' conclusion.
fn diagram(out: &mut String, call: &Call) {
    let left_party = call
        .offer
        .as_ref()
        .map_or("(no offer)", |s| s.party.as_str());
    let right_party = call
        .answer
        .as_ref()
        .map_or("(no answer)", |s| s.party.as_str());
    for media in crate::pairs::media_pairs(call) {
        media_svg(out, &media, (left_party, right_party));
    }
}

/// A bare description's media lines: one column.
fn description_diagram(out: &mut String, side: &Side) {
    for media in crate::pairs::description_media(side) {
        media_svg(out, &media, (&side.file, ""));
    }
}

fn media_svg(out: &mut String, media: &MediaPairs<'_>, (left_party, right_party): (&str, &str)) {
    let rows = media.offer.len().max(media.answer.len()).max(1);
    let height = 70 + rows * 28;
    let kind = if media.kind.is_empty() {
        "media"
    } else {
        media.kind.as_str()
    };
    let _ = write!(
        out,
        "<svg class=\"diagram\" data-kind=\"{kind}\" data-media=\"{index}\" width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\">\
         <text class=\"media-label\" x=\"450\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">{kind} (media line {line})</text>\
         <text x=\"10\" y=\"34\" font-weight=\"bold\">{}</text>\
         <text x=\"610\" y=\"34\" font-weight=\"bold\">{}</text>",
        esc(left_party),
        esc(right_party),
        kind = esc(kind),
        index = media.index,
        line = media.index + 1,
    );
    let y = |i: usize| 58 + i * 28;
    for pair in &media.pairs {
        let (stroke, dash) = pair_style(pair.crossing);
        let _ = write!(
            out,
            "<line class=\"pair\" data-offer=\"{}\" data-answer=\"{}\" data-crossing=\"{}\" x1=\"290\" y1=\"{}\" x2=\"610\" y2=\"{}\" stroke=\"{stroke}\" stroke-width=\"1.5\" stroke-opacity=\"0.6\"{dash}><title>{}</title></line>",
            pair.offer,
            pair.answer,
            pair.crossing.as_str(),
            y(pair.offer),
            y(pair.answer),
            esc(&pair.why)
        );
    }
    for (x, side, candidates) in [(10, "offer", &media.offer), (610, "answer", &media.answer)] {
        for (i, (line, c)) in candidates.iter().enumerate() {
            let kind = c.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
            let tcp = c
                .tcp_type
                .map(|t| format!(" {}", t.as_str()))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<g class=\"candidate\" data-side=\"{side}\" data-index=\"{i}\" data-line=\"{line}\"><rect x=\"{x}\" y=\"{}\" width=\"280\" height=\"22\" rx=\"4\" fill=\"#fff\" stroke=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{} {}{} {} {}</text></g>",
                y(i) - 11,
                box_color(c),
                x + 6,
                y(i) + 4,
                c.component,
                esc(&c.transport.to_string()),
                esc(&tcp),
                esc(&kind),
                esc(crate::pairs::endpoint(c)
                    .split_once(' ')
                    .map_or("", |(_, e)| e)),
            );
        }
    }
    out.push_str("</svg>");
}

const LEGEND: &str = "<p>Boxes: green border, reachable from another network; red, private or unusable. Lines are the pairs ICE forms (same component, transport and address family; TCP active with passive): green, checks cross (or a check succeeded); red dashed, the verdict says they cannot (or their checks failed); grey dotted, nothing says (both ends private, or checks shown and none of this pair).</p>";

#[cfg(test)]
mod tests {
    use super::*;

    fn report(files: &[&str]) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let inputs = files
            .iter()
            .map(|name| {
                let file = std::fs::File::open(dir.join(name)).unwrap();
                let (format, items) =
                    crate::input::read(name, std::io::BufReader::new(file)).unwrap();
                (name.to_string(), format, items)
            })
            .collect();
        html(&crate::analyze(inputs))
    }

    fn crossings(page: &str) -> Vec<&str> {
        page.split("data-crossing=\"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect()
    }

    #[test]
    fn where_checks_are_shown_only_a_succeeded_pair_is_green() {
        let page = report(&["trace-healthy.jsonl"]);
        let all = crossings(&page);
        assert!(all.contains(&"succeeded"), "{all:?}");
        assert!(!all.contains(&"can-cross"), "{all:?}");
        let failed = report(&["trace-a.controlling.jsonl", "trace-a.controlled.jsonl"]);
        let all = crossings(&failed);
        assert!(
            all.contains(&"failed") && !all.contains(&"succeeded"),
            "{all:?}"
        );
        assert!(
            !failed.contains("stroke=\"#2a7\" stroke-width"),
            "a green pair"
        );
    }

    #[test]
    fn single_sided_input_still_shows_its_candidates() {
        let page = report(&["only-host.sdp"]);
        assert!(page.contains("class=\"diagram\""), "{page}");
        assert!(page.matches("class=\"candidate\"").count() >= 2, "{page}");
        assert!(crossings(&page).is_empty());
    }

    #[test]
    fn every_media_line_is_drawn_and_labelled() {
        let page = report(&["seed-client.uccapilog"]);
        assert!(page.contains(">audio (media line 1)<"), "audio");
        assert!(page.contains(">video (media line 2)<"), "video");
        // The relay-to-relay pair the verdict condemns is red, not green.
        assert!(crossings(&page).contains(&"cannot"));
    }
}
