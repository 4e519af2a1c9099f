//! A hostile service provider (issue 20, DESIGN §10): the messages an attacker who holds
//! one genuine signed request — or just knows a registered entity id — would send. Every
//! one is refused with a clear 4xx, nothing is posted on to any ACS, and Gatehouse never
//! connects anywhere: the references point at a [`Trap`] that must see no connection.
//!
//! The wrapping variants follow Somorovsky et al., "On Breaking SAML: Be Whoever You
//! Want to Be" (USENIX Security 2012), adapted from Responses to the requests an IdP
//! receives, whose signed element is the whole message.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{SecondsFormat, Utc};
use gatehouse::saml::providers::{ImportSettings, NAMEID_PERSISTENT};

use crate::{
    helpers::{TestApp, create_user, spawn_app},
    saml::{TestSp, posted, rand_id, signing_sp},
};

mod bindings;

const PASSWORD: &str = "Correct-Horse-9-Battery";

/// A TCP listener on 127.0.0.1 that the attack messages point at. It counts connections
/// and either closes them at once or holds them open without a byte (`hang`).
struct Trap {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Trap {
    async fn new(hang: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                if hang {
                    held.push(socket);
                }
            }
        });
        Self { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn assert_untouched(&self) {
        assert_eq!(
            self.hits.load(Ordering::SeqCst),
            0,
            "Gatehouse connected to the attacker's listener on port {}",
            self.port
        );
    }
}

/// Refused with a 4xx page that says `needle`, and nothing posted on to any SP.
async fn refused(res: reqwest::Response, needle: &str) {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(body.contains(needle), "expected {needle:?} in {body}");
    assert!(
        !body.contains("name=\"SAMLResponse\"") && !body.contains("/second"),
        "nothing is posted anywhere: {body}"
    );
}

/// A browser-like client (cookies, no redirects) that opens a new connection for every
/// request: tests here spend seconds generating keys between requests, and a pooled
/// connection the server has meanwhile closed for idleness would fail the next one.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn signed_in(app: &TestApp, username: &str) -> reqwest::Client {
    create_user(app, username, PASSWORD, false).await;
    let client = fresh_client();
    assert_eq!(app.sign_in(&client, username, PASSWORD).await.status(), 303);
    client
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn post_raw(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    body: String,
) -> reqwest::Response {
    client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_xml(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    xml: &str,
) -> reqwest::Response {
    post_raw(
        app,
        client,
        path,
        form(&[("SAMLRequest", &STANDARD.encode(xml))]),
    )
    .await
}

async fn get(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    query: &str,
) -> reqwest::Response {
    client
        .get(app.url(&format!("{path}?{query}")))
        .send()
        .await
        .unwrap()
}

fn id() -> String {
    format!("_{}", rand_id())
}

/// A genuine AuthnRequest signed by `sp`, without the XML declaration: (ID, XML).
fn signed_request(sp: &TestSp, app: &TestApp) -> (String, String) {
    let id = id();
    let signed = sp.sign(&sp.authn_request(&id, app, "", ""), &id);
    let body = signed
        .trim_start()
        .strip_prefix("<?xml version=\"1.0\"?>")
        .unwrap_or(&signed)
        .trim()
        .to_owned();
    (id, body)
}

/// A LogoutRequest from `sp` naming `name_id`, signed.
fn signed_logout(sp: &TestSp, app: &TestApp, name_id: &str) -> (String, String) {
    signed_logout_to(sp, name_id, Some(&app.url("/saml/slo")))
}

fn signed_logout_to(sp: &TestSp, name_id: &str, destination: Option<&str>) -> (String, String) {
    let id = id();
    let destination = destination
        .map(|d| format!(" Destination=\"{d}\""))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}"{destination}><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{NAMEID_PERSISTENT}">{name_id}</saml:NameID></samlp:LogoutRequest>"#,
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        issuer = sp.entity_id,
    );
    let signed = sp.sign(&xml, &id);
    (id, signed)
}

