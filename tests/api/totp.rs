//! TOTP second factor (DESIGN §6).

use std::sync::Arc;

use gatehouse::{
    clock::Clock,
    domain::{MfaPolicy, OrgName},
    store::orgs,
};

use crate::helpers::{
    TestApp, create_user, hidden, spawn_app, spawn_app_with, spawn_with_config, totp_code,
};

/// Signs in with the password and returns the OTP page's (tx, csrf).
pub(crate) async fn to_otp_step(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
) -> (String, String) {
    let res = app.sign_in(client, username, "Quiet-Harbour-42").await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/otp?tx="), "{location}");
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"inputmode="numeric""#) && page.contains(r#"autocomplete="one-time-code""#)
    );
    (hidden(&page, "tx"), hidden(&page, "csrf"))
}

pub(crate) async fn submit_code(
    app: &TestApp,
    client: &reqwest::Client,
    tx: &str,
    csrf: &str,
    code: &str,
) -> reqwest::Response {
    app.post_form(
        client,
        "/login/otp",
        &[("tx", tx), ("csrf", csrf), ("code", code)],
    )
    .await
}

/// A user with TOTP enrolled through the account page; returns its secret and recovery codes.
pub(crate) async fn enrolled(app: &TestApp, username: &str) -> (String, Vec<String>) {
    create_user(app, username, "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, username, "Quiet-Harbour-42").await;
    let enrolment = app.enrol_totp(&client).await;
    // The next code must be a later time step than the one used to confirm.
    app.clock.advance(chrono::Duration::seconds(30));
    enrolment
}

#[tokio::test]
async fn sign_in_with_password_and_code_records_both_methods() {
    let app = spawn_app().await;
    let (secret, _) = enrolled(&app, "ada").await;
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "ada").await;
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "no session before the code"
    );
    let code = totp_code(&secret, app.clock.now().timestamp());
    let res = submit_code(&app, &client, &tx, &csrf, &code).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    let page = client
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="mfa-status">On"#));
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_so_is_one_two_steps_old() {
    let app = spawn_app().await;
    let (secret, _) = enrolled(&app, "ben").await;
    let now = app.clock.now().timestamp();
    let code = totp_code(&secret, now);
    let first = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &first, "ben").await;
    assert_eq!(
        submit_code(&app, &first, &tx, &csrf, &code).await.status(),
        303
    );

    let second = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &second, "ben").await;
    let res = submit_code(&app, &second, &tx, &csrf, &code).await;
    assert_eq!(res.status(), 401, "the same time step is accepted once");
    assert!(res.text().await.unwrap().contains("already used"));

    let old = totp_code(&secret, now - 60);
    assert_eq!(
        submit_code(&app, &second, &tx, &csrf, &old).await.status(),
        401,
        "two steps old"
    );
    app.clock.advance(chrono::Duration::seconds(30));
    let next = totp_code(&secret, app.clock.now().timestamp());
    assert_eq!(
        submit_code(&app, &second, &tx, &csrf, &next).await.status(),
        303
    );
}

#[tokio::test]
async fn a_replay_on_a_second_instance_is_refused() {
    let first = spawn_app().await;
    let (secret, _) = enrolled(&first, "cleo").await;
    let second = spawn_with_config(first.config.clone(), Arc::clone(&first.data_dir)).await;
    second.clock.advance(chrono::Duration::seconds(30));
    let code = totp_code(&secret, first.clock.now().timestamp());
    let a = first.new_client();
    let (tx, csrf) = to_otp_step(&first, &a, "cleo").await;
    assert_eq!(
        submit_code(&first, &a, &tx, &csrf, &code).await.status(),
        303
    );
    let b = second.new_client();
    let (tx, csrf) = to_otp_step(&second, &b, "cleo").await;
    assert_eq!(
        submit_code(&second, &b, &tx, &csrf, &code).await.status(),
        401
    );
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = spawn_app().await;
    let (_, codes) = enrolled(&app, "dina").await;
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "dina").await;
    assert_eq!(
        submit_code(&app, &client, &tx, &csrf, &codes[3].to_uppercase())
            .await
            .status(),
        303
    );
    let again = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &again, "dina").await;
    assert_eq!(
        submit_code(&app, &again, &tx, &csrf, &codes[3])
            .await
            .status(),
        401
    );
    assert_eq!(
        submit_code(&app, &again, &tx, &csrf, &codes[4])
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn the_database_holds_no_plaintext_secret() {
    let app = spawn_app().await;
    let (secret, codes) = enrolled(&app, "emil").await;
    let raw: Vec<String> = app
        .state
        .store
        .run(|c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::{recovery_codes, totp_credentials};
            let mut all: Vec<String> = totp_credentials::table
                .select(totp_credentials::secret_sealed)
                .load(c)?;
            all.extend(
                recovery_codes::table
                    .select(recovery_codes::code_hash)
                    .load::<String>(c)?,
            );
            Ok(all)
        })
        .await
        .unwrap();
    assert_eq!(raw.len(), 11);
    let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap();
    let hex_secret = hex::encode(bytes.as_ref());
    for value in &raw {
        assert!(
            !value.contains(&secret) && !value.to_lowercase().contains(&hex_secret),
            "{value}"
        );
        for code in &codes {
            assert!(!value.contains(code.as_str()) && !value.contains(&code.replace('-', "")));
        }
    }
    assert!(raw[0].starts_with("v1."), "sealed: {}", raw[0]);
}

