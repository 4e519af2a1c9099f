//! SP metadata from a URL, as federations publish it (issue 24 item 6): fetched over
//! HTTPS with bounds, checked against a pinned signing certificate, its `validUntil`
//! honoured, and one entity picked out of a federation aggregate.
//!
//! Fetching a URL an administrator typed is a server-side request: without rules it
//! probes the hospital network from inside (SSRF). So, unless `saml_metadata_allow_local`
//! is set: `https` only, every address the host resolves to must be public (no
//! loopback, private, link-local, shared or multicast ranges; checked on the resolved
//! addresses, so a DNS name pointing inside is refused too), and redirects only to
//! `https` on the same host. Always: at most [`MAX_METADATA_BYTES`], [`FETCH_TIMEOUT`].
//!
//! With a pinned certificate the document must carry one enveloped signature over its
//! root, by that certificate (the confined check of [`super::request::verified_element`]:
//! no URI, XSLT or Manifest reaches libxmlsec), and what is read afterwards is the element
//! that signature verified, never the document around it.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, NaiveDateTime, Utc};
use quick_xml::{NsReader, events::Event, name::ResolveResult};

use super::{
    providers::{MAX_ENTITY_ID_LEN, SpError},
    request::{self, MessageError},
    xml::{self, MAX_METADATA_BYTES},
};

/// Longest a fetch may take, connection to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_REDIRECTS: usize = 3;
const NS_METADATA: &[u8] = b"urn:oasis:names:tc:SAML:2.0:metadata";

/// What an administrator may point Gatehouse at.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Plain http and loopback or private addresses allowed (tests, a lab).
    pub allow_local: bool,
}

fn metadata(message: impl Into<String>) -> SpError {
    SpError::Metadata(message.into())
}

