//! The call's sockets: one UDP socket per host address and component, and
//! the TCP connections to TURN servers reached over TCP. Whatever arrives
//! comes out of one channel; the agent decides what it is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use edgeice_ice::ServerTransport;
use edgeice_stun::StreamDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::mpsc;

/// Something that arrived.
pub enum Incoming {
    /// A datagram on a UDP socket, or one frame from a TCP connection
    /// (`socket` is then the host socket the connection belongs to).
    Packet {
        socket: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    /// The TCP connection from `socket`'s IP to `server` ended or failed.
    StreamClosed {
        socket: SocketAddr,
        server: SocketAddr,
    },
}

/// The sockets and connections of one call.
pub struct Net {
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    tcp: HashMap<(SocketAddr, SocketAddr), mpsc::UnboundedSender<Vec<u8>>>,
    /// The tasks writing to TCP connections: they end once their channel
    /// is closed and drained.
    writers: Vec<tokio::task::JoinHandle<()>>,
    incoming: mpsc::Sender<Incoming>,
}

impl Net {
    /// No sockets yet; what they receive goes to the returned channel.
    pub fn new() -> (Net, mpsc::Receiver<Incoming>) {
        let (incoming, rx) = mpsc::channel(1024);
        let net = Net {
            udp: HashMap::new(),
            tcp: HashMap::new(),
            writers: Vec::new(),
            incoming,
        };
        (net, rx)
    }

    /// Binds a UDP socket on `ip` (any port) and starts reading it.
    pub async fn bind(&mut self, ip: std::net::IpAddr) -> Result<SocketAddr> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("cannot bind a UDP socket on {ip}"))?;
        let address = socket.local_addr()?;
        let socket = Arc::new(socket);
        self.udp.insert(address, socket.clone());
        let tx = self.incoming.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let data = buf[..len].to_vec();
                let packet = Incoming::Packet {
                    socket: address,
                    from,
                    data,
                };
                if tx.send(packet).await.is_err() {
                    return;
                }
            }
        });
        Ok(address)
    }

    /// Sends `payload` as the agent said: a datagram from a UDP socket, or
    /// bytes on the TCP connection (opened on first use) to a server.
    pub async fn send(
        &mut self,
        source: SocketAddr,
        transport: ServerTransport,
        destination: SocketAddr,
        payload: &[u8],
    ) {
        match transport {
            ServerTransport::Udp => {
                if let Some(socket) = self.udp.get(&source) {
                    // A lost datagram is the network's business: ICE retries.
                    let _ = socket.send_to(payload, destination).await;
                }
            }
            ServerTransport::Tcp => {
                let writer = self.tcp.entry((source, destination)).or_insert_with(|| {
                    let (writer, task) = connect(source, destination, self.incoming.clone());
                    self.writers.push(task);
                    writer
                });
                let _ = writer.send(payload.to_vec());
            }
        }
    }

    /// Lets what is queued for TCP connections go out (the last data and
    /// the release of allocations), for at most a second.
    pub async fn flush(&mut self) {
        self.tcp.clear();
        let writers = std::mem::take(&mut self.writers);
        let all = async {
            for writer in writers {
                let _ = writer.await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), all).await;
    }
}

/// Opens a TCP connection from `source`'s IP to `server` in a task; frames
/// read from it come back as packets from `server` on `source`. Returns the
/// channel to write to it and the task that does.
fn connect(
    source: SocketAddr,
    server: SocketAddr,
    incoming: mpsc::Sender<Incoming>,
) -> (mpsc::UnboundedSender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (writer_tx, writer_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        // The writer starts once the connection is up; if it never is, the
        // queued bytes are dropped with the channel.
        let Ok(mut writer) = writer_rx.await else {
            return;
        };
        while let Some(bytes) = rx.recv().await {
            if AsyncWriteExt::write_all(&mut writer, &bytes).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let closed = Incoming::StreamClosed {
            socket: source,
            server,
        };
        let socket = match source {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let stream = match socket {
            Ok(socket) => match socket.bind(SocketAddr::new(source.ip(), 0)) {
                Ok(()) => socket.connect(server).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let Ok(stream) = stream else {
            let _ = incoming.send(closed).await;
            return;
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let _ = writer_tx.send(writer);
        let mut decoder = StreamDecoder::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let read = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            decoder.push(&buf[..read]);
            loop {
                match decoder.next_raw() {
                    Ok(Some(frame)) => {
                        let packet = Incoming::Packet {
                            socket: source,
                            from: server,
                            data: frame.to_vec(),
                        };
                        if incoming.send(packet).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // Not STUN framing: the server is not what we thought.
                    Err(_) => {
                        let _ = incoming.send(closed).await;
                        return;
                    }
                }
            }
        }
        let _ = incoming.send(closed).await;
    });
    (tx, task)
}
