//! Single Logout by the SOAP binding (SAML Bindings §3.2, Profiles §4.4.3.3), IdP to SP,
//! through the durable outbox (issue 24 item 5).
//!
//! An SP whose metadata publishes a `SingleLogoutService` with the SOAP binding is told
//! by the back channel of every IdP-started logout that has no browser to carry the
//! front channel: an administrator ending the user's sessions, a password reset or
//! change, ending another of one's sessions, a session found expired. It needs no
//! browser, it is confirmed by the SP's answer, and the outbox retries it until the SP
//! is up. When a browser is at hand (sign-out at Gatehouse or at another SP) an SP that
//! also has an HTTP-Redirect or HTTP-POST endpoint is told through it, in the browser's
//! chain ([`super::logout_chain`]), as before: that is how SAML SPs expect a signed-in
//! user to be logged out (their own cookies and pages go with it), and what a user
//! sees; an SP with only the SOAP endpoint is told by SOAP then too.
//!
//! The outbox row holds only what the request is built from (NameID, its format,
//! SessionIndex), sealed; each attempt signs a new LogoutRequest with a new ID and
//! `IssueInstant`, POSTs it in a SOAP 1.1 envelope, and reads the LogoutResponse as any
//! inbound SAML: bounded, no DTD, the signature's shape checked before libxmlsec (when
//! the SP signs it), from the SP's entity id, in response to this very request, status
//! Success. Anything else is retried until the outbox's deadline, then audited.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use quick_xml::{NsReader, events::Event, name::ResolveResult};
use samael::schema::LogoutResponse;
use serde::{Deserialize, Serialize};

use super::{
    acceptance::issuer_of,
    assertion::{self, LogoutSubject},
    dsig, entity_id,
    keys::SamlKeys,
    providers::{self, Endpoint, ServiceProvider, SpError},
    request,
    sso::{Participant, session_index},
    xml::{self, MAX_MESSAGE_BYTES},
};
use crate::{
    audit::{Audit, AuditEvent, EventType, Outcome},
    clock::SharedClock,
    mail::{Courier, Mailer, Undelivered},
    startup::AppState,
    store::{
        DbConnection, Store, StoreError, outbox::KIND_SAML_SOAP_LOGOUT,
        saml_soap_participants as soap_participants,
    },
};

pub const BINDING_SOAP: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Bindings §3.2.3.3: the SOAPAction a SAML requester may send.
const SOAP_ACTION: &str = "http://www.oasis-open.org/committees/security";
/// Life of our LogoutRequests (`NotOnOrAfter`): each attempt makes a new one.
const REQUEST_LIFETIME_SECS: i64 = 300;
/// An SP that accepts the connection but does not answer holds one outbox pass this long.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The SP's SingleLogoutService by the SOAP binding, if it publishes one.
pub fn soap_endpoint(sp: &ServiceProvider) -> Option<&Endpoint> {
    sp.slo.iter().find(|e| e.binding == BINDING_SOAP)
}

/// What a SOAP LogoutRequest is built from when it is delivered, queued sealed for the
/// SP named as the row's recipient.
#[derive(Serialize, Deserialize)]
struct LogoutFor {
    name_id: String,
    format: String,
    session_index: String,
    /// The person, for the audit trail; unknown for a session that ran out.
    user_id: Option<String>,
}

/// Whether the logout has a browser to carry the front channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    AtHand,
    Absent,
}

/// Queues a SOAP LogoutRequest for each of `participants` (the SPs of session `handle`)
/// that is to be told by SOAP (see the module's comment), and returns the others, for
/// the front channel or to be recorded as not told. The session's durable list
/// ([`super::lapsed`]) goes in the same transaction: whoever takes the session's SPs
/// tells them, so the sweep of lapsed sessions tells no one again.
pub async fn queue_logouts(
    state: &AppState,
    browser: Browser,
    user_id: Option<&str>,
    handle: &str,
    participants: Vec<Participant>,
) -> Result<Vec<Participant>, StoreError> {
    let (queued, rest) = split(state, browser, participants).await?;
    let rows = payloads(handle, user_id, queued)?;
    let (h, mailer, any) = (handle.to_owned(), state.mailer.clone(), !rows.is_empty());
    state
        .store
        .transaction(move |c| {
            soap_participants::delete_session(c, &h)?;
            for (sp, payload) in &rows {
                enqueue(c, &mailer, sp, payload)?;
            }
            Ok(())
        })
        .await?;
    if any {
        state.mailer.wake();
    }
    Ok(rest)
}