/// Whether `ip` is on the public internet (not loopback, private, link-local, shared
/// address space, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A resolver that answers only public addresses: the check happens on what is
/// connected to, so a name that resolves inside the network is refused.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks the URL an administrator gave against the policy.
pub fn check_url(raw: &str, policy: FetchPolicy) -> Result<url::Url, SpError> {
    let bad = |why: &str| SpError::Invalid {
        field: "url",
        reason: why.to_owned(),
    };
    if raw.len() > 2048 {
        return Err(bad("at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_local => {}
        _ => return Err(bad("metadata is fetched over https only")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are not accepted"));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(bad("the URL has no host")),
    };
    if !policy.allow_local && literal.is_some_and(|ip| !is_public(ip)) {
        return Err(bad(
            "the address is not public (loopback, private or link-local)",
        ));
    }
    Ok(url)
}

/// The error and every cause below it, for a message that says what really failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Fetches metadata from `url` under `policy`.
pub async fn fetch(url: &url::Url, policy: FetchPolicy) -> Result<String, SpError> {
    let origin = (url.scheme().to_owned(), url.host_str().map(str::to_owned));
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let same_host = attempt.url().host_str().map(str::to_owned) == origin.1;
        let secure = attempt.url().scheme() == "https" || attempt.url().scheme() == origin.0;
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if same_host && secure {
            attempt.follow()
        } else {
            attempt.error("redirected to another host or away from https")
        }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(redirects);
    if !policy.allow_local {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = builder.build().map_err(|e| metadata(chain(&e)))?;
    let failed = |e: reqwest::Error| metadata(format!("fetching it failed: {}", chain(&e)));
    let mut res = client.get(url.clone()).send().await.map_err(failed)?;
    if !res.status().is_success() {
        return Err(metadata(format!("fetching it answered {}", res.status())));
    }
    let too_large = || {
        metadata(format!(
            "the document is larger than {MAX_METADATA_BYTES} bytes"
        ))
    };
    if res
        .content_length()
        .is_some_and(|l| l > MAX_METADATA_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA_BYTES {
            return Err(too_large());
        }
    }
    String::from_utf8(body).map_err(|_| metadata("the document is not UTF-8"))
}

/// A pinned certificate as an administrator gives it (PEM, or base64 of the DER),
/// checked to be an X.509 certificate with an RSA key; returned as DER.
pub fn pinned_certificate(text: &str) -> Result<Vec<u8>, SpError> {
    let bad = |why: &str| SpError::Invalid {
        field: "pinned-cert",
        reason: why.to_owned(),
    };
    let cert = if text.contains("-----BEGIN") {
        openssl::x509::X509::from_pem(text.as_bytes()).map_err(|_| bad("not a PEM certificate"))?
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(compact)
            .map_err(|_| bad("neither PEM nor base64"))?;
        openssl::x509::X509::from_der(&der).map_err(|_| bad("not an X.509 certificate"))?
    };
    let key = cert.public_key().map_err(|_| bad("no public key"))?;
    if key.rsa().is_err() {
        return Err(bad("its key is not RSA (only RSA signatures are verified)"));
    }
    cert.to_der().map_err(|_| bad("not an X.509 certificate"))
}

/// One SP's metadata taken out of a fetched document.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The SP's `EntityDescriptor`, with the namespaces its ancestors declared.
    pub xml: String,
    pub entity_id: String,
    /// The earliest `validUntil` on the way to it (the aggregate's, the entity's).
    pub valid_until: Option<DateTime<Utc>>,
    /// The shortest `cacheDuration` on the way to it.
    pub cache_duration: Option<chrono::Duration>,
}

/// Checks a fetched document (size, DTD; the pinned signature when there is one) and
/// picks the entity `wanted` (or the document's only entity), refusing expired metadata.
pub async fn select(
    document: &str,
    pinned: Option<&[u8]>,
    wanted: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Selected, SpError> {
    xml::check_untrusted(document, MAX_METADATA_BYTES).map_err(|e| metadata(e.to_string()))?;
    let verified = match pinned {
        Some(cert) => request::verified_element(document, &[cert.to_vec()])
            .await
            .map_err(|e| match e {
                MessageError::Unsigned => metadata(
                    "it is not signed, and a pinned certificate is set: only metadata signed by it is accepted",
                ),
                MessageError::BadSignature => metadata(
                    "its signature does not verify with the pinned certificate",
                ),
                other => metadata(format!("its signature was refused: {other}")),
            })?,
        None => document.to_owned(),
    };
    let selected = walk(&verified, wanted)?;
    if let Some(until) = selected.valid_until
        && until <= now
    {
        return Err(metadata(format!(
            "it expired at {} (validUntil)",
            until.to_rfc3339()
        )));
    }
    Ok(selected)
}

/// `validUntil` and `cacheDuration` of one element (none for other elements).
type Limits = (Option<DateTime<Utc>>, Option<chrono::Duration>);

/// Where the wanted entity starts: byte offset, entity id, the namespaces its ancestors
/// declared, and how many elements enclose it.
struct Found {
    start: usize,
    entity_id: String,
    inherited: Pairs,
    depth: usize,
}

/// What the walk keeps of each open element.
struct Open {
    is_entity: bool,
    /// Its `xmlns…` declarations, as written.
    namespaces: Vec<(String, String)>,
}

type Pairs = Vec<(String, String)>;

/// An element's attributes and, apart, its namespace declarations.
fn attributes(e: &quick_xml::events::BytesStart) -> Result<(Pairs, Pairs), SpError> {
    let (mut attrs, mut namespaces) = (Vec::new(), Vec::new());
    for a in e.attributes() {
        let a = a.map_err(|e| metadata(format!("not well-formed XML: {e}")))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| metadata(format!("not well-formed XML: {e}")))?
            .into_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            namespaces.push((key, value));
        } else {
            attrs.push((key, value));
        }
    }
    Ok((attrs, namespaces))
}

/// The walk's state: what is open, the limits on the way, the entity being looked for.
struct Walker<'w> {
    wanted: Option<&'w str>,
    open: Vec<Open>,
    /// validUntil and cacheDuration of each open element, innermost last.
    limits: Vec<Limits>,
    entities: usize,
    found: Option<Found>,
}

impl Walker<'_> {
    /// An element starts at byte `start` (`empty`: it closes itself).
    fn start(
        &mut self,
        e: &quick_xml::events::BytesStart,
        in_md: bool,
        start: usize,
        empty: bool,
    ) -> Result<(), SpError> {
        let local = e.local_name();
        let local = local.as_ref();
        let is_md = in_md && matches!(local, b"EntityDescriptor" | b"EntitiesDescriptor");
        if self.open.is_empty() && !is_md {
            return Err(metadata(
                "the document is neither an EntityDescriptor nor an EntitiesDescriptor",
            ));
        }
        let (attrs, namespaces) = attributes(e)?;
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        self.limits.push(if is_md {
            (
                attr("validUntil").map(parse_instant).transpose()?,
                attr("cacheDuration").and_then(parse_duration),
            )
        } else {
            (None, None)
        });
        let entity = in_md && local == b"EntityDescriptor";
        self.entities += usize::from(entity);
        // Only the first entity that matches is taken.
        let is_entity = entity && self.found.is_none();
        if is_entity {
            let id = attr("entityID").unwrap_or_default().to_owned();
            if self.wanted.is_none_or(|w| w == id) {
                self.found = Some(Found {
                    start,
                    entity_id: id,
                    inherited: self
                        .open
                        .iter()
                        .flat_map(|o| o.namespaces.clone())
                        .collect(),
                    depth: self.open.len(),
                });
            }
        }
        if empty {
            self.limits.pop();
        } else {
            self.open.push(Open {
                is_entity,
                namespaces,
            });
        }
        Ok(())
    }

    /// An element ends at byte `end`: the wanted entity, when it is the one ending.
    fn end(&mut self, xml_text: &str, end: usize) -> Result<Option<Selected>, SpError> {
        let closed = self.open.pop();
        let mut selected = None;
        if let (Some(o), Some(f)) = (&closed, &self.found)
            && o.is_entity
            && self.open.len() == f.depth
        {
            let element = &xml_text[f.start..end];
            selected = Some(entity(element, &f.entity_id, &f.inherited, &self.limits)?);
        }
        self.limits.pop();
        Ok(selected)
    }
}

