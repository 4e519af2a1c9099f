//! The SPs with a SOAP SingleLogoutService that an SSO session has an assertion at
//! (issue 24 item 5), kept so that a session which runs out with no browser is still
//! told to them (`saml::lapsed`). The subject (NameID, format, user) is sealed by the
//! caller; this module stores and claims rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::saml_soap_participants as t};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct SoapParticipantRow {
    pub session_handle: String,
    pub sp_entity_id: String,
    pub subject_sealed: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// Records (or replaces: a new assertion at the same SP) the row of `row`'s session and SP.
pub fn remember(conn: &mut DbConnection, row: &SoapParticipantRow) -> Result<(), StoreError> {
    // `on_conflict` does not go through the MultiConnection: delete, then insert.
    delete_one(conn, &row.session_handle, &row.sp_entity_id)?;
    diesel::insert_into(t::table)
        .values((
            t::session_handle.eq(&row.session_handle),
            t::sp_entity_id.eq(&row.sp_entity_id),
            t::subject_sealed.eq(&row.subject_sealed),
            t::expires_at.eq(row.expires_at),
            t::created_at.eq(row.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The sessions that have rows.
pub fn handles(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(t::table.select(t::session_handle).distinct().load(conn)?)
}

/// The rows of session `handle`.
pub fn of_session(
    conn: &mut DbConnection,
    handle: &str,
) -> Result<Vec<SoapParticipantRow>, StoreError> {
    Ok(t::table
        .filter(t::session_handle.eq(handle))
        .order(t::sp_entity_id)
        .select(SoapParticipantRow::as_select())
        .load(conn)?)
}

/// Deletes the row of `handle` at `sp`; returns whether there was one, so that of two
/// instances claiming it, one wins.
pub fn delete_one(conn: &mut DbConnection, handle: &str, sp: &str) -> Result<bool, StoreError> {
    let n = diesel::delete(
        t::table
            .filter(t::session_handle.eq(handle))
            .filter(t::sp_entity_id.eq(sp)),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Deletes every row of session `handle`; returns how many there were.
pub fn delete_session(conn: &mut DbConnection, handle: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(t::table.filter(t::session_handle.eq(handle))).execute(conn)?)
}

/// Deletes the rows whose `expires_at` is at or before `before`.
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::delete(t::table.filter(t::expires_at.le(before))).execute(conn)?)
}

/// What a participant's subject is sealed for: its session and SP (DESIGN §12). Here,
/// beside the column, so that the master-key rotation can re-seal it.
pub fn seal_context(handle: &str, sp: &str) -> String {
    format!("saml-soap-participant:{handle}:{sp}")
}

/// Re-seals up to `limit` subjects sealed under `from_kid` through `rewrap`
/// (master-key rotation); each row only if it still holds what was read.
pub fn reseal(
    conn: &mut DbConnection,
    rewrap: super::master_rotation::Rewrap<'_>,
    from_kid: &str,
    limit: i64,
) -> Result<usize, StoreError> {
    use super::master_rotation::{reseal_value, sealed_under};
    let rows: Vec<(String, String, String)> = t::table
        .filter(t::subject_sealed.like(sealed_under(from_kid)?))
        .select((t::session_handle, t::sp_entity_id, t::subject_sealed))
        .order((t::session_handle, t::sp_entity_id))
        .limit(limit)
        .load(conn)?;
    let mut done = 0;
    for (handle, sp, old) in rows {
        let context = seal_context(&handle, &sp);
        let row = format!("{handle} {sp}");
        let new = reseal_value(
            rewrap,
            "saml_soap_participants.subject_sealed",
            &row,
            &context,
            &old,
        )?;
        done += diesel::update(
            t::table
                .filter(t::session_handle.eq(&handle))
                .filter(t::sp_entity_id.eq(&sp))
                .filter(t::subject_sealed.eq(&old)),
        )
        .set(t::subject_sealed.eq(new))
        .execute(conn)?;
    }
    Ok(done)
}
