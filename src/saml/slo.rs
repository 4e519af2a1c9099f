//! `/saml/slo`: Single Logout (Profiles §4.4) over HTTP-Redirect and HTTP-POST (the
//! SOAP binding, IdP to SP only, is [`super::soap`]).
//!
//! A registered SP sends the browser here with a LogoutRequest; when it names the
//! browser's session (this SP received an assertion in it, for that NameID, and the
//! SessionIndex if given) the session is ended through
//! [`crate::auth::session::sign_out`] (whose listeners also revoke the session's OIDC grants
//! and send OIDC back-channel logout), the session's *other* SAML SPs are told in turn
//! ([`super::logout_chain`]), and the SP that asked gets a signed LogoutResponse.
//! LogoutResponses from those other SPs come back here too.
//!
//! Who may log a browser out: a LogoutRequest from an SP that has a signing certificate
//! must carry a valid signature (query signature for Redirect, enveloped for POST) —
//! whatever the SP's `require_signed_requests` — since a forged one is a logout-CSRF.
//! An SP without a signing certificate cannot prove anything, so its request must name
//! the session's exact SessionIndex, a value only the SP (and the browser) ever saw.
//! A refused request from a registered SP is still answered (`RequestDenied`, see
//! `deny`), so the SP, which has usually ended its own session, can tell its user.

use std::borrow::Cow;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use askama::Template;
use base64::{Engine, engine::general_purpose::STANDARD};
use samael::schema::{LogoutRequest, LogoutResponse};

use super::{
    acceptance::{Refusal, STALE, first_use, is_fresh, issuer_of, registered_sp},
    assertion, entity_id,
    logout_chain::{self, Finish},
    providers::{self, BINDING_POST, ServiceProvider},
    request::{self, Binding, Inbound, MessageError},
    soap,
    sso::{Participant, participants_key, session_index},
};
use crate::i18n::Tr;
use crate::web::cookies;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::session,
    startup::AppState,
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, in_readers_language, message},
        visit::{Answer, Visit},
    },
};

pub const STATUS_UNKNOWN_PRINCIPAL: &str = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";

/// The IdP's Single Logout endpoint.
pub fn slo_url(state: &AppState) -> String {
    format!("{}/saml/slo", super::base(state))
}

pub(super) async fn refuse(
    state: &AppState,
    ctx: &RequestContext,
    sp: Option<&str>,
    text: &str,
) -> Result<HttpResponse, PageError> {
    tracing::info!(request_id = %ctx.request_id, sp = ?sp, reason = %text, "SAML logout message refused");
    let mut event = AuditEvent::new(EventType::SamlLogout, Outcome::Failure)
        .request(ctx)
        .detail("reason", text);
    if let Some(sp) = sp {
        event = event.detail("sp", sp);
    }
    state.audit.record(event).await?;
    let text = text.to_owned();
    Ok(in_readers_language(move |tr| {
        let (title, said) = (
            tr.t("sign-out-request-invalid"),
            tr.a("protocol-refusal", "detail", &text),
        );
        message(tr, StatusCode::BAD_REQUEST, &title, &said, None)
    }))
}

/// `/saml/slo` by either binding: HTTP-Redirect (GET) or HTTP-POST.
pub async fn slo(body: web::Bytes, Visit { state, req, ctx }: Visit) -> Answer {
    let Some((raw, binding)) = request::raw_message(&req, &body) else {
        return refuse(&state, &ctx, None, request::NOT_A_FORM).await;
    };
    receive(&state, &req, &ctx, raw, binding).await
}

async fn receive(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    raw: &str,
    binding: Binding,
) -> Result<HttpResponse, PageError> {
    let is_response = url::form_urlencoded::parse(raw.as_bytes()).any(|(k, _)| k == "SAMLResponse");
    let param = if is_response {
        "SAMLResponse"
    } else {
        "SAMLRequest"
    };
    let inbound = match request::decode(raw, param, binding) {
        Ok(i) => i,
        Err(e) => return refuse(state, ctx, None, &e.to_string()).await,
    };
    if is_response {
        logout_chain::receive_response(state, ctx, &inbound).await
    } else {
        logout_request(state, req, ctx, &inbound).await
    }
}

