//! The analyzer on the corpus in `tests/corpus/`: the seed's failed call,
//! a healthy call, and broken input.

use std::path::Path;

use edgeice_analyze::{Analysis, Severity, analyze, input};
use proptest::prelude::*;

fn run(names: &[&str]) -> Analysis {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let files = names
        .iter()
        .map(|name| {
            let file = std::fs::File::open(dir.join(name)).unwrap();
            let (format, items) = input::read(name, std::io::BufReader::new(file)).unwrap();
            (name.to_string(), format, items)
        })
        .collect();
    analyze(files)
}

fn codes(analysis: &Analysis) -> Vec<&str> {
    analysis.findings.iter().map(|f| f.code).collect()
}

#[test]
fn the_seed_call_is_diagnosed_relay_private_address() {
    let analysis = run(&["seed-client.uccapilog"]);
    let top = &analysis.findings[0];
    assert_eq!(top.code, "relay-private-address");
    assert_eq!(top.severity, Severity::Error);
    assert!(top.message.contains("10.0.1.5"), "{}", top.message);
    assert!(
        top.message.contains("sip:simon@customer.example"),
        "{}",
        top.message
    );
    assert!(top.fix.contains("--external-ip") && top.fix.contains("NAT enabled"));
    assert!(
        top.evidence
            .iter()
            .all(|e| e.text.contains("typ relay") && e.text.contains("10.0.1.5"))
    );
    assert!(codes(&analysis).contains(&"call-ended-during-checks"));

    let call = &analysis.calls[0];
    assert_eq!(call.seconds_to_bye, Some(10.013));
    assert!(!call.promoted);
    // The OCS 2007 fallback part is set aside: the offer is the MS-ICE2 part.
    let offer = call.offer.as_ref().unwrap();
    assert!(!offer.fallback_only);
    assert_eq!(offer.description.media.len(), 2);
    assert_eq!(offer.description.media[0].candidates.len(), 11);
    // The far side's relays are public: nothing is said against it.
    assert!(
        analysis
            .findings
            .iter()
            .all(|f| !f.message.contains("sip:vmr@meet.vmr.example")
                || f.severity != Severity::Error)
    );
    assert!(analysis.has_errors());
}

#[test]
fn a_healthy_call_has_no_error() {
    let analysis = run(&["healthy-call.sip"]);
    assert!(!analysis.has_errors(), "{:?}", codes(&analysis));
    assert_eq!(analysis.calls.len(), 1);
    assert!(analysis.calls[0].answer.is_some());
}

#[test]
fn broken_candidates_are_findings_not_failures() {
    let analysis = run(&["junk.bin"]);
    assert!(codes(&analysis).contains(&"malformed-candidate"));
}

#[test]
fn the_json_report_carries_the_codes() {
    let analysis = run(&["seed-client.uccapilog"]);
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    assert_eq!(json["findings"][0]["code"], "relay-private-address");
    assert_eq!(json["calls"][0]["seconds_to_bye"], 10.013);
}

#[test]
fn the_json_report_decodes_every_candidate() {
    let analysis = run(&["seed-client.uccapilog"]);
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    let candidates = &json["calls"][0]["offer"]["description"]["media"][0]["candidates"];
    let relay = candidates
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"].as_str().unwrap().contains("TCP-PASS 6556159"))
        .unwrap();
    let decoded = &relay["decoded"];
    assert_eq!(decoded["dialect"], "ms-ice2");
    assert_eq!(decoded["type"], "relay");
    assert_eq!(decoded["tcp_role"], "passive");
    assert_eq!(decoded["address_class"], "private");
    assert_eq!(decoded["related"]["address"], "192.168.1.10");
    let fields = &decoded["priority_fields"];
    assert_eq!(fields["type_preference"], 0);
    assert_eq!(fields["component"], 1);
    assert_eq!(fields["ms_ice2"]["transport"], "TCP");
    assert_eq!(fields["ms_ice2"]["direction"], "passive");
    assert_eq!(fields["ms_ice2"]["other_preference"], 9);

    // A browser's candidates get the RFC split and no MS-ICE2 reading.
    let analysis = run(&["failed-call.webrtc-internals.json"]);
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"priority_fields\""), "{text}");
    assert!(!text.contains("\"ms_ice2\""), "{text}");
}

