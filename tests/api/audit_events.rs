//! Every authentication event lands in the audit trail, recorded by the action that
//! causes it (DESIGN §11), and the chain still verifies afterwards.

use gatehouse::{
    audit::{AuditFilter, AuditRecord, EventType},
    clock::Clock,
};

use crate::helpers::{TestApp, create_user, spawn_app_with, totp_code};

async fn events(app: &TestApp, event_type: EventType) -> Vec<AuditRecord> {
    app.state
        .audit
        .query(
            AuditFilter {
                event_type: Some(event_type),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn each_sign_in_event_is_recorded_by_its_action() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_minute = 10_000;
        c.rate_limit_burst = 10_000;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    // The first start created the administrator, and said so.
    let first = events(&app, EventType::UserCreated).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].actor.as_deref(), Some("system"));
    assert_eq!(first[0].details["via"], "first_start");
    assert_eq!(first[0].details["role"], "super_admin");
    assert!(first[0].subject.is_some());

    let user = create_user(&app, "otto", "Quiet-Harbour-42", false).await;
    let created = events(&app, EventType::UserCreated).await;
    assert_eq!(created.len(), 2);
    assert!(
        created
            .iter()
            .any(|e| e.subject.as_deref() == Some(user.id.as_str()))
    );

    // Success, with the client address and user agent of the request.
    let client = app.new_client();
    app.sign_in(&client, "otto", "Quiet-Harbour-42").await;
    let ok = events(&app, EventType::SignInSucceeded).await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].subject.as_deref(), Some(user.id.as_str()));
    assert_eq!(ok[0].client_ip.as_deref(), Some("127.0.0.1"));
    assert!(ok[0].request_id.is_some());

    // Failures with their reasons; the unknown name is not stored.
    app.sign_in(&app.new_client(), "otto", "Wrong-Harbour-42")
        .await;
    app.sign_in(&app.new_client(), "nosuchuser", "Wrong-Harbour-42")
        .await;
    let failed = events(&app, EventType::SignInFailed).await;
    let reasons: Vec<_> = failed
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        reasons.contains(&"bad_password".to_owned())
            && reasons.contains(&"unknown_account".to_owned()),
        "{reasons:?}"
    );

    // Lockout.
    for _ in 0..4 {
        app.sign_in(&app.new_client(), "otto", "Wrong-Harbour-42")
            .await;
    }
    let locked = events(&app, EventType::AccountLocked).await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].subject.as_deref(), Some(user.id.as_str()));
    app.clock.advance(chrono::Duration::minutes(16));

    // IP block, from a forwarded address.
    for i in 0..21 {
        let c = app.new_client();
        let (tx, csrf) = app.open_login(&c).await;
        c.post(app.url("/login"))
            .header("Origin", &app.base)
            .header("X-Forwarded-For", "203.0.113.50")
            .form(&[
                ("tx", tx.as_str()),
                ("csrf", &csrf),
                ("username", &format!("spray{i}")),
                ("password", "x"),
            ])
            .send()
            .await
            .unwrap();
    }
    let blocked = events(&app, EventType::IpBlocked).await;
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].details["blocked"], "203.0.113.50");

    // MFA enrolment and failure, password change, logout, idle expiry, revocation.
    let client = app.new_client();
    app.sign_in(&client, "otto", "Quiet-Harbour-42").await;
    let (secret, _) = app.enrol_totp(&client).await;
    assert_eq!(events(&app, EventType::MfaEnrolled).await.len(), 1);
    app.clock.advance(chrono::Duration::seconds(30));
    let other = app.new_client();
    let res = app.sign_in(&other, "otto", "Quiet-Harbour-42").await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = other
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (tx, csrf) = (
        crate::helpers::hidden(&page, "tx"),
        crate::helpers::hidden(&page, "csrf"),
    );
    app.post_form(
        &other,
        "/login/otp",
        &[("tx", &tx), ("csrf", &csrf), ("code", "000000")],
    )
    .await;
    assert_eq!(events(&app, EventType::MfaFailed).await.len(), 1);
    let code = totp_code(&secret, app.clock.now().timestamp());
    app.post_form(
        &other,
        "/login/otp",
        &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
    )
    .await;

    let csrf = app.account_csrf(&client).await;
    let res = app
        .post_form(
            &client,
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", "Quiet-Harbour-42"),
                ("new_password", "Later-Harbour-43"),
                ("confirm_password", "Later-Harbour-43"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let changed = events(&app, EventType::PasswordChanged).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0].details["sessions_ended"], 2,
        "the first browser and the OTP browser"
    );

    let csrf = app.account_csrf(&client).await;
    app.post_form(&client, "/logout", &[("csrf", &csrf)]).await;
    // A complete sign-in (password and code) that then sits idle past 72 hours.
    let third = app.new_client();
    app.clock.advance(chrono::Duration::seconds(30));
    let res = app.sign_in(&third, "otto", "Later-Harbour-43").await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = third
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (tx, csrf) = (
        crate::helpers::hidden(&page, "tx"),
        crate::helpers::hidden(&page, "csrf"),
    );
    let code = totp_code(&secret, app.clock.now().timestamp());
    let res = app
        .post_form(
            &third,
            "/login/otp",
            &[("tx", &tx), ("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(res.headers()["location"], "/account");
    app.clock.advance(chrono::Duration::hours(73));
    third.get(app.url("/account")).send().await.unwrap();
    let ended: Vec<_> = events(&app, EventType::SessionEnded)
        .await
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ended.contains(&"logout".to_owned()) && ended.contains(&"idle".to_owned()),
        "{ended:?}"
    );

    // No password, code or secret anywhere in the trail.
    let mut everything = Vec::new();
    app.state.audit.export(None, &mut everything).await.unwrap();
    let text = String::from_utf8(everything).unwrap();
    for secret_text in [
        "Quiet-Harbour-42",
        "Later-Harbour-43",
        "Wrong-Harbour-42",
        secret.as_str(),
        code.as_str(),
    ] {
        assert!(
            !text.contains(secret_text),
            "{secret_text} in the audit trail"
        );
    }
    assert!(app.state.audit.verify().await.unwrap().intact);
}
