//! The patient picker of a standalone launch (SMART App Launch 2.2 §2.0.7): an app that
//! asks for `launch/patient` on behalf of a user who is not a patient (a practitioner)
//! gets the patient the user chooses here.
//!
//! The search goes to the app's FHIR server (`Patient?name=…`) with a backend-services
//! token of Gatehouse's own: `sub` and `client_id` [`PICKER_CLIENT`], `system/Patient.rs`,
//! for that server only, a minute long. Only a patient the last search showed can be
//! chosen, and only by the user the sign-in was for, in the same session; the choice is
//! kept with the request in the ephemeral store, and taken once.

use std::time::Duration;

use actix_web::{
    HttpResponse, get,
    http::StatusCode,
    post,
    web::{Form, Query},
};
use askama::Template;
use openidconnect::http;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    auth::upstream::fetch,
    auth::{random_token, session::SsoSession},
    domain::FhirId,
    i18n::Tr,
    oidc::{
        authorize::{AuthorizeRequest, issue_code},
        discovery::issuer,
        held,
        jwt::{ACCESS_TOKEN_TYPE, AccessClaims},
    },
    pages::account::{signed_in, signed_in_form},
    startup::AppState,
    store::clients,
    web::{
        error::AppError,
        pages::{PageError, message, render},
        visit::{Answer, Visit, spoken},
    },
};

/// The subject and client of Gatehouse's own search tokens.
pub const PICKER_CLIENT: &str = "urn:gatehouse:patient-picker";
/// How long a pick waits for its user.
const PICK_TTL: Duration = Duration::from_secs(600);
/// Most patients one search shows.
const MAX_RESULTS: usize = 20;
/// How long Gatehouse's search token lives.
const SEARCH_TOKEN_SECS: i64 = 60;

/// A request waiting for its patient.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    request: AuthorizeRequest,
    /// The patients the last search showed: the only ones that can be chosen.
    #[serde(default)]
    offered: Vec<String>,
}

/// What picks are held under in the ephemeral store.
const HELD: &str = "smart-pick";

/// Keeps `request` for the user of `session` to choose its patient; the path of the
/// picker page.
pub async fn start(
    state: &AppState,
    request: AuthorizeRequest,
    session: &SsoSession,
) -> Result<String, AppError> {
    let pending = Pending {
        request,
        offered: Vec::new(),
    };
    let pick = held::hold(state, HELD, &pending, session, PICK_TTL).await?;
    Ok(format!("/smart/patient?pick={pick}"))
}

fn gone(tr: &Tr) -> HttpResponse {
    message(
        tr,
        StatusCode::BAD_REQUEST,
        &tr.t("pick-expired"),
        &tr.t("pick-expired-text"),
        None,
    )
}

/// A patient as the picker shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientSummary {
    pub id: String,
    pub name: String,
    pub birth_date: String,
    pub identifier: String,
}

#[derive(Template)]
#[template(path = "smart_patient.html")]
struct PickerPage<'a> {
    tr: &'a Tr,
    app: &'a str,
    server: &'a str,
    pick: &'a str,
    csrf: &'a str,
    name: &'a str,
    searched: bool,
    patients: Vec<PatientSummary>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct PickQuery {
    #[serde(default)]
    pick: String,
    #[serde(default)]
    name: String,
}

/// `GET /smart/patient`: the search form, and the patients a search found.
#[get("/smart/patient")]
pub async fn picker_page(query: Query<PickQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let Some((session, _)) = signed_in(&state, &req).await? else {
        return Ok(gone(&spoken(&req)));
    };
    let tr = spoken(&req);
    let Some(mut pending) = held::find::<Pending>(&state, HELD, &query.pick, &session).await?
    else {
        return Ok(gone(&tr));
    };
    let audience = pending.request.audience.clone().unwrap_or_default();
    let client_id = pending.request.client_id.clone();
    let app = state
        .store
        .run(move |c| clients::find(c, &client_id))
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let name = query.name.trim();
    let (mut patients, mut error, mut status) = (Vec::new(), None, StatusCode::OK);
    let searched = !name.is_empty();
    if searched {
        if !(2..=100).contains(&name.chars().count()) || name.chars().any(char::is_control) {
            error = Some(tr.t("pick-name-length"));
            status = StatusCode::BAD_REQUEST;
        } else {
            match search(&state, &audience, name).await {
                Ok(found) => patients = found,
                Err(why) => {
                    tracing::warn!(fhir_server = %audience, error = %why, "patient search failed");
                    error = Some(tr.t("pick-search-failed"));
                    status = StatusCode::BAD_GATEWAY;
                }
            }
        }
        pending.offered = patients.iter().map(|p| p.id.clone()).collect();
        held::keep(&state, HELD, &query.pick, &pending, &session, PICK_TTL).await?;
    }
    let page = PickerPage {
        tr: &tr,
        app: &app,
        server: &audience,
        pick: &query.pick,
        csrf: &session.csrf,
        name,
        searched: searched && error.is_none(),
        patients,
        error,
    };
    Ok(render(&page, status))
}

#[derive(Deserialize)]
struct ChooseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pick: String,
    #[serde(default)]
    patient: String,
}

