//! A short-lived copy of the client rows the token, revocation and introspection
//! endpoints authenticate against, so a busy client does not cost a database query per
//! request.
//!
//! Staleness is bounded: an entry is used for at most [`CLIENT_CACHE_TTL`] after it was
//! read. Changes made through this instance's admin API drop the entry at once; changes
//! made on another instance or with the CLI reach this one within the TTL. Only clients
//! that exist are kept, so unknown ids sent by a stranger cannot fill it.
//!
//! It also keeps the set of web origins any client allows (CORS preflight, which names
//! no client), under the same TTL.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use crate::store::clients::ClientRow;

/// How long a client row read from the database is trusted.
pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);
/// Most clients kept; a deployment with more simply reads the rest from the database.
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (Instant, ClientRow)>>,
    origins: RwLock<Option<(Instant, Arc<HashSet<String>>)>>,
}

impl ClientCache {
    /// The cached row of `client_id`, if it was read less than the TTL ago.
    pub fn get(&self, client_id: &str) -> Option<ClientRow> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(client_id)
            .filter(|(read_at, _)| read_at.elapsed() < CLIENT_CACHE_TTL)
            .map(|(_, row)| row.clone())
    }

    /// Remembers `row`, read from the database at `read_at` (taken before the query, so
    /// the entry never outlives the TTL counted from what the database said).
    pub fn put(&self, row: ClientRow, read_at: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&row.client_id) {
            entries.retain(|_, (at, _)| at.elapsed() < CLIENT_CACHE_TTL);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(row.client_id.clone(), (read_at, row));
    }

    /// Drops `client_id` (and the origin set, which it may have changed) after this
    /// instance changed or deleted it.
    pub fn forget(&self, client_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(client_id);
        *self.origins.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Every origin some client allows, if read less than the TTL ago.
    pub fn known_origins(&self) -> Option<Arc<HashSet<String>>> {
        let origins = self.origins.read().unwrap_or_else(|p| p.into_inner());
        origins
            .as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < CLIENT_CACHE_TTL)
            .map(|(_, set)| set.clone())
    }

    /// Remembers the origin set, read from the database at `read_at`.
    pub fn put_known_origins(&self, set: Arc<HashSet<String>>, read_at: Instant) {
        *self.origins.write().unwrap_or_else(|p| p.into_inner()) = Some((read_at, set));
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::store::testing::client as row;

    #[test]
    fn an_entry_lives_for_the_ttl_and_no_longer() {
        let cache = ClientCache::default();
        cache.put(row("fresh"), Instant::now());
        let old = Instant::now()
            .checked_sub(CLIENT_CACHE_TTL + Duration::from_millis(1))
            .unwrap();
        cache.put(row("stale"), old);
        assert_eq!(cache.get("fresh").unwrap().client_id, "fresh");
        assert!(cache.get("stale").is_none());
        assert!(cache.get("unknown").is_none());
    }

    #[test]
    fn forgetting_drops_the_entry_and_the_origin_set_at_once() {
        let cache = ClientCache::default();
        cache.put(row("c"), Instant::now());
        cache.put_known_origins(
            Arc::new(HashSet::from(["https://a.example".into()])),
            Instant::now(),
        );
        assert!(cache.known_origins().is_some());
        cache.forget("c");
        assert!(cache.get("c").is_none());
        assert!(cache.known_origins().is_none());
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_entries_only() {
        let cache = ClientCache::default();
        let old = Instant::now()
            .checked_sub(CLIENT_CACHE_TTL + Duration::from_millis(1))
            .unwrap();
        for i in 0..MAX_ENTRIES {
            cache.put(
                row(&format!("c{i}")),
                if i == 0 { old } else { Instant::now() },
            );
        }
        cache.put(row("new"), Instant::now());
        assert!(cache.get("new").is_some(), "the expired entry made room");
        cache.put(row("newer"), Instant::now());
        assert!(cache.get("newer").is_none(), "nothing expired: not kept");
        assert!(
            cache.get("c1").is_some(),
            "live entries are never evicted early"
        );
    }
}
