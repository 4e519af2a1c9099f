//! SAML 2.0 IdP (DESIGN §10): metadata, SP-initiated SSO over both bindings,
//! IdP-initiated SSO, encrypted assertions, and the refusals. Our Responses are checked
//! the way SPs check them: with samael's SP-side parser and with the `xmlsec1` command,
//! against the certificate in our metadata.

use std::{io::Write, process::Command};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{Duration, SecondsFormat, Utc};
use gatehouse::saml::providers::{self, ImportSettings};
use openssl::{
    asn1::Asn1Time,
    hash::MessageDigest,
    pkey::{PKey, Private},
    rsa::Rsa,
    x509::{X509, X509NameBuilder},
};
use samael::{
    crypto::{CertificateDer, Crypto, CryptoProvider},
    metadata::EntityDescriptor,
    schema::Assertion,
    service_provider::ServiceProviderBuilder,
    signature::{DigestAlgorithm, Signature},
    traits::ToXml,
};

use crate::helpers::{TestApp, create_user, hidden, spawn_app, unescape};

const PASSWORD: &str = "Correct-Horse-9-Battery";
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// A key and self-signed certificate, as an SP would have.
pub struct KeyCert {
    pub key: PKey<Private>,
    pub cert: X509,
}

impl KeyCert {
    pub fn new(cn: &str) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            key,
            cert: b.build(),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    pub fn pkcs8(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().unwrap()
    }
}

/// A test SP: entity id, ACS URLs, signing and encryption keys.
pub struct TestSp {
    pub entity_id: String,
    pub acs: String,
    pub signing: KeyCert,
    pub encryption: KeyCert,
}

impl TestSp {
    pub fn new(acs: &str) -> Self {
        Self {
            entity_id: format!("https://sp-{}.example.org/metadata", rand_id()),
            acs: acs.to_owned(),
            signing: KeyCert::new("sp signing"),
            encryption: KeyCert::new("sp encryption"),
        }
    }

    /// Metadata with two ACS endpoints (POST first, then one more), both KeyDescriptors
    /// and an SLO endpoint, like real SP metadata.
    pub fn metadata(&self, requests_signed: bool) -> String {
        format!(
            r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{id}">
  <md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
{sign}
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{enc}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/></md:KeyDescriptor>
    <md:SingleLogoutService Binding="{redirect}" Location="{acs}/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{post}" Location="{acs}" index="0" isDefault="true"/>
    <md:AssertionConsumerService Binding="{post}" Location="{acs}/second" index="1"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="{acs}/artifact" index="2"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#,
            id = self.entity_id,
            signed = requests_signed,
            sign = STANDARD.encode(self.signing.der()),
            enc = STANDARD.encode(self.encryption.der()),
            redirect = REDIRECT,
            post = POST,
            acs = self.acs,
        )
    }

    /// Metadata whose SingleLogoutService takes the HTTP-POST binding at `{acs}/slo-post`.
    pub fn metadata_slo_post(&self, requests_signed: bool) -> String {
        self.metadata(requests_signed).replace(
            &format!(r#"Binding="{REDIRECT}" Location="{}/slo""#, self.acs),
            &format!(r#"Binding="{POST}" Location="{}/slo-post""#, self.acs),
        )
    }

    /// Registers the SP with its SLO endpoint by HTTP-POST.
    pub async fn register_slo_post(&self, app: &TestApp, mut settings: ImportSettings) {
        settings.encrypt_assertions = settings.encrypt_assertions.or(Some(false));
        providers::import(
            &app.state.store,
            &self.metadata_slo_post(false),
            &settings,
            Utc::now(),
        )
        .await
        .expect("SP imported");
    }

    /// The SP's LogoutResponse to our LogoutRequest `in_response_to` (status Success).
    pub fn logout_response(&self, app: &TestApp, id: &str, in_response_to: &str) -> String {
        format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}" InResponseTo="{in_response_to}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            dest = app.url("/saml/slo"),
            issuer = self.entity_id,
        )
    }

    /// Registers the SP; assertions are not encrypted unless `settings` says so.
    pub async fn register(&self, app: &TestApp, mut settings: ImportSettings) {
        settings.encrypt_assertions = settings.encrypt_assertions.or(Some(false));
        providers::import(
            &app.state.store,
            &self.metadata(false),
            &settings,
            Utc::now(),
        )
        .await
        .expect("SP imported");
    }

    /// An AuthnRequest; `extra` goes into the root element's attributes, `inner` after
    /// the Issuer.
    pub fn authn_request(&self, id: &str, app: &TestApp, extra: &str, inner: &str) -> String {
        self.authn_request_at(id, app, Utc::now(), extra, inner)
    }

    pub fn authn_request_at(
        &self,
        id: &str,
        app: &TestApp,
        at: chrono::DateTime<Utc>,
        extra: &str,
        inner: &str,
    ) -> String {
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{post}" {extra}><saml:Issuer>{issuer}</saml:Issuer>{inner}</samlp:AuthnRequest>"#,
            at = at.to_rfc3339_opts(SecondsFormat::Secs, true),
            dest = app.url("/saml/sso"),
            acs = self.acs,
            post = POST,
            issuer = self.entity_id,
        )
    }

    /// Sends `xml` to `/saml/sso` by the Redirect binding from `client` (the query of
    /// [`Self::redirect_query`]).
    pub async fn send_redirect(
        &self,
        app: &TestApp,
        client: &reqwest::Client,
        xml: &str,
        relay: Option<&str>,
        sign: bool,
    ) -> reqwest::Response {
        let query = self.redirect_query(xml, relay, sign);
        client
            .get(app.url(&format!("/saml/sso?{query}")))
            .send()
            .await
            .unwrap()
    }

    /// The Redirect-binding query for `xml`, signed with the SP's key when `sign`.
    pub fn redirect_query(&self, xml: &str, relay: Option<&str>, sign: bool) -> String {
        self.redirect_query_as("SAMLRequest", xml, relay, sign)
    }

    /// The same with the message as `param` (`SAMLRequest` or `SAMLResponse`).
    pub fn redirect_query_as(
        &self,
        param: &str,
        xml: &str,
        relay: Option<&str>,
        sign: bool,
    ) -> String {
        let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut q = format!("{param}={}", enc(&STANDARD.encode(deflated)));
        if let Some(r) = relay {
            q.push_str(&format!("&RelayState={}", enc(r)));
        }
        if sign {
            q.push_str(&format!(
                "&SigAlg={}",
                enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
            ));
            let mut signer =
                openssl::sign::Signer::new(MessageDigest::sha256(), &self.signing.key).unwrap();
            signer.update(q.as_bytes()).unwrap();
            q.push_str(&format!(
                "&Signature={}",
                enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
            ));
        }
        q
    }

    /// `xml` with an enveloped signature over its root element (ID `id`).
    pub fn sign(&self, xml: &str, id: &str) -> String {
        let mut template = Signature::template(id, &CertificateDer::from(self.signing.der()));
        for r in &mut template.signed_info.reference {
            r.digest_method.algorithm = DigestAlgorithm::Sha256;
        }
        let template = template.to_string().unwrap();
        let at = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
        let mut with = xml.to_owned();
        with.insert_str(at, &template);
        Crypto::sign_xml(&with, &self.signing.pkcs8()).unwrap()
    }

    /// samael's SP, trusting the IdP metadata served by `app`.
    pub async fn samael(
        &self,
        app: &TestApp,
        idp_initiated: bool,
    ) -> samael::service_provider::ServiceProvider {
        let metadata = app.get("/saml/metadata").await.text().await.unwrap();
        let idp: EntityDescriptor = metadata.parse().unwrap();
        let key = openssl::pkey::PKey::private_key_from_der(
            &self.encryption.key.private_key_to_der().unwrap(),
        )
        .unwrap();
        ServiceProviderBuilder::default()
            .entity_id(Some(self.entity_id.clone()))
            .acs_url(Some(self.acs.clone()))
            .idp_metadata(idp)
            .key(Some(key))
            .allow_idp_initiated(idp_initiated)
            .build()
            .unwrap()
    }
}

