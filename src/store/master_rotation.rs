//! The master-key rotation under way, if any (DESIGN §12, issue 27), and the pieces
//! every column's re-sealer shares. One row at most (`id = 1`): running instances poll
//! it to learn the new key, and the `gatehouse keys rotate-master` process that holds
//! its lease drives it from `announced` through `resealing` to its deletion.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::master_key_rotation as t};

/// Instances open values under the new key; they still seal under the old one.
pub const ANNOUNCED: &str = "announced";
/// Instances seal under the new key; the command re-seals the old values.
pub const RESEALING: &str = "resealing";
/// Nothing remains under the old key; the row is about to go.
pub const FINISHED: &str = "finished";

const ROW_ID: i32 = 1;

/// The rotation row. No `Debug`: nobody should be tempted to log the sealed keys.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct RotationRow {
    pub old_kid: String,
    pub new_kid: String,
    /// The new key, sealed under the old one.
    pub new_key_sealed: String,
    /// The old key, sealed under the new one: a rotation resumed (or an instance
    /// started) with the new key file already in place still learns the old key.
    pub old_key_sealed: String,
    pub state: String,
    pub started_at: NaiveDateTime,
    pub holder: String,
    pub lease_until: NaiveDateTime,
    /// How many values the command has re-sealed so far.
    pub resealed: i64,
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection) -> Result<Option<RotationRow>, StoreError> {
    Ok(t::table
        .find(ROW_ID)
        .select(RotationRow::as_select())
        .first(conn)
        .optional()?)
}

/// A rotation about to be announced.
pub struct NewRotation<'a> {
    pub old_kid: &'a str,
    pub new_kid: &'a str,
    pub new_key_sealed: &'a str,
    pub old_key_sealed: &'a str,
    pub holder: &'a str,
    pub now: NaiveDateTime,
    pub lease_until: NaiveDateTime,
}

/// Records a new rotation, `announced` and leased to its holder.
/// [`StoreError::Conflict`] if one is already recorded: two commands started at once
/// cannot both insert the one row.
pub fn insert(conn: &mut DbConnection, new: &NewRotation<'_>) -> Result<(), StoreError> {
    diesel::insert_into(t::table)
        .values((
            t::id.eq(ROW_ID),
            t::old_kid.eq(new.old_kid),
            t::new_kid.eq(new.new_kid),
            t::new_key_sealed.eq(new.new_key_sealed),
            t::old_key_sealed.eq(new.old_key_sealed),
            t::state.eq(ANNOUNCED),
            t::started_at.eq(new.now),
            t::holder.eq(new.holder),
            t::lease_until.eq(new.lease_until),
            t::resealed.eq(0_i64),
            t::updated_at.eq(new.now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes the lease of the recorded rotation if it ran out (its holder died). One
/// conditional UPDATE, so of two commands resuming at once exactly one wins.
pub fn take_over(
    conn: &mut DbConnection,
    holder: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        t::table
            .filter(t::id.eq(ROW_ID))
            .filter(t::lease_until.lt(now)),
    )
    .set((
        t::holder.eq(holder),
        t::lease_until.eq(until),
        t::updated_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

/// Extends the lease and counts `resealed` more values; false if `holder` no longer
/// holds it (it ran out and another command took over: this one must stop).
pub fn renew(
    conn: &mut DbConnection,
    holder: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
    resealed: i64,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        t::table
            .filter(t::id.eq(ROW_ID))
            .filter(t::holder.eq(holder)),
    )
    .set((
        t::lease_until.eq(until),
        t::resealed.eq(t::resealed + resealed),
        t::updated_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

/// Moves the rotation to `state`; false if `holder` lost the lease.
pub fn set_state(
    conn: &mut DbConnection,
    holder: &str,
    state: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        t::table
            .filter(t::id.eq(ROW_ID))
            .filter(t::holder.eq(holder)),
    )
    .set((t::state.eq(state), t::updated_at.eq(now)))
    .execute(conn)?
        == 1)
}

/// Deletes the finished rotation; false if `holder` lost the lease.
pub fn delete(conn: &mut DbConnection, holder: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(
        t::table
            .filter(t::id.eq(ROW_ID))
            .filter(t::holder.eq(holder)),
    )
    .execute(conn)?
        == 1)
}

/// One column of sealed values, as a rotation sees it.
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// SQL (portable to both backends) naming a row in messages: its primary key.
    pub row_id: &'static str,
    /// Re-seals up to `limit` values sealed under `from_kid` through the caller's
    /// [`Rewrap`]; returns how many it rewrote. Each value is rewritten only if the
    /// column still holds what was read, so a concurrent write is never clobbered.
    pub reseal: Resealer,
}

/// `reseal(conn, rewrap, from_kid, limit)`: see [`SealedColumn::reseal`].
pub type Resealer = fn(&mut DbConnection, Rewrap<'_>, &str, i64) -> Result<usize, StoreError>;

/// `rewrap(context, sealed)`: opens a sealed value for its context and seals it again
/// under the current key, or says why it cannot. Given by the caller (`keys::master`):
/// the store knows which rows and contexts there are, not the cryptography.
pub type Rewrap<'a> = &'a dyn Fn(&str, &str) -> Result<String, String>;

/// The `LIKE` pattern of values sealed under `kid`. A key id is 8 lowercase hex
/// characters, so it holds no `LIKE` wildcard and can be written into SQL as is.
pub fn sealed_under(kid: &str) -> Result<String, StoreError> {
    if kid.len() != 8 || !kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::Query(
            "a master key id is 8 lowercase hex characters".into(),
        ));
    }
    Ok(format!("v1.{kid}.%"))
}

/// Re-seals `sealed` (a value of `column`, row `row`) through `rewrap`. A value that
/// does not open stops the re-sealing with a message naming where it is, and stays as
/// it was.
pub fn reseal_value(
    rewrap: Rewrap<'_>,
    column: &str,
    row: &str,
    context: &str,
    sealed: &str,
) -> Result<String, StoreError> {
    rewrap(context, sealed)
        .map_err(|e| StoreError::Query(format!("{column} of row {row} cannot be opened: {e}")))
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row_ref: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    sealed_text: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many values of `column` are sealed under `kid`.
pub fn count_under(
    conn: &mut DbConnection,
    column: &SealedColumn,
    kid: &str,
) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM {t} WHERE {c} LIKE '{p}'",
        t = column.table,
        c = column.column,
        p = sealed_under(kid)?,
    );
    let rows: Vec<Count> = match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(sql).load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(sql).load(lite)?,
    };
    Ok(rows.first().map_or(0, |c| c.n))
}

/// Up to `limit` rows of `column` holding a value under none of `kids`: each row's id
/// and what its value says it is (a foreign key id, or not a sealed value at all).
/// Never the value itself.
pub fn strays(
    conn: &mut DbConnection,
    column: &SealedColumn,
    kids: &[&str],
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut sql = format!(
        "SELECT CAST({id} AS TEXT) AS row_ref, {c} AS sealed_text FROM {t} WHERE {c} IS NOT NULL",
        id = column.row_id,
        c = column.column,
        t = column.table,
    );
    for kid in kids {
        sql.push_str(&format!(
            " AND {} NOT LIKE '{}'",
            column.column,
            sealed_under(kid)?
        ));
    }
    sql.push_str(&format!(" ORDER BY 1 LIMIT {limit}"));
    let rows: Vec<Found> = match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(sql).load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(sql).load(lite)?,
    };
    Ok(rows
        .into_iter()
        .map(|f| (f.row_ref, describe(&f.sealed_text)))
        .collect())
}

