//! Password sign-in through the real pages (DESIGN §4, §8, §13).

use std::time::{Duration, Instant};

use gatehouse::{
    auth::password::Hasher,
    clock::Clock,
    domain::{OrgName, Password},
    store::{orgs, users},
};

use crate::helpers::{create_user, element_text, hidden, spawn_app, spawn_app_with, totp_code};

const VERIFY_METRIC: &str = "gatehouse_password_hash_operations_total{kind=\"verify\"} ";

#[tokio::test]
async fn account_page_sends_a_stranger_to_sign_in_and_back() {
    let app = spawn_app().await;
    create_user(&app, "alice", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    let res = client.get(app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login?tx="), "{location}");
    let page = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"autocomplete="username""#)
            && html.contains(r#"autocomplete="current-password""#)
    );
    assert!(html.contains(r#"<label for="password">"#));

    let res = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ALICE"),
                ("password", "Quiet-Harbour-42"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-gatehouse-session="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=None", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let account = client.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    let html = account.text().await.unwrap();
    assert!(
        html.contains(r#"<dd id="account-username">alice</dd>"#),
        "{html}"
    );
}

/// The page with the per-request values (transaction, CSRF token) blanked.
fn normalised(html: &str) -> String {
    let mut out = html.to_owned();
    for field in ["tx", "csrf"] {
        let value = hidden(html, field);
        out = out.replace(&value, "…");
    }
    out
}

#[tokio::test]
async fn unknown_username_gets_the_same_answer_as_a_wrong_password() {
    let app = spawn_app().await;
    create_user(&app, "bob", "Quiet-Harbour-42", false).await;
    let wrong = app
        .sign_in(&app.new_client(), "bob", "Wrong-Password-1")
        .await;
    let unknown = app
        .sign_in(&app.new_client(), "bobby", "Wrong-Password-1")
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(wrong.contains("Incorrect username or password."));
    assert_eq!(
        normalised(&wrong).replace("bob", "X"),
        normalised(&unknown).replace("bobby", "X")
    );
    // Both cost one real verification: the unknown name is checked against a dummy hash.
    assert_eq!(app.metric(VERIFY_METRIC).await, 2.0);
}

#[tokio::test]
async fn disabled_user_cannot_sign_in_and_gets_the_generic_answer() {
    let app = spawn_app().await;
    let user = create_user(&app, "dora", "Quiet-Harbour-42", false).await;
    app.state
        .store
        .run(move |c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::users::dsl;
            diesel::update(dsl::users.find(&user.id))
                .set(dsl::status.eq("disabled"))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let res = app
        .sign_in(&app.new_client(), "dora", "Quiet-Harbour-42")
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Incorrect username or password.")
    );
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = spawn_app().await;
    create_user(&app, "carl", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    assert_eq!(
        app.sign_in(&client, "carl", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
    let csrf = app.account_csrf(&client).await;
    let res = app.post_form(&client, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("<h1>Signed out</h1>"));
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

#[tokio::test]
async fn idle_session_expires_with_the_clock() {
    let app = spawn_app().await;
    create_user(&app, "erin", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "erin", "Quiet-Harbour-42").await;
    app.clock.advance(chrono::Duration::hours(71));
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "71 h idle is within 72 h"
    );
    app.clock
        .advance(chrono::Duration::hours(72) + chrono::Duration::seconds(1));
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "72 h idle ends it"
    );
}

#[tokio::test]
async fn active_session_still_ends_at_its_absolute_lifetime() {
    let app = spawn_app().await;
    create_user(&app, "finn", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "finn", "Quiet-Harbour-42").await;
    // Active every 70 hours: never idle, but 30 days is the end.
    for _ in 0..10 {
        app.clock.advance(chrono::Duration::hours(70));
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
    app.clock.advance(chrono::Duration::hours(21));
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "past 30 days"
    );
}

#[tokio::test]
async fn missing_or_wrong_csrf_token_is_refused() {
    let app = spawn_app().await;
    create_user(&app, "gail", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    let (tx, _csrf) = app.open_login(&client).await;
    let missing = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &tx),
                ("username", "gail"),
                ("password", "Quiet-Harbour-42"),
            ],
        )
        .await;
    assert_eq!(missing.status(), 403);
    let wrong = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", "forged"),
                ("username", "gail"),
                ("password", "Quiet-Harbour-42"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 403);
    assert!(
        wrong.text().await.unwrap().contains("<h1>"),
        "a page, not a blank body"
    );

    // The account forms check the session's token too.
    app.sign_in(&client, "gail", "Quiet-Harbour-42").await;
    let res = app
        .post_form(&client, "/logout", &[("csrf", "forged")])
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn a_transaction_started_in_another_browser_is_useless() {
    let app = spawn_app().await;
    create_user(&app, "hana", "Quiet-Harbour-42", false).await;
    let attacker = app.new_client();
    let (tx, csrf) = app.open_login(&attacker).await;
    let victim = app.new_client();
    victim.get(app.url("/login")).send().await.unwrap(); // the victim has a browser cookie of its own
    let res = app
        .post_form(
            &victim,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "hana"),
                ("password", "Quiet-Harbour-42"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Your sign-in expired"));
}

#[tokio::test]
async fn cross_origin_post_is_refused() {
    let app = spawn_app().await;
    create_user(&app, "ivan", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;
    let res = client
        .post(app.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[
            ("tx", tx.as_str()),
            ("csrf", &csrf),
            ("username", "ivan"),
            ("password", "Quiet-Harbour-42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.metric(VERIFY_METRIC).await,
        0.0,
        "refused before any hashing"
    );
}

#[tokio::test]
async fn unknown_or_expired_transaction_gets_a_page_that_starts_over() {
    let app = spawn_app().await;
    let client = app.new_client();
    for tx in ["nope", "", &"x".repeat(10_000), "../../etc/passwd"] {
        let res = client
            .get(app.url(&format!("/login?tx={tx}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{tx:?}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Start again") && html.contains(r#"href="/account""#),
            "{html}"
        );
    }
}

#[tokio::test]
async fn first_administrator_must_change_the_one_time_password() {
    let app = spawn_app().await;
    let one_time = app
        .admin_password
        .clone()
        .expect("first start printed a password");
    let client = app.new_client();
    let res = app.sign_in(&client, "admin", &one_time).await;
    assert_eq!(res.status(), 303);
    // Admin roles must have a second factor (the default policy), set up first.
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/totp-enrol?tx="), "{location}");
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (tx, csrf) = (hidden(&page, "tx"), hidden(&page, "csrf"));
    let secret = element_text(&page, "totp-secret");
    let code = totp_code(&secret, app.clock.now().timestamp());
    let res = app
        .post_form(
            &client,
            "/login/totp-enrol",
            &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(r#"id="recovery-codes""#));
    // Nothing else is reachable before the password change: no session exists yet.
    assert_eq!(
        client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    let res = app
        .post_form(&client, "/login/continue", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/password?tx="), "{location}");

    let same = app
        .post_form(
            &client,
            "/login/password",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("new_password", &one_time),
                ("confirm_password", &one_time),
            ],
        )
        .await;
    assert_eq!(same.status(), 400, "the one-time password cannot be kept");
    assert!(same.text().await.unwrap().contains("you have not used"));

    let res = app
        .post_form(
            &client,
            "/login/password",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("new_password", "Chosen-Harbour-77"),
                ("confirm_password", "Chosen-Harbour-77"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
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
    // The next sign-in asks for password and code, and no password change.
    let res = app
        .sign_in(&app.new_client(), "admin", "Chosen-Harbour-77")
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login/otp?tx=")
    );
}

#[tokio::test]
async fn expired_password_must_be_changed_at_sign_in() {
    let app = spawn_app().await;
    create_user(&app, "jane", "Quiet-Harbour-42", false).await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.password.max_age_days = Some(90);
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::days(91));
    let res = app
        .sign_in(&app.new_client(), "jane", "Quiet-Harbour-42")
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login/password?tx=")
    );
}

#[tokio::test]
async fn old_hash_parameters_are_upgraded_at_the_next_sign_in() {
    let app = spawn_app().await;
    let user = create_user(&app, "kim", "Quiet-Harbour-42", false).await;
    let weak = Hasher::new(64, 1, 1)
        .unwrap()
        .hash(&Password::parse("Quiet-Harbour-42".into()).unwrap())
        .unwrap();
    let (id, pii) = (user.id.clone(), app.state.pii.clone());
    app.state
        .store
        .run(move |c| users::replace_hash(c, &pii, &id, &weak))
        .await
        .unwrap();
    assert_eq!(
        app.sign_in(&app.new_client(), "kim", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
    let upgraded = crate::helpers::eventually(Duration::from_secs(10), || {
        let id = user.id.clone();
        let state = app.state.clone();
        async move {
            let pii = state.pii.clone();
            let row = state
                .store
                .run(move |c| users::find_by_id(c, &pii, &id))
                .await
                .unwrap()
                .unwrap();
            row.password_hash.unwrap().contains("m=19456,t=2,p=1")
        }
    })
    .await;
    assert!(upgraded, "hash still has the old parameters");
    assert_eq!(
        app.sign_in(&app.new_client(), "kim", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn a_megabyte_password_is_refused_quickly_without_hashing() {
    let app = spawn_app().await;
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;
    let huge = "x".repeat(1 << 20);
    let started = Instant::now();
    let res = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", &huge),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(res.text().await.unwrap().contains("<h1>"));
    // Just over the per-field limit, inside the body limit: refused by the domain type.
    let long = "x".repeat(1025);
    let res = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", &long),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.metric(VERIFY_METRIC).await, 0.0);
}

#[tokio::test]
async fn malformed_sign_in_bodies_get_a_400_page() {
    let app = spawn_app().await;
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;

    let invalid_utf8 = client
        .post(app.url("/login"))
        .header("Origin", &app.base)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(b"username=\xff\xfe&password=%ff%fe".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(invalid_utf8.status(), 400);

    let missing = app
        .post_form(&client, "/login", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert_eq!(missing.status(), 400);
    let html = missing.text().await.unwrap();
    assert!(
        html.contains("<h1>") && html.len() > 100,
        "a page, not a blank body: {html}"
    );

    let ten_kb = "u".repeat(10 * 1024);
    let res = app
        .post_form(
            &client,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", &ten_kb),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.metric(VERIFY_METRIC).await, 0.0);
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_at_once() {
    let app = spawn_app_with(|c| {
        c.hashing_workers = Some(1);
        c.hashing_queue = 0;
        c.argon2_memory_kib = 64 * 1024;
        c.argon2_iterations = 3;
    })
    .await;
    create_user(&app, "lena", "Quiet-Harbour-42", false).await;
    let mut attempts = Vec::new();
    for _ in 0..8 {
        let client = app.new_client();
        let (tx, csrf) = app.open_login(&client).await;
        attempts.push((client, tx, csrf));
    }
    let futures = attempts.iter().map(|(client, tx, csrf)| async {
        let started = Instant::now();
        let res = app
            .post_form(
                client,
                "/login",
                &[
                    ("tx", tx),
                    ("csrf", csrf),
                    ("username", "lena"),
                    ("password", "Wrong-Harbour-42"),
                ],
            )
            .await;
        (
            res.status().as_u16(),
            res.headers().get("retry-after").is_some(),
            started.elapsed(),
        )
    });
    let results = futures_util::future::join_all(futures).await;
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(!busy.is_empty(), "{results:?}");
    assert!(busy.iter().all(|r| r.1), "503 carries Retry-After");
    assert!(results.iter().any(|r| r.0 == 401), "{results:?}");
}
