//! The SMART part of an authorization request (DESIGN §18), once the request is known to
//! be genuine: the FHIR server it names must be registered and open to the client and
//! accept its clinical scopes, and the EHR launch it brings is taken (single use) and
//! must be for this app and that server.

use super::AuthorizeRequest;
use crate::{
    domain::FhirBaseUrl,
    oidc::{
        OAuthError,
        smart::{self, launch},
    },
    startup::AppState,
    web::error::AppError,
};

/// Checks `request`'s FHIR server and resolves its `launch` into the request. `Ok(Err)`:
/// the refusal the app gets back.
pub(super) async fn resolve(
    state: &AppState,
    request: &mut AuthorizeRequest,
    launch: Option<&str>,
) -> Result<Result<(), OAuthError>, AppError> {
    if let Some(url) = &request.audience {
        let url = FhirBaseUrl::parse(url).map_err(|e| AppError::Internal(e.0))?;
        if let Err(refused) =
            smart::audience(state, &request.client_id, &url, &request.scope).await?
        {
            return Ok(Err(refused));
        }
    }
    let Some(value) = launch else {
        return Ok(Ok(()));
    };
    let found = match launch::take(state, value, &request.client_id).await? {
        Ok(found) => found,
        Err(why) => return Ok(Err(OAuthError::invalid_request(why))),
    };
    if found.audience.is_some() && found.audience != request.audience {
        return Ok(Err(OAuthError::invalid_request(
            "the launch was registered for another FHIR server than aud names",
        )));
    }
    request.launch = Some(found);
    Ok(Ok(()))
}