/// Finds the wanted `EntityDescriptor` (any depth of `EntitiesDescriptor`s).
fn walk(xml_text: &str, wanted: Option<&str>) -> Result<Selected, SpError> {
    let mut reader = NsReader::from_str(xml_text);
    let mut walker = Walker {
        wanted,
        open: Vec::new(),
        limits: Vec::new(),
        entities: 0,
        found: None,
    };
    let mut result: Option<Selected> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| metadata(format!("not well-formed XML: {e}")))?;
        let in_md = matches!(ns, ResolveResult::Bound(n) if n.0 == NS_METADATA);
        match event {
            Event::Start(ref e) => walker.start(e, in_md, before, false)?,
            Event::Empty(ref e) => walker.start(e, in_md, before, true)?,
            Event::End(_) => {
                let ended = walker.end(xml_text, reader.buffer_position() as usize)?;
                result = result.or(ended);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if wanted.is_none() && walker.entities > 1 {
        return Err(metadata(
            "it is an aggregate of several entities: name the one to import (entity id)",
        ));
    }
    match (result, wanted) {
        (Some(s), _) => Ok(s),
        (None, Some(w)) => Err(metadata(format!("it has no EntityDescriptor for {w}"))),
        (None, None) => Err(metadata("it has no EntityDescriptor")),
    }
}

/// The entity's element, made a document of its own: the namespace declarations its
/// ancestors made are repeated on it (inner ones win), so it reads the same alone.
fn entity(
    element: &str,
    entity_id: &str,
    inherited: &[(String, String)],
    limits: &[Limits],
) -> Result<Selected, SpError> {
    if entity_id.is_empty() || entity_id.len() > MAX_ENTITY_ID_LEN {
        return Err(metadata("the EntityDescriptor has no usable entityID"));
    }
    let name_end = element
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(element.len());
    let own = &element[..element.find('>').unwrap_or(element.len())];
    let mut declared = String::new();
    let mut seen = Vec::new();
    for (key, value) in inherited.iter().rev() {
        if seen.contains(key) || own.contains(&format!("{key}=")) {
            continue;
        }
        seen.push(key.clone());
        declared.push_str(&format!(" {key}=\"{}\"", xml::escape(value)));
    }
    let xml = format!("{}{declared}{}", &element[..name_end], &element[name_end..]);
    Ok(Selected {
        xml,
        entity_id: entity_id.to_owned(),
        valid_until: limits.iter().filter_map(|l| l.0).min(),
        cache_duration: limits.iter().filter_map(|l| l.1).min(),
    })
}

/// An `xs:dateTime`; one without a zone is read as UTC (as Shibboleth does).
fn parse_instant(text: &str) -> Result<DateTime<Utc>, SpError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| metadata(format!("validUntil {text:?} is not a dateTime")))
}

