//! Short-lived state shared by every request (and, with Redis, by every instance):
//! rate-limit counters, one-time codes, replay caches and session indexes.
//!
//! Everything kept here may be lost at any time without harm beyond a forced re-login or a
//! retried request, which is why a plain in-memory store is an acceptable default for a single
//! instance while several instances need Redis so that they agree.

use std::time::Duration;

pub mod memory;
pub mod redis;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;

#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The backing store could not be reached or answered with an error. The message must never contain a URL password or a stored value.
    #[error("ephemeral store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait Ephemeral: Send + Sync + 'static {
    /// Atomically adds 1 to the counter at `key` and returns the new value. A counter that did not exist is created with value 1 and lives for `ttl`; incrementing an existing counter does NOT extend its TTL (fixed window).
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, EphemeralError>;
    /// Stores `value` only if `key` is absent; true when stored. Atomic across all instances (SET NX PX in Redis).
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError>;
    /// Stores `value` (replacing any) for `ttl`.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// Atomic get-and-delete: of two concurrent takes of one key exactly one gets the value (GETDEL in Redis).
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// True when something was deleted.
    async fn delete(&self, key: &str) -> Result<bool, EphemeralError>;
    /// Adds `member` to the set at `key` and (re)sets the whole set's TTL to `ttl` (used as an index, e.g. a user's session ids).
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), EphemeralError>;
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), EphemeralError>;
    /// Members of the set (empty when absent), in any order.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, EphemeralError>;
    /// Reachability check for /readyz.
    async fn ping(&self) -> Result<(), EphemeralError>;
}

/// Upper bound for any TTL: far beyond any sensible lifetime of ephemeral state, yet small
/// enough that neither `Instant` arithmetic nor Redis' millisecond expiry can overflow.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// TTL in whole milliseconds, the unit Redis works in, so that both implementations expire
/// at the same moment. Zero would make Redis reject the command and the memory store keep a
/// dead entry, so a sub-millisecond TTL becomes 1 ms.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    let capped = ttl.min(MAX_TTL).as_millis();
    u64::try_from(capped).unwrap_or(u64::MAX).max(1)
}

/// Message for a key used with an operation of another kind (a set read as bytes, say), worded
/// alike for both implementations.
pub(crate) const WRONG_KIND: &str = "key holds a value of another kind";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_positive_milliseconds() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), ttl_millis(MAX_TTL));
    }
}
