//! The gate every piece of untrusted XML passes before any parser sees it (DESIGN §10):
//! a size limit, no DTD at all (so no external entities, no entity expansion), and
//! DEFLATE decoding with a bound on the output (no decompression bombs).

use std::io::Read;

/// Largest SAML protocol message accepted (AuthnRequest, LogoutRequest/Response), decoded.
/// Real ones are a few kilobytes, with a certificate in KeyInfo well under 16 KB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest metadata document accepted on import (federation aggregates are not imported).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML message is too large")]
    TooLarge,
    #[error("XML with a document type declaration (DTD) or entities is refused")]
    Dtd,
    #[error("the message is not well-formed XML: {0}")]
    Malformed(String),
}

/// Refuses oversize input and any DTD. SAML messages never need a DTD; refusing the
/// `<!DOCTYPE` (and any `<!ENTITY`) outright stops XXE and "billion laughs" before a
/// parser could expand anything, whatever its settings.
pub fn check_untrusted(xml: &str, max: usize) -> Result<(), XmlError> {
    if xml.len() > max {
        return Err(XmlError::TooLarge);
    }
    let upper = xml.to_ascii_uppercase();
    if upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY") {
        return Err(XmlError::Dtd);
    }
    if !xml
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
    {
        return Err(XmlError::Malformed(
            "it does not start with an element".into(),
        ));
    }
    Ok(())
}

/// Raw DEFLATE (HTTP-Redirect binding, SAML Bindings §3.4.4.1), stopping at `max` bytes.
pub fn inflate(data: &[u8], max: usize) -> Result<String, XmlError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| XmlError::Malformed("the request is not DEFLATE-compressed".into()))?;
    if out.len() > max {
        return Err(XmlError::TooLarge);
    }
    String::from_utf8(out).map_err(|_| XmlError::Malformed("not UTF-8".into()))
}

/// Raw DEFLATE, for messages we send by HTTP-Redirect.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Escapes text for an XML attribute value or text node.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doctype_is_refused_in_any_case() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(check_untrusted(xxe, 1024), Err(XmlError::Dtd));
        assert_eq!(
            check_untrusted("<!doctype r><r/>", 1024),
            Err(XmlError::Dtd)
        );
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let big = format!("<r>{}</r>", "a".repeat(100));
        assert_eq!(check_untrusted(&big, 50), Err(XmlError::TooLarge));
        assert!(check_untrusted(&big, 500).is_ok());
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let bomb = deflate(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        assert_eq!(inflate(&bomb, 1000), Err(XmlError::TooLarge));
        assert_eq!(inflate(&deflate(b"<r/>"), 1000).unwrap(), "<r/>");
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
