//! `edgeice sessions`: the live allocations of a running `edgeice serve`,
//! `edgeice sessions kick ID` to end one and `edgeice drain` to empty the
//! server, over its local admin socket (see `serve/admin.rs` for the
//! protocol: a command line out, a JSON line back).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Arguments of `edgeice sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The server's admin socket [default: as `edgeice serve` chooses it].
    #[arg(long, value_name = "PATH", global = true)]
    admin_socket: Option<PathBuf>,

    /// Print the server's answer as JSON.
    #[arg(long, global = true)]
    json: bool,

    /// List the fleet's nodes from its registry in Redis instead (needs
    /// --redis): id, addresses, allocations, capacity, draining.
    #[arg(long, requires = "redis")]
    fleet: bool,

    /// The fleet's Redis, as `edgeice serve --redis`.
    #[arg(long, value_name = "URL", env = "EDGEICE_REDIS")]
    redis: Option<String>,

    /// A file whose first line is the Redis password.
    #[arg(long, value_name = "PATH", env = "EDGEICE_REDIS_PASSWORD_FILE")]
    redis_password_file: Option<PathBuf>,

    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the live allocations (the default).
    List,
    /// End an allocation: deleted and its relay released; the client's
    /// next Refresh fails (a TCP/TLS client's connection is closed).
    Kick {
        /// The session id, as listed.
        id: u64,
    },
}

/// Arguments of `edgeice drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The server's admin socket [default: as `edgeice serve` chooses it].
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,

    /// Cut what is left after SECONDS [default: the server's
    /// --drain-timeout, else wait for the last allocation]. Asked again,
    /// a sooner deadline replaces a later one.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,

    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `edgeice drain`: the server stops taking new allocations
/// (redirecting them or answering 508) and exits once the last ends.
pub fn drain(args: DrainArgs) -> Result<()> {
    let command = match args.timeout {
        Some(seconds) => format!("drain {seconds}"),
        None => "drain".to_owned(),
    };
    let Some(answer) = command_answer(args.admin_socket.as_deref(), &command, args.json)? else {
        return Ok(());
    };
    let left = answer
        .get("allocations")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let already = answer.get("already") == Some(&Value::Bool(true));
    let until = match answer.get("deadline_in_s").and_then(Value::as_u64) {
        Some(s) => format!("it exits when the last ends, or in {s} s"),
        None => "it exits when the last ends".to_owned(),
    };
    let state = if already {
        "already draining"
    } else {
        "draining"
    };
    println!("{state}: {left} allocations left; {until}");
    Ok(())
}

/// Longest answer read: a listing of many thousands of allocations.
const MAX_ANSWER: u64 = 64 << 20;

/// Runs `edgeice sessions`.
pub fn run(args: SessionsArgs) -> Result<()> {
    if let (true, Some(url)) = (args.fleet, &args.redis) {
        return list_fleet(url, args.redis_password_file.as_deref(), args.json);
    }
    let command = match args.action {
        None | Some(Action::List) => "list".to_owned(),
        Some(Action::Kick { id }) => format!("kick {id}"),
    };
    let Some(answer) = command_answer(args.admin_socket.as_deref(), &command, args.json)? else {
        return Ok(());
    };
    match answer.get("sessions").and_then(Value::as_array) {
        Some(sessions) => print_table(sessions),
        None => println!(
            "{}",
            answer
                .get("kicked")
                .map_or_else(String::new, |id| format!("kicked session {id}"))
        ),
    }
    Ok(())
}

/// Sends one command and reads the one-line answer.
/// Sends `command` over the admin socket (`socket`, or the default one)
/// and returns the server's answer once it says `ok`; with `json` the
/// answer is printed as it came and `None` returned (nothing more to
/// print). A refusal is an error naming the server's reason.
fn command_answer(
    socket: Option<&std::path::Path>,
    command: &str,
    json: bool,
) -> Result<Option<Value>> {
    let path = socket.map_or_else(crate::serve::default_admin_socket, ToOwned::to_owned);
    let answer = ask(&path, command)?;
    if json {
        println!("{answer}");
    }
    if answer.get("ok") != Some(&Value::Bool(true)) {
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        bail!("the server refused `{command}`: {error}");
    }
    Ok((!json).then_some(answer))
}

fn ask(path: &std::path::Path, command: &str) -> Result<Value> {
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the admin socket {}: is `edgeice serve` running (and this its \
             --admin-socket)?",
            path.display()
        )
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&stream, MAX_ANSWER))
        .read_line(&mut line)
        .context("reading the server's answer")?;
    serde_json::from_str(&line).context("the server's answer is not JSON")
}

fn print_table(sessions: &[Value]) {
    if sessions.is_empty() {
        println!("no live allocations");
        return;
    }
    println!(
        "{:>6}  {:<16} {:<22} {:<4} {:<22} {:>7}  {:>18}  {:>18}  PEERS",
        "ID", "USER", "CLIENT", "VIA", "RELAY", "AGE", "TO PEERS", "TO CLIENT"
    );
    for s in sessions {
        let text = |key: &str| s.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let number = |key: &str| s.get(key).and_then(Value::as_u64).unwrap_or(0);
        let peers: Vec<&str> = s
            .get("peer_addrs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let count = number("peers");
        let more = if count as usize > peers.len() {
            " ..."
        } else {
            ""
        };
        println!(
            "{:>6}  {:<16} {:<22} {:<4} {:<22} {:>7}  {:>18}  {:>18}  {count} {}{more}",
            number("session"),
            text("user"),
            text("client"),
            text("transport"),
            text("relay"),
            format!("{}s", number("age_s")),
            traffic(number("bytes_to_peer"), number("packets_to_peer")),
            traffic(number("bytes_to_client"), number("packets_to_client")),
            peers.join(","),
        );
    }
}

/// Bytes and packets, short.
fn traffic(bytes: u64, packets: u64) -> String {
    let bytes = match bytes {
        b if b >= 10 << 20 => format!("{} MiB", b >> 20),
        b if b >= 10 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    };
    format!("{bytes} ({packets} pkt)")
}

/// `edgeice sessions --fleet`: the live nodes of the fleet's registry.
fn list_fleet(url: &str, password_file: Option<&std::path::Path>, json: bool) -> Result<()> {
    let mut fleet = crate::serve::fleet::admin::FleetAdmin::connect(url, password_file)?;
    let nodes = fleet.nodes()?;
    if json {
        println!("{}", serde_json::json!({ "ok": true, "nodes": nodes }));
        return Ok(());
    }
    let now = crate::serve::fleet::unix_ms();
    println!("NODE\tALLOCATIONS\tCAPACITY\tDRAINING\tSEEN\tADDRESSES");
    for node in &nodes {
        let addresses: Vec<String> = node
            .addresses
            .iter()
            .map(ToString::to_string)
            .chain(node.tls_addresses.iter().map(|a| format!("tls:{a}")))
            .collect();
        println!(
            "{}\t{}\t{}\t{}\t{:.1}s ago\t{}",
            node.id,
            node.allocations,
            node.capacity,
            if node.draining { "yes" } else { "no" },
            now.saturating_sub(node.updated_unix_ms) as f64 / 1000.0,
            addresses.join(" ")
        );
    }
    eprintln!("{} live nodes in {}", nodes.len(), fleet.shown());
    Ok(())
}