/// The message as its sender's signature vouches for it, per binding. A signature is
/// required when the SP has a signing certificate; one that is present is always checked.
/// For POST the verified element is returned, and the caller must check it is the message
/// it parsed (same ID and issuer), or the signature says nothing about what it would act on.
pub(super) async fn authenticated_xml(
    inbound: &Inbound,
    param: &str,
    sp: &ServiceProvider,
) -> Result<String, MessageError> {
    let must_sign = !sp.signing_certs.is_empty();
    match inbound.binding {
        Binding::Redirect => {
            if inbound.query_signed || must_sign {
                let raw = inbound.raw_query.as_deref().unwrap_or("");
                request::verify_query_signature(raw, param, &sp.signing_certs)?;
            }
            Ok(inbound.xml.clone())
        }
        Binding::Post => {
            if inbound.shape.signed {
                request::verified_element(&inbound.xml, &sp.signing_certs).await
            } else if must_sign {
                Err(MessageError::Unsigned)
            } else {
                Ok(inbound.xml.clone())
            }
        }
    }
}

/// A LogoutRequest from an SP (Profiles §4.4.3.2).
async fn logout_request(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    inbound: &Inbound,
) -> Result<HttpResponse, PageError> {
    let AcceptedLogout {
        sp,
        logout,
        indexes,
        finish,
    } = match accept(state, inbound).await? {
        Ok(accepted) => accepted,
        Err(refusal) => return deny(state, ctx, inbound, refusal).await,
    };
    let Some(current) = cookies::current_session(state, req).await? else {
        // Already signed out: nothing left to end.
        let chain = logout_chain::Chain::empty(finish);
        return Ok(logout_chain::finish(state, ctx, chain, false).await?);
    };
    let name_id = logout.name_id.as_ref().map(|n| n.value.trim());
    let ours = session_index(&current.handle);
    let index_ok = indexes.is_empty() || indexes.contains(&ours);
    let key = participants_key(&current.handle);
    let participants: Vec<Participant> = state
        .ephemeral
        .set_members(&key)
        .await?
        .iter()
        .filter_map(|m| serde_json::from_str::<Participant>(m).ok())
        .collect();
    let named = participants
        .iter()
        .any(|p| p.sp == sp.entity_id && Some(p.name_id.as_str()) == name_id);
    if !(named && index_ok) {
        state
            .audit
            .record(
                AuditEvent::new(EventType::SamlLogout, Outcome::Failure)
                    .request(ctx)
                    .detail("sp", sp.entity_id.as_str())
                    .detail("reason", "the request does not name this browser's session"),
            )
            .await?;
        let mut chain = logout_chain::Chain::empty(finish);
        chain.status = Some(STATUS_UNKNOWN_PRINCIPAL.to_owned());
        return Ok(logout_chain::finish(state, ctx, chain, false).await?);
    }
    let others: Vec<Participant> = participants
        .into_iter()
        .filter(|p| p.sp != sp.entity_id)
        .collect();
    state.ephemeral.delete(&key).await?;
    session::sign_out(
        state,
        ctx,
        &current,
        "saml_logout",
        Some(sp.entity_id.as_str()),
    )
    .await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::SamlLogout, Outcome::Success)
                .request(ctx)
                .subject(&current.user_id)
                .org(&current.org_id)
                .detail("sp", sp.entity_id.as_str())
                .detail("direction", "from_sp"),
        )
        .await?;
    // The SPs with only a SOAP endpoint are told by the back channel, the others in turn.
    let user = Some(current.user_id.as_str());
    let others =
        soap::queue_logouts(state, soap::Browser::AtHand, user, &current.handle, others).await?;
    let chain = logout_chain::Chain::new(&current, others, finish);
    Ok(logout_chain::start(state, ctx, chain, false).await?)
}

