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
    i18n::{Id, Tr},
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
        visit::{Answer, Visit, spoken},
    },
};

/// DESIGN §8: the admin console's idle limit, whatever the organisation's session policy.
pub const CONSOLE_IDLE_SECS: i64 = 15 * 60;
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
        .service(branding::branding_page)
        .service(branding::save_branding)
        .service(branding::remove_logo)
        // The logo's form is multipart: bounded here, so a large body stops early.
        .service(
            web::resource("/admin/orgs/{id}/logo")
                .app_data(
                    actix_multipart::form::MultipartFormConfig::default()
                        .total_limit(branding::LOGO_UPLOAD_LIMIT)
                        .memory_limit(branding::LOGO_UPLOAD_LIMIT),
                )
                .route(web::post().to(branding::upload_logo)),
        )
        .service(audit::audit_page)
        .service(emergency::emergency_page)
        .service(emergency::review)
        .service(audit::export_audit)
        .service(ip_blocks::ip_blocks_page)
        .service(ip_blocks::lift_ip_block)
        .service(fhir_servers::fhir_servers_page)
        .service(fhir_servers::create_fhir_server)
        .service(fhir_servers::delete_fhir_server)
        .service(confirm::confirm_page);
    upstream::routes(cfg);
}

/// A refusal of the admin service as the console says it, in the administrator's
/// language. The service words its refusals for the API and the CLI, in English: the
/// ones the console knows are said again in `tr`'s words ([`forbidden_id`]); the
/// others (a field's technical message, as `scopes: …`) follow a translated lead-in.
fn refusal(tr: &Tr, e: ServiceError) -> AppError {
    match ApiError::from(e) {
        ApiError::Unauthorized => AppError::Forbidden(tr.t("console-sign-in-again")),
        ApiError::MfaRequired => AppError::Forbidden(tr.t("console-mfa-required")),
        ApiError::Forbidden(why) => AppError::Forbidden(forbidden(tr, why)),
        ApiError::NotFound => AppError::NotFound,
        ApiError::BadRequest(why) | ApiError::Conflict(why) => {
            AppError::BadRequest(tr.a("console-not-accepted", "detail", &why))
        }
        ApiError::App(a) => a,
    }
}

/// What the service refused (`ServiceError::Forbidden`), in `tr`'s words.
fn forbidden(tr: &Tr, why: &str) -> String {
    match forbidden_id(why) {
        Some(id) => tr.id(id),
        None => tr.a("console-refused-other", "why", &capitalise(why)),
    }
}

/// The console's words for each refusal the admin service gives
/// (`ServiceError::Forbidden`); a test keeps this table and the service together.
fn forbidden_id(why: &str) -> Option<Id> {
    Some(match why {
        "your role does not allow this" => Id("console-refused-role"),
        "you cannot act on a user whose role is equal to or above yours" => {
            Id("console-refused-peer")
        }
        "you cannot grant this role" => Id("console-refused-grant"),
        "you cannot sign off your own emergency access: another administrator must" => {
            Id("console-refused-own-review")
        }
        "the account mapping gives a role you cannot grant" => Id("console-refused-mapping-role"),
        "an account of a role equal to or above yours is linked to this connector: only a super administrator may point it at another identity provider" => {
            Id("console-refused-connector-linked")
        }
        "a member of this organisation has a role above yours (super_admin): only a super administrator may change its policy" => {
            Id("console-refused-org-above")
        }
        _ => return None,
    })
}

/// A service call's result with its refusal in the administrator's words: what the
/// console's handlers write instead of a bare `?` on the service.
trait Said<T> {
    fn said(self, tr: &Tr) -> Result<T, AppError>;
}

impl<T> Said<T> for Result<T, ServiceError> {
    fn said(self, tr: &Tr) -> Result<T, AppError> {
        self.map_err(|e| refusal(tr, e))
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
    /// The administrator's language and time zone: their own setting, else their
    /// browser's, else their organisation's (`signed_in` chose it).
    tr: Tr,
}

impl Console {
    /// The console's language: the administrator's.
    fn tr(&self) -> Tr {
        self.tr.clone()
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
        // From here on the request speaks the administrator's language, error pages too.
        let tr = spoken(req);
        let role = user.role();
        if !role.is_admin() {
            return Err(AppError::Forbidden(tr.t("console-not-an-administrator")).into());
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
                app: None,
                org_hint: None,
            };
            return Ok(Err(start_sign_in_with(state, req, again).await?));
        }
        session::touch_console(state.ephemeral.as_ref(), &mut session, now).await?;
        let who = Caller {
            actor: user.id.clone(),
            role,
            org_id: Some(user.org_id.clone()),
        };
        Ok(Ok(Console {
            session,
            user,
            who,
            tr,
        }))
    }

