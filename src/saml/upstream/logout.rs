//! Single Logout with an upstream SAML IdP (Profiles §4.4, DESIGN §16), at
//! `/upstream/{connector}/saml/slo` by HTTP-Redirect (GET) or HTTP-POST.
//!
//! - Our sign-out, to the upstream: [`sign_out_location`] builds a signed LogoutRequest
//!   for the NameID and SessionIndex the upstream gave the session; its ID, with where
//!   the browser goes afterwards, waits in the ephemeral store under the hash of the
//!   RelayState. The upstream's LogoutResponse comes back here and is taken once.
//! - The upstream's sign-out, to us: its signed LogoutRequest ends the sessions it
//!   signed in here (by SessionIndex, else by NameID) and is answered with a signed
//!   LogoutResponse at its SingleLogoutService.
//!
//! Every message must be signed by the upstream (the query signature of HTTP-Redirect
//! or an enveloped one for HTTP-POST), checked with its metadata's certificates only,
//! through the same confined verification as the ACS: an unsigned LogoutRequest would be
//! a logout-CSRF anyone could send. A failed or missing answer to our request never keeps
//! anyone signed in: our session ended before the browser left.

use std::time::Duration;

use actix_web::{
    HttpResponse,
    http::StatusCode,
    web::{self, Path, Query},
};
use samael::schema::{LogoutRequest, LogoutResponse};
use serde::{Deserialize, Serialize};

use super::{idp::UpstreamIdp, saml_connector, sp};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        random_token, token_hash,
        upstream::{Connector, MAX_SUBJECT_LEN, UpstreamError, UpstreamOrigin, logout},
    },
    pages::login::upstream_refusal,
    saml::{
        acceptance::{STALE, first_use, is_fresh, issuer_of},
        assertion,
        post_binding::post_page_with_self,
        request::{self, Binding, Inbound, MessageError},
        slo::{go_to, redirect_location, session_indexes},
    },
    startup::AppState,
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, in_readers_language, message},
        visit::{Answer, Visit, browser_tr},
    },
};

/// How long our LogoutRequest waits for the upstream's answer.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Most SessionIndex values one LogoutRequest may name.
const MAX_SESSION_INDEXES: usize = 16;
/// Longest state value taken from the query.
const MAX_STATE_LEN: usize = 128;

/// Our LogoutRequest, waiting for its answer.
#[derive(Serialize, Deserialize)]
struct Pending {
    connector_id: String,
    request_id: String,
    /// Where the browser goes once the upstream is done (None: our signed-out page).
    then: Option<String>,
    /// HTTP-POST only: the upstream's SingleLogoutService and the encoded signed request,
    /// which our own page posts there.
    post: Option<(String, String)>,
}

fn pending_key(relay_state: &str) -> String {
    format!("upstream-saml-slo:{}", token_hash(relay_state))
}

async fn keep(state: &AppState, relay_state: &str, pending: &Pending) -> Result<(), AppError> {
    let raw = serde_json::to_vec(pending).map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .ephemeral
        .set(&pending_key(relay_state), &raw, PENDING_TTL)
        .await?;
    Ok(())
}

