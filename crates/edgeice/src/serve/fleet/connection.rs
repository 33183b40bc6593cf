//! Reaching Redis: the client made from `--redis URL` (redis:// or
//! rediss://, AUTH in the URL or `--redis-password-file`), connections
//! with time limits, and the outage bookkeeping (said once when it starts,
//! once when it ends, counted for the metrics).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult};

/// How long connecting, and any one command, may take before Redis counts
/// as unreachable.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// Waits between reconnection attempts: doubling from the first to the
/// last.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Makes connections to the fleet's Redis.
#[derive(Clone)]
pub struct Connector {
    client: Client,
    /// The URL without its password, for messages.
    shown: String,
}

impl Connector {
    /// A connector for `url`; the password of `password_file` (its first
    /// line) replaces the URL's.
    pub fn new(url: &str, password_file: Option<&std::path::Path>) -> Result<Self> {
        let mut info = url
            .into_connection_info()
            .with_context(|| format!("--redis {}: not a redis:// or rediss:// URL", shown(url)))?;
        if let Some(path) = password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--redis-password-file {}", path.display()))?;
            let password = text.lines().next().unwrap_or("").trim_end();
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).with_context(|| format!("--redis {}", shown(url)))?;
        Ok(Connector {
            client,
            shown: shown(url),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection for commands (shared by every task that clones it).
    pub async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(PATIENCE))
            .set_response_timeout(Some(PATIENCE));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// A connection subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> Result<PubSub> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            RedisResult::Ok(pubsub)
        };
        Ok(tokio::time::timeout(PATIENCE, subscribe)
            .await
            .context("no answer")??)
    }

    /// A blocking connection, for the command line.
    pub fn blocking(&self) -> Result<redis::Connection> {
        self.client
            .get_connection_with_timeout(PATIENCE)
            .with_context(|| format!("connecting to Redis at {}", self.shown))
    }
}

/// `url` with any password replaced by `***`.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Whether Redis is reachable, and the outages so far.
#[derive(Debug, Default)]
pub struct Outage {
    up: AtomicBool,
    outages: AtomicU64,
    since: Mutex<Option<Instant>>,
}

impl Outage {
    /// Whether Redis answered last time.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Outages since start (the first connection that fails counts one).
    pub fn count(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Redis failed: the first failure of an outage is logged and counted,
    /// those that follow it are not.
    pub fn failed(&self, shown: &str, error: &anyhow::Error) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_some() {
            tracing::debug!("Redis at {shown} still unreachable: {error:#}");
            return;
        }
        *since = Some(Instant::now());
        self.up.store(false, Ordering::Relaxed);
        self.outages.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "Redis at {shown} unreachable: serving with the users, secrets and nonce key \
             loaded last, quotas per node, until it is back (reconnecting with backoff): \
             {error:#}"
        );
    }

    /// Redis answers again (or for the first time).
    pub fn reached(&self, shown: &str) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        self.up.store(true, Ordering::Relaxed);
        match since.take() {
            Some(start) => tracing::info!(
                "Redis at {shown} reachable again after {:.1} s: state read again in full",
                start.elapsed().as_secs_f64()
            ),
            None => tracing::info!("Redis at {shown} reached: fleet state loaded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            shown("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            shown("rediss://edge:p@ss@host:6380"),
            "rediss://edge:***@host:6380"
        );
        assert_eq!(shown("redis://host:6379"), "redis://host:6379");
    }
}