#[test]
fn the_fuzz_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/analyze_input");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        edgeice_analyze::fuzzing::analyze_input(&data);
        count += 1;
    }
    assert!(count > 0);
}

#[test]
fn the_fuzz_corpus_reaches_every_reader() {
    // The fuzz target starts where `edgeice analyze` does, at format
    // detection: its corpus must hold a seed of every format for the
    // fuzzer to explore each reader from.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/analyze_input");
    let mut formats = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        if let Ok(source) = input::open("fuzz", std::io::Cursor::new(data)) {
            formats.insert(format!("{:?}", source.format()));
        }
    }
    for format in [
        "CallTrace",
        "Uccapilog",
        "SipTrace",
        "Capture",
        "WebrtcInternals",
        "ServeLog",
    ] {
        assert!(formats.contains(format), "no {format} seed: {formats:?}");
    }
}

#[test]
fn dumps_read_whole_and_a_byte_at_a_time_agree() {
    // The fuzz corpus of `webrtc_dump`, and every dump of the corpora.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "../../fuzz/corpus/webrtc_dump",
        "tests/corpus",
        "tests/corpus/public",
    ] {
        let dir = root.join(dir);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy();
            if dir.ends_with("webrtc_dump") || name.ends_with(".webrtc-internals.json") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 9, "{files:?}");
    for path in files {
        edgeice_analyze::fuzzing::webrtc_dump(&std::fs::read(&path).unwrap());
    }
}

proptest! {
    #[test]
    fn mangled_dumps_read_the_same_whole_and_a_byte_at_a_time(cut in 0usize..5000, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut data = std::fs::read(dir.join("failed-call.current.webrtc-internals.json")).unwrap();
        data.truncate(cut.min(data.len()));
        data.extend_from_slice(&junk);
        edgeice_analyze::fuzzing::webrtc_dump(&data);
    }

    #[test]
    fn any_bytes_are_read_without_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        edgeice_analyze::fuzzing::analyze_input(&data);
    }

    #[test]
    fn mangled_logs_are_read_without_panic(cut in 0usize..8000, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut data = std::fs::read(dir.join("seed-client.uccapilog")).unwrap();
        let at = cut.min(data.len());
        data.truncate(at);
        data.extend_from_slice(&junk);
        edgeice_analyze::fuzzing::analyze_input(&data);
    }
}

#[test]
fn sides_that_cannot_form_a_pair_are_found() {
    let analysis = run(&["mismatch-call.sip"]);
    let found = codes(&analysis);
    assert!(found.contains(&"no-common-transport"), "{found:?}");
    assert!(found.contains(&"mdns-unresolvable"), "{found:?}");
    let analysis = run(&["family-mismatch.sip"]);
    assert!(
        codes(&analysis).contains(&"address-family-mismatch"),
        "{:?}",
        codes(&analysis)
    );
}

#[test]
fn a_server_log_blames_the_side_whose_edge_is_misconfigured() {
    let analysis = run(&["edge-b.cls.log"]);
    assert_eq!(analysis.inputs[0].format, "server-log");
    let top = &analysis.findings[0];
    assert_eq!(top.code, "relay-private-address");
    assert!(
        top.message.contains("answer from sip:carol@b.example"),
        "{}",
        top.message
    );
    assert!(top.message.contains("10.0.2.5"));
    assert_eq!(
        analysis.calls[0].timeline[0].timestamp.as_deref(),
        Some("11/24/2026|10:20:01.100")
    );
}

#[test]
fn a_webrtc_internals_dump_is_a_call_with_trickled_candidates() {
    let analysis = run(&["failed-call.webrtc-internals.json"]);
    assert_eq!(analysis.inputs[0].format, "webrtc-internals");
    let call = &analysis.calls[0];
    assert_eq!(call.call_id, "4711-1");
    assert!(call.ice_failed);
    let remote = call.answer.as_ref().unwrap();
    assert_eq!(remote.party, "remote");
    assert_eq!(remote.description.media[0].candidates.len(), 1);
    let found = codes(&analysis);
    assert_eq!(found[0], "relay-private-address", "{found:?}");
    assert!(found.contains(&"ice-failed"), "{found:?}");
    assert!(found.contains(&"mdns-unresolvable"), "{found:?}");
}

