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
use gatehouse::saml::providers::{self, ImportSettings, NAMEID_PERSISTENT};
use openssl::hash::MessageDigest;

use crate::{
    helpers::{TestApp, create_user, spawn_app},
    saml::{KeyCert, TestSp, posted, rand_id, signing_sp},
};

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

#[tokio::test]
async fn oversized_truncated_and_bomb_messages_get_a_clear_4xx() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = fresh_client();
    // A DEFLATE bomb: 10 MB of spaces in a few kilobytes.
    let bomb = sp.redirect_query(
        &format!("<a>{}</a>", " ".repeat(10 * 1024 * 1024)),
        None,
        false,
    );
    refused(get(&app, &client, "/saml/sso", &bomb).await, "too large").await;
    // Past the message limit but inside the body limit.
    let (_, signed) = signed_request(&sp, &app);
    let padded = signed.replacen(
        "</saml:Issuer>",
        &format!(
            "</saml:Issuer><samlp:Extensions>{}</samlp:Extensions>",
            "x".repeat(70 * 1024)
        ),
        1,
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &padded).await,
        "too large",
    )
    .await;
    // Truncated: the XML, the base64, the DEFLATE stream.
    refused(
        post_xml(&app, &client, "/saml/sso", &signed[..signed.len() / 2]).await,
        "SAML message",
    )
    .await;
    let encoded = STANDARD.encode(&signed);
    let res = post_raw(
        &app,
        &client,
        "/saml/sso",
        form(&[("SAMLRequest", &encoded[..encoded.len() - 3])]),
    )
    .await;
    refused(res, "base64").await;
    let deflated = gatehouse::saml::xml::deflate(signed.as_bytes());
    let query = form(&[(
        "SAMLRequest",
        &STANDARD.encode(&deflated[..deflated.len() / 2]),
    )]);
    let res = get(&app, &client, "/saml/sso", &query).await;
    let status = res.status();
    assert!(status.is_client_error(), "{status}");
    // Not UTF-8.
    let latin1 = form(&[("SAMLRequest", &STANDARD.encode(b"<a>\xe9</a>"))]);
    refused(post_raw(&app, &client, "/saml/sso", latin1).await, "UTF-8").await;
}

#[tokio::test]
async fn a_signed_message_must_name_this_endpoint_as_its_destination() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "erin").await;
    let sso = app.url("/saml/sso");
    let without = |xml: String| xml.replace(&format!(" Destination=\"{sso}\""), "");

    // Signed by POST (enveloped) and by Redirect (query), without Destination.
    let i = id();
    let xml = without(sp.authn_request(&i, &app, "", ""));
    assert!(!xml.contains("Destination"));
    refused(
        post_xml(&app, &client, "/saml/sso", &sp.sign(&xml, &i)).await,
        "Destination",
    )
    .await;
    let xml = without(sp.authn_request(&id(), &app, "", ""));
    refused(
        get(
            &app,
            &client,
            "/saml/sso",
            &sp.redirect_query(&xml, None, true),
        )
        .await,
        "Destination",
    )
    .await;
    // A signed LogoutRequest without it.
    let (_, logout) = signed_logout_to(&sp, "someone", None);
    assert!(!logout.contains("Destination"));
    refused(
        post_xml(&app, &client, "/saml/slo", &logout).await,
        "Destination",
    )
    .await;

    // Another endpoint, signed or not: a message meant for another IdP (or for SLO).
    for other in [
        "https://other-idp.example/saml/sso".to_owned(),
        app.url("/saml/slo"),
    ] {
        let i = id();
        let xml = sp.authn_request(&i, &app, "", "").replace(&sso, &other);
        refused(
            post_xml(&app, &client, "/saml/sso", &sp.sign(&xml, &i)).await,
            "another endpoint",
        )
        .await;
        let xml = sp.authn_request(&id(), &app, "", "").replace(&sso, &other);
        refused(
            get(
                &app,
                &client,
                "/saml/sso",
                &sp.redirect_query(&xml, None, false),
            )
            .await,
            "another endpoint",
        )
        .await;
    }

    // Unsigned and without Destination is still accepted (Bindings make it optional).
    let xml = without(sp.authn_request(&id(), &app, "", ""));
    let res = get(
        &app,
        &client,
        "/saml/sso",
        &sp.redirect_query(&xml, None, false),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn replayed_signed_requests_are_refused() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    let client = signed_in(&app, "fay").await;
    let (_, genuine) = signed_request(&sp, &app);
    assert_eq!(
        post_xml(&app, &client, "/saml/sso", &genuine)
            .await
            .status(),
        200
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &genuine).await,
        "already used",
    )
    .await;
    // From another browser, too.
    let other = fresh_client();
    refused(
        post_xml(&app, &other, "/saml/sso", &genuine).await,
        "already used",
    )
    .await;
    let query = sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), Some("r"), true);
    assert_eq!(get(&app, &client, "/saml/sso", &query).await.status(), 200);
    refused(
        get(&app, &client, "/saml/sso", &query).await,
        "already used",
    )
    .await;
}

