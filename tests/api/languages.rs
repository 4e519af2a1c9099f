//! The language of the pages (issue 31): OIDC `ui_locales` for the sign-in it starts,
//! then the person's own setting, then the browser's `Accept-Language`, then the
//! organisation's default; English otherwise. Dates follow the person's time zone.

use gatehouse::{
    oidc::clients::ClientSpec,
    store::preferences::{self, Preferences},
};
use reqwest::header::ACCEPT_LANGUAGE;
use serde_json::Value;

use crate::{
    helpers::{TestApp, change_default_policy, create_user, hidden, spawn_app},
    oidc::{register_client, sign_in_url},
};

const PASSWORD: &str = "Language-Horse-Battery-7";

/// A browser whose every request says `accept_language`.
fn browser(accept_language: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT_LANGUAGE, accept_language.parse().unwrap());
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The `lang` of a page's `<html>`.
fn lang(html: &str) -> &str {
    let start = html.find("<html lang=\"").expect("an html element") + 12;
    &html[start..start + html[start..].find('"').unwrap()]
}

/// The sign-in page a fresh `/login` leads `client` to.
async fn login_page(app: &TestApp, client: &reqwest::Client) -> String {
    let res = client.get(app.url("/login")).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    app.page(client, &location).await
}

/// Signs `client` in as `username` from `/account`; returns the page the password leads
/// to (following redirects within Gatehouse).
async fn sign_in(app: &TestApp, client: &reqwest::Client, username: &str) -> String {
    let page = login_page(app, client).await;
    let res = app
        .post_form(
            client,
            "/login",
            &[
                ("tx", &hidden(&page, "tx")),
                ("csrf", &hidden(&page, "csrf")),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "password accepted");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    app.page(client, &location).await
}

#[tokio::test]
async fn the_sign_in_page_speaks_the_browsers_language() {
    let app = spawn_app().await;
    for (header, expected) in [
        ("es-MX,es;q=0.9,en;q=0.5", "es-419"),
        ("es", "es-419"),
        ("fr-CA, es;q=0.3", "es-419"),
        ("en-GB", "en"),
        ("fr, de", "en"),
        ("es;q=0, en;q=0.1", "en"),
        ("es;q=0.2, en;q=0.9", "en"),
    ] {
        let page = login_page(&app, &browser(header)).await;
        assert_eq!(lang(&page), expected, "Accept-Language: {header}");
        let spanish = expected == "es-419";
        assert_eq!(page.contains("Iniciar sesión"), spanish, "{header}");
        assert_eq!(page.contains(">Sign in<"), !spanish, "{header}");
    }
    // Hostile headers: read no further than a bound, and never a failure.
    let long = format!("{}es", "x-".repeat(2000));
    for header in [long.as_str(), ";;;,,,q=", "es;q=NaN", "*;q=1"] {
        let page = login_page(&app, &browser(header)).await;
        assert_eq!(lang(&page), "en", "{header:.40}");
    }
}

#[tokio::test]
async fn ui_locales_chooses_the_language_of_the_sign_in_it_starts() {
    const REDIRECT: &str = "https://rp.example.org/callback";
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let reg = register_client(&app, ClientSpec::new("Ward app", &[REDIRECT])).await;
    let authorize = |ui_locales: &str| {
        let extra = [("ui_locales", ui_locales)];
        sign_in_url(&app, &reg.client_id, REDIRECT, "openid", &extra)
    };
    for (ui_locales, expected) in [("es-CO en", "es-419"), ("fr es", "es-419"), ("fr", "en")] {
        let client = browser("en-US");
        let res = client.get(authorize(ui_locales)).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let page = app.page(&client, &location).await;
        assert_eq!(lang(&page), expected, "ui_locales={ui_locales}");
        // The same sign-in's next page, a wrong password, speaks it too.
        let res = app
            .post_form(
                &client,
                "/login",
                &[
                    ("tx", &hidden(&page, "tx")),
                    ("csrf", &hidden(&page, "csrf")),
                    ("username", "olivia"),
                    ("password", "not-the-password"),
                ],
            )
            .await;
        assert_eq!(res.status(), 401);
        let refused = res.text().await.unwrap();
        assert_eq!(lang(&refused), expected, "ui_locales={ui_locales}");
        assert_eq!(
            refused.contains("Incorrect username or password."),
            expected == "en"
        );
    }
    let doc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["ui_locales_supported"],
        serde_json::json!(["en", "es-419"])
    );
}

