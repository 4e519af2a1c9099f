//! The account page's second factor (DESIGN §6): enrol, see how many recovery codes
//! are left and make new ones, turn it off with password and current code.

use actix_web::{
    HttpResponse, get,
    http::StatusCode,
    post,
    web::{self, Form},
};
use askama::Template;
use serde::Deserialize;

use super::{signed_in, signed_in_form};
use crate::web::visit::{Answer, Visit, spoken};
use crate::{
    auth::{
        guard::{self, Credential, Verdict, password_attempt},
        session,
        totp::{self, Confirmation, EnrolmentFor, SecondFactor},
        transaction::Resume,
    },
    domain::Password,
    i18n::Tr,
    pages::login::{EnrolPage, RecoveryCodesPage, see_other, start_sign_in},
    startup::AppState,
    store::users::UserRow,
    web::{error::AppError, pages::render},
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(totp_page)
        .service(totp_confirm)
        .service(totp_remove)
        .service(totp_recovery_codes);
}

#[derive(Template)]
#[template(path = "totp_manage.html")]
struct TotpManagePage<'a> {
    tr: &'a Tr,
    csrf: &'a str,
    username: &'a str,
    recovery_left: i64,
    error: Option<&'a str>,
}

async fn render_totp(
    state: &AppState,
    tr: &Tr,
    current: &session::SsoSession,
    user: &UserRow,
    error: Option<&str>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    if totp::is_enrolled(state, &user.id).await? {
        let id = user.id.clone();
        let recovery_left = state
            .store
            .run(move |c| crate::store::totp::unused_recovery_codes(c, &id))
            .await?;
        return Ok(render(
            &TotpManagePage {
                tr,
                csrf: &current.csrf,
                username: &user.username,
                recovery_left,
                error,
            },
            status,
        ));
    }
    let to = EnrolmentFor::Session(&current.handle);
    let view = totp::enrolment(state, &user.id, &user.username, to).await?;
    Ok(render(
        &EnrolPage {
            tr,
            action: "/account/totp",
            tx: None,
            csrf: &current.csrf,
            qr: &view.qr_png_base64,
            secret: &view.secret_base32,
            required: false,
            error,
        },
        status,
    ))
}

#[get("/account/totp")]
async fn totp_page(Visit { state, req, .. }: Visit) -> Answer {
    let Some((current, user)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(super::RESUME)).await?);
    };
    Ok(render_totp(&state, &spoken(&req), &current, &user, None, StatusCode::OK).await?)
}

#[derive(Deserialize)]
struct TotpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

#[post("/account/totp")]
async fn totp_confirm(form: Form<TotpForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    state.guard.rate_limit(ctx.client_ip)?;
    let code = match SecondFactor::parse(&form.code) {
        Ok(SecondFactor::Totp(code)) => code,
        _ => String::new(),
    };
    let to = EnrolmentFor::Session(&current.handle);
    let tr = spoken(&req);
    let message = match totp::confirm(&state, &ctx, &user.id, to, &code).await? {
        Confirmation::Enrolled(codes) => Ok(codes),
        Confirmation::WrongCode => Err(tr.t("wrong-code")),
        Confirmation::Expired => Err(tr.t("enrol-expired")),
    };
    let codes = match message {
        Ok(codes) => codes,
        Err(message) => {
            let status = StatusCode::BAD_REQUEST;
            let error = Some(message.as_str());
            return Ok(render_totp(&state, &tr, &current, &user, error, status).await?);
        }
    };
    Ok(render(
        &RecoveryCodesPage {
            tr: &tr,
            tx: None,
            csrf: &current.csrf,
            codes,
        },
        StatusCode::OK,
    ))
}

#[post("/account/totp/recovery-codes")]
async fn totp_recovery_codes(form: Form<TotpForm>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    if !totp::is_enrolled(&state, &user.id).await? {
        return Ok(see_other("/account/totp"));
    }
    let codes = totp::regenerate_recovery_codes(&state, &user.id).await?;
    Ok(render(
        &RecoveryCodesPage {
            tr: &spoken(&req),
            tx: None,
            csrf: &current.csrf,
            codes,
        },
        StatusCode::OK,
    ))
}

/// DESIGN §6: the user removes their own second factor with password and current code.
#[post("/account/totp/remove")]
async fn totp_remove(form: Form<TotpForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let Some((current, user)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    state.guard.rate_limit(ctx.client_ip)?;
    let password_ok = match Password::parse(form.password) {
        Ok(p) => matches!(
            password_attempt(&state, &ctx, &user.username, p).await?,
            Verdict::Success(_)
        ),
        Err(_) => false,
    };
    // The code is a guess like the password: counted by the same guard (DESIGN §5).
    let code = Credential::SecondFactor(SecondFactor::parse(&form.code).ok());
    let code_ok = password_ok
        && matches!(
            guard::attempt(&state, &ctx, &user.username, code).await?,
            Verdict::Success(ref u) if u.id == user.id
        );
    if !code_ok {
        let tr = spoken(&req);
        let message = tr.t("password-or-code-wrong");
        return Ok(render_totp(
            &state,
            &tr,
            &current,
            &user,
            Some(&message),
            StatusCode::BAD_REQUEST,
        )
        .await?);
    }
    totp::remove_own(&state, &ctx, &user).await?;
    Ok(see_other("/account?totp_removed=1"))
}
