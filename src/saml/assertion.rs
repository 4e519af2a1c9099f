//! Responses and assertions (DESIGN §10, SAML Core §2, Profiles §4.1.4.2).
//!
//! Written with [`Element`] (every value escaped, DESIGN §10) and signed with xmlsec
//! (RSA-SHA256, SHA-256 digests, exclusive c14n). The assertion is signed on its own document first; the
//! Response then embeds its exact bytes (exclusive c14n makes the signature independent
//! of the surrounding namespaces) and, when the SP wants it, is signed in turn. With
//! encryption the signed assertion is encrypted (sign, then encrypt), so the SP can
//! check our signature after decrypting.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use samael::crypto::{Crypto, CryptoProvider};

use super::{
    attributes::{self, Released},
    encrypt,
    keys::SamlKey,
    providers::ServiceProvider,
    xml_writer::Element,
};
use crate::{
    auth::{
        emergency::{ACR_EMERGENCY, EmergencyWindow},
        session,
    },
    web::error::AppError,
};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_INVALID_NAMEID_POLICY: &str =
    "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";
pub const STATUS_NO_AUTHN_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext";

/// AuthnContextClassRef values (DESIGN §6): whether a second factor was used. The
/// REFEDS MFA profile is what SPs test for; a password sign-in over TLS is
/// PasswordProtectedTransport.
pub const AC_MFA: &str = "https://refeds.org/profile/mfa";
pub const AC_PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// The context class for the methods used.
pub fn authn_context(amr: &[String]) -> &'static str {
    if session::acr(amr) == session::ACR_MFA {
        AC_MFA
    } else {
        AC_PASSWORD
    }
}

/// Who the assertion is about, as the SP gets to see them.
#[derive(Debug, Clone)]
pub struct Person {
    pub user_id: String,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
    pub organisation: String,
}

/// Everything one assertion states.
pub struct Statement<'a> {
    pub issuer: &'a str,
    pub sp: &'a ServiceProvider,
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
    pub person: &'a Person,
    pub name_id: &'a str,
    /// The NameID's Format: the SP's own, or the one its request asked for
    /// (`name_id::for_request`).
    pub name_id_format: &'a str,
    /// The scope and pairwise identifier for scoped attributes.
    pub release: attributes::Context<'a>,
    pub auth_time: DateTime<Utc>,
    pub amr: &'a [String],
    pub session_index: &'a str,
    /// When the SSO session behind this assertion ends unless used again
    /// (`SessionNotOnOrAfter`): the SP's session must not outlive it.
    pub session_ends: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub lifetime: Duration,
    /// The open emergency window, when the SP asked for emergency access (DESIGN §15):
    /// the emergency class and its attributes.
    pub emergency: Option<&'a EmergencyWindow>,
}

/// The attributes that describe an emergency window (DESIGN §15), by URI name.
pub const ATTR_EMERGENCY_REASON: &str = "urn:gatehouse:attribute:emergency:reason";
pub const ATTR_EMERGENCY_STARTED: &str = "urn:gatehouse:attribute:emergency:started-at";
pub const ATTR_EMERGENCY_EXPIRES: &str = "urn:gatehouse:attribute:emergency:expires-at";
pub const ATTR_EMERGENCY_CONTEXT: &str = "urn:gatehouse:attribute:emergency:context";
const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";

fn emergency_attributes(window: &EmergencyWindow) -> Vec<Released> {
    let time = |t: i64| {
        DateTime::<Utc>::from_timestamp(t, 0)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let one = |name: &str, friendly: &'static str, value: String| Released {
        name: name.to_owned(),
        friendly_name: Some(friendly),
        name_format: ATTRNAME_URI,
        values: vec![value],
    };
    let mut list = vec![
        one(
            ATTR_EMERGENCY_REASON,
            "emergencyReason",
            window.reason.clone(),
        ),
        one(
            ATTR_EMERGENCY_STARTED,
            "emergencyStartedAt",
            time(window.started_at),
        ),
        one(
            ATTR_EMERGENCY_EXPIRES,
            "emergencyExpiresAt",
            time(window.expires_at),
        ),
    ];
    if let Some(context) = &window.context {
        list.push(one(
            ATTR_EMERGENCY_CONTEXT,
            "emergencyContext",
            context.clone(),
        ));
    }
    list
}

