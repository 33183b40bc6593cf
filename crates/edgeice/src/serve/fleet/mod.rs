//! `--redis URL`: the state a fleet of edges shares through Redis — users
//! (their keys), REST API secrets, the nonce key, per-user quotas and the
//! node registry. One task keeps it: it reads everything when it
//! (re)connects, follows changes announced on a pub/sub channel, and
//! renews this node's record every heartbeat. What it loads goes into the
//! cores through the same path as a reload; nothing on the relay path
//! waits for Redis, and no shard lock is held across an await. When Redis
//! is unreachable the node serves with what it loaded last, quotas count
//! per node only, and the task reconnects with backoff and reads
//! everything again.

pub mod admin;
pub mod connection;
pub mod keys;
pub mod quota;
pub mod registry;
pub mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use edgeice_server::SharedState;
use edgeice_stun::IntegrityKey;
use futures_util::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;

use super::driver::Shared;
pub use connection::Connector;

/// What this node is and does in the fleet.
pub struct FleetOptions {
    pub connector: Connector,
    /// `--node-id`.
    pub node_id: String,
    /// `--fleet-heartbeat`: how often the record is renewed (it lapses
    /// after three missed beats).
    pub heartbeat: Duration,
    pub realm: String,
    /// Advertised addresses (UDP/TCP, TLS).
    pub addresses: Vec<SocketAddr>,
    pub tls_addresses: Vec<SocketAddr>,
    /// `--max-allocations`.
    pub capacity: usize,
    /// `--max-allocations-per-user`, held fleet-wide.
    pub per_user_limit: usize,
    /// The cores' shared state: its allocations and drain flag are
    /// published, the registry's alternates go into it.
    pub core: Arc<SharedState>,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    /// Allocations let through without the fleet quota (Redis unreachable).
    pub quota_unchecked: AtomicU64,
    /// Allocations refused by the fleet quota.
    pub quota_refused: AtomicU64,
    /// Values in Redis skipped as unreadable (users, records, keys).
    pub skipped: AtomicU64,
    /// Full readings of the state (at each connection).
    pub resyncs: AtomicU64,
}

/// The fleet figures the metrics endpoint shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct FleetSnapshot {
    pub up: bool,
    pub outages: u64,
    pub quota_unchecked: u64,
    pub quota_refused: u64,
    pub skipped: u64,
    pub resyncs: u64,
    pub live_nodes: u64,
}

/// The fleet's state as this node keeps it.
pub struct Fleet {
    options: FleetOptions,
    /// The connection for commands, while Redis is reachable: cloned out
    /// (never held locked across an await).
    connection: Mutex<Option<MultiplexedConnection>>,
    outage: connection::Outage,
    pub counters: Counters,
    held: quota::Held,
    /// The nonce key put in force last.
    nonce_key: Mutex<Option<[u8; 32]>>,
    /// Live nodes at the last heartbeat.
    live_nodes: AtomicU64,
}

/// How often this node writes its quota counts again in full.
const QUOTA_RESYNC: Duration = Duration::from_secs(60);

/// Most announced changes read before the cores get them.
const MOST_CHANGES_AT_ONCE: usize = 1000;

/// How long an allocation waits for its fleet-quota reservation before
/// it is let through on the node's quota alone.
const RESERVATION_PATIENCE: Duration = Duration::from_millis(500);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The users and secrets read from Redis.
#[derive(Clone, Default)]
pub struct Loaded {
    pub users: HashMap<String, IntegrityKey>,
    pub secrets: Vec<String>,
    pub nonce_key: Option<[u8; 32]>,
}

impl Fleet {
    pub fn new(options: FleetOptions) -> Arc<Self> {
        Arc::new(Fleet {
            options,
            connection: Mutex::new(None),
            outage: connection::Outage::default(),
            counters: Counters::default(),
            held: quota::Held::default(),
            nonce_key: Mutex::new(None),
            live_nodes: AtomicU64::new(0),
        })
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        lock(&self.connection).clone()
    }

    /// The figures for the metrics endpoint.
    pub fn snapshot(&self) -> FleetSnapshot {
        let c = &self.counters;
        FleetSnapshot {
            up: self.outage.up(),
            outages: self.outage.count(),
            quota_unchecked: c.quota_unchecked.load(Ordering::Relaxed),
            quota_refused: c.quota_refused.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            live_nodes: self.live_nodes.load(Ordering::Relaxed),
        }
    }

