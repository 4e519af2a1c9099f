//! Issue 28 in a real browser: a clinician opens a relying party, chooses the
//! hospital's identity provider on Gatehouse's sign-in page, signs in there (a second
//! Gatehouse on loopback, as `localhost`), and comes back through Gatehouse to the
//! relying party, whose code yields an ID token naming the linked Gatehouse account.
//! Headless Chromium over WebDriver, as `browser.rs` drives it.

use serde_json::json;

use crate::{
    browser::{Browser, id_token_claims, sign_in},
    helpers::skip,
    upstream_oidc::{PASSWORD, links, pair_with},
};

#[tokio::test]
async fn browser_relying_party_to_gatehouse_to_the_hospitals_idp_and_back() {
    use gatehouse::oidc::clients::ClientSpec;
    let test = "browser_relying_party_to_gatehouse_to_the_hospitals_idp_and_back";
    let Some(browser) = Browser::start().await else {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    let pair = pair_with(json!({}), &[]).await;
    let (rp, mut requests) = crate::oidc::rp_listener().await;
    let redirect = format!("{rp}/callback");
    let reg = crate::oidc::register_client(
        &pair.downstream,
        ClientSpec::new("Ward app", &[redirect.as_str()]),
    )
    .await;
    let mut authorize = url::Url::parse(&pair.downstream.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "browser-state")
        .append_pair("nonce", "browser-nonce");

    browser.goto(authorize.as_str()).await;
    browser.wait_for("form#login").await;
    // Gatehouse's page offers the hospital's provider.
    browser.click("a#upstream-hospital").await;
    // The upstream's own sign-in page, on its own host.
    browser.wait_for_path("/login").await;
    let at = browser.current_url().await;
    assert_eq!(at.host_str(), Some("localhost"), "{at}");
    sign_in(&browser, "uma", PASSWORD).await;
    browser.wait_for("#rp").await;

    let (line, _) = tokio::time::timeout(std::time::Duration::from_secs(10), requests.recv())
        .await
        .expect("the browser reached the relying party")
        .unwrap();
    let target = line.split(' ').nth(1).unwrap();
    let back = url::Url::parse(&format!("{rp}{target}")).unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "browser-state");
    let claims = id_token_claims(&pair.downstream, &reg, &q["code"], &redirect).await;
    let linked = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(linked.len(), 1);
    assert_eq!(
        claims["sub"], linked[0].user_id,
        "the linked Gatehouse account"
    );
    assert_eq!(claims["preferred_username"], "uma");
    assert_eq!(claims["nonce"], "browser-nonce");
    assert_eq!(
        linked[0].subject, pair.uma.id,
        "linked to the upstream's subject"
    );
    browser.close().await;
}
