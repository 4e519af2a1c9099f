//! Blocked client addresses (DESIGN §5), durable and shared by every instance.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::ip_blocks};

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = ip_blocks)]
pub struct IpBlockRow {
    pub ip: String,
    pub blocked_until: NaiveDateTime,
    pub block_count: i32,
    pub reason: String,
    pub created_at: NaiveDateTime,
}

/// Longest block, however often an address repeats: a month.
const MAX_BLOCK: Duration = Duration::days(30);

pub fn active(
    conn: &mut DbConnection,
    ip: &str,
    now: NaiveDateTime,
) -> Result<Option<IpBlockRow>, StoreError> {
    Ok(ip_blocks::table
        .find(ip)
        .filter(ip_blocks::blocked_until.gt(now))
        .select(IpBlockRow::as_select())
        .first(conn)
        .optional()?)
}

/// Blocks `ip` for `base`, doubled for each earlier block of the same address. Returns
/// the block, or None when another instance blocked it a moment ago.
pub fn block(
    conn: &mut DbConnection,
    ip: &str,
    base: Duration,
    reason: &str,
    now: NaiveDateTime,
) -> Result<Option<IpBlockRow>, StoreError> {
    if active(conn, ip, now)?.is_some() {
        return Ok(None);
    }
    let previous = ip_blocks::table
        .find(ip)
        .select(IpBlockRow::as_select())
        .first(conn)
        .optional()?;
    let count = previous.as_ref().map_or(1, |p| p.block_count + 1);
    let factor = 1i32
        .checked_shl((count - 1).clamp(0, 20) as u32)
        .unwrap_or(i32::MAX);
    let length = base.checked_mul(factor).unwrap_or(MAX_BLOCK).min(MAX_BLOCK);
    let until = now + length;
    match previous {
        Some(_) => {
            diesel::update(
                ip_blocks::table
                    .find(ip)
                    .filter(ip_blocks::blocked_until.le(now)),
            )
            .set((
                ip_blocks::blocked_until.eq(until),
                ip_blocks::block_count.eq(count),
                ip_blocks::reason.eq(reason),
                ip_blocks::created_at.eq(now),
            ))
            .execute(conn)?;
        }
        None => {
            let inserted = diesel::insert_into(ip_blocks::table)
                .values((
                    ip_blocks::ip.eq(ip),
                    ip_blocks::blocked_until.eq(until),
                    ip_blocks::block_count.eq(count),
                    ip_blocks::reason.eq(reason),
                    ip_blocks::created_at.eq(now),
                ))
                .execute(conn);
            match inserted {
                Ok(_) => {}
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    active(conn, ip, now)
}

/// Active blocks, newest first.
pub fn list_active(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<Vec<IpBlockRow>, StoreError> {
    Ok(ip_blocks::table
        .filter(ip_blocks::blocked_until.gt(now))
        .order(ip_blocks::created_at.desc())
        .select(IpBlockRow::as_select())
        .load(conn)?)
}

/// Lifts a block; the history of repeats is kept so the next block still doubles.
pub fn unblock(conn: &mut DbConnection, ip: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    Ok(diesel::update(
        ip_blocks::table
            .find(ip)
            .filter(ip_blocks::blocked_until.gt(now)),
    )
    .set(ip_blocks::blocked_until.eq(now))
    .execute(conn)?
        > 0)
}

/// How many blocks are in force at `now`.
pub fn count_active(conn: &mut DbConnection, now: NaiveDateTime) -> Result<i64, StoreError> {
    Ok(ip_blocks::table
        .filter(ip_blocks::blocked_until.gt(now))
        .count()
        .get_result(conn)?)
}