/// Where the signed-out browser goes so that the upstream IdP ends its session too: its
/// SingleLogoutService with our signed LogoutRequest (or, when it takes only HTTP-POST,
/// our page that posts it). `then` is where the browser goes once the upstream answers.
/// None when the session's connector is not SAML, is gone, or its IdP has no Single
/// Logout: our sign-out is done whatever happens here.
pub async fn sign_out_location(
    state: &AppState,
    origin: &UpstreamOrigin,
    then: Option<String>,
) -> Option<String> {
    let connector = saml_connector(state, &origin.slug).await.ok()?;
    if connector.id != origin.connector_id {
        return None;
    }
    let idp = match super::idp::upstream_idp(state, &connector).await {
        Ok(idp) => idp,
        Err(e) => {
            tracing::warn!(connector = %origin.slug, error = %e, "upstream SAML sign-out skipped");
            return None;
        }
    };
    let endpoint = idp.slo.clone()?;
    let slug = connector.slug.as_str();
    let request_id = assertion::new_id();
    let relay_state = random_token();
    let key = state.saml_keys.current();
    let built = sp::logout_request(
        state,
        slug,
        &endpoint.location,
        &origin.subject,
        origin.sid.as_deref(),
        &request_id,
        &key,
        endpoint.post,
    );
    let xml = match built {
        Ok(xml) => xml,
        Err(e) => {
            tracing::warn!(connector = %slug, error = %e, "upstream SAML sign-out skipped");
            return None;
        }
    };
    let (location, post) = if endpoint.post {
        let enc: String = url::form_urlencoded::byte_serialize(relay_state.as_bytes()).collect();
        let ours = format!("{}/send?state={enc}", sp::slo_url(state, slug));
        let value = assertion::encode(&xml);
        (ours, Some((endpoint.location.clone(), value)))
    } else {
        let location = redirect_location(
            &endpoint.location,
            "SAMLRequest",
            &xml,
            Some(&relay_state),
            state,
        )
        .ok()?;
        (location, None)
    };
    let pending = Pending {
        connector_id: connector.id.clone(),
        request_id,
        then,
        post,
    };
    keep(state, &relay_state, &pending).await.ok()?;
    Some(location)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/upstream/{connector}/saml/slo")
            .app_data(web::PayloadConfig::new(crate::saml::MAX_POST_BODY))
            .route(web::get().to(slo))
            .route(web::post().to(slo)),
    )
    .service(web::resource("/upstream/{connector}/saml/slo/send").route(web::get().to(send)));
}

#[derive(Deserialize)]
struct StateQuery {
    #[serde(default)]
    state: String,
}

/// The page that posts our LogoutRequest to an upstream that takes only HTTP-POST.
async fn send(path: Path<String>, query: Query<StateQuery>, Visit { state, .. }: Visit) -> Answer {
    let relay_state = query.into_inner().state;
    let found = if relay_state.is_empty() || relay_state.len() > MAX_STATE_LEN {
        None
    } else {
        state.ephemeral.get(&pending_key(&relay_state)).await?
    };
    let pending = found.and_then(|raw| serde_json::from_slice::<Pending>(&raw).ok());
    let connector = saml_connector(&state, &path.into_inner()).await.ok();
    match (pending, connector) {
        (Some(p), Some(c)) if p.connector_id == c.id => match &p.post {
            Some((action, value)) => Ok(post_page_with_self(
                action,
                "SAMLRequest",
                value,
                Some(&relay_state),
                None,
            )),
            None => Ok(crate::pages::login::signed_out_page()),
        },
        _ => Ok(crate::pages::login::signed_out_page()),
    }
}

/// `/upstream/{connector}/saml/slo`: the upstream's LogoutResponse to our request, or its
/// own LogoutRequest.
async fn slo(path: Path<String>, body: web::Bytes, Visit { state, req, ctx }: Visit) -> Answer {
    state.guard.rate_limit(ctx.client_ip)?;
    let connector = match saml_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(upstream_refusal(&browser_tr(&req), &ctx, e, "")),
    };
    let Some((raw, binding)) = request::raw_message(&req, &body) else {
        return refuse(&state, &ctx, &connector, request::NOT_A_FORM.into()).await;
    };
    let is_response = url::form_urlencoded::parse(raw.as_bytes()).any(|(k, _)| k == "SAMLResponse");
    if is_response {
        answered(&state, &ctx, &connector, raw, binding).await
    } else {
        asked(&state, &ctx, &connector, raw, binding).await
    }
}

/// Why a message from the upstream was refused, and with which status.
struct Refused {
    status: StatusCode,
    text: String,
}

impl From<MessageError> for Refused {
    fn from(e: MessageError) -> Self {
        Self {
            status: e.status(),
            text: e.to_string(),
        }
    }
}

impl From<&str> for Refused {
    fn from(text: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            text: text.to_owned(),
        }
    }
}

/// A refused message: audited, and a page that says why. Nothing was ended.
async fn refuse(
    state: &AppState,
    ctx: &RequestContext,
    connector: &Connector,
    refused: Refused,
) -> Result<HttpResponse, PageError> {
    tracing::info!(request_id = %ctx.request_id, connector = %connector.slug,
        reason = %refused.text, "upstream SAML logout message refused");
    state
        .audit
        .record(
            AuditEvent::new(EventType::SamlLogout, Outcome::Failure)
                .request(ctx)
                .org(&connector.org_id)
                .detail("connector", connector.slug.as_str())
                .detail("reason", refused.text.as_str()),
        )
        .await?;
    let (status, text) = (refused.status, refused.text);
    Ok(in_readers_language(move |tr| {
        let (title, said) = (
            tr.t("sign-out-message-invalid"),
            tr.a("protocol-refusal", "detail", &text),
        );
        message(
            tr,
            status,
            &title,
            &said,
            Some(("/account", &tr.t("continue"))),
        )
    }))
}