#[test]
fn a_capture_shows_refused_turn_credentials() {
    // Captured with tcpdump on loopback: coturn's turnutils_uclient with a
    // wrong password against edgeice serve.
    let analysis = run(&["turn-auth-failed.pcap"]);
    assert_eq!(analysis.inputs[0].format, "capture");
    assert!(
        analysis
            .stun
            .iter()
            .any(|p| p.what == "Allocate request" && p.authenticated)
    );
    let top = &analysis.findings[0];
    assert_eq!(top.code, "turn-auth-failed");
    assert!(top.message.contains("alice"), "{}", top.message);
    assert!(top.evidence.iter().all(|e| e.text.contains("401")));
}

#[test]
fn each_description_finding_has_its_example() {
    for (file, expected) in [
        ("only-host.sdp", &["only-host-candidates"][..]),
        (
            "srflx-private-no-relay.sdp",
            &["srflx-private-address", "no-relay-candidates"][..],
        ),
        ("no-ice-credentials.sdp", &["ice-credentials-missing"][..]),
        ("fallback-only.sip", &["fallback-sdp-only"][..]),
    ] {
        let analysis = run(&[file]);
        let found = codes(&analysis);
        for code in expected {
            assert!(found.contains(code), "{file}: {found:?}");
        }
    }
    // A carrier-grade NAT address as server-reflexive: the client sits
    // behind a second NAT, and the finding says so.
    let analysis = run(&["srflx-private-no-relay.sdp"]);
    let srflx = analysis
        .findings
        .iter()
        .find(|f| f.code == "srflx-private-address")
        .unwrap();
    assert!(srflx.message.contains("100.72.9.14"), "{}", srflx.message);
}

#[test]
fn a_capture_shows_a_user_over_its_allocation_quota() {
    // Captured on loopback: turnutils_uclient, two clients of one user,
    // against `edgeice serve --max-allocations-per-user 1`.
    let analysis = run(&["turn-quota-reached.pcap"]);
    let finding = analysis
        .findings
        .iter()
        .find(|f| f.code == "turn-error")
        .unwrap_or_else(|| panic!("{:?}", codes(&analysis)));
    assert!(
        finding.message.contains("486 (Allocation Quota Reached)"),
        "{}",
        finding.message
    );
    assert!(
        finding.fix.contains("--max-allocations-per-user"),
        "{}",
        finding.fix
    );
    assert!(
        finding
            .evidence
            .iter()
            .any(|e| e.text.contains("Allocate error 486"))
    );
}

#[test]
fn the_bye_s_client_diagnostics_are_decoded() {
    let analysis = run(&["seed-client.uccapilog"]);
    let bye = analysis.calls[0]
        .timeline
        .iter()
        .find(|e| e.what.starts_with("BYE "))
        .unwrap();
    let d = &bye.diagnostics[0];
    assert_eq!(d.header.to_ascii_lowercase(), "ms-client-diagnostics");
    assert_eq!(d.code, Some(23));
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .starts_with("Call failed to establish due to a media connectivity failure")
    );
    let ended = analysis
        .findings
        .iter()
        .find(|f| f.code == "call-ended-during-checks")
        .unwrap();
    assert!(
        ended
            .message
            .contains("the BYE says ms-client-diagnostics 23"),
        "{}",
        ended.message
    );
}

#[test]
fn a_capture_shows_ms_turn_left_unanswered() {
    // Captured with tcpdump on loopback: two libnice agents in OC2007R2
    // mode (Lync's dialects) asking coturn for relays.
    let analysis = run(&["ms-turn-unanswered.pcap"]);
    assert!(
        analysis
            .stun
            .iter()
            .all(|p| p.dialect == "ms-turn" && p.what == "Allocate request")
    );
    let top = &analysis.findings[0];
    assert_eq!(top.code, "ms-turn-unanswered");
    assert_eq!(top.severity, Severity::Error);
    assert!(top.message.contains("127.0.0.1:23490"), "{}", top.message);
    assert!(top.fix.contains("edgeice probe --dialect ms-turn"));
}

