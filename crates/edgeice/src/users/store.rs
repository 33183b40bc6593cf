//! The SQLite user store: long-term keys by user name and realm.
//!
//! Only keys are stored (MD5 of `name:realm:password`, what RFC 8489 and
//! every client use), never passwords, as coturn's `turnadmin -k` does: a
//! stolen database does not give the passwords away for other services.

use std::collections::HashMap;
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

    /// Opens (creating if need be) the store at `path`. Its keys are as
    /// good as passwords: a new store is created 0600, and the directories
    /// made for it 0700 (an existing directory is left as it is); an
    /// existing store others can read is made 0600 (readable by its group:
    /// left, with a warning). Writers wait up to `busy_timeout` for another
    /// writer (`edgeice user add` beside a running server) before failing
    /// with SQLITE_BUSY.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| {
                    format!("creating the directory of the user store {}", dir.display())
                })?;
        }
        private_file(path)?;
        let conn = Connection::open(path).map_err(|e| explain(e, path, "opening"))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| explain(e, path, "opening"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 name TEXT NOT NULL,
                 realm TEXT NOT NULL,
                 key BLOB NOT NULL,
                 created INTEGER NOT NULL DEFAULT (strftime('%s', 'now')),
                 PRIMARY KEY (name, realm)
             );",
        )
        .map_err(|e| explain(e, path, "preparing"))?;
        Ok(UserStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// How long a statement waits for another connection's lock before
    /// failing with SQLITE_BUSY.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<()> {
        self.conn
            .busy_timeout(timeout)
            .map_err(|e| explain(e, &self.path, "opening"))
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
            .map_err(|e| explain(e, &self.path, "writing"))?;
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
            .map_err(|e| explain(e, &self.path, "writing"))?;
        Ok(n > 0)
    }

    /// All users, by realm then name.
    pub fn list(&self) -> Result<Vec<UserEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, realm FROM users ORDER BY realm, name")
            .map_err(|e| explain(e, &self.path, "reading"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(UserEntry {
                    name: row.get(0)?,
                    realm: row.get(1)?,
                })
            })
            .map_err(|e| explain(e, &self.path, "reading"))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| explain(e, &self.path, "reading"))
    }

    /// The keys of the users of `realm`.
    pub fn keys(&self, realm: &str) -> Result<HashMap<String, Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, key FROM users WHERE realm = ?1")
            .map_err(|e| explain(e, &self.path, "reading"))?;
        let rows = stmt
            .query_map(params![realm], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| explain(e, &self.path, "reading"))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| explain(e, &self.path, "reading"))
    }
}

/// How long `edgeice user` waits for a running writer before giving up.
pub const WRITER_PATIENCE: Duration = Duration::from_secs(5);

/// Creates the store file 0600 if it does not exist (before SQLite does,
/// with the umask's mode); makes an existing one others may read 0600.
fn private_file(path: &Path) -> Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // SQLite says it better (read-only file system, no such
        // directory...) when it tries to open it.
        Err(_) => return Ok(()),
    }
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        match std::fs::set_permissions(path, Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "the user store was readable by others (mode {mode:o}); its keys are \
                 password-equivalent, made it 0600"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "the user store is readable by others (mode {mode:o}) and cannot be made 0600; \
                 its keys are password-equivalent: chmod 600 it"
            ),
        }
    } else if mode & 0o070 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the user store is readable by its group (mode {mode:o}); its keys are \
             password-equivalent: chmod 600 it unless that group is meant to read them"
        );
    }
    Ok(())
}

/// An SQLite error on the store at `path`, said so that the operator knows
/// what to do.
fn explain(error: rusqlite::Error, path: &Path, doing: &str) -> anyhow::Error {
    use rusqlite::ErrorCode;
    let path = path.display();
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => Some(format!(
            "the user store {path} is read-only (a read-only file system or file?); \
             users can only be changed where it can be written"
        )),
        Some(ErrorCode::DiskFull) => Some(format!(
            "the disk of the user store {path} is full; free some space and try again"
        )),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Some(format!(
            "the user store {path} stayed locked by another writer; try again"
        )),
        Some(ErrorCode::CannotOpen) => Some(format!(
            "cannot open the user store {path} (does its directory exist, may it be written?)"
        )),
        Some(ErrorCode::NotADatabase) => Some(format!("{path} is not an SQLite user store")),
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::Error::new(error).context(hint),
        None => anyhow::Error::new(error).context(format!("{doing} the user store {path}")),
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
        let store = UserStore::open(&dir.join("users.db"), WRITER_PATIENCE).unwrap();
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
