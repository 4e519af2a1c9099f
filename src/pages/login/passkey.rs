//! Passkeys in the sign-in pages (DESIGN §17): signing in with one at the first step
//! (conditional mediation offers them in the username field's autofill, and a button
//! asks at once) or as the second factor, and registering the one an organisation
//! requires. The browser's side is `static/passkey.js`; without JavaScript the pages
//! still work for passwords and codes.

use actix_web::{
    HttpResponse, get,
    http::{StatusCode, header},
    post,
    web::{self, Form, Query},
};
use askama::Template;
use serde::Deserialize;

use super::{
    TxQuery, advance, login_again, out_of_order,
    second_factor::{at_stage, at_stages, otp_again, show_codes},
};
use crate::web::visit::{Answer, Visit, spoken};
use crate::{
    auth::{
        passkey::{self, Outcome, Registration},
        totp::EnrolmentFor,
        transaction::{LoginTransaction, Stage, Step},
    },
    domain::PasskeyName,
    i18n::Tr,
    pages::{passkey_name_problem, passkey_refusal},
    startup::AppState,
    store::users,
    web::{
        error::AppError,
        pages::{PageError, check_same_origin, render},
    },
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(sign_in_options)
        .service(submit)
        .service(enrol_page)
        .service(enrol_options)
        .service(enrol_submit);
}

#[derive(Deserialize)]
struct TxForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct AnswerForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    name: String,
}

/// The options a WebAuthn call needs, as JSON for the page's script; never cached.
pub(crate) fn options_json(options: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(options)
}

/// The stages a passkey signs in at: the first (without a password) and the second.
const SIGN_IN_STAGES: [Stage; 2] = [Stage::Password, Stage::Otp];

/// A challenge for signing in with a passkey: any passkey at the first step, the
/// account's own at the second. Not under the per-address quota: every sign-in page
/// asks for one (a hospital's users behind one address would spend it twice), it
/// checks nothing, and a transaction keeps one challenge, the latest.
#[post("/login/passkey/options")]
async fn sign_in_options(form: Form<TxForm>, Visit { state, req, .. }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let (id, csrf) = (&form.tx, Some(form.csrf.as_str()));
    let Ok(tx) = at_stages(&state, &req, id, csrf, &SIGN_IN_STAGES).await? else {
        return Err(PageError(AppError::NotFound));
    };
    let options = passkey::challenge(&state, &tx).await?;
    Ok(options_json(&options))
}

#[post("/login/passkey")]
async fn submit(form: Form<AnswerForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let (id, csrf) = (&form.tx, Some(form.csrf.as_str()));
    let mut tx = match at_stages(&state, &req, id, csrf, &SIGN_IN_STAGES).await? {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    state.guard.rate_limit(ctx.client_ip)?;
    let first_step = tx.stage == Stage::Password;
    let tr = spoken(&req);
    let refused = async |tx: &LoginTransaction, message: String| -> Answer {
        let status = StatusCode::UNAUTHORIZED;
        match first_step {
            true => Ok(login_again(&state, &tr, tx, Some(&message), status).await),
            false => otp_again(&state, &tr, tx, &message, status).await,
        }
    };
    let (user, method) = match passkey::sign_in(&state, &ctx, &tx, &form.credential).await? {
        Outcome::SignedIn { user, method } => (user, method),
        Outcome::Failure => {
            tracing::info!(request_id = %ctx.request_id, "passkey sign-in refused");
            let message = match first_step {
                true => tr.t("sign-in-failed"),
                false => tr.t("passkey-could-not-be-used"),
            };
            return refused(&tx, message).await;
        }
        Outcome::Locked => return refused(&tx, tr.t("sign-in-locked")).await,
        Outcome::IpBlocked { retry_after } => {
            return Err(AppError::TooManyRequests {
                retry_after_secs: retry_after.as_secs(),
            }
            .into());
        }
    };
    let step = match first_step {
        true => Step::Passkey {
            user_id: user.id.clone(),
            at: state.clock.now().timestamp(),
            method,
            must_change_password: user.must_change_password,
        },
        false => Step::PasskeyFactor(method),
    };
    tx.take(step).map_err(out_of_order)?;
    tracing::info!(request_id = %ctx.request_id, user_id = %user.id, "passkey accepted");
    advance(&state, &req, &ctx, tx).await
}

#[derive(Template)]
#[template(path = "passkey_enrol.html")]
struct EnrolPage<'a> {
    tr: &'a Tr,
    tx: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

fn enrol_again(
    tr: &Tr,
    tx: &LoginTransaction,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    render(
        &EnrolPage {
            tr,
            tx: &tx.id,
            csrf: &tx.csrf,
            error,
        },
        status,
    )
}

#[get("/login/passkey-enrol")]
async fn enrol_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    match at_stage(&state, &req, &id, None, Stage::EnrolPasskey).await? {
        Ok(tx) => Ok(enrol_again(&spoken(&req), &tx, None, StatusCode::OK)),
        Err(res) => Ok(res),
    }
}

async fn transaction_user(
    state: &AppState,
    tx: &LoginTransaction,
) -> Result<users::UserRow, AppError> {
    let user_id = tx.user_id.clone().unwrap_or_default();
    let pii = state.pii.clone();
    state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
        .await?
        .ok_or(AppError::NotFound)
}

#[post("/login/passkey-enrol/options")]
async fn enrol_options(form: Form<TxForm>, Visit { state, req, .. }: Visit) -> Answer {
    let form = form.into_inner();
    let tx = match at_stage(
        &state,
        &req,
        &form.tx,
        Some(&form.csrf),
        Stage::EnrolPasskey,
    )
    .await?
    {
        Ok(tx) => tx,
        Err(_) => return Err(PageError(AppError::NotFound)),
    };
    check_same_origin(&req, &state.config.issuer)?;
    let user = transaction_user(&state, &tx).await?;
    let to = EnrolmentFor::Transaction(&tx.id);
    let options = passkey::begin_registration(&state, &user, to).await?;
    Ok(options_json(&options))
}

#[post("/login/passkey-enrol")]
async fn enrol_submit(form: Form<AnswerForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let mut tx = match at_stage(
        &state,
        &req,
        &form.tx,
        Some(&form.csrf),
        Stage::EnrolPasskey,
    )
    .await?
    {
        Ok(tx) => tx,
        Err(res) => return Ok(res),
    };
    let tr = spoken(&req);
    let again = |why: String| enrol_again(&tr, &tx, Some(&why), StatusCode::BAD_REQUEST);
    let name = match PasskeyName::parse(&form.name) {
        Ok(name) => name,
        Err(_) => return Ok(again(passkey_name_problem(&form.name, &tr))),
    };
    let user = transaction_user(&state, &tx).await?;
    let to = EnrolmentFor::Transaction(&tx.id);
    let (added, codes) =
        match passkey::finish_registration(&state, &ctx, &user, to, &name, &form.credential).await?
        {
            Registration::Added {
                passkey,
                recovery_codes,
            } => (passkey, recovery_codes),
            Registration::Refused(why) => return Ok(again(passkey_refusal(why, &tr))),
            Registration::Expired => return Ok(again(tr.t("passkey-setup-timed-out"))),
        };
    tx.take(Step::PasskeyEnrolled(passkey::method(&added)))
        .map_err(out_of_order)?;
    let Some(codes) = codes else {
        return advance(&state, &req, &ctx, tx).await;
    };
    // The way back if every passkey is lost: shown once, before going on.
    show_codes(&state, &tr, &tx, codes).await
}
