//! Starting `edgeice serve` from integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Kills a child process when the test ends, however it ends.
pub struct Running(Child);

impl Running {
    /// Takes charge of `child`.
    #[allow(dead_code)]
    pub fn new(child: Child) -> Self {
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener the server reported: ("udp" or "tcp", address).
pub type Listener = (String, SocketAddr);

/// Starts `edgeice serve` with `args` and waits for its `expected`
/// "listening on" lines.
pub fn start_server(args: &[&str], expected: usize) -> (Running, Vec<Listener>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start edgeice");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Running(child);
    let mut listeners = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref().take(expected) {
        let line = line.expect("read server output");
        let rest = line
            .strip_prefix("edgeice: listening on ")
            .unwrap_or_else(|| panic!("unexpected server output: {line}"));
        let (proto, addr) = rest.split_once(' ').expect("proto and address");
        listeners.push((proto.to_owned(), addr.parse().expect("a socket address")));
    }
    assert_eq!(listeners.len(), expected, "server stopped before listening");
    // Keep reading what the server prints, so it never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, listeners)
}
