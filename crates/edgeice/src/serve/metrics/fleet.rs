//! The fleet's figures (`--redis`): whether Redis answers, its outages,
//! and what the fleet quota let through unchecked or refused.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::serve::fleet::FleetSnapshot;

/// Encodes `fleet`'s gauges and counters.
pub fn encode(
    fleet: &FleetSnapshot,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let gauges: [(&str, &str, i64); 2] = [
        (
            "edgeice_redis_up",
            "1 while the fleet's Redis answers, 0 while this node serves with what it loaded last",
            i64::from(fleet.up),
        ),
        (
            "edgeice_fleet_nodes",
            "Live nodes in the fleet's registry at the last heartbeat, this one included",
            fleet.live_nodes as i64,
        ),
    ];
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    let counters: [(&str, &str, u64); 5] = [
        (
            "edgeice_redis_outages",
            "Times the fleet's Redis became unreachable (the first failure at start counts)",
            fleet.outages,
        ),
        (
            "edgeice_redis_resyncs",
            "Full readings of the fleet state, one per (re)connection to Redis",
            fleet.resyncs,
        ),
        (
            "edgeice_fleet_quota_unchecked",
            "Allocations let through on this node's quota alone: Redis did not answer in time",
            fleet.quota_unchecked,
        ),
        (
            "edgeice_fleet_quota_refused",
            "Allocations refused (486) by the fleet-wide per-user quota",
            fleet.quota_refused,
        ),
        (
            "edgeice_redis_values_skipped",
            "Values in Redis skipped as unreadable (users, node records)",
            fleet.skipped,
        ),
    ];
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }
    Ok(())
}
