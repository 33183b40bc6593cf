//! `edgeice serve --kernel-fast-path`: the XDP relay end to end in network
//! namespaces (lab/fast-path.sh: coturn's turnutils_uclient, aioice's TURN
//! client and edgeice bench through the server with the fast path off,
//! then on — no loss, the same bytes, nearly every ChannelData packet
//! relayed by the kernel when on, the server's relayed-packet counters
//! moving by exactly what the bench sent; edge-case ChannelData — padded,
//! too long, unbound, short, IP-fragmented, from an IPv6 client with an
//! IPv4 relay — answered the same either way and left to the sockets;
//! IPv6 throughout (client, relay and peer) relayed by the kernel both
//! ways, by XDP and by TC, with the same datagrams back as through the
//! sockets; permissions that lapse;
//! then the same through the TC program where the interface already has
//! another XDP program), and how `auto` and `on` behave where the kernel
//! path cannot be set up. The lab's aioice runs with the `.venv` that
//! `scripts/test.sh` makes.

mod common;

use std::process::Command;
use std::time::Duration;

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");

/// Runs the server until it has started (or failed to) and returns what it
/// printed, killed after `wait`.
fn serve(mode: &str, wait: Duration) -> common::Outcome {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let mut command = Command::new("timeout");
    command
        .arg(format!("{}", wait.as_secs_f64()))
        .arg(EDGEICE)
        .args(["serve", "--listen", &listen, "--no-tcp", "--user", "u:p"])
        .args(["--relay-ports", "61000-65535", "--private-relay-ok"])
        .args(["--kernel-fast-path", mode]);
    common::run_bounded(command, wait + Duration::from_secs(10))
}

#[test]
fn auto_falls_back_to_sockets_and_says_why() {
    // On loopback, forwarding is off: the server runs on the sockets and
    // says why, once.
    let out = serve("auto", Duration::from_secs(2));
    assert!(
        out.stdout.contains("listening on udp"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("kernel fast path off, relaying through sockets"),
        "{}",
        out.stderr
    );
}

#[test]
fn auto_is_the_default_and_says_in_one_line_which_capability_is_missing() {
    // Root with every capability dropped (an empty bounding set): no flag
    // given, the server tries the fast path, and says in one line that it
    // cannot and why, before trying anything the kernel would refuse.
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let mut command = Command::new("timeout");
    command
        .args(["2", "setpriv", "--bounding-set=-all", "--inh-caps=-all"])
        .arg(EDGEICE)
        .args(["serve", "--listen", &listen, "--no-tcp", "--user", "u:p"])
        .args(["--relay-ports", "61000-65535", "--private-relay-ok"]);
    let out = common::run_bounded(command, Duration::from_secs(12));
    if !out.stderr.contains("kernel fast path") && out.stderr.contains("setpriv") {
        eprintln!(
            "SKIPPED: setpriv cannot drop capabilities here: {}",
            out.stderr
        );
        return;
    }
    assert!(out.stdout.contains("listening on udp"), "{}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("kernel fast path"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("kernel fast path off, relaying through sockets: the process lacks")
            && lines[0].contains("CAP_BPF")
            && lines[0].contains("CAP_NET_ADMIN"),
        "{}",
        out.stderr
    );
}

#[test]
fn off_never_tries() {
    let out = serve("off", Duration::from_secs(2));
    assert!(out.stdout.contains("listening on udp"), "{}", out.stderr);
    assert!(!out.stderr.contains("kernel fast path"), "{}", out.stderr);
}

#[test]
fn on_refuses_to_start_without_the_kernel_path() {
    let out = serve("on", Duration::from_secs(5));
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("--kernel-fast-path on"),
        "{}",
        out.stderr
    );
}

#[test]
fn uclient_relays_through_xdp_with_the_same_results() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/fast-path.sh");
    let mut command = Command::new("bash");
    command
        .arg(script)
        .env("EDGEICE", EDGEICE)
        .env(
            "FP_PYTHON",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python"),
        )
        .env("FP_TIMEOUT", "300");
    let out = common::run_bounded(command, Duration::from_secs(330));
    match out.status.and_then(|s| s.code()) {
        // Among its checks: IPv6 throughout relayed by XDP and by TC both
        // ways, and what came back the same as through the sockets.
        Some(0) => assert!(
            out.stdout.contains("relayed by XDP")
                && out.stdout.contains("TC fallback")
                && out.stdout.contains("edge cases, IPv6 throughout"),
            "{}",
            out.stdout
        ),
        // The kernel refused XDP: said on stderr, not silently passed.
        Some(77) => eprintln!("SKIPPED: {}", out.stderr),
        _ => panic!(
            "lab/fast-path.sh failed ({:?}):\n{}\n{}",
            out.status, out.stdout, out.stderr
        ),
    }
}
