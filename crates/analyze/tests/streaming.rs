//! The streamed analysis: calls finished when they end, memory bounded by
//! the open calls and a capped finding list, whatever the number of calls.

use std::io::Cursor;
use std::path::Path;

use edgeice_analyze::input::{self, Item};
use edgeice_analyze::stream::Collect;
use edgeice_analyze::{Analyzer, Limits, Summary, analyze};

fn corpus(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn items(name: &str, text: &str) -> Vec<Item> {
    input::read(name, Cursor::new(text.as_bytes().to_vec()))
        .unwrap()
        .1
}

fn stream(limits: Limits, files: &[(&str, &str)]) -> (Collect, Summary) {
    let mut analyzer = Analyzer::new(limits);
    let mut collect = Collect::default();
    for (name, text) in files {
        let (format, items) = input::read(name, Cursor::new(text.as_bytes().to_vec())).unwrap();
        analyzer.input(name, format);
        for item in items {
            analyzer.push(item, &mut collect).unwrap();
        }
    }
    let summary = analyzer.finish(&mut collect);
    (collect, summary)
}

/// A SIP message of call `id` (no body).
fn message(start: &str, id: &str, cseq: &str) -> String {
    format!(
        "{start}\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:b@example.com>\nCall-ID: {id}\nCSeq: {cseq}\nContent-Length: 0\n\n"
    )
}

#[test]
fn thousands_of_calls_keep_a_bounded_summary() {
    let seed = corpus("seed-client.uccapilog");
    let log: String = (0..300)
        .map(|i| seed.replace("5f0e1d2c3b4a59687766554433221100", &format!("call-{i}")))
        .collect();
    let limits = Limits {
        max_open_calls: 4,
        max_ending: 2,
        findings_per_code: 3,
        keep_ended: false,
    };
    let (collect, summary) = stream(limits, &[("big.uccapilog", &log)]);
    assert_eq!(collect.calls.len(), 300);
    assert_eq!(summary.calls, 300);
    assert_eq!(summary.calls_evicted, 0);
    // Each call carries its own findings, in full.
    for call in &collect.calls {
        assert_eq!(call.end, "bye");
        assert_eq!(call.timeline.len(), 4);
        assert_eq!(call.findings[0].code, "relay-private-address");
        assert!(
            call.findings
                .iter()
                .any(|f| f.code == "call-ended-during-checks")
        );
    }
    // The summary lists a few per code and counts the rest.
    assert_eq!(summary.finding_counts["call-ended-during-checks"], 300);
    let listed = |code| summary.findings.iter().filter(|f| f.code == code).count();
    assert_eq!(listed("call-ended-during-checks"), 3);
    assert_eq!(summary.unlisted("call-ended-during-checks"), 297);
    assert_eq!(summary.findings[0].code, "relay-private-address");
    assert!(summary.has_errors());
}

#[test]
fn calls_that_never_end_are_finished_early_past_the_cap() {
    let trace: String = (0..10)
        .map(|i| {
            message(
                "INVITE sip:b@example.com SIP/2.0",
                &format!("open-{i}"),
                "1 INVITE",
            )
        })
        .collect();
    let limits = Limits {
        max_open_calls: 3,
        ..Limits::default()
    };
    let (collect, summary) = stream(limits, &[("open.sip", &trace)]);
    assert_eq!(collect.calls.len(), 10);
    assert_eq!(summary.calls_evicted, 7);
    let ends: Vec<&str> = collect.calls.iter().map(|c| c.end).collect();
    assert_eq!(ends.iter().filter(|e| **e == "evicted").count(), 7);
    assert_eq!(ends.iter().filter(|e| **e == "input-end").count(), 3);
    // Least recently active first: the first calls went first.
    assert_eq!(collect.calls[0].call_id, "open-0");
}

#[test]
fn a_call_ends_with_bye_cancel_or_refusal_and_its_tail_is_not_a_new_call() {
    let mut trace = String::new();
    // Refused: 486 then ACK completes it.
    trace += &message("INVITE sip:b@example.com SIP/2.0", "refused", "1 INVITE");
    trace += &message("SIP/2.0 486 Busy Here", "refused", "1 INVITE");
    trace += &message("ACK sip:b@example.com SIP/2.0", "refused", "1 ACK");
    // Cancelled.
    trace += &message("INVITE sip:b@example.com SIP/2.0", "cancelled", "1 INVITE");
    trace += &message("CANCEL sip:b@example.com SIP/2.0", "cancelled", "1 CANCEL");
    trace += &message("SIP/2.0 200 OK", "cancelled", "1 CANCEL");
    trace += &message("SIP/2.0 487 Request Terminated", "cancelled", "1 INVITE");
    trace += &message("ACK sip:b@example.com SIP/2.0", "cancelled", "1 ACK");
    // Two calls hung up; the first one's 200 to its BYE comes after the
    // second ended, when only one ended call may wait.
    for id in ["first", "second"] {
        trace += &message("INVITE sip:b@example.com SIP/2.0", id, "1 INVITE");
        trace += &message("SIP/2.0 200 OK", id, "1 INVITE");
        trace += &message("ACK sip:b@example.com SIP/2.0", id, "1 ACK");
        trace += &message("BYE sip:a@example.com SIP/2.0", id, "2 BYE");
    }
    trace += &message("SIP/2.0 200 OK", "first", "2 BYE");
    let limits = Limits {
        max_ending: 1,
        ..Limits::default()
    };
    let (collect, summary) = stream(limits, &[("ends.sip", &trace)]);
    let ends: Vec<(&str, &str, usize)> = collect
        .calls
        .iter()
        .map(|c| (c.call_id.as_str(), c.end, c.timeline.len()))
        .collect();
    assert_eq!(
        ends,
        [
            ("refused", "rejected", 3),
            ("cancelled", "cancel", 5),
            ("first", "bye", 4),
            ("second", "bye", 4)
        ]
    );
    assert_eq!(summary.late_messages, 1);
}

#[test]
fn with_several_files_a_call_s_messages_are_put_together() {
    let mut first = String::new();
    first += &message("INVITE sip:b@example.com SIP/2.0", "shared", "1 INVITE");
    first += &message("SIP/2.0 200 OK", "shared", "1 INVITE");
    first += &message("BYE sip:a@example.com SIP/2.0", "shared", "2 BYE");
    let second = message("SIP/2.0 200 OK", "shared", "2 BYE");
    let analysis = analyze(vec![
        (
            "a.sip".into(),
            input::Format::SipTrace,
            items("a.sip", &first),
        ),
        (
            "b.sip".into(),
            input::Format::SipTrace,
            items("b.sip", &second),
        ),
    ]);
    assert_eq!(analysis.calls.len(), 1);
    assert_eq!(analysis.calls[0].timeline.len(), 4);
    assert_eq!(analysis.calls[0].timeline[3].file, "b.sip");
}

#[test]
fn the_streamed_json_is_one_valid_document() {
    let seed = corpus("seed-client.uccapilog");
    let log: String = (0..5)
        .map(|i| seed.replace("5f0e1d2c3b4a59687766554433221100", &format!("call-{i}")))
        .collect();
    let (format, items) = input::read("five.uccapilog", Cursor::new(log.into_bytes())).unwrap();
    let analysis = analyze(vec![("five.uccapilog".into(), format, items)]);
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    assert_eq!(json["calls"].as_array().unwrap().len(), 5);
    assert_eq!(json["call_count"], 5);
    assert_eq!(json["calls"][4]["call_id"], "call-4");
    assert_eq!(
        json["calls"][0]["findings"][0]["code"],
        "relay-private-address"
    );
    assert_eq!(json["findings"][0]["code"], "relay-private-address");
    assert_eq!(json["finding_counts"]["call-ended-during-checks"], 5);
    assert_eq!(json["inputs"][0]["format"], "uccapilog");
}
