//! Emergency ("break-glass") access as stored (DESIGN §15): who is designated, and each
//! window someone opened, with its end and its review.
//!
//! A window's row is never deleted. It changes twice at most, each by one conditional
//! UPDATE: it ends (`ended_at IS NULL`), and it is signed off (`reviewed_at IS NULL`). Of
//! two instances ending the same window, or two administrators signing off the same
//! review, exactly one wins, and only the winner records and announces it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{emergency_designations, emergency_sessions, users},
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = emergency_designations)]
pub struct DesignationRow {
    pub user_id: String,
    pub org_id: String,
    pub granted_by: String,
    pub granted_at: NaiveDateTime,
}

/// One emergency window.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = emergency_sessions)]
pub struct EmergencyRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    /// The user's name when the window opened.
    pub username: String,
    /// The SSO session raised (its handle, the SHA-256 of its cookie).
    pub session_handle: String,
    pub reason: String,
    /// The patient or context label chosen, when the relying party offered some.
    pub context: Option<String>,
    /// The client or SP that asked for emergency access; None from the account page.
    pub requested_by: Option<String>,
    pub started_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    /// `expired`, `ended_by_user`, `signed_out`.
    pub end_reason: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<NaiveDateTime>,
    pub review_note: Option<String>,
    /// When the organisation was last told this review is overdue.
    pub overdue_notified_at: Option<NaiveDateTime>,
}

impl EmergencyRow {
    /// Whether the window is open at `now`: started, not ended, not past its end.
    pub fn is_open(&self, now: NaiveDateTime) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }
}

// ---- designations ----

pub fn is_designated(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        emergency_designations::table.filter(emergency_designations::user_id.eq(user_id)),
    ))
    .get_result(conn)?)
}

