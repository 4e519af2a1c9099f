//! Back-channel logout that is never lost (issue 24 item 5): SAML LogoutRequests by the
//! SOAP binding and OIDC back-channel logout tokens go through the durable outbox. A
//! receiver that is down when the session ends hears of it once it is up, exactly once,
//! with a message signed at delivery time; hostile answers are refused and retried.
//!
//! Receivers are small HTTP servers started by the test on a port chosen beforehand, so
//! "down" is that port with nothing listening.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{SecondsFormat, Utc};
use gatehouse::{
    audit::EventType,
    clock::Clock,
    oidc::clients::{ClientSpec, Registered},
    saml::providers::{self, ImportSettings},
    store::outbox::{self, OutboxRow},
};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc::{UnboundedReceiver, unbounded_channel},
};
use url::Url;

use crate::{
    admin::audit_events,
    helpers::{TestApp, create_user, eventually, hidden, spawn_app, spawn_app_with},
    oidc::{
        REDIRECT, admin_token, browse_authorize, query, register_client, rp_http, verify_with_jwks,
    },
    saml::{KeyCert, TestSp, extract, idp_cert, rand_id, sso_assertion, xmlsec1_verify},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";
const SOAP: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
const OIDC_KIND: &str = "oidc_backchannel_logout";
pub(crate) const SOAP_KIND: &str = "saml_soap_logout";
const LOGOUT_REQUEST: &str = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest";

/// One request a receiver got: its head (request line and headers) and body.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    head: String,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// How a receiver answers its `n`th request (from 1): status and body.
pub(crate) type Answer = Arc<dyn Fn(usize, &Received) -> (u16, String) + Send + Sync>;

/// A loopback port with nothing listening on it (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts an HTTP/1.1 receiver on `port`: every request goes to the test, and is
/// answered by `answer`.
pub(crate) async fn serve(port: u16, answer: Answer) -> UnboundedReceiver<Received> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the receiver's port is free again");
    let (tx, rx) = unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (tx, answer, count) = (tx.clone(), answer.clone(), count.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut sock).await else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let (status, body) = answer(n, &request);
                let _ = tx.send(request);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    rx
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_owned();
        let len = Received {
            head: head.clone(),
            body: String::new(),
        }
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            let body = text[end + 4..end + 4 + len].to_owned();
            return Some(Received { head, body });
        }
    }
}

/// Answers 200 with an empty body.
fn ok() -> Answer {
    Arc::new(|_, _| (200, String::new()))
}

/// An SP's LogoutResponse in a SOAP envelope.
fn soap_response(issuer: &str, id: &str, in_response_to: &str) -> String {
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}" InResponseTo="{in_response_to}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
        at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>{inner}</S:Body></S:Envelope>"#
    )
}

/// The signed LogoutRequest inside a SOAP request, as samael reads it.
fn logout_request_of(r: &Received) -> samael::schema::LogoutRequest {
    extract(&r.body, "<saml2p:LogoutRequest", "</saml2p:LogoutRequest>")
        .parse()
        .unwrap()
}

/// The SP answering as a real one would: a LogoutResponse to the request it got,
/// signed with its registered key.
pub(crate) fn soap_ok(sp: &Arc<TestSp>) -> Answer {
    let sp = sp.clone();
    Arc::new(move |_, r| {
        let request = logout_request_of(r);
        let id = format!("_{}", rand_id());
        let xml = soap_response(&sp.entity_id, &id, request.id.as_deref().unwrap());
        (200, envelope(&sp.sign(&xml, &id)))
    })
}

/// A user signed in at a SOAP SP and at an OIDC RP with a back-channel URI, in one
/// browser session.
pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) sp: Arc<TestSp>,
    pub(crate) sp_port: u16,
    pub(crate) rp_port: u16,
    pub(crate) client: Registered,
    pub(crate) browser: reqwest::Client,
    pub(crate) user_id: String,
    /// NameID and SessionIndex of the SP's assertion.
    pub(crate) name_id: String,
    pub(crate) session_index: String,
    /// The ID token's claims.
    pub(crate) id_claims: Value,
}