/// A SAML ID: starts with a letter (xsd:ID), 160 random bits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!("_{}", hex::encode(bytes))
}

const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const NAMEID_ENTITY: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `<saml2:Attribute>` (Core §2.7.3.1) with string values.
fn attribute(a: Released) -> Element {
    Element::new("saml2:Attribute")
        .attr("Name", a.name)
        .attr("NameFormat", a.name_format)
        .attr_opt("FriendlyName", a.friendly_name)
        .children(a.values.into_iter().map(|v| {
            Element::new("saml2:AttributeValue")
                .attr("xmlns:xs", "http://www.w3.org/2001/XMLSchema")
                .attr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
                .attr("xsi:type", "xs:string")
                .text(v)
        }))
}

fn issuer(value: &str) -> Element {
    Element::new("saml2:Issuer")
        .attr("Format", NAMEID_ENTITY)
        .text(value)
}

/// An enveloped-signature template over the element with ID `id`, for xmlsec to fill in:
/// RSA-SHA256 with SHA-256 digests (samael's own template digests with SHA-1,
/// STACK-NOTES), exclusive c14n, and our certificate.
pub(super) fn template(id: &str, key: &SamlKey) -> Element {
    let reference = Element::new("ds:Reference")
        .attr("URI", format!("#{id}"))
        .child(
            Element::new("ds:Transforms")
                .child(Element::new("ds:Transform").attr("Algorithm", ENVELOPED))
                .child(Element::new("ds:Transform").attr("Algorithm", EXC_C14N)),
        )
        .child(Element::new("ds:DigestMethod").attr("Algorithm", SHA256))
        .child(Element::new("ds:DigestValue").text(""));
    Element::new("ds:Signature")
        .attr("xmlns:ds", NS_DSIG)
        .child(
            Element::new("ds:SignedInfo")
                .child(Element::new("ds:CanonicalizationMethod").attr("Algorithm", EXC_C14N))
                .child(Element::new("ds:SignatureMethod").attr("Algorithm", RSA_SHA256))
                .child(reference),
        )
        .child(Element::new("ds:SignatureValue").text(""))
        .child(
            Element::new("ds:KeyInfo").child(
                Element::new("ds:X509Data")
                    .child(Element::new("ds:X509Certificate").text(key.certificate_base64())),
            ),
        )
}

fn xml_error(e: impl std::fmt::Debug) -> AppError {
    AppError::Internal(format!("SAML XML: {e:?}"))
}

/// The document's root element alone: without the XML declaration and the line end
/// libxml2 writes after it.
fn strip_declaration(xml: &str) -> &str {
    let root = match xml.strip_prefix("<?xml") {
        Some(rest) => rest.find("?>").map_or(xml, |i| &rest[i + 2..]),
        None => xml,
    };
    root.trim()
}

pub fn sign(xml: &str, key: &SamlKey) -> Result<String, AppError> {
    Crypto::sign_xml(xml, key.private_der()).map_err(xml_error)
}

