//! The organisation's passkey policy (DESIGN §17): required passkeys registered during
//! sign-in, passkeys off, phishing-resistant administrators, and the list of admitted
//! authenticator models.

use gatehouse::{audit::EventType, domain::PasskeyMode, store::users};
use serde_json::Value;

use super::{
    PASSWORD, SoftKey, amr_of, app, honest, passwordless, refused_like_a_password, register,
    signed_in, user_with_passkey,
};
use crate::admin::audit_events;
use crate::helpers::{TestApp, change_default_policy, create_user, create_user_with_role, hidden};

async fn set_passkey_policy(
    app: &TestApp,
    change: impl FnOnce(&mut gatehouse::domain::PasskeyPolicy) + Send + 'static,
) {
    change_default_policy(app, |p| change(&mut p.passkeys)).await;
}

/// Registers a new passkey at the sign-in's required passkey step; the answer.
async fn enrol_during_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    tx: &str,
    csrf: &str,
    name: &str,
) -> reqwest::Response {
    let form = [("tx", tx), ("csrf", csrf)];
    let options: Value = app
        .post_form(browser, "/login/passkey-enrol/options", &form)
        .await
        .json()
        .await
        .unwrap();
    let created = SoftKey::new().create(&options, &honest(app)).to_string();
    let form = [
        ("tx", tx),
        ("csrf", csrf),
        ("name", name),
        ("credential", &created),
    ];
    app.post_form(browser, "/login/passkey-enrol", &form).await
}

#[tokio::test]
async fn where_passkeys_are_required_a_sign_in_registers_one_before_going_on() {
    let app = app().await;
    set_passkey_policy(&app, |p| p.mode = PasskeyMode::RequiredForEveryone).await;
    let user = create_user(&app, "rita", PASSWORD, false).await;
    let browser = app.new_client();
    let res = app.sign_in(&browser, "rita", PASSWORD).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/login/passkey-enrol?tx="),
        "{location}"
    );
    let html = app.page(&browser, &location).await;
    let (tx, csrf) = (hidden(&html, "tx"), hidden(&html, "csrf"));
    // Nothing else of the sign-in is reachable meanwhile.
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 303);
    let res = enrol_during_sign_in(&app, &browser, &tx, &csrf, "Phone").await;
    assert_eq!(res.status(), 200);
    let codes_page = res.text().await.unwrap();
    assert!(codes_page.contains("recovery-codes"), "{codes_page}");
    let res = app
        .post_form(&browser, "/login/continue", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    assert!(
        amr_of(&app, &user.id)
            .await
            .contains(&vec!["pwd".into(), "hwk".into()])
    );
    let registered = audit_events(&app, EventType::PasskeyRegistered).await;
    assert_eq!(registered[0].details["during"], "sign_in");
}

#[tokio::test]
async fn where_passkeys_are_off_they_neither_register_nor_sign_in() {
    let app = app().await;
    let mut key = SoftKey::new();
    user_with_passkey(&app, "otto", &mut key).await;
    set_passkey_policy(&app, |p| p.mode = PasskeyMode::Off).await;
    // With passkeys off, the password alone signs in (no passkey is asked for).
    let (_, res) = passwordless(&app, &mut key, &honest(&app)).await;
    let status = res.status();
    refused_like_a_password(status, &res.text().await.unwrap());
    let client = signed_in(&app, "otto").await;
    let html = app.page(&client, "/account/passkeys").await;
    assert!(html.contains("passkeys-unavailable"), "{html}");
    let res = app
        .post_form(
            &client,
            "/account/passkeys/options",
            &[("csrf", &hidden(&html, "csrf"))],
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn for_phishing_resistant_admins_a_totp_code_only_leads_to_registering_a_passkey() {
    use gatehouse::domain::{MfaPolicy, Role};
    let app = app().await;
    let ada = create_user_with_role(&app, "ada", PASSWORD, Role::OrgAdmin).await;
    // Ada set up TOTP while the organisation asked nothing more of her.
    change_default_policy(&app, |p| p.mfa = MfaPolicy::Off).await;
    let first = signed_in(&app, "ada").await;
    let (secret, _) = app.enrol_totp(&first).await;
    set_passkey_policy(&app, |p| p.phishing_resistant_admins = true).await;

    // Her password-only session no longer opens the console: it steps up.
    let console = first.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(console.status(), 303, "stepped up");

    let browser = app.new_client();
    let res = app.sign_in(&browser, "ada", PASSWORD).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/otp?tx="), "{location}");
    let html = app.page(&browser, &location).await;
    assert!(html.contains("phishing-resistant-hint"), "{html}");
    app.clock.advance(chrono::Duration::seconds(30));
    let code = crate::helpers::totp_code(&secret, {
        use gatehouse::clock::Clock;
        app.clock.now().timestamp()
    });
    let (tx, csrf) = (hidden(&html, "tx"), hidden(&html, "csrf"));
    let res = app
        .post_form(
            &browser,
            "/login/otp",
            &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
        )
        .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/login/passkey-enrol?tx="),
        "the code leads only to registering a passkey: {location}"
    );
    let res = enrol_during_sign_in(&app, &browser, &tx, &csrf, "Admin key").await;
    // She still has her recovery codes: no new ones, straight on.
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    assert!(
        amr_of(&app, &ada.id)
            .await
            .contains(&vec!["pwd".into(), "otp".into(), "hwk".into()])
    );
    let console = browser.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(console.status(), 200, "a passkey sign-in opens the console");
}

#[tokio::test]
async fn an_aaguid_list_admits_only_the_authenticators_it_names() {
    let app = app().await;
    let ours = uuid::Uuid::from_bytes(*b"gatehouse-tests!");
    set_passkey_policy(&app, |p| p.allowed_aaguids = vec![uuid::Uuid::from_u128(7)]).await;
    create_user(&app, "ines", PASSWORD, false).await;
    let client = signed_in(&app, "ines").await;
    let mut key = SoftKey::new();
    let res = register(&app, &client, &mut key, "Desk key").await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 400);
    assert!(
        html.contains("does not allow this kind of passkey"),
        "{html}"
    );
    assert!(
        gatehouse::auth::passkey::list(&app.state, &users_id(&app, "ines").await)
            .await
            .unwrap()
            .is_empty()
    );

    set_passkey_policy(&app, move |p| p.allowed_aaguids = vec![ours]).await;
    let page = client
        .get(app.url("/account/passkeys"))
        .send()
        .await
        .unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let options: Value = app
        .post_form(&client, "/account/passkeys/options", &[("csrf", &csrf)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        options["publicKey"]["attestation"], "direct",
        "the model is asked for"
    );
    let res = register(&app, &client, &mut SoftKey::new(), "Desk key").await;
    assert_eq!(res.status(), 200);
    let stored = gatehouse::auth::passkey::list(&app.state, &users_id(&app, "ines").await)
        .await
        .unwrap();
    assert_eq!(stored[0].aaguid.as_deref(), Some(ours.to_string().as_str()));
}

async fn users_id(app: &TestApp, username: &str) -> String {
    let pii = app.state.pii.clone();
    let name = gatehouse::domain::Username::parse(username).unwrap();
    app.state
        .store
        .run(move |c| users::find_by_username(c, &pii, &name))
        .await
        .unwrap()
        .unwrap()
        .id
}
