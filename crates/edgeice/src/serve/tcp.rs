//! The TCP and TLS listeners' driver: each connection's byte stream is cut
//! into frames for the core; what the core sends its client is written back.

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use edgeice_server::{FiveTuple, Input, Transport};
use edgeice_stun::{Framing, StreamDecoder};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::accept::Acceptor;
use super::admission::{Connection, ConnectionLimits};
use super::counted::Counted;
use super::driver::{STREAM_QUEUE, Shared, StreamCommand, StreamWriter};
use super::log_throttle::LogThrottle;

pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        socket2::SockRef::from(&socket).set_only_v6(true)?;
    }
    socket
        .bind(addr)
        .with_context(|| format!("binding TCP {addr} (is another STUN/TURN server running?)"))?;
    Ok(socket.listen(1024)?)
}

/// A client has this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the listeners let in, and how long a connection may stay silent.
#[derive(Clone)]
pub struct StreamPolicy {
    /// Connections counted in total and per IP.
    pub limits: Arc<ConnectionLimits>,
    /// A connection without an allocation is closed when this long passes
    /// without a complete message from its client (the first one too, however
    /// slowly its bytes come: slowloris).
    pub idle_timeout: Duration,
}

/// Accepts connections, in TLS when `tls` is given. Never returns: failed
/// accepts are backed off (`Acceptor`), connections over the limits closed
/// at once.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    policy: StreamPolicy,
) -> Result<()> {
    let mut acceptor = Acceptor::new(listener);
    let mut refusals = LogThrottle::new(Duration::from_secs(10));
    loop {
        let (stream, client) = acceptor.accept().await;
        let Ok(server) = stream.local_addr() else {
            continue;
        };
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let from = FiveTuple {
            transport,
            client,
            server,
        };
        let admitted = match policy.limits.admit(from, |f| shared.has_allocation(f)) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                if let Some(suppressed) = refusals.ready(std::time::Instant::now()) {
                    tracing::warn!(%client, suppressed, "TCP/TLS connection refused: {refusal}");
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let idle = policy.idle_timeout;
        tokio::spawn(async move {
            let _open = shared.health.stream_open(transport);
            let admission = admitted.connection();
            let served = async {
                match tls {
                    None => connection(stream, from, &shared, idle, admission).await,
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                            Ok(Ok(stream)) => {
                                connection(stream, from, &shared, idle, admission).await
                            }
                            Ok(Err(e)) => Err(anyhow::Error::from(e).context("TLS handshake")),
                            Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                        }
                    }
                }
            };
            let result = tokio::select! {
                result = served => result,
                () = admission.evicted() => Err(anyhow::anyhow!(
                    "closed without an allocation to make room for a newer connection"
                )),
            };
            if let Err(e) = result {
                tracing::debug!(%client, "connection closed: {e:#}");
            }
            shared.remove_stream(from);
        });
    }
}

async fn connection<S>(
    mut stream: S,
    from: FiveTuple,
    shared: &Arc<Shared>,
    idle: Duration,
    admission: &Connection,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (commands, mut rx) = mpsc::channel::<StreamCommand>(STREAM_QUEUE);
    let spare = Arc::new(std::sync::Mutex::new(Vec::new()));
    let queued = Arc::new(AtomicUsize::new(0));
    shared.add_stream(
        from,
        StreamWriter {
            commands,
            spare: spare.clone(),
            queued: queued.clone(),
        },
    );
    let shard = shared.shard_of(&from);
    let mut decoder = StreamDecoder::new();
    let mut chunk = vec![0u8; 4096];
    // What goes out in one write, and a command taken off the queue while
    // filling it that is not a send.
    let mut batch = Vec::new();
    let mut held = None;
    // The idle deadline moves with each complete message; the timer is
    // only reset when it fires, not per message.
    let mut last_message = None;
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    loop {
        let command = match held.take() {
            Some(command) => Some(command),
            None => tokio::select! {
                read = stream.read(&mut chunk) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    decoder.push(&chunk[..n]);
                    if decoder.framing() == Framing::Turn
                        && edgeice_stun::ms::starts_tcp_framed(decoder.pending())
                    {
                        // A Lync/Skype for Business client: MS-TURN's framing
                        // from its first byte on, both ways.
                        decoder.set_framing(Framing::MsTurn);
                    }
                    while let Some(contents) = decoder.next_raw()? {
                        last_message = Some(tokio::time::Instant::now());
                        shared.drive(shard, Input::Client { from, payload: contents });
                    }
                    continue;
                }
                command = rx.recv() => command,
                () = &mut silence => {
                    let Some(last) = last_message else {
                        bail!("no complete request within {idle:?} of connecting");
                    };
                    let now = tokio::time::Instant::now();
                    let quiet_until = last + idle;
                    let next = if quiet_until > now {
                        quiet_until
                    } else if shared.has_allocation(&from) {
                        now + idle
                    } else {
                        bail!("idle for {idle:?} without an allocation");
                    };
                    silence.as_mut().reset(next);
                    continue;
                }
            },
        };
        match command {
            Some(StreamCommand::Send(bytes)) => {
                // Everything queued behind it goes out in the same write:
                // the answers to requests read together, the packets
                // relayed meanwhile (one system call, not one each).
                batch.clear();
                let framing = decoder.framing();
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                append_frame(&mut batch, bytes, framing, &spare)?;
                while batch.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(StreamCommand::Send(bytes)) => {
                            queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                            append_frame(&mut batch, bytes, framing, &spare)?;
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // A client that stops reading (a zero window) would hold
                // this task, and its file, forever: neither the idle timer
                // nor the core's Close is heard while writing.
                tokio::time::timeout(WRITE_STALL_TIMEOUT, write_batch(&mut stream, &batch))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("the client read nothing for {WRITE_STALL_TIMEOUT:?}")
                    })??;
            }
            Some(StreamCommand::Splice(peer, id)) => {
                // Its own 5-tuple holds no allocation, but it carries one's
                // data now: never the one to make room.
                // (If it was chosen to make room a moment ago, it closes.)
                admission.keep();
                let counters = shared.health.spliced_counters();
                let result = splice(stream, peer, decoder.pending(), &mut rx, counters).await;
                shared.spliced_ended(id);
                shared.drive(shard, Input::PeerConnectionClosed { id });
                return result;
            }
            Some(StreamCommand::Close) | None => return Ok(()),
        }
    }
}

