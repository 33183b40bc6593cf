//! The node registry: each node's record (id, addresses, load, draining)
//! under a key that lapses unless its heartbeat renews it, and the set of
//! ids. Read back every heartbeat to steer new allocations
//! ([`alternates`]) and by `edgeice sessions --fleet`.

use std::net::SocketAddr;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

use super::keys;

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `--node-id`.
    pub id: String,
    /// Where clients reach it over UDP and TCP (advertised: after
    /// `--external-ip`).
    pub addresses: Vec<SocketAddr>,
    /// Where clients reach it over TLS.
    #[serde(default)]
    pub tls_addresses: Vec<SocketAddr>,
    /// Allocations now.
    pub allocations: usize,
    /// Most allocations it takes.
    pub capacity: usize,
    /// Whether it is draining (takes no new allocations).
    pub draining: bool,
    /// Unix time of the record, in milliseconds.
    pub updated_unix_ms: u64,
    /// The edgeice version it runs.
    #[serde(default)]
    pub version: String,
}

impl NodeRecord {
    /// Whether a new allocation fits.
    pub fn has_room(&self) -> bool {
        !self.draining && self.allocations < self.capacity
    }

    /// Load as a fraction of capacity, for ordering.
    fn load(&self) -> f64 {
        self.allocations as f64 / self.capacity.max(1) as f64
    }
}

/// Writes `record`, lapsing after `lifetime` unless written again.
pub async fn announce(
    conn: &mut MultiplexedConnection,
    record: &NodeRecord,
    lifetime: std::time::Duration,
) -> redis::RedisResult<()> {
    let json = serde_json::to_string(record).unwrap_or_default();
    let millis = u64::try_from(lifetime.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    redis::pipe()
        .pset_ex(keys::node(&record.id), json, millis)
        .ignore()
        .sadd(keys::NODES, &record.id)
        .ignore()
        .query_async(conn)
        .await
}

/// Removes this node's record (a clean stop: it serves no more).
pub async fn withdraw(conn: &mut MultiplexedConnection, id: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .del(keys::node(id))
        .ignore()
        .srem(keys::NODES, id)
        .ignore()
        .query_async(conn)
        .await
}

/// The live nodes' records, by id; ids whose record lapsed are removed
/// from the set, records that cannot be read are skipped (and counted).
pub async fn live_nodes(
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<(Vec<NodeRecord>, usize)> {
    let mut ids: Vec<String> = conn.smembers(keys::NODES).await?;
    ids.sort();
    if ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let names: Vec<String> = ids.iter().map(|id| keys::node(id)).collect();
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&names).query_async(conn).await?;
    let (mut nodes, mut lapsed, mut garbage) = (Vec::new(), Vec::new(), 0);
    for (id, value) in ids.iter().zip(values) {
        match value.map(|v| serde_json::from_slice::<NodeRecord>(&v)) {
            None => lapsed.push(id.clone()),
            Some(Ok(record)) => nodes.push(record),
            Some(Err(_)) => garbage += 1,
        }
    }
    if !lapsed.is_empty() {
        let _: () = conn.srem(keys::NODES, &lapsed).await?;
    }
    Ok((nodes, garbage))
}

/// Where new allocations go when this node sends them elsewhere: the live
/// nodes other than `me` that have room, least loaded first; each node's
/// addresses in turn. Returns (UDP/TCP, TLS) addresses.
pub fn alternates(nodes: &[NodeRecord], me: &str) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut others: Vec<&NodeRecord> = nodes
        .iter()
        .filter(|n| n.id != me && n.has_room())
        .collect();
    others.sort_by(|a, b| a.load().total_cmp(&b.load()).then(a.id.cmp(&b.id)));
    let plain = others
        .iter()
        .flat_map(|n| n.addresses.iter().copied())
        .collect();
    let tls = others
        .iter()
        .flat_map(|n| n.tls_addresses.iter().copied())
        .collect();
    (plain, tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, allocations: usize, draining: bool) -> NodeRecord {
        NodeRecord {
            id: id.to_owned(),
            addresses: vec![format!("192.0.2.{}:3478", id.len()).parse().unwrap()],
            tls_addresses: Vec::new(),
            allocations,
            capacity: 10,
            draining,
            updated_unix_ms: 0,
            version: String::new(),
        }
    }

    #[test]
    fn alternates_are_others_with_room_least_loaded_first() {
        let nodes = [
            node("me", 0, false),
            node("busy", 7, false),
            node("idle", 1, false),
            node("full", 10, false),
            node("draining", 0, true),
        ];
        let (plain, _) = alternates(&nodes, "me");
        let expected: Vec<SocketAddr> = [&nodes[2], &nodes[1]]
            .iter()
            .map(|n| n.addresses[0])
            .collect();
        assert_eq!(plain, expected);
    }

    #[test]
    fn a_garbage_record_is_an_error_not_a_panic() {
        assert!(serde_json::from_slice::<NodeRecord>(b"\x00{not json").is_err());
        assert!(serde_json::from_slice::<NodeRecord>(br#"{"id":5}"#).is_err());
    }
}