#[tokio::test]
async fn an_mfa_required_organisation_makes_users_enrol_during_sign_in() {
    let app = spawn_app().await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.mfa = MfaPolicy::Everyone;
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    create_user(&app, "fay", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    let res = app.sign_in(&client, "fay", "Quiet-Harbour-42").await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/totp-enrol?tx="), "{location}");
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = crate::helpers::element_text(&page, "totp-secret");
    let (tx, csrf) = (hidden(&page, "tx"), hidden(&page, "csrf"));
    let wrong = app
        .post_form(
            &client,
            "/login/totp-enrol",
            &[("tx", &tx), ("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 400, "inactive until one valid code");
    let code = totp_code(&secret, app.clock.now().timestamp());
    let res = app
        .post_form(
            &client,
            "/login/totp-enrol",
            &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post_form(&client, "/login/continue", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert_eq!(res.headers()["location"], "/account");
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn five_wrong_codes_lock_the_account_like_five_wrong_passwords() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_minute = 10_000;
        c.rate_limit_burst = 10_000;
    })
    .await;
    let (secret, _) = enrolled(&app, "gus").await;
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "gus").await;
    for _ in 0..5 {
        assert_eq!(
            submit_code(&app, &client, &tx, &csrf, "000000")
                .await
                .status(),
            401
        );
    }
    let code = totp_code(&secret, app.clock.now().timestamp());
    let res = submit_code(&app, &client, &tx, &csrf, &code).await;
    assert!(
        res.text().await.unwrap().contains("locked"),
        "the right code is refused while locked"
    );
    let res = app
        .sign_in(&app.new_client(), "gus", "Quiet-Harbour-42")
        .await;
    assert!(
        res.text().await.unwrap().contains("locked"),
        "and so is the password step"
    );
}

#[tokio::test]
async fn bad_codes_get_a_clear_message_and_count_as_guesses() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_minute = 10_000;
        c.rate_limit_burst = 10_000;
    })
    .await;
    enrolled(&app, "hal").await;
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "hal").await;
    for bad in ["abcdef", "12345", "1234567"] {
        let res = submit_code(&app, &client, &tx, &csrf, bad).await;
        assert_eq!(res.status(), 401, "{bad}");
        assert!(res.text().await.unwrap().contains("6-digit code"), "{bad}");
    }
    let huge = "1".repeat(10 * 1024);
    let res = submit_code(&app, &client, &tx, &csrf, &huge).await;
    assert_eq!(res.status(), 400);
    let missing = app
        .post_form(&client, "/login/otp", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("Enter the code"));
    // Three malformed guesses counted: two more wrong codes lock.
    for _ in 0..2 {
        submit_code(&app, &client, &tx, &csrf, "000000").await;
    }
    assert!(
        submit_code(&app, &client, &tx, &csrf, "000000")
            .await
            .text()
            .await
            .unwrap()
            .contains("locked")
    );
}

