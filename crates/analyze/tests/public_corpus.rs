//! The analyzer on public artifacts nobody here wrote (`tests/corpus/public/`,
//! each with a `.note.md` giving its source, its licence and, for a
//! failure, the cause its source states). These are evidence: a test
//! asserts the verdict the source supports, or that no false alarm is
//! raised on a healthy input.

use std::path::Path;

use edgeice_analyze::{Analysis, Severity, analyze, input};

fn run(name: &str) -> Analysis {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/public")
        .join(name);
    let file = std::fs::File::open(&path).unwrap();
    let (format, items) = input::read(name, std::io::BufReader::new(file)).unwrap();
    analyze(vec![(name.to_string(), format, items)])
}

/// No error and no warning: what a healthy input must give.
fn assert_healthy(analysis: &Analysis) {
    let alarms: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| format!("{} ({:?}): {}", f.code, f.severity, f.message))
        .collect();
    assert!(alarms.is_empty(), "false alarms: {alarms:#?}");
}

fn codes(analysis: &Analysis) -> Vec<&str> {
    analysis.findings.iter().map(|f| f.code).collect()
}

#[test]
fn every_public_artifact_has_its_note() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/public");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".note.md") {
            continue;
        }
        let note = std::fs::read_to_string(dir.join(format!("{name}.note.md")))
            .unwrap_or_else(|_| panic!("{name} has no note"));
        assert!(
            note.contains("Source:") && note.contains("Licence:"),
            "{name}'s note"
        );
    }
}

// Chrome webrtc-internals dumps in the current format (JSON values).

#[test]
fn chrome_147_dump_connected_is_healthy() {
    let analysis = run("chrome147-xuyu130-connected.webrtc-internals.json");
    assert_healthy(&analysis);
    // 11-1's second answer comes from a new far end (a new ufrag): an ICE
    // restart, so a second generation; 12-2 is that far end.
    let ids: Vec<&str> = analysis.calls.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["11-1", "11-1 (ICE restart 1)", "12-2"]);
    for call in &analysis.calls {
        assert!(call.connected && !call.ice_failed, "{}", call.call_id);
        let offer = call.offer.as_ref().unwrap();
        assert!(!offer.description.media[0].candidates.is_empty());
    }
    // The stats are the latest state: they describe the last generation.
    assert!(
        analysis.calls[0]
            .browser
            .as_ref()
            .unwrap()
            .selected_pair
            .is_none()
    );
    assert!(
        analysis.calls[1]
            .browser
            .as_ref()
            .unwrap()
            .selected_pair
            .is_some()
    );
    // The browser's own STUN error (701 on an IPv6 interface) is read, as a note.
    let error = analysis
        .findings
        .iter()
        .find(|f| f.code == "ice-candidate-error")
        .unwrap();
    assert_eq!(error.severity, Severity::Info);
    assert!(
        error.message.contains("stun:stun.l.google.com:19302"),
        "{}",
        error.message
    );
}

#[test]
fn chrome_149_dump_reports_the_selected_pair() {
    let analysis = run("chrome149-mammotion-connected.webrtc-internals.json");
    assert_healthy(&analysis);
    let call = &analysis.calls[0];
    assert!(call.connected);
    let browser = call.browser.as_ref().unwrap();
    let pair = browser.selected_pair.as_deref().unwrap();
    assert!(pair.contains("srflx udp 81.217.27.201:49880"), "{pair}");
    assert!(pair.contains("81.217.27.201:38454"), "{pair}");
    assert_eq!(
        browser.configuration.as_ref().unwrap().ice_servers,
        ["stun:stun.l.google.com:19302"]
    );
    // Seven remote candidates trickled (TCP passive, hostname, srflx…).
    assert_eq!(
        call.answer.as_ref().unwrap().description.media[0]
            .candidates
            .len(),
        7
    );
}