pub fn rand_id() -> String {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).unwrap();
    hex::encode(b)
}

/// The POST-binding page's form: (action, SAMLResponse XML, RelayState).
pub fn posted(html: &str) -> (String, String, Option<String>) {
    let action = html
        .split("id=\"saml-post\" method=\"post\" action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(unescape)
        .unwrap_or_else(|| panic!("no SAML POST form in {html}"));
    let response = unescape(&hidden(html, "SAMLResponse"));
    let xml = String::from_utf8(STANDARD.decode(response).unwrap()).unwrap();
    let relay = html
        .contains("name=\"RelayState\"")
        .then(|| unescape(&hidden(html, "RelayState")));
    (action, xml, relay)
}

/// The IdP signing certificate from our metadata (DER).
pub async fn idp_cert(app: &TestApp) -> Vec<u8> {
    let metadata = app.get("/saml/metadata").await.text().await.unwrap();
    let start = metadata.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = metadata.find("</ds:X509Certificate>").unwrap();
    STANDARD.decode(&metadata[start..end]).unwrap()
}

/// `xmlsec1 --verify` of the first signature in `xml` whose ID attribute is on `node`
/// (`urn:…:protocol:Response` or `urn:…:assertion:Assertion`), against `cert_der`.
pub fn xmlsec1_verify(xml: &str, node: &str, cert_der: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.xml");
    let cert = dir.path().join("cert.der");
    std::fs::write(&doc, xml).unwrap();
    std::fs::write(&cert, cert_der).unwrap();
    let out = Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "same-doc",
            "--pubkey-cert-der",
        ])
        .arg(&cert)
        .args(["--id-attr:ID", node])
        .arg(&doc)
        .output()
        .expect("xmlsec1 is installed (Debian package xmlsec1)");
    if !out.status.success() {
        eprintln!("xmlsec1: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

pub fn extract(xml: &str, start_tag: &str, end_tag: &str) -> String {
    let a = xml
        .find(start_tag)
        .unwrap_or_else(|| panic!("no {start_tag} in {xml}"));
    let b = xml.rfind(end_tag).unwrap() + end_tag.len();
    xml[a..b].to_owned()
}

pub async fn signed_in_client(app: &TestApp, username: &str) -> reqwest::Client {
    create_user(app, username, PASSWORD, false).await;
    let client = app.new_client();
    let res = app.sign_in(&client, username, PASSWORD).await;
    assert_eq!(res.status(), 303);
    client
}

/// Follows a 303 to the sign-in page and signs in there; returns the final page.
async fn sign_in_through(
    app: &TestApp,
    client: &reqwest::Client,
    res: reqwest::Response,
    username: &str,
) -> String {
    assert_eq!(res.status(), 303, "expected a sign-in redirect");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login?tx="), "{location}");
    let page = client.get(app.url(&location)).send().await.unwrap();
    let html = page.text().await.unwrap();
    let res = app
        .post_form(
            client,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn metadata_publishes_the_signing_certificate_endpoints_and_formats() {
    let app = spawn_app().await;
    let res = app.get("/saml/metadata").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let xml = res.text().await.unwrap();
    let md: EntityDescriptor = xml.parse().expect("samael parses our metadata");
    assert_eq!(
        md.entity_id.as_deref(),
        Some(app.url("/saml/metadata").as_str())
    );
    let idp = &md.idp_sso_descriptors.as_ref().unwrap()[0];
    assert_eq!(
        idp.key_descriptors.len(),
        2,
        "the active key and the next one (published before it signs)"
    );
    assert!(
        idp.key_descriptors
            .iter()
            .all(|k| k.key_use.as_deref() == Some("signing"))
    );
    let cert = X509::from_der(&idp_cert(&app).await).expect("an X.509 certificate");
    assert_eq!(
        cert.public_key().unwrap().rsa().unwrap().size(),
        256,
        "RSA-2048"
    );
    for binding in [REDIRECT, POST] {
        assert!(
            idp.single_sign_on_services
                .iter()
                .any(|e| e.binding == binding && e.location == app.url("/saml/sso"))
        );
    }
    for binding in [REDIRECT, POST] {
        assert!(
            idp.single_logout_services
                .iter()
                .any(|e| e.binding == binding && e.location == app.url("/saml/slo")),
            "SLO by {binding}"
        );
    }
    assert!(
        idp.name_id_formats
            .iter()
            .any(|f| f.ends_with("persistent"))
    );
    assert!(
        idp.name_id_formats
            .iter()
            .any(|f| f.ends_with("emailAddress"))
    );
    assert!(idp.name_id_formats.iter().any(|f| f.ends_with("transient")));
    // The same key after a restart: it is stored, not regenerated.
    let first = idp_cert(&app).await;
    let again = crate::helpers::spawn_with_config(app.config.clone(), app.data_dir.clone()).await;
    assert_eq!(idp_cert(&again).await, first);
}

#[tokio::test]
async fn redirect_binding_sso_signs_an_assertion_samael_and_xmlsec1_accept() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    create_user(&app, "alice", PASSWORD, false).await;
    let client = app.new_client();
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, &app, "", "");
    let res = sp
        .send_redirect(&app, &client, &xml, Some("/deep/link?x=1&y=2"), false)
        .await;
    let html = sign_in_through(&app, &client, res, "alice").await;
    let (action, response, relay) = posted(&html);
    assert_eq!(action, sp.acs);
    assert_eq!(relay.as_deref(), Some("/deep/link?x=1&y=2"));

    let assertion: Assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    let subject = assertion.subject.unwrap();
    assert_eq!(
        subject.name_id.unwrap().format.as_deref(),
        Some(providers::NAMEID_PERSISTENT)
    );
    let statement = &assertion.authn_statements.unwrap()[0];
    assert_eq!(
        statement
            .authn_context
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap()
            .value
            .as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    );
    assert!(statement.session_index.is_some());
    let attributes = &assertion.attribute_statements.unwrap()[0].attributes;
    let email = attributes
        .iter()
        .find(|a| a.name.as_deref() == Some("email"))
        .unwrap();
    assert_eq!(email.values[0].value.as_deref(), Some("alice@example.org"));
    assert!(response.contains("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"));
    assert!(response.contains("http://www.w3.org/2001/04/xmlenc#sha256"));
    assert!(response.contains("http://www.w3.org/2001/10/xml-exc-c14n#"));
    assert!(!response.contains("xmldsig#sha1"), "no SHA-1 digests");

    // xmlsec1 checks the assertion's signature against the metadata certificate…
    let cert = idp_cert(&app).await;
    let signed_assertion = extract(&response, "<saml2:Assertion", "</saml2:Assertion>");
    assert!(xmlsec1_verify(
        &signed_assertion,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        &cert
    ));
    // …and refuses it once a byte of what was signed has changed.
    let tampered = signed_assertion.replace("alice@example.org", "mallory@example.org");
    assert!(!xmlsec1_verify(
        &tampered,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        &cert
    ));
    // A different certificate does not verify it either.
    let other = KeyCert::new("not the idp");
    assert!(!xmlsec1_verify(
        &signed_assertion,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        &other.der()
    ));
}

#[tokio::test]
async fn the_response_page_posts_under_its_own_strict_csp() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org:8443/saml/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "bob").await;
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, "", "");
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    assert_eq!(res.status(), 200, "a live session answers at once");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    assert!(
        csp.contains("form-action https://sp.example.org:8443;"),
        "{csp}"
    );
    assert!(!csp.contains("'unsafe-inline'"));
    let script = html
        .split("<script>")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    let hash = STANDARD.encode(openssl::sha::sha256(script.as_bytes()));
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp}"
    );
    assert!(
        html.contains("<button id=\"continue\" type=\"submit\">"),
        "a button without JavaScript"
    );
    assert_eq!(posted(&html).0, sp.acs);
}

