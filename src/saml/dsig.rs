//! The shape an inbound message and its XML signature must have before libxmlsec sees
//! it (DESIGN §10).
//!
//! libxmlsec, as samael drives it, dereferences any `<ds:Reference URI>` (http, file),
//! runs any transform a message names (XSLT, XPath) and honours `Manifest`s — all before
//! the SignatureValue is checked, that is before anything is known about the sender. So
//! a message is read here first, by a bounded pull parser, and refused unless its one
//! signature is an enveloped signature over the message itself: a child of the root
//! element, one Reference to `#` + the root's (unique) ID, only the enveloped-signature
//! and exclusive-c14n transforms, SHA-2 algorithms, no Object, Manifest or
//! RetrievalMethod. KeyInfo may be there; it is never used (only the registered
//! certificate verifies). Nothing else ever reaches libxmlsec.
//!
//! The same read refuses what lets two parsers see two different messages: comments or
//! CDATA inside the message (a comment splits `admin@example.org<!---->.evil` into two
//! texts that parsers join differently, while exclusive c14n drops it from the digest),
//! duplicated IDs or attributes, an encoding other than UTF-8, a second root.

use std::collections::HashSet;

use quick_xml::{
    NsReader, XmlVersion,
    events::{BytesStart, Event},
    name::ResolveResult,
};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// RSA with SHA-2, as `request::ALLOWED_XML` tells samael; what the metadata publishes.
pub const SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
];
pub const DIGEST_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// KeyInfo content that is tolerated (and ignored). `RetrievalMethod` (a URL to fetch),
/// `EncryptedKey` or `AgreementMethod` are not.
const KEY_INFO_CHILDREN: &[&str] = &["X509Data", "KeyName", "KeyValue"];
/// SAML protocol messages are a few levels deep; this only bounds hostile nesting.
const MAX_DEPTH: usize = 32;
/// How much of a sender-chosen value an error message repeats.
const QUOTE_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the message is not well-formed XML ({0})")]
    Malformed(String),
    #[error("its elements nest more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("comments, CDATA sections and processing instructions are not accepted inside it")]
    Markup,
    #[error("its XML declaration names the encoding {0}; only UTF-8 is accepted")]
    Encoding(String),
    #[error("the attribute {0} appears twice on one element")]
    DuplicateAttribute(String),
    #[error("the ID {0} is carried by more than one element")]
    DuplicateId(String),
    #[error(
        "it carries {0} signatures; one signature, over the whole message, is what is accepted"
    )]
    SignatureCount(usize),
    #[error("the signature is not valid: what it signs is not the message itself ({0})")]
    NotTheMessage(String),
    #[error("signature algorithm {0} is not accepted; use RSA-SHA256")]
    Algorithm(String),
    #[error("digest algorithm {0} is not accepted; use SHA-256")]
    Digest(String),
    #[error(
        "the signature's transform {0} is not accepted; only enveloped-signature and exclusive c14n are"
    )]
    Transform(String),
    #[error(
        "the signature's canonicalization {0} is not accepted; only exclusive c14n (without comments) is"
    )]
    Canonicalization(String),
    #[error(
        "the signature's reference {0} is not accepted; only a same-document reference to the message (\"#\" and its ID) is"
    )]
    Reference(String),
    #[error("{0} is not accepted in a signature")]
    Element(String),
}

/// What the read found, for the caller's decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Whether the message carries a (well-shaped) enveloped signature.
    pub signed: bool,
}

/// Reads `xml` (already through [`super::xml::check_untrusted`]) and checks the message's
/// structure, and its signature's shape when it has one.
pub fn inspect(xml: &str) -> Result<Shape, ShapeError> {
    let doc = Document::parse(xml)?;
    for e in &doc.elements {
        if e.is_dsig("Object") || e.is_dsig("Manifest") || e.is_dsig("RetrievalMethod") {
            return Err(ShapeError::Element(format!("ds:{}", e.local)));
        }
    }
    // Any element called Signature counts, whatever its namespace: one that a reader
    // might take for a signature and another might not is already one too many.
    let signatures: Vec<usize> = (0..doc.elements.len())
        .filter(|&i| doc.elements[i].local == "Signature")
        .collect();
    match signatures.as_slice() {
        [] => Ok(Shape { signed: false }),
        [one] => {
            doc.check_signature(*one)?;
            Ok(Shape { signed: true })
        }
        more => Err(ShapeError::SignatureCount(more.len())),
    }
}

fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(QUOTE_MAX).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// An ID as xmlsec and samael accept one (an NCName), ASCII only.
fn is_ncname(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// An element's namespace; an undeclared prefix is refused (libxml2 would guess).
fn namespace(ns: ResolveResult) -> Result<Option<String>, ShapeError> {
    match ns {
        ResolveResult::Bound(n) => Ok(Some(String::from_utf8_lossy(n.0).into_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => Err(ShapeError::Malformed(format!(
            "the prefix {} is not declared",
            quote(&String::from_utf8_lossy(&p))
        ))),
    }
}

fn malformed(e: &dyn std::fmt::Display) -> ShapeError {
    ShapeError::Malformed(e.to_string())
}

/// An element's attributes, namespace declarations left out. Two with one local name
/// (`ID` and `x:ID`) are refused, and so is an ID value already seen in `ids`.
fn attributes(
    e: &BytesStart,
    ids: &mut HashSet<String>,
) -> Result<Vec<(String, String)>, ShapeError> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    // Duplicates are found below, by local name whatever the prefix.
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| malformed(&e))?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let local = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| malformed(&e))?
            .into_owned();
        if attrs.iter().any(|(l, _)| *l == local) {
            return Err(ShapeError::DuplicateAttribute(quote(&local)));
        }
        // xmlsec resolves `#x` by any attribute the document calls an ID.
        if local.eq_ignore_ascii_case("id") && !ids.insert(value.clone()) {
            return Err(ShapeError::DuplicateId(quote(&value)));
        }
        attrs.push((local, value));
    }
    Ok(attrs)
}

struct Element {
    ns: Option<String>,
    local: String,
    parent: Option<usize>,
    children: Vec<usize>,
    /// (local name, value): prefixes dropped, since libxml2's `xmlGetProp` (which xmlsec
    /// uses for `URI` and `Algorithm`) finds an attribute whatever its prefix.
    attrs: Vec<(String, String)>,
}

impl Element {
    fn is_dsig(&self, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(DSIG_NS)
    }

    fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(name, _)| name == local)
            .map(|(_, v)| v.as_str())
    }
}

struct Document {
    /// In document order; the root is the first.
    elements: Vec<Element>,
}

