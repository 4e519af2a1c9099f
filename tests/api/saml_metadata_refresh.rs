//! Metadata as federations use it (issue 24 item 6): our metadata signed and dated, SP
//! metadata imported from a URL (a metadata server on loopback here), checked against a
//! pinned certificate, refreshed on demand and on a schedule, and audited; a metadata
//! server that is down or serves something bad never costs a working SP.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use gatehouse::{audit::EventType, clock::Clock};
use samael::{
    crypto::{CertificateDer, Crypto, CryptoProvider},
    signature::{DigestAlgorithm, Signature},
    traits::ToXml,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    admin::audit_events,
    helpers::{TestApp, eventually, spawn_app, spawn_app_with},
    oidc::{admin_token, rp_http},
    saml::{KeyCert, TestSp, idp_cert, signed_in_client, sso_assertion, xmlsec1_verify},
};

const ENTITY_DESCRIPTOR: &str = "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor";
const ENTITIES_DESCRIPTOR: &str = "urn:oasis:names:tc:SAML:2.0:metadata:EntitiesDescriptor";

/// A metadata server on loopback: answers every request with the document last set.
pub(crate) struct MetadataServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetadataServer {
    pub(crate) async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(body));
        let served = body.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let document = served.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/samlmetadata+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        document.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(document.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, body, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/metadata.xml", self.addr)
    }

    fn set(&self, document: String) {
        *self.body.lock().unwrap() = document;
    }

    /// Stops listening: connections are refused from now on.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Gatehouse allowed to fetch metadata from loopback over http (the test's server).
async fn lab_app() -> TestApp {
    spawn_app_with(|c| c.saml_metadata_allow_local = true).await
}

/// `xml` (whose root has `ID="{id}"`) with an enveloped signature by `key`, placed first
/// in the root as the metadata schema wants it.
fn sign_metadata(xml: &str, id: &str, key: &KeyCert) -> String {
    let mut template = Signature::template(id, &CertificateDer::from(key.der()));
    for r in &mut template.signed_info.reference {
        r.digest_method.algorithm = DigestAlgorithm::Sha256;
    }
    let template = template.to_string().unwrap();
    let root = xml.find("<md:Entit").unwrap();
    let at = xml[root..].find('>').unwrap() + root + 1;
    let mut with = xml.to_owned();
    with.insert_str(at, &template);
    Crypto::sign_xml(&with, &key.pkcs8()).unwrap()
}

