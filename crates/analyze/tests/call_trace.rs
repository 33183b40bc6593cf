//! `edgeice call --trace` files (docs/call-trace.md): detected, read, paired
//! by their ICE usernames, folded into a call whose findings come from the
//! gathering errors and the candidates; malformed lines are errors that
//! name the line.

use std::io::Cursor;
use std::path::Path;

use edgeice_analyze::input::{self, Format, InputError};
use edgeice_analyze::{Analysis, Severity, analyze};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name),
    )
    .unwrap()
}

fn run(names: &[&str]) -> Analysis {
    let files = names
        .iter()
        .map(|name| {
            let (format, items) = input::read(name, Cursor::new(corpus(name))).unwrap();
            assert_eq!(format, Format::CallTrace, "{name}");
            (name.to_string(), format, items)
        })
        .collect();
    analyze(files)
}

fn codes(analysis: &Analysis) -> Vec<&str> {
    analysis.findings.iter().map(|f| f.code).collect()
}

#[test]
fn two_traces_of_one_call_make_one_call_with_both_sides() {
    // Given in either order, the controlling side is the offer.
    for names in [
        ["trace-a.controlling.jsonl", "trace-a.controlled.jsonl"],
        ["trace-a.controlled.jsonl", "trace-a.controlling.jsonl"],
    ] {
        let analysis = run(&names);
        assert_eq!(analysis.inputs[0].format, "call-trace");
        assert_eq!(analysis.calls.len(), 1, "{names:?}");
        let call = &analysis.calls[0];
        assert_eq!(call.call_id, "ice:Xy7q/Ab3k");
        assert_eq!(call.source, "trace");
        assert!(call.ice_failed);
        let offer = call.offer.as_ref().unwrap();
        let answer = call.answer.as_ref().unwrap();
        assert_eq!((offer.role, answer.role), ("controlling", "controlled"));
        assert_eq!(offer.description.media[0].candidates.len(), 2);
        assert!(
            answer.description.media[0].candidates[1]
                .1
                .contains("typ relay")
        );
        // Both timelines, interleaved, each event saying whose it is.
        let what: Vec<&str> = call.timeline.iter().map(|e| e.what.as_str()).collect();
        assert!(
            what.iter()
                .any(|w| w.starts_with("[controlled] no answer from stun:"))
        );
        assert!(
            what.iter()
                .any(|w| w.starts_with("[controlling] check failed: host 192.168.1.20:50000"))
        );
        assert!(what.contains(&"[controlling] state failed (all pairs failed)"));
        // Waiting and in-progress checks are left out.
        assert!(!what.iter().any(|w| w.contains("in-progress")));
    }
}

#[test]
fn gathering_errors_and_candidates_become_findings() {
    let analysis = run(&["trace-a.controlling.jsonl", "trace-a.controlled.jsonl"]);
    let found = codes(&analysis);
    // The cause first: credentials refused by the TURN server.
    assert_eq!(found[0], "turn-auth-failed", "{found:?}");
    let auth = &analysis.findings[0];
    assert!(
        auth.message.contains("controlling agent"),
        "{}",
        auth.message
    );
    assert!(
        auth.message.contains("401 from turn:198.51.100.7:3478"),
        "{}",
        auth.message
    );
    assert!(auth.fix.contains("password"));
    assert_eq!(auth.evidence[0].file, "trace-a.controlling.jsonl");
    assert_eq!(auth.evidence[0].line, 5);
    // The controlled side's relay is its TURN server's private address.
    let relay = analysis
        .findings
        .iter()
        .find(|f| f.code == "relay-private-address")
        .unwrap();
    assert!(
        relay.message.contains("controlled agent"),
        "{}",
        relay.message
    );
    assert!(relay.message.contains("10.0.1.5"));
    // A STUN server that never answered.
    let silent = analysis
        .findings
        .iter()
        .find(|f| f.code == "server-unreachable")
        .unwrap();
    assert_eq!(silent.severity, Severity::Warning);
    assert!(
        silent.message.contains("stun:192.0.2.50:3478"),
        "{}",
        silent.message
    );
    assert!(silent.message.contains("no response after 7 requests"));
    // The agent's own verdict, quoting its state change.
    let failed = analysis
        .findings
        .iter()
        .find(|f| f.code == "ice-failed")
        .unwrap();
    assert!(
        failed.evidence[0].text.contains("state failed"),
        "{:?}",
        failed.evidence
    );
    assert!(analysis.has_errors());
}

