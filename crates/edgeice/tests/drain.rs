//! Draining an edge with real clients, all on loopback: coturn 4.17.1's
//! `turnutils_uclient` relays through an edge while it drains (SIGUSR1,
//! `edgeice drain`, SIGTERM with --drain-timeout) and loses nothing, a new
//! client is sent to a second edge by 300 Try Alternate and relays there,
//! and the drained edge exits 0 by itself once its last allocation ends,
//! or at the deadline, cutting what is left. Chromium's case, which needs
//! a namespace, is in `drain_chromium.rs`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Running, coturn_tool, free_udp_tcp_port, metric, scrape, start_peer};

/// An `edgeice serve` with everything it printed kept.
struct Edge {
    process: Running,
    udp: SocketAddr,
    metrics: SocketAddr,
    admin: PathBuf,
    output: Arc<Mutex<String>>,
    _dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("edgeice-drain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl Edge {
    /// Starts an edge on 127.0.0.1 relaying from `relay_ports`, with
    /// `extra` flags; waits for its listeners and metrics endpoint.
    fn start(name: &str, relay_ports: &str, extra: &[&str]) -> Edge {
        let dir = temp_dir(name);
        let admin = dir.0.join("admin.sock");
        let listen = format!("127.0.0.1:{}", free_udp_tcp_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeice"))
            .arg("serve")
            .args(["--listen", &listen, "--user", "user:pass"])
            .args(["--realm", "edgeice.test", "--relay-ports", relay_ports])
            .args(["--allow-peer", "127.0.0.0/8", "--private-relay-ok"])
            .args(["--metrics", "127.0.0.1:0", "--admin-socket"])
            .arg(&admin)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edgeice");
        let output = Arc::new(Mutex::new(String::new()));
        let (lines, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [Box::new(lines) as Box<dyn Read + Send>, Box::new(stderr)] {
            let (output, tx) = (output.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line.clone());
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let process = Running::new(child);
        let (mut udp, mut metrics) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (udp.is_none() || metrics.is_none()) && Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            if let Some(rest) = line.strip_prefix("edgeice: listening on udp ") {
                udp = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            } else if let Some(rest) = line.strip_prefix("edgeice: metrics on http://") {
                metrics = rest.trim_end_matches("/metrics").parse().ok();
            }
        }
        let (Some(udp), Some(metrics)) = (udp, metrics) else {
            panic!("{name} did not start:\n{}", output.lock().unwrap());
        };
        // The admin socket is announced after the metrics endpoint.
        wait_for(Duration::from_secs(10), || admin.exists());
        Edge {
            process,
            udp,
            metrics,
            admin,
            output,
            _dir: dir,
        }
    }

    fn signal(&mut self, name: &str) {
        let pid = self.process.child().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Allocations live now.
    fn allocations(&self) -> f64 {
        scrape(self.metrics)
            .lines()
            .filter(|l| l.starts_with("edgeice_allocations{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn metric(&self, series: &str) -> f64 {
        metric(&scrape(self.metrics), series).unwrap_or_else(|| panic!("no {series}"))
    }

    /// `/readyz`'s status line.
    fn readyz(&self) -> String {
        let mut stream = TcpStream::connect(self.metrics).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: edgeice\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or("").to_owned()
    }

    /// Waits for the process to exit by itself, within `limit`.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.process.child().try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Polls `done` until it holds, for at most `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One turnutils_uclient (RTP and RTCP: three allocations with its probe)
/// sending `messages` per session every 20 ms through `server` to coturn's
/// echo peer on `peer_port`, in the background.
fn uclient(server: SocketAddr, peer_port: u16, messages: u32) -> std::thread::JoinHandle<String> {
    let mut command = Command::new(coturn_tool("turnutils_uclient"));
    command
        .args(["-u", "user", "-w", "pass", "-e", "127.0.0.1"])
        .args([
            "-r",
            &peer_port.to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .args([
            "-m",
            "1",
            "-n",
            &messages.to_string(),
            "-l",
            "120",
            "-z",
            "20",
        ])
        .arg(server.ip().to_string());
    std::thread::spawn(move || {
        let outcome = common::run_bounded(command, Duration::from_secs(120));
        outcome.stdout + &outcome.stderr
    })
}

/// Whether a uclient run sent and got back every message of its two
/// sessions.
fn lost_nothing(output: &str, messages: u32) -> bool {
    let total = 2 * messages;
    output.contains(&format!("tot_send_msgs={total}, tot_recv_msgs={total}"))
        && output.contains("Total lost packets 0 ")
}

fn edgeice_drain(admin: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .arg("drain")
        .arg("--admin-socket")
        .arg(admin)
        .args(extra)
        .output()
        .expect("run edgeice drain");
    assert!(output.status.success(), "edgeice drain: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn uclient_relays_through_a_drain_new_clients_go_to_the_alternate_and_the_edge_exits() {
    let mut second = Edge::start("second", "63000-65535", &[]);
    let alternate = second.udp.to_string();
    // uclient leaves its probe allocation behind, unreleased: a short
    // lifetime lets it lapse, so that the edge empties.
    let mut first = Edge::start(
        "first",
        "61000-62999",
        &[
            "--alternate-server",
            &alternate,
            "--max-allocate-lifetime",
            "30",
        ],
    );
    let (_peer, peer_port) = start_peer("127.0.0.1");
    let running = uclient(first.udp, peer_port, 250);
    wait_for(Duration::from_secs(30), || first.allocations() >= 3.0);

    first.signal("USR1");
    wait_for(Duration::from_secs(10), || {
        first.metric("edgeice_draining") == 1.0
    });
    assert!(
        first.readyz().contains("503"),
        "/readyz: {}",
        first.readyz()
    );

    // A new client, sent to the second edge, relays there.
    let redirected = uclient(first.udp, peer_port, 10).join().unwrap();
    assert!(lost_nothing(&redirected, 10), "{redirected}");
    assert!(first.metric("edgeice_redirects_total{reason=\"draining\"}") >= 1.0);
    assert!(second.metric("edgeice_allocations_created_total") >= 2.0);

    // The call that was running loses nothing.
    let output = running.join().unwrap();
    assert!(lost_nothing(&output, 250), "{output}\n{}", first.log());

    let status = first.exit_within(Duration::from_secs(90));
    let log = first.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("drained: no allocation left"), "{log}");
    assert!(!log.contains("ended (drained)"), "nothing cut:\n{log}");
    // The second edge still serves.
    assert!(second.process.child().try_wait().unwrap().is_none());
}

#[test]
fn a_drain_deadline_cuts_allocations_still_refreshing_and_sigusr1_twice_changes_nothing() {
    let mut edge = Edge::start("deadline", "61000-62999", &["--drain-timeout", "60"]);
    let (_peer, peer_port) = start_peer("127.0.0.1");
    // A call far longer than the deadline: 2000 messages, 40 s.
    let _running = uclient(edge.udp, peer_port, 2000);
    wait_for(Duration::from_secs(30), || edge.allocations() >= 3.0);

    // SIGTERM with --drain-timeout drains rather than stops.
    edge.signal("TERM");
    wait_for(Duration::from_secs(10), || {
        edge.log().contains("SIGTERM: draining")
    });
    assert!(edge.process.child().try_wait().unwrap().is_none());
    assert!(edge.readyz().contains("503"));
    // One at a time: two signals pending at once are one.
    for count in 1..=2 {
        edge.signal("USR1");
        wait_for(Duration::from_secs(10), || {
            edge.log().matches("SIGUSR1: already draining").count() == count
        });
    }
    assert!(edge.process.child().try_wait().unwrap().is_none());
    // The deadline brought forward; the call is still refreshing.
    let said = edgeice_drain(&edge.admin, &["--timeout", "2"]);
    assert!(
        said.starts_with("already draining: 3 allocations left"),
        "{said}"
    );

    let status = edge.exit_within(Duration::from_secs(30));
    let log = edge.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        log.contains("drain deadline reached: 3 allocations cut"),
        "{log}"
    );
    assert_eq!(log.matches("ended (drained)").count(), 3, "{log}");
}

#[test]
fn a_drain_with_no_alternate_of_the_clients_family_refuses_new_allocations_with_508() {
    // The only alternate is IPv6: never sent to an IPv4 client.
    let port = free_udp_tcp_port();
    let v6_only = format!("[::1]:{port}");
    let mut edge = Edge::start("refuse", "61000-62999", &["--alternate-server", &v6_only]);
    let (_peer, peer_port) = start_peer("127.0.0.1");
    let running = uclient(edge.udp, peer_port, 400);
    wait_for(Duration::from_secs(30), || edge.allocations() >= 3.0);

    let said = edgeice_drain(&edge.admin, &[]);
    assert!(said.starts_with("draining: 3 allocations left"), "{said}");
    let again = edgeice_drain(&edge.admin, &[]);
    assert!(again.starts_with("already draining"), "{again}");

    let refused = uclient(edge.udp, peer_port, 10).join().unwrap();
    assert!(!lost_nothing(&refused, 10), "{refused}");
    assert!(edge.metric("edgeice_drain_refusals_total") >= 1.0);
    assert_eq!(
        edge.metric("edgeice_redirects_total{reason=\"draining\"}"),
        0.0
    );
    assert!(edge.metric("edgeice_error_responses_total{code=\"508\"}") >= 1.0);

    let output = running.join().unwrap();
    assert!(lost_nothing(&output, 400), "{output}");
    // What is left (uclient's probe) is cut at a deadline given now.
    let said = edgeice_drain(&edge.admin, &["--timeout", "1"]);
    assert!(said.contains("or in 1 s"), "{said}");
    let status = edge.exit_within(Duration::from_secs(30));
    let log = edge.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("allocations cut"), "{log}");
}

/// aioice's TURN client allocating through `server`: what it says.
const AIOICE_ALLOCATE: &str = r#"
import asyncio, sys
from aioice import stun, turn

async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    try:
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(asyncio.DatagramProtocol, (host, int(port)), "user", "pass"),
            20,
        )
    except stun.TransactionFailed as e:
        print("FAILED", e.response.attributes.get("ERROR-CODE"))
        return
    print("ALLOCATED", transport.get_extra_info("related_address"))
    transport.close()

asyncio.run(main())
"#;

#[test]
fn aioice_does_not_follow_a_redirect() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
    assert!(Path::new(python).exists(), "no .venv: run scripts/test.sh");
    let second = Edge::start("aioice-second", "63000-65535", &[]);
    let alternate = second.udp.to_string();
    let first = Edge::start(
        "aioice-first",
        "61000-62999",
        &["--alternate-server", &alternate, "--redirect-above", "0"],
    );
    let mut command = Command::new(python);
    command
        .args(["-c", AIOICE_ALLOCATE])
        .arg(first.udp.to_string());
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    // aioice 0.13 retries 401 and 438 only: a 300 fails its allocation,
    // which README's "Draining" says.
    assert!(
        outcome.stdout.starts_with("FAILED (300, 'Try Alternate')"),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(first.metric("edgeice_redirects_total{reason=\"full\"}") >= 1.0);
}

#[test]
fn a_second_sigterm_stops_a_drain_at_once() {
    let mut edge = Edge::start("second-term", "61000-62999", &["--drain-timeout", "600"]);
    let (_peer, peer_port) = start_peer("127.0.0.1");
    let _running = uclient(edge.udp, peer_port, 2000);
    wait_for(Duration::from_secs(30), || edge.allocations() >= 3.0);
    edge.signal("USR1");
    wait_for(Duration::from_secs(10), || {
        edge.log().contains("SIGUSR1: draining")
    });
    // The first SIGTERM joins the drain under way; the second stops.
    edge.signal("TERM");
    wait_for(Duration::from_secs(10), || {
        edge.log().contains("SIGTERM: already draining")
    });
    assert!(edge.process.child().try_wait().unwrap().is_none());
    edge.signal("TERM");
    let status = edge.exit_within(Duration::from_secs(10));
    let log = edge.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("SIGTERM: stopped"), "{log}");
    assert_eq!(log.matches("ended (shutdown)").count(), 3, "{log}");
}

/// aioice's answer from `edge`: "ALLOCATED …" or "FAILED (code, reason)".
fn aioice_allocate(edge: &Edge) -> String {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
    assert!(Path::new(python).exists(), "no .venv: run scripts/test.sh");
    let mut command = Command::new(python);
    command
        .args(["-c", AIOICE_ALLOCATE])
        .arg(edge.udp.to_string());
    let outcome = common::run_bounded(command, Duration::from_secs(60));
    format!("{}{}", outcome.stdout, outcome.stderr)
}

#[test]
fn sighup_puts_new_alternate_servers_in_force() {
    let dir = temp_dir("reload-file");
    let file = dir.0.join("edgeice.toml");
    // Redirect every Allocate, but the only alternate is IPv6: served here.
    std::fs::write(
        &file,
        "redirect-above = 0\nalternate-server = [\"[::1]:3478\"]\n",
    )
    .unwrap();
    let config = file.to_string_lossy().into_owned();
    let mut edge = Edge::start("reload", "61000-62999", &["--config", &config]);
    let said = aioice_allocate(&edge);
    assert!(said.starts_with("ALLOCATED"), "{said}");

    std::fs::write(
        &file,
        "redirect-above = 0\nalternate-server = [\"192.0.2.7:3478\"]\n",
    )
    .unwrap();
    edge.signal("HUP");
    wait_for(Duration::from_secs(10), || {
        edge.log().contains("1 alternate server address(es)")
    });
    let said = aioice_allocate(&edge);
    assert!(said.starts_with("FAILED (300"), "{said}");
}
