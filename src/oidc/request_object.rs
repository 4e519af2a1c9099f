//! Signed request objects (JAR, RFC 9101): an authorization request whose parameters are
//! the claims of a JWS the client signed with a key of its registered JWKS, sent by value
//! (`request`) at `/authorize` or inside a pushed request at `/par`.
//!
//! Only the object's parameters count (RFC 9101 §6.3): outer ones but `client_id` are
//! ignored. An object by reference to the client's own URL is never fetched (Gatehouse
//! calls out to no address a request names); pushed requests take its place.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use jsonwebtoken::{Algorithm, jwk::JwkSet};
use serde_json::{Map, Value};

use super::{OAuthError, Params};
use crate::{
    crypto::jose::{CLIENT_ALGORITHMS, FAPI2_ALGORITHMS, Unverified, numeric_date},
    oidc::client_keys::ClientKeyCache,
    store::clients::ClientRow,
};

/// Clock difference tolerated for `nbf` and `iat` ahead of ours.
const SKEW_SECS: i64 = 60;
/// FAPI 2.0 Message Signing (request objects): `exp` at most an hour after `nbf`, and
/// `nbf` at most an hour in the past.
const FAPI2_MAX_LIFETIME_SECS: i64 = 3600;
/// The media type of a request object (RFC 9101 §10.8: explicit typing), with or
/// without its `application/` prefix (RFC 7515 §4.1.9).
const TYP: &str = "oauth-authz-req+jwt";
/// Claims of the JWT itself, not authorization parameters.
const JWT_CLAIMS: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti", "sub"];
/// The authorization parameters Gatehouse reads: each must be a string (`max_age` may be
/// a number) when a request object carries it.
const PARAMETERS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "acr_values",
    "login_hint",
    "dpop_jkt",
    "emergency_context",
];

pub fn refused(why: impl Display) -> OAuthError {
    OAuthError::new(
        "invalid_request_object",
        format!("request object refused: {why}"),
    )
}

/// The parameters of `token`, a request object from `client`, once its signature (by a
/// key the client registered or publishes, from `keys`), issuer, audience and times have
/// been checked.
pub async fn verify(
    token: &str,
    client: &ClientRow,
    keys: &ClientKeyCache,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<Params, OAuthError> {
    if client.jwks.is_none() && client.jwks_uri.is_none() {
        return Err(refused(
            "this client has no registered keys (JWKS), so it cannot sign request objects",
        ));
    }
    let policy = Policy {
        client_id: &client.client_id,
        issuer,
        fapi2: client.fapi2,
        now: now.timestamp(),
    };
    // Parsed here for the keys it names, and again by the check (it is small).
    let jws = Unverified::parse(token, policy.algorithms()).map_err(refused)?;
    let keys = keys.keys_for(client, &jws, now).await.map_err(refused)?;
    policy.check(token, &keys)
}

/// What a request object is held to.
struct Policy<'a> {
    client_id: &'a str,
    issuer: &'a str,
    fapi2: bool,
    now: i64,
}

impl Policy<'_> {
    fn algorithms(&self) -> &'static [Algorithm] {
        if self.fapi2 {
            FAPI2_ALGORITHMS
        } else {
            CLIENT_ALGORITHMS
        }
    }

    fn check(&self, token: &str, keys: &JwkSet) -> Result<Params, OAuthError> {
        let verified = Unverified::parse(token, self.algorithms())
            .map_err(refused)?
            .verify_with_jwks(keys, "client's registered")
            .map_err(refused)?;
        typ(&verified.raw_header).map_err(refused)?;
        let claims = verified.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(self.client_id) {
            return Err(refused("iss must be the client_id"));
        }
        audience(&claims, self.issuer).map_err(refused)?;
        times(&claims, self.now, self.fapi2).map_err(refused)?;
        // RFC 9101 §6.3: the client_id inside and outside are the same.
        match claims.get("client_id") {
            Some(Value::String(id)) if id == self.client_id => {}
            Some(_) => {
                return Err(refused("its client_id is not the client_id of the request"));
            }
            None => return Err(refused("client_id is missing")),
        }
        parameters(&claims).map_err(refused)
    }
}

/// `typ`, when present, says this is a request object (RFC 9101 §4), so no other JWT
/// the client signed (a client assertion, say) passes for one.
fn typ(header: &Map<String, Value>) -> Result<(), String> {
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(t))
            if t.eq_ignore_ascii_case(TYP)
                || t.eq_ignore_ascii_case(&format!("application/{TYP}")) =>
        {
            Ok(())
        }
        Some(_) => Err(format!("typ must be {TYP} when present")),
    }
}

/// `aud` names our issuer (RFC 9101 §4), as a string or in a list.
fn audience(claims: &Map<String, Value>, issuer: &str) -> Result<(), String> {
    let ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("wrong aud: it must be the issuer {issuer}"))
    }
}

