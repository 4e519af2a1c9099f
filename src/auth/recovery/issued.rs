//! Administrator-forced resets and invitations (DESIGN §7): the actions the admin API,
//! the console and the CLI all call.

use chrono::{DateTime, Utc};

use super::{LinkToken, lifetime};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    domain::{Email, OrgName, Role, UserStatus, Username},
    mail::Notice,
    startup::AppState,
    store::{
        DbConnection, StoreError, orgs,
        recovery_tokens::{self, Purpose},
        users::{self, UserRow},
    },
};

/// Who asked for an administrative action, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    /// `cli`, or the administrator's user id.
    pub actor: &'a str,
    pub request: Option<&'a RequestContext>,
}

impl Admin<'_> {
    fn event(&self, event_type: EventType) -> AuditEvent {
        let event = AuditEvent::new(event_type, Outcome::Success).actor(self.actor);
        match self.request {
            Some(ctx) => event.request(ctx),
            None => event,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("no organisation named {0:?}")]
    NoSuchOrg(String),
    #[error("user {0:?} is {1}, not active")]
    NotActive(String, &'static str),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("{0}")]
    App(#[from] AuthError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::App(e.into())
    }
}

/// One user's forced reset: who, and how many sessions ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForcedReset {
    pub username: String,
    pub sessions_ended: usize,
}

/// DESIGN §7 admin-forced reset of one active user. The password stops working at once
/// (issue 20 item 14): an administrator forces a reset because the password may be
/// known to someone else, so it must not stay good for even one more sign-in — not even
/// one that would then ask for a new password, since whoever knows it could choose
/// that. In one transaction the password is taken away (`must_change_password` set,
/// the old hash kept in the history so it cannot be chosen again), a reset link is
/// issued (voiding older ones) and mailed with the notice; then every session ends.
/// Signing in with the old password fails exactly as a wrong one does; the mailed link
/// (or a new one from `/reset`) is the only way back in.
pub async fn force_reset(
    state: &AppState,
    admin: Admin<'_>,
    user: &UserRow,
) -> Result<ForcedReset, AdminError> {
    if user.status() != UserStatus::Active {
        return Err(AdminError::NotActive(
            user.username.clone(),
            user.status().as_str(),
        ));
    }
    let token = LinkToken::generate();
    let now = state.clock.now();
    let expires_at = now + lifetime(state, Purpose::Reset);
    let (user_id, mailer) = (user.id.clone(), state.mailer.clone());
    let (hash, secret) = (token.hash(), token.secret());
    let pii = state.pii.clone();
    state
        .store
        .transaction(move |c| {
            users::revoke_password(c, &user_id, now.naive_utc())?;
            recovery_tokens::issue(
                c,
                &user_id,
                Purpose::Reset,
                &hash,
                now.naive_utc(),
                expires_at.naive_utc(),
            )?;
            let Some(user) = users::find_by_id(c, &pii, &user_id)? else {
                return Err(StoreError::NotFound);
            };
            let notice = Notice::ForcedReset {
                name: user.addressed_as(),
                username: user.username.clone(),
                token: secret,
                expires_at,
            };
            mailer.enqueue_notice(c, &user, &notice)?;
            Ok(())
        })
        .await?;
    state.mailer.wake();
    // Sessions end and their grants (refresh tokens) are revoked, with back-channel logout.
    let ended = crate::auth::session::end_every(state, &user.id, None).await?;
    state
        .audit
        .record(
            admin
                .event(EventType::PasswordResetForced)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("sessions_ended", ended),
        )
        .await
        .map_err(AuthError::from)?;
    tracing::info!(target: "gatehouse::admin", actor = admin.actor, user_id = %user.id, "password reset forced");
    Ok(ForcedReset {
        username: user.username.clone(),
        sessions_ended: ended,
    })
}

/// `force_reset` by username.
pub async fn force_reset_user(
    state: &AppState,
    admin: Admin<'_>,
    username: &Username,
) -> Result<ForcedReset, AdminError> {
    let lookup = username.clone();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_username(c, &pii, &lookup))
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(username.to_string()))?;
    force_reset(state, admin, &user).await
}

/// The forced reset of a whole organisation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgForcedReset {
    pub org: String,
    pub reset: Vec<ForcedReset>,
    /// Users who cannot sign in anyway (disabled, or invited without a password yet),
    /// and users whose role is at or above `spare_from`.
    pub skipped: Vec<String>,
}

/// `force_reset` for every active user of `org`; other organisations are untouched.
/// With `spare_from`, users of that role or higher are left alone: an administrator who
/// may not act on a peer one at a time may not do it in bulk either.
pub async fn force_reset_org(
    state: &AppState,
    admin: Admin<'_>,
    org: &OrgName,
    spare_from: Option<crate::domain::Role>,
) -> Result<OrgForcedReset, AdminError> {
    let name = org.clone();
    let pii = state.pii.clone();
    let (org_row, members) = state
        .store
        .run(move |c| {
            let Some(org) = orgs::find_by_name(c, &name)? else {
                return Ok((None, Vec::new()));
            };
            let members = users::list_by_org(c, &pii, &org.id)?;
            Ok((Some(org), members))
        })
        .await?;
    let org_row = org_row.ok_or_else(|| AdminError::NoSuchOrg(org.to_string()))?;
    let mut outcome = OrgForcedReset {
        org: org_row.name,
        reset: Vec::new(),
        skipped: Vec::new(),
    };
    for user in members {
        let spared = spare_from.is_some_and(|role| user.role() >= role);
        if user.status() == UserStatus::Active && !spared {
            outcome.reset.push(force_reset(state, admin, &user).await?);
        } else {
            outcome.skipped.push(user.username);
        }
    }
    Ok(outcome)
}

