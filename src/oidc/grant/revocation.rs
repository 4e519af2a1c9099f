//! Revocation (RFC 7009), and finding what a presented token stands for, which
//! revocation and introspection share.

use chrono::DateTime;

use super::GrantError;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::token_hash,
    oidc::{
        discovery::issuer,
        jwt::{AccessClaims, verify_issued_access_token},
    },
    startup::AppState,
    store::{
        StoreError,
        clients::ClientRow,
        grants::{self, GrantRow},
    },
    web::RequestContext,
};

/// What a presented token turned out to be.
pub(super) enum Found {
    /// A live access token: of a user's grant, or (None) a client_credentials token.
    Access(Box<AccessClaims>, Option<GrantRow>),
    Refresh(GrantRow, chrono::NaiveDateTime, chrono::NaiveDateTime),
}

impl Found {
    /// The client the token was issued to.
    pub(super) fn holder(&self) -> &str {
        match self {
            Found::Access(claims, _) => &claims.client_id,
            Found::Refresh(grant, _, _) => &grant.client_id,
        }
    }
}

pub(super) async fn find_token(state: &AppState, token: &str) -> Result<Option<Found>, StoreError> {
    if token.len() > 16 * 1024 {
        return Ok(None);
    }
    let now = state.clock.now();
    if token.len() <= 64 {
        let hash = token_hash(token);
        let found = state
            .store
            .run(move |c| grants::refresh_grant(c, &hash, now.naive_utc()))
            .await?;
        return Ok(found.map(|(g, created, expires)| Found::Refresh(g, created, expires)));
    }
    let ring = state.keys.current();
    // Bound to a DPoP key or not: the client names a token it holds, it does not use it.
    let Some(claims) = verify_issued_access_token(&ring, &issuer(state), token, now) else {
        return Ok(None);
    };
    let found = access_token_holder(state, &claims).await?;
    Ok(found.map(|grant| Found::Access(Box::new(claims), grant)))
}

/// Whether a verified access token still stands, and on what: `Some(Some(grant))` for a
/// user's live grant, `Some(None)` for a client_credentials token whose client exists
/// and whose `jti` is not revoked, `None` for a token no longer valid.
pub async fn access_token_holder(
    state: &AppState,
    claims: &AccessClaims,
) -> Result<Option<Option<GrantRow>>, StoreError> {
    match &claims.gid {
        Some(gid) => {
            let gid = gid.clone();
            let grant = state.store.run(move |c| grants::live(c, &gid)).await?;
            Ok(grant.map(Some))
        }
        // Gatehouse's own search token (the SMART patient picker's): handed to one FHIR
        // server only, for a minute.
        None if claims.client_id == crate::oidc::smart::picker::PICKER_CLIENT => Ok(Some(None)),
        // Only client_credentials tokens go without a grant, and their subject is the client.
        None if claims.sub == claims.client_id => {
            let (client_id, jti) = (claims.client_id.clone(), claims.jti.clone());
            let live = state
                .store
                .run(move |c| grants::client_token_live(c, &client_id, &jti))
                .await?;
            Ok(live.then_some(None))
        }
        None => Ok(None),
    }
}

/// Revokes `token` if `client` holds it: a user's token ends its whole grant, a
/// client_credentials token ends alone. RFC 7009 §2.2: an unknown or foreign token is
/// not an error, so nothing says which it was.
pub async fn revoke(
    state: &AppState,
    ctx: &RequestContext,
    client: &ClientRow,
    token: &str,
) -> Result<(), GrantError> {
    let now = state.clock.now().naive_utc();
    let (revoked, subject) = match find_token(state, token).await? {
        Some(Found::Access(_, Some(g)) | Found::Refresh(g, _, _))
            if g.client_id == client.client_id =>
        {
            let id = g.id.clone();
            let revoked = state
                .store
                .run(move |c| grants::revoke(c, &id, now))
                .await?;
            (revoked, g.user_id)
        }
        Some(Found::Access(claims, None)) if claims.client_id == client.client_id => {
            let expires_at = DateTime::from_timestamp(claims.exp, 0).map_or(now, |t| t.naive_utc());
            let revoked = state
                .store
                .run(move |c| {
                    match grants::revoke_client_token(c, &claims.client_id, &claims.jti, expires_at)
                    {
                        // Revoked at the same moment by another request.
                        Err(StoreError::Conflict) => Ok(false),
                        other => other,
                    }
                })
                .await?;
            (revoked, None)
        }
        _ => (false, None),
    };
    if revoked {
        let mut event = AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
            .request(ctx)
            .actor(&client.client_id)
            .detail("reason", "revocation request");
        if let Some(user) = &subject {
            event = event.subject(user);
        }
        state.audit.record(event).await?;
    }
    Ok(())
}
