//! In-process store: the embedded default for a single instance, needing no other service.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Ephemeral, EphemeralError, WRONG_KIND, ttl_millis};

/// Default for [`MemoryStore::with_capacity_limit`]: enough for a busy single instance, yet a
/// flood of unique keys (one per attacker-chosen username, say) stays at a few hundred MB.
const DEFAULT_CAPACITY_LIMIT: usize = 1_000_000;

/// Fewest writes between two periodic sweeps, so that a small store isn't scanned on every
/// write; a large one waits for as many writes as it has entries, which keeps a sweep's cost
/// at O(1) per write.
const MIN_WRITES_BETWEEN_SWEEPS: usize = 1024;

const FULL: &str = "memory store full";

/// In-process [`Ephemeral`] store.
///
/// Only correct while a single instance serves all requests: each instance would otherwise
/// count, and accept one-time codes, on its own.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
    Set(HashSet<String>),
}

impl Value {
    /// Units a value counts against the capacity limit: a set can grow without new keys, so
    /// its members count too.
    fn cost(&self) -> usize {
        match self {
            Value::Set(members) => 1 + members.len(),
            Value::Bytes(_) | Value::Counter(_) => 1,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Instant,
}

#[derive(Debug)]
struct State {
    map: HashMap<String, Entry>,
    /// Sum of [`Value::cost`] over `map`, compared with `limit`.
    used: usize,
    limit: usize,
    writes_since_sweep: usize,
    /// No entry expires before this (it may be earlier than the true minimum after a
    /// replacement), so a full store knows without scanning whether a sweep could free room.
    earliest_expiry: Option<Instant>,
    /// Logs "full" once per episode instead of once per rejected write during a flood.
    full_reported: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_capacity_limit(DEFAULT_CAPACITY_LIMIT)
    }

    /// `limit` counts keys plus set members. Once reached (and nothing is left to expire),
    /// writes that need room fail with `Unavailable("memory store full")` instead of letting
    /// memory grow without bound; reads and writes to existing keys keep working.
    pub fn with_capacity_limit(limit: usize) -> Self {
        Self {
            state: Mutex::new(State {
                map: HashMap::new(),
                used: 0,
                limit,
                writes_since_sweep: 0,
                earliest_expiry: None,
                full_reported: false,
            }),
        }
    }

    /// A panic elsewhere while holding the lock leaves the map consistent (every mutation is a
    /// single map or counter update), so a poisoned lock is used as is rather than failing
    /// every later request.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn deadline(now: Instant, ttl: Duration) -> Instant {
    let ttl = Duration::from_millis(ttl_millis(ttl));
    // `ttl_millis` caps the TTL so this cannot overflow on any real clock; the fallback only
    // keeps the code panic-free.
    now.checked_add(ttl).unwrap_or(now)
}

fn wrong_kind() -> EphemeralError {
    EphemeralError::Unavailable(WRONG_KIND.to_owned())
}

impl State {
    /// The entry at `key` unless it has expired; an expired one is dropped on the way.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired = self.map.get(key)?.expires_at <= now;
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.used = self.used.saturating_sub(entry.value.cost());
        Some(entry)
    }

    fn insert(&mut self, key: &str, value: Value, expires_at: Instant) {
        self.note_expiry(expires_at);
        self.used += value.cost();
        let entry = Entry { value, expires_at };
        if let Some(old) = self.map.insert(key.to_owned(), entry) {
            self.used = self.used.saturating_sub(old.value.cost());
        }
    }

    fn note_expiry(&mut self, at: Instant) {
        if self.earliest_expiry.is_none_or(|earliest| at < earliest) {
            self.earliest_expiry = Some(at);
        }
    }

    /// Called on every write so that expired keys that are never read again still go away.
    fn note_write(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= MIN_WRITES_BETWEEN_SWEEPS.max(self.map.len()) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.map.retain(|_, entry| entry.expires_at > now);
        self.used = self.map.values().map(|entry| entry.value.cost()).sum();
        self.earliest_expiry = self.map.values().map(|entry| entry.expires_at).min();
        self.writes_since_sweep = 0;
    }

