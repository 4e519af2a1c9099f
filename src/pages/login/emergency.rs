//! The emergency stage of a sign-in (DESIGN §15): when the relying party asked for
//! emergency access, the person, through every other stage, gives a reason (and picks
//! one of the contexts the relying party offered) or goes on without it. The session
//! is raised when the sign-in finishes (`sign_in::finish`).

use actix_web::{
    get,
    http::StatusCode,
    post,
    web::{self, Form, Query},
};
use askama::Template;
use serde::Deserialize;

use super::{
    TxQuery, advance, csrf_refused, expired, out_of_order, owned_transaction, see_other,
    stage_location, tx_tr,
};
use crate::web::visit::{Answer, Visit, browser_tr};
use crate::{
    auth::{
        emergency::{self, Refusal},
        same_secret,
        transaction::{EmergencyChoice, LoginTransaction, Stage, Step},
    },
    domain::{ContextLabel, EmergencyReason},
    i18n::Tr,
    pages::emergency_refusal,
    startup::AppState,
    web::{
        error::AppError,
        pages::{check_same_origin, render},
    },
};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(emergency_page).service(emergency_submit);
}

#[derive(Template)]
#[template(path = "emergency.html")]
pub(crate) struct EmergencyPage<'a> {
    pub tr: &'a Tr,
    /// Where the form goes: this stage, or the account page's own form.
    pub action: &'a str,
    pub tx: Option<&'a str>,
    pub csrf: &'a str,
    pub designated: bool,
    pub requested_by: Option<&'a str>,
    pub offered: &'a [String],
    pub reason: &'a str,
    pub context: Option<&'a str>,
    pub window_minutes: usize,
    pub error: Option<&'a str>,
}

#[derive(Deserialize)]
struct EmergencyForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    /// `raise` or `decline`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    context: Option<String>,
}

/// Whether the transaction's user is designated, their organisation's window length, and
/// its id.
async fn standing(
    state: &AppState,
    tx: &LoginTransaction,
) -> Result<(bool, usize, String), AppError> {
    let user_id = tx.user_id.clone().unwrap_or_default();
    let designated = emergency::is_designated(state, &user_id).await?;
    let pii = state.pii.clone();
    let org = state
        .store
        .run(move |c| crate::store::users::find_with_org(c, &pii, &user_id))
        .await?
        .1;
    let minutes = usize::try_from(org.policy().emergency_window_minutes).unwrap_or_default();
    Ok((designated, minutes, org.id))
}

#[get("/login/emergency")]
async fn emergency_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    let Some(tx) = owned_transaction(&state, &req, &id).await? else {
        return Ok(expired(&browser_tr(&req)));
    };
    if tx.stage != Stage::Emergency {
        return Ok(see_other(&stage_location(&tx)));
    }
    let (designated, window_minutes, _) = standing(&state, &tx).await?;
    let ask = tx.emergency.clone().unwrap_or_default();
    Ok(render(
        &EmergencyPage {
            tr: &tx_tr(&req, &tx),
            action: "/login/emergency",
            tx: Some(&tx.id),
            csrf: &tx.csrf,
            designated,
            requested_by: ask.requested_by.as_deref(),
            offered: &ask.offered,
            reason: "",
            context: None,
            window_minutes,
            error: None,
        },
        StatusCode::OK,
    ))
}

#[post("/login/emergency")]
async fn emergency_submit(form: Form<EmergencyForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let Some(mut tx) = owned_transaction(&state, &req, &form.tx).await? else {
        return Ok(expired(&browser_tr(&req)));
    };
    let tr = tx_tr(&req, &tx);
    if !same_secret(&form.csrf, &tx.csrf) {
        return Err(csrf_refused(&tr));
    }
    if tx.stage != Stage::Emergency {
        return Ok(see_other(&stage_location(&tx)));
    }
    let choice = match form.action.as_str() {
        "decline" => None,
        "raise" => {
            let (designated, window_minutes, org_id) = standing(&state, &tx).await?;
            let ask = tx.emergency.clone().unwrap_or_default();
            let checked = check(
                designated,
                &ask.offered,
                &form.reason,
                form.context.as_deref(),
            );
            match checked {
                Ok(choice) => Some(choice),
                Err((refusal, status)) => {
                    let user_id = tx.user_id.as_deref().unwrap_or_default();
                    emergency::record_refusal(&state, &ctx, user_id, &org_id, &refusal).await?;
                    let message = emergency_refusal(&refusal, &form.reason, &tr);
                    return Ok(render(
                        &EmergencyPage {
                            tr: &tr,
                            action: "/login/emergency",
                            tx: Some(&tx.id),
                            csrf: &tx.csrf,
                            designated,
                            requested_by: ask.requested_by.as_deref(),
                            offered: &ask.offered,
                            reason: bounded(&form.reason),
                            context: form.context.as_deref(),
                            window_minutes,
                            error: Some(&message),
                        },
                        status,
                    ));
                }
            }
        }
        _ => return Err(AppError::BadRequest(tr.t("choose-an-action")).into()),
    };
    tx.take(Step::EmergencyDecided(choice))
        .map_err(out_of_order)?;
    advance(&state, &req, &ctx, tx).await
}

/// What the form must hold to break the glass: a designated user, a reason within
/// bounds, and one of the offered contexts when there are any.
pub(crate) fn check(
    designated: bool,
    offered: &[String],
    reason: &str,
    context: Option<&str>,
) -> Result<EmergencyChoice, (Refusal, StatusCode)> {
    if !designated {
        return Err((Refusal::NotDesignated, StatusCode::FORBIDDEN));
    }
    let reason = EmergencyReason::parse(reason).map_err(|e| {
        let mut text = e.0;
        if let Some(first) = text.get(..1) {
            text = first.to_uppercase() + &text[1..];
        }
        (
            Refusal::BadReason(format!("{text}.")),
            StatusCode::BAD_REQUEST,
        )
    })?;
    let context = match (offered.is_empty(), context.filter(|c| !c.is_empty())) {
        (true, _) => None,
        (false, Some(picked)) => match ContextLabel::parse(picked) {
            Ok(label) if offered.iter().any(|o| o == label.as_str()) => {
                Some(label.as_str().to_owned())
            }
            _ => return Err((Refusal::BadContext, StatusCode::BAD_REQUEST)),
        },
        (false, None) => return Err((Refusal::BadContext, StatusCode::BAD_REQUEST)),
    };
    Ok(EmergencyChoice {
        reason: reason.as_str().to_owned(),
        context,
    })
}

/// A refused reason is shown back for correction, but never more of it than the field
/// takes.
pub(crate) fn bounded(text: &str) -> &str {
    match text.char_indices().nth(EmergencyReason::MAX_CHARS + 100) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
