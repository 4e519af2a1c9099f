//! OAuth grants and refresh tokens (DESIGN §9). A grant is the family of tokens one
//! authorization produced; revoking it ends them all. client_credentials tokens have no
//! grant: each stands for its client and is revoked alone, by `jti`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    pii::Pii,
    schema::{oidc_clients, oidc_grants, refresh_tokens, revoked_access_tokens, users},
    users::{StoredUser, UserRow},
};

/// A grant as stored; inserted whole (a new grant is never revoked).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
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
    /// The thumbprint of the DPoP key the grant was made with (RFC 9449): its refresh
    /// tokens need proofs too.
    pub dpop_jkt: Option<String>,
    /// The emergency window (`emergency_sessions.id`) the grant was made under: its
    /// tokens carry the emergency `acr` and claim while that window is open.
    pub emergency_id: Option<String>,
    /// The FHIR server (by base URL) the grant's access tokens are for (DESIGN §18);
    /// None: they are for the client.
    pub audience: Option<String>,
    /// The SMART launch context, as JSON.
    pub launch_context: Option<String>,
    /// The user's FHIR resource on that server, as an absolute URL (`fhirUser`).
    pub fhir_user: Option<String>,
}

/// Writes `grant` and returns the row as stored, without reading it back: this is on
/// the token endpoint's hot path.
pub fn insert(conn: &mut DbConnection, grant: &GrantRow) -> Result<GrantRow, StoreError> {
    diesel::insert_into(oidc_grants::table)
        .values(grant.clone())
        .execute(conn)?;
    Ok(grant.clone())
}

/// A grant that exists and is not revoked.
pub fn live(conn: &mut DbConnection, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(oidc_grants::table
        .filter(
            oidc_grants::id
                .eq(id)
                .and(oidc_grants::revoked_at.is_null()),
        )
        .select(GrantRow::as_select())
        .first(conn)
        .optional()?)
}

/// A live grant and its user (None for a grant without one), in one query: what
/// `/userinfo` and the admin API need for every request.
pub fn live_with_user(
    conn: &mut DbConnection,
    pii: &Pii,
    id: &str,
) -> Result<Option<(GrantRow, Option<UserRow>)>, StoreError> {
    let found: Option<(GrantRow, Option<StoredUser>)> = oidc_grants::table
        .left_join(users::table)
        .filter(
            oidc_grants::id
                .eq(id)
                .and(oidc_grants::revoked_at.is_null()),
        )
        .select((GrantRow::as_select(), Option::<StoredUser>::as_select()))
        .first(conn)
        .optional()?;
    found
        .map(|(grant, user)| Ok((grant, user.map(|u| u.open(pii)).transpose()?)))
        .transpose()
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

/// Whether a grant outlives the SSO session it was made in: only with `offline_access`.
pub fn outlives_session(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "offline_access")
}

/// The SSO sessions that still have live grants which end with the session (not
/// `offline_access`): what the session sweeper checks.
pub fn sessions_with_live_grants(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let pairs: Vec<(Option<String>, String)> = oidc_grants::table
        .filter(
            oidc_grants::revoked_at
                .is_null()
                .and(oidc_grants::session_handle.is_not_null()),
        )
        .select((oidc_grants::session_handle, oidc_grants::scope))
        .distinct()
        .load(conn)?;
    let mut handles: Vec<String> = pairs
        .into_iter()
        .filter(|(_, scope)| !outlives_session(scope))
        .filter_map(|(handle, _)| handle)
        .collect();
    handles.sort_unstable();
    handles.dedup();
    Ok(handles)
}

/// Revokes the live grants made under one SSO session, sparing those that outlive it
/// (`offline_access`) when `spare_offline` (the session ran out rather than being
/// ended); returns them, for back-channel logout. Each grant is revoked by its own
/// conditional UPDATE and returned only by the call that revoked it, so two instances
/// ending one session at once do not both tell its clients.
///
/// With `owner`, only that user's grants: a handle named by a person (the account page,
/// the admin API) ends nothing of anyone else's (issue 20 item 5).
pub fn revoke_for_session(
    conn: &mut DbConnection,
    session_handle: &str,
    owner: Option<&str>,
    spare_offline: bool,
    now: NaiveDateTime,
) -> Result<Vec<GrantRow>, StoreError> {
    let live: Vec<GrantRow> = oidc_grants::table
        .filter(
            oidc_grants::session_handle
                .eq(session_handle)
                .and(oidc_grants::revoked_at.is_null()),
        )
        .select(GrantRow::as_select())
        .load(conn)?;
    let mut revoked = Vec::new();
    for grant in live {
        if spare_offline && outlives_session(&grant.scope) {
            continue;
        }
        if owner.is_some_and(|o| grant.user_id.as_deref() != Some(o)) {
            continue;
        }
        if revoke(conn, &grant.id, now)? {
            revoked.push(grant);
        }
    }
    Ok(revoked)
}

