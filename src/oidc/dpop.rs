//! DPoP (RFC 9449): sender-constrained tokens. A client proves, with each request, that it
//! holds a private key (a `DPoP` header: a JWT signed by that key, which carries the
//! public half); `/token` binds the tokens it issues to the key (`cnf.jkt`, the key's
//! RFC 7638 thumbprint), and a bound access token is good only with a fresh proof by the
//! same key. A stolen token alone is then useless, which is what makes refresh tokens in
//! a browser app (or a native one) safe to keep.
//!
//! A proof names the request it was made for (`htm`, `htu`), when (`iat`, a one-minute
//! window either side), and is accepted once (`jti`, remembered for as long as it would
//! be accepted). At a resource endpoint it also names the token (`ath`). With
//! `dpop_nonce_required`, it must also carry a nonce the server gave out (§8): stateless
//! here, a MAC over a time slot, so every instance knows the nonces of the others.

use std::time::Duration;

use actix_web::{
    HttpRequest,
    http::{
        StatusCode,
        header::{HeaderName, HeaderValue},
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    OAuthError,
    discovery::issuer,
    jwt::{AccessClaims, verify_issued_access_token},
};
use crate::{
    auth::{same_secret, token_hash},
    crypto::{
        MasterKey,
        jose::{CLIENT_ALGORITHMS, FAPI2_ALGORITHMS, Unverified},
    },
    ephemeral::EphemeralError,
    startup::AppState,
    store::clients::ClientRow,
};

/// The request header a proof travels in.
pub const PROOF_HEADER: &str = "DPoP";
/// The response header a server nonce travels in.
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The proof's `typ` (RFC 9449 §4.2).
const PROOF_TYPE: &str = "dpop+jwt";
/// How far a proof's `iat` may be from our clock, either way.
const WINDOW_SECS: i64 = 60;
/// A nonce is made for a slot of this length and accepted in it and the next one: it
/// lives between 2.5 and 5 minutes.
const NONCE_SLOT_SECS: i64 = 150;
/// The key purpose of the nonce MAC (`MasterKey::derive`).
const NONCE_PURPOSE: &str = "dpop-nonce";
/// Longest `jti` accepted; a client's are a few dozen characters.
const MAX_JTI_LEN: usize = 256;

/// A proof that passed every check: the thumbprint of the key it was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
}

/// Why a proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// `invalid_dpop_proof`: what is wrong with it.
    #[error("{0}")]
    Invalid(String),
    /// `use_dpop_nonce`: the proof has no nonce of ours, or a stale one (RFC 9449 §8).
    #[error("{0}")]
    Nonce(&'static str),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
}

fn invalid(why: impl Into<String>) -> ProofError {
    ProofError::Invalid(why.into())
}

impl ProofError {
    /// The answer of the token endpoint (RFC 9449 §5): a 400. Its `DPoP-Nonce` header
    /// is added by the endpoint, on every answer.
    pub fn at_token_endpoint(self) -> OAuthError {
        match self {
            Self::Invalid(why) => OAuthError::new("invalid_dpop_proof", why),
            Self::Nonce(why) => OAuthError::new("use_dpop_nonce", why),
            Self::Ephemeral(e) => e.into(),
        }
    }

    /// The answer of a resource endpoint (RFC 9449 §7.1): a 401 with a DPoP challenge.
    pub fn at_resource(self) -> OAuthError {
        match self {
            Self::Invalid(why) => refused_at_resource("invalid_dpop_proof", why),
            Self::Nonce(why) => refused_at_resource("use_dpop_nonce", why.into()),
            Self::Ephemeral(e) => e.into(),
        }
    }
}

/// A 401 at a resource endpoint whose challenge is the DPoP scheme's, with the
/// algorithms a proof may use (RFC 9449 §7.1).
pub fn refused_at_resource(error: &'static str, why: String) -> OAuthError {
    // The description may name what the client sent (an alg): no quote may end the
    // quoted-string early.
    let quoted: String = why
        .chars()
        .map(|c| if matches!(c, '"' | '\\') { '\'' } else { c })
        .collect();
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        challenge: Some(format!(
            r#"DPoP algs="{}", error="{error}", error_description="{quoted}""#,
            algorithm_names().join(" ")
        )),
        ..OAuthError::new(error, why)
    }
}

/// The challenge of a resource endpoint asked without credentials: both schemes.
pub fn challenge_without_credentials() -> String {
    format!(
        r#"Bearer realm="gatehouse", DPoP algs="{}""#,
        algorithm_names().join(" ")
    )
}

/// The algorithms a proof may be signed with (discovery's
/// `dpop_signing_alg_values_supported`).
pub fn algorithm_names() -> Vec<String> {
    CLIENT_ALGORITHMS.iter().map(|a| format!("{a:?}")).collect()
}

