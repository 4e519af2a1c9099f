//! The admin REST API (`/admin/api/v1`, DESIGN §3 roles, issue: admin API), and the
//! admin console's pages (`console`) over the same role rules.
//!
//! Callers present a bearer access token issued by Gatehouse with the `gatehouse:admin`
//! scope: an administrator's (its user's role decides what it may do, checked on every
//! request against the database, so a demotion takes effect at once) or a service
//! client's (client_credentials; such a client is registered by an operator and acts
//! as `super_admin`). Resources of an organisation the caller cannot see answer 404,
//! never 403, so their existence is not revealed.

pub mod api;
pub mod console;
pub mod openapi;
pub mod service;

pub use service::{Action, Caller, ServiceError};

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    auth::step_up::{self, MfaVerdict},
    domain::{Role, UserStatus},
    oidc::clients::ClientError,
    oidc::dpop,
    saml::providers::SpError,
    startup::AppState,
    store::{StoreError, grants},
    web::error::AppError,
};

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "gatehouse:admin";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/api/v1")
            .configure(api::routes)
            .route("/openapi.json", web::get().to(openapi::document)),
    );
    console::routes(cfg);
}

/// An admin API error: JSON `{"error", "message"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a bearer access token with the gatehouse:admin scope is required")]
    Unauthorized,
    /// Issue 20 item 4: the token's sign-in did not use the second factor the
    /// organisation's policy requires of the caller's role.
    #[error(
        "your organisation requires a second factor for your role: sign in again with it \
         (acr_values=urn:gatehouse:acr:mfa) and use the new token"
    )]
    MfaRequired,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::Conflict("it already exists".into()),
            other => Self::App(other.into()),
        }
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::App(e.into())
    }
}

impl From<crate::ephemeral::EphemeralError> for ApiError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        Self::App(e.into())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        Self::App(e.into())
    }
}

/// The one place an admin service error becomes an API answer (the console's pages go
/// through it too, `console::page_error`).
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use crate::auth::{account::CreateAccountError as Account, recovery::AdminError};
        match e {
            ServiceError::Forbidden(m) => Self::Forbidden(m),
            ServiceError::NotFound(_) => Self::NotFound,
            ServiceError::Invalid(m) => Self::BadRequest(m),
            ServiceError::Conflict(m) => Self::Conflict(m),
            ServiceError::Account(e) => match e {
                Account::NoSuchOrg(_) => Self::NotFound,
                Account::Exists(_) => Self::Conflict("username: already taken".into()),
                Account::Policy(rules) => {
                    Self::BadRequest(format!("password: {}", rules.join(" ")))
                }
                Account::App(a) => Self::App(a.into()),
            },
            ServiceError::Recovery(e) => match e {
                AdminError::NoSuchUser(_) | AdminError::NoSuchOrg(_) => Self::NotFound,
                AdminError::NotActive(..) | AdminError::Exists(_) => Self::Conflict(e.to_string()),
                AdminError::App(a) => Self::App(a.into()),
            },
            // The library names the CLI's options; the API names its JSON fields (RFC 7591).
            ServiceError::Client(ClientError::Invalid { field, reason }) => {
                let field = match field {
                    "auth_method" => "token_endpoint_auth_method",
                    "id_token_alg" => "id_token_signed_response_alg",
                    "access_token_alg" => "access_token_signed_response_alg",
                    other => other,
                };
                Self::BadRequest(format!("{field}: {reason}"))
            }
            ServiceError::Client(ClientError::Store(s)) => s.into(),
            ServiceError::Sp(e) => match e {
                SpError::Metadata(_) => Self::BadRequest(e.to_string()),
                SpError::Invalid { field, reason } => {
                    let field = match field {
                        "attribute" => "attributes".to_owned(),
                        "relay-state" => "idp_initiated_relay_states".to_owned(),
                        "pinned-cert" => "pinned_certificate".to_owned(),
                        other => other.replace('-', "_"),
                    };
                    Self::BadRequest(format!("{field}: {reason}"))
                }
                SpError::Store(s) => s.into(),
                SpError::Damaged(_) => Self::App(AppError::Internal(e.to_string())),
            },
            ServiceError::Failed(a) => Self::App(a),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `invalid_request`, `conflict`, …
    pub error: String,
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::MfaRequired => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::App(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::App(e) = self {
            return e.error_response();
        }
        let error = match self {
            Self::Unauthorized => "unauthorized",
            // RFC 9470 §3: the error a resource server gives for too weak a sign-in.
            Self::MfaRequired => "insufficient_user_authentication",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::BadRequest(_) => "invalid_request",
            Self::Conflict(_) => "conflict",
            Self::App(_) => unreachable!(),
        };
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::Unauthorized => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="gatehouse-admin", scope="gatehouse:admin""#,
                ));
            }
            // RFC 9470 §3: the challenge names the authentication context to come back with.
            Self::MfaRequired => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="gatehouse-admin", error="insufficient_user_authentication", error_description="a second factor is required for your role", acr_values="urn:gatehouse:acr:mfa""#,
                ));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: error.into(),
            message: self.to_string(),
        })
    }
}

