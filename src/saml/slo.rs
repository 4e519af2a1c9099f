//! `/saml/slo`: SP-initiated Single Logout (Profiles §4.4) over HTTP-Redirect.
//!
//! A registered SP sends the browser here with a LogoutRequest; the browser's session is
//! ended through [`crate::oidc::logout::end_session`] (which also revokes the session's
//! OIDC grants and sends OIDC back-channel logout) when the request names it — this SP
//! received an assertion in it, for that NameID (and SessionIndex, when given). The
//! answer is a signed LogoutResponse to the SP's registered SingleLogoutService.
//!
//! Not yet: telling the session's *other* SAML SPs (the front-channel chain) and
//! LogoutRequests by HTTP-POST.

use std::time::Duration;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use samael::schema::LogoutRequest;
use sha2::{Digest, Sha256};

use super::{
    assertion, entity_id,
    providers::{self, BINDING_POST, BINDING_REDIRECT},
    request::{self, Binding},
    sso::{Participant, participants_key, post_page, session_index},
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::session,
    startup::AppState,
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, message},
    },
};

/// How old a LogoutRequest may be (besides clock skew).
const REQUEST_MAX_AGE_SECS: i64 = 300;

const STATUS_UNKNOWN_PRINCIPAL: &str = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal";

/// The IdP's Single Logout endpoint.
pub fn slo_url(state: &AppState) -> String {
    format!("{}/saml/slo", super::base(state))
}

async fn refuse(
    state: &AppState,
    ctx: &RequestContext,
    sp: Option<&str>,
    text: &str,
) -> Result<HttpResponse, PageError> {
    tracing::info!(request_id = %ctx.request_id, sp = ?sp, reason = %text, "SAML logout request refused");
    let mut event = AuditEvent::new(EventType::SessionEnded, Outcome::Failure)
        .request(ctx)
        .detail("reason", text);
    if let Some(sp) = sp {
        event = event.detail("sp", sp);
    }
    state.audit.record(event).await?;
    Ok(message(
        StatusCode::BAD_REQUEST,
        "This sign-out request is not valid",
        text,
        None,
    ))
}

