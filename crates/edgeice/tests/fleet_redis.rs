//! `edgeice serve --redis`: edges of a fleet share users, REST API
//! secrets, the nonce key, per-user quotas and a node registry through a
//! real Debian `redis-server` each test starts on loopback (a free port, a
//! scratch directory, `--save ''`), one with `requirepass`, one over TLS.
//! Clients: coturn 4.17.1's `turnutils_uclient`, edgeice's client crate,
//! and hand-made STUN requests where a test needs one exchange split over
//! two nodes. The registry also steers: a full node redirects (300) to a
//! live one, never to one that drains. Nothing leaves loopback.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");
const REALM: &str = "edgeice.test";

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free TCP port of 127.0.0.1.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own.
struct Redis {
    running: Option<common::Running>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// The URL clients use.
    url: String,
    env: Vec<(String, String)>,
}

impl Redis {
    /// Starts redis-server on a free loopback port with `extra` flags.
    fn start(dir: &Path, extra: &[&str], url_of: impl Fn(u16) -> String) -> Redis {
        let port = free_tcp_port();
        let mut redis = Redis {
            running: None,
            port,
            dir: dir.to_owned(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            url: url_of(port),
            env: Vec::new(),
        };
        redis.restart();
        redis
    }

    /// (Re)starts it on its port and directory (loading a dump a SAVE
    /// left there).
    fn restart(&mut self) {
        let tls = self.args.iter().any(|a| a == "--tls-port");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", self.dir.to_str().unwrap()])
            .args(["--logfile", self.dir.join("redis.log").to_str().unwrap()]);
        if tls {
            command.args(["--port", "0", "--tls-port", &self.port.to_string()]);
            command.args(self.args.iter().filter(|a| *a != "--tls-port"));
        } else {
            command
                .args(["--port", &self.port.to_string()])
                .args(&self.args);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        self.running = Some(common::Running::new(child));
        // Up when it takes a connection.
        let up = eventually(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "redis-server did not start on port {}", self.port);
    }

    /// Kills it -9.
    fn kill(&mut self) {
        self.running = None;
    }

    /// `redis-cli` with this server's address (plain TCP, or TLS).
    fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        for (name, value) in &self.env {
            if name == "REDISCLI_TLS_CA" {
                command.args(["--tls", "--cacert", value]);
            } else {
                command.env(name, value);
            }
        }
        let output = command.args(args).output().expect("redis-cli");
        assert!(output.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `edgeice user --redis URL ARGS`.
    fn user(&self, args: &[&str]) -> std::process::Output {
        let output = Command::new(EDGEICE)
            .args(["user", "--redis", &self.url])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("edgeice user");
        assert!(
            output.status.success(),
            "edgeice user {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `edgeice sessions --fleet --redis URL --json`: the node ids listed.
    fn nodes(&self) -> Vec<String> {
        let output = Command::new(EDGEICE)
            .args(["sessions", "--fleet", "--json", "--redis", &self.url])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("edgeice sessions --fleet");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        json["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// One `edgeice serve --redis` node on loopback.
struct Node {
    running: common::Running,
    pid: u32,
    udp: SocketAddr,
    metrics: SocketAddr,
}

impl Node {
    fn start(redis: &Redis, id: &str, extra: &[&str]) -> Node {
        let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
        let mut command = Command::new(EDGEICE);
        command
            .args(["serve", "--listen", &listen, "--realm", REALM])
            .args([
                "--relay-ports",
                "61000-65535",
                "--allow-peer",
                "127.0.0.0/8",
            ])
            .args(["--private-relay-ok", "--admin-socket", "none"])
            .args(["--metrics", "127.0.0.1:0", "--redis", &redis.url])
            .args(["--node-id", id])
            .args(extra)
            .envs(redis.env.iter().map(|(k, v)| (k, v)));
        let (mut running, listeners) = common::start_server_command(command, 3);
        let pid = running.child().id();
        let find = |proto: &str| {
            listeners
                .iter()
                .find(|(p, _)| p == proto)
                .map(|(_, a)| *a)
                .unwrap()
        };
        Node {
            pid,
            udp: find("udp"),
            metrics: find("metrics"),
            running,
        }
    }

    fn metric(&self, series: &str) -> f64 {
        common::metric(&common::scrape(self.metrics), series).unwrap_or(-1.0)
    }
}

/// Retries `check` every 20 ms for up to `patience`.
fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An Allocate request.
fn request(id: [u8; 12], attributes: &[Attribute<'_>], key: Option<&IntegrityKey>) -> Vec<u8> {
    common::stun_request(Method::ALLOCATE, id, attributes, key)
}

/// Sends `datagram` to `to` and reads the answer: its bytes.
fn exchange(client: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    client.send_to(datagram, to).ok()?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = client.recv_from(&mut buf).ok()?;
        if from == to {
            return Some(buf[..n].to_vec());
        }
    }
}

/// The error code of an answer, if it is an error.
fn error_code(answer: &[u8]) -> Option<u16> {
    match Message::parse(answer).ok()?.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    }
}

/// A loopback address for the next client, in turn: a test that polls
/// until a user is known would otherwise be held back from its one
/// address as a password guesser (the server's backoff is per user and IP).
fn next_client_ip() -> std::net::Ipv4Addr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::net::Ipv4Addr::new(127, 0, 1 + (n / 250 % 200) as u8, 2 + (n % 250) as u8)
}

/// A transaction id not used before in this process.
fn transaction() -> [u8; 12] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut id = [9u8; 12];
    id[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

/// An Allocate whose 401 comes from `challenger` and whose authenticated
/// retry goes to `server`: `Ok` with the client socket (the allocation
/// lives until the test drops it and it expires), or the retry's error
/// code (0: no answer).
fn allocate_via(
    challenger: SocketAddr,
    server: SocketAddr,
    user: &str,
    password: &str,
) -> Result<UdpSocket, u16> {
    let client = UdpSocket::bind((next_client_ip(), 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let transport = Attribute::RequestedTransport(17);
    let first = request(transaction(), &[transport], None);
    let challenge = exchange(&client, challenger, &first).ok_or(0u16)?;
    let challenge = Message::parse(&challenge).map_err(|_| 0u16)?;
    let (Some(Ok(Attribute::Realm(realm))), Some(Ok(Attribute::Nonce(nonce)))) = (
        challenge.get(AttributeType::REALM),
        challenge.get(AttributeType::NONCE),
    ) else {
        return Err(0);
    };
    let key = long_term_key(user, realm, password, 1, Preparation::OpaqueString).unwrap();
    let attributes = [
        transport,
        Attribute::Username(user),
        Attribute::Realm(realm),
        Attribute::Nonce(nonce),
    ];
    let retry = request(transaction(), &attributes, Some(&key));
    let answer = exchange(&client, server, &retry).ok_or(0u16)?;
    match error_code(&answer) {
        Some(code) => Err(code),
        None => Ok(client),
    }
}

/// [`allocate_via`] with one node.
fn allocate(server: SocketAddr, user: &str, password: &str) -> Result<UdpSocket, u16> {
    allocate_via(server, server, user, password)
}

/// Plain Redis with a password (AUTH in the URL).
fn redis_with_password(dir: &Path) -> Redis {
    Redis::start(dir, &["--requirepass", "fleet-pass"], |port| {
        format!("redis://:fleet-pass@127.0.0.1:{port}/")
    })
    .with_cli_password()
}

impl Redis {
    fn with_cli_password(mut self) -> Self {
        self.env
            .push(("REDISCLI_AUTH".to_owned(), "fleet-pass".to_owned()));
        self
    }
}

/// How long a node has to take a change: the goal is a second; the
/// bound only keeps a broken build from hanging the test.
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn a_user_added_on_one_node_authenticates_on_the_others_and_once_removed_nowhere() {
    let dir = scratch("users");
    let redis = redis_with_password(&dir);
    let nodes = [
        Node::start(&redis, "node-a", &[]),
        Node::start(&redis, "node-b", &[]),
        Node::start(&redis, "node-c", &[]),
    ];
    assert_eq!(
        allocate(nodes[1].udp, "alice", "wonderland").err(),
        Some(401)
    );

    let added = Instant::now();
    redis.user(&["add", "alice", "--password", "wonderland", "--realm", REALM]);
    let mut reached = Vec::new();
    for node in &nodes[1..] {
        assert!(
            eventually(PATIENCE, || allocate(node.udp, "alice", "wonderland")
                .is_ok()),
            "alice never authenticated on {}",
            node.udp
        );
        reached.push(added.elapsed());
    }
    eprintln!("a user added through Redis authenticated on the other nodes after {reached:?}");
    // coturn's client on another node than the one that wrote.
    assert!(common::uclient_relays(
        &["-u", "alice", "-w", "wonderland"],
        nodes[2].udp
    ));
    let listed = String::from_utf8_lossy(&redis.user(&["list"]).stdout).into_owned();
    assert!(listed.contains(&format!("alice\t{REALM}")), "{listed}");
    // Only the key is stored.
    let stored = redis.cli(&["HGET", &format!("edgeice:users:{REALM}"), "alice"]);
    assert_eq!(stored.trim().len(), 32, "{stored}");
    assert!(!stored.contains("wonderland"));

    let removed = Instant::now();
    redis.user(&["remove", "alice", "--realm", REALM]);
    for node in &nodes {
        assert!(
            eventually(PATIENCE, || allocate(node.udp, "alice", "wonderland").err()
                == Some(401)),
            "alice still authenticates on {}",
            node.udp
        );
    }
    eprintln!(
        "a removed user was refused everywhere after {:?}",
        removed.elapsed()
    );
    assert_eq!(nodes[0].metric("edgeice_redis_up"), 1.0);
}

#[test]
fn a_nonce_from_one_node_is_taken_by_another() {
    let dir = scratch("nonce");
    let redis = redis_with_password(&dir);
    let (a, b) = (
        Node::start(&redis, "node-a", &[]),
        Node::start(&redis, "node-b", &[]),
    );
    redis.user(&["add", "bob", "--password", "builder", "--realm", REALM]);
    assert!(eventually(PATIENCE, || allocate(b.udp, "bob", "builder").is_ok()));
    // The 401 from A, the retry on B, and the other way round.
    assert!(allocate_via(a.udp, b.udp, "bob", "builder").is_ok());
    assert!(allocate_via(b.udp, a.udp, "bob", "builder").is_ok());
    let key = redis.cli(&["GET", "edgeice:nonce-key"]);
    assert_eq!(key.trim().len(), 64, "{key}");
}

#[test]
fn rest_api_secrets_rotate_across_the_fleet() {
    let dir = scratch("secrets");
    let redis = redis_with_password(&dir);
    let (a, b) = (
        Node::start(&redis, "node-a", &[]),
        Node::start(&redis, "node-b", &[]),
    );
    let rest = |secret: &str| {
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let user = format!("{expiry}:carol");
        let password = edgeice_server::rest_api_password(secret, &user);
        (user, password)
    };
    redis.user(&["secret", "add", "old-secret"]);
    let (user, password) = rest("old-secret");
    assert!(eventually(PATIENCE, || allocate(b.udp, &user, &password).is_ok()));
    // Rotation: the new one added, both work, then the old one removed.
    redis.user(&["secret", "add", "new-secret"]);
    let (new_user, new_password) = rest("new-secret");
    assert!(eventually(PATIENCE, || allocate(
        a.udp,
        &new_user,
        &new_password
    )
    .is_ok()));
    assert!(allocate(a.udp, &user, &password).is_ok());
    redis.user(&["secret", "remove", "old-secret"]);
    for node in [&a, &b] {
        assert!(eventually(PATIENCE, || allocate(
            node.udp, &user, &password
        )
        .err()
            == Some(401)));
        assert!(allocate(node.udp, &new_user, &new_password).is_ok());
    }
    let count = String::from_utf8_lossy(&redis.user(&["secret", "count"]).stdout).into_owned();
    assert_eq!(count.trim(), "1");
    // coturn's client computes the REST password itself.
    assert!(common::uclient_relays(
        &["-u", "carol", "-W", "new-secret"],
        b.udp
    ));
}

#[test]
fn a_per_user_quota_holds_across_nodes_and_a_dead_nodes_share_lapses() {
    let dir = scratch("quota");
    let redis = redis_with_password(&dir);
    let limit = ["--max-allocations-per-user", "4"];
    let a = Node::start(&redis, "node-a", &limit);
    let mut b = Node::start(&redis, "node-b", &limit);
    redis.user(&["add", "dave", "--password", "pw", "--realm", REALM]);
    for node in [&a, &b] {
        assert!(eventually(PATIENCE, || {
            allocate(node.udp, "nobody", "x").err() == Some(401)
                && node.metric("edgeice_fleet_nodes") == 2.0
        }));
    }
    // Wait for the user on both, without allocating.
    assert!(eventually(PATIENCE, || {
        [&a, &b]
            .iter()
            .all(|n| allocate(n.udp, "dave", "wrong").err() == Some(401))
    }));
    // 10 clients at once, alternating nodes.
    let servers: Vec<SocketAddr> = (0..10)
        .map(|i| if i % 2 == 0 { a.udp } else { b.udp })
        .collect();
    let outcomes: Vec<Result<UdpSocket, u16>> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|server| scope.spawn(move || allocate(*server, "dave", "pw")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| o.as_ref().err() == Some(&486))
        .count();
    eprintln!("fleet quota 4: {granted} granted, {refused} refused (486) of 10 concurrent");
    assert_eq!(
        (granted, refused),
        (4, 6),
        "{:?}",
        outcomes
            .iter()
            .map(|o| o.as_ref().err())
            .collect::<Vec<_>>()
    );
    let on_b = outcomes
        .iter()
        .zip(&servers)
        .filter(|(o, s)| o.is_ok() && **s == b.udp)
        .count();

    // B dies: its record lapses (3 heartbeats), and with it its share.
    let _ = b.running.child().kill();
    let _ = b.running.child().wait();
    assert!(
        eventually(PATIENCE, || redis.nodes() == ["node-a"]),
        "{:?}",
        redis.nodes()
    );
    let mut kept = Vec::new();
    for _ in 0..on_b {
        kept.push(allocate(a.udp, "dave", "pw").expect("B's share is free again"));
    }
    assert_eq!(allocate(a.udp, "dave", "pw").err(), Some(486));
    drop(outcomes);
}

#[test]
fn the_registry_lists_live_nodes_and_drops_one_killed() {
    let dir = scratch("registry");
    let redis = redis_with_password(&dir);
    let a = Node::start(&redis, "node-a", &[]);
    let mut b = Node::start(&redis, "node-b", &[]);
    assert!(eventually(PATIENCE, || redis.nodes() == ["node-a", "node-b"]));
    let record: serde_json::Value =
        serde_json::from_str(&redis.cli(&["GET", "edgeice:node:node-b"])).unwrap();
    assert_eq!(record["addresses"][0], b.udp.to_string());
    assert_eq!(record["draining"], false);
    assert_eq!(record["capacity"], 10000);
    let table = Command::new(EDGEICE)
        .args(["sessions", "--fleet", "--redis", &redis.url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("node-a") && table.contains(&a.udp.to_string()),
        "{table}"
    );

    let killed = Instant::now();
    let _ = b.running.child().kill();
    let _ = b.running.child().wait();
    assert!(eventually(PATIENCE, || redis.nodes() == ["node-a"]));
    eprintln!(
        "a node killed -9 left the registry after {:?}",
        killed.elapsed()
    );
}

#[test]
fn serving_goes_on_while_redis_is_down_and_nodes_converge_when_it_returns() {
    let dir = scratch("outage");
    let mut redis = redis_with_password(&dir);
    let (a, b) = (
        Node::start(&redis, "node-a", &[]),
        Node::start(&redis, "node-b", &[]),
    );
    redis.user(&["add", "erin", "--password", "pw", "--realm", REALM]);
    for node in [&a, &b] {
        assert!(eventually(PATIENCE, || allocate(node.udp, "erin", "pw").is_ok()));
    }
    // Kept on disk for the restart (the test server saves nothing itself).
    redis.cli(&["SAVE"]);
    redis.kill();
    for node in [&a, &b] {
        assert!(eventually(PATIENCE, || node.metric("edgeice_redis_up") == 0.0));
        // What was loaded serves on; the quota is the node's alone.
        assert!(allocate(node.udp, "erin", "pw").is_ok());
        assert!(common::uclient_relays(
            &["-u", "erin", "-w", "pw"],
            node.udp
        ));
        assert_eq!(node.metric("edgeice_redis_outages_total"), 1.0);
        assert!(node.metric("edgeice_fleet_quota_unchecked_total") >= 1.0);
    }
    redis.restart();
    redis.user(&["add", "frank", "--password", "pw", "--realm", REALM]);
    for node in [&a, &b] {
        assert!(eventually(PATIENCE, || node.metric("edgeice_redis_up") == 1.0));
        assert!(eventually(PATIENCE, || allocate(node.udp, "frank", "pw").is_ok()));
        assert!(allocate(node.udp, "erin", "pw").is_ok());
        assert_eq!(node.metric("edgeice_redis_outages_total"), 1.0);
    }
    assert!(eventually(PATIENCE, || redis.nodes() == ["node-a", "node-b"]));
}

/// A user list far beyond a typical edge's (a debug build copies it into
/// each of the server's shards at each change).
const USERS: usize = 20_000;

/// Full readings asked for while a client binds.
const READINGS: usize = 3;

#[test]
fn garbage_in_redis_is_skipped_and_a_huge_user_list_loads_while_serving() {
    let dir = scratch("hostile");
    let redis = redis_with_password(&dir);
    let users = format!("edgeice:users:{REALM}");
    redis.cli(&[
        "HSET",
        &users,
        "short",
        "abcd",
        "nothex",
        "zz345678901234567890123456789012",
    ]);
    redis.cli(&[
        "HSET",
        &users,
        "colon:name",
        "0123456789abcdef0123456789abcdef",
    ]);
    redis.cli(&["SET", "edgeice:nonce-key", "not a key"]);
    redis.cli(&["SET", "edgeice:node:ghost", "{not json"]);
    redis.cli(&["SADD", "edgeice:nodes", "ghost"]);
    redis.cli(&["SADD", "edgeice:nodes", "gone"]);
    let node = Node::start(&redis, "node-a", &[]);
    redis.user(&["add", "grace", "--password", "pw", "--realm", REALM]);
    assert!(eventually(PATIENCE, || allocate(node.udp, "grace", "pw").is_ok()));
    assert!(node.metric("edgeice_redis_values_skipped_total") >= 3.0);
    assert_eq!(allocate(node.udp, "short", "x").err(), Some(401));
    // A garbage announcement asks for a full reading: still fine.
    redis.cli(&["PUBLISH", "edgeice:changes", "\u{1}garbage"]);
    redis.cli(&["HSET", &users, "grace", "garbage"]);
    redis.cli(&[
        "PUBLISH",
        "edgeice:changes",
        &format!("user\t{REALM}\tgrace"),
    ]);
    assert!(eventually(PATIENCE, || allocate(node.udp, "grace", "pw")
        .err()
        == Some(401)));

    // Many users, through redis-cli's pipe mode.
    let mut commands = String::new();
    for i in 0..USERS {
        let name = format!("user{i}");
        commands.push_str(&format!(
            "*4\r\n$4\r\nHSET\r\n${}\r\n{users}\r\n${}\r\n{name}\r\n$32\r\n{:032x}\r\n",
            users.len(),
            name.len(),
            i
        ));
    }
    let mut pipe = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string(), "--pipe"])
        .env("REDISCLI_AUTH", "fleet-pass")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    pipe.stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    assert!(pipe.wait().unwrap().success());
    // Full readings of all of them, over and over, while a client binds.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let binding = {
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::BINDING, Class::Request);
        MessageBuilder::new(&mut buf, kind, TransactionId([5; 12]));
        buf
    };
    let mut slowest = Duration::ZERO;
    for round in 0..READINGS {
        redis.cli(&["PUBLISH", "edgeice:changes", "everything"]);
        for _ in 0..20 {
            let sent = Instant::now();
            assert!(
                exchange(&probe, node.udp, &binding).is_some(),
                "round {round}"
            );
            slowest = slowest.max(sent.elapsed());
        }
    }
    eprintln!("{USERS} users read {READINGS} times: slowest Binding answer {slowest:?}");
    let added = Instant::now();
    redis.user(&["add", "heidi", "--password", "pw", "--realm", REALM]);
    // Polled slowly: 100 refusals of one user put it in backoff.
    let known = eventually(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(250));
        allocate(node.udp, "heidi", "pw").is_ok()
    });
    assert!(known, "heidi never authenticated");
    eprintln!(
        "with {USERS} users, one added authenticated after {:?}",
        added.elapsed()
    );
    let hex = "0123456789abcdef0123456789abcdef";
    let _ = hex;
    let mut stream = TcpStream::connect(node.metrics).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    assert!(text.contains("edgeice_redis_up 1"), "{text}");
}

#[test]
fn over_tls_with_a_test_ca() {
    let dir = scratch("tls");
    let (ca, cert, key) = common::certificates(&dir);
    let tls = [
        "--tls-port",
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ];
    let mut redis = Redis::start(&dir, &tls, |port| format!("rediss://127.0.0.1:{port}/"));
    // rustls-native-certs reads SSL_CERT_FILE: the test CA is the only root.
    redis
        .env
        .push(("SSL_CERT_FILE".to_owned(), ca.display().to_string()));
    redis
        .env
        .push(("REDISCLI_TLS_CA".to_owned(), ca.display().to_string()));
    let node = Node::start(&redis, "node-tls", &[]);
    redis.user(&["add", "ivan", "--password", "pw", "--realm", REALM]);
    assert!(eventually(PATIENCE, || allocate(node.udp, "ivan", "pw").is_ok()));
    assert_eq!(redis.nodes(), ["node-tls"]);
}

/// The answer to a first (credential-less) Allocate: its error code and
/// ALTERNATE-SERVER, if any.
fn first_answer(server: SocketAddr) -> (Option<u16>, Option<SocketAddr>) {
    let client = UdpSocket::bind((next_client_ip(), 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let first = request(transaction(), &[Attribute::RequestedTransport(17)], None);
    let Some(answer) = exchange(&client, server, &first) else {
        return (None, None);
    };
    let alternate = match Message::parse(&answer)
        .ok()
        .and_then(|m| m.get(AttributeType::ALTERNATE_SERVER))
    {
        Some(Ok(Attribute::AlternateServer(address))) => Some(address),
        _ => None,
    };
    (error_code(&answer), alternate)
}

#[test]
fn a_full_or_draining_node_steers_new_allocations_to_a_live_node_from_the_registry() {
    let dir = scratch("steering");
    let redis = redis_with_password(&dir);
    let mut a = Node::start(&redis, "node-a", &["--max-allocations", "1"]);
    let b = Node::start(&redis, "node-b", &[]);
    redis.user(&["add", "judy", "--password", "pw", "--realm", REALM]);
    assert!(eventually(PATIENCE, || allocate(b.udp, "judy", "pw").is_ok()));
    let _held = allocate(a.udp, "judy", "pw").expect("node A's one allocation");
    // A is full: the registry names B, the only other live node.
    assert!(
        eventually(PATIENCE, || first_answer(a.udp) == (Some(300), Some(b.udp))),
        "{:?}",
        first_answer(a.udp)
    );
    // B drains (SIGUSR1): its record says so, and A has nowhere to send.
    let b_pid = b.running_pid();
    assert!(
        Command::new("kill")
            .args(["-USR1", &b_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(eventually(PATIENCE, || {
        let record = redis.cli(&["GET", "edgeice:node:node-b"]);
        record.contains("\"draining\":true")
    }));
    assert!(eventually(PATIENCE, || first_answer(a.udp).1.is_none()));
    let _ = a.running.child().kill();
}

impl Node {
    fn running_pid(&self) -> u32 {
        // Running keeps the child; its id is all a signal needs.
        self.pid
    }
}
