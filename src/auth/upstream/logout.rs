//! Logout across the federation (DESIGN §16): signing out of Gatehouse ends the
//! person's session at the upstream too (OIDC RP-Initiated Logout 1.0), and the
//! upstream's back-channel logout (Back-Channel Logout 1.0) ends the sessions it
//! signed in here.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde_json::{Map, Value};
use url::Url;

use super::{
    Connector, UpstreamError, enabled_connector,
    openid::{chain, discovered, issuer_url, refetch_jwks, settings},
    sessions_by_sid, sessions_by_subject,
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{random_token, session, token_hash},
    domain::UpstreamProtocol,
    startup::AppState,
};

/// How long the way back from the upstream's sign-out is kept.
const RETURN_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest logout token looked at.
pub const MAX_LOGOUT_TOKEN_LEN: usize = 8 * 1024;
/// How far a logout token's `iat` may be from our clock.
const IAT_WINDOW_SECS: i64 = 5 * 60;
/// How long a logout token's `jti` is remembered, against replay: past the `iat`
/// window on both sides.
const JTI_MEMORY: Duration = Duration::from_secs(15 * 60);
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn return_key(state_param: &str) -> String {
    format!("upstream-logout:{}", token_hash(state_param))
}

/// Where our own sign-out page is after the upstream's: register it at the upstream as
/// a post-logout redirect URI.
pub fn signed_out_uri(state: &AppState, connector_slug: &str) -> String {
    let issuer = state.config.issuer.as_str().trim_end_matches('/');
    format!("{issuer}/upstream/{connector_slug}/signed-out")
}

/// The upstream's end-session URL for a session that came from connector `slug`, when
/// the upstream has one and the connector asks for it; `then` is where the browser
/// goes once back (the relying party's post-logout address, or our signed-out page).
/// Any failure means only that the upstream is not told: our sign-out is done already.
pub async fn end_session_url(state: &AppState, slug: &str, then: Option<String>) -> Option<Url> {
    let connector = enabled_connector(state, slug).await.ok()?;
    if connector.protocol != UpstreamProtocol::Oidc
        || !settings(&connector).ok()?.end_upstream_session
    {
        return None;
    }
    let found = match discovered(state, &connector).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(connector = %slug, error = %e, "upstream sign-out skipped");
            return None;
        }
    };
    let mut url = found.end_session_endpoint()?;
    let key = random_token();
    let raw = serde_json::to_vec(&then).ok()?;
    state
        .ephemeral
        .set(&return_key(&key), &raw, RETURN_TTL)
        .await
        .ok()?;
    url.query_pairs_mut()
        .append_pair("client_id", &settings(&connector).ok()?.client_id)
        .append_pair("post_logout_redirect_uri", &signed_out_uri(state, slug))
        .append_pair("state", &key);
    Some(url)
}

/// Back from the upstream's sign-out: where the browser goes next (None: our own
/// signed-out page). Taken once.
pub async fn returned(state: &AppState, state_param: &str) -> Option<String> {
    if state_param.is_empty() || state_param.len() > 128 {
        return None;
    }
    let raw = state
        .ephemeral
        .take(&return_key(state_param))
        .await
        .ok()??;
    serde_json::from_slice::<Option<String>>(&raw).ok()?
}

/// An upstream's back-channel logout token, checked (Back-Channel Logout 1.0 §2.6):
/// signed by the upstream with a key of its JWKS, our client id as audience, its
/// issuer, a fresh `iat`, the logout event, `sub` or `sid`, no `nonce`, and a `jti`
/// seen once. Ends our sessions it names; returns how many.
pub async fn back_channel(
    state: &AppState,
    slug: &str,
    token: &str,
) -> Result<usize, UpstreamError> {
    let connector = enabled_connector(state, slug).await?;
    if connector.protocol != UpstreamProtocol::Oidc {
        return Err(UpstreamError::Unknown);
    }
    if token.is_empty() || token.len() > MAX_LOGOUT_TOKEN_LEN {
        return Err(UpstreamError::Rejected("no usable logout token".into()));
    }
    let claims = verified_claims(state, &connector, token).await?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= super::MAX_SUBJECT_LEN)
    };
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|events| events.get(BACKCHANNEL_EVENT).is_some_and(Value::is_object));
    if !has_event || claims.contains_key("nonce") {
        return Err(UpstreamError::Rejected(
            "not a back-channel logout token".into(),
        ));
    }
    let Some(jti) = text("jti") else {
        return Err(UpstreamError::Rejected(
            "the logout token has no jti".into(),
        ));
    };
    let (sid, sub) = (text("sid"), text("sub"));
    if sid.is_none() && sub.is_none() {
        return Err(UpstreamError::Rejected(
            "the logout token names no session and no subject".into(),
        ));
    }
    let seen = format!("upstream-logout-jti:{}:{}", connector.id, token_hash(jti));
    if !state
        .ephemeral
        .set_if_absent(&seen, b"1", JTI_MEMORY)
        .await?
    {
        return Err(UpstreamError::Rejected(
            "the logout token was replayed".into(),
        ));
    }
    let ended = end_upstream_sessions(state, &connector, sid, sub).await?;
    tracing::info!(connector = %connector.slug, ended, "upstream back-channel logout");
    Ok(ended)
}

