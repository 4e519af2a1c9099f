//! Account lockout state (DESIGN §5), durable and shared by every instance.
//!
//! An attempt takes a lease on one of the tries left before its credential is checked,
//! by one conditional UPDATE that only succeeds while failures plus attempts in flight
//! are under the threshold. Both backends serialise writers to a row, so of 50
//! parallel attempts exactly `threshold` are checked; the rest wait for a verdict and
//! are then refused as locked without hashing (GHSA-7h8m-vrxx-vr4m).
//!
//! Only a verdict counts: `record_failure` turns the lease into a failure (and the
//! lock, when it is the last one) inside the caller's transaction, which also holds the
//! audit events and the notices (issue 23 item 2). A lease whose verdict never came —
//! the database went away mid-check, the instance died — lapses on its own after
//! [`IN_FLIGHT_LEASE`]: it never turns into a count nobody recorded.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{lockouts, users},
};
use crate::domain::LockoutPolicy;

/// How long a lease holds without a verdict. Far beyond a check (the hashing queue, a
/// hash, and a few statements, each bounded by the database deadline), so a live
/// attempt never loses its place; short enough that leases orphaned by an outage free
/// their tries soon after it.
pub const IN_FLIGHT_LEASE: Duration = Duration::seconds(30);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lockouts)]
pub struct LockoutRow {
    pub login_key: String,
    pub failures: i32,
    pub lock_count: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub permanent: bool,
    pub updated_at: NaiveDateTime,
    pub in_flight: i32,
    pub in_flight_until: Option<NaiveDateTime>,
}

impl LockoutRow {
    /// Whether sign-in is refused as locked at `now`: what the admin API shows and what
    /// the guard answers are the same test.
    pub fn is_locked(&self, now: NaiveDateTime) -> bool {
        self.permanent || self.locked_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// This attempt may be checked; its lease must end in `record_failure` or `release`.
    Allowed,
    /// Every try left is held by an attempt still being checked: not locked (yet), ask
    /// again once they have their verdicts.
    Busy,
    /// Refused without checking. `until` is None for a permanent lock.
    Locked { until: Option<NaiveDateTime> },
}

/// A lock that a failure just caused, for the audit trail and notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLock {
    pub until: NaiveDateTime,
    pub permanent: bool,
    pub lock_count: i32,
}

