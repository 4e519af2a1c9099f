//! The one mapping from errors to HTTP answers. Bad input is a 4xx with a message;
//! an unreachable database or store is a 503 with `Retry-After`; nothing a request
//! sends produces a 500 with internals in it.

use actix_web::{
    Error, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::Next,
};
use serde::Serialize;

use super::RequestContext;
use crate::{ephemeral::EphemeralError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden(String),
    #[error("service temporarily unavailable")]
    Unavailable(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl AppError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::NotFound => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Internal(_) => "server_error",
        }
    }

    fn public_message(&self) -> &str {
        match self {
            Self::BadRequest(m) | Self::Forbidden(m) => m,
            Self::NotFound => "not found",
            Self::Unavailable(_) => "service temporarily unavailable, try again shortly",
            Self::TooManyRequests { .. } => "too many requests, slow down",
            Self::Internal(_) => "internal error",
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(detail) = self {
            tracing::error!(detail = %detail, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable(_) => {
                res.insert_header(("Retry-After", "5"));
            }
            Self::TooManyRequests { retry_after_secs } => {
                res.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            _ => {}
        }
        let mut res = res
            .insert_header(("Cache-Control", "no-store"))
            .json(ErrorBody {
                error: self.code(),
                error_description: self.public_message(),
            });
        if let Self::Unavailable(cause) = self {
            note_unavailable(&mut res, cause);
        }
        res
    }
}

/// Why a response is a 503, carried on it to [`log_unavailable`], which alone knows the
/// request id. Never shown to the client.
#[derive(Debug, Clone)]
pub struct UnavailableCause(pub String);

/// Marks `res` as a 503 caused by `cause` (for the log line, not for the client).
pub fn note_unavailable(res: &mut HttpResponse, cause: &str) {
    res.extensions_mut()
        .insert(UnavailableCause(cause.to_owned()));
}

/// Middleware, inside `web::context`: every 503 is logged at `warn` with its request id
/// and its cause, so an operator can tell which dependency a refused user met (issue 23
/// item 4: a 503 nobody can explain is a lost sign-in nobody can fix).
pub async fn log_unavailable(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let res = next.call(req).await?;
    if res.status() == StatusCode::SERVICE_UNAVAILABLE {
        let request_id = res
            .request()
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let noted = res
            .response()
            .extensions()
            .get::<UnavailableCause>()
            .map(|c| c.0.clone());
        let cause = noted
            .or_else(|| {
                let page = res
                    .response()
                    .error()?
                    .as_error::<super::pages::PageError>()?;
                match &page.0 {
                    AppError::Unavailable(cause) => Some(cause.clone()),
                    _ => None,
                }
            })
            .unwrap_or_else(|| "not recorded".to_owned());
        let route = res.request().match_pattern().unwrap_or_default();
        tracing::warn!(request_id = %request_id, route = %route, cause = %cause, "answered 503");
    }
    Ok(res)
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::BadRequest("already exists".into()),
            StoreError::Query(m) => Self::Internal(m),
        }
    }
}

impl From<crate::audit::AuditError> for AppError {
    fn from(e: crate::audit::AuditError) -> Self {
        use crate::audit::AuditError;
        match e {
            AuditError::Store(e) => e.into(),
            AuditError::Closed => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EphemeralError> for AppError {
    fn from(e: EphemeralError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<crate::auth::guard::GuardError> for AppError {
    fn from(e: crate::auth::guard::GuardError) -> Self {
        use crate::auth::guard::GuardError;
        match e {
            GuardError::RateLimited { retry_after } => Self::TooManyRequests {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            GuardError::Unavailable(m) => Self::Unavailable(m),
            GuardError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<crate::auth::AuthError> for AppError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Invalid(m) => Self::BadRequest(m),
            AuthError::NotFound => Self::NotFound,
            AuthError::TooManyAttempts { retry_after } => Self::TooManyRequests {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            AuthError::Unavailable(m) => Self::Unavailable(m),
            AuthError::Internal(m) => Self::Internal(m),
        }
    }
}

/// Unknown paths.
pub async fn not_found(_req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// Extractor failures (malformed JSON or form bodies, oversized bodies, bad query
/// strings) become a 400 that says what was wrong: a page for browsers, JSON for APIs;
/// never actix's default plain text or a 500.
pub fn bad_input(err: impl std::fmt::Display, req: &HttpRequest) -> actix_web::Error {
    let why = err.to_string();
    let (error, response) = if super::pages::wants_html(req) {
        let tr = super::visit::spoken(req);
        let error = AppError::BadRequest(tr.a("request-unreadable", "why", &why));
        let page = super::pages::error_page(&error, &tr);
        (error, page)
    } else {
        let error = AppError::BadRequest(format!("The request could not be read: {why}."));
        let json = error.error_response();
        (error, json)
    };
    actix_web::error::InternalError::from_response(error, response).into()
}