/// The assertion (signed if the SP wants it), as XML without declaration.
pub fn assertion_xml(s: &Statement<'_>, key: &SamlKey) -> Result<String, AppError> {
    let id = new_id();
    let not_after = instant(s.now + s.lifetime);
    let subject = Element::new("saml2:Subject")
        .child(
            Element::new("saml2:NameID")
                .attr("Format", s.name_id_format)
                .text(s.name_id),
        )
        .child(
            Element::new("saml2:SubjectConfirmation")
                .attr("Method", BEARER)
                .child(
                    Element::new("saml2:SubjectConfirmationData")
                        .attr("NotOnOrAfter", not_after.as_str())
                        .attr("Recipient", s.acs_url)
                        .attr_opt("InResponseTo", s.in_response_to),
                ),
        );
    // Clock skew is the SP's to allow; NotBefore is when we said it.
    let conditions = Element::new("saml2:Conditions")
        .attr("NotBefore", instant(s.now))
        .attr("NotOnOrAfter", not_after.as_str())
        .child(
            Element::new("saml2:AudienceRestriction")
                .child(Element::new("saml2:Audience").text(s.sp.entity_id.as_str())),
        );
    let authn = Element::new("saml2:AuthnStatement")
        .attr("AuthnInstant", instant(s.auth_time))
        .attr("SessionIndex", s.session_index)
        .attr("SessionNotOnOrAfter", instant(s.session_ends))
        .child(Element::new("saml2:AuthnContext").child(
            Element::new("saml2:AuthnContextClassRef").text(match s.emergency {
                Some(_) => ACR_EMERGENCY,
                None => authn_context(s.amr),
            }),
        ));
    let mut released = attributes::release(&s.sp.attributes, s.person, &s.release);
    released.extend(s.emergency.map(emergency_attributes).unwrap_or_default());
    let list: Vec<Element> = released.into_iter().map(attribute).collect();
    let statement =
        (!list.is_empty()).then(|| Element::new("saml2:AttributeStatement").children(list));
    let xml = Element::new("saml2:Assertion")
        .attr("xmlns:saml2", NS_ASSERTION)
        .attr("ID", id.as_str())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(s.now))
        .child(issuer(s.issuer))
        .child_opt(s.sp.sign_assertion.then(|| template(&id, key)))
        .child(subject)
        .child(conditions)
        .child(authn)
        .child_opt(statement)
        .to_xml();
    let xml = if s.sp.sign_assertion {
        sign(&xml, key)?
    } else {
        xml
    };
    Ok(strip_declaration(&xml).to_owned())
}

/// `<saml2p:Status>` (Core §3.2.2): a top-level code, an optional second-level one nested
/// in it, and an optional message.
fn status(code: &str, sub: Option<&str>, message: Option<&str>) -> Element {
    Element::new("saml2p:Status")
        .child(
            Element::new("saml2p:StatusCode")
                .attr("Value", code)
                .child_opt(sub.map(|s| Element::new("saml2p:StatusCode").attr("Value", s))),
        )
        .child_opt(message.map(|m| Element::new("saml2p:StatusMessage").text(m)))
}

/// A Response (signed if the SP wants it) carrying `inner` (an assertion or encrypted
/// assertion) or, for an error, only its status.
#[allow(clippy::too_many_arguments)]
fn response_xml(
    issuer_id: &str,
    sp: &ServiceProvider,
    destination: &str,
    in_response_to: Option<&str>,
    status: Element,
    inner: Option<&str>,
    key: &SamlKey,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let id = new_id();
    // An error Response carries no assertion: sign it, so the SP can trust the status.
    let signed = sp.sign_response || inner.is_none();
    let mut xml = Element::new("saml2p:Response")
        .attr("xmlns:saml2p", NS_PROTOCOL)
        .attr("xmlns:saml2", NS_ASSERTION)
        .attr("ID", id.as_str())
        .attr_opt("InResponseTo", in_response_to)
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .child(issuer(issuer_id))
        .child_opt(signed.then(|| template(&id, key)))
        .child(status)
        .to_xml();
    if let Some(inner) = inner {
        // The one place XML is spliced rather than built: `inner` is our own assertion as
        // xmlsec signed (or we encrypted) it, and must go in byte for byte.
        let end = "</saml2p:Response>";
        let at = xml
            .rfind(end)
            .ok_or_else(|| AppError::Internal("SAML Response without end tag".into()))?;
        xml.insert_str(at, inner);
    }
    if signed { sign(&xml, key) } else { Ok(xml) }
}

