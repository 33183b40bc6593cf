//! The call's sockets: one UDP socket per host address and component, and
//! the TCP connections to TURN servers reached over TCP. Whatever arrives
//! comes out of one channel; the agent decides what it is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use edgeice_ice::{ConnectionId, Input, Route};
use edgeice_stun::StreamDecoder;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

/// Something that arrived.
pub enum Incoming {
    /// A datagram on a UDP socket.
    Packet {
        socket: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    /// A frame read from the TCP/TLS connection to a TURN server.
    ServerFrame {
        socket: SocketAddr,
        server: SocketAddr,
        data: Vec<u8>,
    },
    /// The TCP connection from `socket`'s IP to `server` ended or failed.
    StreamClosed {
        socket: SocketAddr,
        server: SocketAddr,
    },
    /// A peer connected to an ICE-TCP listener.
    Accepted {
        listener: SocketAddr,
        remote: SocketAddr,
        stream: TcpStream,
    },
    /// An ICE-TCP connection the agent asked for is open (the driver
    /// takes the stream to adopt it before handing the input in).
    Connected {
        id: ConnectionId,
        stream: Option<Box<dyn ServerStream>>,
    },
    /// Bytes read from an ICE-TCP connection (the agent cuts the frames).
    TcpData { id: ConnectionId, data: Vec<u8> },
    /// An ICE-TCP connection ended or could not be opened.
    Closed { id: ConnectionId },
}

impl Incoming {
    /// The agent's input this arrival is, borrowing its bytes: all but a
    /// connection accepted on a listener, which the agent is asked to name
    /// (`Agent::tcp_accepted`).
    pub fn as_input(&self) -> Option<Input<'_>> {
        Some(match self {
            Incoming::Packet { socket, from, data } => Input::Datagram {
                socket: *socket,
                from: *from,
                payload: data,
            },
            Incoming::ServerFrame {
                socket,
                server,
                data,
            } => Input::ServerFrame {
                socket: *socket,
                server: *server,
                frame: data,
            },
            Incoming::StreamClosed { socket, server } => Input::ServerClosed {
                socket: *socket,
                server: *server,
            },
            Incoming::TcpData { id, data } => Input::TcpData { id: *id, data },
            Incoming::Connected { id, .. } => Input::TcpConnected { id: *id },
            Incoming::Closed { id } => Input::TcpClosed { id: *id },
            Incoming::Accepted { .. } => return None,
        })
    }
}

