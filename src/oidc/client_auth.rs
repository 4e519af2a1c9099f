//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `private_key_jwt`,
//! and `none` for public clients. A client uses exactly the method it registered.

use std::time::Duration;

use actix_web::{HttpRequest, http::header};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use openidconnect::{JsonWebKey, core::CoreJwsSigningAlgorithm};
use serde_json::Value;

use super::{
    OAuthError, Params,
    clients::{AUTH_BASIC, AUTH_NONE, AUTH_POST, AUTH_PRIVATE_KEY_JWT},
};
use crate::{
    auth::{same_secret, token_hash},
    startup::AppState,
    store::clients::{self, ClientRow},
    web::RequestContext,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest life accepted for a client assertion; they are meant to be used at once.
const MAX_ASSERTION_LIFE_SECS: i64 = 600;

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
        None => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
    }
}

async fn find(state: &AppState, client_id: &str) -> Result<Option<ClientRow>, OAuthError> {
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
            Err(e)
        }
        other => other,
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
        } => verify_assertion(state, client_id, &assertion).await,
    }
}

/// Whether the assertion's first `signed_len` bytes carry `signature` by one of the
/// client's registered keys (the one `kid` names, if it names one), under an asymmetric
/// algorithm: never `none`, never HMAC (the JWKS is public).
fn signed_by_client(
    client: &ClientRow,
    header: &Value,
    assertion: &str,
    signed_len: usize,
    signature: &[u8],
) -> bool {
    let Some(alg) = header
        .get("alg")
        .cloned()
        .and_then(|a| serde_json::from_value::<CoreJwsSigningAlgorithm>(a).ok())
    else {
        return false;
    };
    if matches!(
        alg,
        CoreJwsSigningAlgorithm::None
            | CoreJwsSigningAlgorithm::HmacSha256
            | CoreJwsSigningAlgorithm::HmacSha384
            | CoreJwsSigningAlgorithm::HmacSha512
    ) {
        return false;
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let Some(keys) = client.keys() else {
        return false;
    };
    let signed = &assertion.as_bytes()[..signed_len];
    keys.keys()
        .iter()
        .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
        .any(|k| k.verify_signature(&alg, signed, signature).is_ok())
}

/// `private_key_jwt` (RFC 7523 §3): signed by a key in the client's registered JWKS,
/// `iss` = `sub` = client_id, `aud` = our token endpoint or issuer, short-lived, and
/// each `jti` accepted once.
async fn verify_assertion(
    state: &AppState,
    form_id: Option<String>,
    assertion: &str,
) -> Result<ClientRow, OAuthError> {
    let refused = || OAuthError::invalid_client("client assertion refused");
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(h), decode(c)) else {
        return Err(refused());
    };
    // RFC 7515 §4.1.11: we understand no JWS extension, so a `crit` header makes the
    // assertion invalid. A `kid` that is not a string is not "absent" (which would try
    // every registered key): it is malformed.
    if header.get("crit").is_some() || header.get("kid").is_some_and(|k| !k.is_string()) {
        return Err(refused());
    }
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| refused())?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(refused)?;
    if claims.get("sub").and_then(Value::as_str) != Some(iss)
        || form_id.as_deref().is_some_and(|f| f != iss)
    {
        return Err(refused());
    }
    let client = find(state, iss).await?.ok_or_else(refused)?;
    if client.token_endpoint_auth_method != AUTH_PRIVATE_KEY_JWT {
        return Err(refused());
    }
    if !signed_by_client(
        &client,
        &header,
        assertion,
        h.len() + 1 + c.len(),
        &signature,
    ) {
        return Err(refused());
    }
    let base = super::discovery::issuer(state);
    let token_endpoint = format!("{base}/token");
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == token_endpoint || *a == base,
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| a == token_endpoint || a == base),
        _ => false,
    };
    let now = state.clock.now().timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(refused)?;
    if !aud_ok || exp <= now || exp > now + MAX_ASSERTION_LIFE_SECS {
        return Err(refused());
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(refused)?;
    if jti.is_empty() || jti.len() > 256 {
        return Err(refused());
    }
    let key = format!("client-jti:{}", token_hash(&format!("{iss}\u{0}{jti}")));
    let ttl = Duration::from_secs(u64::try_from(exp - now + 60).unwrap_or(660));
    if !state.ephemeral.set_if_absent(&key, b"1", ttl).await? {
        return Err(OAuthError::invalid_client("client assertion replayed"));
    }
    Ok(client)
}