/// A successful Response for `s`, encrypted per SP. Returns the XML.
pub fn success(s: &Statement<'_>, key: &SamlKey) -> Result<String, AppError> {
    let assertion = assertion_xml(s, key)?;
    let inner = if s.sp.encrypt_assertions {
        let cert = s.sp.encryption_certs.first().ok_or_else(|| {
            AppError::Internal(format!(
                "SP {} has no encryption certificate",
                s.sp.entity_id
            ))
        })?;
        encrypt::encrypted_assertion(&assertion, cert)?
    } else {
        assertion
    };
    response_xml(
        s.issuer,
        s.sp,
        s.acs_url,
        s.in_response_to,
        status(STATUS_SUCCESS, None, None),
        Some(&inner),
        key,
        s.now,
    )
}

/// An error Response (Core §3.2.2.2): `code` is a top-level status (Requester or
/// Responder), `sub` the second-level one (NoPassive, …).
#[allow(clippy::too_many_arguments)]
pub fn failure(
    issuer_id: &str,
    sp: &ServiceProvider,
    acs_url: &str,
    in_response_to: Option<&str>,
    code: &str,
    sub: &str,
    message: &str,
    key: &SamlKey,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    response_xml(
        issuer_id,
        sp,
        acs_url,
        in_response_to,
        status(code, Some(sub), Some(message)),
        None,
        key,
        now,
    )
}

/// base64 of the XML, as the POST binding carries it.
pub fn encode(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}

/// Second-level status of a LogoutResponse when not every session participant could be
/// told (Core §3.2.2.2).
pub const STATUS_PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

/// A LogoutResponse (Core §3.7.2) to `destination`, with an optional second-level status.
/// With `enveloped` it carries an XML signature (POST binding); the Redirect binding signs
/// the query instead.
#[allow(clippy::too_many_arguments)]
pub fn logout_response(
    issuer_id: &str,
    destination: &str,
    in_response_to: &str,
    code: &str,
    sub: Option<&str>,
    message: Option<&str>,
    key: &SamlKey,
    now: DateTime<Utc>,
    enveloped: bool,
) -> Result<String, AppError> {
    let id = new_id();
    let xml = Element::new("saml2p:LogoutResponse")
        .attr("xmlns:saml2p", NS_PROTOCOL)
        .attr("xmlns:saml2", NS_ASSERTION)
        .attr("ID", id.as_str())
        .attr("InResponseTo", in_response_to)
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .child(issuer(issuer_id))
        .child_opt(enveloped.then(|| template(&id, key)))
        .child(status(code, sub, message))
        .to_xml();
    if enveloped { sign(&xml, key) } else { Ok(xml) }
}

/// Who a LogoutRequest is about, at one SP.
pub struct LogoutSubject<'a> {
    pub name_id: &'a str,
    pub format: &'a str,
    pub session_index: &'a str,
}

/// A LogoutRequest (Core §3.7.1) from the IdP to an SP's SingleLogoutService, NameID
/// before SessionIndex as the schema's sequence has it. Returns (ID, XML); with
/// `enveloped` the XML is signed (POST binding).
pub fn logout_request(
    issuer_id: &str,
    destination: &str,
    subject: &LogoutSubject<'_>,
    key: &SamlKey,
    now: DateTime<Utc>,
    lifetime: Duration,
    enveloped: bool,
) -> Result<(String, String), AppError> {
    let id = new_id();
    let xml = Element::new("saml2p:LogoutRequest")
        .attr("xmlns:saml2p", NS_PROTOCOL)
        .attr("xmlns:saml2", NS_ASSERTION)
        .attr("ID", id.as_str())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("NotOnOrAfter", instant(now + lifetime))
        .child(issuer(issuer_id))
        .child_opt(enveloped.then(|| template(&id, key)))
        .child(
            Element::new("saml2:NameID")
                .attr("Format", subject.format)
                .text(subject.name_id),
        )
        .child(Element::new("saml2p:SessionIndex").text(subject.session_index))
        .to_xml();
    let xml = if enveloped { sign(&xml, key)? } else { xml };
    Ok((id, strip_declaration(&xml).to_owned()))
}
