//! The doors of the token endpoints: `/token` (authorization_code, refresh_token,
//! client_credentials), `/revoke` (RFC 7009) and `/introspect` (RFC 7662). Each parses
//! the form, authenticates the client and calls one function of `oidc::grant`; `/token`
//! also checks the request's DPoP proof (`oidc::dpop`), whose key the tokens are bound to.

use actix_web::{HttpRequest, HttpResponse, ResponseError, post, web};
use serde_json::json;

use super::{
    OAuthError, Params, client_auth,
    clients::{GRANT_CLIENT_CREDENTIALS, GRANT_CODE, GRANT_REFRESH},
    cors, dpop, form_params,
    grant::{self, TokenRequest},
    no_store_json,
};
use crate::{startup::AppState, web::RequestContext};

/// Kept here for the admin API, which accepts the same access tokens.
pub use super::grant::access_token_holder;

/// `POST /token`; a browser app at an origin its client allows may read the answer.
/// Every answer to a request with a DPoP proof carries a fresh DPoP nonce (RFC 9449
/// §8), so a client asked for one has it at hand for its retry, and one that uses them
/// always has a current one (see `dpop::add_nonce` for why no other answer does).
pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> HttpResponse {
    let mut answer = token(&state, &req, &ctx, &body)
        .await
        .unwrap_or_else(|e| e.error_response());
    dpop::add_nonce(&state, &req, &mut answer);
    with_client_cors(&state, &req, &body, Ok(answer)).await
}

/// The answer (or the error) with CORS headers for the origin of the client the form
/// names, if that client allows it.
async fn with_client_cors(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    answer: Result<HttpResponse, OAuthError>,
) -> HttpResponse {
    let res = answer.unwrap_or_else(|e| e.error_response());
    // Server-side clients send no Origin: no second look at the form for them.
    if !req.headers().contains_key(actix_web::http::header::ORIGIN) {
        return res;
    }
    let claimed = client_auth::cors_client_id(state, req, body).await;
    let whose = match &claimed {
        Some(id) => cors::Whose::Client(id),
        None => cors::Whose::Nobody,
    };
    cors::for_client(state, req, whose, res).await
}

async fn token(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(req, body)?.single()?;
    let client = client_auth::authenticate(state, req, ctx, &params).await?;
    let request = token_request(&params)?;
    let proof = dpop::at_token_endpoint(state, req, &client)
        .await
        .map_err(dpop::ProofError::at_token_endpoint)?;
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let issued = grant::issue(state, ctx, &client, request, jkt).await?;
    Ok(no_store_json(&issued))
}

fn token_request(params: &Params) -> Result<TokenRequest<'_>, OAuthError> {
    Ok(match params.require("grant_type")? {
        GRANT_CODE => TokenRequest::AuthorizationCode {
            code: params.get("code"),
            redirect_uri: params.get("redirect_uri"),
            code_verifier: params.get("code_verifier"),
        },
        GRANT_REFRESH => TokenRequest::RefreshToken {
            refresh_token: params.get("refresh_token"),
            scope: params.get("scope"),
        },
        GRANT_CLIENT_CREDENTIALS => {
            TokenRequest::ClientCredentials(grant::client_credentials::Asked {
                scope: params.get("scope"),
                resource: params.get("resource"),
                aud: params.get("aud"),
            })
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type is not supported",
            ));
        }
    })
}

/// `POST /revoke` (RFC 7009); CORS as at `/token`.
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> HttpResponse {
    let answer = revoke_token(&state, &req, &ctx, &body).await;
    with_client_cors(&state, &req, &body, answer).await
}

async fn revoke_token(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(req, body)?.single()?;
    let client = client_auth::authenticate(state, req, ctx, &params).await?;
    let token = params.require("token")?;
    grant::revocation::revoke(state, ctx, &client, token).await?;
    Ok(no_store_json(&json!({})))
}

#[post("/introspect")]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?.single()?;
    let client = client_auth::authenticate(&state, &req, &ctx, &params).await?;
    if client.is_public() {
        return Err(OAuthError::invalid_client(
            "public clients cannot introspect",
        ));
    }
    let token = params.require("token")?;
    let answer = grant::introspection::introspect(&state, &client, token).await?;
    Ok(no_store_json(&answer))
}
