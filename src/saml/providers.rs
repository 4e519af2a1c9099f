//! Service providers (DESIGN §10): registered by importing their metadata
//! (`gatehouse sp import --metadata FILE_OR_URL`), with per-SP settings for the NameID,
//! attributes, signing, encryption and request signatures, and whether (and to which
//! RelayStates) the SP accepts IdP-initiated sign-ins.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use samael::metadata::{EntityDescriptor, KeyDescriptor, SpSsoDescriptor};
use serde::{Deserialize, Serialize};

use super::{
    attributes, idp_initiated,
    xml::{self, MAX_METADATA_BYTES},
};
use crate::store::{
    Store, StoreError,
    saml::{self, ServiceProviderRow},
};

pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const NAMEID_FORMATS: &[&str] = &[
    NAMEID_PERSISTENT,
    NAMEID_EMAIL,
    NAMEID_TRANSIENT,
    NAMEID_UNSPECIFIED,
];

/// Longest entity id accepted (they are URLs or URNs).
pub const MAX_ENTITY_ID_LEN: usize = 1024;
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub binding: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(default)]
    pub is_default: bool,
}

/// What the NameID value is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameIdSource {
    /// Opaque, stable, different for every SP (HMAC of SP and user): no correlation
    /// between SPs. The default for `persistent`.
    Pairwise,
    /// Gatehouse's user id (stable, the same for every SP).
    UserId,
    Username,
    Email,
    /// A new random value in every assertion (`transient`).
    Random,
}

impl NameIdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pairwise => "pairwise",
            Self::UserId => "user_id",
            Self::Username => "username",
            Self::Email => "email",
            Self::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pairwise" => Self::Pairwise,
            "user_id" => Self::UserId,
            "username" => Self::Username,
            "email" => Self::Email,
            "random" => Self::Random,
            _ => return None,
        })
    }

    fn default_for(format: &str) -> Self {
        match format {
            NAMEID_PERSISTENT => Self::Pairwise,
            NAMEID_EMAIL => Self::Email,
            NAMEID_TRANSIENT => Self::Random,
            _ => Self::Username,
        }
    }

    fn fits(self, format: &str) -> bool {
        match format {
            NAMEID_PERSISTENT => matches!(self, Self::Pairwise | Self::UserId),
            NAMEID_EMAIL => self == Self::Email,
            NAMEID_TRANSIENT => self == Self::Random,
            _ => self != Self::Random,
        }
    }
}

