//! A third-party STUN client, coturn's `turnutils_stunclient`, against
//! `edgeice serve`: it must read back the address it sent from, over IPv4
//! and IPv6. Needs the Debian package coturn (`scripts/test.sh` installs it).

mod common;

use std::net::SocketAddr;
use std::process::Command;

/// Runs turnutils_stunclient against `server` and returns the reflexive
/// addresses it printed.
fn stunclient(server: SocketAddr, local_ip: Option<&str>) -> Vec<SocketAddr> {
    let mut command = Command::new("turnutils_stunclient");
    command.args(["-p", &server.port().to_string()]);
    if let Some(ip) = local_ip {
        command.args(["-L", ip]);
    }
    command.arg(server.ip().to_string());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run turnutils_stunclient ({e}): install the Debian package coturn, \
             or run scripts/test.sh, which does"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "turnutils_stunclient failed:\n{stdout}"
    );
    stdout
        .lines()
        .filter_map(|line| {
            line.split_once("UDP reflexive addr: ")
                .map(|(_, a)| a.trim())
        })
        .map(|addr| {
            // coturn prints IPv6 without brackets: "::1:39170".
            let (ip, port) = addr.rsplit_once(':').expect("addr:port");
            SocketAddr::new(ip.parse().expect("an IP"), port.parse().expect("a port"))
        })
        .collect()
}

#[test]
fn turnutils_stunclient_reads_its_mapped_address_over_ipv4_and_ipv6() {
    let args = [
        "--no-tcp",
        "--user",
        "t:t",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "[::1]:0",
    ];
    let (_server, listeners) = common::start_server(&args, 2);
    let bound: Vec<SocketAddr> = listeners.iter().map(|(_, addr)| *addr).collect();

    // From 127.0.0.2, so the answer cannot be mistaken for the server's own
    // address: the client must see exactly the address it sent from.
    let v4 = stunclient(bound[0], Some("127.0.0.2"));
    assert!(!v4.is_empty(), "no reflexive address printed");
    for addr in &v4 {
        assert_eq!(addr.ip().to_string(), "127.0.0.2");
        assert_ne!(addr.port(), 0);
        assert_ne!(addr.port(), bound[0].port());
    }

    let v6 = stunclient(bound[1], None);
    assert!(!v6.is_empty(), "no reflexive address printed");
    for addr in &v6 {
        assert_eq!(addr.ip().to_string(), "::1");
        assert_ne!(addr.port(), bound[1].port());
    }
}
