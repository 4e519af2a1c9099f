//! `/.well-known/smart-configuration` (SMART App Launch 2.2 §2.1): where a SMART app
//! finds the endpoints, and what Gatehouse can do, as the spec's capability words.
//!
//! A FHIR server registered with Gatehouse serves this document at its own base URL
//! (`{base}/.well-known/smart-configuration`, by proxying or copying this one): it is
//! the same for every server, since every server's tokens come from this issuer.

use actix_web::{HttpResponse, http::header, web};
use serde_json::json;

use crate::{crypto::jose::CLIENT_ALGORITHMS, oidc::discovery::issuer, startup::AppState};

/// What works, in SMART's words (App Launch 2.2 §2.1.2.1); nothing is listed before the
/// tests drive it.
pub const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-passthrough-banner",
    "context-passthrough-style",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
    "authorize-post",
];

/// The scopes an app may ask for, besides clinical ones: SMART's own and OpenID
/// Connect's. (Clinical scopes are whatever the FHIR server and client are registered
/// with.)
const SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "email",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "user/*.rs",
    "system/*.rs",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
];

/// The document; public, as OpenID discovery is.
pub async fn configuration(state: web::Data<AppState>) -> HttpResponse {
    let base = issuer(&state);
    let at = |path: &str| format!("{base}{path}");
    let algorithms: Vec<String> = CLIENT_ALGORITHMS.iter().map(|a| format!("{a:?}")).collect();
    let doc = json!({
        "issuer": base,
        "jwks_uri": at("/jwks"),
        "authorization_endpoint": at("/authorize"),
        "token_endpoint": at("/token"),
        "introspection_endpoint": at("/introspect"),
        "revocation_endpoint": at("/revoke"),
        "userinfo_endpoint": at("/userinfo"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": SCOPES,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "capabilities": CAPABILITIES,
    });
    crate::oidc::cors::public(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .json(doc),
    )
}
