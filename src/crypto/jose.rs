//! JSON Web Signatures that come from outside: client assertions (RFC 7523), DPoP proofs
//! (RFC 9449) and request objects (RFC 9101). Parsing and signature checks are the
//! `jsonwebtoken` crate's; what is ours is the policy: which algorithms, which key, what
//! a refusal says.
//!
//! RSA and ES256 signatures are checked by OpenSSL behind the library's provider interface
//! ([`super::jws_openssl`]); our own tokens are checked by the same library, in
//! [`super::signing::KeyRing::verify_jwt`].
//!
//! Every input is hostile: a token is at most [`MAX_JWS_BYTES`], never `alg: none`, never
//! HMAC (a client's keys are public, and Gatehouse keeps only a hash of client secrets),
//! and a refusal names what is wrong without echoing the token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Header, Validation,
    jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use serde_json::{Map, Value};

/// Longest compact JWS accepted (a request object with many claims is a few KiB).
pub const MAX_JWS_BYTES: usize = 16 * 1024;

/// The asymmetric algorithms accepted from clients.
pub const CLIENT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The FAPI 2.0 Security Profile's algorithms (§5.4.1): PS256, ES256 and EdDSA.
pub const FAPI2_ALGORITHMS: &[Algorithm] = &[Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

/// Why a JWS was refused, in words a client developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("longer than {MAX_JWS_BYTES} bytes")]
    TooLong,
    #[error("not a compact JWS (three parts separated by dots)")]
    NotCompact,
    #[error("the header is not base64url JSON")]
    Header,
    #[error("the claims are not a base64url JSON object")]
    Claims,
    #[error("alg none is not allowed")]
    AlgNone,
    #[error("alg {0} is not allowed: a shared-secret (HMAC) signature cannot be checked")]
    AlgHmac(String),
    #[error("alg is missing or unknown")]
    AlgUnknown,
    #[error("alg {0} is not allowed here (allowed: {1})")]
    AlgNotAllowed(String, String),
    #[error("the crit header names extensions Gatehouse does not know")]
    Crit,
    #[error("kid must be a string")]
    KidType,
    #[error("unknown kid{0}: no registered key has it")]
    UnknownKid(String),
    #[error("no registered key can check an {0} signature")]
    NoKey(String),
    #[error("the header's jwk is missing, not a public key, or not for alg {0}")]
    EmbeddedKey(String),
    #[error("bad signature: it does not verify with the {0} key (alg {1})")]
    BadSignature(&'static str, String),
}

/// A JWS whose signature verified: its header and claims.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Header,
    /// The header as sent, for members the library does not model.
    pub raw_header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

/// A JWS before its signature is checked: what its header and claims say.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    token: &'a str,
    pub raw_header: Map<String, Value>,
    pub claims: Map<String, Value>,
    alg: Algorithm,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes `token` and settles its algorithm against `allowed`; checks no
    /// signature. Use one of the `verify_*` methods before trusting anything in it.
    pub fn parse(token: &'a str, allowed: &[Algorithm]) -> Result<Self, JoseError> {
        super::jws_openssl::install();
        if token.len() > MAX_JWS_BYTES {
            return Err(JoseError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::NotCompact);
        };
        let raw_header = decode_object(h).ok_or(JoseError::Header)?;
        let claims = decode_object(c).ok_or(JoseError::Claims)?;
        // RFC 7515 §4.1.11: no extension is understood here.
        if raw_header.contains_key("crit") {
            return Err(JoseError::Crit);
        }
        let alg = algorithm(&raw_header, allowed)?;
        Ok(Self {
            token,
            raw_header,
            claims,
            alg,
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The header's `kid`, if it names one. A `kid` that is not a string is not
    /// "absent" (which would try every key).
    fn kid(&self) -> Result<Option<&str>, JoseError> {
        match self.raw_header.get("kid") {
            None => Ok(None),
            Some(Value::String(k)) => Ok(Some(k.as_str())),
            Some(_) => Err(JoseError::KidType),
        }
    }

    /// The keys of `keys` this signature could be by: the one its `kid` names, or every
    /// key fit for its algorithm.
    fn candidates<'k>(&self, keys: &'k JwkSet) -> Result<Vec<&'k Jwk>, JoseError> {
        let kid = self.kid()?;
        Ok(keys
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .filter(|k| fits(k, self.alg))
            .collect())
    }

    /// Whether `keys` holds a key this signature could be by (else a signer's newer keys
    /// may be worth reading again).
    pub fn may_be_signed_by(&self, keys: &JwkSet) -> bool {
        self.candidates(keys).is_ok_and(|c| !c.is_empty())
    }

    /// Verifies against the key of `keys` that the header's `kid` names, or, without a
    /// `kid`, against each key that could have made this signature. `whose` names the
    /// keys in a refusal ("client's registered").
    pub fn verify_with_jwks(
        self,
        keys: &JwkSet,
        whose: &'static str,
    ) -> Result<Verified, JoseError> {
        let kid = self.kid()?;
        let candidates = self.candidates(keys)?;
        if candidates.is_empty() {
            return Err(match kid {
                Some(k) if k.len() <= 64 => JoseError::UnknownKid(format!(" {k:?}")),
                Some(_) => JoseError::UnknownKid(String::new()),
                None => JoseError::NoKey(alg_name(self.alg)),
            });
        }
        for jwk in candidates {
            if let Ok(verified) = self.check(jwk) {
                return Ok(verified);
            }
        }
        Err(JoseError::BadSignature(whose, alg_name(self.alg)))
    }

    /// Verifies against the public key in the header's own `jwk` (a DPoP proof, RFC 9449
    /// §4.2): it must be a public key (no private parameters) fit for the algorithm.
    /// Returns the key's RFC 7638 SHA-256 thumbprint with the verified token.
    pub fn verify_with_embedded_jwk(self) -> Result<(Verified, String), JoseError> {
        let embedded = || JoseError::EmbeddedKey(alg_name(self.alg));
        let raw = self
            .raw_header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or_else(embedded)?;
        // Private parameters of RSA (d, p, q, dp, dq, qi, oth), EC and OKP (d), and
        // symmetric keys (k): a proof carries only a public key.
        const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        if PRIVATE.iter().any(|p| raw.contains_key(*p)) {
            return Err(embedded());
        }
        let jwk: Jwk =
            serde_json::from_value(Value::Object(raw.clone())).map_err(|_| embedded())?;
        if !fits(&jwk, self.alg) {
            return Err(embedded());
        }
        let thumbprint = thumbprint(&jwk).ok_or_else(embedded)?;
        let verified = self
            .check(&jwk)
            .map_err(|_| JoseError::BadSignature("header's jwk", alg_name(self.alg)))?;
        Ok((verified, thumbprint))
    }

    /// The library's signature check with exactly this algorithm and this key; claims
    /// (times, audience) are the caller's, by the application's clock.
    fn check(&self, jwk: &Jwk) -> Result<Verified, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_jwk(jwk)?;
        let mut validation = Validation::new(self.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(self.token, &key, &validation)?;
        Ok(Verified {
            header: data.header,
            raw_header: self.raw_header.clone(),
            claims: data.claims,
        })
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// The header's `alg`, if it is one of `allowed`.
fn algorithm(header: &Map<String, Value>, allowed: &[Algorithm]) -> Result<Algorithm, JoseError> {
    let name = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .ok_or(JoseError::AlgUnknown)?;
    if name.eq_ignore_ascii_case("none") {
        return Err(JoseError::AlgNone);
    }
    if name.starts_with("HS") {
        return Err(JoseError::AlgHmac(name.chars().take(8).collect()));
    }
    let alg: Algorithm = name.parse().map_err(|_| JoseError::AlgUnknown)?;
    if !allowed.contains(&alg) {
        let list: Vec<String> = allowed.iter().copied().map(alg_name).collect();
        return Err(JoseError::AlgNotAllowed(name.to_owned(), list.join(", ")));
    }
    Ok(alg)
}

/// Whether `jwk` could have made an `alg` signature: its type and curve match, and its
/// own `alg` and `use`, where given, do not say otherwise.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::EllipticCurve as C;
    let by_type = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(rsa), a) => {
            a.family() == jsonwebtoken::AlgorithmFamily::Rsa && rsa_size_ok(&rsa.n, &rsa.e)
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == C::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == C::P384,
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == C::Ed25519,
        _ => false,
    };
    let declared = jwk
        .common
        .key_algorithm
        .is_none_or(|k| format!("{k:?}") == alg_name(alg));
    let for_signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
    by_type && declared && for_signing
}

/// An RSA key from outside (a client's JWKS, a DPoP proof's header) is 2048 to 8192 bits
/// with an exponent of at most 32 bits. Anyone can send a DPoP proof: a weak key proves
/// nothing (FAPI 2.0 asks for 2048 bits), and a large modulus or exponent would make
/// each check cost milliseconds of CPU.
fn rsa_size_ok(n: &str, e: &str) -> bool {
    let significant = |b64: &str| {
        URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .map(|bytes| bytes.len() - bytes.iter().take_while(|b| **b == 0).count())
    };
    matches!(
        (significant(n), significant(e)),
        (Some(256..=1024), Some(1..=4))
    )
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly with a fraction) of a verified
/// token's claims; absent or null is None.
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number of seconds")),
    }
}

