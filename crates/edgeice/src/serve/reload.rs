//! SIGHUP, and certificate files that change: the settings re-read as at
//! start (command line, then the config file and the files it names), and
//! what a running server can change put in force — users, REST API
//! secrets, the peer allow/deny lists, the TLS certificate, the log level
//! — while allocations, connections and relayed traffic go on. Everything
//! is read and checked before anything changes, so a reload that fails
//! keeps the old settings entirely. Settings only a restart can change
//! (listening addresses, relay ports...) are named in the log instead.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use anyhow::{Context, Result};
use edgeice_server::ServerConfig;
use edgeice_stun::IntegrityKey;

use super::Resolved;
use super::driver::Shared;
use super::tls::Certificate;

/// The settings a reload puts in force; every other one needs a restart,
/// and a reload that would change it says so. Derived from the settings'
/// keys, so that a new setting is fixed unless named here.
const RELOADABLE: &[&str] = &[
    "user",
    "user-file",
    "user-key",
    "auth-secret",
    "auth-secret-file",
    "allow-peer",
    "deny-peer",
    "deny-private-peers",
    "alternate-server",
    "tls-alternate-server",
    "tls-cert",
    "tls-key",
    "log-level",
];

/// What a reload needs: the settings in force (to resolve them again from
/// the same command line and environment, and to compare), and what it
/// changes.
pub struct Reloader {
    /// The settings in force, as resolved at start.
    current: Resolved,
    /// The values of the settings a reload cannot change, as at start.
    fixed: Vec<(String, Vec<String>)>,
    shared: Arc<Shared>,
    certificate: Option<Arc<Certificate>>,
    /// The keys of the static users, by their `NAME:PASSWORD` as written:
    /// deriving a key costs far more than a look-up (10,000 users took 2 s
    /// of a core), and most reloads change few users if any.
    keys: HashMap<String, IntegrityKey>,
}

/// The values of the settings a reload cannot change.
fn fixed_settings(resolved: &Resolved) -> Vec<(String, Vec<String>)> {
    resolved
        .origins
        .iter()
        .filter(|o| !RELOADABLE.contains(&o.key.as_str()))
        .map(|o| (o.key.clone(), o.values.clone()))
        .collect()
}

impl Reloader {
    /// `static_users` are the keys derived at start from `current`'s users.
    pub fn new(
        current: Resolved,
        shared: Arc<Shared>,
        certificate: Option<Arc<Certificate>>,
        static_users: &HashMap<String, IntegrityKey>,
    ) -> Result<Self> {
        let lines = current.settings.users()?;
        // A name given twice has the last one's key: only names given once
        // are known for sure.
        let mut given: HashMap<&str, usize> = HashMap::new();
        for user in &lines {
            if let Some((name, _)) = user.split_once(':') {
                *given.entry(name).or_default() += 1;
            }
        }
        let mut keys = HashMap::new();
        for user in &lines {
            let Some((name, _)) = user.split_once(':') else {
                continue;
            };
            if let (Some(1), Some(key)) = (given.get(name), static_users.get(name)) {
                keys.insert(user.clone(), key.clone());
            }
        }
        Ok(Reloader {
            fixed: fixed_settings(&current),
            current,
            shared,
            certificate,
            keys,
        })
    }

    /// The static users of `resolved` (`NAME:PASSWORD` lines and
    /// `user-key`s), keyed for the realm in force, from the keys known
    /// where their line did not change; and the keys to keep.
    #[allow(clippy::type_complexity)]
    fn static_users(
        &self,
        resolved: &Resolved,
    ) -> Result<(HashMap<String, IntegrityKey>, HashMap<String, IntegrityKey>)> {
        let (mut users, mut keys) = (HashMap::new(), HashMap::new());
        for user in resolved.settings.users()? {
            let Some((name, password)) = user.split_once(':') else {
                anyhow::bail!("a user of --user or --user-file is not NAME:PASSWORD");
            };
            let key = match self.keys.get(&user) {
                Some(key) => key.clone(),
                None => ServerConfig::user_key(self.current.settings.realm(), name, password)
                    .with_context(|| format!("--user {name}"))?,
            };
            users.insert(name.to_owned(), key.clone());
            keys.insert(user, key);
        }
        for user in &resolved.settings.user_keys {
            let (name, key) =
                super::user_key(user).map_err(|e| anyhow::anyhow!("user-key: {e}"))?;
            users.insert(name.to_owned(), IntegrityKey::new(&key));
        }
        Ok((users, keys))
    }

