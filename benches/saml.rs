//! SAML IdP benchmark (issue 8). Run with `cargo bench --bench saml`. Prints:
//!
//! 1. signed assertions per second (build + RSA-SHA256 XML signature of an assertion in a
//!    Response, one core; the same with the Response signed too; and with the signed
//!    assertion encrypted to the SP);
//! 2. SP-initiated SSO round-trip latency (HTTP-Redirect AuthnRequest → the POST-binding
//!    Response page) with an existing session, p50 and p99, through the real HTTPS server.
//!
//! The load generator shares the machine with the server, so (2) includes its cost.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{SecondsFormat, Utc};
use gatehouse::saml::{
    assertion::{self, Person, Statement},
    providers::{self, ImportSettings},
};

mod common;

use common::PASSWORD;
const ACS: &str = "https://sp.example.org/acs";
const SP: &str = "https://sp.example.org/metadata";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The SP's metadata, with an encryption certificate (RSA-2048, self-signed).
fn metadata() -> String {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "bench sp").unwrap();
    let name = name.build();
    let mut b = x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = STANDARD.encode(b.build().to_der().unwrap());
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding="{}" Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        providers::BINDING_POST
    )
}

fn redirect_query(base: &str) -> String {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{}" Version="2.0" IssueInstant="{}" Destination="{base}/saml/sso" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#,
        uuid::Uuid::new_v4().simple(),
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    format!(
        "SAMLRequest={}",
        url::form_urlencoded::byte_serialize(STANDARD.encode(deflated).as_bytes())
            .collect::<String>()
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let dir = tempfile::tempdir().unwrap();
    let (state, base) = common::serve(common::config(dir.path()), Some("Bench Mark")).await;

    println!("== signed assertions per second (one core)");
    let metadata = metadata();
    for (label, sign_response, encrypt) in [
        ("assertion signed", false, false),
        ("assertion + response signed", true, false),
        ("assertion signed, then encrypted", false, true),
    ] {
        let (sp, _) = providers::import(
            &state.store,
            &metadata,
            &ImportSettings {
                sign_response: Some(sign_response),
                encrypt_assertions: Some(encrypt),
                ..Default::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
        let person = Person {
            user_id: "0b6c7f7e-0000-4000-8000-000000000000".into(),
            username: "bench".into(),
            email: "bench@example.org".into(),
            display_name: Some("Bench Mark".into()),
            role: "user".into(),
            organisation: "default".into(),
        };
        let amr = vec!["pwd".to_owned()];
        let issuer = format!("{base}/saml/metadata");
        let started = Instant::now();
        let mut n = 0u32;
        while started.elapsed() < Duration::from_secs(5) {
            let now = Utc::now();
            let statement = Statement {
                issuer: &issuer,
                sp: &sp,
                acs_url: ACS,
                in_response_to: Some("_bench"),
                person: &person,
                name_id: "bench",
                name_id_format: &sp.name_id_format,
                release: gatehouse::saml::attributes::Context {
                    scope: "example.org",
                    pairwise_id: "bench",
                },
                auth_time: now,
                amr: &amr,
                session_index: "_s",
                session_ends: now + chrono::Duration::hours(72),
                now,
                lifetime: chrono::Duration::seconds(300),
                emergency: None,
            };
            let xml = assertion::success(&statement, &state.saml_keys.current()).unwrap();
            // Encrypted, the signed assertion's SignatureValue is inside the ciphertext.
            assert!(encrypt || xml.contains("SignatureValue"));
            assert_eq!(xml.contains("EncryptedAssertion"), encrypt);
            n += 1;
        }
        println!(
            "{label}: {:.0}/s",
            f64::from(n) / started.elapsed().as_secs_f64()
        );
    }

    println!(
        "\n== SSO round trip with an existing session (Redirect AuthnRequest → Response page)"
    );
    let browser = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = browser.get(format!("{base}/login")).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let html = browser
        .get(format!("{base}{location}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let res = browser
        .post(format!("{base}/login"))
        .header("Origin", &base)
        .form(&[
            ("tx", field("tx").as_str()),
            ("csrf", field("csrf").as_str()),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "signed in");
    let mut latencies = Vec::new();
    for i in 0..520 {
        let url = format!("{base}/saml/sso?{}", redirect_query(&base));
        let started = Instant::now();
        let res = browser.get(url).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        let took = started.elapsed();
        assert_eq!(status, 200);
        assert!(body.contains("SAMLResponse"));
        if i >= 20 {
            latencies.push(took); // the first ones warm connections and caches
        }
    }
    latencies.sort();
    println!(
        "{} round trips: p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
}
