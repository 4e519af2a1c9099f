//! What an SP learns when Gatehouse will not do what it asked: the signature algorithms
//! it must use, published in the metadata and named when refused, and a signed
//! `RequestDenied` LogoutResponse for a refused LogoutRequest instead of a dead end.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{SecondsFormat, Utc};
use gatehouse::{
    audit::EventType,
    saml::{
        providers::{self, ImportSettings},
        request::{Binding, decode, verify_query_signature},
    },
};
use openssl::hash::MessageDigest;
use samael::{
    crypto::{CertificateDer, Crypto, CryptoProvider},
    signature::{DigestAlgorithm, Signature},
    traits::ToXml,
};

use crate::{
    helpers::{TestApp, spawn_app, unescape},
    saml::{TestSp, idp_cert, rand_id, signing_sp, sso_assertion},
};

const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

#[tokio::test]
async fn metadata_publishes_the_accepted_signature_and_digest_algorithms() {
    let app = spawn_app().await;
    let xml = app.get("/saml/metadata").await.text().await.unwrap();
    let extensions = xml
        .split("<md:Extensions")
        .nth(1)
        .and_then(|r| r.split("</md:Extensions>").next())
        .unwrap_or_else(|| panic!("no md:Extensions in {xml}"));
    assert!(extensions.contains(r#"xmlns:alg="urn:oasis:names:tc:SAML:metadata:algsupport""#));
    let listed = |element: &str| -> Vec<String> {
        extensions
            .split(&format!("<alg:{element} Algorithm=\""))
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_owned())
            .collect()
    };
    assert_eq!(
        listed("SigningMethod"),
        [
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        ]
    );
    assert_eq!(
        listed("DigestMethod"),
        [
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2001/04/xmldsig-more#sha384",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ]
    );
    // Schema order: the entity's Extensions come before its role descriptors, and the
    // metadata still parses as an EntityDescriptor.
    assert!(xml.find("<md:Extensions").unwrap() < xml.find("<md:IDPSSODescriptor").unwrap());
    let _: samael::metadata::EntityDescriptor = xml.parse().expect("valid metadata");
}

/// `xml` with an enveloped RSA-SHA1 signature (SHA-1 digest), as Shibboleth makes them
/// by default.
fn sign_sha1(sp: &TestSp, xml: &str, id: &str) -> String {
    let mut template = Signature::template(id, &CertificateDer::from(sp.signing.der()));
    for r in &mut template.signed_info.reference {
        r.digest_method.algorithm = DigestAlgorithm::Sha1;
    }
    let template = template.to_string().unwrap().replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        RSA_SHA1,
    );
    assert!(
        template.contains(RSA_SHA1) && template.contains(SHA1),
        "{template}"
    );
    let at = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let mut with = xml.to_owned();
    with.insert_str(at, &template);
    Crypto::sign_xml(&with, &sp.signing.pkcs8()).unwrap()
}

/// The Redirect-binding query for `xml`, signed with RSA-SHA1.
fn redirect_sha1(sp: &TestSp, xml: &str) -> String {
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut q = format!(
        "SAMLRequest={}&SigAlg={}",
        enc(&STANDARD.encode(deflated)),
        enc(RSA_SHA1)
    );
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha1(), &sp.signing.key).unwrap();
    signer.update(q.as_bytes()).unwrap();
    q.push_str(&format!(
        "&Signature={}",
        enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
    ));
    q
}

async fn assert_names_sha1(app: &TestApp, res: reqwest::Response) {
    let status = res.status();
    let body = unescape(&res.text().await.unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("signature algorithm {RSA_SHA1} is not accepted")),
        "the page names the refused algorithm: {body}"
    );
    assert!(
        body.contains("RSA-SHA256"),
        "and what to use instead: {body}"
    );
    let events = crate::admin::audit_events(app, EventType::AssertionIssued).await;
    assert!(
        events.iter().any(|e| e.details["reason"]
            .as_str()
            .is_some_and(|r| r.contains(RSA_SHA1))),
        "the trail names it too: {events:?}"
    );
}

#[tokio::test]
async fn an_rsa_sha1_authn_request_is_refused_naming_the_algorithm_by_either_binding() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/Shibboleth.sso/SAML2/POST");
    sp.register(&app, signing_sp()).await;
    let client = app.new_client();

    let id = format!("_{}", rand_id());
    let signed = sign_sha1(&sp, &sp.authn_request(&id, &app, "", ""), &id);
    let res = client
        .post(app.url("/saml/sso"))
        .form(&[("SAMLRequest", STANDARD.encode(&signed))])
        .send()
        .await
        .unwrap();
    assert_names_sha1(&app, res).await;

    let id = format!("_{}", rand_id());
    let query = redirect_sha1(&sp, &sp.authn_request(&id, &app, "", ""));
    let res = client
        .get(app.url(&format!("/saml/sso?{query}")))
        .send()
        .await
        .unwrap();
    assert_names_sha1(&app, res).await;
}

