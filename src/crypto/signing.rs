//! Token signing keys (DESIGN §9, §12): making them, sealing their private half under
//! the master key, and the ring of published keys each instance signs and verifies with
//! ([`KeyRing`]). Where they are kept and how they rotate is `crate::keys::rings`.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::{
    JsonWebKeyId, PrivateSigningKey, SigningError,
    core::{CoreJsonCurveType, CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
};
use openssl::{
    hash::MessageDigest,
    pkey::{PKey, Private},
    rsa::Rsa,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::MasterKey;

pub const RS256: &str = "RS256";
/// ECDSA P-256, for relying parties that ask for it (`id_token_alg`).
pub const ES256: &str = "ES256";
/// Every algorithm Gatehouse keeps a key ring for.
pub const ALGORITHMS: &[&str] = &[RS256, ES256];
const RSA_BITS: u32 = 2048;

/// What a private signing key is sealed for: its kid (also used by the master-key
/// rotation's re-sealer, `store::signing_keys::reseal`).
pub fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// One published key: its signer and verifier.
enum Published {
    Rsa(RsaSigner),
    Ec(EcSigner),
}

/// An RSA key signing RS256 through OpenSSL, for our own JWTs and for `openidconnect`'s
/// ID token builder.
///
/// Not the `rsa` crate's private key: its private-key operations are not constant time
/// (RUSTSEC-2023-0071, the Marvin attack), and the token endpoint hands anyone with
/// client credentials a signature on demand, timed over the network. OpenSSL signs with
/// blinding and constant-time exponentiation, and verifies (every `/userinfo`,
/// `/introspect` and admin API call) in 15 µs where the `rsa` crate takes 110.
pub struct RsaSigner {
    key: PKey<Private>,
    jwk: CoreJsonWebKey,
    /// The public half, as the JWS library checks with it.
    decoding: DecodingKey,
}

impl RsaSigner {
    /// From a PKCS#1 DER private key (how keys are sealed in the store).
    ///
    /// Its parameters must agree ([`consistent`]). OpenSSL's `RSA_check_key` would also
    /// prove the primes prime, at 15 to 30 ms a key on every start; the keys opened here
    /// were made by OpenSSL and sealed under the master key's authenticated encryption,
    /// so they are the keys that were made.
    pub fn from_pkcs1_der(der: &[u8], kid: Option<&str>) -> Result<Self, String> {
        let rsa = Rsa::private_key_from_der(der).map_err(|e| e.to_string())?;
        if !consistent(&rsa).map_err(|e| e.to_string())? {
            return Err("inconsistent RSA key".into());
        }
        let (n, e) = (rsa.n().to_vec(), rsa.e().to_vec());
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        let jwk = CoreJsonWebKey::new_rsa(n, e, kid.map(|k| JsonWebKeyId::new(k.to_owned())));
        let key = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
        Ok(Self { key, jwk, decoding })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(message))
            .map_err(|e| SigningError::Other(e.to_string()))
    }

    /// RS256 signature check against this key's public half (the tests' cross-check of
    /// the library's path).
    #[cfg(test)]
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        openssl::sign::Verifier::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut verifier| verifier.verify_oneshot(signature, message))
            .unwrap_or(false)
    }
}

/// Whether an RSA private key's parameters agree, in microseconds: `n = p·q`, `e·d ≡ 1`
/// modulo `p − 1` and `q − 1`, the CRT exponents are `d` reduced by each, and
/// `q·qInv ≡ 1 (mod p)`. What `RSA_check_key` checks, less its primality tests.
fn consistent(rsa: &Rsa<Private>) -> Result<bool, openssl::error::ErrorStack> {
    use openssl::bn::{BigNum, BigNumContext};
    let (Some(p), Some(q), Some(dp), Some(dq), Some(qinv)) =
        (rsa.p(), rsa.q(), rsa.dmp1(), rsa.dmq1(), rsa.iqmp())
    else {
        return Ok(false);
    };
    let mut ctx = BigNumContext::new()?;
    let one = BigNum::from_u32(1)?;
    let mut n = BigNum::new()?;
    n.checked_mul(p, q, &mut ctx)?;
    if n != *rsa.n() {
        return Ok(false);
    }
    for (prime, crt_exponent) in [(p, dp), (q, dq)] {
        let mut minus_one = BigNum::new()?;
        minus_one.checked_sub(prime, &one)?;
        let mut reduced = BigNum::new()?;
        reduced.nnmod(rsa.d(), &minus_one, &mut ctx)?;
        let mut ed = BigNum::new()?;
        ed.mod_mul(rsa.e(), rsa.d(), &minus_one, &mut ctx)?;
        if reduced != *crt_exponent || ed != one {
            return Ok(false);
        }
    }
    let mut inverse = BigNum::new()?;
    inverse.mod_mul(q, qinv, p, &mut ctx)?;
    Ok(inverse == one)
}

