//! Inbound SAML protocol messages (AuthnRequest, LogoutRequest, LogoutResponse) over
//! HTTP-Redirect and HTTP-POST (SAML Bindings §3.4, §3.5): decoding behind the XML gate,
//! the sender's signature, and the one rule against signature wrapping — what is used is
//! the element xmlsec verified, and it must be the message itself.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use actix_web::{
    HttpRequest,
    http::{Method, StatusCode},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use tokio::sync::Semaphore;

use super::{
    dsig::{self, Shape, ShapeError},
    xml::{self, MAX_MESSAGE_BYTES, XmlError},
};

/// Longest `SAMLRequest`/`SAMLResponse` parameter accepted, still encoded.
pub const MAX_ENCODED_BYTES: usize = MAX_MESSAGE_BYTES * 4 / 3 + 4;
/// Longest RelayState accepted. Bindings §3.4.3 says SPs keep it to 80 bytes; real ones
/// (deep links) are often longer, so some room, not unbounded.
pub const MAX_RELAY_STATE: usize = 1024;
/// How long a signature verification may take before the message is answered 503. A
/// well-shaped message of at most [`MAX_MESSAGE_BYTES`] takes milliseconds; the deadline
/// is for a machine under load, never for fetching anything.
pub const VERIFY_DEADLINE: Duration = Duration::from_secs(2);
/// Verifications running at once, process-wide: what a flood can hold of the blocking
/// pool, whose threads libxmlsec cannot be made to give back.
const VERIFIERS: usize = 4;

static VERIFYING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(VERIFIERS)));

/// Signature algorithms accepted on requests: RSA with SHA-2 only (no SHA-1).
const ALLOWED_XML: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("The SAML message is missing.")]
    Missing,
    #[error("The SAML message is too large.")]
    TooLarge,
    #[error("The SAML message is not valid base64.")]
    Encoding,
    #[error("The SAML message was refused: {0}.")]
    Xml(XmlError),
    #[error("The SAML message was refused: {0}.")]
    Shape(ShapeError),
    #[error("The SAML message was refused: the parameter {0} is sent more than once.")]
    Repeated(String),
    #[error("The SAML message is not a valid {0}.")]
    Parse(&'static str),
    #[error("The SAML message must be signed by the application, and it is not.")]
    Unsigned,
    #[error("The SAML message's signature is not valid.")]
    BadSignature,
    #[error(
        "The SAML message was refused: signature algorithm {0} is not accepted; use RSA-SHA256."
    )]
    Algorithm(String),
    #[error("The signed part of the SAML message is not the message itself.")]
    Wrapped,
    #[error(
        "The SAML message is signed, but the application has no signing certificate registered with Gatehouse to check it."
    )]
    NoCertificate,
    #[error(
        "The SAML message was addressed to another endpoint (its Destination is not this one)."
    )]
    WrongDestination,
    #[error(
        "The SAML message is signed but names no Destination; a signed message must (SAML Bindings §3.4.5.2, §3.5.5.2)."
    )]
    NoDestination,
    #[error("Gatehouse could not check the SAML message's signature in time; please try again.")]
    Busy,
}

impl From<XmlError> for MessageError {
    fn from(e: XmlError) -> Self {
        match e {
            XmlError::TooLarge => Self::TooLarge,
            other => Self::Xml(other),
        }
    }
}

impl From<ShapeError> for MessageError {
    fn from(e: ShapeError) -> Self {
        match e {
            ShapeError::Algorithm(name) => Self::Algorithm(name),
            other => Self::Shape(other),
        }
    }
}

impl MessageError {
    /// 503 when the signature could not be checked in time (the sender may try again),
    /// 400 for everything the sender got wrong.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Redirect,
    Post,
}

