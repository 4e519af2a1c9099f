//! Consent (DESIGN §18): a client registered with `ask_consent` (a patient-facing app)
//! gets only the scopes the person allows. They are asked, in plain words, the first
//! time and whenever the app asks for more than they were asked before; they may
//! withhold any scope but `openid` and `launch`, or deny the app altogether. The
//! decision is remembered per user and client, and withdrawn on the account page.
//!
//! Other clients are registered by an administrator, and the registration is the
//! consent (an EHR-embedded or in-house app), as before.

use std::time::Duration;

use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use askama::Template;
use serde::Deserialize;

use super::{
    authorize::{AuthorizeRequest, issue_code, refuse},
    held,
};
use crate::{
    audit::{AuditEvent, EventType},
    auth::session::SsoSession,
    domain::consent::{may_withhold, remembered},
    i18n::Tr,
    pages::{
        account::{signed_in, signed_in_form},
        scope_words,
    },
    startup::AppState,
    store::{clients::ClientRow, consents},
    web::{
        error::AppError,
        pages::{message, render},
        visit::{Answer, Visit, spoken},
    },
};

/// How long a question waits for its answer.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// The scopes `client` may have of `requested` for `user_id`: all of them when it need
/// not ask; what the person allowed, when they were asked about all of these before;
/// None when they must be asked.
pub async fn decided(
    state: &AppState,
    client: &ClientRow,
    user_id: &str,
    requested: &[String],
) -> Result<Option<Vec<String>>, AppError> {
    if !client.ask_consent {
        return Ok(Some(requested.to_vec()));
    }
    let (user, id) = (user_id.to_owned(), client.client_id.clone());
    let found = state
        .store
        .run(move |c| consents::find(c, &user, &id))
        .await?;
    Ok(found.and_then(|f| remembered(&f.asked(), &f.granted(), requested)))
}

/// What questions are held under in the ephemeral store.
const HELD: &str = "consent";

/// Holds `request` for the person of `session` to answer; the path of the question.
pub async fn ask(
    state: &AppState,
    request: AuthorizeRequest,
    session: &SsoSession,
) -> Result<String, AppError> {
    let id = held::hold(state, HELD, &request, session, PENDING_TTL).await?;
    Ok(format!("/consent?c={id}"))
}

fn gone(tr: &Tr) -> HttpResponse {
    message(
        tr,
        StatusCode::BAD_REQUEST,
        &tr.t("consent-expired"),
        &tr.t("consent-expired-text"),
        None,
    )
}

struct ScopeLine {
    scope: String,
    words: String,
    required: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    tr: &'a Tr,
    app: &'a str,
    csrf: &'a str,
    pending: &'a str,
    scopes: Vec<ScopeLine>,
}

#[derive(Deserialize)]
struct PendingQuery {
    #[serde(default)]
    c: String,
}

/// `GET /consent`: the question.
#[get("/consent")]
pub async fn consent_page(
    query: web::Query<PendingQuery>,
    Visit { state, req, .. }: Visit,
) -> Answer {
    let Some((session, _)) = signed_in(&state, &req).await? else {
        return Ok(gone(&spoken(&req)));
    };
    let tr = spoken(&req);
    let Some(request) = held::find::<AuthorizeRequest>(&state, HELD, &query.c, &session).await?
    else {
        return Ok(gone(&tr));
    };
    let id = request.client_id.clone();
    let app = state
        .store
        .run(move |c| crate::store::clients::find(c, &id))
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let scopes = request
        .scope
        .iter()
        .map(|s| ScopeLine {
            words: scope_words(s, &tr),
            required: !may_withhold(s),
            scope: s.clone(),
        })
        .collect();
    let page = ConsentPage {
        tr: &tr,
        app: &app,
        csrf: &session.csrf,
        pending: &query.c,
        scopes,
    };
    Ok(render(&page, StatusCode::OK))
}

/// `POST /consent`: the answer. The form repeats `scope`, so it is read as pairs.
#[post("/consent")]
pub async fn answer(body: web::Bytes, Visit { state, req, ctx }: Visit) -> Answer {
    if body.len() > 16 * 1024 {
        return Err(AppError::BadRequest(spoken(&req).t("form-too-large")).into());
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let one = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let Some((session, _)) = signed_in_form(&state, &req, one("csrf")).await? else {
        return Ok(gone(&spoken(&req)));
    };
    let Some(mut request) =
        held::take::<AuthorizeRequest>(&state, HELD, one("c"), &session).await?
    else {
        return Ok(gone(&spoken(&req)));
    };
    if one("decision") != "allow" {
        return Ok(refuse(
            &state,
            &request,
            "access_denied",
            "the user denied the app",
            true,
        ));
    }
    let chosen: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let asked = request.scope.clone();
    let granted: Vec<String> = asked
        .iter()
        .filter(|s| chosen.contains(&s.as_str()) || !may_withhold(s))
        .cloned()
        .collect();
    let (user, client, now) = (
        session.user_id.clone(),
        request.client_id.clone(),
        state.clock.now().naive_utc(),
    );
    let withheld: Vec<&String> = asked.iter().filter(|s| !granted.contains(s)).collect();
    let event = AuditEvent::success(EventType::ConsentGiven, &ctx)
        .about(&session.user_id, &session.org_id)
        .detail("client_id", request.client_id.as_str())
        .detail("scope", granted.join(" "))
        .detail(
            "withheld",
            withheld
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
    let kept = granted.clone();
    state
        .store
        .transaction(move |c| consents::save(c, &user, &client, &asked, &kept, now))
        .await?;
    state.audit.record(event).await?;
    request.scope = granted;
    // Answered: `prompt=consent` is satisfied.
    request.prompt_consent = false;
    Ok(issue_code(&state, &ctx, request, &session, true).await?)
}
