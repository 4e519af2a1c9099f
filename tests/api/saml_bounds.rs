//! Sessions bounded downstream (issue 24 item 4, ONC 170.315 (d)(5)): every
//! AuthnStatement says `SessionNotOnOrAfter`, from the SSO session's idle and absolute
//! limits, so an SP ends its session no later than Gatehouse ends the one behind it.

use chrono::{DateTime, Duration, Utc};
use gatehouse::{
    clock::Clock,
    domain::{OrgName, OrgPolicy},
    saml::providers::ImportSettings,
    store::orgs,
};

use crate::{
    helpers::{TestApp, spawn_app},
    saml::{TestSp, posted, rand_id, signed_in_client},
};

async fn set_default_policy(app: &TestApp, change: impl FnOnce(&mut OrgPolicy) + Send + 'static) {
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            change(&mut policy);
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
}

/// The SessionNotOnOrAfter of the assertion `sp` gets for the signed-in `client`. While
/// the server's clock is the real one, as the SP reads it (samael's parser, after its
/// signature and time checks); once a test has moved the server's clock, samael would
/// refuse an assertion from the future, so it is read from the Response's text.
async fn session_not_on_or_after(
    app: &TestApp,
    sp: &TestSp,
    client: &reqwest::Client,
) -> DateTime<Utc> {
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request_at(&id, app, app.clock.now(), "", "");
    let res = sp.send_redirect(app, client, &xml, None, false).await;
    assert_eq!(res.status(), 200, "answered from the session");
    let (_, response, _) = posted(&res.text().await.unwrap());
    if (app.clock.now() - Utc::now()).num_seconds().abs() > 60 {
        let value = response
            .split(r#"SessionNotOnOrAfter=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no SessionNotOnOrAfter in {response}"));
        return DateTime::parse_from_rfc3339(value).unwrap().to_utc();
    }
    let assertion = sp
        .samael(app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    assertion.authn_statements.unwrap()[0]
        .session_not_on_or_after
        .expect("the AuthnStatement says SessionNotOnOrAfter")
}

#[tokio::test]
async fn an_sp_session_may_last_the_idle_limit_from_its_latest_assertion() {
    let app = spawn_app().await;
    set_default_policy(&app, |p| {
        p.session_idle_secs = 3_600;
        p.session_absolute_secs = 30 * 86_400;
    })
    .await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "alice").await;

    let first = app.clock.now();
    assert_eq!(
        session_not_on_or_after(&app, &sp, &client)
            .await
            .timestamp(),
        (first + Duration::hours(1)).timestamp()
    );
    // Used again 40 minutes later: the session at Gatehouse lives on, and so may the SP's.
    app.clock.advance(Duration::minutes(40));
    assert_eq!(
        session_not_on_or_after(&app, &sp, &client)
            .await
            .timestamp(),
        (first + Duration::minutes(40) + Duration::hours(1)).timestamp()
    );
}

#[tokio::test]
async fn an_sp_session_never_outlives_the_absolute_limit() {
    let app = spawn_app().await;
    set_default_policy(&app, |p| {
        p.session_idle_secs = 72 * 3_600;
        p.session_absolute_secs = 2 * 3_600;
    })
    .await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in_client(&app, "bob").await;

    let signed_in_at = app.clock.now();
    assert_eq!(
        session_not_on_or_after(&app, &sp, &client)
            .await
            .timestamp(),
        (signed_in_at + Duration::hours(2)).timestamp()
    );
    // An hour on, still two hours after the sign-in: activity never extends it.
    app.clock.advance(Duration::hours(1));
    assert_eq!(
        session_not_on_or_after(&app, &sp, &client)
            .await
            .timestamp(),
        (signed_in_at + Duration::hours(2)).timestamp()
    );
}
