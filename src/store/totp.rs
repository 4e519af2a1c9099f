//! TOTP credentials and recovery codes (DESIGN §6).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{recovery_codes, totp_credentials},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = totp_credentials)]
pub struct TotpRow {
    pub user_id: String,
    pub secret_sealed: String,
    pub confirmed_at: Option<NaiveDateTime>,
    pub last_step: Option<i64>,
    pub created_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection, user_id: &str) -> Result<Option<TotpRow>, StoreError> {
    Ok(totp_credentials::table
        .find(user_id)
        .select(TotpRow::as_select())
        .first(conn)
        .optional()?)
}

/// True when the user has an active (confirmed) second factor.
pub fn is_enrolled(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    Ok(find(conn, user_id)?.is_some_and(|r| r.confirmed_at.is_some()))
}

/// Turns a second factor on: stores the confirmed secret with the time step of its
/// confirming code already used. Never replaces a confirmed one (`Conflict`). A row
/// left unconfirmed by older versions, which kept the pending secret here and showed it
/// to every later enrolment (issue 20 item 3), is dropped: nothing ever confirms it.
pub fn activate(
    conn: &mut DbConnection,
    user_id: &str,
    sealed: &str,
    step: i64,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    if let Some(existing) = find(conn, user_id)? {
        if existing.confirmed_at.is_some() {
            return Err(StoreError::Conflict);
        }
        diesel::delete(totp_credentials::table.find(user_id)).execute(conn)?;
    }
    diesel::insert_into(totp_credentials::table)
        .values((
            totp_credentials::user_id.eq(user_id),
            totp_credentials::secret_sealed.eq(sealed),
            totp_credentials::confirmed_at.eq(Some(now)),
            totp_credentials::last_step.eq(Some(step)),
            totp_credentials::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks time step `step` used, only if it is later than any step used before: a code
/// is accepted once, and never one older than the last accepted (RFC 6238 §5.2). One
/// conditional UPDATE, so two instances racing with the same code cannot both win.
pub fn consume_step(conn: &mut DbConnection, user_id: &str, step: i64) -> Result<bool, StoreError> {
    Ok(diesel::update(
        totp_credentials::table
            .filter(totp_credentials::user_id.eq(user_id))
            .filter(
                totp_credentials::last_step
                    .is_null()
                    .or(totp_credentials::last_step.lt(step)),
            ),
    )
    .set(totp_credentials::last_step.eq(step))
    .execute(conn)?
        == 1)
}

/// Removes the second factor, and its recovery codes unless `keep_recovery_codes` (they
/// also stand in for lost passkeys). True if there was one.
pub fn remove(
    conn: &mut DbConnection,
    user_id: &str,
    keep_recovery_codes: bool,
) -> Result<bool, StoreError> {
    if !keep_recovery_codes {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?;
    }
    Ok(diesel::delete(totp_credentials::table.find(user_id)).execute(conn)? > 0)
}

/// Replaces the user's recovery codes (the old set becomes void).
pub fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    hashes: &[String],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::code_hash.eq(hash),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Uses a recovery code once: true for the one caller that got it.
pub fn use_recovery_code(
    conn: &mut DbConnection,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        recovery_codes::table
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?
        == 1)
}

pub fn unused_recovery_codes(conn: &mut DbConnection, user_id: &str) -> Result<i64, StoreError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

/// What a TOTP secret is sealed for: its user (DESIGN §12). Here, beside the column,
/// so that the master-key rotation can re-seal it.
pub fn seal_context(user_id: &str) -> String {
    format!("totp-secret:{user_id}")
}

super::master_rotation::column_resealer!(
    /// Re-seals TOTP secrets for a master-key rotation.
    reseal, totp_credentials, user_id, secret_sealed, |id| seal_context(id)
);