    /// Reloads on `signal` (its name, for the log), and says in one line
    /// what changed or why nothing did.
    pub fn reload(&mut self, signal: &str) {
        super::systemd::reloading();
        // The log file first: logrotate has moved it, and the outcome of
        // the reload belongs in the new one.
        let reopened = match crate::logging::reopen() {
            Ok(path) => path.map(|p| format!("log file {} reopened", p.display())),
            Err(e) => {
                tracing::error!("log file not reopened, still writing the old one: {e:#}");
                None
            }
        };
        match self.try_reload() {
            Ok((mut changes, restart, level)) => {
                changes.extend(reopened);
                let changes = changes.join(", ");
                if restart.is_empty() {
                    tracing::info!("{signal}: reloaded: {changes}");
                } else {
                    tracing::warn!(
                        "{signal}: reloaded: {changes}; changed but needs a restart: {}",
                        restart.join(", ")
                    );
                }
                // After the line that says so, which a lower level would
                // hide.
                crate::logging::apply_level(level);
            }
            Err(e) => tracing::error!(
                "{signal}: reload refused, the settings in force stay as they were: {e:#}"
            ),
        }
        // Served again, whether the reload was put in force or refused.
        super::systemd::ready();
    }

    /// Reads and checks everything, puts all but the log level in force;
    /// returns what changed, what needs a restart, and the level to apply.
    fn try_reload(&mut self) -> Result<(Vec<String>, Vec<String>, crate::logging::PreparedLevel)> {
        let new = self.current.again()?;
        let mut restart: Vec<String> = self
            .fixed
            .iter()
            .zip(fixed_settings(&new))
            .filter(|(old, new)| old.1 != new.1)
            .map(|(old, _)| old.0.clone())
            .collect();
        // Users are keyed for the realm in force (a new realm needs a
        // restart, said above).
        let (users, keys) = self.static_users(&new)?;
        let (running, wanted) = (&self.current.settings, &new.settings);
        let certificate = match (&self.certificate, &wanted.tls_cert, &wanted.tls_key) {
            (Some(certificate), Some(cert), Some(key)) => Some(certificate.load(cert, key)?),
            (None, cert, key) if (cert, key) != (&running.tls_cert, &running.tls_key) => {
                restart.push("tls-cert/tls-key (TLS was off at start)".to_owned());
                None
            }
            _ => None,
        };
        let level = crate::logging::prepare_level(new.file_log_level())?;
        let alternates = super::drain::resolve(&wanted.alternate_servers, "alternate-server")?;
        let tls_alternates =
            super::drain::resolve(&wanted.tls_alternate_servers, "tls-alternate-server")?;
        let reloadable = edgeice_server::Reloadable {
            users: Default::default(),
            auth_secrets: wanted.auth_secrets()?,
            allow_peers: wanted.allow_peers.clone(),
            deny_peers: wanted.deny_peers.clone(),
            deny_private_peers: wanted.deny_private_peers,
        };
        // Nothing has changed yet; the user store's read is the last thing
        // that can fail, and is done under the lock that puts users in force.
        let mut changes = self
            .shared
            .reload(self.current.settings.realm(), users, reloadable)?;
        self.keys = keys;
        if alternates != self.shared.core.alternates() {
            changes.push(format!("{} alternate server address(es)", alternates.len()));
        }
        self.shared.core.set_alternates(alternates);
        self.shared.core.set_tls_alternates(tls_alternates);
        if let (Some(certificate), Some(loaded)) = (&self.certificate, certificate) {
            changes.extend(certificate.install(loaded));
        }
        changes.extend(level.describe());
        if let (Some(source), Some(_)) = (crate::logging::level_override(), new.file_log_level()) {
            changes.push(format!(
                "log-level of the config file overridden by {source}"
            ));
        }
        // `current` stays as at start: the fixed settings (the realm among
        // them) are compared with those in force, so that what did not
        // take effect is named again at the next reload.
        Ok((changes, restart, level))
    }
}

/// The signals the server handles: none of them kills it unasked.
/// SIGPIPE is ignored by Rust's runtime before `main`.
pub struct Signals {
    pub hangup: tokio::signal::unix::Signal,
    pub terminate: tokio::signal::unix::Signal,
    pub interrupt: tokio::signal::unix::Signal,
    pub user1: tokio::signal::unix::Signal,
    pub user2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Handlers for all of them, replacing the default actions at once.
    pub fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(Signals {
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            user1: install(SignalKind::user_defined1(), "SIGUSR1")?,
            user2: install(SignalKind::user_defined2(), "SIGUSR2")?,
        })
    }
}

/// How often the certificate's files are looked at: a renewal is taken
/// within this long; a look is two `stat` calls.
pub const CERTIFICATE_POLL: Duration = Duration::from_secs(2);

/// Watches the certificate and key files, and puts them in force when
/// they change (certbot's renewal swaps the symlinks of `live/`; the
/// metadata of the files they point to is compared). A pair that cannot
/// be used (half written, mismatched) keeps the certificate in force, said
/// once, until the files change again.
pub async fn watch_certificate(certificate: Arc<Certificate>) -> Result<()> {
    let mut interval = tokio::time::interval(CERTIFICATE_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some((cert, key)) = certificate.files_changed() else {
            continue;
        };
        match certificate.load(&cert, &key) {
            Ok(loaded) => {
                if let Some(change) = certificate.install(loaded) {
                    tracing::info!("certificate files changed: {change}");
                }
            }
            Err(e) => {
                certificate.mark_seen();
                tracing::error!(
                    "certificate files changed but cannot be used; the certificate in force \
                     stays: {e:#}"
                );
            }
        }
    }
}
