//! SMART on FHIR App Launch 2.2 (DESIGN §18) on top of the OpenID Provider.
//!
//! A FHIR server is registered as a resource server (`admin::service::fhir_servers`); an
//! app names it with `aud` (or RFC 8707 `resource`) at `/authorize`, and the access token
//! it then gets is for that server alone (`aud` = its base URL). What this module adds to
//! the provider's endpoints:
//!
//! - the FHIR server a request names, checked against its registration ([`audience`]);
//! - `POST /smart/launch`, where an EHR registers a launch context and gets the
//!   single-use `launch` value an app brings to `/authorize`, and the [`Context`] the
//!   token response carries ([`launch`]);
//! - the patient picker of a standalone launch ([`picker`]);
//! - `/.well-known/smart-configuration` ([`configuration`]).

pub mod configuration;
pub mod launch;
pub mod picker;

use actix_web::{http::Method, web};
use serde::{Deserialize, Serialize};

pub use launch::{Context, EhrLaunch};

use super::{OAuthError, cors};
use crate::{
    domain::{
        FhirBaseUrl, FhirUserRef, LaunchContext, SmartScope, covered_by, is_clinical, is_smart_word,
    },
    startup::AppState,
    store::fhir_servers::{self, FhirServerRow},
    web::error::AppError,
};

/// The scope an EHR's access token needs to register launch contexts at
/// `POST /smart/launch`; a client has it only when registered with it.
pub const LAUNCHER_SCOPE: &str = "gatehouse:smart_launch";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/smart/launch").route(web::post().to(launch::register)))
        .service(picker::picker_page)
        .service(picker::choose)
        .service(
            web::resource("/.well-known/smart-configuration")
                .route(web::get().to(configuration::configuration))
                .route(web::method(Method::OPTIONS).to(cors::public_preflight)),
        );
}

/// RFC 8707 §2's error for a resource that is not one: the same answer for a server
/// that is not registered and one the client may not reach, so the registrations cannot
/// be probed through it.
fn invalid_target(description: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_target", description)
}

/// `aud` (SMART) or `resource` (RFC 8707) as sent: one FHIR base URL, the same in both
/// when both are sent.
pub fn named_audience(
    aud: Option<&str>,
    resource: Option<&str>,
) -> Result<Option<FhirBaseUrl>, OAuthError> {
    let parse = |name: &str, raw: &str| {
        FhirBaseUrl::parse(raw).map_err(|e| invalid_target(format!("{name}: {e}")))
    };
    match (aud, resource) {
        (None, None) => Ok(None),
        (Some(one), None) => parse("aud", one).map(Some),
        (None, Some(one)) => parse("resource", one).map(Some),
        (Some(aud), Some(resource)) => {
            let (aud, resource) = (parse("aud", aud)?, parse("resource", resource)?);
            if aud != resource {
                return Err(invalid_target("aud and resource name different servers"));
            }
            Ok(Some(aud))
        }
    }
}

/// The FHIR server at `base_url`, if it is registered, open to `client_id`, and accepts
/// every clinical scope of `scope` (by its `allowed_scopes`, as a client registration
/// admits them: a registered `patient/*.rs` accepts `patient/Observation.r`).
pub async fn audience(
    state: &AppState,
    client_id: &str,
    base_url: &FhirBaseUrl,
    scope: &[String],
) -> Result<Result<FhirServerRow, OAuthError>, AppError> {
    let url = base_url.as_str().to_owned();
    let found = state
        .store
        .run(move |c| fhir_servers::by_base_url(c, &url))
        .await?
        .filter(|s| s.clients().iter().any(|c| c == client_id));
    let Some(server) = found else {
        return Ok(Err(invalid_target(format!(
            "{} is not a FHIR server this client may have tokens for",
            base_url.as_str()
        ))));
    };
    let accepted = server.scopes();
    let refused = scope
        .iter()
        .find(|s| is_clinical(s) && !covered_by(&accepted, s));
    if let Some(s) = refused {
        return Ok(Err(OAuthError::new(
            "invalid_scope",
            format!("scope {s} is not accepted by the FHIR server"),
        )));
    }
    Ok(Ok(server))
}

