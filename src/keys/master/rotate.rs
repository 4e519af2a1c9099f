//! The `rotate-master` command's side of a rotation: claim or take over the record,
//! pin the derived keys, announce, wait, re-seal in leased batches, verify, persist the
//! new key and delete the record (see the parent module for the whole story).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::{
    DERIVE_PURPOSES, MAX_PASSES, PIN_PREFIX, RotationError, SEALED_COLUMNS, SHOW_ROWS, check_kid,
    load_pins, new_key_context, old_key_context, open_key,
};
use crate::{
    audit::{Audit, AuditEvent, EventType, Outcome},
    clock::SharedClock,
    crypto::MasterKey,
    store::{
        Store, StoreError,
        master_rotation::{
            self as rows, ANNOUNCED, FINISHED, NewRotation, RESEALING, RotationRow, SealedColumn,
        },
        secrets,
    },
};

/// One `rotate-master` run: who runs it and how.
pub struct Rotation<'a> {
    pub store: &'a Store,
    pub audit: &'a Audit,
    pub clock: &'a SharedClock,
    /// The key loaded from the configuration, as `serve` loads it.
    pub loaded: &'a Arc<MasterKey>,
    /// Who the audit trail names (`cli:<person>`).
    pub actor: &'a str,
    /// Names this process in the lease (and in the refusal others get).
    pub holder: String,
    pub batch_size: i64,
    pub grace: Duration,
    pub lease: Duration,
}

/// What the command tells its operator as it goes.
#[derive(Debug)]
pub enum Step<'a> {
    Started {
        old_kid: &'a str,
        new_kid: &'a str,
        resumed: bool,
        state: &'a str,
    },
    Waiting {
        secs: u64,
        why: &'static str,
    },
    Resealing,
    Batch {
        column: String,
        resealed: usize,
        total: i64,
    },
    Verified,
    Persisted {
        kid: &'a str,
    },
}

/// The rotation, done.
#[derive(Debug)]
pub struct Finished {
    pub old_kid: String,
    pub new_kid: String,
    /// Values this run re-sealed.
    pub resealed: i64,
}

