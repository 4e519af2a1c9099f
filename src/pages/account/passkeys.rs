//! The account page's passkeys (DESIGN §17): register, name, list and remove them, and
//! keep the recovery codes that are the way back when every passkey is lost.
//!
//! A stolen session must not become a lasting way in: adding or removing a passkey,
//! or making new recovery codes, needs a sign-in of the last few minutes. An older
//! session is asked to sign in again first, and comes back here.

use actix_web::{
    HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form, Query},
};
use askama::Template;
use serde::Deserialize;

use super::{signed_in, signed_in_form};
use crate::web::visit::{Answer, Visit, spoken};
use crate::{
    auth::{
        passkey::{self, PasskeySummary, Registration},
        session::SsoSession,
        totp::{self, EnrolmentFor},
        transaction::Resume,
    },
    domain::PasskeyName,
    i18n::{Id, Tr},
    pages::login::{
        AnswerSignIn, Finished, RecoveryCodesPage, options_json, see_other, start_sign_in,
    },
    pages::{passkey_name_problem, passkey_refusal},
    startup::AppState,
    store::users::UserRow,
    web::{
        error::AppError,
        pages::{PageError, render},
    },
};

/// The name sign-ins started to confirm a passkey change carry (`Resume::kind`).
pub const RESUME: &str = "account_passkeys";
/// How recent a sign-in must be to add or remove a passkey.
const FRESH_SECS: i64 = 10 * 60;

/// A sign-in started here ends here.
pub struct ToPasskeysPage;

#[async_trait::async_trait(?Send)]
impl AnswerSignIn for ToPasskeysPage {
    async fn answer(&self, _: Finished<'_>) -> Result<HttpResponse, AppError> {
        Ok(see_other("/account/passkeys"))
    }
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(passkeys_page)
        .service(confirm)
        .service(registration_options)
        .service(add)
        .service(rename)
        .service(remove)
        .service(recovery_codes);
}

struct Row {
    summary: PasskeySummary,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage<'a> {
    tr: &'a Tr,
    csrf: &'a str,
    passkeys: Vec<Row>,
    /// Passkeys can be registered here (the server and the organisation allow them).
    available: bool,
    /// The session's sign-in is recent enough to change them.
    fresh: bool,
    recovery_left: usize,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

fn fresh(state: &AppState, session: &SsoSession) -> bool {
    state.clock.now().timestamp() - session.auth_time <= FRESH_SECS
}

async fn render_page(
    state: &AppState,
    tr: &Tr,
    session: &SsoSession,
    user: &UserRow,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = passkey::policy_of(state, &user.org_id).await?;
    let passkeys = passkey::list(state, &user.id)
        .await?
        .iter()
        .map(PasskeySummary::from)
        .map(|summary| Row {
            created: tr.datetime(summary.created_at),
            last_used: summary
                .last_used_at
                .map(|t| tr.datetime(t))
                .unwrap_or_else(|| tr.t("never")),
            summary,
        })
        .collect();
    Ok(render(
        &PasskeysPage {
            tr,
            csrf: &session.csrf,
            passkeys,
            available: state.passkeys.available() && policy.allowed(),
            fresh: fresh(state, session),
            recovery_left: usize::try_from(totp::unused_recovery_codes(state, &user.id).await?)
                .unwrap_or_default(),
            notice,
            error,
        },
        status,
    ))
}

#[derive(Deserialize)]
struct PageQuery {
    added: Option<String>,
    removed: Option<String>,
    renamed: Option<String>,
}

#[get("/account/passkeys")]
async fn passkeys_page(query: Query<PageQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((session, user)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?);
    };
    let tr = spoken(&req);
    let notice = if query.added.is_some() {
        Some(Id("notice-passkey-added"))
    } else if query.removed.is_some() {
        Some(Id("notice-passkey-removed"))
    } else if query.renamed.is_some() {
        Some(Id("notice-passkey-renamed"))
    } else {
        None
    }
    .map(|id| tr.id(id));
    let notice = notice.as_deref();
    Ok(render_page(&state, &tr, &session, &user, notice, None, StatusCode::OK).await?)
}