impl World {
    pub(crate) async fn new(app: TestApp) -> Self {
        let (sp_port, rp_port) = (free_port(), free_port());
        let sp = Arc::new(TestSp::new("https://soap-sp.example.org/acs"));
        let metadata = sp.metadata(false).replace(
            &format!(
                r#"Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{}/slo""#,
                sp.acs
            ),
            &format!(r#"Binding="{SOAP}" Location="http://127.0.0.1:{sp_port}/SLO/SOAP""#),
        );
        let settings = ImportSettings {
            encrypt_assertions: Some(false),
            ..Default::default()
        };
        let (imported, _) = providers::import(&app.state.store, &metadata, &settings, Utc::now())
            .await
            .expect("SP with a SOAP SingleLogoutService imports");
        assert_eq!(imported.slo.len(), 1);
        assert_eq!(imported.slo[0].binding, SOAP, "the SOAP endpoint is kept");
        let client = register_client(
            &app,
            ClientSpec {
                backchannel_logout_uri: Some(format!("http://127.0.0.1:{rp_port}/bc")),
                ..ClientSpec::new("Ward app", &[REDIRECT])
            },
        )
        .await;
        let user = create_user(&app, "uma", PASSWORD, false).await;
        let browser = app.new_client();
        assert_eq!(app.sign_in(&browser, "uma", PASSWORD).await.status(), 303);
        let (name_id, session_index) = sso_assertion(&app, &sp, &browser, true).await;
        let id_claims = id_token_claims(&app, &client, &browser).await;
        Self {
            app,
            sp,
            sp_port,
            rp_port,
            client,
            browser,
            user_id: user.id,
            name_id,
            session_index,
            id_claims,
        }
    }

    /// An administrator ends every session of the user.
    async fn admin_ends_sessions(&self) {
        let token = admin_token(&self.app).await;
        let res = rp_http()
            .delete(
                self.app
                    .url(&format!("/admin/api/v1/users/{}/sessions", self.user_id)),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    pub(crate) async fn rows(&self) -> Vec<OutboxRow> {
        self.app
            .state
            .store
            .run(|c| outbox::recent(c, 50))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == OIDC_KIND || r.kind == SOAP_KIND)
            .collect()
    }

    /// Waits until each of the two logouts was tried `attempts` times and is waiting.
    async fn both_tried(&self, attempts: i32) {
        let tried = eventually(Duration::from_secs(15), || async {
            let rows = self.rows().await;
            rows.len() == 2
                && rows
                    .iter()
                    .all(|r| r.attempts >= attempts && r.last_error.is_some())
        })
        .await;
        assert!(tried, "both logouts tried: {:?}", self.rows().await);
    }

    /// Moves time past the next retry and runs a delivery pass.
    async fn retry_now(&self, by: chrono::Duration) {
        self.app.clock.advance(by);
        self.app.state.mailer.deliver_due().await.unwrap();
    }

    /// Checks a SOAP request from Gatehouse: headers, signature, subject, freshness.
    pub(crate) async fn check_soap(&self, r: &Received, not_before: chrono::DateTime<Utc>) {
        assert!(r.head.starts_with("POST /SLO/SOAP "), "{}", r.head);
        assert!(r.header("content-type").unwrap().starts_with("text/xml"));
        assert_eq!(
            r.header("soapaction").as_deref(),
            Some("http://www.oasis-open.org/committees/security")
        );
        assert!(r.body.contains("http://schemas.xmlsoap.org/soap/envelope/"));
        let cert = idp_cert(&self.app).await;
        assert!(
            xmlsec1_verify(&r.body, LOGOUT_REQUEST, &cert),
            "the LogoutRequest verifies against our metadata's certificate"
        );
        let request = logout_request_of(r);
        assert_eq!(request.name_id.unwrap().value, self.name_id);
        assert!(
            r.body
                .contains(&format!("SessionIndex>{}<", self.session_index))
        );
        assert_eq!(
            request.destination.as_deref(),
            Some(format!("http://127.0.0.1:{}/SLO/SOAP", self.sp_port).as_str())
        );
        assert!(
            // IssueInstant has whole seconds.
            request.issue_instant.unwrap().timestamp() >= not_before.timestamp(),
            "signed when delivered, not when queued"
        );
    }

    /// Checks a back-channel logout token: signature, audience, subject, session, freshness.
    async fn check_token(&self, r: &Received, not_before: chrono::DateTime<Utc>) {
        assert!(r.head.starts_with("POST /bc "), "{}", r.head);
        let form: HashMap<String, String> = url::form_urlencoded::parse(r.body.as_bytes())
            .into_owned()
            .collect();
        let token = &form["logout_token"];
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["typ"], "logout+jwt");
        let claims = verify_with_jwks(&self.app, token).await;
        assert_eq!(claims["aud"], self.client.client_id.as_str());
        assert_eq!(claims["sub"], self.id_claims["sub"]);
        assert_eq!(claims["sid"], self.id_claims["sid"]);
        assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        assert!(
            claims["iat"].as_i64().unwrap() >= not_before.timestamp(),
            "minted when delivered: {claims}"
        );
    }

    /// Nothing more arrives, even after every retry would have been due.
    pub(crate) async fn nothing_more(&self, rxs: &mut [&mut UnboundedReceiver<Received>]) {
        self.retry_now(chrono::Duration::hours(2)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for rx in rxs {
            assert!(rx.try_recv().is_err(), "delivered more than once");
        }
    }
}

/// The claims of the ID token a code flow in `browser` (already signed in) gets.
async fn id_token_claims(app: &TestApp, client: &Registered, browser: &reqwest::Client) -> Value {
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "st")
        .append_pair("nonce", "n");
    let back = browse_authorize(app, browser, url.as_str(), "uma", PASSWORD).await;
    let code = query(&back)["code"].clone();
    let secret = client.client_secret.as_ref().unwrap().expose_secret();
    let tokens: Value = rp_http()
        .post(app.url("/token"))
        .basic_auth(&client.client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) async fn next(rx: &mut UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a delivery arrives")
        .unwrap()
}

#[tokio::test]
async fn an_admin_ended_session_reaches_a_down_sp_and_rp_once_they_are_up() {
    let w = World::new(spawn_app().await).await;
    let ended_at = w.app.clock.now();
    w.admin_ends_sessions().await;
    // Nothing listens yet: the first attempts fail and are kept for later.
    w.both_tried(1).await;
    for row in w.rows().await {
        assert_eq!(row.status, "pending");
        let sealed = row.payload.unwrap();
        assert!(
            !sealed.contains(&w.name_id) && !sealed.contains(&w.user_id),
            "sealed"
        );
    }
    assert!(
        w.app
            .metric(&format!(
                "gatehouse_mail_retries_total{{kind=\"{SOAP_KIND}\"}}"
            ))
            .await
            >= 1.0
    );

    let mut sp_rx = serve(w.sp_port, soap_ok(&w.sp)).await;
    let mut rp_rx = serve(w.rp_port, ok()).await;
    w.retry_now(chrono::Duration::seconds(11)).await;
    let not_before = ended_at + chrono::Duration::seconds(11);
    w.check_soap(&next(&mut sp_rx).await, not_before).await;
    w.check_token(&next(&mut rp_rx).await, not_before).await;

    let sent = eventually(Duration::from_secs(10), || async {
        w.rows().await.iter().all(|r| r.status == "sent")
    })
    .await;
    assert!(sent, "{:?}", w.rows().await);
    w.nothing_more(&mut [&mut sp_rx, &mut rp_rx]).await;
    for kind in [SOAP_KIND, OIDC_KIND] {
        let metric = format!("gatehouse_mail_sent_total{{kind=\"{kind}\"}}");
        assert_eq!(w.app.metric(&metric).await, 1.0, "{metric}");
    }
    let events = audit_events(&w.app, EventType::SamlLogout).await;
    assert!(
        events.iter().any(|e| e.outcome == "success"
            && e.details["sp"] == w.sp.entity_id.as_str()
            && e.details["binding"] == "soap"),
        "{events:?}"
    );
}

#[tokio::test]
async fn signing_out_at_gatehouse_skips_the_browser_chain_and_a_500_is_retried_once() {
    let w = World::new(spawn_app().await).await;
    let first_fails = |ok: Answer| -> Answer {
        Arc::new(move |n, r| {
            if n == 1 {
                (500, "<error/>".into())
            } else {
                ok(n, r)
            }
        })
    };
    let mut sp_rx = serve(w.sp_port, first_fails(soap_ok(&w.sp))).await;
    let mut rp_rx = serve(w.rp_port, first_fails(ok())).await;

    let account = w.browser.get(w.app.url("/account")).send().await.unwrap();
    let csrf = hidden(&account.text().await.unwrap(), "csrf");
    let res = w
        .app
        .post_form(&w.browser, "/logout", &[("csrf", &csrf)])
        .await;
    // The SP has only a SOAP endpoint: it is told by SOAP, not through the browser.
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));

