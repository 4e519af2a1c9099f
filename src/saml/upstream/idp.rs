//! The upstream IdP as its metadata describes it: entity id, where to send
//! AuthnRequests (HTTP-Redirect), where its Single Logout is (if anywhere), and the
//! certificates that alone may verify its
//! signatures. Read from the connector's pasted document or fetched from its URL (with
//! the bounds and address rules of SP metadata, `metadata_fetch`), and kept in memory per
//! connector version for an hour.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use samael::metadata::EntityDescriptor;

use crate::{
    auth::upstream::{Connector, UpstreamError},
    domain::SamlUpstream,
    saml::{
        metadata_fetch, metadata_refresh,
        providers::{self, BINDING_POST, BINDING_REDIRECT},
    },
    startup::AppState,
};

/// How long fetched metadata is used before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// An upstream IdP, from its metadata.
#[derive(Debug, Clone)]
pub struct UpstreamIdp {
    pub entity_id: String,
    /// Its SingleSignOnService for the HTTP-Redirect binding.
    pub sso_redirect: String,
    /// DER of its signing certificates.
    pub signing_certs: Vec<Vec<u8>>,
    /// Its SingleLogoutService: HTTP-Redirect preferred, else HTTP-POST; None when it
    /// has none (then our sign-out cannot end its session).
    pub slo: Option<SloEndpoint>,
}

/// An IdP's SingleLogoutService.
#[derive(Debug, Clone)]
pub struct SloEndpoint {
    /// HTTP-POST (else HTTP-Redirect).
    pub post: bool,
    /// Where our LogoutRequests go.
    pub location: String,
    /// Where our LogoutResponses go (`ResponseLocation`, else `Location`).
    pub response_location: String,
}

type Cached = (chrono::NaiveDateTime, Instant, Arc<UpstreamIdp>);
static KNOWN: LazyLock<Mutex<HashMap<String, Cached>>> = LazyLock::new(Mutex::default);

pub fn settings(connector: &Connector) -> Result<&SamlUpstream, UpstreamError> {
    connector
        .settings
        .saml
        .as_ref()
        .ok_or(UpstreamError::Unknown)
}

/// The connector's IdP, from this instance's cache or read now.
pub async fn upstream_idp(
    state: &AppState,
    connector: &Connector,
) -> Result<Arc<UpstreamIdp>, UpstreamError> {
    if let Some((version, at, idp)) = KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&connector.id)
        && *version == connector.version
        && at.elapsed() < METADATA_TTL
    {
        return Ok(idp.clone());
    }
    let saml = settings(connector)?;
    let document = match (&saml.metadata_xml, &saml.metadata_url) {
        (Some(xml), _) => xml.clone(),
        (None, Some(url)) => {
            let policy = metadata_refresh::policy(&state.config);
            let url = metadata_fetch::check_url(url.as_str(), policy)
                .map_err(|e| UpstreamError::Unreachable(format!("metadata: {e}")))?;
            metadata_fetch::fetch(&url, policy)
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("metadata: {e}")))?
        }
        (None, None) => return Err(UpstreamError::Unknown),
    };
    let idp = Arc::new(read(&document, saml.entity_id.as_deref(), state.clock.now()).await?);
    KNOWN.lock().unwrap_or_else(|p| p.into_inner()).insert(
        connector.id.clone(),
        (connector.version, Instant::now(), idp.clone()),
    );
    Ok(idp)
}

/// The IdP `wanted` (or the only one) of a metadata document.
pub async fn read(
    document: &str,
    wanted: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<UpstreamIdp, UpstreamError> {
    let unusable = |why: String| UpstreamError::Unreachable(format!("metadata: {why}"));
    let selected = metadata_fetch::select(document, None, wanted, now)
        .await
        .map_err(|e| unusable(e.to_string()))?;
    let entity: EntityDescriptor = selected
        .xml
        .parse()
        .map_err(|_| unusable("it is not a valid EntityDescriptor".into()))?;
    let descriptor = entity
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| unusable("it describes no identity provider (IDPSSODescriptor)".into()))?;
    let sso_redirect = descriptor
        .single_sign_on_services
        .iter()
        .find(|s| s.binding == BINDING_REDIRECT)
        .map(|s| s.location.trim().to_owned())
        .filter(|l| url::Url::parse(l).is_ok_and(|u| matches!(u.scheme(), "https" | "http")))
        .ok_or_else(|| {
            unusable("it names no SingleSignOnService for the HTTP-Redirect binding".into())
        })?;
    let signing_certs = providers::certificates(&descriptor.key_descriptors, "signing")
        .map_err(|e| unusable(e.to_string()))?;
    if signing_certs.is_empty() {
        return Err(unusable("it names no signing certificate".into()));
    }
    let web = |l: &str| url::Url::parse(l).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
    let slo = [BINDING_REDIRECT, BINDING_POST].iter().find_map(|binding| {
        let e = descriptor
            .single_logout_services
            .iter()
            .find(|e| e.binding == *binding && web(e.location.trim()))?;
        let location = e.location.trim().to_owned();
        let response_location = e
            .response_location
            .as_deref()
            .map(str::trim)
            .filter(|l| web(l))
            .map_or_else(|| location.clone(), str::to_owned);
        Some(SloEndpoint {
            post: *binding == BINDING_POST,
            location,
            response_location,
        })
    });
    Ok(UpstreamIdp {
        entity_id: selected.entity_id,
        sso_redirect,
        signing_certs,
        slo,
    })
}
