//! The account page: change password (policy, history), sessions.

use crate::helpers::{create_user, hidden, spawn_app};

async fn change(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    let csrf = app.account_csrf(client).await;
    app.post_form(
        client,
        "/account/password",
        &[
            ("csrf", &csrf),
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ],
    )
    .await
}

#[tokio::test]
async fn each_policy_rule_is_refused_and_named_all_at_once() {
    let app = spawn_app().await;
    create_user(&app, "mona", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "mona", "Quiet-Harbour-42").await;
    let cases: &[(&str, &[&str])] = &[
        ("Ab1!", &["at least 8 characters"]),
        ("alllowercase1!", &["upper-case"]),
        ("ALLUPPERCASE1!", &["lower-case"]),
        ("NoDigitsOrSymbolsHere", &["digit or a symbol"]),
        ("Mona-Harbour-42x", &["username"]),
        ("Password1", &["too common"]),
        (
            "short",
            &["at least 8 characters", "upper-case", "digit or a symbol"],
        ),
    ];
    for (password, expected) in cases {
        let res = change(&app, &client, "Quiet-Harbour-42", password, password).await;
        assert_eq!(res.status(), 400, "{password}");
        let html = res.text().await.unwrap();
        let errors = &html[html
            .find(r#"id="errors""#)
            .unwrap_or_else(|| panic!("no errors for {password}"))..];
        for phrase in *expected {
            assert!(
                errors.to_lowercase().contains(&phrase.to_lowercase()),
                "{password}: {phrase} not in {errors}"
            );
        }
        assert!(
            !html.contains(password),
            "the page never echoes the password"
        );
    }
    let res = change(
        &app,
        &client,
        "Quiet-Harbour-42",
        "Valid-Harbour-43",
        "Different-Harbour-44",
    )
    .await;
    assert!(res.text().await.unwrap().contains("do not match"));
    // Nothing changed: the old password still works.
    assert_eq!(
        app.sign_in(&app.new_client(), "mona", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    create_user(&app, "nils", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "nils", "Quiet-Harbour-42").await;
    let res = change(
        &app,
        &client,
        "Not-The-Password-1",
        "Fresh-Harbour-43",
        "Fresh-Harbour-43",
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("current password is not correct")
    );
    assert_eq!(
        app.sign_in(&app.new_client(), "nils", "Fresh-Harbour-43")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_recent_password_cannot_be_reused() {
    let app = spawn_app().await;
    create_user(&app, "olga", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "olga", "Quiet-Harbour-42").await;
    let res = change(
        &app,
        &client,
        "Quiet-Harbour-42",
        "Second-Harbour-43",
        "Second-Harbour-43",
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?changed=1");
    let res = change(
        &app,
        &client,
        "Second-Harbour-43",
        "Quiet-Harbour-42",
        "Quiet-Harbour-42",
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("you have not used"));
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    create_user(&app, "pia", "Quiet-Harbour-42", false).await;
    let here = app.new_client();
    let elsewhere = app.new_client();
    app.sign_in(&here, "pia", "Quiet-Harbour-42").await;
    app.sign_in(&elsewhere, "pia", "Quiet-Harbour-42").await;
    assert_eq!(
        elsewhere
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let res = change(
        &app,
        &here,
        "Quiet-Harbour-42",
        "Newer-Harbour-43",
        "Newer-Harbour-43",
    )
    .await;
    assert_eq!(res.status(), 303);
    let page = here
        .get(app.url("/account?changed=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Your password was changed.")
    );
    assert_eq!(
        elsewhere
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "other session ended"
    );
    assert_eq!(
        app.sign_in(&app.new_client(), "pia", "Quiet-Harbour-42")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.sign_in(&app.new_client(), "pia", "Newer-Harbour-43")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_ends_one() {
    let app = spawn_app().await;
    create_user(&app, "quin", "Quiet-Harbour-42", false).await;
    let here = app.new_client();
    let other = app.new_client();
    app.sign_in(&here, "quin", "Quiet-Harbour-42").await;
    app.sign_in(&other, "quin", "Quiet-Harbour-42").await;
    let html = here
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches(r#"name="session""#).count(), 2, "{html}");
    assert!(html.contains("(this browser)"));
    // End the session that is not this browser's.
    let body = &html[html.find("<tbody>").unwrap()..];
    let other_handle = body
        .split("<tr>")
        .skip(1)
        .find(|row| !row.contains("(this browser)"))
        .map(|row| hidden(row, "session"))
        .expect("a row for the other session");
    let csrf = hidden(&html, "csrf");
    let res = app
        .post_form(
            &here,
            "/account/sessions/end",
            &[("csrf", &csrf), ("session", &other_handle)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        other
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "that session ended"
    );
    assert_eq!(
        here.get(app.url("/account")).send().await.unwrap().status(),
        200,
        "this one lives"
    );

    // A handle of someone else's shape that is not ours is refused quietly.
    let res = app
        .post_form(
            &here,
            "/account/sessions/end",
            &[("csrf", &csrf), ("session", "zz")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .post_form(
            &here,
            "/account/sessions/end",
            &[("csrf", &csrf), ("session", &"a".repeat(64))],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        here.get(app.url("/account")).send().await.unwrap().status(),
        200
    );
}

/// Issue 20 item 5: the account page ends a session by handle. A handle that is someone
/// else's (rex's, signed in to an application) ends nothing of theirs: rex's session and
/// tokens live on, and the trail records no session ended.
#[tokio::test]
async fn ending_another_users_session_handle_from_the_account_page_ends_nothing_of_theirs() {
    use crate::oidc::{REDIRECT, browse_authorize, query, register_client, rp_http};
    use gatehouse::oidc::clients::ClientSpec;
    use secrecy::ExposeSecret;

    let app = spawn_app().await;
    create_user(&app, "quin", "Quiet-Harbour-42", false).await;
    let rex = create_user(&app, "rex", "Quiet-Harbour-43", false).await;
    let rp = register_client(&app, ClientSpec::new("Ward app", &[REDIRECT])).await;
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &rp.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid");
    let rex_browser = app.new_client();
    let back = browse_authorize(&app, &rex_browser, url.as_str(), "rex", "Quiet-Harbour-43").await;
    let tokens: serde_json::Value = rp_http()
        .post(app.url("/token"))
        .basic_auth(
            &rp.client_id,
            Some(rp.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query(&back)["code"]),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rex_token = tokens["access_token"].as_str().unwrap().to_owned();
    let rex_handle = gatehouse::auth::session::list(
        app.state.ephemeral.as_ref(),
        app.state.clock.as_ref(),
        &rex.id,
    )
    .await
    .unwrap()
    .remove(0)
    .handle;

    let quin = app.new_client();
    app.sign_in(&quin, "quin", "Quiet-Harbour-42").await;
    let csrf = app.account_csrf(&quin).await;
    let res = app
        .post_form(
            &quin,
            "/account/sessions/end",
            &[("csrf", &csrf), ("session", &rex_handle)],
        )
        .await;
    assert_eq!(res.status(), 303);

    let info = rp_http()
        .get(app.url("/userinfo"))
        .bearer_auth(&rex_token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "rex's tokens are not revoked");
    assert_eq!(
        rex_browser
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "rex's session lives"
    );
    for event_type in [
        gatehouse::audit::EventType::SessionEnded,
        gatehouse::audit::EventType::TokenRevoked,
    ] {
        let found = crate::admin::audit_events(&app, event_type).await;
        assert!(found.is_empty(), "{event_type:?}: {found:?}");
    }
}