    let refused = (next(&mut sp_rx).await, next(&mut rp_rx).await);
    w.both_tried(1).await;
    let rows = w.rows().await;
    assert!(
        rows.iter()
            .all(|r| r.last_error.as_deref().unwrap().contains("500")),
        "{rows:?}"
    );

    let retried_at = w.app.clock.now() + chrono::Duration::seconds(11);
    w.retry_now(chrono::Duration::seconds(11)).await;
    let soap = next(&mut sp_rx).await;
    w.check_soap(&soap, retried_at).await;
    w.check_token(&next(&mut rp_rx).await, retried_at).await;
    // A new request each time: a new ID (and token id) for the second attempt.
    assert_ne!(
        logout_request_of(&refused.0).id,
        logout_request_of(&soap).id
    );
    assert_ne!(refused.1.body, soap.body);
    w.nothing_more(&mut [&mut sp_rx, &mut rp_rx]).await;
    for kind in [SOAP_KIND, OIDC_KIND] {
        let sent = format!("gatehouse_mail_sent_total{{kind=\"{kind}\"}}");
        let retried = format!("gatehouse_mail_retries_total{{kind=\"{kind}\"}}");
        assert_eq!(w.app.metric(&sent).await, 1.0, "{sent}");
        assert_eq!(w.app.metric(&retried).await, 1.0, "{retried}");
    }
}

