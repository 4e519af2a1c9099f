//! Token signing keys (DESIGN §9, §12): sealed private halves, published public halves.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::signing_keys};

pub const NEXT: &str = "next";
pub const ACTIVE: &str = "active";
pub const RETIRED: &str = "retired";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub private_sealed: String,
    pub public_jwk: String,
    pub created_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
    pub retired_at: Option<NaiveDateTime>,
}

pub struct NewKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub state: &'a str,
    pub private_sealed: &'a str,
    pub public_jwk: &'a str,
}

pub fn insert(
    conn: &mut DbConnection,
    key: NewKey<'_>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let activated = (key.state == ACTIVE).then_some(now);
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(key.kid),
            signing_keys::alg.eq(key.alg),
            signing_keys::state.eq(key.state),
            signing_keys::private_sealed.eq(key.private_sealed),
            signing_keys::public_jwk.eq(key.public_jwk),
            signing_keys::created_at.eq(now),
            signing_keys::activated_at.eq(activated),
        ))
        .execute(conn)?;
    Ok(())
}

/// Every key still published: next, active, and retired ones retired after `keep_retired_since`.
pub fn published(
    conn: &mut DbConnection,
    keep_retired_since: NaiveDateTime,
) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(
            signing_keys::state
                .ne(RETIRED)
                .or(signing_keys::retired_at.gt(keep_retired_since)),
        )
        .order(signing_keys::created_at.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

pub fn in_state(
    conn: &mut DbConnection,
    alg: &str,
    state: &str,
) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::alg.eq(alg).and(signing_keys::state.eq(state)))
        .order(signing_keys::created_at.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// Retires the active key of `alg` and activates `next_kid` (which must be `next`).
pub fn promote(
    conn: &mut DbConnection,
    alg: &str,
    next_kid: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(
        signing_keys::table.filter(
            signing_keys::alg
                .eq(alg)
                .and(signing_keys::state.eq(ACTIVE)),
        ),
    )
    .set((
        signing_keys::state.eq(RETIRED),
        signing_keys::retired_at.eq(now),
    ))
    .execute(conn)?;
    let promoted = diesel::update(
        signing_keys::table.filter(
            signing_keys::kid
                .eq(next_kid)
                .and(signing_keys::state.eq(NEXT)),
        ),
    )
    .set((
        signing_keys::state.eq(ACTIVE),
        signing_keys::activated_at.eq(now),
    ))
    .execute(conn)?;
    if promoted != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Every key, newest first (the admin API's list; retired ones included).
pub fn list(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// What a private signing key is sealed for: its kid. The same text as the signing
/// code's own context, which seals it (a test in `keys::master` holds them equal:
/// neither layer may name the other).
pub fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

super::master_rotation::column_resealer!(
    /// Re-seals private signing keys for a master-key rotation.
    reseal, signing_keys, kid, private_sealed, |kid| seal_context(kid)
);
