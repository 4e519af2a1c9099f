//! SSO sessions (DESIGN §8): a random cookie; server-side state in the ephemeral store
//! under the cookie's SHA-256; idle and absolute expiry per organisation, judged by the
//! one clock so tests can move time.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::{random_token, token_hash};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    clock::Clock,
    ephemeral::Ephemeral,
    startup::AppState,
};

/// How often `last_seen` is written back; idle timeouts are hours, so minute precision is plenty.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SsoSession {
    /// SHA-256 of the cookie value; the handle shown on the account page.
    #[serde(skip)]
    pub handle: String,
    pub user_id: String,
    pub org_id: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// CSRF token for the forms of this session.
    pub csrf: String,
    pub idle_secs: u64,
    pub absolute_secs: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Unix seconds of the last request to the admin console, which has its own,
    /// shorter idle limit (DESIGN §8); `None` until the console is first used.
    #[serde(default)]
    pub console_seen: Option<i64>,
    /// The emergency window this session was raised to (DESIGN §15), open or past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<super::emergency::EmergencyWindow>,
    /// The upstream identity provider this session was signed in through (DESIGN §16):
    /// signing out here ends its session there, and its back-channel logout ends this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<super::upstream::UpstreamOrigin>,
}

/// `acr` for tokens and assertions (DESIGN §6): whether a second factor was used.
pub const ACR_MFA: &str = "urn:gatehouse:acr:mfa";
pub const ACR_PASSWORD: &str = "urn:gatehouse:acr:pwd";

/// The authentication context class that `amr` (the methods used) amounts to.
pub fn acr(amr: &[String]) -> &'static str {
    // `otp`: our own second factor; `hwk`, `swk`: a passkey (DESIGN §17); `mfa`: a
    // passkey's sign-in, or an upstream identity provider's MFA, trusted by its
    // connector (DESIGN §16).
    if amr
        .iter()
        .any(|m| ["otp", "hwk", "swk", "mfa"].contains(&m.as_str()))
    {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

impl SsoSession {
    pub fn acr(&self) -> &'static str {
        acr(&self.amr)
    }

    /// The emergency window this session has open at `now` (unix seconds), if any.
    pub fn open_emergency(&self, now: i64) -> Option<&super::emergency::EmergencyWindow> {
        self.emergency.as_ref().filter(|w| w.is_open(now))
    }

    /// Where the session was opened from, for people to recognise it: the address and
    /// the browser, at most 120 characters.
    pub fn opened_from(&self) -> String {
        let parts = [self.client_ip.as_deref(), self.user_agent.as_deref()];
        let from = parts.into_iter().flatten().collect::<Vec<_>>().join(" · ");
        from.chars().take(120).collect()
    }

    /// Unix seconds by which this session has ended unless it is used again: its idle
    /// limit counted from `now` (a use, such as answering an SP, is activity), never past
    /// its absolute limit. What SAML calls SessionNotOnOrAfter, so that an SP's session
    /// ends no later than ours (ONC 170.315 (d)(5)).
    pub fn ends_by(&self, now: i64) -> i64 {
        let idle_end = now.saturating_add(self.idle_secs as i64);
        let absolute_end = self.created_at.saturating_add(self.absolute_secs as i64);
        idle_end.min(absolute_end)
    }
}

/// Why a session ended, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Idle,
    Absolute,
}

fn key(handle: &str) -> String {
    format!("sess:{handle}")
}

fn index_key(user_id: &str) -> String {
    format!("user-sessions:{user_id}")
}

impl SsoSession {
    fn remaining(&self, now: i64) -> Duration {
        let idle_end = self.last_seen + self.idle_secs as i64;
        let absolute_end = self.created_at + self.absolute_secs as i64;
        Duration::from_secs(idle_end.min(absolute_end).saturating_sub(now).max(1) as u64)
    }

