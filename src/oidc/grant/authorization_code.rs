//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636): a code minted by
//! `/authorize` becomes a grant, its tokens, and a refresh token if the client may
//! refresh.
//!
//! The code is taken (single use) before anything else, so two presentations cannot
//! both exchange it. A presentation that then fails for the server's sake (the database
//! busy or away: a 503) puts it back: a user whose exchange was answered 503 has not
//! lost their sign-in (issue 23 item 4).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{GrantError, Issued, Minted, Spent, mint, not_admitted, org_name, refresh_expiry};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::emergency::{EmergencyWindow, open_window_in},
    auth::{random_token, same_secret, token_hash},
    domain::UserStatus,
    ephemeral::EphemeralError,
    oidc::{
        authorize::{CodeData, code_key, used_code_key},
        clients::GRANT_REFRESH,
        smart::SmartGrant,
    },
    startup::AppState,
    store::{
        clients::ClientRow,
        grants::{self, GrantRow},
        users::{self, UserRow},
    },
};

/// Why a code's grant was not written, though the code was good.
enum Refused {
    NotAdmitted,
    UserGone,
}

/// What the client presents with its code.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// The thumbprint of the key of the request's DPoP proof.
    pub dpop_jkt: Option<&'a str>,
}

fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    // RFC 7636 §4.1: 43–128 unreserved characters.
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && same_secret(
            &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            challenge,
        )
}

pub async fn exchange(
    state: &AppState,
    client: &ClientRow,
    presented: Exchange<'_>,
) -> Result<(Issued, Spent), GrantError> {
    let code = presented.code;
    if code.len() > 64 {
        return Err(GrantError::InvalidGrant("the code is not valid"));
    }
    let key = code_key(code);
    let Some(raw) = state.ephemeral.take(&key).await? else {
        revoke_if_replayed(state, client, code).await?;
        return Err(GrantError::InvalidGrant(
            "the code is invalid, expired or already used",
        ));
    };
    let data: CodeData =
        serde_json::from_slice(&raw).map_err(|e| GrantError::Internal(e.to_string()))?;
    // A code presented wrongly is spent all the same (RFC 6749 §4.1.2: single use).
    check(state, client, &data, &presented)?;
    let left = data.expires_at - state.clock.now().timestamp();
    let ttl = Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1));
    let refresh_token = client.allows_grant(GRANT_REFRESH).then(random_token);
    let refresh_hash = refresh_token.as_deref().map(token_hash);
    let written = write_grant(state, client, &data, refresh_hash, presented.dpop_jkt).await;
    let (grant, user, org, emergency) = match written {
        Ok(Ok(found)) => found,
        Ok(Err(Refused::NotAdmitted)) => return Err(not_admitted()),
        Ok(Err(Refused::UserGone)) => {
            return Err(GrantError::InvalidGrant("the user can no longer sign in"));
        }
        Err(e) => {
            if e.is_server_side()
                && let Err(lost) = restore(state, &key, &raw, ttl).await
            {
                tracing::error!(error = %lost, "a code whose exchange failed could not be put back");
            }
            return Err(e);
        }
    };
    let spent = Spent::Code {
        key,
        value: raw,
        ttl,
        grant_id: grant.id.clone(),
    };
    let issued = mint(
        state,
        client,
        Minted {
            user: Some((&grant, &user)),
            org: org.as_deref(),
            scope: &data.request.scope,
            nonce: data.request.nonce.as_deref(),
            refresh_token,
            dpop_jkt: presented.dpop_jkt,
            emergency: emergency.as_ref(),
            audience: None,
        },
    );
    match issued {
        Ok(issued) => Ok((issued, spent)),
        Err(e) => {
            spent.undo(state).await;
            Err(e)
        }
    }
}

/// The grant as written, its user, their organisation's name, and the emergency window
/// it was made under while that is open.
type Written = (GrantRow, UserRow, Option<String>, Option<EmergencyWindow>);

