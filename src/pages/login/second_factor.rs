//! The second-factor steps of a sign-in: the code of an enrolled user, and the
//! enrolment a user who must have MFA and has none goes through first (DESIGN §6).
//! Every code is a guess under the same guard as the password (DESIGN §5).

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form, Query},
};
use askama::Template;
use serde::Deserialize;

use super::{
    TxQuery, advance, csrf_refused, expired, out_of_order, owned_transaction, see_other,
    stage_location, transaction_username, tx_tr,
};
use crate::web::visit::{Answer, Visit, browser_tr, spoken};
use crate::{
    auth::{
        guard::{self, Credential, Verdict},
        passkey, same_secret,
        totp::{self, Confirmation, EnrolmentFor, SecondFactor},
        transaction::{LoginTransaction, Stage, Step},
    },
    i18n::{Id, Tr},
    startup::AppState,
    web::{
        error::AppError,
        pages::{PageError, check_same_origin, render},
    },
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(otp_page)
        .service(otp_submit)
        .service(enrol_page)
        .service(enrol_submit)
        .service(continue_submit);
}

#[derive(Template)]
#[template(path = "otp.html")]
struct OtpPage<'a> {
    tr: &'a Tr,
    tx: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
    choices: Choices,
}

/// The second factors the person at the code stage may give (DESIGN §6, §17). A code
/// field is always there: recovery codes are the way back for a lost authenticator.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Choices {
    /// The account has a passkey this server can use.
    pub passkey: bool,
    /// The account has TOTP.
    pub totp: bool,
    /// Only a passkey completes this sign-in: a code leads on to registering one.
    pub phishing_resistant: bool,
}

pub(super) async fn choices(state: &AppState, tx: &LoginTransaction) -> Result<Choices, AppError> {
    let user_id = tx.user_id.clone().unwrap_or_default();
    let pii = state.pii.clone();
    let Some(user) = state
        .store
        .run(move |c| crate::store::users::find_by_id(c, &pii, &user_id))
        .await?
    else {
        return Ok(Choices::default());
    };
    let policy = crate::auth::passkey::policy_of(state, &user.org_id).await?;
    Ok(Choices {
        passkey: policy.allowed() && passkey::has_any(state, &user.id).await?,
        totp: totp::is_enrolled(state, &user.id).await?,
        phishing_resistant: policy.phishing_resistant_for(user.role()),
    })
}

/// The code page again, with `message`.
pub(super) async fn otp_again(
    state: &AppState,
    tr: &Tr,
    tx: &LoginTransaction,
    message: &str,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    Ok(render(
        &OtpPage {
            tr,
            tx: &tx.id,
            csrf: &tx.csrf,
            error: Some(message),
            choices: choices(state, tx).await?,
        },
        status,
    ))
}

#[derive(Template)]
#[template(path = "totp_enrol.html")]
pub(crate) struct EnrolPage<'a> {
    pub tr: &'a Tr,
    pub action: &'a str,
    pub tx: Option<&'a str>,
    pub csrf: &'a str,
    pub qr: &'a str,
    pub secret: &'a str,
    pub required: bool,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(crate) struct RecoveryCodesPage<'a> {
    pub tr: &'a Tr,
    pub tx: Option<&'a str>,
    pub csrf: &'a str,
    pub codes: Vec<String>,
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// The transaction of this browser at `stage`, with its CSRF token checked; otherwise
/// the answer to give instead.
pub(super) async fn at_stage(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    csrf: Option<&str>,
    stage: Stage,
) -> Result<Result<LoginTransaction, HttpResponse>, PageError> {
    at_stages(state, req, id, csrf, &[stage]).await
}

/// [`at_stage`] for a step taken at any of `stages`.
pub(super) async fn at_stages(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    csrf: Option<&str>,
    stages: &[Stage],
) -> Result<Result<LoginTransaction, HttpResponse>, PageError> {
    let Some(tx) = owned_transaction(state, req, id).await? else {
        return Ok(Err(expired(&browser_tr(req))));
    };
    let tr = tx_tr(req, &tx);
    if let Some(csrf) = csrf
        && !same_secret(csrf, &tx.csrf)
    {
        return Err(csrf_refused(&tr));
    }
    if !stages.contains(&tx.stage) {
        return Ok(Err(see_other(&stage_location(&tx))));
    }
    Ok(Ok(tx))
}

/// The recovery codes a sign-in just made, shown once before it goes on
/// (`/login/continue`); the transaction is saved at its new stage first.
pub(super) async fn show_codes(
    state: &AppState,
    tr: &Tr,
    tx: &LoginTransaction,
    codes: Vec<String>,
) -> Result<HttpResponse, PageError> {
    tx.save(state.ephemeral.as_ref()).await?;
    Ok(render(
        &RecoveryCodesPage {
            tr,
            tx: Some(&tx.id),
            csrf: &tx.csrf,
            codes,
        },
        StatusCode::OK,
    ))
}

#[get("/login/otp")]
async fn otp_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    let tx = match at_stage(&state, &req, &id, None, Stage::Otp).await? {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    Ok(render(
        &OtpPage {
            tr: &spoken(&req),
            tx: &tx.id,
            csrf: &tx.csrf,
            error: None,
            choices: choices(&state, &tx).await?,
        },
        StatusCode::OK,
    ))
}

