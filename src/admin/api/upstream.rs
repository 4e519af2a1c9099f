//! `/connectors`: an organisation's upstream identity providers (DESIGN §16), and the
//! links from their identities to accounts (`/connectors/{id}/links`,
//! `/users/{id}/links`). Organisation administrators manage their own organisation's;
//! super administrators every one.

use actix_web::web;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{AdminRequest, Done, Reply, created, done, ok};
use crate::{
    admin::{
        Action, ApiError, ErrorBody,
        service::{
            object_id,
            upstream::{self as service, ConnectorFields, ConnectorView, LinkView, NewConnector},
        },
    },
    domain::{ConnectorSettings, UpstreamProtocol},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConnectorQuery {
    /// Organisation id; default: every organisation the caller manages.
    pub org: Option<String>,
}

/// A connector to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnectorBody {
    /// Organisation id; default: the caller's own.
    pub org_id: Option<String>,
    /// Its name in URLs: 1 to 40 of a-z, 0-9 and -, unique across organisations.
    pub slug: String,
    /// The sign-in button's text.
    pub display_name: String,
    /// `oidc` (default) or `saml`.
    pub protocol: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// The settings document: `{"oidc": {"issuer", "client_id", "client_auth", "scopes",
    /// "ca_pem"}, "accounts": {"just_in_time", "trust_upstream_mfa", "mfa_acr_values",
    /// "username_claim", "email_claim", "name_claim", "groups_claim", "role_map",
    /// "default_role", "show_on_login", "fhir_user": {"claim", "fhir_server"}}}`; unknown
    /// fields are refused.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// The client secret at the upstream (write-only: never shown again).
    pub client_secret: Option<String>,
    /// Email domains whose users are sent to this connector.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// A connector's new fields: everything is replaced, but a secret left out keeps the
/// stored one and an empty one removes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorUpdateBody {
    pub slug: String,
    pub display_name: String,
    /// `oidc` (default) or `saml`.
    pub protocol: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Left out: kept; empty: removed; else replaced.
    pub client_secret: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

fn protocol(raw: Option<&str>) -> Result<UpstreamProtocol, ApiError> {
    match raw {
        None | Some("oidc") => Ok(UpstreamProtocol::Oidc),
        Some("saml") => Ok(UpstreamProtocol::Saml),
        Some(_) => Err(ApiError::BadRequest("protocol: one of oidc, saml".into())),
    }
}

/// The settings document, refusing unknown fields with their path named.
pub fn settings(doc: serde_json::Value) -> Result<ConnectorSettings, ApiError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let what = e.into_inner().to_string();
        if path == "." {
            ApiError::BadRequest(format!("settings: {what}"))
        } else {
            ApiError::BadRequest(format!("settings.{path}: {what}"))
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn fields(
    slug: String,
    display_name: String,
    raw_protocol: Option<&str>,
    enabled: Option<bool>,
    doc: serde_json::Value,
    client_secret: Option<String>,
    domains: Vec<String>,
) -> Result<ConnectorFields, ApiError> {
    Ok(ConnectorFields {
        slug,
        display_name,
        protocol: protocol(raw_protocol)?,
        enabled: enabled.unwrap_or(true),
        settings: settings(doc)?,
        client_secret: client_secret.map(SecretString::from),
        domains,
    })
}

/// The connectors of the organisation, or of every organisation the caller manages.
#[utoipa::path(get, path = "/admin/api/v1/connectors", params(ConnectorQuery),
    responses((status = 200, body = Vec<ConnectorView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_connectors(query: web::Query<ConnectorQuery>, api: AdminRequest) -> Reply {
    let org = query.org.as_deref().map(object_id).transpose()?;
    ok(service::list_connectors(&api.state, &api.who, org.as_deref()).await?)
}

/// Creates a connector. The secret is sealed and never shown again.
#[utoipa::path(post, path = "/admin/api/v1/connectors", request_body = NewConnectorBody,
    responses((status = 201, body = ConnectorView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_connector(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(Action::Manage)?;
    let body: NewConnectorBody = api.json(&body)?;
    let org = match (body.org_id, &api.who.org_id) {
        (Some(org), _) => org,
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(ApiError::BadRequest("org_id: required".into())),
    };
    let fields = fields(
        body.slug,
        body.display_name,
        body.protocol.as_deref(),
        body.enabled,
        body.settings,
        body.client_secret,
        body.domains,
    )?;
    created(service::create_connector(api.by(), NewConnector { org, fields }).await?)
}

#[utoipa::path(get, path = "/admin/api/v1/connectors/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ConnectorView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_connector(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(service::show_connector(&api.state, &api.who, &path).await?)
}

/// Replaces a connector's fields (its organisation stays).
#[utoipa::path(put, path = "/admin/api/v1/connectors/{id}", params(("id" = String, Path)), request_body = ConnectorUpdateBody,
    responses((status = 200, body = ConnectorView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_connector(
    path: web::Path<String>,
    body: web::Bytes,
    api: AdminRequest,
) -> Reply {
    // Not found before malformed: nothing about a connector one cannot see.
    service::show_connector(&api.state, &api.who, &path).await?;
    let body: ConnectorUpdateBody = api.json(&body)?;
    let fields = fields(
        body.slug,
        body.display_name,
        body.protocol.as_deref(),
        body.enabled,
        body.settings,
        body.client_secret,
        body.domains,
    )?;
    ok(service::update_connector(api.by(), &path, fields).await?)
}

/// Deletes a connector with its domains and links; the linked accounts stay.
#[utoipa::path(delete, path = "/admin/api/v1/connectors/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_connector(path: web::Path<String>, api: AdminRequest) -> Reply {
    service::delete_connector(api.by(), &path).await?;
    done(true)
}

/// The connector's links, oldest first.
#[utoipa::path(get, path = "/admin/api/v1/connectors/{id}/links", params(("id" = String, Path)),
    responses((status = 200, body = Vec<LinkView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_connector_links(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(service::list_links(&api.state, &api.who, &path).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The upstream's identifier for the person (`sub`), 1 to 255 bytes.
    pub subject: String,
    /// The account, of the connector's organisation.
    pub user_id: String,
}

/// Links an upstream identity to an account of the connector's organisation.
#[utoipa::path(post, path = "/admin/api/v1/connectors/{id}/links", params(("id" = String, Path)), request_body = LinkBody,
    responses((status = 201, body = LinkView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_connector_link(
    path: web::Path<String>,
    body: web::Bytes,
    api: AdminRequest,
) -> Reply {
    service::show_connector(&api.state, &api.who, &path).await?;
    let body: LinkBody = api.json(&body)?;
    let user = api.user(Action::Manage, &body.user_id).await?;
    created(service::add_link(api.by(), &path, &body.subject, &user).await?)
}

/// Removes a link; the subject is URL-encoded in the path.
#[utoipa::path(delete, path = "/admin/api/v1/connectors/{id}/links/{subject}", params(("id" = String, Path), ("subject" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_connector_link(path: web::Path<(String, String)>, api: AdminRequest) -> Reply {
    let (id, subject) = path.into_inner();
    service::remove_link(api.by(), &id, &subject).await?;
    done(true)
}

/// The upstream identities linked to the user, oldest first.
#[utoipa::path(get, path = "/admin/api/v1/users/{id}/links", params(("id" = String, Path)),
    responses((status = 200, body = Vec<LinkView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_user_links(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Manage, &path).await?;
    ok(service::links_of_user(&api.state, &api.who, &user).await?)
}