#[test]
fn one_trace_is_a_call_with_the_remote_candidates_it_learned() {
    let analysis = run(&["trace-healthy.jsonl"]);
    assert!(!analysis.has_errors(), "{:?}", codes(&analysis));
    let call = &analysis.calls[0];
    assert_eq!(call.call_id, "ice:Qm4t");
    assert!(call.promoted);
    assert!(!call.ice_failed);
    let remote = call.answer.as_ref().unwrap();
    assert_eq!(remote.role, "controlled");
    assert_eq!(remote.description.media[0].ufrag.as_deref(), Some("Zz9w"));
    assert_eq!(remote.description.media[0].candidates.len(), 2);
    let what: Vec<&str> = call.timeline.iter().map(|e| e.what.as_str()).collect();
    assert!(
        what.iter()
            .any(|w| w.starts_with("selected: relay 198.51.100.7:61002"))
    );
    assert!(what.iter().any(|w| w.starts_with("promoted: from relay")));
    assert!(what.contains(&"state completed"));
    // An event this reader does not know is passed over.
    assert!(!what.iter().any(|w| w.contains("newer-agent")));
}

#[test]
fn trace_calls_appear_in_json_and_html() {
    let analysis = run(&["trace-a.controlling.jsonl", "trace-a.controlled.jsonl"]);
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    let call = &json["calls"][0];
    assert_eq!(call["source"], "trace");
    assert_eq!(call["offer"]["role"], "controlling");
    let relay = &call["answer"]["description"]["media"][0]["candidates"][1]["decoded"];
    assert_eq!(relay["type"], "relay");
    assert_eq!(relay["address_class"], "private");
    assert_eq!(call["findings"][0]["code"], "turn-auth-failed");
    let html = edgeice_analyze::html::html(&analysis);
    assert!(html.contains("<h2>Call ice:Xy7q/Ab3k</h2>") && html.contains("class=\"diagram\""));
    assert!(html.contains("state failed (all pairs failed)"));
    let text = edgeice_analyze::report::text(&analysis, false);
    assert!(text.starts_with("Verdict: turn-auth-failed"), "{text}");
}

#[test]
fn two_runs_appended_to_one_file_are_paired_too() {
    let mut both = corpus("trace-a.controlling.jsonl");
    both.extend(corpus("trace-a.controlled.jsonl"));
    let (format, items) = input::read("both.jsonl", Cursor::new(both)).unwrap();
    let analysis = analyze(vec![("both.jsonl".into(), format, items)]);
    assert_eq!(analysis.calls.len(), 1);
    assert_eq!(analysis.calls[0].call_id, "ice:Xy7q/Ab3k");
}

/// The error a trace whose line 3 is `line` gives.
fn error_on_line_3(line: &str) -> String {
    let text = format!(
        "{{\"t_ms\":0,\"event\":\"start\",\"role\":\"controlled\",\"local_ufrag\":\"u1\"}}\n\
         {{\"t_ms\":1,\"event\":\"state\",\"state\":\"gathering\"}}\n{line}\n\
         {{\"t_ms\":3,\"event\":\"state\",\"state\":\"closed\"}}\n"
    );
    match input::read("bad.jsonl", Cursor::new(text.into_bytes())) {
        Err(e @ InputError::Malformed { line: 3, .. }) => e.to_string(),
        other => panic!("{line}: expected an error on line 3, got {other:?}"),
    }
}

