//! Relying party registration (`gatehouse client create`) and what a registration allows.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;

use crate::{
    auth::{random_token, token_hash},
    crypto::signing::{RS256, SigningAlg},
    domain::OrgName,
    store::{
        Store, StoreError,
        clients::{self, ClientRow, ClientSettings},
        orgs,
    },
};

pub const AUTH_BASIC: &str = "client_secret_basic";
pub const AUTH_POST: &str = "client_secret_post";
pub const AUTH_PRIVATE_KEY_JWT: &str = "private_key_jwt";
pub const AUTH_NONE: &str = "none";
pub const AUTH_METHODS: &[&str] = &[AUTH_BASIC, AUTH_POST, AUTH_PRIVATE_KEY_JWT, AUTH_NONE];

pub const GRANT_CODE: &str = "authorization_code";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANTS: &[&str] = &[GRANT_CODE, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS];

/// What an administrator asks for.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Public clients (SPAs, native apps) have no secret and must use PKCE.
    pub public: bool,
    /// Empty: authorization_code and refresh_token.
    pub grant_types: Vec<String>,
    /// Empty: openid profile email offline_access.
    pub scopes: Vec<String>,
    /// None: `client_secret_basic`, or `none` for public clients.
    pub auth_method: Option<String>,
    /// The client's public keys (`private_key_jwt`), a JWKS document.
    pub jwks: Option<String>,
    /// Or where the client publishes them (https, or http on loopback): read when first
    /// needed, cached, and read again for a key not among them (`client_keys`).
    pub jwks_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`; back-channel logout tokens too.
    pub id_token_alg: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`: the signature of its access tokens (RFC
    /// 9068 JWTs), for resource servers that check them against the JWKS.
    pub access_token_alg: Option<String>,
    /// The organisations (by name) whose users may sign in to it; None: any (issue 20
    /// item 9). An empty list is refused: it would admit nobody.
    pub allowed_orgs: Option<Vec<String>>,
    /// May introspect tokens issued to other clients (a resource server, issue 20 item 11).
    pub introspection: bool,
    /// Web origins a browser app may call the token endpoints from (CORS); "+" stands
    /// for the redirect URIs' origins. None: `["+"]` (issue 25).
    pub allowed_origins: Option<Vec<String>>,
    /// Must push its authorization requests to `/par` (RFC 9126).
    pub require_par: bool,
    /// Must bind every token to a DPoP key (RFC 9449).
    pub require_dpop: bool,
    /// Held to the FAPI 2.0 security profile: PAR and DPoP required, `private_key_jwt`,
    /// PKCE S256; implies the two above.
    pub fapi2: bool,
    /// Its users are asked which of the scopes it requests it may have (a patient-facing
    /// app); otherwise the registration is the consent (DESIGN §18).
    pub ask_consent: bool,
}

impl ClientSpec {
    pub fn new(name: &str, redirect_uris: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            redirect_uris: redirect_uris.iter().map(|s| (*s).to_owned()).collect(),
            post_logout_redirect_uris: Vec::new(),
            public: false,
            grant_types: Vec::new(),
            scopes: Vec::new(),
            auth_method: None,
            jwks: None,
            jwks_uri: None,
            backchannel_logout_uri: None,
            id_token_alg: None,
            access_token_alg: None,
            allowed_orgs: None,
            introspection: false,
            allowed_origins: None,
            require_par: false,
            require_dpop: false,
            fapi2: false,
            ask_consent: false,
        }
    }
}

/// A created client; the secret exists only here and is shown once.
#[derive(Debug)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A redirect URI may be https, or http only on loopback (native apps, RFC 8252 §7.3),
/// or a private-use scheme (`com.example.app:/cb`, §7.1); never with a fragment.
fn check_redirect(field: &'static str, raw: &str) -> Result<String, ClientError> {
    match super::redirect_uri::refusal(raw) {
        Some(why) => Err(invalid(field, why)),
        // Stored exactly as given: matching is by exact string comparison (DESIGN §9),
        // but for the port of an http loopback URI (`redirect_uri::matches`).
        None => Ok(raw.to_owned()),
    }
}

/// A registration that passed every check, ready to store.
struct Checked {
    name: String,
    redirect_uris: Vec<String>,
    post_logout: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    auth_method: String,
    keys: ClientKeys,
    backchannel: Option<String>,
    id_token_alg: String,
    access_token_alg: String,
    allowed_orgs: Option<Vec<String>>,
    introspection: bool,
    allowed_origins: Option<Vec<String>>,
    require_par: bool,
    require_dpop: bool,
    fapi2: bool,
    ask_consent: bool,
}

