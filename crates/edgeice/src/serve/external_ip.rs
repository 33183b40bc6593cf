//! `--external-ip auto`: learn the public address a relay IP is mapped to
//! by asking a STUN server from a socket bound on that IP, the way a client
//! learns its server-reflexive address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edgeice_stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use tokio::net::UdpSocket;

/// Retransmission timeouts: four tries, about 7.5 seconds in all.
const TIMEOUTS: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The address `stun_server` sees for traffic from `relay_ip`.
pub async fn discover(relay_ip: IpAddr, stun_server: SocketAddr) -> Result<IpAddr> {
    let socket = UdpSocket::bind(SocketAddr::new(relay_ip, 0))
        .await
        .with_context(|| format!("binding a socket on {relay_ip} to ask {stun_server}"))?;
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    let mut request = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    MessageBuilder::new(&mut request, kind, TransactionId(id))
        .add_fingerprint()
        .context("building the Binding request")?;
    let mut buf = [0u8; 1500];
    for timeout in TIMEOUTS {
        socket.send_to(&request, stun_server).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let (len, from) = received?;
            if from != stun_server {
                continue;
            }
            if let Some(ip) = mapped_ip(&buf[..len], &TransactionId(id)) {
                return Ok(ip);
            }
        }
    }
    bail!("no answer from the STUN server {stun_server} for relay IP {relay_ip}")
}

/// The mapped address in a Binding success for `id`, if that is what
/// `bytes` is.
fn mapped_ip(bytes: &[u8], id: &TransactionId) -> Option<IpAddr> {
    let message = Message::parse(bytes).ok()?;
    if message.transaction_id() != id || message.class() != Class::Success {
        return None;
    }
    match message.get(AttributeType::XOR_MAPPED_ADDRESS)? {
        Ok(Attribute::XorMappedAddress(addr)) => Some(addr.ip()),
        _ => None,
    }
}
