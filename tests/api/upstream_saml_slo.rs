//! SAML Single Logout with an upstream IdP (issue 28), with a second Gatehouse on
//! loopback as the real upstream: signing out here ends the session there (our signed
//! LogoutRequest, its LogoutResponse back), signing out there ends ours (its signed
//! LogoutRequest through its front-channel chain, our LogoutResponse back), and forged,
//! unsigned, foreign, replayed or unasked-for messages end nothing.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{SecondsFormat, Utc};
use gatehouse::saml::providers::{self, ImportSettings, NAMEID_PERSISTENT};
use openssl::{hash::MessageDigest, pkey::PKey};
use serde_json::json;
use url::Url;

use crate::{
    helpers::{client, create_user, hidden, spawn_app, unescape},
    oidc::continue_link,
    saml::{KeyCert, posted, rand_id},
    upstream_oidc::{PASSWORD, audit_details, location, upstream_idp},
    upstream_saml::{
        SLUG, SamlPair, add_saml_connector, gatehouse_attributes, post_response, saml_pair, to_acs,
    },
};

/// Signs the browser in at the downstream through the upstream; the NameID it got.
async fn sign_in(pair: &SamlPair, browser: &reqwest::Client) -> String {
    let posted = to_acs(pair, browser).await;
    let res = post_response(
        browser,
        &posted.action,
        &posted.xml,
        posted.relay.as_deref(),
    )
    .await;
    assert_eq!(location(&res), "/account");
    let name_id = posted.xml.find("<saml2:NameID").map(|i| {
        let rest = &posted.xml[i..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest.find("</saml2:NameID>").unwrap();
        rest[open..close].to_owned()
    });
    name_id.unwrap_or_default()
}

async fn status_of(browser: &reqwest::Client, url: &str) -> u16 {
    browser.get(url).send().await.unwrap().status().as_u16()
}

/// Assertions in clear, so the test can read the NameID.
fn clear() -> ImportSettings {
    ImportSettings {
        encrypt_assertions: Some(false),
        ..Default::default()
    }
}

fn slo_path() -> String {
    format!("/upstream/{SLUG}/saml/slo")
}

#[tokio::test]
async fn signing_out_here_ends_the_upstream_session_and_comes_back_signed_out() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    sign_in(&pair, &browser).await;
    assert_eq!(
        status_of(&browser, &pair.upstream.url("/account")).await,
        200
    );

    // Our SP metadata says where the upstream reaches our Single Logout.
    let metadata = pair
        .downstream
        .get(&format!("/upstream/{SLUG}/saml/metadata"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains(&format!(
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{}"/>"#,
            pair.downstream.url(&slo_path())
        )),
        "{metadata}"
    );
    assert!(metadata.contains("bindings:HTTP-POST\" Location=\""));

    let csrf = pair.downstream.account_csrf(&browser).await;
    let res = pair
        .downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let to_upstream = continue_link(&res.text().await.unwrap());
    assert!(
        to_upstream.starts_with(&pair.upstream.url("/saml/slo?SAMLRequest=")),
        "{to_upstream}"
    );
    assert!(
        to_upstream.contains("&Signature="),
        "a signed LogoutRequest"
    );
    assert_eq!(
        status_of(&browser, &pair.downstream.url("/account")).await,
        303,
        "signed out here before the browser leaves"
    );

    // The upstream ends its session and answers at our SLO endpoint.
    let res = browser.get(&to_upstream).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(
        back.starts_with(
            &pair
                .downstream
                .url(&format!("{}?SAMLResponse=", slo_path()))
        ),
        "{back}"
    );
    assert_eq!(
        status_of(&browser, &pair.upstream.url("/account")).await,
        303,
        "signed out at the upstream"
    );
    let res = browser.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    let logouts = audit_details(&pair.downstream, gatehouse::audit::EventType::SamlLogout).await;
    assert!(
        logouts
            .iter()
            .any(|d| d["direction"] == "to_upstream" && d["connector"] == SLUG),
        "{logouts:?}"
    );

    // The answer is taken once.
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn signing_out_at_the_upstream_ends_the_session_here_and_goes_back() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    sign_in(&pair, &browser).await;
    let csrf = pair.upstream.account_csrf(&browser).await;
    let res = pair
        .upstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let to_us = continue_link(&res.text().await.unwrap());
    assert!(
        to_us.starts_with(&pair.downstream.url(&format!("{}?SAMLRequest=", slo_path()))),
        "{to_us}"
    );
    assert_eq!(
        status_of(&browser, &pair.downstream.url("/account")).await,
        200
    );

    let res = browser.get(&to_us).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(
        back.starts_with(&pair.upstream.url("/saml/slo?SAMLResponse=")),
        "{back}"
    );
    assert!(back.contains("&Signature="), "a signed LogoutResponse");
    assert_eq!(
        status_of(&browser, &pair.downstream.url("/account")).await,
        303,
        "the session here ended"
    );
    let ended = audit_details(&pair.downstream, gatehouse::audit::EventType::SessionEnded).await;
    assert!(
        ended
            .iter()
            .any(|d| d["reason"] == "upstream_logout" && d["connector"] == SLUG),
        "{ended:?}"
    );

    // The upstream accepts our answer and finishes its sign-out.
    let res = browser.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    let told = audit_details(&pair.upstream, gatehouse::audit::EventType::SamlLogout).await;
    assert!(
        told.iter()
            .any(|d| d["direction"] == "to_sp" && d["reason"] == "confirmed"),
        "{told:?}"
    );
}

/// A LogoutRequest to the downstream's SLO endpoint naming `name_id`.
fn logout_request(pair: &SamlPair, id: &str, issuer: &str, name_id: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{NAMEID_PERSISTENT}">{name_id}</saml:NameID></samlp:LogoutRequest>"#,
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        dest = pair.downstream.url(&slo_path()),
    )
}

