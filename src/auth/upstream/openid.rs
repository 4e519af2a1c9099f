//! An OIDC upstream, with the `openidconnect` crate as the client: discovery, the
//! authorization code flow with PKCE (S256), `state` and `nonce`, and the ID token
//! checked against the upstream's JWKS (fetched again once when a token names a key
//! we do not have, at most every [`JWKS_REFETCH_GAP`]).
//!
//! The browser's trip is kept in the ephemeral store under the hash of `state`, bound
//! to the login transaction and the browser that started it, and taken once: a
//! replayed or forged answer finds nothing.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
    core::{
        CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreJsonWebKey,
        CoreJwsSigningAlgorithm, CoreResponseType, CoreRevocableToken, CoreTokenResponse,
    },
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{Connector, Fetcher, UpstreamCache, UpstreamError, UpstreamIdentity};
use crate::{
    auth::{random_token, token_hash},
    domain::UpstreamClientAuth,
    startup::AppState,
};

/// How long a discovery document is used before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Least time between two JWKS fetches for a token naming an unknown key, so forged
/// tokens cannot make us hammer the upstream.
pub const JWKS_REFETCH_GAP: Duration = Duration::from_secs(30);
/// How long the person may take at the upstream.
const TRIP_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest `code`, `state` or `error` text accepted back from the upstream.
pub const MAX_PARAM_LEN: usize = 4096;

type Metadata = ProviderMetadataWithLogout;

/// The client `from_provider_metadata` makes: authorization endpoint set, token and
/// userinfo endpoints as the upstream's document says.
type UpstreamClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Signature algorithms accepted on upstream ID tokens: asymmetric only, never `none`
/// nor HMAC with the client secret.
pub(super) fn accepted_algs() -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm::*;
    vec![
        RsaSsaPkcs1V15Sha256,
        RsaSsaPkcs1V15Sha384,
        RsaSsaPkcs1V15Sha512,
        RsaSsaPssSha256,
        RsaSsaPssSha384,
        RsaSsaPssSha512,
        EcdsaP256Sha256,
        EcdsaP384Sha384,
        EdDsa,
    ]
}

/// One upstream as this instance knows it.
pub struct Discovered {
    version: chrono::NaiveDateTime,
    fetched: Instant,
    pub(super) fetcher: Fetcher,
    pub(super) metadata: Metadata,
    /// The keys, and when an unknown key last made us fetch them again.
    jwks: std::sync::Mutex<(JsonWebKeySet<CoreJsonWebKey>, Option<Instant>)>,
}

impl Discovered {
    pub(super) fn jwks(&self) -> JsonWebKeySet<CoreJsonWebKey> {
        self.jwks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Where the upstream ends its sessions (RP-initiated logout), if it says.
    pub fn end_session_endpoint(&self) -> Option<Url> {
        self.metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().clone())
    }
}

/// The connector's discovery, from this instance's cache or read now.
pub(super) async fn discovered(
    state: &AppState,
    connector: &Connector,
) -> Result<Arc<Discovered>, UpstreamError> {
    let cache: &UpstreamCache = &state.upstreams;
    if let Some(found) = cache
        .openid
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&connector.id)
        .filter(|d| d.version == connector.version && d.fetched.elapsed() < DISCOVERY_TTL)
    {
        return Ok(found.clone());
    }
    let settings = settings(connector)?;
    let fetcher = Fetcher::new(settings.ca_pem.as_deref())
        .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
    let issuer = issuer_url(&settings.issuer)?;
    // Discovery checks that the document names this issuer, and reads its JWKS.
    let metadata = Metadata::discover_async(issuer, &fetcher)
        .await
        .map_err(|e| UpstreamError::Unreachable(format!("discovery: {}", chain(&e))))?;
    let found = Arc::new(Discovered {
        version: connector.version,
        fetched: Instant::now(),
        fetcher,
        jwks: std::sync::Mutex::new((metadata.jwks().clone(), None)),
        metadata,
    });
    cache
        .openid
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(connector.id.clone(), found.clone());
    Ok(found)
}