/// What an SP is released when neither the administrator nor its metadata names
/// attributes: every field under Gatehouse's own (`basic`) name.
fn default_attributes() -> BTreeMap<String, String> {
    [
        ("email", "email"),
        ("name", "displayName"),
        ("username", "username"),
        ("roles", "roles"),
        ("organisation", "organisation"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A registered SP, parsed from its row.
#[derive(Debug, Clone)]
pub struct ServiceProvider {
    pub entity_id: String,
    pub name: String,
    /// Its HTTP-POST AssertionConsumerService endpoints: the only binding Gatehouse
    /// answers by (DESIGN §10).
    pub acs: Vec<Endpoint>,
    /// ACS endpoints its metadata listed by other bindings (Artifact, PAOS, SimpleSign…),
    /// which are not registered: said once, in the answer to an import, never stored.
    pub skipped_acs: Vec<Endpoint>,
    pub slo: Vec<Endpoint>,
    pub signing_certs: Vec<Vec<u8>>,
    pub encryption_certs: Vec<Vec<u8>>,
    pub name_id_format: String,
    pub name_id_source: NameIdSource,
    /// What it is released → the SAML attribute name it goes out under: a field
    /// (`email`, …) or a well-known attribute (`mail`, …), see [`attributes`].
    pub attributes: BTreeMap<String, String>,
    /// Attributes its metadata requested that Gatehouse cannot supply: said once, in
    /// the answer to an import, never stored.
    pub unsupplied_attributes: Vec<String>,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub require_signed_requests: bool,
    pub encrypt_assertions: bool,
    /// Accepts unsolicited Responses started at `/saml/sso/init` (Profiles §4.1.5). Off
    /// unless an administrator turns it on: such a link works from any site.
    pub idp_initiated: bool,
    /// The only RelayStates an IdP-initiated sign-in may carry to this SP (exact strings).
    pub idp_initiated_relay_states: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpError {
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("stored service provider {0} is damaged")]
    Damaged(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn metadata_error(e: impl std::fmt::Display) -> SpError {
    SpError::Metadata(e.to_string())
}

impl ServiceProvider {
    pub fn from_row(row: &ServiceProviderRow) -> Result<Self, SpError> {
        let damaged = || SpError::Damaged(row.entity_id.clone());
        let certs = |text: &str| -> Result<Vec<Vec<u8>>, SpError> {
            let list: Vec<String> = serde_json::from_str(text).map_err(|_| damaged())?;
            list.iter()
                .map(|c| STANDARD.decode(c).map_err(|_| damaged()))
                .collect()
        };
        Ok(Self {
            entity_id: row.entity_id.clone(),
            name: row.name.clone(),
            acs: serde_json::from_str(&row.acs_endpoints).map_err(|_| damaged())?,
            skipped_acs: Vec::new(),
            slo: serde_json::from_str(&row.slo_endpoints).map_err(|_| damaged())?,
            signing_certs: certs(&row.signing_certs)?,
            encryption_certs: certs(&row.encryption_certs)?,
            name_id_format: row.name_id_format.clone(),
            name_id_source: NameIdSource::parse(&row.name_id_source).ok_or_else(damaged)?,
            attributes: serde_json::from_str(&row.attribute_map).map_err(|_| damaged())?,
            unsupplied_attributes: Vec::new(),
            sign_assertion: row.sign_assertion,
            sign_response: row.sign_response,
            require_signed_requests: row.require_signed_requests,
            encrypt_assertions: row.encrypt_assertions,
            idp_initiated: row.idp_initiated,
            idp_initiated_relay_states: serde_json::from_str(&row.idp_initiated_relay_states)
                .map_err(|_| damaged())?,
        })
    }

    /// The ACS endpoint a request names (by exact URL or index), or the default one.
    /// Only HTTP-POST endpoints: Responses go back by POST (DESIGN §10).
    pub fn acs(&self, url: Option<&str>, index: Option<usize>) -> Option<&Endpoint> {
        let post = self.acs.iter().filter(|e| e.binding == BINDING_POST);
        match (url, index) {
            (Some(url), _) => post.clone().find(|e| e.location == url),
            (None, Some(i)) => post.clone().find(|e| e.index == Some(i)),
            (None, None) => self.default_acs(),
        }
    }

    /// Metadata §2.2.3: the endpoint marked default, else the first without
    /// `isDefault="false"`, else the first.
    pub fn default_acs(&self) -> Option<&Endpoint> {
        let post: Vec<&Endpoint> = self
            .acs
            .iter()
            .filter(|e| e.binding == BINDING_POST)
            .collect();
        post.iter()
            .find(|e| e.is_default)
            .or_else(|| post.first())
            .copied()
    }

    /// Where to send a LogoutRequest or LogoutResponse, by the binding we prefer.
    pub fn slo(&self) -> Option<&Endpoint> {
        self.slo
            .iter()
            .find(|e| e.binding == BINDING_REDIRECT)
            .or_else(|| self.slo.iter().find(|e| e.binding == BINDING_POST))
    }

    pub fn to_row(&self, metadata: &str, now: DateTime<Utc>) -> ServiceProviderRow {
        let certs = |list: &[Vec<u8>]| {
            serde_json::to_string(&list.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into())
        };
        ServiceProviderRow {
            entity_id: self.entity_id.clone(),
            name: self.name.clone(),
            acs_endpoints: json(&self.acs),
            slo_endpoints: json(&self.slo),
            signing_certs: certs(&self.signing_certs),
            encryption_certs: certs(&self.encryption_certs),
            name_id_format: self.name_id_format.clone(),
            name_id_source: self.name_id_source.as_str().to_owned(),
            attribute_map: json(&self.attributes),
            sign_assertion: self.sign_assertion,
            sign_response: self.sign_response,
            require_signed_requests: self.require_signed_requests,
            encrypt_assertions: self.encrypt_assertions,
            idp_initiated: self.idp_initiated,
            idp_initiated_relay_states: json(&self.idp_initiated_relay_states),
            metadata: metadata.to_owned(),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // Plain data (strings, maps of strings) always serialises.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// What the administrator decides on import; `None` takes the metadata's word or the default.
#[derive(Debug, Clone, Default)]
pub struct ImportSettings {
    pub name: Option<String>,
    pub name_id_format: Option<String>,
    pub name_id_source: Option<String>,
    /// `field=AttributeName`, or a well-known attribute's name (`mail`); `key=` drops
    /// the entry. Empty: what the SP's metadata requests, else the defaults.
    pub attributes: Vec<String>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    /// Default false: IdP-initiated SSO is an opt-in.
    pub idp_initiated: Option<bool>,
    /// Default none.
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> SpError {
    SpError::Invalid {
        field,
        reason: reason.into(),
    }
}

pub(super) fn certificates(
    descriptors: &[KeyDescriptor],
    usage: &str,
) -> Result<Vec<Vec<u8>>, SpError> {
    let mut out = Vec::new();
    for d in descriptors {
        // Metadata §2.4.1.1: a KeyDescriptor without `use` serves both purposes.
        if d.key_use
            .as_deref()
            .is_some_and(|u| !u.is_empty() && u != usage)
        {
            continue;
        }
        for text in d
            .key_info
            .x509_data
            .iter()
            .flat_map(|x| x.certificates.iter())
        {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let der = STANDARD
                .decode(compact)
                .map_err(|_| SpError::Metadata(format!("a {usage} certificate is not base64")))?;
            let cert = openssl::x509::X509::from_der(&der).map_err(|_| {
                SpError::Metadata(format!("a {usage} certificate is not an X.509 certificate"))
            })?;
            let key = cert.public_key().map_err(metadata_error)?;
            if key.rsa().is_err() {
                return Err(SpError::Metadata(format!(
                    "the {usage} certificate's key is not RSA (only RSA keys are supported)"
                )));
            }
            if !out.contains(&der) {
                out.push(der);
            }
        }
    }
    Ok(out)
}

fn endpoint_url(field: &'static str, location: &str) -> Result<(), SpError> {
    let url = url::Url::parse(location)
        .map_err(|_| invalid(field, format!("{location} is not an absolute URL")))?;
    match url.scheme() {
        "https" | "http" => Ok(()),
        other => Err(invalid(
            field,
            format!("{location}: scheme {other} is not allowed"),
        )),
    }
}

/// The SP's ACS endpoints (one at least with HTTP-POST) and its SLO endpoints, each an
/// absolute http(s) URL.
/// An SP's endpoints from its metadata: (HTTP-POST ACS, ACS by other bindings, SLO).
type SpEndpoints = (Vec<Endpoint>, Vec<Endpoint>, Vec<Endpoint>);

fn endpoints(sp: &SpSsoDescriptor) -> Result<SpEndpoints, SpError> {
    let (mut acs, mut skipped) = (Vec::new(), Vec::new());
    for e in &sp.assertion_consumer_services {
        endpoint_url("AssertionConsumerService", &e.location)?;
        let endpoint = Endpoint {
            binding: e.binding.clone(),
            location: e.location.clone(),
            response_location: None,
            index: Some(e.index),
            is_default: e.is_default == Some(true),
        };
        if endpoint.binding == BINDING_POST {
            acs.push(endpoint);
        } else {
            skipped.push(endpoint);
        }
    }
    if acs.is_empty() {
        return Err(SpError::Metadata(
            "the SP has no AssertionConsumerService with the HTTP-POST binding".into(),
        ));
    }
    let mut slo = Vec::new();
    for e in sp.single_logout_services.iter().flatten() {
        endpoint_url("SingleLogoutService", &e.location)?;
        if let Some(r) = &e.response_location {
            endpoint_url("SingleLogoutService ResponseLocation", r)?;
        }
        slo.push(Endpoint {
            binding: e.binding.clone(),
            location: e.location.clone(),
            response_location: e.response_location.clone(),
            index: None,
            is_default: false,
        });
    }
    Ok((acs, skipped, slo))
}

/// The NameID format (the administrator's, else the first the SP lists that we
/// support, else persistent) and where its value comes from.
fn name_id(
    settings: &ImportSettings,
    sp: &SpSsoDescriptor,
) -> Result<(String, NameIdSource), SpError> {
    let name_id_format = match &settings.name_id_format {
        Some(f) => match f.as_str() {
            "persistent" => NAMEID_PERSISTENT,
            "email" | "emailAddress" => NAMEID_EMAIL,
            "transient" => NAMEID_TRANSIENT,
            "unspecified" => NAMEID_UNSPECIFIED,
            other if NAMEID_FORMATS.contains(&other) => other,
            other => {
                return Err(invalid(
                    "name-id-format",
                    format!("{other}: expected persistent, email, transient or unspecified"),
                ));
            }
        }
        .to_owned(),
        // The first format the SP lists that we support, else persistent.
        None => sp
            .name_id_formats
            .iter()
            .flatten()
            .map(|f| f.trim())
            .find(|f| NAMEID_FORMATS.contains(f))
            .unwrap_or(NAMEID_PERSISTENT)
            .to_owned(),
    };
    let name_id_source = match &settings.name_id_source {
        Some(s) => NameIdSource::parse(s).ok_or_else(|| {
            invalid(
                "name-id-source",
                format!("{s}: expected pairwise, user_id, username, email or random"),
            )
        })?,
        None => NameIdSource::default_for(&name_id_format),
    };
    if !name_id_source.fits(&name_id_format) {
        return Err(invalid(
            "name-id-source",
            format!(
                "{} does not fit NameID format {name_id_format}",
                name_id_source.as_str()
            ),
        ));
    }
    Ok((name_id_format, name_id_source))
}

/// The release list and the requested attributes Gatehouse cannot supply: the
/// defaults changed by the administrator's words; without any, what the metadata's
/// `<md:RequestedAttribute>`s ask for that Gatehouse has (Metadata §2.4.4.1).
fn release_list(
    pairs: &[String],
    sp: &SpSsoDescriptor,
) -> Result<(BTreeMap<String, String>, Vec<String>), SpError> {
    let requested: Vec<_> = sp
        .attribute_consuming_services
        .iter()
        .flatten()
        .flat_map(|s| s.request_attributes.iter())
        .collect();
    if pairs.is_empty() && !requested.is_empty() {
        return Ok(attributes::requested(requested));
    }
    let mut list = default_attributes();
    attributes::apply(&mut list, pairs).map_err(|reason| invalid("attribute", reason))?;
    Ok((list, Vec::new()))
}

/// The one `EntityDescriptor` of untrusted metadata (size, DTD and entity checks first),
/// and its entityID.
fn entity_descriptor(xml_text: &str) -> Result<(EntityDescriptor, String), SpError> {
    xml::check_untrusted(xml_text, MAX_METADATA_BYTES).map_err(metadata_error)?;
    let descriptor: EntityDescriptor = xml_text.parse().map_err(|e| {
        SpError::Metadata(format!(
            "not an EntityDescriptor (one SP's metadata is imported at a time): {e}"
        ))
    })?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| SpError::Metadata("the EntityDescriptor has no entityID".into()))?;
    if entity_id.len() > MAX_ENTITY_ID_LEN {
        return Err(SpError::Metadata("the entityID is too long".into()));
    }
    Ok((descriptor, entity_id))
}

/// Parses SP metadata (one `EntityDescriptor` with an `SPSSODescriptor`) into a
/// registration, applying `settings`.
pub fn from_metadata(
    xml_text: &str,
    settings: &ImportSettings,
) -> Result<ServiceProvider, SpError> {
    let (descriptor, entity_id) = entity_descriptor(xml_text)?;
    let sp = descriptor
        .sp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| SpError::Metadata("there is no SPSSODescriptor".into()))?;
    let (acs, skipped_acs, slo) = endpoints(sp)?;
    let keys = sp.key_descriptors.as_deref().unwrap_or(&[]);
    let signing_certs = certificates(keys, "signing")?;
    let encryption_certs = certificates(keys, "encryption")?;

    let (name_id_format, name_id_source) = name_id(settings, sp)?;
    let (attributes, unsupplied_attributes) = release_list(&settings.attributes, sp)?;
    let require_signed_requests = settings
        .require_signed_requests
        .unwrap_or(sp.authn_requests_signed == Some(true));
    if require_signed_requests && signing_certs.is_empty() {
        return Err(invalid(
            "require-signed-requests",
            "the SP must sign its requests but its metadata has no signing certificate",
        ));
    }
    // Encrypt by default only when the SP published a key explicitly for encryption.
    let explicit_encryption = keys
        .iter()
        .any(|k| k.key_use.as_deref() == Some("encryption"));
    let encrypt_assertions = settings.encrypt_assertions.unwrap_or(explicit_encryption);
    if encrypt_assertions && encryption_certs.is_empty() {
        return Err(invalid(
            "encrypt-assertions",
            "the SP's metadata has no encryption certificate",
        ));
    }
    let idp_initiated_relay_states = idp_initiated::relay_states(
        settings
            .idp_initiated_relay_states
            .as_deref()
            .unwrap_or(&[]),
    )?;
    let sign_response = settings.sign_response.unwrap_or(false);
    // An assertion is signed unless the administrator moves the signature to the
    // Response; something is always signed.
    let sign_assertion = settings.sign_assertion.unwrap_or(true) || !sign_response;
    let name = settings
        .name
        .clone()
        .unwrap_or_else(|| entity_id.clone())
        .chars()
        .take(200)
        .collect();
    Ok(ServiceProvider {
        entity_id,
        name,
        acs,
        skipped_acs,
        slo,
        signing_certs,
        encryption_certs,
        name_id_format,
        name_id_source,
        attributes,
        unsupplied_attributes,
        sign_assertion,
        sign_response,
        require_signed_requests,
        encrypt_assertions,
        idp_initiated: settings.idp_initiated.unwrap_or(false),
        idp_initiated_relay_states,
    })
}

/// Registers (or re-registers) an SP from its metadata. True when it was new.
pub async fn import(
    store: &Store,
    metadata: &str,
    settings: &ImportSettings,
    now: DateTime<Utc>,
) -> Result<(ServiceProvider, bool), SpError> {
    let sp = from_metadata(metadata, settings)?;
    let row = sp.to_row(metadata, now);
    let created = store.transaction(move |c| saml::upsert_sp(c, &row)).await?;
    Ok((sp, created))
}

/// Reads metadata from a file or an `https://` URL (`http://` only on loopback).
pub async fn read_metadata(source: &str) -> Result<String, SpError> {
    if source.starts_with("https://") || source.starts_with("http://") {
        let url = url::Url::parse(source).map_err(metadata_error)?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if url.scheme() == "http" && !loopback {
            return Err(SpError::Metadata(
                "metadata must be fetched over https (http only from localhost)".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(metadata_error)?;
        let res = client
            .get(url)
            .send()
            .await
            .map_err(|e| SpError::Metadata(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(SpError::Metadata(format!(
                "fetching it answered {}",
                res.status()
            )));
        }
        if res
            .content_length()
            .is_some_and(|l| l > MAX_METADATA_BYTES as u64)
        {
            return Err(SpError::Metadata("the document is too large".into()));
        }
        let mut body = Vec::new();
        let mut res = res;
        while let Some(chunk) = res.chunk().await.map_err(metadata_error)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_METADATA_BYTES {
                return Err(SpError::Metadata("the document is too large".into()));
            }
        }
        String::from_utf8(body).map_err(|_| SpError::Metadata("not UTF-8".into()))
    } else {
        let len = std::fs::metadata(source)
            .map_err(|e| SpError::Metadata(format!("{source}: {e}")))?
            .len();
        if len > MAX_METADATA_BYTES as u64 {
            return Err(SpError::Metadata("the document is too large".into()));
        }
        std::fs::read_to_string(source).map_err(|e| SpError::Metadata(format!("{source}: {e}")))
    }
}

/// The registered SP `entity_id`, if any.
pub async fn find(store: &Store, entity_id: &str) -> Result<Option<ServiceProvider>, SpError> {
    if entity_id.is_empty() || entity_id.len() > MAX_ENTITY_ID_LEN {
        return Ok(None);
    }
    let id = entity_id.to_owned();
    let row = store.run(move |c| saml::find_sp(c, &id)).await?;
    row.as_ref().map(ServiceProvider::from_row).transpose()
}

/// An administrator's change to a registered SP's settings; `None` keeps what it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub name: Option<String>,
    /// `persistent`, `email`, `transient`, `unspecified` or the full URN. A new format
    /// without a new source takes that format's default source.
    pub name_id_format: Option<String>,
    pub name_id_source: Option<String>,
    /// The whole release list, field → SAML attribute name or well-known attribute →
    /// its name (or any of its names); what is left out is not sent.
    pub attributes: Option<BTreeMap<String, String>>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    pub idp_initiated: Option<bool>,
    /// The whole list of RelayStates allowed with IdP-initiated SSO.
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

/// Applies `change` to a registered SP. The stored metadata is parsed again with the
/// merged settings, so every rule of an import holds after an update too (a signature
/// required from an SP without a signing certificate is refused, say).
pub async fn update_settings(
    store: &Store,
    entity_id: &str,
    change: SettingsChange,
    now: DateTime<Utc>,
) -> Result<ServiceProvider, SpError> {
    if entity_id.is_empty() || entity_id.len() > MAX_ENTITY_ID_LEN {
        return Err(SpError::Store(StoreError::NotFound));
    }
    let id = entity_id.to_owned();
    let row = store
        .run(move |c| saml::find_sp(c, &id))
        .await?
        .ok_or(SpError::Store(StoreError::NotFound))?;
    let current = ServiceProvider::from_row(&row)?;
    let attributes = match &change.attributes {
        Some(list) => {
            attributes::normalise(list).map_err(|reason| invalid("attributes", reason))?
        }
        None => current.attributes,
    };
    let name_id_source = match (&change.name_id_format, change.name_id_source) {
        (_, Some(source)) => Some(source),
        (Some(_), None) => None,
        (None, None) => Some(current.name_id_source.as_str().to_owned()),
    };
    let settings = ImportSettings {
        name: Some(change.name.unwrap_or(current.name)),
        name_id_format: Some(change.name_id_format.unwrap_or(current.name_id_format)),
        name_id_source,
        // The whole list: every entry named, and the default fields it leaves out dropped.
        attributes: default_attributes()
            .keys()
            .filter(|f| !attributes.contains_key(*f))
            .map(|f| format!("{f}="))
            .chain(attributes.iter().map(|(k, name)| format!("{k}={name}")))
            .collect(),
        sign_assertion: Some(change.sign_assertion.unwrap_or(current.sign_assertion)),
        sign_response: Some(change.sign_response.unwrap_or(current.sign_response)),
        require_signed_requests: Some(
            change
                .require_signed_requests
                .unwrap_or(current.require_signed_requests),
        ),
        encrypt_assertions: Some(
            change
                .encrypt_assertions
                .unwrap_or(current.encrypt_assertions),
        ),
        idp_initiated: Some(change.idp_initiated.unwrap_or(current.idp_initiated)),
        idp_initiated_relay_states: Some(
            change
                .idp_initiated_relay_states
                .unwrap_or(current.idp_initiated_relay_states),
        ),
    };
    let sp = from_metadata(&row.metadata, &settings)?;
    let updated = sp.to_row(&row.metadata, now);
    store.run(move |c| saml::update_sp(c, &updated)).await?;
    Ok(sp)
}

/// Every registered SP, by entity id.
pub async fn list(store: &Store) -> Result<Vec<ServiceProvider>, SpError> {
    let rows = store.run(saml::list_sps).await?;
    rows.iter().map(ServiceProvider::from_row).collect()
}

/// Unregisters an SP; false when it was not registered.
pub async fn remove(store: &Store, entity_id: &str) -> Result<bool, SpError> {
    if entity_id.is_empty() || entity_id.len() > MAX_ENTITY_ID_LEN {
        return Ok(false);
    }
    let id = entity_id.to_owned();
    Ok(store.run(move |c| saml::delete_sp(c, &id)).await?)
}