/// Rotates the master key, or resumes the rotation recorded in the database, to the
/// end. `persist` writes the new key where the loaded one came from; it is called once
/// every value is under the new key, unless the loaded key already is the new one.
///
/// # Errors
///
/// See [`RotationError`]; whatever stops it, every value stays openable by running
/// instances, and running the command again resumes.
pub async fn rotate(
    run: &Rotation<'_>,
    persist: &dyn Fn(&MasterKey) -> Result<(), String>,
    report: &mut dyn FnMut(Step<'_>),
) -> Result<Finished, RotationError> {
    let (row, generated, resumed) = claim(run).await?;
    let (old, new) = both_keys(run.loaded, &row, generated)?;
    old.learn(&new);
    let (old_kid, new_kid) = (row.old_kid.clone(), row.new_kid.clone());
    let mut event = AuditEvent::new(EventType::MasterKeyRotationStarted, Outcome::Success)
        .actor(run.actor)
        .detail("old_kid", old_kid.as_str())
        .detail("new_kid", new_kid.as_str());
    if resumed {
        event = event.detail("resumed", true);
    }
    run.audit.record(event).await?;
    report(Step::Started {
        old_kid: &old_kid,
        new_kid: &new_kid,
        resumed,
        state: &row.state,
    });
    load_pins(run.store, &old).await?;
    pin_derived_keys(run, &old).await?;

    let mut state = row.state.clone();
    if state == ANNOUNCED {
        wait(
            run,
            run.grace,
            "for every instance to learn the new key",
            report,
        )
        .await?;
        set_state(run, RESEALING).await?;
        state = RESEALING.to_owned();
    }
    // The working ring: opens under both keys, seals under the new one.
    old.seal_with(&new_kid);
    let mut resealed = 0;
    if state == RESEALING {
        report(Step::Resealing);
        let switched = Instant::now();
        resealed += reseal_everything(run, &old, &old_kid, report).await?;
        // An instance that polled just before the switch seals under the old key until
        // its next poll: only after the grace period can nothing new appear under it.
        let left = run.grace.saturating_sub(switched.elapsed());
        wait(
            run,
            left,
            "for every instance to seal under the new key",
            report,
        )
        .await?;
        resealed += reseal_everything(run, &old, &old_kid, report).await?;
        verify(run, &old_kid, &new_kid).await?;
        report(Step::Verified);
        set_state(run, FINISHED).await?;
    }
    if run.loaded.kid() != new_kid {
        persist(&new).map_err(RotationError::Persist)?;
        report(Step::Persisted { kid: &new_kid });
    }
    let holder = run.holder.clone();
    if !run.store.run(move |c| rows::delete(c, &holder)).await? {
        return Err(RotationError::LeaseLost);
    }
    run.audit
        .record(
            AuditEvent::new(EventType::MasterKeyRotationFinished, Outcome::Success)
                .actor(run.actor)
                .detail("old_kid", old_kid.as_str())
                .detail("new_kid", new_kid.as_str())
                .detail("resealed", resealed),
        )
        .await?;
    Ok(Finished {
        old_kid,
        new_kid,
        resealed,
    })
}

fn lease_until(run: &Rotation<'_>, now: DateTime<Utc>) -> chrono::NaiveDateTime {
    let lease = chrono::Duration::from_std(run.lease).unwrap_or(chrono::Duration::seconds(30));
    (now + lease).naive_utc()
}

/// Starts a rotation, or takes over one whose command stopped. Returns the row, the
/// new key when this run generated it, and whether it resumed.
async fn claim(
    run: &Rotation<'_>,
) -> Result<(RotationRow, Option<MasterKey>, bool), RotationError> {
    if let Some(row) = run.store.run(rows::find).await? {
        return take_over(run, row).await.map(|row| (row, None, true));
    }
    // Values under a key nobody has would be left behind: say so before changing anything.
    let loaded_kid = run.loaded.kid().to_owned();
    refuse_strays(run, &loaded_kid).await?;

    let new = MasterKey::generate();
    let new_key_sealed = run.loaded.seal_key(&new_key_context(new.kid()), &new);
    let old_key_sealed = new.seal_key(&old_key_context(&loaded_kid), run.loaded);
    let now = run.clock.now();
    let (new_kid, holder, until) = (
        new.kid().to_owned(),
        run.holder.clone(),
        lease_until(run, now),
    );
    let inserted = run
        .store
        .run(move |c| {
            rows::insert(
                c,
                &NewRotation {
                    old_kid: &loaded_kid,
                    new_kid: &new_kid,
                    new_key_sealed: &new_key_sealed,
                    old_key_sealed: &old_key_sealed,
                    holder: &holder,
                    now: now.naive_utc(),
                    lease_until: until,
                },
            )
        })
        .await;
    match inserted {
        Ok(()) => {}
        // Another command started at the same moment and won the one row.
        Err(StoreError::Conflict) => {
            let row = run
                .store
                .run(rows::find)
                .await?
                .ok_or(StoreError::NotFound)?;
            return take_over(run, row).await.map(|row| (row, None, true));
        }
        Err(e) => return Err(e.into()),
    }
    let row = run
        .store
        .run(rows::find)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok((row, Some(new), false))
}

/// The recorded rotation, if its lease ran out and this run's key belongs to it.
async fn take_over(run: &Rotation<'_>, row: RotationRow) -> Result<RotationRow, RotationError> {
    let under_way = |row: &RotationRow| RotationError::UnderWay {
        new_kid: row.new_kid.clone(),
        holder: row.holder.clone(),
        until: format!(
            "{}",
            row.lease_until.and_utc().format("%Y-%m-%d %H:%M:%S UTC")
        ),
    };
    let now = run.clock.now();
    if row.lease_until >= now.naive_utc() {
        return Err(under_way(&row));
    }
    let loaded = run.loaded.kid();
    if loaded != row.old_kid && loaded != row.new_kid {
        return Err(RotationError::ForeignKey {
            loaded: loaded.to_owned(),
            old: row.old_kid,
            new: row.new_kid,
        });
    }
    let (holder, until) = (run.holder.clone(), lease_until(run, now));
    let nows = now.naive_utc();
    if !run
        .store
        .run(move |c| rows::take_over(c, &holder, nows, until))
        .await?
    {
        let row = run
            .store
            .run(rows::find)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Err(under_way(&row));
    }
    Ok(run
        .store
        .run(rows::find)
        .await?
        .ok_or(StoreError::NotFound)?)
}

/// The old and new keys as separate handles; the loaded one is one of them.
fn both_keys(
    loaded: &Arc<MasterKey>,
    row: &RotationRow,
    generated: Option<MasterKey>,
) -> Result<(Arc<MasterKey>, Arc<MasterKey>), RotationError> {
    if loaded.kid() == row.old_kid {
        let new = match generated {
            Some(new) => new,
            None => open_key(loaded, &new_key_context(&row.new_kid), &row.new_key_sealed)?,
        };
        check_kid(&new, &row.new_kid)?;
        Ok((loaded.clone(), Arc::new(new)))
    } else {
        // A run resumed after the key file was replaced.
        let old = open_key(loaded, &old_key_context(&row.old_kid), &row.old_key_sealed)?;
        check_kid(&old, &row.old_kid)?;
        Ok((Arc::new(old), loaded.clone()))
    }
}

/// Stores the subkey of every derivation purpose not pinned yet, as the old key derives
/// it, sealed under the old key (every instance can open it at once; the re-sealing
/// moves it with the rest).
async fn pin_derived_keys(run: &Rotation<'_>, old: &Arc<MasterKey>) -> Result<(), RotationError> {
    let pinned: Vec<String> = run
        .store
        .run(|c| secrets::with_prefix(c, PIN_PREFIX))
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for purpose in DERIVE_PURPOSES {
        let name = format!("{PIN_PREFIX}{purpose}");
        if pinned.contains(&name) {
            continue;
        }
        let subkey = old.derive(purpose);
        let sealed = old.seal(&secrets::seal_context(&name), &*subkey);
        let now = run.clock.now().naive_utc();
        match run
            .store
            .run(move |c| secrets::insert(c, &name, &sealed, now))
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    load_pins(run.store, old).await
}

async fn set_state(run: &Rotation<'_>, state: &'static str) -> Result<(), RotationError> {
    let (holder, now) = (run.holder.clone(), run.clock.now().naive_utc());
    if run
        .store
        .run(move |c| rows::set_state(c, &holder, state, now))
        .await?
    {
        Ok(())
    } else {
        Err(RotationError::LeaseLost)
    }
}

/// Sleeps `how_long`, renewing the lease meanwhile.
async fn wait(
    run: &Rotation<'_>,
    how_long: Duration,
    why: &'static str,
    report: &mut dyn FnMut(Step<'_>),
) -> Result<(), RotationError> {
    if how_long.is_zero() {
        return Ok(());
    }
    report(Step::Waiting {
        secs: how_long.as_secs(),
        why,
    });
    let until = Instant::now() + how_long;
    let step = (run.lease / 3).max(Duration::from_millis(200));
    loop {
        renew(run, 0).await?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(step)).await;
    }
}

async fn renew(run: &Rotation<'_>, resealed: i64) -> Result<(), RotationError> {
    let now = run.clock.now();
    let (holder, until) = (run.holder.clone(), lease_until(run, now));
    let nows = now.naive_utc();
    if run
        .store
        .run(move |c| rows::renew(c, &holder, nows, until, resealed))
        .await?
    {
        Ok(())
    } else {
        Err(RotationError::LeaseLost)
    }
}

/// Marks a batch whose transaction must roll back because the lease was lost.
const LEASE_LOST: &str = "master key rotation lease lost";

/// Re-seals every column until nothing is left under `old_kid`; returns how many
/// values it re-sealed.
async fn reseal_everything(
    run: &Rotation<'_>,
    ring: &Arc<MasterKey>,
    old_kid: &str,
    report: &mut dyn FnMut(Step<'_>),
) -> Result<i64, RotationError> {
    let mut total = 0_i64;
    for _ in 0..MAX_PASSES {
        for column in SEALED_COLUMNS {
            loop {
                let done = reseal_batch(run, ring, column, old_kid).await?;
                if done == 0 {
                    break;
                }
                total += i64::try_from(done).unwrap_or(i64::MAX);
                report(Step::Batch {
                    column: format!("{}.{}", column.table, column.column),
                    resealed: done,
                    total,
                });
            }
        }
        if left_under(run, old_kid).await?.is_empty() {
            return Ok(total);
        }
    }
    let left = left_under(run, old_kid)
        .await?
        .into_iter()
        .map(|(column, n)| format!("{column}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(RotationError::Unfinished {
        passes: MAX_PASSES,
        left,
    })
}

/// One batch of one column, in its own transaction with the lease renewal: a batch is
/// written only by the command that still holds the rotation.
async fn reseal_batch(
    run: &Rotation<'_>,
    ring: &Arc<MasterKey>,
    column: &'static SealedColumn,
    old_kid: &str,
) -> Result<usize, RotationError> {
    let (ring, from) = (ring.clone(), old_kid.to_owned());
    let (holder, limit) = (run.holder.clone(), run.batch_size);
    let now = run.clock.now();
    let (nows, until) = (now.naive_utc(), lease_until(run, now));
    let done = run
        .store
        .transaction(move |c| {
            // Opens under whichever key of the ring the value names, seals under the new.
            let rewrap = |context: &str, sealed: &str| -> Result<String, String> {
                let plain = ring.open(context, sealed).map_err(|e| e.to_string())?;
                Ok(ring.seal(context, plain.expose_secret()))
            };
            let done = (column.reseal)(c, &rewrap, &from, limit)?;
            let count = i64::try_from(done).unwrap_or(i64::MAX);
            if !rows::renew(c, &holder, nows, until, count)? {
                return Err(StoreError::Query(LEASE_LOST.into()));
            }
            Ok(done)
        })
        .await;
    match done {
        Err(StoreError::Query(m)) if m == LEASE_LOST => Err(RotationError::LeaseLost),
        other => Ok(other?),
    }
}

/// The columns still holding values under `kid`, with how many.
async fn left_under(run: &Rotation<'_>, kid: &str) -> Result<Vec<(String, i64)>, RotationError> {
    let kid = kid.to_owned();
    Ok(run
        .store
        .run(move |c| {
            let mut left = Vec::new();
            for column in SEALED_COLUMNS {
                let n = rows::count_under(c, column, &kid)?;
                if n > 0 {
                    left.push((format!("{}.{}", column.table, column.column), n));
                }
            }
            Ok(left)
        })
        .await?)
}

/// Refuses, naming them, values not sealed under `kid`.
async fn refuse_strays(run: &Rotation<'_>, kid: &str) -> Result<(), RotationError> {
    let kid = kid.to_owned();
    let strays = run
        .store
        .run(move |c| {
            let mut found = Vec::new();
            for column in SEALED_COLUMNS {
                for (row, what) in rows::strays(c, column, &[&kid], SHOW_ROWS)? {
                    found.push(format!(
                        "{}.{} of row {row} is {what}",
                        column.table, column.column
                    ));
                }
            }
            Ok(found)
        })
        .await?;
    if strays.is_empty() {
        Ok(())
    } else {
        Err(RotationError::Strays(strays.join("; ")))
    }
}

/// Nothing under the old key, nothing under a key nobody knows.
async fn verify(run: &Rotation<'_>, old_kid: &str, new_kid: &str) -> Result<(), RotationError> {
    let left = left_under(run, old_kid).await?;
    if !left.is_empty() {
        let left = left
            .into_iter()
            .map(|(column, n)| format!("{column}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(RotationError::Unfinished {
            passes: MAX_PASSES,
            left,
        });
    }
    refuse_strays(run, new_kid).await
}
