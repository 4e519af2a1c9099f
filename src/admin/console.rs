//! The admin console (`/admin`, DESIGN §3, §6, §8, §13): server-rendered pages and plain
//! forms, usable with JavaScript off.
//!
//! It rides the SSO session: no session starts a login transaction that resumes here.
//! Only `support`, `org_admin` and `super_admin` enter; where the organisation's MFA
//! policy requires a second factor of the role, a session without one goes through the
//! same step-up sign-in an OIDC `acr_values` request gets. The console keeps its own
//! last-activity time in the session and, after 15 idle minutes, asks for the password
//! (and code) again, while the SSO session itself lives on under the organisation's
//! longer limits.
//!
//! Every action is the admin service's (`admin::service`), as for the API and the CLI:
//! the same role and organisation rules, the same audit events; users and organisations
//! the administrator cannot see are 404.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use askama::Template;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{
    Action, ApiError, Caller, ServiceError,
    service::{Acting, network, orgs as org_service, users as user_service},
};
use crate::{
    audit::{AuditFilter, AuditRecord, EventType},
    auth::{
        account::signed_in,
        login::{SignInRequest, see_other, start_sign_in, start_sign_in_with},
        same_secret,
        session::{self, ACR_MFA, SsoSession},
        step_up::{self, MfaVerdict},
        transaction::Resume,
    },
    domain::{Email, MfaPolicy, OrgPolicy, Role, Username},
    startup::AppState,
    store::{orgs, orgs::OrgRow, totp, users, users::UserRow},
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, check_same_origin, render},
    },
};

/// DESIGN §8: the admin console's idle limit, whatever the organisation's session policy.
pub const CONSOLE_IDLE_SECS: i64 = 15 * 60;
/// Users shown for one search.
const SEARCH_LIMIT: usize = 100;
/// Audit events per page.
const AUDIT_PAGE: i64 = 50;
/// Longest search text or filter value accepted.
const MAX_INPUT: usize = 256;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home)
        .service(user_page)
        .service(unlock)
        .service(force_reset)
        .service(remove_totp)
        .service(end_session)
        .service(end_all_sessions)
        .service(org_page)
        .service(org_policy)
        .service(audit_page)
        .service(ip_blocks_page)
        .service(lift_ip_block);
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => Self::Forbidden("Please sign in again.".into()),
            ApiError::MfaRequired => Self::Forbidden(
                "Your organisation requires a second factor for your role: please sign in again."
                    .into(),
            ),
            ApiError::Forbidden(m) => Self::Forbidden(format!("{}.", capitalise(m))),
            ApiError::NotFound => Self::NotFound,
            ApiError::BadRequest(m) | ApiError::Conflict(m) => Self::BadRequest(m),
            ApiError::App(a) => a,
        }
    }
}

/// The service's refusals reach the console's pages as the API words them.
impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// An administrator inside the console.
struct Console {
    session: SsoSession,
    user: UserRow,
    who: Caller,
}

impl Console {
    fn nav(&self) -> Nav {
        Nav {
            username: self.user.username.clone(),
            org_id: self.user.org_id.clone(),
            csrf: self.session.csrf.clone(),
            global: self.who.require(Action::Global).is_ok(),
        }
    }
}

/// Where the sign-in sends an administrator back to: the console page they asked for.
/// A form sent after the console timed out is not replayed: it goes back to `/admin`.
fn return_to(req: &HttpRequest) -> Option<String> {
    if req.method() != actix_web::http::Method::GET {
        return None;
    }
    let target = match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    is_console_path(&target).then_some(target)
}

/// A path (and query) inside the console on this host: never somewhere else.
pub fn is_console_path(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    (path == "/admin" || path.starts_with("/admin/"))
        && target.len() <= 2048
        && !target.contains("//")
        && !target.contains('\\')
        && !path.split('/').any(|segment| segment == "..")
        && !target.chars().any(char::is_control)
}

/// What every console page shows at the top.
struct Nav {
    username: String,
    org_id: String,
    csrf: String,
    /// May see IP blocks (a super administrator).
    global: bool,
}

