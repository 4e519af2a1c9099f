//! `/signing-keys`: the token signing keys. Global: super administrators.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminRequest, Reply, ok};
use crate::admin::{ErrorBody, service::keys as service};

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyView {
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// `next` (published, not yet signing), `active` (signing) or `retired` (published
    /// until what it signed has expired, then kept for the record).
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Every signing key: public facts only, never private material.
#[utoipa::path(get, path = "/admin/api/v1/signing-keys",
    responses((status = 200, body = Vec<SigningKeyView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_signing_keys(api: AdminRequest) -> Reply {
    let out: Vec<SigningKeyView> = service::list(&api.state, &api.who)
        .await?
        .into_iter()
        .map(|r| SigningKeyView {
            kid: r.kid,
            alg: r.alg,
            state: r.state,
            created_at: r.created_at.and_utc(),
            activated_at: r.activated_at.map(|t| t.and_utc()),
            retired_at: r.retired_at.map(|t| t.and_utc()),
        })
        .collect();
    ok(out)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedView {
    pub alg: String,
    /// The key that signs from now on (it was published as `next`).
    pub active_kid: String,
    /// The newly published key that signs at the next rotation.
    pub next_kid: String,
}

/// Rotates every algorithm's key, like `gatehouse keys rotate`: the published `next` key
/// starts signing, the active one retires (still published), a new `next` is published.
/// This instance switches at once; others within `signing_key_reload_secs`.
#[utoipa::path(post, path = "/admin/api/v1/signing-keys/rotate",
    responses((status = 200, body = Vec<RotatedView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_signing_keys(api: AdminRequest) -> Reply {
    let out: Vec<RotatedView> = service::rotate(api.by())
        .await?
        .into_iter()
        .map(|r| RotatedView {
            alg: r.alg.to_owned(),
            active_kid: r.active_kid,
            next_kid: r.next_kid,
        })
        .collect();
    ok(out)
}
