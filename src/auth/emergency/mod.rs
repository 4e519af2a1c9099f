//! Emergency ("break-glass") access (DESIGN §15, ONC 170.315 (d)(6)).
//!
//! A user designated in advance, signed in with a second factor, raises their SSO
//! session to emergency access for a limited window by giving a reason. Relying parties
//! that ask for it (OIDC `acr_values`, SAML `RequestedAuthnContext` naming
//! [`ACR_EMERGENCY`]) see the emergency `acr` and an `emergency` claim while the window
//! is open, and ordinary access after; support and the privacy officer are told at once;
//! every window awaits a second administrator's review (`review`).
//!
//! The window is kept twice: in the database (`store::emergency`, the record that is
//! reviewed, and what tokens minted later consult) and in the SSO session (so the doors
//! answer from the session without a query). The database decides: a window ended there
//! is ended, whatever a session still says.

pub mod alerts;
pub mod review;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AuthError,
    session::{self, ACR_MFA, Ending, SessionEndListener, SsoSession},
};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    domain::{ContextLabel, EmergencyReason, UserStatus},
    startup::AppState,
    store::{emergency, emergency::EmergencyRow, new_id, orgs, users},
};

/// The authentication context class of an emergency session.
pub const ACR_EMERGENCY: &str = "urn:gatehouse:acr:emergency";

/// How often each instance ends lapsed windows and looks for overdue reviews.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Most windows ended per sweep (the rest wait for the next).
const SWEEP_BATCH: i64 = 100;

/// An emergency window as the SSO session carries it, and as tokens and assertions
/// show it (the `emergency` claim: `reason`, `started_at`, `expires_at` in unix
/// seconds, and `context` when one was picked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyWindow {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub id: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub started_at: i64,
    pub expires_at: i64,
}

impl EmergencyWindow {
    pub fn is_open(&self, now: i64) -> bool {
        now < self.expires_at
    }

    fn from_row(row: &EmergencyRow) -> Self {
        Self {
            id: row.id.clone(),
            reason: row.reason.clone(),
            context: row.context.clone(),
            started_at: row.started_at.and_utc().timestamp(),
            expires_at: row.expires_at.and_utc().timestamp(),
        }
    }

    /// The `emergency` claim of tokens: the window without its internal id.
    pub fn claim(&self) -> serde_json::Value {
        serde_json::json!({
            "reason": self.reason,
            "started_at": self.started_at,
            "expires_at": self.expires_at,
            "context": self.context,
        })
    }
}

/// What a relying party asked of a sign-in: emergency access, offering these context
/// labels to pick from (none: no choice to make).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAsk {
    #[serde(default)]
    pub offered: Vec<String>,
    /// The client id or SP entity id that asked.
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// What the person gave to break the glass, before it is checked.
#[derive(Debug, Clone)]
pub struct Raise<'a> {
    pub reason: &'a str,
    /// The label picked, when labels were offered.
    pub context: Option<&'a str>,
    /// The labels offered (the choice must be one of them).
    pub offered: &'a [String],
    pub requested_by: Option<&'a str>,
}

/// Why emergency access was refused; each message is safe to show the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("You are not designated for emergency access. Ask your administrator.")]
    NotDesignated,
    #[error(
        "Emergency access needs a sign-in with your second factor. Sign out, and sign in again with it."
    )]
    NoSecondFactor,
    #[error("{0}")]
    BadReason(String),
    #[error("Pick one of the contexts the application offered.")]
    BadContext,
    #[error(
        "Emergency access is already open for this session, until {0}. It is never extended: when it ends, break the glass again with a new reason."
    )]
    AlreadyOpen(String),
    #[error("This account cannot use emergency access.")]
    Inactive,
}

