//! Signing in with an organisation's own identity provider (DESIGN §16).
//!
//! A connector sends the browser to its upstream with the login transaction waiting
//! here; the upstream's answer comes back as an [`UpstreamIdentity`], checked by the
//! protocol's module (`oidc`). [`arrive`] turns it into the transaction's next step:
//! the linked account, an account created just in time, or a request to prove an
//! existing account's password before the link is made. From there the sign-in ends
//! like a local one (same session, same answer downstream, same audit).
//!
//! An upstream identity is only ever linked by its connector and subject: never by an
//! email address, verified or not.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::{AuthError, totp},
    domain::{
        ConnectorSettings, ConnectorSlug, DisplayName, Email, MailDomain, REGISTERED_METHODS,
        UpstreamProtocol, UserStatus, Username,
    },
    startup::AppState,
    store::{StoreError, orgs, upstream as rows, users},
};

pub mod fetch;
pub mod fhir_user;
pub mod logout;
pub mod openid;

pub use fetch::{FetchError, Fetcher};

/// What can go wrong on the way to and back from an upstream, by cause.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No such connector, or it is switched off.
    #[error("no such sign-in option")]
    Unknown,
    /// The upstream could not be reached or answered nonsense: try again later.
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The upstream said no (`error=access_denied`, a refused code).
    #[error("the identity provider did not sign the person in: {0}")]
    Denied(String),
    /// The upstream's answer failed a check (signature, issuer, audience, nonce…).
    #[error("the identity provider's answer was refused: {0}")]
    Rejected(String),
    /// No sign-in is waiting for this answer: it expired, was used, or belongs to
    /// another browser.
    #[error("no sign-in waits for this answer")]
    Expired,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<StoreError> for UpstreamError {
    fn from(e: StoreError) -> Self {
        Self::Auth(e.into())
    }
}

impl From<crate::ephemeral::EphemeralError> for UpstreamError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        Self::Auth(e.into())
    }
}

impl From<crate::audit::AuditError> for UpstreamError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::Auth(e.into())
    }
}

impl UpstreamError {
    /// A short name for the audit trail and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown => "upstream_unknown",
            Self::Unreachable(_) => "upstream_unreachable",
            Self::Denied(_) => "upstream_denied",
            Self::Rejected(_) => "upstream_rejected",
            Self::Expired => "upstream_expired",
            Self::Auth(_) => "upstream_internal",
        }
    }
}