/// Whether `jwk` can check a signature under some algorithm clients may use.
pub fn can_verify(jwk: &Jwk) -> bool {
    CLIENT_ALGORITHMS.iter().any(|alg| fits(jwk, *alg))
}

/// A key's RFC 7638 thumbprint with SHA-256, base64url (DPoP's `jkt`).
pub fn thumbprint(jwk: &Jwk) -> Option<String> {
    super::jws_openssl::install();
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// A JWKS document as the library reads it; keys of types it does not know are kept
/// (and never match).
pub fn key_set(doc: &str) -> Option<JwkSet> {
    serde_json::from_str(doc).ok()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    fn ec_key() -> (EncodingKey, Jwk) {
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
        (EncodingKey::from_ec_der(&der), jwk)
    }

    /// A JWS over exactly this header (members the library does not model included).
    fn sign(key: &EncodingKey, header: Value, claims: Value) -> String {
        // Before any use of the library, as in production (see `jws_openssl::install`).
        crate::crypto::jws_openssl::install();
        let alg: Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
        format!("{input}.{signature}")
    }

    #[test]
    fn a_signature_by_the_named_key_verifies_and_one_by_another_does_not() {
        let (key, jwk) = ec_key();
        let (other, _) = ec_key();
        let set = JwkSet { keys: vec![jwk] };
        let token = sign(
            &key,
            json!({"alg": "ES256", "kid": "k1"}),
            json!({"sub": "x"}),
        );
        let ok = Unverified::parse(&token, CLIENT_ALGORITHMS)
            .unwrap()
            .verify_with_jwks(&set, "client's registered")
            .unwrap();
        assert_eq!(ok.claims["sub"], "x");
        let forged = sign(
            &other,
            json!({"alg": "ES256", "kid": "k1"}),
            json!({"sub": "x"}),
        );
        let err = Unverified::parse(&forged, CLIENT_ALGORITHMS)
            .unwrap()
            .verify_with_jwks(&set, "client's registered")
            .unwrap_err();
        assert!(matches!(err, JoseError::BadSignature(..)), "{err}");
        let unknown = sign(&key, json!({"alg": "ES256", "kid": "k9"}), json!({}));
        let err = Unverified::parse(&unknown, CLIENT_ALGORITHMS)
            .unwrap()
            .verify_with_jwks(&set, "client's")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown kid \"k9\": no registered key has it"
        );
    }

    #[test]
    fn none_hmac_unknown_and_unlisted_algorithms_are_refused_by_name() {
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        let token = |alg: &str| {
            format!(
                "{}.{claims}.",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string())
            )
        };
        let parse = |t: &str| {
            Unverified::parse(t, FAPI2_ALGORITHMS)
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(parse(&token("none")), JoseError::AlgNone);
        assert_eq!(parse(&token("NONE")), JoseError::AlgNone);
        assert!(matches!(parse(&token("HS256")), JoseError::AlgHmac(_)));
        assert_eq!(parse(&token("XS999")), JoseError::AlgUnknown);
        assert!(matches!(
            parse(&token("RS256")),
            JoseError::AlgNotAllowed(..)
        ));
        assert_eq!(parse("a.b"), JoseError::NotCompact);
        assert_eq!(parse(&"a".repeat(MAX_JWS_BYTES + 1)), JoseError::TooLong);
        let crit = format!(
            "{}.{claims}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["x"],"x":1}"#)
        );
        assert_eq!(parse(&crit), JoseError::Crit);
    }

    #[test]
    fn an_embedded_key_verifies_its_own_proof_and_gives_its_thumbprint() {
        let (key, jwk) = ec_key();
        let public = serde_json::to_value(&jwk).unwrap();
        let token = sign(
            &key,
            json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public}),
            json!({"htm": "POST"}),
        );
        let (verified, jkt) = Unverified::parse(&token, CLIENT_ALGORITHMS)
            .unwrap()
            .verify_with_embedded_jwk()
            .unwrap();
        assert_eq!(verified.claims["htm"], "POST");
        assert_eq!(Some(jkt), thumbprint(&jwk));
        // With a private parameter in the header's key, refused whatever the signature.
        let mut leaked = public.clone();
        leaked["d"] = json!("AAAA");
        let token = sign(&key, json!({"alg": "ES256", "jwk": leaked}), json!({}));
        let err = Unverified::parse(&token, CLIENT_ALGORITHMS)
            .unwrap()
            .verify_with_embedded_jwk()
            .unwrap_err();
        assert!(matches!(err, JoseError::EmbeddedKey(_)), "{err}");
    }

    #[test]
    fn an_ed25519_key_of_the_wrong_length_is_refused_not_a_panic() {
        // Anyone can send a DPoP proof: its header's key must not be able to bring the
        // worker down (the library's EdDSA verifier slices the key's first 32 bytes).
        let claims = URL_SAFE_NO_PAD.encode(r#"{"htm":"POST"}"#);
        for x in [
            "",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([7u8; 31]),
            &URL_SAFE_NO_PAD.encode([7u8; 33]),
        ] {
            let header = json!({
                "alg": "EdDSA", "typ": "dpop+jwt",
                "jwk": { "kty": "OKP", "crv": "Ed25519", "x": x },
            });
            let token = format!(
                "{}.{claims}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode([1u8; 64])
            );
            let refused = Unverified::parse(&token, CLIENT_ALGORITHMS)
                .unwrap()
                .verify_with_embedded_jwk();
            assert!(refused.is_err(), "x of {x:?}");
        }
    }

    #[test]
    fn rsa_keys_from_outside_are_2048_to_8192_bits_with_a_small_exponent() {
        let b64 = |len: usize| URL_SAFE_NO_PAD.encode(vec![0xffu8; len]);
        assert!(rsa_size_ok(&b64(256), "AQAB"));
        assert!(rsa_size_ok(&b64(1024), "AQAB"));
        assert!(!rsa_size_ok(&b64(128), "AQAB"), "1024 bits");
        assert!(!rsa_size_ok(&b64(1025), "AQAB"));
        assert!(!rsa_size_ok(&b64(256), &b64(5)), "a 40-bit exponent");
        assert!(!rsa_size_ok(&b64(256), ""));
        // Leading zero bytes do not make a small modulus look large.
        let padded = URL_SAFE_NO_PAD.encode([vec![0u8; 200], vec![0xffu8; 100]].concat());
        assert!(!rsa_size_ok(&padded, "AQAB"));
    }

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        }))
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
