//! `private_key_jwt` client assertions (RFC 7523 §3, OIDC Core §9): signed by a key in
//! the client's registered JWKS, `iss` = `sub` = client_id, `aud` = our issuer or token
//! endpoint, living at most an hour, and each `jti` accepted once.
//!
//! Every refusal says what is wrong in `error_description` (issue 25: a client library
//! whose assertions were refused could not tell why). Nothing secret is in an assertion,
//! and nothing the client did not send is echoed back but our own issuer URL.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::{JsonWebKey, core::CoreJwsSigningAlgorithm};
use serde_json::Value;

use super::{OAuthError, clients::AUTH_PRIVATE_KEY_JWT};
use crate::{auth::token_hash, startup::AppState, store::clients::ClientRow};

/// Longest life (exp - iat, or exp - now without iat) accepted. An hour, as common client
/// libraries (Python's authlib) make them; the `jti` replay cache holds each one as long.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Clock difference tolerated for `iat` and `nbf` in the future, and added to how long a
/// `jti` is remembered.
const SKEW_SECS: i64 = 60;

fn refused(why: impl std::fmt::Display) -> OAuthError {
    OAuthError::invalid_client(format!("client assertion refused: {why}"))
}

/// The three parts of a compact JWS.
struct Jws<'a> {
    header: Value,
    claims: Value,
    signature: Vec<u8>,
    /// `header.claims`, the signed text.
    signed: &'a str,
}

fn split(assertion: &str) -> Result<Jws<'_>, OAuthError> {
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("not a compact JWS (three parts separated by dots)"));
    };
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let header = decode(h).ok_or_else(|| refused("the header is not base64url JSON"))?;
    let claims = decode(c).ok_or_else(|| refused("the claims are not base64url JSON"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| refused("the signature is not base64url"))?;
    Ok(Jws {
        header,
        claims,
        signature,
        signed: &assertion[..h.len() + 1 + c.len()],
    })
}

pub async fn verify(
    state: &AppState,
    form_id: Option<String>,
    assertion: &str,
) -> Result<ClientRow, OAuthError> {
    let jws = split(assertion)?;
    // RFC 7515 §4.1.11: we understand no JWS extension, so a `crit` header makes the
    // assertion invalid.
    if jws.header.get("crit").is_some() {
        return Err(refused(
            "the crit header names extensions Gatehouse does not know",
        ));
    }
    let iss = jws
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refused("iss is missing"))?;
    if jws.claims.get("sub").and_then(Value::as_str) != Some(iss) {
        return Err(refused("sub must equal iss (both the client_id)"));
    }
    if form_id.as_deref().is_some_and(|f| f != iss) {
        return Err(refused("client_id does not match the assertion's iss"));
    }
    let client = super::client_auth::find(state, iss)
        .await?
        .filter(|c| c.token_endpoint_auth_method == AUTH_PRIVATE_KEY_JWT)
        .ok_or_else(|| refused("the client is not registered for private_key_jwt"))?;
    signed_by_client(&client, &jws).map_err(refused)?;
    audience(&jws.claims, &super::discovery::issuer(state)).map_err(refused)?;
    let now = state.clock.now().timestamp();
    let exp = times(&jws.claims, now).map_err(refused)?;
    let jti = jws
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| refused("jti is missing or longer than 256 characters"))?;
    let key = format!("client-jti:{}", token_hash(&format!("{iss}\u{0}{jti}")));
    if !state
        .ephemeral
        .set_if_absent(&key, b"1", replay_memory(exp, now))
        .await?
    {
        return Err(refused("this jti was already used (replayed assertion)"));
    }
    Ok(client)
}

/// How long a `jti` is remembered: until the assertion expires, plus the skew, so it
/// cannot be replayed while it would still be accepted.
fn replay_memory(exp: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(exp - now + SKEW_SECS).unwrap_or(1).max(1))
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly with a fraction).
fn numeric_date(claims: &Value, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number of seconds")),
    }
}