/// The administrator of this request, or the answer that gets them there: the sign-in
/// (no session, a session without the second factor the policy requires, or 15 idle
/// minutes in the console) or a 403 page for someone who is no administrator.
async fn enter(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Result<Console, HttpResponse>, PageError> {
    let Some((mut session, user)) = signed_in(state, req).await? else {
        let resume = Resume::Admin {
            return_to: return_to(req),
        };
        return Ok(Err(start_sign_in(state, req, resume).await?));
    };
    let role = user.role();
    if !role.is_admin() {
        return Err(AppError::Forbidden(
            "The admin console is for administrators, and your account is not one.".into(),
        )
        .into());
    }
    // The same rule as `/authorize` and the admin API (issue 20 item 4).
    let mfa = step_up::assess(state, &user, &session.amr).await?;
    let require_mfa = mfa.required();
    let now = state.clock.now().timestamp();
    let last_active = session.console_seen.unwrap_or(session.auth_time);
    let idle = now - last_active > CONSOLE_IDLE_SECS;
    let weak = mfa == MfaVerdict::Missing;
    if idle || weak {
        tracing::info!(user_id = %user.id, idle, weak, "admin console asks to sign in again");
        let again = SignInRequest {
            resume: Resume::Admin {
                return_to: return_to(req),
            },
            require_mfa,
            login_hint: Some(user.username.clone()),
        };
        return Ok(Err(start_sign_in_with(state, req, again).await?));
    }
    session::touch_console(state.ephemeral.as_ref(), &mut session, now).await?;
    let who = Caller {
        actor: user.id.clone(),
        role,
        org_id: Some(user.org_id.clone()),
    };
    Ok(Ok(Console { session, user, who }))
}

/// As `enter`, for a form post: same origin and the session's CSRF token as well.
async fn enter_form(
    state: &AppState,
    req: &HttpRequest,
    csrf: &str,
) -> Result<Result<Console, HttpResponse>, PageError> {
    check_same_origin(req, &state.config.issuer)?;
    let console = match enter(state, req).await? {
        Ok(c) => c,
        Err(answer) => return Ok(Err(answer)),
    };
    if !same_secret(csrf, &console.session.csrf) {
        return Err(AppError::Forbidden(
            "This form has expired or was not sent from this browser. Please reload the page."
                .into(),
        )
        .into());
    }
    Ok(Ok(console))
}

/// Unwraps `enter`'s answer: the console, or the response to give instead.
macro_rules! inside {
    ($entered:expr) => {
        match $entered {
            Ok(console) => console,
            Err(answer) => return Ok(answer),
        }
    };
}

fn when(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn when_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| when(t.naive_utc()))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Home: find a user, and the organisations the administrator may see.

struct UserSummary {
    id: String,
    username: String,
    email: String,
    org: String,
    role: &'static str,
    status: &'static str,
    locked: bool,
    mfa: bool,
}

struct OrgLink {
    id: String,
    display_name: String,
    name: String,
}

#[derive(Template)]
#[template(path = "admin/home.html")]
struct HomePage {
    nav: Nav,
    q: String,
    searched: bool,
    results: Vec<UserSummary>,
    truncated: bool,
    orgs: Vec<OrgLink>,
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

#[get("/admin")]
async fn home(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter(&state, &req).await?);
    console.who.require(Action::Read)?;
    let q = query.into_inner().q.unwrap_or_default().trim().to_owned();
    if q.chars().count() > MAX_INPUT {
        return Err(AppError::BadRequest("Search: at most 256 characters.".into()).into());
    }
    let visible: Vec<OrgRow> = state
        .store
        .run(orgs::list)
        .await?
        .into_iter()
        .filter(|o| console.who.sees_org(&o.id))
        .collect();
    let (results, truncated) = if q.is_empty() {
        (Vec::new(), false)
    } else {
        search(&state, &visible, &q).await?
    };
    let page = HomePage {
        nav: console.nav(),
        searched: !q.is_empty(),
        q,
        results,
        truncated,
        orgs: visible
            .into_iter()
            .map(|o| OrgLink {
                id: o.id,
                display_name: o.display_name,
                name: o.name,
            })
            .collect(),
    };
    Ok(render(&page, StatusCode::OK))
}

/// Users of `visible` organisations whose username or email contains `q` (any case).
async fn search(
    state: &AppState,
    visible: &[OrgRow],
    q: &str,
) -> Result<(Vec<UserSummary>, bool), AppError> {
    let org_names: HashMap<String, String> = visible
        .iter()
        .map(|o| (o.id.clone(), o.display_name.clone()))
        .collect();
    let org_ids: Vec<String> = visible.iter().map(|o| o.id.clone()).collect();
    let needle = q.to_owned();
    let now = state.clock.now().naive_utc();
    let (found, truncated) = state
        .store
        .run(move |c| {
            // One more than is shown tells whether there were more.
            let limit = i64::try_from(SEARCH_LIMIT).unwrap_or(i64::MAX) + 1;
            let mut matches = users::search(c, &org_ids, &needle, limit)?;
            let truncated = matches.len() > SEARCH_LIMIT;
            matches.truncate(SEARCH_LIMIT);
            let mut found = Vec::with_capacity(matches.len());
            for user in matches {
                let key = crate::auth::guard::login_key(&user.username);
                let locked = crate::store::lockouts::find(c, &key)?
                    .is_some_and(|l| l.permanent || l.locked_until.is_some_and(|t| t > now));
                let mfa = totp::is_enrolled(c, &user.id)?;
                found.push((user, locked, mfa));
            }
            Ok((found, truncated))
        })
        .await?;
    let results = found
        .into_iter()
        .map(|(u, locked, mfa)| UserSummary {
            org: org_names.get(&u.org_id).cloned().unwrap_or_default(),
            role: u.role().as_str(),
            status: u.status().as_str(),
            id: u.id,
            username: u.username,
            email: u.email,
            locked,
            mfa,
        })
        .collect();
    Ok((results, truncated))
}

// ---------------------------------------------------------------------------------------
// One user: what state they are in, and what an administrator can do about it.

struct SessionRow {
    handle: String,
    created: String,
    last_seen: String,
    acr: &'static str,
    from: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    nav: Nav,
    notice: Option<&'static str>,
    user: UserRow,
    org: String,
    role: &'static str,
    status: &'static str,
    locked: bool,
    mfa: bool,
    sessions: Vec<SessionRow>,
    /// Unlock, force a reset, remove TOTP, end sessions.
    can_help: bool,
    /// `user=<username>`, for the link to their audit events.
    audit_query: String,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// A fixed notice for the action just done; nothing of the query is echoed.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "unlocked" => "Sign-in was unlocked.",
        "not-locked" => "Sign-in was not locked.",
        "reset" => {
            "A new password is required: the old one no longer works; the user was mailed a reset link and signed out everywhere."
        }
        "totp-removed" => "Two-step verification was removed; the user was told by mail.",
        "no-totp" => "The user had no two-step verification.",
        "session-ended" => "The session was ended.",
        "sessions-ended" => "Every session of the user was ended.",
        "policy-saved" => "The policies were saved.",
        "ip-lifted" => "The block was lifted.",
        "ip-not-blocked" => "That address was not blocked.",
        _ => return None,
    })
}