#[tokio::test]
async fn the_user_removes_totp_with_password_and_code() {
    let app = spawn_app().await;
    let (secret, _) = enrolled(&app, "ivy").await;
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "ivy").await;
    submit_code(
        &app,
        &client,
        &tx,
        &csrf,
        &totp_code(&secret, app.clock.now().timestamp()),
    )
    .await;
    app.clock.advance(chrono::Duration::seconds(30));
    let page = client
        .get(app.url("/account/totp"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf");
    let code = totp_code(&secret, app.clock.now().timestamp());
    let wrong = app
        .post_form(
            &client,
            "/account/totp/remove",
            &[
                ("csrf", &csrf),
                ("password", "Not-Her-Password-1"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let res = app
        .post_form(
            &client,
            "/account/totp/remove",
            &[
                ("csrf", &csrf),
                ("password", "Quiet-Harbour-42"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.sign_in(&app.new_client(), "ivy", "Quiet-Harbour-42")
            .await
            .headers()["location"],
        "/account"
    );
}

// ---------------------------------------------------------------------------------
// Issue 20 item 3: an enrolment's secret belongs to the transaction or session it was
// shown to.

/// The enrolment page at `path` in `client`: (secret, page).
async fn enrolment_page(app: &TestApp, client: &reqwest::Client, path: &str) -> (String, String) {
    let page = client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (crate::helpers::element_text(&page, "totp-secret"), page)
}

async fn mfa_enrolled(app: &TestApp, username: &str) -> bool {
    let name = gatehouse::domain::Username::parse(username).unwrap();
    let pii = app.state.pii.clone();
    app.state
        .store
        .run(move |c| {
            let user = gatehouse::store::users::find_by_username(c, &pii, &name)?.unwrap();
            gatehouse::store::totp::is_enrolled(c, &user.id)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_abandoned_enrolment_on_the_account_page_is_never_shown_to_another_session() {
    let app = spawn_app().await;
    create_user(&app, "kim", "Quiet-Harbour-42", false).await;
    // The attacker knows only the password: signs in, starts enrolling, notes the
    // secret and walks away.
    let attacker = app.new_client();
    app.sign_in(&attacker, "kim", "Quiet-Harbour-42").await;
    let (planted, _) = enrolment_page(&app, &attacker, "/account/totp").await;
    // Later Kim enrols from her own browser.
    let kim = app.new_client();
    app.sign_in(&kim, "kim", "Quiet-Harbour-42").await;
    let (shown, page) = enrolment_page(&app, &kim, "/account/totp").await;
    assert_ne!(shown, planted, "a fresh secret for each session");
    let (again, _) = enrolment_page(&app, &kim, "/account/totp").await;
    assert_eq!(again, shown, "the same session sees its own secret again");

    // A code for the attacker's secret does not turn anything on from Kim's session…
    let now = app.clock.now().timestamp();
    let csrf = hidden(&page, "csrf");
    let res = app
        .post_form(
            &kim,
            "/account/totp",
            &[("csrf", &csrf), ("code", &totp_code(&planted, now))],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(!mfa_enrolled(&app, "kim").await);
    // …and Kim's secret is what her code confirms.
    let res = app
        .post_form(
            &kim,
            "/account/totp",
            &[("csrf", &csrf), ("code", &totp_code(&shown, now))],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(mfa_enrolled(&app, "kim").await);
    // The attacker's pending secret is worth nothing now, even from his own session.
    app.clock.advance(chrono::Duration::seconds(30));
    let csrf = app.account_csrf(&attacker).await;
    let code = totp_code(&planted, app.clock.now().timestamp());
    let res = app
        .post_form(
            &attacker,
            "/account/totp",
            &[("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_ne!(res.status(), 200);
    let client = app.new_client();
    let (tx, csrf) = to_otp_step(&app, &client, "kim").await;
    assert_eq!(
        submit_code(&app, &client, &tx, &csrf, &code).await.status(),
        401,
        "the attacker's secret is no second factor of Kim's"
    );
}

#[tokio::test]
async fn an_enrolment_during_sign_in_is_bound_to_its_login_transaction() {
    let app = spawn_app().await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.mfa = MfaPolicy::Everyone;
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    create_user(&app, "lena", "Quiet-Harbour-42", false).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let client = app.new_client();
        let res = app.sign_in(&client, "lena", "Quiet-Harbour-42").await;
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/login/totp-enrol?tx="), "{location}");
        let (secret, page) = enrolment_page(&app, &client, &location).await;
        seen.push((client, secret, hidden(&page, "tx"), hidden(&page, "csrf")));
    }
    let (first, second) = (&seen[0], &seen[1]);
    assert_ne!(first.1, second.1, "a fresh secret for each sign-in");

    let now = app.clock.now().timestamp();
    let confirm = |who: &(reqwest::Client, String, String, String), secret: &str| {
        let code = totp_code(secret, now);
        let (client, tx, csrf) = (who.0.clone(), who.2.clone(), who.3.clone());
        let app = &app;
        async move {
            app.post_form(
                &client,
                "/login/totp-enrol",
                &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
            )
            .await
            .status()
        }
    };
    assert_eq!(
        confirm(second, &first.1).await,
        400,
        "the first sign-in's secret is not confirmable from the second"
    );
    assert!(!mfa_enrolled(&app, "lena").await);
    assert_eq!(confirm(second, &second.1).await, 200);
    assert!(mfa_enrolled(&app, "lena").await);
}
