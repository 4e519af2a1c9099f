//! The recovery pages: `/reset` (ask for a link), `/reset/{token}` and `/invite/{token}`
//! (choose a password from a mailed link). Nobody is signed in here, so each form's CSRF
//! token is bound to the browser cookie (`web::csrf`).

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form},
};
use askama::Template;
use serde::Deserialize;
use tokio::time::{Duration, Instant};

use crate::web::cookies;
use crate::web::visit::{Answer, Visit, browser_tr, spoken};
use crate::{
    auth::{
        account::PasswordChange,
        recovery::{
            LinkOutcome, LinkToken, accept_invitation, complete_reset, peek, request_reset,
        },
    },
    domain::Username,
    i18n::{Id, Tr},
    pages::account::speak_for,
    pages::login::browser_id,
    startup::AppState,
    store::recovery_tokens::Purpose,
    web::{
        RequestContext, csrf,
        error::AppError,
        pages::{PageError, check_same_origin, message, render},
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(request_page)
        .service(request_submit)
        .service(reset_page)
        .service(reset_submit)
        .service(invite_page)
        .service(invite_submit);
}

/// Every answer to a reset request, for a real account or none, leaves after at least
/// this long, so its timing does not tell whether a link was queued. The work for a real
/// account (a counter, one transaction, one audit event) takes a few milliseconds; if it
/// ever outlasts the floor, a warning says so.
const ANSWER_FLOOR: Duration = Duration::from_millis(500);

const REQUEST_FORM: &str = "reset-request";

#[derive(Template)]
#[template(path = "reset_request.html")]
struct RequestPage<'a> {
    tr: &'a Tr,
    csrf: &'a str,
    login: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "new_password.html")]
struct NewPasswordPage<'a> {
    tr: &'a Tr,
    invitation: bool,
    action: &'a str,
    csrf: &'a str,
    username: &'a str,
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct RequestForm {
    #[serde(default)]
    csrf: String,
    login: String,
}

#[derive(Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    new_password: String,
    confirm_password: String,
}

/// This browser's cookie value, and the cookie to set when the browser has none yet.
fn browser_for(req: &HttpRequest) -> (String, Option<actix_web::cookie::Cookie<'static>>) {
    let (browser, new) = browser_id(req);
    let cookie = new.then(|| cookies::browser_cookie(browser.clone()));
    (browser, cookie)
}