/// An issuer as `openidconnect` compares it: the URL as configured, without the slash
/// `url` adds to a bare host, since issuers are compared as strings.
pub(super) fn issuer_url(issuer: &Url) -> Result<IssuerUrl, UpstreamError> {
    let text = issuer.as_str();
    let text = if issuer.path() == "/" {
        text.trim_end_matches('/')
    } else {
        text
    };
    IssuerUrl::new(text.to_owned()).map_err(|e| UpstreamError::Rejected(e.to_string()))
}

pub(super) fn settings(
    connector: &Connector,
) -> Result<&crate::domain::OidcUpstream, UpstreamError> {
    connector.settings.oidc.as_ref().ok_or_else(|| {
        UpstreamError::Auth(crate::auth::AuthError::Internal(format!(
            "connector {} has no OIDC settings",
            connector.slug
        )))
    })
}

/// Where the upstream sends the browser back: one stable URL per connector, to
/// register at the upstream.
pub fn redirect_uri(state: &AppState, connector_slug: &str) -> String {
    let issuer = state.config.issuer.as_str().trim_end_matches('/');
    format!("{issuer}/upstream/{connector_slug}/callback")
}

/// The browser's trip to the upstream, kept until it comes back.
#[derive(Serialize, Deserialize)]
struct Trip {
    tx: String,
    browser: String,
    connector_id: String,
    nonce: String,
    verifier: String,
}

/// The seal context of a stored trip.
const TRIP_CONTEXT: &str = "upstream-trip";

fn trip_key(state_param: &str) -> String {
    format!("upstream-trip:{}", token_hash(state_param))
}

fn client(
    state: &AppState,
    connector: &Connector,
    found: &Discovered,
) -> Result<UpstreamClient, UpstreamError> {
    let settings = settings(connector)?;
    let secret = match settings.client_auth {
        UpstreamClientAuth::PrivateKeyJwt => None,
        _ => connector
            .secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
    };
    let mut metadata = found.metadata.clone();
    metadata = metadata.set_jwks(found.jwks());
    let redirect = RedirectUrl::new(redirect_uri(state, connector.slug.as_str()))
        .map_err(|e| UpstreamError::Auth(crate::auth::AuthError::Internal(e.to_string())))?;
    let auth_type = match settings.client_auth {
        UpstreamClientAuth::ClientSecretBasic => openidconnect::AuthType::BasicAuth,
        _ => openidconnect::AuthType::RequestBody,
    };
    let core = UpstreamClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        secret,
    );
    Ok(core.set_redirect_uri(redirect).set_auth_type(auth_type))
}

/// Sends the browser of login transaction `tx` (bound to `browser`, the hash of its
/// cookie) to the upstream; the URL to redirect to.
pub async fn begin(
    state: &AppState,
    connector: &Connector,
    tx: &str,
    browser: &str,
    login_hint: Option<&str>,
) -> Result<Url, UpstreamError> {
    let found = discovered(state, connector).await?;
    let client = client(state, connector, &found)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            || CsrfToken::new(random_token()),
            || Nonce::new(random_token()),
        )
        .set_pkce_challenge(challenge);
    for scope in &settings(connector)?.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if let Some(hint) = login_hint {
        request = request.add_extra_param("login_hint", hint.to_owned());
    }
    let (url, csrf, nonce) = request.url();
    let trip = Trip {
        tx: tx.to_owned(),
        browser: browser.to_owned(),
        connector_id: connector.id.clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
    };
    let raw = serde_json::to_vec(&trip)
        .map_err(|e| UpstreamError::Auth(crate::auth::AuthError::Internal(e.to_string())))?;
    // The PKCE verifier redeems the code: sealed, so a copy of the shared store holds
    // nothing that does.
    let sealed = state.master_key.seal(TRIP_CONTEXT, &raw);
    state
        .ephemeral
        .set(&trip_key(csrf.secret()), sealed.as_bytes(), TRIP_TTL)
        .await?;
    Ok(url)
}

/// What the upstream sent back to the callback.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    #[serde(default)]
    pub state: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207: the issuer of the answer, against mix-up.
    pub iss: Option<String>,
}

