//! The signed-in user's page (DESIGN §2 `/account`): who am I, change password, active
//! sessions, sign out. Also the one password-change capability every path uses
//! (required action, account page, reset link, invitation). The second factor's pages
//! beneath it are in `second_factor`.

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form, Query},
};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::login::{AnswerSignIn, Finished, see_other, signed_out, start_sign_in};
use crate::auth::{
    account::{PasswordChange, change_password},
    guard::{Verdict, password_attempt},
    same_secret, session,
    transaction::Resume,
};
use crate::web::cookies;
use crate::web::visit::{Answer, Visit};
use crate::{
    domain::Password,
    startup::AppState,
    store::{orgs, users, users::UserRow},
    web::{
        error::AppError,
        pages::{PageError, check_same_origin, render},
    },
};

mod emergency;
mod passkeys;
mod second_factor;

pub use passkeys::{RESUME as PASSKEYS_RESUME, ToPasskeysPage};

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
        .service(end_session)
        .service(withdraw_consent);
    second_factor::routes(cfg);
    passkeys::routes(cfg);
    emergency::routes(cfg);
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
    /// How many passkeys the user has (DESIGN §17).
    passkeys: usize,
    /// The user may break the glass (DESIGN §15).
    designated: bool,
    /// This session's open emergency window: until when, and why.
    emergency: Option<(String, String)>,
    /// The apps the user allowed when asked (DESIGN §18): client id, name, since when,
    /// and what they may do.
    consents: Vec<ConsentView>,
}

struct ConsentView {
    client_id: String,
    app: String,
    since: String,
    allowed: Vec<String>,
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
    let mfa = crate::auth::totp::is_enrolled(state, &user.id).await?;
    let passkeys = crate::auth::passkey::list(state, &user.id).await?.len();
    let designated = crate::auth::emergency::is_designated(state, &user.id).await?;
    let user_id = user.id.clone();
    let consents = state
        .store
        .run(move |c| crate::store::consents::of_user(c, &user_id))
        .await?
        .into_iter()
        .map(|(row, app)| ConsentView {
            allowed: row
                .granted()
                .iter()
                .map(|s| crate::domain::consent::plain_words(s))
                .collect(),
            since: row.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            client_id: row.client_id,
            app,
        })
        .collect();
    let emergency = current
        .open_emergency(state.clock.now().timestamp())
        .map(|w| (when(w.expires_at), w.reason.clone()));
    let sessions = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: s.handle == current.handle,
            created: when(s.created_at),
            last_seen: when(s.last_seen),
            from: s.opened_from(),
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
            passkeys,
            designated,
            emergency,
            consents,
        },
        status,
    ))
}

/// The session and its user, or `None` when the browser must sign in (again).
pub(crate) async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<(session::SsoSession, UserRow)>, AppError> {
    let Some(current) = cookies::current_session(state, req).await? else {
        return Ok(None);
    };
    let user_id = current.user_id.clone();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
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
    emergency: Option<String>,
    withdrawn: Option<String>,
}

#[get("/account")]
async fn account_page(query: Query<AccountQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((current, user)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?);
    };
    let notice = if query.changed.is_some() {
        Some("Your password was changed.")
    } else if query.totp_removed.is_some() {
        Some("Two-step verification was turned off.")
    } else if query.emergency.as_deref() == Some("opened") {
        Some("Emergency access is open. Support and your privacy officer have been told.")
    } else if query.emergency.as_deref() == Some("ended") {
        Some("Emergency access has ended.")
    } else if query.withdrawn.is_some() {
        Some("The app's access was withdrawn. It will ask again if you use it.")
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
    form: Form<AccountPasswordForm>,
    Visit { state, req, ctx }: Visit,
) -> Answer {
    let form = form.into_inner();
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    // The page again, with what was wrong.
    let refused = |errors| {
        render_account(
            &state,
            &current,
            &user,
            None,
            errors,
            StatusCode::BAD_REQUEST,
        )
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
        return Ok(refused(errors).await?);
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
        Err(errors) => Ok(refused(errors).await?),
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
async fn end_session(form: Form<EndSessionForm>, Visit { state, req, ctx }: Visit) -> Answer {
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

#[derive(Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client: String,
}

/// Withdraws the consent given to an app (DESIGN §18): it is asked again next time, and
/// its tokens for the user end now.
#[post("/account/consents/withdraw")]
async fn withdraw_consent(form: Form<WithdrawForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let Some((_, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    let (user_id, client_id, now) = (
        user.id.clone(),
        form.client.clone(),
        state.clock.now().naive_utc(),
    );
    let withdrawn = state
        .store
        .transaction(move |c| crate::store::consents::withdraw(c, &user_id, &client_id, now))
        .await?;
    if !withdrawn {
        return Err(PageError(AppError::BadRequest("Unknown app.".into())));
    }
    let event = crate::audit::AuditEvent::success(crate::audit::EventType::ConsentWithdrawn, &ctx)
        .about(&user.id, &user.org_id)
        .detail("client_id", form.client.as_str());
    state.audit.record(event).await?;
    Ok(see_other("/account?withdrawn=1"))
}

/// The signed-in user behind a state-changing account form: same origin, a live
/// session, and the session's CSRF token. `Ok(None)`: not signed in (any more).
pub(crate) async fn signed_in_form(
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
