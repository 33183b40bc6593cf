//! Prometheus metrics at `--metrics ADDR`: `GET /metrics`, and `/healthz`
//! and `/readyz` beside it (see [`http`]).
//!
//! Values are read from the cores' counters at scrape time, so the relay
//! path pays nothing for them beyond the per-shard integers it adds to.
//! Every label takes a bounded set of values (transport, family, dialect,
//! direction, error code, relay IP): no per-user or per-client series, so
//! the exposition does not grow with the number of users.

mod fleet;
mod http;
mod process;

pub use http::run;

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use edgeice_server::allocation::AllocationDialect;
use edgeice_server::histogram::{Buckets, Histogram};
use edgeice_server::{Stats, Transport};
use edgeice_stun::AddressFamily;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// The cores' counters at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub stats: Stats,
    pub allocations: BTreeMap<(Transport, AddressFamily, AllocationDialect), usize>,
    /// What the kernel fast path relayed (to peer, to client), when on;
    /// also counted in `stats`.
    pub kernel: Option<(edgeice_fastpath::Counters, edgeice_fastpath::Counters)>,
    /// Per relay IP: ports of the range edgeice holds no UDP socket on,
    /// and no TCP relay listener on (ports other programs hold are not
    /// subtracted: binding skips them).
    pub free_relay_ports: Vec<(IpAddr, u64, u64)>,
    /// TCP and TLS connections open.
    pub streams: (usize, usize),
    /// Bytes spliced by RFC 6062 TCP relays: (to peers, to clients).
    pub spliced: (u64, u64),
    /// The process's figures, when `/proc` could be read.
    pub process: Option<process::ProcessStats>,
    /// The fleet's figures, with `--redis`.
    pub fleet: Option<crate::serve::fleet::FleetSnapshot>,
    /// Whether a drain is under way.
    pub draining: bool,
}

/// Error codes always exposed, with 0 until sent, so that alerts on them
/// work from the start: the challenge, refused peers, mismatches, stale
/// nonces, wrong credentials, quota, no capacity.
const WATCHED_CODES: [u16; 7] = [401, 403, 437, 438, 441, 486, 508];

