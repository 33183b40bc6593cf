//! The fleet lab (lab/fleet.sh, issue 18): Redis and three `edgeice
//! serve` nodes in network namespaces, clients in another. The script runs
//! each case (calls spread over the nodes, a drain with redirection, a
//! browser following the redirect, kill -9 of a node, users and quotas
//! shared through Redis, a Redis outage), prints one result line per case
//! and a table; this test runs it and checks each case's outcome from its
//! figures. A case the build cannot run (its flag or command missing) is
//! skipped by the script, saying what is missing: the test checks that it
//! really is missing, so that a renamed flag cannot hide a case. Needs root
//! (skipped, said on stderr, without), iproute2, redis-server, curl,
//! python3, coturn's turnutils tools, node with playwright-core and
//! Debian's chromium (scripts/test.sh installs them).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CASES: [&str; 7] = [
    "spread",
    "drain",
    "chromium",
    "kill9",
    "users",
    "quota",
    "redis-outage",
];

/// The "within a second", generously: the script's probes are
/// whole `edgeice bench` processes started on a shared machine.
const USER_CHANGE_BOUND_MS: u64 = 2000;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// One case's line: its `key=value` figures, and the skip reason if any.
struct CaseLine {
    figures: HashMap<String, String>,
    line: String,
}

impl CaseLine {
    fn get(&self, key: &str) -> &str {
        self.figures
            .get(key)
            .map_or_else(|| panic!("no {key} in: {}", self.line), String::as_str)
    }

    fn ms(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number of ms in: {}", self.line))
    }
}

fn case_line(stdout: &str, case: &str) -> CaseLine {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("case {case} ")))
        .unwrap_or_else(|| panic!("no result for case {case}:\n{stdout}"))
        .to_owned();
    let head = line.split(" reason: ").next().unwrap_or_default();
    let mut figures = HashMap::new();
    let mut words = head.split_whitespace().skip(2).peekable();
    while let Some(word) = words.next() {
        if let Some((key, value)) = word.split_once('=') {
            let mut value = value.to_owned();
            // `missing=edgeice drain`: a skip's missing command has a space.
            if key == "missing" {
                while let Some(next) = words.peek().filter(|w| !w.contains('=')) {
                    value.push(' ');
                    value.push_str(next);
                    words.next();
                }
            }
            figures.insert(key.to_owned(), value);
        }
    }
    CaseLine { figures, line }
}

/// Whether the binary has `missing` (`--flag` of serve, or a command
/// with its flag, as the script names it).
fn binary_has(missing: &str) -> bool {
    let edgeice = env!("CARGO_BIN_EXE_edgeice");
    let help = |args: &[&str]| {
        Command::new(edgeice)
            .args(args)
            .arg("--help")
            .output()
            .map(|o| {
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            })
            .unwrap_or_default()
    };
    match missing {
        "edgeice drain" => help(&["drain"]).0,
        "user --redis" => help(&["user"]).1.contains("--redis "),
        flag => help(&["serve"])
            .1
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{flag} "))),
    }
}