#[get("/admin/users/{id}")]
async fn user_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter(&state, &req).await?);
    let who = &console.who;
    let user = user_service::find(&state, who, Action::Read, &path).await?;
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .map(|o| o.display_name)
        .unwrap_or_default();
    let standing = user_service::standing(&state, &user).await?;
    let sessions = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            created: when_secs(s.created_at),
            last_seen: when_secs(s.last_seen),
            acr: if s.acr() == ACR_MFA {
                "password and code"
            } else {
                "password"
            },
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
    let can_help = who.require(Action::Support).is_ok() && who.may_act_on(&user).is_ok();
    let page = UserPage {
        nav: console.nav(),
        notice: notice(query.done.as_deref()),
        org,
        role: user.role().as_str(),
        status: user.status().as_str(),
        locked: standing.locked,
        mfa: standing.mfa_enrolled,
        sessions,
        can_help,
        audit_query: url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", &user.username)
            .finish(),
        user,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct SessionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
}

enum UserAction {
    Unlock,
    ForceReset,
    RemoveTotp,
    EndSession(String),
    EndAll,
}

/// One action on one user: enter with the form's CSRF token, find the user (404 when
/// not visible), act, and show the user page again with what happened.
async fn act_on_user(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    raw_id: &str,
    csrf: &str,
    action: UserAction,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter_form(state, req, csrf).await?);
    let by = Acting::new(&console.who, ctx);
    let user = user_service::find(state, by.who, Action::Read, raw_id).await?;
    let done = match action {
        UserAction::Unlock => {
            if user_service::unlock(state, by, &user).await? {
                "unlocked"
            } else {
                "not-locked"
            }
        }
        UserAction::ForceReset => {
            user_service::force_reset(state, by, &user).await?;
            "reset"
        }
        UserAction::RemoveTotp => {
            if user_service::remove_totp(state, by, &user).await? {
                "totp-removed"
            } else {
                "no-totp"
            }
        }
        UserAction::EndSession(handle) => {
            if !user_service::is_session_handle(&handle) {
                return Err(AppError::BadRequest("Unknown session.".into()).into());
            }
            user_service::end_session(state, by, &user, &handle).await?;
            "session-ended"
        }
        UserAction::EndAll => {
            user_service::end_all_sessions(state, by, &user).await?;
            "sessions-ended"
        }
    };
    Ok(see_other(&format!("/admin/users/{}?done={done}", user.id)))
}

