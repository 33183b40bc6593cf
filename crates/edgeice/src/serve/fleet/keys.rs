//! Where the fleet's state lives in Redis: every key edgeice reads or
//! writes, under one prefix, so that one Redis can also serve others.

/// The prefix of every key.
const PREFIX: &str = "edgeice:";

/// The pub/sub channel changes are announced on (see [`Change`]).
pub const CHANGES: &str = "edgeice:changes";

/// The TURN REST API secrets in force (a set: several while rotating).
pub const SECRETS: &str = "edgeice:auth-secrets";

/// The key that signs nonces on every node (64 hex digits).
pub const NONCE_KEY: &str = "edgeice:nonce-key";

/// The ids of the nodes that have announced themselves (a set; ids whose
/// record lapsed are pruned by whoever reads it).
pub const NODES: &str = "edgeice:nodes";

/// The users of `realm`: a hash of user name → long-term key (32 hex
/// digits, MD5 of NAME:REALM:PASSWORD), never a password.
pub fn users(realm: &str) -> String {
    format!("{PREFIX}users:{realm}")
}

/// The pattern of every realm's users hash.
pub const ALL_USERS: &str = "edgeice:users:*";

/// The realm of a [`users`] key.
pub fn realm_of(key: &str) -> Option<&str> {
    key.strip_prefix("edgeice:users:")
}

/// Where node `id`'s record is: JSON, with an expiry the node's
/// heartbeat keeps pushing back.
pub fn node(id: &str) -> String {
    format!("{NODE_PREFIX}{id}")
}

/// The prefix of [`node`] keys (the quota script checks a node's record
/// with it).
pub const NODE_PREFIX: &str = "edgeice:node:";

/// A user's allocations in the fleet: a hash of node id → count.
pub fn quota(user: &str) -> String {
    format!("{PREFIX}quota:{user}")
}

/// The users node `id` has counted in a [`quota`] hash, so that a node
/// that comes back (or finds a Redis that restarted) can set its counts
/// right.
pub fn node_quota_users(id: &str) -> String {
    format!("{PREFIX}node-quota-users:{id}")
}

/// What a message on [`CHANGES`] says.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// One user of one realm was added, changed or removed.
    User { realm: &'a str, name: &'a str },
    /// The REST API secrets changed.
    Secrets,
    /// Anything else: read everything again.
    Everything,
}

impl<'a> Change<'a> {
    /// The message for a change of user `name` of `realm`.
    pub fn user_message(realm: &str, name: &str) -> String {
        format!("user\t{realm}\t{name}")
    }

    /// The message for a change of the secrets.
    pub const SECRETS_MESSAGE: &'static str = "secrets";

    /// Reads a message; one not understood asks for a full reload.
    pub fn parse(message: &'a [u8]) -> Change<'a> {
        let Ok(text) = std::str::from_utf8(message) else {
            return Change::Everything;
        };
        if text == Self::SECRETS_MESSAGE {
            return Change::Secrets;
        }
        let mut parts = text.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("user"), Some(realm), Some(name)) => Change::User { realm, name },
            _ => Change::Everything,
        }
    }
}

/// A long-term key as stored: lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex, `None` unless it is all hex digits in pairs.
pub fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    // from_str_radix alone would take a sign ("+1").
    if !text.len().is_multiple_of(2) || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_and_garbage_asks_for_everything() {
        let message = Change::user_message("example.org", "alice");
        assert_eq!(
            Change::parse(message.as_bytes()),
            Change::User {
                realm: "example.org",
                name: "alice"
            }
        );
        assert_eq!(Change::parse(b"secrets"), Change::Secrets);
        assert_eq!(Change::parse(b"\xff\xfe"), Change::Everything);
        assert_eq!(Change::parse(b"user\tonly-realm"), Change::Everything);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(
            unhex(hex(&[0, 0xab, 0xff]).as_bytes()),
            Some(vec![0, 0xab, 0xff])
        );
        assert_eq!(unhex(b"abc"), None);
        assert_eq!(unhex(b"zz"), None);
        assert_eq!(unhex("é1".as_bytes()), None);
        assert_eq!(unhex(b"+1"), None);
    }

    /// What Redis can hand back is anyone's bytes: random ones, 20,000
    /// of them up to 100 bytes long, through every reader of stored
    /// values (no panic; a key only from exactly 32 hex digits).
    #[test]
    fn random_bytes_never_panic_the_readers() {
        let mut noise = vec![0u8; 20_000 * 101];
        getrandom::fill(&mut noise).unwrap();
        for chunk in noise.chunks(101) {
            let value = &chunk[1..1 + usize::from(chunk[0]) % 100];
            let _ = Change::parse(value);
            if let Some(bytes) = unhex(value) {
                assert_eq!(bytes.len() * 2, value.len());
            }
            if crate::serve::fleet::users::parse_key(value).is_some() {
                assert_eq!(value.len(), 32);
            }
            let _ = serde_json::from_slice::<crate::serve::fleet::registry::NodeRecord>(value);
        }
    }
}
