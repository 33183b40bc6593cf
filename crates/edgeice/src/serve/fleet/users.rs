//! The fleet's users in Redis: one hash per realm, user name → long-term
//! key in hex (never a password). Read in full when a node (re)connects,
//! one user at a time when a change is announced. A value that is not a
//! key is said once per reading and skipped: it never reaches the cores.

use std::collections::HashMap;

use edgeice_stun::IntegrityKey;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::keys;

/// Users read per HSCAN reply.
const PAGE: usize = 5000;

/// The length of an MD5 long-term key, the only kind stored.
const KEY_LEN: usize = 16;

/// A stored value as a key, if it is one.
pub fn parse_key(value: &[u8]) -> Option<IntegrityKey> {
    keys::unhex(value)
        .filter(|key| key.len() == KEY_LEN)
        .map(|key| IntegrityKey::new(&key))
}

/// Every user of `realm`, and how many entries were skipped as garbage.
/// The keys are made on a blocking thread: a list of many thousands takes
/// a while, which must not hold up a runtime thread that relays.
pub async fn load(
    conn: &mut MultiplexedConnection,
    realm: &str,
) -> anyhow::Result<(HashMap<String, IntegrityKey>, usize)> {
    let hash = keys::users(realm);
    // In pages: one reply of a huge hash would outlast the command's time
    // limit (and hold Redis up for everyone).
    let mut stored: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
            .arg(&hash)
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await?;
        let mut page = page.into_iter();
        while let (Some(name), Some(value)) = (page.next(), page.next()) {
            stored.insert(name, value);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(tokio::task::spawn_blocking(move || parse_users(&hash, stored)).await?)
}

/// The users of a stored hash, garbage skipped (and said).
fn parse_users(
    hash: &str,
    stored: HashMap<Vec<u8>, Vec<u8>>,
) -> (HashMap<String, IntegrityKey>, usize) {
    let mut users = HashMap::with_capacity(stored.len());
    let mut skipped = Vec::new();
    for (name, value) in stored {
        match (String::from_utf8(name), parse_key(&value)) {
            (Ok(name), Some(key)) if valid_name(&name) => {
                users.insert(name, key);
            }
            (name, _) => skipped
                .push(name.unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        }
    }
    let count = skipped.len();
    if count > 0 {
        skipped.sort();
        skipped.truncate(5);
        tracing::warn!(
            "Redis {hash}: skipped {count} entries that are not NAME → 32 hex digits (a key \
             made by `edgeice user --redis URL add`), among them {skipped:?}"
        );
    }
    (users, count)
}

/// One user of `realm` as stored now: `Ok(None)` if it is not (removed,
/// or garbage: then said).
pub async fn load_one(
    conn: &mut MultiplexedConnection,
    realm: &str,
    name: &str,
) -> redis::RedisResult<Option<IntegrityKey>> {
    let value: Option<Vec<u8>> = conn.hget(keys::users(realm), name).await?;
    let Some(value) = value else {
        return Ok(None);
    };
    let key = parse_key(&value).filter(|_| valid_name(name));
    if key.is_none() {
        tracing::warn!(
            "Redis {}: user {name:?} skipped: its value is not 32 hex digits",
            keys::users(realm)
        );
    }
    Ok(key)
}

/// A user name `edgeice user` would store.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(':')
}

/// The REST API secrets, in a stable order (a set has none).
pub async fn load_secrets(conn: &mut MultiplexedConnection) -> redis::RedisResult<Vec<String>> {
    let stored: Vec<Vec<u8>> = conn.smembers(keys::SECRETS).await?;
    let mut secrets: Vec<String> = stored
        .into_iter()
        .filter_map(|s| String::from_utf8(s).ok())
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort();
    Ok(secrets)
}

/// The fleet's nonce key, made (with `fresh`) by the first node that finds
/// none; `None` if the stored one is not 64 hex digits (said; this node
/// keeps its own key).
pub async fn nonce_key(
    conn: &mut MultiplexedConnection,
    fresh: &[u8; 32],
) -> redis::RedisResult<Option<[u8; 32]>> {
    let _: bool = conn.set_nx(keys::NONCE_KEY, keys::hex(fresh)).await?;
    let stored: Option<Vec<u8>> = conn.get(keys::NONCE_KEY).await?;
    let key = stored
        .as_deref()
        .and_then(keys::unhex)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    if key.is_none() {
        tracing::warn!(
            "Redis {}: not 64 hex digits; this node signs nonces with its own key (a client's \
             retry must then reach it). Delete the key and the next node to connect makes one",
            keys::NONCE_KEY
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_the_right_length_are_taken() {
        assert!(parse_key(b"0123456789abcdef0123456789ABCDEF").is_some());
        assert!(parse_key(b"0123456789abcdef").is_none());
        assert!(parse_key(b"not a key at all, not a key at al").is_none());
        assert!(parse_key(b"").is_none());
    }
}
