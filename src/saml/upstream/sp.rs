//! Gatehouse as the SP of one connector: its stable URLs, the AuthnRequest it sends,
//! the metadata it publishes, and how an accepted assertion reads as an identity.

use chrono::SecondsFormat;
use samael::schema::Assertion;

use super::{envelope::NS_ASSERTION, envelope::NS_PROTOCOL, idp::UpstreamIdp};
use crate::{
    auth::upstream::{Connector, UpstreamIdentity},
    saml::{
        assertion,
        keys::SamlKey,
        providers::{BINDING_POST, BINDING_REDIRECT, NAMEID_PERSISTENT},
        xml_writer::Element,
    },
    startup::AppState,
    web::error::AppError,
};

/// Our entity id for connector `slug`: the URL of the metadata that describes it.
pub fn entity_id(state: &AppState, slug: &str) -> String {
    format!("{}/upstream/{slug}/saml/metadata", crate::saml::base(state))
}

/// Our AssertionConsumerService for connector `slug` (HTTP-POST).
pub fn acs_url(state: &AppState, slug: &str) -> String {
    format!("{}/upstream/{slug}/saml/acs", crate::saml::base(state))
}

/// Our SingleLogoutService for connector `slug` (HTTP-Redirect and HTTP-POST): the
/// upstream's LogoutRequests and its answers to ours.
pub fn slo_url(state: &AppState, slug: &str) -> String {
    format!("{}/upstream/{slug}/saml/slo", crate::saml::base(state))
}

/// Our LogoutRequest `id` (Core §3.7.1) to the upstream's SingleLogoutService
/// `destination`, for the person it knows as `name_id` (the persistent NameID it sent)
/// in its session `session_index`. With `enveloped` the XML carries its signature
/// (HTTP-POST); HTTP-Redirect signs the query instead.
#[allow(clippy::too_many_arguments)]
pub fn logout_request(
    state: &AppState,
    slug: &str,
    destination: &str,
    name_id: &str,
    session_index: Option<&str>,
    id: &str,
    key: &SamlKey,
    enveloped: bool,
) -> Result<String, AppError> {
    let now = state.clock.now();
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let xml = Element::new("samlp:LogoutRequest")
        .attr("xmlns:samlp", NS_PROTOCOL)
        .attr("xmlns:saml", NS_ASSERTION)
        .attr("ID", id)
        .attr("Version", "2.0")
        .attr("IssueInstant", at(now))
        .attr("Destination", destination)
        .attr(
            "NotOnOrAfter",
            at(now + chrono::Duration::seconds(LOGOUT_REQUEST_LIFETIME_SECS)),
        )
        .child(Element::new("saml:Issuer").text(entity_id(state, slug)))
        .child_opt(enveloped.then(|| assertion::template(id, key)))
        .child(
            Element::new("saml:NameID")
                .attr("Format", NAMEID_PERSISTENT)
                .text(name_id),
        )
        .child_opt(session_index.map(|i| Element::new("samlp:SessionIndex").text(i)))
        .to_xml();
    if enveloped {
        assertion::sign(&xml, key)
    } else {
        Ok(xml)
    }
}

/// How long our LogoutRequest may take to reach the upstream (`NotOnOrAfter`).
const LOGOUT_REQUEST_LIFETIME_SECS: i64 = 300;