/// An `xs:duration` of days, hours, minutes and seconds (`PT1H`, `P1DT6H`); years and
/// months (whose length varies) or anything else unreadable is ignored.
fn parse_duration(text: &str) -> Option<chrono::Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0f64;
    for (part, units) in [
        (days, &[('D', 86_400f64)][..]),
        (time, &[('H', 3600f64), ('M', 60f64), ('S', 1f64)][..]),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let (_, seconds) = units.iter().find(|(u, _)| *u == c)?;
            total += number.parse::<f64>().ok()? * seconds;
            number.clear();
        }
        if !number.is_empty() {
            return None;
        }
    }
    (total > 0.0 && total < 1e9).then(|| chrono::Duration::seconds(total as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

    fn aggregate(inner_until: &str) -> String {
        format!(
            r#"<md:EntitiesDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" validUntil="2030-01-01T00:00:00Z" cacheDuration="PT6H"><md:EntityDescriptor entityID="https://a.example/sp"><md:SPSSODescriptor/></md:EntityDescriptor><md:EntitiesDescriptor Name="inner"><md:EntityDescriptor entityID="https://b.example/sp" validUntil="{inner_until}" cacheDuration="PT30M"><md:SPSSODescriptor/></md:EntityDescriptor></md:EntitiesDescriptor></md:EntitiesDescriptor>"#
        )
    }

    #[test]
    fn an_entity_is_picked_out_of_an_aggregate_with_its_namespaces_and_tightest_limits() {
        let doc = aggregate("2029-01-01T00:00:00Z");
        let s = walk(&doc, Some("https://b.example/sp")).unwrap();
        assert!(s.xml.starts_with(&format!(
            r#"<md:EntityDescriptor xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:md="{MD}" entityID="https://b.example/sp""#
        )), "{}", s.xml);
        assert!(s.xml.ends_with("</md:EntityDescriptor>"));
        assert_eq!(
            s.valid_until.unwrap().to_rfc3339(),
            "2029-01-01T00:00:00+00:00"
        );
        assert_eq!(s.cache_duration, Some(chrono::Duration::minutes(30)));
        let a = walk(&doc, Some("https://a.example/sp")).unwrap();
        assert_eq!(a.cache_duration, Some(chrono::Duration::hours(6)));
        assert_eq!(
            a.valid_until.unwrap().to_rfc3339(),
            "2030-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn an_aggregate_needs_an_entity_named_and_an_absent_one_is_said() {
        let doc = aggregate("2029-01-01T00:00:00Z");
        assert!(
            walk(&doc, None)
                .unwrap_err()
                .to_string()
                .contains("name the one")
        );
        assert!(
            walk(&doc, Some("https://c.example/sp"))
                .unwrap_err()
                .to_string()
                .contains("no EntityDescriptor for https://c.example/sp")
        );
        let other_root = format!(r#"<x:Foo xmlns:x="{MD}x"/>"#);
        assert!(walk(&other_root, None).is_err());
    }

    #[tokio::test]
    async fn expired_metadata_is_refused() {
        let doc = aggregate("2020-01-01T00:00:00Z");
        let err = select(&doc, None, Some("https://b.example/sp"), Utc::now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expired at 2020-01-01"), "{err}");
        assert!(
            select(&doc, None, Some("https://a.example/sp"), Utc::now())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn unsigned_metadata_is_refused_when_a_certificate_is_pinned() {
        let doc = aggregate("2029-01-01T00:00:00Z");
        let err = select(
            &doc,
            Some(&[1, 2, 3]),
            Some("https://a.example/sp"),
            Utc::now(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("not signed"), "{err}");
    }

    #[test]
    fn durations_read_as_federations_write_them() {
        assert_eq!(parse_duration("PT1H"), Some(chrono::Duration::hours(1)));
        assert_eq!(parse_duration("P1DT6H"), Some(chrono::Duration::hours(30)));
        assert_eq!(
            parse_duration("PT6H0M0.000S"),
            Some(chrono::Duration::hours(6))
        );
        assert_eq!(parse_duration("P1M"), None);
        assert_eq!(parse_duration("nonsense"), None);
    }

    #[test]
    fn only_public_addresses_pass_unless_local_is_allowed() {
        let strict = FetchPolicy { allow_local: false };
        for url in [
            "http://sp.example/md",
            "https://127.0.0.1/md",
            "https://10.1.2.3/md",
            "https://169.254.169.254/latest",
            "https://[::1]/md",
            "https://[fd00::1]/md",
            "https://[::ffff:192.168.0.1]/md",
            "https://user:pw@sp.example/md",
            "file:///etc/passwd",
        ] {
            assert!(check_url(url, strict).is_err(), "{url}");
        }
        assert!(check_url("https://sp.example/md", strict).is_ok());
        assert!(check_url("https://8.8.8.8/md", strict).is_ok());
        let lab = FetchPolicy { allow_local: true };
        assert!(check_url("http://127.0.0.1:8080/md", lab).is_ok());
        assert!(check_url("ftp://127.0.0.1/md", lab).is_err());
    }
}