/// Ends our sessions that `connector`'s upstream signed in: those of its session `sid`
/// when it names one, else every one of its `subject`. Each ended session is audited
/// (`session.ended`, reason `upstream_logout`); returns how many ended. Whoever calls
/// this has checked that the upstream itself asked (a signed logout token or message).
pub async fn end_upstream_sessions(
    state: &AppState,
    connector: &Connector,
    sid: Option<&str>,
    subject: Option<&str>,
) -> Result<usize, UpstreamError> {
    let key = match (sid, subject) {
        (Some(sid), _) => sessions_by_sid(&connector.id, sid),
        (None, Some(sub)) => sessions_by_subject(&connector.id, sub),
        (None, None) => {
            return Err(UpstreamError::Rejected(
                "the logout names no session and no subject".into(),
            ));
        }
    };
    let mut ended = 0;
    for member in state.ephemeral.set_members(&key).await? {
        let Some((user_id, handle)) = member.split_once(' ') else {
            continue;
        };
        if session::end_one(state, user_id, handle).await? {
            ended += 1;
            let event = AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                .subject(user_id)
                .org(&connector.org_id)
                .detail("reason", "upstream_logout")
                .detail("connector", connector.slug.as_str());
            state.audit.record(event).await?;
        }
        state.ephemeral.set_remove(&key, &member).await?;
    }
    Ok(ended)
}

/// The claims of `token` once its signature, issuer, audience and times are right.
async fn verified_claims(
    state: &AppState,
    connector: &Connector,
    token: &str,
) -> Result<Map<String, Value>, UpstreamError> {
    crate::crypto::install_jws_provider();
    let rejected = |why: String| UpstreamError::Rejected(format!("logout token: {why}"));
    let header = jsonwebtoken::decode_header(token).map_err(|e| rejected(e.to_string()))?;
    let alg = header.alg;
    let accepted = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !accepted.contains(&alg) {
        return Err(rejected(format!("algorithm {alg:?} is not accepted")));
    }
    let found = discovered(state, connector).await?;
    let settings = settings(connector)?;
    let issuer = issuer_url(&settings.issuer)?;
    let mut validation = Validation::new(alg);
    validation.set_audience(&[settings.client_id.as_str()]);
    validation.set_issuer(&[issuer.as_str()]);
    validation.validate_exp = false;
    validation.required_spec_claims = ["iss", "aud", "iat"]
        .into_iter()
        .map(String::from)
        .collect();
    let kid = header.kid.clone();
    let key_for = |jwks: &openidconnect::JsonWebKeySet<openidconnect::core::CoreJsonWebKey>| {
        let keys = serde_json::to_value(jwks).ok()?;
        keys.get("keys")?
            .as_array()?
            .iter()
            .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid.as_deref())
            .find_map(|k| {
                let jwk: Jwk = serde_json::from_value(k.clone()).ok()?;
                DecodingKey::from_jwk(&jwk).ok()
            })
    };
    let key = match key_for(&found.jwks()) {
        Some(key) => key,
        None => key_for(&refetch_jwks(&found).await?)
            .ok_or_else(|| rejected("signed with a key the upstream does not publish".into()))?,
    };
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| rejected(chain(&e)))?;
    let iat = data
        .claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| rejected("no iat".into()))?;
    let now = state.clock.now().timestamp();
    if (now - iat).abs() > IAT_WINDOW_SECS {
        return Err(rejected("issued too long ago or in the future".into()));
    }
    if data
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp < now - 60)
    {
        return Err(rejected("expired".into()));
    }
    Ok(data.claims)
}
