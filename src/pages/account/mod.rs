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
use crate::web::visit::{Answer, Visit, browser_wishes, speak, spoken};
use crate::{
    domain::Password,
    i18n::{self, Id, Tr, Wishes},
    startup::AppState,
    store::preferences::{self, Preferences},
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
        .service(account_preferences)
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
    tr: &'a Tr,
    username: &'a str,
    email: &'a str,
    org: &'a str,
    role: String,
    csrf: &'a str,
    /// The person's own language and time zone, and the choices.
    preferences: Preferences,
    languages: Vec<(String, String)>,
    zones: &'static [&'static str],
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

fn when(tr: &Tr, secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| tr.datetime(t))
        .unwrap_or_default()
}

async fn render_account(
    state: &AppState,
    tr: &Tr,
    current: &session::SsoSession,
    user: &UserRow,
    notice: Option<&str>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let preferences = preferences_of(state, &user.id).await?;
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
                .map(|s| crate::pages::scope_words(s, tr))
                .collect(),
            since: tr.stored(&row.updated_at),
            client_id: row.client_id,
            app,
        })
        .collect();
    let emergency = current
        .open_emergency(state.clock.now().timestamp())
        .map(|w| (when(tr, w.expires_at), w.reason.clone()));
    let sessions = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: s.handle == current.handle,
            created: when(tr, s.created_at),
            last_seen: when(tr, s.last_seen),
            from: s.opened_from(),
            handle: s.handle,
        })
        .collect();
    Ok(render(
        &AccountPage {
            tr,
            username: &user.username,
            email: &user.email,
            org: org.as_ref().map(|o| o.display_name.as_str()).unwrap_or(""),
            role: tr.id(crate::pages::role_name(user.role())),
            csrf: &current.csrf,
            preferences,
            languages: i18n::languages()
                .into_iter()
                .map(|tag| (i18n::own_name(&tag), tag))
                .collect(),
            zones: i18n::time_zones(),
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

/// What `user_id` chose of languages and time zones.
pub(crate) async fn preferences_of(
    state: &AppState,
    user_id: &str,
) -> Result<Preferences, AppError> {
    let user_id = user_id.to_owned();
    Ok(state
        .store
        .run(move |c| preferences::find(c, &user_id))
        .await?)
}

/// The session and its user, or `None` when the browser must sign in (again). The
/// request's pages speak the user's language from here on ([`spoken`]).
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
            speak_for(state, req, &user).await?;
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
    preferences: Option<String>,
}

#[get("/account")]
async fn account_page(query: Query<AccountQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((current, user)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?);
    };
    let tr = spoken(&req);
    let notice = if query.changed.is_some() {
        Some(Id("notice-password-changed"))
    } else if query.totp_removed.is_some() {
        Some(Id("notice-totp-removed"))
    } else if query.emergency.as_deref() == Some("opened") {
        Some(Id("notice-emergency-opened"))
    } else if query.emergency.as_deref() == Some("ended") {
        Some(Id("notice-emergency-ended"))
    } else if query.withdrawn.is_some() {
        Some(Id("notice-consent-withdrawn"))
    } else if query.preferences.is_some() {
        Some(Id("notice-preferences-saved"))
    } else {
        None
    }
    .map(|id| tr.id(id));
    let notice = notice.as_deref();
    Ok(render_account(
        &state,
        &tr,
        &current,
        &user,
        notice,
        Vec::new(),
        StatusCode::OK,
    )
    .await?)
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
    let tr = spoken(&req);
    // The page again, with what was wrong.
    let refused = |errors| {
        render_account(
            &state,
            &tr,
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
        Verdict::Failure => Some(tr.t("current-password-wrong")),
        Verdict::Locked => Some(tr.t("password-changes-locked")),
        Verdict::IpBlocked { retry_after } => {
            return Err(AppError::TooManyRequests {
                retry_after_secs: retry_after.as_secs(),
            }
            .into());
        }
    };
    if let Some(message) = refusal {
        return Ok(refused(vec![message]).await?);
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
        Err(problems) => Ok(refused(problems.iter().map(|p| p.said(&tr)).collect()).await?),
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
        return Err(PageError(AppError::BadRequest(
            spoken(&req).t("unknown-session"),
        )));
    }
    session::end_own(&state, &ctx, &user, &form.session).await?;
    if form.session == current.handle {
        return Ok(signed_out(&spoken(&req)));
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
        return Err(PageError(AppError::BadRequest(
            spoken(&req).t("unknown-app"),
        )));
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
        return Err(PageError(AppError::Forbidden(spoken(req).t("form-stale"))));
    }
    Ok(Some((current, user)))
}

/// The language of `req`'s pages for `user`: theirs, else their browser's, else their
/// organisation's; an error page of `req` speaks it too.
pub(crate) async fn speak_for(
    state: &AppState,
    req: &HttpRequest,
    user: &UserRow,
) -> Result<Tr, AppError> {
    let chosen = preferences_of(state, &user.id).await?;
    let org_default = organisation_wishes(state, &user.org_id).await?;
    Ok(speak(
        req,
        Wishes {
            person: chosen.language,
            zone: chosen.time_zone.or(org_default.zone),
            organisation: org_default.organisation,
            brand: crate::pages::branding::of_org(state, &user.org_id).await?,
            ..browser_wishes(req)
        },
    ))
}

/// What an organisation says of languages and time zones, for its people's pages.
pub(crate) async fn organisation_wishes(
    state: &AppState,
    org_id: &str,
) -> Result<Wishes, AppError> {
    let org_id = org_id.to_owned();
    let policy = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .map(|o| o.policy())
        .unwrap_or_default();
    Ok(Wishes {
        organisation: policy.language,
        zone: policy.time_zone,
        ..Wishes::default()
    })
}

#[derive(Deserialize)]
struct PreferencesForm {
    #[serde(default)]
    csrf: String,
    /// A language tag Gatehouse speaks, or empty for "as my browser says".
    #[serde(default)]
    language: String,
    /// An IANA time zone name, or empty for the organisation's.
    #[serde(default)]
    time_zone: String,
}

/// The person's own language and time zone (issue 31).
#[post("/account/preferences")]
async fn account_preferences(
    form: Form<PreferencesForm>,
    Visit { state, req, .. }: Visit,
) -> Answer {
    let form = form.into_inner();
    let Some((_, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    let tr = spoken(&req);
    let chosen = |raw: &str, parse: fn(&str) -> Option<String>, refusal: Id| match raw.trim() {
        "" => Ok(None),
        raw => parse(raw)
            .map(Some)
            .ok_or_else(|| PageError(AppError::BadRequest(tr.id(refusal)))),
    };
    let choice = Preferences {
        language: chosen(&form.language, i18n::supported, Id("unknown-language"))?,
        time_zone: chosen(&form.time_zone, i18n::time_zone, Id("unknown-time-zone"))?,
    };
    let (user_id, now) = (user.id.clone(), state.clock.now().naive_utc());
    state
        .store
        .transaction(move |c| preferences::save(c, &user_id, &choice, now))
        .await?;
    Ok(see_other("/account?preferences=1"))
}