/// Writes `batch` and flushes it. Over TLS the flush matters: when the
/// socket is full, tokio-rustls takes the bytes into its own buffer and
/// reports them written, and only a later write or a flush sends them; the
/// last packet of a burst would wait there for the next one, perhaps
/// forever. Over plain TCP the flush costs nothing.
async fn write_batch<S: AsyncWrite + Unpin>(stream: &mut S, batch: &[u8]) -> std::io::Result<()> {
    stream.write_all(batch).await?;
    stream.flush().await
}

/// Longest a write to a client may wait for it to read.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes gathered for one write to a client.
const BATCH_BYTES: usize = 64 * 1024;

/// Buffers kept for the relaying threads to copy messages into.
const SPARE_BUFFERS: usize = 64;

/// Adds one message to `batch` (with MS-TURN's frame header when the
/// client frames that way) and gives its buffer back for reuse.
fn append_frame(
    batch: &mut Vec<u8>,
    bytes: Vec<u8>,
    framing: Framing,
    spare: &std::sync::Mutex<Vec<Vec<u8>>>,
) -> Result<()> {
    if framing == Framing::MsTurn {
        let header = edgeice_stun::ms::tcp_frame_header(&bytes)
            .context("an MS-TURN frame longer than 65535 bytes")?;
        batch.extend_from_slice(&header);
    }
    batch.extend_from_slice(&bytes);
    let mut spare = spare
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if spare.len() < SPARE_BUFFERS {
        spare.push(bytes);
    }
    Ok(())
}

/// Passes bytes both ways between a client's data connection and a peer
/// until either side closes (RFC 6062 §5.4), or until the core says the
/// allocation ended (a `Close` on `commands`: Refresh with LIFETIME 0,
/// expiry, the control connection gone). Bytes the client sent after its
/// ConnectionBind, already read, go to the peer first. Both connections
/// close when this returns, as they are dropped. What is read from each
/// side is added to `counted` (to peer, to client) as it goes.
async fn splice<S>(
    client: S,
    peer: TcpStream,
    early: &[u8],
    commands: &mut mpsc::Receiver<StreamCommand>,
    counted: (&AtomicU64, &AtomicU64),
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (to_peer, to_client) = counted;
    let mut client = Counted {
        inner: client,
        read: to_peer,
    };
    let mut peer = Counted {
        inner: peer,
        read: to_client,
    };
    let copy = async {
        peer.write_all(early).await?;
        to_peer.fetch_add(early.len() as u64, Ordering::Relaxed);
        tokio::io::copy_bidirectional(&mut client, &mut peer).await?;
        Ok(())
    };
    tokio::pin!(copy);
    loop {
        tokio::select! {
            result = &mut copy => return result,
            command = commands.recv() => match command {
                Some(StreamCommand::Close) | None => return Ok(()),
                // Nothing else is framed on a spliced connection: what the
                // core might still address to it is dropped.
                Some(StreamCommand::Send(_) | StreamCommand::Splice(..)) => {}
            },
        }
    }
}