/// `exp` in the future, `iat`/`nbf` not ahead of us, and a lifetime of at most
/// [`MAX_ASSERTION_LIFETIME_SECS`]; returns `exp`.
fn times(claims: &Value, now: i64) -> Result<i64, String> {
    let exp = numeric_date(claims, "exp")?.ok_or("exp is missing")?;
    if exp <= now {
        return Err(format!("expired {} s ago (exp {exp})", now - exp));
    }
    let iat = numeric_date(claims, "iat")?;
    if let Some(iat) = iat.filter(|iat| *iat > now + SKEW_SECS) {
        return Err(format!("issued in the future (iat {iat}, now {now})"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?.filter(|nbf| *nbf > now + SKEW_SECS) {
        return Err(format!("not valid yet (nbf {nbf}, now {now})"));
    }
    let lifetime = exp - iat.unwrap_or(now);
    if lifetime > MAX_ASSERTION_LIFETIME_SECS {
        return Err(format!(
            "lifetime too long: {lifetime} s > {MAX_ASSERTION_LIFETIME_SECS} s"
        ));
    }
    Ok(exp)
}

/// `aud` names our issuer or our token endpoint (RFC 7523 §3, OIDC Core §9).
fn audience(claims: &Value, issuer: &str) -> Result<(), String> {
    let token_endpoint = format!("{issuer}/token");
    let ours = |a: &str| a == token_endpoint || a == issuer;
    let ok = match claims.get("aud") {
        Some(Value::String(a)) => ours(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(ours),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "wrong aud: it must be the issuer {issuer} or the token endpoint {token_endpoint}"
        ))
    }
}

/// The assertion carries a signature by one of the client's registered keys (the one
/// `kid` names, if it names one), under an asymmetric algorithm: never `none`, never
/// HMAC (the JWKS is public, and Gatehouse keeps only a hash of client secrets).
fn signed_by_client(client: &ClientRow, jws: &Jws<'_>) -> Result<(), String> {
    let alg_name = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::from(alg_name))
        .ok()
        .filter(|_| !alg_name.is_empty())
        .ok_or("alg is missing or unknown")?;
    match alg {
        CoreJwsSigningAlgorithm::None => return Err("alg none is not allowed".into()),
        CoreJwsSigningAlgorithm::HmacSha256
        | CoreJwsSigningAlgorithm::HmacSha384
        | CoreJwsSigningAlgorithm::HmacSha512 => {
            return Err(format!(
                "alg {alg_name} is not allowed: client_secret_jwt is not supported (only a \
                 hash of the secret is kept); use private_key_jwt"
            ));
        }
        _ => {}
    }
    // A `kid` that is not a string is not "absent" (which would try every key).
    let kid = match jws.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err("kid must be a string".into()),
    };
    let keys = client.keys().ok_or("the client has no registered keys")?;
    let candidates: Vec<_> = keys
        .keys()
        .iter()
        .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
        .collect();
    if candidates.is_empty() {
        return Err(match kid {
            Some(k) if k.len() <= 64 => format!("unknown kid {k:?}: no registered key has it"),
            _ => "unknown kid: no registered key has it".into(),
        });
    }
    if candidates.iter().any(|k| {
        k.verify_signature(&alg, jws.signed.as_bytes(), &jws.signature)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(format!(
            "bad signature: it does not verify with the client's registered key (alg {alg_name})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn an_hour_long_assertion_passes_and_a_longer_one_says_by_how_much() {
        assert_eq!(
            times(&json!({"iat": NOW, "exp": NOW + 3600}), NOW),
            Ok(NOW + 3600)
        );
        assert_eq!(times(&json!({"exp": NOW + 3600}), NOW), Ok(NOW + 3600));
        let err = times(&json!({"iat": NOW, "exp": NOW + 3601}), NOW).unwrap_err();
        assert_eq!(err, "lifetime too long: 3601 s > 3600 s");
        let err = times(&json!({"exp": NOW + 7200}), NOW).unwrap_err();
        assert!(err.contains("7200 s > 3600 s"), "{err}");
        // An old iat does not hide a long life.
        let err = times(&json!({"iat": NOW - 3000, "exp": NOW + 1000}), NOW).unwrap_err();
        assert!(err.contains("4000 s"), "{err}");
    }

    #[test]
    fn expired_future_and_malformed_times_are_named() {
        assert!(
            times(&json!({"exp": NOW}), NOW)
                .unwrap_err()
                .starts_with("expired")
        );
        assert!(
            times(&json!({}), NOW)
                .unwrap_err()
                .contains("exp is missing")
        );
        assert!(
            times(&json!({"exp": "soon"}), NOW)
                .unwrap_err()
                .contains("exp is not")
        );
        let err = times(&json!({"iat": NOW + 120, "exp": NOW + 300}), NOW).unwrap_err();
        assert!(err.contains("future"), "{err}");
        let err = times(&json!({"nbf": NOW + 120, "exp": NOW + 300}), NOW).unwrap_err();
        assert!(err.contains("nbf"), "{err}");
        assert_eq!(
            times(&json!({"iat": NOW as f64 + 0.5, "exp": NOW + 60}), NOW),
            Ok(NOW + 60)
        );
    }

    #[test]
    fn a_jti_is_remembered_until_its_assertion_expires_and_then_some() {
        assert_eq!(replay_memory(NOW + 3600, NOW), Duration::from_secs(3660));
        assert!(replay_memory(NOW + 1, NOW) > Duration::from_secs(1));
    }

    #[test]
    fn the_audience_is_the_issuer_or_the_token_endpoint() {
        let iss = "https://idp.example.org";
        assert!(audience(&json!({"aud": iss}), iss).is_ok());
        assert!(audience(&json!({"aud": ["x", "https://idp.example.org/token"]}), iss).is_ok());
        let err = audience(&json!({"aud": "https://elsewhere.example/token"}), iss).unwrap_err();
        assert!(err.starts_with("wrong aud"), "{err}");
    }
}
