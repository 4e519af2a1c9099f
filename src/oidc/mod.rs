//! The OpenID Provider (DESIGN §9): discovery, JWKS, `/authorize`, `/token`,
//! `/userinfo`, `/revoke`, `/introspect`, RP-initiated and back-channel logout.
//!
//! `/authorize` turns a request into a login transaction (`auth::transaction`); the
//! sign-in pipeline answers it with [`authorize::issue_code`] once the person is signed
//! in and every required action is done, so no code is issued to a user who still has to
//! change a password or enrol a second factor.

pub mod authorize;
pub mod client_assertion;
pub mod client_auth;
pub mod client_cache;
pub mod client_keys;
pub mod clients;
pub mod consent;
pub mod cors;
pub mod discovery;
pub mod dpop;
pub mod grant;
pub mod held;
pub mod jwt;
pub mod logout;
pub mod par;
pub mod redirect_uri;
pub mod request_object;
pub mod smart;
pub mod token;
pub mod userinfo;

use std::collections::HashMap;

use actix_web::{
    HttpResponse, ResponseError,
    http::{Method, StatusCode, header},
    web,
};
use serde::Serialize;

use crate::web::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.well-known/openid-configuration")
            .route(web::get().to(discovery::configuration))
            .route(web::method(Method::OPTIONS).to(cors::public_preflight)),
    )
    .service(
        web::resource("/jwks")
            .route(web::get().to(discovery::jwks))
            .route(web::method(Method::OPTIONS).to(cors::public_preflight)),
    )
    .service(
        web::resource("/authorize")
            .route(web::get().to(authorize::authorize_get))
            .route(web::post().to(authorize::authorize_post)),
    )
    .service(web::resource("/par").route(web::post().to(par::push)))
    .service(
        web::resource("/token")
            .route(web::post().to(token::token_endpoint))
            .route(web::method(Method::OPTIONS).to(cors::preflight)),
    )
    .service(
        web::resource("/userinfo")
            .route(web::get().to(userinfo::userinfo))
            .route(web::post().to(userinfo::userinfo))
            .route(web::method(Method::OPTIONS).to(cors::preflight)),
    )
    .service(
        web::resource("/revoke")
            .route(web::post().to(token::revoke))
            .route(web::method(Method::OPTIONS).to(cors::preflight)),
    )
    .service(token::introspect)
    .service(consent::consent_page)
    .service(consent::answer)
    .configure(smart::routes);
}

/// Longest value accepted for any protocol parameter; real ones are far shorter.
pub const MAX_PARAM_LEN: usize = 4096;
/// Most parameters accepted in one request.
const MAX_PARAMS: usize = 64;

/// Longest value accepted for parameter `name`: a signed request object (RFC 9101) is
/// longer than any other.
fn max_len(name: &str) -> usize {
    if name == "request" {
        crate::crypto::jose::MAX_JWS_BYTES
    } else {
        MAX_PARAM_LEN
    }
}

