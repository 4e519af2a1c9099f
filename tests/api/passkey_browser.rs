//! Issue 29 in a real browser: headless Chromium with WebDriver's virtual authenticator
//! (the WebAuthn extension commands, through chromedriver) registers a passkey on the
//! account page, signs in with it as the second factor, signs a relying party in with
//! it and no password (the RP's ID token carries the passkey's `amr`), and removes it.

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

use crate::{
    browser::{Browser, id_token_claims, sign_in},
    helpers::{TestApp, create_user, skip},
};

const PASSWORD: &str = "Quiet-Harbour-42";

/// A WebDriver command of the Web Authentication extension
/// (<https://w3c.github.io/webauthn/#sctn-automation>).
#[derive(Debug)]
struct WebAuthnCommand {
    method: reqwest::Method,
    /// After `/session/{id}/webauthn/`.
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

/// Adds a platform authenticator that holds discoverable credentials, verifies the
/// user and answers at once; returns its id.
async fn add_authenticator(browser: &Browser) -> String {
    let added = browser
        .client()
        .issue_cmd(WebAuthnCommand {
            method: reqwest::Method::POST,
            path: "authenticator".into(),
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true,
            })),
        })
        .await
        .expect("chromedriver adds a virtual authenticator");
    added.as_str().expect("an authenticator id").to_owned()
}

async fn credentials(browser: &Browser, authenticator: &str) -> Vec<Value> {
    let listed = browser
        .client()
        .issue_cmd(WebAuthnCommand {
            method: reqwest::Method::GET,
            path: format!("authenticator/{authenticator}/credentials"),
            body: None,
        })
        .await
        .expect("credentials listed");
    listed.as_array().cloned().unwrap_or_default()
}

async fn remove_authenticator(browser: &Browser, authenticator: &str) {
    browser
        .client()
        .issue_cmd(WebAuthnCommand {
            method: reqwest::Method::DELETE,
            path: format!("authenticator/{authenticator}"),
            body: None,
        })
        .await
        .expect("authenticator removed");
}

/// Puts `credential` (as `credentials` listed it, private key included) on the
/// authenticator: the same passkey, carried to another authenticator.
async fn add_credential(browser: &Browser, authenticator: &str, credential: &Value) {
    browser
        .client()
        .issue_cmd(WebAuthnCommand {
            method: reqwest::Method::POST,
            path: format!("authenticator/{authenticator}/credential"),
            body: Some(credential.clone()),
        })
        .await
        .expect("credential added");
}

async fn sign_out(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/account")).await;
    browser.submit("form#logout button#sign-out").await;
    browser.wait_for("h1").await;
}

#[tokio::test]
async fn browser_registers_a_passkey_signs_in_with_it_both_ways_and_removes_it() {
    use gatehouse::oidc::clients::ClientSpec;
    let test = "browser_registers_a_passkey_signs_in_with_it_both_ways_and_removes_it";
    let Some(browser) = Browser::start().await else {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    let app = crate::passkey::app().await;
    create_user(&app, "pia", PASSWORD, false).await;
    let authenticator = add_authenticator(&browser).await;

    // Register on the account page, after a password sign-in.
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "pia", PASSWORD).await;
    browser.wait_for("#account-username").await;
    browser.click("a#manage-passkeys").await;
    browser.wait_for("form#passkey-register").await;
    browser.fill("input#passkey-name", "Ward laptop").await;
    browser.click("button#passkey-create").await;
    // The first passkey of an account without recovery codes brings a set of them.
    browser.wait_for("ul#recovery-codes").await;
    assert_eq!(browser.count("ul#recovery-codes li").await, 10);
    assert_eq!(credentials(&browser, &authenticator).await.len(), 1);
    browser.goto(&app.url("/account/passkeys")).await;
    browser.wait_for("table#passkeys").await;
    assert_eq!(browser.text("td.passkey-name").await, "Ward laptop");
    if let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOT_DIR") {
        browser
            .screenshot(std::path::Path::new(&dir).join("passkeys.png"))
            .await;
    }

    // The passkey as the second factor after the password. While the authenticator is
    // there, the sign-in page's conditional request takes the passkey at once (below):
    // it is away while the password is typed, and back for the second step.
    sign_out(&browser, &app).await;
    let credential = credentials(&browser, &authenticator).await.remove(0);
    remove_authenticator(&browser, &authenticator).await;
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "pia", PASSWORD).await;
    browser
        .wait_for("form#passkey-signin button#passkey-button")
        .await;
    let authenticator = add_authenticator(&browser).await;
    add_credential(&browser, &authenticator, &credential).await;
    browser.click("button#passkey-button").await;
    browser.wait_for("#account-username").await;

    // A relying party, signed in with the passkey alone: the username field's
    // conditional request (autofill) answers with it, no button, no password.
    sign_out(&browser, &app).await;
    let (rp, mut requests) = crate::oidc::rp_listener().await;
    let redirect = format!("{rp}/callback");
    let reg =
        crate::oidc::register_client(&app, ClientSpec::new("Ward app", &[redirect.as_str()])).await;
    let mut authorize = url::Url::parse(&app.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "passkey-state")
        .append_pair("nonce", "passkey-nonce");
    // The sign-in page answers so fast that it is gone before a look at it.
    browser.goto(authorize.as_str()).await;
    browser.wait_for("#rp").await;
    let (line, _) = tokio::time::timeout(std::time::Duration::from_secs(10), requests.recv())
        .await
        .expect("the browser reached the relying party")
        .unwrap();
    let target = line.split(' ').nth(1).unwrap();
    let back = url::Url::parse(&format!("{rp}{target}")).unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "passkey-state");
    let claims = id_token_claims(&app, &reg, &q["code"], &redirect).await;
    assert_eq!(claims["preferred_username"], "pia");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        amr.contains(&"hwk") || amr.contains(&"swk"),
        "the passkey's method in amr: {amr:?}"
    );
    assert!(amr.contains(&"mfa") && !amr.contains(&"pwd"), "{amr:?}");
    assert_eq!(claims["acr"], "urn:gatehouse:acr:mfa");

    // Removed from the account page (the sign-in above is recent).
    browser.goto(&app.url("/account/passkeys")).await;
    browser.wait_for("table#passkeys").await;
    browser.click("button.remove-passkey").await;
    browser.wait_for("#no-passkeys").await;
    browser.close().await;
}