/// The sockets and connections of one call.
pub struct Net {
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    tcp: HashMap<(SocketAddr, SocketAddr), mpsc::UnboundedSender<Vec<u8>>>,
    /// The tasks writing to TCP connections: they end once their channel
    /// is closed and drained.
    writers: Vec<tokio::task::JoinHandle<()>>,
    /// ICE-TCP connections: their writer's channel and their reader task.
    connections:
        HashMap<ConnectionId, (mpsc::UnboundedSender<Vec<u8>>, tokio::task::JoinHandle<()>)>,
    /// For `turns:` servers.
    tls: Option<TlsSetup>,
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
            connections: HashMap::new(),
            tls: None,
            incoming,
        };
        (net, rx)
    }

    /// How to reach `turns:` servers.
    pub fn set_tls(&mut self, tls: TlsSetup) {
        self.tls = Some(tls);
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

    /// Listens for ICE-TCP connections on `ip` (any port).
    pub async fn listen_tcp(&mut self, ip: std::net::IpAddr) -> Result<SocketAddr> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("cannot listen on TCP on {ip}"))?;
        let address = listener.local_addr()?;
        let tx = self.incoming.clone();
        tokio::spawn(async move {
            while let Ok((stream, remote)) = listener.accept().await {
                let accepted = Incoming::Accepted {
                    listener: address,
                    remote,
                    stream,
                };
                if tx.send(accepted).await.is_err() {
                    return;
                }
            }
        });
        Ok(address)
    }

    /// Opens the ICE-TCP connection `id` from `local` to `remote` (with
    /// TLS: a data connection to a `turns:` server, RFC 6062).
    pub fn connect(&mut self, id: ConnectionId, local: SocketAddr, remote: SocketAddr, tls: bool) {
        let tx = self.incoming.clone();
        let tls = match (tls, &self.tls) {
            (false, _) => None,
            (true, Some(setup)) => match setup.names.get(&remote) {
                Some(name) => Some((setup.connector.clone(), name.clone())),
                None => {
                    let _ = tx.try_send(Incoming::Closed { id });
                    return;
                }
            },
            (true, None) => {
                let _ = tx.try_send(Incoming::Closed { id });
                return;
            }
        };
        tokio::spawn(async move {
            let opened = match open(local, remote).await {
                Ok(tcp) => match tls {
                    None => Incoming::Connected {
                        id,
                        stream: Some(Box::new(tcp)),
                    },
                    Some((connector, name)) => match connector.connect(name, tcp).await {
                        Ok(stream) => Incoming::Connected {
                            id,
                            stream: Some(Box::new(stream)),
                        },
                        Err(_) => Incoming::Closed { id },
                    },
                },
                Err(_) => Incoming::Closed { id },
            };
            let _ = tx.send(opened).await;
        });
    }

    /// Takes an open ICE-TCP connection into use: what is read from it
    /// comes out as [`Incoming::TcpData`].
    pub fn adopt(&mut self, id: ConnectionId, stream: Box<dyn ServerStream>) {
        let (mut reader, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        self.writers.push(tokio::spawn(write_out(writer, rx)));
        let incoming = self.incoming.clone();
        let reader_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let read = match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let data = Incoming::TcpData {
                    id,
                    data: buf[..read].to_vec(),
                };
                if incoming.send(data).await.is_err() {
                    return;
                }
            }
            let _ = incoming.send(Incoming::Closed { id }).await;
        });
        self.connections.insert(id, (tx, reader_task));
    }

    /// Closes an ICE-TCP connection (the agent gave up on it): the writer
    /// ends once its queue is sent, the reader at once.
    pub fn close(&mut self, id: ConnectionId) {
        if let Some((_, reader)) = self.connections.remove(&id) {
            reader.abort();
        }
    }

    /// Sends `payload` as the agent said: a datagram from a UDP socket,
    /// bytes on the TCP connection (opened on first use) to a server, or a
    /// frame on an ICE-TCP connection.
    pub async fn send(
        &mut self,
        source: SocketAddr,
        route: Route,
        destination: SocketAddr,
        payload: &[u8],
    ) {
        match route {
            Route::Connection(id) => {
                if let Some((writer, _)) = self.connections.get(&id) {
                    let _ = writer.send(payload.to_vec());
                }
            }
            Route::Udp => {
                if let Some(socket) = self.udp.get(&source) {
                    // A lost datagram is the network's business: ICE retries.
                    let _ = socket.send_to(payload, destination).await;
                }
            }
            Route::ServerTcp | Route::ServerTls => {
                let tls = match (route, &self.tls) {
                    (Route::ServerTls, Some(setup)) => match setup.names.get(&destination) {
                        Some(name) => Some((setup.connector.clone(), name.clone())),
                        None => return,
                    },
                    (Route::ServerTls, None) => return,
                    _ => None,
                };
                let writer = self.tcp.entry((source, destination)).or_insert_with(|| {
                    let (writer, task) = connect(source, destination, tls, self.incoming.clone());
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
        self.connections.clear();
        let writers = std::mem::take(&mut self.writers);
        let all = async {
            for writer in writers {
                let _ = writer.await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), all).await;
    }
}

/// Connects from `local` (port 0: any) to `remote`; a fixed local port is
/// bound with address reuse, as a simultaneous open needs.
async fn open(local: SocketAddr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match local {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if local.port() != 0 {
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
    }
    socket.bind(local)?;
    socket.connect(remote).await
}

/// A byte stream to a server: TCP, or TLS over TCP.
pub trait ServerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ServerStream for T {}

/// TLS to `turns:` servers: the connector and each server's name.
pub struct TlsSetup {
    /// Verifies servers against the trusted roots.
    pub connector: TlsConnector,
    /// The name to check each server's certificate against.
    pub names: HashMap<SocketAddr, ServerName<'static>>,
}

/// Opens a TCP connection (TLS with `tls`) from `source`'s IP to `server`
/// in a task; frames read from it come back as packets from `server` on
/// `source`. Returns the channel to write to it and the task that does.
fn connect(
    source: SocketAddr,
    server: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    incoming: mpsc::Sender<Incoming>,
) -> (mpsc::UnboundedSender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (writer_tx, writer_rx) =
        tokio::sync::oneshot::channel::<WriteHalf<Box<dyn ServerStream>>>();
    let task = tokio::spawn(async move {
        // The writer starts once the connection is up; if it never is, the
        // queued bytes are dropped with the channel.
        let Ok(writer) = writer_rx.await else {
            return;
        };
        write_out(writer, rx).await;
    });
    tokio::spawn(async move {
        let closed = Incoming::StreamClosed {
            socket: source,
            server,
        };
        let Ok(tcp) = open(SocketAddr::new(source.ip(), 0), server).await else {
            let _ = incoming.send(closed).await;
            return;
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn ServerStream> = match tls {
            None => Box::new(tcp),
            Some((connector, name)) => match connector.connect(name, tcp).await {
                Ok(stream) => Box::new(stream),
                Err(e) => {
                    tracing::warn!("TLS to {server} failed: {e}");
                    let _ = incoming.send(closed).await;
                    return;
                }
            },
        };
        let (mut reader, writer) = tokio::io::split(stream);
        let _ = writer_tx.send(writer);
        let mut decoder = StreamDecoder::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let read = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            decoder.push(&buf[..read]);
            if decoder.framing() == edgeice_stun::Framing::Turn
                && edgeice_stun::ms::starts_tcp_framed(decoder.pending())
            {
                // An MS-TURN edge answering an MS-ICE2 agent.
                decoder.set_framing(edgeice_stun::Framing::MsTurn);
            }
            loop {
                match decoder.next_raw() {
                    Ok(Some(frame)) => {
                        let packet = Incoming::ServerFrame {
                            socket: source,
                            server,
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

/// Writes what comes on `rx` to a TCP or TLS connection until the channel
/// closes, then shuts the connection down. Each write is flushed: over TLS,
/// tokio-rustls keeps the records of a write the socket had no room for
/// until a later write or a flush, and a connectivity check or its answer
/// must not wait for the next one.
async fn write_out<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
