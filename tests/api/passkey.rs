//! Passkeys (issue 29, DESIGN §17) over HTTP, with a software authenticator whose every
//! field the test controls: registration on the account page, passwordless sign-in, the
//! second factor, the organisation's policy, and the hostile answers (wrong origin or
//! RP ID, replay, an unknown credential, no user verification, a cloned authenticator,
//! a disabled account), each refused like a wrong password and counted.

mod authenticator;
mod policy;

use gatehouse::{
    audit::EventType,
    auth::session,
    domain::UserStatus,
    store::{outbox, users},
};
use serde_json::Value;
use url::Url;

use crate::admin::audit_events;
use crate::helpers::{TestApp, create_user, hidden, spawn_app_with};
pub use authenticator::{Client, SoftKey};

const PASSWORD: &str = "Quiet-Harbour-42";

/// Gatehouse as `https://localhost:PORT`: WebAuthn needs a domain for its RP ID.
pub async fn app() -> TestApp {
    spawn_app_with(|c| c.issuer = Url::parse("https://localhost:0").unwrap()).await
}

/// What an honest browser on Gatehouse's page asserts.
pub fn honest(app: &TestApp) -> Client {
    Client {
        origin: app.base.clone(),
        rp_id: "localhost".into(),
    }
}

/// A signed-in client for `username` (password only), on a fresh sign-in.
async fn signed_in(app: &TestApp, username: &str) -> reqwest::Client {
    let client = app.new_client();
    let res = app.sign_in(&client, username, PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    client
}

/// Registers `key` from the account page of a freshly signed-in `client`; returns the
/// page the server answered with.
async fn register(
    app: &TestApp,
    client: &reqwest::Client,
    key: &mut SoftKey,
    name: &str,
) -> reqwest::Response {
    let page = client
        .get(app.url("/account/passkeys"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let options: Value = app
        .post_form(client, "/account/passkeys/options", &[("csrf", &csrf)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let answer = key.create(&options, &honest(app));
    app.post_form(
        client,
        "/account/passkeys",
        &[
            ("csrf", &csrf),
            ("name", name),
            ("credential", &answer.to_string()),
        ],
    )
    .await
}

/// A user with `key` registered; returns the user's id.
pub async fn user_with_passkey(app: &TestApp, username: &str, key: &mut SoftKey) -> String {
    let user = create_user(app, username, PASSWORD, false).await;
    let client = signed_in(app, username).await;
    let res = register(app, &client, key, "Work laptop").await;
    assert_eq!(res.status(), 200, "recovery codes shown");
    user.id
}

/// The options of the transaction's passkey challenge, and the form fields to answer.
async fn challenge(app: &TestApp, client: &reqwest::Client, tx: &str, csrf: &str) -> Value {
    let res = app
        .post_form(
            client,
            "/login/passkey/options",
            &[("tx", tx), ("csrf", csrf)],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn answer(
    app: &TestApp,
    client: &reqwest::Client,
    tx: &str,
    csrf: &str,
    credential: &Value,
) -> reqwest::Response {
    app.post_form(
        client,
        "/login/passkey",
        &[
            ("tx", tx),
            ("csrf", csrf),
            ("credential", &credential.to_string()),
        ],
    )
    .await
}

/// Signs in without a password: the answer to the sign-in page's challenge.
async fn passwordless(
    app: &TestApp,
    key: &mut SoftKey,
    client: &Client,
) -> (reqwest::Client, reqwest::Response) {
    let browser = app.new_client();
    let (tx, csrf) = app.open_login(&browser).await;
    let options = challenge(app, &browser, &tx, &csrf).await;
    let credential = key.get(&options, client);
    let res = answer(app, &browser, &tx, &csrf, &credential).await;
    (browser, res)
}

async fn amr_of(app: &TestApp, user_id: &str) -> Vec<Vec<String>> {
    session::list(
        app.state.ephemeral.as_ref(),
        app.state.clock.as_ref(),
        user_id,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|s| s.amr)
    .collect()
}

async fn mail_subjects(app: &TestApp) -> Vec<String> {
    app.state
        .store
        .run(|c| outbox::recent(c, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.subject)
        .collect()
}

fn refused_like_a_password(res_status: reqwest::StatusCode, html: &str) {
    assert_eq!(res_status, 401, "{html}");
    assert!(html.contains("Incorrect username or password."), "{html}");
}

#[tokio::test]
async fn a_passkey_registered_on_the_account_page_signs_in_without_a_password() {
    let app = app().await;
    let mut key = SoftKey::new();
    let user_id = user_with_passkey(&app, "paula", &mut key).await;

    let page = app.new_client();
    let (tx, _) = app.open_login(&page).await;
    let html = app.page(&page, &format!("/login?tx={tx}")).await;
    assert!(
        html.contains(r#"autocomplete="username webauthn""#),
        "{html}"
    );
    assert!(html.contains(r#"<script src="/static/passkey.js" defer></script>"#));

    let (browser, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()["location"], "/account");
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    assert!(
        amr_of(&app, &user_id)
            .await
            .contains(&vec!["hwk".into(), "mfa".into()])
    );

    // Registered and used: audited, and the owner was told by mail.
    let registered = audit_events(&app, EventType::PasskeyRegistered).await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].details["name"], "Work laptop");
    assert_eq!(registered[0].details["during"], "account");
    let succeeded = audit_events(&app, EventType::SignInSucceeded).await;
    assert!(succeeded.iter().any(|e| e.details["amr"] == "hwk mfa"));
    assert!(
        mail_subjects(&app)
            .await
            .contains(&"A passkey was added to your account".to_owned())
    );
}

#[tokio::test]
async fn a_synced_passkey_is_swk_and_a_passkey_is_the_second_factor_after_a_password() {
    let app = app().await;
    let mut key = SoftKey::new();
    key.synced = true;
    let user_id = user_with_passkey(&app, "sami", &mut key).await;

    let browser = app.new_client();
    let res = app.sign_in(&browser, "sami", PASSWORD).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/otp?tx="), "{location}");
    let html = app.page(&browser, &location).await;
    assert!(html.contains(r#"id="passkey-signin""#), "{html}");
    let (tx, csrf) = (hidden(&html, "tx"), hidden(&html, "csrf"));
    let options = challenge(&app, &browser, &tx, &csrf).await;
    // At the second step, only this account's passkeys are asked for.
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], authenticator::b64u(&key.credential_id));
    let res = answer(
        &app,
        &browser,
        &tx,
        &csrf,
        &key.get(&options, &honest(&app)),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    assert!(
        amr_of(&app, &user_id)
            .await
            .contains(&vec!["pwd".into(), "swk".into()])
    );
}

#[tokio::test]
async fn hostile_answers_are_refused_like_a_wrong_password_and_counted() {
    let app = app().await;
    let mut key = SoftKey::new();
    user_with_passkey(&app, "hana", &mut key).await;
    let evil_origin = Client {
        origin: "https://evil.example".into(),
        rp_id: "localhost".into(),
    };
    let evil_rp = Client {
        origin: app.base.clone(),
        rp_id: "evil.example".into(),
    };
    for (what, client) in [("wrong origin", evil_origin), ("wrong RP ID", evil_rp)] {
        let (_, res) = passwordless(&app, &mut key, &client).await;
        let status = res.status();
        let html = res.text().await.unwrap();
        refused_like_a_password(status, &html);
        eprintln!("{what}: refused");
    }

    // User verification missing: the authenticator only tested presence.
    key.verifies_user = false;
    let (_, res) = passwordless(&app, &mut key, &honest(&app)).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());
    key.verifies_user = true;

    // A replayed answer, in another sign-in: it answered a challenge that is not this one's.
    let browser = app.new_client();
    let (tx, csrf) = app.open_login(&browser).await;
    let options = challenge(&app, &browser, &tx, &csrf).await;
    let credential = key.get(&options, &honest(&app));
    let first = answer(&app, &browser, &tx, &csrf, &credential).await;
    assert_eq!(first.status(), 303);
    let thief = app.new_client();
    let (tx, csrf) = app.open_login(&thief).await;
    let res = answer(&app, &thief, &tx, &csrf, &credential).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());

    // A clone: its counter did not move past what the server has seen.
    let browser = app.new_client();
    let (tx, csrf) = app.open_login(&browser).await;
    let options = challenge(&app, &browser, &tx, &csrf).await;
    let res = answer(
        &app,
        &browser,
        &tx,
        &csrf,
        &key.assert(&options, &honest(&app)),
    )
    .await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());

    // A challenge is answered once: after a refused answer, a good one to the same
    // challenge finds nothing to answer.
    let browser = app.new_client();
    let (tx, csrf) = app.open_login(&browser).await;
    let options = challenge(&app, &browser, &tx, &csrf).await;
    let phished = key.get(
        &options,
        &Client {
            origin: "https://evil.example".into(),
            rp_id: "localhost".into(),
        },
    );
    assert_eq!(
        answer(&app, &browser, &tx, &csrf, &phished).await.status(),
        401
    );
    let good = key.get(&options, &honest(&app));
    let res = answer(&app, &browser, &tx, &csrf, &good).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());

    // A credential nobody registered.
    let mut stranger = SoftKey::new();
    stranger.user_handle = key.user_handle.clone();
    let (_, res) = passwordless(&app, &mut stranger, &honest(&app)).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());

    // Garbage.
    let browser = app.new_client();
    let (tx, csrf) = app.open_login(&browser).await;
    challenge(&app, &browser, &tx, &csrf).await;
    let res = answer(
        &app,
        &browser,
        &tx,
        &csrf,
        &Value::String("{not json".into()),
    )
    .await;
    assert_eq!(res.status(), 401);

    // Every refusal was recorded as a failed sign-in with the passkey as its factor.
    let failed = audit_events(&app, EventType::SignInFailed).await;
    let passkey_failures = failed
        .iter()
        .filter(|e| e.details["factor"] == "passkey")
        .count();
    assert_eq!(passkey_failures, 9, "{failed:?}");
    let for_hana = failed
        .iter()
        .filter(|e| e.details["factor"] == "passkey" && e.details["reason"] == "bad_passkey")
        .count();
    assert_eq!(for_hana, 7, "counted against the account the passkey names");
}

#[tokio::test]
async fn failed_passkey_answers_lock_the_account_and_a_disabled_accounts_passkey_is_refused() {
    let app = app().await;
    let mut key = SoftKey::new();
    let user_id = user_with_passkey(&app, "lena", &mut key).await;
    let bad = Client {
        origin: "https://evil.example".into(),
        rp_id: "localhost".into(),
    };
    // The default lockout threshold is 5 failures.
    for _ in 0..5 {
        let (_, res) = passwordless(&app, &mut key, &bad).await;
        assert_eq!(res.status(), 401);
    }
    let (_, res) = passwordless(&app, &mut key, &honest(&app)).await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 401);
    assert!(html.contains("Too many failed attempts"), "{html}");
    let res = app.sign_in(&app.new_client(), "lena", PASSWORD).await;
    assert_eq!(res.status(), 401, "the password is locked out too");

    // Disabled: the right passkey gets the answer a wrong password gets.
    let app2 = crate::passkey::app().await;
    let mut key = SoftKey::new();
    let user_id2 = user_with_passkey(&app2, "dora", &mut key).await;
    let now = chrono::Utc::now().naive_utc();
    app2.state
        .store
        .run(move |c| users::set_status(c, &user_id2, UserStatus::Disabled, now))
        .await
        .unwrap();
    let (_, res) = passwordless(&app2, &mut key, &honest(&app2)).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());
    let _ = user_id;
}

#[tokio::test]
async fn passkeys_are_renamed_and_removed_only_after_a_recent_sign_in_and_the_owner_is_told() {
    let app = app().await;
    let mut key = SoftKey::new();
    let user_id = user_with_passkey(&app, "ruth", &mut key).await;
    let (client, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 303);
    let html = app.page(&client, "/account/passkeys").await;
    assert!(html.contains("Work laptop"), "{html}");
    let csrf = hidden(&html, "csrf");
    let id = hidden(&html, "id");
    let res = app
        .post_form(
            &client,
            "/account/passkeys/rename",
            &[("csrf", &csrf), ("id", &id), ("name", "Desk <key>")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = app.page(&client, "/account/passkeys").await;
    assert!(
        html.contains("Desk &#60;key&#62;") || html.contains("Desk &lt;key&gt;"),
        "{html}"
    );

    // Eleven minutes later, the session is too old to remove a passkey.
    app.clock.advance(chrono::Duration::minutes(11));
    let res = app
        .post_form(
            &client,
            "/account/passkeys/remove",
            &[("csrf", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("sign in again first"));
    let confirm = client
        .get(app.url("/account/passkeys/confirm"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 303);

    // After a fresh sign-in, it goes.
    let (client, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 303);
    let csrf = app.account_csrf(&client).await;
    let res = app
        .post_form(
            &client,
            "/account/passkeys/remove",
            &[("csrf", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(audit_events(&app, EventType::PasskeyRemoved).await.len(), 1);
    assert_eq!(audit_events(&app, EventType::PasskeyRenamed).await.len(), 1);
    let subjects = mail_subjects(&app).await;
    for subject in [
        "A passkey of your account was renamed",
        "A passkey was removed from your account",
    ] {
        assert!(subjects.contains(&subject.to_owned()), "{subjects:?}");
    }
    let _ = user_id;
}

#[tokio::test]
async fn on_a_server_whose_issuer_is_an_ip_address_no_passkey_is_offered() {
    let app = crate::helpers::spawn_app().await;
    create_user(&app, "ivan", PASSWORD, false).await;
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;
    let html = app.page(&client, &format!("/login?tx={tx}")).await;
    assert!(!html.contains("passkey"), "{html}");
    let res = app
        .post_form(
            &client,
            "/login/passkey/options",
            &[("tx", &tx), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn recovery_codes_outlive_a_removed_totp_while_passkeys_remain() {
    let app = app().await;
    let mut key = SoftKey::new();
    let user_id = user_with_passkey(&app, "rosa", &mut key).await;
    let (client, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 303);
    app.enrol_totp(&client).await;
    assert!(
        gatehouse::auth::totp::remove(&app.state, &user_id, true)
            .await
            .unwrap()
    );
    let left = gatehouse::auth::totp::unused_recovery_codes(&app.state, &user_id)
        .await
        .unwrap();
    assert_eq!(left, 10, "the way back for lost passkeys stays");
}

#[tokio::test]
async fn a_new_password_an_administrator_requires_is_set_after_a_passkey_sign_in_too() {
    let app = app().await;
    let mut key = SoftKey::new();
    let user_id = user_with_passkey(&app, "mara", &mut key).await;
    let now = chrono::Utc::now().naive_utc();
    app.state
        .store
        .run(move |c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::users as t;
            diesel::update(t::table.find(&user_id))
                .set((t::must_change_password.eq(true), t::updated_at.eq(now)))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let (_, res) = passwordless(&app, &mut key, &honest(&app)).await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/login/password?tx="), "{location}");
}
