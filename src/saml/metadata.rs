//! `/saml/metadata`: the IdP's EntityDescriptor (SAML Metadata §2.4.3).
//!
//! The signing certificate is published with `use="signing"`: an SP that reads a
//! KeyDescriptor without `use` as "encryption too" would otherwise try to encrypt
//! requests to us (a failure field users report against other IdPs).

use actix_web::{HttpResponse, get, http::header, web};

use super::{
    entity_id,
    providers::{BINDING_POST, BINDING_REDIRECT, NAMEID_FORMATS},
    sso_url,
    xml::escape,
};
use crate::startup::AppState;

pub const CONTENT_TYPE: &str = "application/samlmetadata+xml";

/// The metadata document for this IdP.
pub fn document(state: &AppState) -> String {
    let id = escape(&entity_id(state));
    let sso = escape(&sso_url(state));
    // Every published certificate: the active one first (SPs that take only one take
    // that), then the next one (trusted before it signs), then recently retired ones.
    let keys: String = state
        .saml_keys
        .set()
        .published_certificates()
        .iter()
        .map(|cert| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
            )
        })
        .collect();
    // SingleLogoutService comes before NameIDFormat in the schema's sequence.
    let slo = escape(&super::slo::slo_url(state));
    let mut services = String::new();
    for binding in [BINDING_REDIRECT, BINDING_POST] {
        services.push_str(&format!(
            r#"<md:SingleLogoutService Binding="{binding}" Location="{slo}"/>"#
        ));
    }
    for format in NAMEID_FORMATS {
        services.push_str(&format!("<md:NameIDFormat>{format}</md:NameIDFormat>"));
    }
    for binding in [BINDING_REDIRECT, BINDING_POST] {
        services.push_str(&format!(
            r#"<md:SingleSignOnService Binding="{binding}" Location="{sso}"/>"#
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{id}" cacheDuration="PT1H"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">{keys}{services}</md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

#[get("/saml/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(document(&state))
}
