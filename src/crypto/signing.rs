//! Token signing keys (DESIGN §9, §12): making them, sealing their private half under
//! the master key, and the ring of published keys each instance signs and verifies with
//! ([`KeyRing`]). Where they are kept and how they rotate is `crate::keys::rings`.

mod signers;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openssl::rsa::Rsa;
use secrecy::ExposeSecret;
use serde_json::Value;

pub use signers::{EcSigner, EdSigner, PublishedKey, RsaSigner};

use super::MasterKey;

pub const RS256: &str = "RS256";
pub const ES256: &str = "ES256";
pub const EDDSA: &str = "EdDSA";

/// An algorithm Gatehouse signs its tokens with, each with a key ring of its own: RS256
/// for every relying party, ECDSA P-256 and Ed25519 for those that ask (`id_token_alg`,
/// `access_token_alg`): OpenSSL signs with them about ten times faster than with RSA-2048.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Rs256,
    Es256,
    EdDsa,
}

/// Every algorithm Gatehouse keeps a key ring for.
pub const ALGORITHMS: &[SigningAlg] = &[SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

impl SigningAlg {
    /// Its JWA name (RFC 7518 §3.1, RFC 8037 §3.1): in a JWS header, in the store, in a
    /// client's registration.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => RS256,
            SigningAlg::Es256 => ES256,
            SigningAlg::EdDsa => EDDSA,
        }
    }

    /// The algorithm of exactly this JWA name (names are case-sensitive, RFC 7515
    /// §4.1.1), if Gatehouse signs with it.
    pub fn parse(name: &str) -> Option<Self> {
        ALGORITHMS.iter().copied().find(|a| a.name() == name)
    }

    pub fn jws(self) -> CoreJwsSigningAlgorithm {
        match self {
            SigningAlg::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            SigningAlg::Es256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            SigningAlg::EdDsa => CoreJwsSigningAlgorithm::EdDsa,
        }
    }

    fn verifying(self) -> Algorithm {
        match self {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const RSA_BITS: u32 = 2048;

/// What a private signing key is sealed for: its kid (also used by the master-key
/// rotation's re-sealer, `store::signing_keys::reseal`).
pub fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// The keys one instance signs and verifies with.
pub struct KeyRing {
    /// The key that signs, and its kid, per algorithm.
    active: HashMap<SigningAlg, (String, Arc<PublishedKey>)>,
    /// Shared with the rings loaded after this one: a key, once checked, is reused.
    keys: HashMap<String, Arc<PublishedKey>>,
    jwks: CoreJsonWebKeySet,
    /// `jwks` as JSON, serialised once per ring: what `/jwks` sends.
    jwks_json: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no active {0} signing key")]
    NoActiveKey(SigningAlg),
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

    /// The JWKS as JSON, ready to send (shared, not copied).
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
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

    /// The kid that signs with `alg`.
    pub fn active_kid(&self, alg: SigningAlg) -> &str {
        &self.active[&alg].0
    }

    /// The key that signs with `alg` (for `openidconnect`'s ID token builder). Every
    /// ring has one for each algorithm: [`ring_from_sealed`] makes no ring without.
    pub fn signing_key(&self, alg: SigningAlg) -> &PublishedKey {
        &self.active[&alg].1
    }

    /// A compact RS256 JWS over `claims` with the active key; `typ` per RFC 9068 / OIDC
    /// BCL. For what every relying party can check: an upstream's client assertion, a
    /// FHIR server's search token.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        self.sign_jwt_with(SigningAlg::Rs256, typ, claims)
    }

    /// A compact JWS over `claims` with the active key of `alg`.
    pub fn sign_jwt_with(&self, alg: SigningAlg, typ: &str, claims: &Value) -> String {
        let (kid, key) = &self.active[&alg];
        let header = serde_json::json!({ "alg": alg.name(), "typ": typ, "kid": kid });
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = key
            .sign_message(input.as_bytes())
            .expect("OpenSSL signing does not fail for a checked key");
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        input
    }

    /// Verifies a JWS made by one of our published keys and returns its header and
    /// claims. Expiry and audience are the caller's business. Parsed and checked by the
    /// JWS library (RSA and ES256 by OpenSSL behind it, see `jws_openssl`), with the
    /// algorithm of the key the `kid` names and no other: a header naming another
    /// algorithm for that key is refused, whatever its signature.
    pub fn verify_jwt(&self, token: &str) -> Option<(Value, Value)> {
        if token.len() > 16 * 1024 {
            return None;
        }
        super::jws_openssl::install();
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(key.alg().verifying());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            key.decoding(),
            &validation,
        )
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
    alg: SigningAlg,
    kid: &str,
) -> Result<(String, String), KeyError> {
    let broken = |e: String| KeyError::Broken(kid.to_owned(), e);
    let (private, jwk) = match alg {
        SigningAlg::Es256 => loop {
            // A uniformly random scalar; the odd out-of-range draw is simply redrawn.
            let mut scalar = zeroize::Zeroizing::new(vec![0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, scalar.as_mut());
            if let Ok(signer) = EcSigner::from_scalar(&scalar, kid) {
                break (scalar, signer.jwk);
            }
        },
        SigningAlg::EdDsa => {
            let private = EdSigner::generate().map_err(broken)?;
            let signer = EdSigner::from_private_bytes(&private, kid).map_err(broken)?;
            (private, signer.jwk)
        }
        SigningAlg::Rs256 => {
            let der = Rsa::generate(RSA_BITS)
                .and_then(|rsa| rsa.private_key_to_der())
                .map(zeroize::Zeroizing::new)
                .map_err(|e| broken(e.to_string()))?;
            let signer = RsaSigner::from_pkcs1_der(&der, Some(kid)).map_err(broken)?;
            (der, signer.jwk)
        }
    };
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

/// The checked key of a row, from its sealed private half.
fn open_key(
    master_key: &MasterKey,
    row: &SealedKey,
    alg: SigningAlg,
) -> Result<PublishedKey, KeyError> {
    let broken = |e: String| KeyError::Broken(row.kid.clone(), e);
    let secret = master_key
        .open(&seal_context(&row.kid), &row.private_sealed)
        .map_err(|e| broken(e.to_string()))?;
    let private = secret.expose_secret();
    Ok(match alg {
        SigningAlg::Rs256 => {
            PublishedKey::Rsa(RsaSigner::from_pkcs1_der(private, Some(&row.kid)).map_err(broken)?)
        }
        SigningAlg::Es256 => {
            PublishedKey::Ec(EcSigner::from_scalar(private, &row.kid).map_err(broken)?)
        }
        SigningAlg::EdDsa => {
            PublishedKey::Ed(EdSigner::from_private_bytes(private, &row.kid).map_err(broken)?)
        }
    })
}

/// The ring of the published keys `rows`, reusing the checked keys `previous` holds: a
/// key never changes under its kid, and opening one again costs CPU for nothing. CPU
/// work: call it off the request threads.
///
/// Every algorithm of [`ALGORITHMS`] must have an active key (`keys::rings::ensure`
/// makes the missing ones at start, as for a database from before an algorithm was
/// added); rows of an algorithm this build does not know are left out.
pub fn ring_from_sealed(
    master_key: &MasterKey,
    rows: Vec<SealedKey>,
    previous: Option<&KeyRing>,
) -> Result<KeyRing, KeyError> {
    let mut keys = HashMap::new();
    let mut jwks = Vec::new();
    let mut active: HashMap<SigningAlg, (chrono::NaiveDateTime, String)> = HashMap::new();
    for row in rows {
        let Some(alg) = SigningAlg::parse(&row.alg) else {
            continue; // another capability's key (or a newer version's): not ours to publish
        };
        let known = previous
            .and_then(|ring| ring.keys.get(&row.kid))
            .filter(|p| p.alg() == alg);
        let published = match known {
            Some(published) => published.clone(),
            None => Arc::new(open_key(master_key, &row, alg)?),
        };
        jwks.push(published.jwk().clone());
        if let Some(at) = row.active_since
            && active.get(&alg).is_none_or(|(t, _)| at > *t)
        {
            active.insert(alg, (at, row.kid.clone()));
        }
        keys.insert(row.kid, published);
    }
    let mut signing = HashMap::new();
    for alg in ALGORITHMS {
        let (_, kid) = active.remove(alg).ok_or(KeyError::NoActiveKey(*alg))?;
        let key = keys[&kid].clone();
        signing.insert(*alg, (kid, key));
    }
    let jwks = CoreJsonWebKeySet::new(jwks);
    let jwks_json = serde_json::to_vec(&jwks)
        .map_err(|e| KeyError::Broken("the key set".into(), e.to_string()))?
        .into();
    Ok(KeyRing {
        active: signing,
        keys,
        jwks,
        jwks_json,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(master_key: &MasterKey, alg: SigningAlg, kid: &str, active: bool) -> SealedKey {
        let (private_sealed, _) = generate(master_key, alg, kid).unwrap();
        SealedKey {
            kid: kid.to_owned(),
            alg: alg.name().to_owned(),
            private_sealed,
            active_since: active.then(|| chrono::Utc::now().naive_utc()),
        }
    }

    /// A ring with an active key of each algorithm, kid `<alg>-1`, made as in production:
    /// generated, sealed, opened.
    fn ring() -> KeyRing {
        let master_key = MasterKey::generate();
        let rows = ALGORITHMS
            .iter()
            .map(|alg| row(&master_key, *alg, &format!("{alg}-1"), true))
            .collect();
        ring_from_sealed(&master_key, rows, None).unwrap()
    }

    /// A compact JWS with exactly `header`, signed by `key`.
    fn signed(key: &PublishedKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign_message(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn a_signed_jwt_of_each_algorithm_verifies_and_a_tampered_one_does_not() {
        let ring = ring();
        for alg in ALGORITHMS.iter().copied() {
            let token = ring.sign_jwt_with(alg, "at+jwt", &json!({ "sub": "u1" }));
            let (header, claims) = ring.verify_jwt(&token).expect("our own token verifies");
            assert_eq!(header["alg"], alg.name());
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["kid"], ring.active_kid(alg));
            assert_eq!(claims["sub"], "u1");
            let (head, rest) = token.split_once('.').unwrap();
            let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
            let signature = rest.split_once('.').unwrap().1;
            assert!(
                ring.verify_jwt(&format!("{head}.{forged_claims}.{signature}"))
                    .is_none(),
                "{alg}"
            );
        }
        let rs256 = ring.sign_jwt("JWT", &json!({}));
        assert!(rs256.starts_with(&URL_SAFE_NO_PAD.encode(
            json!({ "alg": "RS256", "typ": "JWT", "kid": ring.active_kid(SigningAlg::Rs256) })
                .to_string()
        )));
    }

    #[test]
    fn the_key_a_kid_names_decides_the_algorithm_never_the_header() {
        let ring = ring();
        for named in ALGORITHMS.iter().copied() {
            let kid = ring.active_kid(named);
            for signer in ALGORITHMS.iter().copied().filter(|a| *a != named) {
                // A genuine signature by another of our keys, its header naming that
                // key's algorithm and this kid: refused.
                let token = signed(
                    ring.signing_key(signer),
                    json!({ "alg": signer.name(), "typ": "at+jwt", "kid": kid }),
                    json!({ "sub": "admin" }),
                );
                assert!(
                    ring.verify_jwt(&token).is_none(),
                    "{signer} under {named}'s kid"
                );
            }
            // HMAC with the published key as the secret, and no signature at all.
            let public = serde_json::to_string(ring.signing_key(named).jwk()).unwrap();
            for alg in ["HS256", "none"] {
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "kid": kid }).to_string()),
                    URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#)
                );
                let mac = hmac_sha256(public.as_bytes(), input.as_bytes());
                assert!(
                    ring.verify_jwt(&format!("{input}.{mac}")).is_none(),
                    "{alg}"
                );
                assert!(ring.verify_jwt(&format!("{input}.")).is_none(), "{alg}");
            }
        }
    }

    fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_ring_needs_an_active_key_of_every_algorithm_and_skips_unknown_ones() {
        let master_key = MasterKey::generate();
        // A database from before EdDSA: RS256 and ES256 keys only.
        let older = vec![
            row(&master_key, SigningAlg::Rs256, "r1", true),
            row(&master_key, SigningAlg::Es256, "e1", true),
        ];
        let err = ring_from_sealed(&master_key, older.clone(), None)
            .err()
            .unwrap();
        assert!(
            matches!(err, KeyError::NoActiveKey(SigningAlg::EdDsa)),
            "{err}"
        );
        assert_eq!(err.to_string(), "no active EdDSA signing key");
        // Published but not yet signing is not enough.
        let mut rows = older.clone();
        rows.push(row(&master_key, SigningAlg::EdDsa, "d-next", false));
        assert!(ring_from_sealed(&master_key, rows.clone(), None).is_err());
        // An active one completes it; a key of an algorithm this build does not know
        // (a newer version's) is left out, not refused.
        rows.push(row(&master_key, SigningAlg::EdDsa, "d1", true));
        rows.push(SealedKey {
            alg: "ES512".into(),
            ..row(&master_key, SigningAlg::Es256, "x1", true)
        });
        let ring = ring_from_sealed(&master_key, rows, None).unwrap();
        assert_eq!(ring.len(), 4);
        assert!(!ring.kids().any(|k| k == "x1"));
        assert_eq!(ring.active_kid(SigningAlg::EdDsa), "d1");
        assert_eq!(ring.jwks().keys().len(), 4);
    }

    #[test]
    fn algorithm_names_are_exact() {
        for alg in ALGORITHMS.iter().copied() {
            assert_eq!(SigningAlg::parse(alg.name()), Some(alg));
        }
        for other in [
            "", "rs256", "EDDSA", "eddsa", "ES512", "HS256", "none", "RS256 ",
        ] {
            assert_eq!(SigningAlg::parse(other), None, "{other:?}");
        }
    }
}