impl Checked {
    /// Whether the client authenticates with a shared secret.
    fn has_secret(&self) -> bool {
        matches!(self.auth_method.as_str(), AUTH_BASIC | AUTH_POST)
    }

    fn settings(&self) -> ClientSettings {
        ClientSettings {
            name: self.name.clone(),
            redirect_uris: json_list(&self.redirect_uris),
            post_logout_redirect_uris: json_list(&self.post_logout),
            grant_types: json_list(&self.grant_types),
            scopes: json_list(&self.scopes),
            token_endpoint_auth_method: self.auth_method.clone(),
            jwks: self.keys.jwks.clone(),
            jwks_uri: self.keys.jwks_uri.clone(),
            backchannel_logout_uri: self.backchannel.clone(),
            id_token_alg: self.id_token_alg.clone(),
            access_token_alg: self.access_token_alg.clone(),
            allowed_orgs: self.allowed_orgs.as_deref().map(json_list),
            introspection: self.introspection,
            allowed_origins: self.allowed_origins.as_deref().map(json_list),
            require_par: self.require_par,
            require_dpop: self.require_dpop,
            fapi2: self.fapi2,
            ask_consent: self.ask_consent,
        }
    }
}

/// Bounds on what a registration may hold (DESIGN §13: every input is length-limited).
const MAX_URIS: usize = 20;
const MAX_URI_BYTES: usize = 2000;
const MAX_SCOPES: usize = 32;
const MAX_JWKS_BYTES: usize = 16 * 1024;

fn check_bounds(spec: &ClientSpec) -> Result<(), ClientError> {
    for (field, uris) in [
        ("redirect_uris", &spec.redirect_uris),
        ("post_logout_redirect_uris", &spec.post_logout_redirect_uris),
    ] {
        if uris.len() > MAX_URIS {
            return Err(invalid(field, format!("at most {MAX_URIS}")));
        }
        if uris.iter().any(|u| u.len() > MAX_URI_BYTES) {
            return Err(invalid(
                field,
                format!("at most {MAX_URI_BYTES} bytes each"),
            ));
        }
    }
    if spec.grant_types.len() > GRANTS.len() {
        return Err(invalid("grant_types", "each grant at most once"));
    }
    if spec.scopes.len() > MAX_SCOPES || spec.scopes.iter().any(|s| s.len() > 200) {
        return Err(invalid("scopes", format!("at most {MAX_SCOPES}")));
    }
    if spec.jwks.as_ref().is_some_and(|j| j.len() > MAX_JWKS_BYTES) {
        return Err(invalid("jwks", "at most 16 KiB"));
    }
    for (field, uri) in [
        ("jwks_uri", &spec.jwks_uri),
        ("backchannel_logout_uri", &spec.backchannel_logout_uri),
    ] {
        if uri.as_ref().is_some_and(|u| u.len() > MAX_URI_BYTES) {
            return Err(invalid(field, format!("at most {MAX_URI_BYTES} bytes")));
        }
    }
    Ok(())
}

/// The public keys of a `private_key_jwt` client: its JWKS document or the URL it
/// publishes it at, exactly one; neither for any other client.
#[derive(Debug, Default)]
struct ClientKeys {
    jwks: Option<String>,
    jwks_uri: Option<String>,
}

/// How the client authenticates (public clients do not, and get no
/// client_credentials), with its keys for `private_key_jwt` and only then.
fn authentication(
    spec: &ClientSpec,
    grant_types: &[String],
) -> Result<(String, ClientKeys), ClientError> {
    let auth_method = spec
        .auth_method
        .clone()
        .unwrap_or_else(|| if spec.public { AUTH_NONE } else { AUTH_BASIC }.to_owned());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(invalid(
            "auth_method",
            format!("unknown method {auth_method:?}"),
        ));
    }
    if spec.public != (auth_method == AUTH_NONE) {
        return Err(invalid(
            "auth_method",
            "public clients use \"none\"; confidential clients authenticate",
        ));
    }
    if spec.public && grant_types.iter().any(|g| g == GRANT_CLIENT_CREDENTIALS) {
        return Err(invalid(
            "grant_types",
            "client_credentials needs a confidential client",
        ));
    }
    if auth_method != AUTH_PRIVATE_KEY_JWT {
        if spec.jwks.is_some() {
            return Err(invalid("jwks", "only for private_key_jwt"));
        }
        if spec.jwks_uri.is_some() {
            return Err(invalid("jwks_uri", "only for private_key_jwt"));
        }
        return Ok((auth_method, ClientKeys::default()));
    }
    let keys = match (&spec.jwks, &spec.jwks_uri) {
        (Some(doc), None) => {
            super::client_keys::usable(doc).map_err(|why| invalid("jwks", why))?;
            ClientKeys {
                jwks: Some(doc.clone()),
                jwks_uri: None,
            }
        }
        (None, Some(uri)) => ClientKeys {
            jwks: None,
            jwks_uri: Some(check_jwks_uri(uri)?),
        },
        (None, None) => {
            return Err(invalid(
                "jwks",
                "private_key_jwt needs the client's JWKS, or its jwks_uri",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "jwks_uri",
                "give the JWKS or its jwks_uri, not both",
            ));
        }
    };
    Ok((auth_method, keys))
}

