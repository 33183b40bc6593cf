//! The local admin socket: `edgeice sessions` lists live allocations and
//! kicks one through it. A Unix stream socket, 0600 in a directory others
//! cannot write to, never a network port.
//!
//! The protocol is a line each way: the client writes a command (`list`,
//! `kick ID`, `drain [SECONDS]`), the server answers one JSON object (`{"ok":true,...}` or
//! `{"ok":false,"error":"..."}`). A command is one arm of [`answer`]: a
//! new one (`drain`) is a few lines there and in the client.
//!
//! Local clients are not trusted more than they must be: a request line
//! is at most [`MAX_LINE`] bytes, a connection gets [`MAX_REQUESTS`]
//! answers and [`IDLE`] of silence, and at most [`MAX_CONNECTIONS`] are
//! served at once (more are closed at once).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::driver::Shared;
use super::records;

/// Longest request line, in bytes.
pub const MAX_LINE: usize = 1024;

/// Answers per connection before it is closed.
pub const MAX_REQUESTS: usize = 64;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;

/// Silence after which a connection is closed.
pub const IDLE: Duration = Duration::from_secs(10);

/// Where the socket is unless `--admin-socket` says: /run/edgeice when
/// root, else $XDG_RUNTIME_DIR/edgeice, else beside the user store.
pub fn default_path() -> PathBuf {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        return PathBuf::from("/run/edgeice/admin.sock");
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(runtime).join("edgeice/admin.sock");
    }
    let store = crate::users::store::UserStore::default_path();
    store
        .parent()
        .map_or_else(|| PathBuf::from("admin.sock"), |dir| dir.join("admin.sock"))
}

/// `--admin-socket`: the path, `None` for `none`.
pub fn chosen(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(path) if path == Path::new("none") => None,
        Some(path) => Some(path.to_owned()),
        None => Some(default_path()),
    }
}

/// Binds the socket at `path` (0600, its directory made 0700 if missing).
/// A socket file left by a server that died is replaced; one a live
/// server answers on is not. A directory others may write to is refused:
/// they could replace the socket with their own.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o002 != 0 {
        bail!(
            "{} is writable by everyone: put the admin socket in a directory of its own \
             (--admin-socket DIR/admin.sock)",
            dir.display()
        );
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                bail!(
                    "{} is in use by another running server (give this one --admin-socket \
                     PATH or --admin-socket none)",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!("{} exists and is not a socket", path.display()),
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} 0600", path.display()))?;
    Ok(listener)
}

/// Serves the admin socket until the server stops.
pub async fn run(listener: UnixListener, shared: Arc<Shared>) -> Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of files, most likely: wait rather than spin.
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Busy: closed at once, the client may retry.
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve_connection(stream, shared).await;
            drop(slot);
        });
    }
}

async fn serve_connection(stream: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    // One byte more than a line may have, to tell a long line from a full one.
    let mut reader = BufReader::new(read).take(0);
    let mut line = Vec::new();
    for _ in 0..MAX_REQUESTS {
        line.clear();
        reader.set_limit(MAX_LINE as u64 + 1);
        let read = tokio::time::timeout(IDLE, reader.read_until(b'\n', &mut line)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if !complete {
            let error = if line.len() > MAX_LINE {
                format!("request longer than {MAX_LINE} bytes")
            } else {
                "request not ended by a newline".to_owned()
            };
            reply(&mut write, &json!({"ok": false, "error": error})).await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let answer = answer(&shared, text.trim());
        reply(&mut write, &answer).await?;
    }
    Ok(())
}

async fn reply(write: &mut tokio::net::unix::OwnedWriteHalf, value: &Value) -> std::io::Result<()> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    tokio::time::timeout(IDLE, write.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The answer to one command line.
fn answer(shared: &Arc<Shared>, line: &str) -> Value {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("list"), None, _) => {
            let sessions: Vec<Value> = shared.sessions().iter().map(session_json).collect();
            json!({"ok": true, "sessions": sessions})
        }
        (Some("kick"), Some(id), None) => match id.parse::<u64>() {
            Ok(id) if shared.kick(edgeice_server::SessionId(id)) => {
                json!({"ok": true, "kicked": id})
            }
            Ok(id) => json!({"ok": false, "error": format!("no session {id}")}),
            Err(_) => json!({"ok": false, "error": format!("not a session id: {id:.40}")}),
        },
        (Some("drain"), timeout, None) => {
            let deadline = match timeout.map(str::parse::<u64>) {
                None => None,
                Some(Ok(seconds)) if seconds > 0 => Some(super::drain::deadline_in(seconds)),
                Some(_) => {
                    return json!({"ok": false, "error": "drain takes a timeout in seconds, above 0"});
                }
            };
            let asked = shared.drain(deadline, "edgeice drain");
            let deadline = shared.drain_deadline().flatten();
            let now = std::time::Instant::now();
            json!({
                "ok": true,
                "draining": true,
                "already": asked == super::drain::Asked::AlreadyDraining,
                "allocations": shared.core.allocations(),
                "deadline_in_s": deadline.map(|d| super::drain::seconds_until(now, d)),
            })
        }
        _ => json!({
            "ok": false,
            "error": "unknown command; known: list, kick ID, drain [SECONDS]",
        }),
    }
}

/// A live allocation as `edgeice sessions --json` shows it.
fn session_json(s: &edgeice_server::Session) -> Value {
    let t = s.traffic;
    json!({
        "session": s.id.0,
        "user": s.user,
        "realm": s.realm,
        "client": s.five_tuple.client.to_string(),
        "transport": records::transport_label(s.five_tuple.transport),
        "listener": s.five_tuple.server.to_string(),
        "relay": records::relays(s),
        "dialect": s.dialect.label(),
        "age_s": s.age.as_secs(),
        "expires_in_s": s.expires_in.as_secs(),
        "peers": s.peers,
        "peer_addrs": s.first_peers.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "bytes_to_peer": t.bytes_to_peer,
        "bytes_to_client": t.bytes_to_client,
        "packets_to_peer": t.packets_to_peer,
        "packets_to_client": t.packets_to_client,
        "dropped_from_peers": t.dropped_from_peers,
    })
}