    fn expiry(&self, now: i64) -> Option<Expiry> {
        if now >= self.created_at + self.absolute_secs as i64 {
            Some(Expiry::Absolute)
        } else if now >= self.last_seen + self.idle_secs as i64 {
            Some(Expiry::Idle)
        } else {
            None
        }
    }
}

pub struct NewSession {
    pub user_id: String,
    pub org_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub idle_secs: u64,
    pub absolute_secs: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub upstream: Option<super::upstream::UpstreamOrigin>,
}

/// Creates a session; returns it and the cookie value (shown to the browser only).
pub async fn create(
    store: &dyn Ephemeral,
    clock: &dyn Clock,
    new: NewSession,
) -> Result<(SsoSession, String), AuthError> {
    let cookie_value = random_token();
    let now = clock.now().timestamp();
    let session = SsoSession {
        handle: token_hash(&cookie_value),
        user_id: new.user_id,
        org_id: new.org_id,
        created_at: now,
        last_seen: now,
        auth_time: new.auth_time,
        amr: new.amr,
        csrf: random_token(),
        idle_secs: new.idle_secs,
        absolute_secs: new.absolute_secs,
        client_ip: new.client_ip,
        user_agent: new.user_agent,
        console_seen: None,
        emergency: None,
        upstream: new.upstream,
    };
    write(store, &session, now).await?;
    let lifetime = Duration::from_secs(session.absolute_secs.max(1));
    store
        .set_add(&index_key(&session.user_id), &session.handle, lifetime)
        .await?;
    if let Some(origin) = &session.upstream {
        // What the upstream's back-channel logout names (its `sid`, else its `sub`)
        // finds this session.
        let member = super::upstream::session_member(&session.user_id, &session.handle);
        for key in origin.index_keys() {
            store.set_add(&key, &member, lifetime).await?;
        }
    }
    Ok((session, cookie_value))
}

async fn write(store: &dyn Ephemeral, session: &SsoSession, now: i64) -> Result<(), AuthError> {
    let raw = serde_json::to_vec(session).map_err(|e| AuthError::Internal(e.to_string()))?;
    store
        .set(&key(&session.handle), &raw, session.remaining(now))
        .await?;
    Ok(())
}

/// Whether the session with `handle` still exists and has not expired.
pub async fn is_live(
    store: &dyn Ephemeral,
    clock: &dyn Clock,
    handle: &str,
) -> Result<bool, AuthError> {
    let now = clock.now().timestamp();
    Ok(load_by_handle(store, handle)
        .await?
        .is_some_and(|s| s.expiry(now).is_none()))
}

async fn load_by_handle(
    store: &dyn Ephemeral,
    handle: &str,
) -> Result<Option<SsoSession>, AuthError> {
    let Some(raw) = store.get(&key(handle)).await? else {
        return Ok(None);
    };
    let Ok(mut session) = serde_json::from_slice::<SsoSession>(&raw) else {
        return Ok(None);
    };
    session.handle = handle.to_owned();
    Ok(Some(session))
}

/// The live session that the browser's session cookie (`presented`) names, touched; an
/// expired one is ended.
pub async fn current(
    state: &AppState,
    presented: Option<&str>,
) -> Result<Option<SsoSession>, AuthError> {
    let (store, clock) = (state.ephemeral.as_ref(), state.clock.as_ref());
    let Some(presented) = presented else {
        return Ok(None);
    };
    if presented.len() > super::transaction::MAX_TOKEN_LEN {
        return Ok(None);
    }
    let handle = token_hash(presented);
    let Some(mut session) = load_by_handle(store, &handle).await? else {
        return Ok(None);
    };
    let now = clock.now().timestamp();
    if let Some(why) = session.expiry(now) {
        tracing::info!(user_id = %session.user_id, reason = ?why, "session expired");
        end(store, &session.user_id, &handle).await?;
        announce(state, &Ending::Lapsed { handle: &handle }).await?;
        let reason = match why {
            Expiry::Idle => "idle",
            Expiry::Absolute => "absolute",
        };
        state
            .audit
            .record(
                AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                    .subject(&session.user_id)
                    .org(&session.org_id)
                    .detail("reason", reason),
            )
            .await?;
        return Ok(None);
    }
    if now - session.last_seen >= TOUCH_EVERY_SECS {
        session.last_seen = now;
        write(store, &session, now).await?;
    }
    Ok(Some(session))
}

