//! What can go wrong around a guarded attempt. None of it says anything about the
//! credential (that is the `Verdict`); the doors map it to their answer in one place
//! (`web::error`: 429 or 503 with `Retry-After`, or 500).

use std::time::Duration;

use crate::{
    audit::AuditError, auth::hashing::PoolError, ephemeral::EphemeralError, store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Over the per-address request quota: come back after `retry_after`.
    #[error("too many requests from this address")]
    RateLimited { retry_after: Duration },
    /// A dependency (database, Redis, the audit trail, the hashing pool) cannot answer
    /// now, or earlier attempts on the name are still being checked: try again shortly.
    /// Nothing was counted that a retry depends on.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("guard failure: {0}")]
    Internal(String),
}

impl From<StoreError> for GuardError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuditError> for GuardError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Store(e) => e.into(),
            AuditError::Closed => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EphemeralError> for GuardError {
    fn from(e: EphemeralError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<PoolError> for GuardError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Busy => Self::Unavailable("password hashing at capacity".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}
