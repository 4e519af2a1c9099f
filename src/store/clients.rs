//! OpenID Connect relying parties (DESIGN §9).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::oidc_clients};

#[derive(Debug, Clone, Queryable, Selectable)]
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
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = oidc_clients)]
pub struct NewClient {
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
}

pub fn insert(conn: &mut DbConnection, client: &NewClient) -> Result<(), StoreError> {
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
