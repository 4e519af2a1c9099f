//! The signed-in user's page (DESIGN §2 `/account`): who am I, change password, active
//! sessions, sign out. Also the one password-change capability every path uses
//! (required action, account page, reset link, invitation). The second factor's pages
//! beneath it are in `second_factor`.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    guard::{Verdict, password_attempt},
    login::{AnswerSignIn, Finished, pool_error, see_other, signed_out, start_sign_in},
    same_secret, session,
    transaction::Resume,
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    domain::{Email, Password, PolicyViolation, Username},
    mail::Notice,
    startup::AppState,
    store::{DbConnection, StoreError, orgs, users, users::UserRow},
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, check_same_origin, render},
    },
};

mod second_factor;

/// The name sign-ins started by the account page carry (`Resume::kind`).
pub const RESUME: &str = "account";

/// A sign-in started by the account page (or by `/login` with nothing to resume) ends
/// on the account page.
pub struct ToAccountPage;

#[async_trait::async_trait(?Send)]
impl AnswerSignIn for ToAccountPage {
    async fn answer(&self, _: Finished<'_>) -> Result<HttpResponse, AppError> {
        Ok(see_other("/account"))
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(account_page)
        .service(account_password)
        .service(end_session);
    second_factor::routes(cfg);
}

pub struct PasswordChange {
    pub new: String,
    pub confirm: String,
}

/// The hash of `change.new` if it satisfies the organisation's policy, the confirmation
/// matches and it is not one of the recent passwords; otherwise every failing rule at
/// once (DESIGN §4).
pub async fn vet_new_password(
    state: &AppState,
    user: &UserRow,
    change: PasswordChange,
) -> Result<Result<String, Vec<String>>, AppError> {
    let password = match Password::parse(change.new) {
        Ok(p) => p,
        Err(e) => return Ok(Err(vec![format!("The new password: {}.", e.0)])),
    };
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .ok_or(AppError::Internal("user without organisation".into()))?;
    let policy = org.policy().password;
    let username = Username::parse(&user.username).map_err(|e| AppError::Internal(e.0))?;
    let email = Email::parse(&user.email).map_err(|e| AppError::Internal(e.0))?;

    let mut errors: Vec<String> = Vec::new();
    if password.expose() != change.confirm {
        errors.push("The two new passwords do not match.".into());
    }
    errors.extend(
        policy
            .check(&password, &username, &email)
            .iter()
            .map(ToString::to_string),
    );
    if policy.history > 0 {
        let user_id = user.id.clone();
        let n = policy.history;
        let recent = state
            .store
            .run(move |c| users::recent_password_hashes(c, &user_id, n))
            .await?;
        if state
            .hashing
            .matches_any(recent, password.clone())
            .await
            .map_err(pool_error)?
        {
            errors.push(PolicyViolation::Reused { history: n }.to_string());
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    Ok(Ok(state
        .hashing
        .hash(password)
        .await
        .map_err(pool_error)?))
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
) -> Result<Result<(), Vec<String>>, AppError> {
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
        return Err(AppError::NotFound);
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
) -> Result<bool, AppError>
where
    F: FnOnce(&mut DbConnection) -> Result<bool, StoreError> + Send + 'static,
{
    let (user_id, mailer, notify) = (user.id.clone(), state.mailer.clone(), effects.notify);
    let now = state.clock.now();
    let ip = ctx.client_ip;
    let committed = state
        .store
        .transaction(move |c| {
            if !precondition(c)? {
                // Any error rolls the transaction back; this one only means "refused".
                return Err(StoreError::NotFound);
            }
            users::set_password(c, &user_id, &hash, now.naive_utc())?;
            if notify && let Some(user) = users::find_by_id(c, &user_id)? {
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
    state
        .audit
        .record(
            AuditEvent::new(effects.event, Outcome::Success)
                .request(ctx)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("via", effects.via)
                .detail("sessions_ended", ended),
        )
        .await?;
    tracing::info!(user_id = %user.id, via = effects.via, "password set");
    Ok(true)
}

struct SessionView {
    handle: String,
    created: String,
    last_seen: String,
    from: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    username: &'a str,
    email: &'a str,
    org: &'a str,
    role: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    errors: Vec<String>,
    sessions: Vec<SessionView>,
    mfa: bool,
}

fn when(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

async fn render_account(
    state: &AppState,
    current: &session::SsoSession,
    user: &UserRow,
    notice: Option<&str>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?;
    let mfa = super::totp::is_enrolled(state, &user.id).await?;
    let sessions = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: s.handle == current.handle,
            created: when(s.created_at),
            last_seen: when(s.last_seen),
            from: [s.client_ip.as_deref(), s.user_agent.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · ")
                .chars()
                .take(120)
                .collect(),
            handle: s.handle,
        })
        .collect();
    Ok(render(
        &AccountPage {
            username: &user.username,
            email: &user.email,
            org: org.as_ref().map(|o| o.display_name.as_str()).unwrap_or(""),
            role: user.role().as_str(),
            csrf: &current.csrf,
            notice,
            errors,
            sessions,
            mfa,
        },
        status,
    ))
}

/// The session and its user, or `None` when the browser must sign in (again).
pub(crate) async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<(session::SsoSession, UserRow)>, AppError> {
    let Some(current) = session::current(state, req).await? else {
        return Ok(None);
    };
    let user_id = current.user_id.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &user_id))
        .await?;
    match user {
        // A forced reset (DESIGN §7) ends sessions where it can reach them; one it could
        // not (the CLI beside a server that keeps sessions in memory) ends here, at its
        // next use. No session survives a pending required password change otherwise:
        // sign-in sets the new password before it creates the session.
        Some(user)
            if user.status() == crate::domain::UserStatus::Active && !user.must_change_password =>
        {
            Ok(Some((current, user)))
        }
        _ => {
            crate::auth::session::end_one(state, &current.user_id, &current.handle).await?;
            Ok(None)
        }
    }
}

#[derive(Deserialize)]
struct AccountQuery {
    changed: Option<String>,
    totp_removed: Option<String>,
}

#[get("/account")]
async fn account_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, PageError> {
    let Some((current, user)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?);
    };
    let notice = if query.changed.is_some() {
        Some("Your password was changed.")
    } else if query.totp_removed.is_some() {
        Some("Two-step verification was turned off.")
    } else {
        None
    };
    Ok(render_account(&state, &current, &user, notice, Vec::new(), StatusCode::OK).await?)
}

#[derive(Deserialize)]
struct AccountPasswordForm {
    #[serde(default)]
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

#[post("/account/password")]
async fn account_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    form: web::Form<AccountPasswordForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    state.guard.rate_limit(ctx.client_ip)?;
    // The current password is a guess like any other: it goes through the guard.
    let verdict = match Password::parse(form.current_password) {
        Ok(p) => password_attempt(&state, &ctx, &user.username, p).await?,
        Err(_) => Verdict::Failure,
    };
    let refusal = match verdict {
        Verdict::Success(_) => None,
        Verdict::Failure => Some("Your current password is not correct."),
        Verdict::Locked => Some("Too many failed attempts: password changes are locked for now."),
        Verdict::IpBlocked { retry_after } => {
            return Err(AppError::TooManyRequests {
                retry_after_secs: retry_after.as_secs(),
            }
            .into());
        }
    };
    if let Some(message) = refusal {
        let errors = vec![message.to_owned()];
        return Ok(render_account(
            &state,
            &current,
            &user,
            None,
            errors,
            StatusCode::BAD_REQUEST,
        )
        .await?);
    }
    let change = PasswordChange {
        new: form.new_password,
        confirm: form.confirm_password,
    };
    match change_password(
        &state,
        &ctx,
        &user,
        change,
        Some(&current.handle),
        "account",
    )
    .await?
    {
        Err(errors) => Ok(render_account(
            &state,
            &current,
            &user,
            None,
            errors,
            StatusCode::BAD_REQUEST,
        )
        .await?),
        Ok(()) => Ok(see_other("/account?changed=1")),
    }
}

#[derive(Deserialize)]
struct EndSessionForm {
    #[serde(default)]
    csrf: String,
    session: String,
}

#[post("/account/sessions/end")]
async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    form: web::Form<EndSessionForm>,
) -> Result<HttpResponse, PageError> {
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    if form.session.len() != 64 || !form.session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError(AppError::BadRequest("Unknown session.".into())));
    }
    session::end_own(&state, &ctx, &user, &form.session).await?;
    if form.session == current.handle {
        return Ok(signed_out());
    }
    Ok(see_other("/account"))
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
    App(#[from] AppError),
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
    by: Option<super::recovery::Admin<'_>>,
) -> Result<UserRow, CreateAccountError> {
    let org_name = new.org.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_name(c, &org_name))
        .await
        .map_err(AppError::from)?
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
    let hash = state.hashing.hash(new.password).await.map_err(pool_error)?;
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
    match state
        .store
        .transaction(move |c| users::insert(c, &row, now))
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
            state.audit.record(event).await.map_err(AppError::from)?;
            Ok(user)
        }
        Err(crate::store::StoreError::Conflict) => {
            Err(CreateAccountError::Exists(username.to_string()))
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

/// The signed-in user behind a state-changing account form: same origin, a live
/// session, and the session's CSRF token. `Ok(None)`: not signed in (any more).
async fn signed_in_form(
    state: &AppState,
    req: &HttpRequest,
    csrf: &str,
) -> Result<Option<(session::SsoSession, UserRow)>, PageError> {
    check_same_origin(req, &state.config.issuer)?;
    let Some((current, user)) = signed_in(state, req).await? else {
        return Ok(None);
    };
    if !same_secret(csrf, &current.csrf) {
        return Err(stale_form());
    }
    Ok(Some((current, user)))
}

fn stale_form() -> PageError {
    PageError(AppError::Forbidden(
        "This form has expired or was not sent from this browser. Please reload the page.".into(),
    ))
}