/// A LogoutResponse to the downstream's SLO endpoint.
fn logout_response(pair: &SamlPair, in_response_to: &str) -> String {
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{id}" Version="2.0" IssueInstant="{at}" Destination="{dest}" InResponseTo="{in_response_to}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
        id = rand_id(),
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        dest = pair.downstream.url(&slo_path()),
        issuer = upstream_entity(pair),
    )
}

fn upstream_entity(pair: &SamlPair) -> String {
    gatehouse::saml::entity_id(&pair.upstream.state)
}

/// The HTTP-Redirect query for `xml` as `param`, signed with `key` (PKCS#8 DER) when
/// given.
fn redirect_query(param: &str, xml: &str, relay: Option<&str>, key: Option<&[u8]>) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    let mut q = format!("{param}={}", enc(&STANDARD.encode(deflated)));
    if let Some(r) = relay {
        q.push_str(&format!("&RelayState={}", enc(r)));
    }
    if let Some(key) = key {
        q.push_str(&format!(
            "&SigAlg={}",
            enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        ));
        let key = PKey::private_key_from_pkcs8(key).unwrap();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).unwrap();
        signer.update(q.as_bytes()).unwrap();
        q.push_str(&format!(
            "&Signature={}",
            enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
        ));
    }
    q
}

fn upstream_key(pair: &SamlPair) -> Vec<u8> {
    pair.upstream
        .state
        .saml_keys
        .current()
        .private_der()
        .to_vec()
}