/// A connector as the sign-in uses it: its row, read and opened.
#[derive(Clone)]
pub struct Connector {
    pub id: String,
    pub org_id: String,
    pub slug: ConnectorSlug,
    pub display_name: String,
    pub protocol: UpstreamProtocol,
    pub enabled: bool,
    pub settings: ConnectorSettings,
    /// The client secret, opened; None for `private_key_jwt` or SAML.
    pub secret: Option<SecretString>,
    /// When it last changed: what the discovery cache is keyed by, besides the id.
    pub version: chrono::NaiveDateTime,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("protocol", &self.protocol)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A connector's row, with its settings parsed and its secret opened. A row that no
/// longer parses (edited by hand) is an internal error, not a silent default.
pub fn open_row(state: &AppState, row: rows::ConnectorRow) -> Result<Connector, AuthError> {
    let broken = |why: String| AuthError::Internal(format!("connector {}: {why}", row.slug));
    let settings: ConnectorSettings =
        serde_json::from_str(&row.settings).map_err(|e| broken(e.to_string()))?;
    let protocol = match row.protocol.as_str() {
        "oidc" => UpstreamProtocol::Oidc,
        "saml" => UpstreamProtocol::Saml,
        other => return Err(broken(format!("unknown protocol {other:?}"))),
    };
    let secret = match &row.secret_sealed {
        Some(sealed) => {
            let opened = state
                .master_key
                .open(&rows::secret_context(&row.id), sealed)
                .map_err(|e| broken(e.to_string()))?;
            let text = String::from_utf8(opened.expose_secret().to_vec())
                .map_err(|_| broken("secret is not text".into()))?;
            Some(SecretString::from(text))
        }
        None => None,
    };
    Ok(Connector {
        slug: ConnectorSlug::parse(&row.slug).map_err(|e| broken(e.0))?,
        id: row.id,
        org_id: row.org_id,
        display_name: row.display_name,
        protocol,
        enabled: row.enabled,
        settings,
        secret,
        version: row.updated_at,
    })
}

/// The enabled connector named `slug`.
pub async fn enabled_connector(state: &AppState, slug: &str) -> Result<Connector, UpstreamError> {
    let Ok(slug) = ConnectorSlug::parse(slug) else {
        return Err(UpstreamError::Unknown);
    };
    let row = state
        .store
        .run(move |c| rows::find_by_slug(c, slug.as_str()))
        .await?
        .ok_or(UpstreamError::Unknown)?;
    let connector = open_row(state, row)?;
    if !connector.enabled {
        return Err(UpstreamError::Unknown);
    }
    Ok(connector)
}

/// A button on the sign-in page.
#[derive(Debug, Clone)]
pub struct Offer {
    pub slug: String,
    pub display_name: String,
}

/// The enabled connectors offered as buttons on the sign-in page, and whether any email
/// domain leads to one (then the identifier alone may be sent).
///
/// The sign-in page is the one page every person meets, also while the database is
/// slow or away (DESIGN §14): it is answered from this instance's copy, read again in
/// the background once it is [`OFFERS_TTL`] old. Only the very first page waits for it.
pub async fn offered(state: &AppState) -> Result<(Vec<Offer>, bool), AuthError> {
    let cache = &state.upstreams;
    let known = cache
        .offers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match known {
        Some(known) => {
            if known.read.elapsed() >= OFFERS_TTL
                && !cache
                    .refreshing
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                let (store, cache) = (state.store.clone(), state.upstreams.clone());
                tokio::spawn(async move {
                    match read_offers(&store).await {
                        Ok(fresh) => cache.keep_offers(fresh),
                        Err(e) => tracing::warn!(error = %e, "sign-in choices not refreshed"),
                    }
                    cache
                        .refreshing
                        .store(false, std::sync::atomic::Ordering::Release);
                });
            }
            Ok((known.buttons, known.discovery))
        }
        None => {
            let fresh = read_offers(&state.store).await?;
            cache.keep_offers(fresh.clone());
            Ok((fresh.buttons, fresh.discovery))
        }
    }
}

/// How old this instance's copy of the sign-in choices may get before it is read again.
pub const OFFERS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The sign-in page's choices as read at `read`.
#[derive(Clone)]
struct Offers {
    read: std::time::Instant,
    buttons: Vec<Offer>,
    discovery: bool,
}

async fn read_offers(store: &crate::store::Store) -> Result<Offers, AuthError> {
    let (rows, discovery) = store
        .run(|c| Ok((rows::list(c, None)?, rows::any_enabled_domain(c)?)))
        .await?;
    let buttons = rows
        .into_iter()
        .filter(|r| r.enabled)
        .filter(|r| {
            serde_json::from_str::<ConnectorSettings>(&r.settings)
                .is_ok_and(|s| s.accounts.show_on_login)
        })
        .map(|r| Offer {
            slug: r.slug,
            display_name: r.display_name,
        })
        .collect();
    Ok(Offers {
        read: std::time::Instant::now(),
        buttons,
        discovery,
    })
}

/// Home-realm discovery: the enabled connector the identifier's email domain is mapped
/// to, if any.
pub async fn for_identifier(
    state: &AppState,
    identifier: &str,
) -> Result<Option<String>, AuthError> {
    let Some(domain) = MailDomain::of_identifier(identifier) else {
        return Ok(None);
    };
    let row = state
        .store
        .run(move |c| rows::find_by_domain(c, domain.as_str()))
        .await?;
    Ok(row.filter(|r| r.enabled).map(|r| r.slug))
}