/// The live grants made under emergency window `emergency_id` (DESIGN §15).
pub fn live_for_emergency(
    conn: &mut DbConnection,
    emergency_id: &str,
) -> Result<Vec<GrantRow>, StoreError> {
    Ok(oidc_grants::table
        .filter(
            oidc_grants::emergency_id
                .eq(emergency_id)
                .and(oidc_grants::revoked_at.is_null()),
        )
        .select(GrantRow::as_select())
        .load(conn)?)
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
    /// Unused, unexpired, of a live grant of the presenting client: it may be spent
    /// (by [`spend_refresh`]). With the grant's user, if it has one.
    Live(Box<(GrantRow, Option<UserRow>)>),
    /// Already used once: a replay. The grant (the family) is revoked.
    Reused(String),
    /// Live, but issued to another client: left unspent, so that client cannot burn it.
    OtherClient,
    /// Unknown, expired, or of a revoked grant.
    Invalid,
}

/// Looks at the refresh token `token_hash` presented by `client_id` without spending
/// it, so that every precondition of a rotation (the session, the user, the client's
/// organisations) can be checked before anything is committed: a refresh answered 503
/// must leave the token usable for the retry (issue 23 item 1).
///
/// The one thing done here is the answer to a replay of a spent token of this client:
/// its family is revoked. Another client's replay says nothing about this client's
/// family, and cannot end it.
pub fn present_refresh(
    conn: &mut DbConnection,
    pii: &Pii,
    token_hash: &str,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<Refresh, StoreError> {
    let Some((expires_at, used_at, grant, user)) = refresh_tokens::table
        .inner_join(oidc_grants::table.left_join(users::table))
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
            GrantRow::as_select(),
            Option::<StoredUser>::as_select(),
        ))
        .first::<(
            NaiveDateTime,
            Option<NaiveDateTime>,
            GrantRow,
            Option<StoredUser>,
        )>(conn)
        .optional()?
    else {
        return Ok(Refresh::Invalid);
    };
    if used_at.is_some() {
        if grant.client_id != client_id {
            return Ok(Refresh::Invalid);
        }
        revoke(conn, &grant.id, now)?;
        return Ok(Refresh::Reused(grant.id));
    }
    if expires_at <= now || grant.revoked_at.is_some() {
        return Ok(Refresh::Invalid);
    }
    if grant.client_id != client_id {
        return Ok(Refresh::OtherClient);
    }
    let user = user.map(|u| u.open(pii)).transpose()?;
    Ok(Refresh::Live(Box::new((grant, user))))
}

/// A rotation: spends `token_hash` (of grant `grant_id`, presented by `client_id`) and
/// stores `new_hash` in its place, in one atomic step, if the token is still unused and
/// unexpired and its grant live and the client's. False when it was not: another
/// presentation spent it first, or the grant was revoked since it was looked at.
///
/// On PostgreSQL that is one statement; on SQLite an IMMEDIATE transaction (the write
/// lock first, so it waits its turn instead of failing with SQLITE_BUSY).
#[allow(clippy::too_many_arguments)]
pub fn spend_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    grant_id: &str,
    new_hash: &str,
    client_id: &str,
    now: NaiveDateTime,
    new_expiry: NaiveDateTime,
) -> Result<bool, StoreError> {
    if let DbConnection::Postgresql(pg) = &mut *conn {
        let spent = spend_and_replace(pg, token_hash, new_hash, client_id, now, new_expiry)?;
        return Ok(spent.is_some());
    }
    super::write_transaction(conn, |c| {
        let live_grants_of_client = oidc_grants::table
            .filter(
                oidc_grants::id
                    .eq(grant_id)
                    .and(oidc_grants::client_id.eq(client_id))
                    .and(oidc_grants::revoked_at.is_null()),
            )
            .select(oidc_grants::id);
        let spent = diesel::update(
            refresh_tokens::table.filter(
                refresh_tokens::token_hash
                    .eq(token_hash)
                    .and(refresh_tokens::used_at.is_null())
                    .and(refresh_tokens::expires_at.gt(now))
                    .and(refresh_tokens::grant_id.eq_any(live_grants_of_client)),
            ),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(c)?;
        if spent == 1 {
            insert_refresh(c, new_hash, grant_id, now, new_expiry)?;
        }
        Ok(spent == 1)
    })
}

/// Undoes a [`spend_refresh`] whose answer could not be given (the audit event for it
/// could not be written): the new token is forgotten and the presented one is unspent,
/// so the client's retry with it is not taken for a replay.
pub fn unspend_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    super::write_transaction(conn, |c| {
        diesel::delete(refresh_tokens::table.find(new_hash)).execute(c)?;
        diesel::update(refresh_tokens::table.find(token_hash))
            .set(refresh_tokens::used_at.eq(None::<NaiveDateTime>))
            .execute(c)?;
        Ok(())
    })
}