/// What a value that is under no known key claims to be, without repeating it.
fn describe(value: &str) -> String {
    let mut parts = value.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(kid), Some(_))
            if kid.len() == 8 && kid.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("sealed under unknown master key {kid}")
        }
        _ => "not a sealed value".into(),
    }
}

/// Defines a re-sealer of one sealed column, in the shape [`SealedColumn`] wants:
/// `fn(conn, rewrap, from_kid, limit) -> how many rows it changed`. Up to `limit`
/// values under `from_kid` are re-sealed through `rewrap`, each row updated only if the
/// column still holds what was read (a running instance may have written it since).
/// `$context` maps the row id to the seal context.
///
/// [`SealedColumn`]: crate::keys::master::SealedColumn
macro_rules! column_resealer {
    ($(#[$doc:meta])* $name:ident, $table:ident, $id:ident, $column:ident, $context:expr) => {
        $(#[$doc])*
        pub fn $name(
            conn: &mut $crate::store::DbConnection,
            rewrap: $crate::store::master_rotation::Rewrap<'_>,
            from_kid: &str,
            limit: i64,
        ) -> Result<usize, $crate::store::StoreError> {
            use $crate::store::master_rotation::{reseal_value, sealed_under};
            use $crate::store::schema::$table;
            let rows: Vec<(String, Option<String>)> = $table::table
                .filter($table::$column.like(sealed_under(from_kid)?))
                .select(($table::$id, $table::$column.nullable()))
                .order($table::$id)
                .limit(limit)
                .load(conn)?;
            let context: fn(&str) -> String = $context;
            let mut done = 0;
            for (id, old) in rows {
                let Some(old) = old else { continue };
                let column = concat!(stringify!($table), ".", stringify!($column));
                let new = reseal_value(rewrap, column, &id, &context(&id), &old)?;
                done += diesel::update(
                    $table::table
                        .filter($table::$id.eq(&id))
                        .filter($table::$column.eq(&old)),
                )
                .set($table::$column.eq(new))
                .execute(conn)?;
            }
            Ok(done)
        }
    };
}
pub(crate) use column_resealer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_key_id_becomes_a_like_pattern() {
        assert_eq!(sealed_under("0a1b2c3d").unwrap(), "v1.0a1b2c3d.%");
        for bad in [
            "",
            "0A1B2C3D",
            "0a1b2c3",
            "0a1b2c3d4",
            "0a1b%c3d",
            "'; drop",
        ] {
            assert!(sealed_under(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stray_value_is_described_without_being_repeated() {
        assert_eq!(
            describe("v1.deadbeef.c2VjcmV0"),
            "sealed under unknown master key deadbeef"
        );
        assert_eq!(describe("JBSWY3DPEHPK3PXP"), "not a sealed value");
        assert_eq!(describe("v1.secret-text.x"), "not a sealed value");
    }
}
