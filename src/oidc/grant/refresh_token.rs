//! The refresh_token grant (RFC 6749 §6) with rotation: each refresh token is spent by
//! its use and replaced; presenting a spent one again is a replay, which ends the whole
//! family (RFC 9700 §4.14.2).

use super::{GrantError, Issued, expiry, mint, not_admitted, org_name, scope_list, usable_user};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{random_token, session, token_hash},
    startup::AppState,
    store::{
        clients::ClientRow,
        grants::{self, Refresh},
    },
};

pub async fn refresh(
    state: &AppState,
    client: &ClientRow,
    presented: &str,
    scope: Option<&str>,
) -> Result<Issued, GrantError> {
    if presented.len() > 64 {
        return Err(GrantError::InvalidGrant("the refresh token is not valid"));
    }
    let hash = token_hash(presented);
    let now = state.clock.now();
    let requested = scope_list(scope)?;
    let new_token = random_token();
    let new_hash = token_hash(&new_token);
    let new_expiry = expiry(now, state.config.refresh_token_secs);
    let client_id = client.client_id.clone();
    let outcome = state
        .store
        .run(move |c| {
            let outcome = grants::rotate_refresh(
                c,
                &hash,
                &new_hash,
                &client_id,
                now.naive_utc(),
                new_expiry,
            )?;
            Ok(match outcome {
                Refresh::Rotated(found) => {
                    let (grant, user) = *found;
                    let org = org_name(c, user.as_ref())?;
                    Ok((grant, user, org))
                }
                other => Err(other),
            })
        })
        .await?;
    let (grant, user, org) = match outcome {
        Ok(found) => found,
        Err(Refresh::Reused(_)) => return Err(replayed(state, client).await),
        Err(Refresh::OtherClient) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        Err(_) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token is invalid or expired",
            ));
        }
    };
    let user = usable_user(user)?;
    // Issue 20 item 9: a client that no longer admits the user's organisation gets no
    // more tokens for them.
    if !org.as_deref().is_some_and(|o| client.allows_org(o)) {
        return Err(not_admitted());
    }
    let granted: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    // Without offline_access, a refresh token lives only as long as the SSO session it
    // was issued in (idle and absolute limits included).
    if let Some(handle) = &grant.session_handle
        && !grants::outlives_session(&grant.scope)
        && !session::is_live(state.ephemeral.as_ref(), state.clock.as_ref(), handle).await?
    {
        let (id, now) = (grant.id.clone(), state.clock.now().naive_utc());
        state
            .store
            .run(move |c| grants::revoke(c, &id, now))
            .await?;
        return Err(GrantError::InvalidGrant("the sign-in session has ended"));
    }
    let scope = narrowed(requested, granted)?;
    mint(
        state,
        client,
        Some((&grant, &user)),
        org.as_deref(),
        &scope,
        None,
        Some(new_token),
    )
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

/// A spent token presented again: its family has been revoked (by the store, in the
/// same transaction that found the replay), and that is recorded.
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