#[test]
fn the_fleet_lab_behaves() {
    if !is_root() {
        eprintln!("SKIPPED: lab/fleet.sh needs root (network namespaces); run as root");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new("bash");
    command
        .arg(root.join("lab/fleet.sh"))
        .env("EDGEICE", env!("CARGO_BIN_EXE_edgeice"))
        .env("FLEET_TIMEOUT", "600")
        .env("FLEET_USER_MS", USER_CHANGE_BOUND_MS.to_string())
        .env_remove("FLEET_CASES");
    // The script stops itself at FLEET_TIMEOUT; this is the backstop.
    let out = common::run_bounded(command, Duration::from_secs(660));
    assert!(
        out.status.is_some_and(|s| s.success()),
        "lab/fleet.sh did not behave as expected ({:?}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("| case |"), "no table:\n{}", out.stdout);
    // The figures, for whoever reads the test's output (cargo shows it
    // with --nocapture).
    println!("{}", out.stdout);
    for case in CASES {
        let line = case_line(&out.stdout, case);
        match line.get("result") {
            "pass" => {}
            "skip" => {
                let missing = line.get("missing");
                assert!(
                    !binary_has(missing),
                    "case {case} skipped for want of {missing}, which this build has:\n{}",
                    line.line
                );
                eprintln!("NOT RUN: {}", line.line);
                continue;
            }
            other => panic!("case {case}: result {other}:\n{}", out.stdout),
        }
        // What each case's figures must say.
        match case {
            "spread" => {
                assert_eq!(line.get("calls_per_node"), "10/10/10", "{}", line.line);
                assert_eq!(line.get("packets_lost"), "0", "{}", line.line);
                assert_eq!(line.get("uclient_ok"), "yes,yes,yes", "{}", line.line);
            }
            "drain" => {
                assert_eq!(line.get("calls_kept"), "10/10", "{}", line.line);
                assert_eq!(line.get("packets_lost"), "0", "{}", line.line);
                assert_eq!(
                    line.get("new_allocations_redirected"),
                    "10/10",
                    "{}",
                    line.line
                );
                assert_eq!(line.get("new_on_n2"), "0", "{}", line.line);
                assert_eq!(line.get("uclient_followed"), "yes", "{}", line.line);
                assert_eq!(line.get("n2_exit_status"), "0", "{}", line.line);
            }
            "chromium" => {
                let relay = line.get("relay_candidate_on");
                assert!(
                    relay == "10.66.0.11" || relay == "10.66.0.13",
                    "{}",
                    line.line
                );
                assert_eq!(line.get("data_channel"), "both-ways", "{}", line.line);
            }
            "kill9" => {
                assert_eq!(line.get("n1_calls_clean"), "yes", "{}", line.line);
                assert_eq!(line.get("n2_calls_clean"), "yes", "{}", line.line);
                assert_eq!(
                    line.get("n3_clients_allocated_again"),
                    "10/10",
                    "{}",
                    line.line
                );
                assert_ne!(line.get("n3_left_registry_after"), "never", "{}", line.line);
            }
            "users" => {
                assert!(
                    line.ms("added_reached_every_node_ms") <= USER_CHANGE_BOUND_MS,
                    "{}",
                    line.line
                );
                assert!(
                    line.ms("removed_reached_every_node_ms") <= USER_CHANGE_BOUND_MS,
                    "{}",
                    line.line
                );
            }
            "quota" => {
                let allocated: u64 = line.get("allocated").parse().unwrap_or(u64::MAX);
                let quota: u64 = line.get("quota").parse().unwrap_or(0);
                assert!(allocated <= quota && allocated > 0, "{}", line.line);
                assert_ne!(
                    line.get("quota_back_after_holder_killed_ms"),
                    "never",
                    "{}",
                    line.line
                );
            }
            "redis-outage" => {
                assert_eq!(
                    line.get("calls_kept_n1_n2_n3"),
                    "yes/yes/yes",
                    "{}",
                    line.line
                );
                assert_eq!(line.get("nodes_alive"), "yes", "{}", line.line);
                assert_eq!(
                    line.get("new_allocations_during_outage"),
                    "9/9",
                    "{}",
                    line.line
                );
                assert_eq!(line.get("known_user_during_outage"), "3/3", "{}", line.line);
                assert_eq!(line.get("outage_counted_by"), "3/3", "{}", line.line);
                assert_ne!(
                    line.get("new_user_reached_every_node_ms"),
                    "never",
                    "{}",
                    line.line
                );
            }
            _ => unreachable!("a case without checks: {case}"),
        }
    }
}

#[test]
fn an_argument_is_bad_usage() {
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/fleet.sh"))
        .arg("--now")
        .env("EDGEICE", env!("CARGO_BIN_EXE_edgeice"))
        .output()
        .expect("run bash");
    assert_eq!(status.status.code(), Some(2));
}

#[test]
fn an_unknown_case_is_bad_usage() {
    if !is_root() {
        return;
    }
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/fleet.sh"))
        .env("EDGEICE", env!("CARGO_BIN_EXE_edgeice"))
        .env("FLEET_CASES", "spread teleport")
        .output()
        .expect("run bash");
    assert_eq!(status.status.code(), Some(2));
}
