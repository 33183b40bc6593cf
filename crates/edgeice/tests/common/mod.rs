//! Starting `edgeice serve` from integration tests.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Kills a child process when the test ends, however it ends.
pub struct Running(Child);

impl Running {
    /// Takes charge of `child`.
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

/// Starts `edgeice serve` with `args` and waits for `expected` listeners
/// ("listening on" and "metrics on" lines) to be announced.
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
    while listeners.len() < expected {
        let Some(line) = lines.next() else { break };
        let line = line.expect("read server output");
        if let Some(rest) = line.strip_prefix("edgeice: listening on ") {
            let mut words = rest.split_whitespace();
            let (Some(proto), Some(addr)) = (words.next(), words.next()) else {
                panic!("unexpected server output: {line}")
            };
            listeners.push((proto.to_owned(), addr.parse().expect("a socket address")));
        } else if let Some(rest) = line.strip_prefix("edgeice: metrics on http://") {
            let addr = rest.trim_end_matches("/metrics");
            listeners.push((
                "metrics".to_owned(),
                addr.parse().expect("a socket address"),
            ));
        }
    }
    assert_eq!(listeners.len(), expected, "server stopped before listening");
    // Keep reading what the server prints, so it never writes to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, listeners)
}

/// Fetches http://`addr`/metrics and returns the body.
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: edgeice\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the metrics response");
    assert!(
        response.starts_with("HTTP/1.1 200 OK"),
        "metrics answer:\n{response}"
    );
    response
}

/// The value of the metric line that starts with `series` (name and labels).
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
