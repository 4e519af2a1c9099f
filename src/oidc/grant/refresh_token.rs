//! The refresh_token grant (RFC 6749 §6) with rotation: each refresh token is spent by
//! its use and replaced; presenting a spent one again is a replay, which ends the whole
//! family (RFC 9700 §4.14.2).
//!
//! Issue 23 item 1: every precondition (the token, the user, the client's organisations,
//! the SSO session in the ephemeral store) is checked before the token is spent, and the
//! tokens are signed before it too, so a refresh that cannot be answered (503) leaves
//! the token as it was, and the client's retry is not taken for a theft.
//!
//! A grant made with DPoP stays DPoP (RFC 9449 §5): each refresh needs a proof, and a
//! public client's must be made with the grant's key, since nothing else ties the
//! refresh token to that client. A confidential client, which authenticates anyway, may
//! move to a new key; the new access token is bound to whichever key proved.

use chrono::{DateTime, Utc};

use super::{
    GrantError, Issued, Minted, Spent, mint, not_admitted, org_name, refresh_expiry, scope_list,
    usable_user,
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::emergency,
    auth::{random_token, session, token_hash},
    startup::AppState,
    store::{
        clients::ClientRow,
        grants::{self, GrantRow, Refresh},
        users::UserRow,
    },
};

pub async fn refresh(
    state: &AppState,
    client: &ClientRow,
    presented: &str,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
) -> Result<(Issued, Spent), GrantError> {
    if presented.len() > 64 {
        return Err(GrantError::InvalidGrant("the refresh token is not valid"));
    }
    let hash = token_hash(presented);
    let now = state.clock.now();
    let requested = scope_list(scope)?;
    let (grant, user, org) = look(state, client, &hash, now).await?;
    same_key(client, &grant, dpop_jkt)?;
    let user = usable_user(user)?;
    // Issue 20 item 9: a client that no longer admits the user's organisation gets no
    // more tokens for them.
    if !org.as_deref().is_some_and(|o| client.allows_org(o)) {
        return Err(not_admitted());
    }
    end_with_session(state, &grant).await?;
    let granted: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    let scope = narrowed(requested, granted)?;
    let new_token = random_token();
    let new_hash = token_hash(&new_token);
    // DESIGN §15: while the window the grant was made under is open, its tokens say so;
    // after, they are ordinary.
    let emergency = emergency::open_window(state, grant.emergency_id.as_deref()).await?;
    let issued = mint(
        state,
        client,
        Minted {
            user: Some((&grant, &user)),
            org: org.as_deref(),
            scope: &scope,
            nonce: None,
            refresh_token: Some(new_token),
            dpop_jkt,
            emergency: emergency.as_ref(),
            audience: None,
        },
    )?;
    let new_expiry = refresh_expiry(state, client, &grant);
    let (presented_hash, successor, client_id, grant_id) = (
        hash.clone(),
        new_hash.clone(),
        client.client_id.clone(),
        grant.id.clone(),
    );
    let spent = state
        .store
        .run(move |c| {
            grants::spend_refresh(
                c,
                &presented_hash,
                &grant_id,
                &successor,
                &client_id,
                now.naive_utc(),
                new_expiry,
            )
        })
        .await?;
    if !spent {
        // Another presentation spent it since it was looked at: this one is the replay.
        look(state, client, &hash, now).await?;
        return Err(GrantError::InvalidGrant(
            "the refresh token is invalid or expired",
        ));
    }
    Ok((
        issued,
        Spent::Refresh {
            presented: hash,
            successor: new_hash,
        },
    ))
}

/// Whether the request's DPoP key (`presented`) may refresh `grant`. Checked before
/// anything is spent: a refusal leaves the token for its rightful holder.
fn same_key(
    client: &ClientRow,
    grant: &GrantRow,
    presented: Option<&str>,
) -> Result<(), GrantError> {
    match (grant.dpop_jkt.as_deref(), presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(GrantError::InvalidDpopProof(
            "the refresh token was issued with DPoP: send a DPoP proof with the refresh",
        )),
        (Some(bound), Some(jkt)) if client.is_public() && bound != jkt => {
            Err(GrantError::InvalidDpopProof(
                "the DPoP proof is not made with the key the refresh token is bound to",
            ))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// The grant, user and organisation of a refresh token this client may spend, or why
/// not. Spends nothing; a replay ends its family (see `grants::present_refresh`).
async fn look(
    state: &AppState,
    client: &ClientRow,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(GrantRow, Option<UserRow>, Option<String>), GrantError> {
    let (hash, client_id) = (hash.to_owned(), client.client_id.clone());
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| {
            Ok(
                match grants::present_refresh(c, &pii, &hash, &client_id, now.naive_utc())? {
                    Refresh::Live(found) => {
                        let (grant, user) = *found;
                        let org = org_name(c, user.as_ref())?;
                        Ok((grant, user, org))
                    }
                    other => Err(other),
                },
            )
        })
        .await?;
    match found {
        Ok(found) => Ok(found),
        Err(Refresh::Reused(_)) => Err(replayed(state, client).await),
        Err(Refresh::OtherClient) => Err(GrantError::InvalidGrant(
            "the refresh token was issued to another client",
        )),
        Err(_) => Err(GrantError::InvalidGrant(
            "the refresh token is invalid or expired",
        )),
    }
}

/// Without offline_access, a refresh token lives only as long as the SSO session it
/// was issued in (idle and absolute limits included): once that has ended, so does the
/// grant. A session store that cannot answer is a 503 that has spent nothing.
async fn end_with_session(state: &AppState, grant: &GrantRow) -> Result<(), GrantError> {
    let Some(handle) = &grant.session_handle else {
        return Ok(());
    };
    if grants::outlives_session(&grant.scope)
        || session::is_live(state.ephemeral.as_ref(), state.clock.as_ref(), handle).await?
    {
        return Ok(());
    }
    let (id, now) = (grant.id.clone(), state.clock.now().naive_utc());
    state
        .store
        .run(move |c| grants::revoke(c, &id, now))
        .await?;
    Err(GrantError::InvalidGrant("the sign-in session has ended"))
}

/// The scope of the new tokens: what was asked, if the grant covers all of it.
fn narrowed(
    requested: Option<Vec<String>>,
    granted: Vec<String>,
) -> Result<Vec<String>, GrantError> {
    match requested {
        Some(asked) if asked.iter().all(|s| granted.contains(s)) => Ok(asked),
        Some(_) => Err(GrantError::InvalidScope(
            "a refresh cannot widen the scope".into(),
        )),
        None => Ok(granted),
    }
}

/// A spent token presented again: its family has been revoked (by the store, when it
/// found the replay), and that is recorded.
async fn replayed(state: &AppState, client: &ClientRow) -> GrantError {
    tracing::warn!(client_id = %client.client_id, "rotated refresh token reused: the whole family is revoked");
    let recorded = state
        .audit
        .record(
            AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
                .actor(&client.client_id)
                .detail("reason", "refresh token reused"),
        )
        .await;
    match recorded {
        Ok(()) => GrantError::InvalidGrant("the refresh token was already used"),
        Err(e) => e.into(),
    }
}