impl Refusal {
    /// The audit trail's word for it.
    fn code(&self) -> &'static str {
        match self {
            Self::NotDesignated => "not_designated",
            Self::NoSecondFactor => "no_second_factor",
            Self::BadReason(_) => "bad_reason",
            Self::BadContext => "bad_context",
            Self::AlreadyOpen(_) => "already_open",
            Self::Inactive => "inactive",
        }
    }
}

/// Whether `user_id` may break the glass (designated, whatever else holds).
pub async fn is_designated(state: &AppState, user_id: &str) -> Result<bool, AuthError> {
    let id = user_id.to_owned();
    Ok(state
        .store
        .run(move |c| emergency::is_designated(c, &id))
        .await?)
}

/// Raises `session` to emergency access: checks who, how they signed in and what they
/// gave; opens the window, with its alerts and audit event, in one transaction; and
/// marks the SSO session. Every refusal is recorded too, and nothing is raised.
pub async fn raise(
    state: &AppState,
    ctx: &RequestContext,
    session: &SsoSession,
    ask: Raise<'_>,
) -> Result<Result<EmergencyWindow, Refusal>, AuthError> {
    let now = state.clock.now();
    let checked = check(state, session, &ask, now).await?;
    let (row, org) = match checked {
        Ok(found) => found,
        Err(refusal) => {
            record_refusal(state, ctx, &session.user_id, &session.org_id, &refusal).await?;
            return Ok(Err(refusal));
        }
    };
    let event = AuditEvent::success(EventType::EmergencyStarted, ctx)
        .actor(&row.user_id)
        .about(&row.user_id, &row.org_id)
        .detail("emergency_id", row.id.as_str())
        .detail("reason", row.reason.as_str())
        .detail("expires_at", row.expires_at.and_utc().to_rfc3339())
        .detail("context", row.context.clone().unwrap_or_default())
        .detail("requested_by", row.requested_by.clone().unwrap_or_default());
    let (audit, mailer, issuer, stored) = (
        state.audit.clone(),
        state.mailer.clone(),
        state.config.issuer.clone(),
        row.clone(),
    );
    state
        .store
        .transaction(move |c| {
            emergency::insert(c, &stored)?;
            alerts::queue_started(c, &mailer, &issuer, &org, &stored)?;
            audit.record_in(c, vec![event])
        })
        .await?;
    state.mailer.wake();
    let window = EmergencyWindow::from_row(&row);
    session::set_emergency(
        state.ephemeral.as_ref(),
        state.clock.as_ref(),
        &session.handle,
        Some(window.clone()),
    )
    .await?;
    tracing::warn!(request_id = %ctx.request_id, user_id = %row.user_id, emergency_id = %row.id, "emergency access opened");
    Ok(Ok(window))
}

/// Records an attempt to break the glass that was refused, by `raise` or by a page
/// that checked the form first: a privacy officer wants to see those too.
pub async fn record_refusal(
    state: &AppState,
    ctx: &RequestContext,
    user_id: &str,
    org_id: &str,
    refusal: &Refusal,
) -> Result<(), AuthError> {
    tracing::info!(request_id = %ctx.request_id, user_id, refused = refusal.code(), "emergency access refused");
    let event = AuditEvent::new(EventType::EmergencyStarted, Outcome::Failure)
        .request(ctx)
        .actor(user_id)
        .about(user_id, org_id)
        .detail("refused", refusal.code());
    state.audit.record(event).await?;
    Ok(())
}