impl PrivateSigningKey for RsaSigner {
    type VerificationKey = CoreJsonWebKey;

    fn sign(
        &self,
        signature_alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        match signature_alg {
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 => self.sign_rs256(message),
            other => Err(SigningError::UnsupportedAlg(format!("{other:?}"))),
        }
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.jwk.clone()
    }
}

/// An ECDSA P-256 key, signing for `openidconnect`'s ID token builder (which has no
/// ECDSA private key type of its own).
pub struct EcSigner {
    key: p256::ecdsa::SigningKey,
    jwk: CoreJsonWebKey,
    decoding: DecodingKey,
}

impl PrivateSigningKey for EcSigner {
    type VerificationKey = CoreJsonWebKey;

    fn sign(
        &self,
        signature_alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        use p256::ecdsa::signature::Signer;
        match signature_alg {
            CoreJwsSigningAlgorithm::EcdsaP256Sha256 => {
                let signature: p256::ecdsa::Signature = self.key.sign(message);
                Ok(signature.to_bytes().to_vec())
            }
            other => Err(SigningError::UnsupportedAlg(format!("{other:?}"))),
        }
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.jwk.clone()
    }
}

impl EcSigner {
    fn from_scalar(scalar: &[u8], kid: &str) -> Result<Self, String> {
        let key = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|e| e.to_string())?;
        let point = key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let (x, y) = (&bytes[1..33], &bytes[33..65]);
        let decoding =
            DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y))
                .map_err(|e| e.to_string())?;
        let jwk = CoreJsonWebKey::new_ec(
            x.to_vec(),
            y.to_vec(),
            CoreJsonCurveType::P256,
            Some(JsonWebKeyId::new(kid.to_owned())),
        );
        Ok(Self { key, jwk, decoding })
    }
}

/// The keys one instance signs and verifies with.
pub struct KeyRing {
    /// Active kid per algorithm.
    active: HashMap<&'static str, String>,
    /// Shared with the rings loaded after this one: a key, once checked, is reused.
    keys: HashMap<String, Arc<Published>>,
    jwks: CoreJsonWebKeySet,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no active signing key")]
    NoActiveKey,
    #[error("signing key {0}: {1}")]
    Broken(String, String),
}

/// A published key as it is kept: its private half sealed under the master key.
#[derive(Debug, Clone)]
pub struct SealedKey {
    pub kid: String,
    pub alg: String,
    pub private_sealed: String,
    /// When it started signing; None for a `next` or `retired` key.
    pub active_since: Option<chrono::NaiveDateTime>,
}

impl KeyRing {
    pub fn jwks(&self) -> &CoreJsonWebKeySet {
        &self.jwks
    }

    /// How many keys the ring publishes.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The kids of the published keys.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether both rings hold the very same checked key under `kid` (a reload that
    /// reused it rather than opening and checking it again).
    pub fn shares_key(&self, other: &KeyRing, kid: &str) -> bool {
        match (self.keys.get(kid), other.keys.get(kid)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The kid that signs access tokens and logout tokens (RS256).
    pub fn active_kid(&self) -> &str {
        &self.active[RS256]
    }

    /// The active RS256 key, for `openidconnect`'s ID token builder.
    pub fn active(&self) -> &RsaSigner {
        match self.keys[self.active_kid()].as_ref() {
            Published::Rsa(signer) => signer,
            Published::Ec(_) => unreachable!("the RS256 slot holds an RSA key"),
        }
    }

    /// The active ES256 key.
    pub fn active_ec(&self) -> &EcSigner {
        match self.keys[&self.active[ES256]].as_ref() {
            Published::Ec(signer) => signer,
            Published::Rsa { .. } => unreachable!("the ES256 slot holds an EC key"),
        }
    }

    /// A compact JWS over `claims` with the active key; `typ` per RFC 9068 / OIDC BCL.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        let header = serde_json::json!({ "alg": RS256, "typ": typ, "kid": self.active_kid() });
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .active()
            .sign_rs256(input.as_bytes())
            .expect("RSA PKCS#1 v1.5 signing does not fail for a checked key");
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        input
    }

    /// Verifies a JWS made by one of our published keys and returns its header and
    /// claims. Expiry and audience are the caller's business. Parsed and checked by the
    /// JWS library (RSA by OpenSSL behind it, see `jws_openssl`), with the algorithm of
    /// the key the `kid` names and no other.
    pub fn verify_jwt(&self, token: &str) -> Option<(Value, Value)> {
        if token.len() > 16 * 1024 {
            return None;
        }
        super::jws_openssl::install();
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        let (alg, decoding) = match key.as_ref() {
            Published::Rsa(signer) => (Algorithm::RS256, &signer.decoding),
            Published::Ec(signer) => (Algorithm::ES256, &signer.decoding),
        };
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, decoding, &validation)
                .ok()?;
        Some((
            serde_json::to_value(&data.header).ok()?,
            Value::Object(data.claims),
        ))
    }
}

