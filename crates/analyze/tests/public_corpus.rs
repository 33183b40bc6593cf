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

// The whole corpus, one row per artifact: what its source says, and so
// what the analyzer must find. The Goals table in BENCHMARKS.md is
// computed from it (`goals_over_the_public_corpus`).

/// What an artifact's source says about it.
#[derive(Clone, Copy)]
enum Expect {
    /// A failure whose cause the source states: the finding that names it.
    Failure(&'static str),
    /// No failure stated: no error, and no warning but these (each one
    /// true of the input, said in its note).
    Healthy(&'static [&'static str]),
}

use Expect::{Failure, Healthy};

const CORPUS: &[(&str, Expect)] = &[
    // Chrome webrtc-internals dumps.
    (
        "chrome-old-form-kurento-inbound.webrtc-internals.json",
        Healthy(&[]),
    ),
    (
        "chrome144-guilospanck-connected.webrtc-internals.json",
        Healthy(&[]),
    ),
    (
        "chrome147-xuyu130-connected.webrtc-internals.json",
        Healthy(&[]),
    ),
    (
        "chrome149-mammotion-connected.webrtc-internals.json",
        Healthy(&[]),
    ),
    (
        "chrome86-old-form-kurento.webrtc-internals.json",
        Healthy(&[]),
    ),
    // Real Lync / Skype for Business messages.
    ("sfb2016-invite-lync-loc-intranet.sip", Healthy(&[])),
    ("sfb2016-invite-tele2-intranet.sip", Healthy(&[])),
    ("sfb2015-im-invite-tele2.sip", Healthy(&[])),
    ("lync2013-200ok-51007-teredo.sip", Healthy(&[])),
    ("lync2013-invite-fallback-teredo.sip", Healthy(&[])),
    ("lync2013-im-invite.sip", Healthy(&[])),
    ("lync-msxfaq-51007-normal-clear.uccapilog", Healthy(&[])),
    (
        "lync-ucprimer-23-udp3478-blocked.excerpt.txt",
        Failure("ms-media-failure"),
    ),
    (
        "lync-pareshj-24-tcp-blocked.excerpt.txt",
        Failure("ms-media-failure"),
    ),
    (
        "sfb-ucsorted-25-federated.excerpt.txt",
        Failure("ms-media-failure"),
    ),
    // Other SIP endpoints' real messages.
    ("tandberg-movi-invite-public.sip", Healthy(&[])),
    ("cisco-gw-invite-lan.sip", Healthy(&[])),
    ("vc400-invite-lan.sip", Healthy(&[])),
    ("aver-evc130-invite-lan.sip", Healthy(&[])),
    // Candidates from issue threads.
    (
        "coturn-501-server-private-host.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "coturn-1474-docker-relay-private.trickle-ice.txt",
        Failure("relay-private-address"),
    ),
    (
        "go2rtc-68-docker-private-host.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "node-webrtc-591-docker-private-host.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "aiortc-131-server-private-host.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "libpeer-86-mdns-only.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "kurento-405-mdns-unresolved.excerpt.txt",
        Failure("only-host-candidates"),
    ),
    (
        "freeswitch-927-mdns-rejected.excerpt.txt",
        Failure("mdns-host-candidates"),
    ),
    (
        "node-webrtc-311-masked-relay.excerpt.txt",
        Healthy(&["malformed-candidate"]),
    ),
    (
        "livekit-4487-srflx-documentation.excerpt.txt",
        Healthy(&["no-relay-candidates"]),
    ),
    (
        "kvs-1572-createpermission-403-routine.excerpt.txt",
        Healthy(&[]),
    ),
    // Captures from nDPI's test suite.
    ("ndpi-google_meet.pcapng", Healthy(&[])),
    ("ndpi-ip_fragmented_garbage.pcap", Healthy(&[])),
    ("ndpi-rtp.pcapng", Healthy(&[])),
    ("ndpi-sip.pcap", Healthy(&["private-address-without-ice"])),
    ("ndpi-sip_hello.pcapng", Healthy(&[])),
    ("ndpi-skype-conference-call.pcap", Healthy(&[])),
    ("ndpi-stun.pcap", Healthy(&[])),
    ("ndpi-stun_classic.pcap", Healthy(&[])),
    ("ndpi-stun_dtls_rtp.pcapng", Healthy(&[])),
    ("ndpi-stun_dtls_unidirectional_client.pcap", Healthy(&[])),
    ("ndpi-stun_google_meet.pcapng", Healthy(&[])),
    ("ndpi-stun_msteams_unidir.pcapng", Healthy(&[])),
    ("ndpi-stun_signal.pcapng", Healthy(&[])),
    ("ndpi-stun_tcp_multiple_msgs_same_pkt.pcap", Healthy(&[])),
    ("ndpi-stun_zoom.pcapng", Healthy(&[])),
];

