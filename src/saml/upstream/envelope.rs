//! A Response from an upstream IdP, read by a bounded pull parser before anything trusts
//! it: its one assertion (clear or encrypted) taken out as a document of its own, with
//! the namespaces its ancestors declared repeated on it, so that the signature check of
//! [`crate::saml::request::verified_element`] (shape first, then libxmlsec) sees exactly
//! the element that is then used. Exclusive c14n makes the assertion's signature
//! independent of where it sits.
//!
//! Refused here: anything but a `samlp:Response` at the root, an assertion anywhere but
//! directly in it, more than one, comments, CDATA or processing instructions inside it
//! (parser differentials), a DTD, hostile nesting.

use quick_xml::{
    NsReader, XmlVersion,
    events::{BytesStart, Event},
    name::ResolveResult,
};

use crate::saml::xml;

pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const MAX_DEPTH: usize = 32;

/// What the envelope holds.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// A `ds:Signature` is a child of the Response itself.
    pub response_signed: bool,
    /// Signature elements anywhere in the clear (an encrypted assertion's are hidden).
    pub signatures: usize,
    /// The one assertion, if any (an error Response has none).
    pub assertion: Option<Inner>,
}

/// The assertion, as a document of its own.
#[derive(Debug, Clone)]
pub struct Inner {
    pub encrypted: bool,
    pub xml: String,
    /// The namespace declarations in scope where it sat (its own included), for the
    /// plaintext of an encrypted assertion, which is read in that context.
    pub in_scope: Vec<(String, String)>,
}

type Pairs = Vec<(String, String)>;

fn bad(why: impl std::fmt::Display) -> String {
    format!("the Response is not acceptable XML: {why}")
}

/// An element's namespace declarations, as (attribute name, value).
fn declarations(e: &BytesStart) -> Result<Pairs, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(bad)?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(bad)?
                .into_owned();
            out.push((key, value));
        }
    }
    Ok(out)
}

/// `element` (one element's text) with the declarations of `inherited` it does not make
/// itself added to its start tag; inner declarations win over outer ones.
pub fn with_namespaces(element: &str, inherited: &[(String, String)]) -> Result<String, String> {
    let mut element = element.trim_start_matches('\u{feff}').trim();
    if let Some(rest) = element.strip_prefix("<?xml") {
        let end = rest
            .find("?>")
            .ok_or_else(|| bad("an unterminated declaration"))?;
        element = rest[end + 2..].trim_start();
    }
    if !element.starts_with('<') || element.starts_with("<!") || element.starts_with("<?") {
        return Err(bad("it does not start with an element"));
    }
    let mut reader = quick_xml::Reader::from_str(element);
    let own = match reader.read_event().map_err(bad)? {
        Event::Start(e) | Event::Empty(e) => declarations(&e)?,
        _ => return Err(bad("it does not start with an element")),
    };
    let name_end = element
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .ok_or_else(|| bad("an unterminated start tag"))?;
    let mut declared = String::new();
    let mut seen: Vec<&str> = own.iter().map(|(k, _)| k.as_str()).collect();
    for (key, value) in inherited.iter().rev() {
        if seen.contains(&key.as_str()) {
            continue;
        }
        seen.push(key);
        declared.push_str(&format!(" {key}=\"{}\"", xml::escape(value)));
    }
    Ok(format!(
        "{}{declared}{}",
        &element[..name_end],
        &element[name_end..]
    ))
}

struct Open {
    namespaces: Pairs,
    is_assertion: bool,
}

