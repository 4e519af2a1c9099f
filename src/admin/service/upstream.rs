//! Upstream identity providers (DESIGN §16): an organisation's connectors to its own
//! IdP, and the links from upstream identities to Gatehouse accounts.
//!
//! A connector belongs to one organisation: its administrators (and super
//! administrators) manage it; anyone else finds nothing. Two rules stop a connector from
//! becoming a way up the ranks: the roles its just-in-time accounts may get are roles
//! the administrator could grant (`Caller::may_grant`), and an identity is linked to, or
//! a connector holding links re-pointed at another upstream for, only accounts the
//! administrator may act on (`Caller::may_act_on`), since whoever controls the upstream
//! signs in as every account linked to it.
//!
//! The client secret is sealed to its row (`store::upstream::secret_context`) and never
//! leaves this module in clear: views say `has_client_secret`, the audit trail's
//! `credential` detail whether it was set, replaced or removed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    audit::EventType,
    auth::upstream::openid::redirect_uri,
    domain::{
        ConnectorSettings, ConnectorSlug, MailDomain, OidcUpstream, Role, UpstreamClientAuth,
        UpstreamProtocol,
    },
    startup::AppState,
    store::{
        StoreError, new_id, orgs,
        upstream::{self as rows, ConnectorRow, ConnectorValues},
        users,
    },
    web::error::AppError,
};

use super::{Acting, Action, Caller, ServiceError, object_id};

mod links;

pub use links::{LinkView, add_link, links_of_user, list_links, remove_link};

/// Email domains one connector may claim.
pub const MAX_DOMAINS: usize = 100;
/// Longest client secret kept (bytes).
pub const MAX_SECRET_LEN: usize = 4096;
/// Longest display name (characters).
pub const MAX_DISPLAY_NAME: usize = 200;

fn not_found() -> ServiceError {
    ServiceError::NotFound("no such connector".into())
}

/// A connector as administrators see it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectorView {
    pub id: String,
    pub org_id: String,
    /// Its name in URLs: the sign-in button, the callback.
    pub slug: String,
    pub display_name: String,
    /// `oidc` or `saml`.
    pub protocol: String,
    pub enabled: bool,
    /// The settings document: `oidc` (issuer, client_id, client_auth, scopes, ca_pem) and
    /// `accounts` (just_in_time, trust_upstream_mfa, mfa_acr_values, claims, role_map,
    /// default_role, show_on_login).
    #[schema(value_type = Object)]
    pub settings: ConnectorSettings,
    /// Whether a client secret is kept (sealed; never shown).
    pub has_client_secret: bool,
    /// Email domains whose users are sent to this connector.
    pub domains: Vec<String>,
    /// What to register at the upstream: the OIDC callback URL, or for SAML the URL of
    /// our SP metadata (which is also our entity ID).
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a connector is, besides its organisation: what is created, and what an update
/// replaces.
pub struct ConnectorFields {
    pub slug: String,
    pub display_name: String,
    pub protocol: UpstreamProtocol,
    pub enabled: bool,
    pub settings: ConnectorSettings,
    /// On update: None keeps the stored secret, an empty one removes it.
    pub client_secret: Option<SecretString>,
    pub domains: Vec<String>,
}

/// A connector to create in organisation `org` (its id).
pub struct NewConnector {
    pub org: String,
    pub fields: ConnectorFields,
}

/// The fields, checked: what the store is given.
struct Checked {
    slug: ConnectorSlug,
    display_name: String,
    settings: String,
    domains: Vec<String>,
}

