//! Redis-backed store: needed as soon as more than one instance serves requests, so that
//! counters, one-time codes and session indexes are the same whichever instance is asked.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script};

use super::{Ephemeral, EphemeralError, WRONG_KIND, ttl_millis};

/// Bounds each connection attempt and each reply, so that a Redis that is down or frozen
/// (connections open, nothing answered) turns into a quick error (503, and a failing
/// /readyz) instead of requests that pile up (issue 23 item 3). The `redis_timeout_secs`
/// setting; this is its default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries per reconnection; a request waits for them, so they are few and short. Once they
/// are used up the next request starts a new reconnection, so a Redis that comes back is used
/// again without restarting the process.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// INCR and PEXPIRE in one script so that a counter can never be left without a TTL (which
/// would lock a rate-limited user out for good) and a later increment never extends its window.
const INCR_SCRIPT: &str = r"
local value = redis.call('INCR', KEYS[1])
if value == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
";

/// [`Ephemeral`] store shared by all instances through one Redis.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    key_prefix: String,
    incr_script: Script,
}

impl fmt::Debug for RedisStore {
    // The URL can carry a password, so it is neither kept nor shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects once now, so that a wrong URL or an unreachable Redis stops start-up with a
    /// clear error instead of surfacing on the first login.
    ///
    /// `key_prefix` is put in front of every key, so that several deployments (or tests) can
    /// share one Redis without seeing each other's keys.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, EphemeralError> {
        Self::connect_with_timeout(url, key_prefix, DEFAULT_TIMEOUT).await
    }

    /// Like `connect`, with `timeout` on each connection attempt and each reply.
    pub async fn connect_with_timeout(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, EphemeralError> {
        let client = redis::Client::open(url).map_err(|err| unavailable("connect", &err))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|err| unavailable("connect", &err))?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
            incr_script: Script::new(INCR_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// The manager is a cheap handle around one multiplexed connection; each call takes its
    /// own so that concurrent requests are pipelined rather than serialised behind a lock.
    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// Builds the message from the server's own error text, the socket error, or else only the
/// kind of failure: the library's text for a parse or type error may quote a reply (a stored
/// value) and for a configuration error the URL (which may hold a password).
fn describe(err: &RedisError) -> String {
    // A failing command inside MULTI arrives as a pipeline error; its first server error is
    // the one worth reporting.
    if let Some(errors) = err.clone().into_server_errors()
        && let Some((_, first)) = errors.first()
    {
        let code = first.code();
        if code == "WRONGTYPE" {
            return WRONG_KIND.to_owned();
        }
        return match first.details() {
            // Redis quotes a rejected command's arguments after this marker; they may be values.
            Some(detail) => {
                let detail = detail
                    .split_once(", with args beginning with")
                    .map_or(detail, |(before, _)| before);
                format!("{code} {detail}")
            }
            None => code.to_owned(),
        };
    }
    match err.kind() {
        ErrorKind::Io => format!("{}: {err}", err.category()),
        ErrorKind::InvalidClientConfig => "invalid client config (check the Redis URL)".to_owned(),
        _ => err.category().to_owned(),
    }
}

fn unavailable(operation: &'static str, err: &RedisError) -> EphemeralError {
    let message = describe(err);
    tracing::warn!(operation, error = %message, "redis ephemeral store failed");
    EphemeralError::Unavailable(message)
}

#[async_trait::async_trait]
impl Ephemeral for RedisStore {
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, EphemeralError> {
        self.incr_script
            .key(self.key(key))
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("incr", &err))
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let reply: redis::Value = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("set_if_absent", &err))?;
        // NX answers nil when the key already exists and OK when it stored the value.
        Ok(!matches!(reply, redis::Value::Nil))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .exec_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("set", &err))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("get", &err))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("take", &err))
    }

    async fn delete(&self, key: &str) -> Result<bool, EphemeralError> {
        let deleted: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("delete", &err))?;
        Ok(deleted > 0)
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let key = self.key(key);
        // One transaction, so that a set never exists without a TTL.
        redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(&key)
            .arg(member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_millis(ttl))
            .ignore()
            .exec_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("set_add", &err))
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), EphemeralError> {
        redis::cmd("SREM")
            .arg(self.key(key))
            .arg(member)
            .exec_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("set_remove", &err))
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, EphemeralError> {
        redis::cmd("SMEMBERS")
            .arg(self.key(key))
            .query_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("set_members", &err))
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        redis::cmd("PING")
            .exec_async(&mut self.connection())
            .await
            .map_err(|err| unavailable("ping", &err))
    }
}
