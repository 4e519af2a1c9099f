//! The admin API's endpoints, one file per resource. Each handler resolves the caller,
//! parses the request, calls one admin service function and renders its answer; the
//! service checks roles and ranks, answers not found for organisations the caller cannot
//! see, and records the audit event.

pub mod audit;
pub mod clients;
pub mod emergency;
pub mod fhir_servers;
pub mod keys;
pub mod network;
pub mod orgs;
pub mod passkeys;
pub mod saml;
pub mod sessions;
pub mod upstream;
pub mod users;

use std::{future::Future, pin::Pin};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse,
    dev::Payload,
    web::{self, delete, get, post, put},
};
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use super::{
    Action, ApiError, Caller, caller, json_body,
    service::{self, Acting},
};
use crate::{
    saml::xml::MAX_METADATA_BYTES,
    startup::AppState,
    store::{orgs::OrgRow, users::UserRow},
    web::{RequestContext, error::AppError},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    user_routes(cfg);
    org_and_network_routes(cfg);
    client_and_key_routes(cfg);
    emergency_routes(cfg);
    upstream_routes(cfg);
}

// The route tables stay one route a line, so each reads as a table.

/// `/users`, their sessions included.
#[rustfmt::skip]
fn user_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", get().to(users::list_users))
        .route("/users", post().to(users::invite_user))
        .route("/users/{id}", get().to(users::show_user))
        .route("/users/{id}/unlock", post().to(users::unlock_user))
        .route("/users/{id}/force-reset", post().to(users::force_reset_user))
        .route("/users/{id}/remove-totp", post().to(users::remove_totp))
        .route("/users/{id}/disable", post().to(users::disable_user))
        .route("/users/{id}/enable", post().to(users::enable_user))
        .route("/users/{id}/role", put().to(users::set_role))
        .route("/users/{id}/username", put().to(users::rename_user))
        .route("/users/{id}/sessions", get().to(sessions::list_sessions))
        .route("/users/{id}/sessions", delete().to(sessions::end_sessions))
        .route("/users/{id}/sessions/{session}", delete().to(sessions::end_one_session))
        .route("/users/{id}/passkeys", get().to(passkeys::list_passkeys))
        .route("/users/{id}/passkeys/{passkey}", delete().to(passkeys::remove_passkey))
        .route("/users/{id}/fhir-users", get().to(fhir_servers::list_fhir_users))
        .route("/users/{id}/fhir-users/{server}", put().to(fhir_servers::set_fhir_user))
        .route("/users/{id}/fhir-users/{server}", delete().to(fhir_servers::clear_fhir_user));
}

/// `/orgs`, `/ip-blocks`, `/ip-allow-list` and `/audit`.
#[rustfmt::skip]
fn org_and_network_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orgs", get().to(orgs::list_orgs))
        .route("/orgs", post().to(orgs::create_org))
        .route("/orgs/{id}", get().to(orgs::show_org))
        .route("/orgs/{id}/policy", put().to(orgs::set_policy))
        .route("/orgs/{id}/force-reset", post().to(orgs::force_reset_org))
        .route("/orgs/{id}/branding", get().to(orgs::show_branding))
        .route("/orgs/{id}/branding", put().to(orgs::set_branding))
        // A logo is at most 256 KiB: a little more is read, so the answer can say so.
        .service(web::resource("/orgs/{id}/logo").app_data(web::PayloadConfig::new(300 * 1024)).route(put().to(orgs::set_logo)).route(delete().to(orgs::remove_logo)))
        .route("/ip-blocks", get().to(network::list_ip_blocks))
        .route("/ip-blocks/{ip}", delete().to(network::unblock_ip))
        .route("/ip-allow-list", get().to(network::list_allowed))
        .route("/ip-allow-list", post().to(network::add_allowed))
        .route("/ip-allow-list/{address}/{prefix}", delete().to(network::remove_allowed))
        .route("/audit", get().to(audit::query_audit))
        .route("/audit/export", get().to(audit::export_audit));
}

/// Emergency access (DESIGN §15): designations and the review of emergency sessions.
#[rustfmt::skip]
fn emergency_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{id}/emergency-access", put().to(emergency::grant_emergency_access))
        .route("/users/{id}/emergency-access", delete().to(emergency::withdraw_emergency_access))
        .route("/orgs/{id}/emergency-access", get().to(emergency::list_emergency_access))
        .route("/emergency-sessions", get().to(emergency::list_emergency_sessions))
        .route("/emergency-sessions/{id}", get().to(emergency::show_emergency_session))
        .route("/emergency-sessions/{id}/review", post().to(emergency::review_emergency_session));
}