#[post("/admin/users/{id}/unlock")]
async fn unlock(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    act_on_user(&state, &req, &ctx, &path, &form.csrf, UserAction::Unlock).await
}

#[post("/admin/users/{id}/force-reset")]
async fn force_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    act_on_user(
        &state,
        &req,
        &ctx,
        &path,
        &form.csrf,
        UserAction::ForceReset,
    )
    .await
}

#[post("/admin/users/{id}/remove-totp")]
async fn remove_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    act_on_user(
        &state,
        &req,
        &ctx,
        &path,
        &form.csrf,
        UserAction::RemoveTotp,
    )
    .await
}

#[post("/admin/users/{id}/sessions/end")]
async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<SessionForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let action = UserAction::EndSession(form.session);
    act_on_user(&state, &req, &ctx, &path, &form.csrf, action).await
}

#[post("/admin/users/{id}/sessions/end-all")]
async fn end_all_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    act_on_user(&state, &req, &ctx, &path, &form.csrf, UserAction::EndAll).await
}

// ---------------------------------------------------------------------------------------
// An organisation's policies.

/// The policy form's fields as typed: what is shown, and shown again with the errors.
/// The names are `OrgPolicy::validate`'s, so every message names the field it is about.
#[derive(Deserialize, Default)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(rename = "password.min_length", default)]
    min_length: String,
    #[serde(rename = "password.max_length", default)]
    max_length: String,
    #[serde(rename = "password.require_upper", default)]
    require_upper: Option<String>,
    #[serde(rename = "password.require_lower", default)]
    require_lower: Option<String>,
    #[serde(rename = "password.require_digit_or_symbol", default)]
    require_digit_or_symbol: Option<String>,
    #[serde(rename = "password.min_strength", default)]
    min_strength: String,
    #[serde(rename = "password.history", default)]
    history: String,
    #[serde(rename = "password.max_age_days", default)]
    max_age_days: String,
    #[serde(rename = "lockout.threshold", default)]
    threshold: String,
    #[serde(rename = "lockout.lock_minutes", default)]
    lock_minutes: String,
    #[serde(rename = "lockout.permanent_after", default)]
    permanent_after: String,
    #[serde(rename = "lockout.reset_failures_after_minutes", default)]
    reset_failures_after_minutes: String,
    #[serde(default)]
    mfa: String,
    #[serde(default)]
    support_email: String,
    #[serde(default)]
    session_idle_secs: String,
    #[serde(default)]
    session_absolute_secs: String,
}

fn checked(on: bool) -> Option<String> {
    on.then(|| "on".to_owned())
}

fn mfa_name(m: MfaPolicy) -> &'static str {
    match m {
        MfaPolicy::Off => "off",
        MfaPolicy::Admins => "admins",
        MfaPolicy::Everyone => "everyone",
    }
}