fn with_cookie(
    mut res: HttpResponse,
    cookie: Option<actix_web::cookie::Cookie<'static>>,
) -> Result<HttpResponse, AppError> {
    if let Some(cookie) = cookie {
        res.add_cookie(&cookie)
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(res)
}

/// A state-changing post must come from our own page in this browser (DESIGN §8).
fn check_form(
    state: &AppState,
    req: &HttpRequest,
    form: &str,
    presented: &str,
) -> Result<(), PageError> {
    check_same_origin(req, &state.config.issuer)?;
    let (browser, new) = browser_id(req);
    if new || !csrf::is_valid(&state.master_key, &browser, form, presented) {
        return Err(PageError(AppError::Forbidden(spoken(req).t("form-stale"))));
    }
    Ok(())
}

#[get("/reset")]
async fn request_page(Visit { state, req, .. }: Visit) -> Answer {
    let (browser, cookie) = browser_for(&req);
    let csrf = csrf::form_token(&state.master_key, &browser, REQUEST_FORM);
    let page = RequestPage {
        tr: &crate::pages::branding::default_tr(&state, &req).await?,
        csrf: &csrf,
        login: "",
        error: None,
    };
    Ok(with_cookie(render(&page, StatusCode::OK), cookie)?)
}

#[post("/reset")]
async fn request_submit(form: Form<RequestForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let started = Instant::now();
    let form = form.into_inner();
    check_form(&state, &req, REQUEST_FORM, &form.csrf)?;
    state.guard.rate_limit(ctx.client_ip)?;
    let login = form.login.trim();
    let tr = crate::pages::branding::default_tr(&state, &req).await?;
    // Judged on the input alone, so it tells nothing about accounts.
    if login.is_empty() || form.login.len() > Username::MAX_INPUT_BYTES {
        let error = tr.t("enter-username-or-email");
        let page = RequestPage {
            tr: &tr,
            csrf: &form.csrf,
            login: if form.login.len() > Username::MAX_INPUT_BYTES {
                ""
            } else {
                login
            },
            error: Some(&error),
        };
        return Ok(render(&page, StatusCode::BAD_REQUEST));
    }
    request_reset(&state, &ctx, login).await?;
    let took = started.elapsed();
    if took > ANSWER_FLOOR {
        tracing::warn!(
            request_id = %ctx.request_id,
            took_ms = took.as_millis() as u64,
            "a reset request outlasted its answer floor; its timing may tell whether the account exists"
        );
    }
    tokio::time::sleep_until(started + ANSWER_FLOOR).await;
    let minutes = usize::try_from(state.config.reset_token_minutes).unwrap_or(usize::MAX);
    Ok(message(
        &tr,
        StatusCode::OK,
        &tr.t("check-your-email"),
        &tr.n("reset-link-sent", "minutes", minutes),
        Some(("/account", &tr.t("back-to-sign-in"))),
    ))
}

/// What differs between a reset link and an invitation link.
struct LinkKind {
    purpose: Purpose,
    path: &'static str,
    form: &'static str,
    invalid: Id,
    invalid_link: (&'static str, Id),
    done_title: Id,
    done: Id,
}

const RESET: LinkKind = LinkKind {
    purpose: Purpose::Reset,
    path: "/reset/",
    form: "reset-password",
    invalid: Id("reset-link-invalid"),
    invalid_link: ("/reset", Id("ask-for-new-link")),
    done_title: Id("password-set"),
    done: Id("password-set-text"),
};

const INVITE: LinkKind = LinkKind {
    purpose: Purpose::Invite,
    path: "/invite/",
    form: "invitation",
    invalid: Id("invitation-link-invalid"),
    invalid_link: ("/account", Id("go-to-sign-in")),
    done_title: Id("account-ready"),
    done: Id("account-ready-text"),
};

/// One page for every link that does not work, whatever the reason (malformed, unknown,
/// used, expired, replaced, void): the reason is nobody's business but the audit trail's.
fn invalid(tr: &Tr, kind: &LinkKind) -> HttpResponse {
    message(
        tr,
        StatusCode::BAD_REQUEST,
        &tr.t("link-invalid"),
        &tr.id(kind.invalid),
        Some((kind.invalid_link.0, &tr.id(kind.invalid_link.1))),
    )
}

fn token_in(req: &HttpRequest) -> Option<LinkToken> {
    LinkToken::parse(req.match_info().get("token").unwrap_or(""))
}

async fn link_page(
    kind: &LinkKind,
    state: &AppState,
    req: &HttpRequest,
) -> Result<HttpResponse, PageError> {
    let Some(token) = token_in(req) else {
        return Ok(invalid(&browser_tr(req), kind));
    };
    let Some(user) = peek(state, &token, kind.purpose).await? else {
        return Ok(invalid(&browser_tr(req), kind));
    };
    let tr = speak_for(state, req, &user).await?;
    let (browser, cookie) = browser_for(req);
    let csrf = csrf::form_token(&state.master_key, &browser, kind.form);
    let action = link_action(kind, req);
    let page = NewPasswordPage {
        tr: &tr,
        invitation: kind.purpose == Purpose::Invite,
        action: &action,
        csrf: &csrf,
        username: &user.username,
        errors: Vec::new(),
    };
    Ok(with_cookie(render(&page, StatusCode::OK), cookie)?)
}

/// Where the link's form posts: the link itself.
fn link_action(kind: &LinkKind, req: &HttpRequest) -> String {
    let token = req.match_info().get("token").unwrap_or("");
    format!("{}{token}", kind.path)
}

async fn link_submit(
    kind: &LinkKind,
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    form: NewPasswordForm,
) -> Result<HttpResponse, PageError> {
    check_form(state, req, kind.form, &form.csrf)?;
    state.guard.rate_limit(ctx.client_ip)?;
    let tr = match token_in(req) {
        Some(ref token) => match peek(state, token, kind.purpose).await? {
            Some(user) => speak_for(state, req, &user).await?,
            None => browser_tr(req),
        },
        None => browser_tr(req),
    };
    let Some(token) = token_in(req) else {
        return Ok(invalid(&tr, kind));
    };
    let change = PasswordChange {
        new: form.new_password,
        confirm: form.confirm_password,
    };
    let outcome = match kind.purpose {
        Purpose::Reset => complete_reset(state, ctx, &token, change).await?,
        Purpose::Invite => accept_invitation(state, ctx, &token, change).await?,
    };
    match outcome {
        LinkOutcome::Done => Ok(message(
            &tr,
            StatusCode::OK,
            &tr.id(kind.done_title),
            &tr.id(kind.done),
            Some(("/account", &tr.t("sign-in"))),
        )),
        LinkOutcome::Invalid => Ok(invalid(&tr, kind)),
        LinkOutcome::Refused { username, errors } => {
            let action = link_action(kind, req);
            let page = NewPasswordPage {
                tr: &tr,
                invitation: kind.purpose == Purpose::Invite,
                action: &action,
                csrf: &form.csrf,
                username: &username,
                errors: errors.iter().map(|p| p.said(&tr)).collect(),
            };
            Ok(render(&page, StatusCode::BAD_REQUEST))
        }
    }
}

// `{token:.*}`: whatever follows, slashes included, reaches the one "invalid link" page
// instead of a 404 that would look different.
#[get("/reset/{token:.*}")]
async fn reset_page(Visit { state, req, .. }: Visit) -> Answer {
    link_page(&RESET, &state, &req).await
}

#[post("/reset/{token:.*}")]
async fn reset_submit(form: Form<NewPasswordForm>, Visit { state, req, ctx }: Visit) -> Answer {
    link_submit(&RESET, &state, &req, &ctx, form.into_inner()).await
}

#[get("/invite/{token:.*}")]
async fn invite_page(Visit { state, req, .. }: Visit) -> Answer {
    link_page(&INVITE, &state, &req).await
}

#[post("/invite/{token:.*}")]
async fn invite_submit(form: Form<NewPasswordForm>, Visit { state, req, ctx }: Visit) -> Answer {
    link_submit(&INVITE, &state, &req, &ctx, form.into_inner()).await
}
