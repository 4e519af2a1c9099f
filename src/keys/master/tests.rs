use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use secrecy::ExposeSecret as _;

use super::*;
use crate::{
    audit::Audit,
    clock::{SharedClock, SystemClock},
    keys::rings,
    store::master_rotation::{NewRotation, RESEALING},
    store::testing::{sqlite, t0, with_user_sealed_by},
};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    audit: Audit,
    clock: SharedClock,
    key: Arc<MasterKey>,
    user: String,
}

/// A SQLite store with a user holding a TOTP secret, token signing keys and the audit
/// chain key, all sealed under one master key.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir, 2).await;
    let clock: SharedClock = Arc::new(SystemClock);
    let key = Arc::new(MasterKey::generate());
    let audit = Audit::open(store.clone(), &key, clock.clone())
        .await
        .unwrap();
    rings::ensure(&store, key.clone(), Utc::now())
        .await
        .unwrap();
    let pii = crate::keys::pii::load(&store, key.clone(), t0())
        .await
        .unwrap();
    let user = with_user_sealed_by(&store, pii, None).await;
    let sealed = key.seal(&totp::seal_context(&user), b"JBSWY3DPEHPK3PXP");
    let id = user.clone();
    store
        .run(move |c| totp::activate(c, &id, &sealed, 1, t0()))
        .await
        .unwrap();
    World {
        _dir: dir,
        store,
        audit,
        clock,
        key,
        user,
    }
}

impl World {
    fn rotation(&self, lease: Duration) -> Rotation<'_> {
        Rotation {
            store: &self.store,
            audit: &self.audit,
            clock: &self.clock,
            loaded: &self.key,
            actor: "cli:ops-alice@test",
            holder: format!("test {}", crate::store::new_id()),
            batch_size: 1,
            grace: Duration::ZERO,
            lease,
        }
    }

    async fn totp_sealed(&self) -> String {
        let id = self.user.clone();
        self.store
            .run(move |c| totp::find(c, &id))
            .await
            .unwrap()
            .unwrap()
            .secret_sealed
    }

    async fn row(&self) -> Option<RotationRow> {
        self.store.run(rows::find).await.unwrap()
    }
}