/// Whether `scope` holds a clinical scope or one of SMART's own (`launch`,
/// `launch/patient`, `fhirUser`, …): then the request is a SMART app's, and must name
/// its FHIR server.
pub fn asks_smart(scope: &[String]) -> bool {
    scope
        .iter()
        .any(|s| s != "online_access" && (is_smart_word(s) || is_clinical(s)))
}

/// What a SMART grant carries besides its scopes, from the code to the grant to each of
/// its tokens: the FHIR server, the launch context, and the user's `fhirUser` there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartGrant {
    /// The FHIR server's base URL: the access tokens' `aud`.
    pub audience: String,
    #[serde(default)]
    pub context: Context,
    /// The user's FHIR resource on that server, as an absolute URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}

impl SmartGrant {
    /// As a grant row keeps it (`audience`, `launch_context`, `fhir_user`); None for a
    /// grant that is not a SMART app's.
    pub fn from_columns(
        audience: Option<&str>,
        context: Option<&str>,
        fhir_user: Option<&str>,
    ) -> Option<Self> {
        Some(Self {
            audience: audience?.to_owned(),
            context: context
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
            fhir_user: fhir_user.map(str::to_owned),
        })
    }

    /// The launch context as the `launch_context` column keeps it; None when empty.
    pub fn context_column(&self) -> Option<String> {
        (!self.context.is_empty())
            .then(|| serde_json::to_string(&self.context).ok())
            .flatten()
    }
}

/// Whether `scope` holds `wanted` as SMART reads it.
fn has(scope: &[String], wanted: &SmartScope) -> bool {
    scope
        .iter()
        .any(|s| SmartScope::parse(s).is_ok_and(|s| s == *wanted))
}

/// What a code for a SMART app can carry.
pub enum Granted {
    Grant(SmartGrant),
    /// A standalone launch asked for a patient, and the user must choose one.
    PickPatient,
    /// Why no code can be issued, for the app's `access_denied`.
    Refused(&'static str),
}

/// The SMART grant a code for `user_id` carries, for a request that named the FHIR
/// server at `audience`: the EHR launch's context (only for the user it was registered
/// for); in a standalone launch that asks `launch/patient`, the patient the user is, or
/// the one they `picked` (a user with a FHIR identity that is not a patient chooses).
pub async fn grant_for(
    state: &AppState,
    audience: &str,
    launch: Option<&EhrLaunch>,
    picked: Option<&str>,
    scope: &[String],
    user_id: &str,
) -> Result<Granted, AppError> {
    if launch.is_some_and(|l| l.user_id != user_id) {
        return Ok(Granted::Refused(
            "the launch was registered for another user",
        ));
    }
    let (user, base) = (user_id.to_owned(), audience.to_owned());
    let reference = state
        .store
        .run(move |c| fhir_servers::user_reference_at(c, &user, &base))
        .await?
        .and_then(|r| FhirUserRef::parse(&r).ok());
    let base = FhirBaseUrl::parse(audience).map_err(|e| AppError::Internal(e.0))?;
    let mut context = launch.map(|l| l.context.clone()).unwrap_or_default();
    let standalone_patient = has(scope, &SmartScope::LaunchContext(LaunchContext::Patient));
    if standalone_patient && context.patient.is_none() {
        // The picker searches every patient of the server: for practitioners only. A
        // related person or a person would see patients who are not theirs.
        let practitioner = reference
            .as_ref()
            .is_some_and(|r| r.resource_type() == "Practitioner");
        context.patient = match (reference.as_ref(), picked) {
            (Some(me), _) if me.patient().is_some() => me.patient().map(|p| p.as_str().to_owned()),
            (Some(_), Some(picked)) if practitioner => Some(picked.to_owned()),
            (Some(_), None) if practitioner => return Ok(Granted::PickPatient),
            (Some(_), _) => {
                return Ok(Granted::Refused(
                    "only a patient or a practitioner can have a patient put in context",
                ));
            }
            (None, _) => {
                return Ok(Granted::Refused(
                    "choosing a patient needs a FHIR identity on the server; ask an administrator",
                ));
            }
        };
    }
    Ok(Granted::Grant(SmartGrant {
        audience: audience.to_owned(),
        context,
        fhir_user: reference.map(|r| r.url_at(&base)),
    }))
}