#[test]
fn malformed_lines_are_errors_naming_the_line() {
    let truncated = error_on_line_3("{\"t_ms\":2,\"event\":\"candidate\",\"side\":\"loc");
    assert!(
        truncated.starts_with("bad.jsonl:3: not JSON"),
        "{truncated}"
    );
    assert!(error_on_line_3("[1, 2]").contains("not a JSON object"));
    assert!(error_on_line_3("{\"t_ms\":2}").contains("no \"event\" field"));
    assert!(error_on_line_3("{\"event\":\"state\",\"state\":\"x\"}").contains("no \"t_ms\""));
    assert!(
        error_on_line_3("{\"t_ms\":\"2\",\"event\":\"state\"}")
            .contains("\"t_ms\" should be a number")
    );
    assert!(
        error_on_line_3("{\"t_ms\":2,\"event\":\"gather-error\",\"code\":99999}")
            .contains("not a STUN error code")
    );
    assert!(error_on_line_3("{\"t_ms\":2,\"event\":\"candidate\"}").contains("\"candidate\""));
    assert!(
        error_on_line_3("{\"t_ms\":2,\"event\":\"promoted\",\"from\":\"x\"}")
            .contains("\"from\" should be an object")
    );
    // A start line without its ufrag.
    let text = "{\"t_ms\":0,\"event\":\"start\",\"role\":\"controlling\"}\n";
    let error = input::read("nofrag.jsonl", Cursor::new(text.as_bytes().to_vec())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "nofrag.jsonl:1: no \"local_ufrag\" field"
    );
}

#[test]
fn an_unknown_candidate_line_is_a_finding_not_an_error() {
    let text = "{\"t_ms\":0,\"event\":\"start\",\"role\":\"controlling\",\"local_ufrag\":\"u2\"}\n\
                {\"t_ms\":1,\"event\":\"candidate\",\"side\":\"local\",\"candidate\":\"candidate:1 1 udp 99999999999 1.2.3 x typ host\"}\n";
    let (format, items) = input::read("odd.jsonl", Cursor::new(text.as_bytes().to_vec())).unwrap();
    let analysis = analyze(vec![("odd.jsonl".into(), format, items)]);
    assert!(
        codes(&analysis).contains(&"malformed-candidate"),
        "{:?}",
        codes(&analysis)
    );
}

#[test]
fn traces_written_by_edgeice_call_are_read() {
    // Written by `edgeice call --controlling --send 100 --trace` and
    // `edgeice call --echo --trace` against each other on loopback.
    let analysis = run(&[
        "call-loopback.controlled.jsonl",
        "call-loopback.controlling.jsonl",
    ]);
    assert!(!analysis.has_errors(), "{:?}", codes(&analysis));
    assert_eq!(analysis.calls.len(), 1);
    let call = &analysis.calls[0];
    assert!(!call.ice_failed);
    assert_eq!(call.offer.as_ref().unwrap().role, "controlling");
    let what: Vec<&str> = call.timeline.iter().map(|e| e.what.as_str()).collect();
    assert!(
        what.iter()
            .any(|w| w.starts_with("[controlling] remote candidate prflx")
                && w.ends_with("(learned from a check)")),
        "{what:#?}"
    );
    assert!(what.contains(&"[controlled] state completed"), "{what:#?}");
    assert!(what.contains(&"[controlling] media: 100 sent, 100 received"));
}

#[test]
fn a_role_conflict_moves_the_agent_to_its_new_side() {
    let text = "{\"t_ms\":0,\"event\":\"start\",\"role\":\"controlling\",\"local_ufrag\":\"r1\"}\n\
                {\"t_ms\":5,\"event\":\"role\",\"role\":\"controlled\"}\n";
    let (format, items) = input::read("role.jsonl", Cursor::new(text.as_bytes().to_vec())).unwrap();
    let analysis = analyze(vec![("role.jsonl".into(), format, items)]);
    let call = &analysis.calls[0];
    assert_eq!(call.answer.as_ref().unwrap().party, "role.jsonl, ufrag r1");
    assert!(
        call.timeline
            .iter()
            .any(|e| e.what == "role conflict: now controlled")
    );
}

#[test]
fn a_real_call_with_a_wrong_turn_password_is_diagnosed() {
    // Written by two `edgeice call --trace` against `edgeice serve --user
    // alice:right` on loopback, the controlling side with `--password
    // wrong`, the controlled side `--relay-only` with the right one.
    let analysis = run(&[
        "call-turn-401.controlling.jsonl",
        "call-turn-401.controlled.jsonl",
    ]);
    let found = codes(&analysis);
    assert_eq!(found[0], "turn-auth-failed", "{found:?}");
    assert!(analysis.findings[0].message.contains("controlling agent"));
    assert!(found.contains(&"ice-failed"), "{found:?}");
}
