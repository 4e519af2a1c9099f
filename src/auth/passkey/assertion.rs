//! Signing in with a passkey (DESIGN §17): at the first stage of a login transaction
//! without a username (a discoverable passkey names its account), or at the second
//! factor stage as one of the account's own passkeys.
//!
//! Every answer is a guess under the guard, like a password (DESIGN §5): an unknown
//! credential, a disabled account's, an answer to a challenge already answered or
//! never given, a wrong origin or RP ID, or user verification missing are all counted,
//! and all refused with the one message a wrong password gets.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use webauthn_rs::prelude::PublicKeyCredential;

use super::{CEREMONY_TTL, ceremony, credential, list, method, policy_of, user_handle};
use crate::{
    audit::RequestContext,
    auth::{
        AuthError,
        guard::{self, Credential, Verdict},
        token_hash,
        transaction::{LoginTransaction, Stage},
    },
    startup::AppState,
    store::{passkeys as store, passkeys::PasskeyRow, users, users::UserRow},
};

fn key(tx_id: &str) -> String {
    format!("passkey-auth:{}", token_hash(tx_id))
}

/// A challenge for the transaction's stage: the options for
/// `navigator.credentials.get()`, as JSON. A new one replaces any earlier one.
pub async fn challenge(
    state: &AppState,
    tx: &LoginTransaction,
) -> Result<serde_json::Value, AuthError> {
    let webauthn = state.passkeys.get()?;
    let (options, raw) = match (tx.stage, tx.user_id.as_deref()) {
        (Stage::Password, _) => ceremony::begin_discoverable(webauthn)?,
        (Stage::Otp, Some(user_id)) => {
            let passkeys = list(state, user_id)
                .await?
                .iter()
                .map(credential)
                .collect::<Result<Vec<_>, _>>()?;
            if passkeys.is_empty() {
                return Err(AuthError::Invalid("This account has no passkey.".into()));
            }
            ceremony::begin_for_user(webauthn, user_id, &passkeys)?
        }
        _ => {
            return Err(AuthError::Invalid(
                "A passkey is not asked for at this step.".into(),
            ));
        }
    };
    state
        .ephemeral
        .set(&key(&tx.id), &raw, CEREMONY_TTL)
        .await?;
    Ok(options)
}

/// A passkey's answer, for the guard to check (`Credential::Passkey`).
pub struct PasskeyProof {
    tx_id: String,
    /// None: what was sent is no answer at all (still a guess).
    answer: Option<PublicKeyCredential>,
    /// The stored passkey the answer names, whoever's it is.
    row: Option<PasskeyRow>,
    /// At the second-factor stage, the account whose password was proven.
    expected_user: Option<String>,
}

impl PasskeyProof {
    /// Whether this answer is a whole sign-in (no password before it).
    pub fn passwordless(&self) -> bool {
        self.expected_user.is_none()
    }
}

/// What a passkey sign-in came to.
#[derive(Debug)]
pub enum Outcome {
    /// `method` is the `amr` value of the passkey (`hwk` or `swk`).
    SignedIn {
        user: Box<UserRow>,
        method: &'static str,
    },
    Failure,
    Locked,
    IpBlocked {
        retry_after: Duration,
    },
}

/// Checks the browser's answer `response` to the transaction's challenge, under the
/// guard: counted against the account the passkey belongs to (at the second-factor
/// stage, the account whose password was proven), or, for a passkey nobody has,
/// against what it claims to be.
pub async fn sign_in(
    state: &AppState,
    ctx: &RequestContext,
    tx: &LoginTransaction,
    response: &str,
) -> Result<Outcome, AuthError> {
    state.passkeys.get()?;
    let answer = ceremony::parse_assertion(response);
    let credential_id = answer
        .as_ref()
        .map(|a| URL_SAFE_NO_PAD.encode(a.raw_id.as_slice()));
    let row = match credential_id.clone() {
        Some(id) if id.len() <= 1024 => {
            state
                .store
                .run(move |c| store::by_credential(c, &id))
                .await?
        }
        _ => None,
    };
    let expected_user = match tx.stage {
        Stage::Password => None,
        Stage::Otp => tx.user_id.clone(),
        _ => return Ok(Outcome::Failure),
    };
    // Whose attempt this is: the proven account at the second factor, else the owner
    // of the passkey named, else a name made from the credential id (never an account).
    let counted = expected_user
        .clone()
        .or_else(|| row.as_ref().map(|r| r.user_id.clone()));
    let username = match counted {
        Some(id) => {
            let pii = state.pii.clone();
            state
                .store
                .run(move |c| users::find_by_id(c, &pii, &id))
                .await?
                .map(|u| u.username)
        }
        None => None,
    };
    let username = username.unwrap_or_else(|| {
        let claimed = credential_id.as_deref().unwrap_or("malformed");
        format!("passkey:{}", &token_hash(claimed)[..32])
    });
    let method = row.as_ref().map(method).unwrap_or("hwk");
    let proof = PasskeyProof {
        tx_id: tx.id.clone(),
        answer,
        row,
        expected_user,
    };
    Ok(
        match guard::attempt(state, ctx, &username, Credential::Passkey(Box::new(proof))).await? {
            Verdict::Success(user) => Outcome::SignedIn { user, method },
            Verdict::Failure => Outcome::Failure,
            Verdict::Locked => Outcome::Locked,
            Verdict::IpBlocked { retry_after } => Outcome::IpBlocked { retry_after },
        },
    )
}

/// The guard's check of a passkey answer for `user` (the usable account the attempt
/// counts against, if any). The challenge is used up whatever the answer.
pub(crate) async fn verify(
    state: &AppState,
    user: Option<&UserRow>,
    proof: PasskeyProof,
) -> Result<bool, AuthError> {
    let webauthn = state.passkeys.get()?;
    let Some(raw) = state.ephemeral.take(&key(&proof.tx_id)).await? else {
        return Ok(false);
    };
    let (Some(user), Some(answer), Some(row)) = (user, proof.answer, proof.row) else {
        return Ok(false);
    };
    if row.user_id != user.id || proof.expected_user.is_some_and(|id| id != user.id) {
        return Ok(false);
    }
    if !policy_of(state, &user.org_id).await?.allowed() {
        return Ok(false);
    }
    let mut passkey = credential(&row)?;
    let handle = user_handle(user)?;
    let Some(result) =
        ceremony::finish_assertion(webauthn, &raw, &answer, &passkey, &user.id, handle)
    else {
        return Ok(false);
    };
    let changed = passkey.update_credential(&result) == Some(true);
    let stored = match changed {
        true => {
            Some(serde_json::to_string(&passkey).map_err(|e| AuthError::Internal(e.to_string()))?)
        }
        false => None,
    };
    let (id, now) = (row.id.clone(), state.clock.now().naive_utc());
    state
        .store
        .run(move |c| store::used(c, &id, stored.as_deref(), now))
        .await?;
    Ok(true)
}