/// Records a request to the admin console in the session (its own idle clock).
pub async fn touch_console(
    store: &dyn Ephemeral,
    session: &mut SsoSession,
    now: i64,
) -> Result<(), AuthError> {
    session.console_seen = Some(now);
    session.last_seen = now;
    write(store, session, now).await
}

/// Sets (or clears) the emergency window of the live session `handle`; false when the
/// session is gone.
pub async fn set_emergency(
    store: &dyn Ephemeral,
    clock: &dyn Clock,
    handle: &str,
    window: Option<super::emergency::EmergencyWindow>,
) -> Result<bool, AuthError> {
    let now = clock.now().timestamp();
    let Some(mut session) = load_by_handle(store, handle).await? else {
        return Ok(false);
    };
    if session.expiry(now).is_some() {
        return Ok(false);
    }
    session.emergency = window;
    write(store, &session, now).await?;
    Ok(true)
}

/// All live sessions of a user (for the account page); dead index entries are pruned.
pub async fn list(
    store: &dyn Ephemeral,
    clock: &dyn Clock,
    user_id: &str,
) -> Result<Vec<SsoSession>, AuthError> {
    let now = clock.now().timestamp();
    let mut live = Vec::new();
    for handle in store.set_members(&index_key(user_id)).await? {
        match load_by_handle(store, &handle).await? {
            Some(s) if s.user_id == user_id && s.expiry(now).is_none() => live.push(s),
            _ => store.set_remove(&index_key(user_id), &handle).await?,
        }
    }
    live.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(live)
}

/// How an SSO session came to its end, for those that must hear of it.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// Ended on purpose by handle: sign-out, a user or an administrator ending it.
    /// `existed` is false when it was already gone (or was not `user_id`'s): what was
    /// made under it for `user_id` must end all the same.
    One {
        user_id: &'a str,
        handle: &'a str,
        existed: bool,
    },
    /// Every session of a user but `keep` (password change or reset, disable, revoke).
    AllOfUser {
        user_id: &'a str,
        keep: Option<&'a str>,
        handles: &'a [String],
    },
    /// Ran out (idle or absolute limit), found when its browser came back.
    Lapsed { handle: &'a str },
}