/// Someone to invite (CLI now, admin API later).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub org: OrgName,
    pub username: Username,
    pub email: Email,
    pub display_name: Option<crate::domain::DisplayName>,
    pub role: Role,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Invitation {
    pub id: String,
    pub username: String,
    pub email: String,
    pub org: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    /// True when the account already existed, still invited: a fresh link replaced the old.
    pub reissued: bool,
}

/// The invited account: a new one (status `invited`, no password), or the same
/// still-invited one at the same address when invited again; a name taken otherwise is
/// [`StoreError::Conflict`].
fn invited_account(
    c: &mut DbConnection,
    pii: &crate::store::Pii,
    org_id: &str,
    wanted: &NewInvitation,
    naive_now: chrono::NaiveDateTime,
) -> Result<(UserRow, bool), StoreError> {
    Ok(match users::find_by_username(c, pii, &wanted.username)? {
        Some(existing)
            if existing.status() == UserStatus::Invited
                && existing.org_id == org_id
                && existing.email.eq_ignore_ascii_case(wanted.email.as_str()) =>
        {
            (existing, true)
        }
        Some(_) => return Err(StoreError::Conflict),
        None => {
            let row = users::NewUser {
                org_id: org_id.to_owned(),
                username: wanted.username.clone(),
                email: wanted.email.clone(),
                display_name: wanted
                    .display_name
                    .clone()
                    .map(crate::domain::DisplayName::into_string),
                role: wanted.role,
                password_hash: None,
                must_change_password: false,
            };
            let user = users::insert(c, pii, &row, naive_now)?;
            users::set_status(c, &user.id, UserStatus::Invited, naive_now)?;
            (user, false)
        }
    })
}

/// The trail of an invitation: the account's creation (a first invitation only), then
/// the invitation itself.
async fn record_invitation(
    state: &AppState,
    admin: &Admin<'_>,
    user: &UserRow,
    expires_at: DateTime<Utc>,
    reissued: bool,
) -> Result<(), AdminError> {
    if !reissued {
        let created = admin
            .event(EventType::UserCreated)
            .org(&user.org_id)
            .subject(&user.id)
            .detail("username", user.username.as_str())
            .detail("role", user.role.as_str())
            .detail("status", UserStatus::Invited.as_str());
        state.audit.record(created).await.map_err(AuthError::from)?;
    }
    let sent = admin
        .event(EventType::InvitationSent)
        .org(&user.org_id)
        .subject(&user.id)
        .detail("expires_at", expires_at.to_rfc3339())
        .detail("reissued", reissued);
    state.audit.record(sent).await.map_err(AuthError::from)?;
    tracing::info!(target: "gatehouse::admin", actor = admin.actor, user_id = %user.id, reissued, "invitation sent");
    Ok(())
}

/// DESIGN §7 invitation: creates the account with no password (status `invited`: it
/// cannot sign in) and mails a link to choose one, all in one transaction. Inviting a
/// still-invited user again, at the same address, mails a fresh link and voids the old.
pub async fn invite(
    state: &AppState,
    admin: Admin<'_>,
    new: NewInvitation,
) -> Result<Invitation, AdminError> {
    let org_name = new.org.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_name(c, &org_name))
        .await?
        .ok_or_else(|| AdminError::NoSuchOrg(new.org.to_string()))?;
    let token = LinkToken::generate();
    let now = state.clock.now();
    let expires_at = now + lifetime(state, Purpose::Invite);
    let (hash, mailer, secret) = (token.hash(), state.mailer.clone(), token.secret());
    let (org_id, org_display) = (org.id.clone(), org.display_name.clone());
    let wanted = new.clone();
    let pii = state.pii.clone();
    let created = state
        .store
        .transaction(move |c| {
            let naive_now = now.naive_utc();
            let (user, reissued) = invited_account(c, &pii, &org_id, &wanted, naive_now)?;
            recovery_tokens::issue(
                c,
                &user.id,
                Purpose::Invite,
                &hash,
                naive_now,
                expires_at.naive_utc(),
            )?;
            let notice = Notice::Invitation {
                name: user.addressed_as(),
                username: user.username.clone(),
                org: org_display,
                token: secret,
                expires_at,
            };
            mailer.enqueue_notice(c, &user, &notice)?;
            Ok((user, reissued))
        })
        .await;
    let (user, reissued) = match created {
        Ok(created) => created,
        Err(StoreError::Conflict) => return Err(AdminError::Exists(new.username.to_string())),
        Err(e) => return Err(e.into()),
    };
    state.mailer.wake();
    record_invitation(state, &admin, &user, expires_at, reissued).await?;
    Ok(Invitation {
        id: user.id,
        username: user.username,
        email: user.email,
        org: org.name,
        role: user.role,
        expires_at,
        reissued,
    })
}
