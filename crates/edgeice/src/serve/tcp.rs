//! The TCP and TLS listeners' driver: each connection's byte stream is cut
//! into frames for the core; what the core sends its client is written back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use edgeice_server::{FiveTuple, Input, Transport};
use edgeice_stun::StreamDecoder;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

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

/// A client has this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections, in TLS when `tls` is given.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) -> Result<()> {
    loop {
        let (stream, client) = listener.accept().await.context("accepting TCP")?;
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(server) = stream.local_addr() else {
                return;
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
            let result = match tls {
                None => connection(stream, from, &shared).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => connection(stream, from, &shared).await,
                        Ok(Err(e)) => Err(anyhow::Error::from(e).context("TLS handshake")),
                        Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client, error = %e, "connection closed");
            }
            shared.remove_stream(from);
        });
    }
}

async fn connection<S>(stream: S, from: FiveTuple, shared: &Arc<Shared>) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
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