#[tokio::test]
async fn post_binding_with_a_signed_request_and_signed_response_verifies_twice() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(
        &app,
        ImportSettings {
            require_signed_requests: Some(true),
            sign_response: Some(true),
            ..Default::default()
        },
    )
    .await;
    let client = signed_in_client(&app, "carol").await;
    let id = format!("_{}", rand_id());
    let signed = sp.sign(&sp.authn_request(&id, &app, "", ""), &id);
    let res = client
        .post(app.url("/saml/sso"))
        .form(&[
            ("SAMLRequest", STANDARD.encode(&signed)),
            ("RelayState", "r1".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, response, relay) = posted(&res.text().await.unwrap());
    assert_eq!(relay.as_deref(), Some("r1"));
    sp.samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael accepts the signed Response");
    let cert = idp_cert(&app).await;
    assert!(xmlsec1_verify(
        &response,
        "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        &cert
    ));
    let assertion = extract(&response, "<saml2:Assertion", "</saml2:Assertion>");
    assert!(xmlsec1_verify(
        &assertion,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        &cert
    ));
}

#[tokio::test]
async fn encrypted_assertions_decrypt_with_the_sp_key() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(
        &app,
        ImportSettings {
            encrypt_assertions: Some(true),
            sign_response: Some(true),
            ..Default::default()
        },
    )
    .await;
    let client = signed_in_client(&app, "dave").await;
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, &app, "", "");
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    let (_, response, _) = posted(&res.text().await.unwrap());
    assert!(response.contains("EncryptedAssertion"));
    assert!(
        !response.contains("dave@example.org"),
        "nothing readable outside the encryption"
    );
    assert!(response.contains("http://www.w3.org/2009/xmlenc11#aes128-gcm"));
    assert!(response.contains("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"));
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael decrypts and accepts it");
    let attrs = &assertion.attribute_statements.unwrap()[0].attributes;
    assert!(
        attrs
            .iter()
            .any(|a| a.values[0].value.as_deref() == Some("dave@example.org"))
    );

    // xmlsec1 decrypts it with the SP's key, and the signed assertion inside verifies.
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("enc.xml");
    let key = dir.path().join("key.pem");
    std::fs::write(
        &doc,
        extract(
            &response,
            "<saml2:EncryptedAssertion",
            "</saml2:EncryptedAssertion>",
        ),
    )
    .unwrap();
    std::fs::File::create(&key)
        .unwrap()
        .write_all(&sp.encryption.key.private_key_to_pem_pkcs8().unwrap())
        .unwrap();
    let out = Command::new("xmlsec1")
        .args(["--decrypt", "--privkey-pem"])
        .arg(&key)
        .arg(&doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = String::from_utf8(out.stdout).unwrap();
    let inner = extract(&plain, "<saml2:Assertion", "</saml2:Assertion>");
    assert!(xmlsec1_verify(
        &inner,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        &idp_cert(&app).await
    ));
    // With another key it does not decrypt.
    let wrong = KeyCert::new("other");
    std::fs::write(&key, wrong.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--decrypt", "--privkey-pem"])
        .arg(&key)
        .arg(&doc)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn idp_initiated_sso_posts_an_unsolicited_response_to_the_default_acs() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    // IdP-initiated SSO is an opt-in with registered RelayStates (issue 20, item 12).
    sp.register(
        &app,
        ImportSettings {
            idp_initiated: Some(true),
            idp_initiated_relay_states: Some(vec!["home".into()]),
            ..Default::default()
        },
    )
    .await;
    create_user(&app, "erin", PASSWORD, false).await;
    let client = app.new_client();
    let path = format!(
        "/saml/sso/init?sp={}&RelayState=home",
        url::form_urlencoded::byte_serialize(sp.entity_id.as_bytes()).collect::<String>()
    );
    let res = client.get(app.url(&path)).send().await.unwrap();
    let html = sign_in_through(&app, &client, res, "erin").await;
    let (action, response, relay) = posted(&html);
    assert_eq!(action, sp.acs);
    assert_eq!(relay.as_deref(), Some("home"));
    assert!(!response.contains("InResponseTo"));
    sp.samael(&app, true)
        .await
        .parse_xml_response(&response, None)
        .expect("accepted as IdP-initiated");
    // An SP that is not registered gets nothing.
    let res = client
        .get(app.url("/saml/sso/init?sp=https%3A%2F%2Fnobody.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(!res.text().await.unwrap().contains("SAMLResponse"));
}

async fn refused(res: reqwest::Response, needle: &str) {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(needle), "expected {needle:?} in {body}");
    assert!(!body.contains("SAMLResponse"), "nothing is posted anywhere");
}

/// A refused LogoutRequest from a registered SP: a 400 page that says why and carries
/// the SP's signed `RequestDenied` answer (checked in full in `saml_refused`).
async fn denied(res: reqwest::Response, needle: &str) {
    let status = res.status();
    let body = unescape(&res.text().await.unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(needle), "expected {needle:?} in {body}");
    assert!(body.contains("You are still signed in"), "{body}");
    assert!(body.contains("SAMLResponse"), "the SP is answered: {body}");
}

#[tokio::test]
async fn requests_that_must_not_be_honoured_are_refused_with_a_page() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "frank").await;
    let get = |q: String| {
        let client = client.clone();
        let url = app.url(&format!("/saml/sso?{q}"));
        async move { client.get(url).send().await.unwrap() }
    };

    // An unregistered SP.
    let stranger = TestSp::new("https://sp.example.org/acs");
    let xml = stranger.authn_request(&format!("_{}", rand_id()), &app, "", "");
    refused(
        get(stranger.redirect_query(&xml, None, false)).await,
        "not registered",
    )
    .await;

    // An ACS URL the SP did not register: no POST to it.
    let xml = sp
        .authn_request(&format!("_{}", rand_id()), &app, "", "")
        .replace("https://sp.example.org/acs\"", "https://evil.example/acs\"");
    refused(
        get(sp.redirect_query(&xml, None, false)).await,
        "not registered for this application",
    )
    .await;

    // A replayed request ID.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, "", "");
    assert_eq!(
        get(sp.redirect_query(&xml, None, false)).await.status(),
        200
    );
    refused(
        get(sp.redirect_query(&xml, None, false)).await,
        "already used",
    )
    .await;

    // A stale IssueInstant.
    let xml = sp.authn_request_at(
        &format!("_{}", rand_id()),
        &app,
        Utc::now() - Duration::minutes(30),
        "",
        "",
    );
    refused(get(sp.redirect_query(&xml, None, false)).await, "too old").await;
    // …and one from the future.
    let xml = sp.authn_request_at(
        &format!("_{}", rand_id()),
        &app,
        Utc::now() + Duration::minutes(30),
        "",
        "",
    );
    refused(
        get(sp.redirect_query(&xml, None, false)).await,
        "from the future",
    )
    .await;
}

