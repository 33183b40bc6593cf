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

use super::ServeArgs;
use super::driver::Shared;
use super::tls::Certificate;

/// What a reload needs: the command line as given (to merge with the
/// config file again), the settings in force, and what it changes.
pub struct Reloader {
    /// The command line's settings, before the config file was merged.
    command_line: ServeArgs,
    /// The settings in force.
    current: ServeArgs,
    shared: Arc<Shared>,
    certificate: Option<Arc<Certificate>>,
    /// The keys of the static users, by their `NAME:PASSWORD` as written:
    /// deriving a key costs far more than a look-up (10,000 users took 2 s
    /// of a core), and most reloads change few users if any.
    keys: HashMap<String, IntegrityKey>,
}

impl Reloader {
    /// `static_users` are the keys derived at start from `current`'s users.
    pub fn new(
        command_line: ServeArgs,
        current: ServeArgs,
        shared: Arc<Shared>,
        certificate: Option<Arc<Certificate>>,
        static_users: &HashMap<String, IntegrityKey>,
    ) -> Self {
        // A name given twice has the last one's key: only names given once
        // are known for sure.
        let mut given: HashMap<&str, usize> = HashMap::new();
        for user in &current.users {
            if let Some((name, _)) = user.split_once(':') {
                *given.entry(name).or_default() += 1;
            }
        }
        let mut keys = HashMap::new();
        for user in &current.users {
            let Some((name, _)) = user.split_once(':') else {
                continue;
            };
            if let (Some(1), Some(key)) = (given.get(name), static_users.get(name)) {
                keys.insert(user.clone(), key.clone());
            }
        }
        Reloader {
            command_line,
            current,
            shared,
            certificate,
            keys,
        }
    }

    /// The static users of `list`, keyed for the realm in force, from the
    /// keys known where their line did not change; and the keys to keep.
    #[allow(clippy::type_complexity)]
    fn static_users(
        &self,
        list: &[String],
    ) -> Result<(HashMap<String, IntegrityKey>, HashMap<String, IntegrityKey>)> {
        let (mut users, mut keys) = (HashMap::new(), HashMap::new());
        for user in list {
            let Some((name, password)) = user.split_once(':') else {
                anyhow::bail!("--user {user}: expected NAME:PASSWORD");
            };
            let key = match self.keys.get(user) {
                Some(key) => key.clone(),
                None => ServerConfig::user_key(self.current.realm(), name, password)
                    .with_context(|| format!("--user {name}"))?,
            };
            users.insert(name.to_owned(), key.clone());
            keys.insert(user.clone(), key);
        }
        Ok((users, keys))
    }

