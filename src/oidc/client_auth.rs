//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `private_key_jwt`,
//! and `none` for public clients. A client uses exactly the method it registered.

use actix_web::{HttpRequest, http::header};
use base64::{Engine, engine::general_purpose::STANDARD};

use super::{
    OAuthError, Params,
    clients::{AUTH_BASIC, AUTH_NONE, AUTH_POST},
};
use crate::{
    auth::{same_secret, token_hash},
    startup::AppState,
    store::clients::{self, ClientRow},
    web::RequestContext,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

enum Presented {
    Secret {
        client_id: String,
        secret: String,
        method: &'static str,
    },
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
    Public {
        client_id: String,
    },
    /// Nothing: no credentials and no `client_id`.
    Nothing,
}

fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(bad());
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both halves are form-urlencoded before joining.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Ok(Some((
        decode(id).ok_or_else(bad)?,
        decode(secret).ok_or_else(bad)?,
    )))
}

/// The client a token-endpoint request claims to come from (form `client_id` or Basic
/// user name), authenticated or not: whose allowed origins decide CORS.
pub fn claimed_client_id(req: &HttpRequest, body: &[u8]) -> Option<String> {
    if let Ok(Some((id, _))) = basic_credentials(req) {
        return Some(id);
    }
    Params::parse(body)
        .ok()?
        .get("client_id")
        .map(str::to_owned)
}

fn presented(req: &HttpRequest, params: &Params) -> Result<Presented, OAuthError> {
    let basic = basic_credentials(req)?;
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    let form_id = params.get("client_id").map(str::to_owned);
    if let Some((client_id, secret)) = basic {
        if form_id.as_ref().is_some_and(|f| *f != client_id) {
            return Err(OAuthError::invalid_request("client_id does not match"));
        }
        return Ok(Presented::Secret {
            client_id,
            secret,
            method: AUTH_BASIC,
        });
    }
    if let Some(secret) = post_secret {
        let client_id =
            form_id.ok_or_else(|| OAuthError::invalid_client("client_id is missing"))?;
        return Ok(Presented::Secret {
            client_id,
            secret: secret.to_owned(),
            method: AUTH_POST,
        });
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request(
                "unsupported client_assertion_type",
            ));
        }
        return Ok(Presented::Assertion {
            client_id: form_id,
            assertion: assertion.to_owned(),
        });
    }
    match form_id {
        Some(client_id) => Ok(Presented::Public { client_id }),
        None => Ok(Presented::Nothing),
    }
}

/// The public client a refresh request without `client_id` is for: the client of the
/// refresh token's grant, spent or not (a replay must still reach the grant, to end its
/// family), when that client is public. A public client has no secret to present: its
/// refresh token is its credential either way (RFC 6749 §6 asks authentication of
/// confidential clients only), and SMART's JavaScript client refreshes so by default.
pub async fn refreshing_public_client(
    state: &AppState,
    params: &Params,
) -> Result<Option<ClientRow>, OAuthError> {
    if params.get("grant_type") != Some(super::clients::GRANT_REFRESH) {
        return Ok(None);
    }
    let Some(token) = params.get("refresh_token").filter(|t| t.len() <= 64) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    let client_id = state
        .store
        .run(move |c| crate::store::grants::refresh_token_client(c, &hash))
        .await?;
    Ok(match client_id {
        Some(id) => find(state, &id).await?.filter(ClientRow::is_public),
        None => None,
    })
}

/// The client a token-endpoint request is from, for CORS: the one it names, or the
/// public client a refresh without `client_id` is for.
pub async fn cors_client_id(state: &AppState, req: &HttpRequest, body: &[u8]) -> Option<String> {
    if let Some(id) = claimed_client_id(req, body) {
        return Some(id);
    }
    let params = Params::parse(body).ok()?;
    refreshing_public_client(state, &params)
        .await
        .ok()
        .flatten()
        .map(|c| c.client_id)
}

/// The client `client_id` names, from the short-lived cache when it is there.
pub async fn find(state: &AppState, client_id: &str) -> Result<Option<ClientRow>, OAuthError> {
    if client_id.len() > 128 {
        return Ok(None);
    }
    if let Some(row) = state.clients.get(client_id) {
        return Ok(Some(row));
    }
    let id = client_id.to_owned();
    let read_at = std::time::Instant::now();
    let row = state.store.run(move |c| clients::find(c, &id)).await?;
    if let Some(row) = &row {
        state.clients.put(row.clone(), read_at);
    }
    Ok(row)
}

/// The client this request authenticates as, or 401 `invalid_client`. Failures (never
/// successes: many services share one address) count against the per-IP quota, so
/// guessing turns into `429` quickly.
pub async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    params: &Params,
) -> Result<ClientRow, OAuthError> {
    match authenticate_once(state, req, params).await {
        Err(e) if e.error == "invalid_client" => {
            tracing::warn!(request_id = %ctx.request_id, "client authentication failed");
            if let Err(crate::auth::guard::GuardError::RateLimited { retry_after }) =
                state.guard.rate_limit(ctx.client_ip)
            {
                return Err(OAuthError {
                    status: actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                    challenge: None,
                    retry_after: Some(retry_after.as_secs().max(1)),
                    ..OAuthError::invalid_client("too many failed attempts; try again later")
                });
            }
            Err(challenge_only_for_basic(req, e))
        }
        other => other,
    }
}

/// RFC 6749 §5.2: the `Basic` challenge answers a client that used the `Authorization`
/// header. One that authenticated in the body (an assertion, `client_secret_post`, a
/// public client's `client_id`) gets none: client libraries read a challenge before the
/// body (openid-client, oauth4webapi), and the `error_description` never reached them.
fn challenge_only_for_basic(req: &HttpRequest, e: OAuthError) -> OAuthError {
    if req.headers().contains_key(header::AUTHORIZATION) {
        e
    } else {
        OAuthError {
            challenge: None,
            ..e
        }
    }
}

async fn authenticate_once(
    state: &AppState,
    req: &HttpRequest,
    params: &Params,
) -> Result<ClientRow, OAuthError> {
    let refused = || OAuthError::invalid_client("client authentication failed");
    match presented(req, params)? {
        Presented::Secret {
            client_id,
            secret,
            method,
        } => {
            let client = find(state, &client_id).await?;
            // Hash even for an unknown client, so timing says nothing about which ids exist.
            let presented = token_hash(&secret);
            let Some(client) = client else {
                return Err(refused());
            };
            let stored = client.secret_hash.as_deref().unwrap_or("");
            if client.token_endpoint_auth_method != method || !same_secret(&presented, stored) {
                return Err(refused());
            }
            Ok(client)
        }
        Presented::Public { client_id } => {
            let client = find(state, &client_id).await?.ok_or_else(refused)?;
            if client.token_endpoint_auth_method != AUTH_NONE {
                return Err(refused());
            }
            Ok(client)
        }
        Presented::Assertion {
            client_id,
            assertion,
        } => super::client_assertion::verify(state, client_id, &assertion).await,
        Presented::Nothing => refreshing_public_client(state, params)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("client authentication is required")),
    }
}
