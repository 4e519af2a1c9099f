//! OAuth grants and refresh tokens (DESIGN §9). A grant is the family of tokens one
//! authorization produced; revoking it ends them all.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{oidc_grants, refresh_tokens},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = oidc_grants)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_handle: Option<String>,
    pub scope: String,
    pub auth_time: Option<i64>,
    pub amr: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = oidc_grants)]
pub struct NewGrant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_handle: Option<String>,
    pub scope: String,
    pub auth_time: Option<i64>,
    pub amr: String,
    pub created_at: NaiveDateTime,
}

/// Writes `grant` and returns the row as stored (a new grant is never revoked), without
/// reading it back: this is on the token endpoint's hot path.
pub fn insert(conn: &mut DbConnection, grant: &NewGrant) -> Result<GrantRow, StoreError> {
    diesel::insert_into(oidc_grants::table)
        .values(grant.clone())
        .execute(conn)?;
    Ok(GrantRow {
        id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        user_id: grant.user_id.clone(),
        session_handle: grant.session_handle.clone(),
        scope: grant.scope.clone(),
        auth_time: grant.auth_time,
        amr: grant.amr.clone(),
        created_at: grant.created_at,
        revoked_at: None,
    })
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(oidc_grants::table
        .find(id)
        .select(GrantRow::as_select())
        .first(conn)
        .optional()?)
}

/// A grant that exists and is not revoked.
pub fn live(conn: &mut DbConnection, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(find(conn, id)?.filter(|g| g.revoked_at.is_none()))
}

pub fn revoke(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    Ok(diesel::update(
        oidc_grants::table.filter(
            oidc_grants::id
                .eq(id)
                .and(oidc_grants::revoked_at.is_null()),
        ),
    )
    .set(oidc_grants::revoked_at.eq(now))
    .execute(conn)?
        > 0)
}

/// Revokes every live grant of a user except those made under session `keep`; returns
/// them (for back-channel logout).
pub fn revoke_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
    now: NaiveDateTime,
) -> Result<Vec<GrantRow>, StoreError> {
    let keep = keep.unwrap_or("");
    let filter = oidc_grants::user_id
        .eq(user_id)
        .and(oidc_grants::revoked_at.is_null())
        .and(
            oidc_grants::session_handle
                .is_null()
                .or(oidc_grants::session_handle.ne(keep)),
        );
    let live: Vec<GrantRow> = oidc_grants::table
        .filter(filter)
        .select(GrantRow::as_select())
        .load(conn)?;
    diesel::update(oidc_grants::table.filter(filter))
        .set(oidc_grants::revoked_at.eq(now))
        .execute(conn)?;
    Ok(live)
}

/// Revokes every live grant made under one SSO session; returns them.
pub fn revoke_for_session(
    conn: &mut DbConnection,
    session_handle: &str,
    now: NaiveDateTime,
) -> Result<Vec<GrantRow>, StoreError> {
    let filter = oidc_grants::session_handle
        .eq(session_handle)
        .and(oidc_grants::revoked_at.is_null());
    let live: Vec<GrantRow> = oidc_grants::table
        .filter(filter)
        .select(GrantRow::as_select())
        .load(conn)?;
    diesel::update(oidc_grants::table.filter(filter))
        .set(oidc_grants::revoked_at.eq(now))
        .execute(conn)?;
    Ok(live)
}

pub fn insert_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    grant_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::grant_id.eq(grant_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum Refresh {
    /// Unused, unexpired, of a live grant: now marked used (one conditional UPDATE, so two
    /// racing presentations cannot both rotate it).
    Rotated(GrantRow),
    /// Already used once: a replay. The caller revokes the family.
    Reused(String),
    /// Live, but issued to another client: left unspent, so that client cannot burn it.
    OtherClient,
    /// Unknown, expired, or of a revoked grant.
    Invalid,
}

/// Spends the refresh token `token_hash` presented by `client_id`.
pub fn use_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<Refresh, StoreError> {
    let Some((grant_id, expires_at, used_at)) = refresh_tokens::table
        .find(token_hash)
        .select((
            refresh_tokens::grant_id,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
        ))
        .first::<(String, NaiveDateTime, Option<NaiveDateTime>)>(conn)
        .optional()?
    else {
        return Ok(Refresh::Invalid);
    };
    if used_at.is_some() {
        return Ok(Refresh::Reused(grant_id));
    }
    if expires_at <= now {
        return Ok(Refresh::Invalid);
    }
    let Some(grant) = live(conn, &grant_id)? else {
        return Ok(Refresh::Invalid);
    };
    if grant.client_id != client_id {
        return Ok(Refresh::OtherClient);
    }
    let marked = diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::token_hash
                .eq(token_hash)
                .and(refresh_tokens::used_at.is_null()),
        ),
    )
    .set(refresh_tokens::used_at.eq(now))
    .execute(conn)?;
    if marked != 1 {
        return Ok(Refresh::Reused(grant_id));
    }
    Ok(Refresh::Rotated(grant))
}

/// The grant of an unused, unexpired refresh token (introspection and revocation).
pub fn refresh_grant(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<(GrantRow, NaiveDateTime, NaiveDateTime)>, StoreError> {
    let Some((grant_id, created_at, expires_at, used_at)) = refresh_tokens::table
        .find(token_hash)
        .select((
            refresh_tokens::grant_id,
            refresh_tokens::created_at,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
        ))
        .first::<(String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if used_at.is_some() || expires_at <= now {
        return Ok(None);
    }
    Ok(live(conn, &grant_id)?.map(|g| (g, created_at, expires_at)))
}