    /// As `enter`, for a form post: same origin and the session's CSRF token as well.
    async fn enter_form(&self, csrf: &str) -> Result<Result<Console, HttpResponse>, PageError> {
        check_same_origin(&self.req, &self.state.config.issuer)?;
        let console = match self.enter().await? {
            Ok(c) => c,
            Err(answer) => return Ok(Err(answer)),
        };
        if !same_secret(csrf, &console.session.csrf) {
            return Err(AppError::Forbidden(console.tr.t("form-stale")).into());
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
mod branding;
mod confirm;
mod dashboard;
mod emergency;
mod fhir_servers;
mod ip_blocks;
mod policy;
mod table;
mod upstream;
mod user;

/// A stored moment as the administrator reads it, in their time zone.
fn when(tr: &Tr, t: NaiveDateTime) -> String {
    tr.stored(&t)
}

fn when_secs(tr: &Tr, secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| tr.datetime(t))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// A fixed notice for the action just done, in the administrator's language; nothing
/// of the query is echoed.
fn notice(tr: &Tr, done: Option<&str>) -> Option<String> {
    let id = match done? {
        "unlocked" => Id("console-notice-unlocked"),
        "not-locked" => Id("console-notice-not-locked"),
        "reset" => Id("console-notice-reset"),
        "totp-removed" => Id("console-notice-totp-removed"),
        "passkey-removed" => Id("console-notice-passkey-removed"),
        "fhir-user-set" => Id("console-notice-fhir-user-set"),
        "fhir-user-cleared" => Id("console-notice-fhir-user-cleared"),
        "fhir-server-created" => Id("console-notice-fhir-server-created"),
        "fhir-server-deleted" => Id("console-notice-fhir-server-deleted"),
        "no-totp" => Id("console-notice-no-totp"),
        "session-ended" => Id("console-notice-session-ended"),
        "sessions-ended" => Id("console-notice-sessions-ended"),
        "policy-saved" => Id("console-notice-policy-saved"),
        "branding-saved" => Id("console-notice-branding-saved"),
        "logo-saved" => Id("console-notice-logo-saved"),
        "logo-removed" => Id("console-notice-logo-removed"),
        "ip-lifted" => Id("console-notice-ip-lifted"),
        "ip-not-blocked" => Id("console-notice-ip-not-blocked"),
        "reviewed" => Id("console-notice-reviewed"),
        "emergency-granted" => Id("console-notice-emergency-granted"),
        "emergency-already" => Id("console-notice-emergency-already"),
        "emergency-withdrawn" => Id("console-notice-emergency-withdrawn"),
        "emergency-not-designated" => Id("console-notice-emergency-not-designated"),
        _ => return None,
    };
    Some(tr.id(id))
}

/// What is wrong with a form, field by field: each message starts with the field's name
/// (`password.min_length: …`, `issuer: …`), in the administrator's language where the
/// console says it, in the English of the layer below otherwise (`OrgPolicy::validate`,
/// the admin service), under the form's translated lead-in.
struct FieldErrors<'a> {
    tr: &'a Tr,
    said: Vec<String>,
}

impl<'a> FieldErrors<'a> {
    fn new(tr: &'a Tr) -> Self {
        Self {
            tr,
            said: Vec::new(),
        }
    }

    /// `field`'s problem: the string `id`, which names the field as `$field`.
    fn push(&mut self, id: Id, field: &str) {
        self.said.push(self.tr.a(id.0, "field", field));
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[cfg(test)]
mod tests {
    use super::{forbidden_id, is_console_path};

    /// Every `ServiceError::Forbidden("…")` the admin service gives, as written in its
    /// source (a literal, perhaps on the next line).
    fn service_refusals() -> Vec<String> {
        fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    rust_files(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        rust_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin/service"),
            &mut files,
        );
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, call) in text.match_indices("ServiceError::Forbidden(") {
                let rest = text[at + call.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"') {
                    found.push(literal[..literal.find('"').unwrap()].to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn every_refusal_of_the_service_has_the_consoles_words() {
        let refusals = service_refusals();
        assert!(
            refusals.len() >= 5,
            "the scan found no refusals: {refusals:?}"
        );
        for why in refusals {
            assert!(forbidden_id(&why).is_some(), "no console words for {why:?}");
        }
    }

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