#[tokio::test]
async fn an_sp_that_must_sign_is_refused_without_a_valid_signature() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    providers::import(
        &app.state.store,
        &sp.metadata(true),
        &ImportSettings::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let client = signed_in_client(&app, "grace").await;
    let get = |q: String| {
        let client = client.clone();
        let url = app.url(&format!("/saml/sso?{q}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let post = |xml: String| {
        let client = client.clone();
        let url = app.url("/saml/sso");
        async move {
            client
                .post(url)
                .form(&[("SAMLRequest", STANDARD.encode(xml))])
                .send()
                .await
                .unwrap()
        }
    };
    // Redirect: missing, then forged, then good.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, "", "");
    refused(
        get(sp.redirect_query(&xml, None, false)).await,
        "must be signed",
    )
    .await;
    let forged = sp
        .redirect_query(&xml, Some("a"), true)
        .replace("RelayState=a", "RelayState=b");
    refused(get(forged).await, "signature is not valid").await;
    let other = TestSp {
        signing: KeyCert::new("impostor"),
        ..TestSp::new(&sp.acs)
    };
    let impostor = TestSp {
        entity_id: sp.entity_id.clone(),
        ..other
    };
    refused(
        get(impostor.redirect_query(&xml, None, true)).await,
        "signature is not valid",
    )
    .await;
    assert_eq!(
        get(sp.redirect_query(&xml, Some("a"), true)).await.status(),
        200
    );

    // POST: missing, then tampered after signing, then signed by another key.
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, &app, "", "");
    refused(post(xml.clone()).await, "must be signed").await;
    let tampered = sp
        .sign(&xml, &id)
        .replace("ForceAuthn", "X")
        .replace(&sp.acs, &format!("{}/second", sp.acs));
    refused(post(tampered).await, "signature is not valid").await;
    refused(
        post(impostor.sign(&xml, &id)).await,
        "signature is not valid",
    )
    .await;
    assert_eq!(post(sp.sign(&xml, &id)).await.status(), 200);
}

#[tokio::test]
async fn is_passive_without_a_session_answers_no_passive() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = app.new_client();
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, &app, r#"IsPassive="true""#, "");
    let res = sp
        .send_redirect(&app, &client, &xml, Some("rs"), false)
        .await;
    assert_eq!(res.status(), 200, "no page, no sign-in: a Response");
    let (action, response, relay) = posted(&res.text().await.unwrap());
    assert_eq!(action, sp.acs);
    assert_eq!(relay.as_deref(), Some("rs"));
    assert!(response.contains(r#"<saml2p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><saml2p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"/>"#), "{response}");
    assert!(!response.contains("Assertion"));
    assert!(xmlsec1_verify(
        &response,
        "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        &idp_cert(&app).await
    ));
}

#[tokio::test]
async fn force_authn_with_a_session_signs_in_again() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "heidi").await;
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, &app, r#"ForceAuthn="true""#, "");
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    let html = sign_in_through(&app, &client, res, "heidi").await;
    let (_, response, _) = posted(&html);
    sp.samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .unwrap();
}

#[tokio::test]
async fn a_password_session_steps_up_once_the_policy_requires_mfa_of_everyone() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "ines").await;
    // Signed in with a password only (the default policy asks MFA of admins alone);
    // then the organisation requires it of everyone.
    let now = Utc::now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let default = gatehouse::domain::OrgName::parse("default").unwrap();
            let org = gatehouse::store::orgs::find_by_name(c, &default)?.unwrap();
            let policy = gatehouse::domain::OrgPolicy {
                mfa: gatehouse::domain::MfaPolicy::Everyone,
                ..org.policy()
            };
            gatehouse::store::orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    // Passive: no page, and no assertion from the weak session.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, r#"IsPassive="true""#, "");
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    assert!(posted(&res.text().await.unwrap()).1.contains("NoPassive"));
    // Otherwise the live session is not answered: the person steps up first.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, "", "");
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    assert_eq!(res.status(), 303, "no Response from a session without MFA");
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/login?tx="), "{location}");
}

#[tokio::test]
async fn requested_mfa_context_is_not_met_by_a_password_session() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "ivan").await;
    let mfa = r#"<samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>https://refeds.org/profile/mfa</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"#;
    // Passive: NoPassive, since only a second factor would do.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, r#"IsPassive="true""#, mfa);
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    assert!(posted(&res.text().await.unwrap()).1.contains("NoPassive"));
    // Otherwise: a sign-in that demands the second factor (enrolment for this user).
    let xml = sp.authn_request(&format!("_{}", rand_id()), &app, "", mfa);
    let res = sp.send_redirect(&app, &client, &xml, None, false).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &hidden(&page, "tx")),
                ("csrf", &hidden(&page, "csrf")),
                ("username", "ivan"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login/totp-enrol"),
        "MFA is required first"
    );
}

#[tokio::test]
async fn xml_attacks_are_refused_with_a_clear_error() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(
        &app,
        ImportSettings {
            require_signed_requests: Some(true),
            ..Default::default()
        },
    )
    .await;
    let client = app.new_client();
    let post = |body: String| {
        let client = client.clone();
        let url = app.url("/saml/sso");
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let form = |xml: &str| {
        format!(
            "SAMLRequest={}",
            url::form_urlencoded::byte_serialize(STANDARD.encode(xml).as_bytes())
                .collect::<String>()
        )
    };

    // XXE.
    let xxe = format!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
        sp.authn_request("_x", &app, "", "")
            .replace(&sp.entity_id, "&x;")
    );
    refused(post(form(&xxe)).await, "document type declaration").await;
    // Billion laughs.
    let mut lol = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"#);
    for i in 1..10 {
        lol.push_str(&format!(
            r#"<!ENTITY lol{i} "{}">"#,
            format!(
                "&lol{};",
                if i == 1 {
                    String::new()
                } else {
                    (i - 1).to_string()
                }
            )
            .repeat(10)
        ));
    }
    lol.push_str("]><samlp:AuthnRequest>&lol9;</samlp:AuthnRequest>");
    refused(post(form(&lol)).await, "document type declaration").await;
    // A 10 MB request: refused before anything reads it as XML.
    let huge = form(&format!("<a>{}</a>", "x".repeat(10 * 1024 * 1024)));
    let res = post(huge).await;
    assert_eq!(res.status(), 413);
    // The same over Redirect: a DEFLATE bomb inflates past the limit.
    let bomb = sp.redirect_query(
        &format!("<a>{}</a>", " ".repeat(10 * 1024 * 1024)),
        None,
        false,
    );
    refused(
        client
            .get(app.url(&format!("/saml/sso?{bomb}")))
            .send()
            .await
            .unwrap(),
        "too large",
    )
    .await;

    // Signature wrapping. The genuine signed request's Signature is moved onto an
    // unsigned request with another ID and ACS URL, the genuine request (whose digest
    // does not cover its own Signature) tucked into Extensions. The reference still
    // digests correctly, but xmlsec (through samael) does not accept a signature
    // standing outside the element it signs, and even a verified one would be refused
    // for naming another ID than the message's.
    let id = format!("_{}", rand_id());
    let genuine = sp.sign(&sp.authn_request(&id, &app, "", ""), &id);
    let sig_start = genuine.find("<ds:Signature").unwrap();
    let sig_end = genuine.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = &genuine[sig_start..sig_end];
    let stripped = format!("{}{}", &genuine[..sig_start], &genuine[sig_end..]);
    let stripped = stripped
        .trim_start_matches("<?xml version=\"1.0\"?>")
        .trim();
    let evil = sp
        .authn_request(
            "_evil",
            &app,
            "",
            &format!("{signature}<samlp:Extensions>{stripped}</samlp:Extensions>"),
        )
        .replace(
            &format!("AssertionConsumerServiceURL=\"{}\"", sp.acs),
            &format!("AssertionConsumerServiceURL=\"{}/second\"", sp.acs),
        );
    refused(post(form(&evil)).await, "signature is not valid").await;
    // The same genuine element beside an unsigned message that carries no signature of
    // its own: refused as unsigned.
    let beside = sp.authn_request(
        "_evil2",
        &app,
        "",
        &format!("<samlp:Extensions>{stripped}</samlp:Extensions>"),
    );
    refused(post(form(&beside)).await, "must be signed").await;
    assert_eq!(
        post(form(&genuine)).await.status(),
        303,
        "the genuine request alone is accepted (and leads to sign-in)"
    );
    // No 500 on garbage either.
    refused(post("SAMLRequest=%%%".into()).await, "").await;
    refused(post(form("not xml at all")).await, "").await;
}