impl Document {
    fn parse(xml: &str) -> Result<Self, ShapeError> {
        let mut reader = NsReader::from_str(xml.trim_start_matches('\u{feff}'));
        let mut elements: Vec<Element> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut ids = HashSet::new();
        loop {
            let (ns, event) = reader.read_resolved_event().map_err(|e| malformed(&e))?;
            let ns = namespace(ns)?;
            let inside = !open.is_empty();
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    if !inside && !elements.is_empty() {
                        return Err(ShapeError::Malformed("a second root element".into()));
                    }
                    if open.len() >= MAX_DEPTH {
                        return Err(ShapeError::TooDeep);
                    }
                    let attrs = attributes(e, &mut ids)?;
                    let index = elements.len();
                    let parent = open.last().copied();
                    if let Some(p) = parent {
                        elements[p].children.push(index);
                    }
                    elements.push(Element {
                        ns,
                        local: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                        parent,
                        children: Vec::new(),
                        attrs,
                    });
                    if matches!(event, Event::Start(_)) {
                        open.push(index);
                    }
                }
                Event::End(_) => {
                    open.pop();
                }
                Event::Text(t) => {
                    if !inside && !t.iter().all(u8::is_ascii_whitespace) {
                        return Err(ShapeError::Malformed(
                            "text outside the root element".into(),
                        ));
                    }
                }
                Event::GeneralRef(r) => {
                    let predefined = matches!(&*r, b"amp" | b"lt" | b"gt" | b"quot" | b"apos");
                    if !inside || !(predefined || r.is_char_ref()) {
                        return Err(ShapeError::Malformed("an undefined entity".into()));
                    }
                }
                Event::Comment(_) | Event::CData(_) | Event::PI(_) => {
                    if inside || !elements.is_empty() {
                        return Err(ShapeError::Markup);
                    }
                }
                Event::Decl(d) => {
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|e| malformed(&e))?;
                        if !enc.eq_ignore_ascii_case(b"utf-8") {
                            return Err(ShapeError::Encoding(quote(&String::from_utf8_lossy(
                                &enc,
                            ))));
                        }
                    }
                }
                Event::DocType(_) => {
                    return Err(ShapeError::Malformed("a document type declaration".into()));
                }
                Event::Eof => break,
            }
        }
        if !open.is_empty() || elements.is_empty() {
            return Err(ShapeError::Malformed("the message ends too early".into()));
        }
        Ok(Self { elements })
    }

    fn children<'a>(&'a self, of: usize) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements[of]
            .children
            .iter()
            .map(|&c| &self.elements[c])
    }

    fn dsig_children(&self, of: usize, local: &str) -> Vec<usize> {
        self.elements[of]
            .children
            .iter()
            .copied()
            .filter(|&c| self.elements[c].is_dsig(local))
            .collect()
    }

    /// The one child of `of` called `local` in the dsig namespace.
    fn only_child(&self, of: usize, local: &str) -> Result<usize, ShapeError> {
        match self.dsig_children(of, local).as_slice() {
            [one] => Ok(*one),
            [] => Err(ShapeError::Element(format!(
                "a signature without ds:{local}"
            ))),
            _ => Err(ShapeError::Element(format!("more than one ds:{local}"))),
        }
    }

    /// Every child of `of` must be a dsig element named in `allowed`.
    fn children_among(&self, of: usize, allowed: &[&str]) -> Result<(), ShapeError> {
        match self
            .children(of)
            .find(|c| c.ns.as_deref() != Some(DSIG_NS) || !allowed.contains(&c.local.as_str()))
        {
            Some(c) => Err(ShapeError::Element(quote(&c.local))),
            None => Ok(()),
        }
    }

    fn check_signature(&self, sig: usize) -> Result<(), ShapeError> {
        let root = &self.elements[0];
        let signature = &self.elements[sig];
        if signature.ns.as_deref() != Some(DSIG_NS) {
            return Err(ShapeError::Element(format!(
                "a Signature element in the namespace {}",
                quote(signature.ns.as_deref().unwrap_or(""))
            )));
        }
        // Signature wrapping: a signature anywhere but directly in the message vouches for
        // some other element than the one that would be acted on.
        if signature.parent != Some(0) {
            return Err(ShapeError::NotTheMessage(
                "the Signature is not a child of the message's root element".into(),
            ));
        }
        let Some(root_id) = root.attr("ID").filter(|id| is_ncname(id)) else {
            return Err(ShapeError::NotTheMessage(
                "the message has no valid ID".into(),
            ));
        };
        self.children_among(sig, &["SignedInfo", "SignatureValue", "KeyInfo"])?;
        let signed_info = self.only_child(sig, "SignedInfo")?;
        self.only_child(sig, "SignatureValue")?;
        match self.dsig_children(sig, "KeyInfo").as_slice() {
            [] => {}
            [key_info] => self.children_among(*key_info, KEY_INFO_CHILDREN)?,
            _ => return Err(ShapeError::Element("more than one ds:KeyInfo".into())),
        }
        self.children_among(
            signed_info,
            &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        )?;
        let c14n = self.only_child(signed_info, "CanonicalizationMethod")?;
        let c14n_alg = self.elements[c14n].attr("Algorithm").unwrap_or("");
        if c14n_alg != EXC_C14N {
            return Err(ShapeError::Canonicalization(quote(c14n_alg)));
        }
        self.inclusive_namespaces_only(c14n)?;
        let method = self.only_child(signed_info, "SignatureMethod")?;
        let method_alg = self.elements[method].attr("Algorithm").unwrap_or("");
        if !SIGNATURE_METHODS.contains(&method_alg) {
            return Err(ShapeError::Algorithm(method_alg.to_owned()));
        }
        // No HMACOutputLength or anything else under it.
        self.children_among(method, &[])?;
        let reference = self.only_child(signed_info, "Reference")?;
        self.check_reference(reference, root_id)
    }

    fn check_reference(&self, reference: usize, root_id: &str) -> Result<(), ShapeError> {
        let r = &self.elements[reference];
        if let Some(kind) = r.attr("Type") {
            return Err(ShapeError::Element(format!(
                "a Reference of Type {}",
                quote(kind)
            )));
        }
        let uri = r.attr("URI").unwrap_or("");
        if uri.strip_prefix('#') != Some(root_id) {
            let names_another = uri.strip_prefix('#').is_some_and(|id| {
                self.elements.iter().any(|e| {
                    e.attrs
                        .iter()
                        .any(|(l, v)| l.eq_ignore_ascii_case("id") && v == id)
                })
            });
            return Err(if names_another {
                ShapeError::NotTheMessage(format!(
                    "it references {}, and the message's ID is {}",
                    quote(uri),
                    quote(root_id)
                ))
            } else {
                ShapeError::Reference(quote(uri))
            });
        }
        self.children_among(reference, &["Transforms", "DigestMethod", "DigestValue"])?;
        self.only_child(reference, "DigestValue")?;
        let digest = self.only_child(reference, "DigestMethod")?;
        let digest_alg = self.elements[digest].attr("Algorithm").unwrap_or("");
        if !DIGEST_METHODS.contains(&digest_alg) {
            return Err(ShapeError::Digest(digest_alg.to_owned()));
        }
        let transforms = self.dsig_children(reference, "Transforms");
        if transforms.len() > 1 {
            return Err(ShapeError::Element("more than one ds:Transforms".into()));
        }
        let mut seen = HashSet::new();
        for &list in &transforms {
            self.children_among(list, &["Transform"])?;
            for &t in &self.elements[list].children {
                let alg = self.elements[t].attr("Algorithm").unwrap_or("");
                if !(alg == ENVELOPED || alg == EXC_C14N) || !seen.insert(alg) {
                    return Err(ShapeError::Transform(quote(alg)));
                }
                // An XPath or XSLT body is refused with its transform; exc-c14n may name
                // its InclusiveNamespaces, the enveloped transform nothing at all.
                if alg == ENVELOPED {
                    if let Some(c) = self.children(t).next() {
                        return Err(ShapeError::Element(quote(&c.local)));
                    }
                } else {
                    self.inclusive_namespaces_only(t)?;
                }
            }
        }
        Ok(())
    }

    fn inclusive_namespaces_only(&self, of: usize) -> Result<(), ShapeError> {
        match self
            .children(of)
            .find(|c| c.local != "InclusiveNamespaces" || c.ns.as_deref() != Some(EXC_C14N))
        {
            Some(c) => Err(ShapeError::Element(quote(&c.local))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNATURE: &str = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_r"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##;

    fn message(signature: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0"><saml:Issuer>https://sp.example/</saml:Issuer>{signature}</samlp:AuthnRequest>"#
        )
    }

    #[test]
    fn an_enveloped_signature_over_the_message_passes() {
        assert_eq!(inspect(&message(SIGNATURE)), Ok(Shape { signed: true }));
        assert_eq!(inspect(&message("")), Ok(Shape { signed: false }));
    }

    #[test]
    fn a_signature_is_noticed_anywhere_with_any_prefix() {
        let nested = message(&format!(
            "<samlp:Extensions>{}</samlp:Extensions>",
            SIGNATURE
                .replace("ds:", "x:")
                .replace("xmlns:ds", "xmlns:x")
        ));
        assert!(matches!(
            inspect(&nested),
            Err(ShapeError::NotTheMessage(_))
        ));
        let default_ns = message(&SIGNATURE.replace("ds:", "").replace("xmlns:ds", "xmlns"));
        assert_eq!(inspect(&default_ns), Ok(Shape { signed: true }));
        // The word in text is not a signature.
        let text = message("").replace("https://sp.example/", "Signature");
        assert_eq!(inspect(&text), Ok(Shape { signed: false }));
    }

    #[test]
    fn a_reference_that_leaves_the_document_is_refused() {
        for uri in [
            "http://127.0.0.1:9/x",
            "file:///etc/passwd",
            "",
            "#xpointer(/)",
            "#xpointer(id('_r'))",
            "#_other",
        ] {
            let xml = message(&SIGNATURE.replace("URI=\"#_r\"", &format!("URI=\"{uri}\"")));
            assert!(
                matches!(inspect(&xml), Err(ShapeError::Reference(_))),
                "{uri}: {:?}",
                inspect(&xml)
            );
        }
        let prefixed = message(&SIGNATURE.replace("URI=\"#_r\"", "ds:URI=\"#_r\""));
        assert!(
            inspect(&prefixed).is_ok(),
            "xmlGetProp ignores the prefix too"
        );
    }

    #[test]
    fn only_the_two_transforms_are_accepted() {
        let xslt = SIGNATURE.replace(
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"><x/></ds:Transform>",
        );
        assert!(matches!(
            inspect(&message(&xslt)),
            Err(ShapeError::Transform(t)) if t.contains("xslt")
        ));
        let body = SIGNATURE.replace(
            "#enveloped-signature\"/>",
            "#enveloped-signature\"><ds:XPath>/</ds:XPath></ds:Transform>",
        );
        assert!(matches!(
            inspect(&message(&body)),
            Err(ShapeError::Element(_))
        ));
    }

    #[test]
    fn refused_algorithms_are_named() {
        let sha1 = SIGNATURE.replace(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        );
        let err = inspect(&message(&sha1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature algorithm http://www.w3.org/2000/09/xmldsig#rsa-sha1 is not accepted; use RSA-SHA256"
        );
        let digest = SIGNATURE.replace(
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        );
        assert!(
            inspect(&message(&digest))
                .unwrap_err()
                .to_string()
                .contains("xmldsig#sha1")
        );
    }

    #[test]
    fn objects_manifests_and_retrieval_methods_are_refused() {
        let object = SIGNATURE.replace("</ds:Signature>", "<ds:Object/></ds:Signature>");
        let retrieval = SIGNATURE.replace(
            "<ds:X509Data>",
            "<ds:RetrievalMethod URI=\"http://127.0.0.1:9/k\"/><ds:X509Data>",
        );
        let manifest = message("").replace(
            "</samlp:AuthnRequest>",
            "<ds:Manifest xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></samlp:AuthnRequest>",
        );
        for xml in [message(&object), message(&retrieval), manifest] {
            assert!(
                matches!(inspect(&xml), Err(ShapeError::Element(_))),
                "{xml}"
            );
        }
    }

    #[test]
    fn parser_differentials_are_refused() {
        let comment = message("").replace("sp.example/", "sp.example<!---->/");
        assert_eq!(inspect(&comment), Err(ShapeError::Markup));
        let cdata = message("").replace("sp.example/", "<![CDATA[sp.example/]]>");
        assert_eq!(inspect(&cdata), Err(ShapeError::Markup));
        let twice = message("").replace("Version=\"2.0\"", "Version=\"2.0\" saml:Version=\"1\"");
        assert!(matches!(
            inspect(&twice),
            Err(ShapeError::DuplicateAttribute(_))
        ));
        let same_id = message("<samlp:Extensions><x ID=\"_r\"/></samlp:Extensions>");
        assert!(matches!(inspect(&same_id), Err(ShapeError::DuplicateId(_))));
        let utf7 = message("").replace("UTF-8", "UTF-7");
        assert!(matches!(inspect(&utf7), Err(ShapeError::Encoding(_))));
        let two_roots = format!("{}<x/>", message(""));
        assert!(matches!(inspect(&two_roots), Err(ShapeError::Malformed(_))));
        let truncated = &message(SIGNATURE)[..300];
        assert!(matches!(inspect(truncated), Err(ShapeError::Malformed(_))));
        let deep = format!(
            "<r ID=\"_r\">{}{}</r>",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(inspect(&deep), Err(ShapeError::TooDeep));
    }

    #[test]
    fn two_signatures_are_refused() {
        let two = message(&format!("{SIGNATURE}{SIGNATURE}"));
        assert_eq!(inspect(&two), Err(ShapeError::SignatureCount(2)));
    }
}