/// `exp` required and ahead, `nbf` and `iat` not ahead (with [`SKEW_SECS`]); for FAPI 2.0,
/// `nbf` required, at most an hour old, and `exp` at most an hour after it. Differences
/// saturate: the claims are the sender's, and `i64::MIN` is a number too.
fn times(claims: &Map<String, Value>, now: i64, fapi2: bool) -> Result<(), String> {
    let exp = numeric_date(claims, "exp")?.ok_or("exp is missing")?;
    if exp <= now {
        return Err(format!(
            "expired {} s ago (exp {exp})",
            now.saturating_sub(exp)
        ));
    }
    let nbf = numeric_date(claims, "nbf")?;
    if let Some(nbf) = nbf.filter(|nbf| *nbf > now + SKEW_SECS) {
        return Err(format!("not valid yet (nbf {nbf}, now {now})"));
    }
    if let Some(iat) = numeric_date(claims, "iat")?.filter(|iat| *iat > now + SKEW_SECS) {
        return Err(format!("issued in the future (iat {iat}, now {now})"));
    }
    if fapi2 {
        let nbf = nbf.ok_or("nbf is missing (FAPI 2.0 requires it)")?;
        let age = now.saturating_sub(nbf);
        if age > FAPI2_MAX_LIFETIME_SECS {
            return Err(format!(
                "nbf is {age} s in the past; FAPI 2.0 allows at most {FAPI2_MAX_LIFETIME_SECS} s"
            ));
        }
        let lifetime = exp.saturating_sub(nbf);
        if lifetime > FAPI2_MAX_LIFETIME_SECS {
            return Err(format!(
                "lifetime too long: exp - nbf = {lifetime} s > {FAPI2_MAX_LIFETIME_SECS} s"
            ));
        }
    }
    Ok(())
}