/// A decoded message and how it came.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub xml: String,
    pub binding: Binding,
    pub relay_state: Option<String>,
    /// The raw query string (Redirect binding), for the query signature.
    pub raw_query: Option<String>,
    /// Whether the query carries `Signature` (Redirect binding).
    pub query_signed: bool,
    /// The message's structure, checked by [`dsig::inspect`].
    pub shape: Shape,
}

impl Inbound {
    /// Whether the message comes with a signature of its binding's kind (which is then
    /// always checked): the query's for Redirect, the enveloped one for POST.
    pub fn signed(&self) -> bool {
        match self.binding {
            Binding::Redirect => self.query_signed,
            Binding::Post => self.shape.signed,
        }
    }
}

/// One binding parameter as sent (`raw`, still percent-encoded) and decoded (`value`).
#[derive(Debug, Clone)]
struct Param {
    raw: String,
    value: String,
}

/// The binding's parameters, each present at most once.
#[derive(Debug, Default)]
struct Params {
    message: Option<Param>,
    relay_state: Option<Param>,
    sig_alg: Option<Param>,
    signature: Option<Param>,
}

/// Splits a query string or form body. A parameter that comes twice is refused rather
/// than picked: with two `RelayState`s the signature would cover one and the other would
/// be acted on. Names are compared decoded (`Relay%53tate` is `RelayState`), so the value
/// acted on is always the one the signed string is built from.
fn params(raw: &str, param: &str) -> Result<Params, MessageError> {
    let other = if param == "SAMLRequest" {
        "SAMLResponse"
    } else {
        "SAMLRequest"
    };
    let mut out = Params::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let Some((name, value)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
            continue;
        };
        let slot = match name.as_ref() {
            n if n == param => &mut out.message,
            "RelayState" => &mut out.relay_state,
            "SigAlg" => &mut out.sig_alg,
            "Signature" => &mut out.signature,
            n if n == other => {
                return Err(MessageError::Parse(
                    "message (it carries both SAMLRequest and SAMLResponse)",
                ));
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(MessageError::Repeated(name.into_owned()));
        }
        let raw_value = pair.split_once('=').map_or("", |(_, v)| v);
        *slot = Some(Param {
            raw: raw_value.to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(out)
}

/// What a refusal says of a request that is no SAML message in either binding.
pub const NOT_A_FORM: &str = "The request was not a form Gatehouse understands.";

/// The encoded message of a request and its binding: the query of a GET (HTTP-Redirect,
/// Bindings §3.4) or the form body of a POST (HTTP-POST, §3.5). None for a body that is
/// not text.
pub fn raw_message<'a>(req: &'a HttpRequest, body: &'a [u8]) -> Option<(&'a str, Binding)> {
    if req.method() == Method::POST {
        std::str::from_utf8(body)
            .ok()
            .map(|raw| (raw, Binding::Post))
    } else {
        Some((req.query_string(), Binding::Redirect))
    }
}

/// Decodes `param` (`SAMLRequest` or `SAMLResponse`) from a query string (Redirect) or a
/// form body (POST). Sizes are checked before decoding, the XML gate before parsing, and
/// the message's structure (and its signature's shape) before anything else reads it.
pub fn decode(raw: &str, param: &str, binding: Binding) -> Result<Inbound, MessageError> {
    let found = params(raw, param)?;
    let relay_state = match found.relay_state {
        Some(r) if r.value.len() > MAX_RELAY_STATE => return Err(MessageError::TooLarge),
        Some(r) => Some(r.value).filter(|r| !r.is_empty()),
        None => None,
    };
    let encoded = found.message.ok_or(MessageError::Missing)?.value;
    if encoded.len() > MAX_ENCODED_BYTES {
        return Err(MessageError::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| MessageError::Encoding)?;
    let xml = match binding {
        Binding::Redirect => xml::inflate(&bytes, MAX_MESSAGE_BYTES)?,
        Binding::Post => String::from_utf8(bytes)
            .map_err(|_| MessageError::Xml(XmlError::Malformed("not UTF-8".into())))?,
    };
    xml::check_untrusted(&xml, MAX_MESSAGE_BYTES)?;
    let shape = dsig::inspect(&xml)?;
    Ok(Inbound {
        xml,
        binding,
        relay_state,
        raw_query: (binding == Binding::Redirect).then(|| raw.to_owned()),
        query_signed: binding == Binding::Redirect && found.signature.is_some(),
        shape,
    })
}

/// Bindings §3.4.4.1: the signature covers `SAMLRequest=…&RelayState=…&SigAlg=…` exactly
/// as the sender encoded them (re-encoding could differ from theirs), in that order.
pub fn verify_query_signature(
    query: &str,
    param: &str,
    certs: &[Vec<u8>],
) -> Result<(), MessageError> {
    let found = params(query, param)?;
    let message = found.message.ok_or(MessageError::Missing)?;
    let sig_alg = found.sig_alg.ok_or(MessageError::Unsigned)?;
    let signature = found.signature.ok_or(MessageError::Unsigned)?;
    let digest = match sig_alg.value.as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            openssl::hash::MessageDigest::sha256()
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            openssl::hash::MessageDigest::sha384()
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            openssl::hash::MessageDigest::sha512()
        }
        other => {
            return Err(MessageError::Algorithm(
                other.chars().take(100).collect::<String>(),
            ));
        }
    };
    let mut signed = format!("{param}={}", message.raw);
    if let Some(relay) = &found.relay_state {
        signed.push_str("&RelayState=");
        signed.push_str(&relay.raw);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(&sig_alg.raw);
    let signature = STANDARD
        .decode(signature.value.trim())
        .map_err(|_| MessageError::BadSignature)?;
    for der in certs {
        let Ok(key) = openssl::x509::X509::from_der(der).and_then(|c| c.public_key()) else {
            continue;
        };
        let Ok(mut verifier) = openssl::sign::Verifier::new(digest, &key) else {
            continue;
        };
        if verifier.update(signed.as_bytes()).is_ok()
            && verifier.verify(&signature).unwrap_or(false)
        {
            return Ok(());
        }
    }
    Err(MessageError::BadSignature)
}

/// SAML Bindings §3.4.5.2 and §3.5.5.2: a signed message names its Destination, and a
/// Destination, whenever there is one, is this endpoint (`endpoint`, the issuer-based URL
/// of `/saml/sso` or `/saml/slo`): a message signed for another IdP is not replayed here.
pub fn check_destination(
    destination: Option<&str>,
    signed: bool,
    endpoint: &str,
) -> Result<(), MessageError> {
    match destination.map(str::trim) {
        Some(d) if d == endpoint => Ok(()),
        Some(_) => Err(MessageError::WrongDestination),
        None if signed => Err(MessageError::NoDestination),
        None => Ok(()),
    }
}

/// Verifies the enveloped signature of `xml` against `certs` and returns the verified
/// element alone. The caller parses it and must check it is the message it was given
/// (same ID): if not, the signature says nothing about what it would act on
/// ([`MessageError::Wrapped`]).
///
/// The only way to libxmlsec for inbound messages: the signature's shape is checked
/// first ([`dsig::inspect`]: nothing to fetch, no XSLT, no Manifest), only the registered
/// certificates verify (never a KeyInfo key), and the work runs on the blocking pool,
/// bounded and with a deadline, never on the request threads.
pub async fn verified_element(xml: &str, certs: &[Vec<u8>]) -> Result<String, MessageError> {
    if !dsig::inspect(xml)?.signed {
        return Err(MessageError::Unsigned);
    }
    if certs.is_empty() {
        return Err(MessageError::NoCertificate);
    }
    let xml = xml.to_owned();
    let certs: Vec<CertificateDer> = certs.iter().cloned().map(CertificateDer::from).collect();
    off_the_request_threads(VERIFY_DEADLINE, move || {
        Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            &xml,
            &certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(ALLOWED_XML),
        )
        .map_err(|_| MessageError::BadSignature)
    })
    .await
}

/// Runs `work` on the blocking pool, at most [`VERIFIERS`] at once, and answers
/// [`MessageError::Busy`] once `deadline` has passed. The work itself cannot be stopped:
/// it runs on, holding its permit, so a flood is bounded by the permits, not by threads.
async fn off_the_request_threads<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> Result<T, MessageError> + Send + 'static,
) -> Result<T, MessageError> {
    let span = tracing::Span::current();
    let run = async move {
        let permit = VERIFYING
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MessageError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .map_err(|_| MessageError::Busy)?
    };
    tokio::time::timeout(deadline, run)
        .await
        .unwrap_or_else(|_| {
            tracing::warn!("SAML signature verification passed its deadline");
            Err(MessageError::Busy)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_taken_as_sent_and_decoded() {
        let q = "SAMLRequest=a%2Bb&RelayState=x%20y&SigAlg=s&Signature=z";
        let p = params(q, "SAMLRequest").unwrap();
        let m = p.message.unwrap();
        assert_eq!((m.raw.as_str(), m.value.as_str()), ("a%2Bb", "a+b"));
        let r = p.relay_state.unwrap();
        assert_eq!((r.raw.as_str(), r.value.as_str()), ("x%20y", "x y"));
    }

    #[test]
    fn a_parameter_sent_twice_is_refused_however_its_name_is_spelt() {
        for q in [
            "SAMLRequest=a&RelayState=x&RelayState=y",
            "SAMLRequest=a&RelayState=x&Relay%53tate=y",
            "SAMLRequest=a&SAMLRequest=b",
            "SAMLRequest=a&SigAlg=s&SigAlg=t",
            "SAMLRequest=a&Signature=s&Signature=t",
        ] {
            assert!(
                matches!(params(q, "SAMLRequest"), Err(MessageError::Repeated(_))),
                "{q}"
            );
        }
        assert!(params("SAMLRequest=a&SAMLResponse=b", "SAMLRequest").is_err());
    }

    #[test]
    fn a_signed_message_must_name_this_endpoint() {
        let here = "https://idp.example/saml/sso";
        assert!(check_destination(Some(here), true, here).is_ok());
        assert!(check_destination(None, false, here).is_ok());
        assert_eq!(
            check_destination(None, true, here),
            Err(MessageError::NoDestination)
        );
        assert_eq!(
            check_destination(Some("https://other.example/saml/sso"), false, here),
            Err(MessageError::WrongDestination)
        );
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_answered_busy_and_never_waited_for() {
        let started = std::time::Instant::now();
        let slow = off_the_request_threads(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(1000));
            Ok(())
        });
        assert_eq!(slow.await, Err(MessageError::Busy));
        assert!(started.elapsed() < Duration::from_millis(900));
        let quick = off_the_request_threads(Duration::from_secs(5), || Ok(7));
        assert_eq!(quick.await, Ok(7));
    }

    #[test]
    fn oversize_messages_are_refused_before_decoding() {
        let huge = format!("SAMLRequest={}", "A".repeat(MAX_ENCODED_BYTES + 10));
        assert_eq!(
            decode(&huge, "SAMLRequest", Binding::Post).unwrap_err(),
            MessageError::TooLarge
        );
    }

    #[test]
    fn a_doctype_inside_the_message_is_refused() {
        let xml = r#"<!DOCTYPE x [<!ENTITY a "aaaa">]><samlp:AuthnRequest/>"#;
        let body = format!(
            "SAMLRequest={}",
            url::form_urlencoded::byte_serialize(STANDARD.encode(xml).as_bytes())
                .collect::<String>()
        );
        assert_eq!(
            decode(&body, "SAMLRequest", Binding::Post).unwrap_err(),
            MessageError::Xml(XmlError::Dtd)
        );
    }
}
