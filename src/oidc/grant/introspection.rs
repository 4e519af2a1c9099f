//! Introspection (RFC 7662): what a token held by a client stands for.

use serde_json::{Value, json};

use super::{
    GrantError, org_name,
    revocation::{Found, find_token},
};
use crate::{
    oidc::discovery::issuer,
    startup::AppState,
    store::{clients::ClientRow, users},
};

/// The introspection answer for `token`, as `client` may see it.
pub async fn introspect(
    state: &AppState,
    client: &ClientRow,
    token: &str,
) -> Result<Value, GrantError> {
    // Issue 20 item 11 (RFC 7662 §4): a client sees only the tokens issued to it, unless
    // registered as a resource server with the introspection permission. To anyone
    // else a token is simply inactive, as an unknown one is.
    let found = find_token(state, token)
        .await?
        .filter(|found| found.holder() == client.client_id || client.introspection);
    Ok(match found {
        Some(Found::Access(claims, grant)) => {
            // RFC 9449 §6.2: a bound token says so, and to which key.
            let token_type = if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            };
            let mut answer = json!({
                "active": true,
                "token_type": token_type,
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
            });
            if let Some(org) = claims.org {
                answer["org"] = json!(org);
            }
            if let Some(cnf) = claims.cnf {
                answer["cnf"] = json!(cnf);
            }
            // DESIGN §18: what a FHIR server enforces a SMART app's token by; the user's
            // FHIR identity from the grant, whether or not the app may see it.
            let fhir_user = grant.and_then(|g| g.fhir_user).or(claims.fhir_user);
            for (name, value) in [
                ("patient", claims.patient),
                ("encounter", claims.encounter),
                ("fhirUser", fhir_user),
            ] {
                if let Some(value) = value {
                    answer[name] = json!(value);
                }
            }
            answer
        }
        Some(Found::Refresh(grant, created, expires)) => {
            let user_id = grant.user_id.clone();
            let pii = state.pii.clone();
            let org = state
                .store
                .run(move |c| {
                    let user = match user_id {
                        Some(id) => users::find_by_id(c, &pii, &id)?,
                        None => None,
                    };
                    org_name(c, user.as_ref())
                })
                .await?;
            json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": grant.scope,
                "client_id": grant.client_id,
                "sub": grant.user_id,
                "org": org,
                "iss": issuer(state),
                "exp": expires.and_utc().timestamp(),
                "iat": created.and_utc().timestamp(),
            })
        }
        None => json!({ "active": false }),
    })
}