/// Who the upstream says signed in, already checked by the protocol's module.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    /// The upstream's stable identifier for the person (`sub`, the SAML NameID).
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    /// The upstream's `amr` (RFC 8176), as it sent them.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// The upstream's session id (OIDC `sid`, SAML SessionIndex), for its logout.
    #[serde(default)]
    pub sid: Option<String>,
    /// What the connector's `fhir_user` claim said, if it maps one.
    #[serde(default)]
    pub fhir_user: Option<String>,
}

/// Where a session came from: the connector and the upstream's subject and session,
/// which its logout names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamOrigin {
    pub connector_id: String,
    pub slug: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl UpstreamOrigin {
    /// The ephemeral sets our sessions from this origin are found in: by the upstream
    /// subject, and by the upstream session when it named one.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys = vec![sessions_by_subject(&self.connector_id, &self.subject)];
        if let Some(sid) = &self.sid {
            keys.push(sessions_by_sid(&self.connector_id, sid));
        }
        keys
    }
}

fn sessions_by_sid(connector_id: &str, sid: &str) -> String {
    format!(
        "upstream-sid:{connector_id}:{}",
        crate::auth::token_hash(sid)
    )
}

fn sessions_by_subject(connector_id: &str, subject: &str) -> String {
    format!(
        "upstream-sub:{connector_id}:{}",
        crate::auth::token_hash(subject)
    )
}

/// A member of those sets: the user and the session handle.
pub fn session_member(user_id: &str, handle: &str) -> String {
    format!("{user_id} {handle}")
}

/// Longest upstream subject kept: longer ones are refused, not cut (a cut one could
/// collide with another person's).
pub const MAX_SUBJECT_LEN: usize = 255;

/// What [`arrive`] decided.
#[derive(Debug)]
pub enum Arrival {
    /// Sign in as this user; `upstream_mfa` when the connector trusts the upstream's MFA
    /// and it was done. `amr` is what the session records.
    SignIn {
        user: Box<users::UserRow>,
        origin: UpstreamOrigin,
        amr: Vec<String>,
        upstream_mfa: bool,
        enrolled: bool,
        second_factor_required: bool,
    },
    /// No account is linked: the person proves an existing account's password (and
    /// second factor) and the link is made when that sign-in finishes.
    Link(PendingLink),
    /// The person cannot sign in this way.
    Refused(Unwelcome),
}

/// Why a person who signed in upstream cannot go on here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwelcome {
    /// Their account is disabled or locked by an administrator.
    Inactive,
    /// The upstream did not say who they are well enough to make an account.
    Unidentified,
}

/// Why a person is asked to sign in with an existing account to link it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkReason {
    /// Accounts are not made just in time: an existing one is linked.
    #[default]
    NotLinkedYet,
    /// An account with the name or address exists already.
    AccountExists,
}

/// An upstream identity waiting in a login transaction for the account it will link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub connector_id: String,
    pub connector_name: String,
    pub subject: String,
    /// Why the person is asked to sign in with an existing account.
    pub reason: LinkReason,
    /// The FHIR resource the upstream said the person is, taken once linked.
    #[serde(default)]
    pub fhir_user: Option<String>,
}

impl PendingLink {
    /// An account with the person's name or address exists already.
    pub fn account_exists(&self) -> bool {
        self.reason == LinkReason::AccountExists
    }
}