/// The dialects, in label order.
const DIALECTS: [AllocationDialect; 2] = [AllocationDialect::Standard, AllocationDialect::MsTurn];

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
        self.encode_traffic(&mut encoder)?;
        if let Some(figures) = &self.fleet {
            fleet::encode(figures, &mut encoder)?;
        }
        let mut errors = encoder.encode_descriptor(
            "edgeice_error_responses",
            "Error responses sent, by error code",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut codes = s.errors_by_code.clone();
        for code in WATCHED_CODES {
            codes.entry(code).or_insert(0);
        }
        for (code, value) in &codes {
            let code = code.to_string();
            ConstCounter::new(*value).encode(errors.encode_family(&[("code", code.as_str())])?)?;
        }
        encode_histogram(
            &mut encoder,
            "edgeice_allocation_lifetime",
            "How long allocations lived, observed as each ends",
            &s.allocation_lifetimes,
        )?;
        encode_histogram(
            &mut encoder,
            "edgeice_allocate_latency",
            "Successful Allocates: from the authenticated request reaching the core to the \
             success answer, the relay socket bound in between",
            &s.allocate_latencies,
        )?;
        self.encode_gauges(&mut encoder)?;
        self.encode_steering(&mut encoder)?;
        if let Some(process) = &self.process {
            encode_process(&mut encoder, process)?;
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
        // Every combination, 0 where there is none, so that a dashboard or
        // an alert finds its series before the first such allocation.
        for transport in Transport::ALL {
            for family in [AddressFamily::V4, AddressFamily::V6] {
                for dialect in DIALECTS {
                    let count = self
                        .allocations
                        .get(&(transport, family, dialect))
                        .copied()
                        .unwrap_or(0);
                    let labels = [
                        ("transport", transport_label(transport)),
                        ("family", family_label(family)),
                        ("dialect", dialect.label()),
                    ];
                    ConstGauge::new(count as i64).encode(gauge.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }

    /// Relayed packets and bytes by client transport and direction (the
    /// kernel fast path's share included), and the kernel's share alone.
    fn encode_traffic(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, bytes) in [
            (
                "edgeice_relayed_packets",
                "Packets relayed, by client transport and direction, counted as they go",
                false,
            ),
            (
                "edgeice_relayed_bytes",
                "Payload bytes relayed, by client transport and direction, counted as they go",
                true,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for transport in Transport::ALL {
                let traffic = self.stats.traffic(transport);
                for (direction, (packets, octets)) in [
                    ("to_peer", traffic.to_peer),
                    ("to_client", traffic.to_client),
                ] {
                    let value = if bytes { octets } else { packets };
                    let labels = [
                        ("transport", transport_label(transport)),
                        ("direction", direction),
                    ];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut spliced = encoder.encode_descriptor(
            "edgeice_tcp_relayed_bytes",
            "Bytes passed between RFC 6062 data connections and their TCP peers, counted as \
             they go (not in edgeice_relayed_bytes: they bypass the core)",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [("to_peer", self.spliced.0), ("to_client", self.spliced.1)] {
            ConstCounter::new(value).encode(spliced.encode_family(&[("direction", direction)])?)?;
        }
        let (to_peer, to_client) = self.kernel.unwrap_or_default();
        for (name, help, bytes) in [
            (
                "edgeice_kernel_relayed_packets",
                "Packets relayed by the kernel fast path (XDP), also in edgeice_relayed_packets; \
                 0 when it is off",
                false,
            ),
            (
                "edgeice_kernel_relayed_bytes",
                "Payload bytes relayed by the kernel fast path (XDP), also in \
                 edgeice_relayed_bytes; 0 when it is off",
                true,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (direction, counters) in [("to_peer", to_peer), ("to_client", to_client)] {
                let value = if bytes {
                    counters.bytes
                } else {
                    counters.packets
                };
                ConstCounter::new(value)
                    .encode(family.encode_family(&[("direction", direction)])?)?;
            }
        }
        Ok(())
    }

    /// Connections, free relay ports, build information.
    /// The drain, and new Allocates steered away (redirected, by why, and
    /// refused while draining with nowhere to send them).
    fn encode_steering(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        ConstGauge::new(i64::from(self.draining)).encode(encoder.encode_descriptor(
            "edgeice_draining",
            "1 while the edge drains: new Allocates are redirected or refused, running ones go on",
            None,
            MetricType::Gauge,
        )?)?;
        let mut redirects = encoder.encode_descriptor(
            "edgeice_redirects",
            "New Allocates answered 300 Try Alternate, by reason (draining, full)",
            None,
            MetricType::Counter,
        )?;
        for reason in edgeice_server::RedirectReason::ALL {
            let count = self.stats.redirects[reason.index()];
            ConstCounter::new(count)
                .encode(redirects.encode_family(&[("reason", reason.label())])?)?;
        }
        ConstCounter::new(self.stats.drain_refusals).encode(encoder.encode_descriptor(
            "edgeice_drain_refusals",
            "New Allocates refused with 508 while draining, no alternate server being known",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }

    fn encode_gauges(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut connections = encoder.encode_descriptor(
            "edgeice_connections",
            "TCP and TLS client connections open",
            None,
            MetricType::Gauge,
        )?;
        for (transport, open) in [("tcp", self.streams.0), ("tls", self.streams.1)] {
            ConstGauge::new(open as i64)
                .encode(connections.encode_family(&[("transport", transport)])?)?;
        }
        let mut free = encoder.encode_descriptor(
            "edgeice_relay_ports_free",
            "Relay ports of the range without an edgeice socket, per relay IP and transport",
            None,
            MetricType::Gauge,
        )?;
        for (ip, udp, tcp) in &self.free_relay_ports {
            let ip = ip.to_string();
            for (transport, count) in [("udp", udp), ("tcp", tcp)] {
                let labels = [("ip", ip.as_str()), ("transport", transport)];
                ConstGauge::new(*count as i64).encode(free.encode_family(&labels)?)?;
            }
        }
        let mut info = encoder.encode_descriptor(
            "edgeice_build_info",
            "Always 1; the labels say which edgeice this is",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            (
                "profile",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ];
        ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        Ok(())
    }
}

/// One histogram of durations, in seconds.
fn encode_histogram<B: Buckets>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    histogram: &Histogram<B>,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = histogram
        .buckets()
        .map(|(bound, count)| (bound.map_or(f64::MAX, |b| b.as_secs_f64()), count))
        .collect();
    let mut metric =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(
        histogram.sum().as_secs_f64(),
        histogram.count(),
        &buckets,
        None,
    )
}

/// The `process_*` series, as Prometheus's client libraries name them.
fn encode_process(
    encoder: &mut DescriptorEncoder,
    process: &process::ProcessStats,
) -> Result<(), std::fmt::Error> {
    let cpu = ConstCounter::new(process.cpu_seconds);
    cpu.encode(encoder.encode_descriptor(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        None,
        MetricType::Counter,
    )?)?;
    let mut gauges: Vec<(&str, &str, f64)> = vec![
        (
            "process_resident_memory_bytes",
            "Resident memory size, in bytes",
            process.resident_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes",
            process.virtual_bytes as f64,
        ),
        (
            "process_open_fds",
            "File descriptors open",
            process.open_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            process.start_time_seconds,
        ),
        ("process_threads", "Threads", process.threads as f64),
    ];
    if let Some(max) = process.max_fds {
        gauges.push((
            "process_max_fds",
            "Most file descriptors the process may open (the soft limit)",
            max as f64,
        ));
    }
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
    }
    Ok(())
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

/// Which exposition format a scraper gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text, for scrapers that ask for it.
    OpenMetrics,
    /// Prometheus's classic text format 0.0.4, for everyone else.
    Text004,
}

impl Format {
    /// The Content-Type that announces it.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The exposition of `snapshot` in `format`.
pub fn render(snapshot: Snapshot, format: Format) -> Result<String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).context("encoding metrics")?;
    Ok(match format {
        Format::OpenMetrics => text,
        Format::Text004 => openmetrics_to_004(&text),
    })
}

/// Prometheus's classic text format from prometheus-client's OpenMetrics:
/// a counter family is named as its samples are, with `_total` (the
/// classic parser ties `# TYPE` to the sample name, and would take
/// `edgeice_x_total` under `# TYPE edgeice_x counter` for an untyped
/// metric); no `# UNIT` and no `# EOF`, which 0.0.4 does not have. The
/// rest (gauges, histograms, label escaping) is the same in both.
fn openmetrics_to_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|prefix| line.starts_with(prefix));
        match descriptor {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(prefix);
                text.push_str(name);
                if counters.contains(name) {
                    text.push_str("_total");
                }
                text.push(' ');
                text.push_str(tail);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// The format `accept` (a request's Accept header) prefers: OpenMetrics if
/// it is offered at least as highly as plain text, else the classic text.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text004;
    };
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text004
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for_first() {
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("Application/OpenMetrics-Text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(None), Format::Text004);
        assert_eq!(negotiate(Some("*/*")), Format::Text004);
        assert_eq!(
            negotiate(Some(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"
            )),
            Format::Text004
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text004
        );
        assert_eq!(negotiate(Some(";;,,q=,\u{0}")), Format::Text004);
    }

    #[test]
    fn classic_text_names_counters_as_their_samples() {
        let openmetrics = "# HELP a_created Made.\n# TYPE a_created counter\na_created_total 3\n\
                           # HELP b Now.\n# TYPE b gauge\nb{x=\"y\"} 1\n\
                           # HELP c_seconds How long.\n# TYPE c_seconds histogram\n# UNIT c_seconds seconds\n\
                           c_seconds_sum 1.0\nc_seconds_count 1\nc_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_004(openmetrics),
            "# HELP a_created_total Made.\n# TYPE a_created_total counter\na_created_total 3\n\
             # HELP b Now.\n# TYPE b gauge\nb{x=\"y\"} 1\n\
             # HELP c_seconds How long.\n# TYPE c_seconds histogram\n\
             c_seconds_sum 1.0\nc_seconds_count 1\nc_seconds_bucket{le=\"+Inf\"} 1\n"
        );
    }

    #[test]
    fn every_allocation_kind_has_a_series_from_the_start() {
        let text = render(Snapshot::default(), Format::Text004).unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("edgeice_allocations{"))
            .collect();
        assert_eq!(series.len(), 3 * 2 * 2, "{text}");
        assert!(series.iter().all(|l| l.ends_with(" 0")));
        assert!(text.contains(
            "edgeice_allocations{transport=\"tls\",family=\"ipv6\",dialect=\"ms-turn\"} 0"
        ));
        assert!(
            text.contains(
                "edgeice_relayed_bytes_total{transport=\"tcp\",direction=\"to_client\"} 0"
            )
        );
        assert!(text.contains("edgeice_error_responses_total{code=\"508\"} 0"));
        assert!(text.contains("edgeice_allocation_lifetime_seconds_bucket{le=\"+Inf\"} 0"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        let openmetrics = render(Snapshot::default(), Format::OpenMetrics).unwrap();
        assert!(openmetrics.ends_with("# EOF\n"));
    }
}
