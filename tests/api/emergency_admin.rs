//! Emergency access, the administrators' side (issue 26, DESIGN §15): designating who
//! may break the glass, the review of every window by a second administrator, and the
//! alerts to support, the privacy officer and the webhook. Windows are inserted as the
//! store keeps them (breaking the glass itself is tested with the sign-in).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{Duration as Span, NaiveDateTime};
use gatehouse::{
    audit::{AuditFilter, AuditRecord, EventType},
    auth::{
        account::{NewAccount, create_account},
        emergency::alerts,
    },
    clock::Clock,
    domain::{Email, MfaPolicy, OrgName, OrgPolicy, Password, Role, UserStatus, Username},
    oidc::clients::{ClientSpec, Registered},
    store::{
        emergency::{self, EmergencyRow},
        orgs, outbox,
        users::{self, UserRow},
    },
};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, eventually, hidden, spawn_app_with},
    mail::{SmtpSink, mail_to, smtp_url},
    oidc::{REDIRECT, browse_authorize, query, register_client, rp_http},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";
pub(crate) const SECRET: &str = "whsec-test-0123456789abcdef";

/// Organisations `alpha` and `beta` without the MFA requirement (tests sign in by
/// password), and a client allowed the admin scope.
struct World {
    app: TestApp,
    console: Registered,
    alpha: String,
    beta: String,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(customise: impl FnOnce(&mut gatehouse::config::Config)) -> Self {
        let app = spawn_app_with(|c| {
            c.rate_limit_burst = 1000;
            customise(c);
        })
        .await;
        let policy = OrgPolicy {
            mfa: MfaPolicy::Off,
            ..OrgPolicy::default()
        };
        let now = chrono::Utc::now().naive_utc();
        let (alpha, beta) = app
            .state
            .store
            .run(move |c| {
                let a = orgs::insert(c, &OrgName::parse("alpha").unwrap(), "Alpha", &policy, now)?;
                let b = orgs::insert(c, &OrgName::parse("beta").unwrap(), "Beta", &policy, now)?;
                Ok((a.id, b.id))
            })
            .await
            .unwrap();
        let console = register_client(
            &app,
            ClientSpec {
                scopes: vec!["openid".into(), "gatehouse:admin".into()],
                ..ClientSpec::new("Admin console", &[REDIRECT])
            },
        )
        .await;
        Self {
            app,
            console,
            alpha,
            beta,
        }
    }

    async fn user(&self, org: &str, name: &str, role: Role) -> UserRow {
        create_account(
            &self.app.state,
            NewAccount {
                org: OrgName::parse(org).unwrap(),
                username: Username::parse(name).unwrap(),
                email: Email::parse(&format!("{name}@example.org")).unwrap(),
                display_name: None,
                role,
                password: Password::parse(PASSWORD.into()).unwrap(),
                must_change_password: false,
            },
        )
        .await
        .unwrap()
    }