/// The signature element of a signed message, and the message without it.
fn split_signature(signed: &str) -> (String, String) {
    let start = signed.find("<ds:Signature").unwrap();
    let end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    (
        signed[start..end].to_owned(),
        format!("{}{}", &signed[..start], &signed[end..]),
    )
}

async fn registered(app: &TestApp, settings: ImportSettings) -> TestSp {
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(app, settings).await;
    sp
}

#[tokio::test]
async fn references_that_leave_the_message_are_refused_without_a_connection() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "ada").await;
    let trap = Trap::new(false).await;

    for target in [
        trap.url("x"),
        "file:///etc/passwd".to_owned(),
        String::new(),
        "#xpointer(/)".to_owned(),
    ] {
        // An AuthnRequest, then a LogoutRequest: both are verified when signed.
        let (id, signed) = signed_request(&sp, &app);
        let attack = signed.replace(&format!("URI=\"#{id}\""), &format!("URI=\"{target}\""));
        let res = post_xml(&app, &client, "/saml/sso", &attack).await;
        trap.assert_untouched();
        refused(res, "reference").await;

        let (id, signed) = signed_logout(&sp, &app, "someone");
        let attack = signed.replace(&format!("URI=\"#{id}\""), &format!("URI=\"{target}\""));
        let res = post_xml(&app, &client, "/saml/slo", &attack).await;
        trap.assert_untouched();
        refused(res, "reference").await;
    }
    // An XPointer to the message itself is still not the plain `#ID` form.
    let (id, signed) = signed_request(&sp, &app);
    let attack = signed.replace(
        &format!("URI=\"#{id}\""),
        &format!("URI=\"#xpointer(id('{id}'))\""),
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        "reference",
    )
    .await;

    // The genuine request is answered, so the refusals above are about the references.
    let (_, genuine) = signed_request(&sp, &app);
    let res = post_xml(&app, &client, "/saml/sso", &genuine).await;
    assert_eq!(res.status(), 200);
    assert_eq!(posted(&res.text().await.unwrap()).0, sp.acs);
    trap.assert_untouched();
}