    /// Makes sure `extra` more units fit, sweeping only when something is known to have
    /// expired: a full store under a flood of new keys must not rescan itself on every write.
    fn reserve(&mut self, extra: usize, now: Instant) -> Result<(), EphemeralError> {
        if self.used.saturating_add(extra) <= self.limit {
            return Ok(());
        }
        if self.earliest_expiry.is_some_and(|earliest| earliest <= now) {
            self.sweep(now);
            if self.used.saturating_add(extra) <= self.limit {
                self.full_reported = false;
                return Ok(());
            }
        }
        if !self.full_reported {
            self.full_reported = true;
            tracing::warn!(
                limit = self.limit,
                "ephemeral memory store is full; rejecting new keys until some expire"
            );
        }
        Err(EphemeralError::Unavailable(FULL.to_owned()))
    }

    fn incr(&mut self, key: &str, ttl: Duration, now: Instant) -> Result<i64, EphemeralError> {
        self.note_write(now);
        if let Some(entry) = self.live(key, now) {
            // Bytes holding a decimal number count on from it, as Redis' INCR does.
            let current = match &entry.value {
                Value::Counter(n) => *n,
                Value::Bytes(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| {
                        EphemeralError::Unavailable("value is not an integer".to_owned())
                    })?,
                Value::Set(_) => return Err(wrong_kind()),
            };
            let next = current.checked_add(1).ok_or_else(|| {
                EphemeralError::Unavailable("increment would overflow".to_owned())
            })?;
            entry.value = Value::Counter(next);
            return Ok(next);
        }
        self.reserve(1, now)?;
        self.insert(key, Value::Counter(1), deadline(now, ttl));
        Ok(1)
    }

    fn set_if_absent(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, EphemeralError> {
        self.note_write(now);
        if self.live(key, now).is_some() {
            return Ok(false);
        }
        self.reserve(1, now)?;
        self.insert(key, Value::Bytes(value.to_vec()), deadline(now, ttl));
        Ok(true)
    }

    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Result<(), EphemeralError> {
        self.note_write(now);
        // Dropping the old value first lets a replacement succeed even when the store is full.
        self.remove(key);
        self.reserve(1, now)?;
        self.insert(key, Value::Bytes(value.to_vec()), deadline(now, ttl));
        Ok(())
    }

    fn get(&mut self, key: &str, now: Instant) -> Result<Option<Vec<u8>>, EphemeralError> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::Bytes(bytes)) => Ok(Some(bytes.clone())),
            Some(Value::Counter(n)) => Ok(Some(n.to_string().into_bytes())),
            Some(Value::Set(_)) => Err(wrong_kind()),
        }
    }

    fn take(&mut self, key: &str, now: Instant) -> Result<Option<Vec<u8>>, EphemeralError> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => return Ok(None),
            Some(Value::Set(_)) => return Err(wrong_kind()),
            Some(Value::Bytes(_) | Value::Counter(_)) => {}
        }
        Ok(self.remove(key).and_then(|entry| match entry.value {
            Value::Bytes(bytes) => Some(bytes),
            Value::Counter(n) => Some(n.to_string().into_bytes()),
            Value::Set(_) => None,
        }))
    }

    fn delete(&mut self, key: &str, now: Instant) -> bool {
        self.live(key, now).is_some() && self.remove(key).is_some()
    }

    fn set_add(
        &mut self,
        key: &str,
        member: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), EphemeralError> {
        self.note_write(now);
        let expires_at = deadline(now, ttl);
        let is_new_member = match self.live(key, now).map(|entry| &entry.value) {
            None => {
                self.reserve(2, now)?;
                let members = HashSet::from([member.to_owned()]);
                self.insert(key, Value::Set(members), expires_at);
                return Ok(());
            }
            Some(Value::Set(members)) => !members.contains(member),
            Some(Value::Bytes(_) | Value::Counter(_)) => return Err(wrong_kind()),
        };
        if is_new_member {
            self.reserve(1, now)?;
        }
        self.note_expiry(expires_at);
        if let Some(entry) = self.map.get_mut(key) {
            entry.expires_at = expires_at;
            if let Value::Set(members) = &mut entry.value
                && members.insert(member.to_owned())
            {
                self.used += 1;
            }
        }
        Ok(())
    }

    fn set_remove(&mut self, key: &str, member: &str, now: Instant) -> Result<(), EphemeralError> {
        let (removed, now_empty) = match self.live(key, now).map(|entry| &mut entry.value) {
            None => return Ok(()),
            Some(Value::Set(members)) => (members.remove(member), members.is_empty()),
            Some(Value::Bytes(_) | Value::Counter(_)) => return Err(wrong_kind()),
        };
        if removed {
            self.used = self.used.saturating_sub(1);
        }
        // An empty set is no set at all, as in Redis.
        if now_empty {
            self.remove(key);
        }
        Ok(())
    }

    fn set_members(&mut self, key: &str, now: Instant) -> Result<Vec<String>, EphemeralError> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(Vec::new()),
            Some(Value::Set(members)) => Ok(members.iter().cloned().collect()),
            Some(Value::Bytes(_) | Value::Counter(_)) => Err(wrong_kind()),
        }
    }
}

