//! Emergency ("break-glass") access (DESIGN §15, issue 26) as a clinician, a relying
//! party, the people who must be told, and an attacker see it: over HTTP against a real
//! server, with a real relying party's back-channel endpoint and webhook receiver.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Duration as Span;
use gatehouse::{
    audit::{AuditFilter, EventType},
    auth::emergency,
    clock::Clock,
    domain::OrgName,
    oidc::clients::{ClientSpec, Registered},
    store::{emergency as stored, orgs, outbox},
};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::{
    emergency_admin::{Hits, SECRET, receiver, webhook},
    helpers::{TestApp, create_user, hidden, spawn_app_with, totp_code},
    oidc::{REDIRECT, continue_link, query, register_client, rp_http, rp_listener},
};

const PASSWORD: &str = "Correct horse battery staple 9";
const EMERGENCY: &str = "urn:gatehouse:acr:emergency";
const REASON: &str = "Cardiac arrest in bed 4, need the history now";

struct Ward {
    app: TestApp,
    reg: Registered,
    browser: reqwest::Client,
    /// The clinician's TOTP secret.
    totp: String,
    hooks: Hits,
    backchannel: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
}

/// A hospital whose support contact and privacy officer are known, a webhook, a relying
/// party with back-channel logout, and `clara`, a clinician with TOTP, designated for
/// emergency access when `designated`.
async fn ward(designated: bool) -> Ward {
    let (hook_addr, hooks) = receiver();
    let app = spawn_app_with(|c| {
        c.webhook_url = Some(Url::parse(&format!("http://{hook_addr}/hooks")).unwrap());
        c.webhook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.support_email = Some("support@hospital.example".into());
            policy.privacy_officer_email = Some("privacy@hospital.example".into());
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    let clara = create_user(&app, "clara", PASSWORD, false).await;
    if designated {
        designate(&app, &clara.id, &clara.org_id).await;
    }
    let (base, backchannel) = rp_listener().await;
    let reg = register_client(
        &app,
        ClientSpec {
            backchannel_logout_uri: Some(format!("{base}/backchannel")),
            ..ClientSpec::new("Emergency department", &[REDIRECT])
        },
    )
    .await;
    let browser = app.new_client();
    let res = app.sign_in(&browser, "clara", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let (totp, _) = app.enrol_totp(&browser).await;
    Ward {
        app,
        reg,
        browser,
        totp,
        hooks,
        backchannel,
    }
}

async fn designate(app: &TestApp, user_id: &str, org_id: &str) {
    let row = stored::DesignationRow {
        user_id: user_id.to_owned(),
        org_id: org_id.to_owned(),
        granted_by: "test".into(),
        granted_at: app.clock.now().naive_utc(),
    };
    app.state
        .store
        .run(move |c| stored::designate(c, &row))
        .await
        .unwrap();
}

fn pkce() -> (String, String) {
    let verifier = "v".repeat(43);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl Ward {
    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let (_, challenge) = pkce();
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.reg.client_id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile")
                .append_pair("state", "st-1")
                .append_pair("nonce", "n-1")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.browser.get(self.app.url(path)).send().await.unwrap()
    }

    /// Follows an authorization request asking for emergency access through the
    /// password and the code; returns the emergency stage's page (its location, html).
    async fn to_emergency_stage(&self, extra: &[(&str, &str)]) -> (String, String) {
        let mut params = vec![("acr_values", EMERGENCY)];
        params.extend_from_slice(extra);
        let res = self
            .browser
            .get(self.authorize_url(&params))
            .send()
            .await
            .unwrap();
        self.sign_in_to_stage(res).await
    }

    /// From a door's answer that starts a sign-in, through the password and the code to
    /// the emergency stage.
    async fn sign_in_to_stage(&self, res: reqwest::Response) -> (String, String) {
        assert_eq!(res.status(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("/login?tx="),
            "a session without an open window signs in again: {location}"
        );
        let html = self.get(&location).await.text().await.unwrap();
        let res = self
            .app
            .post_form(
                &self.browser,
                "/login",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("username", "clara"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 303);
        let otp = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            otp.starts_with("/login/otp"),
            "the second factor first: {otp}"
        );
        let html = self.get(&otp).await.text().await.unwrap();
        // A new time step: the enrolment's code is spent.
        self.app.clock.advance(Span::seconds(31));
        let code = totp_code(&self.totp, self.app.clock.now().timestamp());
        let res = self
            .app
            .post_form(
                &self.browser,
                "/login/otp",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(res.status(), 303);
        let stage = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            stage.starts_with("/login/emergency?tx="),
            "then the emergency stage: {stage}"
        );
        let page = self.get(&stage).await;
        assert_eq!(page.status(), 200);
        (stage, page.text().await.unwrap())
    }

    async fn post_stage(&self, html: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let (tx, csrf) = (hidden(html, "tx"), hidden(html, "csrf"));
        let mut all = vec![("tx", tx.as_str()), ("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        self.app
            .post_form(&self.browser, "/login/emergency", &all)
            .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Value {
        let res = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(
                &self.reg.client_id,
                Some(self.reg.client_secret.as_ref().unwrap().expose_secret()),
            )
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn exchange(&self, back: &Url) -> Value {
        let (verifier, _) = pkce();
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", &query(back)["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await
    }

    async fn userinfo(&self, access_token: &str) -> Value {
        rp_http()
            .get(self.app.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn windows(&self) -> Vec<stored::EmergencyRow> {
        self.app
            .state
            .store
            .run(|c| stored::recent(c, None, 100))
            .await
            .unwrap()
    }

    async fn events(&self, t: EventType) -> Vec<gatehouse::audit::AuditRecord> {
        let filter = AuditFilter {
            event_type: Some(t),
            ..AuditFilter::default()
        };
        self.app.state.audit.query(filter, 100, None).await.unwrap()
    }

    /// Outbox rows: (kind, recipient, subject).
    async fn outbox(&self) -> Vec<(String, String, String)> {
        let rows = self
            .app
            .state
            .store
            .run(|c| outbox::recent(c, 500))
            .await
            .unwrap();
        let key = self.app.state.master_key.clone();
        rows.into_iter()
            .map(|r| {
                let to = r.open_recipient(&*key).unwrap();
                (r.kind, to, r.subject)
            })
            .collect()
    }
}

#[tokio::test]
async fn a_designated_clinician_breaks_the_glass_and_the_rp_sees_it_until_the_window_ends() {
    let mut w = ward(true).await;
    let (_, html) = w
        .to_emergency_stage(&[("emergency_context", "Patient 1234|Ward 4 <ICU>")])
        .await;
    assert!(html.contains("Patient 1234"), "{html}");
    // The label is escaped where the page shows it.
    assert!(html.contains("Ward 4 &lt;ICU&gt;") || html.contains("Ward 4 &#60;ICU&#62;"));
    assert!(!html.contains("<ICU>"));
    let res = w
        .post_stage(
            &html,
            &[
                ("action", "raise"),
                ("reason", REASON),
                ("context", "Patient 1234"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let back = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let tokens = w.exchange(&back).await;

    // The ID token, the access token and userinfo all say so.
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], EMERGENCY);
    assert_eq!(id["emergency"]["reason"], REASON);
    assert_eq!(id["emergency"]["context"], "Patient 1234");
    let started = id["emergency"]["started_at"].as_i64().unwrap();
    let expires = id["emergency"]["expires_at"].as_i64().unwrap();
    assert_eq!(expires - started, 3600, "the default window is 60 minutes");
    assert!(id["amr"].as_array().unwrap().contains(&"otp".into()));
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["acr"], EMERGENCY);
    let info = w.userinfo(access).await;
    assert_eq!(info["acr"], EMERGENCY);
    assert_eq!(info["emergency"]["reason"], REASON);

    // Recorded, reviewable, and told at once: mail to both contacts, a signed webhook.
    let windows = w.windows().await;
    assert_eq!(windows.len(), 1);
    let window = &windows[0];
    assert_eq!(window.username, "clara");
    assert_eq!(
        window.requested_by.as_deref(),
        Some(w.reg.client_id.as_str())
    );
    assert!(window.reviewed_at.is_none(), "awaits review");
    assert_eq!(w.events(EventType::EmergencyStarted).await.len(), 1);
    let outbox = w.outbox().await;
    for contact in ["support@hospital.example", "privacy@hospital.example"] {
        assert!(
            outbox
                .iter()
                .any(|(k, to, _)| k == "email" && to == contact),
            "{contact} is mailed: {outbox:?}"
        );
    }
    // Signed with the webhook secret (and not verifiable with another).
    let body = webhook(&w.hooks, "emergency.started").await;
    assert_eq!(body["data"]["username"], "clara");
    assert_eq!(body["data"]["reason"], REASON);

    // Signed in already with the window open: another request for emergency access is
    // answered from the session, without a new sign-in.
    let res = w
        .browser
        .get(w.authorize_url(&[("acr_values", EMERGENCY)]))
        .send()
        .await
        .unwrap();
    let again = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&again).contains_key("code"), "{again}");

    // The window ends: the RP is told by back-channel logout, and the grant falls back.
    w.app.clock.advance(Span::minutes(61));
    assert_eq!(emergency::sweep(&w.app.state).await.unwrap(), 1);
    assert_eq!(emergency::sweep(&w.app.state).await.unwrap(), 0, "once");
    let (line, body) =
        tokio::time::timeout(std::time::Duration::from_secs(15), w.backchannel.recv())
            .await
            .expect("a back-channel logout arrives")
            .unwrap();
    assert!(line.starts_with("POST /backchannel"), "{line}");
    let logout = body
        .split('&')
        .find_map(|p| p.strip_prefix("logout_token="))
        .unwrap();
    assert_eq!(claims_of(logout)["sid"], id["sid"]);
    assert_eq!(w.events(EventType::EmergencyEnded).await.len(), 1);
    assert!(w.windows().await[0].ended_at.is_some());

    let refreshed = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    let id = claims_of(refreshed["id_token"].as_str().unwrap());
    assert_eq!(
        id["acr"], "urn:gatehouse:acr:mfa",
        "ordinary tokens after the window"
    );
    assert!(id.get("emergency").is_none());
    let access = refreshed["access_token"].as_str().unwrap();
    assert!(claims_of(access).get("emergency").is_none());
    let info = w.userinfo(access).await;
    assert!(
        info.get("emergency").is_none() && info.get("acr").is_none(),
        "{info}"
    );
}

#[tokio::test]
async fn an_undesignated_user_is_refused_and_may_go_on_without_emergency_access() {
    let w = ward(false).await;
    let (_, html) = w.to_emergency_stage(&[]).await;
    assert!(html.contains("not designated"), "{html}");
    // Posting the form by hand changes nothing.
    let res = w
        .post_stage(&html, &[("action", "raise"), ("reason", REASON)])
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("not designated"));
    assert!(w.windows().await.is_empty());
    let refused = w.events(EventType::EmergencyStarted).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    assert_eq!(refused[0].details["refused"], "not_designated");

    let res = w.post_stage(&html, &[("action", "decline")]).await;
    assert_eq!(res.status(), 200);
    let back = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let tokens = w.exchange(&back).await;
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:gatehouse:acr:mfa");
    assert!(id.get("emergency").is_none());
    assert!(w.windows().await.is_empty());
}

#[tokio::test]
async fn no_reason_a_short_or_long_reason_and_an_unoffered_context_are_refused() {
    let w = ward(true).await;
    let (_, html) = w
        .to_emergency_stage(&[("emergency_context", "Patient 1234")])
        .await;
    let long = "x".repeat(501);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("action", "raise"), ("context", "Patient 1234")],
            "at least 10",
        ),
        (
            &[
                ("action", "raise"),
                ("reason", "urgent"),
                ("context", "Patient 1234"),
            ],
            "at least 10",
        ),
        (
            &[
                ("action", "raise"),
                ("reason", &long),
                ("context", "Patient 1234"),
            ],
            "at most 500",
        ),
        (
            &[("action", "raise"), ("reason", REASON)],
            "Pick one of the contexts",
        ),
        (
            &[
                ("action", "raise"),
                ("reason", REASON),
                ("context", "Patient 9999"),
            ],
            "Pick one of the contexts",
        ),
    ];
    for (form, message) in cases {
        let res = w.post_stage(&html, form).await;
        assert_eq!(res.status(), 400, "{form:?}");
        let page = res.text().await.unwrap();
        assert!(page.contains(message), "{form:?}: {page}");
    }
    let res = w.post_stage(&html, &[("action", "smash")]).await;
    assert_eq!(res.status(), 400);
    assert!(w.windows().await.is_empty(), "nothing raised");
    // The transaction is still at its stage: a good reason now goes through.
    let res = w
        .post_stage(
            &html,
            &[
                ("action", "raise"),
                ("reason", REASON),
                ("context", "Patient 1234"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(w.windows().await.len(), 1);
}

#[tokio::test]
async fn malformed_emergency_requests_go_back_to_the_client_as_errors() {
    let w = ward(true).await;
    // A client learns the class and the claim from discovery.
    let discovery: Value = rp_http()
        .get(w.app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery["acr_values_supported"]
            .as_array()
            .unwrap()
            .contains(&EMERGENCY.into())
    );
    assert!(
        discovery["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&"emergency".into())
    );
    // Labels without asking for emergency access; a repeated label; too many.
    let eleven = ["x"; 11].join("|");
    for extra in [
        vec![("emergency_context", "Patient 1234")],
        vec![("acr_values", EMERGENCY), ("emergency_context", "a|a")],
        vec![
            ("acr_values", EMERGENCY),
            ("emergency_context", eleven.as_str()),
        ],
    ] {
        let res = w.browser.get(w.authorize_url(&extra)).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(query(&back)["error"], "invalid_request", "{extra:?}");
    }
    // Without interaction, a session with no open window cannot be raised.
    let res = w
        .browser
        .get(w.authorize_url(&[("acr_values", EMERGENCY), ("prompt", "none")]))
        .send()
        .await
        .unwrap();
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["error"], "interaction_required");
}

#[tokio::test]
async fn the_account_page_raises_a_second_factor_session_once_and_ends_it_early() {
    let w = ward(true).await;
    let page = w.get("/account").await.text().await.unwrap();
    assert!(page.contains("break-glass-link"), "designated users see it");
    // The session that enrolled TOTP counts as a second-factor sign-in? It does not:
    // enrolment from the account page does not change how the session signed in.
    let form = w.get("/account/emergency").await.text().await.unwrap();
    let csrf = hidden(&form, "csrf");
    let res = w
        .app
        .post_form(
            &w.browser,
            "/account/emergency",
            &[("csrf", &csrf), ("reason", REASON)],
        )
        .await;
    assert_eq!(res.status(), 403, "password-only session");
    assert!(res.text().await.unwrap().contains("second factor"));
    assert!(w.windows().await.is_empty());

    // Signed in with the code: raised at once.
    let browser = w.app.new_client();
    let res = w.app.sign_in(&browser, "clara", PASSWORD).await;
    let otp = res.headers()["location"].to_str().unwrap().to_owned();
    let html = browser
        .get(w.app.url(&otp))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    w.app.clock.advance(Span::seconds(31));
    let code = totp_code(&w.totp, w.app.clock.now().timestamp());
    let res = w
        .app
        .post_form(
            &browser,
            "/login/otp",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let csrf = w.app.account_csrf(&browser).await;
    let raise = |reason: &'static str| {
        let (app, browser, csrf) = (&w.app, &browser, csrf.clone());
        async move {
            app.post_form(
                browser,
                "/account/emergency",
                &[("csrf", &csrf), ("reason", reason)],
            )
            .await
        }
    };
    let res = raise("short").await;
    assert_eq!(res.status(), 400);
    let res = raise(REASON).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?emergency=opened");
    let page = browser
        .get(w.app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Emergency access is open"), "{page}");
    // Never extended silently: a second raise is refused while the window is open.
    let res = raise(REASON).await;
    assert_eq!(res.status(), 409);
    assert_eq!(w.windows().await.len(), 1);

    let res = w
        .app
        .post_form(&browser, "/account/emergency/end", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 303);
    let windows = w.windows().await;
    assert_eq!(windows[0].end_reason.as_deref(), Some("ended_by_user"));
    let ended = w.events(EventType::EmergencyEnded).await;
    assert_eq!(ended.len(), 1);
    let page = browser
        .get(w.app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Emergency access is open"));
}

#[tokio::test]
async fn signing_out_ends_the_open_window() {
    let w = ward(true).await;
    let (_, html) = w.to_emergency_stage(&[]).await;
    let res = w
        .post_stage(&html, &[("action", "raise"), ("reason", REASON)])
        .await;
    assert_eq!(res.status(), 200);
    let csrf = w.app.account_csrf(&w.browser).await;
    let res = w
        .app
        .post_form(&w.browser, "/logout", &[("csrf", &csrf)])
        .await;
    assert!(res.status().is_success() || res.status().is_redirection());
    let windows = w.windows().await;
    assert_eq!(windows[0].end_reason.as_deref(), Some("signed_out"));
}

#[tokio::test]
async fn in_chromium_a_clinician_breaks_the_glass_the_rp_sees_it_and_a_second_admin_signs_off() {
    use crate::browser::Browser;
    let test =
        "in_chromium_a_clinician_breaks_the_glass_the_rp_sees_it_and_a_second_admin_signs_off";
    let Some(browser) = Browser::start().await else {
        crate::helpers::skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    let w = ward(true).await;
    // The relying party: its callback is a real page the browser lands on.
    let (rp, mut requests) = rp_listener().await;
    let redirect = format!("{rp}/callback");
    let reg = register_client(
        &w.app,
        ClientSpec::new("Emergency department", &[redirect.as_str()]),
    )
    .await;
    let mut authorize = Url::parse(&w.app.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "glass")
        .append_pair("nonce", "n-glass")
        .append_pair("acr_values", EMERGENCY)
        .append_pair("emergency_context", "Patient 1234|Ward 4");

    browser.goto(authorize.as_str()).await;
    browser.wait_for("form#login").await;
    browser.fill("form#login input#username", "clara").await;
    browser.fill("form#login input#password", PASSWORD).await;
    browser.submit("form#login button#sign-in").await;
    browser.wait_for("form#otp").await;
    w.app.clock.advance(Span::seconds(31));
    let code = totp_code(&w.totp, w.app.clock.now().timestamp());
    browser.fill("form#otp input#code", &code).await;
    browser.submit("form#otp button#verify").await;
    browser.wait_for("form#emergency").await;
    assert_eq!(browser.text("h1").await, "Emergency access");
    // Without a reason the browser itself will not send the form (required, minlength);
    // the server's refusal is tested over HTTP.
    browser
        .click("form#emergency input[name=context][value='Patient 1234']")
        .await;
    browser.fill("form#emergency textarea#reason", REASON).await;
    browser.submit("form#emergency button#break-glass").await;
    browser.wait_for("#rp").await;

    let (line, _) = tokio::time::timeout(std::time::Duration::from_secs(10), requests.recv())
        .await
        .expect("the browser reached the relying party")
        .unwrap();
    let back = Url::parse(&format!("{rp}{}", line.split(' ').nth(1).unwrap())).unwrap();
    assert_eq!(query(&back)["state"], "glass");
    let tokens: Value = rp_http()
        .post(w.app.url("/token"))
        .basic_auth(
            &reg.client_id,
            Some(reg.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", query(&back)["code"].as_str()),
            ("redirect_uri", redirect.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], EMERGENCY);
    assert_eq!(id["emergency"]["reason"], REASON);
    assert_eq!(id["emergency"]["context"], "Patient 1234");
    browser.close().await;

    // Support and the privacy officer are told at once; the webhook arrives signed.
    let outbox = w.outbox().await;
    assert!(
        outbox
            .iter()
            .any(|(k, to, _)| k == "email" && to == "support@hospital.example")
    );
    let body = webhook(&w.hooks, "emergency.started").await;
    assert_eq!(body["data"]["reason"], REASON);

    // After the window, a refresh gives ordinary tokens.
    w.app.clock.advance(Span::minutes(61));
    emergency::sweep(&w.app.state).await.unwrap();
    let refreshed: Value = rp_http()
        .post(w.app.url("/token"))
        .basic_auth(
            &reg.client_id,
            Some(reg.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = claims_of(refreshed["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:gatehouse:acr:mfa");
    assert!(id.get("emergency").is_none());

    // A second administrator signs the review off.
    let window = &w.windows().await[0];
    let admin = crate::oidc::admin_token(&w.app).await;
    let res = rp_http()
        .post(w.app.url(&format!(
            "/admin/api/v1/emergency-sessions/{}/review",
            window.id
        )))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"note": "Checked with the ward: a real arrest."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let window = &w.windows().await[0];
    assert!(window.reviewed_at.is_some());
    assert_eq!(
        window.review_note.as_deref(),
        Some("Checked with the ward: a real arrest.")
    );
    assert_eq!(w.events(EventType::EmergencyReviewed).await.len(), 1);
}

#[tokio::test]
async fn a_saml_sp_that_asks_for_the_emergency_class_gets_it_with_the_window_attributes() {
    use crate::saml::{TestSp, posted, rand_id};
    use gatehouse::saml::providers::ImportSettings;
    let w = ward(true).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&w.app, ImportSettings::default()).await;
    let asked = format!(
        r#"<samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>{EMERGENCY}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"#
    );
    let xml = sp.authn_request(&format!("_{}", rand_id()), &w.app, "", &asked);
    let res = sp
        .send_redirect(&w.app, &w.browser, &xml, None, false)
        .await;
    let (_, html) = w.sign_in_to_stage(res).await;
    let res = w
        .post_stage(&html, &[("action", "raise"), ("reason", REASON)])
        .await;
    assert_eq!(res.status(), 200);
    let (action, response, _) = posted(&res.text().await.unwrap());
    assert_eq!(action, "https://sp.example.org/acs");
    assert!(
        response.contains(&format!(
            "<saml2:AuthnContextClassRef>{EMERGENCY}</saml2:AuthnContextClassRef>"
        )),
        "{response}"
    );
    assert!(response.contains(emergency_attr("reason")));
    assert!(response.contains(REASON));
    assert!(response.contains(emergency_attr("expires-at")));

    // Another SP that did not ask gets the ordinary class from the same session.
    let xml = sp.authn_request(&format!("_{}", rand_id()), &w.app, "", "");
    let res = sp
        .send_redirect(&w.app, &w.browser, &xml, None, false)
        .await;
    let (_, response, _) = posted(&res.text().await.unwrap());
    assert!(
        response.contains("https://refeds.org/profile/mfa"),
        "{response}"
    );
    assert!(!response.contains(REASON));
}

fn emergency_attr(name: &str) -> &'static str {
    match name {
        "reason" => gatehouse::saml::assertion::ATTR_EMERGENCY_REASON,
        _ => gatehouse::saml::assertion::ATTR_EMERGENCY_EXPIRES,
    }
}
