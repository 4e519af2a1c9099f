//! `/saml/metadata`: the IdP's EntityDescriptor (SAML Metadata §2.4.3).
//!
//! The signing certificate is published with `use="signing"`: an SP that reads a
//! KeyDescriptor without `use` as "encryption too" would otherwise try to encrypt
//! requests to us (a failure field users report against other IdPs).
//!
//! The algorithms a signed request may use are published too (SAML V2.0 Metadata Profile
//! for Algorithm Support): SPs that read them (Shibboleth SP 3 does) sign with one of
//! them instead of their own default, which for Shibboleth's POST requests is RSA-SHA1.
//!
//! The document is signed by the active SAML key (enveloped, RSA-SHA256, exclusive c14n,
//! a Reference to the root's ID; Metadata §3), so it can travel through a federation's
//! aggregator or a plain HTTP mirror and still be checked against our pinned certificate
//! (Shibboleth's `SignatureMetadataFilter`). It says until when it may be used
//! (`validUntil`, `saml_metadata_valid_days` from now: a copy that stops being refreshed
//! expires instead of pinning a retired key forever) and how long to cache it
//! (`cacheDuration`, one hour: rotations publish the next key well before that).

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use actix_web::{HttpResponse, get, http::header, web};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    assertion, attributes,
    dsig::{DIGEST_METHODS, SIGNATURE_METHODS},
    entity_id,
    providers::{BINDING_POST, BINDING_REDIRECT, NAMEID_FORMATS},
    sso_url,
    xml_writer::Element,
};
use crate::{startup::AppState, web::error::AppError};

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

/// How long a signed document is served again before a new one is signed: anyone may
/// fetch the metadata, and an RSA signature per request is work a flood could ask for.
const REUSE_SIGNED: chrono::Duration = chrono::Duration::minutes(5);

/// Signed documents by entity id, with what they were made from and when.
type Signed = HashMap<String, (String, DateTime<Utc>, String)>;
static SIGNED: LazyLock<Mutex<Signed>> = LazyLock::new(Mutex::default);

/// The signed metadata document for this IdP: a recent one while the keys are the same.
pub fn document(state: &AppState) -> Result<String, AppError> {
    let set = state.saml_keys.set();
    let made_of = format!(
        "{}|{}",
        set.active().id,
        set.published_certificates().join("|")
    );
    let (entity, now) = (entity_id(state), state.clock.now());
    let mut signed = SIGNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((from, at, xml)) = signed.get(&entity)
        && *from == made_of
        && now >= *at
        && now - *at < REUSE_SIGNED
    {
        return Ok(xml.clone());
    }
    let xml = sign(state)?;
    signed.insert(entity, (made_of, now, xml.clone()));
    Ok(xml)
}

fn sign(state: &AppState) -> Result<String, AppError> {
    let key = state.saml_keys.current();
    let id = assertion::new_id();
    let valid_until = state.clock.now()
        + chrono::Duration::days(i64::from(state.config.saml_metadata_valid_days));
    let root = Element::new("md:EntityDescriptor")
        .attr("xmlns:md", "urn:oasis:names:tc:SAML:2.0:metadata")
        .attr("xmlns:ds", "http://www.w3.org/2000/09/xmldsig#")
        .attr("ID", id.as_str())
        .attr("entityID", entity_id(state))
        .attr(
            "validUntil",
            valid_until.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .attr("cacheDuration", "PT1H")
        // The schema puts ds:Signature first, before Extensions.
        .child(assertion::template(&id, &key))
        .child(algorithms())
        .child(descriptor(state));
    assertion::sign(&root.to_xml(), &key)
}

/// The IDPSSODescriptor: keys, endpoints and NameID formats.
fn descriptor(state: &AppState) -> Element {
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
    Element::new("md:IDPSSODescriptor")
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
        )
}

#[get("/saml/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(document(&state)?))
}
