//! The sealed columns of `users` and `password_history` over time: what an earlier
//! release wrote in clear, sealed at start-up (`pii::seal_legacy`), and every value
//! re-sealed under a new master key during a rotation.

use diesel::prelude::*;

use super::{password_history, users, wrap_clear_hash};
use crate::store::{
    DbConnection, StoreError,
    pii::{
        CLEAR_HASH_PREFIX, Pii, Sealer, display_name_context, email_context, hash_context,
        history_context, reseal_value, sealed_under,
    },
};

diesel::define_sql_function! {
    /// SQL `coalesce`: compares a nullable column with a value that may be absent
    /// (sealed text is never empty, so '' stands for NULL).
    fn coalesce(
        x: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        y: diesel::sql_types::Text
    ) -> diesel::sql_types::Text;
}

// ---- sealing what an earlier release wrote in clear (issue 27 data migration) ----

/// Seals up to `limit` user rows an earlier release wrote in clear (no blind index
/// yet): email, display name, and the password hash if it is a clear PHC string. Each
/// row is updated only while it is still unsealed and unchanged, so instances starting
/// together never seal one twice. Returns how many it sealed.
pub fn seal_legacy_users(
    conn: &mut DbConnection,
    pii: &Pii,
    limit: i64,
) -> Result<usize, StoreError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = users::table
        .filter(users::email_index.is_null())
        .order(users::id.asc())
        .limit(limit)
        .select((
            users::id,
            users::email_sealed,
            users::display_name_sealed,
            users::password_hash,
        ))
        .load(conn)?;
    let mut sealed = 0;
    for (id, email, display_name, hash) in rows {
        let wrapped = match hash.as_deref() {
            Some(h) if h.starts_with(CLEAR_HASH_PREFIX) => Some(pii.wrap_hash(&id, h)),
            other => other.map(str::to_owned),
        };
        let unchanged = users::table
            .find(&id)
            .filter(users::email_index.is_null())
            .filter(users::email_sealed.eq(&email));
        sealed += diesel::update(unchanged)
            .set((
                users::email_sealed.eq(pii.seal_email(&id, &email)),
                users::email_index.eq(pii.email_index(&email)),
                users::display_name_sealed.eq(display_name
                    .as_deref()
                    .map(|name| pii.seal_display_name(&id, name))),
                users::password_hash.eq(wrapped),
            ))
            .execute(conn)?;
    }
    // Sealed rows whose hash is clear (written in by hand since): wrapped too.
    let clear: Vec<(String, Option<String>)> = users::table
        .filter(users::email_index.is_not_null())
        .filter(users::password_hash.like(format!("{CLEAR_HASH_PREFIX}%")))
        .limit(limit)
        .select((users::id, users::password_hash))
        .load(conn)?;
    for (id, hash) in clear {
        if let Some(phc) = hash {
            sealed += usize::from(wrap_clear_hash(conn, pii, &id, &phc)?);
        }
    }
    Ok(sealed)
}

/// Wraps up to `limit` password-history hashes stored in clear, each only while
/// unchanged. Returns how many it wrapped.
pub fn seal_legacy_history(
    conn: &mut DbConnection,
    pii: &Pii,
    limit: i64,
) -> Result<usize, StoreError> {
    use password_history as ph;
    let rows: Vec<(String, String)> = ph::table
        .filter(ph::password_hash.like(format!("{CLEAR_HASH_PREFIX}%")))
        .limit(limit)
        .select((ph::id, ph::password_hash))
        .load(conn)?;
    let mut wrapped = 0;
    for (id, phc) in rows {
        wrapped += diesel::update(ph::table.find(&id).filter(ph::password_hash.eq(&phc)))
            .set(ph::password_hash.eq(pii.wrap_history_hash(&id, &phc)))
            .execute(conn)?;
    }
    Ok(wrapped)
}

// ---- master-key rotation ----

