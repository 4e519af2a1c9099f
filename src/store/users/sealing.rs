//! The sealed columns of `users` and `password_history` over time: what an earlier
//! release wrote in clear, sealed at start-up (`pii::seal_legacy`), and every value
//! re-sealed under a new master key during a rotation.

use diesel::prelude::*;

use super::{password_history, users, wrap_clear_hash};
use crate::store::{
    DbConnection, StoreError,
    pii::{
        CLEAR_HASH_PREFIX, Pii, display_name_context, email_context, hash_context, history_context,
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

// Each sealed column in the shape of the rotation's registry (`keys::master`), one
// re-sealer per column so that the rotation counts and verifies each.
crate::store::master_rotation::column_resealer!(
    /// Re-seals `users.email_sealed` for a master-key rotation.
    rotate_emails, users, id, email_sealed, |id| email_context(id)
);
crate::store::master_rotation::column_resealer!(
    /// Re-seals `users.display_name_sealed` for a master-key rotation.
    rotate_display_names, users, id, display_name_sealed, |id| display_name_context(id)
);
crate::store::master_rotation::column_resealer!(
    /// Re-seals wrapped `users.password_hash` values for a master-key rotation (a clear
    /// legacy hash is not under any key, and is wrapped at start-up instead).
    rotate_password_hashes, users, id, password_hash, |id| hash_context(id)
);
crate::store::master_rotation::column_resealer!(
    /// Re-seals `password_history.password_hash` for a master-key rotation.
    rotate_password_history, password_history, id, password_hash, |id| history_context(id)
);
