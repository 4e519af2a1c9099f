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

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form, Path, Query},
};
use askama::Template;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Action, ApiError, Caller, ServiceError,
    service::{Acting, network, orgs as org_service, users as user_service},
};
use crate::{
    audit::{AuditRecord, EventType},
    auth::{
        same_secret,
        session::{self, ACR_MFA, SsoSession},
        step_up::{self, MfaVerdict},
        transaction::Resume,
    },
    domain::{Email, MfaPolicy, OrgPolicy, PasskeyMode, Role},
    pages::{
        account::signed_in,
        login::{
            AnswerSignIn, Finished, SignInRequest, see_other, start_sign_in, start_sign_in_with,
        },
    },
    startup::AppState,
    store::{orgs, orgs::OrgRow, totp, users, users::UserRow},
    web::{
        error::AppError,
        pages::{PageError, check_same_origin, render},
        visit::{Answer, Visit},
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
    cfg.service(user::home)
        .service(user::user_page)
        .service(user::help_user)
        .service(user::end_session)
        .service(user::end_all_sessions)
        .service(user::remove_passkey)
        .service(user::change_fhir_user)
        .service(policy::org_page)
        .service(policy::org_policy)
        .service(audit::audit_page)
        .service(emergency::emergency_page)
        .service(emergency::review)
        .service(audit::export_audit)
        .service(ip_blocks::ip_blocks_page)
        .service(ip_blocks::lift_ip_block)
        .service(fhir_servers::fhir_servers_page)
        .service(fhir_servers::create_fhir_server)
        .service(fhir_servers::delete_fhir_server);
    upstream::routes(cfg);
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
    /// The console's language: English until its pages are translated.
    fn tr(&self) -> crate::i18n::Tr {
        crate::i18n::Tr::default()
    }

    fn nav(&self) -> Nav {
        Nav {
            username: self.user.username.clone(),
            org_id: self.user.org_id.clone(),
            csrf: self.session.csrf.clone(),
            global: self.who.require(Action::Global).is_ok(),
            manage: self.who.require(Action::Manage).is_ok(),
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

/// The name console sign-ins carry (`Resume::kind`).
pub const RESUME: &str = "admin";

/// What a console sign-in keeps: the console page that was asked for.
#[derive(Serialize, Deserialize)]
struct Return {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    return_to: Option<String>,
}

fn resume(req: &HttpRequest) -> Result<Resume, AppError> {
    let back = Return {
        return_to: return_to(req),
    };
    Ok(Resume::new(RESUME, &back)?)
}

/// A console sign-in goes back to the page asked for (checked again: the stored path
/// came through the ephemeral store), or to `/admin`.
pub struct ToConsole;

#[async_trait::async_trait(?Send)]
impl AnswerSignIn for ToConsole {
    async fn answer(&self, done: Finished<'_>) -> Result<HttpResponse, AppError> {
        let back: Return = done.resume.request()?;
        Ok(see_other(
            back.return_to
                .as_deref()
                .filter(|p| is_console_path(p))
                .unwrap_or("/admin"),
        ))
    }
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
    /// May manage the organisation's identity providers (an administrator).
    manage: bool,
}

impl Visit {
    /// The administrator of this request, or the answer that gets them there: the sign-in
    /// (no session, a session without the second factor the policy requires, or 15 idle
    /// minutes in the console) or a 403 page for someone who is no administrator.
    async fn enter(&self) -> Result<Result<Console, HttpResponse>, PageError> {
        let (state, req) = (&*self.state, &self.req);
        let Some((mut session, user)) = signed_in(state, req).await? else {
            return Ok(Err(start_sign_in(state, req, resume(req)?).await?));
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
                resume: resume(req)?,
                require_mfa,
                login_hint: Some(user.username.clone()),
                emergency: None,
                idp_hint: None,
                ui_locales: None,
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
    async fn enter_form(&self, csrf: &str) -> Result<Result<Console, HttpResponse>, PageError> {
        check_same_origin(&self.req, &self.state.config.issuer)?;
        let console = match self.enter().await? {
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

    /// The administrator inside, acting in this request.
    fn by<'a>(&'a self, console: &'a Console) -> Acting<'a> {
        Acting::new(&self.state, &console.who, &self.ctx)
    }
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

mod audit;
mod emergency;
mod fhir_servers;
mod ip_blocks;
mod policy;
mod upstream;
mod user;

fn when(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn when_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| when(t.naive_utc()))
        .unwrap_or_default()
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
        "passkey-removed" => "The passkey was removed; the user was told by mail.",
        "fhir-user-set" => "The user's FHIR resource was set.",
        "fhir-user-cleared" => "The user's FHIR resource was removed.",
        "fhir-server-created" => "The FHIR server was registered.",
        "fhir-server-deleted" => "The FHIR server's registration was removed.",
        "no-totp" => "The user had no two-step verification.",
        "session-ended" => "The session was ended.",
        "sessions-ended" => "Every session of the user was ended.",
        "policy-saved" => "The policies were saved.",
        "ip-lifted" => "The block was lifted.",
        "ip-not-blocked" => "That address was not blocked.",
        "reviewed" => "The emergency session was signed off.",
        "emergency-granted" => "The user may now use emergency access.",
        "emergency-already" => "The user was already designated for emergency access.",
        "emergency-withdrawn" => "The user may no longer use emergency access.",
        "emergency-not-designated" => "The user was not designated for emergency access.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
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