#[async_trait::async_trait]
impl Ephemeral for MemoryStore {
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, EphemeralError> {
        self.lock().incr(key, ttl, Instant::now())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        self.lock().set_if_absent(key, value, ttl, Instant::now())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        self.lock().set(key, value, ttl, Instant::now())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        self.lock().get(key, Instant::now())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        self.lock().take(key, Instant::now())
    }

    async fn delete(&self, key: &str) -> Result<bool, EphemeralError> {
        Ok(self.lock().delete(key, Instant::now()))
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), EphemeralError> {
        self.lock().set_add(key, member, ttl, Instant::now())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), EphemeralError> {
        self.lock().set_remove(key, member, Instant::now())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, EphemeralError> {
        self.lock().set_members(key, Instant::now())
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(60);
    const SHORT: Duration = Duration::from_millis(30);

    fn map_len(store: &MemoryStore) -> usize {
        store.lock().map.len()
    }

    fn used(store: &MemoryStore) -> usize {
        store.lock().used
    }

    fn is_full(result: Result<impl std::fmt::Debug, EphemeralError>) -> bool {
        matches!(result, Err(EphemeralError::Unavailable(ref msg)) if msg == FULL)
    }

    async fn pause() {
        tokio::time::sleep(SHORT * 2).await;
    }

    #[tokio::test]
    async fn periodic_sweep_drops_expired_keys_nobody_reads() {
        let store = MemoryStore::new();
        for i in 0..500 {
            store.set(&format!("old{i}"), b"x", SHORT).await.unwrap();
        }
        assert_eq!(map_len(&store), 500);
        pause().await;
        // Rewriting one key is enough: the sweep is driven by writes, not by the keys read.
        for _ in 0..MIN_WRITES_BETWEEN_SWEEPS {
            store.set("live", b"y", LONG).await.unwrap();
        }
        assert_eq!(map_len(&store), 1);
        assert_eq!(used(&store), 1);
        assert_eq!(store.get("live").await.unwrap(), Some(b"y".to_vec()));
    }

    #[tokio::test]
    async fn sweep_interval_grows_with_the_store() {
        let store = MemoryStore::new();
        for i in 0..3000 {
            store.set(&format!("k{i}"), b"x", LONG).await.unwrap();
        }
        // 3000 live keys: a sweep is due only after as many writes as there are keys.
        let writes = store.lock().writes_since_sweep;
        assert!(
            writes >= MIN_WRITES_BETWEEN_SWEEPS,
            "swept too often: {writes}"
        );
    }

    #[tokio::test]
    async fn full_store_rejects_new_keys_but_not_existing_ones() {
        let store = MemoryStore::with_capacity_limit(3);
        for key in ["a", "b", "c"] {
            store.set(key, b"1", LONG).await.unwrap();
        }
        assert!(is_full(store.set("d", b"1", LONG).await));
        assert!(is_full(store.set_if_absent("d", b"1", LONG).await));
        assert!(is_full(store.incr("d", LONG).await));
        assert!(is_full(store.set_add("d", "m", LONG).await));
        // Keys already present can still be replaced, counted, read and removed.
        store.set("a", b"2", LONG).await.unwrap();
        assert_eq!(store.incr("b", LONG).await.unwrap(), 2);
        assert_eq!(store.get("a").await.unwrap(), Some(b"2".to_vec()));
        assert!(store.delete("c").await.unwrap());
        store.set("d", b"1", LONG).await.unwrap();
        assert_eq!(map_len(&store), 3);
    }

    #[tokio::test]
    async fn full_store_makes_room_once_keys_expire() {
        let store = MemoryStore::with_capacity_limit(2);
        store.set("a", b"1", SHORT).await.unwrap();
        store.set("b", b"1", LONG).await.unwrap();
        assert!(is_full(store.set("c", b"1", LONG).await));
        pause().await;
        store.set("c", b"1", LONG).await.unwrap();
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.get("c").await.unwrap(), Some(b"1".to_vec()));
        assert!(!store.lock().full_reported);
    }

    #[tokio::test]
    async fn set_members_count_against_the_limit() {
        let store = MemoryStore::with_capacity_limit(4);
        store.set_add("s", "m1", LONG).await.unwrap();
        store.set_add("s", "m2", LONG).await.unwrap();
        store.set_add("s", "m3", LONG).await.unwrap();
        assert_eq!(used(&store), 4);
        assert!(is_full(store.set_add("s", "m4", LONG).await));
        // Re-adding a member needs no room and still refreshes the TTL.
        store.set_add("s", "m1", LONG).await.unwrap();
        store.set_remove("s", "m1").await.unwrap();
        store.set_add("s", "m4", LONG).await.unwrap();
        for member in ["m2", "m3", "m4"] {
            store.set_remove("s", member).await.unwrap();
        }
        assert_eq!(map_len(&store), 0);
        assert_eq!(used(&store), 0);
    }

    #[tokio::test]
    async fn replacing_a_set_with_bytes_frees_its_members() {
        let store = MemoryStore::with_capacity_limit(10);
        for i in 0..5 {
            store.set_add("s", &format!("m{i}"), LONG).await.unwrap();
        }
        assert_eq!(used(&store), 6);
        store.set("s", b"v", LONG).await.unwrap();
        assert_eq!(used(&store), 1);
        assert!(store.take("s").await.unwrap().is_some());
        assert_eq!(used(&store), 0);
    }

    #[tokio::test]
    async fn expired_keys_are_dropped_when_read() {
        let store = MemoryStore::new();
        store.set("a", b"1", SHORT).await.unwrap();
        pause().await;
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(map_len(&store), 0);
    }

    #[tokio::test]
    async fn poisoned_lock_is_recovered() {
        let store = Arc::new(MemoryStore::new());
        store.set("a", b"1", LONG).await.unwrap();
        let poisoner = Arc::clone(&store);
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.state.lock();
            panic!("poison the store's lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(store.state.is_poisoned());
        assert_eq!(store.get("a").await.unwrap(), Some(b"1".to_vec()));
        store.set("b", b"2", LONG).await.unwrap();
        assert_eq!(store.incr("c", LONG).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn counter_overflow_is_an_error() {
        let store = MemoryStore::new();
        store
            .set("n", i64::MAX.to_string().as_bytes(), LONG)
            .await
            .unwrap();
        assert!(store.incr("n", LONG).await.is_err());
    }
}