/// Waits until the SOAP logout was tried `n` times; returns its last error.
async fn soap_error_after(w: &World, n: i32) -> String {
    let row = || async {
        w.rows()
            .await
            .into_iter()
            .find(|r| r.kind == SOAP_KIND)
            .unwrap()
    };
    let tried = eventually(Duration::from_secs(15), || async {
        let r = row().await;
        // Claimed rows wait out a 15-minute lease; a failed attempt waits seconds.
        let soon = w.app.clock.now().naive_utc() + chrono::Duration::minutes(5);
        r.attempts >= n && r.last_error.is_some() && r.next_attempt_at < soon
    })
    .await;
    assert!(tried);
    let r = row().await;
    assert_eq!(r.status, "pending", "{r:?}");
    r.last_error.unwrap()
}

#[tokio::test]
async fn hostile_soap_answers_are_refused_and_the_logout_is_retried() {
    let w = World::new(spawn_app().await).await;
    let sp = w.sp.clone();
    let answer: Answer = Arc::new(move |n, r| {
        let request = logout_request_of(r);
        let request_id = request.id.unwrap();
        let id = format!("_{}", rand_id());
        let good = soap_response(&sp.entity_id, &id, &request_id);
        match n {
            1 => (200, envelope(&"x".repeat(2 * 1024 * 1024))),
            2 => (
                200,
                format!(
                    r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
                    envelope(&good.replace("Success", "&x;"))
                ),
            ),
            3 => {
                let wrong = soap_response(&sp.entity_id, &id, "_another_request");
                (200, envelope(&sp.sign(&wrong, &id)))
            }
            4 => {
                // Signed, but not by the SP's registered key.
                let forged = TestSp {
                    entity_id: sp.entity_id.clone(),
                    acs: sp.acs.clone(),
                    signing: KeyCert::new("forger"),
                    encryption: KeyCert::new("forger enc"),
                };
                (200, envelope(&forged.sign(&good, &id)))
            }
            _ => (200, envelope(&sp.sign(&good, &id))),
        }
    });
    let mut sp_rx = serve(w.sp_port, answer).await;
    let _rp_rx = serve(w.rp_port, ok()).await;
    w.admin_ends_sessions().await;

    let expected = [
        (1, "too large"),
        (2, "document type declaration"),
        (3, "InResponseTo"),
        (4, "signature"),
    ];
    for (n, needle) in expected {
        let error = soap_error_after(&w, n).await;
        assert!(error.contains(needle), "attempt {n}: {error}");
        assert!(
            w.app.get("/healthz").await.status().is_success(),
            "still serving"
        );
        w.retry_now(chrono::Duration::hours(1)).await;
    }
    let confirmed = eventually(Duration::from_secs(10), || async {
        w.rows()
            .await
            .iter()
            .any(|r| r.kind == SOAP_KIND && r.status == "sent")
    })
    .await;
    assert!(confirmed, "{:?}", w.rows().await);
    let mut got = 0;
    while sp_rx.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, 5, "four refused answers, then the confirmed one");
    let failed = audit_events(&w.app, EventType::SamlLogout).await;
    assert!(
        failed
            .iter()
            .all(|e| !e.details.to_string().contains("passwd")),
        "nothing of the hostile answer's content is kept"
    );
}