/// Warnings on healthy inputs that their source contradicts (the input
/// works as it is): counted as false alarms in the Goals table.
const FALSE_ALARM_WARNINGS: &[(&str, &str)] = &[(
    "livekit-4487-srflx-documentation.excerpt.txt",
    "no-relay-candidates",
)];

fn alarms(analysis: &Analysis, severity: Severity) -> Vec<&'static str> {
    let mut codes: Vec<&str> = analysis
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.code)
        .collect();
    codes.dedup();
    codes
}

#[test]
fn every_public_artifact_is_in_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/public");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".note.md") {
            assert!(CORPUS.iter().any(|(f, _)| *f == name), "{name} has no row");
        }
    }
}

#[test]
fn every_public_artifact_gets_its_verdict() {
    for (file, expect) in CORPUS {
        let analysis = run(file);
        match expect {
            Failure(code) => assert!(
                codes(&analysis).contains(code),
                "{file}: expected {code}, got {:?}",
                codes(&analysis)
            ),
            Healthy(allowed) => {
                let errors = alarms(&analysis, Severity::Error);
                assert!(errors.is_empty(), "{file}: false errors {errors:?}");
                for warning in alarms(&analysis, Severity::Warning) {
                    assert!(
                        allowed.contains(&warning),
                        "{file}: false warning {warning}"
                    );
                }
            }
        }
    }
}

/// The Goals table of issue 15, over the corpus: printed with
/// `cargo test -p edgeice-analyze --test public_corpus goals -- --nocapture`.
#[test]
fn goals_over_the_public_corpus() {
    let (mut failures, mut right, mut healthy) = (0, 0, 0);
    let (mut error_alarms, mut warned_inputs, mut false_warnings, mut empty) = (0, 0, 0, 0);
    println!("| artifact | source says | verdict |");
    println!("|---|---|---|");
    for (file, expect) in CORPUS {
        let analysis = run(file);
        let read_nothing = analysis.calls.is_empty()
            && analysis.stun.is_empty()
            && analysis.descriptions.is_empty();
        empty += usize::from(read_nothing);
        let verdict = match expect {
            Failure(code) => {
                failures += 1;
                let found = codes(&analysis).contains(code);
                right += usize::from(found);
                format!("{} ({code})", if found { "right" } else { "WRONG" })
            }
            Healthy(_) => {
                healthy += 1;
                let errors = alarms(&analysis, Severity::Error);
                let warnings = alarms(&analysis, Severity::Warning);
                error_alarms += errors.len();
                warned_inputs += usize::from(!warnings.is_empty());
                false_warnings += warnings
                    .iter()
                    .filter(|w| FALSE_ALARM_WARNINGS.contains(&(*file, **w)))
                    .count();
                if errors.is_empty() && warnings.is_empty() {
                    if read_nothing {
                        "no alarm (read nothing)".to_owned()
                    } else {
                        "no alarm".to_owned()
                    }
                } else {
                    format!("errors {errors:?}, warnings {warnings:?}")
                }
            }
        };
        let says = match expect {
            Failure(_) => "failure, cause stated",
            Healthy(_) => "no failure",
        };
        println!("| {file} | {says} | {verdict} |");
    }
    println!();
    println!(
        "artifacts {}; labelled failures {failures}, right root cause {right}; healthy {healthy}: error-level false alarms {error_alarms}, inputs with a warning {warned_inputs}, warnings the source contradicts {false_warnings}; recognised but read nothing {empty}",
        CORPUS.len()
    );
    assert!(CORPUS.len() >= 40);
    assert!(failures >= 10);
    assert!(
        right * 10 >= failures * 9,
        "right root cause on {right} of {failures}"
    );
    assert_eq!(error_alarms, 0);
    // At most one warning-level false alarm per 20 healthy inputs.
    assert!(
        false_warnings * 20 <= healthy,
        "{false_warnings} false warnings on {healthy}"
    );
}

// What the artifacts showed, checked in detail.

