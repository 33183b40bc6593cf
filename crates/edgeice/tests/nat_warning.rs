//! The seed's root cause, caught: an edge whose relay address is private
//! says so at start-up, and with `--external-ip` it advertises the public
//! address instead. Runs in a network namespace the test creates (`unshare
//! --net`), where the edge has the private address 10.0.1.5; coturn's
//! `turnutils_uclient` allocates through it and reports the relay address it
//! was given. Needs root (for the namespace) and coturn.

use std::process::Command;

/// Runs an edge on 10.0.1.5 inside a fresh namespace with `extra` flags,
/// allocates once with turnutils_uclient, and returns (uclient's stdout,
/// the server's stderr).
fn allocate_in_namespace(extra: &str) -> (String, String) {
    let edgeice = env!("CARGO_BIN_EXE_edgeice");
    let script = format!(
        r#"
        set -eu
        dir=$(mktemp -d)
        trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
        ip link set lo up
        ip addr add 10.0.1.5/32 dev lo
        turnutils_peer -L 10.0.1.5 -p 3480 >/dev/null 2>&1 &
        EDGEICE_LOG=warn {edgeice} serve --listen 10.0.1.5:3478 --user u:p \
            --relay-ports 61000-65535 {extra} >"$dir/out" 2>"$dir/err" &
        for _ in $(seq 100); do grep -q 'listening on tcp' "$dir/out" && break; sleep 0.1; done
        timeout 30 turnutils_uclient -v -c -m 1 -n 3 -u u -w p -e 10.0.1.5 -r 3480 -p 3478 10.0.1.5 || true
        cat "$dir/err" >&2
        "#
    );
    let output = Command::new("unshare")
        .args(["--net", "bash", "-c", &script])
        .output()
        .expect("run unshare (util-linux)");
    assert!(
        output.status.success(),
        "namespace script failed (needs root and coturn): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_private_relay_address_is_warned_about() {
    let (client, server) = allocate_in_namespace("");
    assert!(
        server.contains("relay address 10.0.1.5 is private")
            && server.contains("--external-ip PUBLIC_IP/10.0.1.5"),
        "no NAT warning at start-up:\n{server}"
    );
    assert!(
        client.contains("relay addr: 10.0.1.5:"),
        "uclient output:\n{client}"
    );
}

#[test]
fn with_external_ip_the_public_address_is_advertised() {
    let (client, server) = allocate_in_namespace("--external-ip 203.0.113.5/10.0.1.5");
    assert!(
        client.contains("relay addr: 203.0.113.5:"),
        "uclient output:\n{client}"
    );
    assert!(
        !server.contains("is private"),
        "warning despite --external-ip:\n{server}"
    );
}
