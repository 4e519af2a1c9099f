//! Inbound SAML protocol messages (AuthnRequest, LogoutRequest, LogoutResponse) over
//! HTTP-Redirect and HTTP-POST (SAML Bindings §3.4, §3.5): decoding behind the XML gate,
//! the sender's signature, and the one rule against signature wrapping — what is used is
//! the element xmlsec verified, and it must be the message itself.

use base64::{Engine, engine::general_purpose::STANDARD};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};

use super::xml::{self, MAX_MESSAGE_BYTES, XmlError};

/// Longest `SAMLRequest`/`SAMLResponse` parameter accepted, still encoded.
pub const MAX_ENCODED_BYTES: usize = MAX_MESSAGE_BYTES * 4 / 3 + 4;
/// Longest RelayState accepted. Bindings §3.4.3 says SPs keep it to 80 bytes; real ones
/// (deep links) are often longer, so some room, not unbounded.
pub const MAX_RELAY_STATE: usize = 1024;

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
    #[error("The SAML message is not a valid {0}.")]
    Parse(&'static str),
    #[error("The SAML message must be signed by the application, and it is not.")]
    Unsigned,
    #[error("The SAML message's signature is not valid.")]
    BadSignature,
    #[error("The signature algorithm of the SAML message is not accepted.")]
    Algorithm,
    #[error("The signed part of the SAML message is not the message itself.")]
    Wrapped,
}

impl From<XmlError> for MessageError {
    fn from(e: XmlError) -> Self {
        match e {
            XmlError::TooLarge => Self::TooLarge,
            other => Self::Xml(other),
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
}

/// Decodes `param` (`SAMLRequest` or `SAMLResponse`) from a query string (Redirect) or a
/// form body (POST). Sizes are checked before decoding, the XML gate before parsing.
pub fn decode(raw: &str, param: &str, binding: Binding) -> Result<Inbound, MessageError> {
    let mut message = None;
    let mut relay_state = None;
    let mut query_signed = false;
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            k if k == param => {
                if message.is_some() {
                    return Err(MessageError::Parse("message (it is sent twice)"));
                }
                message = Some(v.into_owned());
            }
            "RelayState" => {
                if v.len() > MAX_RELAY_STATE {
                    return Err(MessageError::TooLarge);
                }
                relay_state = Some(v.into_owned()).filter(|r| !r.is_empty());
            }
            "Signature" => query_signed = true,
            _ => {}
        }
    }
    let encoded = message.ok_or(MessageError::Missing)?;
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
    Ok(Inbound {
        xml,
        binding,
        relay_state,
        raw_query: (binding == Binding::Redirect).then(|| raw.to_owned()),
        query_signed: binding == Binding::Redirect && query_signed,
    })
}

/// The value of `name` in a query string exactly as sent (still percent-encoded).
fn raw_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn decoded(raw: &str) -> String {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Bindings §3.4.4.1: the signature covers `SAMLRequest=…&RelayState=…&SigAlg=…` exactly
/// as the sender encoded them (re-encoding could differ from theirs), in that order.
pub fn verify_query_signature(
    query: &str,
    param: &str,
    certs: &[Vec<u8>],
) -> Result<(), MessageError> {
    let message = raw_param(query, param).ok_or(MessageError::Missing)?;
    let sig_alg_raw = raw_param(query, "SigAlg").ok_or(MessageError::Unsigned)?;
    let signature_raw = raw_param(query, "Signature").ok_or(MessageError::Unsigned)?;
    let digest = match decoded(sig_alg_raw).as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            openssl::hash::MessageDigest::sha256()
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            openssl::hash::MessageDigest::sha384()
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            openssl::hash::MessageDigest::sha512()
        }
        _ => return Err(MessageError::Algorithm),
    };
    let mut signed = format!("{param}={message}");
    if let Some(relay) = raw_param(query, "RelayState") {
        signed.push_str("&RelayState=");
        signed.push_str(relay);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(sig_alg_raw);
    let signature = STANDARD
        .decode(decoded(signature_raw).trim())
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

/// Whether a signature element appears anywhere in the message (`<ds:Signature`, any
/// prefix), not only as the root's child: a signed element wrapped in an unsigned message
/// must not pass as an unsigned message.
pub fn has_xml_signature(xml: &str) -> bool {
    xml.contains(":Signature ") || xml.contains(":Signature>") || xml.contains("<Signature")
}

/// Verifies the enveloped signature(s) of `xml` against `certs` and returns the verified
/// element alone. The caller parses it and must check it is the message it was given
/// (same ID): if not — an unsigned wrapper around a signed element, or a signed sibling —
/// the signature says nothing about what it would act on ([`MessageError::Wrapped`]).
pub fn verified_element(xml: &str, certs: &[Vec<u8>]) -> Result<String, MessageError> {
    let certs: Vec<CertificateDer> = certs.iter().cloned().map(CertificateDer::from).collect();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(ALLOWED_XML),
    )
    .map_err(|_| MessageError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_anywhere_is_noticed_with_any_prefix() {
        assert!(has_xml_signature("<p:R><x><ds:Signature xmlns:ds=\"x\">"));
        assert!(has_xml_signature("<p:R><Signature>"));
        assert!(!has_xml_signature("<p:R><p:Issuer>Signature</p:Issuer>"));
    }

    #[test]
    fn raw_params_are_taken_as_sent() {
        let q = "SAMLRequest=a%2Bb&RelayState=x%20y&SigAlg=s&Signature=z";
        assert_eq!(raw_param(q, "SAMLRequest"), Some("a%2Bb"));
        assert_eq!(raw_param(q, "RelayState"), Some("x%20y"));
        assert_eq!(raw_param(q, "Relay"), None);
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
