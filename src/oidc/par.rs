//! Pushed authorization requests (RFC 9126): the client posts its authorization request to
//! `/par`, authenticated as at `/token`, and sends the browser to `/authorize` with only
//! its `client_id` and the `request_uri` it got back. The request never passes through
//! the browser, so nobody on the way can read or change it, and it is checked before the
//! user sees a page.
//!
//! A pushed request is validated here as `/authorize` would validate it, stored under a
//! hash of its URI for [`PUSHED_LIFETIME_SECS`], and taken, once, by `/authorize`; from
//! there the login transaction carries it, so the minute covers only the way from the
//! push to the browser's arrival, not the sign-in.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    OAuthError, Params,
    authorize::{self, Validated},
    client_auth, dpop, form_params, request_object,
};
use crate::{
    auth::{random_token, token_hash},
    startup::AppState,
    store::clients::ClientRow,
    web::{RequestContext, error::AppError},
};

/// RFC 9126 §2.2: the URN namespace of pushed requests' URIs.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request waits for the browser (FAPI 2.0: less than 600 s).
pub const PUSHED_LIFETIME_SECS: i64 = 60;

/// A pushed request as stored: whose it is, what it asks, and until when (by the
/// application's clock; the store's own expiry is a backstop).
#[derive(Debug, Serialize, Deserialize)]
struct Pushed {
    client_id: String,
    request: Validated,
    expires_at: i64,
}

fn key(request_uri: &str) -> String {
    format!("par:{}", token_hash(request_uri))
}

/// `POST /par`. An answer to a push with a DPoP proof carries a fresh `DPoP-Nonce`, as
/// the token endpoint's do.
pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> HttpResponse {
    let mut res = push_request(&state, &req, &ctx, &body)
        .await
        .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
    dpop::add_nonce(&state, &req, &mut res);
    res
}

async fn push_request(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(req, body)?.single()?;
    let client = client_auth::authenticate(state, req, ctx, &params).await?;
    let mut request = pushed_request(state, &params, &client).await?;
    // RFC 9449 §10.1: a DPoP proof sent with the push binds the code to its key.
    if let Some(proof) = dpop::from_client(state, req, &client, "/par")
        .await
        .map_err(dpop::ProofError::at_token_endpoint)?
    {
        request.bind_dpop(proof.jkt)?;
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
    let pushed = Pushed {
        client_id: client.client_id.clone(),
        request,
        expires_at: state.clock.now().timestamp() + PUSHED_LIFETIME_SECS,
    };
    let raw = serde_json::to_vec(&pushed).map_err(|e| AppError::Internal(e.to_string()))?;
    let ttl = Duration::from_secs(PUSHED_LIFETIME_SECS.unsigned_abs());
    state.ephemeral.set(&key(&request_uri), &raw, ttl).await?;
    tracing::info!(request_id = %ctx.request_id, client_id = %client.client_id, "authorization request pushed");
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({ "request_uri": request_uri, "expires_in": PUSHED_LIFETIME_SECS })))
}

/// The pushed parameters, or those of the request object among them, validated as an
/// authorization request of `client` (RFC 9126 §2.1). Every refusal is a JSON answer to
/// the client, never a redirect: no browser is here to follow one.
async fn pushed_request(
    state: &AppState,
    params: &Params,
    client: &ClientRow,
) -> Result<Validated, OAuthError> {
    // RFC 9126 §2.1: a pushed request cannot point at another.
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request_uri cannot be pushed: push the authorization request itself",
        ));
    }
    let inner;
    let asked = match params.get("request") {
        Some(object) => {
            let issuer = super::discovery::issuer(state);
            let now = state.clock.now();
            inner =
                request_object::verify(object, client, &state.client_keys, &issuer, now).await?;
            &inner
        }
        None => params,
    };
    if asked
        .get("client_id")
        .is_some_and(|id| id != client.client_id)
    {
        return Err(OAuthError::invalid_request(
            "client_id is not the client that authenticated",
        ));
    }
    let redirect_uri = asked.require("redirect_uri")?;
    if !client.redirect_uri_registered(redirect_uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    authorize::validate(asked, client)
}

/// Why a `request_uri` brought to `/authorize` cannot be used: shown to the person, since
/// with no trusted request there is no trusted return address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error(
        "The sign-in request is unknown, or was already used. Go back to the application and start again."
    )]
    Gone,
    #[error("The sign-in request has expired. Go back to the application and start again.")]
    Expired,
    #[error("The sign-in request was made by another application.")]
    OtherClient,
}

/// The pushed request `request_uri` names, taken so it is never used twice (RFC 9126 §4),
/// if `client_id` pushed it and it has not expired. Taken first and checked after: a
/// request URI presented by another client is spent, since it has leaked.
pub async fn take(
    state: &AppState,
    request_uri: &str,
    client_id: &str,
) -> Result<Result<Validated, Unusable>, AppError> {
    let Some(raw) = state.ephemeral.take(&key(request_uri)).await? else {
        return Ok(Err(Unusable::Gone));
    };
    let pushed: Pushed = serde_json::from_slice(&raw)
        .map_err(|e| AppError::Internal(format!("pushed request: {e}")))?;
    if pushed.client_id != client_id {
        return Ok(Err(Unusable::OtherClient));
    }
    if pushed.expires_at <= state.clock.now().timestamp() {
        return Ok(Err(Unusable::Expired));
    }
    Ok(Ok(pushed.request))
}
