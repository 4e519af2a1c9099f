//! Account lockout state (DESIGN §5), durable and shared by every instance.
//!
//! An attempt is reserved — counted as a failure — before the password is checked, by
//! one conditional UPDATE that only succeeds while the count is under the threshold.
//! Both backends serialise writers to a row, so of 50 parallel attempts exactly
//! `threshold` are reserved and checked; the rest are refused as locked without
//! hashing (GHSA-7h8m-vrxx-vr4m). A success then clears the count.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::lockouts};
use crate::domain::LockoutPolicy;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lockouts)]
pub struct LockoutRow {
    pub login_key: String,
    pub failures: i32,
    pub lock_count: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub permanent: bool,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// This attempt may be checked; it already counts as a failure.
    Allowed,
    /// Refused without checking. `until` is None for a permanent lock (or a lock whose
    /// last allowed attempt is still being checked).
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

    let reserved = diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::permanent.eq(false))
            .filter(lockouts::locked_until.is_null())
            .filter(lockouts::failures.lt(policy.threshold as i32)),
    )
    .set((
        lockouts::failures.eq(lockouts::failures + 1),
        lockouts::updated_at.eq(now),
    ))
    .execute(conn)?;
    if reserved == 1 {
        return Ok(Reservation::Allowed);
    }
    let row = find(conn, key)?;
    Ok(Reservation::Locked {
        until: row.filter(|r| !r.permanent).and_then(|r| r.locked_until),
    })
}

/// The reserved attempt failed: lock when it was the last one allowed.
pub fn record_failure(
    conn: &mut DbConnection,
    key: &str,
    policy: &LockoutPolicy,
    now: NaiveDateTime,
) -> Result<Option<NewLock>, StoreError> {
    if !policy.enabled() {
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

/// The reserved attempt succeeded: the count and the run of consecutive locks restart.
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

/// The reserved attempt was never checked (hashing at capacity): give it back.
pub fn release(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    diesel::update(
        lockouts::table
            .filter(lockouts::login_key.eq(key))
            .filter(lockouts::failures.gt(0))
            .filter(lockouts::locked_until.is_null()),
    )
    .set(lockouts::failures.eq(lockouts::failures - 1))
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