/// Where a client publishes its keys: https, or http on loopback (development and
/// tests), with no credentials or fragment. Only administrators register it.
fn check_jwks_uri(raw: &str) -> Result<String, ClientError> {
    let url = https_or_loopback("jwks_uri", raw)?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(invalid("jwks_uri", "no credentials and no fragment"));
    }
    Ok(raw.to_owned())
}

/// A URL Gatehouse calls (`field`): https, or http to loopback (development and tests).
fn https_or_loopback(field: &'static str, raw: &str) -> Result<Url, ClientError> {
    let url = Url::parse(raw).map_err(|e| invalid(field, e.to_string()))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(invalid(field, "https (or http on loopback)")),
    }
}

/// Back-channel logout tokens go over https (or http to loopback, for development).
fn check_backchannel(u: &str) -> Result<String, ClientError> {
    https_or_loopback("backchannel_logout_uri", u).map(|_| u.to_owned())
}

fn check(spec: &ClientSpec) -> Result<Checked, ClientError> {
    check_bounds(spec)?;
    let name = spec.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    let grant_types = if spec.grant_types.is_empty() {
        vec![GRANT_CODE.to_owned(), GRANT_REFRESH.to_owned()]
    } else {
        spec.grant_types.clone()
    };
    if let Some(g) = grant_types.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(invalid("grant_types", format!("unknown grant {g:?}")));
    }
    let uses_code = grant_types.iter().any(|g| g == GRANT_CODE);
    if uses_code && spec.redirect_uris.is_empty() {
        return Err(invalid(
            "redirect_uris",
            "at least one is needed for authorization_code",
        ));
    }
    let redirect_uris = spec
        .redirect_uris
        .iter()
        .map(|u| check_redirect("redirect_uris", u))
        .collect::<Result<Vec<_>, _>>()?;
    let post_logout = spec
        .post_logout_redirect_uris
        .iter()
        .map(|u| check_redirect("post_logout_redirect_uris", u))
        .collect::<Result<Vec<_>, _>>()?;
    let scopes = if spec.scopes.is_empty() {
        super::SUPPORTED_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        spec.scopes.clone()
    };
    if let Some(s) = scopes.iter().find(|s| !super::known_scope(s)) {
        return Err(invalid("scopes", format!("unknown scope {s:?}")));
    }
    let (auth_method, keys) = authentication(spec, &grant_types)?;
    check_fapi2(spec, &auth_method)?;
    let backchannel = spec
        .backchannel_logout_uri
        .as_deref()
        .map(check_backchannel)
        .transpose()?;
    Ok(Checked {
        name,
        redirect_uris,
        post_logout,
        grant_types,
        scopes,
        auth_method,
        keys,
        backchannel,
        id_token_alg: check_alg("id_token_alg", spec.id_token_alg.as_deref())?,
        access_token_alg: check_alg("access_token_alg", spec.access_token_alg.as_deref())?,
        allowed_orgs: spec.allowed_orgs.as_deref().map(check_orgs).transpose()?,
        introspection: spec.introspection,
        allowed_origins: spec
            .allowed_origins
            .as_deref()
            .map(|o| super::cors::check_list(o).map_err(|why| invalid("allowed_origins", why)))
            .transpose()?,
        // FAPI 2.0 requires both; the flags say so whatever was asked.
        require_par: spec.require_par || spec.fapi2,
        require_dpop: spec.require_dpop || spec.fapi2,
        fapi2: spec.fapi2,
        ask_consent: spec.ask_consent,
    })
}

/// An algorithm Gatehouse signs with (exactly its JWA name); RS256 when none is asked
/// for, which every relying party can check.
fn check_alg(field: &'static str, asked: Option<&str>) -> Result<String, ClientError> {
    match asked {
        None => Ok(RS256.to_owned()),
        Some(name) => SigningAlg::parse(name)
            .map(|alg| alg.name().to_owned())
            .ok_or_else(|| invalid(field, "RS256, ES256 or EdDSA")),
    }
}

