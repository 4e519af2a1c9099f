//! The WebAuthn ceremonies themselves, without I/O: options for the browser with the
//! state to keep, and the browser's answers checked against that state. Everything a
//! browser sends passes through here, bounded before it is parsed, so this is also what
//! the fuzz tests drive (`tests/fuzz.rs`, target `passkey_answers`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, CredentialID, DiscoverableAuthentication,
    DiscoverableKey, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn,
};

use crate::{auth::AuthError, domain::PasskeyPolicy};

/// The largest answer from a browser looked at: a registration with its attestation
/// certificates fits in a few kilobytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(format!("passkey ceremony: {e}"))
}

/// Options for `navigator.credentials.create()` as the browser gets them, and the state
/// to keep for [`finish_registration`]. A passkey is asked to be discoverable (so it can
/// sign in without a username, DESIGN §17), and where the organisation lists the
/// authenticators it admits, the authenticator is asked to say which it is.
pub fn begin_registration(
    webauthn: &Webauthn,
    user_handle: Uuid,
    name: &str,
    display_name: &str,
    exclude: Vec<CredentialID>,
    policy: &PasskeyPolicy,
) -> Result<(serde_json::Value, Vec<u8>), AuthError> {
    let (options, state) = webauthn
        .start_passkey_registration(user_handle, name, display_name, Some(exclude))
        .map_err(internal)?;
    let state = serde_json::to_vec(&state).map_err(internal)?;
    Ok((creation_options(options, policy)?, state))
}

fn creation_options(
    options: CreationChallengeResponse,
    policy: &PasskeyPolicy,
) -> Result<serde_json::Value, AuthError> {
    let mut json = serde_json::to_value(options).map_err(internal)?;
    let public_key = json
        .get_mut("publicKey")
        .and_then(|p| p.as_object_mut())
        .ok_or_else(|| internal("creation options without publicKey"))?;
    if let Some(selection) = public_key
        .get_mut("authenticatorSelection")
        .and_then(|s| s.as_object_mut())
    {
        selection.insert("residentKey".into(), "preferred".into());
    }
    if !policy.allowed_aaguids.is_empty() {
        public_key.insert("attestation".into(), "direct".into());
    }
    Ok(json)
}

/// A credential the browser created, checked.
pub struct Created {
    pub passkey: Passkey,
    /// The authenticator model it named, if any.
    pub aaguid: Option<Uuid>,
    pub backup_eligible: bool,
}

/// Why a passkey was not registered; the pages say it in the person's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The browser's answer is larger than any passkey's.
    TooLarge,
    /// The browser sent something other than a created credential.
    NotCreated,
    /// The kept ceremony could not be read: as good as timed out.
    TimedOut,
    /// WebAuthn refused the credential.
    Invalid,
    /// The organisation's list of authenticators does not have it.
    KindNotAllowed,
    /// Registered already, or the account holds as many as it may.
    AlreadyOrFull,
}

/// Checks the browser's answer `response` (the created credential's JSON) against the
/// kept `state`.
pub fn finish_registration(
    webauthn: &Webauthn,
    state: &[u8],
    response: &str,
) -> Result<Created, Refusal> {
    if response.len() > MAX_RESPONSE_BYTES {
        return Err(Refusal::TooLarge);
    }
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(response) else {
        return Err(Refusal::NotCreated);
    };
    let registration: PasskeyRegistration =
        serde_json::from_slice(state).map_err(|_| Refusal::TimedOut)?;
    let passkey = webauthn
        .finish_passkey_registration(&answer, &registration)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            Refusal::Invalid
        })?;
    let internals: webauthn_rs::prelude::Credential = passkey.clone().into();
    Ok(Created {
        aaguid: aaguid_of(&answer),
        backup_eligible: internals.backup_eligible,
        passkey,
    })
}

