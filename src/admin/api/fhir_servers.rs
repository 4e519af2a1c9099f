//! `/fhir-servers`: FHIR servers registered as resource servers (DESIGN §18). Global:
//! super administrators.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminRequest, Reply, created, ok};
use crate::{
    admin::{
        Action, ErrorBody,
        service::fhir_servers::{self as service, FhirServerFields},
    },
    store::fhir_servers::FhirServerRow,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct FhirServerView {
    pub id: String,
    /// What `aud` (or `resource`) at /authorize names, and the access token's `aud`.
    pub base_url: String,
    pub display_name: String,
    /// The clinical SMART scopes it accepts, normalised.
    pub allowed_scopes: Vec<String>,
    /// The clients that may ask for tokens to it.
    pub allowed_clients: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(row: FhirServerRow) -> FhirServerView {
    FhirServerView {
        allowed_scopes: row.scopes(),
        allowed_clients: row.clients(),
        id: row.id,
        base_url: row.base_url,
        display_name: row.display_name,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }
}

/// A registration, whole (PUT replaces every field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FhirServerBody {
    pub base_url: String,
    pub display_name: String,
    /// Clinical SMART scopes, v1 or v2 (`patient/*.rs`, `user/Observation.read`).
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
}

impl From<FhirServerBody> for FhirServerFields {
    fn from(b: FhirServerBody) -> Self {
        Self {
            base_url: b.base_url,
            display_name: b.display_name,
            allowed_scopes: b.allowed_scopes,
            allowed_clients: b.allowed_clients,
        }
    }
}

#[utoipa::path(get, path = "/admin/api/v1/fhir-servers",
    responses((status = 200, body = Vec<FhirServerView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_fhir_servers(api: AdminRequest) -> Reply {
    let rows = service::list(&api.state, &api.who).await?;
    ok(rows.into_iter().map(view).collect::<Vec<_>>())
}

#[utoipa::path(post, path = "/admin/api/v1/fhir-servers", request_body = FhirServerBody,
    responses((status = 201, body = FhirServerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_fhir_server(body: web::Bytes, api: AdminRequest) -> Reply {
    let body: FhirServerBody = api.json(&body)?;
    created(view(service::create(api.by(), body.into()).await?))
}

#[utoipa::path(get, path = "/admin/api/v1/fhir-servers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = FhirServerView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_fhir_server(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(view(service::show(&api.state, &api.who, &path).await?))
}

#[utoipa::path(put, path = "/admin/api/v1/fhir-servers/{id}", params(("id" = String, Path)), request_body = FhirServerBody,
    responses((status = 200, body = FhirServerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_fhir_server(
    path: web::Path<String>,
    body: web::Bytes,
    api: AdminRequest,
) -> Reply {
    let body: FhirServerBody = api.json(&body)?;
    ok(view(service::update(api.by(), &path, body.into()).await?))
}

#[utoipa::path(delete, path = "/admin/api/v1/fhir-servers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = FhirServerView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_fhir_server(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(view(service::delete(api.by(), &path).await?))
}

/// A user's FHIR resource on one FHIR server: what their SMART tokens' `fhirUser` is.
#[derive(Debug, Serialize, ToSchema)]
pub struct FhirUserView {
    pub fhir_server: String,
    pub base_url: String,
    /// `Practitioner/123`, `Patient/abc`, `RelatedPerson/…` or `Person/…`.
    pub fhir_user: String,
}

impl From<service::FhirUser> for FhirUserView {
    fn from(f: service::FhirUser) -> Self {
        Self {
            fhir_server: f.fhir_server,
            base_url: f.base_url,
            fhir_user: f.fhir_user,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FhirUserBody {
    /// `Type/id`: a Practitioner, Patient, RelatedPerson or Person.
    pub fhir_user: String,
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}/fhir-users", params(("id" = String, Path)),
    responses((status = 200, body = Vec<FhirUserView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_fhir_users(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Read, &path).await?;
    let found = service::user_references(api.by(), &user).await?;
    ok(found
        .into_iter()
        .map(FhirUserView::from)
        .collect::<Vec<_>>())
}

/// Sets the user's FHIR resource on one FHIR server (by its id), replacing any.
#[utoipa::path(put, path = "/admin/api/v1/users/{id}/fhir-users/{server}",
    params(("id" = String, Path), ("server" = String, Path)), request_body = FhirUserBody,
    responses((status = 200, body = FhirUserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_fhir_user(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    api: AdminRequest,
) -> Reply {
    let (id, server) = path.into_inner();
    let body: FhirUserBody = api.json(&body)?;
    let user = api.user(Action::Manage, &id).await?;
    let set = service::set_user_reference(api.by(), &user, &server, &body.fhir_user).await?;
    ok(FhirUserView::from(set))
}

/// Removes the user's FHIR resource on one FHIR server.
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/fhir-users/{server}",
    params(("id" = String, Path), ("server" = String, Path)),
    responses((status = 200, body = FhirUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn clear_fhir_user(path: web::Path<(String, String)>, api: AdminRequest) -> Reply {
    let (id, server) = path.into_inner();
    let user = api.user(Action::Manage, &id).await?;
    let cleared = service::clear_user_reference(api.by(), &user, &server).await?;
    ok(FhirUserView::from(cleared))
}