#[tokio::test]
async fn a_persons_own_setting_wins_over_their_browser_and_sets_their_time_zone() {
    let app = spawn_app().await;
    create_user(&app, "pilar", PASSWORD, false).await;
    let client = browser("en-US,en;q=0.9");
    let account = sign_in(&app, &client, "pilar").await;
    assert_eq!(lang(&account), "en");
    assert!(account.contains(" UTC<"), "dates in UTC before a choice");

    let csrf = hidden(&account, "csrf");
    let res = app
        .post_form(
            &client,
            "/account/preferences",
            &[
                ("csrf", &csrf),
                ("language", "es-419"),
                ("time_zone", "America/Bogota"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let account = app.page(&client, "/account?preferences=1").await;
    assert_eq!(
        lang(&account),
        "es-419",
        "the setting beats Accept-Language"
    );
    assert!(account.contains("id=\"notice\""), "{account}");
    assert!(
        account.contains(" -05<"),
        "dates in Bogotá's time: {account}"
    );
    assert!(!account.contains(" UTC<"));
    assert!(account.contains("<option value=\"es-419\" lang=\"es-419\" selected>"));
    assert!(account.contains("<option selected>America/Bogota</option>"));

    // Another sign-in of the same person speaks Spanish once the password says who
    // they are; before that, nobody is known and the browser decides.
    let other = browser("en");
    assert_eq!(lang(&login_page(&app, &other).await), "en");
    assert_eq!(lang(&sign_in(&app, &other, "pilar").await), "es-419");

    // Clearing the setting gives the browser its say again.
    let res = app
        .post_form(
            &client,
            "/account/preferences",
            &[("csrf", &csrf), ("language", ""), ("time_zone", "")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(lang(&app.page(&client, "/account").await), "en");
}

#[tokio::test]
async fn a_required_step_speaks_the_persons_language() {
    let app = spawn_app().await;
    let user = create_user(&app, "rosa", PASSWORD, true).await;
    let chosen = Preferences {
        language: Some("es-419".into()),
        time_zone: None,
    };
    app.state
        .store
        .run(move |c| preferences::save(c, &user.id, &chosen, chrono::Utc::now().naive_utc()))
        .await
        .unwrap();
    let page = sign_in(&app, &browser("en"), "rosa").await;
    assert!(page.contains("id=\"new_password\""), "the required change");
    assert_eq!(lang(&page), "es-419");
}

#[tokio::test]
async fn the_organisations_default_speaks_when_neither_person_nor_browser_chose() {
    let app = spawn_app().await;
    create_user(&app, "tomas", PASSWORD, false).await;
    change_default_policy(&app, |p| {
        p.language = Some("es-419".into());
        p.time_zone = Some("America/Mexico_City".into());
    })
    .await;
    let unspoken = sign_in(&app, &browser("fr-FR, de;q=0.5"), "tomas").await;
    assert_eq!(lang(&unspoken), "es-419", "the organisation's default");
    assert!(unspoken.contains(" CST<"), "the organisation's time zone");
    let english = sign_in(&app, &browser("en"), "tomas").await;
    assert_eq!(lang(&english), "en", "the browser beats the organisation");
}

#[tokio::test]
async fn settings_gatehouse_cannot_honour_are_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let user = create_user(&app, "ines", PASSWORD, false).await;
    let client = browser("es");
    let account = sign_in(&app, &client, "ines").await;
    let csrf = hidden(&account, "csrf");
    for (language, zone) in [
        ("fr", ""),
        ("klingon-x-tlh", ""),
        ("", "Mars/Olympus_Mons"),
        ("", "america/bogota"),
        (&"es".repeat(1000), ""),
    ] {
        let res = app
            .post_form(
                &client,
                "/account/preferences",
                &[("csrf", &csrf), ("language", language), ("time_zone", zone)],
            )
            .await;
        assert_eq!(res.status(), 400, "{language:.20} {zone}");
        assert_eq!(
            lang(&res.text().await.unwrap()),
            "es-419",
            "the error page too"
        );
    }
    let res = app
        .post_form(
            &client,
            "/account/preferences",
            &[("csrf", "wrong"), ("language", "en"), ("time_zone", "")],
        )
        .await;
    assert_eq!(res.status(), 403);
    let kept = app
        .state
        .store
        .run(move |c| preferences::find(c, &user.id))
        .await
        .unwrap();
    assert_eq!(kept, Preferences::default());
}

#[tokio::test]
async fn error_pages_and_refusals_speak_the_browsers_language() {
    let app = spawn_app().await;
    let spanish = browser("es-AR");
    for path in ["/reset/not-a-token", "/authorize?client_id=unknown"] {
        let res = spanish.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let page = res.text().await.unwrap();
        assert_eq!(lang(&page), "es-419", "{path}");
        assert!(
            !page.contains("not valid") && !page.contains("invalid"),
            "{page}"
        );
    }
    let english = browser("en").get(app.url("/authorize?client_id=unknown"));
    let page = english.send().await.unwrap().text().await.unwrap();
    assert!(page.contains("This sign-in link is not valid"), "{page}");
}