#[test]
fn a_capture_of_a_lync_dialect_call_is_decoded() {
    // Captured with tcpdump on loopback: the same libnice agents through
    // edgeice serve, which answers MS-TURN; they connect with MS-ICE2
    // checks through the relays.
    let analysis = run(&["ms-turn-call.pcap"]);
    let whats = |dialect: &str| -> std::collections::BTreeSet<&str> {
        analysis
            .stun
            .iter()
            .filter(|p| p.dialect == dialect)
            .map(|p| p.what.as_str())
            .collect()
    };
    let ms_turn = whats("ms-turn");
    for what in [
        "Allocate request",
        "Allocate error",
        "Allocate success",
        "Send request",
        "Data indication",
        "Set Active Destination request",
        "Set Active Destination success",
    ] {
        assert!(ms_turn.contains(what), "{what} missing from {ms_turn:?}");
    }
    let ms_ice2 = whats("ms-ice2");
    assert!(ms_ice2.contains("Binding request"), "{ms_ice2:?}");
    assert!(ms_ice2.contains("Binding success"), "{ms_ice2:?}");
    assert!(codes(&analysis).iter().all(|c| *c != "ms-turn-unanswered"));
    assert!(codes(&analysis).iter().all(|c| *c != "turn-auth-failed"));
}

#[test]
fn edgeice_serve_logs_are_read_as_json_lines_and_as_text() {
    let analysis = run(&["edgeice-serve.jsonl"]);
    assert_eq!(analysis.inputs[0].format, "edgeice-serve-log");
    let found = codes(&analysis);
    for code in [
        "refused-peer-forbidden",
        "refused-unknown-user",
        "refused-wrong-password",
        "session-peer-refused",
        "serve-log-sessions",
    ] {
        assert!(found.contains(&code), "{code} not in {found:?}");
    }
    let wrong = analysis
        .findings
        .iter()
        .find(|f| f.code == "refused-wrong-password")
        .unwrap();
    assert_eq!(wrong.severity, Severity::Error);
    assert!(
        wrong
            .message
            .contains("wrong password for user alice from 127.0.0.1"),
        "{}",
        wrong.message
    );
    let refused = analysis
        .findings
        .iter()
        .find(|f| f.code == "refused-peer-forbidden")
        .unwrap();
    assert!(
        refused.message.contains("refused by policy rule loopback"),
        "{}",
        refused.message
    );

    let analysis = run(&["edgeice-serve.text.log"]);
    assert_eq!(analysis.inputs[0].format, "edgeice-serve-log");
    let silent: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| f.code == "session-peer-never-answered")
        .collect();
    assert_eq!(silent.len(), 2, "{:?}", codes(&analysis));
    assert!(
        silent[0].message.contains("10 packets, 1200 bytes"),
        "{}",
        silent[0].message
    );
    assert!(
        silent[0]
            .evidence
            .iter()
            .any(|e| e.text.contains("session-start"))
    );
}

#[test]
fn a_current_format_dump_is_read_with_its_errors_and_restarts() {
    // Written here, in the JSON-value form of Chrome 144–149 (see the
    // public dumps in tests/corpus/public/ for real ones).
    let analysis = run(&["failed-call.current.webrtc-internals.json"]);
    let ids: Vec<&str> = analysis.calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["31-1", "31-1 (ICE restart 1)", "31-2"]);
    let first = &analysis.calls[0];
    assert!(first.ice_failed && !first.connected);
    assert_eq!(
        first.offer.as_ref().unwrap().description.media[0]
            .candidates
            .len(),
        1
    );
    let restart = &analysis.calls[1];
    assert!(restart.connected && !restart.ice_failed);
    let candidates = &restart.offer.as_ref().unwrap().description.media[0].candidates;
    assert_eq!(candidates.len(), 1);
    assert!(candidates[0].1.contains("ufrag Rr7t"));
    let in_first = |code: &str| {
        analysis
            .findings
            .iter()
            .find(|f| f.code == code && f.call_id.as_deref() == Some("31-1"))
    };
    let error = in_first("ice-candidate-error").expect("the TURN 401");
    assert_eq!(error.severity, Severity::Error);
    assert!(error.message.contains("401"), "{}", error.message);
    assert!(in_first("relay-policy-without-relay").is_some());
    assert!(in_first("ice-failed").is_some());
    // The second connection failed with only a STUN server configured.
    assert!(
        analysis
            .findings
            .iter()
            .any(|f| f.code == "no-turn-server" && f.call_id.as_deref() == Some("31-2"))
    );
    assert!(analysis.has_errors());
}