pub fn designation(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Option<DesignationRow>, StoreError> {
    Ok(emergency_designations::table
        .filter(emergency_designations::user_id.eq(user_id))
        .select(DesignationRow::as_select())
        .first(conn)
        .optional()?)
}

/// Designates a user; false when they already were (nothing changes).
pub fn designate(conn: &mut DbConnection, row: &DesignationRow) -> Result<bool, StoreError> {
    if is_designated(conn, &row.user_id)? {
        return Ok(false);
    }
    diesel::insert_into(emergency_designations::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(true)
}

/// Withdraws a designation; false when there was none.
pub fn withdraw(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    let n = diesel::delete(
        emergency_designations::table.filter(emergency_designations::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// The designated users of `org_id` (every organisation when None), with their usernames,
/// by username.
pub fn designated(
    conn: &mut DbConnection,
    org_id: Option<&str>,
) -> Result<Vec<(DesignationRow, String)>, StoreError> {
    let mut query = emergency_designations::table
        .inner_join(users::table.on(users::id.eq(emergency_designations::user_id)))
        .select((DesignationRow::as_select(), users::username))
        .order(users::username.asc())
        .into_boxed();
    if let Some(org_id) = org_id {
        query = query.filter(emergency_designations::org_id.eq(org_id.to_owned()));
    }
    Ok(query.load(conn)?)
}

// ---- windows ----

pub fn insert(conn: &mut DbConnection, row: &EmergencyRow) -> Result<(), StoreError> {
    diesel::insert_into(emergency_sessions::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<EmergencyRow>, StoreError> {
    Ok(emergency_sessions::table
        .filter(emergency_sessions::id.eq(id))
        .select(EmergencyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Ends an open window; false when it had already ended (another instance, or the user,
/// was first).
pub fn end(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        emergency_sessions::table
            .filter(emergency_sessions::id.eq(id))
            .filter(emergency_sessions::ended_at.is_null()),
    )
    .set((
        emergency_sessions::ended_at.eq(now),
        emergency_sessions::end_reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Windows past their end that nobody has ended yet, oldest first, at most `limit`.
pub fn lapsed(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<EmergencyRow>, StoreError> {
    Ok(emergency_sessions::table
        .filter(emergency_sessions::ended_at.is_null())
        .filter(emergency_sessions::expires_at.le(now))
        .order(emergency_sessions::expires_at.asc())
        .limit(limit)
        .select(EmergencyRow::as_select())
        .load(conn)?)
}

/// The open windows of one SSO session.
pub fn open_for_session(
    conn: &mut DbConnection,
    session_handle: &str,
    now: NaiveDateTime,
) -> Result<Vec<EmergencyRow>, StoreError> {
    Ok(emergency_sessions::table
        .filter(emergency_sessions::session_handle.eq(session_handle))
        .filter(emergency_sessions::ended_at.is_null())
        .filter(emergency_sessions::expires_at.gt(now))
        .select(EmergencyRow::as_select())
        .load(conn)?)
}

/// Windows awaiting review, oldest first; of `org_ids` only when given.
pub fn awaiting_review(
    conn: &mut DbConnection,
    org_ids: Option<&[String]>,
    limit: i64,
) -> Result<Vec<EmergencyRow>, StoreError> {
    let mut query = emergency_sessions::table
        .filter(emergency_sessions::reviewed_at.is_null())
        .order((
            emergency_sessions::started_at.asc(),
            emergency_sessions::id.asc(),
        ))
        .limit(limit)
        .select(EmergencyRow::as_select())
        .into_boxed();
    if let Some(org_ids) = org_ids {
        query = query.filter(emergency_sessions::org_id.eq_any(org_ids.to_vec()));
    }
    Ok(query.load(conn)?)
}

/// Every window (reviewed or not), newest first; of `org_ids` only when given.
pub fn recent(
    conn: &mut DbConnection,
    org_ids: Option<&[String]>,
    limit: i64,
) -> Result<Vec<EmergencyRow>, StoreError> {
    let mut query = emergency_sessions::table
        .order((
            emergency_sessions::started_at.desc(),
            emergency_sessions::id.desc(),
        ))
        .limit(limit)
        .select(EmergencyRow::as_select())
        .into_boxed();
    if let Some(org_ids) = org_ids {
        query = query.filter(emergency_sessions::org_id.eq_any(org_ids.to_vec()));
    }
    Ok(query.load(conn)?)
}

/// Signs a review off; false when it already was.
pub fn sign_off(
    conn: &mut DbConnection,
    id: &str,
    reviewer: &str,
    note: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        emergency_sessions::table
            .filter(emergency_sessions::id.eq(id))
            .filter(emergency_sessions::reviewed_at.is_null()),
    )
    .set((
        emergency_sessions::reviewed_by.eq(reviewer),
        emergency_sessions::reviewed_at.eq(now),
        emergency_sessions::review_note.eq(note),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Reviews started before `started_before` and still open, whose organisation was not
/// told since `told_before` (or never): the overdue ones to mail about.
pub fn overdue(
    conn: &mut DbConnection,
    started_before: NaiveDateTime,
    told_before: NaiveDateTime,
    limit: i64,
) -> Result<Vec<EmergencyRow>, StoreError> {
    Ok(emergency_sessions::table
        .filter(emergency_sessions::reviewed_at.is_null())
        .filter(emergency_sessions::started_at.lt(started_before))
        .filter(
            emergency_sessions::overdue_notified_at
                .is_null()
                .or(emergency_sessions::overdue_notified_at.lt(told_before)),
        )
        .order(emergency_sessions::started_at.asc())
        .limit(limit)
        .select(EmergencyRow::as_select())
        .load(conn)?)
}

/// Records that the organisation was told about these overdue reviews.
pub fn mark_overdue_notified(
    conn: &mut DbConnection,
    ids: &[String],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(emergency_sessions::table.filter(emergency_sessions::id.eq_any(ids)))
        .set(emergency_sessions::overdue_notified_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Claims one overdue review for today's reminder: sets `overdue_notified_at` only while
/// it is still unreviewed and nobody told of it since `told_before`. Of two instances
/// reminding in the same minute, one wins each row (the other's update, re-checked
/// after the winner commits, changes nothing), so each review is mailed about once.
pub fn claim_overdue_notice(
    conn: &mut DbConnection,
    id: &str,
    told_before: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        emergency_sessions::table
            .filter(emergency_sessions::id.eq(id))
            .filter(emergency_sessions::reviewed_at.is_null())
            .filter(
                emergency_sessions::overdue_notified_at
                    .is_null()
                    .or(emergency_sessions::overdue_notified_at.lt(told_before)),
            ),
    )
    .set(emergency_sessions::overdue_notified_at.eq(now))
    .execute(conn)?;
    Ok(n > 0)
}

/// How many windows await review (as `awaiting_review` lists them, without a limit);
/// of `org_ids` only when given.
pub fn count_awaiting_review(
    conn: &mut DbConnection,
    org_ids: Option<&[String]>,
) -> Result<i64, StoreError> {
    let mut query = emergency_sessions::table
        .filter(emergency_sessions::reviewed_at.is_null())
        .count()
        .into_boxed();
    if let Some(org_ids) = org_ids {
        query = query.filter(emergency_sessions::org_id.eq_any(org_ids.to_vec()));
    }
    Ok(query.get_result(conn)?)
}
