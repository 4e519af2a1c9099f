//! What every inbound SAML request (AuthnRequest, LogoutRequest) must pass before it is
//! acted on, whatever it asks: a registered sender, an age within the accepted window,
//! and first use (DESIGN §10). A refusal carries what the page and the trail say.

use std::{borrow::Cow, time::Duration};

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{
    providers::{self, ServiceProvider},
    request::MessageError,
};
use crate::{startup::AppState, web::error::AppError};

/// How old a request may be (besides clock skew): a person is sent on at once.
pub const REQUEST_MAX_AGE_SECS: i64 = 300;

/// Why a request was refused before its sender's return address is trusted: the text
/// for the page and the audit trail, the SP when it is known, and the page's status.
#[derive(Debug)]
pub struct Refusal {
    pub sp: Option<String>,
    pub text: Cow<'static, str>,
    pub status: StatusCode,
}

impl Refusal {
    pub fn new(sp: Option<&str>, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sp: sp.map(str::to_owned),
            text: text.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// A message that failed decoding or its signature check, with that error's status.
    pub fn message(sp: Option<&str>, e: &MessageError) -> Self {
        Self {
            status: e.status(),
            ..Self::new(sp, e.to_string())
        }
    }
}

/// The registered SP named by a request's `Issuer`.
pub async fn registered_sp(
    state: &AppState,
    issuer: Option<&samael::schema::Issuer>,
) -> Result<Result<ServiceProvider, Refusal>, AppError> {
    let Some(issuer) = issuer_of(issuer) else {
        return Ok(Err(Refusal::new(
            None,
            "The request does not say which application sent it.",
        )));
    };
    match providers::find(&state.store, &issuer).await {
        Ok(Some(sp)) => Ok(Ok(sp)),
        Ok(None) => Ok(Err(Refusal::new(
            None,
            "The application is not registered with Gatehouse.",
        ))),
        Err(e) => Err(AppError::Internal(e.to_string())),
    }
}

/// An `Issuer`'s value, trimmed.
pub fn issuer_of(issuer: Option<&samael::schema::Issuer>) -> Option<String> {
    issuer
        .and_then(|i| i.value.as_deref())
        .map(|v| v.trim().to_owned())
}

fn skew(state: &AppState) -> i64 {
    i64::try_from(state.config.saml_clock_skew_secs).unwrap_or(120)
}

/// Whether a request issued at `issued` is neither too old nor from the future.
pub fn is_fresh(state: &AppState, issued: DateTime<Utc>) -> bool {
    let skew = skew(state);
    let age = (state.clock.now() - issued).num_seconds();
    age <= REQUEST_MAX_AGE_SECS + skew && age >= -skew
}

pub const STALE: &str =
    "The request is too old or from the future (check the application's clock).";

/// True the first time `kind` request `id` of `sp` is seen: it is remembered for as
/// long as it could be accepted, so a replay within the window is caught.
pub async fn first_use(state: &AppState, kind: &str, sp: &str, id: &str) -> Result<bool, AppError> {
    let key = format!(
        "{kind}:{}",
        hex::encode(Sha256::digest(format!("{sp}\0{id}")))
    );
    let remember = Duration::from_secs((REQUEST_MAX_AGE_SECS + 2 * skew(state)).unsigned_abs());
    Ok(state.ephemeral.set_if_absent(&key, b"1", remember).await?)
}
