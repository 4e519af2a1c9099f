//! Emergency access, the administrators' side (DESIGN §15): who is designated to break
//! the glass, and the review of every time someone did.
//!
//! Designating is a change to the user: whoever may change them today (an organisation
//! administrator of theirs, a super administrator) may grant or withdraw it, never for
//! themselves. Reviewing is helping the organisation: support, its administrators and
//! super administrators may sign a window off, never the user who opened it
//! (`auth::emergency::review`).

use crate::{
    audit::EventType,
    auth::emergency::review::{self, OrgScope, ReviewError, Reviewer},
    domain::ReviewNote,
    startup::AppState,
    store::{
        StoreError,
        emergency::{self, DesignationRow, EmergencyRow},
        users::UserRow,
    },
};

use super::{Acting, Action, Caller, ServiceError, object_id};

/// Windows one listing shows at most.
pub const LIST_LIMIT: i64 = 200;

/// A designated user, as administrators see the designation.
#[derive(Debug, Clone)]
pub struct Designated {
    pub row: DesignationRow,
    pub username: String,
}

/// The designation of `user`, if any (for their page).
pub async fn designation(
    state: &AppState,
    user: &UserRow,
) -> Result<Option<DesignationRow>, ServiceError> {
    let id = user.id.clone();
    Ok(state
        .store
        .run(move |c| emergency::designation(c, &id))
        .await?)
}

/// The designated users of organisation `org_id`, by username.
pub async fn designated(
    state: &AppState,
    who: &Caller,
    org_id: &str,
) -> Result<Vec<Designated>, ServiceError> {
    who.require(Action::Read)?;
    if !who.sees_org(org_id) {
        return Err(ServiceError::NotFound("no such organisation".into()));
    }
    let org = org_id.to_owned();
    let rows = state
        .store
        .run(move |c| emergency::designated(c, Some(&org)))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, username)| Designated { row, username })
        .collect())
}

/// Designates `user` for emergency access. False when they already were: nothing
/// changes and nothing is recorded. A disabled user may be designated; breaking the
/// glass refuses them while they are.
pub async fn grant(by: Acting<'_>, user: &UserRow) -> Result<bool, ServiceError> {
    may_change(by, user)?;
    let row = DesignationRow {
        user_id: user.id.clone(),
        org_id: user.org_id.clone(),
        granted_by: by.who.actor.clone(),
        granted_at: by.state.clock.now().naive_utc(),
    };
    let granted = match by
        .state
        .store
        .transaction(move |c| emergency::designate(c, &row))
        .await
    {
        Ok(granted) => granted,
        // Another administrator designated them at the same moment.
        Err(StoreError::Conflict) => false,
        Err(e) => return Err(e.into()),
    };
    if granted {
        record(by, user, "granted").await?;
    }
    Ok(granted)
}

/// Withdraws the designation of `user`. False when there was none. A window already
/// open runs its course (it is short, and awaits review like any other).
pub async fn withdraw(by: Acting<'_>, user: &UserRow) -> Result<bool, ServiceError> {
    may_change(by, user)?;
    let id = user.id.clone();
    let withdrawn = by
        .state
        .store
        .run(move |c| emergency::withdraw(c, &id))
        .await?;
    if withdrawn {
        record(by, user, "withdrawn").await?;
    }
    Ok(withdrawn)
}

/// Whoever may change `user` may change their designation, but nobody their own: an
/// administrator who could designate themselves would need no one's trust.
fn may_change(by: Acting<'_>, user: &UserRow) -> Result<(), ServiceError> {
    by.who.require(Action::Manage)?;
    by.who.may_act_on(user)?;
    if user.id == by.who.actor {
        return Err(ServiceError::Conflict(
            "you cannot change your own emergency access".into(),
        ));
    }
    Ok(())
}

async fn record(by: Acting<'_>, user: &UserRow, change: &str) -> Result<(), ServiceError> {
    let event = by
        .event(EventType::EmergencyDesignation)
        .subject(&user.id)
        .org(&user.org_id)
        .detail("change", change);
    by.state.audit.record(event).await?;
    Ok(())
}

/// Which windows a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Awaiting review, oldest first.
    Awaiting,
    /// Every window, newest first.
    All,
}

/// The windows of organisation `org_id` (when given; else of every organisation the
/// caller sees), as `listing` says.
pub async fn windows(
    state: &AppState,
    who: &Caller,
    org_id: Option<&str>,
    listing: Listing,
) -> Result<Vec<EmergencyRow>, ServiceError> {
    who.require(Action::Read)?;
    let scope: OrgScope = match (org_id, &who.org_id) {
        (Some(org), _) if who.sees_org(org) => Some(vec![org.to_owned()]),
        (Some(_), _) => return Err(ServiceError::NotFound("no such organisation".into())),
        (None, _) if who.role == crate::domain::Role::SuperAdmin => None,
        (None, Some(own)) => Some(vec![own.clone()]),
        (None, None) => Some(Vec::new()),
    };
    let rows = match listing {
        Listing::Awaiting => review::awaiting(state, scope, LIST_LIMIT).await?,
        Listing::All => review::recent(state, scope, LIST_LIMIT).await?,
    };
    Ok(rows)
}

/// The window with id `raw_id`, when the caller may see its organisation.
pub async fn window(
    state: &AppState,
    who: &Caller,
    action: Action,
    raw_id: &str,
) -> Result<EmergencyRow, ServiceError> {
    who.require(action)?;
    let not_found = || ServiceError::NotFound("no such emergency session".into());
    let id = object_id(raw_id).map_err(|_| not_found())?;
    review::find(state, &id)
        .await?
        .filter(|w| who.sees_org(&w.org_id))
        .ok_or_else(not_found)
}

/// Signs `window` off with `note` (audited by the review capability); the window as it
/// now stands.
pub async fn sign_off(
    by: Acting<'_>,
    window: &EmergencyRow,
    note: &ReviewNote,
) -> Result<EmergencyRow, ServiceError> {
    by.who.require(Action::Support)?;
    if !by.who.sees_org(&window.org_id) {
        return Err(ServiceError::NotFound("no such emergency session".into()));
    }
    let reviewer = Reviewer {
        actor: &by.who.actor,
        request: by.request,
    };
    review::sign_off(by.state, reviewer, window, note)
        .await
        .map_err(|e| match e {
            ReviewError::OwnWindow => ServiceError::Forbidden(
                "you cannot sign off your own emergency access: another administrator must",
            ),
            ReviewError::AlreadyReviewed => ServiceError::Conflict(e.to_string()),
            ReviewError::Failed(a) => a.into(),
        })
}
