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

/// An edge at 10.0.1.5 behind a router that maps it to 203.0.113.5 (source
/// NAT with nftables), and a STUN server on the "internet" side at
/// 203.0.113.10: three network namespaces the test creates and removes.
#[test]
fn external_ip_auto_learns_the_public_address_from_a_stun_server() {
    let edgeice = env!("CARGO_BIN_EXE_edgeice");
    let p = format!("ei{}", std::process::id() % 100_000);
    let script = format!(
        r#"
        set -eu
        E={p}e; R={p}r; I={p}i
        dir=$(mktemp -d)
        cleanup() {{
            for ns in $E $R $I; do ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true; done
            for ns in $E $R $I; do ip netns del $ns 2>/dev/null || true; done
            rm -rf "$dir"
        }}
        trap cleanup EXIT
        for ns in $E $R $I; do ip netns add $ns; ip -n $ns link set lo up; done
        ip link add {p}a netns $E type veth peer name {p}b netns $R
        ip link add {p}c netns $R type veth peer name {p}d netns $I
        ip -n $E addr add 10.0.1.5/24 dev {p}a; ip -n $E link set {p}a up
        ip -n $E route add default via 10.0.1.1
        ip -n $R addr add 10.0.1.1/24 dev {p}b; ip -n $R link set {p}b up
        ip -n $R addr add 203.0.113.1/24 dev {p}c; ip -n $R addr add 203.0.113.5/24 dev {p}c
        ip -n $R link set {p}c up
        ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
        printf '%s\n' \
            'table ip nat {{' \
            '  chain post {{ type nat hook postrouting priority 100; oifname "{p}c" ip saddr 10.0.1.5 snat to 203.0.113.5; }}' \
            '  chain pre {{ type nat hook prerouting priority -100; iifname "{p}c" ip daddr 203.0.113.5 dnat to 10.0.1.5; }}' \
            '}}' | ip netns exec $R nft -f -
        ip -n $I addr add 203.0.113.10/24 dev {p}d; ip -n $I link set {p}d up
        ip netns exec $I {edgeice} serve --listen 203.0.113.10:3478 --no-tcp --user x:y >/dev/null 2>&1 &
        sleep 0.3
        ip netns exec $E turnutils_peer -L 10.0.1.5 -p 3480 >/dev/null 2>&1 &
        ip netns exec $E env EDGEICE_LOG=warn {edgeice} serve --listen 10.0.1.5:3478 --user u:p \
            --relay-ports 61000-65535 --external-ip auto --external-ip-stun stun:203.0.113.10 \
            >"$dir/out" 2>"$dir/err" &
        for _ in $(seq 150); do grep -q 'listening on tcp' "$dir/out" && break; sleep 0.1; done
        ip netns exec $E timeout 30 turnutils_uclient -v -c -m 1 -n 3 -u u -w p -e 10.0.1.5 -r 3480 -p 3478 10.0.1.5 || true
        cat "$dir/out"
        cat "$dir/err" >&2
        "#
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "namespace script failed (needs root, iproute2, nftables, coturn):\n{stderr}"
    );
    assert!(
        stdout.contains("external IP of relay 10.0.1.5 is 203.0.113.5"),
        "the public address was not learned:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("relay addr: 203.0.113.5:"),
        "uclient output:\n{stdout}"
    );
    assert!(
        !stderr.contains("is private"),
        "warning despite the learned mapping:\n{stderr}"
    );
}