/// The login transaction the answer belongs to and who signed in, after every check.
/// `browser` is the hash of the cookie of the browser that brought the answer.
pub async fn complete(
    state: &AppState,
    connector: &Connector,
    callback: Callback,
    browser: &str,
) -> Result<(String, UpstreamIdentity), UpstreamError> {
    if callback.state.is_empty() || callback.state.len() > MAX_PARAM_LEN {
        return Err(UpstreamError::Expired);
    }
    // Taken before anything else: whatever follows, this answer is used up.
    let Some(raw) = state.ephemeral.take(&trip_key(&callback.state)).await? else {
        return Err(UpstreamError::Expired);
    };
    let opened = std::str::from_utf8(&raw)
        .ok()
        .and_then(|sealed| state.master_key.open(TRIP_CONTEXT, sealed).ok())
        .ok_or(UpstreamError::Expired)?;
    let trip: Trip = serde_json::from_slice(secrecy::ExposeSecret::expose_secret(&opened))
        .map_err(|_| UpstreamError::Expired)?;
    if trip.connector_id != connector.id || !crate::auth::same_secret(&trip.browser, browser) {
        return Err(UpstreamError::Expired);
    }
    let settings = settings(connector)?;
    if let Some(iss) = &callback.iss
        && issuer_url(&settings.issuer)?.as_str() != iss.as_str()
    {
        return Err(UpstreamError::Rejected(
            "the answer names another issuer".into(),
        ));
    }
    if let Some(error) = callback.error {
        let said = match callback.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        return Err(UpstreamError::Denied(said.chars().take(300).collect()));
    }
    let code = callback
        .code
        .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM_LEN)
        .ok_or_else(|| UpstreamError::Rejected("the answer carries no code".into()))?;
    let found = discovered(state, connector).await?;
    let client = client(state, connector, &found)?;
    let mut exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| UpstreamError::Unreachable("the upstream names no token endpoint".into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(trip.verifier.clone()));
    if settings.client_auth == UpstreamClientAuth::PrivateKeyJwt {
        let token_endpoint = found
            .metadata
            .token_endpoint()
            .map(|u| u.url().to_string())
            .unwrap_or_default();
        exchange = exchange
            .add_extra_param(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .add_extra_param(
                "client_assertion",
                client_assertion(state, &settings.client_id, &token_endpoint),
            );
    }
    let tokens = exchange
        .request_async(&found.fetcher)
        .await
        .map_err(|e| match e {
            openidconnect::RequestTokenError::ServerResponse(r) => {
                UpstreamError::Denied(format!("token endpoint: {}", r.error()))
            }
            other => UpstreamError::Unreachable(format!("token endpoint: {}", chain(&other))),
        })?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| UpstreamError::Rejected("the token response has no ID token".into()))?;
    let nonce = Nonce::new(trip.nonce.clone());
    let now = state.clock.now();
    let verify = |jwks: JsonWebKeySet<CoreJsonWebKey>| {
        let verifier = openidconnect::IdTokenVerifier::new_public_client(
            ClientId::new(settings.client_id.clone()),
            found.metadata.issuer().clone(),
            jwks,
        )
        .set_allowed_algs(accepted_algs())
        .set_time_fn(move || now);
        id_token
            .claims(&verifier, &nonce)
            .map(|c| c.subject().to_string())
    };
    let subject = match verify(found.jwks()) {
        Ok(subject) => subject,
        Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            openidconnect::SignatureVerificationError::NoMatchingKey,
        )) => verify(refetch_jwks(&found).await?).map_err(rejected)?,
        Err(e) => return Err(rejected(e)),
    };
    // Checked by the verifier above: now read the claims the mapping names.
    let mut claims = payload(&id_token.to_string())
        .ok_or_else(|| UpstreamError::Rejected("the ID token's claims do not parse".into()))?;
    let accounts = &connector.settings.accounts;
    let named = [&accounts.username_claim, &accounts.email_claim];
    if named.iter().any(|c| !claims.contains_key(c.as_str())) {
        // Many providers put profile claims in userinfo only (OIDC Core §5.4).
        let access = tokens.access_token().secret();
        for (name, value) in userinfo(&found, access, &subject).await? {
            claims.entry(name).or_insert(value);
        }
    }
    Ok((trip.tx, identity(connector, subject, &claims)))
}