/// Turns a checked upstream identity into the sign-in's next step (see [`Arrival`]).
pub async fn arrive(
    state: &AppState,
    ctx: &RequestContext,
    connector: &Connector,
    who: UpstreamIdentity,
) -> Result<Arrival, UpstreamError> {
    if who.subject.is_empty() || who.subject.len() > MAX_SUBJECT_LEN {
        return Err(UpstreamError::Rejected(
            "the subject is empty or too long".into(),
        ));
    }
    let now = state.clock.now().naive_utc();
    let (connector_id, subject) = (connector.id.clone(), who.subject.clone());
    let pii = state.pii.clone();
    let linked = state
        .store
        .run(move |c| {
            let Some(link) = rows::find_link(c, &connector_id, &subject)? else {
                return Ok(None);
            };
            rows::touch_link(c, &connector_id, &subject, now)?;
            users::find_by_id(c, &pii, &link.user_id)
        })
        .await?;
    let user = match linked {
        Some(user) => user,
        None => match create_just_in_time(state, connector, &who).await? {
            Ok(user) => user,
            Err(arrival) => return Ok(arrival),
        },
    };
    if user.status() != UserStatus::Active || user.org_id != connector.org_id {
        failed(
            state,
            ctx,
            connector,
            Some(&user),
            "upstream_account_unusable",
            None,
        )
        .await?;
        return Ok(Arrival::Refused(Unwelcome::Inactive));
    }
    fhir_user::take(state, Some(ctx), connector, &user, who.fhir_user.as_deref()).await?;
    let accounts = &connector.settings.accounts;
    let upstream_mfa =
        accounts.trust_upstream_mfa && accounts.upstream_did_mfa(&who.amr, who.acr.as_deref());
    let mut amr: Vec<String> = who
        .amr
        .iter()
        .filter(|m| REGISTERED_METHODS.contains(&m.as_str()))
        .take(8)
        .cloned()
        .collect();
    if upstream_mfa && !amr.iter().any(|m| m == "mfa") {
        amr.push("mfa".into());
    }
    if !upstream_mfa {
        // Untrusted, the upstream's word on MFA means nothing here.
        amr.retain(|m| m != "mfa");
    }
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .ok_or(AuthError::Internal("user without organisation".into()))?;
    let origin = UpstreamOrigin {
        connector_id: connector.id.clone(),
        slug: connector.slug.to_string(),
        subject: who.subject.clone(),
        sid: who.sid.clone(),
    };
    Ok(Arrival::SignIn {
        origin,
        enrolled: totp::is_enrolled(state, &user.id).await?
            || super::passkey::has_any(state, &user.id).await?,
        second_factor_required: org.policy().mfa.requires(user.role()),
        user: Box::new(user),
        amr,
        upstream_mfa,
    })
}

