//! A person's FHIR resource (SMART `fhirUser`) as their upstream identity provider says
//! it: the connector's `fhir_user` mapping names the claim (or SAML attribute) and the
//! registered FHIR server it is on (DESIGN §16, §18). Taken at each sign-in that carries
//! it; a value that is not a resource on that server is logged and left out, never a
//! reason to refuse the sign-in, and a sign-in without it leaves what was set alone.

use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    startup::AppState,
    store::{fhir_servers, users::UserRow},
};

use super::Connector;

/// Sets `user`'s FHIR resource from `said` (the mapped claim's value), when it names one
/// and it is not the one the user has already; audited `fhir_user.set`.
pub async fn take(
    state: &AppState,
    ctx: Option<&RequestContext>,
    connector: &Connector,
    user: &UserRow,
    said: Option<&str>,
) -> Result<(), AuthError> {
    let (Some(mapping), Some(said)) = (&connector.settings.accounts.fhir_user, said) else {
        return Ok(());
    };
    let (reference, base) = match mapping
        .reference(said)
        .and_then(|r| Ok((r, mapping.server()?)))
    {
        Ok((reference, base)) => (reference.to_string(), base.as_str().to_owned()),
        Err(why) => {
            tracing::warn!(connector = %connector.slug, why = %why.0, "upstream fhirUser left out");
            return Ok(());
        }
    };
    let (user_id, stored, url) = (user.id.clone(), reference.clone(), base.clone());
    let now = state.clock.now().naive_utc();
    let changed = state
        .store
        .transaction(move |c| {
            let Some(server) = fhir_servers::by_base_url(c, &url)? else {
                return Ok(None);
            };
            if fhir_servers::user_reference_at(c, &user_id, &url)?.as_deref() == Some(&stored) {
                return Ok(Some(false));
            }
            fhir_servers::set_user_reference(c, &user_id, &server.id, &stored, now)?;
            Ok(Some(true))
        })
        .await?;
    match changed {
        None => {
            tracing::warn!(connector = %connector.slug, base_url = %base,
                "upstream fhirUser left out: no FHIR server is registered at the mapped URL");
        }
        Some(false) => {}
        Some(true) => {
            let mut event = AuditEvent::new(EventType::FhirUserSet, Outcome::Success)
                .org(&user.org_id)
                .subject(&user.id)
                .detail("base_url", base.as_str())
                .detail("fhir_user", reference.as_str())
                .detail("connector", connector.slug.as_str());
            if let Some(ctx) = ctx {
                event = event.request(ctx);
            }
            state.audit.record(event).await?;
        }
    }
    Ok(())
}