/// The upstream's userinfo claims for `subject`, when it has the endpoint and answers
/// JSON naming the same subject (OIDC Core §5.3.2); nothing otherwise.
async fn userinfo(
    found: &Discovered,
    access_token: &str,
    subject: &str,
) -> Result<Map<String, Value>, UpstreamError> {
    use openidconnect::http::{Method, Request, header};
    let Some(endpoint) = found.metadata.userinfo_endpoint() else {
        return Ok(Map::new());
    };
    let request = Request::builder()
        .method(Method::GET)
        .uri(endpoint.url().as_str())
        .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
        .header(header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| UpstreamError::Auth(crate::auth::AuthError::Internal(e.to_string())))?;
    let answer = openidconnect::AsyncHttpClient::call(&found.fetcher, request)
        .await
        .map_err(|e| UpstreamError::Unreachable(format!("userinfo: {e}")))?;
    let json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !answer.status().is_success() || !json {
        return Ok(Map::new());
    }
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(answer.body()) else {
        return Ok(Map::new());
    };
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UpstreamError::Rejected(
            "userinfo names another subject".into(),
        ));
    }
    Ok(claims)
}

fn rejected(e: openidconnect::ClaimsVerificationError) -> UpstreamError {
    UpstreamError::Rejected(format!("ID token: {e}"))
}

/// The JWKS read again for a token naming a key we lack, unless that happened less
/// than [`JWKS_REFETCH_GAP`] ago.
pub(super) async fn refetch_jwks(
    found: &Discovered,
) -> Result<JsonWebKeySet<CoreJsonWebKey>, UpstreamError> {
    let last = found.jwks.lock().unwrap_or_else(|p| p.into_inner()).1;
    if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_GAP) {
        return Ok(found.jwks());
    }
    let jwks = JsonWebKeySet::fetch_async(found.metadata.jwks_uri(), &found.fetcher)
        .await
        .map_err(|e| UpstreamError::Unreachable(format!("JWKS: {}", chain(&e))))?;
    *found.jwks.lock().unwrap_or_else(|p| p.into_inner()) = (jwks.clone(), Some(Instant::now()));
    Ok(jwks)
}

/// RFC 7523 client authentication with our own signing key: the upstream checks it
/// against our `/jwks`.
fn client_assertion(state: &AppState, client_id: &str, token_endpoint: &str) -> String {
    let now = state.clock.now().timestamp();
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": random_token(),
        "iat": now,
        "exp": now + 60,
    });
    state.keys.current().sign_jwt("JWT", &claims)
}

/// The claims of a JWS whose signature was already checked.
fn payload(jws: &str) -> Option<Map<String, Value>> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let part = jws.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The identity the mapping reads out of `claims`.
fn identity(
    connector: &Connector,
    subject: String,
    claims: &Map<String, Value>,
) -> UpstreamIdentity {
    let accounts = &connector.settings.accounts;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 320)
            .map(str::to_owned)
    };
    let strings = |name: &str| -> Vec<String> {
        match claims.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| s.len() <= 256)
                .take(256)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) if s.len() <= 256 => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    // An address the upstream says it has not verified is not taken as the person's.
    let email = (claims.get("email_verified") != Some(&Value::Bool(false)))
        .then(|| text(&accounts.email_claim))
        .flatten();
    UpstreamIdentity {
        subject,
        username: text(&accounts.username_claim),
        email,
        display_name: text(&accounts.name_claim),
        groups: accounts
            .groups_claim
            .as_deref()
            .map(strings)
            .unwrap_or_default(),
        amr: strings("amr"),
        acr: text("acr"),
        sid: text("sid"),
        fhir_user: accounts.fhir_user.as_ref().and_then(|m| text(&m.claim)),
    }
}

/// An error and its causes, for the log and the audit trail.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}
