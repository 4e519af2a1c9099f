//! The grants of the token endpoint (RFC 6749 §4, DESIGN §9), one file each:
//! [`authorization_code`], [`refresh_token`], [`client_credentials`]; and what a client
//! can ask about or do to the tokens it holds ([`revocation`], [`introspection`]).
//!
//! The endpoints in `oidc::token` parse the request, authenticate the client and call
//! one function here; a grant answers with [`Issued`] or a [`GrantError`], which
//! `oidc::OAuthError` turns into the RFC 6749 §5.2 answer in one place.

pub mod authorization_code;
pub mod client_credentials;
pub mod introspection;
pub mod refresh_token;
pub mod revocation;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    clients::{GRANT_CLIENT_CREDENTIALS, GRANT_CODE, GRANT_REFRESH},
    discovery::issuer,
    jwt::Grant,
    smart::{Context, SmartGrant},
};
use crate::{
    audit::{AuditError, AuditEvent, EventType, Outcome},
    auth::emergency::EmergencyWindow,
    domain::UserStatus,
    ephemeral::EphemeralError,
    startup::AppState,
    store::{
        DbConnection, StoreError,
        clients::ClientRow,
        grants::{self, GrantRow},
        orgs,
        users::UserRow,
    },
    web::{RequestContext, error::AppError},
};

pub use revocation::access_token_holder;

/// Why a grant refused, or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// A parameter the grant needs was not sent.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// RFC 6749 §5.2 `invalid_grant`: the code or refresh token is not (or no longer) good.
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    InvalidScope(String),
    /// RFC 8707 `invalid_target`: the resource named is not one this client may have
    /// tokens for.
    #[error("{0}")]
    InvalidTarget(String),
    /// The client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// RFC 9449 `invalid_dpop_proof`: the proof is good, but not by the key the code or
    /// refresh token is bound to (or there is none, and one is needed).
    #[error("{0}")]
    InvalidDpopProof(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A dependency reached through another capability (the session store) cannot answer.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl GrantError {
    /// Whether the answer is a 5xx: the client did nothing wrong, and will retry.
    pub fn is_server_side(&self) -> bool {
        match self {
            Self::Store(e) => matches!(e, StoreError::Unavailable(_) | StoreError::Query(_)),
            Self::Ephemeral(_) | Self::Audit(_) | Self::Unavailable(_) | Self::Internal(_) => true,
            Self::MissingParameter(_)
            | Self::InvalidGrant(_)
            | Self::InvalidScope(_)
            | Self::InvalidTarget(_)
            | Self::UnauthorizedClient(_)
            | Self::InvalidDpopProof(_) => false,
        }
    }
}

impl From<crate::auth::AuthError> for GrantError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AppError> for GrantError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What a client asked of the token endpoint, by grant type. Parameters are optional
/// here: which one is missing is the grant's to say, after it has checked the client
/// may use it at all (the order of RFC 6749's checks, and of this endpoint's answers).
#[derive(Debug)]
pub enum TokenRequest<'a> {
    AuthorizationCode {
        code: Option<&'a str>,
        redirect_uri: Option<&'a str>,
        code_verifier: Option<&'a str>,
    },
    RefreshToken {
        refresh_token: Option<&'a str>,
        scope: Option<&'a str>,
    },
    ClientCredentials(client_credentials::Asked<'a>),
}

impl TokenRequest<'_> {
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::AuthorizationCode { .. } => GRANT_CODE,
            Self::RefreshToken { .. } => GRANT_REFRESH,
            Self::ClientCredentials(_) => GRANT_CLIENT_CREDENTIALS,
        }
    }
}

/// A successful token response (RFC 6749 §5.1); `token_type` is `DPoP` when the access
/// token is bound to the client's key (RFC 9449 §5).
#[derive(Debug, Serialize)]
pub struct Issued {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    /// A SMART app's launch context (patient, encounter, fhirContext, …), beside the
    /// tokens as App Launch 2.2 §2.0.8 has it.
    #[serde(flatten)]
    context: Context,
}

impl Issued {
    /// `dpop` when the access token is bound to the client's key, else `bearer`.
    fn binding(&self) -> &'static str {
        if self.token_type == "DPoP" {
            "dpop"
        } else {
            "bearer"
        }
    }
}