/// Queues the SOAP logouts of session `handle`, which ran out, for `listed` (its durable
/// list, read by the sweep): each row is claimed (deleted) in the transaction that queues
/// its logout, so of two instances sweeping at once one tells the SP. Returns how many
/// were queued.
pub async fn queue_lapsed(
    state: &AppState,
    user_id: Option<&str>,
    handle: &str,
    listed: Vec<Participant>,
) -> Result<usize, StoreError> {
    let (queued, _) = split(state, Browser::Absent, listed).await?;
    let rows = payloads(handle, user_id, queued)?;
    let (h, mailer) = (handle.to_owned(), state.mailer.clone());
    let sent = state
        .store
        .transaction(move |c| {
            let mut sent = 0;
            for (sp, payload) in &rows {
                if soap_participants::delete_one(c, &h, sp)? {
                    enqueue(c, &mailer, sp, payload)?;
                    sent += 1;
                }
            }
            // SPs that no longer publish a SOAP endpoint (or are gone) cannot be told.
            soap_participants::delete_session(c, &h)?;
            Ok(sent)
        })
        .await?;
    if sent > 0 {
        state.mailer.wake();
    }
    Ok(sent)
}

/// `participants` split into those told by SOAP and the others.
async fn split(
    state: &AppState,
    browser: Browser,
    participants: Vec<Participant>,
) -> Result<(Vec<Participant>, Vec<Participant>), StoreError> {
    let by_soap = |sp: &ServiceProvider| {
        soap_endpoint(sp).is_some() && (browser == Browser::Absent || sp.slo().is_none())
    };
    let mut queued = Vec::new();
    let mut rest = Vec::new();
    for p in participants {
        match providers::find(&state.store, &p.sp).await {
            Ok(Some(sp)) if by_soap(&sp) => queued.push(p),
            Err(SpError::Store(e)) => return Err(e),
            // Unknown or damaged SPs go on: the front channel records them as not told.
            Ok(_) | Err(_) => rest.push(p),
        }
    }
    Ok((queued, rest))
}

/// The outbox payload for each of `queued`: (SP, payload).
fn payloads(
    handle: &str,
    user_id: Option<&str>,
    queued: Vec<Participant>,
) -> Result<Vec<(String, String)>, StoreError> {
    let index = session_index(handle);
    queued
        .into_iter()
        .map(|p| {
            let payload = serde_json::to_string(&LogoutFor {
                name_id: p.name_id,
                format: p.format,
                session_index: index.clone(),
                user_id: user_id.map(str::to_owned),
            })
            .map_err(|e| StoreError::Query(e.to_string()))?;
            Ok((p.sp, payload))
        })
        .collect()
}

fn enqueue(
    c: &mut DbConnection,
    mailer: &Mailer,
    sp: &str,
    payload: &str,
) -> Result<(), StoreError> {
    mailer.enqueue_sealed(
        c,
        KIND_SAML_SOAP_LOGOUT,
        sp,
        "SAML logout (SOAP)",
        payload.as_bytes(),
    )?;
    Ok(())
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(ANSWER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds")
    })
}

/// Delivers the outbox's SOAP LogoutRequests.
pub struct SoapLogout {
    store: Store,
    keys: Arc<SamlKeys>,
    entity_id: String,
    clock: SharedClock,
    audit: Audit,
}

