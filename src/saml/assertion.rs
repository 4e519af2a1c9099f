//! Responses and assertions (DESIGN §10, SAML Core §2, Profiles §4.1.4.2).
//!
//! Built from `samael::schema` structs and signed with xmlsec (RSA-SHA256, SHA-256
//! digests, exclusive c14n). The assertion is signed on its own document first; the
//! Response then embeds its exact bytes (exclusive c14n makes the signature independent
//! of the surrounding namespaces) and, when the SP wants it, is signed in turn. With
//! encryption the signed assertion is encrypted (sign, then encrypt), so the SP can
//! check our signature after decrypting.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use samael::{
    attribute::{Attribute, AttributeValue},
    crypto::{CertificateDer, Crypto, CryptoProvider},
    schema::{
        Assertion, AttributeStatement, AudienceRestriction, AuthnContext, AuthnContextClassRef,
        AuthnStatement, Conditions, Issuer, Response, Status, StatusCode, StatusMessage, Subject,
        SubjectConfirmation, SubjectConfirmationData, SubjectNameID,
    },
    signature::{DigestAlgorithm, Signature},
    traits::ToXml,
};
use sha2::Sha256;

use super::{
    encrypt,
    keys::SamlKey,
    providers::{NameIdSource, ServiceProvider},
};
use crate::{auth::session, web::error::AppError};

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
const ATTRNAME_BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";

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
    pub auth_time: DateTime<Utc>,
    pub amr: &'a [String],
    pub session_index: &'a str,
    pub now: DateTime<Utc>,
    pub lifetime: Duration,
}

/// A SAML ID: starts with a letter (xsd:ID), 160 random bits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!("_{}", hex::encode(bytes))
}

