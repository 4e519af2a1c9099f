//! Token signing keys and their rotation (DESIGN §9, §12).
//!
//! Keys live in the database with their private half sealed under the master key. A key
//! moves `next` → `active` → `retired`: it is published in the JWKS from the moment it is
//! created, so relying parties have it cached before it signs anything, and it stays
//! published after retirement until every token it signed has expired. Each instance
//! keeps the published set in memory ([`KeyRing`]) and reloads it periodically, so a
//! `gatehouse keys rotate` run against the shared database reaches every instance.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
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
use crate::store::{
    DbConnection, Store, StoreError,
    signing_keys::{self, ACTIVE, NEXT, NewKey, SigningKeyRow},
};

pub const RS256: &str = "RS256";
/// ECDSA P-256, for relying parties that ask for it (`id_token_alg`).
pub const ES256: &str = "ES256";
/// Every algorithm Gatehouse keeps a key ring for.
pub const ALGORITHMS: &[&str] = &[RS256, ES256];
const RSA_BITS: u32 = 2048;

fn seal_context(kid: &str) -> String {
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
}

impl RsaSigner {
    /// From a PKCS#1 DER private key (how keys are sealed in the store).
    pub fn from_pkcs1_der(der: &[u8], kid: Option<&str>) -> Result<Self, String> {
        let rsa = Rsa::private_key_from_der(der).map_err(|e| e.to_string())?;
        if !rsa.check_key().map_err(|e| e.to_string())? {
            return Err("inconsistent RSA key".into());
        }
        let jwk = CoreJsonWebKey::new_rsa(
            rsa.n().to_vec(),
            rsa.e().to_vec(),
            kid.map(|k| JsonWebKeyId::new(k.to_owned())),
        );
        let key = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
        Ok(Self { key, jwk })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(message))
            .map_err(|e| SigningError::Other(e.to_string()))
    }

    /// RS256 signature check against this key's public half.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        openssl::sign::Verifier::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut verifier| verifier.verify_oneshot(signature, message))
            .unwrap_or(false)
    }
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
        let jwk = CoreJsonWebKey::new_ec(
            bytes[1..33].to_vec(),
            bytes[33..65].to_vec(),
            CoreJsonCurveType::P256,
            Some(JsonWebKeyId::new(kid.to_owned())),
        );
        Ok(Self { key, jwk })
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| self.key.verifying_key().verify(message, &sig).is_ok())
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyRing {
    pub fn jwks(&self) -> &CoreJsonWebKeySet {
        &self.jwks
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
    /// claims. Expiry and audience are the caller's business.
    pub fn verify_jwt(&self, token: &str) -> Option<(Value, Value)> {
        if token.len() > 16 * 1024 {
            return None;
        }
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        let alg = header.get("alg")?.as_str()?;
        let key = self.keys.get(header.get("kid")?.as_str()?)?;
        let signature = URL_SAFE_NO_PAD.decode(s).ok()?;
        let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
        let verified = match (alg, key.as_ref()) {
            (RS256, Published::Rsa(signer)) => signer.verify(signed, &signature),
            (ES256, Published::Ec(signer)) => signer.verify(signed, &signature),
            _ => false,
        };
        if !verified {
            return None;
        }
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
        claims.is_object().then_some((header, claims))
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
fn generate(master_key: &MasterKey, alg: &str, kid: &str) -> Result<(String, String), KeyError> {
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

fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn insert_new(
    conn: &mut DbConnection,
    master_key: &MasterKey,
    alg: &str,
    state: &str,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let kid = new_kid();
    let (sealed, jwk) = generate(master_key, alg, &kid)?;
    signing_keys::insert(
        conn,
        NewKey {
            kid: &kid,
            alg,
            state,
            private_sealed: &sealed,
            public_jwk: &jwk,
        },
        now.naive_utc(),
    )?;
    Ok(kid)
}

/// First start (and any start that finds a gap): an active key and a next key exist.
pub async fn ensure(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<(), KeyError> {
    store
        .transaction(move |c| {
            let mut run = || -> Result<(), KeyError> {
                for alg in ALGORITHMS {
                    if signing_keys::in_state(c, alg, ACTIVE)?.is_empty() {
                        insert_new(c, &master_key, alg, ACTIVE, now)?;
                    }
                    if signing_keys::in_state(c, alg, NEXT)?.is_empty() {
                        insert_new(c, &master_key, alg, NEXT, now)?;
                    }
                }
                Ok(())
            };
            run().map_err(to_store)
        })
        .await
        .map_err(KeyError::Store)
}

/// One algorithm's rotation: the key that now signs and the newly published next key.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub alg: &'static str,
    pub active_kid: String,
    pub next_kid: String,
}

/// `gatehouse keys rotate`: for every algorithm, the waiting `next` key starts signing,
/// the active one retires (still published), and a new `next` is published.
pub async fn rotate(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<Vec<Rotated>, KeyError> {
    store
        .transaction(move |c| {
            let mut run = || -> Result<Vec<Rotated>, KeyError> {
                let mut out = Vec::new();
                for alg in ALGORITHMS {
                    let next = match signing_keys::in_state(c, alg, NEXT)?.into_iter().next() {
                        Some(k) => k.kid,
                        // Never published: create it now; it is as good as the operator can get.
                        None => insert_new(c, &master_key, alg, NEXT, now)?,
                    };
                    signing_keys::promote(c, alg, &next, now.naive_utc())?;
                    let next_kid = insert_new(c, &master_key, alg, NEXT, now)?;
                    out.push(Rotated {
                        alg,
                        active_kid: next,
                        next_kid,
                    });
                }
                Ok(out)
            };
            run().map_err(to_store)
        })
        .await
        .map_err(KeyError::Store)
}

fn to_store(e: KeyError) -> StoreError {
    match e {
        KeyError::Store(s) => s,
        other => StoreError::Query(other.to_string()),
    }
}

/// Loads the published keys. Retired keys are kept while `retired_at > now - keep_retired`.
pub async fn load(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
    keep_retired: chrono::Duration,
) -> Result<KeyRing, KeyError> {
    reload(store, master_key, now, keep_retired, None).await
}

/// Like [`load`], reusing the keys `current` already holds: a key never changes under
/// its kid, and checking an RSA key (OpenSSL's `RSA_check_key`, primality tests
/// included) costs tens of milliseconds, which the periodic reload would otherwise pay
/// again for every key, every time.
pub async fn reload(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
    keep_retired: chrono::Duration,
    current: Option<Arc<KeyRing>>,
) -> Result<KeyRing, KeyError> {
    let since = (now - keep_retired).naive_utc();
    let rows = store
        .run(move |c| signing_keys::published(c, since))
        .await?;
    // Opening and checking new keys is CPU work: off the request threads.
    tokio::task::spawn_blocking(move || ring_from_rows(&master_key, rows, current.as_deref()))
        .await
        .map_err(|e| KeyError::Store(StoreError::Query(format!("key loading failed: {e}"))))?
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

fn ring_from_rows(
    master_key: &MasterKey,
    rows: Vec<SigningKeyRow>,
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
        if row.state == ACTIVE {
            let at = row.activated_at.unwrap_or(row.created_at);
            if active.get(alg).is_none_or(|(t, _)| at > *t) {
                active.insert(alg, (at, row.kid.clone()));
            }
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

    #[tokio::test]
    async fn a_reload_reuses_the_keys_it_has_and_adds_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite(&dir, 2).await;
        let master_key = Arc::new(MasterKey::generate());
        let now = Utc::now();
        let keep = chrono::Duration::hours(1);
        ensure(&store, master_key.clone(), now).await.unwrap();
        let first = Arc::new(load(&store, master_key.clone(), now, keep).await.unwrap());
        let again = reload(&store, master_key.clone(), now, keep, Some(first.clone()))
            .await
            .unwrap();
        assert_eq!(again.keys.len(), 4, "active and next, for each algorithm");
        for (kid, key) in &again.keys {
            assert!(
                Arc::ptr_eq(key, &first.keys[kid]),
                "{kid} was checked again"
            );
        }
        rotate(&store, master_key.clone(), now).await.unwrap();
        let rotated = reload(&store, master_key, now, keep, Some(first.clone()))
            .await
            .unwrap();
        assert_eq!(rotated.keys.len(), 6, "the retired keys stay published");
        assert_ne!(rotated.active_kid(), first.active_kid());
        assert!(
            first.keys.contains_key(rotated.active_kid()),
            "the next key took over"
        );
        let token = rotated.sign_jwt("at+jwt", &serde_json::json!({ "sub": "u1" }));
        assert!(rotated.verify_jwt(&token).is_some());
    }

    #[test]
    fn a_broken_key_is_refused() {
        let mut der = der();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(RsaSigner::from_pkcs1_der(&der, None).is_err());
    }
}