impl SoapLogout {
    pub fn new(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            keys: state.saml_keys.clone(),
            entity_id: entity_id(state),
            clock: state.clock.clone(),
            audit: state.audit.clone(),
        }
    }

    async fn audit(&self, sp: &str, what: &LogoutFor, outcome: Outcome, reason: &str) {
        let mut event = AuditEvent::new(EventType::SamlLogout, outcome)
            .detail("sp", sp)
            .detail("direction", "to_sp")
            .detail("binding", "soap")
            .detail("reason", reason);
        if let Some(user) = &what.user_id {
            event = event.subject(user);
        }
        if let Err(e) = self.audit.record(event).await {
            tracing::warn!(sp, error = %e, "could not record a SOAP logout");
        }
    }
}

#[async_trait::async_trait]
impl Courier for SoapLogout {
    async fn deliver(&self, entity: &str, payload: &[u8]) -> Result<(), Undelivered> {
        let what: LogoutFor = serde_json::from_slice(payload)
            .map_err(|_| Undelivered::permanent("the queued logout is damaged"))?;
        let sp = match providers::find(&self.store, entity).await {
            Ok(Some(sp)) => sp,
            Ok(None) => return Err(Undelivered::permanent("the SP is no longer registered")),
            Err(SpError::Store(e)) => return Err(Undelivered::transient(format!("database: {e}"))),
            Err(e) => return Err(Undelivered::permanent(e.to_string())),
        };
        // Read now: an SP that re-registered meanwhile is told where it is now.
        let Some(endpoint) = soap_endpoint(&sp) else {
            return Err(Undelivered::permanent(
                "the SP no longer publishes a SOAP SingleLogoutService",
            ));
        };
        let (request_id, envelope) = self.request(&endpoint.location, &what)?;
        let body = post(&endpoint.location, envelope).await?;
        check_answer(&body, &sp, &request_id)
            .await
            .map_err(|e| Undelivered::transient(format!("the SP's answer: {e}")))?;
        self.audit(entity, &what, Outcome::Success, "confirmed")
            .await;
        Ok(())
    }

    async fn gave_up(&self, entity: &str, payload: &[u8], error: &str) {
        if let Ok(what) = serde_json::from_slice::<LogoutFor>(payload) {
            let reason = format!("not_told: {error}");
            self.audit(entity, &what, Outcome::Failure, &reason).await;
        }
    }
}

impl SoapLogout {
    /// A new signed LogoutRequest for `destination` in a SOAP 1.1 envelope: (ID, envelope).
    fn request(
        &self,
        destination: &str,
        what: &LogoutFor,
    ) -> Result<(String, String), Undelivered> {
        let (id, xml) = assertion::logout_request(
            &self.entity_id,
            destination,
            &LogoutSubject {
                name_id: &what.name_id,
                format: &what.format,
                session_index: &what.session_index,
            },
            &self.keys.current(),
            self.clock.now(),
            chrono::Duration::seconds(REQUEST_LIFETIME_SECS),
            true,
        )
        .map_err(|e| Undelivered::transient(format!("signing the LogoutRequest: {e}")))?;
        // The request was written (and every value escaped) by the xml_writer; the
        // envelope around it is constant.
        let envelope = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soap11:Envelope xmlns:soap11="{SOAP_ENV_NS}"><soap11:Body>{xml}</soap11:Body></soap11:Envelope>"#
        );
        Ok((id, envelope))
    }
}