/// Request parameters (query string or form body), each at most once (RFC 6749 §3.1).
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
    duplicated: Vec<String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text. Duplicates are remembered (not
    /// fatal here: `/authorize` must still decide whether it may redirect).
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let mut params = Self::default();
        for (i, (k, v)) in url::form_urlencoded::parse(raw).enumerate() {
            if i >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if k.len() > 64 || v.len() > max_len(&k) {
                return Err(if k == "request" {
                    request_object::refused(format!("longer than {} bytes", max_len(&k)))
                } else {
                    OAuthError::invalid_request("a parameter is too long")
                });
            }
            if params.values.contains_key(k.as_ref()) {
                params.duplicated.push(k.into_owned());
            } else {
                params.values.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(params)
    }

    /// The value of `name`, if present and not empty (RFC 6749 §3.1: empty = omitted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn is_duplicated(&self, name: &str) -> bool {
        self.duplicated.iter().any(|d| d == name)
    }

    /// Refuses any repeated parameter.
    pub fn single(self) -> Result<Self, OAuthError> {
        match self.duplicated.first() {
            Some(name) => Err(OAuthError::invalid_request(format!(
                "parameter {name} was sent more than once"
            ))),
            None => Ok(self),
        }
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

/// An RFC 6749 §5.2 error answer: JSON, `no-store`.
#[derive(Debug, Clone, Serialize)]
pub struct OAuthError {
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(skip)]
    pub status: StatusCode,
    /// `WWW-Authenticate` challenge, for 401s.
    #[serde(skip)]
    pub challenge: Option<String>,
    /// `Retry-After` seconds, for 429s and 503s.
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Why a 503 happened: logged with the request id, never sent.
    #[serde(skip)]
    pub cause: Option<String>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: Some(description.into()),
            status: StatusCode::BAD_REQUEST,
            challenge: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// Client authentication failed: 401, with a challenge for the scheme the client used.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenge: Some(r#"Basic realm="gatehouse""#.into()),
            ..Self::new("invalid_client", description)
        }
    }

    /// RFC 6750 §3.1 bearer token errors (userinfo).
    pub fn invalid_token(description: impl Into<String>) -> Self {
        let description = description.into();
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenge: Some(format!(
                r#"Bearer realm="gatehouse", error="invalid_token", error_description="{description}""#
            )),
            ..Self::new("invalid_token", description)
        }
    }

    fn server(e: &AppError) -> Self {
        match e {
            AppError::Unavailable(cause) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                cause: Some(cause.clone()),
                retry_after: Some(5),
                ..Self::new("temporarily_unavailable", "try again shortly")
            },
            AppError::TooManyRequests { retry_after_secs } => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(*retry_after_secs),
                ..Self::new("temporarily_unavailable", "too many requests; slow down")
            },
            _ => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                ..Self::new("server_error", "internal error")
            },
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if let Some(challenge) = &self.challenge {
            res.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        let mut res = res.json(self);
        if let Some(cause) = &self.cause {
            crate::web::error::note_unavailable(&mut res, cause);
        }
        res
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        if !matches!(
            e,
            AppError::Unavailable(_) | AppError::TooManyRequests { .. }
        ) {
            tracing::error!(error = %e, "OIDC endpoint failed");
        }
        Self::server(&e)
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::from(e).into()
    }
}

/// The one place a grant's refusal becomes an RFC 6749 §5.2 answer.
impl From<grant::GrantError> for OAuthError {
    fn from(e: grant::GrantError) -> Self {
        use grant::GrantError as E;
        match e {
            E::MissingParameter(name) => Self::invalid_request(format!("missing parameter {name}")),
            E::InvalidGrant(why) => Self::invalid_grant(why),
            E::InvalidScope(why) => Self::new("invalid_scope", why),
            E::InvalidTarget(why) => Self::new("invalid_target", why),
            E::UnauthorizedClient(why) => Self::new("unauthorized_client", why),
            E::InvalidDpopProof(why) => Self::new("invalid_dpop_proof", why),
            E::Store(e) => e.into(),
            E::Ephemeral(e) => e.into(),
            E::Audit(e) => e.into(),
            E::Unavailable(cause) => AppError::Unavailable(cause).into(),
            E::Internal(cause) => AppError::Internal(cause).into(),
        }
    }
}

impl From<crate::ephemeral::EphemeralError> for OAuthError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        AppError::from(e).into()
    }
}

/// A JSON answer that must never be cached (tokens, introspection).
pub fn no_store_json(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// The parameters of a form POST, refusing other content types.
pub fn form_params(req: &actix_web::HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body)
}

/// Scopes every client gets unless its registration says otherwise.
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A scope Gatehouse knows: the standard ones; the admin API's; and SMART's (DESIGN
/// §18: `launch`, `launch/patient`, `fhirUser`, `online_access` and well-formed clinical
/// scopes), which, like the admin API's, a client only has when registered with them.
pub fn known_scope(scope: &str) -> bool {
    SUPPORTED_SCOPES.contains(&scope)
        || scope == crate::admin::ADMIN_SCOPE
        || scope == smart::LAUNCHER_SCOPE
        || crate::domain::is_smart_word(scope)
        || crate::domain::is_clinical(scope)
}

/// A space-separated scope string as a list, refusing malformed ones (RFC 6749 §3.3).
pub fn parse_scope(raw: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(OAuthError::new("invalid_scope", "malformed scope"));
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}

/// The `sid` claim for an SSO session: derived from its handle, so a token never
/// carries the value the session store is keyed by.
pub fn sid_for(session_handle: &str) -> String {
    crate::auth::token_hash(&format!("sid:{session_handle}"))[..32].to_owned()
}

impl From<crate::audit::AuditError> for OAuthError {
    fn from(e: crate::audit::AuditError) -> Self {
        AppError::from(e).into()
    }
}