/// The checks of [`raise`], in the order a person would fix them: who they are, how they
/// signed in, then what they typed. The window to open, and its organisation.
async fn check(
    state: &AppState,
    session: &SsoSession,
    ask: &Raise<'_>,
    now: DateTime<Utc>,
) -> Result<Result<(EmergencyRow, orgs::OrgRow), Refusal>, AuthError> {
    let user_id = session.user_id.clone();
    let pii = state.pii.clone();
    let (user, org, designated) = state
        .store
        .run(move |c| {
            let (user, org) = users::find_with_org(c, &pii, &user_id)?;
            let designated = emergency::is_designated(c, &user.id)?;
            Ok((user, org, designated))
        })
        .await?;
    if user.status() != UserStatus::Active || user.must_change_password {
        return Ok(Err(Refusal::Inactive));
    }
    if !designated {
        return Ok(Err(Refusal::NotDesignated));
    }
    // DESIGN §15: emergency access always needs MFA, whatever the organisation's policy.
    if session.acr() != ACR_MFA {
        return Ok(Err(Refusal::NoSecondFactor));
    }
    if let Some(open) = session.open_emergency(now.timestamp()) {
        let until = DateTime::<Utc>::from_timestamp(open.expires_at, 0)
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default();
        return Ok(Err(Refusal::AlreadyOpen(until)));
    }
    let reason = match EmergencyReason::parse(ask.reason) {
        Ok(reason) => reason,
        Err(e) => return Ok(Err(Refusal::BadReason(capitalise(&e.0)))),
    };
    let context = match (ask.offered.is_empty(), ask.context) {
        (true, None) => None,
        (false, Some(picked)) => match ContextLabel::parse(picked) {
            Ok(label) if ask.offered.iter().any(|o| o == label.as_str()) => {
                Some(label.as_str().to_owned())
            }
            _ => return Ok(Err(Refusal::BadContext)),
        },
        // A label nobody offered, or none picked where some were offered.
        _ => return Ok(Err(Refusal::BadContext)),
    };
    let minutes = i64::from(org.policy().emergency_window_minutes);
    let started = stored_time(now);
    let row = EmergencyRow {
        id: new_id(),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        session_handle: session.handle.clone(),
        reason: reason.as_str().to_owned(),
        context,
        requested_by: ask.requested_by.map(str::to_owned),
        started_at: started,
        expires_at: started + chrono::Duration::minutes(minutes),
        ended_at: None,
        end_reason: None,
        reviewed_by: None,
        reviewed_at: None,
        review_note: None,
        overdue_notified_at: None,
    };
    Ok(Ok((row, org)))
}

