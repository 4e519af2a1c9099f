//! FHIR servers registered as resource servers (DESIGN §18): base URL, the clinical
//! scopes they accept, the clients that may ask for tokens to them. They span
//! organisations, so only a super administrator changes them.

use super::{Acting, Action, Caller, ServiceError};
use crate::{
    audit::EventType,
    domain::{FhirBaseUrl, FhirUserRef, fhir_scopes},
    startup::AppState,
    store::{
        StoreError, clients,
        fhir_servers::{self as store, FhirServerRow, FhirServerValues},
        users::UserRow,
    },
};

/// A registration as an administrator writes it, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct FhirServerFields {
    pub base_url: String,
    pub display_name: String,
    pub allowed_scopes: Vec<String>,
    pub allowed_clients: Vec<String>,
}

/// The most clients one server names.
const MAX_CLIENTS: usize = 200;

/// Checks `fields`: a base URL of the one spelling, a name, clinical scopes, and
/// clients that exist.
async fn checked(
    state: &AppState,
    fields: FhirServerFields,
) -> Result<FhirServerValues, ServiceError> {
    let invalid = |field: &str, why: String| ServiceError::Invalid(format!("{field}: {why}"));
    let base_url = FhirBaseUrl::parse(&fields.base_url).map_err(|e| invalid("base_url", e.0))?;
    let name = fields.display_name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid("display_name", "1 to 100 characters".into()));
    }
    let scopes = fhir_scopes(&fields.allowed_scopes).map_err(|e| invalid("allowed_scopes", e.0))?;
    let mut ids = fields.allowed_clients;
    ids.sort();
    ids.dedup();
    if ids.len() > MAX_CLIENTS {
        return Err(invalid("allowed_clients", format!("at most {MAX_CLIENTS}")));
    }
    for id in &ids {
        let client = id.clone();
        if id.len() > 128
            || state
                .store
                .run(move |c| clients::find(c, &client))
                .await?
                .is_none()
        {
            return Err(invalid("allowed_clients", format!("no client {id:?}")));
        }
    }
    Ok(FhirServerValues {
        base_url: base_url.as_str().to_owned(),
        display_name: name.to_owned(),
        allowed_scopes: scopes,
        allowed_clients: ids,
    })
}

fn conflict(e: StoreError, base_url: &str) -> ServiceError {
    match e {
        StoreError::Conflict => ServiceError::Conflict(format!("{base_url} is registered already")),
        other => other.into(),
    }
}

pub async fn list(state: &AppState, who: &Caller) -> Result<Vec<FhirServerRow>, ServiceError> {
    who.require(Action::Global)?;
    Ok(state.store.run(store::list).await?)
}

pub async fn show(state: &AppState, who: &Caller, id: &str) -> Result<FhirServerRow, ServiceError> {
    who.require(Action::Global)?;
    let id = id.to_owned();
    state
        .store
        .run(move |c| store::find(c, &id))
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such FHIR server".into()))
}

/// The server registered under `base_url` (as given, in any spelling the parser takes).
pub async fn by_base_url(
    state: &AppState,
    who: &Caller,
    base_url: &str,
) -> Result<FhirServerRow, ServiceError> {
    who.require(Action::Global)?;
    let url = FhirBaseUrl::parse(base_url)
        .map_err(|e| ServiceError::Invalid(format!("base_url: {}", e.0)))?;
    let url = url.as_str().to_owned();
    state
        .store
        .run(move |c| store::by_base_url(c, &url))
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such FHIR server".into()))
}

pub async fn create(
    by: Acting<'_>,
    fields: FhirServerFields,
) -> Result<FhirServerRow, ServiceError> {
    by.who.require(Action::Global)?;
    let values = checked(by.state, fields).await?;
    let now = by.state.clock.now().naive_utc();
    let url = values.base_url.clone();
    let row = by
        .state
        .store
        .run(move |c| store::insert(c, &values, now))
        .await
        .map_err(|e| conflict(e, &url))?;
    record(by, EventType::FhirServerCreated, &row).await?;
    Ok(row)
}

pub async fn update(
    by: Acting<'_>,
    id: &str,
    fields: FhirServerFields,
) -> Result<FhirServerRow, ServiceError> {
    show(by.state, by.who, id).await?;
    let values = checked(by.state, fields).await?;
    let (id, now, url) = (
        id.to_owned(),
        by.state.clock.now().naive_utc(),
        values.base_url.clone(),
    );
    let row = by
        .state
        .store
        .run(move |c| store::update(c, &id, &values, now))
        .await
        .map_err(|e| conflict(e, &url))?;
    record(by, EventType::FhirServerUpdated, &row).await?;
    Ok(row)
}

