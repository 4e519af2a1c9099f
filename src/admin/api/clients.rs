//! `/clients`: OpenID Connect relying parties (DESIGN §9). Global: super administrators.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminRequest, Done};
use crate::{
    admin::{
        Action, ApiError, ErrorBody,
        service::clients::{self as service, ClientChange},
    },
    oidc::clients::ClientSpec,
    store::clients::ClientRow,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: String,
    pub public: bool,
    /// Whether a secret is set (never the secret: only its hash is kept).
    pub has_secret: bool,
    /// The client's public keys (`private_key_jwt`).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Or where the client publishes them (`private_key_jwt`).
    pub jwks_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`: ID tokens and back-channel logout tokens.
    pub id_token_signed_response_alg: String,
    /// `RS256`, `ES256` or `EdDSA`: access tokens (RFC 9068 JWTs).
    pub access_token_signed_response_alg: String,
    /// The organisations (by name) whose users may sign in to it; null: every
    /// organisation.
    pub allowed_orgs: Option<Vec<String>>,
    /// May introspect tokens issued to other clients (a resource server).
    pub introspection: bool,
    /// Web origins a browser app may call /token, /userinfo, /revoke from (CORS), as
    /// registered; "+" stands for the redirect URIs' origins.
    pub allowed_origins: Vec<String>,
    /// The origins that come to, "+" expanded.
    pub web_origins: Vec<String>,
    /// Must push its authorization requests to `/par` (RFC 9126).
    pub require_pushed_authorization_requests: bool,
    /// Every token it gets is bound to a DPoP key (RFC 9449).
    pub dpop_bound_access_tokens: bool,
    /// Held to the FAPI 2.0 security profile (PAR, DPoP, private_key_jwt, PKCE S256).
    pub fapi2: bool,
    /// Its users are asked which of the requested scopes it may have.
    pub ask_consent: bool,
    pub created_at: DateTime<Utc>,
}

pub fn client_view(row: &ClientRow) -> ClientView {
    ClientView {
        client_id: row.client_id.clone(),
        name: row.name.clone(),
        redirect_uris: row.redirect_uri_list(),
        post_logout_redirect_uris: row.post_logout_uri_list(),
        grant_types: row.grant_list(),
        scopes: row.scope_list(),
        token_endpoint_auth_method: row.token_endpoint_auth_method.clone(),
        public: row.is_public(),
        has_secret: row.secret_hash.is_some(),
        jwks: row
            .jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        jwks_uri: row.jwks_uri.clone(),
        backchannel_logout_uri: row.backchannel_logout_uri.clone(),
        id_token_signed_response_alg: row.id_token_alg.clone(),
        access_token_signed_response_alg: row.access_token_alg.clone(),
        allowed_orgs: row.allowed_org_list(),
        introspection: row.introspection,
        allowed_origins: row.allowed_origin_list(),
        web_origins: row.web_origins(),
        require_pushed_authorization_requests: row.require_par,
        dpop_bound_access_tokens: row.require_dpop,
        fapi2: row.fapi2,
        ask_consent: row.ask_consent,
        created_at: row.created_at.and_utc(),
    }
}

/// A client with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientWithSecret {
    pub client_id: String,
    /// Present when a new secret was issued: Gatehouse keeps only its hash.
    pub client_secret: Option<String>,
    pub client: ClientView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (SPA, native app) has no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
    /// Default: authorization_code and refresh_token.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Default: openid profile email offline_access.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Default: `client_secret_basic`, or `none` for a public client.
    pub token_endpoint_auth_method: Option<String>,
    /// A JWKS document, for `private_key_jwt`.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Or where the client publishes its JWKS (https, or http on loopback), for
    /// `private_key_jwt`: read when needed, kept five minutes, and read again for an
    /// assertion signed by a key not among them (at most every 30 s).
    pub jwks_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`: the signature of its ID tokens and
    /// back-channel logout tokens.
    pub id_token_signed_response_alg: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`: the signature of its access tokens (RFC 9068
    /// JWTs), checked by resource servers against `/jwks`. ES256 and EdDSA sign about ten
    /// times faster than RS256.
    pub access_token_signed_response_alg: Option<String>,
    /// Organisation names whose users may sign in to it. Left out or null: users of
    /// every organisation (fine with one organisation; name them where there are several).
    pub allowed_orgs: Option<Vec<String>>,
    /// May introspect tokens issued to other clients (a resource server). Default false.
    #[serde(default)]
    pub introspection: bool,
    /// Web origins (`https://app.example.org`) a browser app may call the token
    /// endpoints from; "+" stands for the redirect URIs' origins. Default: `["+"]`.
    pub allowed_origins: Option<Vec<String>>,
    /// Must push its authorization requests to `/par` (RFC 9126). Default false.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// Every token it gets is bound to a DPoP key (RFC 9449). Default false.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The FAPI 2.0 security profile: PAR and DPoP required, `private_key_jwt`, PKCE
    /// S256. Default false.
    #[serde(default)]
    pub fapi2: bool,
    /// Ask each user which of the requested scopes the client may have (a patient-facing
    /// app). Default false: the registration is the consent.
    #[serde(default)]
    pub ask_consent: bool,
}