/// The upstream's signature over the message, by binding; the verified XML. Always
/// required: an upstream IdP publishes its signing certificate, or it is not usable.
async fn authenticated(
    inbound: &Inbound,
    param: &str,
    idp: &UpstreamIdp,
) -> Result<String, MessageError> {
    match inbound.binding {
        Binding::Redirect => {
            if !inbound.query_signed {
                return Err(MessageError::Unsigned);
            }
            let raw = inbound.raw_query.as_deref().unwrap_or("");
            request::verify_query_signature(raw, param, &idp.signing_certs)?;
            Ok(inbound.xml.clone())
        }
        Binding::Post => request::verified_element(&inbound.xml, &idp.signing_certs).await,
    }
}

/// The issuer of an unverified message, checked against the connector's IdP before any
/// signature work.
fn from_the_idp(issuer: Option<&samael::schema::Issuer>, idp: &UpstreamIdp) -> Result<(), Refused> {
    if issuer_of(issuer).as_deref() == Some(idp.entity_id.as_str()) {
        Ok(())
    } else {
        Err("The sign-out message was not issued by this connector's identity provider.".into())
    }
}

/// The upstream's LogoutResponse to our LogoutRequest: checked, then the browser goes on.
async fn answered(
    state: &AppState,
    ctx: &RequestContext,
    connector: &Connector,
    raw: &str,
    binding: Binding,
) -> Result<HttpResponse, PageError> {
    let inbound = match request::decode(raw, "SAMLResponse", binding) {
        Ok(inbound) => inbound,
        Err(e) => return refuse(state, ctx, connector, e.into()).await,
    };
    let unknown = "The sign-out answer does not belong to a sign-out in progress.";
    let Some(relay_state) = inbound.relay_state.clone() else {
        return refuse(state, ctx, connector, unknown.into()).await;
    };
    // Taken, not read: one answer per request.
    let Some(raw_pending) = state.ephemeral.take(&pending_key(&relay_state)).await? else {
        return refuse(state, ctx, connector, unknown.into()).await;
    };
    let Ok(pending) = serde_json::from_slice::<Pending>(&raw_pending) else {
        return refuse(state, ctx, connector, unknown.into()).await;
    };
    let checked = if pending.connector_id == connector.id {
        check_response(state, connector, &inbound, &pending).await
    } else {
        Err(unknown.into())
    };
    let code = match checked {
        Ok(code) => code,
        Err(refused) => {
            // A forged or stray answer must not use up the real one.
            keep(state, &relay_state, &pending).await?;
            return refuse(state, ctx, connector, refused).await;
        }
    };
    let outcome = if code == assertion::STATUS_SUCCESS {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    state
        .audit
        .record(
            AuditEvent::new(EventType::SamlLogout, outcome)
                .request(ctx)
                .org(&connector.org_id)
                .detail("connector", connector.slug.as_str())
                .detail("direction", "to_upstream")
                .detail("status", code.as_str()),
        )
        .await?;
    let after_form = binding == Binding::Post;
    Ok(match pending.then {
        Some(then) => go_to(&then, after_form),
        None => crate::pages::login::signed_out_page(),
    })
}

/// A LogoutResponse's checks (Core §3.7.2, Profiles §4.4.4.2): from the connector's IdP,
/// signed by it, to our endpoint, in response to our request. Its top-level status code.
async fn check_response(
    state: &AppState,
    connector: &Connector,
    inbound: &Inbound,
    pending: &Pending,
) -> Result<String, Refused> {
    let parse = MessageError::Parse("LogoutResponse");
    let unverified: LogoutResponse = inbound.xml.parse().map_err(|_| parse.clone())?;
    let idp = idp_of(state, connector).await?;
    from_the_idp(unverified.issuer.as_ref(), &idp)?;
    let xml = authenticated(inbound, "SAMLResponse", &idp).await?;
    let verified: LogoutResponse = xml.parse().map_err(|_| parse)?;
    if verified.id != unverified.id
        || issuer_of(verified.issuer.as_ref()).as_deref() != Some(idp.entity_id.as_str())
    {
        return Err(MessageError::Wrapped.into());
    }
    request::check_destination(
        verified.destination.as_deref(),
        true,
        &sp::slo_url(state, connector.slug.as_str()),
    )?;
    if verified.in_response_to.as_deref() != Some(pending.request_id.as_str()) {
        return Err("The answer is not to the sign-out request Gatehouse sent.".into());
    }
    Ok(verified
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.clone())
        .unwrap_or_default())
}