/// Persists by remembering the key's base64, as a key file would hold it.
fn keep_in(slot: &Mutex<Option<String>>) -> impl Fn(&MasterKey) -> Result<(), String> + '_ {
    move |key| {
        *slot.lock().unwrap() = Some(key.to_base64().expose_secret().to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn a_rotation_reseals_every_value_and_keeps_the_derived_keys() {
    let w = world().await;
    let codes_before = w.key.derive("recovery-codes");
    let slot = Mutex::new(None);
    let mut steps = Vec::new();
    let done = rotate(
        &w.rotation(Duration::from_secs(30)),
        &keep_in(&slot),
        &mut |s| {
            steps.push(format!("{s:?}"));
        },
    )
    .await
    .unwrap();
    assert_eq!(done.old_kid, w.key.kid());
    assert!(
        done.resealed >= 6,
        "TOTP, 4 signing keys, audit key: {done:?}"
    );
    assert!(steps.iter().any(|s| s.starts_with("Batch")), "{steps:?}");
    assert!(w.row().await.is_none(), "the row is gone");

    // Only the new key is needed from now on: a fresh handle, as a restart has it.
    let stored = slot
        .lock()
        .unwrap()
        .clone()
        .expect("the new key was persisted");
    let new = MasterKey::from_base64(&stored).unwrap();
    assert_eq!(new.kid(), done.new_kid);
    for column in SEALED_COLUMNS {
        let (old_kid, c) = (done.old_kid.clone(), column);
        let left = w
            .store
            .run(move |conn| rows::count_under(conn, c, &old_kid))
            .await
            .unwrap();
        assert_eq!(left, 0, "{}.{}", column.table, column.column);
    }
    let sealed = w.totp_sealed().await;
    assert!(sealed.starts_with(&format!("v1.{}.", new.kid())));
    let secret = new.open(&totp::seal_context(&w.user), &sealed).unwrap();
    assert_eq!(secret.expose_secret(), b"JBSWY3DPEHPK3PXP");
    Follower::default().sync(&w.store, &new).await.unwrap();
    assert_eq!(*new.derive("recovery-codes"), *codes_before);
    for purpose in DERIVE_PURPOSES {
        assert!(new.is_pinned(purpose), "{purpose}");
    }
    Audit::open(w.store.clone(), &new, w.clock.clone())
        .await
        .expect("the audit key opens under the new key");
}

#[tokio::test]
async fn a_running_instance_follows_each_step_of_the_rotation() {
    let w = world().await;
    let instance = MasterKey::from_base64(w.key.to_base64().expose_secret()).unwrap();
    let mut follower = Follower::default();
    follower.sync(&w.store, &instance).await.unwrap();
    assert_eq!(instance.known_kids(), [instance.kid()]);

    // Announced: learns the new key, still seals under the old.
    let new = MasterKey::generate();
    let (old_kid, new_kid) = (w.key.kid().to_owned(), new.kid().to_owned());
    let new_key_sealed = w.key.seal_key(&new_key_context(&new_kid), &new);
    let old_key_sealed = new.seal_key(&old_key_context(&old_kid), &w.key);
    let (o, n) = (old_kid.clone(), new_kid.clone());
    w.store
        .run(move |c| {
            rows::insert(
                c,
                &NewRotation {
                    old_kid: &o,
                    new_kid: &n,
                    new_key_sealed: &new_key_sealed,
                    old_key_sealed: &old_key_sealed,
                    holder: "h",
                    now: t0(),
                    lease_until: t0(),
                },
            )
        })
        .await
        .unwrap();
    follower.sync(&w.store, &instance).await.unwrap();
    assert_eq!(instance.known_kids(), [old_kid.clone(), new_kid.clone()]);
    assert_eq!(instance.sealing_kid(), old_kid);

    // Resealing: seals under the new key.
    w.store
        .run(|c| rows::set_state(c, "h", RESEALING, t0()))
        .await
        .unwrap();
    follower.sync(&w.store, &instance).await.unwrap();
    assert_eq!(instance.sealing_kid(), new_kid);

    // Gone: the old key is forgotten.
    w.store.run(|c| rows::delete(c, "h")).await.unwrap();
    follower.sync(&w.store, &instance).await.unwrap();
    assert_eq!(instance.known_kids(), [new_kid]);
}

#[tokio::test]
async fn a_second_rotation_is_refused_while_the_first_holds_its_lease() {
    let w = world().await;
    let first = w.rotation(Duration::from_secs(300));
    // The first run stops at its very end (persisting fails), holding a live lease.
    let failed = rotate(
        &first,
        &|_: &MasterKey| Err("disk full".to_owned()),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(failed, Err(RotationError::Persist(_))),
        "{failed:?}"
    );
    let before = w.row().await.unwrap();

    let second = w.rotation(Duration::from_secs(300));
    let err = rotate(&second, &|_: &MasterKey| Ok(()), &mut |_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "a rotation is already under way (new key id {}, held by {} until ",
            before.new_kid, first.holder
        )),
        "{text}"
    );
    let after = w.row().await.unwrap();
    assert_eq!(after.holder, before.holder);
    assert_eq!(after.new_key_sealed, before.new_key_sealed);
}