fn check(who: &Caller, f: &ConnectorFields) -> Result<Checked, ServiceError> {
    let slug = ConnectorSlug::parse(f.slug.trim())
        .map_err(|e| ServiceError::Invalid(format!("slug: {e}")))?;
    let display_name = f.display_name.trim().to_owned();
    if display_name.is_empty()
        || display_name.chars().count() > MAX_DISPLAY_NAME
        || display_name.chars().any(char::is_control)
    {
        return Err(ServiceError::Invalid(format!(
            "display_name: 1 to {MAX_DISPLAY_NAME} characters, on one line"
        )));
    }
    f.settings
        .check(f.protocol)
        .map_err(|e| ServiceError::Invalid(format!("settings: {e}")))?;
    let accounts = &f.settings.accounts;
    for role in accounts.role_map.values().chain([&accounts.default_role]) {
        who.may_grant(*role).map_err(|_| {
            ServiceError::Forbidden("the account mapping gives a role you cannot grant")
        })?;
    }
    if f.domains.len() > MAX_DOMAINS {
        return Err(ServiceError::Invalid(format!(
            "domains: at most {MAX_DOMAINS}"
        )));
    }
    let mut domains = BTreeSet::new();
    for raw in &f.domains {
        let domain =
            MailDomain::parse(raw).map_err(|e| ServiceError::Invalid(format!("domains: {e}")))?;
        domains.insert(domain.into_string());
    }
    let settings = serde_json::to_string(&f.settings)
        .map_err(|e| ServiceError::Failed(AppError::Internal(e.to_string())))?;
    Ok(Checked {
        slug,
        display_name,
        settings,
        domains: domains.into_iter().collect(),
    })
}

/// A secret as typed: None for none (or an empty one), refused when it could not be one.
fn secret_bytes(secret: &SecretString) -> Result<Option<&str>, ServiceError> {
    let text = secret.expose_secret();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_SECRET_LEN || text.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "client_secret: at most {MAX_SECRET_LEN} bytes, no control characters"
        )));
    }
    Ok(Some(text))
}

/// `private_key_jwt` authenticates with our own signing key: a secret has no use there.
fn refuse_unused_secret(f: &ConnectorFields) -> Result<(), ServiceError> {
    let uses_key = f
        .settings
        .oidc
        .as_ref()
        .is_some_and(|o| o.client_auth == UpstreamClientAuth::PrivateKeyJwt);
    let given = match &f.client_secret {
        Some(s) => secret_bytes(s)?.is_some(),
        None => false,
    };
    if uses_key && given {
        return Err(ServiceError::Invalid(
            "client_secret: private_key_jwt uses Gatehouse's signing key, not a secret".into(),
        ));
    }
    Ok(())
}

/// Why a write was refused before anything was written: the name or a domain is taken.
enum Taken {
    Slug(String),
    Domain(String),
}

impl From<Taken> for ServiceError {
    fn from(t: Taken) -> Self {
        match t {
            Taken::Slug(s) => {
                ServiceError::Conflict(format!("slug: another connector is named {s}"))
            }
            Taken::Domain(d) => {
                ServiceError::Conflict(format!("domains: {d} already leads to another connector"))
            }
        }
    }
}

/// Checks, inside the writing transaction, that no other connector holds the name or one
/// of the domains.
fn free(
    c: &mut crate::store::DbConnection,
    id: &str,
    checked: &Checked,
) -> Result<Option<Taken>, StoreError> {
    let slug = checked.slug.as_str();
    if rows::find_by_slug(c, slug)?.is_some_and(|r| r.id != id) {
        return Ok(Some(Taken::Slug(slug.to_owned())));
    }
    for domain in &checked.domains {
        if rows::find_by_domain(c, domain)?.is_some_and(|r| r.id != id) {
            return Ok(Some(Taken::Domain(domain.clone())));
        }
    }
    Ok(None)
}

/// A write that lost a race to a unique name or domain.
fn raced(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict => {
            ServiceError::Conflict("slug or domains: taken by another connector".into())
        }
        other => other.into(),
    }
}

fn failed(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Failed(AppError::Internal(e.to_string()))
}

