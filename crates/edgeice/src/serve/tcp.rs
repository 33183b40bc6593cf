//! The TCP driver: accept connections, cut each byte stream into frames,
//! hand them to the core, write back what it answers.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use edgeice_server::{Input, Transport};
use edgeice_stun::{Frame, StreamDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::SharedServer;

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

pub async fn run(listener: TcpListener, server: SharedServer) -> Result<()> {
    loop {
        let (stream, remote) = listener.accept().await.context("accepting TCP")?;
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, remote, server).await {
                tracing::debug!(%remote, error = %e, "TCP connection closed");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, remote: SocketAddr, server: SharedServer) -> Result<()> {
    let local = stream.local_addr()?;
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    loop {
        const READ: usize = 4096;
        let read = stream.read(decoder.read_buf(READ)).await;
        let read = match read {
            Ok(0) => {
                decoder.commit(READ, 0);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) => {
                decoder.commit(READ, 0);
                return Err(e.into());
            }
        };
        decoder.commit(READ, read);
        {
            let mut server = server
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while let Some(frame) = decoder.next_frame()? {
                // ChannelData needs a TURN allocation; there is none yet.
                let Frame::Stun(contents) = frame else {
                    continue;
                };
                server.handle_input(
                    Instant::now(),
                    Input::Receive {
                        transport: Transport::Tcp,
                        local,
                        remote,
                        contents,
                    },
                );
            }
            out.extend(std::iter::from_fn(|| server.poll_transmit()));
        }
        for transmit in out.drain(..) {
            stream.write_all(&transmit.contents).await?;
        }
    }
}