/// A refused LogoutRequest. When it came from a registered SP with a SingleLogoutService
/// (whatever was wrong with it: unsigned, badly signed, stale, replayed), that SP is
/// answered all the same, with a signed LogoutResponse `Requester`/`RequestDenied`
/// (Core §3.2.2.2, §3.7.3.2): it has usually ended its own session already and waits
/// for the answer to tell its user. The browser gets a page that says what happened and
/// takes it back to the SP. Nothing else about the request is trusted: the answer goes
/// only to the endpoint registered for that SP, and the session stays.
async fn deny(
    state: &AppState,
    ctx: &RequestContext,
    inbound: &Inbound,
    refusal: Refusal,
) -> Result<HttpResponse, PageError> {
    let sp = match refusal.sp.as_deref() {
        // A 503 (the signature could not be checked in time) is not a refusal to answer.
        Some(entity) if refusal.status == StatusCode::BAD_REQUEST => {
            providers::find(&state.store, entity)
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?
        }
        _ => None,
    };
    let id = inbound
        .xml
        .parse::<LogoutRequest>()
        .ok()
        .and_then(|l| l.id)
        .filter(|id| !id.is_empty() && id.len() <= 256);
    let (Some(sp), Some(id)) = (sp, id) else {
        let mut page = refuse(state, ctx, refusal.sp.as_deref(), &refusal.text).await?;
        *page.status_mut() = refusal.status;
        return Ok(page);
    };
    let Some(endpoint) = sp.slo().cloned() else {
        return refuse(state, ctx, Some(&sp.entity_id), &refusal.text).await;
    };
    tracing::info!(request_id = %ctx.request_id, sp = %sp.entity_id, reason = %refusal.text,
        "SAML logout message refused; the SP is answered RequestDenied");
    state
        .audit
        .record(
            AuditEvent::new(EventType::SamlLogout, Outcome::Failure)
                .request(ctx)
                .detail("sp", sp.entity_id.as_str())
                .detail("reason", refusal.text.as_ref())
                .detail("answered", "RequestDenied"),
        )
        .await?;
    let destination = endpoint
        .response_location
        .clone()
        .unwrap_or_else(|| endpoint.location.clone());
    let post = endpoint.binding == BINDING_POST;
    let xml = assertion::logout_response(
        &entity_id(state),
        &destination,
        &id,
        assertion::STATUS_REQUESTER,
        Some(STATUS_REQUEST_DENIED),
        Some(&refusal.text),
        &state.saml_keys.current(),
        state.clock.now(),
        post,
    )?;
    let relay_state = inbound.relay_state.as_deref();
    let page = if post {
        let value = assertion::encode(&xml);
        let relay_state = relay_state.map(str::to_owned);
        let (reason, destination) = (refusal.text.clone(), destination.clone());
        in_readers_language(move |tr| {
            let onward = Onward::Post(&value, relay_state.as_deref());
            denied_page(tr, &reason, &destination, onward)
        })
    } else {
        let location = redirect_location(&destination, "SAMLResponse", &xml, relay_state, state)?;
        let (reason, destination) = (refusal.text.clone(), destination.clone());
        in_readers_language(move |tr| {
            denied_page(tr, &reason, &destination, Onward::Link(&location))
        })
    };
    Ok(page)
}

/// How the denied page takes the browser back to the SP: the LogoutResponse in a link
/// (HTTP-Redirect) or in a form (HTTP-POST: SAMLResponse and RelayState).
enum Onward<'a> {
    Link(&'a str),
    Post(&'a str, Option<&'a str>),
}

#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block title %}{{ tr.t("sign-out-refused") }}{% endblock %}
{% block content %}<h1>{{ tr.t("still-signed-in") }}</h1>
<p id="message">{{ tr.a("sign-out-refused-text", "reason", reason) }}</p>
<p>{{ tr.t("sign-out-refused-next") }}</p>
{% match onward %}{% when Onward::Link(href) %}<p><a id="continue" href="{{ href }}">{{ tr.t("return-to-app") }}</a></p>
{% when Onward::Post(value, relay) %}<form id="saml-post" method="post" action="{{ action }}">
<input type="hidden" name="SAMLResponse" value="{{ value }}">
{% if let Some(r) = relay %}<input type="hidden" name="RelayState" value="{{ r }}">{% endif %}
<button id="continue" type="submit">{{ tr.t("return-to-app") }}</button>
</form>{% endmatch %}
<p><a id="sign-out" href="/logout">{{ tr.t("sign-out-of-gatehouse") }}</a></p>{% endblock %}"#,
    ext = "html"
)]
struct DeniedPage<'a> {
    tr: &'a Tr,
    reason: &'a str,
    action: &'a str,
    onward: Onward<'a>,
}

