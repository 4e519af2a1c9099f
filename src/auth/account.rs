//! Accounts: creating one under its organisation's password policy, and the one
//! password-change capability every path uses (the required action at sign-in, the
//! account page, a reset link, an invitation): vetted against the policy and history,
//! committed with its notice, ending the other sessions, audited once.

use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    domain::{Email, Password, PolicyViolation, Username},
    mail::Notice,
    startup::AppState,
    store::{DbConnection, StoreError, orgs, users, users::UserRow},
};

pub struct PasswordChange {
    pub new: String,
    pub confirm: String,
}

/// Why a new password was refused. `Display` is the English of the admin API and the
/// CLI; the pages say it in the reader's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    Missing,
    TooLong,
    Mismatch,
    Rule(PolicyViolation),
}

impl std::fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("The new password: password is required."),
            Self::TooLong => f.write_str("The new password: password is too long."),
            Self::Mismatch => f.write_str("The two new passwords do not match."),
            Self::Rule(v) => v.fmt(f),
        }
    }
}

/// The hash of `change.new` if it satisfies the organisation's policy, the confirmation
/// matches and it is not one of the recent passwords; otherwise every failing rule at
/// once (DESIGN §4).
pub async fn vet_new_password(
    state: &AppState,
    user: &UserRow,
    change: PasswordChange,
) -> Result<Result<String, Vec<PasswordProblem>>, AuthError> {
    let missing = change.new.is_empty();
    let password = match Password::parse(change.new) {
        Ok(p) => p,
        Err(_) if missing => return Ok(Err(vec![PasswordProblem::Missing])),
        Err(_) => return Ok(Err(vec![PasswordProblem::TooLong])),
    };
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .ok_or(AuthError::Internal("user without organisation".into()))?;
    let policy = org.policy().password;
    let username = Username::parse(&user.username).map_err(|e| AuthError::Internal(e.0))?;
    let email = Email::parse(&user.email).map_err(|e| AuthError::Internal(e.0))?;

    let mut errors: Vec<PasswordProblem> = Vec::new();
    if password.expose() != change.confirm {
        errors.push(PasswordProblem::Mismatch);
    }
    errors.extend(
        policy
            .check(&password, &username, &email)
            .into_iter()
            .map(PasswordProblem::Rule),
    );
    if policy.history > 0 {
        let user_id = user.id.clone();
        let n = policy.history;
        let pii = state.pii.clone();
        let recent = state
            .store
            .run(move |c| users::recent_password_hashes(c, &pii, &user_id, n))
            .await?;
        if state
            .hashing
            .matches_any(recent, password.clone())
            .await
            .map_err(AuthError::from)?
        {
            errors.push(PasswordProblem::Rule(PolicyViolation::Reused {
                history: n,
            }));
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    Ok(Ok(state
        .hashing
        .hash(password)
        .await
        .map_err(AuthError::from)?))
}

/// Sets a new password for `user` when it passes `vet_new_password`. A new password
/// ends every session of the user except `keep` (DESIGN §8), is mailed to the user as a
/// notice, and is one audit event.
pub async fn change_password(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    change: PasswordChange,
    keep: Option<&str>,
    via: &str,
) -> Result<Result<(), Vec<PasswordProblem>>, AuthError> {
    let hash = match vet_new_password(state, user, change).await? {
        Ok(hash) => hash,
        Err(errors) => return Ok(Err(errors)),
    };
    let effects = NewPasswordEffects {
        keep,
        via,
        event: EventType::PasswordChanged,
        notify: true,
    };
    if !commit_new_password(state, ctx, user, hash, effects, |_| Ok(true)).await? {
        return Err(AuthError::NotFound);
    }
    Ok(Ok(()))
}

/// How a new password is recorded, and what it ends.
pub struct NewPasswordEffects<'a> {
    /// The session to keep (the account page's own); every other session ends.
    pub keep: Option<&'a str>,
    /// `details.via` of the audit event: account, required_action, reset, invitation.
    pub via: &'a str,
    pub event: EventType,
    /// Mail the user a `PasswordChanged` notice in the same commit.
    pub notify: bool,
}

/// Commits a hash from `vet_new_password` for `user`. In one transaction: `precondition`
/// (taking a reset link, say: `Ok(false)` rolls back whatever it did and changes
/// nothing), the new password (which clears `must_change_password` and voids unused
/// reset and invitation links), and the notice. Then the sessions end and the event is
/// recorded. `Ok(false)`: the precondition refused, or the user is gone.
pub async fn commit_new_password<F>(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
    hash: String,
    effects: NewPasswordEffects<'_>,
    precondition: F,
) -> Result<bool, AuthError>
where
    F: FnOnce(&mut DbConnection) -> Result<bool, StoreError> + Send + 'static,
{
    let (user_id, mailer, notify) = (user.id.clone(), state.mailer.clone(), effects.notify);
    let now = state.clock.now();
    let ip = ctx.client_ip;
    let pii = state.pii.clone();
    let committed = state
        .store
        .transaction(move |c| {
            if !precondition(c)? {
                // Any error rolls the transaction back; this one only means "refused".
                return Err(StoreError::NotFound);
            }
            users::set_password(c, &pii, &user_id, &hash, now.naive_utc())?;
            if notify && let Some(user) = users::find_by_id(c, &pii, &user_id)? {
                let notice = Notice::PasswordChanged {
                    name: user.addressed_as(),
                    username: user.username.clone(),
                    at: now,
                    ip,
                };
                mailer.enqueue_notice(c, &user, &notice)?;
            }
            Ok(())
        })
        .await;
    match committed {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    // Ends the sessions and revokes their grants (refresh tokens), with back-channel logout.
    let ended = crate::auth::session::end_every(state, &user.id, effects.keep).await?;
    let event = AuditEvent::success(effects.event, ctx)
        .about(&user.id, &user.org_id)
        .detail("via", effects.via)
        .detail("sessions_ended", ended);
    state.audit.record(event).await?;
    tracing::info!(user_id = %user.id, via = effects.via, "password set");
    Ok(true)
}

/// A user to create (CLI now, admin API later).
pub struct NewAccount {
    pub org: crate::domain::OrgName,
    pub username: Username,
    pub email: Email,
    pub display_name: Option<crate::domain::DisplayName>,
    pub role: crate::domain::Role,
    pub password: Password,
    pub must_change_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("no organisation named {0:?}")]
    NoSuchOrg(String),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("the password does not meet the policy: {}", .0.join(" "))]
    Policy(Vec<String>),
    #[error("{0}")]
    App(#[from] AuthError),
}

/// Creates a user whose password obeys its organisation's policy.
pub async fn create_account(
    state: &AppState,
    new: NewAccount,
) -> Result<UserRow, CreateAccountError> {
    create_account_by(state, new, None).await
}

/// `create_account`, audited with the administrator who asked (the admin API).
pub async fn create_account_by(
    state: &AppState,
    new: NewAccount,
    by: Option<crate::auth::recovery::Admin<'_>>,
) -> Result<UserRow, CreateAccountError> {
    let org_name = new.org.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_name(c, &org_name))
        .await
        .map_err(AuthError::from)?
        .ok_or_else(|| CreateAccountError::NoSuchOrg(new.org.to_string()))?;
    let violations = org
        .policy()
        .password
        .check(&new.password, &new.username, &new.email);
    if !violations.is_empty() {
        return Err(CreateAccountError::Policy(
            violations.iter().map(ToString::to_string).collect(),
        ));
    }
    let hash = state
        .hashing
        .hash(new.password)
        .await
        .map_err(AuthError::from)?;
    let now = state.clock.now().naive_utc();
    let username = new.username.clone();
    let row = users::NewUser {
        org_id: org.id,
        username: new.username,
        email: new.email,
        display_name: new
            .display_name
            .map(crate::domain::DisplayName::into_string),
        role: new.role,
        password_hash: Some(hash),
        must_change_password: new.must_change_password,
    };
    let pii = state.pii.clone();
    match state
        .store
        .transaction(move |c| users::insert(c, &pii, &row, now))
        .await
    {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "user created");
            let mut event = AuditEvent::new(EventType::UserCreated, Outcome::Success)
                .org(&user.org_id)
                .subject(&user.id)
                .detail("username", user.username.as_str())
                .detail("role", user.role.as_str());
            if let Some(admin) = &by {
                event = event.actor(admin.actor);
                if let Some(ctx) = admin.request {
                    event = event.request(ctx);
                }
            }
            state.audit.record(event).await.map_err(AuthError::from)?;
            Ok(user)
        }
        Err(crate::store::StoreError::Conflict) => {
            Err(CreateAccountError::Exists(username.to_string()))
        }
        Err(e) => Err(AuthError::from(e).into()),
    }
}