/// Reads the Response `text` (already through the XML gate).
pub fn read(text: &str) -> Result<Envelope, String> {
    let mut reader = NsReader::from_str(text);
    let mut open: Vec<Open> = Vec::new();
    let mut seen_root = false;
    let mut envelope = Envelope {
        response_signed: false,
        signatures: 0,
        assertion: None,
    };
    let mut assertions = 0usize;
    // (start offset, encrypted, namespaces in scope) of the assertion being read.
    let mut current: Option<(usize, bool, Pairs)> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader.read_resolved_event().map_err(bad)?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.0).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(bad("an undeclared prefix")),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                if open.is_empty() && seen_root {
                    return Err(bad("a second root element"));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(bad("elements nest too deep"));
                }
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() && (local != "Response" || ns.as_deref() != Some(NS_PROTOCOL)) {
                    return Err("the message is not a SAML Response".into());
                }
                seen_root = true;
                if local == "Signature" {
                    envelope.signatures += 1;
                    if open.len() == 1 && ns.as_deref() == Some(NS_DSIG) {
                        envelope.response_signed = true;
                    }
                }
                let namespaces = declarations(e)?;
                let is_assertion = ns.as_deref() == Some(NS_ASSERTION)
                    && matches!(local.as_str(), "Assertion" | "EncryptedAssertion");
                if is_assertion {
                    if open.len() != 1 {
                        return Err("an assertion is not directly in the Response".into());
                    }
                    assertions += 1;
                    if assertions > 1 {
                        return Err("the Response carries more than one assertion".into());
                    }
                    let mut in_scope: Pairs =
                        open.iter().flat_map(|o| o.namespaces.clone()).collect();
                    in_scope.extend(namespaces.clone());
                    current = Some((before, local == "EncryptedAssertion", in_scope));
                }
                if empty {
                    if is_assertion {
                        return Err("the assertion is empty".into());
                    }
                } else {
                    open.push(Open {
                        namespaces,
                        is_assertion,
                    });
                }
            }
            Event::End(_) => {
                let closed = open.pop();
                if closed.is_some_and(|o| o.is_assertion)
                    && let Some((start, encrypted, in_scope)) = current.take()
                {
                    let end = reader.buffer_position() as usize;
                    let element = text.get(start..end).ok_or_else(|| bad("offsets"))?;
                    let inherited: Pairs = open.iter().flat_map(|o| o.namespaces.clone()).collect();
                    envelope.assertion = Some(Inner {
                        encrypted,
                        xml: with_namespaces(element, &inherited)?,
                        in_scope,
                    });
                }
            }
            Event::Text(t) => {
                if open.is_empty() && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(bad("text outside the root element"));
                }
            }
            Event::GeneralRef(r) => {
                let predefined = matches!(&*r, b"amp" | b"lt" | b"gt" | b"quot" | b"apos");
                if open.is_empty() || !(predefined || r.is_char_ref()) {
                    return Err(bad("an undefined entity"));
                }
            }
            Event::Comment(_) | Event::CData(_) | Event::PI(_) => {
                if seen_root {
                    return Err(bad(
                        "comments, CDATA and processing instructions are not accepted in it",
                    ));
                }
            }
            Event::DocType(_) => return Err(bad("a document type declaration")),
            Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !open.is_empty() || !seen_root {
        return Err(bad("the message ends too early"));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r"><saml:Issuer>i</saml:Issuer><saml:Assertion ID="_a"><saml:Issuer>i</saml:Issuer></saml:Assertion></samlp:Response>"#;

    #[test]
    fn the_assertion_comes_out_with_the_namespaces_it_was_read_in() {
        let e = read(RESPONSE).unwrap();
        let inner = e.assertion.unwrap();
        assert!(!inner.encrypted);
        assert!(!e.response_signed);
        assert_eq!(
            inner.xml,
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_a"><saml:Issuer>i</saml:Issuer></saml:Assertion>"#
        );
    }

    #[test]
    fn a_second_or_nested_assertion_is_refused() {
        let two = RESPONSE.replace(
            "</samlp:Response>",
            r#"<saml:Assertion ID="_b"/></samlp:Response>"#,
        );
        assert!(read(&two).unwrap_err().contains("more than one"));
        let nested = RESPONSE
            .replace(
                "<saml:Issuer>i</saml:Issuer><saml:Assertion",
                "<saml:Issuer>i</saml:Issuer><samlp:Extensions><saml:Assertion",
            )
            .replace("</saml:Assertion>", "</saml:Assertion></samlp:Extensions>");
        assert!(read(&nested).unwrap_err().contains("not directly"));
    }

    #[test]
    fn comments_doctypes_and_other_roots_are_refused() {
        let comment = RESPONSE.replace(">i<", "><!---->i<");
        assert!(read(&comment).is_err());
        let doctype = format!("<!DOCTYPE x>{RESPONSE}");
        assert!(read(&doctype).is_err());
        let request = RESPONSE.replace("samlp:Response", "samlp:AuthnRequest");
        assert!(read(&request).is_err());
    }
}
