//! OpenID Connect clients (DESIGN §9). They are global (not per organisation): super
//! administrators only.

use secrecy::SecretString;

use crate::{
    oidc::clients::{
        self as oidc_clients, AUTH_NONE, AUTH_PRIVATE_KEY_JWT, ClientSpec, Registered,
    },
    startup::AppState,
    store::clients::{self, ClientRow},
};

use super::{Acting, Action, Caller, ServiceError};

fn not_found(client_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no client with client_id {client_id:?}"))
}

/// A client id that cannot be ours is simply not found.
fn client_id(raw: &str) -> Result<String, ServiceError> {
    if raw.is_empty()
        || raw.len() > 128
        || !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(not_found(""));
    }
    Ok(raw.to_owned())
}

pub async fn list(state: &AppState, who: &Caller) -> Result<Vec<ClientRow>, ServiceError> {
    who.require(Action::Global)?;
    Ok(state.store.run(clients::list).await?)
}

pub async fn find(state: &AppState, who: &Caller, raw: &str) -> Result<ClientRow, ServiceError> {
    who.require(Action::Global)?;
    let id = client_id(raw)?;
    let lookup = id.clone();
    state
        .store
        .run(move |c| clients::find(c, &lookup))
        .await?
        .ok_or_else(|| not_found(&id))
}

/// Registers a relying party; the secret, if one was issued, is in the answer only.
pub async fn register(by: Acting<'_>, spec: ClientSpec) -> Result<Registered, ServiceError> {
    by.who.require(Action::Global)?;
    let registered = oidc_clients::register(&by.state.store, spec, by.state.clock.now()).await?;
    record(by, "created", &registered.client_id).await?;
    Ok(registered)
}

/// A change to a client; fields left out keep their value.
#[derive(Debug, Default)]
pub struct ClientChange {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// Moving to `client_secret_basic`/`_post` issues a secret; moving away from them
    /// deletes it; `none` makes the client public.
    pub auth_method: Option<String>,
    /// A JWKS document (for `private_key_jwt`); replaces a `jwks_uri`.
    pub jwks: Option<String>,
    /// Where the client publishes its JWKS (for `private_key_jwt`); replaces a `jwks`.
    pub jwks_uri: Option<String>,
    /// An empty string removes it.
    pub backchannel_logout_uri: Option<String>,
    pub id_token_alg: Option<String>,
    pub access_token_alg: Option<String>,
    /// `Some(None)` admits every organisation.
    pub allowed_orgs: Option<Option<Vec<String>>>,
    pub introspection: Option<bool>,
    /// Web origins for browser apps (CORS); `Some(None)` goes back to `["+"]`, the
    /// redirect URIs' origins.
    pub allowed_origins: Option<Option<Vec<String>>>,
    pub require_par: Option<bool>,
    pub require_dpop: Option<bool>,
    pub fapi2: Option<bool>,
    pub ask_consent: Option<bool>,
}

impl ClientChange {
    fn apply(self, spec: &mut ClientSpec) {
        fn set<T>(into: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *into = v;
            }
        }
        set(&mut spec.name, self.name);
        set(&mut spec.redirect_uris, self.redirect_uris);
        set(
            &mut spec.post_logout_redirect_uris,
            self.post_logout_redirect_uris,
        );
        set(&mut spec.grant_types, self.grant_types);
        set(&mut spec.scopes, self.scopes);
        if let Some(method) = self.auth_method {
            spec.public = method == AUTH_NONE;
            if method != AUTH_PRIVATE_KEY_JWT {
                spec.jwks = None;
                spec.jwks_uri = None;
            }
            spec.auth_method = Some(method);
        }
        if let Some(jwks) = self.jwks {
            spec.jwks = Some(jwks);
            spec.jwks_uri = None;
        }
        if let Some(uri) = self.jwks_uri {
            spec.jwks_uri = Some(uri);
            spec.jwks = None;
        }
        if let Some(uri) = self.backchannel_logout_uri {
            spec.backchannel_logout_uri = (!uri.is_empty()).then_some(uri);
        }
        if let Some(alg) = self.id_token_alg {
            spec.id_token_alg = Some(alg);
        }
        if let Some(alg) = self.access_token_alg {
            spec.access_token_alg = Some(alg);
        }
        set(&mut spec.allowed_orgs, self.allowed_orgs);
        set(&mut spec.introspection, self.introspection);
        set(&mut spec.allowed_origins, self.allowed_origins);
        set(&mut spec.require_par, self.require_par);
        set(&mut spec.require_dpop, self.require_dpop);
        set(&mut spec.fapi2, self.fapi2);
        set(&mut spec.ask_consent, self.ask_consent);
    }
}

/// Changes a client: the stored client and a secret when one was issued.
pub async fn update(
    by: Acting<'_>,
    raw: &str,
    change: ClientChange,
) -> Result<(ClientRow, Option<SecretString>), ServiceError> {
    let row = find(by.state, by.who, raw).await?;
    let mut spec = row.spec();
    change.apply(&mut spec);
    let secret = oidc_clients::update(&by.state.store, &row.client_id, spec).await?;
    by.state.clients.forget(&row.client_id);
    record(by, "updated", &row.client_id).await?;
    let updated = find(by.state, by.who, &row.client_id).await?;
    Ok((updated, secret))
}

/// Deletes a client; every grant it holds (and so every token) goes with it.
pub async fn delete(by: Acting<'_>, raw: &str) -> Result<(), ServiceError> {
    by.who.require(Action::Global)?;
    let id = client_id(raw)?;
    let key = id.clone();
    if !by
        .state
        .store
        .run(move |c| clients::delete(c, &key))
        .await?
    {
        return Err(not_found(&id));
    }
    by.state.clients.forget(&id);
    record(by, "deleted", &id).await
}

/// Issues a new secret for a confidential client; the old one stops working at once
/// (other instances follow within two seconds).
pub async fn rotate_secret(
    by: Acting<'_>,
    raw: &str,
) -> Result<(String, SecretString), ServiceError> {
    by.who.require(Action::Global)?;
    let id = client_id(raw)?;
    let secret = oidc_clients::rotate_secret(&by.state.store, &id)
        .await
        .map_err(|e| match e {
            oidc_clients::ClientError::Store(crate::store::StoreError::NotFound) => not_found(&id),
            other => other.into(),
        })?;
    by.state.clients.forget(&id);
    record(by, "secret_rotated", &id).await?;
    Ok((id, secret))
}

async fn record(by: Acting<'_>, change: &str, client_id: &str) -> Result<(), ServiceError> {
    by.record_change(by.state, "oidc_client", change, ("client_id", client_id))
        .await
}
