//! What can go wrong in the sign-in capabilities (sessions, login transactions, the end
//! of a sign-in, step-up, second factors, recovery), said by cause and not by HTTP status
//! (DESIGN §1). The doors turn it into their answer in one place, `web::error`: a page
//! for browsers, JSON for APIs.
//!
//! A wrong credential is not an error here: it is the guard's `Verdict`.

use std::time::Duration;

use crate::{
    audit::AuditError,
    auth::{guard::GuardError, hashing::PoolError},
    ephemeral::EphemeralError,
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// What the person sent is refused; the message is safe to show them.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist (or is not theirs to ask for).
    #[error("not found")]
    NotFound,
    /// Too many attempts of this kind: come back after `retry_after`.
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Duration },
    /// A dependency (database, ephemeral store, audit trail, hashing pool) cannot answer
    /// now: try again shortly. Nothing a retry depends on was changed.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours (corrupt stored state, a broken invariant): logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::Invalid("already exists".into()),
            StoreError::Query(m) => Self::Internal(m),
        }
    }
}

impl From<AuditError> for AuthError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Store(e) => e.into(),
            AuditError::Closed => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EphemeralError> for AuthError {
    fn from(e: EphemeralError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<PoolError> for AuthError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Busy => Self::Unavailable("password hashing at capacity".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<GuardError> for AuthError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::RateLimited { retry_after } => Self::TooManyAttempts { retry_after },
            GuardError::Unavailable(m) => Self::Unavailable(m),
            GuardError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<AuthError> for GuardError {
    /// The guard keeps only what its callers need of a factor check's failure: whether
    /// to try again.
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(format!("second factor check: {other}")),
        }
    }
}