/// The NameID value for `person` at `sp` (its format's source).
pub fn name_id(
    master_key: &crate::crypto::MasterKey,
    sp: &ServiceProvider,
    person: &Person,
) -> String {
    match sp.name_id_source {
        NameIdSource::Pairwise => {
            // HMAC keyed from the master key: stable for one SP, unlinkable across SPs.
            let key = master_key.derive("saml-pairwise-name-id");
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
                .expect("HMAC accepts any key length");
            mac.update(sp.entity_id.as_bytes());
            mac.update(&[0]);
            mac.update(person.user_id.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        NameIdSource::UserId => person.user_id.clone(),
        NameIdSource::Username => person.username.clone(),
        NameIdSource::Email => person.email.clone(),
        NameIdSource::Random => new_id(),
    }
}

fn attribute(name: &str, values: Vec<String>) -> Attribute {
    Attribute {
        friendly_name: None,
        name: Some(name.to_owned()),
        name_format: Some(
            if name.starts_with("urn:") {
                ATTRNAME_URI
            } else {
                ATTRNAME_BASIC
            }
            .to_owned(),
        ),
        values: values
            .into_iter()
            .map(|v| AttributeValue {
                attribute_type: Some("xs:string".to_owned()),
                value: Some(v),
            })
            .collect(),
    }
}

fn attributes(sp: &ServiceProvider, person: &Person) -> Vec<Attribute> {
    let mut out = Vec::new();
    for (field, name) in &sp.attributes {
        let values = match field.as_str() {
            "email" => vec![person.email.clone()],
            "name" => person.display_name.clone().into_iter().collect(),
            "username" => vec![person.username.clone()],
            "roles" => vec![person.role.clone()],
            "organisation" => vec![person.organisation.clone()],
            _ => Vec::new(),
        };
        if !values.is_empty() {
            out.push(attribute(name, values));
        }
    }
    out
}

fn issuer(value: &str) -> Issuer {
    Issuer {
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:entity".to_owned()),
        value: Some(value.to_owned()),
        ..Issuer::default()
    }
}

fn template(id: &str, key: &SamlKey) -> Signature {
    let mut signature = Signature::template(id, &CertificateDer::from(key.certificate.clone()));
    // samael's template digests with SHA-1 (STACK-NOTES); SAML deployments want SHA-256.
    for reference in &mut signature.signed_info.reference {
        reference.digest_method.algorithm = DigestAlgorithm::Sha256;
    }
    signature
}

fn xml_error(e: impl std::fmt::Debug) -> AppError {
    AppError::Internal(format!("SAML XML: {e:?}"))
}

fn strip_declaration(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest.find("?>").map_or(xml, |i| rest[i + 2..].trim_start()),
        None => xml,
    }
}

pub fn sign(xml: &str, key: &SamlKey) -> Result<String, AppError> {
    Crypto::sign_xml(xml, key.private_der()).map_err(xml_error)
}

/// The assertion (signed if the SP wants it), as XML without declaration.
pub fn assertion_xml(s: &Statement<'_>, key: &SamlKey) -> Result<String, AppError> {
    let id = new_id();
    let not_after = s.now + s.lifetime;
    let assertion = Assertion {
        id: id.clone(),
        issue_instant: s.now,
        version: "2.0".to_owned(),
        issuer: issuer(s.issuer),
        signature: s.sp.sign_assertion.then(|| template(&id, key)),
        subject: Some(Subject {
            name_id: Some(SubjectNameID {
                format: Some(s.sp.name_id_format.clone()),
                value: s.name_id.to_owned(),
            }),
            subject_confirmations: Some(vec![SubjectConfirmation {
                method: Some(BEARER.to_owned()),
                name_id: None,
                subject_confirmation_data: Some(SubjectConfirmationData {
                    not_before: None,
                    not_on_or_after: Some(not_after),
                    recipient: Some(s.acs_url.to_owned()),
                    in_response_to: s.in_response_to.map(str::to_owned),
                    address: None,
                    content: None,
                }),
            }]),
        }),
        conditions: Some(Conditions {
            // Clock skew is the SP's to allow; NotBefore is when we said it.
            not_before: Some(s.now),
            not_on_or_after: Some(not_after),
            audience_restrictions: Some(vec![AudienceRestriction {
                audience: vec![s.sp.entity_id.clone()],
            }]),
            one_time_use: None,
            proxy_restriction: None,
        }),
        authn_statements: Some(vec![AuthnStatement {
            authn_instant: Some(s.auth_time),
            session_index: Some(s.session_index.to_owned()),
            session_not_on_or_after: None,
            subject_locality: None,
            authn_context: Some(AuthnContext {
                value: Some(AuthnContextClassRef {
                    value: Some(authn_context(s.amr).to_owned()),
                }),
            }),
        }]),
        attribute_statements: {
            let list = attributes(s.sp, s.person);
            (!list.is_empty()).then(|| vec![AttributeStatement { attributes: list }])
        },
    };
    let xml = assertion.to_string().map_err(xml_error)?;
    let xml = if s.sp.sign_assertion {
        sign(&xml, key)?
    } else {
        xml
    };
    Ok(strip_declaration(&xml).to_owned())
}

/// A Response (signed if the SP wants it) carrying `inner` (an assertion or encrypted
/// assertion) or, for an error, only its status.
#[allow(clippy::too_many_arguments)]
fn response_xml(
    issuer_id: &str,
    sp: &ServiceProvider,
    destination: &str,
    in_response_to: Option<&str>,
    status: Status,
    sub_status: Option<&str>,
    inner: Option<&str>,
    key: &SamlKey,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let id = new_id();
    // An error Response carries no assertion: sign it, so the SP can trust the status.
    let signed = sp.sign_response || inner.is_none();
    let response = Response {
        id: id.clone(),
        in_response_to: in_response_to.map(str::to_owned),
        version: "2.0".to_owned(),
        issue_instant: now,
        destination: Some(destination.to_owned()),
        consent: None,
        issuer: Some(issuer(issuer_id)),
        signature: signed.then(|| template(&id, key)),
        status: Some(status),
        encrypted_assertion: None,
        assertion: None,
    };
    let mut xml = response.to_string().map_err(xml_error)?;
    if let (Some(sub), Some(code)) = (
        sub_status,
        &response
            .status
            .as_ref()
            .and_then(|s| s.status_code.value.clone()),
    ) {
        // samael's StatusCode has no child: nest the second-level code (Core §3.2.2.2)
        // before signing.
        let flat = format!(r#"<saml2p:StatusCode Value="{code}"/>"#);
        let nested = format!(
            r#"<saml2p:StatusCode Value="{code}"><saml2p:StatusCode Value="{sub}"/></saml2p:StatusCode>"#
        );
        if !xml.contains(&flat) {
            return Err(AppError::Internal(
                "SAML StatusCode not where expected".into(),
            ));
        }
        xml = xml.replacen(&flat, &nested, 1);
    }
    if let Some(inner) = inner {
        let end = "</saml2p:Response>";
        let at = xml
            .rfind(end)
            .ok_or_else(|| AppError::Internal("SAML Response without end tag".into()))?;
        xml.insert_str(at, inner);
    }
    if signed { sign(&xml, key) } else { Ok(xml) }
}

fn status(code: &str, message: Option<&str>) -> Status {
    Status {
        status_code: StatusCode {
            value: Some(code.to_owned()),
        },
        status_message: message.map(|m| StatusMessage {
            value: Some(m.to_owned()),
        }),
        status_detail: None,
    }
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
        encrypt::encrypted_assertion(assertion.as_bytes(), cert)?
    } else {
        assertion
    };
    response_xml(
        s.issuer,
        s.sp,
        s.acs_url,
        s.in_response_to,
        status(STATUS_SUCCESS, None),
        None,
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
        status(code, Some(message)),
        Some(sub),
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
    let response = samael::schema::LogoutResponse {
        id: Some(id.clone()),
        in_response_to: Some(in_response_to.to_owned()),
        version: Some("2.0".to_owned()),
        issue_instant: Some(now),
        destination: Some(destination.to_owned()),
        consent: None,
        issuer: Some(issuer(issuer_id)),
        signature: enveloped.then(|| template(&id, key)),
        status: Some(status(code, message)),
    };
    let mut xml = response.to_string().map_err(xml_error)?;
    if let Some(sub) = sub {
        // As in `response_xml`: samael's StatusCode has no child, so nest it before signing.
        let flat = format!(r#"<saml2p:StatusCode Value="{code}"/>"#);
        let nested = format!(
            r#"<saml2p:StatusCode Value="{code}"><saml2p:StatusCode Value="{sub}"/></saml2p:StatusCode>"#
        );
        if !xml.contains(&flat) {
            return Err(AppError::Internal(
                "SAML StatusCode not where expected".into(),
            ));
        }
        xml = xml.replacen(&flat, &nested, 1);
    }
    if enveloped { sign(&xml, key) } else { Ok(xml) }
}

/// Who a LogoutRequest is about, at one SP.
pub struct LogoutSubject<'a> {
    pub name_id: &'a str,
    pub format: &'a str,
    pub session_index: &'a str,
}

/// A LogoutRequest (Core §3.7.1) from the IdP to an SP's SingleLogoutService. Written out
/// here rather than with samael's struct, which puts SessionIndex before NameID (the
/// schema's sequence is NameID, then SessionIndex). Returns (ID, XML); with `enveloped`
/// the XML is signed (POST binding).
pub fn logout_request(
    issuer_id: &str,
    destination: &str,
    subject: &LogoutSubject<'_>,
    key: &SamlKey,
    now: DateTime<Utc>,
    lifetime: Duration,
    enveloped: bool,
) -> Result<(String, String), AppError> {
    use super::xml::escape;
    let id = new_id();
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let signature = if enveloped {
        template(&id, key).to_string().map_err(xml_error)?
    } else {
        String::new()
    };
    let xml = format!(
        r#"<saml2p:LogoutRequest xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{destination}" NotOnOrAfter="{until}"><saml2:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">{issuer}</saml2:Issuer>{signature}<saml2:NameID Format="{format}">{name_id}</saml2:NameID><saml2p:SessionIndex>{index}</saml2p:SessionIndex></saml2p:LogoutRequest>"#,
        now = at(now),
        until = at(now + lifetime),
        destination = escape(destination),
        issuer = escape(issuer_id),
        format = escape(subject.format),
        name_id = escape(subject.name_id),
        index = escape(subject.session_index),
    );
    let xml = if enveloped { sign(&xml, key)? } else { xml };
    Ok((id, strip_declaration(&xml).to_owned()))
}