/// The SP's metadata with an ID on its root (to be signed) and extra root attributes.
fn with_root(sp: &TestSp, attributes: &str) -> String {
    sp.metadata(false).replacen(
        "<md:EntityDescriptor ",
        &format!("<md:EntityDescriptor ID=\"_md\" {attributes} "),
        1,
    )
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pem(key: &KeyCert) -> String {
    String::from_utf8(key.cert.to_pem().unwrap()).unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = rp_http()
        .post(app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `POST /saml-sps/from-url` with `body`.
async fn import_url(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    post(app, token, "/saml-sps/from-url", body).await
}

/// A 400 whose message says `why`.
fn refused(status: u16, body: &Value, why: &str) {
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{body}");
}

fn handle(entity_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(entity_id)
}

/// Assertions in the clear for `entity_id` (samael's SP here reads them without a
/// signed Response around an encrypted one).
async fn in_the_clear(app: &TestApp, token: &str, entity_id: &str) {
    let res = rp_http()
        .put(app.url(&format!("/admin/api/v1/saml-sps/{}", handle(entity_id))))
        .bearer_auth(token)
        .json(&json!({"encrypt_assertions": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn registered_acs(app: &TestApp, entity_id: &str) -> Vec<String> {
    gatehouse::saml::providers::find(&app.state.store, entity_id)
        .await
        .unwrap()
        .expect("registered")
        .acs
        .iter()
        .map(|e| e.location.clone())
        .collect()
}

#[tokio::test]
async fn served_metadata_is_signed_by_the_active_key_and_says_until_when() {
    let app = spawn_app_with(|c| c.saml_metadata_valid_days = 3).await;
    let xml = app.get("/saml/metadata").await.text().await.unwrap();
    let cert = idp_cert(&app).await;
    assert!(
        xmlsec1_verify(&xml, ENTITY_DESCRIPTOR, &cert),
        "xmlsec1 verifies our metadata against our certificate: {xml}"
    );
    // The signature covers the document: a changed endpoint no longer verifies.
    let tampered = xml.replace("/saml/sso\"", "/saml/sso-evil\"");
    assert_ne!(tampered, xml);
    assert!(!xmlsec1_verify(&tampered, ENTITY_DESCRIPTOR, &cert));
    let other = KeyCert::new("not ours");
    assert!(!xmlsec1_verify(&xml, ENTITY_DESCRIPTOR, &other.der()));

    let md: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    let until = md.valid_until.expect("validUntil");
    let expected = app.clock.now() + chrono::Duration::days(3);
    assert!((until - expected).num_seconds().abs() <= 1, "{until}");
    assert_eq!(md.cache_duration.as_deref(), Some("PT1H"));
    // The schema's order: Signature first in the root.
    let body = &xml[xml.find("<md:EntityDescriptor").unwrap()..];
    let first_child = &body[body.find('>').unwrap() + 1..];
    assert!(
        first_child.trim_start().starts_with("<ds:Signature"),
        "{xml}"
    );
}

#[tokio::test]
async fn an_sp_imported_from_its_url_is_registered_and_signs_in() {
    let app = lab_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let server = MetadataServer::start(sp.metadata(false)).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(
        &app,
        &token,
        json!({"url": server.url(), "name": "Ward app"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entity_id"], sp.entity_id.as_str());
    assert_eq!(body["name"], "Ward app");
    assert_eq!(body["acs"][0]["location"], "https://sp.example.org/acs");
    assert_eq!(
        body["encrypt_assertions"], true,
        "its metadata has an encryption key"
    );
    in_the_clear(&app, &token, &sp.entity_id).await;
    let client = signed_in_client(&app, "urlsp").await;
    let (name_id, _) = sso_assertion(&app, &sp, &client, false).await;
    assert!(!name_id.is_empty());
    let created = audit_events(&app, EventType::AdminChange).await;
    assert!(
        created
            .iter()
            .any(|e| e.details["entity_id"] == sp.entity_id.as_str())
    );
}

#[tokio::test]
async fn metadata_urls_are_https_and_public_unless_the_lab_setting_allows_local() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let server = MetadataServer::start(sp.metadata(false)).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(&app, &token, json!({"url": server.url()})).await;
    refused(status, &body, "https only");
    let https = server.url().replace("http://", "https://");
    let (status, body) = import_url(&app, &token, json!({"url": https})).await;
    refused(status, &body, "not public");
    let (status, body) = import_url(&app, &token, json!({"url": "https://localhost:1/md"})).await;
    assert_eq!(status, 400, "a name that resolves to loopback: {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no public address"),
        "{body}"
    );
    assert!(
        gatehouse::saml::providers::find(&app.state.store, &sp.entity_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_pinned_certificate_refuses_unsigned_and_wrongly_signed_metadata() {
    let app = lab_app().await;
    let federation = KeyCert::new("federation signer");
    let sp = TestSp::new("https://sp.example.org/acs");
    let server = MetadataServer::start(sp.metadata(false)).await;
    let token = admin_token(&app).await;
    let import = json!({"url": server.url(), "pinned_certificate": pem(&federation)});

    let (status, body) = import_url(&app, &token, import.clone()).await;
    refused(status, &body, "not signed");

    let impostor = KeyCert::new("impostor");
    server.set(sign_metadata(&with_root(&sp, ""), "_md", &impostor));
    let (status, body) = import_url(&app, &token, import.clone()).await;
    refused(status, &body, "does not verify with the pinned certificate");

    // Signed, then changed: the signature no longer covers what is served.
    let signed = sign_metadata(&with_root(&sp, ""), "_md", &federation);
    server.set(signed.replace("https://sp.example.org/acs\"", "https://evil.example/acs\""));
    let (status, body) = import_url(&app, &token, import.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        gatehouse::saml::providers::find(&app.state.store, &sp.entity_id)
            .await
            .unwrap()
            .is_none()
    );

    server.set(signed);
    let (status, body) = import_url(&app, &token, import).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        registered_acs(&app, &sp.entity_id).await[0],
        "https://sp.example.org/acs"
    );

    let (status, body) = import_url(
        &app,
        &token,
        json!({"url": server.url(), "pinned_certificate": "not a certificate"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("pinned_certificate: "),
        "the API names its own field: {body}"
    );
}

#[tokio::test]
async fn one_sp_is_taken_from_a_signed_federation_aggregate() {
    let app = lab_app().await;
    let federation = KeyCert::new("federation signer");
    let (a, b) = (
        TestSp::new("https://a.example.org/acs"),
        TestSp::new("https://b.example.org/acs"),
    );
    let entity = |sp: &TestSp| {
        let md = sp.metadata(false);
        md[md.find("<md:EntityDescriptor").unwrap()..].to_owned()
    };
    let until = instant(Utc::now() + chrono::Duration::days(10));
    let aggregate = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_fed" Name="urn:example:federation" validUntil="{until}" cacheDuration="PT6H">{}{}</md:EntitiesDescriptor>"#,
        entity(&a),
        entity(&b)
    );
    let signed = sign_metadata(&aggregate, "_fed", &federation);
    assert!(xmlsec1_verify(
        &signed,
        ENTITIES_DESCRIPTOR,
        &federation.der()
    ));
    let server = MetadataServer::start(signed).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(
        &app,
        &token,
        json!({"url": server.url(), "pinned_certificate": pem(&federation)}),
    )
    .await;
    refused(status, &body, "name the one");
    let (status, body) = import_url(&app, &token, json!({"url": server.url(), "pinned_certificate": pem(&federation), "entity_id": b.entity_id})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entity_id"], b.entity_id.as_str());
    assert_eq!(
        registered_acs(&app, &b.entity_id).await[0],
        "https://b.example.org/acs"
    );
    assert!(
        gatehouse::saml::providers::find(&app.state.store, &a.entity_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn expired_oversized_and_dtd_bearing_metadata_is_refused() {
    let app = lab_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let expired = with_root(
        &sp,
        &format!(
            "validUntil=\"{}\"",
            instant(Utc::now() - chrono::Duration::hours(1))
        ),
    );
    let server = MetadataServer::start(expired).await;
    let token = admin_token(&app).await;
    let import = json!({"url": server.url()});
    let (status, body) = import_url(&app, &token, import.clone()).await;
    refused(status, &body, "expired");

    let padding = format!("<!-- {} -->", "x".repeat(2 * 1024 * 1024));
    server.set(format!("{}{padding}", sp.metadata(false)));
    let (status, body) = import_url(&app, &token, import.clone()).await;
    refused(status, &body, "larger than");

    let dtd = sp.metadata(false).replacen(
        "<md:EntityDescriptor",
        "<!DOCTYPE md [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><md:EntityDescriptor",
        1,
    );
    server.set(dtd);
    let (status, body) = import_url(&app, &token, import).await;
    refused(status, &body, "DTD");
    assert!(
        gatehouse::saml::providers::find(&app.state.store, &sp.entity_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn refresh_picks_up_a_new_acs_and_certificate_keeps_admin_settings_and_audits_it() {
    let app = lab_app().await;
    let federation = KeyCert::new("federation signer");
    let sp = TestSp::new("https://sp.example.org/acs");
    let server =
        MetadataServer::start(sign_metadata(&with_root(&sp, ""), "_md", &federation)).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(
        &app,
        &token,
        json!({"url": server.url(), "pinned_certificate": pem(&federation)}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The administrator's own decisions, made after the import.
    let res = rp_http()
        .put(app.url(&format!("/admin/api/v1/saml-sps/{}", handle(&sp.entity_id))))
        .bearer_auth(&token)
        .json(&json!({"name": "Renamed", "sign_response": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (status, body) = post(
        &app,
        &token,
        &format!("/saml-sps/{}/refresh", handle(&sp.entity_id)),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], json!([]));

    let rotated = KeyCert::new("sp signing, rotated");
    let moved = sp
        .metadata(false)
        .replace(
            "https://sp.example.org/acs\"",
            "https://sp.example.org/acs-v2\"",
        )
        .replace(&base64_der(&sp.signing), &base64_der(&rotated));
    let moved = moved.replacen(
        "<md:EntityDescriptor ",
        "<md:EntityDescriptor ID=\"_md\" ",
        1,
    );
    server.set(sign_metadata(&moved, "_md", &federation));
    let (status, body) = post(
        &app,
        &token,
        &format!("/saml-sps/{}/refresh", handle(&sp.entity_id)),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], json!(["acs", "signing_certs"]), "{body}");
    let now = gatehouse::saml::providers::find(&app.state.store, &sp.entity_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.acs[0].location, "https://sp.example.org/acs-v2");
    assert_eq!(now.signing_certs, vec![rotated.der()]);
    assert_eq!(now.name, "Renamed", "the administrator's settings stay");
    assert!(now.sign_response);

    let events = audit_events(&app, EventType::SamlSpMetadataRefreshed).await;
    let changed = events
        .iter()
        .find(|e| e.details["changed"] == "acs,signing_certs")
        .expect("the change is audited");
    assert_eq!(changed.details["entity_id"], sp.entity_id.as_str());
    assert_eq!(changed.outcome.as_str(), "success");
}

fn base64_der(key: &KeyCert) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.der())
}

#[tokio::test]
async fn a_metadata_server_that_is_down_keeps_the_old_sp_working_and_the_failure_is_audited() {
    let app = lab_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let server = MetadataServer::start(sp.metadata(false)).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(&app, &token, json!({"url": server.url()})).await;
    assert_eq!(status, 201, "{body}");
    in_the_clear(&app, &token, &sp.entity_id).await;
    server.stop().await;

    let (status, body) = post(
        &app,
        &token,
        &format!("/saml-sps/{}/refresh", handle(&sp.entity_id)),
        json!({}),
    )
    .await;
    refused(status, &body, "fetching it failed");
    assert_eq!(
        registered_acs(&app, &sp.entity_id).await,
        vec![
            "https://sp.example.org/acs",
            "https://sp.example.org/acs/second"
        ]
    );
    let failures = audit_events(&app, EventType::SamlSpMetadataRefreshed).await;
    assert!(
        failures.iter().any(|e| e.outcome.as_str() == "failure"
            && e.details["reason"]
                .as_str()
                .unwrap()
                .contains("fetching it failed")),
        "{failures:?}"
    );

    let client = signed_in_client(&app, "stillhere").await;
    let (name_id, _) = sso_assertion(&app, &sp, &client, false).await;
    assert!(!name_id.is_empty(), "the SP still signs people in");
}

#[tokio::test]
async fn the_schedule_refreshes_a_due_sp_by_itself() {
    let app = spawn_app_with(|c| {
        c.saml_metadata_allow_local = true;
        c.saml_metadata_refresh_secs = 1;
    })
    .await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let server = MetadataServer::start(sp.metadata(false)).await;
    let token = admin_token(&app).await;
    let (status, body) = import_url(&app, &token, json!({"url": server.url()})).await;
    assert_eq!(status, 201, "{body}");
    server.set(sp.metadata(false).replace(
        "https://sp.example.org/acs\"",
        "https://sp.example.org/moved\"",
    ));
    // Not due until the interval has passed on Gatehouse's clock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        registered_acs(&app, &sp.entity_id).await[0],
        "https://sp.example.org/acs"
    );
    app.clock.advance(chrono::Duration::seconds(2));
    let moved = eventually(Duration::from_secs(15), || async {
        registered_acs(&app, &sp.entity_id).await[0] == "https://sp.example.org/moved"
    })
    .await;
    assert!(moved, "the scheduled refresh applied the new ACS");
    // The audit writer commits on its own thread: the event may follow the change.
    let recorded = eventually(Duration::from_secs(5), || async {
        audit_events(&app, EventType::SamlSpMetadataRefreshed)
            .await
            .iter()
            .any(|e| e.details["changed"] == "acs" && e.actor.is_none())
    })
    .await;
    assert!(recorded, "the scheduled refresh is audited, by nobody");
}

#[tokio::test]
async fn the_command_line_imports_from_a_url_with_a_pinned_certificate_and_refreshes() {
    let app = crate::shibboleth::gatehouse().await;
    let federation = KeyCert::new("federation signer");
    let sp = TestSp::new("https://sp.example.org/acs");
    let server =
        MetadataServer::start(sign_metadata(&with_root(&sp, ""), "_md", &federation)).await;
    let pinned = app.data_dir.path().join("federation.pem");
    std::fs::write(&pinned, pem(&federation)).unwrap();
    // The command runs off this test's thread, which serves the metadata meanwhile.
    let cli = |args: &[&str]| {
        let mut cmd = crate::cli::gatehouse(app.data_dir.path());
        cmd.env("GATEHOUSE_SAML_METADATA_ALLOW_LOCAL", "true")
            .args(args);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let out = cli(&[
        "sp",
        "import",
        "--url",
        &server.url(),
        "--pinned-cert",
        pinned.to_str().unwrap(),
        "--encrypt-assertions",
        "false",
        "--json",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["entity_id"], sp.entity_id.as_str());

    let unsigned = TestSp::new("https://other.example.org/acs");
    server.set(unsigned.metadata(false));
    let out = cli(&[
        "sp",
        "import",
        "--url",
        &server.url(),
        "--pinned-cert",
        pinned.to_str().unwrap(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));

    let moved = with_root(&sp, "").replace(
        "https://sp.example.org/acs\"",
        "https://sp.example.org/acs-v3\"",
    );
    server.set(sign_metadata(&moved, "_md", &federation));
    let out = cli(&["sp", "refresh", &sp.entity_id, "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["changed"], json!(["acs"]));
    assert_eq!(
        registered_acs(&app, &sp.entity_id).await[0],
        "https://sp.example.org/acs-v3"
    );
}
