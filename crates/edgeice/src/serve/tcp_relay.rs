//! The driver's side of TCP relays (RFC 6062): the relay's listening
//! socket, connections to and from peers, and handing a peer connection to
//! the client's data connection once the core has bound them.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgeice_server::{ConnectionId, FiveTuple, Input};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::AbortHandle;

use super::accept::Acceptor;
use super::driver::{ShardId, Shared, StreamCommand, lock};

/// How long connecting to a peer may take before Connect fails with 447.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket of a TCP relay's listener. SO_REUSEADDR lets it take a port
/// whose old connections linger in TIME-WAIT; no SO_REUSEPORT before it is
/// bound, so binding fails (and the pool tries the next port) while another
/// relay listens on the port: with SO_REUSEPORT, a second allocation would
/// join the first one's listener and receive some of its peers.
pub fn listener_at(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// Lets the relay's own connections to peers (Connect) leave from the
/// listening address (RFC 6062 §5.2). Set once the listener listens: Linux
/// then lets a socket with SO_REUSEPORT bind beside it, while a listener
/// bound without it, as [`listener_at`] binds them, still cannot.
pub fn share_with_connections(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).set_reuse_port(true)
}

/// The socket of a connection from a relay address to a peer: it binds
/// beside the relay's listener (see [`share_with_connections`]).
pub fn socket_at(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = listener_at(addr)?;
    socket.set_reuseport(true)?;
    Ok(socket)
}

/// Peer connections the driver holds, and the relays' accept tasks.
#[derive(Default)]
pub struct PeerStreams {
    /// Accepted, waiting for the core's AcceptPeer or RefusePeer.
    incoming: HashMap<(SocketAddr, SocketAddr), TcpStream>,
    /// Connected, waiting for the client's ConnectionBind.
    waiting: HashMap<ConnectionId, TcpStream>,
    /// Spliced: the data connection that carries each one.
    spliced: HashMap<ConnectionId, (SocketAddr, SocketAddr)>,
}

/// A TCP relay's listener task, stopped when dropped.
pub struct TcpRelay(AbortHandle);

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TcpRelay {
    /// Accepts peers on `listener` and tells the core about each.
    pub fn spawn(
        shared: Arc<Shared>,
        shard: ShardId,
        listener: TcpListener,
        relay: SocketAddr,
    ) -> Self {
        let task = tokio::spawn(async move {
            // A failed accept (out of files) is backed off, never the end
            // of the relay: it lives until its allocation does.
            let mut acceptor = Acceptor::without_reserve(listener);
            loop {
                let (stream, peer) = acceptor.accept().await;
                lock(&shared.peers).incoming.insert((relay, peer), stream);
                shared.drive(shard, Input::PeerConnection { relay, peer });
            }
        });
        TcpRelay(task.abort_handle())
    }
}

impl Shared {
    /// Connects from `relay` to `peer` and reports the outcome.
    pub fn connect_peer(
        self: &Arc<Self>,
        shard: ShardId,
        id: ConnectionId,
        relay: SocketAddr,
        peer: SocketAddr,
    ) {
        let shared = self.clone();
        tokio::spawn(async move {
            let connect = async {
                let socket = socket_at(relay)?;
                socket.bind(relay)?;
                socket.connect(peer).await
            };
            let connected = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(stream)) => {
                    lock(&shared.peers).waiting.insert(id, stream);
                    true
                }
                Ok(Err(e)) => {
                    tracing::debug!(%relay, %peer, error = %e, "TCP connect to peer failed");
                    false
                }
                Err(_) => false,
            };
            shared.drive(shard, Input::PeerConnected { id, connected });
        });
    }

    /// Keeps an accepted peer connection under `id`.
    pub fn accept_peer(&self, id: ConnectionId, relay: SocketAddr, peer: SocketAddr) {
        let mut peers = lock(&self.peers);
        if let Some(stream) = peers.incoming.remove(&(relay, peer)) {
            peers.waiting.insert(id, stream);
        }
    }

    /// Drops an accepted peer connection the core refused.
    pub fn refuse_peer(&self, relay: SocketAddr, peer: SocketAddr) {
        lock(&self.peers).incoming.remove(&(relay, peer));
    }

    /// Hands peer connection `id` to the data connection `data`.
    pub fn splice(&self, id: ConnectionId, data: FiveTuple) {
        let mut peers = lock(&self.peers);
        let Some(stream) = peers.waiting.remove(&id) else {
            return;
        };
        let key = (data.client, data.server);
        if let Some(writer) = lock(&self.streams).get(&key) {
            peers.spliced.insert(id, key);
            writer.command(StreamCommand::Splice(stream, id));
        }
    }

    /// Closes peer connection `id`, spliced or not.
    pub fn close_peer(&self, id: ConnectionId) {
        let mut peers = lock(&self.peers);
        peers.waiting.remove(&id);
        if let Some(key) = peers.spliced.remove(&id)
            && let Some(writer) = lock(&self.streams).get(&key)
        {
            writer.command(StreamCommand::Close);
        }
    }

    /// Forgets a spliced connection that ended by itself.
    pub fn spliced_ended(&self, id: ConnectionId) {
        lock(&self.peers).spliced.remove(&id);
    }
}
