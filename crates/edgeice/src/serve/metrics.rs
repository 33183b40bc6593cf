//! Prometheus metrics at `--metrics ADDR`, `GET /metrics`.
//!
//! Values are read from the core's counters at scrape time, so the relay
//! path pays nothing for them. The HTTP side answers one GET per
//! connection: all a Prometheus scraper needs, and no web framework.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use edgeice_server::allocation::AllocationDialect;
use edgeice_server::{Stats, Transport};
use edgeice_stun::AddressFamily;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::driver::Shared;

/// The cores' counters at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub stats: Stats,
    pub allocations: BTreeMap<(Transport, AddressFamily, AllocationDialect), usize>,
    /// What the kernel fast path relayed (to peer, to client), when on;
    /// also counted in `stats`.
    pub kernel: Option<(edgeice_fastpath::Counters, edgeice_fastpath::Counters)>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        self.encode_allocations(&mut encoder)?;
        let counters: [(&str, &str, u64); 11] = [
            (
                "edgeice_allocations_created",
                "Allocations created",
                s.allocations_created,
            ),
            (
                "edgeice_ms_turn_allocations_created",
                "Allocations created for MS-TURN clients (Lync, Skype for Business)",
                s.ms_turn_allocations_created,
            ),
            (
                "edgeice_ms_turn_requests",
                "MS-TURN requests received",
                s.ms_turn_requests,
            ),
            (
                "edgeice_binding_success",
                "Binding requests answered with success",
                s.binding_success,
            ),
            (
                "edgeice_auth_failures",
                "Requests with credentials refused (401, 438, 441)",
                s.auth_failures,
            ),
            (
                "edgeice_permission_denied",
                "Relayed packets dropped for lack of a permission or channel",
                s.permission_denied,
            ),
            (
                "edgeice_over_bandwidth",
                "Relayed packets dropped over an allocation's bandwidth cap",
                s.over_bandwidth,
            ),
            (
                "edgeice_challenges_dropped",
                "401/438 answers not sent: over the per-IP rate or the amplification limit",
                s.challenges_dropped,
            ),
            (
                "edgeice_guesses_held_back",
                "Authentication attempts refused unchecked: in backoff after failed integrity checks",
                s.guesses_held_back,
            ),
            (
                "edgeice_discovery_dropped",
                "RFC 5780 Binding requests (RESPONSE-PORT, CHANGE-REQUEST) not answered: over the per-IP rate",
                s.discovery_dropped,
            ),
            (
                "edgeice_dropped",
                "Inputs dropped as malformed or unexpected",
                s.dropped,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, (to_peer, to_client)) in [
            (
                "edgeice_relayed_packets",
                "Packets relayed",
                (s.relayed_to_peer.0, s.relayed_to_client.0),
            ),
            (
                "edgeice_relayed_bytes",
                "Payload bytes relayed",
                (s.relayed_to_peer.1, s.relayed_to_client.1),
            ),
        ] {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (direction, value) in [("to_peer", to_peer), ("to_client", to_client)] {
                ConstCounter::new(value)
                    .encode(family.encode_family(&[("direction", direction)])?)?;
            }
        }
        if let Some((to_peer, to_client)) = self.kernel {
            let mut family = encoder.encode_descriptor(
                "edgeice_kernel_relayed_packets",
                "Packets relayed by the kernel fast path (XDP), also in edgeice_relayed_packets",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (direction, value) in [
                ("to_peer", to_peer.packets),
                ("to_client", to_client.packets),
            ] {
                ConstCounter::new(value)
                    .encode(family.encode_family(&[("direction", direction)])?)?;
            }
        }
        let mut errors = encoder.encode_descriptor(
            "edgeice_error_responses",
            "Error responses sent, by error code",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (code, value) in &s.errors_by_code {
            let code = code.to_string();
            ConstCounter::new(*value).encode(errors.encode_family(&[("code", code.as_str())])?)?;
        }
        Ok(())
    }
}

impl Snapshot {
    fn encode_allocations(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut gauge = encoder.encode_descriptor(
            "edgeice_allocations",
            "Allocations, by client transport, relay address family and TURN dialect",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for ((transport, family, dialect), count) in &self.allocations {
            let labels = [
                ("transport", transport_label(*transport)),
                ("family", family_label(*family)),
                ("dialect", dialect.label()),
            ];
            ConstGauge::new(*count as i64).encode(gauge.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn transport_label(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

fn family_label(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::V4 => "ipv4",
        AddressFamily::V6 => "ipv6",
    }
}

/// The Prometheus text exposition of `snapshot`.
pub fn render(snapshot: Snapshot) -> Result<String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).context("encoding metrics")?;
    Ok(text)
}

/// Serves `GET /metrics` on `listener` until the server stops.
pub async fn run(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    // A failed accept is backed off like the TURN listeners', and scrapes
    // at once are few: the endpoint must not spend the relays' files.
    let mut acceptor = super::accept::Acceptor::without_reserve(listener);
    let scrapes = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES_AT_ONCE));
    loop {
        let (stream, _) = acceptor.accept().await;
        let Ok(permit) = scrapes.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &shared)).await;
            drop(permit);
        });
    }
}

/// Scrapes answered at once; more connections are closed unanswered.
const MAX_SCRAPES_AT_ONCE: usize = 16;

async fn answer(mut stream: TcpStream, shared: &Shared) -> Result<()> {
    // Only the request line matters; read until the end of the headers.
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let (status, body) =
        if request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?") {
            ("200 OK", render(shared.snapshot())?)
        } else {
            (
                "404 Not Found",
                "edgeice serves metrics at /metrics\n".to_owned(),
            )
        };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
