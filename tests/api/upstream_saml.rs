//! Signing in through an organisation's SAML identity provider (issue 28, DESIGN §16),
//! with a second Gatehouse on loopback as the real upstream IdP: its own users, sign-in
//! page, signing key and encryption. The downstream Gatehouse is its SP: a signed
//! AuthnRequest out, a signed (and encrypted) assertion back to the connector's ACS.
//!
//! The hostile cases start from a genuine Response the upstream sent for a genuine trip
//! and change one thing: the content (forged), the signature (gone, or another key's),
//! the audience or issuer (re-signed with the upstream's own key, so only that check can
//! refuse it), the trip (replayed, unsolicited).

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use gatehouse::{
    saml::providers::{self, ImportSettings},
    store::{orgs, upstream as rows},
};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, client, create_user, hidden, spawn_app, spawn_app_with},
    saml::{KeyCert, posted},
    upstream_oidc::{
        PASSWORD, account_username, audit_details, hidden_href, links, location, login_page,
        upstream_idp,
    },
};

pub const SLUG: &str = "hospital";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The account mapping for the attribute names Gatehouse's IdP releases by default.
pub fn gatehouse_attributes() -> Value {
    json!({ "username_claim": "username", "email_claim": "email", "name_claim": "displayName" })
}

/// Stores a SAML connector in `app`'s default organisation; its id.
pub async fn add_saml_connector(app: &TestApp, slug: &str, settings: Value) -> String {
    let state = app.state.clone();
    let org = state
        .store
        .run(|c| orgs::find_by_name(c, &gatehouse::domain::OrgName::parse("default").unwrap()))
        .await
        .unwrap()
        .unwrap();
    let values = rows::ConnectorValues {
        org_id: org.id,
        slug: slug.into(),
        display_name: format!("{slug} sign-in"),
        protocol: "saml".into(),
        enabled: true,
        settings: settings.to_string(),
        secret_sealed: None,
    };
    let now = Utc::now().naive_utc();
    state
        .store
        .run(move |c| rows::insert(c, &values, now))
        .await
        .unwrap()
        .id
}

pub struct SamlPair {
    pub upstream: TestApp,
    pub downstream: TestApp,
    pub connector_id: String,
}

/// An upstream IdP with the user `uma`, a downstream with connector `hospital` to it
/// (`saml` settings besides the upstream's metadata), registered at the upstream as an
/// SP from the metadata at its connector's URL, with `sp` settings.
pub async fn saml_pair(saml: Value, sp: ImportSettings) -> SamlPair {
    saml_pair_mapped(saml, gatehouse_attributes(), sp).await
}

/// [`saml_pair`] with the connector's account mapping `accounts`.
pub async fn saml_pair_mapped(saml: Value, accounts: Value, sp: ImportSettings) -> SamlPair {
    let upstream = upstream_idp().await;
    let downstream = spawn_app().await;
    create_user(&upstream, "uma", PASSWORD, false).await;
    let idp_metadata = upstream.get("/saml/metadata").await.text().await.unwrap();
    let mut settings = json!({ "metadata_xml": idp_metadata });
    settings
        .as_object_mut()
        .unwrap()
        .extend(saml.as_object().unwrap().clone());
    let connector_id = add_saml_connector(
        &downstream,
        SLUG,
        json!({ "saml": settings, "accounts": accounts }),
    )
    .await;
    let res = downstream
        .get(&format!("/upstream/{SLUG}/saml/metadata"))
        .await;
    assert_eq!(res.status(), 200);
    let sp_metadata = res.text().await.unwrap();
    providers::import(&upstream.state.store, &sp_metadata, &sp, Utc::now())
        .await
        .expect("the upstream imports our SP metadata");
    SamlPair {
        upstream,
        downstream,
        connector_id,
    }
}

/// What the upstream posts back: the ACS, the Response XML, the RelayState.
pub struct Posted {
    pub action: String,
    pub xml: String,
    pub relay: Option<String>,
}

