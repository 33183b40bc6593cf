//! The SQLite user store: long-term keys by user name and realm.
//!
//! Only keys are stored (MD5 of `name:realm:password`, what RFC 8489 and
//! every client use), never passwords, as coturn's `turnadmin -k` does: a
//! stolen database does not give the passwords away for other services.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::{Preparation, long_term_key_bytes};
use rusqlite::{Connection, params};

/// A user store in one SQLite file.
pub struct UserStore {
    conn: Connection,
    path: PathBuf,
}

/// One user as listed.
#[derive(Debug, PartialEq, Eq)]
pub struct UserEntry {
    /// User name.
    pub name: String,
    /// Realm the key was made for.
    pub realm: String,
}

impl UserStore {
    /// Where the store lives when no path is given: `/var/lib/edgeice` for
    /// root (a system service), the user's data directory otherwise.
    pub fn default_path() -> PathBuf {
        let is_root = std::env::var("USER").is_ok_and(|u| u == "root")
            || std::env::var("HOME").is_ok_and(|h| h == "/root");
        if is_root {
            return PathBuf::from("/var/lib/edgeice/users.db");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("edgeice/users.db")
    }

    /// Opens (creating if need be) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("creating the directory of the user store {}", dir.display())
            })?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the user store {}", path.display()))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 name TEXT NOT NULL,
                 realm TEXT NOT NULL,
                 key BLOB NOT NULL,
                 created INTEGER NOT NULL DEFAULT (strftime('%s', 'now')),
                 PRIMARY KEY (name, realm)
             );",
        )
        .with_context(|| format!("preparing the user store {}", path.display()))?;
        Ok(UserStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a user, or replaces its key.
    pub fn add(&self, name: &str, realm: &str, password: &str) -> Result<()> {
        if name.is_empty() || name.contains(':') {
            anyhow::bail!("user name {name:?}: must be non-empty and without ':'");
        }
        let key = long_term_key_bytes(
            name,
            realm,
            password,
            PasswordAlgorithm::MD5,
            Preparation::OpaqueString,
        )
        .with_context(|| format!("password of {name}"))?;
        self.conn
            .execute(
                "INSERT INTO users (name, realm, key) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, realm) DO UPDATE SET key = excluded.key",
                params![name, realm, key],
            )
            .context("writing the user store")?;
        Ok(())
    }

    /// Removes a user; whether it existed.
    pub fn remove(&self, name: &str, realm: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM users WHERE name = ?1 AND realm = ?2",
                params![name, realm],
            )
            .context("writing the user store")?;
        Ok(n > 0)
    }

    /// All users, by realm then name.
    pub fn list(&self) -> Result<Vec<UserEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, realm FROM users ORDER BY realm, name")
            .context("reading the user store")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(UserEntry {
                    name: row.get(0)?,
                    realm: row.get(1)?,
                })
            })
            .context("reading the user store")?;
        rows.collect::<Result<_, _>>()
            .context("reading the user store")
    }

    /// The keys of the users of `realm`.
    pub fn keys(&self, realm: &str) -> Result<HashMap<String, Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, key FROM users WHERE realm = ?1")
            .context("reading the user store")?;
        let rows = stmt
            .query_map(params![realm], |row| Ok((row.get(0)?, row.get(1)?)))
            .context("reading the user store")?;
        rows.collect::<Result<_, _>>()
            .context("reading the user store")
    }
}

/// A random password: 18 bytes of system randomness, as 24 characters of
/// URL-safe base64.
pub fn random_password() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_replace_remove() {
        let dir = std::env::temp_dir().join(format!("edgeice-store-{}", std::process::id()));
        let store = UserStore::open(&dir.join("users.db")).unwrap();
        store.add("alice", "example.org", "one").unwrap();
        store.add("bob", "example.org", "two").unwrap();
        store.add("alice", "example.org", "three").unwrap();
        assert!(store.add("a:b", "example.org", "x").is_err());
        let names: Vec<String> = store.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["alice", "bob"]);
        let keys = store.keys("example.org").unwrap();
        let expected = long_term_key_bytes(
            "alice",
            "example.org",
            "three",
            1,
            Preparation::OpaqueString,
        )
        .unwrap();
        assert_eq!(keys["alice"], expected);
        assert!(store.remove("bob", "example.org").unwrap());
        assert!(!store.remove("bob", "example.org").unwrap());
        assert!(store.keys("other").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
