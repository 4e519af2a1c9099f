//! OpenID Connect relying parties (DESIGN §9).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::oidc_clients};

/// A relying party as stored; inserted whole.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_clients)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub token_endpoint_auth_method: String,
    pub jwks: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub id_token_alg: String,
    pub created_at: NaiveDateTime,
    /// JSON array of the organisation names whose users may sign in to it; None: any
    /// organisation (issue 20 item 9).
    pub allowed_orgs: Option<String>,
    /// May introspect tokens issued to other clients (a resource server, issue 20 item 11).
    pub introspection: bool,
    /// JSON array of the web origins allowed to call the token endpoints from a browser
    /// (CORS), "+" standing for the redirect URIs' origins; None: `["+"]` (issue 25).
    pub allowed_origins: Option<String>,
    /// Must push its authorization requests (PAR, RFC 9126) (issue 25).
    pub require_par: bool,
    /// Every token it gets is bound to a DPoP key (RFC 9449) (issue 25).
    pub require_dpop: bool,
    /// Held to the FAPI 2.0 security profile: PAR, DPoP, private_key_jwt, PKCE S256.
    pub fapi2: bool,
    /// Its users are asked which scopes it may have (issue 30: patient-facing apps).
    pub ask_consent: bool,
    /// Where the client publishes its JWKS (`private_key_jwt`), instead of `jwks`.
    pub jwks_uri: Option<String>,
    /// The JWA name its access tokens are signed with (issue 32).
    pub access_token_alg: String,
}

pub fn insert(conn: &mut DbConnection, client: &ClientRow) -> Result<(), StoreError> {
    diesel::insert_into(oidc_clients::table)
        .values(client.clone())
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(oidc_clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_many(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<ClientRow>, StoreError> {
    Ok(oidc_clients::table
        .filter(oidc_clients::client_id.eq_any(ids))
        .select(ClientRow::as_select())
        .load(conn)?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<ClientRow>, StoreError> {
    Ok(oidc_clients::table
        .order((
            oidc_clients::created_at.asc(),
            oidc_clients::client_id.asc(),
        ))
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// What an update may change: everything but the id, the secret and the creation time.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = oidc_clients, treat_none_as_null = true)]
pub struct ClientSettings {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub token_endpoint_auth_method: String,
    pub jwks: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub id_token_alg: String,
    pub allowed_orgs: Option<String>,
    pub introspection: bool,
    pub allowed_origins: Option<String>,
    pub require_par: bool,
    pub require_dpop: bool,
    pub fapi2: bool,
    pub ask_consent: bool,
    pub jwks_uri: Option<String>,
    pub access_token_alg: String,
}

pub fn update(
    conn: &mut DbConnection,
    client_id: &str,
    settings: &ClientSettings,
) -> Result<(), StoreError> {
    let changed = diesel::update(oidc_clients::table.find(client_id))
        .set(settings.clone())
        .execute(conn)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Replaces the secret's hash (None: the client has no secret any more).
pub fn set_secret_hash(
    conn: &mut DbConnection,
    client_id: &str,
    secret_hash: Option<&str>,
) -> Result<(), StoreError> {
    let changed = diesel::update(oidc_clients::table.find(client_id))
        .set(oidc_clients::secret_hash.eq(secret_hash))
        .execute(conn)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Every client's redirect URIs and allowed origins (both JSON), for the set of origins
/// any client allows (CORS preflight at `/token`, which names no client).
pub fn origin_sources(
    conn: &mut DbConnection,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    Ok(oidc_clients::table
        .select((oidc_clients::redirect_uris, oidc_clients::allowed_origins))
        .load(conn)?)
}

/// Deletes a client; its grants and refresh tokens go with it (ON DELETE CASCADE).
pub fn delete(conn: &mut DbConnection, client_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(oidc_clients::table.find(client_id)).execute(conn)? > 0)
}