#[tokio::test]
async fn a_value_under_an_unknown_key_is_named_and_left_alone() {
    let w = world().await;
    let stranger = MasterKey::generate();
    let sealed = stranger.seal(&totp::seal_context(&w.user), b"JBSWY3DPEHPK3PXP");
    let (id, s) = (w.user.clone(), sealed.clone());
    w.store
        .run(move |c| {
            diesel::update(
                crate::store::schema::totp_credentials::table
                    .filter(crate::store::schema::totp_credentials::user_id.eq(&id)),
            )
            .set(crate::store::schema::totp_credentials::secret_sealed.eq(&s))
            .execute(c)
            .map_err(StoreError::from)
        })
        .await
        .unwrap();
    let err = rotate(
        &w.rotation(Duration::from_secs(30)),
        &|_: &MasterKey| Ok(()),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RotationError::Strays(_)), "{text}");
    assert!(
        text.contains(&format!(
            "totp_credentials.secret_sealed of row {} is sealed under unknown master key {}",
            w.user,
            stranger.kid()
        )),
        "{text}"
    );
    assert!(
        !text.contains(&sealed[12..]),
        "the value itself is not shown"
    );
    assert_eq!(w.totp_sealed().await, sealed, "left as it was");
    assert!(w.row().await.is_none(), "nothing was started");
}

#[tokio::test]
async fn a_value_that_does_not_open_stops_the_resealing_naming_its_row() {
    let w = world().await;
    // Under the right key, but sealed for another row: it cannot be opened here.
    let sealed = w.key.seal(&totp::seal_context("someone-else"), b"x");
    let (id, s) = (w.user.clone(), sealed.clone());
    w.store
        .run(move |c| {
            diesel::update(
                crate::store::schema::totp_credentials::table
                    .filter(crate::store::schema::totp_credentials::user_id.eq(&id)),
            )
            .set(crate::store::schema::totp_credentials::secret_sealed.eq(&s))
            .execute(c)
            .map_err(StoreError::from)
        })
        .await
        .unwrap();
    let err = rotate(
        &w.rotation(Duration::from_secs(30)),
        &|_: &MasterKey| Ok(()),
        &mut |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!(
            "totp_credentials.secret_sealed of row {} cannot be opened",
            w.user
        )),
        "{err}"
    );
    assert_eq!(w.totp_sealed().await, sealed, "left as it was");
    assert!(w.row().await.is_some(), "the rotation waits to be resumed");
}

#[tokio::test]
async fn a_rotation_resumes_with_the_new_key_file_already_in_place() {
    let w = world().await;
    let slot = Mutex::new(None);
    // Crash right after the key file was replaced: persisting "succeeds" but the
    // command stops before deleting the row (its lease is about to run out).
    let crashed = rotate(
        &w.rotation(Duration::from_millis(1)),
        &|key: &MasterKey| {
            keep_in(&slot)(key)?;
            Err("killed".to_owned())
        },
        &mut |_| {},
    )
    .await;
    assert!(crashed.is_err());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = Arc::new(MasterKey::from_base64(slot.lock().unwrap().as_deref().unwrap()).unwrap());
    let mut resumed = w.rotation(Duration::from_secs(30));
    resumed.loaded = &new;
    let called = Mutex::new(false);
    let done = rotate(
        &resumed,
        &|_: &MasterKey| {
            *called.lock().unwrap() = true;
            Ok(())
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(done.new_kid, new.kid());
    assert!(
        !*called.lock().unwrap(),
        "the file already holds the new key"
    );
    assert!(w.row().await.is_none());
}

#[tokio::test]
async fn a_key_of_neither_side_cannot_resume_a_rotation() {
    let w = world().await;
    let crashed = rotate(
        &w.rotation(Duration::from_millis(1)),
        &|_: &MasterKey| Err("killed".to_owned()),
        &mut |_| {},
    )
    .await;
    assert!(crashed.is_err());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stranger = Arc::new(MasterKey::generate());
    let mut other = w.rotation(Duration::from_secs(30));
    other.loaded = &stranger;
    let err = rotate(&other, &|_: &MasterKey| Ok(()), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::ForeignKey { .. }), "{err}");
    assert!(err.to_string().contains("is neither the old ("), "{err}");
}

#[test]
fn the_store_reseals_signing_keys_under_the_context_they_are_sealed_for() {
    assert_eq!(
        signing_keys::seal_context("kid-1"),
        crate::crypto::signing::seal_context("kid-1")
    );
}
