//! The client against `edgeice serve`, with the scenarios coturn is put
//! through (`common/scenarios.rs`). The server binary comes from
//! `$EDGEICE_BIN` or the workspace's `target/debug/edgeice`, which
//! `cargo test --workspace` builds before running any test; when neither
//! exists (`cargo test -p edgeice-client` on a fresh checkout) the tests
//! fail and say how to build it, rather than pass untested.

mod common;

use std::net::UdpSocket;

use common::{EdgeiceServe, scenarios};
use edgeice_client::{TransactionConfig, Transport};

fn server() -> Option<EdgeiceServe> {
    let server = EdgeiceServe::start();
    assert!(
        server.is_some(),
        "no edgeice binary: run `cargo build -p edgeice` (or `cargo test --workspace`), or set EDGEICE_BIN"
    );
    server
}

#[test]
fn binding_reports_the_socket_address() {
    let Some(server) = server() else { return };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mapped = common::binding(&socket, server.addr, TransactionConfig::default());
    assert_eq!(mapped, Some(socket.local_addr().unwrap()));
}

#[test]
fn relays_over_udp() {
    let Some(server) = server() else { return };
    scenarios::relay(server.addr, Transport::Udp);
}

#[test]
fn relays_over_tcp() {
    let Some(server) = server() else { return };
    scenarios::relay(server.addr, Transport::Tcp);
}

#[test]
fn wrong_password_fails_with_401() {
    let Some(server) = server() else { return };
    scenarios::wrong_password(server.addr);
}

#[test]
fn tcp_relay_connects_to_a_peer() {
    let Some(server) = server() else { return };
    scenarios::tcp_relay(server.addr);
}

#[test]
fn tcp_relay_accepts_a_peer() {
    let Some(server) = server() else { return };
    scenarios::tcp_relay_accepts(server.addr);
}