/// Upstream identity providers (DESIGN §16): `/connectors`, their links.
#[rustfmt::skip]
fn upstream_routes(cfg: &mut web::ServiceConfig) {
    // Settings may carry a CA certificate chain: up to 64 KiB of PEM, escaped in JSON.
    let settings_body = || web::PayloadConfig::new(256 * 1024);
    cfg.service(web::resource("/connectors").app_data(settings_body()).route(get().to(upstream::list_connectors)).route(post().to(upstream::create_connector)))
        .service(web::resource("/connectors/{id}").app_data(settings_body()).route(get().to(upstream::show_connector)).route(put().to(upstream::update_connector)).route(delete().to(upstream::delete_connector)))
        .route("/connectors/{id}/links", get().to(upstream::list_connector_links))
        .route("/connectors/{id}/links", post().to(upstream::add_connector_link))
        .route("/connectors/{id}/links/{subject}", delete().to(upstream::remove_connector_link))
        .route("/users/{id}/links", get().to(upstream::list_user_links));
}

/// `/clients`, `/saml-sps` and `/signing-keys`.
#[rustfmt::skip]
fn client_and_key_routes(cfg: &mut web::ServiceConfig) {
    // Metadata is XML inside JSON: up to 1 MiB of XML, escaped.
    let metadata_body = web::PayloadConfig::new(2 * MAX_METADATA_BYTES + 64 * 1024);
    cfg.route("/clients", get().to(clients::list_clients))
        .route("/clients", post().to(clients::create_client))
        .route("/clients/{client_id}", get().to(clients::show_client))
        .route("/clients/{client_id}", put().to(clients::update_client))
        .route("/clients/{client_id}", delete().to(clients::delete_client))
        .route("/clients/{client_id}/secret", post().to(clients::rotate_client_secret))
        .route("/saml-sps", get().to(saml::list_sps))
        .service(web::resource("/saml-sps").app_data(metadata_body).route(post().to(saml::import_sp)))
        .route("/saml-sps/from-url", post().to(saml::import_sp_from_url))
        .route("/saml-sps/{id}/refresh", post().to(saml::refresh_sp))
        .route("/saml-sps/{id}", get().to(saml::show_sp))
        .route("/saml-sps/{id}", put().to(saml::update_sp))
        .route("/saml-sps/{id}", delete().to(saml::delete_sp))
        .route("/signing-keys", get().to(keys::list_signing_keys))
        .route("/signing-keys/rotate", post().to(keys::rotate_signing_keys))
        .route("/fhir-servers", get().to(fhir_servers::list_fhir_servers))
        .route("/fhir-servers", post().to(fhir_servers::create_fhir_server))
        .route("/fhir-servers/{id}", get().to(fhir_servers::show_fhir_server))
        .route("/fhir-servers/{id}", put().to(fhir_servers::update_fhir_server))
        .route("/fhir-servers/{id}", delete().to(fhir_servers::delete_fhir_server));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// Whether anything changed (false: it already was so).
    pub changed: bool,
}

/// What a handler answers.
pub type Reply = Result<HttpResponse, ApiError>;

/// 200 with `body` as JSON.
pub fn ok(body: impl Serialize) -> Reply {
    Ok(HttpResponse::Ok().json(body))
}

/// 201 with `body` as JSON.
pub fn created(body: impl Serialize) -> Reply {
    Ok(HttpResponse::Created().json(body))
}

/// 200 `{"changed": …}`.
pub fn done(changed: bool) -> Reply {
    ok(Done { changed })
}

/// An admin API request as its handler needs it: the application, the caller (from the
/// bearer token, checked against the database on every request) and the request's
/// context for the audit trail. Handlers take it last, so it is extracted after the
/// path, query and body, as the caller was resolved before.
pub struct AdminRequest {
    pub state: web::Data<AppState>,
    pub who: Caller,
    pub ctx: RequestContext,
    req: HttpRequest,
}

impl AdminRequest {
    /// The request's `Content-Type`, or empty.
    pub fn content_type(&self) -> &str {
        self.req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The caller, acting in this request.
    pub fn by(&self) -> Acting<'_> {
        Acting::new(&self.state, &self.who, &self.ctx)
    }

    /// The user behind a path's id, when the caller may take `action` and see them.
    pub async fn user(&self, action: Action, raw_id: &str) -> Result<UserRow, ApiError> {
        Ok(service::users::find(&self.state, &self.who, action, raw_id).await?)
    }

    /// The organisation behind a path's id, as `user`.
    pub async fn org(&self, action: Action, raw_id: &str) -> Result<OrgRow, ApiError> {
        Ok(service::orgs::find(&self.state, &self.who, action, raw_id).await?)
    }

    /// The JSON body, refusing unknown fields and wrong types with the field named.
    pub fn json<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        json_body(&self.req, body)
    }
}

impl FromRequest for AdminRequest {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let internal = |what: String| ApiError::App(AppError::Internal(what));
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| internal("no application state".into()))?;
            let ctx = RequestContext::extract(&req)
                .await
                .map_err(|e| internal(e.to_string()))?;
            let who = caller(&state, &req).await?;
            Ok(Self {
                state,
                who,
                ctx,
                req,
            })
        })
    }
}