/// A time as both backends store it (microseconds), so the row read back is the row
/// written.
fn stored_time(t: DateTime<Utc>) -> NaiveDateTime {
    DateTime::<Utc>::from_timestamp_micros(t.timestamp_micros())
        .unwrap_or(t)
        .naive_utc()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The window `emergency_id` as tokens minted at `now` show it: Some while it is open,
/// None once it has ended or run out (tokens then fall back to ordinary access).
pub async fn open_window(
    state: &AppState,
    emergency_id: Option<&str>,
) -> Result<Option<EmergencyWindow>, AuthError> {
    let Some(id) = emergency_id.map(str::to_owned) else {
        return Ok(None);
    };
    let now = state.clock.now().naive_utc();
    let row = state.store.run(move |c| emergency::find(c, &id)).await?;
    Ok(row
        .filter(|r| r.is_open(now))
        .map(|r| EmergencyWindow::from_row(&r)))
}

/// [`open_window`] on a connection the caller holds.
pub fn open_window_in(
    c: &mut crate::store::DbConnection,
    emergency_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<Option<EmergencyWindow>, crate::store::StoreError> {
    let Some(id) = emergency_id else {
        return Ok(None);
    };
    Ok(emergency::find(c, id)?
        .filter(|r| r.is_open(now))
        .map(|r| EmergencyWindow::from_row(&r)))
}

/// Ends window `id` for `reason` (`expired`, `ended_by_user`, `signed_out`): once, by
/// whichever instance or request gets there first, which alone records it, alerts, and
/// tells the protocols. False when it had already ended.
pub async fn end(
    state: &AppState,
    ctx: Option<&RequestContext>,
    id: &str,
    reason: &'static str,
) -> Result<bool, AuthError> {
    let now = state.clock.now();
    let (audit, mailer, issuer) = (
        state.audit.clone(),
        state.mailer.clone(),
        state.config.issuer.clone(),
    );
    let (id_owned, ctx_owned) = (id.to_owned(), ctx.cloned());
    let ended = state
        .store
        .transaction(move |c| {
            let at = stored_time(now);
            if !emergency::end(c, &id_owned, reason, at)? {
                return Ok(None);
            }
            let Some(row) = emergency::find(c, &id_owned)? else {
                return Ok(None);
            };
            let Some(org) = orgs::find_by_id(c, &row.org_id)? else {
                return Ok(None);
            };
            alerts::queue_ended(c, &mailer, &issuer, &org, &row)?;
            let mut event = AuditEvent::new(EventType::EmergencyEnded, Outcome::Success)
                .about(&row.user_id, &row.org_id)
                .detail("emergency_id", row.id.as_str())
                .detail("reason", reason);
            if let Some(ctx) = &ctx_owned {
                event = event.request(ctx);
            }
            audit.record_in(c, vec![event])?;
            Ok(Some(row))
        })
        .await?;
    let Some(row) = ended else {
        return Ok(false);
    };
    state.mailer.wake();
    tracing::info!(user_id = %row.user_id, emergency_id = %row.id, reason, "emergency access ended");
    // The session, if it lives on, goes back to ordinary access.
    let cleared = session::set_emergency(
        state.ephemeral.as_ref(),
        state.clock.as_ref(),
        &row.session_handle,
        None,
    )
    .await;
    if let Err(e) = cleared {
        tracing::warn!(error = %e, emergency_id = %row.id, "emergency window ended; its session could not be updated");
    }
    session::announce_emergency_ended(state, &row.id).await?;
    Ok(true)
}

/// The person ends their own open window early (the account page).
pub async fn end_own(
    state: &AppState,
    ctx: &RequestContext,
    current: &SsoSession,
) -> Result<bool, AuthError> {
    let now = state.clock.now().timestamp();
    match current.open_emergency(now) {
        Some(window) => end(state, Some(ctx), &window.id, "ended_by_user").await,
        None => Ok(false),
    }
}

/// Ends every window past its end; returns how many this instance ended.
pub async fn end_lapsed(state: &AppState) -> Result<usize, AuthError> {
    let now = state.clock.now().naive_utc();
    let lapsed = state
        .store
        .run(move |c| emergency::lapsed(c, now, SWEEP_BATCH))
        .await?;
    let mut ended = 0;
    for row in lapsed {
        if end(state, None, &row.id, "expired").await? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// One round of the emergency worker: ends the windows past their end, then mails
/// overdue reviews. Each instance runs it every [`SWEEP_EVERY`] (`startup`).
pub async fn sweep(state: &AppState) -> Result<usize, AuthError> {
    let ended = end_lapsed(state).await?;
    alerts::mail_overdue(state).await?;
    Ok(ended)
}

/// An SSO session that ends takes its open emergency window with it.
pub struct EndWithSession;

#[async_trait::async_trait]
impl SessionEndListener for EndWithSession {
    async fn session_ended(&self, state: &AppState, ending: &Ending<'_>) -> Result<(), AuthError> {
        let (handles, reason): (Vec<String>, &'static str) = match *ending {
            Ending::One { handle, .. } => (vec![handle.to_owned()], "signed_out"),
            Ending::AllOfUser { handles, .. } => (handles.to_vec(), "signed_out"),
            Ending::Lapsed { handle } => (vec![handle.to_owned()], "session_ended"),
        };
        let now = state.clock.now().naive_utc();
        for handle in handles {
            let open = state
                .store
                .run(move |c| emergency::open_for_session(c, &handle, now))
                .await?;
            for row in open {
                end(state, None, &row.id, reason).await?;
            }
        }
        Ok(())
    }
}

/// Shared with the composition root.
pub fn session_listener() -> Arc<dyn SessionEndListener> {
    Arc::new(EndWithSession)
}
