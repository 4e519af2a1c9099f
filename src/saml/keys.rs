//! The IdP's SAML signing key (DESIGN §10, §12): RSA-2048 with a self-signed X.509
//! certificate, generated at first start, the private half sealed under the master key
//! like the OIDC keys, the certificate published in `/saml/metadata`.
//!
//! SAML trust is by certificate pinning (the SP imports our metadata), so a self-signed
//! certificate is what every IdP publishes; its validity dates are not what SPs check.
//!
//! Rotation (`gatehouse keys rotate --saml`) follows the OIDC keys (DESIGN §9): a `next`
//! key is always published in the metadata (a second KeyDescriptor `use="signing"`)
//! before it signs, so SPs that refresh our metadata trust it ahead of time; rotation makes
//! it the active key, publishes a new next one, and keeps the retired certificate in the
//! metadata for [`keep_retired`].

use std::sync::{Arc, RwLock};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Datelike, Utc};
use secrecy::{ExposeSecret, SecretSlice};

use crate::{
    crypto::MasterKey,
    store::{
        Store, StoreError,
        saml::{self, KEY_ACTIVE, KEY_NEXT, SamlKeyRow},
    },
};

const RSA_BITS: u32 = 2048;
/// How long the published certificate says it is valid.
const CERT_YEARS: i32 = 10;

fn seal_context(id: &str) -> String {
    crate::store::saml::key_seal_context(id)
}

/// The key assertions are signed with.
pub struct SamlKey {
    pub id: String,
    /// PKCS#8 DER, as `samael::crypto::Crypto::sign_xml` wants it.
    private_der: SecretSlice<u8>,
    /// X.509 DER of the self-signed certificate.
    pub certificate: Vec<u8>,
}

impl SamlKey {
    pub fn private_der(&self) -> &[u8] {
        self.private_der.expose_secret()
    }

    /// The certificate as metadata and KeyInfo carry it (base64 DER).
    pub fn certificate_base64(&self) -> String {
        STANDARD.encode(&self.certificate)
    }
}

impl std::fmt::Debug for SamlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlKey").field("id", &self.id).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SamlKeyError {
    #[error("SAML signing key: {0}")]
    Broken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fresh key and certificate for `entity_id` (its host names the certificate).
fn generate(
    master_key: &MasterKey,
    entity_id: &str,
    now: DateTime<Utc>,
    state: &str,
) -> Result<SamlKeyRow, SamlKeyError> {
    let broken = |e: String| SamlKeyError::Broken(e);
    // OpenSSL makes the key: the `rsa` crate's prime search took seconds of a first start
    // where OpenSSL's takes tens of milliseconds.
    let der = openssl::rsa::Rsa::generate(RSA_BITS)
        .and_then(openssl::pkey::PKey::from_rsa)
        .and_then(|key| key.private_key_to_pkcs8())
        .map(zeroize::Zeroizing::new)
        .map_err(|e| broken(e.to_string()))?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| broken(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| broken(e.to_string()))?;
    let host = url::Url::parse(entity_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "gatehouse".to_owned());
    let mut name = rcgen::DistinguishedName::new();
    name.push(
        rcgen::DnType::CommonName,
        format!("Gatehouse SAML IdP {host}"),
    );
    params.distinguished_name = name;
    let (y, m, d) = (now.year(), now.month() as u8, now.day() as u8);
    params.not_before = rcgen::date_time_ymd(y, m, d.min(28));
    params.not_after = rcgen::date_time_ymd(y + CERT_YEARS, m, d.min(28));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let certificate = params
        .self_signed(&pair)
        .map_err(|e| broken(e.to_string()))?;
    let id = crate::store::new_id();
    Ok(SamlKeyRow {
        private_sealed: master_key.seal(&seal_context(&id), &der),
        certificate: STANDARD.encode(certificate.der()),
        state: state.to_owned(),
        created_at: now.naive_utc(),
        activated_at: (state == KEY_ACTIVE).then(|| now.naive_utc()),
        retired_at: None,
        id,
    })
}

/// The published keys: the one that signs, and every certificate the metadata lists.
pub struct SamlKeySet {
    active: Arc<SamlKey>,
    /// Base64 DER: the active certificate first, then the next one, then retired ones.
    published: Vec<String>,
}

impl SamlKeySet {
    pub fn active(&self) -> Arc<SamlKey> {
        self.active.clone()
    }

    pub fn published_certificates(&self) -> &[String] {
        &self.published
    }
}

/// The key set a running server uses, replaced when a rotation is loaded.
pub struct SamlKeys {
    set: RwLock<Arc<SamlKeySet>>,
}

impl SamlKeys {
    pub fn new(set: SamlKeySet) -> Self {
        Self {
            set: RwLock::new(Arc::new(set)),
        }
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<SamlKey> {
        self.set().active()
    }

    pub fn set(&self) -> Arc<SamlKeySet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, set: SamlKeySet) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}

/// How long a retired certificate stays in the metadata: past the life of what it signed
/// (assertions, LogoutRequests) and past the metadata's own `cacheDuration` (one hour).
pub fn keep_retired(assertion_secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(assertion_secs).unwrap_or(3600) + 3600)
}

