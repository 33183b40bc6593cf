//! Real captures nobody here wrote (`tests/corpus/public/capture-*`, each
//! with its note), read by the analyzer and by tshark, a real peer: the
//! STUN and SIP messages edgeice reads are the ones tshark reads, and the
//! fragments it puts back together are the datagrams tshark reassembles.
//! Then damaged copies of them: the report says where each stopped.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgeice_analyze::{Analysis, Severity, analyze, input};

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/public")
        .join(name)
}

fn run_bytes(name: &str, bytes: Vec<u8>) -> Analysis {
    let (format, items) = input::read(name, std::io::Cursor::new(bytes)).unwrap();
    analyze(vec![(name.to_string(), format, items)])
}

fn run(name: &str) -> Analysis {
    run_bytes(name, std::fs::read(path(name)).unwrap())
}

/// tshark's reading of a file: one line per packet matching `filter`, with
/// `fields` separated by tabs.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    assert!(
        Path::new("/usr/bin/tshark").exists(),
        "install tshark: run scripts/test.sh"
    );
    let mut command = Command::new("tshark");
    command
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-Y", filter, "-T", "fields"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let out = command.output().expect("run tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// STUN messages tshark reads, per packet number (a field with several
/// values, one per message in the packet, is comma-separated), leaving
/// out those quoted inside ICMP errors.
fn tshark_stun(file: &Path) -> Vec<(usize, usize)> {
    tshark(
        file,
        "(stun || classicstun) && !icmp && !icmpv6",
        &["frame.number", "stun.type", "classicstun.type"],
    )
    .iter()
    .map(|line| {
        let mut parts = line.split('\t');
        let number = parts.next().unwrap().parse().unwrap();
        let messages: usize = parts
            .filter(|p| !p.is_empty())
            .map(|p| p.split(',').count())
            .sum();
        (number, messages)
    })
    // ChannelData and TURN-framed media show as STUN with no message.
    .filter(|(_, messages)| *messages > 0)
    .collect()
}

fn edgeice_stun(analysis: &Analysis) -> Vec<(usize, usize)> {
    let mut per_packet: Vec<(usize, usize)> = Vec::new();
    for packet in &analysis_stun(analysis) {
        match per_packet.last_mut() {
            Some((n, count)) if *n == *packet => *count += 1,
            _ => per_packet.push((*packet, 1)),
        }
    }
    per_packet
}

fn analysis_stun(analysis: &Analysis) -> Vec<usize> {
    let mut packets: Vec<usize> = analysis.stun.iter().map(|p| p.packet).collect();
    packets.sort();
    packets
}

#[test]
fn stun_messages_are_the_ones_tshark_reads() {
    for (name, dialect) in [
        ("ndpi-stun_classic.pcap", "rfc3489"),
        ("ndpi-stun_tcp_multiple_msgs_same_pkt.pcap", "standard"),
        ("ndpi-stun.pcap", "standard"),
        ("ndpi-stun_msteams_unidir.pcapng", "ms-ice2"),
    ] {
        let analysis = run(name);
        assert_eq!(
            edgeice_stun(&analysis),
            tshark_stun(&path(name)),
            "{name}: STUN messages per packet, edgeice vs tshark"
        );
        assert!(
            analysis.stun.iter().any(|p| p.dialect == dialect),
            "{name}: no {dialect} message"
        );
        assert_eq!(analysis.read.stun_packets, analysis.stun.len(), "{name}");
    }
}

#[test]
fn classic_stun_is_read_and_counted_without_a_false_alarm() {
    let analysis = run("ndpi-stun_classic.pcap");
    assert_eq!(analysis.read.classic_stun_packets, 2);
    let what: Vec<&str> = analysis.stun.iter().map(|p| p.what.as_str()).collect();
    assert_eq!(what, ["Binding request", "Binding success"]);
    // The response's MAPPED-ADDRESS, as tshark reads it.
    let mapped = tshark(
        &path("ndpi-stun_classic.pcap"),
        "classicstun.att.ipv4",
        &["classicstun.att.ipv4", "classicstun.att.port"],
    );
    let first = mapped[0].split('\t').collect::<Vec<_>>();
    let (ip, port) = (
        first[0].split(',').next().unwrap(),
        first[1].split(',').next().unwrap(),
    );
    assert_eq!(
        analysis.stun[1].mapped_address.map(|a| a.to_string()),
        Some(format!("{ip}:{port}"))
    );
    assert!(analysis.findings.is_empty(), "{:?}", analysis.findings);
}

#[test]
fn the_403s_of_a_real_turn_capture_are_named() {
    let analysis = run("ndpi-stun.pcap");
    let turn_error = analysis
        .findings
        .iter()
        .find(|f| f.code == "turn-error")
        .expect("turn-error");
    assert!(turn_error.message.contains("403"), "{}", turn_error.message);
    // The refused peers are the ones the CreatePermission requests named
    // (XOR-PEER-ADDRESS, as tshark shows them), private ones: routine.
    for peer in ["10.36.43.120:42272", "192.168.0.102:44459"] {
        assert!(turn_error.message.contains(peer), "{}", turn_error.message);
    }
    assert_eq!(turn_error.severity, Severity::Info);
    assert!(
        analysis
            .findings
            .iter()
            .all(|f| f.severity != Severity::Error),
        "{:?}",
        analysis.findings
    );
}