pub async fn delete(by: Acting<'_>, id: &str) -> Result<FhirServerRow, ServiceError> {
    show(by.state, by.who, id).await?;
    let id = id.to_owned();
    let row = by.state.store.run(move |c| store::delete(c, &id)).await?;
    record(by, EventType::FhirServerDeleted, &row).await?;
    Ok(row)
}

async fn record(
    by: Acting<'_>,
    event_type: EventType,
    row: &FhirServerRow,
) -> Result<(), ServiceError> {
    let event = by
        .event(event_type)
        .detail("fhir_server", row.id.as_str())
        .detail("base_url", row.base_url.as_str());
    by.state.audit.record(event).await?;
    Ok(())
}

/// A user's FHIR resource on one server (`fhirUser`, DESIGN §18).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FhirUser {
    pub fhir_server: String,
    pub base_url: String,
    /// `Practitioner/123`, `Patient/abc`, …
    pub fhir_user: String,
}

impl FhirUser {
    fn new(server: &FhirServerRow, reference: String) -> Self {
        Self {
            fhir_server: server.id.clone(),
            base_url: server.base_url.clone(),
            fhir_user: reference,
        }
    }
}

/// `user`'s FHIR resources, one per server that has one.
pub async fn user_references(
    by: Acting<'_>,
    user: &UserRow,
) -> Result<Vec<FhirUser>, ServiceError> {
    by.who.require(Action::Read)?;
    if !by.who.sees_org(&user.org_id) {
        return Err(ServiceError::NotFound("no such user".into()));
    }
    let id = user.id.clone();
    let found = by
        .state
        .store
        .run(move |c| store::user_references(c, &id))
        .await?;
    Ok(found
        .into_iter()
        .map(|(server, reference)| FhirUser::new(&server, reference))
        .collect())
}

/// The server a caller names: by id (the API) or by base URL (the CLI).
async fn named_server(state: &AppState, named: &str) -> Result<FhirServerRow, ServiceError> {
    let (id, url) = (named.to_owned(), FhirBaseUrl::parse(named).ok());
    state
        .store
        .run(move |c| match store::find(c, &id)? {
            Some(found) => Ok(Some(found)),
            None => match url {
                Some(url) => store::by_base_url(c, url.as_str()),
                None => Ok(None),
            },
        })
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such FHIR server".into()))
}

/// Sets `user`'s FHIR resource on the server `server` names (its id or base URL): what
/// the user's SMART tokens say they are there. A change to a person's clinical
/// identity: for those who manage the user's organisation.
pub async fn set_user_reference(
    by: Acting<'_>,
    user: &UserRow,
    server: &str,
    reference: &str,
) -> Result<FhirUser, ServiceError> {
    by.who.require(Action::Manage)?;
    by.who.may_act_on(user)?;
    let reference = FhirUserRef::parse(reference)
        .map_err(|e| ServiceError::Invalid(format!("fhir_user: {}", e.0)))?
        .to_string();
    let server = named_server(by.state, server).await?;
    let (user_id, server_id, stored) = (user.id.clone(), server.id.clone(), reference.clone());
    let now = by.state.clock.now().naive_utc();
    by.state
        .store
        .transaction(move |c| store::set_user_reference(c, &user_id, &server_id, &stored, now))
        .await?;
    let event = by
        .event(EventType::FhirUserSet)
        .subject(&user.id)
        .org(&user.org_id)
        .detail("base_url", server.base_url.as_str())
        .detail("fhir_user", reference.as_str());
    by.state.audit.record(event).await?;
    Ok(FhirUser::new(&server, reference))
}

/// Removes `user`'s FHIR resource on the server `server` names: the one it was, or
/// `NotFound` when there was none.
pub async fn clear_user_reference(
    by: Acting<'_>,
    user: &UserRow,
    server: &str,
) -> Result<FhirUser, ServiceError> {
    by.who.require(Action::Manage)?;
    by.who.may_act_on(user)?;
    let server = named_server(by.state, server).await?;
    let (user_id, server_id, url) = (user.id.clone(), server.id.clone(), server.base_url.clone());
    let cleared = by
        .state
        .store
        .transaction(move |c| {
            let was = store::user_reference_at(c, &user_id, &url)?;
            store::clear_user_reference(c, &user_id, &server_id)?;
            Ok(was)
        })
        .await?;
    let Some(was) = cleared else {
        return Err(ServiceError::NotFound(
            "the user has no FHIR resource on that server".into(),
        ));
    };
    let event = by
        .event(EventType::FhirUserCleared)
        .subject(&user.id)
        .org(&user.org_id)
        .detail("base_url", server.base_url.as_str());
    by.state.audit.record(event).await?;
    Ok(FhirUser::new(&server, was))
}