/// The current key ring, shared by the workers of one instance and reloaded in place.
pub struct Keys {
    ring: RwLock<Arc<KeyRing>>,
}

impl Keys {
    pub fn new(ring: KeyRing) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    pub fn current(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }
}

/// A fresh key of `alg`: its sealed private half and its public JWK.
pub fn generate(
    master_key: &MasterKey,
    alg: &str,
    kid: &str,
) -> Result<(String, String), KeyError> {
    let broken = |e: String| KeyError::Broken(kid.to_owned(), e);
    let (private, jwk) = if alg == ES256 {
        // A uniformly random scalar; the odd out-of-range draw is simply redrawn.
        loop {
            let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, scalar.as_mut());
            if let Ok(signer) = EcSigner::from_scalar(scalar.as_ref(), kid) {
                break (scalar.to_vec(), signer.jwk);
            }
        }
    } else {
        let der = Rsa::generate(RSA_BITS)
            .and_then(|rsa| rsa.private_key_to_der())
            .map_err(|e| broken(e.to_string()))?;
        let signer = RsaSigner::from_pkcs1_der(&der, Some(kid)).map_err(broken)?;
        (der, signer.jwk)
    };
    let private = zeroize::Zeroizing::new(private);
    let sealed = master_key.seal(&seal_context(kid), &private);
    let jwk = serde_json::to_string(&jwk).map_err(|e| broken(e.to_string()))?;
    Ok((sealed, jwk))
}

/// A random key id: 96 bits, URL-safe.
pub fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Published {
    fn alg(&self) -> &'static str {
        match self {
            Published::Rsa(_) => RS256,
            Published::Ec(_) => ES256,
        }
    }

    fn jwk(&self) -> &CoreJsonWebKey {
        match self {
            Published::Rsa(signer) => &signer.jwk,
            Published::Ec(signer) => &signer.jwk,
        }
    }
}

/// The ring of the published keys `rows`, reusing the checked keys `previous` holds: a
/// key never changes under its kid, and opening one (a signature made and checked)
/// costs CPU for nothing. CPU work: call it off the request threads.
pub fn ring_from_sealed(
    master_key: &MasterKey,
    rows: Vec<SealedKey>,
    previous: Option<&KeyRing>,
) -> Result<KeyRing, KeyError> {
    let mut keys = HashMap::new();
    let mut jwks = Vec::new();
    let mut active: HashMap<&'static str, (chrono::NaiveDateTime, String)> = HashMap::new();
    for row in rows {
        let broken = |e: String| KeyError::Broken(row.kid.clone(), e);
        let Some(alg) = ALGORITHMS.iter().copied().find(|a| *a == row.alg) else {
            continue; // another capability's key (or a newer version's): not ours to publish
        };
        let known = previous
            .and_then(|ring| ring.keys.get(&row.kid))
            .filter(|p| p.alg() == alg);
        let published = match known {
            Some(published) => published.clone(),
            None => {
                let secret = master_key
                    .open(&seal_context(&row.kid), &row.private_sealed)
                    .map_err(|e| broken(e.to_string()))?;
                Arc::new(if alg == ES256 {
                    Published::Ec(
                        EcSigner::from_scalar(secret.expose_secret(), &row.kid).map_err(broken)?,
                    )
                } else {
                    Published::Rsa(
                        RsaSigner::from_pkcs1_der(secret.expose_secret(), Some(&row.kid))
                            .map_err(broken)?,
                    )
                })
            }
        };
        jwks.push(published.jwk().clone());
        if let Some(at) = row.active_since
            && active.get(alg).is_none_or(|(t, _)| at > *t)
        {
            active.insert(alg, (at, row.kid.clone()));
        }
        keys.insert(row.kid.clone(), published);
    }
    if ALGORITHMS.iter().any(|a| !active.contains_key(a)) {
        return Err(KeyError::NoActiveKey);
    }
    Ok(KeyRing {
        active: active.into_iter().map(|(a, (_, kid))| (a, kid)).collect(),
        keys,
        jwks: CoreJsonWebKeySet::new(jwks),
    })
}

