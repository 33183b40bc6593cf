//! The fleet's state from the command line (`edgeice user --redis`,
//! `edgeice sessions --fleet`): blocking commands, each change announced
//! on the changes channel so that every node takes it within a second.

use anyhow::{Context, Result, bail};
use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::{Preparation, long_term_key_bytes};
use redis::Commands;

use super::keys::{self, Change};
use super::registry::NodeRecord;

/// A blocking connection to the fleet's Redis.
pub struct FleetAdmin {
    conn: redis::Connection,
    shown: String,
}

impl FleetAdmin {
    /// Connects to `url` (the password of `password_file` replacing the
    /// URL's).
    pub fn connect(url: &str, password_file: Option<&std::path::Path>) -> Result<Self> {
        let connector = super::Connector::new(url, password_file)?;
        Ok(FleetAdmin {
            conn: connector.blocking()?,
            shown: connector.shown().to_owned(),
        })
    }

    /// Where the state is, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn announce(&mut self, message: &str) -> Result<()> {
        let _: i64 = self
            .conn
            .publish(keys::CHANGES, message)
            .context("announcing the change")?;
        Ok(())
    }

    /// Whether user `name` of `realm` exists.
    pub fn has_user(&mut self, name: &str, realm: &str) -> Result<bool> {
        Ok(self.conn.hexists(keys::users(realm), name)?)
    }

    /// Adds a user (or sets its new password): its key is stored, never
    /// the password.
    pub fn add_user(&mut self, name: &str, realm: &str, password: &str) -> Result<()> {
        if !super::users::valid_name(name) {
            bail!("user name {name:?}: must be non-empty and without ':'");
        }
        let key = long_term_key_bytes(
            name,
            realm,
            password,
            PasswordAlgorithm::MD5,
            Preparation::OpaqueString,
        )
        .with_context(|| format!("password of {name}"))?;
        let _: i64 = self.conn.hset(keys::users(realm), name, keys::hex(&key))?;
        self.announce(&Change::user_message(realm, name))
    }

    /// Removes a user; whether it existed.
    pub fn remove_user(&mut self, name: &str, realm: &str) -> Result<bool> {
        let removed: i64 = self.conn.hdel(keys::users(realm), name)?;
        self.announce(&Change::user_message(realm, name))?;
        Ok(removed > 0)
    }

    /// Every user, as (name, realm), by realm then name.
    pub fn users(&mut self) -> Result<Vec<(String, String)>> {
        let hashes: Vec<String> = self
            .conn
            .scan_match(keys::ALL_USERS)?
            .collect::<Result<_, _>>()?;
        let mut users = Vec::new();
        for hash in hashes {
            let Some(realm) = keys::realm_of(&hash) else {
                continue;
            };
            let names: Vec<String> = self.conn.hkeys(&hash)?;
            users.extend(names.into_iter().map(|n| (n, realm.to_owned())));
        }
        users.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        Ok(users)
    }

    /// Adds a REST API secret (the ones already there stay: rotation).
    pub fn add_secret(&mut self, secret: &str) -> Result<()> {
        if secret.is_empty() {
            bail!("an empty secret");
        }
        let _: i64 = self.conn.sadd(keys::SECRETS, secret)?;
        self.announce(Change::SECRETS_MESSAGE)
    }

    /// Removes a REST API secret; whether it was there.
    pub fn remove_secret(&mut self, secret: &str) -> Result<bool> {
        let removed: i64 = self.conn.srem(keys::SECRETS, secret)?;
        self.announce(Change::SECRETS_MESSAGE)?;
        Ok(removed > 0)
    }

    /// How many REST API secrets are in force (never the secrets).
    pub fn secret_count(&mut self) -> Result<usize> {
        Ok(self.conn.scard(keys::SECRETS)?)
    }

    /// The live nodes' records, by id; unreadable ones skipped.
    pub fn nodes(&mut self) -> Result<Vec<NodeRecord>> {
        let mut ids: Vec<String> = self.conn.smembers(keys::NODES)?;
        ids.sort();
        let mut nodes = Vec::new();
        for id in ids {
            let value: Option<Vec<u8>> = self.conn.get(keys::node(&id))?;
            if let Some(record) = value.and_then(|v| serde_json::from_slice(&v).ok()) {
                nodes.push(record);
            }
        }
        Ok(nodes)
    }
}