/// Signs in again, to come back here with a fresh sign-in.
#[get("/account/passkeys/confirm")]
async fn confirm(Visit { state, req, .. }: Visit) -> Answer {
    Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The signed-in user behind a form that changes passkeys, with a recent sign-in.
/// `Ok(Err(answer))`: what to answer instead.
async fn fresh_form(
    state: &AppState,
    req: &actix_web::HttpRequest,
    csrf: &str,
) -> Result<Result<(SsoSession, UserRow), HttpResponse>, PageError> {
    let Some((session, user)) = signed_in_form(state, req, csrf).await? else {
        return Ok(Err(see_other("/account/passkeys")));
    };
    if !fresh(state, &session) {
        let tr = spoken(req);
        let why = tr.t("passkeys-sign-in-again");
        let page = render_page(
            state,
            &tr,
            &session,
            &user,
            None,
            Some(&why),
            StatusCode::FORBIDDEN,
        );
        return Ok(Err(page.await?));
    }
    Ok(Ok((session, user)))
}

#[post("/account/passkeys/options")]
async fn registration_options(form: Form<CsrfForm>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((session, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Err(PageError(AppError::Forbidden(
            spoken(&req).t("sign-in-first"),
        )));
    };
    if !fresh(&state, &session) {
        return Err(PageError(AppError::Forbidden(spoken(&req).t("form-stale"))));
    }
    let to = EnrolmentFor::Session(&session.handle);
    let options = passkey::begin_registration(&state, &user, to).await?;
    Ok(options_json(&options))
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
}

#[post("/account/passkeys")]
async fn add(form: Form<AddForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let (session, user) = match fresh_form(&state, &req, &form.csrf).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let tr = spoken(&req);
    let again = async |error: String| -> Answer {
        Ok(render_page(
            &state,
            &tr,
            &session,
            &user,
            None,
            Some(&error),
            StatusCode::BAD_REQUEST,
        )
        .await?)
    };
    let name = match PasskeyName::parse(&form.name) {
        Ok(name) => name,
        Err(_) => return again(passkey_name_problem(&form.name, &tr)).await,
    };
    let to = EnrolmentFor::Session(&session.handle);
    match passkey::finish_registration(&state, &ctx, &user, to, &name, &form.credential).await? {
        Registration::Added {
            recovery_codes: Some(codes),
            ..
        } => Ok(render(
            &RecoveryCodesPage {
                tr: &tr,
                tx: None,
                csrf: &session.csrf,
                codes,
            },
            StatusCode::OK,
        )),
        Registration::Added { .. } => Ok(see_other("/account/passkeys?added=1")),
        Registration::Refused(why) => again(passkey_refusal(why, &tr)).await,
        Registration::Expired => again(tr.t("passkey-setup-timed-out")).await,
    }
}

#[derive(Deserialize)]
struct RenameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[post("/account/passkeys/rename")]
async fn rename(form: Form<RenameForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let Some((session, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account/passkeys"));
    };
    let name = match PasskeyName::parse(&form.name) {
        Ok(name) => name,
        Err(_) => {
            let tr = spoken(&req);
            let why = passkey_name_problem(&form.name, &tr);
            let page = render_page(
                &state,
                &tr,
                &session,
                &user,
                None,
                Some(&why),
                StatusCode::BAD_REQUEST,
            );
            return Ok(page.await?);
        }
    };
    passkey::rename(&state, &ctx, &user, &form.id, &name).await?;
    Ok(see_other("/account/passkeys?renamed=1"))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

#[post("/account/passkeys/remove")]
async fn remove(form: Form<RemoveForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let (_, user) = match fresh_form(&state, &req, &form.csrf).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    passkey::remove_own(&state, &ctx, &user, &form.id).await?;
    Ok(see_other("/account/passkeys?removed=1"))
}

#[post("/account/passkeys/recovery-codes")]
async fn recovery_codes(form: Form<CsrfForm>, Visit { state, req, .. }: Visit) -> Answer {
    let (session, user) = match fresh_form(&state, &req, &form.csrf).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let codes = totp::regenerate_recovery_codes(&state, &user.id).await?;
    Ok(render(
        &RecoveryCodesPage {
            tr: &spoken(&req),
            tx: None,
            csrf: &session.csrf,
            codes,
        },
        StatusCode::OK,
    ))
}