#[tokio::test]
async fn a_receiver_down_past_the_deadline_is_given_up_on_and_audited() {
    let app = spawn_app_with(|c| c.mail_give_up_after_hours = 1).await;
    let w = World::new(app).await;
    w.admin_ends_sessions().await;
    w.both_tried(1).await;
    w.retry_now(chrono::Duration::minutes(61)).await;
    let failed = eventually(Duration::from_secs(10), || async {
        w.rows().await.iter().all(|r| r.status == "failed")
    })
    .await;
    assert!(failed, "{:?}", w.rows().await);
    for row in w.rows().await {
        assert!(row.payload.is_none(), "nothing kept of a finished row");
        assert!(row.last_error.is_some());
    }
    for kind in [SOAP_KIND, OIDC_KIND] {
        let metric = format!("gatehouse_mail_failed_total{{kind=\"{kind}\"}}");
        assert_eq!(w.app.metric(&metric).await, 1.0, "{metric}");
    }
    let saml = audit_events(&w.app, EventType::SamlLogout).await;
    assert!(
        saml.iter().any(|e| e.outcome == "failure"
            && e.details["binding"] == "soap"
            && e.details["sp"] == w.sp.entity_id.as_str()
            && e.subject.as_deref() == Some(w.user_id.as_str())),
        "{saml:?}"
    );
    let ended = audit_events(&w.app, EventType::SessionEnded).await;
    assert!(
        ended.iter().any(|e| e.outcome == "failure"
            && e.details["client_id"] == w.client.client_id.as_str()
            && e.details["reason"] == "back_channel_logout_not_delivered"),
        "{ended:?}"
    );
}