/// 400 (the request was refused), with a CSP whose `form-action` also allows the SP's
/// origin, so the form can carry the answer there.
fn denied_page(tr: &Tr, reason: &str, action: &str, onward: Onward<'_>) -> HttpResponse {
    let origin = url::Url::parse(action)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".to_owned());
    let mut res = crate::web::pages::render(
        &DeniedPage {
            tr,
            reason,
            action,
            onward,
        },
        StatusCode::BAD_REQUEST,
    );
    let csp = crate::web::DEFAULT_CSP.replace(
        "form-action 'self'",
        &format!("form-action {origin} 'self'"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&csp) {
        res.headers_mut().insert(
            header::HeaderName::from_static("content-security-policy"),
            v,
        );
    }
    res
}

/// A LogoutRequest that passed every check, from a registered SP that can be answered.
struct AcceptedLogout {
    sp: ServiceProvider,
    logout: LogoutRequest,
    /// The SessionIndex values it names (none: every session of the NameID).
    indexes: Vec<String>,
    finish: Finish,
}

/// Authenticates and checks a LogoutRequest; `Err` (inner) is a refusal.
async fn accept(
    state: &AppState,
    inbound: &Inbound,
) -> Result<Result<AcceptedLogout, Refusal>, AppError> {
    let Ok(unverified) = inbound.xml.parse::<LogoutRequest>() else {
        return Ok(Err(Refusal::new(
            None,
            "The SAML message is not a valid LogoutRequest.",
        )));
    };
    let sp = match registered_sp(state, unverified.issuer.as_ref()).await? {
        Ok(sp) => sp,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let refused = |text: String| Ok(Err(Refusal::new(Some(&sp.entity_id), text)));
    let xml = match authenticated_xml(inbound, "SAMLRequest", &sp).await {
        Ok(xml) => xml,
        Err(e) => return Ok(Err(Refusal::message(Some(&sp.entity_id), &e))),
    };
    let Ok(logout) = xml.parse::<LogoutRequest>() else {
        return refused(MessageError::Parse("LogoutRequest").to_string());
    };
    if logout.id != unverified.id
        || issuer_of(logout.issuer.as_ref()).as_deref() != Some(sp.entity_id.as_str())
    {
        return refused(MessageError::Wrapped.to_string());
    }
    let indexes = session_indexes(&xml);
    let id = match check(state, inbound, &logout, &sp, &indexes).await? {
        Ok(id) => id,
        Err(text) => return refused(text.into()),
    };
    let finish = Finish::Saml {
        sp: sp.entity_id.clone(),
        in_response_to: id,
        relay_state: inbound.relay_state.clone(),
    };
    Ok(Ok(AcceptedLogout {
        sp,
        logout,
        indexes,
        finish,
    }))
}

/// The checks of an authenticated LogoutRequest (Core §3.7, Profiles §4.4.4.1):
/// version, ID, age, Destination, an SLO endpoint to answer at, a SessionIndex when
/// unsigned, and never twice. Returns its ID; `Err` (inner) says why not.
async fn check(
    state: &AppState,
    inbound: &Inbound,
    logout: &LogoutRequest,
    sp: &ServiceProvider,
    indexes: &[String],
) -> Result<Result<String, Cow<'static, str>>, AppError> {
    if logout.version.as_deref() != Some("2.0") {
        return Ok(Err("Only SAML 2.0 requests are accepted.".into()));
    }
    let Some(id) = logout
        .id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= 256)
    else {
        return Ok(Err("The request has no valid ID.".into()));
    };
    if !logout.issue_instant.is_some_and(|at| is_fresh(state, at)) {
        return Ok(Err(STALE.into()));
    }
    if let Err(e) = request::check_destination(
        logout.destination.as_deref(),
        inbound.signed(),
        &slo_url(state),
    ) {
        return Ok(Err(e.to_string().into()));
    }
    if sp.slo().is_none() {
        return Ok(Err(
            "The application has no SingleLogoutService registered to answer to.".into(),
        ));
    }
    if sp.signing_certs.is_empty() && indexes.is_empty() {
        return Ok(Err(
            "An unsigned sign-out request must name the session (SessionIndex).".into(),
        ));
    }
    if !first_use(state, "saml-logout", &sp.entity_id, &id).await? {
        return Ok(Err("This sign-out request was already used.".into()));
    }
    Ok(Ok(id))
}

