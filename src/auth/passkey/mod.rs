//! Passkeys (DESIGN §17) on webauthn-rs: registration from the account page or during
//! sign-in, the list a person keeps, and (in `assertion`) signing in with one, as the
//! second factor or without a password.
//!
//! The relying party is the issuer: its host is the RP ID and its origin the only
//! origin accepted. An issuer whose host is an IP address cannot have passkeys (WebAuthn
//! needs a domain), so none are offered there.
//!
//! A ceremony's state (its challenge) waits in the ephemeral store, bound to the
//! session or login transaction it was given to, and is taken once: an answer to a
//! challenge already answered, or to another browser's, finds nothing.

mod assertion;
pub mod ceremony;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use url::Url;
use webauthn_rs::prelude::{Passkey, Uuid, Webauthn, WebauthnBuilder};

pub(crate) use assertion::verify;
pub use assertion::{Outcome, PasskeyProof, challenge, sign_in};

use super::totp::EnrolmentFor;
use crate::{
    audit::{AuditEvent, EventType, RequestContext},
    auth::AuthError,
    domain::{PasskeyName, PasskeyPolicy},
    mail::Notice,
    startup::AppState,
    store::{
        orgs,
        passkeys::{self as store, NewPasskey, PasskeyRow},
        users::{self, UserRow},
    },
};

/// How long a ceremony waits for the browser's answer: WebAuthn's own timeout (five
/// minutes) and a little.
const CEREMONY_TTL: Duration = Duration::from_secs(6 * 60);

/// The WebAuthn relying party this instance is, if its issuer can be one.
pub struct RelyingParty {
    webauthn: Option<Webauthn>,
}

impl RelyingParty {
    /// The relying party of `issuer`: its host as the RP ID, its origin as the one origin.
    pub fn for_issuer(issuer: &Url) -> Self {
        let webauthn = issuer.domain().and_then(|host| {
            WebauthnBuilder::new(host, issuer)
                .and_then(|b| b.rp_name("Gatehouse").build())
                .ok()
        });
        if webauthn.is_none() {
            tracing::warn!(issuer = %issuer, "passkeys are off: the issuer's host is not a domain name");
        }
        Self { webauthn }
    }

    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    /// The WebAuthn relying party, or why there is none.
    pub fn get(&self) -> Result<&Webauthn, AuthError> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| AuthError::Invalid("Passkeys are not available on this server.".into()))
    }
}

/// The WebAuthn user handle of an account: its id (a UUID), which names nobody.
fn user_handle(user: &UserRow) -> Result<Uuid, AuthError> {
    Uuid::parse_str(&user.id).map_err(|_| AuthError::Internal("user id is not a UUID".into()))
}

/// A stored credential, as webauthn-rs reads it.
fn credential(row: &PasskeyRow) -> Result<Passkey, AuthError> {
    serde_json::from_str(&row.credential)
        .map_err(|e| AuthError::Internal(format!("passkey {}: stored credential: {e}", row.id)))
}

/// What `amr` says of a sign-in with this passkey (RFC 8176): `swk` for one that may be
/// synced between devices, `hwk` for one bound to its device.
pub fn method(row: &PasskeyRow) -> &'static str {
    if row.backup_eligible { "swk" } else { "hwk" }
}

/// The user's organisation's passkey rules (the defaults when it is gone).
pub(crate) async fn policy_of(state: &AppState, org_id: &str) -> Result<PasskeyPolicy, AuthError> {
    let id = org_id.to_owned();
    let org = state.store.run(move |c| orgs::find_by_id(c, &id)).await?;
    Ok(org.map(|o| o.policy().passkeys).unwrap_or_default())
}

pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<PasskeyRow>, AuthError> {
    let id = user_id.to_owned();
    Ok(state.store.run(move |c| store::for_user(c, &id)).await?)
}

/// Whether the user has a passkey this server can use.
pub async fn has_any(state: &AppState, user_id: &str) -> Result<bool, AuthError> {
    if !state.passkeys.available() {
        return Ok(false);
    }
    let id = user_id.to_owned();
    Ok(state.store.run(move |c| store::count_for(c, &id)).await? > 0)
}