impl PolicyForm {
    fn from_policy(p: &OrgPolicy) -> Self {
        Self {
            csrf: String::new(),
            min_length: p.password.min_length.to_string(),
            max_length: p.password.max_length.to_string(),
            require_upper: checked(p.password.require_upper),
            require_lower: checked(p.password.require_lower),
            require_digit_or_symbol: checked(p.password.require_digit_or_symbol),
            min_strength: p.password.min_strength.to_string(),
            history: p.password.history.to_string(),
            max_age_days: p
                .password
                .max_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            threshold: p.lockout.threshold.to_string(),
            lock_minutes: p.lockout.lock_minutes.to_string(),
            permanent_after: p.lockout.permanent_after.to_string(),
            reset_failures_after_minutes: p.lockout.reset_failures_after_minutes.to_string(),
            mfa: mfa_name(p.mfa).to_owned(),
            support_email: p.support_email.clone().unwrap_or_default(),
            session_idle_secs: p.session_idle_secs.to_string(),
            session_absolute_secs: p.session_absolute_secs.to_string(),
        }
    }

    /// The policy the form describes, or every field that is wrong: the ones that are not
    /// numbers (or not a choice offered), then `OrgPolicy::validate`'s bounds on the rest.
    /// A field that does not parse keeps its current value for the bounds check, so it is
    /// named once.
    fn parse(&self, current: &OrgPolicy) -> Result<OrgPolicy, Vec<String>> {
        let mut errors = Vec::new();
        let mut p = current.clone();
        fn number<T: std::str::FromStr>(
            errors: &mut Vec<String>,
            field: &str,
            raw: &str,
            into: &mut T,
        ) {
            let raw = raw.trim();
            match raw.parse::<T>() {
                Ok(v) if raw.len() <= 20 => *into = v,
                _ => errors.push(format!("{field}: must be a whole number")),
            }
        }
        number(
            &mut errors,
            "password.min_length",
            &self.min_length,
            &mut p.password.min_length,
        );
        number(
            &mut errors,
            "password.max_length",
            &self.max_length,
            &mut p.password.max_length,
        );
        number(
            &mut errors,
            "password.min_strength",
            &self.min_strength,
            &mut p.password.min_strength,
        );
        number(
            &mut errors,
            "password.history",
            &self.history,
            &mut p.password.history,
        );
        if self.max_age_days.trim().is_empty() {
            p.password.max_age_days = None;
        } else {
            let mut days = 0u32;
            let before = errors.len();
            number(
                &mut errors,
                "password.max_age_days",
                &self.max_age_days,
                &mut days,
            );
            if errors.len() == before {
                p.password.max_age_days = Some(days);
            }
        }
        p.password.require_upper = self.require_upper.is_some();
        p.password.require_lower = self.require_lower.is_some();
        p.password.require_digit_or_symbol = self.require_digit_or_symbol.is_some();
        number(
            &mut errors,
            "lockout.threshold",
            &self.threshold,
            &mut p.lockout.threshold,
        );
        number(
            &mut errors,
            "lockout.lock_minutes",
            &self.lock_minutes,
            &mut p.lockout.lock_minutes,
        );
        number(
            &mut errors,
            "lockout.permanent_after",
            &self.permanent_after,
            &mut p.lockout.permanent_after,
        );
        number(
            &mut errors,
            "lockout.reset_failures_after_minutes",
            &self.reset_failures_after_minutes,
            &mut p.lockout.reset_failures_after_minutes,
        );
        match self.mfa.as_str() {
            "off" => p.mfa = MfaPolicy::Off,
            "admins" => p.mfa = MfaPolicy::Admins,
            "everyone" => p.mfa = MfaPolicy::Everyone,
            _ => errors.push("mfa: must be off, admins or everyone".into()),
        }
        let email = self.support_email.trim();
        if email.is_empty() {
            p.support_email = None;
        } else if email.len() > MAX_INPUT {
            errors.push("support_email: must be an email address".into());
        } else {
            // Canonical form when it parses; `validate` names it when it does not.
            p.support_email = Some(
                Email::parse(email)
                    .map(|e| e.as_str().to_owned())
                    .unwrap_or_else(|_| email.to_owned()),
            );
        }
        number(
            &mut errors,
            "session_idle_secs",
            &self.session_idle_secs,
            &mut p.session_idle_secs,
        );
        number(
            &mut errors,
            "session_absolute_secs",
            &self.session_absolute_secs,
            &mut p.session_absolute_secs,
        );
        if let Err(problems) = p.validate() {
            let named: Vec<String> = errors
                .iter()
                .filter_map(|e| e.split(':').next())
                .map(|f| format!("{f}:"))
                .collect();
            errors.extend(
                problems
                    .0
                    .into_iter()
                    .filter(|m| !named.iter().any(|f| m.starts_with(f.as_str()))),
            );
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/org.html")]
struct OrgPage {
    nav: Nav,
    notice: Option<&'static str>,
    org: OrgRow,
    form: PolicyForm,
    /// May change the policies (support may only read them).
    can_manage: bool,
    errors: Vec<String>,
}

#[get("/admin/orgs/{id}")]
async fn org_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter(&state, &req).await?);
    let org = org_service::find(&state, &console.who, Action::Read, &path).await?;
    let page = OrgPage {
        nav: console.nav(),
        notice: notice(query.done.as_deref()),
        form: PolicyForm::from_policy(&org.policy()),
        can_manage: console.who.require(Action::Manage).is_ok(),
        errors: Vec::new(),
        org,
    };
    Ok(render(&page, StatusCode::OK))
}

#[post("/admin/orgs/{id}/policy")]
async fn org_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    form: web::Form<PolicyForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let console = inside!(enter_form(&state, &req, &form.csrf).await?);
    let who = &console.who;
    let org = org_service::find(&state, who, Action::Manage, &path).await?;
    let policy = match form.parse(&org.policy()) {
        Ok(p) => p,
        Err(errors) => {
            let page = OrgPage {
                nav: console.nav(),
                notice: None,
                form,
                can_manage: true,
                errors,
                org,
            };
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    org_service::set_policy(&state, Acting::new(who, &ctx), &org, policy).await?;
    Ok(see_other(&format!(
        "/admin/orgs/{}?done=policy-saved",
        org.id
    )))
}

// ---------------------------------------------------------------------------------------
// The audit trail of the organisations the administrator may see.

struct EventRow {
    seq: i64,
    time: String,
    event_type: String,
    outcome: String,
    actor: String,
    subject: String,
    client_ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    nav: Nav,
    user: String,
    event_type: String,
    /// Every event type, and whether it is the one filtered by.
    types: Vec<(&'static str, bool)>,
    events: Vec<EventRow>,
    /// The query string of the next (older) page, when there may be one.
    older: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    /// A username.
    user: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    before: Option<i64>,
}

#[get("/admin/audit")]
async fn audit_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter(&state, &req).await?);
    let who = &console.who;
    who.require(Action::Read)?;
    let q = query.into_inner();
    let user_text = q.user.unwrap_or_default().trim().to_owned();
    let type_text = q.event_type.unwrap_or_default().trim().to_owned();
    let mut page = AuditPage {
        nav: console.nav(),
        user: user_text.chars().take(MAX_INPUT).collect(),
        event_type: type_text.chars().take(MAX_INPUT).collect(),
        types: EventType::ALL
            .iter()
            .map(|t| (t.as_str(), t.as_str() == type_text))
            .collect(),
        events: Vec::new(),
        older: None,
        error: None,
    };
    let event_type = if type_text.is_empty() {
        None
    } else {
        match type_text.parse::<EventType>() {
            Ok(t) => Some(t),
            Err(_) => {
                page.error = Some("type: not a known event type".into());
                return Ok(render(&page, StatusCode::BAD_REQUEST));
            }
        }
    };
    let user = if user_text.is_empty() {
        None
    } else {
        // Someone outside the administrator's organisations is as unknown as no one.
        let found = match Username::parse(&user_text) {
            Ok(name) => {
                state
                    .store
                    .run(move |c| users::find_by_username(c, &name))
                    .await?
            }
            Err(_) => None,
        };
        match who.visible_user(found) {
            Ok(u) => Some(u.id),
            Err(_) => {
                page.error = Some(format!("user: no user named {user_text:?}"));
                return Ok(render(&page, StatusCode::NOT_FOUND));
            }
        }
    };
    let filter = AuditFilter {
        user,
        org_id: match who.role {
            Role::SuperAdmin => None,
            _ => who.org_id.clone(),
        },
        event_type,
        outcome: None,
        from: None,
        to: None,
    };
    let records = state
        .audit
        .query(filter, AUDIT_PAGE, q.before)
        .await
        .map_err(AppError::from)?;
    if records.len() as i64 == AUDIT_PAGE
        && let Some(last) = records.last()
    {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if !page.user.is_empty() {
            next.append_pair("user", &page.user);
        }
        if !page.event_type.is_empty() {
            next.append_pair("type", &page.event_type);
        }
        next.append_pair("before", &last.seq.to_string());
        page.older = Some(next.finish());
    }
    page.events = describe(&state, records).await?;
    Ok(render(&page, StatusCode::OK))
}

/// Events as rows, with user ids shown as usernames where they are users.
async fn describe(state: &AppState, records: Vec<AuditRecord>) -> Result<Vec<EventRow>, AppError> {
    let mut ids: Vec<String> = records
        .iter()
        .flat_map(|r| [r.actor.clone(), r.subject.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let names: HashMap<String, String> = state
        .store
        .run(move |c| {
            let mut names = HashMap::new();
            for id in ids {
                if id.len() <= 64
                    && let Some(u) = users::find_by_id(c, &id)?
                {
                    names.insert(id, u.username);
                }
            }
            Ok(names)
        })
        .await?;
    let name = |id: &Option<String>| -> String {
        match id {
            Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
            None => String::new(),
        }
    };
    Ok(records
        .into_iter()
        .map(|r| EventRow {
            seq: r.seq,
            time: when(r.time.naive_utc()),
            actor: name(&r.actor),
            subject: name(&r.subject),
            event_type: r.event_type,
            outcome: r.outcome,
            client_ip: r.client_ip.unwrap_or_default(),
            details: match &r.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                other => other.to_string(),
            },
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// IP blocks (DESIGN §5): they span organisations, so only a super administrator sees them.

struct BlockRow {
    ip: String,
    until: String,
    count: i32,
    reason: String,
}

#[derive(Template)]
#[template(path = "admin/ip_blocks.html")]
struct IpBlocksPage {
    nav: Nav,
    notice: Option<&'static str>,
    blocks: Vec<BlockRow>,
}

#[get("/admin/ip-blocks")]
async fn ip_blocks_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter(&state, &req).await?);
    let blocks = network::blocks(&state, &console.who)
        .await?
        .into_iter()
        .map(|b| BlockRow {
            until: when(b.blocked_until),
            count: b.block_count,
            reason: b.reason,
            ip: b.ip,
        })
        .collect();
    let page = IpBlocksPage {
        nav: console.nav(),
        notice: notice(query.done.as_deref()),
        blocks,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct LiftForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ip: String,
}

#[post("/admin/ip-blocks/lift")]
async fn lift_ip_block(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    form: web::Form<LiftForm>,
) -> Result<HttpResponse, PageError> {
    let console = inside!(enter_form(&state, &req, &form.csrf).await?);
    let lifted = network::lift_ip_block(&state, Acting::new(&console.who, &ctx), &form.ip).await?;
    let done = if lifted {
        "ip-lifted"
    } else {
        "ip-not-blocked"
    };
    Ok(see_other(&format!("/admin/ip-blocks?done={done}")))
}

#[cfg(test)]
mod tests {
    use super::is_console_path;

    #[test]
    fn only_console_pages_are_returned_to() {
        for good in [
            "/admin",
            "/admin/users/u1",
            "/admin/audit?type=sign_in.failed",
        ] {
            assert!(is_console_path(good), "{good}");
        }
        for bad in [
            "",
            "/",
            "/account",
            "/administrator",
            "//evil.example/admin",
            "/admin//evil.example",
            "/admin/../account",
            "/admin\\..\\x",
            "https://evil.example/admin",
            "/admin/x\r\nSet-Cookie: a=b",
        ] {
            assert!(!is_console_path(bad), "{bad:?}");
        }
    }
}