#[tokio::test]
async fn duplicated_binding_parameters_are_refused_and_the_signed_relay_state_is_used() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    let client = signed_in(&app, "gus").await;
    let query = || sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), Some("signed"), true);

    // A second RelayState after the signed one, spelt plainly or percent-encoded.
    for extra in ["&RelayState=evil", "&Relay%53tate=evil"] {
        let res = get(&app, &client, "/saml/sso", &format!("{}{extra}", query())).await;
        refused(res, "more than once").await;
    }
    // The other parameters twice.
    let q = query();
    for name in ["SAMLRequest", "SigAlg", "Signature"] {
        let pair = q
            .split('&')
            .find(|p| p.starts_with(&format!("{name}=")))
            .unwrap();
        refused(
            get(&app, &client, "/saml/sso", &format!("{q}&{pair}")).await,
            "more than once",
        )
        .await;
    }
    // A RelayState under an encoded name that the signature did not cover.
    let unsigned_relay = sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), None, true);
    let res = get(
        &app,
        &client,
        "/saml/sso",
        &format!("{unsigned_relay}&Relay%53tate=evil"),
    )
    .await;
    refused(res, "signature is not valid").await;
    // The signed RelayState is the one that goes back.
    let res = get(&app, &client, "/saml/sso", &query()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        posted(&res.text().await.unwrap()).2.as_deref(),
        Some("signed")
    );

    // POST bodies: the message or RelayState twice.
    let (_, genuine) = signed_request(&sp, &app);
    let encoded = STANDARD.encode(&genuine);
    for body in [
        form(&[
            ("SAMLRequest", encoded.as_str()),
            ("SAMLRequest", encoded.as_str()),
        ]),
        form(&[
            ("SAMLRequest", encoded.as_str()),
            ("RelayState", "a"),
            ("RelayState", "b"),
        ]),
    ] {
        refused(
            post_raw(&app, &client, "/saml/sso", body).await,
            "more than once",
        )
        .await;
    }
    // A request and a response in one message.
    let body = form(&[
        ("SAMLRequest", encoded.as_str()),
        ("SAMLResponse", encoded.as_str()),
    ]);
    refused(
        post_raw(&app, &client, "/saml/slo", body).await,
        "both SAMLRequest and SAMLResponse",
    )
    .await;
}

/// A query signed with `sig_alg` and `digest`, as `TestSp::redirect_query` does.
fn query_signed_with(sp: &TestSp, xml: &str, sig_alg: &str, digest: MessageDigest) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    let mut q = format!(
        "SAMLRequest={}&SigAlg={}",
        enc(&STANDARD.encode(deflated)),
        enc(sig_alg)
    );
    let mut signer = openssl::sign::Signer::new(digest, &sp.signing.key).unwrap();
    signer.update(q.as_bytes()).unwrap();
    q.push_str(&format!(
        "&Signature={}",
        enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
    ));
    q
}

#[tokio::test]
async fn refused_algorithms_and_keyinfo_keys_are_named_and_never_trusted() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    // Keys first: generating them takes a while on a loaded machine.
    let impostor = TestSp {
        signing: KeyCert::new("impostor"),
        ..TestSp::new(&sp.acs)
    };
    let impostor = TestSp {
        entity_id: sp.entity_id.clone(),
        ..impostor
    };
    let bare = TestSp::new("https://bare.example.org/acs");
    let client = signed_in(&app, "hal").await;
    let sha1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    let (_, signed) = signed_request(&sp, &app);
    let attack = signed.replace("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", sha1);
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        &format!("signature algorithm {sha1} is not accepted; use RSA-SHA256"),
    )
    .await;
    let query = query_signed_with(
        &sp,
        &sp.authn_request(&id(), &app, "", ""),
        sha1,
        MessageDigest::sha1(),
    );
    refused(
        get(&app, &client, "/saml/sso", &query).await,
        &format!("signature algorithm {sha1} is not accepted"),
    )
    .await;

    // A key of the attacker's own, its certificate in KeyInfo: never used.
    let i = id();
    let forged = impostor.sign(&impostor.authn_request(&i, &app, "", ""), &i);
    refused(
        post_xml(&app, &client, "/saml/sso", &forged).await,
        "signature is not valid",
    )
    .await;
    // An SP registered without a signing certificate has nothing to check a signature with.
    let metadata = bare.metadata(false);
    let start = metadata.find("<md:KeyDescriptor use=\"signing\">").unwrap();
    let end = metadata[start..].find("</md:KeyDescriptor>").unwrap()
        + start
        + "</md:KeyDescriptor>".len();
    let metadata = format!("{}{}", &metadata[..start], &metadata[end..]);
    providers::import(
        &app.state.store,
        &metadata,
        &ImportSettings {
            encrypt_assertions: Some(false),
            ..Default::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    let i = id();
    let signed = bare.sign(&bare.authn_request(&i, &app, "", ""), &i);
    refused(
        post_xml(&app, &client, "/saml/sso", &signed).await,
        "no signing certificate",
    )
    .await;
}
