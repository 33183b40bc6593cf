//! `edgeice analyze`: exit statuses, and the HTML report rendered in
//! headless Chromium (in a network namespace with loopback alone), with a
//! screenshot of the seed's call.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../analyze/tests/corpus");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/report_screenshot.mjs"
);
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("run edgeice analyze")
}

#[test]
fn exit_status_says_error_clean_or_unreadable() {
    let seed = format!("{CORPUS}/seed-client.uccapilog");
    let healthy = format!("{CORPUS}/healthy-call.sip");
    assert_eq!(analyze(&[&seed]).status.code(), Some(1));
    assert_eq!(analyze(&[&healthy]).status.code(), Some(0));
    let missing = analyze(&["/nonexistent/trace.sip"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open"));
    let json = analyze(&["--format", "json", &seed]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["findings"][0]["code"], "relay-private-address");
}

#[test]
fn the_html_report_renders_its_diagram_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "install chromium: run scripts/test.sh"
    );
    assert!(
        Path::new(&format!("{REPO}/node_modules/playwright-core")).exists(),
        "playwright-core is not installed: run scripts/test.sh (npm ci)"
    );
    let dir = std::env::temp_dir().join(format!("edgeice-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (html, png) = (dir.join("seed.html"), dir.join("seed.png"));
    let seed = format!("{CORPUS}/seed-client.uccapilog");
    let out = analyze(&[
        "--format",
        "html",
        "--output",
        &html.to_string_lossy(),
        &seed,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("relay-private-address")
            && !page.contains("http://")
            && !page.contains("https://")
    );

    let mut command = Command::new("unshare");
    command.args([
        "--net",
        "bash",
        "-c",
        "ip link set lo up; cd \"$1\" && exec node \"$2\" \"$3\" \"$4\"",
        "-",
    ]);
    command.args([REPO, SCRIPT]).arg(&html).arg(&png);
    let outcome = common::run_bounded(command, Duration::from_secs(120));
    assert!(
        outcome.status.is_some_and(|s| s.success()),
        "the report did not render:\n{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let drawn: serde_json::Value =
        serde_json::from_str(outcome.stdout.trim()).expect("JSON from the script");
    assert!(drawn["candidates"].as_u64() > Some(4), "{drawn}");
    assert_pairs_follow_the_verdict(&drawn, &seed);
    let screenshot = std::fs::read(&png).expect("a screenshot");
    assert!(screenshot.starts_with(b"\x89PNG"), "not a PNG");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What Chromium drew against what the JSON report of the same input
/// says: every media line drawn and labelled; each pair's colour its
/// conclusion's (green only where checks can cross, red where they
/// cannot); every pair with an end an error finding names is red; no pair
/// ICE never forms (TCP passive with passive, across components or
/// address families) drawn.
fn assert_pairs_follow_the_verdict(drawn: &serde_json::Value, input: &str) {
    let json = analyze(&["--format", "json", input]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let call = &report["calls"][0];
    let media = call["offer"]["description"]["media"].as_array().unwrap();
    let drawn_media = drawn["media"].as_array().unwrap();
    assert_eq!(drawn_media.len(), media.len(), "{drawn}");
    let mut candidates = std::collections::HashMap::new();
    for side in ["offer", "answer"] {
        for m in call[side]["description"]["media"].as_array().unwrap() {
            for c in m["candidates"].as_array().unwrap() {
                candidates.insert(c["line"].as_u64().unwrap(), c["decoded"].clone());
            }
        }
    }
    let condemned: Vec<u64> = call["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .flat_map(|f| f["evidence"].as_array().unwrap().clone())
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    let (green, red) = ("rgb(34, 170, 119)", "rgb(204, 68, 68)");
    let mut colours = std::collections::BTreeMap::new();
    for (m, d) in media.iter().zip(drawn_media) {
        let kind = m["kind"].as_str().unwrap();
        assert_eq!(d["kind"], kind);
        assert!(
            d["label"].as_str().unwrap().starts_with(kind),
            "{}",
            d["label"]
        );
        for pair in d["pairs"].as_array().unwrap() {
            let crossing = pair["crossing"].as_str().unwrap();
            let stroke = pair["stroke"].as_str().unwrap();
            *colours.entry(stroke.to_owned()).or_insert(0) += 1;
            match crossing {
                "succeeded" | "can-cross" => assert_eq!(stroke, green, "{pair}"),
                "cannot" | "failed" => assert_eq!(stroke, red, "{pair}"),
                _ => assert!(stroke != green && stroke != red, "{pair}"),
            }
            let (o, a) = (
                pair["offer_line"].as_u64().unwrap(),
                pair["answer_line"].as_u64().unwrap(),
            );
            if condemned.contains(&o) || condemned.contains(&a) {
                assert_eq!(stroke, red, "an end the verdict condemns: {pair}");
            }
            let (co, ca) = (&candidates[&o], &candidates[&a]);
            assert_eq!(co["component"], ca["component"], "{pair}");
            let tcp = |c: &serde_json::Value| c["transport"].as_str().unwrap().starts_with("TCP");
            assert_eq!(tcp(co), tcp(ca), "{pair}");
            // decoded.tcp_role: from tcptype, or MS-ICE2's TCP-ACT/TCP-PASS.
            let role = |c: &serde_json::Value| c["tcp_role"].as_str().map(str::to_owned);
            if tcp(co) {
                let roles = (role(co), role(ca));
                assert!(
                    matches!(
                        (roles.0.as_deref(), roles.1.as_deref()),
                        (Some("active"), Some("passive"))
                            | (Some("passive"), Some("active"))
                            | (Some("so"), Some("so"))
                            | (None, _)
                            | (_, None)
                    ),
                    "TCP roles that never pair: {pair} {roles:?}"
                );
            }
            let passive = |c: &serde_json::Value| c["tcp_role"] == "passive";
            assert!(
                !(passive(co) && passive(ca)),
                "passive with passive: {pair}"
            );
            let v6 = |c: &serde_json::Value| c["address"].as_str().unwrap().contains(':');
            assert_eq!(v6(co), v6(ca), "{pair}");
        }
    }
    // The seed's call has pairs of each kind, and the relay-to-relay one
    // is red.
    assert!(
        colours.contains_key(green) && colours.contains_key(red),
        "{colours:?}"
    );
}

#[test]
fn call_traces_are_read_paired_and_malformed_lines_named() {
    let controlling = format!("{CORPUS}/trace-a.controlling.jsonl");
    let controlled = format!("{CORPUS}/trace-a.controlled.jsonl");
    let out = analyze(&["--format", "json", &controlled, &controlling]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["inputs"][0]["format"], "call-trace");
    assert_eq!(value["calls"].as_array().map(Vec::len), Some(1));
    assert_eq!(value["calls"][0]["call_id"], "ice:Xy7q/Ab3k");
    assert_eq!(value["findings"][0]["code"], "turn-auth-failed");

    let healthy = analyze(&[&format!("{CORPUS}/trace-healthy.jsonl")]);
    assert_eq!(healthy.status.code(), Some(0));
    let text = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        text.contains("promoted: from relay 198.51.100.7:61002"),
        "{text}"
    );

    let dir = std::env::temp_dir().join(format!("edgeice-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"t_ms\":0,\"event\":\"start\",\"role\":\"controlling\",\"local_ufrag\":\"u\"}\n\
         {\"t_ms\":1,\"event\":\"state\",\"state\":\"checking\"}\n\
         {\"t_ms\":2,\"event\":\"check\",\"sta\n",
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = analyze(&["--format", format, &bad.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(2), "{format}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bad.jsonl:3: not JSON"), "{stderr}");
        if format == "json" {
            // The streamed document is still closed, and says why it stops.
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert!(value["error"].as_str().unwrap().contains(":3:"), "{value}");
        } else {
            assert!(out.stdout.is_empty());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_file_does_not_hide_the_readable_ones_and_dash_is_stdin() {
    let seed = format!("{CORPUS}/seed-client.uccapilog");
    let junk = format!("{CORPUS}/../../../../Cargo.toml");
    // The readable file is reported; the other is named; exit status 2.
    let out = analyze(&[&junk, &seed]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cargo.toml") && stderr.contains("webrtc-internals"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("relay-private-address"));
    // JSON claims no format for the file it could not read.
    let out = analyze(&["--format", "json", &junk, &seed]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["inputs"].as_array().unwrap().len(), 1, "{value}");
    assert!(value["error"].as_str().unwrap().contains("Cargo.toml"));
    // `-` is standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(["analyze", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(&seed).unwrap(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("relay-private-address"));
}