pub async fn slo_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
) -> Result<HttpResponse, PageError> {
    let raw = req.query_string().to_owned();
    let state = state.get_ref();
    let inbound = match request::decode(&raw, "SAMLRequest", Binding::Redirect) {
        Ok(i) => i,
        Err(e) => return refuse(state, &ctx, None, &e.to_string()).await,
    };
    let Ok(logout) = inbound.xml.parse::<LogoutRequest>() else {
        return refuse(
            state,
            &ctx,
            None,
            "The SAML message is not a valid LogoutRequest.",
        )
        .await;
    };
    let Some(issuer) = logout
        .issuer
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .map(|v| v.trim().to_owned())
    else {
        return refuse(
            state,
            &ctx,
            None,
            "The request does not say which application sent it.",
        )
        .await;
    };
    let sp = match providers::find(&state.store, &issuer).await {
        Ok(Some(sp)) => sp,
        Ok(None) => {
            return refuse(
                state,
                &ctx,
                None,
                "The application is not registered with Gatehouse.",
            )
            .await;
        }
        Err(e) => return Err(AppError::Internal(e.to_string()).into()),
    };
    let sp_id = sp.entity_id.clone();
    let refuse_sp = |text: String| {
        let sp_id = sp_id.clone();
        let ctx = &ctx;
        async move { refuse(state, ctx, Some(&sp_id), &text).await }
    };
    // Bindings §3.4.4.1: with Redirect the signature is in the query.
    if (inbound.query_signed || sp.require_signed_requests)
        && let Err(e) = request::verify_query_signature(&raw, "SAMLRequest", &sp.signing_certs)
    {
        return refuse_sp(e.to_string()).await;
    }
    if logout.version.as_deref() != Some("2.0") {
        return refuse_sp("Only SAML 2.0 requests are accepted.".into()).await;
    }
    let Some(id) = logout
        .id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= 256)
    else {
        return refuse_sp("The request has no valid ID.".into()).await;
    };
    let now = state.clock.now();
    let skew = i64::try_from(state.config.saml_clock_skew_secs).unwrap_or(120);
    let fresh = logout.issue_instant.is_some_and(|at| {
        let age = (now - at).num_seconds();
        age <= REQUEST_MAX_AGE_SECS + skew && age >= -skew
    });
    if !fresh {
        return refuse_sp(
            "The request is too old or from the future (check the application's clock).".into(),
        )
        .await;
    }
    if logout
        .destination
        .as_deref()
        .is_some_and(|d| d != slo_url(state))
    {
        return refuse_sp("The request was addressed to another identity provider.".into()).await;
    }
    let Some(endpoint) = sp.slo().cloned() else {
        return refuse_sp(
            "The application has no SingleLogoutService registered to answer to.".into(),
        )
        .await;
    };
    let replay_key = format!(
        "saml-logout:{}",
        hex::encode(Sha256::digest(format!("{}\0{}", sp.entity_id, id)))
    );
    let remember = Duration::from_secs((REQUEST_MAX_AGE_SECS + 2 * skew).unsigned_abs());
    if !state
        .ephemeral
        .set_if_absent(&replay_key, b"1", remember)
        .await?
    {
        return refuse_sp("This sign-out request was already used.".into()).await;
    }

    // The browser's session, if this SP has an assertion in it for this NameID.
    let (code, text) = match session::current(state, &req).await? {
        // Already signed out: nothing left to end.
        None => (assertion::STATUS_SUCCESS, None),
        Some(current) => {
            let name_id = logout.name_id.as_ref().map(|n| n.value.trim());
            let indexes = session_indexes(&inbound.xml);
            let ours = session_index(&current.handle);
            let index_ok = indexes.is_empty() || indexes.contains(&ours);
            let key = participants_key(&current.handle);
            let participant = state
                .ephemeral
                .set_members(&key)
                .await?
                .iter()
                .filter_map(|m| serde_json::from_str::<Participant>(m).ok())
                .any(|p| p.sp == sp.entity_id && Some(p.name_id.as_str()) == name_id);
            if participant && index_ok {
                crate::oidc::logout::end_session(state, &current.user_id, &current.handle).await?;
                state.ephemeral.delete(&key).await?;
                state
                    .audit
                    .record(
                        AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                            .request(&ctx)
                            .subject(&current.user_id)
                            .org(&current.org_id)
                            .detail("reason", "saml_logout")
                            .detail("sp", sp.entity_id.as_str()),
                    )
                    .await?;
                (assertion::STATUS_SUCCESS, None)
            } else {
                (
                    STATUS_UNKNOWN_PRINCIPAL,
                    Some("The request does not name this browser's session."),
                )
            }
        }
    };

    let destination = endpoint
        .response_location
        .clone()
        .unwrap_or_else(|| endpoint.location.clone());
    let post = endpoint.binding == BINDING_POST;
    let xml = assertion::logout_response(
        &entity_id(state),
        &destination,
        &id,
        code,
        text,
        &state.saml_key,
        now,
        post,
    )?;
    if post {
        return Ok(post_page(
            &destination,
            "SAMLResponse",
            &assertion::encode(&xml),
            inbound.relay_state.as_deref(),
        ));
    }
    debug_assert_eq!(endpoint.binding, BINDING_REDIRECT);
    let location = redirect_location(&destination, &xml, inbound.relay_state.as_deref(), state)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The HTTP-Redirect binding (Bindings §3.4.4): DEFLATE, base64, and a query signature
/// (RSA-SHA256) over `SAMLResponse=…&RelayState=…&SigAlg=…`.
fn redirect_location(
    destination: &str,
    xml: &str,
    relay_state: Option<&str>,
    state: &AppState,
) -> Result<String, AppError> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut query = format!(
        "SAMLResponse={}",
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
    let key = openssl::pkey::PKey::private_key_from_pkcs8(state.saml_key.private_der())
        .map_err(internal)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
        .map_err(internal)?;
    signer.update(query.as_bytes()).map_err(internal)?;
    let signature = signer.sign_to_vec().map_err(internal)?;
    query.push_str(&format!("&Signature={}", enc(&STANDARD.encode(signature))));
    let separator = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{separator}{query}"))
}

/// The text of the request's `SessionIndex` elements (samael reads SessionIndex as an
/// attribute, which it is not). Only ever makes the match stricter.
fn session_indexes(xml: &str) -> Vec<String> {
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