#[post("/login/otp")]
async fn otp_submit(form: Form<CodeForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let mut tx = match at_stage(&state, &req, &form.tx, Some(&form.csrf), Stage::Otp).await? {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    let tr = spoken(&req);
    if form.code.len() > SecondFactor::MAX_INPUT {
        return Err(AppError::BadRequest(tr.t("code-too-long")).into());
    }
    state.guard.rate_limit(ctx.client_ip)?;
    let user_id = tx.user_id.clone().unwrap_or_default();
    if form.code.trim().is_empty() {
        let message = tr.t("enter-the-code");
        return otp_again(&state, &tr, &tx, &message, StatusCode::BAD_REQUEST).await;
    }
    let factor = SecondFactor::parse(&form.code);
    let username = transaction_username(&state, &tx).await?;
    // Any attempt counts towards the lockout, a malformed one too: it was a guess. It
    // goes through the same guard as the password (DESIGN §5).
    let credential = Credential::SecondFactor(factor.clone().ok());
    let user = match guard::attempt(&state, &ctx, &username, credential).await? {
        Verdict::Success(user) if user.id == user_id => user,
        // The name now belongs to another account (renamed meanwhile): start again.
        Verdict::Success(_) => return Ok(expired(&tr)),
        Verdict::Locked => {
            let message = tr.t("sign-in-locked");
            return otp_again(&state, &tr, &tx, &message, StatusCode::UNAUTHORIZED).await;
        }
        Verdict::Failure => {
            tracing::info!(request_id = %ctx.request_id, user_id = %user_id, "second factor refused");
            let message = match factor {
                Ok(_) => tr.t("wrong-code"),
                Err(_) => tr.t("enter-code-or-recovery-code"),
            };
            return otp_again(&state, &tr, &tx, &message, StatusCode::UNAUTHORIZED).await;
        }
        Verdict::IpBlocked { retry_after } => {
            return Err(AppError::TooManyRequests {
                retry_after_secs: retry_after.as_secs(),
            }
            .into());
        }
    };
    // Where only a passkey will do (DESIGN §17), a code proves enough to register a
    // new one, and no more: the sign-in goes on to that.
    let policy = crate::auth::passkey::policy_of(&state, &user.org_id).await?;
    if policy.phishing_resistant_for(user.role()) && state.passkeys.available() {
        tx.passkey_due = true;
    }
    tx.take(Step::SecondFactor).map_err(out_of_order)?;
    advance(&state, &req, &ctx, tx).await
}

#[get("/login/totp-enrol")]
async fn enrol_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    let tx = match at_stage(&state, &req, &id, None, Stage::EnrolTotp).await? {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    render_enrol(&state, &spoken(&req), &tx, None, StatusCode::OK).await
}

async fn render_enrol(
    state: &AppState,
    tr: &Tr,
    tx: &LoginTransaction,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let username = transaction_username(state, tx).await?;
    let user_id = tx.user_id.clone().unwrap_or_default();
    let view = totp::enrolment(
        state,
        &user_id,
        &username,
        EnrolmentFor::Transaction(&tx.id),
    )
    .await?;
    Ok(render(
        &EnrolPage {
            tr,
            action: "/login/totp-enrol",
            tx: Some(&tx.id),
            csrf: &tx.csrf,
            qr: &view.qr_png_base64,
            secret: &view.secret_base32,
            required: true,
            error: error.as_deref(),
        },
        status,
    ))
}

#[post("/login/totp-enrol")]
async fn enrol_submit(form: Form<CodeForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let mut tx = match at_stage(&state, &req, &form.tx, Some(&form.csrf), Stage::EnrolTotp).await? {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    state.guard.rate_limit(ctx.client_ip)?;
    let user_id = tx.user_id.clone().unwrap_or_default();
    let code = match SecondFactor::parse(&form.code) {
        Ok(SecondFactor::Totp(code)) => code,
        _ => String::new(),
    };
    let to = EnrolmentFor::Transaction(&tx.id);
    let tr = spoken(&req);
    let refused = |id| render_enrol(&state, &tr, &tx, Some(tr.id(id)), StatusCode::BAD_REQUEST);
    let codes = match totp::confirm(&state, &ctx, &user_id, to, &code).await? {
        Confirmation::Enrolled(codes) => codes,
        Confirmation::WrongCode => return refused(Id("wrong-code")).await,
        // The secret a code was meant for is gone (timed out): a new one is shown.
        Confirmation::Expired => return refused(Id("enrol-expired")).await,
    };
    tx.take(Step::Enrolled).map_err(out_of_order)?;
    show_codes(&state, &tr, &tx, codes).await
}

#[derive(Deserialize)]
struct ContinueForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
}

/// After the recovery codes were shown during sign-in.
#[post("/login/continue")]
async fn continue_submit(form: Form<ContinueForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let Some(tx) = owned_transaction(&state, &req, &form.tx).await? else {
        return Ok(expired(&browser_tr(&req)));
    };
    if !same_secret(&form.csrf, &tx.csrf) {
        return Err(csrf_refused(&tx_tr(&req, &tx)));
    }
    if !matches!(tx.stage, Stage::ChangePassword | Stage::Done) {
        return Ok(see_other(&stage_location(&tx)));
    }
    advance(&state, &req, &ctx, tx).await
}
