//! The TCP listener's driver: each connection's byte stream is cut into
//! frames for the core; what the core sends its client is written back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use edgeice_server::{FiveTuple, Input, Transport};
use edgeice_stun::StreamDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::driver::Shared;

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

pub async fn run(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    loop {
        let (stream, client) = listener.accept().await.context("accepting TCP")?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let server = match stream.local_addr() {
                Ok(addr) => addr,
                Err(_) => return,
            };
            let from = FiveTuple {
                transport: Transport::Tcp,
                client,
                server,
            };
            if let Err(e) = connection(stream, from, &shared).await {
                tracing::debug!(%client, error = %e, "TCP connection closed");
            }
            shared.remove_stream(from);
        });
    }
}

async fn connection(stream: TcpStream, from: FiveTuple, shared: &Arc<Shared>) -> Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    shared.add_stream(from, tx);
    let write = async move {
        while let Some(bytes) = rx.recv().await {
            writer.write_all(&bytes).await?;
        }
        anyhow::Ok(())
    };
    let read = async {
        let mut decoder = StreamDecoder::new();
        loop {
            const READ: usize = 4096;
            let read = reader.read(decoder.read_buf(READ)).await;
            let n = *read.as_ref().unwrap_or(&0);
            decoder.commit(READ, n);
            if read? == 0 {
                return anyhow::Ok(());
            }
            while let Some(contents) = decoder.next_raw()? {
                shared.drive(Input::Client { from, contents });
            }
        }
    };
    tokio::select! {
        result = read => result,
        result = write => result,
    }
}
