//! The review of emergency sessions (DESIGN §15, ONC 170.315 (d)(6)): every window
//! awaits a second administrator's sign-off with a note. Who may review which
//! organisation is the admin service's business; that nobody signs off their own
//! emergency access, and that a review is signed off once, is this module's.

use chrono::NaiveDateTime;

use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    domain::ReviewNote,
    startup::AppState,
    store::emergency::{self, EmergencyRow},
};

/// The administrator signing off, and the request they came in by (none from the CLI).
#[derive(Clone, Copy)]
pub struct Reviewer<'a> {
    /// `cli`, `client:<id>`, or the administrator's user id.
    pub actor: &'a str,
    pub request: Option<&'a RequestContext>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Four eyes: the user who broke the glass never reviews it.
    #[error("you cannot sign off your own emergency access: another administrator must")]
    OwnWindow,
    #[error("this emergency session was already signed off")]
    AlreadyReviewed,
    #[error(transparent)]
    Failed(#[from] AuthError),
}

/// Which organisations a listing covers: `None` for all of them.
pub type OrgScope = Option<Vec<String>>;

/// One window, whatever its organisation (the caller checks who may see it).
pub async fn find(state: &AppState, id: &str) -> Result<Option<EmergencyRow>, AuthError> {
    let id = id.to_owned();
    Ok(state.store.run(move |c| emergency::find(c, &id)).await?)
}

/// Windows awaiting review, oldest first.
pub async fn awaiting(
    state: &AppState,
    scope: OrgScope,
    limit: i64,
) -> Result<Vec<EmergencyRow>, AuthError> {
    Ok(state
        .store
        .run(move |c| emergency::awaiting_review(c, scope.as_deref(), limit))
        .await?)
}

/// Every window, reviewed or not, newest first.
pub async fn recent(
    state: &AppState,
    scope: OrgScope,
    limit: i64,
) -> Result<Vec<EmergencyRow>, AuthError> {
    Ok(state
        .store
        .run(move |c| emergency::recent(c, scope.as_deref(), limit))
        .await?)
}

/// Signs `window` off with `note` and records it; the row as it now stands. Of two
/// reviewers at once, one wins and the other hears `AlreadyReviewed`.
pub async fn sign_off(
    state: &AppState,
    by: Reviewer<'_>,
    window: &EmergencyRow,
    note: &ReviewNote,
) -> Result<EmergencyRow, ReviewError> {
    if by.actor == window.user_id {
        return Err(ReviewError::OwnWindow);
    }
    if window.reviewed_at.is_some() {
        return Err(ReviewError::AlreadyReviewed);
    }
    let now: NaiveDateTime = state.clock.now().naive_utc();
    let (id, actor, text) = (
        window.id.clone(),
        by.actor.to_owned(),
        note.as_str().to_owned(),
    );
    let signed = state
        .store
        .transaction(move |c| {
            if !emergency::sign_off(c, &id, &actor, &text, now)? {
                return Ok(None);
            }
            emergency::find(c, &id)
        })
        .await
        .map_err(AuthError::from)?;
    let Some(signed) = signed else {
        return Err(ReviewError::AlreadyReviewed);
    };
    let mut event = AuditEvent::new(EventType::EmergencyReviewed, Outcome::Success)
        .actor(by.actor)
        .about(&window.user_id, &window.org_id)
        .detail("emergency_id", window.id.as_str())
        .detail("note", note.as_str());
    if let Some(ctx) = by.request {
        event = event.request(ctx);
    }
    state.audit.record(event).await.map_err(AuthError::from)?;
    Ok(signed)
}
