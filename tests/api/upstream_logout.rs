//! Logout across the federation (issue 28), with a second Gatehouse as the upstream:
//! signing out here ends the session there (RP-Initiated Logout), and the upstream's
//! back-channel logout tokens end the sessions it signed in here.

use serde_json::json;
use url::Url;

use crate::{
    helpers::{client, hidden},
    oidc::{continue_link, query},
    upstream_oidc::{Pair, audit_details, pair_with, sign_in_with_button},
};

#[tokio::test]
async fn signing_out_here_signs_out_at_the_upstream_too_and_comes_back() {
    let pair = pair_with(json!({}), &[]).await;
    let browser = client();
    sign_in_with_button(&pair, &browser).await;
    let up_account = browser
        .get(pair.upstream.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(up_account.status(), 200, "signed in at the upstream too");
    let csrf = pair.downstream.account_csrf(&browser).await;
    let res = pair
        .downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let to_upstream = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    assert!(
        to_upstream
            .as_str()
            .starts_with(&pair.upstream.url("/logout")),
        "{to_upstream}"
    );
    assert_eq!(query(&to_upstream)["client_id"], pair.client_id);
    // Signed out here already, whatever the upstream does.
    assert_eq!(
        browser
            .get(pair.downstream.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    // The upstream asks the person to confirm (no ID token hint is kept here), then
    // sends the browser back to our signed-out page.
    let page = browser.get(to_upstream.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let q = query(&to_upstream);
    let res = pair
        .upstream
        .post_form(
            &browser,
            "/logout",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("client_id", &q["client_id"]),
                ("post_logout_redirect_uri", &q["post_logout_redirect_uri"]),
                ("state", &q["state"]),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let back = continue_link(&res.text().await.unwrap());
    assert!(
        back.starts_with(&pair.downstream.url("/upstream/hospital/signed-out")),
        "{back}"
    );
    let res = browser.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    let up_account = browser
        .get(pair.upstream.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(up_account.status(), 303, "signed out at the upstream");
    // The way back is used once.
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 200, "just our signed-out page");
}

/// A logout token as the upstream Gatehouse mints it for our client.
fn upstream_logout_token(pair: &Pair, sub: Option<&str>, sid: Option<&str>) -> String {
    use gatehouse::clock::Clock;
    gatehouse::oidc::jwt::logout_token(
        &pair.upstream.state.keys.current(),
        gatehouse::crypto::signing::SigningAlg::Rs256,
        &pair.upstream.base,
        &pair.client_id,
        sub,
        sid,
        pair.upstream.clock.now(),
    )
}

async fn post_logout_token(pair: &Pair, token: &str) -> reqwest::Response {
    client()
        .post(pair.downstream.url("/upstream/hospital/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_upstreams_back_channel_logout_ends_the_sessions_it_signed_in() {
    let pair = pair_with(json!({}), &[]).await;
    let first = client();
    sign_in_with_button(&pair, &first).await;
    let second = client();
    sign_in_with_button(&pair, &second).await;
    // The upstream session of the first browser, as its `sid` names it.
    let upstream_sessions = gatehouse::auth::session::list(
        pair.upstream.state.ephemeral.as_ref(),
        pair.upstream.state.clock.as_ref(),
        &pair.uma.id,
    )
    .await
    .unwrap();
    assert_eq!(upstream_sessions.len(), 2);
    let sids: Vec<String> = upstream_sessions
        .iter()
        .map(|s| gatehouse::oidc::sid_for(&s.handle))
        .collect();
    // A token for another client is refused and ends nothing.
    let foreign = gatehouse::oidc::jwt::logout_token(
        &pair.upstream.state.keys.current(),
        gatehouse::crypto::signing::SigningAlg::Rs256,
        &pair.upstream.base,
        "another-client",
        Some(&pair.uma.id),
        None,
        chrono::Utc::now(),
    );
    assert_eq!(post_logout_token(&pair, &foreign).await.status(), 400);
    assert_eq!(post_logout_token(&pair, "not.a.jwt").await.status(), 400);
    // One upstream session ends: exactly one of ours goes with it.
    let token = upstream_logout_token(&pair, None, Some(&sids[0]));
    assert_eq!(post_logout_token(&pair, &token).await.status(), 200);
    assert_eq!(
        post_logout_token(&pair, &token).await.status(),
        400,
        "a replay is refused"
    );
    let alive = |b: reqwest::Client| {
        let url = pair.downstream.url("/account");
        async move { b.get(url).send().await.unwrap().status() == 200 }
    };
    let still = [alive(first.clone()).await, alive(second.clone()).await];
    assert_eq!(still.iter().filter(|s| **s).count(), 1, "{still:?}");
    // The subject signs out everywhere: the other goes too.
    let token = upstream_logout_token(&pair, Some(&pair.uma.id), None);
    assert_eq!(post_logout_token(&pair, &token).await.status(), 200);
    assert!(!alive(first).await && !alive(second).await);
    let ended = audit_details(&pair.downstream, gatehouse::audit::EventType::SessionEnded).await;
    assert_eq!(
        ended
            .iter()
            .filter(|d| d["reason"] == "upstream_logout")
            .count(),
        2,
        "{ended:?}"
    );
}