fn logout_xml(sp: &TestSp, app: &TestApp, id: &str, name_id: &str, index: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{format}">{name_id}</saml:NameID><samlp:SessionIndex>{index}</samlp:SessionIndex></samlp:LogoutRequest>"#,
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        dest = app.url("/saml/slo"),
        issuer = sp.entity_id,
        format = providers::NAMEID_PERSISTENT,
    )
}

/// The denial page: 400, says why, and carries a signed LogoutResponse
/// Requester/RequestDenied for `in_response_to` to the SP's SLO endpoint.
pub async fn assert_denied(
    app: &TestApp,
    res: reqwest::Response,
    slo: &str,
    in_response_to: &str,
    reason: &str,
) {
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 400, "{html}");
    let text = unescape(&html);
    assert!(text.contains("You are still signed in"), "{text}");
    assert!(text.contains(reason), "expected {reason:?} in {text}");
    let xml = if let Some(link) = html.split("id=\"continue\" href=\"").nth(1) {
        let url = unescape(&link[..link.find('"').unwrap()]);
        let (target, query) = url.split_once('?').unwrap();
        assert_eq!(target, slo, "the registered SLO endpoint");
        verify_query_signature(query, "SAMLResponse", &[idp_cert(app).await])
            .expect("signed with the key in our metadata");
        decode(query, "SAMLResponse", Binding::Redirect)
            .unwrap()
            .xml
    } else {
        let (action, xml, _) = crate::saml::posted(&html);
        assert_eq!(action, slo, "the registered SLO endpoint");
        assert!(
            crate::saml::xmlsec1_verify(
                &xml,
                "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
                &idp_cert(app).await
            ),
            "an enveloped signature: {xml}"
        );
        xml
    };
    let response: samael::schema::LogoutResponse = xml.parse().unwrap();
    assert_eq!(response.in_response_to.as_deref(), Some(in_response_to));
    assert_eq!(response.destination.as_deref(), Some(slo));
    let code = response.status.unwrap().status_code;
    assert_eq!(
        code.value.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:Requester")
    );
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:status:RequestDenied"),
        "{xml}"
    );
}

#[tokio::test]
async fn a_refused_logout_request_from_a_registered_sp_is_answered_request_denied() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = crate::saml::signed_in_client(&app, "ulla").await;
    let (name_id, index) = sso_assertion(&app, &sp, &client, true).await;
    let slo = format!("{}/slo", sp.acs);

    // Unsigned (Shibboleth's default) from an SP with a signing certificate.
    let id = format!("_{}", rand_id());
    let query = sp.redirect_query(
        &logout_xml(&sp, &app, &id, &name_id, &index),
        Some("r"),
        false,
    );
    let res = client
        .get(app.url(&format!("/saml/slo?{query}")))
        .send()
        .await
        .unwrap();
    assert_denied(&app, res, &slo, &id, "must be signed").await;
    // Signed by someone else, by POST.
    let mut forger = TestSp::new("https://sp.example.org/acs");
    forger.entity_id = sp.entity_id.clone();
    let id = format!("_{}", rand_id());
    let signed = forger.sign(&logout_xml(&sp, &app, &id, &name_id, &index), &id);
    let res = client
        .post(app.url("/saml/slo"))
        .form(&[("SAMLRequest", STANDARD.encode(&signed))])
        .send()
        .await
        .unwrap();
    assert_denied(&app, res, &slo, &id, "signature is not valid").await;
    let events = crate::admin::audit_events(&app, EventType::SamlLogout).await;
    assert!(
        events
            .iter()
            .any(|e| e.details["answered"] == "RequestDenied"
                && e.details["sp"] == sp.entity_id.as_str()),
        "{events:?}"
    );
    // The session survived both.
    sso_assertion(&app, &sp, &client, true).await;

    // An SP whose SLO endpoint takes POST gets the answer in a form.
    let post_sp = TestSp::new("https://sp2.example.org/acs");
    post_sp
        .register_slo_post(&app, ImportSettings::default())
        .await;
    let id = format!("_{}", rand_id());
    let res = client
        .post(app.url("/saml/slo"))
        .form(&[(
            "SAMLRequest",
            STANDARD.encode(logout_xml(&post_sp, &app, &id, "x", "y")),
        )])
        .send()
        .await
        .unwrap();
    assert_denied(
        &app,
        res,
        &format!("{}/slo-post", post_sp.acs),
        &id,
        "must be signed",
    )
    .await;

    // Nobody to answer: an unregistered sender still gets only a page.
    let stranger = TestSp::new("https://sp3.example.org/acs");
    let query = stranger.redirect_query(&logout_xml(&stranger, &app, "_s", "x", "y"), None, true);
    let res = client
        .get(app.url(&format!("/saml/slo?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("not registered") && !body.contains("SAMLResponse"),
        "{body}"
    );
}
