//! Per-user allocation quotas across the fleet. Each user's count is a
//! Redis hash of node id → allocations on that node; a Lua script (atomic
//! in Redis) adds one for this node unless the live nodes' counts reach the
//! limit. A node whose registry record lapsed (killed, cut off) is dropped
//! from the hash by the next reservation, so its allocations stop counting.
//! This node also keeps its own counts, which are the truth it writes back
//! when it (re)connects.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::aio::MultiplexedConnection;

use super::keys;

/// KEYS: the user's quota hash, this node's set of users counted.
/// ARGV: this node, the limit, the node-record prefix, seconds the hash
/// lives after its last reservation. Returns 1 when reserved, 0 when not.
const RESERVE: &str = r"
local counts = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #counts, 2 do
  local node, n = counts[i], tonumber(counts[i + 1])
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. node) == 0 then
    redis.call('HDEL', KEYS[1], node)
  elseif n then
    total = total + n
  end
end
if total >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], KEYS[1])
return 1
";

/// KEYS: the user's quota hash. ARGV: this node.
const RELEASE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
";

/// How long a quota hash outlives its last reservation: longer than the
/// longest allocation (one hour, refreshed or not, then reserved again).
const HASH_LIFETIME_SECS: u64 = 2 * 3600;

/// Reserves one allocation of `user` for `node` under `limit`.
pub async fn reserve(
    conn: &mut MultiplexedConnection,
    node: &str,
    user: &str,
    limit: usize,
) -> redis::RedisResult<bool> {
    let reserved: i64 = redis::Script::new(RESERVE)
        .key(keys::quota(user))
        .key(keys::node_quota_users(node))
        .arg(node)
        .arg(limit)
        .arg(keys::NODE_PREFIX)
        .arg(HASH_LIFETIME_SECS)
        .invoke_async(conn)
        .await?;
    Ok(reserved == 1)
}

/// Gives back one allocation of `user` on `node`.
pub async fn release(
    conn: &mut MultiplexedConnection,
    node: &str,
    user: &str,
) -> redis::RedisResult<()> {
    let _: i64 = redis::Script::new(RELEASE)
        .key(keys::quota(user))
        .arg(node)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Writes this node's true counts: what it counted before (in a Redis
/// that may have restarted empty, or while it was cut off, or a release
/// that was lost) is replaced, and the hashes' expiry pushed back (an
/// allocation may be refreshed for longer than a hash lives).
pub async fn resync(
    conn: &mut MultiplexedConnection,
    node: &str,
    held: &HashMap<String, u32>,
) -> redis::RedisResult<()> {
    let counted: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::node_quota_users(node))
        .query_async(conn)
        .await?;
    // In one transaction: another node's reservation never sees this
    // node's counts half rewritten.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for hash in &counted {
        pipe.hdel(hash, node).ignore();
    }
    pipe.del(keys::node_quota_users(node)).ignore();
    for (user, count) in held.iter().filter(|(_, n)| **n > 0) {
        let hash = keys::quota(user);
        pipe.hset(&hash, node, *count).ignore();
        pipe.expire(&hash, HASH_LIFETIME_SECS as i64).ignore();
        pipe.sadd(keys::node_quota_users(node), &hash).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// This node's allocations per user, as counted for the fleet quota
/// (reserved in Redis, or allowed unchecked while it was unreachable).
#[derive(Debug, Default)]
pub struct Held {
    counts: Mutex<HashMap<String, u32>>,
}

impl Held {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more allocation of `user`.
    pub fn add(&self, user: &str) {
        *self.counts().entry(user.to_owned()).or_default() += 1;
    }

    /// Counts one less; whether there was one.
    pub fn remove(&self, user: &str) -> bool {
        let mut counts = self.counts();
        let Some(n) = counts.get_mut(user) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            counts.remove(user);
        }
        true
    }

    /// A copy, for a resync (taken without holding the lock across it).
    pub fn snapshot(&self) -> HashMap<String, u32> {
        self.counts().clone()
    }
}