#[tokio::test]
async fn a_reference_to_a_listener_that_never_answers_does_not_hold_up_the_server() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let trap = Trap::new(true).await;
    // More attacks at once than the server has request threads.
    let attacks: Vec<_> = (0..4)
        .map(|_| {
            let (id, signed) = signed_request(&sp, &app);
            let attack = signed.replace(
                &format!("URI=\"#{id}\""),
                &format!("URI=\"{}\"", trap.url("slow")),
            );
            let client = fresh_client();
            let url = app.url("/saml/sso");
            tokio::spawn(async move {
                let started = Instant::now();
                let res = client
                    .post(url)
                    .form(&[("SAMLRequest", STANDARD.encode(attack))])
                    .send()
                    .await;
                (started.elapsed(), res.map(|r| r.status()))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = tokio::time::timeout(Duration::from_secs(5), app.get("/healthz")).await;
    assert!(
        health.is_ok_and(|r| r.status() == 200),
        "/healthz answers while the attacks are in flight"
    );
    for attack in attacks {
        let (took, status) = attack.await.unwrap();
        let status = status.expect("the attack request gets an answer");
        assert!(status.is_client_error(), "{status}");
        assert!(
            took < Duration::from_secs(10),
            "refused at once, took {took:?}"
        );
    }
    trap.assert_untouched();
}

#[tokio::test]
async fn transforms_manifests_and_retrieval_methods_are_refused_before_xmlsec() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "bea").await;
    let trap = Trap::new(false).await;
    let xslt = format!(
        r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/"><xsl:copy-of select="document('{}')"/></xsl:template></xsl:stylesheet></ds:Transform>"#,
        trap.url("xslt")
    );
    let xpath = r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>count(//. | //@* | //namespace::*)</ds:XPath></ds:Transform>"#;
    let manifest = format!(
        r##"<ds:Object><ds:Manifest Id="m"><ds:Reference URI="{}"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:Manifest></ds:Object></ds:Signature>"##,
        trap.url("manifest")
    );
    let retrieval = format!(
        r#"<ds:KeyInfo><ds:RetrievalMethod URI="{}"/>"#,
        trap.url("key")
    );
    let cases = [
        ("<ds:Transforms>", format!("<ds:Transforms>{xslt}"), "xslt"),
        (
            "<ds:Transforms>",
            format!("<ds:Transforms>{xpath}"),
            "xpath",
        ),
        ("</ds:Signature>", manifest, "ds:Object"),
        ("<ds:KeyInfo>", retrieval, "ds:RetrievalMethod"),
    ];
    for (anchor, insert, needle) in cases {
        let (_, signed) = signed_request(&sp, &app);
        assert!(signed.contains(anchor), "{signed}");
        let attack = signed.replacen(anchor, &insert, 1);
        let res = post_xml(&app, &client, "/saml/sso", &attack).await;
        trap.assert_untouched();
        refused(res, needle).await;
    }
}

/// The wrapping attacks: each takes one genuine signed request and builds a message that
/// would be acted on with another ID and the SP's other ACS URL.
#[tokio::test]
async fn signature_wrapping_variants_are_refused_and_nothing_is_posted() {
    let app = spawn_app().await;
    // An SP that must sign: a signature is the only way in.
    let sp = registered(&app, signing_sp()).await;
    let client = signed_in(&app, "cleo").await;
    let evil = |inner: &str| {
        sp.authn_request(&id(), &app, "", inner).replace(
            &format!("AssertionConsumerServiceURL=\"{}\"", sp.acs),
            &format!("AssertionConsumerServiceURL=\"{}/second\"", sp.acs),
        )
    };
    let mut variants = Vec::new();
    {
        let (id, genuine) = signed_request(&sp, &app);
        let (signature, stripped) = split_signature(&genuine);
        // XSW1: the genuine message inside the copied Signature of an evil one.
        variants.push((
            "XSW1",
            evil(&signature.replace("</ds:Signature>", &format!("{stripped}</ds:Signature>"))),
        ));
        // XSW2: the genuine message beside the copied Signature (a detached signature).
        variants.push(("XSW2", evil(&format!("{stripped}{signature}"))));
        // XSW3/XSW4: the signed genuine message, signature and all, inside an evil one.
        variants.push(("XSW3", evil(&genuine)));
        variants.push((
            "XSW4",
            evil(&format!("<samlp:Extensions>{genuine}</samlp:Extensions>")),
        ));
        // XSW5: the evil message carries the signature, the genuine one follows it.
        variants.push((
            "XSW5",
            evil(&signature).replace(
                "</samlp:AuthnRequest>",
                &format!("{stripped}</samlp:AuthnRequest>"),
            ),
        ));
        // XSW6/XSW8: the genuine message in a ds:Object of the evil message's signature.
        variants.push((
            "XSW6",
            evil(&signature.replace(
                "</ds:Signature>",
                &format!("<ds:Object>{stripped}</ds:Object></ds:Signature>"),
            )),
        ));
        variants.push((
            "XSW8",
            evil(&signature.replace(
                "</ds:Signature>",
                &format!("<ds:Object>{genuine}</ds:Object></ds:Signature>"),
            )),
        ));
        // XSW7: the genuine message in Extensions, the signature on the evil one.
        variants.push((
            "XSW7",
            evil(&format!(
                "{signature}<samlp:Extensions>{stripped}</samlp:Extensions>"
            )),
        ));
        // The ID duplicated: the evil message takes the genuine one's ID.
        let with_id = sp
            .authn_request(
                &id,
                &app,
                "",
                &format!("{signature}<samlp:Extensions>{stripped}</samlp:Extensions>"),
            )
            .replace(
                &format!("AssertionConsumerServiceURL=\"{}\"", sp.acs),
                &format!("AssertionConsumerServiceURL=\"{}/second\"", sp.acs),
            );
        variants.push(("duplicated ID", with_id));
        // The ID again, on an element inside the Signature (out of the digest).
        variants.push((
            "ID inside the signature",
            genuine.replacen(
                "<ds:KeyInfo>",
                &format!("<ds:KeyInfo><ds:KeyName Id=\"{id}\">k</ds:KeyName>"),
                1,
            ),
        ));
        // The genuine Signature moved into an Extensions of the genuine message.
        variants.push((
            "signature moved",
            stripped.replacen(
                "</saml:Issuer>",
                &format!("</saml:Issuer><samlp:Extensions>{signature}</samlp:Extensions>"),
                1,
            ),
        ));
        // Two signatures: the genuine one and a copy.
        variants.push((
            "two signatures",
            genuine.replacen("</ds:Signature>", &format!("</ds:Signature>{signature}"), 1),
        ));
    }
    for (name, xml) in variants {
        let res = post_xml(&app, &client, "/saml/sso", &xml).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_client_error(), "{name}: {status}: {body}");
        assert!(body.contains("SAML message"), "{name}: {body}");
        assert!(
            !body.contains("SAMLResponse") && !body.contains("/second"),
            "{name}: {body}"
        );
    }
    // A genuine signed request still gets its Response.
    let (_, genuine) = signed_request(&sp, &app);
    let res = post_xml(&app, &client, "/saml/sso", &genuine).await;
    assert_eq!(res.status(), 200);
    assert_eq!(posted(&res.text().await.unwrap()).0, sp.acs);
}

#[tokio::test]
async fn comments_duplicates_dtds_and_foreign_encodings_are_refused() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "dora").await;
    // A comment inside the Issuer: exclusive c14n drops it, so the signature still holds,
    // while parsers disagree about the text around it.
    let (_, signed) = signed_request(&sp, &app);
    let cut = sp.entity_id.len() / 2;
    let issuer = format!(">{}</saml:Issuer>", sp.entity_id);
    let commented = format!(
        ">{}<!---->{}</saml:Issuer>",
        &sp.entity_id[..cut],
        &sp.entity_id[cut..]
    );
    let attack = signed.replacen(&issuer, &commented, 1);
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        "comments",
    )
    .await;
    // The same in a LogoutRequest's NameID.
    let (_, logout) = signed_logout(&sp, &app, "person-a");
    let attack = logout.replacen("person-a<", "person<!---->-a<", 1);
    refused(
        post_xml(&app, &client, "/saml/slo", &attack).await,
        "comments",
    )
    .await;
    // CDATA, likewise.
    let attack = signed.replacen(
        &issuer,
        &format!("><![CDATA[{}]]></saml:Issuer>", sp.entity_id),
        1,
    );
    refused(post_xml(&app, &client, "/saml/sso", &attack).await, "CDATA").await;

    // An attribute twice, under two prefixes: which one a parser reads is up to it.
    let attack = sp.authn_request(
        &id(),
        &app,
        &format!("saml:AssertionConsumerServiceURL=\"{}/second\"", sp.acs),
        "",
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        "appears twice",
    )
    .await;
    let attack = sp.authn_request(&id(), &app, "ID=\"_again\"", "");
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        "appears twice",
    )
    .await;

    // A DTD, in a signed message too.
    let dtd = format!(
        r#"<!DOCTYPE r [<!ENTITY x SYSTEM "{}">]>{signed}"#,
        "file:///etc/passwd"
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &dtd).await,
        "document type declaration",
    )
    .await;
    // An encoding that reads `+ADw-` as `<` in one parser and as text in another.
    let utf7 = format!(r#"<?xml version="1.0" encoding="UTF-7"?>{signed}"#);
    refused(post_xml(&app, &client, "/saml/sso", &utf7).await, "UTF-8").await;
}