#[utoipa::path(get, path = "/admin/api/v1/clients",
    responses((status = 200, body = Vec<ClientView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_clients(api: AdminRequest) -> Result<HttpResponse, ApiError> {
    let rows = service::list(&api.state, &api.who).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(client_view).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_client(
    path: web::Path<String>,
    api: AdminRequest,
) -> Result<HttpResponse, ApiError> {
    let row = service::find(&api.state, &api.who, &path).await?;
    Ok(HttpResponse::Ok().json(client_view(&row)))
}

/// Registers a relying party (the same checks as `gatehouse client create`). The secret
/// is in this answer only.
#[utoipa::path(post, path = "/admin/api/v1/clients", request_body = NewClientBody,
    responses((status = 201, body = ClientWithSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_client(body: web::Bytes, api: AdminRequest) -> Result<HttpResponse, ApiError> {
    api.who.require(Action::Global)?;
    let body: NewClientBody = api.json(&body)?;
    let spec = ClientSpec {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        public: body.public,
        grant_types: body.grant_types,
        scopes: body.scopes,
        auth_method: body.token_endpoint_auth_method,
        jwks: body.jwks.map(|j| j.to_string()),
        jwks_uri: body.jwks_uri,
        backchannel_logout_uri: body.backchannel_logout_uri,
        id_token_alg: body.id_token_signed_response_alg,
        access_token_alg: body.access_token_signed_response_alg,
        allowed_orgs: body.allowed_orgs,
        introspection: body.introspection,
        allowed_origins: body.allowed_origins,
        require_par: body.require_pushed_authorization_requests,
        require_dpop: body.dpop_bound_access_tokens,
        fapi2: body.fapi2,
        ask_consent: body.ask_consent,
    };
    let registered = service::register(api.by(), spec).await?;
    let row = service::find(&api.state, &api.who, &registered.client_id).await?;
    Ok(HttpResponse::Created().json(ClientWithSecret {
        client_id: registered.client_id,
        client_secret: registered
            .client_secret
            .map(|s| s.expose_secret().to_owned()),
        client: client_view(&row),
    }))
}

/// A change to a client; fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdateBody {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// Moving to `client_secret_basic`/`_post` issues a secret (in the answer); moving
    /// away from them deletes it; `none` makes the client public.
    pub token_endpoint_auth_method: Option<String>,
    /// Replaces a `jwks_uri`.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Replaces a `jwks`.
    pub jwks_uri: Option<String>,
    /// An empty string removes it.
    pub backchannel_logout_uri: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    pub access_token_signed_response_alg: Option<String>,
    /// Organisation names whose users may sign in to it; null admits every organisation;
    /// left out, unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_orgs: Option<Option<Vec<String>>>,
    pub introspection: Option<bool>,
    /// Web origins for browser apps; null goes back to `["+"]` (the redirect URIs');
    /// left out, unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_origins: Option<Option<Vec<String>>>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub dpop_bound_access_tokens: Option<bool>,
    pub fapi2: Option<bool>,
    pub ask_consent: Option<bool>,
}

/// A field that may be sent as null: `Some(None)` for null, `None` when left out.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

impl From<ClientUpdateBody> for ClientChange {
    fn from(body: ClientUpdateBody) -> Self {
        Self {
            name: body.name,
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            grant_types: body.grant_types,
            scopes: body.scopes,
            auth_method: body.token_endpoint_auth_method,
            jwks: body.jwks.map(|j| j.to_string()),
            jwks_uri: body.jwks_uri,
            backchannel_logout_uri: body.backchannel_logout_uri,
            id_token_alg: body.id_token_signed_response_alg,
            access_token_alg: body.access_token_signed_response_alg,
            allowed_orgs: body.allowed_orgs,
            introspection: body.introspection,
            allowed_origins: body.allowed_origins,
            require_par: body.require_pushed_authorization_requests,
            require_dpop: body.dpop_bound_access_tokens,
            fapi2: body.fapi2,
            ask_consent: body.ask_consent,
        }
    }
}

#[utoipa::path(put, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)), request_body = ClientUpdateBody,
    responses((status = 200, body = ClientWithSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_client(
    path: web::Path<String>,
    body: web::Bytes,
    api: AdminRequest,
) -> Result<HttpResponse, ApiError> {
    let row = service::find(&api.state, &api.who, &path).await?;
    let body: ClientUpdateBody = api.json(&body)?;
    let (updated, secret) = service::update(api.by(), &row.client_id, body.into()).await?;
    Ok(HttpResponse::Ok().json(ClientWithSecret {
        client_id: updated.client_id.clone(),
        client_secret: secret.map(|s| s.expose_secret().to_owned()),
        client: client_view(&updated),
    }))
}

/// Deletes a client; every grant it holds (and so every token) goes with it.
#[utoipa::path(delete, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_client(
    path: web::Path<String>,
    api: AdminRequest,
) -> Result<HttpResponse, ApiError> {
    service::delete(api.by(), &path).await?;
    Ok(HttpResponse::Ok().json(Done { changed: true }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    pub client_id: String,
    /// Shown only now; the previous secret no longer works (on other instances, within
    /// two seconds).
    pub client_secret: String,
}

/// Issues a new secret for a confidential client; the old one stops working at once
/// (other instances follow within two seconds).
#[utoipa::path(post, path = "/admin/api/v1/clients/{client_id}/secret", params(("client_id" = String, Path)),
    responses((status = 200, body = NewSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_client_secret(
    path: web::Path<String>,
    api: AdminRequest,
) -> Result<HttpResponse, ApiError> {
    let (client_id, secret) = service::rotate_secret(api.by(), &path).await?;
    Ok(HttpResponse::Ok().json(NewSecret {
        client_id,
        client_secret: secret.expose_secret().to_owned(),
    }))
}
