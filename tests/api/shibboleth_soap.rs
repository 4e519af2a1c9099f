//! SAML logout by the SOAP binding with a real Shibboleth SP 3 (issue 24 item 5): its
//! metadata publishes `/Shibboleth.sso/SLO/SOAP`, `gatehouse sp import` keeps it, and an
//! administrator ending the user's sessions logs the user out of Shibboleth through it,
//! with no browser involved. Gated like `shibboleth.rs` (GATEHOUSE_TEST_SHIBBOLETH=1).

use std::time::Duration;

use gatehouse::{audit::EventType, store::outbox};

use crate::{
    admin::audit_events,
    helpers::{create_user, eventually},
    oidc::{admin_token, rp_http},
    shibboleth::{PASSWORD, Shibboleth, SpSetup, enabled, gatehouse, sign_in},
};

const SOAP: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";

#[tokio::test]
async fn an_administrator_ending_the_sessions_logs_the_user_out_of_shibboleth_by_soap() {
    if !enabled("an_administrator_ending_the_sessions_logs_the_user_out_of_shibboleth_by_soap") {
        return;
    }
    let app = gatehouse().await;
    let user = create_user(&app, "ward", PASSWORD, false).await;
    let sp = Shibboleth::start(&app, &SpSetup::default(), &[]).await;
    let registered = gatehouse::saml::providers::find(&app.state.store, &sp.entity_id)
        .await
        .unwrap()
        .expect("imported");
    let soap = sp.url("/Shibboleth.sso/SLO/SOAP");
    assert!(
        registered
            .slo
            .iter()
            .any(|e| e.binding == SOAP && e.location == soap),
        "sp import keeps the SOAP SingleLogoutService: {:?}",
        registered.slo
    );
    let (page, mut browser) = sign_in(&app, &sp, "ward").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let session = browser
        .visit(&app, &sp.url("/Shibboleth.sso/Session"))
        .await;
    assert!(
        session.body.contains("Authentication Time"),
        "{}",
        session.body
    );

    let res = rp_http()
        .delete(app.url(&format!("/admin/api/v1/users/{}/sessions", user.id)))
        .bearer_auth(admin_token(&app).await)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let delivered = eventually(Duration::from_secs(20), || async {
        let rows = app
            .state
            .store
            .run(|c| outbox::recent(c, 20))
            .await
            .unwrap();
        rows.iter()
            .any(|r| r.kind == "saml_soap_logout" && r.status == "sent")
    })
    .await;
    let rows = app
        .state
        .store
        .run(|c| outbox::recent(c, 20))
        .await
        .unwrap();
    assert!(delivered, "Shibboleth confirmed: {rows:?}\n{}", sp.logs());
    let session = browser
        .visit(&app, &sp.url("/Shibboleth.sso/Session"))
        .await;
    // The browser still holds Shibboleth's cookie; the session it named is gone.
    assert!(
        !session.body.contains("Authentication Time")
            && session
                .body
                .contains("not available in the session store, and you must re-authenticate"),
        "{}\n{}",
        session.body,
        sp.logs()
    );
    // Nothing went through the browser: no SAML message since the sign-in.
    assert!(
        browser
            .messages("SAMLRequest")
            .iter()
            .all(|m| !m.contains("LogoutRequest"))
    );
    let events = audit_events(&app, EventType::SamlLogout).await;
    assert!(
        events.iter().any(|e| e.outcome == "success"
            && e.details["binding"] == "soap"
            && e.details["sp"] == sp.entity_id.as_str()),
        "{events:?}"
    );
}
