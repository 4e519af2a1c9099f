//! The EHR launch (SMART App Launch 2.2 §2.0.3): an EHR, signed in as its user through
//! Gatehouse, registers what the app is launched with (`POST /smart/launch`) and gets a
//! `launch` value to put in the app's launch URL. The app brings it to `/authorize`,
//! where it is taken (single use) and must be for that app; the code is issued only to
//! the same user, and the token response then carries the context ([`Context`]).
//!
//! A `launch` is a random 256-bit value kept as a hash in the ephemeral store for five
//! minutes: long enough for an app to start, short enough that one left in a log or a
//! browser history is useless soon after.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{LAUNCHER_SCOPE, OAuthError, audience, named_audience};
use crate::{
    audit::{AuditEvent, EventType},
    auth::{random_token, token_hash},
    domain::{FhirBaseUrl, FhirId, SmartScope},
    oidc::{dpop, no_store_json},
    startup::AppState,
    store::{clients, grants},
    web::{RequestContext, error::AppError},
};

/// How long a registered launch waits for its app.
pub const LAUNCH_TTL: Duration = Duration::from_secs(300);
/// Largest `POST /smart/launch` body accepted.
const MAX_BODY: usize = 16 * 1024;
/// Most `fhirContext` entries one launch may carry.
const MAX_FHIR_CONTEXT: usize = 16;

/// The launch context of a SMART token response (App Launch 2.2 §2.0.8): what the app
/// was launched with, or asked for in a standalone launch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(rename = "fhirContext", default, skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A registered EHR launch, kept under the hash of its `launch` value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EhrLaunch {
    /// The app it launches: only this client may bring it to `/authorize`.
    pub client_id: String,
    /// The user signed in to the EHR: the code is issued to nobody else.
    pub user_id: String,
    /// The FHIR server it is for, when the EHR named one; `aud` must then be it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub context: Context,
    /// The EHR's client id.
    pub launched_by: String,
}

fn launch_key(launch: &str) -> String {
    format!("smart-launch:{}", token_hash(launch))
}

/// What an EHR sends to `POST /smart/launch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    client_id: String,
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default)]
    encounter: Option<String>,
    #[serde(rename = "fhirContext", default)]
    fhir_context: Vec<Value>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    need_patient_banner: Option<bool>,
    #[serde(default)]
    smart_style_url: Option<String>,
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(description)
}

/// A short printable text (`intent`, a `fhirContext` role).
fn short_text(name: &str, raw: &str) -> Result<String, OAuthError> {
    if raw.is_empty() || raw.len() > 256 || raw.chars().any(char::is_control) {
        return Err(invalid(format!("{name} is 1 to 256 printable characters")));
    }
    Ok(raw.to_owned())
}

/// One `fhirContext` entry (App Launch 2.2 §2.0.8.1): an object with a `reference`
/// (`Type/id`), a `canonical` or an `identifier`, and optionally a `role` (a URI).
fn context_entry(entry: &Value) -> Result<Value, OAuthError> {
    let refused = || {
        invalid(
            "each fhirContext entry is an object with reference (Type/id), canonical or \
             identifier, and optionally role",
        )
    };
    let object = entry.as_object().ok_or_else(refused)?;
    let mut out = serde_json::Map::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("reference", Value::String(r)) => {
                let (kind, id) = r.split_once('/').ok_or_else(refused)?;
                let kind_ok = kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && kind.len() <= 64
                    && kind.chars().all(|c| c.is_ascii_alphanumeric());
                if !kind_ok || FhirId::parse(id).is_err() {
                    return Err(refused());
                }
            }
            ("canonical" | "role", Value::String(s)) => {
                short_text(key, s)?;
            }
            ("identifier", Value::Object(_)) => {
                if value.to_string().len() > 1024 {
                    return Err(refused());
                }
            }
            _ => return Err(refused()),
        }
        out.insert(key.clone(), value.clone());
    }
    if !["reference", "canonical", "identifier"]
        .iter()
        .any(|k| out.contains_key(*k))
    {
        return Err(refused());
    }
    Ok(Value::Object(out))
}

/// `smart_style_url`: an https URL (http on loopback), as a FHIR base URL is spelled.
fn style_url(raw: &str) -> Result<String, OAuthError> {
    FhirBaseUrl::parse(raw)
        .map(|u| u.as_str().to_owned())
        .map_err(|_| invalid("smart_style_url is an https URL without query or fragment"))
}

