//! The client_credentials grant (RFC 6749 §4.4): a confidential client asks for a token
//! that stands for itself. Nothing is stored: the token is revoked alone, by `jti`
//! (see `jwt::AccessClaims`). With a DPoP proof, the token is bound to its key.
//!
//! SMART Backend Services (DESIGN §18) are this grant with `system/` scopes: the token
//! is then for a FHIR server, named by RFC 8707 `resource` (or SMART's `aud`), or, when
//! the client is open to one server only, that one.

use super::{GrantError, Issued, Minted, mint, scope_list};
use crate::{
    domain::{FhirBaseUrl, SmartContext, SmartScope},
    oidc::smart,
    startup::AppState,
    store::{clients::ClientRow, fhir_servers},
};

/// What a client asks for with client_credentials.
#[derive(Debug, Default)]
pub struct Asked<'a> {
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub aud: Option<&'a str>,
}

pub async fn issue(
    state: &AppState,
    client: &ClientRow,
    asked: Asked<'_>,
    dpop_jkt: Option<&str>,
) -> Result<Issued, GrantError> {
    if client.is_public() {
        return Err(GrantError::UnauthorizedClient(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = scope_list(asked.scope)?.unwrap_or_default();
    // No user is involved: user scopes mean nothing here.
    if let Some(s) = scope.iter().find(|s| {
        matches!(s.as_str(), "openid" | "offline_access")
            || !client.allows_scope(s)
            || !system_or_plain(s)
    }) {
        return Err(GrantError::InvalidScope(format!(
            "scope {s} is not available with client_credentials"
        )));
    }
    let audience = fhir_server(state, client, &asked, &scope).await?;
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
            audience: audience.as_ref().map(FhirBaseUrl::as_str),
        },
    )
}

/// A scope a token without a user can carry: a clinical scope only for `system/`, and
/// none of SMART's launch words.
fn system_or_plain(scope: &str) -> bool {
    match SmartScope::parse(scope) {
        Ok(SmartScope::Clinical(c)) => c.context == SmartContext::System,
        Ok(SmartScope::Other(s)) => s != "online_access",
        _ => false,
    }
}

/// The FHIR server a backend service's token is for: the one `resource` or `aud` names,
/// or, for clinical scopes without either, the only one the client is open to.
async fn fhir_server(
    state: &AppState,
    client: &ClientRow,
    asked: &Asked<'_>,
    scope: &[String],
) -> Result<Option<FhirBaseUrl>, GrantError> {
    let refused = |e: crate::oidc::OAuthError| match e.error {
        "invalid_scope" => GrantError::InvalidScope(e.error_description.unwrap_or_default()),
        _ => GrantError::InvalidTarget(e.error_description.unwrap_or_default()),
    };
    let named = smart::named_audience(asked.aud, asked.resource).map_err(refused)?;
    let url = match named {
        Some(url) => url,
        None if !smart::asks_smart(scope) => return Ok(None),
        None => {
            let id = client.client_id.clone();
            let open: Vec<String> = state
                .store
                .run(fhir_servers::list)
                .await?
                .into_iter()
                .filter(|s| s.clients().contains(&id))
                .map(|s| s.base_url)
                .collect();
            match open.as_slice() {
                [only] => FhirBaseUrl::parse(only).map_err(|e| GrantError::Internal(e.0))?,
                _ => {
                    return Err(GrantError::InvalidTarget(
                        "name the FHIR server with the resource parameter".into(),
                    ));
                }
            }
        }
    };
    smart::audience(state, &client.client_id, &url, scope)
        .await?
        .map_err(refused)?;
    Ok(Some(url))
}