async fn idp_of(
    state: &AppState,
    connector: &Connector,
) -> Result<std::sync::Arc<UpstreamIdp>, Refused> {
    super::idp::upstream_idp(state, connector)
        .await
        .map_err(|e| Refused {
            status: StatusCode::BAD_GATEWAY,
            text: e.to_string(),
        })
}

/// Who an accepted LogoutRequest names, and how to answer it.
struct Accepted {
    id: String,
    name_id: Option<String>,
    indexes: Vec<String>,
    idp: std::sync::Arc<UpstreamIdp>,
}

/// The upstream's LogoutRequest (Profiles §4.4.4.1): its sessions here end, and it is
/// answered.
async fn asked(
    state: &AppState,
    ctx: &RequestContext,
    connector: &Connector,
    raw: &str,
    binding: Binding,
) -> Result<HttpResponse, PageError> {
    let inbound = match request::decode(raw, "SAMLRequest", binding) {
        Ok(inbound) => inbound,
        Err(e) => return refuse(state, ctx, connector, e.into()).await,
    };
    let accepted = match check_request(state, connector, &inbound).await? {
        Ok(accepted) => accepted,
        Err(refused) => return refuse(state, ctx, connector, refused).await,
    };
    let ended = end_sessions(state, connector, &accepted).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::SamlLogout, Outcome::Success)
                .request(ctx)
                .org(&connector.org_id)
                .detail("connector", connector.slug.as_str())
                .detail("direction", "from_upstream")
                .detail("ended", ended),
        )
        .await?;
    let Some(endpoint) = accepted.idp.slo.clone() else {
        // Nowhere to answer: the sessions have ended all the same.
        return Ok(crate::pages::login::signed_out_page());
    };
    // Success even when nothing was left to end (Core §3.7.3.2: the principal is signed
    // out here either way).
    let key = state.saml_keys.current();
    let xml = assertion::logout_response(
        &sp::entity_id(state, connector.slug.as_str()),
        &endpoint.response_location,
        &accepted.id,
        assertion::STATUS_SUCCESS,
        None,
        None,
        &key,
        state.clock.now(),
        endpoint.post,
    )?;
    let relay_state = inbound.relay_state.as_deref();
    if endpoint.post {
        return Ok(post_page_with_self(
            &endpoint.response_location,
            "SAMLResponse",
            &assertion::encode(&xml),
            relay_state,
            None,
        ));
    }
    let location = redirect_location(
        &endpoint.response_location,
        "SAMLResponse",
        &xml,
        relay_state,
        state,
    )?;
    Ok(go_to(&location, binding == Binding::Post))
}