/// The HTTP-Redirect binding (Bindings §3.4.4): DEFLATE, base64, and a query signature
/// (RSA-SHA256) over `<param>=…&RelayState=…&SigAlg=…`.
pub(super) fn redirect_location(
    destination: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    state: &AppState,
) -> Result<String, AppError> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut query = format!(
        "{param}={}",
        enc(&STANDARD.encode(super::xml::deflate(xml.as_bytes())))
    );
    if let Some(relay) = relay_state {
        query.push_str(&format!("&RelayState={}", enc(relay)));
    }
    query.push_str(&format!(
        "&SigAlg={}",
        enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    ));
    let internal = |e: openssl::error::ErrorStack| AppError::Internal(format!("SAML signing: {e}"));
    let saml_key = state.saml_keys.current();
    let key =
        openssl::pkey::PKey::private_key_from_pkcs8(saml_key.private_der()).map_err(internal)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
        .map_err(internal)?;
    signer.update(query.as_bytes()).map_err(internal)?;
    let signature = signer.sign_to_vec().map_err(internal)?;
    query.push_str(&format!("&Signature={}", enc(&STANDARD.encode(signature))));
    let separator = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{separator}{query}"))
}

/// A 303 to `location`, or — right after a form of ours was submitted, where our CSP's
/// `form-action 'self'` would stop a cross-origin redirect — a page that navigates on.
pub(super) fn go_to(location: &str, after_form: bool) -> HttpResponse {
    if after_form {
        return crate::web::pages::continue_to(location);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Parses and checks a LogoutResponse's signature and Destination the same way as a
/// request's; `endpoint` is our `/saml/slo` URL.
pub(super) async fn authenticated_response(
    inbound: &Inbound,
    sp: &ServiceProvider,
    endpoint: &str,
) -> Result<LogoutResponse, MessageError> {
    let unverified: LogoutResponse = inbound
        .xml
        .parse()
        .map_err(|_| MessageError::Parse("LogoutResponse"))?;
    let xml = authenticated_xml(inbound, "SAMLResponse", sp).await?;
    let verified: LogoutResponse = xml
        .parse()
        .map_err(|_| MessageError::Parse("LogoutResponse"))?;
    if verified.id != unverified.id
        || issuer_of(verified.issuer.as_ref()).as_deref() != Some(sp.entity_id.as_str())
    {
        return Err(MessageError::Wrapped);
    }
    request::check_destination(verified.destination.as_deref(), inbound.signed(), endpoint)?;
    Ok(verified)
}

/// The text of the request's `SessionIndex` elements (samael reads SessionIndex as an
/// attribute, which it is not). Only ever makes the match stricter.
pub(super) fn session_indexes(xml: &str) -> Vec<String> {
    const TAG: &str = "SessionIndex>";
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(TAG) {
        let before = &rest[..i];
        let after = &rest[i + TAG.len()..];
        rest = after;
        let opening = before.rfind('<').is_some_and(|o| {
            let name = &before[o + 1..];
            !name.starts_with('/') && !name.contains(|c: char| c.is_whitespace() || c == '>')
        });
        if opening && let Some(end) = after.find('<') {
            out.push(after[..end].trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_indexes_are_the_elements_text() {
        let xml = r#"<samlp:LogoutRequest><saml:Issuer>x</saml:Issuer><samlp:SessionIndex> _a </samlp:SessionIndex><SessionIndex>_b</SessionIndex></samlp:LogoutRequest>"#;
        assert_eq!(super::session_indexes(xml), vec!["_a", "_b"]);
        assert!(super::session_indexes("<samlp:LogoutRequest/>").is_empty());
    }
}