/// A new account from the upstream's claims, linked to it; or what to do instead when
/// just-in-time creation is off or the account cannot be made.
async fn create_just_in_time(
    state: &AppState,
    connector: &Connector,
    who: &UpstreamIdentity,
) -> Result<Result<users::UserRow, Arrival>, UpstreamError> {
    let link = |reason| PendingLink {
        connector_id: connector.id.clone(),
        connector_name: connector.display_name.clone(),
        subject: who.subject.clone(),
        reason,
        fhir_user: who.fhir_user.clone(),
    };
    let accounts = &connector.settings.accounts;
    if !accounts.just_in_time {
        return Ok(Err(Arrival::Link(link(LinkReason::NotLinkedYet))));
    }
    let email = who.email.as_deref().and_then(|e| Email::parse(e).ok());
    let username = who
        .username
        .as_deref()
        .and_then(|u| Username::parse(u).ok())
        .or_else(|| {
            email
                .as_ref()
                .and_then(|e| Username::parse(e.as_str()).ok())
        });
    let (Some(username), Some(email)) = (username, email) else {
        return Ok(Err(Arrival::Refused(Unwelcome::Unidentified)));
    };
    let new = users::NewUser {
        org_id: connector.org_id.clone(),
        username,
        email,
        display_name: who
            .display_name
            .as_deref()
            .and_then(|n| DisplayName::parse(n).ok())
            .map(DisplayName::into_string),
        role: accounts.role_for(&who.groups),
        password_hash: None,
        must_change_password: false,
    };
    let now = state.clock.now().naive_utc();
    let pii = state.pii.clone();
    let (connector_id, subject) = (connector.id.clone(), who.subject.clone());
    let created = state
        .store
        .transaction(move |c| {
            let user = users::insert(c, &pii, &new, now)?;
            rows::insert_link(c, &connector_id, &subject, &user.id, now)?;
            Ok(user)
        })
        .await;
    let user = match created {
        Ok(user) => user,
        // The name or address is taken: never link to that account on a match, but
        // let the person prove it is theirs.
        Err(StoreError::Conflict) => {
            return Ok(Err(Arrival::Link(link(LinkReason::AccountExists))));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = %user.id, connector = %connector.slug, "user created from upstream");
    let created = AuditEvent::new(EventType::UserCreated, Outcome::Success)
        .org(&user.org_id)
        .subject(&user.id)
        .detail("username", user.username.as_str())
        .detail("role", user.role.as_str())
        .detail("connector", connector.slug.as_str());
    state.audit.record(created).await?;
    record_link(state, None, connector, &who.subject, &user, "just_in_time").await?;
    Ok(Ok(user))
}

/// Makes the link a transaction carried, now that `user` proved their own password
/// (and second factor). Refused when the account is of another organisation than the
/// connector's, or the subject was linked meanwhile.
pub async fn link_after_sign_in(
    state: &AppState,
    ctx: &RequestContext,
    link: &PendingLink,
    user: &users::UserRow,
) -> Result<bool, AuthError> {
    let connector_id = link.connector_id.clone();
    let Some(row) = state
        .store
        .run(move |c| rows::find(c, &connector_id))
        .await?
    else {
        return Ok(false);
    };
    let connector = open_row(state, row)?;
    if connector.org_id != user.org_id || !connector.enabled {
        return Ok(false);
    }
    let now = state.clock.now().naive_utc();
    let (connector_id, subject, user_id) = (
        link.connector_id.clone(),
        link.subject.clone(),
        user.id.clone(),
    );
    match state
        .store
        .run(move |c| rows::insert_link(c, &connector_id, &subject, &user_id, now))
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    record_link(
        state,
        Some(ctx),
        &connector,
        &link.subject,
        user,
        "after_sign_in",
    )
    .await?;
    fhir_user::take(
        state,
        Some(ctx),
        &connector,
        user,
        link.fhir_user.as_deref(),
    )
    .await?;
    Ok(true)
}

async fn record_link(
    state: &AppState,
    ctx: Option<&RequestContext>,
    connector: &Connector,
    subject: &str,
    user: &users::UserRow,
    how: &str,
) -> Result<(), AuthError> {
    let mut event = AuditEvent::new(EventType::UpstreamLinked, Outcome::Success)
        .org(&user.org_id)
        .subject(&user.id)
        .detail("connector", connector.slug.as_str())
        .detail("upstream_subject", subject)
        .detail("how", how);
    if let Some(ctx) = ctx {
        event = event.request(ctx);
    }
    state.audit.record(event).await?;
    Ok(())
}

/// Records a failed upstream sign-in: the connector, why, and what the upstream said.
pub async fn failed(
    state: &AppState,
    ctx: &RequestContext,
    connector: &Connector,
    user: Option<&users::UserRow>,
    reason: &str,
    upstream_error: Option<&str>,
) -> Result<(), AuthError> {
    let mut event = AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
        .request(ctx)
        .org(&connector.org_id)
        .detail("reason", reason)
        .detail("method", "upstream")
        .detail("connector", connector.slug.as_str());
    if let Some(user) = user {
        event = event.subject(&user.id);
    }
    if let Some(said) = upstream_error {
        event = event.detail("upstream_error", said);
    }
    state.audit.record(event).await?;
    Ok(())
}

/// What each instance keeps of its upstreams: their discovery documents and clients,
/// so a sign-in costs no discovery round trip.
#[derive(Default)]
pub struct UpstreamCache {
    openid: Mutex<HashMap<String, Arc<openid::Discovered>>>,
    offers: Mutex<Option<Offers>>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl UpstreamCache {
    fn keep_offers(&self, offers: Offers) {
        *self.offers.lock().unwrap_or_else(|p| p.into_inner()) = Some(offers);
    }

    /// Forgets the sign-in choices, after an administrator changed a connector here:
    /// the next sign-in page reads them again. Other instances follow within
    /// [`OFFERS_TTL`].
    pub fn forget_offers(&self) {
        *self.offers.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
