//! The metrics listener as a scraper, a load balancer's probe and a hostile
//! client see it: `/metrics`, `/healthz` and `/readyz` fetched with curl,
//! both exposition formats read by the Python Prometheus client's parsers
//! (the classic one and the strict OpenMetrics one), the counters watched
//! while coturn's `turnutils_uclient` relays through the server, and the
//! Grafana dashboard's queries checked against a real scrape. Needs curl,
//! coturn's tools and `.venv` with prometheus_client (`scripts/test.sh`).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Running;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../packaging/grafana-edgeice.json"
);

/// A server with the test user, `extra` flags and a metrics endpoint:
/// (server, UDP/TCP listener, metrics address).
fn server(extra: &[&str]) -> (Running, SocketAddr, SocketAddr) {
    let (server, udp, listeners) =
        common::start_turn_server_with(&[&["--metrics", "127.0.0.1:0"], extra].concat(), 3);
    let metrics = listeners
        .iter()
        .find(|(proto, _)| proto == "metrics")
        .expect("a metrics endpoint")
        .1;
    (server, udp, metrics)
}

/// What curl got: the status line, the header lines, the body.
struct Response {
    status: String,
    headers: Vec<String>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Runs curl on `path` of `addr` with `args`, headers included in what it
/// prints (`-i`, or `-I` for HEAD).
fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> Response {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): run scripts/test.sh"));
    let text = String::from_utf8(output.stdout).expect("curl printed UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    Response {
        status: lines.next().unwrap_or("").to_owned(),
        headers: lines.map(str::to_owned).collect(),
        body: body.to_owned(),
    }
}

fn scrape(addr: SocketAddr) -> String {
    let response = curl(addr, "/metrics", &["-i"]);
    assert_eq!(response.status, "HTTP/1.1 200 OK", "{}", response.body);
    response.body
}