#[test]
fn chrome_144_dump_with_renegotiation_is_healthy() {
    let analysis = run("chrome144-guilospanck-connected.webrtc-internals.json");
    assert_healthy(&analysis);
    assert_eq!(analysis.calls.len(), 2, "a renegotiation is no new call");
    for call in &analysis.calls {
        assert!(call.connected);
        // The renegotiated description (three m-lines) is the one kept.
        assert_eq!(call.offer.as_ref().unwrap().description.media.len(), 3);
        assert!(
            call.browser
                .as_ref()
                .unwrap()
                .configuration
                .as_ref()
                .unwrap()
                .has_turn()
        );
    }
    assert!(codes(&analysis).contains(&"ice-connected"));
}

// Real Skype for Business 2016 INVITEs (intranet).

fn assert_tcp_act_hosts_are_hosts(name: &str) {
    let analysis = run(name);
    assert!(!analysis.has_errors(), "{:?}", codes(&analysis));
    assert!(
        !codes(&analysis).contains(&"srflx-private-address"),
        "{name}: TCP-ACT srflx with raddr == address is a host"
    );
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    let candidates = json["calls"][0]["offer"]["description"]["media"][0]["candidates"]
        .as_array()
        .unwrap()
        .clone();
    let tcp_act_host = candidates
        .iter()
        .find(|c| c["text"].as_str().unwrap().contains("TCP-ACT 16847"))
        .unwrap();
    assert_eq!(tcp_act_hosts_type(tcp_act_host), ("host", "srflx"));
}

fn tcp_act_hosts_type(c: &serde_json::Value) -> (&str, &str) {
    (
        c["decoded"]["type"].as_str().unwrap(),
        c["decoded"]["written_type"].as_str().unwrap(),
    )
}

#[test]
fn sfb2016_tele2_invite_raises_no_false_alarm() {
    assert_tcp_act_hosts_are_hosts("sfb2016-invite-tele2-intranet.sip");
    assert_healthy(&run("sfb2016-invite-tele2-intranet.sip"));
}

#[test]
fn sfb2016_intranet_invite_without_edge_raises_no_false_alarm() {
    assert_tcp_act_hosts_are_hosts("sfb2016-invite-lync-loc-intranet.sip");
    // Host candidates only, but the client says its media is on the
    // intranet: a note, not a warning.
    let analysis = run("sfb2016-invite-lync-loc-intranet.sip");
    assert_healthy(&analysis);
    assert!(codes(&analysis).contains(&"only-host-candidates"));
}

#[test]
fn ipv6_candidates_are_printed_in_brackets() {
    let analysis = run("sfb2016-invite-lync-loc-intranet.sip");
    let text = edgeice_analyze::report::text(&analysis, false);
    assert!(text.contains("[fd00:7:495:1::4c]:14530"), "{text}");
}

// Chrome webrtc-internals dumps in the old format (text values).

#[test]
fn chrome_86_old_form_dump_is_read_whole() {
    let analysis = run("chrome86-old-form-kurento.webrtc-internals.json");
    assert_healthy(&analysis);
    assert_eq!(analysis.calls.len(), 2);
    for call in &analysis.calls {
        assert!(call.connected, "{}", call.call_id);
        let offer = call.offer.as_ref().unwrap();
        assert!(offer.description.media[0].candidates.len() >= 3);
        let browser = call.browser.as_ref().unwrap();
        let pair = browser.selected_pair.as_deref().unwrap();
        assert!(pair.starts_with("local srflx udp 5.18.247.172:"), "{pair}");
        // The old form's errors, one `key: value` per line, are read.
        assert!(browser.candidate_errors.iter().any(|e| e.code == 701
            && e.url == "turn:18.132.95.233:3478?transport=udp"
            && e.text == "TURN allocate request timed out."));
        assert!(browser.configuration.as_ref().unwrap().has_turn());
    }
}

#[test]
fn chrome_86_old_form_stats_without_types_are_read() {
    let analysis = run("chrome-old-form-kurento-inbound.webrtc-internals.json");
    assert_healthy(&analysis);
    let call = &analysis.calls[0];
    assert!(call.connected);
    let pair = call
        .browser
        .as_ref()
        .unwrap()
        .selected_pair
        .as_deref()
        .unwrap();
    assert!(pair.contains("35.179.76.65:16955"), "{pair}");
}
