//! The client_credentials grant (RFC 6749 §4.4): a confidential client asks for a token
//! that stands for itself. Nothing is stored: the token is revoked alone, by `jti`
//! (see `jwt::AccessClaims`). With a DPoP proof, the token is bound to its key.

use super::{GrantError, Issued, Minted, mint, scope_list};
use crate::{startup::AppState, store::clients::ClientRow};

pub fn issue(
    state: &AppState,
    client: &ClientRow,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
) -> Result<Issued, GrantError> {
    if client.is_public() {
        return Err(GrantError::UnauthorizedClient(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = scope_list(scope)?.unwrap_or_default();
    // No user is involved: user scopes mean nothing here.
    if let Some(s) = scope
        .iter()
        .find(|s| matches!(s.as_str(), "openid" | "offline_access") || !client.allows_scope(s))
    {
        return Err(GrantError::InvalidScope(format!(
            "scope {s} is not available with client_credentials"
        )));
    }
    mint(
        state,
        client,
        Minted {
            user: None,
            org: None,
            scope: &scope,
            nonce: None,
            refresh_token: None,
            dpop_jkt,
            emergency: None,
        },
    )
}
