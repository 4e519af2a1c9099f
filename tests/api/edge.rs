//! The web edge as an attacker meets it (issue 20, item 15): the same-origin check on
//! form posts when the browser hides the origin, and who may read `/metrics`.

use crate::helpers::{create_user, spawn_app};

/// Posts the sign-in form with the given `Origin` and `Sec-Fetch-Site` (absent: `None`).
async fn post_login(
    app: &crate::helpers::TestApp,
    origin: &str,
    fetch_site: Option<&str>,
) -> reqwest::Response {
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;
    let mut req = client.post(app.url("/login")).header("Origin", origin);
    if let Some(site) = fetch_site {
        req = req.header("Sec-Fetch-Site", site);
    }
    req.form(&[
        ("tx", tx.as_str()),
        ("csrf", &csrf),
        ("username", "nadia"),
        ("password", "Quiet-Harbour-42"),
    ])
    .send()
    .await
    .unwrap()
}

/// A page on another site (a sandboxed iframe, a `data:` URL) posts with `Origin: null`.
/// Without Fetch Metadata nothing says the post came from our own page, so it must be
/// refused; before this fix it was let through whenever `Sec-Fetch-Site` was missing.
#[tokio::test]
async fn a_null_origin_post_without_fetch_metadata_is_refused() {
    let app = spawn_app().await;
    create_user(&app, "nadia", "Quiet-Harbour-42", false).await;
    for site in [None, Some("none"), Some("same-site"), Some("cross-site")] {
        let res = post_login(&app, "null", site).await;
        assert_eq!(res.status(), 403, "Origin: null, Sec-Fetch-Site: {site:?}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "a page, for a browser"
        );
        let page = res.text().await.unwrap();
        assert!(
            page.contains("sent from another site and was refused"),
            "{page}"
        );
    }
}

/// Our own pages send `Referrer-Policy: no-referrer`, so the browser posts their forms
/// with `Origin: null` and `Sec-Fetch-Site: same-origin`: that must keep working.
#[tokio::test]
async fn a_null_origin_post_from_our_own_page_still_signs_in() {
    let app = spawn_app().await;
    create_user(&app, "nadia", "Quiet-Harbour-42", false).await;
    let res = post_login(&app, "null", Some("same-origin")).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
}

/// `/metrics` names routes, outcomes and counts: reconnaissance for an attacker (how
/// many sign-ins fail, whether a lockout fired). Anybody could read it on the public
/// listener before this fix.
#[tokio::test]
async fn metrics_are_not_public() {
    let app = spawn_app().await;
    let res = app.get("/metrics").await;
    assert!(
        matches!(res.status().as_u16(), 401 | 404),
        "anonymous /metrics answered {}",
        res.status()
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("gatehouse_http_requests_total"), "{body}");
}