/// Runs `script` with the .venv's Python, `input` on its stdin; returns
/// what it printed, or panics with its error.
fn python(script: &str, input: &str) -> String {
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("no Python at {PYTHON} ({e}): run scripts/test.sh"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script}\nfailed on:\n{input}\n{stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every family the classic (0.0.4) parser of prometheus_client reads:
/// "name type samples" per line.
const CLASSIC: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print(f.name, f.type, len(f.samples))
"#;

/// The same with the strict OpenMetrics parser.
const OPENMETRICS: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print(f.name, f.type, len(f.samples))
"#;

/// The series (sample names with labels) of a text exposition.
fn series(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
        .collect()
}

#[test]
fn endpoints_answer_get_and_head_and_refuse_the_rest() {
    let (_server, _, metrics) = server(&[]);
    let healthz = curl(metrics, "/healthz", &["-i"]);
    assert_eq!(
        (healthz.status.as_str(), healthz.body.as_str()),
        ("HTTP/1.1 200 OK", "alive\n")
    );
    let readyz = curl(metrics, "/readyz", &["-i"]);
    assert_eq!(
        (readyz.status.as_str(), readyz.body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );
    let get = curl(metrics, "/metrics?name[]=x", &["-i"]);
    assert_eq!(get.status, "HTTP/1.1 200 OK");
    for path in ["/metrics", "/healthz", "/readyz"] {
        let head = curl(metrics, path, &["-I"]);
        assert_eq!(head.status, "HTTP/1.1 200 OK", "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        let length: usize = head.header("content-length").unwrap().parse().unwrap();
        assert!(length > 0, "HEAD {path}");
    }
    let head = curl(metrics, "/metrics", &["-I"]);
    assert_eq!(
        head.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let unknown = curl(metrics, "/nothing-here", &["-i"]);
    assert_eq!(unknown.status, "HTTP/1.1 404 Not Found");
    assert!(unknown.body.contains("/healthz"), "{}", unknown.body);
    assert!(curl(metrics, "/", &["-I"]).status.contains("404"));
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let refused = curl(metrics, "/metrics", &["-i", "-X", method]);
        assert_eq!(
            refused.status, "HTTP/1.1 405 Method Not Allowed",
            "{method}"
        );
        assert_eq!(refused.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn both_formats_parse_and_name_counters_as_their_samples() {
    let (_server, _, metrics) = server(&[]);
    // Prometheus's own Accept header.
    let accept = "Accept: application/openmetrics-text;version=1.0.0,\
                  application/openmetrics-text;version=0.0.1;q=0.75,\
                  text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let openmetrics = curl(metrics, "/metrics", &["-i", "-H", accept]);
    assert_eq!(
        openmetrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(openmetrics.body.ends_with("# EOF\n"));
    let strict = python(OPENMETRICS, &openmetrics.body);
    assert!(
        strict.contains("edgeice_allocations_created counter 1"),
        "{strict}"
    );

    let classic = curl(metrics, "/metrics", &["-i"]);
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!classic.body.contains("# EOF") && !classic.body.contains("# UNIT"));
    let families = python(CLASSIC, &classic.body);
    // A counter whose # TYPE named it without `_total` reads as an empty
    // counter and an "unknown" family holding its sample.
    for line in families.lines() {
        let mut words = line.split(' ');
        let (name, kind, samples) = (words.next(), words.next(), words.next());
        assert_ne!(kind, Some("unknown"), "{line}\n{}", classic.body);
        assert_ne!(samples, Some("0"), "{line}\n{}", classic.body);
        assert!(name.is_some());
    }
    for expected in [
        "edgeice_allocations_created counter 1",
        "edgeice_relayed_packets counter 6",
        "edgeice_allocation_lifetime_seconds histogram",
        "edgeice_allocate_latency_seconds histogram",
        "process_cpu_seconds counter 1",
        "edgeice_build_info gauge 1",
    ] {
        assert!(families.contains(expected), "{expected}:\n{families}");
    }
}

#[test]
fn build_info_process_metrics_and_zero_series_are_there_from_the_start() {
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let before = unix_now();
    let (_server, _, metrics) = server(&[]);
    let body = scrape(metrics);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.lines().any(
            |l| l.starts_with(&format!("edgeice_build_info{{version=\"{version}\","))
                && l.ends_with("} 1")
        ),
        "{body}"
    );
    let value =
        |name: &str| common::metric(&body, name).unwrap_or_else(|| panic!("{name}: {body}"));
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    // Present; a server just started may not have used a clock tick yet.
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_threads") >= 2.0);
    let (open, max) = (value("process_open_fds"), value("process_max_fds"));
    assert!(open > 3.0 && open < max, "{open} of {max}");
    // Started after `before`, by the kernel's clock: the boot time it
    // counts from is in whole seconds, hence the slack.
    let start = value("process_start_time_seconds");
    assert!(
        start > before - 2.0 && start < unix_now() + 2.0,
        "{start} not between {before} and now"
    );

    // Every transport × family × dialect, 0 before any allocation.
    let allocations: Vec<&str> = series(&body)
        .into_iter()
        .filter(|s| s.starts_with("edgeice_allocations{"))
        .collect();
    assert_eq!(allocations.len(), 12, "{body}");
    for transport in ["udp", "tcp", "tls"] {
        for family in ["ipv4", "ipv6"] {
            for dialect in ["standard", "ms-turn"] {
                let name = format!(
                    "edgeice_allocations{{transport=\"{transport}\",family=\"{family}\",dialect=\"{dialect}\"}}"
                );
                assert_eq!(common::metric(&body, &name), Some(0.0), "{name}");
            }
        }
        for direction in ["to_peer", "to_client"] {
            let name = format!(
                "edgeice_relayed_bytes_total{{transport=\"{transport}\",direction=\"{direction}\"}}"
            );
            assert_eq!(common::metric(&body, &name), Some(0.0), "{name}");
        }
    }
    assert_eq!(
        common::metric(&body, "edgeice_connections{transport=\"tcp\"}"),
        Some(0.0)
    );
    // --relay-ports 61000-65535 on 127.0.0.1, nothing bound yet.
    assert_eq!(
        common::metric(
            &body,
            "edgeice_relay_ports_free{ip=\"127.0.0.1\",transport=\"udp\"}"
        ),
        Some(4536.0),
        "{body}"
    );
    assert_eq!(
        common::metric(&body, "edgeice_allocation_lifetime_seconds_count"),
        Some(0.0)
    );
}

/// turnutils_uclient as `user`, relaying `messages` per client through
/// `server` to the peer; started, not waited for.
fn uclient(flags: &[&str], user: &str, server: SocketAddr, peer: u16, messages: u32) -> Running {
    let child = Command::new(common::coturn_tool("turnutils_uclient"))
        .args(flags)
        .args(["-u", user, "-w", "pass", "-e", "127.0.0.1"])
        .args(["-r", &peer.to_string(), "-p", &server.port().to_string()])
        .args(["-n", &messages.to_string(), "-l", "100"])
        .arg(server.ip().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run turnutils_uclient ({e}): run scripts/test.sh"));
    Running::new(child)
}

/// Waits for `client` to end (at most two minutes) and checks every
/// message came back.
fn finish(mut client: Running, total: u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.child().try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "turnutils_uclient did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stdout = String::new();
    client
        .child()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let expected = format!("tot_send_msgs={total}, tot_recv_msgs={total}");
    assert!(stdout.contains(&expected), "turnutils_uclient:\n{stdout}");
}

/// Scrapes until `ready` holds of a scrape (at most `within`), and returns
/// that scrape.
fn scrape_until(metrics: SocketAddr, within: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = scrape(metrics);
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never came true:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value(body: &str, series: &str) -> f64 {
    common::metric(body, series).unwrap_or_else(|| panic!("no {series}:\n{body}"))
}

const TCP_TO_PEER: &str = "edgeice_relayed_packets_total{transport=\"tcp\",direction=\"to_peer\"}";
const TCP_TO_CLIENT: &str =
    "edgeice_relayed_packets_total{transport=\"tcp\",direction=\"to_client\"}";
const TCP_ALLOCATIONS: &str =
    "edgeice_allocations{transport=\"tcp\",family=\"ipv4\",dialect=\"standard\"}";
const TCP_CONNECTIONS: &str = "edgeice_connections{transport=\"tcp\"}";

/// Counters move while the session lives, gauges follow it, and the
/// lifetime histogram gets its allocations when they end.
#[test]
fn traffic_moves_during_a_live_uclient_session_and_lifetimes_come_at_its_end() {
    let (_peer, peer) = common::start_peer("127.0.0.1");
    let (_server, udp, metrics) = server(&[]);
    let before = scrape(metrics);
    let free_before = value(
        &before,
        "edgeice_relay_ports_free{ip=\"127.0.0.1\",transport=\"udp\"}",
    );
    // Two TCP clients, no RTCP allocation, 1,500 messages 10 ms apart:
    // about 15 s of traffic.
    let mut client = uclient(
        &["-t", "-c", "-m", "2", "-z", "10"],
        "user",
        udp,
        peer,
        1500,
    );
    let live = scrape_until(metrics, Duration::from_secs(30), |body| {
        common::metric(body, TCP_TO_PEER).is_some_and(|n| n > 0.0)
            && common::metric(body, TCP_TO_CLIENT).is_some_and(|n| n > 0.0)
    });
    assert!(
        client.child().try_wait().unwrap().is_none(),
        "the session ended before its traffic was seen"
    );
    assert_eq!(value(&live, TCP_ALLOCATIONS), 2.0, "{live}");
    assert!(value(&live, TCP_CONNECTIONS) >= 2.0, "{live}");
    assert_eq!(
        value(
            &live,
            "edgeice_relayed_packets_total{transport=\"udp\",direction=\"to_peer\"}"
        ),
        0.0
    );
    let free_live = value(
        &live,
        "edgeice_relay_ports_free{ip=\"127.0.0.1\",transport=\"udp\"}",
    );
    assert_eq!(free_live, free_before - 2.0, "{live}");
    // coturn 4.17.1's client makes short-lived allocations besides the
    // ones it relays through: those ended; every one was timed.
    let created = value(&live, "edgeice_allocations_created_total");
    assert_eq!(
        value(&live, "edgeice_allocation_lifetime_seconds_count"),
        created - 2.0,
        "{live}"
    );
    assert_eq!(
        value(&live, "edgeice_allocate_latency_seconds_count"),
        created
    );
    // And again, still live: more than before.
    let first = value(&live, TCP_TO_PEER);
    let later = scrape_until(metrics, Duration::from_secs(30), |body| {
        common::metric(body, TCP_TO_PEER).is_some_and(|n| n > first)
    });
    assert!(
        client.child().try_wait().unwrap().is_none(),
        "the session ended before its counters moved again"
    );
    assert!(
        value(
            &later,
            "edgeice_relayed_bytes_total{transport=\"tcp\",direction=\"to_client\"}"
        ) > 0.0
    );

    finish(client, 3000);
    // Its TCP connections closed: the allocations end, each observed once.
    let after = scrape_until(metrics, Duration::from_secs(10), |body| {
        common::metric(body, "edgeice_allocation_lifetime_seconds_count") == Some(created)
    });
    assert_eq!(value(&after, TCP_ALLOCATIONS), 0.0);
    assert_eq!(value(&after, TCP_CONNECTIONS), 0.0);
    assert!(value(&after, TCP_TO_PEER) >= 3000.0, "{after}");
    assert!(value(&after, TCP_TO_CLIENT) >= 3000.0, "{after}");
    // The two relaying ones lived through 1,500 messages 10 ms apart:
    // beyond the 1 s bucket; everything is under +Inf.
    assert!(
        value(
            &after,
            "edgeice_allocation_lifetime_seconds_bucket{le=\"1.0\"}"
        ) <= created - 2.0,
        "{after}"
    );
    assert_eq!(
        value(
            &after,
            "edgeice_allocation_lifetime_seconds_bucket{le=\"+Inf\"}"
        ),
        created
    );
    assert!(value(&after, "edgeice_allocation_lifetime_seconds_sum") > 2.0);
    assert_eq!(
        value(
            &after,
            "edgeice_relay_ports_free{ip=\"127.0.0.1\",transport=\"udp\"}"
        ),
        free_before
    );
}

/// No series per user: six users' sessions leave as many series as one's.
#[test]
fn series_do_not_grow_with_the_number_of_users() {
    let (_peer, peer) = common::start_peer("127.0.0.1");
    let users: Vec<String> = (1..=6).map(|i| format!("u{i}:pass")).collect();
    let mut extra = Vec::new();
    for user in &users {
        extra.extend(["--user", user.as_str()]);
    }
    let (_server, udp, metrics) = server(&extra);
    finish(uclient(&["-c"], "u1", udp, peer, 5), 5);
    let one = scrape(metrics);
    for i in 2..=6 {
        finish(uclient(&["-c"], &format!("u{i}"), udp, peer, 5), 5);
    }
    let six = scrape(metrics);
    assert_eq!(
        value(&six, "edgeice_allocations_created_total"),
        6.0 * value(&one, "edgeice_allocations_created_total"),
        "{six}"
    );
    let (one, six): (BTreeSet<&str>, BTreeSet<&str>) = (
        series(&one).into_iter().collect(),
        series(&six).into_iter().collect(),
    );
    assert_eq!(one, six);
    assert!(
        !six.iter().any(|s| s.contains("u1") || s.contains("user")),
        "{six:?}"
    );
}

/// A STUN Binding request to `server`, answered?
fn binding_answered(server: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7; 12]);
    socket.send_to(&request, server).unwrap();
    let mut buf = [0u8; 1500];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[..2] == [0x01, 0x01])
}

/// What the server did with a connection: answered (the bytes), or closed
/// it without an answer (None). Panics if it left it open for 30 s.
fn outcome(stream: &mut TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("left open: {e}"),
    }
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn oversized_endless_and_slow_requests_are_cut_off_and_turn_goes_on() {
    let (_server, udp, metrics) = server(&[]);
    // A head of exactly the limit without its end: 431.
    let mut stream = TcpStream::connect(metrics).unwrap();
    let mut head = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
    head.resize(8192, b'a');
    stream.write_all(&head).unwrap();
    let answer = outcome(&mut stream).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

    // An endless header: cut off (the writes fail) long before 64 MiB.
    let mut stream = TcpStream::connect(metrics).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Endless: ")
        .unwrap();
    let chunk = [b'a'; 64 * 1024];
    let sent = (0..1024)
        .take_while(|_| stream.write_all(&chunk).is_ok())
        .count();
    assert!(sent < 1024, "64 MiB of header taken");
    // Closed by the server (a 431 or nothing), its slot given back, before
    // the slots are filled below (under load its task could still hold one).
    let _ = outcome(&mut stream);

    // Slowloris: every slot held by a client trickling its head.
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(metrics).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let writers: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
    let trickle = std::thread::spawn(move || {
        let mut writers = writers;
        for _ in 0..40 {
            writers.retain_mut(|w| w.write_all(b"X").is_ok());
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // One more is closed unanswered while they hold the slots...
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = TcpStream::connect(metrics).unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(outcome(&mut extra), None);
    // ...TURN does not notice...
    assert!(binding_answered(udp));
    // ...and each slow one is closed unanswered, however it trickles.
    for stream in &mut slow {
        assert_eq!(outcome(stream), None);
    }
    trickle.join().unwrap();
    // The endpoint is back.
    assert!(scrape(metrics).contains("edgeice_build_info"));
    assert!(binding_answered(udp));
}

/// Every metric the Grafana dashboard queries is in a real scrape.
#[test]
fn the_dashboard_queries_only_metrics_that_exist() {
    let (_server, _, metrics) = server(&[]);
    let body = scrape(metrics);
    let names: BTreeSet<&str> = series(&body)
        .into_iter()
        .map(|s| s.split('{').next().unwrap())
        .collect();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap())
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("edgeice_") || word.starts_with("process_") {
                queried.insert(word.to_owned());
            }
        }
    }
    for name in &queried {
        assert!(
            names.contains(name.as_str()),
            "the dashboard queries {name}, not in:\n{body}"
        );
    }
    for needed in [
        "edgeice_allocations",
        "edgeice_relayed_bytes_total",
        "edgeice_auth_failures_total",
        "edgeice_connections",
        "edgeice_relay_ports_free",
        "edgeice_allocate_latency_seconds_bucket",
        "edgeice_allocation_lifetime_seconds_bucket",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(queried.contains(needed), "no panel for {needed}");
    }
}

fn collect_exprs(value: &serde_json::Value, exprs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => exprs.push(expr.clone()),
                    _ => collect_exprs(value, exprs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, exprs)),
        _ => {}
    }
}

/// RFC 6062 TCP relays splice bytes outside the core: counted too, while
/// the session lives.
#[test]
fn tcp_relay_bytes_move_during_a_live_uclient_session() {
    let (_peer, peer) = common::start_peer("127.0.0.1");
    let (_server, udp, metrics) = server(&[]);
    let to_peer = "edgeice_tcp_relayed_bytes_total{direction=\"to_peer\"}";
    let to_client = "edgeice_tcp_relayed_bytes_total{direction=\"to_client\"}";
    assert_eq!(value(&scrape(metrics), to_peer), 0.0);
    // -T: TCP relays, uclient's clients talking to each other through them.
    let mut client = uclient(&["-T", "-m", "2", "-z", "10"], "user", udp, peer, 1500);
    let live = scrape_until(metrics, Duration::from_secs(30), |body| {
        common::metric(body, to_peer).is_some_and(|n| n > 0.0)
            && common::metric(body, to_client).is_some_and(|n| n > 0.0)
    });
    assert!(
        client.child().try_wait().unwrap().is_none(),
        "the session ended before its traffic was seen"
    );
    let first = value(&live, to_peer);
    scrape_until(metrics, Duration::from_secs(30), |body| {
        common::metric(body, to_peer).is_some_and(|n| n > first)
    });
    assert!(
        client.child().try_wait().unwrap().is_none(),
        "the session ended before its counters moved again"
    );
    finish(client, 3000);
    let after = scrape(metrics);
    // Every message of 100 bytes went to a peer and came to a client.
    assert!(value(&after, to_peer) >= 300_000.0, "{after}");
    assert!(value(&after, to_client) >= 300_000.0, "{after}");
}

/// `/readyz` follows the users: with the store's last user removed the
/// server would refuse every Allocate, and says so until one is added.
#[test]
fn readyz_says_when_no_user_is_loaded() {
    let dir = std::env::temp_dir().join(format!("edgeice-readyz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("users.db");
    let db = db.to_str().unwrap();
    let user = |args: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_edgeice"))
            .arg("user")
            .args(args)
            .args(["--realm", "edgeice.test", "--users-db", db])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "edgeice user {args:?}");
    };
    user(&["add", "alice", "--password", "pass"]);
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let (_server, listeners) = common::start_server(
        &[
            "--listen",
            &listen,
            "--realm",
            "edgeice.test",
            "--users-db",
            db,
            "--relay-ports",
            "61000-65535",
            "--private-relay-ok",
            "--metrics",
            "127.0.0.1:0",
        ],
        3,
    );
    let metrics = listeners.iter().find(|(p, _)| p == "metrics").unwrap().1;
    let readyz_becomes = |status: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = curl(metrics, "/readyz", &["-i"]);
            if response.status == status {
                return response;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz stayed {}",
                response.status
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    readyz_becomes("HTTP/1.1 200 OK");
    user(&["remove", "alice"]);
    let refused = readyz_becomes("HTTP/1.1 503 Service Unavailable");
    assert_eq!(
        refused.body,
        "no users loaded: every Allocate would be refused\n"
    );
    // Alive all the same.
    assert_eq!(curl(metrics, "/healthz", &["-i"]).status, "HTTP/1.1 200 OK");
    user(&["add", "bob", "--password", "pass"]);
    readyz_becomes("HTTP/1.1 200 OK");
    let _ = std::fs::remove_dir_all(&dir);
}
