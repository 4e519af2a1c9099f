//! Breaking the glass from the account page (DESIGN §15): a designated user, signed in
//! with a second factor, gives a reason and the session is raised at once; the window
//! can be ended early from the same page.

use actix_web::{
    get,
    http::StatusCode,
    post,
    web::{self, Form},
};
use serde::Deserialize;

use super::{RESUME, signed_in, signed_in_form};
use crate::{
    auth::{
        emergency::{self, Raise, Refusal},
        session::{ACR_MFA, SsoSession},
        transaction::Resume,
    },
    i18n::Tr,
    pages::{
        emergency_refusal,
        login::{EmergencyPage, bounded, check_emergency, see_other, start_sign_in},
    },
    startup::AppState,
    web::{
        error::AppError,
        pages::render,
        visit::{Answer, Visit, spoken},
    },
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(emergency_page)
        .service(emergency_submit)
        .service(emergency_end);
}

#[derive(Deserialize)]
struct RaiseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    csrf: String,
}

fn status_of(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::NotDesignated | Refusal::NoSecondFactor | Refusal::Inactive => {
            StatusCode::FORBIDDEN
        }
        Refusal::AlreadyOpen(_) => StatusCode::CONFLICT,
        Refusal::BadReason(_) | Refusal::BadContext => StatusCode::BAD_REQUEST,
    }
}

async fn page(
    state: &AppState,
    tr: &Tr,
    current: &SsoSession,
    reason: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<actix_web::HttpResponse, AppError> {
    let designated = emergency::is_designated(state, &current.user_id).await?;
    let org_id = current.org_id.clone();
    let window_minutes = state
        .store
        .run(move |c| crate::store::orgs::find_by_id(c, &org_id))
        .await?
        .map_or(60, |o| o.policy().emergency_window_minutes);
    let window_minutes = usize::try_from(window_minutes).unwrap_or_default();
    // Said before anything is typed: the form alone will not do without a second factor.
    let no_mfa = emergency_refusal(&Refusal::NoSecondFactor, "", tr);
    let error = error.or((designated && current.acr() != ACR_MFA).then_some(no_mfa.as_str()));
    Ok(render(
        &EmergencyPage {
            tr,
            action: "/account/emergency",
            tx: None,
            csrf: &current.csrf,
            designated,
            requested_by: None,
            offered: &[],
            reason,
            context: None,
            window_minutes,
            error,
        },
        status,
    ))
}

#[get("/account/emergency")]
async fn emergency_page(Visit { state, req, .. }: Visit) -> Answer {
    let Some((current, _)) = signed_in(&state, &req).await? else {
        return Ok(start_sign_in(&state, &req, Resume::to(RESUME)).await?);
    };
    Ok(page(&state, &spoken(&req), &current, "", None, StatusCode::OK).await?)
}

#[post("/account/emergency")]
async fn emergency_submit(form: Form<RaiseForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let Some((current, _)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    let tr = spoken(&req);
    let designated = emergency::is_designated(&state, &current.user_id).await?;
    let choice = match check_emergency(designated, &[], &form.reason, None) {
        Ok(choice) => choice,
        Err((refusal, status)) => {
            emergency::record_refusal(&state, &ctx, &current.user_id, &current.org_id, &refusal)
                .await?;
            let message = emergency_refusal(&refusal, &form.reason, &tr);
            let shown = bounded(&form.reason);
            return Ok(page(&state, &tr, &current, shown, Some(&message), status).await?);
        }
    };
    let raised = emergency::raise(
        &state,
        &ctx,
        &current,
        Raise {
            reason: &choice.reason,
            context: None,
            offered: &[],
            requested_by: None,
        },
    )
    .await?;
    match raised {
        Ok(_) => Ok(see_other("/account?emergency=opened")),
        Err(refusal) => {
            let message = emergency_refusal(&refusal, &form.reason, &tr);
            let shown = bounded(&form.reason);
            let status = status_of(&refusal);
            Ok(page(&state, &tr, &current, shown, Some(&message), status).await?)
        }
    }
}

#[post("/account/emergency/end")]
async fn emergency_end(form: Form<EndForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let Some((current, _)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(see_other("/account"));
    };
    emergency::end_own(&state, &ctx, &current).await?;
    Ok(see_other("/account?emergency=ended"))
}
