//! `private_key_jwt` client assertions (RFC 7523 §3, OIDC Core §9): signed by a key in
//! the client's registered JWKS, `iss` = `sub` = client_id, `aud` = our issuer or token
//! endpoint, living at most an hour, and each `jti` accepted once.
//!
//! Every refusal says what is wrong in `error_description` (issue 25: a client library
//! whose assertions were refused could not tell why). Nothing secret is in an assertion,
//! and nothing the client did not send is echoed back but our own issuer URL.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{OAuthError, clients::AUTH_PRIVATE_KEY_JWT};
use crate::{
    auth::token_hash,
    crypto::jose::{CLIENT_ALGORITHMS, FAPI2_ALGORITHMS, JoseError, Unverified, numeric_date},
    startup::AppState,
    store::clients::ClientRow,
};

/// Longest life (exp - iat, or exp - now without iat) accepted. An hour, as common client
/// libraries (Python's authlib) make them; the `jti` replay cache holds each one as long.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Clock difference tolerated for `iat` and `nbf` in the future, and added to how long a
/// `jti` is remembered.
const SKEW_SECS: i64 = 60;

fn refused(why: impl std::fmt::Display) -> OAuthError {
    OAuthError::invalid_client(format!("client assertion refused: {why}"))
}

/// The refusal of a JWS the library would not verify, as the client sees it.
fn unsigned(e: JoseError) -> OAuthError {
    match e {
        JoseError::AlgHmac(alg) => refused(format!(
            "alg {alg} is not allowed: client_secret_jwt is not supported (only a hash of \
             the secret is kept); use private_key_jwt"
        )),
        other => refused(other),
    }
}

pub async fn verify(
    state: &AppState,
    form_id: Option<String>,
    assertion: &str,
) -> Result<ClientRow, OAuthError> {
    // Parsed before the client is known (its iss names it); nothing is trusted until the
    // signature has been checked against that client's keys.
    let jws = Unverified::parse(assertion, CLIENT_ALGORITHMS).map_err(unsigned)?;
    let iss = jws
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refused("iss is missing"))?
        .to_owned();
    if jws.claims.get("sub").and_then(Value::as_str) != Some(iss.as_str()) {
        return Err(refused("sub must equal iss (both the client_id)"));
    }
    if form_id.as_deref().is_some_and(|f| f != iss) {
        return Err(refused("client_id does not match the assertion's iss"));
    }
    let client = super::client_auth::find(state, &iss)
        .await?
        .filter(|c| c.token_endpoint_auth_method == AUTH_PRIVATE_KEY_JWT)
        .ok_or_else(|| refused("the client is not registered for private_key_jwt"))?;
    let jws = Value::Object(signed_by_client(state, &client, jws).await?);
    audience(&jws, &super::discovery::issuer(state), client.fapi2).map_err(refused)?;
    let now = state.clock.now().timestamp();
    let exp = times(&jws, now).map_err(refused)?;
    let jti = jws
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
    let secs = exp.saturating_sub(now).saturating_add(SKEW_SECS);
    Duration::from_secs(u64::try_from(secs).unwrap_or(1).max(1))
}

/// `exp` in the future, `iat`/`nbf` not ahead of us, and a lifetime of at most
/// [`MAX_ASSERTION_LIFETIME_SECS`]; returns `exp`.
fn times(claims: &Value, now: i64) -> Result<i64, String> {
    let claims = claims
        .as_object()
        .ok_or("the claims are not a JSON object")?;
    let exp = numeric_date(claims, "exp")?.ok_or("exp is missing")?;
    if exp <= now {
        return Err(format!(
            "expired {} s ago (exp {exp})",
            now.saturating_sub(exp)
        ));
    }
    let iat = numeric_date(claims, "iat")?;
    if let Some(iat) = iat.filter(|iat| *iat > now + SKEW_SECS) {
        return Err(format!("issued in the future (iat {iat}, now {now})"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?.filter(|nbf| *nbf > now + SKEW_SECS) {
        return Err(format!("not valid yet (nbf {nbf}, now {now})"));
    }
    // Saturating: with `iat` = i64::MIN a wrapped difference would pass as short.
    let lifetime = exp.saturating_sub(iat.unwrap_or(now));
    if lifetime > MAX_ASSERTION_LIFETIME_SECS {
        return Err(format!(
            "lifetime too long: {lifetime} s > {MAX_ASSERTION_LIFETIME_SECS} s"
        ));
    }
    Ok(exp)
}

/// `aud` names our issuer or our token endpoint (RFC 7523 §3, OIDC Core §9); for a
/// FAPI 2.0 client, the issuer alone (FAPI 2.0 Security Profile §5.3.2.1).
fn audience(claims: &Value, issuer: &str, fapi2: bool) -> Result<(), String> {
    if fapi2 {
        let sole = match claims.get("aud") {
            Some(Value::String(a)) => a == issuer,
            Some(Value::Array(list)) => list.len() == 1 && list[0] == issuer,
            _ => false,
        };
        return if sole {
            Ok(())
        } else {
            Err(format!(
                "wrong aud: for a FAPI 2.0 client it must be the issuer {issuer} alone"
            ))
        };
    }
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

/// The assertion carries a signature by one of the client's keys, registered or
/// published at its `jwks_uri` (the one `kid` names, if it names one), under an
/// asymmetric algorithm; for a FAPI 2.0 client, PS256, ES256 or EdDSA only. Returns the
/// verified claims.
async fn signed_by_client(
    state: &AppState,
    client: &ClientRow,
    jws: Unverified<'_>,
) -> Result<Map<String, Value>, OAuthError> {
    if client.fapi2 && !FAPI2_ALGORITHMS.contains(&jws.alg()) {
        return Err(refused(format!(
            "alg {:?} is not allowed for a FAPI 2.0 client (PS256, ES256 or EdDSA)",
            jws.alg()
        )));
    }
    let keys = state
        .client_keys
        .keys_for(client, &jws, state.clock.now())
        .await
        .map_err(refused)?;
    jws.verify_with_jwks(&keys, "client's registered")
        .map(|v| v.claims)
        .map_err(refused)
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
        assert!(replay_memory(i64::MAX, NOW) > Duration::from_secs(1 << 60));
    }

    #[test]
    fn extreme_times_neither_overflow_nor_pass_as_short() {
        let err = times(&json!({"iat": i64::MIN, "exp": i64::MAX}), NOW).unwrap_err();
        assert!(err.starts_with("lifetime too long"), "{err}");
        let err = times(&json!({"exp": i64::MIN}), NOW).unwrap_err();
        assert!(err.starts_with("expired"), "{err}");
    }

    #[test]
    fn the_audience_is_the_issuer_or_the_token_endpoint() {
        let iss = "https://idp.example.org";
        assert!(audience(&json!({"aud": iss}), iss, false).is_ok());
        assert!(
            audience(
                &json!({"aud": ["x", "https://idp.example.org/token"]}),
                iss,
                false
            )
            .is_ok()
        );
        let err = audience(
            &json!({"aud": "https://elsewhere.example/token"}),
            iss,
            false,
        )
        .unwrap_err();
        assert!(err.starts_with("wrong aud"), "{err}");
        // FAPI 2.0: the issuer, and nothing else.
        assert!(audience(&json!({"aud": iss}), iss, true).is_ok());
        assert!(audience(&json!({"aud": [iss]}), iss, true).is_ok());
        assert!(audience(&json!({"aud": "https://idp.example.org/token"}), iss, true).is_err());
        assert!(audience(&json!({"aud": [iss, "x"]}), iss, true).is_err());
    }
}
