//! The public keys a `private_key_jwt` client signs with (its assertions and request
//! objects): registered by value (`jwks`), or published by the client at its `jwks_uri`
//! (SMART Backend Services, RFC 7591 §2) and read from there.
//!
//! Keys read from a `jwks_uri` are kept for [`KEYS_TTL_SECS`]. A JWS that names a key
//! not among them (the client rotated) makes us read them again, at most once per
//! [`REREAD_GAP_SECS`] per client, so a stranger sending made-up `kid`s cannot turn Gatehouse
//! into a load on the client's server. One read at a time per client; the others wait
//! for its answer. A key the client withdraws stops working within [`KEYS_TTL_SECS`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::jwk::JwkSet;
use openidconnect::http;

use crate::{
    auth::upstream::fetch,
    crypto::jose::{self, Unverified},
    store::clients::ClientRow,
};

/// How long keys read from a client's `jwks_uri` are used, in seconds.
pub const KEYS_TTL_SECS: i64 = 300;
/// Least time between two reads of one client's `jwks_uri`, in seconds.
pub const REREAD_GAP_SECS: i64 = 30;
/// Most clients whose keys are kept; beyond, the cache starts again (only registered
/// clients with a `jwks_uri` have an entry, so strangers cannot fill it).
const MAX_ENTRIES: usize = 4096;

/// Most keys in a client's JWKS: a JWS without `kid` is tried against each.
const MAX_KEYS: usize = 64;

/// A JWKS document of at most [`MAX_KEYS`] keys, at least one of which Gatehouse can
/// check signatures with.
pub fn usable(doc: &str) -> Result<JwkSet, String> {
    let set: JwkSet = serde_json::from_str(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    if set.keys.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} keys"));
    }
    if !set.keys.iter().any(jose::can_verify) {
        return Err(
            "no signature key Gatehouse can use (RSA of 2048 to 8192 bits, EC P-256 \
                    or P-384, Ed25519)"
                .into(),
        );
    }
    Ok(set)
}

/// This instance's copies of the keys clients publish.
#[derive(Default)]
pub struct ClientKeyCache {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// One client's published keys as last read.
#[derive(Default)]
struct Entry {
    uri: String,
    keys: Option<(Arc<JwkSet>, DateTime<Utc>)>,
    tried_at: Option<DateTime<Utc>>,
    failure: Option<String>,
}

impl Entry {
    fn current(&self, now: DateTime<Utc>) -> Option<Arc<JwkSet>> {
        self.keys
            .as_ref()
            .filter(|(_, read_at)| now - *read_at < Duration::seconds(KEYS_TTL_SECS))
            .map(|(keys, _)| keys.clone())
    }
}

impl ClientKeyCache {
    fn slot(&self, client_id: &str) -> Arc<tokio::sync::Mutex<Entry>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(client_id) {
            entries.clear();
        }
        entries.entry(client_id.to_owned()).or_default().clone()
    }

    /// The keys `client` may have signed `jws` with, at `now`; why there are none, as
    /// the client may be told it.
    pub async fn keys_for(
        &self,
        client: &ClientRow,
        jws: &Unverified<'_>,
        now: DateTime<Utc>,
    ) -> Result<Arc<JwkSet>, String> {
        if let Some(doc) = client.jwks.as_deref() {
            return jose::key_set(doc)
                .map(Arc::new)
                .ok_or_else(|| "the client's registered JWKS cannot be read".into());
        }
        let Some(uri) = client.jwks_uri.as_deref() else {
            return Err("the client has no registered keys".into());
        };
        let slot = self.slot(&client.client_id);
        let mut entry = slot.lock().await;
        if entry.uri != uri {
            *entry = Entry {
                uri: uri.to_owned(),
                ..Entry::default()
            };
        }
        let current = entry.current(now);
        if let Some(keys) = current.as_ref().filter(|k| jws.may_be_signed_by(k)) {
            return Ok(keys.clone());
        }
        if entry
            .tried_at
            .is_some_and(|at| now - at < Duration::seconds(REREAD_GAP_SECS))
        {
            return current.ok_or_else(|| entry.failure.clone().unwrap_or_default());
        }
        entry.tried_at = Some(now);
        match read(uri).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entry.keys = Some((keys.clone(), now));
                entry.failure = None;
                Ok(keys)
            }
            Err(why) => {
                tracing::warn!(client_id = %client.client_id, %why, "client keys unreadable");
                let why = format!("the client's jwks_uri could not be read: {why}");
                entry.failure = Some(why.clone());
                current.ok_or(why)
            }
        }
    }
}

/// The JWKS at `uri`, through the bounded client (no redirects, short timeouts, at most
/// `fetch::MAX_BODY_BYTES`).
async fn read(uri: &str) -> Result<JwkSet, String> {
    let accept = "application/jwk-set+json, application/json".to_owned();
    let body = fetch::get(uri, &[(http::header::ACCEPT, accept)]).await?;
    let doc = std::str::from_utf8(&body).map_err(|_| "the answer is not UTF-8")?;
    usable(doc)
}
