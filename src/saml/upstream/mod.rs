//! SAML upstream connectors (DESIGN §16): Gatehouse as the SP of an organisation's own
//! IdP (Entra ID, ADFS, Okta, Shibboleth).
//!
//! - `GET /upstream/{connector}/saml/start?tx=`: a signed AuthnRequest by HTTP-Redirect;
//!   the trip (request ID, login transaction, browser) waits in the ephemeral store under
//!   the hash of the RelayState, taken once at the ACS.
//! - `POST /upstream/{connector}/saml/acs`: the Response by HTTP-POST, checked by
//!   [`response`] (the confined signature check, issuer, destination, InResponseTo,
//!   audience, time window, status, one assertion, decryption), its assertion ID kept
//!   against replay; the sign-in then goes on like a local one.
//! - `GET /upstream/{connector}/saml/metadata`: our SP metadata for that connector, at a
//!   stable URL that is also our entity id there.
//! - `GET|POST /upstream/{connector}/saml/slo`: Single Logout both ways ([`logout`]).

mod decrypt;
mod envelope;
mod idp;
pub mod logout;
mod response;
pub mod sp;

use std::time::Duration;

use actix_web::{
    HttpResponse,
    http::header,
    web::{self, Path, Query},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{
        AuthError, random_token, same_secret, token_hash,
        transaction::Stage,
        upstream::{self, Connector, UpstreamError, UpstreamIdentity},
    },
    domain::UpstreamProtocol,
    pages::login::{browser_id, owned_transaction, see_other, upstream_arrived, upstream_refusal},
    saml::{
        MAX_POST_BODY, assertion,
        metadata::CONTENT_TYPE,
        request::{MAX_ENCODED_BYTES, MAX_RELAY_STATE},
        slo,
        xml::{self, MAX_MESSAGE_BYTES},
    },
    startup::AppState,
    web::visit::{Answer, Visit, browser_tr},
};

pub use idp::UpstreamIdp;

/// How long the person may take at the upstream.
const TRIP_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest login transaction id taken from the query.
const MAX_TX_LEN: usize = 128;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/upstream/{connector}/saml/start").route(web::get().to(start)))
        .service(
            web::resource("/upstream/{connector}/saml/acs")
                .app_data(web::PayloadConfig::new(MAX_POST_BODY))
                .route(web::post().to(acs)),
        )
        .service(
            web::resource("/upstream/{connector}/saml/metadata").route(web::get().to(metadata)),
        )
        .configure(logout::routes);
}

fn internal(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Auth(AuthError::Internal(e.to_string()))
}

/// The enabled SAML connector named `slug`.
async fn saml_connector(state: &AppState, slug: &str) -> Result<Connector, UpstreamError> {
    let connector = upstream::enabled_connector(state, slug).await?;
    if connector.protocol != UpstreamProtocol::Saml || connector.settings.saml.is_none() {
        return Err(UpstreamError::Unknown);
    }
    Ok(connector)
}

/// The browser's trip to the upstream, kept until its Response comes back.
#[derive(Serialize, Deserialize)]
struct Trip {
    tx: String,
    browser: String,
    connector_id: String,
    request_id: String,
}

fn trip_key(relay_state: &str) -> String {
    format!("upstream-saml-trip:{}", token_hash(relay_state))
}

#[derive(Deserialize)]
struct StartQuery {
    tx: Option<String>,
}

async fn start(
    path: Path<String>,
    query: Query<StartQuery>,
    Visit { state, req, ctx }: Visit,
) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    if id.len() > MAX_TX_LEN {
        return Ok(upstream_refusal(
            &browser_tr(&req),
            &ctx,
            UpstreamError::Expired,
            "",
        ));
    }
    let Some(tx) = owned_transaction(&state, &req, &id).await? else {
        return Ok(upstream_refusal(
            &browser_tr(&req),
            &ctx,
            UpstreamError::Expired,
            "",
        ));
    };
    if tx.stage != Stage::Password {
        return Ok(upstream_refusal(
            &browser_tr(&req),
            &ctx,
            UpstreamError::Expired,
            "",
        ));
    }
    let connector = match saml_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(upstream_refusal(&browser_tr(&req), &ctx, e, "")),
    };
    match begin(&state, &connector, &tx.id, &tx.browser).await {
        Ok(location) => Ok(see_other(&location)),
        Err(e) => {
            upstream::failed(
                &state,
                &ctx,
                &connector,
                None,
                e.reason(),
                Some(&e.to_string()),
            )
            .await?;
            Ok(upstream_refusal(
                &browser_tr(&req),
                &ctx,
                e,
                &connector.display_name,
            ))
        }
    }
}

/// Sends the browser of login transaction `tx` (bound to `browser`, the hash of its
/// cookie) to the upstream with a signed AuthnRequest; the URL to redirect to.
async fn begin(
    state: &AppState,
    connector: &Connector,
    tx: &str,
    browser: &str,
) -> Result<String, UpstreamError> {
    let idp = idp::upstream_idp(state, connector).await?;
    let request_id = assertion::new_id();
    let relay_state = random_token();
    let xml = sp::authn_request(state, connector, &idp, &request_id);
    let location = slo::redirect_location(
        &idp.sso_redirect,
        "SAMLRequest",
        &xml,
        Some(&relay_state),
        state,
    )
    .map_err(internal)?;
    let trip = Trip {
        tx: tx.to_owned(),
        browser: browser.to_owned(),
        connector_id: connector.id.clone(),
        request_id,
    };
    let raw = serde_json::to_vec(&trip).map_err(internal)?;
    state
        .ephemeral
        .set(&trip_key(&relay_state), &raw, TRIP_TTL)
        .await?;
    Ok(location)
}

