//! `/saml/metadata`: the IdP's EntityDescriptor (SAML Metadata §2.4.3).
//!
//! The signing certificate is published with `use="signing"`: an SP that reads a
//! KeyDescriptor without `use` as "encryption too" would otherwise try to encrypt
//! requests to us (a failure field users report against other IdPs).
//!
//! The algorithms a signed request may use are published too (SAML V2.0 Metadata Profile
//! for Algorithm Support): SPs that read them (Shibboleth SP 3 does) sign with one of
//! them instead of their own default, which for Shibboleth's POST requests is RSA-SHA1.

use actix_web::{HttpResponse, get, http::header, web};

use super::{
    attributes,
    dsig::{DIGEST_METHODS, SIGNATURE_METHODS},
    entity_id,
    providers::{BINDING_POST, BINDING_REDIRECT, NAMEID_FORMATS},
    sso_url,
    xml_writer::Element,
};
use crate::startup::AppState;

pub const CONTENT_TYPE: &str = "application/samlmetadata+xml";
pub const NS_ALGSUPPORT: &str = "urn:oasis:names:tc:SAML:metadata:algsupport";

/// `<md:Extensions>` with what inbound signatures may use (Algorithm Support §2.3, §2.4),
/// from the lists the signature check itself enforces.
fn algorithms() -> Element {
    let listed = |name: &'static str, algorithms: &[&str]| {
        algorithms
            .iter()
            .map(|a| Element::new(name).attr("Algorithm", *a))
            .collect::<Vec<_>>()
    };
    Element::new("md:Extensions")
        .attr("xmlns:alg", NS_ALGSUPPORT)
        .children(listed("alg:DigestMethod", DIGEST_METHODS))
        .children(listed("alg:SigningMethod", SIGNATURE_METHODS))
}

/// The metadata document for this IdP.
pub fn document(state: &AppState) -> String {
    // Every published certificate: the active one first (SPs that take only one take
    // that), then the next one (trusted before it signs), then recently retired ones.
    let keys = state
        .saml_keys
        .set()
        .published_certificates()
        .iter()
        .map(|cert| {
            Element::new("md:KeyDescriptor")
                .attr("use", "signing")
                .child(
                    Element::new("ds:KeyInfo").child(
                        Element::new("ds:X509Data")
                            .child(Element::new("ds:X509Certificate").text(cert.as_str())),
                    ),
                )
        })
        .collect::<Vec<_>>();
    let (slo, sso) = (super::slo::slo_url(state), sso_url(state));
    let service = |name: &'static str, binding: &str, location: &str| {
        Element::new(name)
            .attr("Binding", binding)
            .attr("Location", location)
    };
    // SingleLogoutService comes before NameIDFormat in the schema's sequence.
    let descriptor = Element::new("md:IDPSSODescriptor")
        .attr(
            "protocolSupportEnumeration",
            "urn:oasis:names:tc:SAML:2.0:protocol",
        )
        .attr("WantAuthnRequestsSigned", "false")
        // The scope of eduPersonPrincipalName, subject-id and the like (Shibboleth
        // metadata extensions): SPs accept scoped values only in a published scope.
        .child(
            Element::new("md:Extensions").child(attributes::scope_extension(&attributes::scope(
                &state.config,
            ))),
        )
        .children(keys)
        .children(
            [BINDING_REDIRECT, BINDING_POST].map(|b| service("md:SingleLogoutService", b, &slo)),
        )
        .children(
            NAMEID_FORMATS
                .iter()
                .map(|f| Element::new("md:NameIDFormat").text(*f)),
        )
        .children(
            [BINDING_REDIRECT, BINDING_POST].map(|b| service("md:SingleSignOnService", b, &sso)),
        );
    let root = Element::new("md:EntityDescriptor")
        .attr("xmlns:md", "urn:oasis:names:tc:SAML:2.0:metadata")
        .attr("xmlns:ds", "http://www.w3.org/2000/09/xmldsig#")
        .attr("entityID", entity_id(state))
        .attr("cacheDuration", "PT1H")
        .child(algorithms())
        .child(descriptor);
    format!(r#"<?xml version="1.0" encoding="UTF-8"?>{}"#, root.to_xml())
}

#[get("/saml/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(document(&state))
}