#[cfg(test)]
mod tests {
    use rsa::{
        pkcs1::DecodeRsaPrivateKey,
        pkcs1v15::SigningKey,
        signature::{SignatureEncoding, Signer},
    };
    use sha2::Sha256;

    use super::*;

    fn der() -> Vec<u8> {
        Rsa::generate(RSA_BITS)
            .unwrap()
            .private_key_to_der()
            .unwrap()
    }

    #[test]
    fn openssl_signs_the_same_rs256_as_any_other_implementation() {
        // PKCS#1 v1.5 is deterministic: an independent implementation must produce the
        // very same bytes from the same key and message.
        let der = der();
        let signer = RsaSigner::from_pkcs1_der(&der, Some("k1")).unwrap();
        let reference =
            SigningKey::<Sha256>::new(rsa::RsaPrivateKey::from_pkcs1_der(&der).unwrap());
        let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0";
        let ours = signer.sign_rs256(message).unwrap();
        assert_eq!(ours, reference.sign(message).to_vec());
        assert!(signer.verify(message, &ours));
        assert!(!signer.verify(b"another message", &ours));
        assert!(
            !signer.verify(message, &ours[..10]),
            "a truncated signature"
        );
        assert!(!signer.verify(message, &[]), "no signature at all");
    }

    #[test]
    fn an_inconsistent_rsa_key_is_refused() {
        use openssl::bn::BigNum;
        let (a, b) = (
            Rsa::generate(RSA_BITS).unwrap(),
            Rsa::generate(RSA_BITS).unwrap(),
        );
        let copy = |n: &openssl::bn::BigNumRef| BigNum::from_slice(&n.to_vec()).unwrap();
        // `a`'s modulus with `b`'s private exponent and primes.
        let mixed = Rsa::from_private_components(
            copy(a.n()),
            copy(a.e()),
            copy(b.d()),
            copy(b.p().unwrap()),
            copy(b.q().unwrap()),
            copy(b.dmp1().unwrap()),
            copy(b.dmq1().unwrap()),
            copy(b.iqmp().unwrap()),
        )
        .unwrap();
        let der = mixed.private_key_to_der().unwrap();
        let refused = RsaSigner::from_pkcs1_der(&der, Some("k1")).err().unwrap();
        assert!(refused.contains("inconsistent"), "{refused}");
        assert!(RsaSigner::from_pkcs1_der(&a.private_key_to_der().unwrap(), None).is_ok());
    }

    #[test]
    fn a_signed_jwt_verifies_and_a_tampered_one_does_not() {
        let signer = RsaSigner::from_pkcs1_der(&der(), Some("k1")).unwrap();
        let jwk = signer.jwk.clone();
        let ring = KeyRing {
            active: HashMap::from([(RS256, "k1".to_owned())]),
            keys: HashMap::from([("k1".to_owned(), Arc::new(Published::Rsa(signer)))]),
            jwks: CoreJsonWebKeySet::new(vec![jwk]),
        };
        let token = ring.sign_jwt("at+jwt", &serde_json::json!({ "sub": "u1" }));
        let (header, claims) = ring.verify_jwt(&token).expect("our own token verifies");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["sub"], "u1");
        let (head, rest) = token.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
        let signature = rest.split_once('.').unwrap().1;
        assert!(
            ring.verify_jwt(&format!("{head}.{forged_claims}.{signature}"))
                .is_none()
        );
    }

    #[test]
    fn a_broken_key_is_refused() {
        let mut der = der();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(RsaSigner::from_pkcs1_der(&der, None).is_err());
    }
}