async fn acs(path: Path<String>, body: web::Bytes, Visit { state, req, ctx }: Visit) -> Answer {
    state.guard.rate_limit(ctx.client_ip)?;
    let connector = match saml_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(upstream_refusal(&browser_tr(&req), &ctx, e, "")),
    };
    let (browser, new) = browser_id(&req);
    if new {
        // No browser cookie: this is not the browser that left.
        return Ok(upstream_refusal(
            &browser_tr(&req),
            &ctx,
            UpstreamError::Expired,
            &connector.display_name,
        ));
    }
    match complete(&state, &connector, &body, &token_hash(&browser)).await {
        Ok((tx_id, who)) => upstream_arrived(&state, &req, &ctx, &connector, &tx_id, who).await,
        Err(e) => {
            upstream::failed(
                &state,
                &ctx,
                &connector,
                None,
                e.reason(),
                Some(&e.to_string()),
            )
            .await?;
            Ok(upstream_refusal(
                &browser_tr(&req),
                &ctx,
                e,
                &connector.display_name,
            ))
        }
    }
}

/// `SAMLResponse` and `RelayState` of a POST-binding form, each at most once.
fn form(body: &[u8]) -> Result<(String, String), UpstreamError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| UpstreamError::Rejected("the form is not text".into()))?;
    let (mut response, mut relay) = (None, None);
    for (name, value) in url::form_urlencoded::parse(text.as_bytes()) {
        let slot = match name.as_ref() {
            "SAMLResponse" => &mut response,
            "RelayState" => &mut relay,
            _ => continue,
        };
        if slot.is_some() {
            return Err(UpstreamError::Rejected(format!(
                "{name} is sent more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }
    // Without a RelayState no trip can be found: an unsolicited Response.
    let relay = relay
        .filter(|r| !r.is_empty() && r.len() <= MAX_RELAY_STATE)
        .ok_or(UpstreamError::Expired)?;
    let response = response
        .filter(|r| !r.is_empty())
        .ok_or_else(|| UpstreamError::Rejected("the form carries no SAMLResponse".into()))?;
    if response.len() > MAX_ENCODED_BYTES {
        return Err(UpstreamError::Rejected("the Response is too large".into()));
    }
    Ok((response, relay))
}

/// The login transaction the Response belongs to and who signed in, after every check.
/// `browser` is the hash of the cookie of the browser that brought it.
async fn complete(
    state: &AppState,
    connector: &Connector,
    body: &[u8],
    browser: &str,
) -> Result<(String, UpstreamIdentity), UpstreamError> {
    let (encoded, relay_state) = form(body)?;
    // Taken before anything else: whatever follows, this trip is used up.
    let Some(raw) = state.ephemeral.take(&trip_key(&relay_state)).await? else {
        return Err(UpstreamError::Expired);
    };
    let trip: Trip = serde_json::from_slice(&raw).map_err(|_| UpstreamError::Expired)?;
    if trip.connector_id != connector.id || !same_secret(&trip.browser, browser) {
        return Err(UpstreamError::Expired);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| UpstreamError::Rejected("the Response is not base64".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UpstreamError::Rejected("the Response is not UTF-8".into()))?;
    xml::check_untrusted(&text, MAX_MESSAGE_BYTES)
        .map_err(|e| UpstreamError::Rejected(e.to_string()))?;
    let idp = idp::upstream_idp(state, connector).await?;
    let slug = connector.slug.as_str();
    let (sp_entity_id, acs_url) = (sp::entity_id(state, slug), sp::acs_url(state, slug));
    let key = openssl::pkey::PKey::private_key_from_pkcs8(state.saml_keys.current().private_der())
        .map_err(internal)?;
    let now = state.clock.now();
    let skew =
        chrono::Duration::seconds(i64::try_from(state.config.saml_clock_skew_secs).unwrap_or(120));
    let expected = response::Expected {
        idp: &idp,
        sp_entity_id: &sp_entity_id,
        acs_url: &acs_url,
        request_id: &trip.request_id,
        now,
        skew,
        require_encrypted: idp::settings(connector)?.require_encrypted_assertions,
    };
    let accepted = response::check(&text, &expected, &key).await?;
    // An assertion is good once (Profiles §4.1.4.5), whatever trip brings it.
    let ttl = (accepted.valid_until - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    let first = state
        .ephemeral
        .set_if_absent(
            &format!(
                "upstream-saml-assertion:{}:{}",
                connector.id,
                token_hash(&accepted.assertion.id)
            ),
            b"1",
            ttl,
        )
        .await?;
    if !first {
        return Err(UpstreamError::Rejected(
            "the assertion was already used".into(),
        ));
    }
    Ok((trip.tx, sp::identity(connector, &accepted.assertion)))
}

async fn metadata(path: Path<String>, Visit { state, req, ctx }: Visit) -> Answer {
    let connector = match saml_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(upstream_refusal(&browser_tr(&req), &ctx, e, "")),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(sp::metadata(&state, connector.slug.as_str())))
}