/// The algorithms `client`'s proofs may use: FAPI 2.0's for a FAPI 2.0 client.
fn algorithms_for(client: &ClientRow) -> &'static [Algorithm] {
    if client.fapi2 {
        FAPI2_ALGORITHMS
    } else {
        CLIENT_ALGORITHMS
    }
}

/// What a proof must name: the request it comes with.
struct Expected<'a> {
    method: &'a str,
    /// Our issuer and the endpoint's path.
    url: String,
    /// At a resource endpoint, the access token presented with it (`ath`).
    access_token: Option<&'a str>,
}

/// The proof at `/token`, if `client` sent one; refused when it is not good, and when
/// the client must send one and did not (`require_dpop`, FAPI 2.0).
pub async fn at_token_endpoint(
    state: &AppState,
    req: &HttpRequest,
    client: &ClientRow,
) -> Result<Option<Proof>, ProofError> {
    let proof = from_client(state, req, client, "/token").await?;
    if proof.is_none() && (client.require_dpop || client.fapi2) {
        return Err(invalid(
            "DPoP is required for this client: send a DPoP proof with the token request",
        ));
    }
    Ok(proof)
}

/// The proof an authenticated `client` sent to our endpoint at `path` (`/token`; `/par`,
/// where a proof binds the code to come, RFC 9449 §10.1), if it sent one; refused when
/// it is not good.
pub async fn from_client(
    state: &AppState,
    req: &HttpRequest,
    client: &ClientRow,
    path: &str,
) -> Result<Option<Proof>, ProofError> {
    let expected = Expected {
        method: req.method().as_str(),
        url: format!("{}{path}", issuer(state)),
        access_token: None,
    };
    check(state, req, &expected, algorithms_for(client)).await
}

/// The proof that must come with an access token sent with the DPoP scheme to the
/// resource endpoint at `path`.
pub async fn at_resource(
    state: &AppState,
    req: &HttpRequest,
    path: &str,
    access_token: &str,
) -> Result<Proof, ProofError> {
    let expected = Expected {
        method: req.method().as_str(),
        url: format!("{}{path}", issuer(state)),
        access_token: Some(access_token),
    };
    check(state, req, &expected, CLIENT_ALGORITHMS)
        .await?
        .ok_or_else(|| {
            invalid("a token sent with the DPoP scheme needs a DPoP proof in the DPoP header")
        })
}

/// An access token as a client presented it at a resource endpoint.
pub enum Presented {
    /// RFC 6750: whoever holds it may use it.
    Bearer(String),
    /// RFC 9449 §7.1: with a proof of the key it is bound to.
    Dpop(String),
}

/// The token of an `Authorization` header value, by scheme (case-insensitive, RFC 9110
/// §11.1); None for another scheme.
pub fn authorization(value: &str) -> Option<Presented> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim().to_owned();
    if scheme.eq_ignore_ascii_case("Bearer") {
        Some(Presented::Bearer(token))
    } else if scheme.eq_ignore_ascii_case("DPoP") {
        Some(Presented::Dpop(token))
    } else {
        None
    }
}

/// The claims of an access token presented at the resource endpoint at `path`, if it
/// may be used as presented: a bound token only with the DPoP scheme and a proof by its
/// key, an unbound one only as a bearer token (RFC 9449 §7). Whether its grant is still
/// live is the caller's question.
pub async fn access_token(
    state: &AppState,
    req: &HttpRequest,
    path: &str,
    presented: Presented,
) -> Result<AccessClaims, OAuthError> {
    let verify = |token: &str| {
        let ring = state.keys.current();
        verify_issued_access_token(&ring, &issuer(state), token, state.clock.now())
            .ok_or_else(|| OAuthError::invalid_token("the access token is invalid or expired"))
    };
    match presented {
        Presented::Bearer(token) => {
            let claims = verify(&token)?;
            if claims.cnf.is_some() {
                return Err(refused_at_resource(
                    "invalid_token",
                    "the access token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof".into(),
                ));
            }
            Ok(claims)
        }
        Presented::Dpop(token) => {
            let proof = at_resource(state, req, path, &token)
                .await
                .map_err(ProofError::at_resource)?;
            let claims = verify(&token)?;
            match claims.bound_to() {
                Some(jkt) if jkt == proof.jkt => Ok(claims),
                Some(_) => Err(refused_at_resource(
                    "invalid_token",
                    "the DPoP proof is not made with the key the access token is bound to".into(),
                )),
                None => Err(refused_at_resource(
                    "invalid_token",
                    "the access token is not bound to a DPoP key: send it with the Bearer scheme"
                        .into(),
                )),
            }
        }
    }
}