/// What a grant has committed by the time its tokens are signed. If the answer cannot
/// be given after all (the audit event cannot be written), it is undone: a request
/// answered 5xx leaves nothing spent that the client's retry needs (issue 23 item 1).
#[derive(Debug)]
pub enum Spent {
    /// client_credentials: nothing is stored.
    Nothing,
    /// An authorization code taken from the ephemeral store (`key`, `value`, with the
    /// life it had left), and the grant written from it.
    Code {
        key: String,
        value: Vec<u8>,
        ttl: Duration,
        grant_id: String,
    },
    /// A refresh token spent, and its successor stored.
    Refresh {
        presented: String,
        successor: String,
    },
}

impl Spent {
    /// Puts back what was spent. Best effort: what cannot be undone is logged, and the
    /// client's retry is then refused as it would have been before issue 23.
    async fn undo(self, state: &AppState) {
        let undone = match self {
            Self::Nothing => Ok(()),
            Self::Code {
                key,
                value,
                ttl,
                grant_id,
            } => {
                let forgotten = state.store.run(move |c| grants::forget(c, &grant_id)).await;
                match forgotten {
                    Ok(()) => authorization_code::restore(state, &key, &value, ttl)
                        .await
                        .map_err(GrantError::from),
                    Err(e) => Err(e.into()),
                }
            }
            Self::Refresh {
                presented,
                successor,
            } => state
                .store
                .run(move |c| grants::unspend_refresh(c, &presented, &successor))
                .await
                .map_err(GrantError::from),
        };
        if let Err(e) = undone {
            tracing::error!(error = %e, "a token request that failed could not be undone");
        }
    }
}

/// Runs the grant `request` asks for, for an authenticated `client`, and records what
/// was issued. `dpop_jkt`: the thumbprint of the key of the request's DPoP proof, which
/// the tokens are then bound to.
pub async fn issue(
    state: &AppState,
    ctx: &RequestContext,
    client: &ClientRow,
    request: TokenRequest<'_>,
    dpop_jkt: Option<&str>,
) -> Result<Issued, GrantError> {
    let grant_type = request.grant_type();
    if !client.allows_grant(grant_type) {
        return Err(GrantError::UnauthorizedClient(
            "this client may not use this grant",
        ));
    }
    let (issued, spent) = match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let exchange = authorization_code::Exchange {
                code: required(code, "code")?,
                redirect_uri,
                code_verifier,
                dpop_jkt,
            };
            authorization_code::exchange(state, client, exchange).await?
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
        } => {
            let presented = required(refresh_token, "refresh_token")?;
            refresh_token::refresh(state, client, presented, scope, dpop_jkt).await?
        }
        TokenRequest::ClientCredentials(asked) => (
            client_credentials::issue(state, client, asked, dpop_jkt).await?,
            Spent::Nothing,
        ),
    };
    let recorded = state
        .audit
        .record(
            AuditEvent::new(EventType::TokenIssued, Outcome::Success)
                .request(ctx)
                .actor(&client.client_id)
                .detail("grant_type", grant_type)
                .detail("client_id", client.client_id.as_str())
                // Whether the tokens are bound to a key (DPoP) or bearer tokens ("token" in
                // a detail name is dropped: the trail never holds one).
                .detail("binding", issued.binding()),
        )
        .await;
    if let Err(e) = recorded {
        spent.undo(state).await;
        return Err(e.into());
    }
    Ok(issued)
}

fn required<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, GrantError> {
    value.ok_or(GrantError::MissingParameter(name))
}

/// A requested scope as a list; malformed ones are refused (RFC 6749 §3.3).
fn scope_list(raw: Option<&str>) -> Result<Option<Vec<String>>, GrantError> {
    raw.map(super::parse_scope)
        .transpose()
        .map_err(|e| GrantError::InvalidScope(e.error_description.unwrap_or_default()))
}

/// The name of `user`'s organisation (the `org` claim).
fn org_name(c: &mut DbConnection, user: Option<&UserRow>) -> Result<Option<String>, StoreError> {
    Ok(match user {
        Some(u) => orgs::find_by_id(c, &u.org_id)?.map(|o| o.name),
        None => None,
    })
}