fn ensure_row(conn: &mut DbConnection, key: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    let row = (
        lockouts::login_key.eq(key),
        lockouts::failures.eq(0),
        lockouts::lock_count.eq(0),
        lockouts::permanent.eq(false),
        lockouts::updated_at.eq(now),
    );
    // MultiConnection cannot express ON CONFLICT; both backends can.
    match conn {
        DbConnection::Postgresql(c) => diesel::insert_into(lockouts::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
        DbConnection::Sqlite(c) => diesel::insert_into(lockouts::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
    };
    Ok(())
}

pub fn find(conn: &mut DbConnection, key: &str) -> Result<Option<LockoutRow>, StoreError> {
    Ok(lockouts::table
        .find(key)
        .select(LockoutRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn reserve(
    conn: &mut DbConnection,
    key: &str,
    policy: &LockoutPolicy,
    now: NaiveDateTime,
) -> Result<Reservation, StoreError> {
    if !policy.enabled() {
        return Ok(Reservation::Allowed);
    }
    ensure_row(conn, key, now)?;
    // A temporary lock that has run out, or failures gone stale, start again from zero.
    let stale = now - policy.reset_window();
    diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::permanent.eq(false))
            .filter(
                lockouts::locked_until.le(now).or(lockouts::locked_until
                    .is_null()
                    .and(lockouts::updated_at.le(stale))),
            ),
    )
    .set((
        lockouts::failures.eq(0),
        lockouts::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    // Leases whose verdicts never came (see the module comment).
    diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::in_flight_until.le(now)),
    )
    .set((
        lockouts::in_flight.eq(0),
        lockouts::in_flight_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;

    let reserved = diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::permanent.eq(false))
            .filter(lockouts::locked_until.is_null())
            .filter((lockouts::failures + lockouts::in_flight).lt(policy.threshold as i32)),
    )
    .set((
        lockouts::in_flight.eq(lockouts::in_flight + 1),
        lockouts::in_flight_until.eq(Some(now + IN_FLIGHT_LEASE)),
    ))
    .execute(conn)?;
    if reserved == 1 {
        return Ok(Reservation::Allowed);
    }
    Ok(match find(conn, key)? {
        Some(row) if row.permanent => Reservation::Locked { until: None },
        Some(row) if row.locked_until.is_some() => Reservation::Locked {
            until: row.locked_until,
        },
        // The row was unlocked (deleted) in between, or the tries left are all in flight.
        _ => Reservation::Busy,
    })
}

/// The leased attempt failed: count it, and lock when it was the last one allowed. Run
/// it in the transaction that also writes the failure's audit event (and the lock's
/// event and notices), so the count never exists without them.
pub fn record_failure(
    conn: &mut DbConnection,
    key: &str,
    policy: &LockoutPolicy,
    now: NaiveDateTime,
) -> Result<Option<NewLock>, StoreError> {
    // First, so the caller's transaction holds the write lock from here on (SQLite).
    release(conn, key)?;
    if !policy.enabled() {
        return Ok(None);
    }
    let counted = diesel::update(lockouts::table.filter(lockouts::login_key.eq(key)))
        .set((
            lockouts::failures.eq(lockouts::failures + 1),
            lockouts::updated_at.eq(now),
        ))
        .execute(conn)?;
    if counted == 0 {
        // Unlocked (the row deleted) while this attempt was checked: nothing to add to.
        return Ok(None);
    }
    let Some(row) = find(conn, key)? else {
        return Ok(None);
    };
    if row.failures < policy.threshold as i32 || row.locked_until.is_some() || row.permanent {
        return Ok(None);
    }
    let lock_count = row.lock_count + 1;
    let permanent = policy.is_permanent(lock_count as u32);
    let until = now + policy.lock_duration();
    let locked = diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::locked_until.is_null())
            .filter(lockouts::permanent.eq(false)),
    )
    .set((
        lockouts::lock_count.eq(lock_count),
        lockouts::locked_until.eq(Some(until)),
        lockouts::permanent.eq(permanent),
        lockouts::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok((locked == 1).then_some(NewLock {
        until,
        permanent,
        lock_count,
    }))
}

/// The whole sign-in succeeded: the count and the run of consecutive locks restart.
pub fn record_success(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::permanent.eq(false)),
    )
    .set((
        lockouts::failures.eq(0),
        lockouts::lock_count.eq(0),
        lockouts::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// The leased attempt succeeded, or was never checked: its try is free again.
pub fn release(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::in_flight.gt(0)),
    )
    .set(lockouts::in_flight.eq(lockouts::in_flight - 1))
    .execute(conn)?;
    Ok(())
}

/// Clears temporary and permanent locks (administrator or support). True if there was state.
pub fn unlock(conn: &mut DbConnection, key: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(lockouts::table.find(key)).execute(conn)? > 0)
}

/// A renamed account keeps its lockout state: the row moves to the new name's key.
/// Whatever the new name had gathered while it named no account (guesses at an unused
/// name) is dropped, so nobody can pre-lock a name an administrator is about to give.
pub fn rename(conn: &mut DbConnection, old_key: &str, new_key: &str) -> Result<(), StoreError> {
    diesel::delete(lockouts::table.find(new_key)).execute(conn)?;
    diesel::update(lockouts::table.find(old_key))
        .set(lockouts::login_key.eq(new_key))
        .execute(conn)?;
    Ok(())
}

// A lock's key is the account's username (`auth::guard::login_key`): counting the
// accounts locked asks the users table which keys are accounts.
diesel::allow_tables_to_appear_in_same_query!(lockouts, users);

/// How many accounts have sign-in locked at `now` (a lock in force, or a permanent
/// one): lockout rows whose key is an account's username, of the organisations
/// `org_ids` when given (of every one otherwise). Guesses at names no account has are
/// not counted.
pub fn count_locked_accounts(
    conn: &mut DbConnection,
    org_ids: Option<&[String]>,
    now: NaiveDateTime,
) -> Result<i64, StoreError> {
    let locked = lockouts::table.filter(
        lockouts::permanent
            .eq(true)
            .or(lockouts::locked_until.gt(now)),
    );
    Ok(match org_ids {
        Some(org_ids) => locked
            .filter(
                lockouts::login_key.eq_any(
                    users::table
                        .filter(users::org_id.eq_any(org_ids.to_vec()))
                        .select(users::username),
                ),
            )
            .count()
            .get_result(conn)?,
        None => locked
            .filter(lockouts::login_key.eq_any(users::table.select(users::username)))
            .count()
            .get_result(conn)?,
    })
}