/// Begins registering a passkey for `user`, shown to `to`: the options for
/// `navigator.credentials.create()`, as JSON.
pub async fn begin_registration(
    state: &AppState,
    user: &UserRow,
    to: EnrolmentFor<'_>,
) -> Result<serde_json::Value, AuthError> {
    let webauthn = state.passkeys.get()?;
    let policy = policy_of(state, &user.org_id).await?;
    if !policy.allowed() {
        return Err(AuthError::Invalid(
            "Your organisation does not use passkeys.".into(),
        ));
    }
    let existing = list(state, &user.id).await?;
    if existing.len() as i64 >= store::MAX_PER_USER {
        return Err(AuthError::Invalid(format!(
            "An account keeps at most {} passkeys: remove one first.",
            store::MAX_PER_USER
        )));
    }
    let exclude = existing
        .iter()
        .map(credential)
        .map(|p| p.map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (options, kept) = ceremony::begin_registration(
        webauthn,
        user_handle(user)?,
        &user.username,
        &user.addressed_as(),
        exclude,
        &policy,
    )?;
    state
        .ephemeral
        .set(&to.scoped("passkey-reg", &user.id), &kept, CEREMONY_TTL)
        .await?;
    Ok(options)
}

/// What came of a registration.
pub enum Registration {
    /// Recorded; `recovery_codes` are new ones to show once, when the account had none
    /// left (they are the way back when every passkey is lost).
    Added {
        passkey: PasskeyRow,
        recovery_codes: Option<Vec<String>>,
    },
    /// The browser's answer was refused, and why.
    Refused(ceremony::Refusal),
    /// Nothing was begun for this session or transaction, or it timed out.
    Expired,
}

/// Finishes the registration begun for `to` with the browser's answer `response`
/// (the JSON of the created credential).
pub async fn finish_registration(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    to: EnrolmentFor<'_>,
    name: &PasskeyName,
    response: &str,
) -> Result<Registration, AuthError> {
    let webauthn = state.passkeys.get()?;
    if response.len() > ceremony::MAX_RESPONSE_BYTES {
        return Ok(Registration::Refused(ceremony::Refusal::TooLarge));
    }
    // Taken whatever comes next: one answer per challenge.
    let Some(kept) = state
        .ephemeral
        .take(&to.scoped("passkey-reg", &user.id))
        .await?
    else {
        return Ok(Registration::Expired);
    };
    let created = match ceremony::finish_registration(webauthn, &kept, response) {
        Ok(created) => created,
        Err(why) => {
            tracing::info!(user_id = %user.id, "passkey registration refused");
            return Ok(Registration::Refused(why));
        }
    };
    let policy = policy_of(state, &user.org_id).await?;
    if !policy.admits(created.aaguid) {
        return Ok(Registration::Refused(ceremony::Refusal::KindNotAllowed));
    }
    let passkey = &created.passkey;
    let new = NewPasskey {
        user_id: user.id.clone(),
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice()),
        name: name.as_str().to_owned(),
        credential: serde_json::to_string(passkey)
            .map_err(|e| AuthError::Internal(e.to_string()))?,
        aaguid: created.aaguid.map(|a| a.to_string()),
        backup_eligible: created.backup_eligible,
    };
    let added = record(state, ctx, user, new, &to).await?;
    let Some(passkey) = added else {
        return Ok(Registration::Refused(ceremony::Refusal::AlreadyOrFull));
    };
    let recovery_codes = if super::totp::unused_recovery_codes(state, &user.id).await? == 0 {
        Some(super::totp::regenerate_recovery_codes(state, &user.id).await?)
    } else {
        None
    };
    Ok(Registration::Added {
        passkey,
        recovery_codes,
    })
}

