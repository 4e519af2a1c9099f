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
    JsonWebKeyId, PrivateSigningKey,
    core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
};
use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding},
    pkcs1v15::{Signature, VerifyingKey},
    signature::Verifier,
    traits::PublicKeyParts,
};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;

use super::MasterKey;
use crate::store::{
    DbConnection, Store, StoreError,
    signing_keys::{self, ACTIVE, NEXT, NewKey, SigningKeyRow},
};

pub const RS256: &str = "RS256";
const RSA_BITS: usize = 2048;

fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// One published key: the signer (if we hold it) and the verifier.
struct Published {
    signer: CoreRsaPrivateSigningKey,
    verifier: VerifyingKey<Sha256>,
}

/// The keys one instance signs and verifies with.
pub struct KeyRing {
    active_kid: String,
    keys: HashMap<String, Published>,
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

    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    /// The active key, for `openidconnect`'s ID token builder.
    pub fn active(&self) -> &CoreRsaPrivateSigningKey {
        &self.keys[&self.active_kid].signer
    }

    /// A compact JWS over `claims` with the active key; `typ` per RFC 9068 / OIDC BCL.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        let header = serde_json::json!({ "alg": RS256, "typ": typ, "kid": self.active_kid });
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .active()
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                input.as_bytes(),
            )
            .expect("RSA PKCS#1 v1.5 signing does not fail for a valid key");
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
        if header.get("alg")?.as_str()? != RS256 {
            return None;
        }
        let key = self.keys.get(header.get("kid")?.as_str()?)?;
        let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(s).ok()?.as_slice()).ok()?;
        let signed = &token[..h.len() + 1 + c.len()];
        key.verifier.verify(signed.as_bytes(), &signature).ok()?;
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

/// A fresh RSA key: its sealed private half and its public JWK.
fn generate(master_key: &MasterKey, kid: &str) -> Result<(String, String), KeyError> {
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
        .map_err(|e| KeyError::Broken(kid.to_owned(), e.to_string()))?;
    let der = private
        .to_pkcs1_der()
        .map_err(|e| KeyError::Broken(kid.to_owned(), e.to_string()))?;
    let sealed = master_key.seal(&seal_context(kid), der.as_bytes());
    let jwk = public_jwk(&private.to_public_key(), kid);
    let jwk =
        serde_json::to_string(&jwk).map_err(|e| KeyError::Broken(kid.into(), e.to_string()))?;
    Ok((sealed, jwk))
}

fn public_jwk(public: &RsaPublicKey, kid: &str) -> CoreJsonWebKey {
    CoreJsonWebKey::new_rsa(
        public.n().to_bytes_be(),
        public.e().to_bytes_be(),
        Some(JsonWebKeyId::new(kid.to_owned())),
    )
}

fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn insert_new(
    conn: &mut DbConnection,
    master_key: &MasterKey,
    state: &str,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let kid = new_kid();
    let (sealed, jwk) = generate(master_key, &kid)?;
    signing_keys::insert(
        conn,
        NewKey {
            kid: &kid,
            alg: RS256,
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
                if signing_keys::in_state(c, RS256, ACTIVE)?.is_empty() {
                    insert_new(c, &master_key, ACTIVE, now)?;
                }
                if signing_keys::in_state(c, RS256, NEXT)?.is_empty() {
                    insert_new(c, &master_key, NEXT, now)?;
                }
                Ok(())
            };
            run().map_err(to_store)
        })
        .await
        .map_err(KeyError::Store)
}

/// `gatehouse keys rotate`: the waiting `next` key starts signing, the active one retires
/// (still published), and a new `next` is published. Returns (now active, new next).
pub async fn rotate(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: DateTime<Utc>,
) -> Result<(String, String), KeyError> {
    store
        .transaction(move |c| {
            let mut run = || -> Result<(String, String), KeyError> {
                let next = match signing_keys::in_state(c, RS256, NEXT)?.into_iter().next() {
                    Some(k) => k.kid,
                    // Never published: create it now; it is as good as the operator can get.
                    None => insert_new(c, &master_key, NEXT, now)?,
                };
                signing_keys::promote(c, RS256, &next, now.naive_utc())?;
                let new_next = insert_new(c, &master_key, NEXT, now)?;
                Ok((next, new_next))
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
    let since = (now - keep_retired).naive_utc();
    let rows = store
        .run(move |c| signing_keys::published(c, since))
        .await?;
    ring_from_rows(&master_key, rows)
}

fn ring_from_rows(master_key: &MasterKey, rows: Vec<SigningKeyRow>) -> Result<KeyRing, KeyError> {
    let mut keys = HashMap::new();
    let mut jwks = Vec::new();
    let mut active: Option<(chrono::NaiveDateTime, String)> = None;
    for row in rows {
        let broken = |e: String| KeyError::Broken(row.kid.clone(), e);
        let der = master_key
            .open(&seal_context(&row.kid), &row.private_sealed)
            .map_err(|e| broken(e.to_string()))?;
        let private = RsaPrivateKey::from_pkcs1_der(der.expose_secret())
            .map_err(|e| broken(e.to_string()))?;
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| broken(e.to_string()))?;
        let signer =
            CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(row.kid.clone())))
                .map_err(broken)?;
        let public = private.to_public_key();
        jwks.push(public_jwk(&public, &row.kid));
        if row.state == ACTIVE {
            let at = row.activated_at.unwrap_or(row.created_at);
            if active.as_ref().is_none_or(|(t, _)| at > *t) {
                active = Some((at, row.kid.clone()));
            }
        }
        keys.insert(
            row.kid.clone(),
            Published {
                signer,
                verifier: VerifyingKey::new(public),
            },
        );
    }
    let (_, active_kid) = active.ok_or(KeyError::NoActiveKey)?;
    Ok(KeyRing {
        active_kid,
        keys,
        jwks: CoreJsonWebKeySet::new(jwks),
    })
}
