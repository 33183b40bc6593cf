//! A third-party STUN client, coturn's `turnutils_stunclient`, against
//! `edgeice serve`: it must read back the address it sent from, over IPv4
//! and IPv6. Needs the Debian package coturn (`scripts/test.sh` installs it).

mod common;

use std::net::SocketAddr;
use std::process::Command;

/// Runs turnutils_stunclient against `server` and returns the reflexive
/// addresses it printed.
fn stunclient(server: SocketAddr, local_ip: Option<&str>) -> Vec<SocketAddr> {
    let mut command = Command::new(common::coturn_tool("turnutils_stunclient"));
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

/// A UDP port free on both loopback addresses, with the next one free too.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = |ip: &str, p: u16| std::net::UdpSocket::bind((ip, p)).is_ok();
        if port < 65535
            && free("127.0.0.1", port + 1)
            && free("127.0.0.2", port)
            && free("127.0.0.2", port + 1)
        {
            return port;
        }
    }
    panic!("no free port pair");
}

#[test]
fn turnutils_stunclient_runs_rfc5780_behaviour_discovery() {
    let port = free_port_pair();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--no-tcp",
        "--user",
        "t:t",
        "--listen",
        &listen,
        "--alternate-ip",
        "127.0.0.2",
    ];
    let (_server, listeners) = common::start_server(&args, 4);
    assert_eq!(listeners.len(), 4);
    let output = Command::new(common::coturn_tool("turnutils_stunclient"))
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .expect("run turnutils_stunclient (install coturn, or run scripts/test.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let other = format!("Other addr: : 127.0.0.2:{}", port + 1);
    assert!(
        stdout.contains(&other),
        "no OTHER-ADDRESS {other}:\n{stdout}"
    );
    // The later requests ask for a change of IP and port: those answers
    // must come from the alternate address (as coturn's do).
    let section = |n: usize| {
        stdout
            .split("RFC 5780 response ")
            .nth(n)
            .unwrap_or("")
            .to_owned()
    };
    let origin = format!("Response origin: : 127.0.0.2:{}", port + 1);
    assert!(
        section(2).contains(&origin),
        "change IP and port:\n{stdout}"
    );
    assert!(
        section(3).contains("UDP reflexive addr: 127.0.0.1:"),
        "third test:\n{stdout}"
    );
}