/// POSTs `envelope` (Bindings §3.2.3) and returns the answer's body, read up to
/// [`MAX_MESSAGE_BYTES`].
async fn post(location: &str, envelope: String) -> Result<String, Undelivered> {
    let mut res = http()
        .post(location)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", SOAP_ACTION)
        .header("cache-control", "no-cache, no-store")
        .body(envelope)
        .send()
        .await
        .map_err(|e| Undelivered::transient(format!("SOAP logout: {}", e.without_url())))?;
    // A SOAP fault comes with 500 (SOAP 1.1 §6.2): not confirmed, tried again.
    if !res.status().is_success() {
        return Err(Undelivered::transient(format!(
            "SOAP logout: the SP answered {}",
            res.status()
        )));
    }
    let too_large = || Undelivered::transient("the SP's answer is too large");
    if res
        .content_length()
        .is_some_and(|n| n > MAX_MESSAGE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| Undelivered::transient(format!("SOAP logout: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| Undelivered::transient("the SP's answer is not UTF-8"))
}

/// The SP's answer, checked: a LogoutResponse from `sp` to `request_id` saying Success,
/// its signature (if it has one) valid under the SP's registered certificate.
async fn check_answer(
    envelope: &str,
    sp: &ServiceProvider,
    request_id: &str,
) -> Result<(), String> {
    xml::check_untrusted(envelope, MAX_MESSAGE_BYTES).map_err(|e| e.to_string())?;
    let message = body_message(envelope)?;
    let shape = dsig::inspect(&message).map_err(|e| e.to_string())?;
    let unverified: LogoutResponse = message
        .parse()
        .map_err(|_| "the SOAP body is not a LogoutResponse".to_owned())?;
    // Bindings §3.2.2.x lets the transport vouch for a SOAP answer; a signature that is
    // there is always checked, so a forged Success cannot pass for a signing SP's.
    let response = if shape.signed {
        let verified: LogoutResponse = request::verified_element(&message, &sp.signing_certs)
            .await
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|_| "the signed LogoutResponse does not parse".to_owned())?;
        if verified.id != unverified.id {
            return Err("the signed part is not the LogoutResponse".into());
        }
        verified
    } else {
        unverified
    };
    if issuer_of(response.issuer.as_ref()).as_deref() != Some(sp.entity_id.as_str()) {
        return Err("the LogoutResponse is not from this SP (Issuer)".into());
    }
    if response.in_response_to.as_deref() != Some(request_id) {
        return Err("the LogoutResponse answers another request (InResponseTo)".into());
    }
    let code = response
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.clone())
        .unwrap_or_default();
    if code != assertion::STATUS_SUCCESS {
        return Err(format!("the SP answered status {}", truncate(&code)));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The one element in the envelope's Body, as a document of its own: the namespace
/// declarations it inherits from Envelope and Body are added to it (exclusive c14n
/// signs only the namespaces an element uses, so its signature is unchanged).
fn body_message(envelope: &str) -> Result<String, String> {
    let malformed =
        |e: &dyn std::fmt::Display| format!("the SOAP envelope is not well-formed: {e}");
    let mut reader = NsReader::from_str(envelope.trim_start_matches('\u{feff}'));
    let text = envelope.trim_start_matches('\u{feff}');
    let mut depth = 0usize;
    let mut in_body = false;
    let mut inherited: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::new();
    let mut found: Option<Found> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).map_err(|e| malformed(&e))?;
        let (ns, event) = reader.read_resolved_event().map_err(|e| malformed(&e))?;
        let soap = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SOAP_ENV_NS.as_bytes());
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name().as_ref().to_vec();
                let empty = matches!(event, Event::Empty(_));
                match depth {
                    0 if !(soap && local == b"Envelope") => {
                        return Err("the answer is not a SOAP 1.1 envelope".into());
                    }
                    1 if soap && local == b"Body" && !empty => {
                        in_body = true;
                        inherited = reader
                            .resolver()
                            .bindings()
                            .map(|(p, n)| (prefix_of(p), n.as_ref().to_vec()))
                            .collect();
                    }
                    2 if in_body => {
                        if found.is_some() {
                            return Err("the SOAP Body holds more than one element".into());
                        }
                        if soap && local == b"Fault" {
                            return Err("the SP answered with a SOAP fault".into());
                        }
                        found = Some(Found::new(e, before)?);
                    }
                    _ => {}
                }
                if empty {
                    if depth == 2
                        && in_body
                        && let Some(f) = found.as_mut()
                    {
                        f.end = Some(pos(&reader)?);
                    }
                } else {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 2
                    && in_body
                    && let Some(f) = found.as_mut()
                {
                    f.end.get_or_insert(pos(&reader)?);
                }
                if depth == 1 {
                    in_body = false;
                }
            }
            Event::DocType(_) => return Err("a document type declaration".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    let Some(found) = found else {
        return Err("the SOAP Body is empty".into());
    };
    found.standalone(text, &inherited)
}

fn pos(reader: &NsReader<&[u8]>) -> Result<usize, String> {
    usize::try_from(reader.buffer_position()).map_err(|e| e.to_string())
}

fn prefix_of(p: quick_xml::name::PrefixDeclaration<'_>) -> Option<Vec<u8>> {
    match p {
        quick_xml::name::PrefixDeclaration::Default => None,
        quick_xml::name::PrefixDeclaration::Named(n) => Some(n.to_vec()),
    }
}

/// Where the Body's element is in the envelope, and what it declares itself.
struct Found {
    start: usize,
    end: Option<usize>,
    /// Length of `<` + its qualified name.
    name_end: usize,
    declared: Vec<Option<Vec<u8>>>,
}

impl Found {
    fn new(e: &quick_xml::events::BytesStart<'_>, start: usize) -> Result<Self, String> {
        let mut declared = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| format!("the SOAP body's element: {e}"))?;
            if let Some(p) = a.key.as_namespace_binding() {
                declared.push(prefix_of(p));
            }
        }
        Ok(Self {
            start,
            end: None,
            name_end: 1 + e.name().as_ref().len(),
            declared,
        })
    }

    fn standalone(
        &self,
        text: &str,
        inherited: &[(Option<Vec<u8>>, Vec<u8>)],
    ) -> Result<String, String> {
        let end = self.end.ok_or("the SOAP body's element is not closed")?;
        let element = text
            .get(self.start..end)
            .ok_or("the SOAP body's element is not where it was read")?;
        let (head, tail) = element.split_at(self.name_end.min(element.len()));
        let mut out = String::with_capacity(element.len() + 200);
        out.push_str(head);
        for (prefix, ns) in inherited {
            if self.declared.contains(prefix) {
                continue;
            }
            let ns = std::str::from_utf8(ns).map_err(|_| "a namespace is not UTF-8")?;
            if ns.contains(['"', '<']) {
                return Err("a namespace name is not acceptable".into());
            }
            match prefix {
                None => out.push_str(&format!(r#" xmlns="{ns}""#)),
                Some(p) => {
                    let p = std::str::from_utf8(p).map_err(|_| "a prefix is not UTF-8")?;
                    out.push_str(&format!(r#" xmlns:{p}="{ns}""#));
                }
            }
        }
        out.push_str(tail);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<samlp:LogoutResponse ID="_r" Version="2.0" IssueInstant="2026-12-06T12:00:00Z" InResponseTo="_q"><saml:Issuer>https://sp.example.org</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#;

    fn envelope(inner: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><S:Envelope xmlns:S="{SOAP_ENV_NS}" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><S:Body xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{inner}</S:Body></S:Envelope>"#
        )
    }

    #[test]
    fn the_body_element_keeps_the_namespaces_it_inherits() {
        let message = body_message(&envelope(RESPONSE)).unwrap();
        assert!(message.starts_with("<samlp:LogoutResponse xmlns:"));
        assert!(message.contains(r#"xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol""#));
        assert!(message.contains(r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#));
        assert!(!message.contains("Envelope"));
        let parsed: LogoutResponse = message.parse().unwrap();
        assert_eq!(parsed.in_response_to.as_deref(), Some("_q"));
    }

    #[test]
    fn faults_empty_bodies_and_other_documents_are_refused() {
        let fault = envelope(r#"<S:Fault><faultcode>S:Server</faultcode></S:Fault>"#);
        assert!(body_message(&fault).unwrap_err().contains("fault"));
        assert!(body_message(&envelope("")).unwrap_err().contains("empty"));
        assert!(body_message(RESPONSE).unwrap_err().contains("not a SOAP"));
        let two = envelope(&format!("{RESPONSE}{RESPONSE}"));
        assert!(body_message(&two).unwrap_err().contains("more than one"));
        assert!(body_message("<S:Envelope xmlns:S=\"x\">").is_err());
    }
}