/// The request's proof checked against `expected`; None when it has none.
async fn check(
    state: &AppState,
    req: &HttpRequest,
    expected: &Expected<'_>,
    algs: &[Algorithm],
) -> Result<Option<Proof>, ProofError> {
    let mut headers = req.headers().get_all(PROOF_HEADER);
    let Some(first) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(invalid("send exactly one DPoP header"));
    }
    let token = first
        .to_str()
        .map_err(|_| invalid("the DPoP header is not a compact JWS"))?
        .trim();
    let parsed = Unverified::parse(token, algs).map_err(|e| invalid(format!("DPoP proof: {e}")))?;
    let typ = parsed.raw_header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE)) {
        return Err(invalid("DPoP proof: typ must be dpop+jwt"));
    }
    let (verified, jkt) = parsed
        .verify_with_embedded_jwk()
        .map_err(|e| invalid(format!("DPoP proof: {e}")))?;
    let now = state.clock.now().timestamp();
    let claims = Claims::check(&verified.claims, expected, now).map_err(invalid)?;
    if state.config.dpop_nonce_required {
        match claims.nonce {
            None => {
                return Err(ProofError::Nonce(
                    "a server nonce is required: send the DPoP-Nonce this answer carries in the proof's nonce claim",
                ));
            }
            Some(n) if !nonce_is_fresh(&state.master_key, now, n) => {
                return Err(ProofError::Nonce(
                    "the proof's nonce is stale or not one this server gave: use the DPoP-Nonce this answer carries",
                ));
            }
            Some(_) => {}
        }
    }
    // Remembered as long as the proof could still be accepted: its iat window.
    let key = format!(
        "dpop-jti:{}",
        token_hash(&format!("{jkt}\u{0}{}", claims.jti))
    );
    let remember = Duration::from_secs(u64::try_from(2 * WINDOW_SECS + 1).unwrap_or(121));
    if !state.ephemeral.set_if_absent(&key, b"1", remember).await? {
        return Err(invalid(
            "DPoP proof replayed: this jti was already used; make a new proof for each request",
        ));
    }
    Ok(Some(Proof { jkt }))
}

/// The claims of a proof, checked against the request it came with.
struct Claims<'a> {
    jti: &'a str,
    nonce: Option<&'a str>,
}

impl<'a> Claims<'a> {
    fn check(
        claims: &'a Map<String, Value>,
        expected: &Expected<'_>,
        now: i64,
    ) -> Result<Self, String> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let htm = text("htm").ok_or("DPoP proof: htm is missing")?;
        if htm != expected.method {
            return Err(format!(
                "DPoP proof: htm does not match the request method ({})",
                expected.method
            ));
        }
        let htu = text("htu").ok_or("DPoP proof: htu is missing")?;
        if !same_endpoint(htu, &expected.url) {
            return Err(format!(
                "DPoP proof: htu does not match the endpoint URL ({})",
                expected.url
            ));
        }
        let iat = claims
            .get("iat")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or("DPoP proof: iat is missing or not a number")?;
        if iat > now + WINDOW_SECS {
            return Err(format!(
                "DPoP proof: iat is in the future (more than {WINDOW_SECS} s ahead of the server's clock)"
            ));
        }
        if iat < now - WINDOW_SECS {
            return Err(format!(
                "DPoP proof: iat is too old (more than {WINDOW_SECS} s ago): make a new proof for each request"
            ));
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
            .ok_or("DPoP proof: jti is missing or longer than 256 characters")?;
        if let Some(token) = expected.access_token {
            let ath = text("ath").ok_or("DPoP proof: ath (the access token's hash) is missing")?;
            let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if !same_secret(ath, &hash) {
                return Err("DPoP proof: ath is not the hash of the access token sent".into());
            }
        }
        let nonce = match claims.get("nonce") {
            None => None,
            Some(Value::String(n)) => Some(n.as_str()),
            Some(_) => return Err("DPoP proof: nonce must be a string".into()),
        };
        Ok(Self { jti, nonce })
    }
}