fn not_admitted() -> GrantError {
    GrantError::InvalidGrant("this client is not open to users of the user's organisation")
}

fn expiry(now: DateTime<Utc>, secs: u64) -> chrono::NaiveDateTime {
    (now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2))).naive_utc()
}

/// When a refresh token issued now for `grant` expires. A public client's refresh token
/// not bound to a DPoP key can be used by whoever holds it: rotation alone is not
/// enough for it, so its grant can be refreshed only until `public_client_refresh_secs`
/// after sign-in (the browser-app BCP: rotated, and sender-constrained or short-lived).
fn refresh_expiry(state: &AppState, client: &ClientRow, grant: &GrantRow) -> chrono::NaiveDateTime {
    let now = state.clock.now();
    let usual = expiry(now, state.config.refresh_token_secs);
    if !client.is_public() || grant.dpop_jkt.is_some() {
        return usual;
    }
    let cap = expiry(
        grant.created_at.and_utc(),
        state.config.public_client_refresh_secs,
    );
    usual.min(cap)
}

fn usable_user(user: Option<UserRow>) -> Result<UserRow, GrantError> {
    user.filter(|u| u.status() == UserStatus::Active)
        .ok_or(GrantError::InvalidGrant("the user can no longer sign in"))
}

/// What a response's tokens are made for.
struct Minted<'a> {
    user: Option<(&'a GrantRow, &'a UserRow)>,
    org: Option<&'a str>,
    scope: &'a [String],
    nonce: Option<&'a str>,
    refresh_token: Option<String>,
    /// The thumbprint of the DPoP key the access token is bound to.
    dpop_jkt: Option<&'a str>,
    /// The emergency window the grant was made under, while it is open (DESIGN §15).
    emergency: Option<&'a EmergencyWindow>,
    /// A SMART backend service's FHIR server (client_credentials has no grant row; a
    /// user's grant keeps its own, see [`SmartGrant::from_columns`]).
    audience: Option<&'a str>,
}

/// Signs the tokens of a response: an access token always, an ID token for a user's
/// grant with `openid`.
fn mint(state: &AppState, client: &ClientRow, what: Minted<'_>) -> Result<Issued, GrantError> {
    let Minted {
        user,
        org,
        scope,
        nonce,
        refresh_token,
        dpop_jkt,
        emergency,
        audience,
    } = what;
    let smart = match user {
        Some((grant, _)) => SmartGrant::from_columns(
            grant.audience.as_deref(),
            grant.launch_context.as_deref(),
            grant.fhir_user.as_deref(),
        ),
        None => audience.map(|audience| SmartGrant {
            audience: audience.to_owned(),
            context: Context::default(),
            fhir_user: None,
        }),
    };
    // Checked at registration; another name was stored by a newer version.
    let unknown = |field: &str, name: &str| {
        GrantError::Internal(format!(
            "client {}: {field} {name:?} is not an algorithm this version signs with",
            client.client_id
        ))
    };
    let id_token_alg = client
        .id_token_signing_alg()
        .ok_or_else(|| unknown("id_token_alg", &client.id_token_alg))?;
    let access_token_alg = client
        .access_token_signing_alg()
        .ok_or_else(|| unknown("access_token_alg", &client.access_token_alg))?;
    let ring = state.keys.current();
    let issuer = issuer(state);
    let lifetime = i64::try_from(state.config.access_token_secs).unwrap_or(300);
    let view = Grant {
        issuer: &issuer,
        client_id: &client.client_id,
        user,
        org,
        scope,
        nonce,
        now: state.clock.now(),
        lifetime_secs: lifetime,
        id_token_alg,
        access_token_alg,
        dpop_jkt,
        emergency,
        smart: smart.as_ref(),
    };
    let access_token = view.access_token(&ring);
    let id_token = match user {
        Some(_) if scope.iter().any(|s| s == "openid") => Some(
            view.id_token(&ring, &access_token)
                .map_err(GrantError::Internal)?,
        ),
        _ => None,
    };
    Ok(Issued {
        access_token,
        token_type: if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: lifetime,
        scope: scope.join(" "),
        refresh_token,
        id_token,
        context: smart.map(|s| s.context).unwrap_or_default(),
    })
}