impl Registration {
    fn context(&self) -> Result<Context, OAuthError> {
        let id = |name: &str, raw: &Option<String>| {
            raw.as_deref()
                .map(|r| {
                    FhirId::parse(r)
                        .map(|i| i.as_str().to_owned())
                        .map_err(|e| invalid(format!("{name}: {e}")))
                })
                .transpose()
        };
        if self.fhir_context.len() > MAX_FHIR_CONTEXT {
            return Err(invalid("at most 16 fhirContext entries"));
        }
        Ok(Context {
            patient: id("patient", &self.patient)?,
            encounter: id("encounter", &self.encounter)?,
            fhir_context: self
                .fhir_context
                .iter()
                .map(context_entry)
                .collect::<Result<_, _>>()?,
            intent: self
                .intent
                .as_deref()
                .map(|i| short_text("intent", i))
                .transpose()?,
            need_patient_banner: self.need_patient_banner,
            smart_style_url: self.smart_style_url.as_deref().map(style_url).transpose()?,
        })
    }
}

/// `POST /smart/launch`: a JSON [`Registration`], with the EHR user's access token (its
/// client registered with [`LAUNCHER_SCOPE`]); answers `201` with the `launch` value.
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(dpop::authorization)
        .ok_or_else(|| OAuthError {
            error_description: None,
            challenge: Some(dpop::challenge_without_credentials()),
            ..OAuthError::invalid_token("")
        })?;
    let claims = dpop::access_token(&state, &req, "/smart/launch", presented).await?;
    if !claims.scope.split(' ').any(|s| s == LAUNCHER_SCOPE) {
        return Err(OAuthError {
            status: actix_web::http::StatusCode::FORBIDDEN,
            ..OAuthError::new(
                "insufficient_scope",
                format!("registering a launch needs the {LAUNCHER_SCOPE} scope"),
            )
        });
    }
    let user_id = launching_user(&state, claims.gid.clone(), &claims.sub).await?;
    let registration = parse_body(&req, &body)?;
    let context = registration.context()?;
    let app_id = registration.client_id.clone();
    let app = state
        .store
        .run(move |c| clients::find(c, &app_id))
        .await?
        .filter(|app| app.allows_scope("launch"))
        .ok_or_else(|| invalid("client_id is not an app registered for the SMART launch scope"))?;
    let audience_url = named_audience(registration.aud.as_deref(), None)?;
    if let Some(url) = &audience_url {
        audience(&state, &app.client_id, url, &[]).await??;
    }
    let launch = random_token();
    let stored = EhrLaunch {
        client_id: app.client_id.clone(),
        user_id: user_id.clone(),
        audience: audience_url.map(|u| u.as_str().to_owned()),
        context,
        launched_by: claims.client_id.clone(),
    };
    let raw = serde_json::to_vec(&stored).map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .ephemeral
        .set(&launch_key(&launch), &raw, LAUNCH_TTL)
        .await?;
    let event = AuditEvent::success(EventType::SmartLaunchCreated, &ctx)
        .actor(&user_id)
        .detail("client_id", app.client_id.as_str())
        .detail("launched_by", claims.client_id.as_str());
    state.audit.record(event).await?;
    let mut res = no_store_json(&json!({
        "launch": launch,
        "expires_in": LAUNCH_TTL.as_secs(),
    }));
    *res.status_mut() = actix_web::http::StatusCode::CREATED;
    Ok(res)
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<Registration, OAuthError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(invalid("the body must be application/json"));
    }
    if body.len() > MAX_BODY {
        return Err(invalid("the body is longer than 16 KiB"));
    }
    serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not a launch: {e}")))
}

/// The user an EHR's access token stands for, while its grant is live and the user
/// active.
async fn launching_user(
    state: &AppState,
    grant_id: Option<String>,
    sub: &str,
) -> Result<String, OAuthError> {
    let gone = || OAuthError::invalid_token("the access token does not stand for a signed-in user");
    let gid = grant_id.ok_or_else(gone)?;
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| grants::live_with_user(c, &pii, &gid))
        .await?;
    match found {
        Some((_, Some(user)))
            if user.id == sub && user.status() == crate::domain::UserStatus::Active =>
        {
            Ok(user.id)
        }
        _ => Err(gone()),
    }
}

/// Takes the launch `launch` names for `client_id` (single use: a second presentation
/// finds nothing). A launch registered for another app is spent all the same, so a
/// launch value leaked to the wrong app cannot then be used by the right one either.
pub async fn take(
    state: &AppState,
    launch: &str,
    client_id: &str,
) -> Result<Result<EhrLaunch, &'static str>, AppError> {
    if launch.is_empty() || launch.len() > 128 {
        return Ok(Err("the launch value is not valid"));
    }
    let Some(raw) = state.ephemeral.take(&launch_key(launch)).await? else {
        return Ok(Err("the launch is unknown, expired or already used"));
    };
    let found: EhrLaunch =
        serde_json::from_slice(&raw).map_err(|e| AppError::Internal(e.to_string()))?;
    if found.client_id != client_id {
        return Ok(Err("the launch was registered for another app"));
    }
    Ok(Ok(found))
}

/// Whether `scope` asks for the EHR launch context (`launch`).
pub fn asks_ehr_launch(scope: &[String]) -> bool {
    scope
        .iter()
        .any(|s| matches!(SmartScope::parse(s), Ok(SmartScope::Launch)))
}
