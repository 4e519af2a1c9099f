//! SOAP SPs hear about SSO sessions that run out with no browser (issue 24 item 5): the
//! janitor's SAML sweep (`saml::lapsed::sweep_lapsed_sessions`) finds the durable list
//! of a session that is no longer live and queues its SOAP LogoutRequests, once; a
//! session ended by another path (sign-out, a returning browser) is not told again.

use std::time::Duration;

use gatehouse::{
    audit::EventType, clock::Clock, saml::lapsed::sweep_lapsed_sessions,
    store::saml_soap_participants,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{
    admin::audit_events,
    durable_logout::{Received, SOAP_KIND, World, next, serve, soap_ok},
    helpers::{eventually, hidden, spawn_app},
};

/// Past the test configuration's 72-hour idle limit.
fn past_idle() -> chrono::Duration {
    chrono::Duration::hours(73)
}

/// The durable rows of every session: (session handle, SP, sealed subject).
async fn durable_rows(w: &World) -> Vec<(String, String, String)> {
    let store = &w.app.state.store;
    let handles = store.run(saml_soap_participants::handles).await.unwrap();
    let mut all = Vec::new();
    for h in handles {
        let rows = store
            .run(move |c| saml_soap_participants::of_session(c, &h))
            .await
            .unwrap();
        all.extend(
            rows.into_iter()
                .map(|r| (r.session_handle, r.sp_entity_id, r.subject_sealed)),
        );
    }
    all
}

/// Waits until every SOAP logout in the outbox was sent; returns how many there are.
async fn all_sent(w: &World) -> usize {
    let sent = eventually(Duration::from_secs(10), || async {
        w.rows()
            .await
            .iter()
            .filter(|r| r.kind == SOAP_KIND)
            .all(|r| r.status == "sent")
    })
    .await;
    assert!(sent, "{:?}", w.rows().await);
    w.rows()
        .await
        .iter()
        .filter(|r| r.kind == SOAP_KIND)
        .count()
}

async fn sent_metric(w: &World) -> f64 {
    w.app
        .metric(&format!(
            "gatehouse_mail_sent_total{{kind=\"{SOAP_KIND}\"}}"
        ))
        .await
}

/// Once the `sent` deliveries are recorded as sent (the worker marks a row after the SP
/// answered, so the clock must not jump past its lease before that), nothing more
/// arrives, even after every retry would have been due.
async fn nothing_more(w: &World, rx: &mut UnboundedReceiver<Received>, sent: f64) {
    for _ in 0..200 {
        if sent_metric(w).await >= sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    w.nothing_more(&mut [rx]).await;
    assert_eq!(sent_metric(w).await, sent);
}

#[tokio::test]
async fn a_session_that_runs_out_unnoticed_is_told_to_its_soap_sp_once() {
    let w = World::new(spawn_app().await).await;
    let mut sp_rx = serve(w.sp_port, soap_ok(&w.sp)).await;
    let rows = durable_rows(&w).await;
    assert_eq!(rows.len(), 1, "the SOAP SP is kept durably: {rows:?}");
    assert_eq!(rows[0].1, w.sp.entity_id);
    assert!(
        !rows[0].2.contains(&w.name_id) && !rows[0].2.contains(&w.user_id),
        "the subject is sealed"
    );
    assert_eq!(
        sweep_lapsed_sessions(&w.app.state).await.unwrap(),
        0,
        "still live"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sp_rx.try_recv().is_err(),
        "a live session is not logged out"
    );

    // The browser is closed; the idle limit passes with no request.
    w.app.clock.advance(past_idle());
    let lapsed_at = w.app.clock.now();
    // Two instances' janitors sweep at once: one of them queues the logout.
    let (a, b) = tokio::join!(
        sweep_lapsed_sessions(&w.app.state),
        sweep_lapsed_sessions(&w.app.state)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    w.check_soap(&next(&mut sp_rx).await, lapsed_at).await;
    assert_eq!(all_sent(&w).await, 1);
    assert!(durable_rows(&w).await.is_empty(), "claimed by the sweep");

    // A second sweep (or another instance's), and the browser coming back, tell no one.
    assert_eq!(sweep_lapsed_sessions(&w.app.state).await.unwrap(), 0);
    let res = w.browser.get(w.app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 303, "the session is over");
    nothing_more(&w, &mut sp_rx, 1.0).await;

    let logouts = audit_events(&w.app, EventType::SamlLogout).await;
    assert!(
        logouts.iter().any(|e| e.outcome == "success"
            && e.details["binding"] == "soap"
            && e.details["sp"] == w.sp.entity_id.as_str()
            && e.subject.as_deref() == Some(w.user_id.as_str())),
        "{logouts:?}"
    );
    let ended = audit_events(&w.app, EventType::SessionEnded).await;
    assert!(
        ended.iter().any(|e| e.details["reason"] == "lapsed"
            && e.details["saml_soap_logouts"] == 1
            && e.subject.as_deref() == Some(w.user_id.as_str())),
        "{ended:?}"
    );
}

#[tokio::test]
async fn after_a_sign_out_the_sweep_sends_nothing_more() {
    let w = World::new(spawn_app().await).await;
    let mut sp_rx = serve(w.sp_port, soap_ok(&w.sp)).await;
    let signed_out_at = w.app.clock.now();
    let account = w.browser.get(w.app.url("/account")).send().await.unwrap();
    let csrf = hidden(&account.text().await.unwrap(), "csrf");
    let res = w
        .app
        .post_form(&w.browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    w.check_soap(&next(&mut sp_rx).await, signed_out_at).await;
    assert_eq!(all_sent(&w).await, 1);
    assert!(durable_rows(&w).await.is_empty(), "taken with the sign-out");

    w.app.clock.advance(past_idle());
    assert_eq!(sweep_lapsed_sessions(&w.app.state).await.unwrap(), 0);
    nothing_more(&w, &mut sp_rx, 1.0).await;
}

#[tokio::test]
async fn a_browser_returning_to_a_lapsed_session_tells_the_sp_and_the_sweep_does_not() {
    let w = World::new(spawn_app().await).await;
    let mut sp_rx = serve(w.sp_port, soap_ok(&w.sp)).await;
    w.app.clock.advance(past_idle());
    let returned_at = w.app.clock.now();
    let res = w.browser.get(w.app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 303, "the session is over");
    w.check_soap(&next(&mut sp_rx).await, returned_at).await;
    assert!(durable_rows(&w).await.is_empty());
    assert_eq!(sweep_lapsed_sessions(&w.app.state).await.unwrap(), 0);
    nothing_more(&w, &mut sp_rx, 1.0).await;
}

#[tokio::test]
async fn rows_a_day_past_the_sessions_absolute_end_are_purged_unsent() {
    let w = World::new(spawn_app().await).await;
    let mut sp_rx = serve(w.sp_port, soap_ok(&w.sp)).await;
    // The janitor was down past the 30-day absolute limit and a day more.
    w.app
        .clock
        .advance(chrono::Duration::days(31) + chrono::Duration::minutes(1));
    assert_eq!(sweep_lapsed_sessions(&w.app.state).await.unwrap(), 0);
    assert!(durable_rows(&w).await.is_empty(), "purged");
    nothing_more(&w, &mut sp_rx, 0.0).await;
}