/// From the downstream's sign-in button through the upstream's sign-in (or its
/// session) to the page that would post the Response to our ACS.
pub async fn to_acs(pair: &SamlPair, browser: &reqwest::Client) -> Posted {
    let (_, html) = login_page(&pair.downstream, browser).await;
    let button = hidden_href(&html, &format!("upstream-{SLUG}"));
    let res = browser
        .get(pair.downstream.url(&button))
        .send()
        .await
        .unwrap();
    let start = location(&res);
    assert!(
        start.starts_with(&format!("/upstream/{SLUG}/saml/start?tx=")),
        "{start}"
    );
    let res = browser
        .get(pair.downstream.url(&start))
        .send()
        .await
        .unwrap();
    let to_upstream = location(&res);
    assert!(
        to_upstream.starts_with(&pair.upstream.url("/saml/sso?SAMLRequest=")),
        "{to_upstream}"
    );
    assert!(to_upstream.contains("&Signature="), "a signed AuthnRequest");
    let res = browser.get(&to_upstream).send().await.unwrap();
    let html = if res.status() == 303 {
        let login = location(&res);
        assert!(login.starts_with("/login?tx="), "{login}");
        let page = browser
            .get(pair.upstream.url(&login))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let res = pair
            .upstream
            .post_form(
                browser,
                "/login",
                &[
                    ("tx", &hidden(&page, "tx")),
                    ("csrf", &hidden(&page, "csrf")),
                    ("username", "uma"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 200, "the upstream's POST page");
        res.text().await.unwrap()
    } else {
        assert_eq!(res.status(), 200, "the upstream's POST page");
        res.text().await.unwrap()
    };
    let (action, xml, relay) = posted(&html);
    assert_eq!(
        action,
        pair.downstream.url(&format!("/upstream/{SLUG}/saml/acs"))
    );
    Posted { action, xml, relay }
}

/// Posts `xml` as the Response to the ACS, cross-site as the upstream's page would.
pub async fn post_response(
    browser: &reqwest::Client,
    action: &str,
    xml: &str,
    relay: Option<&str>,
) -> reqwest::Response {
    let encoded = STANDARD.encode(xml);
    let mut form = vec![("SAMLResponse", encoded.as_str())];
    if let Some(relay) = relay {
        form.push(("RelayState", relay));
    }
    browser
        .post(action)
        .header("Origin", "null")
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A refusal page with `status`; its text.
async fn refused(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    let html = res.text().await.unwrap();
    assert!(!html.contains("Internal"), "{html}");
    html
}

/// What the audit trail says each refused upstream answer was refused for, newest first.
async fn refusals(app: &TestApp) -> Vec<String> {
    audit_details(app, gatehouse::audit::EventType::SignInFailed)
        .await
        .iter()
        .filter(|d| d["connector"] == SLUG)
        .map(|d| d["upstream_error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The clear assertion of a Response, and the Response with `assertion` instead.
fn assertion_of(xml: &str) -> String {
    let start = xml.find("<saml2:Assertion").expect("a clear assertion");
    let end = xml.rfind("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
    xml[start..end].to_owned()
}

fn with_assertion(xml: &str, assertion: &str) -> String {
    xml.replace(&assertion_of(xml), assertion)
}

fn without_signature(assertion: &str) -> String {
    let start = assertion.find("<ds:Signature").unwrap();
    let end = assertion.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    format!("{}{}", &assertion[..start], &assertion[end..])
}

/// The assertion changed by `edit` and signed again (enveloped, RSA-SHA256, exclusive
/// c14n) with `key` (PKCS#8 DER).
fn resigned(assertion: &str, key: &[u8], edit: impl Fn(&str) -> String) -> String {
    let bare = edit(&without_signature(assertion));
    let id_at = bare.find(" ID=\"").unwrap() + 5;
    let id = &bare[id_at..id_at + bare[id_at..].find('"').unwrap()];
    let template = format!(
        r##"<ds:Signature xmlns:ds="{NS_DSIG}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    );
    let after_issuer = bare.find("</saml2:Issuer>").unwrap() + "</saml2:Issuer>".len();
    let unsigned = format!(
        "{}{template}{}",
        &bare[..after_issuer],
        &bare[after_issuer..]
    );
    use samael::crypto::{Crypto, CryptoProvider};
    let signed = Crypto::sign_xml(&unsigned, key).unwrap();
    let root = signed.find("<saml2:Assertion").unwrap();
    signed[root..].trim().to_owned()
}

fn upstream_key(pair: &SamlPair) -> Vec<u8> {
    pair.upstream
        .state
        .saml_keys
        .current()
        .private_der()
        .to_vec()
}

/// A change to an assertion, named by what its refusal says.
type Change<'a> = (&'a str, Box<dyn Fn(&str) -> String + 'a>);

/// Assertions in clear, so the hostile tests can change them.
fn clear() -> ImportSettings {
    ImportSettings {
        encrypt_assertions: Some(false),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_encrypted_signed_assertion_signs_in_the_upstream_person_just_in_time() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    assert!(
        posted.xml.contains("EncryptedAssertion") && !posted.xml.contains("uma@example.org"),
        "the upstream encrypts to the key our metadata publishes"
    );
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&pair.downstream, &browser).await, "uma");
    let linked = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(linked.len(), 1, "linked to the new account");

    // Another browser: the upstream's persistent NameID finds the same account.
    let again = client();
    let posted = to_acs(&pair, &again).await;
    let res = post_response(&again, &posted.action, &posted.xml, posted.relay.as_deref()).await;
    assert_eq!(location(&res), "/account");
    let still = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].user_id, linked[0].user_id);
    let signed_in = audit_details(
        &pair.downstream,
        gatehouse::audit::EventType::SignInSucceeded,
    )
    .await;
    assert_eq!(
        signed_in.iter().filter(|d| d["connector"] == SLUG).count(),
        2,
        "{signed_in:?}"
    );
}

#[tokio::test]
async fn a_response_signed_only_as_a_whole_is_accepted() {
    let sp = ImportSettings {
        sign_response: Some(true),
        sign_assertion: Some(false),
        ..clear()
    };
    let pair = saml_pair(json!({}), sp).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    assert!(!assertion_of(&posted.xml).contains("<ds:Signature"));
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&pair.downstream, &browser).await, "uma");
}

#[tokio::test]
async fn our_sp_metadata_asks_for_signed_assertions_and_publishes_our_keys() {
    let pair = saml_pair(json!({}), clear()).await;
    let xml = pair
        .downstream
        .get(&format!("/upstream/{SLUG}/saml/metadata"))
        .await
        .text()
        .await
        .unwrap();
    let entity = pair
        .downstream
        .url(&format!("/upstream/{SLUG}/saml/metadata"));
    assert!(xml.contains(&format!("entityID=\"{entity}\"")), "{xml}");
    assert!(xml.contains("AuthnRequestsSigned=\"true\""));
    assert!(xml.contains("WantAssertionsSigned=\"true\""));
    assert!(xml.contains("use=\"signing\"") && xml.contains("use=\"encryption\""));
    let sp = providers::from_metadata(&xml, &ImportSettings::default()).unwrap();
    assert_eq!(
        sp.default_acs().unwrap().location,
        pair.downstream.url(&format!("/upstream/{SLUG}/saml/acs"))
    );
    assert!(sp.require_signed_requests && sp.encrypt_assertions);
    // No metadata, and no sign-in, for a connector that does not exist.
    let res = pair.downstream.get("/upstream/nowhere/saml/metadata").await;
    refused(res, 404).await;
}

#[tokio::test]
async fn a_genuine_response_re_signed_by_the_upstream_key_is_accepted() {
    // The control for the re-signing below: unchanged, it passes every check.
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    let assertion = resigned(
        &assertion_of(&posted.xml),
        &upstream_key(&pair),
        str::to_owned,
    );
    let xml = with_assertion(&posted.xml, &assertion);
    let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
    assert_eq!(location(&res), "/account");
}

#[tokio::test]
async fn forged_unsigned_or_foreign_signed_assertions_are_refused() {
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let other = KeyCert::new("not the upstream");
    let cases: Vec<Change> = vec![
        (
            "does not verify",
            Box::new(|a: &str| a.replace("uma@example.org", "eve@example.org")),
        ),
        (
            "neither the Response nor its assertion is signed",
            Box::new(without_signature),
        ),
        (
            "does not verify",
            Box::new(move |a: &str| resigned(a, &other.pkcs8(), str::to_owned)),
        ),
    ];
    for (name, change) in cases {
        let posted = to_acs(&pair, &browser).await;
        let xml = with_assertion(&posted.xml, &change(&assertion_of(&posted.xml)));
        let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
        let html = refused(res, 400).await;
        assert!(html.contains("could not be trusted"), "{name}: {html}");
        let why = refusals(&pair.downstream).await;
        assert!(why.first().unwrap().contains(name), "{name}: {why:?}");
    }
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
    let failures = audit_details(&pair.downstream, gatehouse::audit::EventType::SignInFailed).await;
    assert_eq!(
        failures
            .iter()
            .filter(|d| d["reason"] == "upstream_rejected" && d["connector"] == SLUG)
            .count(),
        3,
        "{failures:?}"
    );
    let res = pair.downstream.get("/account").await;
    assert_ne!(res.status(), 200, "no session");
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_refused_even_when_the_upstream_signed_it() {
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let audience = pair
        .downstream
        .url(&format!("/upstream/{SLUG}/saml/metadata"));
    let issuer = pair.upstream.url("/saml/metadata");
    let key = upstream_key(&pair);
    let edits: Vec<Change> = vec![
        (
            "another audience",
            Box::new(|a: &str| {
                a.replace(
                    &format!("<saml2:Audience>{audience}</saml2:Audience>"),
                    "<saml2:Audience>https://other-sp.example/</saml2:Audience>",
                )
            }),
        ),
        (
            "the assertion names another issuer",
            Box::new(|a: &str| {
                a.replacen(
                    &format!(">{issuer}</saml2:Issuer>"),
                    ">https://other-idp.example/</saml2:Issuer>",
                    1,
                )
            }),
        ),
    ];
    for (name, edit) in edits {
        let posted = to_acs(&pair, &browser).await;
        let original = assertion_of(&posted.xml);
        let assertion = resigned(&original, &key, |a| edit(a));
        assert_ne!(
            without_signature(&assertion),
            without_signature(&original),
            "{name}"
        );
        let xml = with_assertion(&posted.xml, &assertion);
        let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
        let html = refused(res, 400).await;
        assert!(html.contains("could not be trusted"), "{name}: {html}");
        let why = refusals(&pair.downstream).await;
        assert!(why.first().unwrap().contains(name), "{name}: {why:?}");
    }
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
}

#[tokio::test]
async fn a_signed_assertion_wrapped_around_or_beside_a_forged_one_is_refused() {
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let forge = |genuine: &str| {
        without_signature(genuine)
            .replace("uma@example.org", "eve@example.org")
            .replacen(" ID=\"", " ID=\"_evil", 1)
    };
    let cases: Vec<Change> = vec![
        (
            "more than one assertion",
            Box::new(move |a: &str| format!("{}{a}", forge(a))),
        ),
        (
            "not directly in the Response",
            Box::new(|a: &str| {
                // The genuine signed assertion hidden in the forged one's Advice.
                let forged = forge(a);
                let at = forged.find("<saml2:Subject>").unwrap();
                format!(
                    "{}<saml2:Advice>{a}</saml2:Advice>{}",
                    &forged[..at],
                    &forged[at..]
                )
            }),
        ),
    ];
    for (name, change) in cases {
        let posted = to_acs(&pair, &browser).await;
        let xml = with_assertion(&posted.xml, &change(&assertion_of(&posted.xml)));
        let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
        refused(res, 400).await;
        let why = refusals(&pair.downstream).await;
        assert!(why.first().unwrap().contains(name), "{name}: {why:?}");
    }
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
}

#[tokio::test]
async fn a_transient_name_id_is_refused_as_an_account_name() {
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    let assertion = resigned(&assertion_of(&posted.xml), &upstream_key(&pair), |a| {
        a.replace(providers::NAMEID_PERSISTENT, providers::NAMEID_TRANSIENT)
    });
    let xml = with_assertion(&posted.xml, &assertion);
    let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
    refused(res, 400).await;
    let why = refusals(&pair.downstream).await;
    assert!(why.first().unwrap().contains("transient"), "{why:?}");
}

#[tokio::test]
async fn an_error_status_from_the_upstream_is_shown_and_audited() {
    // The upstream gives this SP only transient NameIDs, and we ask for a persistent
    // one: it answers at once with a signed error Response (InvalidNameIDPolicy).
    let sp = ImportSettings {
        name_id_format: Some(providers::NAMEID_TRANSIENT.into()),
        ..clear()
    };
    let pair = saml_pair(json!({}), sp).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    assert!(!posted.xml.contains("Assertion"), "{}", posted.xml);
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    let html = refused(res, 401).await;
    assert!(html.contains("did not sign you in"), "{html}");
    let failures = audit_details(&pair.downstream, gatehouse::audit::EventType::SignInFailed).await;
    let denied = failures
        .iter()
        .find(|d| d["reason"] == "upstream_denied")
        .unwrap_or_else(|| panic!("{failures:?}"));
    assert!(
        denied["upstream_error"]
            .as_str()
            .unwrap()
            .contains("urn:oasis:names:tc:SAML:2.0:status:Requester"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_replayed_or_unsolicited_response_finds_no_sign_in() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    // Unsolicited: no RelayState, so no trip; then with a RelayState we never gave.
    let res = post_response(&browser, &posted.action, &posted.xml, None).await;
    assert!(refused(res, 400).await.contains("expired"));
    let res = post_response(&browser, &posted.action, &posted.xml, Some("made-up")).await;
    assert!(refused(res, 400).await.contains("expired"));
    // The genuine one still works, once.
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert_eq!(location(&res), "/account");
    let replayed = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert!(refused(replayed, 400).await.contains("expired"));
    // Another browser presenting the Response with its own fresh trip: the request IDs
    // differ, and the assertion was used.
    let thief = client();
    let theirs = to_acs(&pair, &thief).await;
    let res = post_response(&thief, &theirs.action, &posted.xml, theirs.relay.as_deref()).await;
    refused(res, 400).await;
    let why = refusals(&pair.downstream).await;
    assert!(
        why.first().unwrap().contains("does not answer our request"),
        "{why:?}"
    );
}

#[tokio::test]
async fn an_assertion_in_clear_is_refused_when_encryption_is_required() {
    let pair = saml_pair(json!({ "require_encrypted_assertions": true }), clear()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    refused(res, 400).await;
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
}

#[tokio::test]
async fn a_disabled_connector_neither_starts_nor_accepts_a_sign_in() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    let id = pair.connector_id.clone();
    pair.downstream
        .state
        .store
        .run(move |c| {
            let row = rows::find(c, &id)?.unwrap();
            let values = rows::ConnectorValues {
                org_id: row.org_id,
                slug: row.slug,
                display_name: row.display_name,
                protocol: row.protocol,
                enabled: false,
                settings: row.settings,
                secret_sealed: row.secret_sealed,
            };
            rows::update(c, &id, &values, Utc::now().naive_utc())
        })
        .await
        .unwrap();
    let res = post_response(
        &browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert!(refused(res, 404).await.contains("not available"));
    let (tx_page, _) = login_page(&pair.downstream, &browser).await;
    let tx = tx_page.split("tx=").nth(1).unwrap().to_owned();
    let res = browser
        .get(
            pair.downstream
                .url(&format!("/upstream/{SLUG}/saml/start?tx={tx}")),
        )
        .send()
        .await
        .unwrap();
    refused(res, 404).await;
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
}

#[tokio::test]
async fn an_upstream_whose_metadata_cannot_be_fetched_gets_a_clear_page() {
    let downstream = spawn_app_with(|c| c.saml_metadata_allow_local = true).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/saml/metadata", closed.local_addr().unwrap());
    drop(closed);
    add_saml_connector(
        &downstream,
        SLUG,
        json!({ "saml": { "metadata_url": url }, "accounts": gatehouse_attributes() }),
    )
    .await;
    let browser = client();
    let (_, html) = login_page(&downstream, &browser).await;
    let button = hidden_href(&html, &format!("upstream-{SLUG}"));
    let res = browser.get(downstream.url(&button)).send().await.unwrap();
    let start = location(&res);
    let res = browser.get(downstream.url(&start)).send().await.unwrap();
    let html = refused(res, 502).await;
    assert!(html.contains("could not be reached"), "{html}");
    let failures = audit_details(&downstream, gatehouse::audit::EventType::SignInFailed).await;
    assert!(
        failures
            .iter()
            .any(|d| d["reason"] == "upstream_unreachable" && d["connector"] == SLUG),
        "{failures:?}"
    );
}

#[tokio::test]
async fn a_mapped_fhir_user_attribute_sets_the_persons_fhir_resource() {
    const FHIR: &str = "https://fhir.example.org/r4";
    let mut accounts = gatehouse_attributes();
    accounts["fhir_user"] = json!({ "claim": "urn:example:fhirUser", "fhir_server": FHIR });
    let pair = saml_pair_mapped(json!({}), accounts, clear()).await;
    crate::upstream_oidc::register_fhir_server(&pair.downstream, FHIR).await;
    let browser = client();
    let posted = to_acs(&pair, &browser).await;
    let assertion = resigned(&assertion_of(&posted.xml), &upstream_key(&pair), |a| {
        a.replacen(
            "<saml2:AttributeStatement>",
            "<saml2:AttributeStatement><saml2:Attribute Name=\"urn:example:fhirUser\">\
             <saml2:AttributeValue>Practitioner/dr-7</saml2:AttributeValue></saml2:Attribute>",
            1,
        )
    });
    let xml = with_assertion(&posted.xml, &assertion);
    let res = post_response(&browser, &posted.action, &xml, posted.relay.as_deref()).await;
    assert_eq!(location(&res), "/account");
    let user_id = links(&pair.downstream, &pair.connector_id).await[0]
        .user_id
        .clone();
    assert_eq!(
        crate::upstream_oidc::fhir_user_of(&pair.downstream, &user_id, FHIR)
            .await
            .as_deref(),
        Some("Practitioner/dr-7")
    );
}