/// A JSON body, refusing unknown fields and wrong types with the field's path named.
pub fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(ApiError::BadRequest(
            "the body must be application/json".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = inner.to_string();
        // serde_json appends " at line L column C": the field path says it better.
        let what = what.split(" at line ").next().unwrap_or(&what).to_owned();
        if path == "." {
            ApiError::BadRequest(what)
        } else {
            ApiError::BadRequest(format!("{path}: {what}"))
        }
    })
}

/// Resolves the access token of an admin API request: a bearer token, or a DPoP-bound
/// one with the DPoP scheme and a proof by its key (RFC 9449 §7).
pub async fn caller(state: &AppState, req: &HttpRequest) -> Result<Caller, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(dpop::authorization)
        .ok_or(ApiError::Unauthorized)?;
    let claims = dpop::access_token(state, req, req.path(), presented)
        .await
        .map_err(|e| match e.cause {
            // The replay cache could not answer: a 503, not the caller's fault.
            Some(cause) if e.status.is_server_error() => AppError::Unavailable(cause).into(),
            _ => ApiError::Unauthorized,
        })?;
    if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
        return Err(ApiError::Unauthorized);
    }
    let Some(gid) = claims.gid.clone() else {
        // A client_credentials token: the client itself, while it exists and the token
        // is not revoked.
        return match crate::oidc::token::access_token_holder(state, &claims).await? {
            Some(None) => Ok(Caller {
                actor: format!("client:{}", claims.client_id),
                role: Role::SuperAdmin,
                org_id: None,
            }),
            _ => Err(ApiError::Unauthorized),
        };
    };
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| grants::live_with_user(c, &pii, &gid))
        .await?;
    let Some((grant, user)) = found else {
        return Err(ApiError::Unauthorized);
    };
    match (grant.user_id, user) {
        // A client_credentials grant stored before such tokens went without one.
        (None, _) => Ok(Caller {
            actor: format!("client:{}", grant.client_id),
            role: Role::SuperAdmin,
            org_id: None,
        }),
        (Some(_), Some(user)) if user.status() == UserStatus::Active => {
            if !user.role().is_admin() {
                return Err(ApiError::Forbidden("administrators only"));
            }
            // The console's rule, on the methods the token's sign-in used: a token from
            // a password-only sign-in opens nothing once the policy asks for more.
            let amr = claims.amr.clone().unwrap_or_default();
            if step_up::assess(state, &user, &amr).await? == MfaVerdict::Missing {
                return Err(ApiError::MfaRequired);
            }
            Ok(Caller {
                actor: user.id.clone(),
                role: user.role(),
                org_id: Some(user.org_id.clone()),
            })
        }
        _ => Err(ApiError::Unauthorized),
    }
}
