//! `/userinfo` (OIDC Core §5.3), GET or POST, with a bearer access token (RFC 6750) or
//! a DPoP-bound one and its proof (RFC 9449 §7).

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::header, web};
use serde_json::{Map, Value, json};

use super::{
    OAuthError,
    cors::{self, Whose},
    dpop::{self, Presented},
    jwt::AccessClaims,
    no_store_json,
};
use crate::{
    auth::emergency::{ACR_EMERGENCY, open_window_in},
    domain::UserStatus,
    startup::AppState,
    store::{grants, orgs},
};

/// Where the token is: the Authorization header (Bearer or DPoP), or the form body.
fn presented(req: &HttpRequest, body: &[u8]) -> Result<Presented, OAuthError> {
    let from_header = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            Some(
                dpop::authorization(v)
                    .ok_or_else(|| OAuthError::invalid_request("use the Bearer or DPoP scheme"))?,
            )
        }
        None => None,
    };
    // RFC 6750 §2.2: a form body may carry a bearer token instead, never both.
    let from_body = if req.method() == actix_web::http::Method::POST && !body.is_empty() {
        super::form_params(req, body)?
            .single()?
            .get("access_token")
            .map(|t| Presented::Bearer(t.to_owned()))
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("send the token once")),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(OAuthError {
            // RFC 6750 §3.1: no error code when no credentials were sent at all; RFC
            // 9449 §7.1: both schemes are offered.
            error_description: None,
            challenge: Some(dpop::challenge_without_credentials()),
            ..OAuthError::invalid_token("")
        }),
    }
}

/// `/userinfo`; a browser app at an origin the token's client allows may read the
/// answer (an origin some client allows may read why a token was refused). Every
/// answer carries a DPoP nonce, for a client asked to use one.
pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let verified = match presented(&req, &body) {
        Ok(token) => dpop::access_token(&state, &req, "/userinfo", token).await,
        Err(e) => Err(e),
    };
    let client_id = verified.as_ref().ok().map(|c| c.client_id.clone());
    let answer = match verified {
        Ok(claims) => describe(&state, claims).await,
        Err(e) => Err(e),
    };
    let mut res = answer.unwrap_or_else(|e| e.error_response());
    dpop::add_nonce(&state, &req, &mut res);
    let whose = match &client_id {
        Some(id) => Whose::Client(id),
        None => Whose::AnyClient,
    };
    cors::for_client(&state, &req, whose, res).await
}

/// What the verified access token may see of its user.
async fn describe(state: &AppState, claims: AccessClaims) -> Result<HttpResponse, OAuthError> {
    // A client_credentials token has no user to describe.
    let Some(gid) = claims.gid.clone() else {
        return Err(OAuthError::invalid_token(
            "the access token does not stand for a user",
        ));
    };
    let now = state.clock.now().naive_utc();
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| {
            let found = grants::live_with_user(c, &pii, &gid)?;
            let org = match &found {
                Some((_, Some(user))) => orgs::find_by_id(c, &user.org_id)?.map(|o| o.name),
                _ => None,
            };
            let emergency = match &found {
                Some((grant, _)) => open_window_in(c, grant.emergency_id.as_deref(), now)?,
                None => None,
            };
            Ok(found.map(|f| (f, org, emergency)))
        })
        .await?;
    let Some(((grant, Some(user)), org, emergency)) = found else {
        return Err(OAuthError::invalid_token(
            "the access token is no longer valid",
        ));
    };
    if user.status() != UserStatus::Active || user.id != claims.sub {
        return Err(OAuthError::invalid_token(
            "the access token is no longer valid",
        ));
    }
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(OAuthError {
            status: actix_web::http::StatusCode::FORBIDDEN,
            ..OAuthError::new("insufficient_scope", "the openid scope is required")
        });
    }
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    // Issue 20 item 9: which organisation (tenant) the user belongs to.
    if let Some(org) = org {
        out.insert("org".into(), json!(org));
    }
    // DESIGN §15: while the emergency window the grant was made under is open, and only
    // then (the window may end before the access token does).
    if let Some(window) = emergency {
        out.insert("acr".into(), json!(ACR_EMERGENCY));
        out.insert("emergency".into(), window.claim());
    }
    if scopes.contains(&"profile") {
        out.insert("preferred_username".into(), json!(user.username));
        if let Some(name) = &user.display_name {
            out.insert("name".into(), json!(name));
        }
    }
    if scopes.contains(&"email") {
        out.insert("email".into(), json!(user.email));
    }
    // DESIGN §18: the user's FHIR resource on the SMART app's FHIR server.
    if let Some(fhir_user) = grant.fhir_user.filter(|_| scopes.contains(&"fhirUser")) {
        out.insert("fhirUser".into(), json!(fhir_user));
    }
    Ok(no_store_json(&Value::Object(out)))
}