/// First start (and any start that finds a gap): an active and a next key exist.
pub async fn ensure(
    store: &Store,
    master_key: Arc<MasterKey>,
    entity_id: &str,
    now: DateTime<Utc>,
) -> Result<(), SamlKeyError> {
    ensure_slots(store, master_key, entity_id, now, &[KEY_ACTIVE, KEY_NEXT]).await
}

/// Only the active key: what a start needs before it serves; the next key follows
/// ([`ensure`]) once it serves.
pub async fn ensure_active(
    store: &Store,
    master_key: Arc<MasterKey>,
    entity_id: &str,
    now: DateTime<Utc>,
) -> Result<(), SamlKeyError> {
    ensure_slots(store, master_key, entity_id, now, &[KEY_ACTIVE]).await
}

async fn ensure_slots(
    store: &Store,
    master_key: Arc<MasterKey>,
    entity_id: &str,
    now: DateTime<Utc>,
    states: &'static [&'static str],
) -> Result<(), SamlKeyError> {
    let missing = store
        .run(move |c| {
            let mut missing = Vec::new();
            for &state in states {
                if saml::newest_key(c, state)?.is_none() {
                    missing.push(state);
                }
            }
            Ok(missing)
        })
        .await?;
    if missing.is_empty() {
        return Ok(());
    }
    // Made before the transaction, each on a thread of its own; a slot another instance
    // filled meanwhile keeps its key.
    let entity_id = entity_id.to_owned();
    let made = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let making: Vec<_> = missing
                .into_iter()
                .map(|state| scope.spawn(|| generate(&master_key, &entity_id, now, state)))
                .collect();
            making
                .into_iter()
                .map(|m| m.join().expect("key generation does not panic"))
                .collect::<Result<Vec<_>, _>>()
        })
    })
    .await
    .map_err(|e| SamlKeyError::Broken(e.to_string()))??;
    store
        .transaction(move |c| {
            for row in &made {
                if saml::newest_key(c, &row.state)?.is_none() {
                    saml::insert_key(c, row)?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// A rotation: the key that now signs and the newly published next one.
#[derive(Debug, Clone)]
pub struct SamlRotated {
    pub active_id: String,
    pub next_id: String,
}

/// `gatehouse keys rotate --saml`: the published next key starts signing, the active one
/// retires (still published for the grace period), and a new next key is published.
pub async fn rotate(
    store: &Store,
    master_key: Arc<MasterKey>,
    entity_id: &str,
    now: DateTime<Utc>,
) -> Result<SamlRotated, SamlKeyError> {
    let entity_id = entity_id.to_owned();
    let rotated = store
        .transaction(move |c| {
            let make = |c: &mut crate::store::DbConnection, state: &str| {
                let row = generate(&master_key, &entity_id, now, state)
                    .map_err(|e| StoreError::Query(e.to_string()))?;
                saml::insert_key(c, &row)?;
                Ok::<_, StoreError>(row.id)
            };
            let next = match saml::newest_key(c, KEY_NEXT)? {
                Some(row) => row.id,
                // Never published (a database from before rotation): the best there is now.
                None => make(c, KEY_NEXT)?,
            };
            saml::promote_key(c, &next, now.naive_utc())?;
            let next_id = make(c, KEY_NEXT)?;
            Ok(SamlRotated {
                active_id: next,
                next_id,
            })
        })
        .await?;
    Ok(rotated)
}

/// Loads the published keys; retired ones while `retired_at > now - keep_retired`.
pub async fn load(
    store: &Store,
    master_key: &MasterKey,
    now: DateTime<Utc>,
    keep_retired: chrono::Duration,
) -> Result<SamlKeySet, SamlKeyError> {
    let since = (now - keep_retired).naive_utc();
    let rows = store
        .run(move |c| {
            let active = saml::active_key(c)?;
            Ok((active, saml::published_keys(c, since)?))
        })
        .await?;
    let (Some(active), mut rows) = rows else {
        return Err(SamlKeyError::Broken("no active key".into()));
    };
    let rank = |state: &str| match state {
        KEY_ACTIVE => 1,
        KEY_NEXT => 2,
        _ => 3,
    };
    rows.retain(|r| r.id != active.id);
    rows.sort_by_key(|r| (rank(&r.state), std::cmp::Reverse(r.created_at)));
    let mut published = vec![active.certificate.clone()];
    published.extend(rows.into_iter().map(|r| r.certificate));
    Ok(SamlKeySet {
        active: Arc::new(open(master_key, &active)?),
        published,
    })
}

fn open(master_key: &MasterKey, row: &SamlKeyRow) -> Result<SamlKey, SamlKeyError> {
    let private_der = master_key
        .open(&seal_context(&row.id), &row.private_sealed)
        .map_err(|e| SamlKeyError::Broken(e.to_string()))?;
    let certificate = STANDARD
        .decode(&row.certificate)
        .map_err(|e| SamlKeyError::Broken(e.to_string()))?;
    Ok(SamlKey {
        id: row.id.clone(),
        private_der,
        certificate,
    })
}
