//! The IdP's SAML signing key (DESIGN §10, §12): RSA-2048 with a self-signed X.509
//! certificate, generated at first start, the private half sealed under the master key
//! like the OIDC keys, the certificate published in `/saml/metadata`.
//!
//! SAML trust is by certificate pinning (the SP imports our metadata), so a self-signed
//! certificate is what every IdP publishes; its validity dates are not what SPs check.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Datelike, Utc};
use rsa::{RsaPrivateKey, pkcs8::EncodePrivateKey};
use secrecy::{ExposeSecret, SecretSlice};

use crate::{
    crypto::MasterKey,
    store::{
        Store, StoreError,
        saml::{self, KEY_ACTIVE, SamlKeyRow},
    },
};

const RSA_BITS: usize = 2048;
/// How long the published certificate says it is valid.
const CERT_YEARS: i32 = 10;

fn seal_context(id: &str) -> String {
    format!("saml-signing-key:{id}")
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
) -> Result<SamlKeyRow, SamlKeyError> {
    let broken = |e: String| SamlKeyError::Broken(e);
    let private =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(|e| broken(e.to_string()))?;
    let der = private.to_pkcs8_der().map_err(|e| broken(e.to_string()))?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
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
        private_sealed: master_key.seal(&seal_context(&id), der.as_bytes()),
        certificate: STANDARD.encode(certificate.der()),
        state: KEY_ACTIVE.to_owned(),
        created_at: now.naive_utc(),
        id,
    })
}

/// First start (and any start that finds none): an active key exists. Returns it opened.
pub async fn ensure(
    store: &Store,
    master_key: Arc<MasterKey>,
    entity_id: &str,
    now: DateTime<Utc>,
) -> Result<SamlKey, SamlKeyError> {
    let entity_id = entity_id.to_owned();
    let mk = master_key.clone();
    let row = store
        .transaction(move |c| {
            if let Some(row) = saml::active_key(c)? {
                return Ok(row);
            }
            let row =
                generate(&mk, &entity_id, now).map_err(|e| StoreError::Query(e.to_string()))?;
            saml::insert_key(c, &row)?;
            Ok(row)
        })
        .await?;
    // Two instances starting at once may both have made one: all use the same winner.
    let row = store.run(saml::active_key).await?.unwrap_or(row);
    open(&master_key, &row)
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