/// Writes the grant (and its refresh token) for a good code, once the user can still
/// sign in and the client still admits their organisation. With a DPoP key, the grant
/// remembers it: its refresh tokens need proofs too.
async fn write_grant(
    state: &AppState,
    client: &ClientRow,
    data: &CodeData,
    refresh_hash: Option<String>,
    dpop_jkt: Option<&str>,
) -> Result<Result<Written, Refused>, GrantError> {
    let now = state.clock.now();
    let grant = GrantRow {
        id: data.grant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: Some(data.user_id.clone()),
        session_handle: Some(data.session_handle.clone()),
        scope: data.request.scope.join(" "),
        auth_time: Some(data.auth_time),
        amr: data.amr.join(" "),
        created_at: now.naive_utc(),
        revoked_at: None,
        dpop_jkt: dpop_jkt.map(str::to_owned),
        emergency_id: data.emergency_id.clone(),
        audience: data.smart.as_ref().map(|s| s.audience.clone()),
        launch_context: data.smart.as_ref().and_then(SmartGrant::context_column),
        fhir_user: data.smart.as_ref().and_then(|s| s.fhir_user.clone()),
    };
    let refresh_expiry = refresh_expiry(state, client, &grant);
    let user_id = data.user_id.clone();
    let admits = client.clone();
    let pii = state.pii.clone();
    Ok(state
        .store
        .transaction(move |c| {
            let Some(user) =
                users::find_by_id(c, &pii, &user_id)?.filter(|u| u.status() == UserStatus::Active)
            else {
                return Ok(Err(Refused::UserGone));
            };
            let org = org_name(c, Some(&user))?;
            // Issue 20 item 9: checked again here, in case the client changed since
            // the code was issued.
            if !org.as_deref().is_some_and(|o| admits.allows_org(o)) {
                return Ok(Err(Refused::NotAdmitted));
            }
            let row = grants::insert(c, &grant)?;
            if let Some(hash) = &refresh_hash {
                grants::insert_refresh(c, hash, &grant.id, grant.created_at, refresh_expiry)?;
            }
            // DESIGN §15: a code issued under an emergency window gives emergency tokens
            // only while the window is still open.
            let emergency = open_window_in(c, row.emergency_id.as_deref(), now.naive_utc())?;
            Ok(Ok((row, user, org, emergency)))
        })
        .await?)
}

/// Puts a taken code back for the life it had left.
pub(super) async fn restore(
    state: &AppState,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<(), EphemeralError> {
    state.ephemeral.set(key, value, ttl).await
}

/// What the code was issued for must be what is presented with it.
fn check(
    state: &AppState,
    client: &ClientRow,
    data: &CodeData,
    presented: &Exchange<'_>,
) -> Result<(), GrantError> {
    if data.expires_at <= state.clock.now().timestamp() {
        return Err(GrantError::InvalidGrant("the code has expired"));
    }
    if data.request.client_id != client.client_id {
        return Err(GrantError::InvalidGrant(
            "the code was issued to another client",
        ));
    }
    if presented.redirect_uri != Some(data.request.redirect_uri.as_str()) {
        return Err(GrantError::InvalidGrant("redirect_uri does not match"));
    }
    // RFC 9449 §10: a code bound to a key at /authorize (`dpop_jkt`) is good only with a
    // proof by that key, so a code stolen on its way back is no use to the thief.
    if let Some(bound) = &data.request.dpop_jkt {
        match presented.dpop_jkt {
            Some(jkt) if jkt == bound => {}
            Some(_) => {
                return Err(GrantError::InvalidDpopProof(
                    "the DPoP proof is not made with the key the code is bound to (dpop_jkt)",
                ));
            }
            None => {
                return Err(GrantError::InvalidDpopProof(
                    "the code is bound to a DPoP key (dpop_jkt): send a DPoP proof made with it",
                ));
            }
        }
    }
    match (&data.request.code_challenge, presented.code_verifier) {
        (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => Ok(()),
        (None, None) => Ok(()),
        _ => Err(GrantError::InvalidGrant("PKCE verification failed")),
    }
}

/// RFC 6749 §4.1.2: a code used before revokes what its first exchange issued.
async fn revoke_if_replayed(
    state: &AppState,
    client: &ClientRow,
    code: &str,
) -> Result<(), GrantError> {
    let Some(grant_id) = state.ephemeral.get(&used_code_key(code)).await? else {
        return Ok(());
    };
    let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
    let now = state.clock.now().naive_utc();
    let revoked = state
        .store
        .run(move |c| grants::revoke(c, &grant_id, now))
        .await?;
    if revoked {
        tracing::warn!(client_id = %client.client_id, "authorization code replayed: its tokens are revoked");
        state
            .audit
            .record(
                AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
                    .actor(&client.client_id)
                    .detail("reason", "authorization code reused"),
            )
            .await?;
    }
    Ok(())
}