    /// Reads the users, secrets and nonce key (at start-up, before
    /// serving, and at every reconnection).
    async fn load(&self, conn: &mut MultiplexedConnection) -> Result<Loaded> {
        let (users, skipped) = users::load(conn, &self.options.realm).await?;
        self.counters
            .skipped
            .fetch_add(skipped as u64, Ordering::Relaxed);
        let secrets = users::load_secrets(conn).await?;
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        let nonce_key = users::nonce_key(conn, &fresh).await?;
        Ok(Loaded {
            users,
            secrets,
            nonce_key,
        })
    }

    /// The state as Redis has it now, for the start-up: `None` (said
    /// once, counted as an outage) when it cannot be reached in time; the
    /// node then starts with its other credentials and catches up later.
    pub async fn first_load(&self) -> Option<Loaded> {
        let attempt = async {
            let mut conn = self.options.connector.connect().await?;
            self.load(&mut conn).await
        };
        match tokio::time::timeout(connection::PATIENCE * 2, attempt)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer")))
        {
            Ok(loaded) => Some(loaded),
            Err(e) => {
                self.outage.failed(self.options.connector.shown(), &e);
                None
            }
        }
    }

    /// Takes one allocation of `user` in the fleet-wide quota: false when
    /// the live nodes' allocations of `user` reach the limit. Without an
    /// answer from Redis in time it is let through (the node's own quota
    /// still holds), and counted.
    pub async fn reserve(&self, user: &str) -> bool {
        let (node, limit) = (&self.options.node_id, self.options.per_user_limit);
        let answer = match self.connection() {
            Some(mut conn) => tokio::time::timeout(
                RESERVATION_PATIENCE,
                quota::reserve(&mut conn, node, user, limit),
            )
            .await
            .ok()
            .and_then(Result::ok),
            None => None,
        };
        match answer {
            Some(false) => {
                self.counters.quota_refused.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(true) => {
                self.held.add(user);
                true
            }
            None => {
                self.counters
                    .quota_unchecked
                    .fetch_add(1, Ordering::Relaxed);
                self.held.add(user);
                true
            }
        }
    }

    /// Gives back an allocation of `user` (it ended, or was never made).
    /// Returns at once; Redis is told in the background, and a count it
    /// misses is set right at the next reconnection.
    pub fn release(self: &Arc<Self>, user: &str) {
        if !self.held.remove(user) {
            return;
        }
        let (Some(mut conn), Ok(runtime)) =
            (self.connection(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (fleet, user) = (self.clone(), user.to_owned());
        runtime.spawn(async move {
            let release = quota::release(&mut conn, &fleet.options.node_id, &user);
            let _ = tokio::time::timeout(connection::PATIENCE, release).await;
        });
    }

    /// Keeps the fleet state: connects, reads everything, follows changes
    /// and beats; when Redis fails, waits and starts again. Never returns
    /// (but for a stop).
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, mut loaded: Loaded) -> Result<()> {
        let mut backoff = connection::BACKOFF.0;
        loop {
            match self.session(&shared, &mut loaded).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *lock(&self.connection) = None;
                    if e.is::<Connected>() {
                        backoff = connection::BACKOFF.0;
                    } else {
                        self.outage.failed(self.options.connector.shown(), &e);
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(connection::BACKOFF.1);
        }
    }

    /// One connection's life: subscribe, then read everything (so that no
    /// change falls between), resync the quota counts, then follow.
    async fn session(&self, shared: &Arc<Shared>, loaded: &mut Loaded) -> Result<()> {
        let connector = &self.options.connector;
        let mut pubsub = connector
            .subscribe(keys::CHANGES)
            .await
            .context("subscribing to changes")?;
        let mut conn = connector.connect().await.context("connecting")?;
        *loaded = self.load(&mut conn).await?;
        quota::resync(&mut conn, &self.options.node_id, &self.held.snapshot()).await?;
        self.beat(&mut conn).await?;
        *lock(&self.connection) = Some(conn.clone());
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        self.apply(shared, loaded).await;
        self.outage.reached(connector.shown());
        let result = self.follow(shared, &mut conn, &mut pubsub, loaded).await;
        // It was up: the next attempt starts from the shortest wait.
        self.outage.failed(connector.shown(), &result.unwrap_err());
        Err(Connected.into())
    }

    /// Follows announced changes and beats, until Redis fails.
    async fn follow(
        &self,
        shared: &Arc<Shared>,
        conn: &mut MultiplexedConnection,
        pubsub: &mut redis::aio::PubSub,
        loaded: &mut Loaded,
    ) -> Result<std::convert::Infallible> {
        let mut heartbeat = tokio::time::interval(self.options.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval(QUOTA_RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let message = message.context("the subscription ended")?;
                    // Those already waiting are taken together and put in
                    // force once: a burst of changes costs one copy.
                    let mut payloads = vec![message.get_payload::<Vec<u8>>().unwrap_or_default()];
                    while payloads.len() < MOST_CHANGES_AT_ONCE
                        && let Some(Some(more)) = messages.next().now_or_never()
                    {
                        payloads.push(more.get_payload().unwrap_or_default());
                    }
                    let mut changed = false;
                    if payloads.iter().any(|p| keys::Change::parse(p) == keys::Change::Everything) {
                        changed = self.change(conn, loaded, keys::Change::Everything).await?;
                    } else {
                        for payload in &payloads {
                            changed |= self.change(conn, loaded, keys::Change::parse(payload)).await?;
                        }
                    }
                    if changed {
                        self.apply(shared, loaded).await;
                    }
                }
                _ = heartbeat.tick() => self.beat(conn).await?,
                _ = resync.tick() => {
                    let held = self.held.snapshot();
                    quota::resync(conn, &self.options.node_id, &held).await?;
                }
            }
        }
    }

    /// Reads what a change announced; whether anything changed.
    async fn change(
        &self,
        conn: &mut MultiplexedConnection,
        loaded: &mut Loaded,
        change: keys::Change<'_>,
    ) -> Result<bool> {
        match change {
            keys::Change::User { realm, name } if realm == self.options.realm => {
                let key = users::load_one(conn, realm, name).await?;
                Ok(match key {
                    // A key cannot be compared: a new one counts as a change.
                    Some(key) => {
                        loaded.users.insert(name.to_owned(), key);
                        true
                    }
                    None => loaded.users.remove(name).is_some(),
                })
            }
            keys::Change::User { .. } => Ok(false),
            keys::Change::Secrets => {
                let secrets = users::load_secrets(conn).await?;
                Ok(std::mem::replace(&mut loaded.secrets, secrets) != loaded.secrets)
            }
            keys::Change::Everything => {
                *loaded = self.load(conn).await?;
                Ok(true)
            }
        }
    }

    /// Puts what was loaded in force in every core, on a blocking thread:
    /// a large user list is copied for each shard, which must not hold up
    /// a runtime thread that relays. `loaded` goes there and comes back.
    async fn apply(&self, shared: &Arc<Shared>, loaded: &mut Loaded) {
        let shared = shared.clone();
        let nonce = loaded
            .nonce_key
            .filter(|key| *lock(&self.nonce_key) != Some(*key));
        let taken = std::mem::take(loaded);
        let applied = tokio::task::spawn_blocking(move || {
            shared.set_fleet_credentials(taken.users.clone(), taken.secrets.clone());
            if let Some(key) = nonce {
                shared.share_nonces(&key);
            }
            taken
        })
        .await;
        match applied {
            Ok(taken) => {
                *loaded = taken;
                if let Some(key) = nonce {
                    *lock(&self.nonce_key) = Some(key);
                }
                tracing::debug!(
                    users = loaded.users.len(),
                    "fleet users and secrets in force"
                );
            }
            Err(e) => tracing::error!("fleet users and secrets not put in force: {e}"),
        }
    }

    /// Renews this node's record and reads the others', steering new
    /// allocations to the live ones with room.
    async fn beat(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        let core = &self.options.core;
        let record = registry::NodeRecord {
            id: self.options.node_id.clone(),
            addresses: self.options.addresses.clone(),
            tls_addresses: self.options.tls_addresses.clone(),
            allocations: core.allocations(),
            capacity: self.options.capacity,
            draining: core.draining(),
            updated_unix_ms: unix_ms(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        registry::announce(conn, &record, self.options.heartbeat * 3).await?;
        let (nodes, garbage) = registry::live_nodes(conn).await?;
        self.counters
            .skipped
            .fetch_add(garbage as u64, Ordering::Relaxed);
        self.live_nodes.store(nodes.len() as u64, Ordering::Relaxed);
        let (plain, tls) = registry::alternates(&nodes, &self.options.node_id);
        let alternate = |address| edgeice_server::Alternate {
            address,
            domain: None,
        };
        // Beside the static --alternate-server lists, which stay the
        // fallback when no other live node has room.
        core.set_fleet_alternates(
            plain.into_iter().map(alternate).collect(),
            tls.into_iter().map(alternate).collect(),
        );
        Ok(())
    }

    /// Takes this node's record out at a clean stop.
    pub async fn withdraw(&self) {
        if let Some(mut conn) = self.connection() {
            let withdraw = registry::withdraw(&mut conn, &self.options.node_id);
            let _ = tokio::time::timeout(connection::PATIENCE, withdraw).await;
        }
    }
}

/// A connection that had been up ended (its failure is already said).
#[derive(Debug, thiserror::Error)]
#[error("the connection to Redis ended")]
struct Connected;

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The default `--node-id`: the host name.
pub fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "edgeice".to_owned())
}