/// `POST /smart/patient`: the patient chosen; the app gets its code.
#[post("/smart/patient")]
pub async fn choose(form: Form<ChooseForm>, Visit { state, req, ctx }: Visit) -> Answer {
    let form = form.into_inner();
    let Some((session, _)) = signed_in_form(&state, &req, &form.csrf).await? else {
        return Ok(gone(&spoken(&req)));
    };
    let tr = spoken(&req);
    let Some(pending) = held::find::<Pending>(&state, HELD, &form.pick, &session).await? else {
        return Ok(gone(&tr));
    };
    if !pending.offered.contains(&form.patient) {
        return Err(PageError(AppError::BadRequest(tr.t("pick-from-results"))));
    }
    // Taken once: a second submission finds nothing.
    if held::take::<Pending>(&state, HELD, &form.pick, &session)
        .await?
        .is_none()
    {
        return Ok(gone(&tr));
    }
    let mut request = pending.request;
    request.patient = Some(form.patient);
    Ok(issue_code(&state, &ctx, request, &session, true).await?)
}

/// Gatehouse's own token for searching the FHIR server at `audience`.
fn search_token(state: &AppState, audience: &str) -> String {
    let now = state.clock.now().timestamp();
    let claims = AccessClaims {
        iss: issuer(state),
        sub: PICKER_CLIENT.to_owned(),
        aud: audience.to_owned(),
        client_id: PICKER_CLIENT.to_owned(),
        exp: now + SEARCH_TOKEN_SECS,
        iat: now,
        jti: random_token(),
        scope: "system/Patient.rs".to_owned(),
        gid: None,
        auth_time: None,
        acr: None,
        amr: None,
        sid: None,
        org: None,
        cnf: None,
        emergency: None,
        patient: None,
        encounter: None,
        fhir_user: None,
    };
    let value = serde_json::to_value(&claims).expect("claims serialise");
    state.keys.current().sign_jwt(ACCESS_TOKEN_TYPE, &value)
}

/// `Patient?name=…` on the FHIR server at `audience`: at most [`MAX_RESULTS`] patients.
pub async fn search(
    state: &AppState,
    audience: &str,
    name: &str,
) -> Result<Vec<PatientSummary>, String> {
    let mut url = url::Url::parse(&format!("{audience}/Patient")).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("name", name)
        .append_pair("_count", &MAX_RESULTS.to_string());
    let headers = [
        (http::header::ACCEPT, "application/fhir+json".to_owned()),
        (
            http::header::AUTHORIZATION,
            format!("Bearer {}", search_token(state, audience)),
        ),
    ];
    // Bounded, no redirects: see `fetch::Fetcher`.
    let body = fetch::get(url.as_str(), &headers)
        .await
        .map_err(|why| format!("the search failed: {why}"))?;
    let bundle: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    Ok(patients_of(&bundle))
}

/// The patients of a search Bundle, each with a valid id; anything else is skipped.
pub fn patients_of(bundle: &Value) -> Vec<PatientSummary> {
    let text = |v: Option<&Value>, max: usize| -> String {
        v.and_then(Value::as_str)
            .map(|s| s.chars().filter(|c| !c.is_control()).take(max).collect())
            .unwrap_or_default()
    };
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .filter_map(|r| {
            let id = FhirId::parse(r.get("id")?.as_str()?).ok()?;
            let first_name = r.get("name").and_then(|n| n.get(0));
            let name = match first_name.and_then(|n| n.get("text")) {
                Some(t) => text(Some(t), 200),
                None => {
                    let given: Vec<String> = first_name
                        .and_then(|n| n.get("given"))
                        .and_then(Value::as_array)
                        .map(|g| g.iter().map(|v| text(Some(v), 60)).collect())
                        .unwrap_or_default();
                    let family = text(first_name.and_then(|n| n.get("family")), 100);
                    format!("{} {family}", given.join(" ")).trim().to_owned()
                }
            };
            Some(PatientSummary {
                id: id.as_str().to_owned(),
                name,
                birth_date: text(r.get("birthDate"), 10),
                identifier: text(
                    r.get("identifier")
                        .and_then(|i| i.get(0))
                        .and_then(|i| i.get("value")),
                    64,
                ),
            })
        })
        .take(MAX_RESULTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_search_bundle_gives_its_patients_and_drops_what_is_not_one() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-1",
                          "name": [{"given": ["Ana", "María"], "family": "López"}],
                          "birthDate": "1980-02-03",
                          "identifier": [{"system": "urn:mrn", "value": "MRN-1"}]}},
            {"resource": {"resourceType": "Patient", "id": "p-2", "name": [{"text": "Bo Chen"}]}},
            {"resource": {"resourceType": "Patient", "id": "bad id"}},
            {"resource": {"resourceType": "Observation", "id": "o-1"}},
            {"resource": {"resourceType": "Patient"}},
            "junk",
        ]});
        let found = patients_of(&bundle);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "Ana María López");
        assert_eq!(found[0].birth_date, "1980-02-03");
        assert_eq!(found[0].identifier, "MRN-1");
        assert_eq!(found[1].name, "Bo Chen");
        assert!(patients_of(&json!({"entry": 5})).is_empty());
        assert!(patients_of(&json!([])).is_empty());
    }
}