#[tokio::test]
async fn cli_imports_real_world_metadata_and_prints_the_entity_id() {
    let dir = tempfile::tempdir().unwrap();
    let sp = TestSp::new("https://sp.example.org/Shibboleth.sso/SAML2/POST");
    let file = dir.path().join("sp.xml");
    std::fs::write(&file, sp.metadata(true)).unwrap();
    let out = crate::cli::gatehouse(dir.path())
        .args(["sp", "import", "--metadata"])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["entity_id"], sp.entity_id.as_str());
    assert_eq!(json["created"], true);
    // Two HTTP-POST endpoints registered; the HTTP-Artifact one is named as skipped.
    assert_eq!(json["acs_urls"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["skipped_acs"][0]["location"],
        format!("{}/artifact", sp.acs).as_str()
    );
    assert_eq!(json["require_signed_requests"], true);
    assert_eq!(
        json["encrypt_assertions"], true,
        "the SP published an encryption key"
    );
    // Importing again updates it; a bad file is refused with its reason.
    let out = crate::cli::gatehouse(dir.path())
        .args(["sp", "import", "--metadata"])
        .arg(&file)
        .args(["--json", "--name-id-format", "email"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["created"], false);
    assert_eq!(json["name_id_format"], providers::NAMEID_EMAIL);
    std::fs::write(&file, "<!DOCTYPE x><x/>").unwrap();
    let out = crate::cli::gatehouse(dir.path())
        .args(["sp", "import", "--metadata"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DTD"));
}

// Single Logout (SP-initiated, HTTP-Redirect).

/// A signed-in client's assertion at `sp` (Redirect binding, signed when `sign`):
/// (NameID, SessionIndex).
pub async fn sso_assertion(
    app: &TestApp,
    sp: &TestSp,
    client: &reqwest::Client,
    sign: bool,
) -> (String, String) {
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, app, "", "");
    let res = sp.send_redirect(app, client, &xml, None, sign).await;
    assert_eq!(res.status(), 200, "answered from the session");
    let (_, response, _) = posted(&res.text().await.unwrap());
    let assertion = sp
        .samael(app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .unwrap();
    let name_id = assertion.subject.unwrap().name_id.unwrap().value;
    let index = assertion.authn_statements.unwrap()[0]
        .session_index
        .clone()
        .unwrap();
    (name_id, index)
}

/// A LogoutRequest from `sp`'s entity id, as a Redirect-binding query.
pub fn logout_query(
    sp: &TestSp,
    app: &TestApp,
    id: &str,
    name_id: &str,
    session_index: &str,
    sign: bool,
) -> String {
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{format}">{name_id}</saml:NameID><samlp:SessionIndex>{session_index}</samlp:SessionIndex></samlp:LogoutRequest>"#,
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        dest = app.url("/saml/slo"),
        issuer = sp.entity_id,
        format = providers::NAMEID_PERSISTENT,
    );
    sp.redirect_query(&xml, Some("after-logout"), sign)
}

/// An AuthnRequest from a client without a session goes to the sign-in page.
async fn assert_needs_sign_in(app: &TestApp, sp: &TestSp, client: &reqwest::Client) {
    let xml = sp.authn_request(&format!("_{}", rand_id()), app, "", "");
    let res = sp.send_redirect(app, client, &xml, None, true).await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?tx="),
        "a password is needed again"
    );
}

pub fn signing_sp() -> ImportSettings {
    ImportSettings {
        require_signed_requests: Some(true),
        ..Default::default()
    }
}

#[tokio::test]
async fn logout_request_ends_the_session_and_gets_a_signed_logout_response() {
    use gatehouse::saml::request::{Binding, decode, verify_query_signature};
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, signing_sp()).await;
    let client = signed_in_client(&app, "lena").await;
    let (name_id, index) = sso_assertion(&app, &sp, &client, true).await;

    let id = format!("_{}", rand_id());
    let res = client
        .get(app.url(&format!(
            "/saml/slo?{}",
            logout_query(&sp, &app, &id, &name_id, &index, true)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (target, query) = location.split_once('?').unwrap();
    assert_eq!(
        target, "https://sp.example.org/acs/slo",
        "the SP's SLO endpoint"
    );
    verify_query_signature(query, "SAMLResponse", &[idp_cert(&app).await])
        .expect("the LogoutResponse is signed with the key in our metadata");
    let inbound = decode(query, "SAMLResponse", Binding::Redirect).unwrap();
    assert_eq!(inbound.relay_state.as_deref(), Some("after-logout"));
    let response: samael::schema::LogoutResponse = inbound.xml.parse().unwrap();
    assert_eq!(response.in_response_to.as_deref(), Some(id.as_str()));
    assert_eq!(response.destination.as_deref(), Some(target));
    assert_eq!(
        response.issuer.unwrap().value.as_deref(),
        Some(app.url("/saml/metadata").as_str())
    );
    assert_eq!(
        response.status.unwrap().status_code.value.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:Success")
    );

    // The session is over: the next AuthnRequest needs a password, the account page too.
    assert_needs_sign_in(&app, &sp, &client).await;
    let res = client.get(app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 303);

    // The same LogoutRequest again is refused.
    let again = client
        .get(app.url(&format!(
            "/saml/slo?{}",
            logout_query(&sp, &app, &id, &name_id, &index, true)
        )))
        .send()
        .await
        .unwrap();
    denied(again, "already used").await;
}

#[tokio::test]
async fn logout_requests_from_strangers_or_badly_signed_are_refused_and_the_session_survives() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, signing_sp()).await;
    let client = signed_in_client(&app, "mona").await;
    let (name_id, index) = sso_assertion(&app, &sp, &client, true).await;
    let slo = |query: String| {
        let client = client.clone();
        let url = app.url(&format!("/saml/slo?{query}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let id = || format!("_{}", rand_id());

    // An SP that is not registered.
    let stranger = TestSp::new("https://sp.example.org/acs");
    refused(
        slo(logout_query(&stranger, &app, &id(), &name_id, &index, true)).await,
        "not registered",
    )
    .await;
    // The registered entity id, signed with another key.
    let mut forger = TestSp::new("https://sp.example.org/acs");
    forger.entity_id = sp.entity_id.clone();
    denied(
        slo(logout_query(&forger, &app, &id(), &name_id, &index, true)).await,
        "signature is not valid",
    )
    .await;
    // Unsigned, from an SP that must sign.
    denied(
        slo(logout_query(&sp, &app, &id(), &name_id, &index, false)).await,
        "must be signed",
    )
    .await;

    // Still signed in: the SP gets an assertion at once.
    sso_assertion(&app, &sp, &client, true).await;

    // A genuine request naming another session is answered UnknownPrincipal; the session
    // stays.
    let res = slo(logout_query(
        &sp,
        &app,
        &id(),
        &name_id,
        "_not-this-one",
        true,
    ))
    .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let query = location.split_once('?').unwrap().1;
    let inbound = gatehouse::saml::request::decode(
        query,
        "SAMLResponse",
        gatehouse::saml::request::Binding::Redirect,
    )
    .unwrap();
    assert!(
        inbound.xml.contains("status:UnknownPrincipal"),
        "{}",
        inbound.xml
    );
    sso_assertion(&app, &sp, &client, true).await;
}

#[tokio::test]
async fn logout_response_goes_by_post_with_an_enveloped_signature_when_the_sp_says_so() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let metadata = sp.metadata(false).replace(
        &format!(r#"Binding="{REDIRECT}" Location="{}/slo""#, sp.acs),
        &format!(r#"Binding="{POST}" Location="{}/slo-post""#, sp.acs),
    );
    let mut settings = signing_sp();
    settings.encrypt_assertions = Some(false);
    providers::import(&app.state.store, &metadata, &settings, Utc::now())
        .await
        .unwrap();
    let client = signed_in_client(&app, "nico").await;
    let (name_id, index) = sso_assertion(&app, &sp, &client, true).await;

    let id = format!("_{}", rand_id());
    let res = client
        .get(app.url(&format!(
            "/saml/slo?{}",
            logout_query(&sp, &app, &id, &name_id, &index, true)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (action, xml, relay) = posted(&res.text().await.unwrap());
    assert_eq!(action, format!("{}/slo-post", sp.acs));
    assert_eq!(relay.as_deref(), Some("after-logout"));
    assert!(xmlsec1_verify(
        &xml,
        "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
        &idp_cert(&app).await
    ));
    let response: samael::schema::LogoutResponse = xml.parse().unwrap();
    assert_eq!(response.in_response_to.as_deref(), Some(id.as_str()));
    assert_eq!(
        response.status.unwrap().status_code.value.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:Success")
    );
    assert_needs_sign_in(&app, &sp, &client).await;
}

// Single Logout: the front-channel chain across a session's SPs (Profiles §4.4).

/// What Gatehouse sent the browser on with: a Redirect-binding URL (a 303, or the
/// continue page after one of our forms) or a self-submitting POST form.
#[derive(Debug)]
pub enum Sent {
    Redirect(String),
    Post {
        action: String,
        field: String,
        xml: String,
        relay: Option<String>,
        html: String,
    },
}

pub async fn sent(res: reqwest::Response) -> Sent {
    if res.status() == 303 {
        return Sent::Redirect(res.headers()["location"].to_str().unwrap().to_owned());
    }
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    if html.contains("id=\"saml-post\"") {
        let field = if html.contains("name=\"SAMLRequest\"") {
            "SAMLRequest"
        } else {
            "SAMLResponse"
        };
        let action = html
            .split("id=\"saml-post\" method=\"post\" action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(unescape)
            .unwrap();
        let value = unescape(&hidden(&html, field));
        let xml = String::from_utf8(STANDARD.decode(value).unwrap()).unwrap();
        let relay = html
            .contains("name=\"RelayState\"")
            .then(|| unescape(&hidden(&html, "RelayState")));
        return Sent::Post {
            action,
            field: field.to_owned(),
            xml,
            relay,
            html,
        };
    }
    let href = html
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(unescape)
        .unwrap_or_else(|| panic!("neither a redirect nor a form: {html}"));
    Sent::Redirect(href)
}

/// The SP's side of a Redirect-binding query signature, checked with openssl alone
/// (Bindings §3.4.4.1): `param=…&RelayState=…&SigAlg=…` as sent, RSA-SHA256.
pub fn query_signature_ok(query: &str, param: &str, cert_der: &[u8]) -> bool {
    let get = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let mut signed = format!("{param}={}", get(param).unwrap());
    if let Some(r) = get("RelayState") {
        signed.push_str(&format!("&RelayState={r}"));
    }
    let alg = get("SigAlg").expect("SigAlg");
    signed.push_str(&format!("&SigAlg={alg}"));
    let decode = |v: &str| {
        url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned()
    };
    assert_eq!(
        decode(&alg),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    let signature = STANDARD.decode(decode(&get("Signature").unwrap())).unwrap();
    let key = X509::from_der(cert_der).unwrap().public_key().unwrap();
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &key).unwrap();
    verifier.update(signed.as_bytes()).unwrap();
    verifier.verify(&signature).unwrap_or(false)
}

/// A message Gatehouse sent `sp` by the Redirect binding: target, verified query signature,
/// decoded (XML, RelayState).
pub async fn redirected_message(
    app: &TestApp,
    url: &str,
    expected_target: &str,
    param: &str,
) -> (String, Option<String>) {
    let (target, query) = url.split_once('?').unwrap();
    assert_eq!(target, expected_target);
    assert!(
        query_signature_ok(query, param, &idp_cert(app).await),
        "the query signature verifies against the certificate in our metadata"
    );
    let inbound =
        gatehouse::saml::request::decode(query, param, gatehouse::saml::request::Binding::Redirect)
            .unwrap();
    (inbound.xml, inbound.relay_state)
}

/// The SP's checks of a LogoutRequest posted to it: xmlsec1 and samael's verifier accept
/// the enveloped signature; parsed with samael; returns (ID, NameID).
pub async fn check_posted_logout_request(
    app: &TestApp,
    xml: &str,
    sp: &TestSp,
) -> (String, String) {
    let cert = idp_cert(app).await;
    assert!(xmlsec1_verify(
        xml,
        "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
        &cert
    ));
    let reduced = Crypto::reduce_xml_to_signed(
        xml,
        &[CertificateDer::from(cert)],
        samael::crypto::ReduceMode::ValidateAndMarkNoAncestors,
    )
    .expect("samael verifies the LogoutRequest's signature");
    check_logout_request(app, &reduced, &format!("{}/slo-post", sp.acs))
}

/// What every SP checks in a LogoutRequest (samael's parser): issuer, destination, fresh.
pub fn check_logout_request(app: &TestApp, xml: &str, destination: &str) -> (String, String) {
    let request: samael::schema::LogoutRequest = xml.parse().unwrap();
    assert_eq!(
        request.issuer.unwrap().value.as_deref(),
        Some(app.url("/saml/metadata").as_str())
    );
    assert_eq!(request.destination.as_deref(), Some(destination));
    assert!(
        (Utc::now() - request.issue_instant.unwrap())
            .num_seconds()
            .abs()
            < 60
    );
    assert!(xml.contains("SessionIndex>_"), "{xml}");
    (request.id.unwrap(), request.name_id.unwrap().value)
}

/// Answers a LogoutRequest as `sp` would: by its SLO binding, signed.
pub async fn answer_logout(
    app: &TestApp,
    client: &reqwest::Client,
    sp: &TestSp,
    in_response_to: &str,
    relay: &str,
    post: bool,
) -> reqwest::Response {
    let id = format!("_{}", rand_id());
    let xml = sp.logout_response(app, &id, in_response_to);
    if post {
        let signed = sp.sign(&xml, &id);
        client
            .post(app.url("/saml/slo"))
            .form(&[
                ("SAMLResponse", STANDARD.encode(signed).as_str()),
                ("RelayState", relay),
            ])
            .send()
            .await
            .unwrap()
    } else {
        client
            .get(app.url(&format!(
                "/saml/slo?{}",
                sp.redirect_query_as("SAMLResponse", &xml, Some(relay), true)
            )))
            .send()
            .await
            .unwrap()
    }
}

/// A LogoutResponse Gatehouse sent to the SP that started the logout, by Redirect.
pub async fn final_response(
    app: &TestApp,
    res: reqwest::Response,
    sp: &TestSp,
) -> (samael::schema::LogoutResponse, String, Option<String>) {
    let Sent::Redirect(url) = sent(res).await else {
        panic!("the SP's SLO endpoint is HTTP-Redirect");
    };
    let (xml, relay) =
        redirected_message(app, &url, &format!("{}/slo", sp.acs), "SAMLResponse").await;
    (xml.parse().unwrap(), xml, relay)
}

#[tokio::test]
async fn signing_out_at_gatehouse_tells_every_saml_sp_then_shows_the_signed_out_page() {
    let app = spawn_app().await;
    let redirect_sp = TestSp::new("https://sp-one.example.org/acs");
    redirect_sp.register(&app, signing_sp()).await;
    let post_sp = TestSp::new("https://sp-two.example.org/acs");
    post_sp.register_slo_post(&app, signing_sp()).await;
    let client = signed_in_client(&app, "pia").await;
    let (name_one, _) = sso_assertion(&app, &redirect_sp, &client, true).await;
    let (name_two, _) = sso_assertion(&app, &post_sp, &client, true).await;

    // The account page's sign-out button.
    let account = client.get(app.url("/account")).send().await.unwrap();
    let html = account.text().await.unwrap();
    let mut res = app
        .post_form(&client, "/logout", &[("csrf", &hidden(&html, "csrf"))])
        .await;
    let mut told = Vec::new();
    for _ in 0..2 {
        match sent(res).await {
            Sent::Redirect(url) => {
                let (xml, relay) = redirected_message(
                    &app,
                    &url,
                    &format!("{}/slo", redirect_sp.acs),
                    "SAMLRequest",
                )
                .await;
                let (id, name_id) =
                    check_logout_request(&app, &xml, &format!("{}/slo", redirect_sp.acs));
                assert_eq!(name_id, name_one);
                told.push("redirect");
                res = answer_logout(&app, &client, &redirect_sp, &id, &relay.unwrap(), false).await;
            }
            Sent::Post {
                action,
                field,
                xml,
                relay,
                html,
            } => {
                assert_eq!(action, format!("{}/slo-post", post_sp.acs));
                assert_eq!(field, "SAMLRequest");
                assert!(
                    html.contains("id=\"skip\""),
                    "a way on if the SP never answers"
                );
                let (id, name_id) = check_posted_logout_request(&app, &xml, &post_sp).await;
                assert_eq!(name_id, name_two);
                told.push("post");
                res = answer_logout(&app, &client, &post_sp, &id, &relay.unwrap(), true).await;
            }
        }
        if told.len() == 1 {
            // Mid-chain the session is already over.
            assert_eq!(
                client
                    .get(app.url("/account"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                303
            );
        }
    }
    told.sort();
    assert_eq!(told, ["post", "redirect"]);
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    let events = crate::admin::audit_events(&app, gatehouse::audit::EventType::SamlLogout).await;
    for sp in [&redirect_sp, &post_sp] {
        assert!(
            events.iter().any(|e| e.outcome == "success"
                && e.details["sp"] == sp.entity_id.as_str()
                && e.details["direction"] == "to_sp"),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn an_sp_that_never_answers_is_skipped_and_the_first_sp_hears_partial_logout() {
    let app = spawn_app().await;
    let first = TestSp::new("https://sp-one.example.org/acs");
    first.register(&app, signing_sp()).await;
    let silent = TestSp::new("https://sp-two.example.org/acs");
    silent.register_slo_post(&app, signing_sp()).await;
    let client = signed_in_client(&app, "quinn").await;
    let (name_id, index) = sso_assertion(&app, &first, &client, true).await;
    sso_assertion(&app, &silent, &client, true).await;

    let id = format!("_{}", rand_id());
    let res = client
        .get(app.url(&format!(
            "/saml/slo?{}",
            logout_query(&first, &app, &id, &name_id, &index, true)
        )))
        .send()
        .await
        .unwrap();
    let Sent::Post {
        xml, relay, html, ..
    } = sent(res).await
    else {
        panic!("the silent SP takes POST");
    };
    let (request_id, _) = check_posted_logout_request(&app, &xml, &silent).await;
    // The SP never answers; the person follows the link on the page.
    let skip = unescape(
        html.split("id=\"skip\" href=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap(),
    );
    assert!(skip.starts_with("/saml/slo/continue?chain="), "{skip}");
    let res = client.get(app.url(&skip)).send().await.unwrap();
    let (response, xml, relay_back) = final_response(&app, res, &first).await;
    assert_eq!(response.in_response_to.as_deref(), Some(id.as_str()));
    assert_eq!(relay_back.as_deref(), Some("after-logout"));
    assert!(
        xml.contains("status:Success\"><saml2p:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:PartialLogout\""),
        "{xml}"
    );
    // A late answer from the silent SP no longer moves anything: the signed-out page.
    let late = answer_logout(&app, &client, &silent, &request_id, &relay.unwrap(), true).await;
    assert_eq!(late.status(), 200);
    assert!(late.text().await.unwrap().contains("You are signed out"));
    let events = crate::admin::audit_events(&app, gatehouse::audit::EventType::SamlLogout).await;
    assert!(
        events.iter().any(|e| e.outcome == "failure"
            && e.details["sp"] == silent.entity_id.as_str()
            && e.details["reason"]
                .as_str()
                .unwrap()
                .starts_with("no_answer")),
        "{events:?}"
    );
    assert_needs_sign_in(&app, &first, &client).await;
}

#[tokio::test]
async fn forged_replayed_or_foreign_logout_requests_by_post_leave_the_session_alone() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "rosa").await;
    let (name_id, index) = sso_assertion(&app, &sp, &client, true).await;
    // Another person signed in at the same SP, in another browser.
    let other = signed_in_client(&app, "sven").await;
    let (other_name, other_index) = sso_assertion(&app, &sp, &other, true).await;
    let xml_for = |id: &str, name: &str, idx: &str| {
        format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{format}">{name}</saml:NameID><samlp:SessionIndex>{idx}</samlp:SessionIndex></samlp:LogoutRequest>"#,
            at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            dest = app.url("/saml/slo"),
            issuer = sp.entity_id,
            format = providers::NAMEID_PERSISTENT,
        )
    };
    let post = |xml: String| {
        let client = client.clone();
        let url = app.url("/saml/slo");
        async move {
            client
                .post(url)
                .form(&[
                    ("SAMLRequest", STANDARD.encode(xml).as_str()),
                    ("RelayState", "r"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let id = || format!("_{}", rand_id());

    // The SP does not require signed AuthnRequests, but it has a signing certificate: an
    // unsigned LogoutRequest (what a cross-site page could forge) is refused.
    denied(
        post(xml_for(&id(), &name_id, &index)).await,
        "must be signed",
    )
    .await;
    // Signed by someone else.
    let mut forger = TestSp::new("https://sp.example.org/acs");
    forger.entity_id = sp.entity_id.clone();
    let fid = id();
    denied(
        post(forger.sign(&xml_for(&fid, &name_id, &index), &fid)).await,
        "signature is not valid",
    )
    .await;
    // A genuine signed request wrapped in an unsigned one naming this session.
    let gid = id();
    let genuine = sp.sign(&xml_for(&gid, &other_name, &other_index), &gid);
    let genuine = genuine.trim_start_matches("<?xml version=\"1.0\"?>").trim();
    let wrapper = xml_for(&id(), &name_id, &index).replace(
        "</saml:Issuer>",
        &format!("</saml:Issuer><samlp:Extensions>{genuine}</samlp:Extensions>"),
    );
    refused(post(wrapper).await, "not the message itself").await;
    sso_assertion(&app, &sp, &client, true).await;

    // Genuine and signed, but for the other person: UnknownPrincipal; both sessions stay.
    let rid = id();
    let res = post(sp.sign(&xml_for(&rid, &other_name, &other_index), &rid)).await;
    let Sent::Redirect(url) = sent(res).await else {
        panic!("the SP's SLO endpoint is HTTP-Redirect");
    };
    let (xml, _) = redirected_message(&app, &url, &format!("{}/slo", sp.acs), "SAMLResponse").await;
    assert!(xml.contains("status:UnknownPrincipal"), "{xml}");
    sso_assertion(&app, &sp, &client, true).await;
    sso_assertion(&app, &sp, &other, true).await;

    // The genuine request for this session works once, by POST…
    let lid = id();
    let signed = sp.sign(&xml_for(&lid, &name_id, &index), &lid);
    let res = post(signed.clone()).await;
    let (response, _, relay) = final_response(&app, res, &sp).await;
    assert_eq!(response.in_response_to.as_deref(), Some(lid.as_str()));
    assert_eq!(relay.as_deref(), Some("r"));
    assert_needs_sign_in(&app, &sp, &client).await;
    // …and not twice.
    denied(post(signed).await, "already used").await;
    // The other person is still signed in.
    sso_assertion(&app, &sp, &other, true).await;
}

#[tokio::test]
async fn a_wrapped_authn_request_is_refused_and_its_acs_gets_nothing() {
    let app = spawn_app().await;
    // The SP does not have to sign, so an unsigned request alone would be honoured: the
    // point is which element a present signature vouches for.
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "tove").await;
    let post = |xml: String| {
        let client = client.clone();
        let url = app.url("/saml/sso");
        async move {
            client
                .post(url)
                .form(&[("SAMLRequest", STANDARD.encode(xml))])
                .send()
                .await
                .unwrap()
        }
    };
    // The genuine, signed request intact inside an unsigned one with another ID, issuer
    // position and ACS URL (the SP's second, registered ACS): the signature verifies, but
    // over the inner element, not the message.
    let id = format!("_{}", rand_id());
    let genuine = sp.sign(&sp.authn_request(&id, &app, "", ""), &id);
    let genuine = genuine.trim_start_matches("<?xml version=\"1.0\"?>").trim();
    let before = sp
        .authn_request(
            "_outer",
            &app,
            "",
            "<samlp:Extensions>INNER</samlp:Extensions>",
        )
        .replace(
            &format!("AssertionConsumerServiceURL=\"{}\"", sp.acs),
            &format!("AssertionConsumerServiceURL=\"{}/second\"", sp.acs),
        )
        .replace("INNER", genuine);
    let res = post(before).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not the message itself"), "{body}");
    assert!(
        !body.contains("/second"),
        "nothing goes to the wrapper's ACS"
    );

    // An AuthnRequest-like element smuggled after the signed content, inside the
    // Signature (which the enveloped-signature transform leaves out of the digest): the
    // signature would still verify, but no ds:Object ever reaches libxmlsec (DESIGN §10,
    // issue 20), so the message is refused before verification and nothing is posted.
    let id = format!("_{}", rand_id());
    let genuine = sp.sign(&sp.authn_request(&id, &app, "", ""), &id);
    let smuggled = format!(
        r#"<ds:Object><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_after" Version="2.0" IssueInstant="{}" AssertionConsumerServiceURL="{}/second"/></ds:Object></ds:Signature>"#,
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        sp.acs
    );
    let after = genuine.replacen("</ds:Signature>", &smuggled, 1);
    let res = post(after).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ds:Object is not accepted"), "{body}");
    assert!(!body.contains("SAMLResponse"), "nothing is posted anywhere");
    assert!(
        !body.contains("/second"),
        "nothing goes to the smuggled ACS"
    );
    // The genuine request alone is answered, in response to its own ID.
    let res = post(genuine).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (action, response, _) = posted(&body);
    assert_eq!(action, sp.acs, "the signed request's ACS");
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("in response to the signed request");
    assert!(assertion.subject.is_some());
}

#[tokio::test]
async fn saml_key_rotation_publishes_the_next_key_first_then_signs_with_it() {
    let app = spawn_app().await;
    let certs = |metadata: &str| -> Vec<Vec<u8>> {
        metadata
            .split(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>",
            )
            .skip(1)
            .map(|r| STANDARD.decode(r.split('<').next().unwrap()).unwrap())
            .collect()
    };
    let before = certs(&app.get("/saml/metadata").await.text().await.unwrap());
    assert_eq!(before.len(), 2, "the active key and the next one");
    let (active, next) = (before[0].clone(), before[1].clone());
    assert_ne!(active, next);

    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "ulla").await;
    let assertion_xml =
        |html: &str| extract(&posted(html).1, "<saml2:Assertion", "</saml2:Assertion>");
    let respond = || async {
        let id = format!("_{}", rand_id());
        let xml = sp.authn_request(&id, &app, "", "");
        let res = sp.send_redirect(&app, &client, &xml, None, false).await;
        assert_eq!(res.status(), 200);
        (id, res.text().await.unwrap())
    };
    let (_, html) = respond().await;
    let signed = assertion_xml(&html);
    let node = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
    assert!(xmlsec1_verify(&signed, node, &active));
    assert!(
        !xmlsec1_verify(&signed, node, &next),
        "the next key does not sign yet"
    );

    let state = &app.state;
    gatehouse::saml::keys::rotate(
        &state.store,
        state.master_key.clone(),
        &app.url("/saml/metadata"),
        Utc::now(),
    )
    .await
    .unwrap();
    gatehouse::startup::reload_saml_keys(state).await.unwrap();

    let after = certs(&app.get("/saml/metadata").await.text().await.unwrap());
    assert_eq!(after.len(), 3, "new active, new next, and the retired one");
    assert_eq!(after[0], next, "the published next key now signs");
    assert!(
        after.contains(&active),
        "the retired key stays published for a while"
    );
    let (id, html) = respond().await;
    let signed = assertion_xml(&html);
    assert!(xmlsec1_verify(&signed, node, &next));
    assert!(!xmlsec1_verify(&signed, node, &active));
    // An SP that refreshed our metadata accepts it.
    let (_, response, _) = posted(&html);
    sp.samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the new key from the metadata");
}

#[tokio::test]
async fn keys_rotate_saml_from_the_command_line_reaches_the_running_server() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
        c.signing_key_reload_secs = 1;
    })
    .await;
    let certs = |metadata: &str| -> Vec<String> {
        metadata
            .split("<ds:X509Certificate>")
            .skip(1)
            .map(|r| r.split('<').next().unwrap().to_owned())
            .collect()
    };
    let before = certs(&app.get("/saml/metadata").await.text().await.unwrap());
    let out = crate::cli::gatehouse(app.data_dir.path())
        .args(["keys", "rotate", "--saml", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rotated["saml"]["active_id"].is_string());
    assert!(rotated["saml"]["next_id"].is_string());
    let promoted = crate::helpers::eventually(std::time::Duration::from_secs(10), || {
        let app = &app;
        let next = before[1].clone();
        async move {
            let now = certs(&app.get("/saml/metadata").await.text().await.unwrap());
            now.len() == 3 && now[0] == next
        }
    })
    .await;
    assert!(
        promoted,
        "the running server signs with the key it published as next"
    );
    let events = crate::admin::audit_events(&app, gatehouse::audit::EventType::KeyRotated).await;
    assert!(events.iter().any(|e| e.details["protocol"] == "saml"
        && e.actor.as_deref().is_some_and(|a| a.starts_with("cli:"))));
}
