//! The benchmark's report: the threads' outcomes added up, as text for a
//! terminal or one JSON object for scripts (`bench/compare.sh`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::histogram::Histogram;
use super::worker::Outcome;
use super::{BenchArgs, Plan};

/// Latency percentiles of the round trip, in microseconds.
#[derive(Serialize)]
pub struct Latency {
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
}

/// What a run measured.
#[derive(Serialize)]
pub struct Report {
    server: String,
    transport: &'static str,
    mode: &'static str,
    clients: usize,
    threads: usize,
    size: usize,
    /// Packets per second per client, or `None` with `--max`.
    rate_per_client: Option<f64>,
    window: Option<usize>,
    duration_s: f64,
    allocated: u64,
    /// Clients ready to send.
    pub ready: u64,
    failed: u64,
    setup_s: Option<f64>,
    allocations_per_s: Option<f64>,
    /// Allocate, then ChannelBind or CreatePermission, per second.
    ready_per_s: Option<f64>,
    /// Releases (Refresh with LIFETIME 0) answered at the end.
    released: u64,
    /// Releases answered per second (all clients' at once).
    refreshes_per_s: Option<f64>,
    errors: BTreeMap<String, u64>,
    /// Allocations that followed a 300 (Try Alternate) to another server.
    redirected: u64,
    /// Allocations by the server they were made on, after redirections.
    allocated_on: BTreeMap<String, u64>,
    sent: u64,
    received: u64,
    lost: u64,
    loss_percent: f64,
    sent_per_s: f64,
    received_per_s: f64,
    /// Datagrams the built-in peer echoed.
    peer_echoed: u64,
    bad_input: u64,
    latency_us: Latency,
    /// The generator's own CPU time (all threads and the peer).
    client_cpu_s: f64,
}

impl Report {
    /// Adds up the threads' outcomes.
    pub fn new(
        args: &BenchArgs,
        plan: &Plan,
        threads: usize,
        outcomes: &[Outcome],
        latency: &Histogram,
        peer_echoed: u64,
        client_cpu_s: f64,
    ) -> Report {
        let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
        let mut errors = BTreeMap::new();
        for o in outcomes {
            for (code, count) in &o.errors {
                *errors.entry(code.clone()).or_default() += count;
            }
        }
        let mut allocated_on = BTreeMap::new();
        for o in outcomes {
            for (server, count) in &o.allocated_on {
                *allocated_on.entry(server.to_string()).or_default() += count;
            }
        }
        let allocated = sum(|o| o.allocated);
        let ready = sum(|o| o.ready);
        let last_allocated = outcomes.iter().filter_map(|o| o.last_allocated).max();
        let last_ready = outcomes.iter().filter_map(|o| o.last_ready).max();
        let per_second = |count: u64, d: Option<std::time::Duration>| {
            d.filter(|d| !d.is_zero() && count > 0)
                .map(|d| count as f64 / d.as_secs_f64())
        };
        let (sent, received) = (sum(|o| o.sent), sum(|o| o.received));
        let lost = sent.saturating_sub(received);
        let duration_s = if args.setup_only { 0.0 } else { args.duration };
        let rate = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let micros = |q: f64| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
        Report {
            server: plan.server.to_string(),
            transport: match plan.stream_kind() {
                None => "udp",
                Some(super::conn::StreamKind::Tcp) => "tcp",
                Some(super::conn::StreamKind::Tls(_)) => "tls",
            },
            mode: plan.mode.name(),
            clients: args.clients,
            threads,
            size: plan.size,
            rate_per_client: plan.rate,
            window: plan.rate.is_none().then_some(plan.window),
            duration_s,
            allocated,
            ready,
            failed: sum(|o| o.failed),
            setup_s: last_ready.or(last_allocated).map(|d| d.as_secs_f64()),
            allocations_per_s: per_second(allocated, last_allocated),
            ready_per_s: per_second(ready, last_ready),
            released: sum(|o| o.released),
            refreshes_per_s: per_second(
                sum(|o| o.released),
                outcomes.iter().filter_map(|o| o.release_time).max(),
            ),
            errors,
            redirected: sum(|o| o.redirected),
            allocated_on,
            sent,
            received,
            lost,
            loss_percent: if sent > 0 {
                lost as f64 * 100.0 / sent as f64
            } else {
                0.0
            },
            sent_per_s: rate(sent),
            received_per_s: rate(received),
            peer_echoed,
            bad_input: sum(|o| o.bad_input),
            latency_us: Latency {
                p50: micros(0.5),
                p99: micros(0.99),
                p999: micros(0.999),
                max: micros(1.0),
            },
            client_cpu_s,
        }
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Errors as `code ×count, …` (or `none`).
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".to_owned();
        }
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        parts.join(", ")
    }

    /// The terminal report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let f1 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let load = match (self.rate_per_client, self.window) {
            (Some(rate), _) => format!("{rate} packets/s per client"),
            (None, Some(w)) => format!("max (window {w} per client)"),
            _ => "max".to_owned(),
        };
        let _ = writeln!(
            s,
            "edgeice bench {} over {}, {}, {} clients on {} threads, {} bytes, {load}",
            self.server, self.transport, self.mode, self.clients, self.threads, self.size
        );
        let _ = writeln!(
            s,
            "setup:    {} allocated, {} ready, {} failed in {} s: {} allocations/s, {} ready/s",
            self.allocated,
            self.ready,
            self.failed,
            self.setup_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            f1(self.allocations_per_s),
            f1(self.ready_per_s),
        );
        let _ = writeln!(
            s,
            "release:  {} released (Refresh, LIFETIME 0): {} refreshes/s",
            self.released,
            f1(self.refreshes_per_s),
        );
        if self.redirected > 0 {
            let on: Vec<String> = self
                .allocated_on
                .iter()
                .map(|(server, n)| format!("{server} ×{n}"))
                .collect();
            let _ = writeln!(
                s,
                "redirect: {} followed a 300 (Try Alternate); allocated on {}",
                self.redirected,
                on.join(", ")
            );
        }
        let _ = writeln!(s, "errors:   {}", self.errors_text());
        if self.duration_s > 0.0 {
            let _ = writeln!(
                s,
                "packets:  sent {} ({:.0}/s), received {} ({:.0}/s), lost {} ({:.3}%)",
                self.sent,
                self.sent_per_s,
                self.received,
                self.received_per_s,
                self.lost,
                self.loss_percent
            );
            let _ = writeln!(
                s,
                "rtt µs:   p50 {}, p99 {}, p99.9 {}, max {}",
                f1(self.latency_us.p50),
                f1(self.latency_us.p99),
                f1(self.latency_us.p999),
                f1(self.latency_us.max)
            );
        }
        let _ = writeln!(s, "generator CPU: {:.2} s", self.client_cpu_s);
        s
    }
}
