//! What an administrator does, whichever door they came in by: the admin console or
//! the admin API. Each action checks the role
//! and the rank of the person acted on itself, so no caller can forget to, and records
//! the same audit event as the API, naming the acting administrator (DESIGN §11).
//!
//! Seeing the user or organisation at all (404 for other organisations) is the loader's
//! job: `Caller::visible_user` and `visible_org`.

use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        guard::login_key,
        recovery::{self, Admin, AdminError, ForcedReset},
        session,
    },
    domain::{OrgPolicy, Role},
    startup::AppState,
    store::{
        ip_blocks, lockouts, orgs,
        users::{self, UserRow},
    },
    web::RequestContext,
};

use super::{Action, ApiError, Caller};

/// An organisation the caller may see, or 404.
pub fn visible_org(who: &Caller, org: Option<orgs::OrgRow>) -> Result<orgs::OrgRow, ApiError> {
    org.filter(|o| who.sees_org(&o.id))
        .ok_or(ApiError::NotFound)
}

/// Whether sign-in is locked for `user` now (temporarily or until unlocked).
pub async fn is_locked(state: &AppState, user: &UserRow) -> Result<bool, ApiError> {
    let key = login_key(&user.username);
    let now = state.clock.now().naive_utc();
    Ok(state
        .store
        .run(move |c| lockouts::find(c, &key))
        .await?
        .is_some_and(|l| l.permanent || l.locked_until.is_some_and(|t| t > now)))
}

/// Lifts a lockout of `user` (DESIGN §5: a permanent one only an administrator can
/// lift). True when there was one.
pub async fn unlock(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<bool, ApiError> {
    who.require(Action::Support)?;
    who.may_act_on(user)?;
    let key = login_key(&user.username);
    let changed = state.store.run(move |c| lockouts::unlock(c, &key)).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AccountUnlocked, Outcome::Success)
                .request(ctx)
                .actor(&who.actor)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("was_locked", changed),
        )
        .await?;
    Ok(changed)
}

/// DESIGN §7 admin-forced reset of one user (audited by `recovery::force_reset`).
pub async fn force_reset(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<ForcedReset, ApiError> {
    who.require(Action::Support)?;
    who.may_act_on(user)?;
    let admin = Admin {
        actor: &who.actor,
        request: Some(ctx),
    };
    recovery::force_reset(state, admin, user)
        .await
        .map_err(|e| match e {
            AdminError::NoSuchUser(_) | AdminError::NoSuchOrg(_) => ApiError::NotFound,
            AdminError::NotActive(..) | AdminError::Exists(_) => ApiError::Conflict(e.to_string()),
            AdminError::App(a) => ApiError::App(a),
        })
}

/// DESIGN §6: an administrator removes a user's second factor; the user is told by
/// mail. True when there was one.
pub async fn remove_totp(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<bool, ApiError> {
    who.require(Action::Support)?;
    who.may_act_on(user)?;
    let changed = crate::auth::totp::remove(state, &user.id, true).await?;
    if changed {
        state
            .audit
            .record(
                AuditEvent::new(EventType::MfaRemoved, Outcome::Success)
                    .request(ctx)
                    .actor(&who.actor)
                    .subject(&user.id)
                    .org(&user.org_id),
            )
            .await?;
    }
    Ok(changed)
}

/// Ends one session of `user` (its grants revoked, with back-channel logout). False
/// when it was not theirs, already gone, or not a session handle at all.
pub async fn end_session(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    user: &UserRow,
    handle: &str,
) -> Result<bool, ApiError> {
    who.require(Action::Support)?;
    who.may_act_on(user)?;
    if handle.len() != 64 || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    let ended = session::end_one(state, &user.id, handle).await?;
    if ended {
        state
            .audit
            .record(
                AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                    .request(ctx)
                    .actor(&who.actor)
                    .subject(&user.id)
                    .org(&user.org_id)
                    .detail("reason", "revoked")
                    .detail("sessions_ended", 1),
            )
            .await?;
    }
    Ok(ended)
}

/// Ends every session of `user` and revokes their tokens. How many ended.
pub async fn end_all_sessions(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<usize, ApiError> {
    who.require(Action::Support)?;
    who.may_act_on(user)?;
    let ended = session::end_every(state, &user.id, None).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                .request(ctx)
                .actor(&who.actor)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("reason", "revoked")
                .detail("sessions_ended", ended),
        )
        .await?;
    Ok(ended)
}

/// Replaces an organisation's policies after `OrgPolicy::validate`; every field out of
/// bounds is named in the error.
pub async fn set_policy(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    org: &orgs::OrgRow,
    policy: OrgPolicy,
) -> Result<(), ApiError> {
    who.require(Action::Manage)?;
    if !who.sees_org(&org.id) {
        return Err(ApiError::NotFound);
    }
    outranks_everyone_governed(state, who, org).await?;
    policy
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (id, now) = (org.id.clone(), state.clock.now().naive_utc());
    state
        .store
        .run(move |c| orgs::set_policy(c, &id, &policy, now))
        .await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(ctx)
                .actor(&who.actor)
                .org(&org.id)
                .detail("object", "organisation_policy")
                .detail("change", "replaced"),
        )
        .await?;
    Ok(())
}

/// A policy governs every member of its organisation, so changing it takes rank over
/// each of them, as acting on one of them does (`Caller::may_act_on`): an org_admin may
/// not turn off the lockout or the MFA requirement that protects a super administrator
/// of the same organisation (issue 20 item 8). Disabled members count: they can be
/// enabled again.
async fn outranks_everyone_governed(
    state: &AppState,
    who: &Caller,
    org: &orgs::OrgRow,
) -> Result<(), ApiError> {
    if who.role == Role::SuperAdmin {
        return Ok(());
    }
    let id = org.id.clone();
    let members = state.store.run(move |c| users::list_by_org(c, &id)).await?;
    if members.iter().any(|u| u.role() > who.role) {
        return Err(ApiError::Forbidden(
            "a member of this organisation has a role above yours (super_admin): only a super administrator may change its policy",
        ));
    }
    Ok(())
}

/// Lifts an IP block (DESIGN §5); blocks span organisations, so only a super
/// administrator may. True when one was active.
pub async fn lift_ip_block(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    ip: &str,
) -> Result<bool, ApiError> {
    who.require(Action::Global)?;
    if ip.is_empty() || ip.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let (key, now) = (ip.to_owned(), state.clock.now().naive_utc());
    let changed = state
        .store
        .run(move |c| ip_blocks::unblock(c, &key, now))
        .await?;
    if changed {
        state
            .audit
            .record(
                AuditEvent::new(EventType::IpUnblocked, Outcome::Success)
                    .request(ctx)
                    .actor(&who.actor)
                    .detail("ip", ip),
            )
            .await?;
    }
    Ok(changed)
}