#[test]
fn sip_messages_are_the_ones_tshark_reads() {
    let name = "ndpi-sip.pcap";
    let analysis = run(name);
    let theirs = tshark(&path(name), "sip", &["frame.number"]).len();
    assert_eq!(analysis.read.sip_messages, theirs);
    assert_eq!(analysis.read.calls, 10);
}

#[test]
fn hostile_fragments_reassemble_as_tshark_does() {
    let name = "ndpi-ip_fragmented_garbage.pcap";
    let analysis = run(name);
    let theirs = tshark(&path(name), "ip.reassembled.length", &["frame.number"]).len();
    let capture = analysis.inputs[0].read.capture.as_ref().unwrap();
    assert_eq!(capture.fragments.reassembled, theirs);
    assert_eq!(capture.fragments.fragments, 1252);
    // Nothing in it to analyze: the text report says so, not "nothing
    // wrong found".
    let text = edgeice_analyze::report::text(&analysis, false);
    assert!(text.starts_with("Verdict: nothing to analyze"), "{text}");
    assert!(
        text.contains("4 datagrams reassembled from 1252 fragments"),
        "{text}"
    );
}

/// The byte offsets of a classic pcap file's records.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        offsets.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    offsets
}

#[test]
fn a_truncated_capture_says_where_it_stopped_and_what_it_read() {
    let whole = std::fs::read(path("ndpi-sip.pcap")).unwrap();
    let offsets = record_offsets(&whole);
    // Cut in the middle of packet 60.
    let cut_at = offsets[59] + 30;
    let cut = whole[..cut_at].to_vec();
    let dir = std::env::temp_dir().join(format!("edgeice-capture-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cut.pcap");
    std::fs::write(&file, &cut).unwrap();
    let analysis = run_bytes("cut.pcap", cut);
    let capture = analysis.inputs[0].read.capture.as_ref().unwrap();
    let stopped = capture.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.byte_offset, offsets[59] as u64);
    assert_eq!(stopped.after_packet, 59);
    // tshark reads the same 59 packets before the cut.
    assert_eq!(tshark(&file, "frame", &["frame.number"]).len(), 59);
    assert_eq!(analysis.read.files_stopped_early, 1);
    let sip_before = tshark(&file, "sip", &["frame.number"]).len();
    assert_eq!(analysis.read.sip_messages, sip_before);
    let finding = analysis
        .findings
        .iter()
        .find(|f| f.code == "capture-damaged")
        .expect("capture-damaged");
    assert_eq!(finding.severity, Severity::Warning);
    assert!(
        finding
            .message
            .contains(&format!("past byte {} (after packet 59)", offsets[59])),
        "{}",
        finding.message
    );
    let text = edgeice_analyze::report::text(&analysis, false);
    assert!(!text.contains("nothing wrong found"), "{text}");
    assert!(text.contains("STOPPED at byte"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&edgeice_analyze::report::json(&analysis)).unwrap();
    assert_eq!(
        json["inputs"][0]["read"]["capture"]["stopped"]["after_packet"],
        59
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_record_length_stops_the_reading_there() {
    let mut bytes = std::fs::read(path("ndpi-sip.pcap")).unwrap();
    let offsets = record_offsets(&bytes);
    let at = offsets[100];
    bytes[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let analysis = run_bytes("damaged.pcap", bytes);
    let stopped = analysis.inputs[0]
        .read
        .capture
        .as_ref()
        .unwrap()
        .stopped
        .clone();
    let stopped = stopped.expect("stopped");
    assert_eq!(
        (stopped.byte_offset, stopped.after_packet),
        (at as u64, 100)
    );
    assert!(stopped.reason.contains("damaged"), "{}", stopped.reason);
    // What came before is still analyzed.
    assert!(analysis.read.sip_messages > 50, "{:?}", analysis.read);
}

#[test]
fn the_capture_fuzz_corpus_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/analyze_capture");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        edgeice_analyze::fuzzing::analyze_capture(&data);
        replayed += 1;
    }
    assert!(replayed >= 8, "{replayed} seeds");
}

#[test]
fn a_refusal_says_what_the_file_begins_with() {
    for (bytes, says) in [
        (
            &b"[package]\nname = \"x\"\n"[..],
            "it begins with the line `[package]`",
        ),
        (
            &[0x60, 0xff, 0x00, 0x21, 0x9c][..],
            "it begins with binary data",
        ),
    ] {
        let error = input::read("x", std::io::Cursor::new(bytes)).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(says) && text.contains("pcap/pcapng"),
            "{text}"
        );
    }
}