/// A FAPI 2.0 client is confidential and authenticates with `private_key_jwt` (FAPI 2.0
/// Security Profile §5.3.2.1: no shared secrets); PKCE, PAR and DPoP it is held to at
/// run time.
fn check_fapi2(spec: &ClientSpec, auth_method: &str) -> Result<(), ClientError> {
    if spec.fapi2 && auth_method != AUTH_PRIVATE_KEY_JWT {
        return Err(invalid(
            "fapi2",
            "a FAPI 2.0 client authenticates with private_key_jwt (register its JWKS)",
        ));
    }
    Ok(())
}

/// Most organisations one client may name.
const MAX_ORGS: usize = 100;

/// Organisation names, well formed, each once, at least one (an empty list would admit
/// nobody; leaving the list out admits everyone). That they exist is checked against
/// the store by [`known_orgs`].
fn check_orgs(names: &[String]) -> Result<Vec<String>, ClientError> {
    if names.is_empty() {
        return Err(invalid(
            "allowed_orgs",
            "name at least one organisation, or leave it out to admit every organisation",
        ));
    }
    if names.len() > MAX_ORGS {
        return Err(invalid("allowed_orgs", format!("at most {MAX_ORGS}")));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in names {
        let name =
            OrgName::parse(raw).map_err(|e| invalid("allowed_orgs", format!("{raw:?}: {e}")))?;
        if !out.iter().any(|o| o == name.as_str()) {
            out.push(name.as_str().to_owned());
        }
    }
    Ok(out)
}

/// Every organisation a checked registration names exists. Organisations are never
/// deleted, so checking before the write is enough.
async fn known_orgs(store: &Store, checked: &Checked) -> Result<(), ClientError> {
    let Some(names) = checked.allowed_orgs.clone() else {
        return Ok(());
    };
    let missing = store
        .run(move |c| {
            for name in names {
                let known = match OrgName::parse(&name) {
                    Ok(parsed) => orgs::find_by_name(c, &parsed)?.is_some(),
                    Err(_) => false,
                };
                if !known {
                    return Ok(Some(name));
                }
            }
            Ok(None)
        })
        .await?;
    match missing {
        Some(name) => Err(invalid(
            "allowed_orgs",
            format!("no organisation named {name:?}"),
        )),
        None => Ok(()),
    }
}

pub async fn register(
    store: &Store,
    spec: ClientSpec,
    now: DateTime<Utc>,
) -> Result<Registered, ClientError> {
    let checked = check(&spec)?;
    known_orgs(store, &checked).await?;
    let secret = checked.has_secret().then(random_token);
    let client_id = format!("gh-{}", &random_token()[..22]);
    let settings = checked.settings();
    let row = ClientRow {
        client_id: client_id.clone(),
        name: settings.name,
        secret_hash: secret.as_deref().map(token_hash),
        redirect_uris: settings.redirect_uris,
        post_logout_redirect_uris: settings.post_logout_redirect_uris,
        grant_types: settings.grant_types,
        scopes: settings.scopes,
        token_endpoint_auth_method: settings.token_endpoint_auth_method,
        jwks: settings.jwks,
        backchannel_logout_uri: settings.backchannel_logout_uri,
        id_token_alg: settings.id_token_alg,
        access_token_alg: settings.access_token_alg,
        created_at: now.naive_utc(),
        allowed_orgs: settings.allowed_orgs,
        introspection: settings.introspection,
        allowed_origins: settings.allowed_origins,
        require_par: settings.require_par,
        require_dpop: settings.require_dpop,
        fapi2: settings.fapi2,
        ask_consent: settings.ask_consent,
        jwks_uri: settings.jwks_uri,
    };
    store.run(move |c| clients::insert(c, &row)).await?;
    Ok(Registered {
        client_id,
        client_secret: secret.map(SecretString::from),
    })
}

/// Replaces a client's settings with `spec` (checked like a new registration). A client
/// that moves to secret authentication without a secret gets one, returned once; one
/// that moves away from it loses its secret. `StoreError::NotFound` for no such client.
pub async fn update(
    store: &Store,
    client_id: &str,
    spec: ClientSpec,
) -> Result<Option<SecretString>, ClientError> {
    let checked = check(&spec)?;
    known_orgs(store, &checked).await?;
    let settings = checked.settings();
    let id = client_id.to_owned();
    let needs_secret = checked.has_secret();
    let fresh = random_token();
    let issued = store
        .transaction(move |c| {
            let current = clients::find(c, &id)?.ok_or(StoreError::NotFound)?;
            clients::update(c, &id, &settings)?;
            match (needs_secret, current.secret_hash.is_some()) {
                (true, false) => {
                    clients::set_secret_hash(c, &id, Some(&token_hash(&fresh)))?;
                    Ok(Some(fresh))
                }
                (false, true) => {
                    clients::set_secret_hash(c, &id, None)?;
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
        .await?;
    Ok(issued.map(SecretString::from))
}

/// A new secret for a confidential client; the old one stops working at once.
pub async fn rotate_secret(store: &Store, client_id: &str) -> Result<SecretString, ClientError> {
    let id = client_id.to_owned();
    let fresh = random_token();
    let hash = token_hash(&fresh);
    store
        .transaction(move |c| {
            let current = clients::find(c, &id)?.ok_or(StoreError::NotFound)?;
            if current.secret_hash.is_none() {
                return Err(StoreError::Conflict);
            }
            clients::set_secret_hash(c, &id, Some(&hash))
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict => invalid(
                "client",
                "only clients that authenticate with a secret have one to rotate",
            ),
            other => other.into(),
        })?;
    Ok(SecretString::from(fresh))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}

fn list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

/// What a stored client may do.
impl ClientRow {
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AUTH_NONE
    }

    /// Exact match, but for the port of an http loopback URI (RFC 8252 §7.3).
    pub fn redirect_uri_registered(&self, uri: &str) -> bool {
        list(&self.redirect_uris)
            .iter()
            .any(|r| super::redirect_uri::matches(r, uri))
    }

    pub fn post_logout_uri_registered(&self, uri: &str) -> bool {
        list(&self.post_logout_redirect_uris)
            .iter()
            .any(|r| r == uri)
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        list(&self.grant_types).iter().any(|g| g == grant)
    }

    /// Whether the client may be granted `scope`: it is registered with it, or, for a
    /// clinical scope, with one that covers it (`patient/*.rs` admits
    /// `patient/Observation.r`).
    pub fn allows_scope(&self, scope: &str) -> bool {
        let registered = list(&self.scopes);
        registered.iter().any(|s| s == scope) || crate::domain::covered_by(&registered, scope)
    }

    /// The organisations (by name) it admits; None: every organisation.
    pub fn allowed_org_list(&self) -> Option<Vec<String>> {
        self.allowed_orgs.as_deref().map(list)
    }

    /// Whether users of organisation `org_name` may sign in to it (issue 20 item 9). A
    /// list that does not parse admits nobody.
    pub fn allows_org(&self, org_name: &str) -> bool {
        self.allowed_org_list()
            .is_none_or(|orgs| orgs.iter().any(|o| o == org_name))
    }

    /// The registration as a spec, for an update that changes part of it.
    pub fn spec(&self) -> ClientSpec {
        ClientSpec {
            name: self.name.clone(),
            redirect_uris: list(&self.redirect_uris),
            post_logout_redirect_uris: list(&self.post_logout_redirect_uris),
            public: self.is_public(),
            grant_types: list(&self.grant_types),
            scopes: list(&self.scopes),
            auth_method: Some(self.token_endpoint_auth_method.clone()),
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            id_token_alg: Some(self.id_token_alg.clone()),
            access_token_alg: Some(self.access_token_alg.clone()),
            allowed_orgs: self.allowed_org_list(),
            introspection: self.introspection,
            allowed_origins: self.allowed_origins.as_deref().map(list),
            require_par: self.require_par,
            require_dpop: self.require_dpop,
            fapi2: self.fapi2,
            ask_consent: self.ask_consent,
        }
    }

    /// The algorithm of its ID tokens and back-channel logout tokens; None for a name
    /// this version does not sign with (stored by a newer one).
    pub fn id_token_signing_alg(&self) -> Option<SigningAlg> {
        SigningAlg::parse(&self.id_token_alg)
    }

    /// The algorithm of its access tokens, likewise.
    pub fn access_token_signing_alg(&self) -> Option<SigningAlg> {
        SigningAlg::parse(&self.access_token_alg)
    }

    pub fn redirect_uri_list(&self) -> Vec<String> {
        list(&self.redirect_uris)
    }

    pub fn post_logout_uri_list(&self) -> Vec<String> {
        list(&self.post_logout_redirect_uris)
    }

    pub fn grant_list(&self) -> Vec<String> {
        list(&self.grant_types)
    }

    pub fn scope_list(&self) -> Vec<String> {
        list(&self.scopes)
    }
}

#[cfg(test)]
mod tests;