/// The view of a stored connector with its domains.
fn view(
    state: &AppState,
    row: ConnectorRow,
    domains: Vec<String>,
) -> Result<ConnectorView, ServiceError> {
    // A row edited by hand that no longer parses is an error, not a silent default.
    let settings: ConnectorSettings = serde_json::from_str(&row.settings)
        .map_err(|e| failed(format!("connector {}: {e}", row.slug)))?;
    // What the upstream is told about us: our OIDC callback, or our SAML SP metadata.
    let register = if row.protocol == "saml" {
        crate::saml::upstream::sp::entity_id(state, &row.slug)
    } else {
        redirect_uri(state, &row.slug)
    };
    Ok(ConnectorView {
        redirect_uri: register,
        has_client_secret: row.secret_sealed.is_some(),
        id: row.id,
        org_id: row.org_id,
        slug: row.slug,
        display_name: row.display_name,
        protocol: row.protocol,
        enabled: row.enabled,
        settings,
        domains,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

/// The stored connector `raw_id` names, when the caller manages its organisation.
async fn visible(
    state: &AppState,
    who: &Caller,
    raw_id: &str,
) -> Result<ConnectorRow, ServiceError> {
    who.require(Action::Manage)?;
    let id = object_id(raw_id).map_err(|_| not_found())?;
    let row = state.store.run(move |c| rows::find(c, &id)).await?;
    row.filter(|r| who.sees_org(&r.org_id))
        .ok_or_else(not_found)
}

async fn view_of(state: &AppState, row: ConnectorRow) -> Result<ConnectorView, ServiceError> {
    let id = row.id.clone();
    let domains = state.store.run(move |c| rows::domains(c, &id)).await?;
    view(state, row, domains)
}

/// The connectors of organisation `org` (its id), or of every organisation the caller
/// manages, by slug.
pub async fn list_connectors(
    state: &AppState,
    who: &Caller,
    org: Option<&str>,
) -> Result<Vec<ConnectorView>, ServiceError> {
    who.require(Action::Manage)?;
    let scope = match (org, &who.org_id) {
        (Some(org), _) if who.sees_org(org) => Some(org.to_owned()),
        (Some(_), _) => return Err(ServiceError::NotFound("no such organisation".into())),
        (None, _) if who.role == Role::SuperAdmin => None,
        (None, Some(own)) => Some(own.clone()),
        (None, None) => return Ok(Vec::new()),
    };
    let found = state
        .store
        .run(move |c| {
            let mut out = Vec::new();
            for row in rows::list(c, scope.as_deref())? {
                let domains = rows::domains(c, &row.id)?;
                out.push((row, domains));
            }
            Ok(out)
        })
        .await?;
    found
        .into_iter()
        .map(|(row, domains)| view(state, row, domains))
        .collect()
}

/// The connector with id `raw_id`.
pub async fn show_connector(
    state: &AppState,
    who: &Caller,
    raw_id: &str,
) -> Result<ConnectorView, ServiceError> {
    let row = visible(state, who, raw_id).await?;
    view_of(state, row).await
}

/// The connector named `slug` (the CLI's way of naming it), as `show_connector`.
pub async fn show_connector_named(
    state: &AppState,
    who: &Caller,
    slug: &str,
) -> Result<ConnectorView, ServiceError> {
    who.require(Action::Manage)?;
    let missing = || ServiceError::NotFound(format!("no connector named {slug:?}"));
    let slug = ConnectorSlug::parse(slug).map_err(|_| missing())?;
    let row = state
        .store
        .run(move |c| rows::find_by_slug(c, slug.as_str()))
        .await?
        .filter(|r| who.sees_org(&r.org_id))
        .ok_or_else(missing)?;
    view_of(state, row).await
}

/// Creates a connector; its secret is sealed to its row before the row is written.
pub async fn create_connector(
    by: Acting<'_>,
    new: NewConnector,
) -> Result<ConnectorView, ServiceError> {
    by.who.require(Action::Manage)?;
    let no_org = || ServiceError::NotFound("no such organisation".into());
    let org_id = object_id(&new.org).map_err(|_| no_org())?;
    if !by.who.sees_org(&org_id) {
        return Err(no_org());
    }
    let lookup = org_id.clone();
    let org = by
        .state
        .store
        .run(move |c| orgs::find_by_id(c, &lookup))
        .await?;
    let org = org.ok_or_else(no_org)?;
    let f = new.fields;
    let checked = check(by.who, &f)?;
    refuse_unused_secret(&f)?;
    let id = new_id();
    let secret_sealed = match &f.client_secret {
        Some(s) => secret_bytes(s)?.map(|text| {
            by.state
                .master_key
                .seal(&rows::secret_context(&id), text.as_bytes())
        }),
        None => None,
    };
    let values = ConnectorValues {
        org_id: org.id.clone(),
        slug: checked.slug.as_str().to_owned(),
        display_name: checked.display_name.clone(),
        protocol: f.protocol.as_str().to_owned(),
        enabled: f.enabled,
        settings: checked.settings.clone(),
        secret_sealed,
    };
    let now = by.state.clock.now().naive_utc();
    let row = by
        .state
        .store
        .transaction(move |c| {
            if let Some(taken) = free(c, &id, &checked)? {
                return Ok(Err(taken));
            }
            let row = rows::insert_with_id(c, &id, &values, now)?;
            rows::set_domains(c, &id, &checked.domains)?;
            Ok(Ok(row))
        })
        .await
        .map_err(raced)??;
    record(by, &row, "created", |e| {
        e.detail(
            "credential",
            if row.secret_sealed.is_some() {
                "set"
            } else {
                "none"
            },
        )
    })
    .await?;
    view_of(by.state, row).await
}

/// Whether an update changes who the upstream is (its protocol, issuer or the
/// certificate trusted for it): then whoever answers there signs in as every linked
/// account.
fn repoints(old: &ConnectorRow, f: &ConnectorFields) -> bool {
    let before: Option<ConnectorSettings> = serde_json::from_str(&old.settings).ok();
    let authority = |o: Option<&OidcUpstream>| o.map(|o| (o.issuer.clone(), o.ca_pem.clone()));
    old.protocol != f.protocol.as_str()
        || before.as_ref().and_then(|s| authority(s.oidc.as_ref()))
            != authority(f.settings.oidc.as_ref())
}

/// Every account linked to the connector that the caller may not act on (their own
/// aside): re-pointing the connector would hand it to whoever runs the new upstream.
async fn outranks_linked(
    state: &AppState,
    who: &Caller,
    connector_id: &str,
) -> Result<(), ServiceError> {
    if who.role == Role::SuperAdmin {
        return Ok(());
    }
    let (id, pii) = (connector_id.to_owned(), state.pii.clone());
    let linked = state
        .store
        .run(move |c| {
            let mut out = Vec::new();
            for link in rows::links_of_connector(c, &id)? {
                out.extend(users::find_by_id(c, &pii, &link.user_id)?);
            }
            Ok(out)
        })
        .await?;
    if linked
        .iter()
        .any(|u| u.id != who.actor && who.may_act_on(u).is_err())
    {
        return Err(ServiceError::Forbidden(
            "an account of a role equal to or above yours is linked to this connector: only a super administrator may point it at another identity provider",
        ));
    }
    Ok(())
}

/// Replaces a connector's fields. A secret left out keeps the stored one, an empty one
/// removes it; moving to `private_key_jwt` removes it too.
pub async fn update_connector(
    by: Acting<'_>,
    raw_id: &str,
    f: ConnectorFields,
) -> Result<ConnectorView, ServiceError> {
    let old = visible(by.state, by.who, raw_id).await?;
    let checked = check(by.who, &f)?;
    refuse_unused_secret(&f)?;
    if repoints(&old, &f) {
        outranks_linked(by.state, by.who, &old.id).await?;
    }
    let uses_key = f
        .settings
        .oidc
        .as_ref()
        .is_some_and(|o| o.client_auth == UpstreamClientAuth::PrivateKeyJwt);
    let (secret_sealed, secret_change) = match &f.client_secret {
        _ if uses_key => (None, old.secret_sealed.as_ref().map(|_| "removed")),
        None => (old.secret_sealed.clone(), None),
        Some(s) => match secret_bytes(s)? {
            Some(text) => (
                Some(
                    by.state
                        .master_key
                        .seal(&rows::secret_context(&old.id), text.as_bytes()),
                ),
                Some("replaced"),
            ),
            None => (None, old.secret_sealed.as_ref().map(|_| "removed")),
        },
    };
    let values = ConnectorValues {
        org_id: old.org_id.clone(),
        slug: checked.slug.as_str().to_owned(),
        display_name: checked.display_name.clone(),
        protocol: f.protocol.as_str().to_owned(),
        enabled: f.enabled,
        settings: checked.settings.clone(),
        secret_sealed,
    };
    let (id, now) = (old.id.clone(), by.state.clock.now().naive_utc());
    let row = by
        .state
        .store
        .transaction(move |c| {
            if let Some(taken) = free(c, &id, &checked)? {
                return Ok(Err(taken));
            }
            let row = rows::update(c, &id, &values, now)?;
            rows::set_domains(c, &id, &checked.domains)?;
            Ok(Ok(row))
        })
        .await
        .map_err(raced)??;
    record(by, &row, "updated", |e| match secret_change {
        Some(change) => e.detail("credential", change),
        None => e,
    })
    .await?;
    if old.enabled != row.enabled {
        let change = if row.enabled { "enabled" } else { "disabled" };
        record(by, &row, change, |e| e).await?;
    }
    view_of(by.state, row).await
}

/// Switches a connector on or off; false when it already was so (nothing recorded).
pub async fn set_enabled(
    by: Acting<'_>,
    raw_id: &str,
    enabled: bool,
) -> Result<(ConnectorView, bool), ServiceError> {
    let old = visible(by.state, by.who, raw_id).await?;
    if old.enabled == enabled {
        return Ok((view_of(by.state, old).await?, false));
    }
    let values = ConnectorValues {
        org_id: old.org_id.clone(),
        slug: old.slug.clone(),
        display_name: old.display_name.clone(),
        protocol: old.protocol.clone(),
        enabled,
        settings: old.settings.clone(),
        secret_sealed: old.secret_sealed.clone(),
    };
    let (id, now) = (old.id.clone(), by.state.clock.now().naive_utc());
    let row = by
        .state
        .store
        .run(move |c| rows::update(c, &id, &values, now))
        .await?;
    let change = if enabled { "enabled" } else { "disabled" };
    record(by, &row, change, |e| e).await?;
    Ok((view_of(by.state, row).await?, true))
}

/// Deletes a connector with its domains and links; the people linked keep their
/// accounts (and any other way in).
pub async fn delete_connector(by: Acting<'_>, raw_id: &str) -> Result<(), ServiceError> {
    let row = visible(by.state, by.who, raw_id).await?;
    let id = row.id.clone();
    let links = by
        .state
        .store
        .transaction(move |c| {
            let links = rows::links_of_connector(c, &id)?.len();
            rows::delete(c, &id)?;
            Ok(links)
        })
        .await?;
    record(by, &row, "deleted", |e| e.detail("links_removed", links)).await
}

async fn record(
    by: Acting<'_>,
    row: &ConnectorRow,
    change: &str,
    more: impl FnOnce(crate::audit::AuditEvent) -> crate::audit::AuditEvent,
) -> Result<(), ServiceError> {
    let event = by
        .event(EventType::AdminChange)
        .org(&row.org_id)
        .detail("object", "upstream_connector")
        .detail("change", change)
        .detail("connector", row.slug.as_str())
        .detail("connector_id", row.id.as_str());
    // This instance's sign-in page shows the change at once; others within seconds.
    by.state.upstreams.forget_offers();
    by.state.audit.record(more(event)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller {
            actor: "admin-1".into(),
            role,
            org_id: Some("org-1".into()),
        }
    }

    fn fields(issuer: &str) -> ConnectorFields {
        let settings = serde_json::from_value(serde_json::json!({
            "oidc": { "issuer": issuer, "client_id": "gatehouse" }
        }))
        .unwrap();
        ConnectorFields {
            slug: "st-mary".into(),
            display_name: "St Mary's".into(),
            protocol: UpstreamProtocol::Oidc,
            enabled: true,
            settings,
            client_secret: None,
            domains: vec!["Hospital.Example".into(), "hospital.example".into()],
        }
    }

    fn row(f: &ConnectorFields) -> ConnectorRow {
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        ConnectorRow {
            id: "c-1".into(),
            org_id: "org-1".into(),
            slug: f.slug.clone(),
            display_name: f.display_name.clone(),
            protocol: f.protocol.as_str().into(),
            enabled: f.enabled,
            settings: serde_json::to_string(&f.settings).unwrap(),
            secret_sealed: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn domains_are_kept_once_in_lower_case() {
        let checked = check(&caller(Role::OrgAdmin), &fields("https://idp.example")).unwrap();
        assert_eq!(checked.domains, ["hospital.example"]);
    }

    #[test]
    fn a_mapping_to_a_role_the_administrator_cannot_grant_is_refused() {
        let mut f = fields("https://idp.example");
        f.settings
            .accounts
            .role_map
            .insert("it".into(), Role::SuperAdmin);
        assert!(matches!(
            check(&caller(Role::OrgAdmin), &f),
            Err(ServiceError::Forbidden(_))
        ));
        assert!(check(&caller(Role::SuperAdmin), &f).is_ok());
        f.settings.accounts.role_map.clear();
        f.settings.accounts.default_role = Role::SuperAdmin;
        assert!(check(&caller(Role::OrgAdmin), &f).is_err());
    }

    #[test]
    fn names_and_secrets_out_of_bounds_are_refused() {
        let mut f = fields("https://idp.example");
        f.display_name = "two\nlines".into();
        assert!(matches!(
            check(&caller(Role::OrgAdmin), &f),
            Err(ServiceError::Invalid(m)) if m.starts_with("display_name")
        ));
        let long = SecretString::from("s".repeat(MAX_SECRET_LEN + 1));
        assert!(secret_bytes(&long).is_err());
        assert!(
            secret_bytes(&SecretString::from(String::new()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn only_a_new_issuer_protocol_or_certificate_repoints_a_connector() {
        let old = row(&fields("https://idp.example"));
        let mut renamed = fields("https://idp.example");
        renamed.display_name = "Renamed".into();
        renamed.settings.accounts.just_in_time = false;
        assert!(!repoints(&old, &renamed));
        assert!(repoints(&old, &fields("https://evil.example")));
        let mut ca = fields("https://idp.example");
        if let Some(o) = ca.settings.oidc.as_mut() {
            o.ca_pem = Some("-----BEGIN CERTIFICATE-----\n".into());
        }
        assert!(repoints(&old, &ca));
    }

    #[test]
    fn a_secret_with_private_key_jwt_is_refused() {
        let mut f = fields("https://idp.example");
        if let Some(o) = f.settings.oidc.as_mut() {
            o.client_auth = UpstreamClientAuth::PrivateKeyJwt;
        }
        assert!(refuse_unused_secret(&f).is_ok());
        f.client_secret = Some(SecretString::from("s3cret".to_owned()));
        assert!(refuse_unused_secret(&f).is_err());
    }
}