/// The AuthnRequest `id` to `idp` (Core §3.4.1), sent by HTTP-Redirect and signed in
/// the query: answer by POST to our ACS, with a persistent NameID.
pub fn authn_request(
    state: &AppState,
    connector: &Connector,
    idp: &UpstreamIdp,
    id: &str,
) -> String {
    let slug = connector.slug.as_str();
    Element::new("samlp:AuthnRequest")
        .attr("xmlns:samlp", NS_PROTOCOL)
        .attr("xmlns:saml", NS_ASSERTION)
        .attr("ID", id)
        .attr("Version", "2.0")
        .attr(
            "IssueInstant",
            state
                .clock
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
        .attr("Destination", idp.sso_redirect.as_str())
        .attr("AssertionConsumerServiceURL", acs_url(state, slug))
        .attr("ProtocolBinding", BINDING_POST)
        .child(Element::new("saml:Issuer").text(entity_id(state, slug)))
        .child(
            Element::new("samlp:NameIDPolicy")
                .attr("Format", NAMEID_PERSISTENT)
                .attr("AllowCreate", "true"),
        )
        .to_xml()
}

/// AES-GCM first: CBC is open to padding oracles (XML Encryption 1.1 §5.2).
const ENCRYPTION_METHODS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// Our SPSSODescriptor for connector `slug` (Metadata §2.4.4): signed requests, signed
/// assertions wanted, Single Logout (Redirect and POST), the POST ACS, and our keys — every published certificate for
/// signing (the next one too, so a rotation goes unnoticed), the active one for
/// encryption.
pub fn metadata(state: &AppState, slug: &str) -> String {
    let set = state.saml_keys.set();
    let key = |usage: &'static str, cert: &str| {
        Element::new("md:KeyDescriptor")
            .attr("use", usage)
            .child(Element::new("ds:KeyInfo").child(
                Element::new("ds:X509Data").child(Element::new("ds:X509Certificate").text(cert)),
            ))
    };
    let signing = set
        .published_certificates()
        .iter()
        .map(|c| key("signing", c))
        .collect::<Vec<_>>();
    let encryption = key("encryption", &set.active().certificate_base64()).children(
        ENCRYPTION_METHODS
            .iter()
            .map(|a| Element::new("md:EncryptionMethod").attr("Algorithm", *a)),
    );
    Element::new("md:EntityDescriptor")
        .attr("xmlns:md", "urn:oasis:names:tc:SAML:2.0:metadata")
        .attr("xmlns:ds", "http://www.w3.org/2000/09/xmldsig#")
        .attr("entityID", entity_id(state, slug))
        .child(
            Element::new("md:SPSSODescriptor")
                .attr("protocolSupportEnumeration", NS_PROTOCOL)
                .attr("AuthnRequestsSigned", "true")
                .attr("WantAssertionsSigned", "true")
                .children(signing)
                .child(encryption)
                .children([BINDING_REDIRECT, BINDING_POST].map(|binding| {
                    Element::new("md:SingleLogoutService")
                        .attr("Binding", binding)
                        .attr("Location", slo_url(state, slug))
                }))
                .child(Element::new("md:NameIDFormat").text(NAMEID_PERSISTENT))
                .child(
                    Element::new("md:AssertionConsumerService")
                        .attr("Binding", BINDING_POST)
                        .attr("Location", acs_url(state, slug))
                        .attr("index", "0")
                        .attr("isDefault", "true"),
                ),
        )
        .to_xml()
}

/// Who the accepted assertion says signed in: the NameID as subject, attributes by the
/// connector's names (SAML attribute Names), the AuthnContextClassRef as `acr`. SAML
/// has no `amr`: whether the upstream did MFA is read from the class alone
/// (`mfa_acr_values`).
pub fn identity(connector: &Connector, a: &Assertion) -> UpstreamIdentity {
    let accounts = &connector.settings.accounts;
    let values = |name: &str| -> Vec<String> {
        a.attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter(|attr| attr.name.as_deref() == Some(name))
            .flat_map(|attr| attr.values.iter())
            .filter_map(|v| v.value.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 320)
            .take(256)
            .map(str::to_owned)
            .collect()
    };
    let first = |name: &str| values(name).into_iter().next();
    let subject = a
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim().to_owned())
        .unwrap_or_default();
    let acr = a
        .authn_statements
        .iter()
        .flatten()
        .filter_map(|s| s.authn_context.as_ref())
        .filter_map(|c| c.value.as_ref())
        .filter_map(|r| r.value.as_deref())
        .map(str::trim)
        .find(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned);
    UpstreamIdentity {
        subject,
        username: first(&accounts.username_claim),
        email: first(&accounts.email_claim),
        display_name: first(&accounts.name_claim),
        groups: accounts
            .groups_claim
            .as_deref()
            .map(values)
            .unwrap_or_default(),
        amr: Vec::new(),
        acr,
        // The upstream's SessionIndex, which its Single Logout would name.
        sid: a
            .authn_statements
            .iter()
            .flatten()
            .filter_map(|s| s.session_index.as_deref())
            .find(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_owned),
        fhir_user: accounts.fhir_user.as_ref().and_then(|m| first(&m.claim)),
    }
}
