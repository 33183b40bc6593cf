//! One client's connection to the server: a connected UDP socket, or a
//! TCP stream with its frame decoder and the bytes not yet written.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use edgeice_stun::StreamDecoder;
use socket2::{Domain, Protocol, Socket, Type};

/// Most bytes queued for a TCP connection; beyond it the generator sends
/// nothing more on it until the kernel takes some (back-pressure).
pub const TCP_BACKLOG: usize = 256 * 1024;

/// How a client reaches the server.
pub enum Conn {
    /// A UDP socket connected to the server.
    Udp(UdpSocket),
    /// A TCP connection.
    Tcp {
        /// The stream (non-blocking).
        stream: TcpStream,
        /// Cuts what arrives into frames.
        decoder: StreamDecoder,
        /// Frames not yet taken by the kernel.
        out: Vec<u8>,
    },
}

impl Conn {
    /// Opens a connection to `server` from `bind` (port chosen by the
    /// kernel).
    pub fn open(server: SocketAddr, bind: IpAddr, tcp: bool, buffer: usize) -> io::Result<Conn> {
        let local = SocketAddr::new(bind, 0);
        if tcp {
            let socket = Socket::new(
                Domain::for_address(server),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            socket.bind(&local.into())?;
            socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
            socket.set_tcp_nodelay(true)?;
            socket.set_nonblocking(true)?;
            return Ok(Conn::Tcp {
                stream: socket.into(),
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
            Conn::Tcp { stream, .. } => stream.as_raw_fd(),
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
            Conn::Tcp { out, .. } => {
                out.extend_from_slice(bytes);
                self.flush()
            }
        }
    }

    /// Writes what the kernel takes of the queued TCP bytes.
    pub fn flush(&mut self) -> io::Result<()> {
        let Conn::Tcp { stream, out, .. } = self else {
            return Ok(());
        };
        let mut written = 0;
        while written < out.len() {
            match stream.write(&out[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.drain(..written);
        Ok(())
    }

    /// Reads what a TCP connection has into its decoder; false once the
    /// server closed it.
    pub fn fill(&mut self) -> io::Result<bool> {
        let Conn::Tcp {
            stream, decoder, ..
        } = self
        else {
            return Ok(true);
        };
        loop {
            const CHUNK: usize = 64 * 1024;
            let buf = decoder.read_buf(CHUNK);
            match stream.read(buf) {
                Ok(0) => {
                    decoder.commit(CHUNK, 0);
                    return Ok(false);
                }
                Ok(n) => {
                    decoder.commit(CHUNK, n);
                    if n < CHUNK {
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
}