/// Hears that sessions ended (DESIGN §1): the protocols subscribe here (OIDC revokes
/// the grants made under them and sends back-channel logout; SAML notes the SPs it can
/// no longer tell) instead of every door calling each of them.
#[async_trait::async_trait]
pub trait SessionEndListener: Send + Sync {
    async fn session_ended(&self, state: &AppState, ending: &Ending<'_>) -> Result<(), AuthError>;

    /// An emergency window ended (DESIGN §15): what was made under it falls back to
    /// ordinary access, and whoever asked for it is told (OIDC: back-channel logout).
    async fn emergency_ended(
        &self,
        _state: &AppState,
        _emergency_id: &str,
    ) -> Result<(), AuthError> {
        Ok(())
    }
}

/// The listeners, in the order they are told.
#[derive(Default)]
pub struct SessionListeners(Vec<Arc<dyn SessionEndListener>>);

impl SessionListeners {
    pub fn subscribe(&mut self, listener: Arc<dyn SessionEndListener>) {
        self.0.push(listener);
    }
}

/// Tells the listeners that emergency window `emergency_id` ended.
pub(super) async fn announce_emergency_ended(
    state: &AppState,
    emergency_id: &str,
) -> Result<(), AuthError> {
    for listener in &state.session_listeners.0 {
        listener.emergency_ended(state, emergency_id).await?;
    }
    Ok(())
}

async fn announce(state: &AppState, ending: &Ending<'_>) -> Result<(), AuthError> {
    for listener in &state.session_listeners.0 {
        listener.session_ended(state, ending).await?;
    }
    Ok(())
}

/// Ends one SSO session of `user_id` and tells its listeners.
///
/// The handle comes from a person (the account page, the admin API): when it names
/// someone else's session, nothing of theirs ends, neither the session nor what was
/// made under it, and nothing is recorded in their name (issue 20 item 5).
pub async fn end_one(state: &AppState, user_id: &str, handle: &str) -> Result<bool, AuthError> {
    let existed = end(state.ephemeral.as_ref(), user_id, handle).await?;
    announce(
        state,
        &Ending::One {
            user_id,
            handle,
            existed,
        },
    )
    .await?;
    Ok(existed)
}

/// A user ends one of their own sessions (the account page): ended, and recorded as
/// their own act when it was theirs.
pub async fn end_own(
    state: &AppState,
    ctx: &RequestContext,
    user: &crate::store::users::UserRow,
    handle: &str,
) -> Result<bool, AuthError> {
    let ended = end_one(state, &user.id, handle).await?;
    if ended {
        let event = AuditEvent::success(EventType::SessionEnded, ctx)
            .actor(&user.id)
            .about(&user.id, &user.org_id);
        state
            .audit
            .record(event.detail("reason", "revoked"))
            .await?;
    }
    Ok(ended)
}

/// The person in front of this browser signs out (the sign-out form, RP-initiated
/// logout, a SAML LogoutRequest): the session ends, its listeners are told, and the
/// trail says why (`reason`; `sp` when an SP asked).
pub async fn sign_out(
    state: &AppState,
    ctx: &RequestContext,
    current: &SsoSession,
    reason: &str,
    sp: Option<&str>,
) -> Result<(), AuthError> {
    end_one(state, &current.user_id, &current.handle).await?;
    tracing::info!(request_id = %ctx.request_id, user_id = %current.user_id, reason, "signed out");
    let mut event = AuditEvent::success(EventType::SessionEnded, ctx)
        .about(&current.user_id, &current.org_id)
        .detail("reason", reason);
    if let Some(sp) = sp {
        event = event.detail("sp", sp);
    }
    state.audit.record(event).await?;
    Ok(())
}

/// Ends every session of a user except `keep` (password change, reset, disable, admin
/// revoke) and tells the listeners; returns how many sessions it ended.
pub async fn end_every(
    state: &AppState,
    user_id: &str,
    keep: Option<&str>,
) -> Result<usize, AuthError> {
    let handles = end_all(state.ephemeral.as_ref(), user_id, keep).await?;
    announce(
        state,
        &Ending::AllOfUser {
            user_id,
            keep,
            handles: &handles,
        },
    )
    .await?;
    Ok(handles.len())
}

/// Ends one session of `user_id`; false when it was not theirs or already gone.
async fn end(store: &dyn Ephemeral, user_id: &str, handle: &str) -> Result<bool, AuthError> {
    let ours = match load_by_handle(store, handle).await? {
        Some(s) => s.user_id == user_id,
        None => false,
    };
    if ours {
        store.delete(&key(handle)).await?;
    }
    store.set_remove(&index_key(user_id), handle).await?;
    Ok(ours)
}

/// Ends every session of a user except `keep`; returns the handles it ended.
async fn end_all(
    store: &dyn Ephemeral,
    user_id: &str,
    keep: Option<&str>,
) -> Result<Vec<String>, AuthError> {
    let mut ended = Vec::new();
    for handle in store.set_members(&index_key(user_id)).await? {
        if Some(handle.as_str()) == keep {
            continue;
        }
        store.delete(&key(&handle)).await?;
        store.set_remove(&index_key(user_id), &handle).await?;
        ended.push(handle);
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_says_whether_a_second_factor_was_used() {
        assert_eq!(acr(&["pwd".into()]), ACR_PASSWORD);
        assert_eq!(acr(&["pwd".into(), "otp".into()]), ACR_MFA);
    }
}
