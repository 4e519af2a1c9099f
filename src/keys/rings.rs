//! Token signing keys as they are kept and rotated (DESIGN §9, §12).
//!
//! Keys live in the database with their private half sealed under the master key. A key
//! moves `next` → `active` → `retired`: it is published in the JWKS from the moment it is
//! created, so relying parties have it cached before it signs anything, and it stays
//! published after retirement until every token it signed has expired. Each instance
//! keeps the published set in memory (`crypto::signing::KeyRing`) and reloads it
//! periodically, so a `gatehouse keys rotate` run against the shared database reaches
//! every instance.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    crypto::{
        MasterKey,
        signing::{self, ALGORITHMS, KeyError, KeyRing, SealedKey, SigningAlg},
    },
    store::{
        DbConnection, Store, StoreError,
        signing_keys::{self, ACTIVE, NEXT, NewKey, SigningKeyRow},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn insert_new(
    conn: &mut DbConnection,
    master_key: &MasterKey,
    alg: SigningAlg,
    state: &str,
    now: DateTime<Utc>,
) -> Result<String, RingError> {
    let kid = signing::new_kid();
    let (sealed, jwk) = signing::generate(master_key, alg, &kid)?;
    signing_keys::insert(
        conn,
        NewKey {
            kid: &kid,
            alg: alg.name(),
            state,
            private_sealed: &sealed,
            public_jwk: &jwk,
        },
        now.naive_utc(),
    )?;
    Ok(kid)
}

/// A key made ahead of its insertion: algorithm, state, kid, sealed private half, JWK.
type Made = (SigningAlg, &'static str, String, String, String);

/// First start (and any start that finds a gap): an active key and a next key exist.
pub async fn ensure(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<(), RingError> {
    ensure_slots(store, master_key, now, &[ACTIVE, NEXT]).await
}

/// Only the active key of each algorithm: what a start needs before it serves. The
/// next keys follow ([`ensure`]) once it serves; they sign nothing until a rotation.
pub async fn ensure_active(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<(), RingError> {
    ensure_slots(store, master_key, now, &[ACTIVE]).await
}

/// The missing keys of `states` are made first, all at once on threads of their own (an
/// RSA key is a prime search of 50 to 500 ms, the most of a first start), then inserted
/// in one transaction that looks again: a slot another instance filled meanwhile keeps
/// its key, and the one made here is dropped.
async fn ensure_slots(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
    states: &'static [&'static str],
) -> Result<(), RingError> {
    let missing = store
        .run(move |c| {
            let mut missing = Vec::new();
            for &alg in ALGORITHMS {
                for &state in states {
                    if signing_keys::in_state(c, alg.name(), state)?.is_empty() {
                        missing.push((alg, state));
                    }
                }
            }
            Ok(missing)
        })
        .await?;
    if missing.is_empty() {
        return Ok(());
    }
    let made = tokio::task::spawn_blocking(move || make_all(&master_key, missing))
        .await
        .map_err(|e| {
            RingError::Store(StoreError::Query(format!("key generation failed: {e}")))
        })??;
    store
        .transaction(move |c| {
            for (alg, state, kid, sealed, jwk) in &made {
                if signing_keys::in_state(c, alg.name(), state)?.is_empty() {
                    let key = NewKey {
                        kid,
                        alg: alg.name(),
                        state,
                        private_sealed: sealed,
                        public_jwk: jwk,
                    };
                    signing_keys::insert(c, key, now.naive_utc())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(RingError::Store)
}

/// Makes a key for each `(alg, state)`, each on a thread of its own.
fn make_all(
    master_key: &MasterKey,
    wanted: Vec<(SigningAlg, &'static str)>,
) -> Result<Vec<Made>, RingError> {
    std::thread::scope(|scope| {
        let making: Vec<_> = wanted
            .into_iter()
            .map(|(alg, state)| {
                scope.spawn(move || {
                    let kid = signing::new_kid();
                    let (sealed, jwk) = signing::generate(master_key, alg, &kid)?;
                    Ok((alg, state, kid, sealed, jwk))
                })
            })
            .collect();
        making
            .into_iter()
            .map(|m| m.join().expect("key generation does not panic"))
            .collect()
    })
}

/// One algorithm's rotation: the key that now signs and the newly published next key.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub alg: &'static str,
    pub active_kid: String,
    pub next_kid: String,
}

/// `gatehouse keys rotate`: for every algorithm, the waiting `next` key starts signing,
/// the active one retires (still published), and a new `next` is published.
pub async fn rotate(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<Vec<Rotated>, RingError> {
    store
        .transaction(move |c| {
            let mut run = || -> Result<Vec<Rotated>, RingError> {
                let mut out = Vec::new();
                for alg in ALGORITHMS.iter().copied() {
                    let next = match signing_keys::in_state(c, alg.name(), NEXT)?
                        .into_iter()
                        .next()
                    {
                        Some(k) => k.kid,
                        // Never published: create it now; it is as good as the operator can get.
                        None => insert_new(c, &master_key, alg, NEXT, now)?,
                    };
                    signing_keys::promote(c, alg.name(), &next, now.naive_utc())?;
                    let next_kid = insert_new(c, &master_key, alg, NEXT, now)?;
                    out.push(Rotated {
                        alg: alg.name(),
                        active_kid: next,
                        next_kid,
                    });
                }
                Ok(out)
            };
            run().map_err(to_store)
        })
        .await
        .map_err(RingError::Store)
}

fn to_store(e: RingError) -> StoreError {
    match e {
        RingError::Store(s) => s,
        other => StoreError::Query(other.to_string()),
    }
}

/// Loads the published keys. Retired keys are kept while `retired_at > now - keep_retired`.
pub async fn load(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
    keep_retired: chrono::Duration,
) -> Result<KeyRing, RingError> {
    reload(store, master_key, now, keep_retired, None).await
}

/// Like [`load`], reusing the keys `current` already holds (checking a key is costly).
pub async fn reload(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
    keep_retired: chrono::Duration,
    current: Option<Arc<KeyRing>>,
) -> Result<KeyRing, RingError> {
    let since = (now - keep_retired).naive_utc();
    let rows = store
        .run(move |c| signing_keys::published(c, since))
        .await?;
    let sealed = rows.into_iter().map(sealed_key).collect();
    // Opening and checking new keys is CPU work: off the request threads.
    let ring = tokio::task::spawn_blocking(move || {
        signing::ring_from_sealed(&master_key, sealed, current.as_deref())
    })
    .await
    .map_err(|e| RingError::Store(StoreError::Query(format!("key loading failed: {e}"))))?;
    Ok(ring?)
}

fn sealed_key(row: SigningKeyRow) -> SealedKey {
    let active_since = (row.state == ACTIVE).then(|| row.activated_at.unwrap_or(row.created_at));
    SealedKey {
        kid: row.kid,
        alg: row.alg,
        private_sealed: row.private_sealed,
        active_since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reload_reuses_the_keys_it_has_and_adds_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite(&dir, 2).await;
        let master_key = Arc::new(MasterKey::generate());
        let now = Utc::now();
        let keep = chrono::Duration::hours(1);
        ensure(&store, master_key.clone(), now).await.unwrap();
        let first = Arc::new(load(&store, master_key.clone(), now, keep).await.unwrap());
        let again = reload(&store, master_key.clone(), now, keep, Some(first.clone()))
            .await
            .unwrap();
        assert_eq!(
            again.len(),
            2 * ALGORITHMS.len(),
            "active and next, for each of RS256, ES256 and EdDSA"
        );
        for kid in again.kids() {
            assert!(again.shares_key(&first, kid), "{kid} was checked again");
        }
        rotate(&store, master_key.clone(), now).await.unwrap();
        let rotated = reload(&store, master_key, now, keep, Some(first.clone()))
            .await
            .unwrap();
        assert_eq!(
            rotated.len(),
            3 * ALGORITHMS.len(),
            "the retired keys stay published"
        );
        for alg in ALGORITHMS.iter().copied() {
            assert_ne!(rotated.active_kid(alg), first.active_kid(alg));
            assert!(
                first.kids().any(|kid| kid == rotated.active_kid(alg)),
                "the next {alg} key took over"
            );
            let token = rotated.sign_jwt_with(alg, "at+jwt", &serde_json::json!({ "sub": "u1" }));
            assert!(rotated.verify_jwt(&token).is_some());
        }
    }

    /// A database from before EdDSA keys were kept: the start's `ensure` adds them, and
    /// the keys it had stay, signing as before.
    #[tokio::test]
    async fn a_database_without_keys_of_a_newer_algorithm_gets_them_at_start() {
        use diesel::prelude::*;

        use crate::store::schema::signing_keys as table;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite(&dir, 2).await;
        let master_key = Arc::new(MasterKey::generate());
        let now = Utc::now();
        let keep = chrono::Duration::hours(1);
        ensure(&store, master_key.clone(), now).await.unwrap();
        store
            .run(|c| {
                diesel::delete(table::table.filter(table::alg.eq("EdDSA"))).execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        let err = load(&store, master_key.clone(), now, keep)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                RingError::Key(KeyError::NoActiveKey(SigningAlg::EdDsa))
            ),
            "{err}"
        );
        let before: Vec<String> = store
            .run(|c| Ok(table::table.select(table::kid).load::<String>(c)?))
            .await
            .unwrap();
        assert_eq!(before.len(), 4);

        ensure(&store, master_key.clone(), now).await.unwrap();
        let ring = load(&store, master_key, now, keep).await.unwrap();
        assert_eq!(ring.len(), 6);
        assert!(before.iter().all(|kid| ring.kids().any(|k| k == kid)));
        let token = ring.sign_jwt_with(SigningAlg::EdDsa, "at+jwt", &serde_json::json!({}));
        assert!(ring.verify_jwt(&token).is_some());
    }
}
