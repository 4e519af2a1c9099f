//! `/saml-sps`: SAML service providers (DESIGN §10). Global: super administrators.

use actix_web::{HttpResponse, http::StatusCode, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminRequest, Done, Reply, done, ok};
use crate::{
    admin::{Action, ApiError, ErrorBody, service::saml as service},
    saml::providers::{self, ImportSettings, ServiceProvider, SettingsChange},
    saml::{metadata_fetch, metadata_refresh},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub binding: String,
    pub location: String,
    pub index: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpView {
    /// The handle in paths: the entity id, base64url without padding (entity ids are URLs).
    pub id: String,
    pub entity_id: String,
    pub name: String,
    /// The HTTP-POST AssertionConsumerService endpoints (the only binding answered).
    pub acs: Vec<EndpointView>,
    /// In the answer to an import: ACS endpoints of other bindings (Artifact, PAOS,
    /// SimpleSign…) the metadata listed and Gatehouse did not register. Empty otherwise.
    pub skipped_acs: Vec<EndpointView>,
    pub slo: Vec<EndpointView>,
    pub name_id_format: String,
    /// `pairwise`, `user_id`, `username`, `email` or `random`.
    pub name_id_source: String,
    /// What the SP is released → the SAML attribute name it goes out under: a field
    /// (`email`, `name`, `username`, `roles`, `organisation`) under the name chosen for
    /// it, or a well-known attribute (`mail`, `eduPersonPrincipalName`, `subject-id`…)
    /// under its URI name.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// In the answer to an import: attributes the SP's metadata requested that
    /// Gatehouse cannot supply. Empty otherwise.
    pub unsupplied_attributes: Vec<String>,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub require_signed_requests: bool,
    pub encrypt_assertions: bool,
    /// Accepts sign-ins started at `/saml/sso/init` (off unless turned on).
    pub idp_initiated: bool,
    /// The only RelayStates such a sign-in may carry (exact strings).
    pub idp_initiated_relay_states: Vec<String>,
    pub has_signing_certificate: bool,
    pub has_encryption_certificate: bool,
}

pub fn sp_view(sp: ServiceProvider) -> SpView {
    let endpoints = |list: &[providers::Endpoint]| {
        list.iter()
            .map(|e| EndpointView {
                binding: e.binding.clone(),
                location: e.location.clone(),
                index: e.index,
            })
            .collect()
    };
    SpView {
        id: URL_SAFE_NO_PAD.encode(&sp.entity_id),
        acs: endpoints(&sp.acs),
        skipped_acs: endpoints(&sp.skipped_acs),
        slo: endpoints(&sp.slo),
        has_signing_certificate: !sp.signing_certs.is_empty(),
        has_encryption_certificate: !sp.encryption_certs.is_empty(),
        entity_id: sp.entity_id,
        name: sp.name,
        name_id_format: sp.name_id_format,
        name_id_source: sp.name_id_source.as_str().to_owned(),
        attributes: sp.attributes,
        unsupplied_attributes: sp.unsupplied_attributes,
        sign_assertion: sp.sign_assertion,
        sign_response: sp.sign_response,
        require_signed_requests: sp.require_signed_requests,
        encrypt_assertions: sp.encrypt_assertions,
        idp_initiated: sp.idp_initiated,
        idp_initiated_relay_states: sp.idp_initiated_relay_states,
    }
}

/// The SP behind a path handle (super administrators only, asked first).
async fn find(api: &AdminRequest, raw: &str) -> Result<ServiceProvider, ApiError> {
    api.who.require(Action::Global)?;
    Ok(service::find(&api.state, &api.who, &entity_id(raw)?).await?)
}

/// The entity id behind a path handle, or 404.
fn entity_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 2 * providers::MAX_ENTITY_ID_LEN {
        return Err(ApiError::NotFound);
    }
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/admin/api/v1/saml-sps",
    responses((status = 200, body = Vec<SpView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_sps(api: AdminRequest) -> Reply {
    let all = service::list(&api.state, &api.who).await?;
    ok(all.into_iter().map(sp_view).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")),
    responses((status = 200, body = SpView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_sp(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(sp_view(find(&api, &path).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpImportBody {
    /// The SP's metadata: one EntityDescriptor with an SPSSODescriptor (at most 1 MiB;
    /// DTDs and external entities are refused).
    pub metadata: String,
    pub name: Option<String>,
    /// `persistent` (default unless the SP asks for another), `email`, `transient`,
    /// `unspecified`.
    pub name_id_format: Option<String>,
    pub name_id_source: Option<String>,
    /// The whole release list: field → SAML attribute name, or well-known attribute
    /// (`mail`…) → its name (default: what the metadata's RequestedAttributes ask for
    /// that Gatehouse has, else every field under its usual name).
    pub attributes: Option<std::collections::BTreeMap<String, String>>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    /// Accept sign-ins started at Gatehouse (`/saml/sso/init`); default false.
    pub idp_initiated: Option<bool>,
    /// The RelayStates such a sign-in may carry, exact strings (default none).
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

/// Registers (or re-registers, same entity id) an SP from its metadata, like
/// `gatehouse sp import`.
#[utoipa::path(post, path = "/admin/api/v1/saml-sps", request_body = SpImportBody,
    responses((status = 201, description = "registered", body = SpView), (status = 200, description = "re-imported", body = SpView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn import_sp(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(Action::Global)?;
    let body: SpImportBody = api.json(&body)?;
    let settings = ImportSettings {
        name: body.name,
        name_id_format: body.name_id_format,
        name_id_source: body.name_id_source,
        attributes: Vec::new(),
        sign_assertion: body.sign_assertion,
        sign_response: body.sign_response,
        require_signed_requests: body.require_signed_requests,
        encrypt_assertions: body.encrypt_assertions,
        idp_initiated: body.idp_initiated,
        idp_initiated_relay_states: body.idp_initiated_relay_states,
    };
    let by = api.by();
    let (sp, created) = service::import(by, &body.metadata, settings, body.attributes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(sp_view(sp)))
}

/// A change to an SP's settings; fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpSettingsBody {
    pub name: Option<String>,
    pub name_id_format: Option<String>,
    /// Left out while the format changes: that format's default source.
    pub name_id_source: Option<String>,
    /// The whole release list (as at import); what is left out is not sent.
    pub attributes: Option<std::collections::BTreeMap<String, String>>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    pub idp_initiated: Option<bool>,
    /// The whole list; left out, it is kept.
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

#[utoipa::path(put, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")), request_body = SpSettingsBody,
    responses((status = 200, body = SpView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_sp(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let current = find(&api, &path).await?;
    let body: SpSettingsBody = api.json(&body)?;
    let change = SettingsChange {
        name: body.name,
        name_id_format: body.name_id_format,
        name_id_source: body.name_id_source,
        attributes: body.attributes,
        sign_assertion: body.sign_assertion,
        sign_response: body.sign_response,
        require_signed_requests: body.require_signed_requests,
        encrypt_assertions: body.encrypt_assertions,
        idp_initiated: body.idp_initiated,
        idp_initiated_relay_states: body.idp_initiated_relay_states,
    };
    let by = api.by();
    let sp = service::update(by, &current.entity_id, change).await?;
    ok(sp_view(sp))
}

#[utoipa::path(delete, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_sp(path: web::Path<String>, api: AdminRequest) -> Reply {
    api.who.require(Action::Global)?;
    let id = entity_id(&path)?;
    service::delete(api.by(), &id).await?;
    done(true)
}

/// An SP registered from its metadata URL, refreshed from there on a schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpUrlImportBody {
    /// Where the SP's (or the federation's) metadata is published: https, public address.
    pub url: String,
    /// PEM of the certificate the metadata must be signed by (a federation's signing
    /// certificate, say). Without it unsigned metadata is accepted, over https.
    pub pinned_certificate: Option<String>,
    /// Which entity to take from an `EntitiesDescriptor` aggregate (required then).
    pub entity_id: Option<String>,
    pub name: Option<String>,
}

/// Registers (or re-registers) an SP from its metadata URL, like
/// `gatehouse sp import --url`. Other settings take their defaults; change them with PUT.
#[utoipa::path(post, path = "/admin/api/v1/saml-sps/from-url", request_body = SpUrlImportBody,
    responses((status = 201, description = "registered", body = SpView), (status = 200, description = "re-imported", body = SpView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn import_sp_from_url(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(Action::Global)?;
    let body: SpUrlImportBody = api.json(&body)?;
    let pinned_cert = body
        .pinned_certificate
        .as_deref()
        .map(metadata_fetch::pinned_certificate)
        .transpose()
        .map_err(crate::admin::service::ServiceError::from)?;
    let source = metadata_refresh::Source {
        url: body.url,
        pinned_cert,
    };
    let settings = ImportSettings {
        name: body.name,
        ..ImportSettings::default()
    };
    let (sp, created) =
        service::import_url(api.by(), source, body.entity_id.as_deref(), settings).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(sp_view(sp)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshView {
    pub entity_id: String,
    /// The metadata URL, without its query.
    pub url: String,
    /// What the new metadata changed: `acs`, `slo`, `signing_certs`, `encryption_certs`.
    pub changed: Vec<String>,
    pub service_provider: SpView,
}

/// Fetches a URL-imported SP's metadata again now, like `gatehouse sp refresh`. When
/// the fetch fails nothing changes (400 says why).
#[utoipa::path(post, path = "/admin/api/v1/saml-sps/{id}/refresh", params(("id" = String, Path, description = "as listed")),
    responses((status = 200, body = RefreshView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn refresh_sp(path: web::Path<String>, api: AdminRequest) -> Reply {
    api.who.require(Action::Global)?;
    let id = entity_id(&path)?;
    let refreshed = service::refresh(api.by(), &id).await?;
    ok(RefreshView {
        entity_id: refreshed.entity_id,
        url: metadata_refresh::shown_url(&refreshed.url),
        changed: refreshed.changed.iter().map(|c| (*c).to_owned()).collect(),
        service_provider: sp_view(refreshed.sp),
    })
}