/// Stores the new passkey and queues its mail in one commit, then records the event.
/// None when the credential is already registered or the account is full.
async fn record(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    new: NewPasskey,
    to: &EnrolmentFor<'_>,
) -> Result<Option<PasskeyRow>, AuthError> {
    let (now, ip, mailer, pii) = (
        state.clock.now(),
        ctx.client_ip,
        state.mailer.clone(),
        state.pii.clone(),
    );
    let user_id = user.id.clone();
    let added = state
        .store
        .transaction(move |c| {
            let row = store::insert(c, &new, now.naive_utc())?;
            if let Some(user) = users::find_by_id(c, &pii, &user_id)? {
                let notice = Notice::PasskeyAdded {
                    name: user.addressed_as(),
                    username: user.username.clone(),
                    passkey: row.name.clone(),
                    at: now,
                    ip,
                };
                mailer.enqueue_notice(c, &user, &notice)?;
            }
            Ok(row)
        })
        .await;
    let row = match added {
        Ok(row) => row,
        Err(crate::store::StoreError::Conflict) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    state.mailer.wake();
    tracing::info!(user_id = %user.id, passkey = %row.id, "passkey registered");
    let during = match to {
        EnrolmentFor::Transaction(_) => "sign_in",
        EnrolmentFor::Session(_) => "account",
    };
    let event = AuditEvent::success(EventType::PasskeyRegistered, ctx)
        .actor(&user.id)
        .about(&user.id, &user.org_id)
        .detail("credential_id", row.id.as_str())
        .detail("name", row.name.as_str())
        .detail("synced", row.backup_eligible)
        .detail("during", during);
    state.audit.record(event).await?;
    Ok(Some(row))
}

/// Renames one of the user's passkeys, and tells them by mail in the same commit.
pub async fn rename(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    passkey_id: &str,
    name: &PasskeyName,
) -> Result<(), AuthError> {
    let (uid, pid, new) = (
        user.id.clone(),
        passkey_id.to_owned(),
        name.as_str().to_owned(),
    );
    let (now, mailer, pii) = (state.clock.now(), state.mailer.clone(), state.pii.clone());
    state
        .store
        .transaction(move |c| {
            let previous = store::rename(c, &uid, &pid, &new)?;
            if let Some(user) = users::find_by_id(c, &pii, &uid)? {
                let notice = Notice::PasskeyRenamed {
                    name: user.addressed_as(),
                    username: user.username.clone(),
                    passkey: new,
                    previous,
                    at: now,
                };
                mailer.enqueue_notice(c, &user, &notice)?;
            }
            Ok(())
        })
        .await?;
    state.mailer.wake();
    let event = AuditEvent::success(EventType::PasskeyRenamed, ctx)
        .actor(&user.id)
        .about(&user.id, &user.org_id)
        .detail("credential_id", passkey_id)
        .detail("name", name.as_str());
    state.audit.record(event).await?;
    Ok(())
}

/// The user removes one of their own passkeys: removed, mailed, and recorded as their
/// own act.
pub async fn remove_own(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    passkey_id: &str,
) -> Result<PasskeyRow, AuthError> {
    let removed = remove(state, user, passkey_id, false).await?;
    let event = AuditEvent::success(EventType::PasskeyRemoved, ctx)
        .actor(&user.id)
        .about(&user.id, &user.org_id)
        .detail("credential_id", removed.id.as_str())
        .detail("name", removed.name.as_str());
    state.audit.record(event).await?;
    Ok(removed)
}

/// Removes one of `user`'s passkeys (by the user, or an administrator, who records
/// it) and tells them by mail in the same commit. `NotFound` when it is not theirs.
pub async fn remove(
    state: &AppState,
    user: &UserRow,
    passkey_id: &str,
    by_administrator: bool,
) -> Result<PasskeyRow, AuthError> {
    let (uid, pid, now, mailer, pii) = (
        user.id.clone(),
        passkey_id.to_owned(),
        state.clock.now(),
        state.mailer.clone(),
        state.pii.clone(),
    );
    let removed = state
        .store
        .transaction(move |c| {
            let row = store::remove(c, &uid, &pid)?;
            if let Some(user) = users::find_by_id(c, &pii, &uid)? {
                let notice = Notice::PasskeyRemoved {
                    name: user.addressed_as(),
                    username: user.username.clone(),
                    passkey: row.name.clone(),
                    at: now,
                    by_administrator,
                };
                mailer.enqueue_notice(c, &user, &notice)?;
            }
            Ok(row)
        })
        .await?;
    state.mailer.wake();
    tracing::info!(user_id = %user.id, passkey = %removed.id, "passkey removed");
    Ok(removed)
}

/// A view of a passkey for the pages and the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeySummary {
    pub id: String,
    pub name: String,
    /// May be synced between devices (`swk`), or bound to one (`hwk`).
    pub synced: bool,
    pub aaguid: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&PasskeyRow> for PasskeySummary {
    fn from(row: &PasskeyRow) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            synced: row.backup_eligible,
            aaguid: row.aaguid.clone(),
            created_at: row.created_at.and_utc(),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
        }
    }
}