/// The checks of the upstream's LogoutRequest (Core §3.7.1, §3.7.3): issuer, signature,
/// version, ID, age, NotOnOrAfter, Destination, someone named, and never twice.
async fn check_request(
    state: &AppState,
    connector: &Connector,
    inbound: &Inbound,
) -> Result<Result<Accepted, Refused>, AppError> {
    let checked = async {
        let parse = MessageError::Parse("LogoutRequest");
        let unverified: LogoutRequest = inbound.xml.parse().map_err(|_| parse.clone())?;
        let idp = idp_of(state, connector).await?;
        from_the_idp(unverified.issuer.as_ref(), &idp)?;
        let xml = authenticated(inbound, "SAMLRequest", &idp).await?;
        let logout: LogoutRequest = xml.parse().map_err(|_| parse)?;
        if logout.id != unverified.id
            || issuer_of(logout.issuer.as_ref()).as_deref() != Some(idp.entity_id.as_str())
        {
            return Err(MessageError::Wrapped.into());
        }
        if logout.version.as_deref() != Some("2.0") {
            return Err("Only SAML 2.0 requests are accepted.".into());
        }
        let id = logout
            .id
            .clone()
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or(Refused::from("The request has no valid ID."))?;
        if !logout.issue_instant.is_some_and(|at| is_fresh(state, at)) {
            return Err(STALE.into());
        }
        let skew = chrono::Duration::seconds(
            i64::try_from(state.config.saml_clock_skew_secs).unwrap_or(120),
        );
        if not_on_or_after(&xml)?.is_some_and(|end| end + skew <= state.clock.now()) {
            return Err("The sign-out request has expired (NotOnOrAfter).".into());
        }
        request::check_destination(
            logout.destination.as_deref(),
            true,
            &sp::slo_url(state, connector.slug.as_str()),
        )?;
        let name_id = logout
            .name_id
            .as_ref()
            .map(|n| n.value.trim().to_owned())
            .filter(|v| !v.is_empty());
        if name_id.as_ref().is_some_and(|n| n.len() > MAX_SUBJECT_LEN) {
            return Err("The request's NameID is too long.".into());
        }
        let indexes = session_indexes(&xml);
        if indexes.len() > MAX_SESSION_INDEXES
            || indexes.iter().any(|i| i.is_empty() || i.len() > 256)
        {
            return Err("The request's SessionIndex values are not acceptable.".into());
        }
        if name_id.is_none() && indexes.is_empty() {
            return Err("The request names no one (no NameID and no SessionIndex).".into());
        }
        Ok(Accepted {
            id,
            name_id,
            indexes,
            idp,
        })
    }
    .await;
    let accepted = match checked {
        Ok(accepted) => accepted,
        Err(refused) => return Ok(Err(refused)),
    };
    // Last, so that a refused request does not use up its ID.
    if !first_use(state, "upstream-saml-logout", &connector.id, &accepted.id).await? {
        return Ok(Err("This sign-out request was already used.".into()));
    }
    Ok(Ok(accepted))
}

/// The root element's `NotOnOrAfter` (samael does not read it on a LogoutRequest).
fn not_on_or_after(xml: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, Refused> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                let Some(a) = e
                    .try_get_attribute("NotOnOrAfter")
                    .map_err(|_| Refused::from("The request's attributes are malformed."))?
                else {
                    return Ok(None);
                };
                let text = String::from_utf8_lossy(&a.value).into_owned();
                return chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map(|t| Some(t.with_timezone(&chrono::Utc)))
                    .map_err(|_| "The request's NotOnOrAfter is not a time.".into());
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Ends our sessions the request names: those of its SessionIndex values, else every
/// session of its NameID.
async fn end_sessions(
    state: &AppState,
    connector: &Connector,
    accepted: &Accepted,
) -> Result<usize, AppError> {
    let mut ended = 0;
    let internal = |e: UpstreamError| AppError::Internal(e.to_string());
    if accepted.indexes.is_empty() {
        ended += logout::end_upstream_sessions(state, connector, None, accepted.name_id.as_deref())
            .await
            .map_err(internal)?;
    }
    for index in &accepted.indexes {
        ended += logout::end_upstream_sessions(state, connector, Some(index), None)
            .await
            .map_err(internal)?;
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::not_on_or_after;

    #[test]
    fn not_on_or_after_is_read_from_the_root_element_only() {
        let xml = r#"<samlp:LogoutRequest NotOnOrAfter="2026-01-02T03:04:05Z"><saml:NameID NotOnOrAfter="2030-01-01T00:00:00Z">x</saml:NameID></samlp:LogoutRequest>"#;
        let at = not_on_or_after(xml).ok().flatten().unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let without = r#"<samlp:LogoutRequest><saml:NameID NotOnOrAfter="2030-01-01T00:00:00Z">x</saml:NameID></samlp:LogoutRequest>"#;
        assert!(not_on_or_after(without).ok().flatten().is_none());
    }

    #[test]
    fn a_not_on_or_after_that_is_no_time_is_refused() {
        let xml = r#"<samlp:LogoutRequest NotOnOrAfter="tomorrow"/>"#;
        assert!(not_on_or_after(xml).is_err());
    }
}