/// Re-seals up to `limit` rows whose sealed values are not under `key`'s current kid
/// (`LIKE 'v1.<from_kid>.%'`), opening with `key` (which can open both kids during a
/// rotation) and sealing with it; each row updated only if unchanged since it was read.
/// Returns how many rows it changed (0 = done).
///
/// Covers `users` (email, display name, password hash) and then `password_history`.
/// The blind index does not change: its key is a sealed secret of its own. A value
/// that does not open is an error naming the table and row, never skipped.
pub fn reseal<K: Sealer + ?Sized>(
    conn: &mut DbConnection,
    key: &K,
    from_kid: &str,
    limit: i64,
) -> Result<usize, StoreError> {
    let pattern = sealed_under(from_kid)?;
    if key.sealing_kid() == from_kid {
        // Sealing under the same key again would find the same rows forever.
        return Ok(0);
    }
    // Rows changed meanwhile by a running instance are skipped by their conditional
    // update, and sealed under the new key by it: read again until a batch changes
    // something or none is left.
    loop {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = users::table
            .filter(
                users::email_sealed
                    .like(&pattern)
                    .or(users::display_name_sealed.like(&pattern))
                    .or(users::password_hash.like(&pattern)),
            )
            .limit(limit)
            .select((
                users::id,
                users::email_sealed,
                users::display_name_sealed,
                users::password_hash,
            ))
            .load(conn)?;
        let found = rows.len();
        let mut changed = 0;
        for (id, email, name, hash) in rows {
            let what = |field: &str| format!("users.{field}");
            let new_email = reseal_value(
                key,
                &email_context(&id),
                &email,
                from_kid,
                &what("email_sealed"),
                &id,
            )?;
            let new_name = match name.as_deref() {
                Some(n) => reseal_value(
                    key,
                    &display_name_context(&id),
                    n,
                    from_kid,
                    &what("display_name_sealed"),
                    &id,
                )?,
                None => None,
            };
            let new_hash = match hash.as_deref() {
                Some(h) => reseal_value(
                    key,
                    &hash_context(&id),
                    h,
                    from_kid,
                    &what("password_hash"),
                    &id,
                )?,
                None => None,
            };
            let unchanged = users::table
                .find(&id)
                .filter(users::email_sealed.eq(&email))
                .filter(
                    coalesce(users::display_name_sealed, "").eq(name.clone().unwrap_or_default()),
                )
                .filter(coalesce(users::password_hash, "").eq(hash.clone().unwrap_or_default()));
            changed += diesel::update(unchanged)
                .set((
                    users::email_sealed.eq(new_email.unwrap_or_else(|| email.clone())),
                    users::display_name_sealed.eq(new_name.or(name)),
                    users::password_hash.eq(new_hash.or(hash)),
                ))
                .execute(conn)?;
        }
        if changed > 0 {
            return Ok(changed);
        }
        if found == 0 {
            break;
        }
    }
    reseal_history(conn, key, from_kid, &pattern, limit)
}

fn reseal_history<K: Sealer + ?Sized>(
    conn: &mut DbConnection,
    key: &K,
    from_kid: &str,
    pattern: &str,
    limit: i64,
) -> Result<usize, StoreError> {
    use password_history as ph;
    loop {
        let rows: Vec<(String, String)> = ph::table
            .filter(ph::password_hash.like(pattern))
            .limit(limit)
            .select((ph::id, ph::password_hash))
            .load(conn)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut changed = 0;
        for (id, stored) in rows {
            let Some(new) = reseal_value(
                key,
                &history_context(&id),
                &stored,
                from_kid,
                "password_history.password_hash",
                &id,
            )?
            else {
                continue;
            };
            changed += diesel::update(ph::table.find(&id).filter(ph::password_hash.eq(&stored)))
                .set(ph::password_hash.eq(new))
                .execute(conn)?;
        }
        if changed > 0 {
            return Ok(changed);
        }
    }
}