#[test]
fn a_client_log_in_the_clients_own_framing_is_read() {
    // Written here, in the framing a Lync/Skype for Business client writes:
    // the start line carries the log prefix, after `Sending Packet`/`Data
    // Received`, and a pasted BYE has no packet line and no End line.
    let analysis = run(&["client-framing.uccapilog"]);
    let call = &analysis.calls[0];
    assert_eq!(call.call_id, "framing-call-1");
    assert!(call.answer.is_some(), "the prefixed 200 OK is read");
    assert_eq!(call.end, "bye", "the pasted BYE is read");
    assert_eq!(call.seconds_to_bye, Some(10.068));
    let failure = analysis
        .findings
        .iter()
        .find(|f| f.code == "ms-media-failure")
        .unwrap();
    assert!(failure.message.contains("52001"), "{}", failure.message);
    // `reason ="…"` (a space before `=`) is kept.
    assert!(
        failure.message.contains("media connectivity failure"),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains("media relay (Edge) 10.0.1.5:61010"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("ICEWarn=0x4000a8"),
        "{}",
        failure.message
    );
    // The TCP-ACT srflx with raddr == address is the client's host: no
    // srflx-private-address warning.
    assert!(!codes(&analysis).contains(&"srflx-private-address"));
    assert_eq!(analysis.findings[0].code, "relay-private-address");
}

#[test]
fn ms_ice_draft6_lines_carry_their_own_credentials() {
    let text = "v=0\no=- 0 0 IN IP4 192.0.2.50\ns=session\nc=IN IP4 192.0.2.50\nt=0 0\nm=audio 50010 RTP/AVP 0\na=candidate:qlGEgH0q1e/t+NR6XOdjY8JAKE8vIIgYbCR8C8eJgC8 1 5yhCtCBRrxbdq4pXf1DnMg UDP 0.830 192.0.2.50 50010\n";
    let (format, items) = input::read("draft6.sdp", std::io::Cursor::new(text)).unwrap();
    let analysis = analyze(vec![("draft6.sdp".into(), format, items)]);
    assert!(
        !codes(&analysis).contains(&"ice-credentials-missing"),
        "{:?}",
        codes(&analysis)
    );
    assert!(!analysis.has_errors());
    // --explain names the username and never prints the password.
    let side = &analysis.descriptions[0];
    let line = &side.description.media[0].candidates[0].1;
    let c = edgeice_candidate::Candidate::parse(line).unwrap();
    let explained = edgeice_analyze::report::explain_candidate(&c);
    assert!(
        explained.contains("qlGEgH0q1e/t+NR6XOdjY8JAKE8vIIgYbCR8C8eJgC8"),
        "{explained}"
    );
    assert!(!explained.contains("5yhCtCBRrxbdq4pXf1DnMg"), "{explained}");
}

#[test]
fn a_relay_at_an_unusable_address_is_an_error() {
    // The relay lines as a browser trickled them in
    // https://github.com/coturn/coturn/issues/450 (a coturn on a machine
    // with two interfaces), around a minimal description written here.
    let text = "v=0\no=- 0 0 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\nc=IN IP4 0.0.0.0\na=ice-ufrag:Ab12\na=ice-pwd:Cd34Ef56Gh78Ij90Kl12Mn34\na=candidate:135 2 UDP 503316988 0.0.0.0 64812 typ relay raddr 172.17.0.1 rport 57505\na=candidate:139 2 UDP 503316987 0.0.0.0 51285 typ relay raddr 192.168.11.138 rport 58998\n";
    let (format, items) = input::read("relay.sdp", std::io::Cursor::new(text)).unwrap();
    let analysis = analyze(vec![("relay.sdp".into(), format, items)]);
    let top = &analysis.findings[0];
    assert_eq!(top.code, "relay-unusable-address");
    assert_eq!(top.severity, Severity::Error);
    assert_eq!(top.evidence.len(), 2);
    assert!(top.fix.contains("relay-ip") && top.fix.contains("--external-ip"));
}

#[test]
fn a_short_call_without_ice_is_not_said_to_end_during_checks() {
    // Written here: a plain SIP call (no candidates) hung up after 5 s.
    let text = "06/05/2026|10:00:00.000 1:2 INFO  :: INVITE sip:b@x.example SIP/2.0\nFrom: <sip:a@x.example>;tag=1\nTo: <sip:b@x.example>\nCall-ID: plain-1\nCSeq: 1 INVITE\nContent-Type: application/sdp\n\nv=0\no=- 0 0 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n06/05/2026|10:00:01.000 1:2 INFO  :: SIP/2.0 200 OK\nFrom: <sip:a@x.example>;tag=1\nTo: <sip:b@x.example>;tag=2\nCall-ID: plain-1\nCSeq: 1 INVITE\nContent-Type: application/sdp\n\nv=0\no=- 0 0 IN IP4 192.0.2.2\ns=-\nc=IN IP4 192.0.2.2\nt=0 0\nm=audio 5000 RTP/AVP 0\n06/05/2026|10:00:06.000 1:2 INFO  :: BYE sip:b@x.example SIP/2.0\nFrom: <sip:a@x.example>;tag=1\nTo: <sip:b@x.example>;tag=2\nCall-ID: plain-1\nCSeq: 2 BYE\n\n";
    let (format, items) = input::read("plain.uccapilog", std::io::Cursor::new(text)).unwrap();
    let analysis = analyze(vec![("plain.uccapilog".into(), format, items)]);
    assert_eq!(analysis.calls[0].seconds_to_bye, Some(5.0));
    assert!(
        !codes(&analysis).contains(&"call-ended-during-checks"),
        "{:?}",
        codes(&analysis)
    );
}

#[test]
fn a_private_connection_address_without_ice_is_a_finding() {
    // Written here: a SIP endpoint behind NAT with no ICE.
    let text = "v=0\no=- 0 0 IN IP4 192.168.0.20\ns=-\nc=IN IP4 192.168.0.20\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
    let (format, items) = input::read("plain.sdp", std::io::Cursor::new(text)).unwrap();
    let analysis = analyze(vec![("plain.sdp".into(), format, items)]);
    let f = &analysis.findings[0];
    assert_eq!(f.code, "private-address-without-ice");
    assert!(f.message.contains("192.168.0.20"), "{}", f.message);
    assert_eq!(f.evidence[0].line, 4);
}

#[test]
fn one_foundation_at_two_public_addresses_is_address_pooling() {
    // Written here.
    let text = "v=0\no=- 0 0 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\nc=IN IP4 0.0.0.0\na=ice-ufrag:Ab12\na=ice-pwd:Cd34Ef56Gh78Ij90Kl12Mn34\na=candidate:1 1 udp 2122260223 192.168.1.10 50000 typ host\na=candidate:7 1 udp 1686052607 81.217.27.201 40000 typ srflx raddr 192.168.1.10 rport 50000\na=candidate:7 1 udp 1686052607 81.217.27.202 40002 typ srflx raddr 192.168.1.10 rport 50000\na=candidate:9 1 udp 41885439 81.217.27.9 3478 typ relay raddr 81.217.27.201 rport 40000\n";
    let (format, items) = input::read("pool.sdp", std::io::Cursor::new(text)).unwrap();
    let analysis = analyze(vec![("pool.sdp".into(), format, items)]);
    let f = analysis
        .findings
        .iter()
        .find(|f| f.code == "address-pooling-nat")
        .expect("address pooling");
    assert!(
        f.message.contains("81.217.27.201, 81.217.27.202"),
        "{}",
        f.message
    );
}

#[test]
fn the_fix_names_the_deployment_the_evidence_shows() {
    // A browser's relay at a private address: coturn or edgeice serve,
    // not Lync's Topology Builder.
    let analysis = run(&["failed-call.webrtc-internals.json"]);
    let f = analysis
        .findings
        .iter()
        .find(|f| f.code == "relay-private-address")
        .unwrap();
    assert!(
        f.fix.contains("external-ip=") && f.fix.contains("edgeice serve"),
        "{}",
        f.fix
    );
    assert!(!f.fix.contains("Topology Builder"), "{}", f.fix);
    // A Lync client's: Topology Builder first.
    let analysis = run(&["seed-client.uccapilog"]);
    assert!(
        analysis.findings[0]
            .fix
            .starts_with("Configure the edge's public NAT address. On a Lync")
    );
}