/// The authenticator model the registration named (its AAGUID), if any: bytes 37 to 53
/// of the authenticator data, present when the attested-credential flag is set. The
/// library has already checked the attestation object this is read from.
fn aaguid_of(answer: &RegisterPublicKeyCredential) -> Option<Uuid> {
    let object: BTreeMap<String, serde_cbor_2::Value> =
        serde_cbor_2::from_slice(answer.response.attestation_object.as_slice()).ok()?;
    let serde_cbor_2::Value::Bytes(data) = object.get("authData")? else {
        return None;
    };
    const ATTESTED: u8 = 0x40;
    let flags = *data.get(32)?;
    if flags & ATTESTED == 0 {
        return None;
    }
    let aaguid = Uuid::from_slice(data.get(37..53)?).ok()?;
    (!aaguid.is_nil()).then_some(aaguid)
}

/// A challenge given to a login transaction, waiting for its answer.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    /// At the first stage: any passkey of this server; it names its account.
    Discoverable(DiscoverableAuthentication),
    /// At the second-factor stage: one of this account's passkeys.
    ForUser {
        user_id: String,
        state: PasskeyAuthentication,
    },
}

fn kept(
    options: impl Serialize,
    ceremony: Ceremony,
) -> Result<(serde_json::Value, Vec<u8>), AuthError> {
    Ok((
        serde_json::to_value(options).map_err(internal)?,
        serde_json::to_vec(&ceremony).map_err(internal)?,
    ))
}

/// A challenge any passkey of this server may answer (conditional mediation).
pub fn begin_discoverable(webauthn: &Webauthn) -> Result<(serde_json::Value, Vec<u8>), AuthError> {
    let (options, state) = webauthn
        .start_discoverable_authentication()
        .map_err(internal)?;
    kept(options, Ceremony::Discoverable(state))
}

/// A challenge only `passkeys`, the account `user_id`'s, may answer.
pub fn begin_for_user(
    webauthn: &Webauthn,
    user_id: &str,
    passkeys: &[Passkey],
) -> Result<(serde_json::Value, Vec<u8>), AuthError> {
    let (options, state) = webauthn
        .start_passkey_authentication(passkeys)
        .map_err(internal)?;
    let ceremony = Ceremony::ForUser {
        user_id: user_id.to_owned(),
        state,
    };
    kept(options, ceremony)
}

/// The browser's answer to a challenge, if it is one at all (bounded before parsing).
pub fn parse_assertion(response: &str) -> Option<PublicKeyCredential> {
    (response.len() <= MAX_RESPONSE_BYTES)
        .then(|| serde_json::from_str(response).ok())
        .flatten()
}

/// Checks `answer` to the kept `ceremony` as a sign-in of the account `user_id`
/// (WebAuthn user handle `handle`) with its stored `passkey`: the origin and RP ID, the
/// challenge, the signature, user verification, and a counter that must move forward.
/// None when anything is wrong.
pub fn finish_assertion(
    webauthn: &Webauthn,
    ceremony: &[u8],
    answer: &PublicKeyCredential,
    passkey: &Passkey,
    user_id: &str,
    handle: Uuid,
) -> Option<AuthenticationResult> {
    let ceremony: Ceremony = serde_json::from_slice(ceremony).ok()?;
    let checked = match ceremony {
        Ceremony::Discoverable(state) => {
            // The account the authenticator names must be the passkey's own.
            let (named, _) = webauthn.identify_discoverable_authentication(answer).ok()?;
            if named != handle {
                return None;
            }
            webauthn.finish_discoverable_authentication(
                answer,
                state,
                &[DiscoverableKey::from(passkey)],
            )
        }
        Ceremony::ForUser { user_id: of, state } if of == user_id => {
            webauthn.finish_passkey_authentication(answer, &state)
        }
        Ceremony::ForUser { .. } => return None,
    };
    match checked {
        Ok(result) => Some(result),
        Err(e) => {
            // A wrong origin or RP ID, a bad signature, no user verification, or a
            // counter that went backwards (a cloned authenticator).
            tracing::info!(user_id = %user_id, error = %e, "passkey answer refused");
            None
        }
    }
}
