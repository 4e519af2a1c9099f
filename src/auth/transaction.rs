//! Login transactions (DESIGN §1): whatever starts a sign-in (the account page, an
//! OIDC `/authorize`, a SAML AuthnRequest) becomes one, stored in the ephemeral store
//! under a random id. The pages move it forward; when it is done, the original request
//! is answered. One pipeline serves every protocol.
//!
//! A transaction is bound to the browser that started it (a hash of its browser
//! cookie) and carries its own CSRF token, so a link to someone else's half-finished
//! sign-in is useless (no login CSRF, no fixation).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::random_token;
use crate::{ephemeral::Ephemeral, web::error::AppError};

/// How long a person may take over the sign-in pages.
pub const TRANSACTION_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest id or token accepted from a form: anything longer is not ours.
pub const MAX_TOKEN_LEN: usize = 64;

/// What answers the original request once the person is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resume {
    /// The account page (`/account`).
    Account,
    /// The admin console: the console page that was asked for, or `/admin`.
    Admin {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_to: Option<String>,
    },
    /// An OIDC authorization request: answered with a code.
    Authorize(Box<crate::oidc::authorize::AuthorizeRequest>),
    /// A SAML AuthnRequest (or IdP-initiated SSO): answered with a Response.
    Saml(Box<crate::saml::sso::SamlRequest>),
}

/// How far the person has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Password,
    /// The second factor of an enrolled user.
    Otp,
    /// Required action: a user who must have MFA and has none enrols first.
    EnrolTotp,
    /// Required action: the password must be changed.
    ChangePassword,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTransaction {
    pub id: String,
    /// SHA-256 of the browser cookie that started it.
    pub browser: String,
    pub csrf: String,
    pub resume: Resume,
    pub stage: Stage,
    pub user_id: Option<String>,
    /// Methods used so far (`pwd`, later `otp`), for `amr`.
    pub amr: Vec<String>,
    /// Unix seconds of the successful password check.
    pub auth_time: Option<i64>,
    /// The relying party asked for MFA (OIDC `acr_values`, SAML `RequestedAuthnContext`).
    #[serde(default)]
    pub require_mfa: bool,
    /// Found at the password step: a password change is due after the second factor.
    #[serde(default)]
    pub must_change_password: bool,
    /// The relying party's `login_hint`: prefills the username field.
    #[serde(default)]
    pub login_hint: Option<String>,
}

fn key(id: &str) -> String {
    format!("tx:{id}")
}

impl LoginTransaction {
    pub async fn begin(
        store: &dyn Ephemeral,
        resume: Resume,
        browser_hash: String,
    ) -> Result<Self, AppError> {
        let tx = Self {
            id: random_token(),
            browser: browser_hash,
            csrf: random_token(),
            resume,
            stage: Stage::Password,
            user_id: None,
            amr: Vec::new(),
            auth_time: None,
            require_mfa: false,
            must_change_password: false,
            login_hint: None,
        };
        tx.save(store).await?;
        Ok(tx)
    }

    /// The transaction, if `id` names a live one. Malformed ids are simply unknown.
    pub async fn load(store: &dyn Ephemeral, id: &str) -> Result<Option<Self>, AppError> {
        if id.is_empty() || id.len() > MAX_TOKEN_LEN || !id.bytes().all(is_token_byte) {
            return Ok(None);
        }
        let Some(raw) = store.get(&key(id)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&raw).ok())
    }

    pub async fn save(&self, store: &dyn Ephemeral) -> Result<(), AppError> {
        let raw = serde_json::to_vec(self).map_err(|e| AppError::Internal(e.to_string()))?;
        store.set(&key(&self.id), &raw, TRANSACTION_TTL).await?;
        Ok(())
    }

    /// Removes the transaction; true for the one caller that got it. A finished sign-in
    /// resumes its request exactly once, even if the form is submitted twice.
    pub async fn finish(&self, store: &dyn Ephemeral) -> Result<bool, AppError> {
        Ok(store.take(&key(&self.id)).await?.is_some())
    }
}

impl LoginTransaction {
    /// The stage after a completed second factor (or none needed).
    pub fn after_second_factor(&self) -> Stage {
        if self.must_change_password {
            Stage::ChangePassword
        } else {
            Stage::Done
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