#[test]
fn a_callee_connectivity_report_in_an_answer_is_no_failure() {
    // 51007 rides on answered calls and ordinary hang-ups.
    for file in [
        "lync2013-200ok-51007-teredo.sip",
        "lync-msxfaq-51007-normal-clear.uccapilog",
    ] {
        assert!(!codes(&run(file)).contains(&"ms-media-failure"), "{file}");
    }
    let analysis = run("lync-msxfaq-51007-normal-clear.uccapilog");
    let d = &analysis.calls[0].timeline[0].diagnostics[0];
    // The hand-wrapped CalleeMediaDebug is read whole.
    assert_eq!(
        d.media_field("CalleeMediaDebug", "RemoteMR"),
        Some("80.60.22.20:58091")
    );
}

#[test]
fn ice_warn_flags_name_the_paths_that_failed() {
    let find = |file: &str| {
        run(file)
            .findings
            .iter()
            .find(|f| f.code == "ms-media-failure")
            .unwrap()
            .message
            .clone()
    };
    let udp_blocked = find("lync-ucprimer-23-udp3478-blocked.excerpt.txt");
    assert!(
        udp_blocked.contains("TURN server unreachable"),
        "{udp_blocked}"
    );
    assert!(
        udp_blocked.contains("UDP allocation on the TURN server failed"),
        "{udp_blocked}"
    );
    // The post cut the media debug short: no claim about a missing relay.
    assert!(!udp_blocked.contains("no media relay"), "{udp_blocked}");
    let tcp_blocked = find("lync-pareshj-24-tcp-blocked.excerpt.txt");
    assert!(
        tcp_blocked.contains("TCP NAT connectivity failed"),
        "{tcp_blocked}"
    );
    assert!(
        tcp_blocked.contains("TCP TURN (relay) connectivity failed"),
        "{tcp_blocked}"
    );
    let federated = find("sfb-ucsorted-25-federated.excerpt.txt");
    assert!(federated.contains("a federated call"), "{federated}");
}

#[test]
fn mdns_only_candidates_are_said_to_be_mdns() {
    for file in [
        "libpeer-86-mdns-only.excerpt.txt",
        "kurento-405-mdns-unresolved.excerpt.txt",
    ] {
        let analysis = run(file);
        let f = analysis
            .findings
            .iter()
            .find(|f| f.code == "only-host-candidates")
            .unwrap();
        assert!(f.message.contains("mDNS names"), "{file}: {}", f.message);
    }
}

#[test]
fn masked_and_documentation_addresses_are_said_so() {
    let analysis = run("node-webrtc-311-masked-relay.excerpt.txt");
    let masked: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| f.code == "malformed-candidate")
        .collect();
    assert_eq!(masked.len(), 1);
    assert!(
        masked[0].message.contains("masked address (xx.xx.xx.xx)"),
        "{}",
        masked[0].message
    );
    // Three masked rows of one paste: one finding.
    let analysis = run("coturn-1474-docker-relay-private.trickle-ice.txt");
    assert_eq!(
        codes(&analysis)
            .iter()
            .filter(|c| **c == "malformed-candidate")
            .count(),
        1
    );
    let analysis = run("livekit-4487-srflx-documentation.excerpt.txt");
    assert!(!codes(&analysis).contains(&"srflx-private-address"));
    assert!(codes(&analysis).contains(&"documentation-address"));
}

#[test]
fn teredo_hosts_are_explained_as_teredo() {
    let analysis = run("lync2013-invite-fallback-teredo.sip");
    let text = edgeice_analyze::report::text(&analysis, true);
    assert!(text.contains("a Teredo address"), "{text}");
}

#[test]
fn room_systems_on_one_lan_raise_no_warning() {
    for file in [
        "vc400-invite-lan.sip",
        "aver-evc130-invite-lan.sip",
        "cisco-gw-invite-lan.sip",
    ] {
        let analysis = run(file);
        let f = analysis
            .findings
            .iter()
            .find(|f| f.code == "private-address-without-ice")
            .unwrap();
        assert_eq!(f.severity, Severity::Info, "{file}");
        assert!(f.message.contains("a call inside one network"), "{file}");
    }
    // An IM session's m=message carries no media.
    assert!(!codes(&run("lync2013-im-invite.sip")).contains(&"private-address-without-ice"));
}

#[test]
fn a_connected_session_is_never_told_nothing_can_connect() {
    // Host (mDNS) candidates only, and the dump shows it connected.
    let analysis = run("chrome147-xuyu130-connected.webrtc-internals.json");
    assert!(codes(&analysis).contains(&"only-host-candidates"));
    for f in &analysis.findings {
        assert!(!f.message.contains("nothing can connect"), "{}", f.message);
    }
}
