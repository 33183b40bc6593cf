//! One client's connection to the server: a connected UDP socket, or a
//! TCP or TLS stream with its frame decoder and the bytes not yet written.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use edgeice_stun::StreamDecoder;
use rustls_pki_types::ServerName;
use socket2::{Domain, Protocol, Socket, Type};
use tokio_rustls::rustls::{ClientConfig, ClientConnection};

/// What a TLS client needs: whom to trust, and the name the server's
/// certificate must carry.
#[derive(Clone, Debug)]
pub struct TlsTarget {
    /// Trust anchors and versions.
    pub config: Arc<ClientConfig>,
    /// The server's name (or IP) as the URL gave it.
    pub name: ServerName<'static>,
}

/// How a client reaches the server over a stream.
pub enum StreamKind<'a> {
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls(&'a TlsTarget),
}

/// A TCP connection, or TLS over one.
pub enum StreamIo {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS: records are read and written here, without the buffered
    /// stream adapter, so that a non-blocking socket never leaves
    /// decrypted bytes unread.
    Tls {
        /// The socket (non-blocking once the handshake is done).
        socket: TcpStream,
        /// The TLS state.
        tls: Box<ClientConnection>,
    },
}

/// Most bytes queued for a TCP connection; beyond it the generator sends
/// nothing more on it until the kernel takes some (back-pressure).
pub const TCP_BACKLOG: usize = 256 * 1024;

/// How a client reaches the server.
pub enum Conn {
    /// A UDP socket connected to the server.
    Udp(UdpSocket),
    /// A TCP or TLS connection.
    Stream {
        /// The stream (non-blocking).
        stream: StreamIo,
        /// Cuts what arrives into frames.
        decoder: StreamDecoder,
        /// Frames not yet taken by the kernel.
        out: Vec<u8>,
    },
}

impl Conn {
    /// Opens a connection to `server` from `bind` (port chosen by the
    /// kernel): UDP, or the stream `stream` says (a TLS handshake is
    /// finished here, so that a refused certificate says so at once).
    pub fn open(
        server: SocketAddr,
        bind: IpAddr,
        stream: Option<StreamKind<'_>>,
        buffer: usize,
    ) -> io::Result<Conn> {
        let local = SocketAddr::new(bind, 0);
        if let Some(kind) = stream {
            let socket = Socket::new(
                Domain::for_address(server),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            socket.bind(&local.into())?;
            socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
            socket.set_tcp_nodelay(true)?;
            let socket: TcpStream = socket.into();
            let stream = match kind {
                StreamKind::Tcp => StreamIo::Tcp(socket),
                StreamKind::Tls(target) => handshake(socket, target)?,
            };
            stream.socket().set_nonblocking(true)?;
            return Ok(Conn::Stream {
                stream,
                decoder: StreamDecoder::new(),
                out: Vec::new(),
            });
        }
        let socket = Socket::new(
            Domain::for_address(server),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        // Large buffers keep bursts from being dropped in the generator
        // itself; the kernel caps them at net.core.[rw]mem_max.
        let _ = socket.set_recv_buffer_size(buffer);
        let _ = socket.set_send_buffer_size(buffer);
        socket.bind(&local.into())?;
        socket.connect(&server.into())?;
        socket.set_nonblocking(true)?;
        super::sys::enable_timestamps(socket.as_raw_fd())?;
        Ok(Conn::Udp(socket.into()))
    }

    /// The descriptor to watch.
    pub fn fd(&self) -> RawFd {
        match self {
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Stream { stream, .. } => stream.socket().as_raw_fd(),
        }
    }

    /// Sends one request (control path; a datagram may be dropped, the
    /// client's retransmissions cover it).
    pub fn send_control(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Udp(s) => match s.send(bytes) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            },
            Conn::Stream { out, .. } => {
                out.extend_from_slice(bytes);
                self.flush()
            }
        }
    }

    /// Writes what the kernel takes of the queued stream bytes (over TLS,
    /// what the TLS layer takes, and then its records).
    pub fn flush(&mut self) -> io::Result<()> {
        let Conn::Stream { stream, out, .. } = self else {
            return Ok(());
        };
        let mut written = 0;
        while written < out.len() {
            let result = match stream {
                StreamIo::Tcp(socket) => socket.write(&out[written..]),
                StreamIo::Tls { tls, .. } => match tls.writer().write(&out[written..]) {
                    // Its buffer is full until the socket takes records.
                    Ok(0) => break,
                    other => other,
                },
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.drain(..written);
        if let StreamIo::Tls { socket, tls } = stream {
            while tls.wants_write() {
                match tls.write_tls(socket) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Reads what a stream has into its decoder; false once the server
    /// closed it.
    pub fn fill(&mut self) -> io::Result<bool> {
        let Conn::Stream {
            stream, decoder, ..
        } = self
        else {
            return Ok(true);
        };
        match stream {
            StreamIo::Tcp(socket) => read_into(socket, decoder, true),
            StreamIo::Tls { socket, tls } => {
                // Every record the socket holds, then every byte they held.
                let mut open = true;
                loop {
                    match tls.read_tls(socket) {
                        Ok(0) => {
                            open = false;
                            break;
                        }
                        Ok(_) => {
                            tls.process_new_packets().map_err(io::Error::other)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(read_into(&mut tls.reader(), decoder, false)? && open)
            }
        }
    }
}

impl StreamIo {
    fn socket(&self) -> &TcpStream {
        match self {
            StreamIo::Tcp(socket) | StreamIo::Tls { socket, .. } => socket,
        }
    }
}

/// Reads what `source` has into `decoder`, until it would block (or, with
/// `short_is_all`, until a read does not fill its chunk: a socket had no
/// more, which saves the system call that would say so); false once it has
/// ended.
fn read_into(
    source: &mut impl Read,
    decoder: &mut StreamDecoder,
    short_is_all: bool,
) -> io::Result<bool> {
    loop {
        const CHUNK: usize = 64 * 1024;
        let buf = decoder.read_buf(CHUNK);
        match source.read(buf) {
            Ok(0) => {
                decoder.commit(CHUNK, 0);
                return Ok(false);
            }
            Ok(n) => {
                decoder.commit(CHUNK, n);
                if short_is_all && n < CHUNK {
                    return Ok(true);
                }
            }
            Err(e) => {
                decoder.commit(CHUNK, 0);
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(true),
                    _ => Err(e),
                };
            }
        }
    }
}

/// The TLS handshake on `socket` (still blocking, bounded by a timeout).
fn handshake(mut socket: TcpStream, target: &TlsTarget) -> io::Result<StreamIo> {
    let mut tls = ClientConnection::new(target.config.clone(), target.name.clone())
        .map_err(io::Error::other)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket)?;
    }
    socket.set_read_timeout(None)?;
    Ok(StreamIo::Tls {
        socket,
        tls: Box::new(tls),
    })
}
