//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636): a code minted by
//! `/authorize` becomes a grant, its tokens, and a refresh token if the client may
//! refresh.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{GrantError, Issued, expiry, mint, not_admitted, org_name, usable_user};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{random_token, same_secret, token_hash},
    oidc::{
        authorize::{CodeData, code_key, used_code_key},
        clients::GRANT_REFRESH,
    },
    startup::AppState,
    store::{
        clients::ClientRow,
        grants::{self, NewGrant},
        users,
    },
};

/// What the client presents with its code.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
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
) -> Result<Issued, GrantError> {
    let code = presented.code;
    if code.len() > 64 {
        return Err(GrantError::InvalidGrant("the code is not valid"));
    }
    let Some(raw) = state.ephemeral.take(&code_key(code)).await? else {
        revoke_if_replayed(state, client, code).await?;
        return Err(GrantError::InvalidGrant(
            "the code is invalid, expired or already used",
        ));
    };
    let data: CodeData =
        serde_json::from_slice(&raw).map_err(|e| GrantError::Internal(e.to_string()))?;
    check(state, client, &data, &presented)?;
    let now = state.clock.now();
    let grant = NewGrant {
        id: data.grant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: Some(data.user_id.clone()),
        session_handle: Some(data.session_handle.clone()),
        scope: data.request.scope.join(" "),
        auth_time: Some(data.auth_time),
        amr: data.amr.join(" "),
        created_at: now.naive_utc(),
    };
    let with_refresh = client.allows_grant(GRANT_REFRESH);
    let refresh_token = with_refresh.then(random_token);
    let refresh_hash = refresh_token.as_deref().map(token_hash);
    let refresh_expiry = expiry(now, state.config.refresh_token_secs);
    let user_id = data.user_id.clone();
    let admits = client.clone();
    let issued = state
        .store
        .transaction(move |c| {
            let user = users::find_by_id(c, &user_id)?;
            let org = org_name(c, user.as_ref())?;
            // Issue 20 item 9: checked again here, in case the client changed since
            // the code was issued.
            if !org.as_deref().is_some_and(|o| admits.allows_org(o)) {
                return Ok(None);
            }
            let row = grants::insert(c, &grant)?;
            if let Some(hash) = &refresh_hash {
                grants::insert_refresh(c, hash, &grant.id, grant.created_at, refresh_expiry)?;
            }
            Ok(Some((row, user, org)))
        })
        .await?;
    let Some((grant, user, org)) = issued else {
        return Err(not_admitted());
    };
    let user = usable_user(user)?;
    mint(
        state,
        client,
        Some((&grant, &user)),
        org.as_deref(),
        &data.request.scope,
        data.request.nonce.as_deref(),
        refresh_token,
    )
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