/// Whether `htu` names the endpoint at `expected`: scheme, host, port and path, once
/// normalised (RFC 9449 §4.3: scheme and host case, a default port), and ignoring any
/// query and fragment.
fn same_endpoint(htu: &str, expected: &str) -> bool {
    let (Ok(a), Ok(b)) = (Url::parse(htu), Url::parse(expected)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
        && a.username().is_empty()
        && a.password().is_none()
}

/// The nonce the server gives out now (`DPoP-Nonce`): a MAC over the current slot.
pub fn nonce(key: &MasterKey, now: i64) -> String {
    nonce_for_slot(key, now.div_euclid(NONCE_SLOT_SECS))
}

/// Adds the current nonce (`DPoP-Nonce`) to the answer of a request that used DPoP (a
/// proof, or the DPoP scheme). Never to others: a browser library that does not use
/// DPoP (oidc-client-ts) takes any error answer carrying a nonce for a nonce challenge,
/// and would report a refused refresh token as "ErrorDPoPNonce".
pub fn add_nonce(state: &AppState, req: &HttpRequest, res: &mut actix_web::HttpResponse) {
    let used_dpop = req.headers().contains_key(PROOF_HEADER)
        || req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 5 && v[..5].eq_ignore_ascii_case("dpop "));
    if used_dpop {
        let (name, value) = nonce_header(state);
        res.headers_mut().insert(name, value);
    }
}

/// The current nonce as a response header (`DPoP-Nonce`).
pub fn nonce_header(state: &AppState) -> (HeaderName, HeaderValue) {
    let value = nonce(&state.master_key, state.clock.now().timestamp());
    (
        HeaderName::from_static(NONCE_HEADER),
        // base64url is always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

fn nonce_for_slot(key: &MasterKey, slot: i64) -> String {
    let key = key.derive(NONCE_PURPOSE);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).expect("HMAC takes any key length");
    mac.update(&slot.to_be_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
}

/// Whether `presented` is the nonce of this slot or of the one before.
fn nonce_is_fresh(key: &MasterKey, now: i64, presented: &str) -> bool {
    let slot = now.div_euclid(NONCE_SLOT_SECS);
    [slot, slot - 1]
        .iter()
        .any(|s| same_secret(presented, &nonce_for_slot(key, *s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_is_compared_after_normalising_scheme_host_and_default_port() {
        let ours = "https://id.example.org/token";
        for same in [
            "https://id.example.org/token",
            "HTTPS://ID.Example.ORG/token",
            "https://id.example.org:443/token",
            "https://id.example.org/token?x=1",
            "https://id.example.org/token#frag",
        ] {
            assert!(same_endpoint(same, ours), "{same}");
        }
        for other in [
            "https://id.example.org/userinfo",
            "https://id.example.org/Token",
            "https://id.example.org/token/",
            "http://id.example.org/token",
            "https://id.example.org:8443/token",
            "https://evil.example/token",
            "https://user@id.example.org/token",
            "/token",
            "",
        ] {
            assert!(!same_endpoint(other, ours), "{other}");
        }
    }

    #[test]
    fn a_nonce_lives_for_its_slot_and_the_next_and_only_with_its_key() {
        let key = MasterKey::generate();
        let t = 1_000_000 * NONCE_SLOT_SECS;
        let n = nonce(&key, t);
        assert!(nonce_is_fresh(&key, t, &n));
        assert!(nonce_is_fresh(&key, t + NONCE_SLOT_SECS, &n));
        assert!(!nonce_is_fresh(&key, t + 2 * NONCE_SLOT_SECS, &n), "stale");
        assert!(!nonce_is_fresh(&key, t - NONCE_SLOT_SECS, &n), "not yet");
        assert!(!nonce_is_fresh(&MasterKey::generate(), t, &n), "forged");
        assert!(!nonce_is_fresh(&key, t, ""));
    }

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn every_claim_is_checked_and_named_in_the_refusal() {
        let now = 1_700_000_000;
        let expected = Expected {
            method: "GET",
            url: "https://id.example.org/userinfo".into(),
            access_token: Some("tok"),
        };
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok"));
        let good = serde_json::json!({
            "htm": "GET", "htu": "https://id.example.org/userinfo", "iat": now,
            "jti": "j1", "ath": ath,
        });
        assert!(Claims::check(&claims(good.clone()), &expected, now).is_ok());
        for (change, word) in [
            (serde_json::json!({"htm": "POST"}), "htm"),
            (
                serde_json::json!({"htu": "https://id.example.org/token"}),
                "htu",
            ),
            (serde_json::json!({"iat": now - 61}), "too old"),
            (serde_json::json!({"iat": now + 61}), "future"),
            (serde_json::json!({"iat": "now"}), "iat"),
            (serde_json::json!({"jti": ""}), "jti"),
            (serde_json::json!({"ath": "AAAA"}), "ath"),
            (serde_json::json!({"ath": null}), "ath"),
            (serde_json::json!({"nonce": 5}), "nonce"),
        ] {
            let mut c = claims(good.clone());
            for (k, v) in change.as_object().unwrap() {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
            let err = Claims::check(&c, &expected, now).err().unwrap();
            assert!(err.contains(word), "{change}: {err}");
        }
    }
}