    /// Reloads, and says in one line what changed or why nothing did.
    pub fn reload(&mut self) {
        super::lifecycle::reloading();
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
                    tracing::info!("SIGHUP: reloaded: {changes}");
                } else {
                    tracing::warn!(
                        "SIGHUP: reloaded: {changes}; changed but needs a restart: {}",
                        restart.join(", ")
                    );
                }
                // After the line that says so, which a lower level would
                // hide.
                crate::logging::apply_level(level);
            }
            Err(e) => tracing::error!(
                "SIGHUP: reload refused, the settings in force stay as they were: {e:#}"
            ),
        }
        super::lifecycle::reloaded();
    }

    /// Reads and checks everything, puts all but the log level in force;
    /// returns what changed, what needs a restart, and the level to apply.
    fn try_reload(
        &mut self,
    ) -> Result<(
        Vec<String>,
        Vec<&'static str>,
        crate::logging::PreparedLevel,
    )> {
        let new = self.command_line.clone().resolve()?;
        let mut restart: Vec<&'static str> = fixed_settings(&self.current)
            .into_iter()
            .zip(fixed_settings(&new))
            .filter(|(old, new)| old.1 != new.1)
            .map(|(old, _)| old.0)
            .collect();
        // Users are keyed for the realm in force (a new realm needs a
        // restart, said above).
        let (users, keys) = self.static_users(&new.users)?;
        let certificate = match (&self.certificate, &new.tls_cert, &new.tls_key) {
            (Some(certificate), Some(cert), Some(key)) => Some(certificate.load(cert, key)?),
            (None, cert, key) if (cert, key) != (&self.current.tls_cert, &self.current.tls_key) => {
                restart.push("tls-cert/tls-key (TLS was off at start)");
                None
            }
            _ => None,
        };
        let level = crate::logging::prepare_level(new.log_level.as_deref())?;
        let reloadable = edgeice_server::Reloadable {
            users: Default::default(),
            auth_secrets: new.auth_secrets.clone(),
            allow_peers: new.allow_peers.clone(),
            deny_peers: new.deny_peers.clone(),
            deny_private_peers: new.deny_private_peers,
        };
        // Nothing has changed yet; the user store's read is the last thing
        // that can fail, and is done under the lock that puts users in force.
        let mut changes = self
            .shared
            .reload(self.current.realm(), users, reloadable)?;
        self.keys = keys;
        if let (Some(certificate), Some(loaded)) = (&self.certificate, certificate) {
            changes.extend(certificate.install(loaded));
        }
        changes.extend(level.describe());
        if let (Some(source), Some(_)) = (crate::logging::level_override(), &new.log_level) {
            changes.push(format!(
                "log-level of the config file overridden by {source}"
            ));
        }
        // Kept as read but for what did not take effect, so that it is
        // named again at the next reload.
        let mut current = new;
        current.copy_fixed_from(&self.current);
        self.current = current;
        Ok((changes, restart, level))
    }
}

impl ServeArgs {
    /// Takes back from `running` the settings a reload cannot change.
    fn copy_fixed_from(&mut self, running: &ServeArgs) {
        let keep = running.clone();
        let ServeArgs {
            users,
            auth_secrets,
            allow_peers,
            deny_peers,
            deny_private_peers,
            tls_cert,
            tls_key,
            log_level,
            ..
        } = std::mem::replace(self, keep);
        self.users = users;
        self.auth_secrets = auth_secrets;
        self.allow_peers = allow_peers;
        self.deny_peers = deny_peers;
        self.deny_private_peers = deny_private_peers;
        if running.tls_cert.is_some() {
            self.tls_cert = tls_cert;
            self.tls_key = tls_key;
        }
        self.log_level = log_level;
    }
}

/// The settings a running server cannot change, each by its name and its
/// value written out, to see which a reload would change.
fn fixed_settings(a: &ServeArgs) -> Vec<(&'static str, String)> {
    macro_rules! settings {
        ($($name:literal => $field:ident),* $(,)?) => {
            vec![$(($name, format!("{:?}", a.$field))),*]
        };
    }
    settings!(
        "listen" => listen,
        "no-tcp" => no_tcp,
        "tls-listen" => tls_listen,
        "metrics" => metrics,
        "no-software" => no_software,
        "realm" => realm,
        "users-db" => users_db,
        "alternate-ip" => alternate_ip,
        "relay-ip" => relay_ips,
        "relay-ports" => relay_ports,
        "external-ip" => external_ips,
        "external-ip-stun" => external_ip_stun,
        "private-relay-ok" => private_relay_ok,
        "kernel-fast-path" => kernel_fast_path,
        "challenges-per-ip" => challenges_per_ip,
        "max-bytes-per-second" => max_bytes_per_second,
        "max-allocations" => max_allocations,
        "max-allocations-per-user" => max_allocations_per_user,
        "max-tcp-connections" => max_tcp_connections,
        "max-tcp-connections-per-ip" => max_tcp_connections_per_ip,
        "tcp-idle-timeout" => tcp_idle_timeout,
        "max-permissions-per-allocation" => max_permissions_per_allocation,
        "max-channels-per-allocation" => max_channels_per_allocation,
        "permission-lifetime" => permission_lifetime,
        "max-allocate-lifetime" => max_allocate_lifetime,
    )
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