/// The authorization parameters among the claims, as if sent in a form: the same length
/// and count limits as any request.
fn parameters(claims: &Map<String, Value>) -> Result<Params, String> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in claims {
        if JWT_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        // RFC 9101 §4: no object inside an object.
        if name == "request" || name == "request_uri" {
            return Err(format!("it may not carry {name}"));
        }
        match value {
            Value::String(s) => {
                form.append_pair(name, s);
            }
            Value::Number(n) if name == "max_age" => {
                form.append_pair(name, &n.to_string());
            }
            _ if PARAMETERS.contains(&name.as_str()) => {
                return Err(format!("{name} must be a string"));
            }
            // Parameters Gatehouse does not support are ignored, as in a plain request.
            _ => {}
        }
    }
    Params::parse(form.finish().as_bytes()).map_err(|e| {
        e.error_description
            .unwrap_or_else(|| "its parameters are malformed".into())
    })
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{EncodingKey, Header, encode, jwk::Jwk};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example.org";

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn ec_key() -> (EncodingKey, JwkSet) {
        use openssl::{bn::BigNum, ec::EcGroup, ec::EcKey, nid::Nid, pkey::PKey};
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let der = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(x.to_vec_padded(32).unwrap()),
            "y": URL_SAFE_NO_PAD.encode(y.to_vec_padded(32).unwrap()),
        }))
        .unwrap();
        (EncodingKey::from_ec_der(&der), JwkSet { keys: vec![jwk] })
    }

    fn policy(fapi2: bool) -> Policy<'static> {
        Policy {
            client_id: "gh-app",
            issuer: ISSUER,
            fapi2,
            now: NOW,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": "gh-app", "aud": ISSUER, "client_id": "gh-app",
            "exp": NOW + 300, "nbf": NOW - 10, "iat": NOW - 10,
            "response_type": "code", "redirect_uri": "https://rp.example.org/cb",
            "scope": "openid", "state": "s", "max_age": 600,
        })
    }

    fn sign(key: &EncodingKey, claims: &Value) -> String {
        // `jose` sets the library's crypto provider on first use: before the library signs.
        let _ = Unverified::parse("", &[]);
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(TYP.into());
        encode(&header, claims, key).unwrap()
    }

    #[test]
    fn a_good_request_object_gives_its_parameters_and_only_those() {
        let (key, keys) = ec_key();
        let params = policy(true).check(&sign(&key, &claims()), &keys).unwrap();
        assert_eq!(
            params.get("redirect_uri"),
            Some("https://rp.example.org/cb")
        );
        assert_eq!(params.get("max_age"), Some("600"));
        assert_eq!(params.get("iss"), None, "JWT claims are not parameters");
        assert_eq!(params.get("client_id"), Some("gh-app"));
    }

    #[test]
    fn each_refusal_says_why() {
        let (key, keys) = ec_key();
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        for (claims, why) in [
            (with("iss", json!("gh-other")), "iss must be the client_id"),
            (with("aud", json!("https://elsewhere.example")), "wrong aud"),
            (with("aud", json!([ISSUER, "x"])), ""),
            (with("exp", json!(NOW - 1)), "expired 1 s ago"),
            (without("exp"), "exp is missing"),
            (with("nbf", json!(NOW + 120)), "not valid yet"),
            (with("client_id", json!("gh-other")), "client_id is not"),
            (without("client_id"), "client_id is missing"),
            (
                with("request_uri", json!("https://rp.example.org/r")),
                "may not carry request_uri",
            ),
            (with("scope", json!(["openid"])), "scope must be a string"),
            (with("state", json!("x".repeat(5000))), "too long"),
        ] {
            let answer = policy(false).check(&sign(&key, &claims), &keys);
            if why.is_empty() {
                assert!(answer.is_ok(), "{claims}");
                continue;
            }
            let e = answer.err().unwrap();
            assert_eq!(e.error, "invalid_request_object");
            let description = e.error_description.unwrap();
            assert!(description.contains(why), "{why}: {description}");
        }
    }

    #[test]
    fn fapi2_wants_nbf_and_at_most_an_hour_and_its_algorithms() {
        let (key, keys) = ec_key();
        let mut long = claims();
        long["exp"] = json!(NOW + 3600);
        let err = policy(true).check(&sign(&key, &long), &keys).err().unwrap();
        assert!(err.error_description.unwrap().contains("3610 s > 3600 s"),);
        assert!(policy(false).check(&sign(&key, &long), &keys).is_ok());
        let mut old = claims();
        old["nbf"] = json!(NOW - 3700);
        let err = policy(true).check(&sign(&key, &old), &keys).err().unwrap();
        assert!(
            err.error_description
                .unwrap()
                .contains("nbf is 3700 s in the past")
        );
        let mut no_nbf = claims();
        no_nbf.as_object_mut().unwrap().remove("nbf");
        let err = policy(true)
            .check(&sign(&key, &no_nbf), &keys)
            .err()
            .unwrap();
        assert!(err.error_description.unwrap().contains("nbf is missing"));
    }

    #[test]
    fn another_typ_is_refused() {
        assert!(typ(&obj(json!({"typ": "JWT"}))).is_err());
        assert!(typ(&obj(json!({"typ": "dpop+jwt"}))).is_err());
        assert!(typ(&obj(json!({"typ": 1}))).is_err());
        assert!(typ(&obj(json!({}))).is_ok());
        assert!(typ(&obj(json!({"typ": "application/oauth-authz-req+jwt"}))).is_ok());
    }

    proptest! {
        // Whatever arrives as a request object, the answer is a refusal that says so,
        // never a panic.
        #[test]
        fn any_text_is_refused_without_a_panic(token in "[A-Za-z0-9_.=-]{0,300}") {
            let (_, keys) = ec_key();
            let e = policy(false).check(&token, &keys).err().unwrap();
            prop_assert_eq!(e.error, "invalid_request_object");
        }

        #[test]
        fn any_header_and_claims_are_refused_without_a_panic(
            header in "\\PC{0,80}",
            claims in "\\PC{0,200}",
        ) {
            let (_, keys) = ec_key();
            let token = format!(
                "{}.{}.AAAA",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            prop_assert!(policy(false).check(&token, &keys).is_err());
        }

        // A correctly signed object whose claims are anything at all: what passes is a
        // request whose every parameter is text; nothing panics.
        #[test]
        fn any_signed_claims_are_judged_without_a_panic(
            changes in proptest::collection::vec((
                proptest::sample::select(vec![
                    "iss", "aud", "exp", "nbf", "iat", "client_id", "scope", "state",
                    "max_age", "request", "redirect_uri", "claims", "prompt",
                ]),
                prop_oneof![
                    any::<i64>().prop_map(Value::from),
                    any::<f64>().prop_map(Value::from),
                    any::<bool>().prop_map(Value::from),
                    "\\PC{0,40}".prop_map(Value::from),
                    Just(Value::Null),
                    Just(json!(["gh-app", ISSUER])),
                    Just(json!({"x": 1})),
                ],
            ), 0..6),
            fapi2 in any::<bool>(),
        ) {
            let (key, keys) = ec_key();
            let mut claims = claims();
            for (name, value) in changes {
                claims[name] = value;
            }
            match policy(fapi2).check(&sign(&key, &claims), &keys) {
                // Only what each check allows gets through.
                Ok(_) => {
                    prop_assert_eq!(&claims["iss"], "gh-app");
                    prop_assert_eq!(&claims["client_id"], "gh-app");
                    prop_assert!(claims["exp"].as_f64().is_some_and(|exp| exp > NOW as f64));
                    prop_assert!(audience(claims.as_object().unwrap(), ISSUER).is_ok());
                    prop_assert!(claims.get("request").is_none());
                }
                Err(e) => prop_assert_eq!(e.error, "invalid_request_object"),
            }
        }
    }
}