/// Deletes a grant that was written but whose tokens never reached the client (its
/// refresh tokens go with it), so the code it was made from can be exchanged again.
pub fn forget(conn: &mut DbConnection, grant_id: &str) -> Result<(), StoreError> {
    super::write_transaction(conn, |c| {
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grant_id)))
            .execute(c)?;
        diesel::delete(oidc_grants::table.find(grant_id)).execute(c)?;
        Ok(())
    })
}

/// One statement: marks `token_hash` used and inserts `new_hash` for the same grant, if
/// the token is unused and unexpired and its grant live and `client_id`'s. The grant's
/// id when it did. Two presentations racing for one token: the second UPDATE waits for
/// the first's row lock, then re-checks `used_at` and matches nothing.
fn spend_and_replace(
    pg: &mut diesel::PgConnection,
    token_hash: &str,
    new_hash: &str,
    client_id: &str,
    now: NaiveDateTime,
    new_expiry: NaiveDateTime,
) -> Result<Option<String>, StoreError> {
    Ok(SpendAndReplace {
        token_hash,
        new_hash,
        client_id,
        now,
        new_expiry,
    }
    .get_result::<String>(pg)
    .optional()?)
}

/// The statement of [`spend_and_replace`]. Written out as a query fragment rather than
/// with `sql_query` so that diesel keeps it prepared on each connection: `sql_query`
/// is parsed and planned anew every time, and planning this statement cost PostgreSQL
/// more CPU than running it.
struct SpendAndReplace<'a> {
    token_hash: &'a str,
    new_hash: &'a str,
    client_id: &'a str,
    now: NaiveDateTime,
    new_expiry: NaiveDateTime,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SpendAndReplace<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Text, Timestamp};
        out.push_sql("WITH spent AS (UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE token_hash = ");
        out.push_bind_param::<Text, _>(self.token_hash)?;
        out.push_sql(" AND used_at IS NULL AND expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" AND grant_id IN (SELECT id FROM oidc_grants WHERE client_id = ");
        out.push_bind_param::<Text, _>(self.client_id)?;
        out.push_sql(
            " AND revoked_at IS NULL) RETURNING grant_id) \
             INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(self.new_hash)?;
        out.push_sql(", grant_id, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.new_expiry)?;
        out.push_sql(" FROM spent RETURNING grant_id");
        Ok(())
    }
}

impl diesel::query_builder::QueryId for SpendAndReplace<'_> {
    type QueryId = ();
    // Cached by its SQL text, which never changes.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for SpendAndReplace<'_> {
    type SqlType = diesel::sql_types::Text;
}

impl RunQueryDsl<diesel::PgConnection> for SpendAndReplace<'_> {}

/// The client of the grant a refresh token belongs to, spent or not.
pub fn refresh_token_client(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<String>, StoreError> {
    Ok(refresh_tokens::table
        .inner_join(oidc_grants::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(oidc_grants::client_id)
        .first(conn)
        .optional()?)
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

/// Whether a client_credentials access token (`jti`, issued to `client_id`) still
/// stands: its client exists and the token was not revoked.
pub fn client_token_live(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
) -> Result<bool, StoreError> {
    let revoked = revoked_access_tokens::table.find(jti);
    let found: i64 = oidc_clients::table
        .find(client_id)
        .filter(diesel::dsl::not(diesel::dsl::exists(revoked)))
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

/// Revokes one client_credentials access token until `expires_at`, when it would have
/// lapsed anyway (and [`purge`] forgets it). False if it was already revoked.
pub fn revoke_client_token(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    expires_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    let known: i64 = revoked_access_tokens::table
        .find(jti)
        .count()
        .get_result(conn)?;
    if known > 0 {
        return Ok(false);
    }
    diesel::insert_into(revoked_access_tokens::table)
        .values((
            revoked_access_tokens::jti.eq(jti),
            revoked_access_tokens::client_id.eq(client_id),
            revoked_access_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Deletes what can no longer mean anything, and returns how many rows went:
/// - refresh tokens past their expiry (spent or not: either way they are refused);
/// - grants revoked more than `access_lifetime` ago (every access token they carried has
///   expired, and a missing grant is refused just like a revoked one);
/// - grants without a session or refresh token older than `access_lifetime`
///   (client_credentials grants from before such tokens went without one);
/// - revocations of client_credentials tokens that have expired anyway.
///
/// Unrevoked grants made in a session stay: ending that session later still tells the
/// relying party (back-channel logout) through them.
pub fn purge(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    access_lifetime: chrono::Duration,
) -> Result<usize, StoreError> {
    let spent = now - access_lifetime;
    let mut gone = diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.le(now)))
        .execute(conn)?;
    let with_refresh = refresh_tokens::table
        .filter(refresh_tokens::grant_id.eq(oidc_grants::id))
        .select(refresh_tokens::token_hash);
    gone += diesel::delete(
        oidc_grants::table.filter(
            oidc_grants::revoked_at
                .le(spent)
                .or(oidc_grants::session_handle
                    .is_null()
                    .and(oidc_grants::created_at.le(spent))
                    .and(diesel::dsl::not(diesel::dsl::exists(with_refresh)))),
        ),
    )
    .execute(conn)?;
    gone += diesel::delete(
        revoked_access_tokens::table.filter(revoked_access_tokens::expires_at.le(now)),
    )
    .execute(conn)?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::{
        clients,
        testing::{self, t0},
    };

    fn grant(id: &str, user: Option<&str>, session: Option<&str>) -> GrantRow {
        GrantRow {
            id: id.into(),
            client_id: "c1".into(),
            user_id: user.map(str::to_owned),
            session_handle: session.map(str::to_owned),
            scope: "openid".into(),
            auth_time: None,
            amr: "pwd".into(),
            created_at: t0(),
            revoked_at: None,
            dpop_jkt: None,
            emergency_id: None,
            audience: None,
            launch_context: None,
            fhir_user: None,
        }
    }

    #[tokio::test]
    async fn purge_drops_only_what_nothing_can_use_any_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = testing::sqlite(&dir, 2).await;
        let user = testing::with_user(&store, None).await;
        let hour = Duration::hours(1);
        let (now, lifetime) = (t0() + hour * 2, hour);
        store
            .transaction(move |c| {
                clients::insert(c, &testing::client("c1"))?;
                let u = Some(user.as_str());
                for g in [
                    grant("revoked-long-ago", u, Some("s1")),
                    grant("revoked-just-now", u, Some("s1")),
                    grant("in-session", u, Some("s2")),
                    grant("old-cc", None, None),
                    grant("no-session-refreshable", u, None),
                ] {
                    insert(c, &g)?;
                }
                revoke(c, "revoked-long-ago", t0())?;
                revoke(c, "revoked-just-now", now)?;
                insert_refresh(c, "expired", "in-session", t0(), t0() + hour)?;
                insert_refresh(c, "live", "no-session-refreshable", t0(), now + hour)?;
                revoke_client_token(c, "c1", "jti-old", t0() + hour)?;
                revoke_client_token(c, "c1", "jti-live", now + hour)?;
                Ok(())
            })
            .await
            .unwrap();
        let gone = store.run(move |c| purge(c, now, lifetime)).await.unwrap();
        assert_eq!(
            gone, 4,
            "expired refresh, old revoked grant, old cc grant, old jti"
        );
        let left = store
            .run(move |c| {
                let grants: Vec<String> = oidc_grants::table
                    .select(oidc_grants::id)
                    .order(oidc_grants::id)
                    .load(c)?;
                let refresh: Vec<String> = refresh_tokens::table
                    .select(refresh_tokens::token_hash)
                    .load(c)?;
                let jtis: Vec<String> = revoked_access_tokens::table
                    .select(revoked_access_tokens::jti)
                    .load(c)?;
                Ok((grants, refresh, jtis))
            })
            .await
            .unwrap();
        assert_eq!(
            left.0,
            ["in-session", "no-session-refreshable", "revoked-just-now"]
        );
        assert_eq!(left.1, ["live"]);
        assert_eq!(left.2, ["jti-live"]);
    }
}
