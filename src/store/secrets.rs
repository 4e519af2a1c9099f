//! Rows of the keys Gatehouse generates for itself (the audit chain key), each sealed
//! under the master key before it gets here (`crate::keys::sealed`, DESIGN §12).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::sealed_secrets};

pub fn find(conn: &mut DbConnection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(sealed_secrets::table
        .find(name)
        .select(sealed_secrets::value)
        .first(conn)
        .optional()?)
}

/// Inserts a new secret; [`StoreError::Conflict`] if the name is taken.
pub fn insert(
    conn: &mut DbConnection,
    name: &str,
    sealed: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::insert_into(sealed_secrets::table)
        .values((
            sealed_secrets::name.eq(name),
            sealed_secrets::value.eq(sealed),
            sealed_secrets::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a named secret is sealed for: its name, so rows cannot be swapped.
pub fn seal_context(name: &str) -> String {
    format!("sealed-secret:{name}")
}

/// Every name starting with `prefix`, with its sealed value.
pub fn with_prefix(
    conn: &mut DbConnection,
    prefix: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    // Names are code-chosen (`audit-chain`, `derived:<purpose>`): no wildcards in them.
    Ok(sealed_secrets::table
        .filter(sealed_secrets::name.like(format!("{prefix}%")))
        .select((sealed_secrets::name, sealed_secrets::value))
        .order(sealed_secrets::name)
        .load(conn)?)
}

super::master_rotation::column_resealer!(
    /// Re-seals the sealed secrets for a master-key rotation.
    reseal, sealed_secrets, name, value, |name| seal_context(name)
);