async fn send(pair: &SamlPair, query: &str) -> reqwest::Response {
    client()
        .get(pair.downstream.url(&format!("{}?{query}", slo_path())))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn forged_unsigned_foreign_or_replayed_logout_requests_end_nothing() {
    let pair = saml_pair(json!({}), clear()).await;
    let browser = client();
    let name_id = sign_in(&pair, &browser).await;
    assert!(!name_id.is_empty());
    let key = upstream_key(&pair);
    let issuer = upstream_entity(&pair);
    let still_signed_in = || async { status_of(&browser, &pair.downstream.url("/account")).await };

    let unsigned = logout_request(&pair, &format!("_{}", rand_id()), &issuer, &name_id);
    let res = send(&pair, &redirect_query("SAMLRequest", &unsigned, None, None)).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("must be signed"));

    let other = KeyCert::new("not the upstream").pkcs8();
    let forged = logout_request(&pair, &format!("_{}", rand_id()), &issuer, &name_id);
    let res = send(
        &pair,
        &redirect_query("SAMLRequest", &forged, None, Some(&other)),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("signature is not valid"));

    let foreign = logout_request(
        &pair,
        &format!("_{}", rand_id()),
        "https://idp.elsewhere.example/metadata",
        &name_id,
    );
    let res = send(
        &pair,
        &redirect_query("SAMLRequest", &foreign, None, Some(&key)),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not issued by"));

    // Signed with the right key, but for another endpoint.
    let elsewhere = logout_request(&pair, &format!("_{}", rand_id()), &issuer, &name_id)
        .replace(&slo_path(), "/upstream/other/saml/slo");
    let res = send(
        &pair,
        &redirect_query("SAMLRequest", &elsewhere, None, Some(&key)),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("another endpoint"));

    // Signed, but past its NotOnOrAfter.
    let past =
        (Utc::now() - chrono::Duration::minutes(10)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let expired = logout_request(&pair, &format!("_{}", rand_id()), &issuer, &name_id)
        .replace(" Version=", &format!(" NotOnOrAfter=\"{past}\" Version="));
    let res = send(
        &pair,
        &redirect_query("SAMLRequest", &expired, None, Some(&key)),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("NotOnOrAfter"));
    assert_eq!(still_signed_in().await, 200, "nothing ended so far");

    // The genuine request ends the session by its NameID…
    let genuine = redirect_query(
        "SAMLRequest",
        &logout_request(&pair, &format!("_{}", rand_id()), &issuer, &name_id),
        Some("relay"),
        Some(&key),
    );
    let res = send(&pair, &genuine).await;
    assert_eq!(res.status(), 303);
    let answer = Url::parse(&location(&res)).unwrap();
    assert!(
        answer
            .as_str()
            .starts_with(&pair.upstream.url("/saml/slo?SAMLResponse=")),
        "{answer}"
    );
    assert!(
        answer
            .query_pairs()
            .any(|(k, v)| k == "RelayState" && v == "relay")
    );
    assert_eq!(still_signed_in().await, 303);

    // …and, replayed after the person signed in again, ends nothing.
    let again = client();
    sign_in(&pair, &again).await;
    let res = send(&pair, &genuine).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("already used"));
    assert_eq!(
        status_of(&again, &pair.downstream.url("/account")).await,
        200
    );
    let refused = audit_details(&pair.downstream, gatehouse::audit::EventType::SamlLogout).await;
    assert!(
        refused.iter().filter(|d| d["reason"].is_string()).count() >= 5,
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_logout_response_to_no_request_of_ours_is_refused_and_the_real_one_still_counts() {
    let pair = saml_pair(json!({}), ImportSettings::default()).await;
    let browser = client();
    sign_in(&pair, &browser).await;
    let csrf = pair.downstream.account_csrf(&browser).await;
    let res = pair
        .downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    let to_upstream = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let relay = to_upstream
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("a RelayState");
    let key = upstream_key(&pair);

    // Signed by the upstream, with our RelayState, but not in response to our request.
    let stray = logout_response(&pair, "_not-our-request");
    let res = send(
        &pair,
        &redirect_query("SAMLResponse", &stray, Some(&relay), Some(&key)),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("not to the sign-out request Gatehouse sent")
    );
    // No sign-out in progress under that RelayState.
    let res = send(
        &pair,
        &redirect_query("SAMLResponse", &stray, Some("unknown"), Some(&key)),
    )
    .await;
    assert_eq!(res.status(), 400);
    // Unsigned, with the right RelayState.
    let res = send(
        &pair,
        &redirect_query("SAMLResponse", &stray, Some(&relay), None),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("must be signed"));

    // The upstream's genuine answer still brings the browser home.
    let res = browser.get(to_upstream.as_str()).send().await.unwrap();
    let back = location(&res);
    let res = browser.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
}

/// `metadata` without its HTTP-Redirect SingleLogoutService.
fn without_redirect_slo(metadata: &str) -> String {
    let tag =
        r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect""#;
    let start = metadata.find(tag).expect("a Redirect SingleLogoutService");
    let end = start + metadata[start..].find("/>").unwrap() + 2;
    format!("{}{}", &metadata[..start], &metadata[end..])
}

/// A pair whose IdP and SP both publish Single Logout by HTTP-POST only.
async fn post_only_pair() -> SamlPair {
    let upstream = upstream_idp().await;
    let downstream = spawn_app().await;
    create_user(&upstream, "uma", PASSWORD, false).await;
    let idp_metadata = upstream.get("/saml/metadata").await.text().await.unwrap();
    let connector_id = add_saml_connector(
        &downstream,
        SLUG,
        json!({
            "saml": { "metadata_xml": without_redirect_slo(&idp_metadata) },
            "accounts": gatehouse_attributes(),
        }),
    )
    .await;
    let sp_metadata = downstream
        .get(&format!("/upstream/{SLUG}/saml/metadata"))
        .await
        .text()
        .await
        .unwrap();
    providers::import(
        &upstream.state.store,
        &without_redirect_slo(&sp_metadata),
        &ImportSettings::default(),
        Utc::now(),
    )
    .await
    .expect("the upstream imports our SP metadata");
    SamlPair {
        upstream,
        downstream,
        connector_id,
    }
}

/// The HTTP-POST page's form: (action, `field`'s value, RelayState).
fn form_of(html: &str, field: &str) -> (String, String, Option<String>) {
    let action = html
        .split("id=\"saml-post\" method=\"post\" action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(unescape)
        .unwrap_or_else(|| panic!("no SAML POST form in {html}"));
    let relay = html
        .contains("name=\"RelayState\"")
        .then(|| unescape(&hidden(html, "RelayState")));
    (action, unescape(&hidden(html, field)), relay)
}

/// Posts the form cross-site, as the page would.
async fn submit(
    browser: &reqwest::Client,
    (action, field, value, relay): (&str, &str, &str, Option<&str>),
) -> reqwest::Response {
    let mut form = vec![(field, value)];
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

#[tokio::test]
async fn single_logout_works_both_ways_by_http_post_alone() {
    let pair = post_only_pair().await;

    // Signing out here: our page posts the signed LogoutRequest to the upstream.
    let browser = client();
    sign_in(&pair, &browser).await;
    let csrf = pair.downstream.account_csrf(&browser).await;
    let res = pair
        .downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    let ours = continue_link(&res.text().await.unwrap());
    assert!(
        ours.starts_with(&pair.downstream.url(&format!("{}/send?state=", slo_path()))),
        "{ours}"
    );
    let html = browser
        .get(&ours)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, request, relay) = form_of(&html, "SAMLRequest");
    assert_eq!(action, pair.upstream.url("/saml/slo"));
    let xml = String::from_utf8(STANDARD.decode(&request).unwrap()).unwrap();
    assert!(
        xml.contains("<ds:Signature"),
        "an enveloped signature: {xml}"
    );
    let res = submit(
        &browser,
        (&action, "SAMLRequest", &request, relay.as_deref()),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (action, response, relay) = posted(&res.text().await.unwrap());
    assert_eq!(action, pair.downstream.url(&slo_path()));
    assert_eq!(
        status_of(&browser, &pair.upstream.url("/account")).await,
        303,
        "signed out at the upstream"
    );
    let res = post_response(&browser, &action, &response, relay.as_deref()).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));

    // Signing out there: its chain posts its LogoutRequest to us, we post the answer.
    let browser = client();
    sign_in(&pair, &browser).await;
    let csrf = pair.upstream.account_csrf(&browser).await;
    let res = pair
        .upstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let (action, request, relay) = form_of(&res.text().await.unwrap(), "SAMLRequest");
    assert_eq!(action, pair.downstream.url(&slo_path()));
    assert_eq!(
        status_of(&browser, &pair.downstream.url("/account")).await,
        200
    );
    let res = submit(
        &browser,
        (&action, "SAMLRequest", &request, relay.as_deref()),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        status_of(&browser, &pair.downstream.url("/account")).await,
        303,
        "the session here ended"
    );
    let (action, response, relay) = posted(&res.text().await.unwrap());
    assert_eq!(action, pair.upstream.url("/saml/slo"));
    assert!(response.contains("<ds:Signature"), "an enveloped signature");
    let res = post_response(&browser, &action, &response, relay.as_deref()).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
}