    /// An admin API access token of `username`.
    async fn token(&self, username: &str) -> String {
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &self.console.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid gatehouse:admin");
        let browser = self.app.new_client();
        let back = browse_authorize(&self.app, &browser, url.as_str(), username, PASSWORD).await;
        let tokens: Value = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(
                &self.console.client_id,
                Some(self.console.client_secret.as_ref().unwrap().expose_secret()),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", query(&back)["code"].as_str()),
                ("redirect_uri", REDIRECT),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// `method /admin/api/v1{path}` as `token`: the status and the JSON answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = rp_http()
            .request(method, self.app.url(&format!("/admin/api/v1{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A window `user` opened `ago` before now, for an hour, still awaiting review: as
    /// stored (the database keeps microseconds).
    async fn window(&self, user: &UserRow, ago: Span) -> EmergencyRow {
        let started = self.app.clock.now().naive_utc() - ago;
        let row = window_of(user, started);
        let id = row.id.clone();
        self.app
            .state
            .store
            .run(move |c| emergency::insert(c, &row))
            .await
            .unwrap();
        self.find_window(&id).await
    }

    async fn find_window(&self, id: &str) -> EmergencyRow {
        let id = id.to_owned();
        self.app
            .state
            .store
            .run(move |c| emergency::find(c, &id))
            .await
            .unwrap()
            .unwrap()
    }

    async fn events(&self, event_type: EventType) -> Vec<AuditRecord> {
        self.app
            .state
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

    async fn set_policy(&self, org_id: &str, policy: OrgPolicy) {
        let (id, now) = (org_id.to_owned(), chrono::Utc::now().naive_utc());
        self.app
            .state
            .store
            .run(move |c| orgs::set_policy(c, &id, &policy, now))
            .await
            .unwrap();
    }

    async fn org(&self, org_id: &str) -> orgs::OrgRow {
        let id = org_id.to_owned();
        self.app
            .state
            .store
            .run(move |c| orgs::find_by_id(c, &id))
            .await
            .unwrap()
            .unwrap()
    }

    /// A browser inside the console as `username`.
    async fn admin_browser(&self, username: &str) -> reqwest::Client {
        let client = self.app.new_client();
        let res = client.get(self.app.url("/admin")).send().await.unwrap();
        assert_eq!(res.status(), 303, "no session: sent to sign in");
        let login = location(&res);
        let html = client
            .get(self.app.url(&login))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let res = self
            .app
            .post_form(
                &client,
                "/login",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(location(&res), "/admin");
        client
    }

    async fn page(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let res = client.get(self.app.url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    }
}

fn window_of(user: &UserRow, started: NaiveDateTime) -> EmergencyRow {
    EmergencyRow {
        id: gatehouse::store::new_id(),
        org_id: user.org_id.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        session_handle: "ab".repeat(32),
        reason: "Cardiac arrest in bed 4, need the history".into(),
        context: Some("Patient 123".into()),
        requested_by: Some("ehr-client".into()),
        started_at: started,
        expires_at: started + Span::minutes(60),
        ended_at: None,
        end_reason: None,
        reviewed_by: None,
        reviewed_at: None,
        review_note: None,
        overdue_notified_at: None,
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Designation.

#[tokio::test]
async fn designation_over_the_api_is_idempotent_listed_and_audited() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let token = w.token("alice").await;
    let path = format!("/users/{}/emergency-access", carl.id);

    assert_eq!(
        w.call(Method::PUT, &path, &token, None).await,
        (200, json!({"changed": true}))
    );
    assert_eq!(
        w.call(Method::PUT, &path, &token, None).await,
        (200, json!({"changed": false}))
    );
    let (status, listed) = w
        .call(
            Method::GET,
            &format!("/orgs/{}/emergency-access", w.alpha),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["username"], "carl");
    assert_eq!(listed[0]["granted_by"], alice.id.as_str());

    let events = w.events(EventType::EmergencyDesignation).await;
    assert_eq!(events.len(), 1, "granting twice records once");
    assert_eq!(events[0].actor.as_deref(), Some(alice.id.as_str()));
    assert_eq!(events[0].subject.as_deref(), Some(carl.id.as_str()));
    assert_eq!(events[0].org_id.as_deref(), Some(w.alpha.as_str()));
    assert_eq!(events[0].details["change"], "granted");

    assert_eq!(
        w.call(Method::DELETE, &path, &token, None).await,
        (200, json!({"changed": true}))
    );
    assert_eq!(
        w.call(Method::DELETE, &path, &token, None).await,
        (200, json!({"changed": false}))
    );
    let events = w.events(EventType::EmergencyDesignation).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().any(|e| e.details["change"] == "withdrawn"));
    let (_, listed) = w
        .call(
            Method::GET,
            &format!("/orgs/{}/emergency-access", w.alpha),
            &token,
            None,
        )
        .await;
    assert_eq!(listed, json!([]));

    // A disabled user can be designated; breaking the glass refuses them while disabled.
    let dora = w.user("alpha", "dora", Role::User).await;
    let (id, now) = (dora.id.clone(), chrono::Utc::now().naive_utc());
    w.app
        .state
        .store
        .run(move |c| users::set_status(c, &id, UserStatus::Disabled, now))
        .await
        .unwrap();
    let path = format!("/users/{}/emergency-access", dora.id);
    assert_eq!(w.call(Method::PUT, &path, &token, None).await.0, 200);
}

#[tokio::test]
async fn designation_is_refused_to_users_support_other_organisations_and_oneself() {
    let w = World::new().await;
    let carl = w.user("alpha", "carl", Role::User).await;
    w.user("alpha", "uma", Role::User).await;
    w.user("alpha", "sue", Role::Support).await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("beta", "bob", Role::OrgAdmin).await;
    let root = w.user("beta", "root", Role::SuperAdmin).await;
    let path = format!("/users/{}/emergency-access", carl.id);

    let (status, body) = w
        .call(Method::PUT, &path, &w.token("uma").await, None)
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = w
        .call(Method::PUT, &path, &w.token("sue").await, None)
        .await;
    assert_eq!(
        status, 403,
        "support helps users but does not designate: {body}"
    );
    // Another organisation's administrator does not even learn the user exists.
    let bob = w.token("bob").await;
    let (status, body) = w.call(Method::PUT, &path, &bob, None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = w
        .call(
            Method::GET,
            &format!("/orgs/{}/emergency-access", w.alpha),
            &bob,
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Nobody designates themselves.
    let own = format!("/users/{}/emergency-access", alice.id);
    let (status, body) = w
        .call(Method::PUT, &own, &w.token("alice").await, None)
        .await;
    assert_eq!(status, 403, "{body}");
    let own = format!("/users/{}/emergency-access", root.id);
    let (status, body) = w
        .call(Method::PUT, &own, &w.token("root").await, None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("your own"),
        "{body}"
    );

    let designated = w
        .app
        .state
        .store
        .run(|c| emergency::designated(c, None))
        .await
        .unwrap();
    assert!(designated.is_empty(), "nothing was designated");
    assert!(w.events(EventType::EmergencyDesignation).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Review.

#[tokio::test]
async fn a_second_administrator_signs_a_window_off_once_with_a_note() {
    let w = World::new().await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let sue = w.user("alpha", "sue", Role::Support).await;
    w.user("beta", "bob", Role::OrgAdmin).await;
    let older = w.window(&carl, Span::hours(5)).await;
    let newer = w.window(&carl, Span::hours(1)).await;
    let token = w.token("sue").await;

    let (status, awaiting) = w
        .call(Method::GET, "/emergency-sessions", &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&awaiting),
        vec![older.id.clone(), newer.id.clone()],
        "oldest first"
    );
    assert_eq!(awaiting[0]["awaiting_review"], true);
    assert!(
        awaiting[0].get("session_handle").is_none(),
        "the handle stays inside"
    );
    // Another organisation's administrator sees none of them.
    let bob = w.token("bob").await;
    let (_, theirs) = w.call(Method::GET, "/emergency-sessions", &bob, None).await;
    assert_eq!(theirs, json!([]));
    let one = format!("/emergency-sessions/{}", older.id);
    assert_eq!(w.call(Method::GET, &one, &bob, None).await.0, 404);
    let review = format!("{one}/review");
    let note = json!({"note": "Checked with the ward:\njustified."});
    assert_eq!(
        w.call(Method::POST, &review, &bob, Some(note.clone()))
            .await
            .0,
        404
    );

    let (status, signed) = w
        .call(Method::POST, &review, &token, Some(note.clone()))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["awaiting_review"], false);
    assert_eq!(signed["reviewed_by"], sue.id.as_str());
    assert_eq!(signed["review_note"], "Checked with the ward: justified.");
    let events = w.events(EventType::EmergencyReviewed).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.as_deref(), Some(sue.id.as_str()));
    assert_eq!(events[0].subject.as_deref(), Some(carl.id.as_str()));
    assert_eq!(events[0].details["emergency_id"], older.id.as_str());
    assert_eq!(
        events[0].details["note"],
        "Checked with the ward: justified."
    );

    // Twice: 409, and the first note stands.
    let again = json!({"note": "a different opinion"});
    let (status, body) = w.call(Method::POST, &review, &token, Some(again)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already signed off"),
        "{body}"
    );
    assert_eq!(
        w.find_window(&older.id).await.review_note.as_deref(),
        Some("Checked with the ward: justified.")
    );
    assert_eq!(w.events(EventType::EmergencyReviewed).await.len(), 1);

    let (_, awaiting) = w
        .call(Method::GET, "/emergency-sessions", &token, None)
        .await;
    assert_eq!(ids(&awaiting), vec![newer.id.clone()]);
    let (_, all) = w
        .call(Method::GET, "/emergency-sessions?state=all", &token, None)
        .await;
    assert_eq!(
        ids(&all),
        vec![newer.id.clone(), older.id.clone()],
        "newest first"
    );
    let (status, _) = w
        .call(
            Method::GET,
            "/emergency-sessions?state=closed",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, shown) = w.call(Method::GET, &one, &token, None).await;
    assert_eq!(
        (status, shown["reviewed_by"].as_str()),
        (200, Some(sue.id.as_str()))
    );
}

#[tokio::test]
async fn the_user_who_broke_the_glass_cannot_sign_it_off_and_bad_notes_are_400() {
    let w = World::new().await;
    w.user("alpha", "uma", Role::User).await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let own = w.window(&alice, Span::hours(2)).await;
    let review = format!("/emergency-sessions/{}/review", own.id);
    let token = w.token("alice").await;

    let (status, body) = w
        .call(
            Method::POST,
            &review,
            &token,
            Some(json!({"note": "all fine, trust me"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("your own"),
        "{body}"
    );
    assert_eq!(w.find_window(&own.id).await, own, "nothing changed");
    assert!(w.events(EventType::EmergencyReviewed).await.is_empty());

    let (status, _) = w
        .call(
            Method::POST,
            &review,
            &w.token("uma").await,
            Some(json!({"note": "ok"})),
        )
        .await;
    assert_eq!(status, 403, "a plain user reviews nothing");

    let root = w.user("beta", "root", Role::SuperAdmin).await;
    let token = w.token("root").await;
    for (body, named) in [
        (json!({"note": ""}), "note"),
        (json!({"note": " \n "}), "note"),
        (json!({"note": "x".repeat(2001)}), "note"),
        (json!({"note": "fine \u{202e} really"}), "note"),
        (json!({"note": 5}), "note"),
        (json!({}), "note"),
        (json!({"note": "ok", "verdict": "fine"}), "verdict"),
    ] {
        let (status, answer) = w
            .call(Method::POST, &review, &token, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(named),
            "{body} → {answer}"
        );
    }
    assert_eq!(w.find_window(&own.id).await, own, "nothing changed");
    let (status, signed) = w
        .call(
            Method::POST,
            &review,
            &token,
            Some(json!({"note": "Justified: code blue."})),
        )
        .await;
    assert_eq!(
        (status, signed["reviewed_by"].as_str()),
        (200, Some(root.id.as_str()))
    );
}

// ---------------------------------------------------------------------------------------
// The console.

#[tokio::test]
async fn the_console_designates_a_user_and_shows_it_on_their_page() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let carl = w.user("alpha", "carl", Role::User).await;
    w.user("alpha", "sue", Role::Support).await;
    let browser = w.admin_browser("alice").await;
    let user_path = format!("/admin/users/{}", carl.id);
    let (status, html) = w.page(&browser, &user_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("not designated"), "{html}");
    let csrf = hidden(&html, "csrf");

    let grant = format!("{user_path}/emergency-grant");
    let res = w
        .app
        .post_form(&browser, &grant, &[("csrf", "forged")])
        .await;
    assert_eq!(res.status(), 403, "no CSRF token, no change");
    let res = w.app.post_form(&browser, &grant, &[("csrf", &csrf)]).await;
    assert_eq!(
        location(&res),
        format!("{user_path}?done=emergency-granted")
    );
    let (_, html) = w.page(&browser, &location(&res)).await;
    assert!(html.contains("designated since"), "{html}");
    assert!(html.contains("id=\"emergency-withdraw\""), "{html}");
    let res = w.app.post_form(&browser, &grant, &[("csrf", &csrf)]).await;
    assert_eq!(
        location(&res),
        format!("{user_path}?done=emergency-already")
    );
    let events = w.events(EventType::EmergencyDesignation).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.as_deref(), Some(alice.id.as_str()));

    // Support sees the designation but gets no control; its post is refused.
    let support = w.admin_browser("sue").await;
    let (_, html) = w.page(&support, &user_path).await;
    assert!(html.contains("designated since"), "{html}");
    assert!(!html.contains("emergency-withdraw"), "{html}");
    let support_csrf = hidden(&html, "csrf");
    let withdraw = format!("{user_path}/emergency-withdraw");
    let res = w
        .app
        .post_form(&support, &withdraw, &[("csrf", &support_csrf)])
        .await;
    assert_eq!(res.status(), 403);

    let res = w
        .app
        .post_form(&browser, &withdraw, &[("csrf", &csrf)])
        .await;
    assert_eq!(
        location(&res),
        format!("{user_path}?done=emergency-withdrawn")
    );
    let events = w.events(EventType::EmergencyDesignation).await;
    assert!(events.iter().any(|e| e.details["change"] == "withdrawn"));
}

#[tokio::test]
async fn the_console_lists_open_reviews_oldest_first_and_signs_them_off() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let bea = w.user("beta", "bea", Role::User).await;
    let newer = w.window(&carl, Span::hours(1)).await;
    let older = w.window(&carl, Span::hours(30)).await;
    let own = w.window(&alice, Span::hours(3)).await;
    let elsewhere = w.window(&bea, Span::hours(50)).await;

    let browser = w.admin_browser("alice").await;
    let (status, html) = w.page(&browser, "/admin").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("href=\"/admin/emergency\""),
        "linked from the navigation"
    );
    let (status, html) = w.page(&browser, "/admin/emergency").await;
    assert_eq!(status, 200);
    let at = |id: &str| html.find(&format!("id=\"review-{id}\""));
    let (o, a, n) = (
        at(&older.id).unwrap(),
        at(&own.id).unwrap(),
        at(&newer.id).unwrap(),
    );
    assert!(o < a && a < n, "oldest first");
    assert!(
        at(&elsewhere.id).is_none(),
        "another organisation's window is not shown"
    );
    assert!(html.contains("Cardiac arrest in bed 4, need the history"));
    assert!(html.contains("Patient 123") && html.contains("ehr-client"));
    let own_row = &html[a..n];
    assert!(
        own_row.contains("own-review") && !own_row.contains("<form"),
        "{own_row}"
    );
    let csrf = hidden(&html, "csrf");

    // Their own: refused, nothing changes.
    let res = w
        .app
        .post_form(
            &browser,
            &format!("/admin/emergency/{}/review", own.id),
            &[("csrf", &csrf), ("note", "fine")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("your own"));
    assert_eq!(w.find_window(&own.id).await, own);
    // An empty note: refused, nothing changes.
    let path = format!("/admin/emergency/{}/review", older.id);
    let res = w
        .app
        .post_form(&browser, &path, &[("csrf", &csrf), ("note", "  ")])
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(w.find_window(&older.id).await, older);

    let res = w
        .app
        .post_form(
            &browser,
            &path,
            &[("csrf", &csrf), ("note", "Called the ward <b>ok</b>")],
        )
        .await;
    assert_eq!(location(&res), "/admin/emergency?done=reviewed");
    let (_, html) = w.page(&browser, &location(&res)).await;
    assert!(html.contains("The emergency session was signed off."));
    assert!(at_in(&html, &older.id).is_none(), "no longer awaiting");
    let signed = &html[html.find("id=\"signed-reviews\"").expect("signed off list")..];
    assert!(
        signed.contains("Called the ward &#60;b&#62;ok&#60;/b&#62;")
            || signed.contains("Called the ward &lt;b&gt;ok&lt;/b&gt;"),
        "{signed}"
    );
    // Again: refused.
    let res = w
        .app
        .post_form(&browser, &path, &[("csrf", &csrf), ("note", "again")])
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("already signed off"));
}

fn at_in(html: &str, id: &str) -> Option<usize> {
    html.find(&format!("id=\"review-{id}\""))
}

#[tokio::test]
async fn the_policy_form_sets_the_emergency_knobs_and_names_bad_ones() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let browser = w.admin_browser("alice").await;
    let org_path = format!("/admin/orgs/{}", w.alpha);
    let (_, html) = w.page(&browser, &org_path).await;
    assert!(html.contains("id=\"privacy_officer_email\""), "{html}");
    assert!(
        html.contains(
            "name=\"emergency_window_minutes\" type=\"text\" inputmode=\"numeric\" value=\"60\""
        ),
        "{html}"
    );
    let csrf = hidden(&html, "csrf");
    let form = |privacy: &'static str, minutes: &'static str, hours: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("password.min_length", "12".to_owned()),
            ("password.max_length", "128".to_owned()),
            ("password.min_strength", "2".to_owned()),
            ("password.history", "5".to_owned()),
            ("password.max_age_days", String::new()),
            ("lockout.threshold", "5".to_owned()),
            ("lockout.lock_minutes", "15".to_owned()),
            ("lockout.permanent_after", "3".to_owned()),
            ("lockout.reset_failures_after_minutes", "720".to_owned()),
            ("mfa", "off".to_owned()),
            ("support_email", "helpdesk@example.org".to_owned()),
            ("session_idle_secs", "3600".to_owned()),
            ("session_absolute_secs", "86400".to_owned()),
            ("privacy_officer_email", privacy.to_owned()),
            ("emergency_window_minutes", minutes.to_owned()),
            ("emergency_review_overdue_hours", hours.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let browser = browser.clone();
        let path = format!("{org_path}/policy");
        let app = &w.app;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(&browser, &path, &pairs).await
        }
    };
    let before = w.org(&w.alpha).await.policy();
    let res = post(form("not-an-address", "4", "soon")).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    for field in [
        "privacy_officer_email",
        "emergency_window_minutes",
        "emergency_review_overdue_hours",
    ] {
        assert!(
            html.contains(&format!("<li>{field}: ")),
            "{field} in {html}"
        );
    }
    assert_eq!(w.org(&w.alpha).await.policy(), before, "nothing stored");

    let res = post(form("Privacy@Example.org", "30", "48")).await;
    assert_eq!(res.status(), 303);
    let after = w.org(&w.alpha).await.policy();
    assert_eq!(
        after.privacy_officer_email.as_deref(),
        Some("Privacy@example.org")
    );
    assert_eq!(
        (
            after.emergency_window_minutes,
            after.emergency_review_overdue_hours
        ),
        (30, 48)
    );
}

// ---------------------------------------------------------------------------------------
// The command line.

#[tokio::test]
async fn the_command_line_designates_lists_and_reviews() {
    use crate::cli::gatehouse;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| gatehouse(dir.path()).args(args).output().unwrap();
    let json_of = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let create = gatehouse(dir.path())
        .args([
            "user",
            "create",
            "--username",
            "carl",
            "--email",
            "carl@example.org",
            "--password-stdin",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut child = create;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Quiet-Harbour-42\n")
            .unwrap();
        assert!(child.wait_with_output().unwrap().status.success());
    }

    let done = json_of(&["user", "emergency-access", "carl", "--grant", "--json"]);
    assert_eq!(
        (done["designated"].as_bool(), done["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let again = json_of(&["user", "emergency-access", "carl", "--grant", "--json"]);
    assert_eq!(again["changed"], false);
    let listed = json_of(&["emergency", "designated", "--json"]);
    assert_eq!(listed[0]["username"], "carl");
    // The CLI names the person acting (issue 26): the OS user and host, never a bare `cli`.
    assert!(
        crate::cli::by_operator(&listed[0]["granted_by"]),
        "{}",
        listed[0]["granted_by"]
    );
    let both = run(&["user", "emergency-access", "carl", "--grant", "--withdraw"]);
    assert!(!both.status.success());

    // A window in the same database, as breaking the glass stores it.
    let target = gatehouse::config::DatabaseTarget::Sqlite(dir.path().join("gatehouse.db"));
    let store = tokio::task::spawn_blocking(move || gatehouse::store::Store::connect(&target, 1))
        .await
        .unwrap()
        .unwrap();
    // The CLI's generated master key opens the personal data as the server would.
    let key = gatehouse::crypto::MasterKey::from_file(dir.path().join("master.key")).unwrap();
    let pii = gatehouse::keys::pii::load(&store, Arc::new(key), chrono::Utc::now().naive_utc())
        .await
        .unwrap();
    let carl = store
        .run(move |c| users::find_by_username(c, &pii, &Username::parse("carl").unwrap()))
        .await
        .unwrap()
        .unwrap();
    let window = window_of(&carl, chrono::Utc::now().naive_utc() - Span::hours(2));
    let stored = window.clone();
    store
        .run(move |c| emergency::insert(c, &stored))
        .await
        .unwrap();

    let open = json_of(&["emergency", "list", "--json"]);
    assert_eq!(ids(&open), vec![window.id.clone()]);
    let bad = run(&["emergency", "review", &window.id, "--note", " "]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--note"));
    let signed = json_of(&[
        "emergency",
        "review",
        &window.id,
        "--note",
        "Justified",
        "--json",
    ]);
    assert!(crate::cli::by_operator(&signed["reviewed_by"]), "{signed}");
    assert_eq!(signed["review_note"], "Justified");
    let twice = run(&["emergency", "review", &window.id, "--note", "again"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already signed off"));
    assert_eq!(json_of(&["emergency", "list", "--json"]), json!([]));

    let withdrawn = json_of(&["user", "emergency-access", "carl", "--withdraw", "--json"]);
    assert_eq!(
        (
            withdrawn["designated"].as_bool(),
            withdrawn["changed"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let out = run(&["audit", "export"]);
    let trail = String::from_utf8_lossy(&out.stdout);
    let designations: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "emergency.designation")
        .collect();
    assert_eq!(designations.len(), 2, "{designations:?}");
    assert!(
        designations
            .iter()
            .all(|e| crate::cli::by_operator(&e["actor"]))
    );
    assert!(trail.contains("emergency.reviewed"));
}

// ---------------------------------------------------------------------------------------
// Alerts.

#[derive(Debug, Clone)]
pub(crate) struct Hit {
    event: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

pub(crate) type Hits = Arc<Mutex<Vec<Hit>>>;

async fn hook(req: HttpRequest, body: web::Bytes, hits: web::Data<Hits>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    hits.lock().unwrap().push(Hit {
        event: header("X-Gatehouse-Event"),
        timestamp: header("X-Gatehouse-Timestamp"),
        signature: header("X-Gatehouse-Signature"),
        body: body.to_vec(),
    });
    HttpResponse::NoContent().finish()
}

/// A webhook receiver on loopback: its address and what it received.
pub(crate) fn receiver() -> (SocketAddr, Hits) {
    let hits: Hits = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(hits.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hooks", web::post().to(hook))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (addr, hits)
}

/// The webhook of `event`, once it arrives, checked against the shared secret.
pub(crate) async fn webhook(hits: &Hits, event: &str) -> Value {
    let arrived = eventually(Duration::from_secs(15), || async {
        hits.lock().unwrap().iter().any(|h| h.event == event)
    })
    .await;
    assert!(arrived, "no {event} webhook arrived");
    let hit = hits
        .lock()
        .unwrap()
        .iter()
        .find(|h| h.event == event)
        .cloned()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(gatehouse::mail::webhook::verify(
        SECRET.as_bytes(),
        &hit.timestamp,
        &hit.body,
        &hit.signature,
        now,
        300
    ));
    assert!(!gatehouse::mail::webhook::verify(
        b"another-secret-entirely",
        &hit.timestamp,
        &hit.body,
        &hit.signature,
        now,
        300
    ));
    serde_json::from_slice(&hit.body).unwrap()
}

async fn overdue_mails(app: &TestApp) -> Vec<outbox::OutboxRow> {
    outbox_mails(app)
        .await
        .into_iter()
        .filter(|m| m.subject.contains("overdue"))
        .collect()
}

async fn outbox_mails(app: &TestApp) -> Vec<outbox::OutboxRow> {
    app.state
        .store
        .run(|c| outbox::recent(c, 100))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == outbox::KIND_EMAIL)
        .collect()
}

#[tokio::test]
async fn a_window_is_alerted_to_support_the_privacy_officer_and_the_signed_webhook() {
    let sink = SmtpSink::start().await;
    let (addr, hits) = receiver();
    let port = sink.port;
    let w = World::with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.webhook_url = Some(Url::parse(&format!("http://{addr}/hooks")).unwrap());
        c.webhook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    w.set_policy(
        &w.alpha,
        OrgPolicy {
            mfa: MfaPolicy::Off,
            support_email: Some("helpdesk@example.org".into()),
            privacy_officer_email: Some("privacy@example.org".into()),
            ..OrgPolicy::default()
        },
    )
    .await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let window = w.window(&carl, Span::minutes(1)).await;
    let (org, row) = (w.org(&w.alpha).await, window.clone());
    let (mailer, issuer) = (
        w.app.state.mailer.clone(),
        w.app.state.config.issuer.clone(),
    );
    w.app
        .state
        .store
        .transaction(move |c| alerts::queue_started(c, &mailer, &issuer, &org, &row))
        .await
        .unwrap();

    let subject = "[Gatehouse] Emergency access by carl";
    for to in ["helpdesk@example.org", "privacy@example.org"] {
        let text = mail_to(&sink, to, subject).await;
        for part in [
            "Cardiac arrest in bed 4, need the history",
            "Patient 123",
            "ehr-client",
            &format!(
                "{}admin/emergency",
                w.app
                    .state
                    .config
                    .issuer
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned()
                    + "/"
            ),
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains(&window.session_handle), "no session handle");
    }
    let body = webhook(&hits, "emergency.started").await;
    assert_eq!(body["event"], "emergency.started");
    let data = &body["data"];
    assert_eq!(data["org"], "alpha");
    assert_eq!(data["emergency_id"], window.id.as_str());
    assert_eq!(data["user_id"], carl.id.as_str());
    assert_eq!(data["username"], "carl");
    assert_eq!(data["reason"], "Cardiac arrest in bed 4, need the history");
    assert_eq!(data["context"], "Patient 123");
    assert_eq!(data["requested_by"], "ehr-client");
    assert_eq!(data["started_at"], window.started_at.and_utc().to_rfc3339());
    assert_eq!(data["expires_at"], window.expires_at.and_utc().to_rfc3339());
    assert!(!body.to_string().contains(&window.session_handle));

    // Ended: its own webhook (and a short mail).
    let ended_at = window.started_at + Span::minutes(60);
    let (org, id) = (w.org(&w.alpha).await, window.id.clone());
    assert!(
        w.app
            .state
            .store
            .run(move |c| emergency::end(c, &id, "expired", ended_at))
            .await
            .unwrap()
    );
    let ended = w.find_window(&window.id).await;
    let (mailer, issuer) = (
        w.app.state.mailer.clone(),
        w.app.state.config.issuer.clone(),
    );
    w.app
        .state
        .store
        .transaction(move |c| alerts::queue_ended(c, &mailer, &issuer, &org, &ended))
        .await
        .unwrap();
    let body = webhook(&hits, "emergency.ended").await;
    assert_eq!(body["data"]["end_reason"], "expired");
    let stored_end = w.find_window(&window.id).await.ended_at.unwrap();
    assert_eq!(body["data"]["ended_at"], stored_end.and_utc().to_rfc3339());
    assert_eq!(body["data"]["emergency_id"], window.id.as_str());
    mail_to(
        &sink,
        "privacy@example.org",
        "[Gatehouse] Emergency access ended: carl",
    )
    .await;
}

#[tokio::test]
async fn one_mail_when_both_contacts_are_the_same_and_none_without_contacts() {
    let w = World::new().await;
    w.set_policy(
        &w.alpha,
        OrgPolicy {
            mfa: MfaPolicy::Off,
            support_email: Some("desk@example.org".into()),
            privacy_officer_email: Some("Desk@Example.org".into()),
            ..OrgPolicy::default()
        },
    )
    .await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let bea = w.user("beta", "bea", Role::User).await;
    for (user, org_id) in [(&carl, w.alpha.clone()), (&bea, w.beta.clone())] {
        let window = w.window(user, Span::minutes(1)).await;
        let org = w.org(&org_id).await;
        let (mailer, issuer) = (
            w.app.state.mailer.clone(),
            w.app.state.config.issuer.clone(),
        );
        w.app
            .state
            .store
            .transaction(move |c| alerts::queue_started(c, &mailer, &issuer, &org, &window))
            .await
            .unwrap();
    }
    let mails = outbox_mails(&w.app).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0]
            .open_recipient(&*w.app.state.master_key)
            .unwrap()
            .to_lowercase(),
        "desk@example.org"
    );
    assert_eq!(mails[0].subject, "[Gatehouse] Emergency access by carl");
}

#[tokio::test]
async fn overdue_reviews_are_mailed_once_a_day_until_signed_off() {
    let w = World::new().await;
    w.set_policy(
        &w.alpha,
        OrgPolicy {
            mfa: MfaPolicy::Off,
            support_email: Some("desk@example.org".into()),
            privacy_officer_email: Some("privacy@example.org".into()),
            emergency_review_overdue_hours: 72,
            ..OrgPolicy::default()
        },
    )
    .await;
    let carl = w.user("alpha", "carl", Role::User).await;
    let stale = w.window(&carl, Span::hours(73)).await;
    let fresh = w.window(&carl, Span::hours(10)).await;
    // Beta keeps the default deadline and has no contacts: nobody to mail.
    let bea = w.user("beta", "bea", Role::User).await;
    w.window(&bea, Span::hours(100)).await;

    // Two instances in the same minute: the review is mailed about once.
    let (a, b) = tokio::join!(
        alerts::mail_overdue(&w.app.state),
        alerts::mail_overdue(&w.app.state)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let mails = overdue_mails(&w.app).await;
    assert_eq!(mails.len(), 2, "one to each contact: {mails:?}");
    assert_eq!(
        mails[0].subject,
        "[Gatehouse] 1 emergency access review overdue in Alpha"
    );
    // The next minute, and the next hour: nothing new.
    assert_eq!(alerts::mail_overdue(&w.app.state).await.unwrap(), 0);
    w.app.clock.advance(Span::hours(23));
    assert_eq!(alerts::mail_overdue(&w.app.state).await.unwrap(), 0);
    assert_eq!(overdue_mails(&w.app).await.len(), 2);

    // A day later: reminded again; the fresh one is still within its 72 hours.
    w.app.clock.advance(Span::hours(2));
    assert_eq!(alerts::mail_overdue(&w.app.state).await.unwrap(), 1);
    assert_eq!(overdue_mails(&w.app).await.len(), 4);
    assert!(w.find_window(&fresh.id).await.overdue_notified_at.is_none());

    // Signed off: never again. Two days on, only the fresh one (now 83 h old) is due.
    let now = w.app.clock.now().naive_utc();
    let id = stale.id.clone();
    w.app
        .state
        .store
        .run(move |c| emergency::sign_off(c, &id, "someone", "done", now))
        .await
        .unwrap();
    w.app.clock.advance(Span::hours(48));
    assert_eq!(alerts::mail_overdue(&w.app.state).await.unwrap(), 1);
    let mails = overdue_mails(&w.app).await;
    assert_eq!(mails.len(), 6);
}

#[tokio::test]
async fn the_policy_document_of_the_api_carries_and_documents_the_emergency_knobs() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let token = w.token("alice").await;
    let path = format!("/orgs/{}/policy", w.alpha);
    let (status, body) = w
        .call(
            Method::PUT,
            &path,
            &token,
            Some(json!({"mfa": "off", "emergency_window_minutes": 1000, "privacy_officer_email": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("emergency_window_minutes") && message.contains("privacy_officer_email"),
        "{body}"
    );
    let (status, body) = w
        .call(
            Method::PUT,
            &path,
            &token,
            Some(json!({"mfa": "off", "emergency_window_minutes": 30, "emergency_review_overdue_hours": 24, "privacy_officer_email": "privacy@example.org"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"]["emergency_window_minutes"], 30);
    assert_eq!(
        body["policy"]["privacy_officer_email"],
        "privacy@example.org"
    );

    let doc: Value = rp_http()
        .get(w.app.url("/admin/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let policy = &doc["components"]["schemas"]["PolicyDocument"]["properties"];
    for field in [
        "privacy_officer_email",
        "emergency_window_minutes",
        "emergency_review_overdue_hours",
        "support_email",
        "mfa",
    ] {
        assert!(policy.get(field).is_some(), "{field} in {policy}");
    }
    assert_eq!(policy["emergency_window_minutes"]["maximum"], 720);
    for path in [
        "/admin/api/v1/users/{id}/emergency-access",
        "/admin/api/v1/orgs/{id}/emergency-access",
        "/admin/api/v1/emergency-sessions",
        "/admin/api/v1/emergency-sessions/{id}/review",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}
