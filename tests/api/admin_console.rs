//! The admin console (`/admin`): who gets in, what each role may do there, and what
//! the audit trail says about it. Pages and forms as a browser without JavaScript uses
//! them.

use gatehouse::{
    audit::{AuditFilter, AuditRecord, EventType},
    clock::Clock,
    domain::{Email, MfaPolicy, OrgName, OrgPolicy, Role, Username},
    store::{ip_blocks, lockouts, orgs, users, users::UserRow},
};

use crate::{
    browser::Browser,
    helpers::{TestApp, create_user_in, element_text, hidden, skip, spawn_app, totp_code},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// Organisations `alpha` and `beta` without an MFA requirement (most tests sign in by
/// password alone), and `gamma` with the default one (administrators need TOTP).
struct World {
    app: TestApp,
    alpha: String,
    beta: String,
    gamma: String,
}

impl World {
    async fn new() -> Self {
        let app = spawn_app().await;
        let relaxed = OrgPolicy {
            mfa: MfaPolicy::Off,
            ..OrgPolicy::default()
        };
        let now = chrono::Utc::now().naive_utc();
        let (alpha, beta, gamma) = app
            .state
            .store
            .run(move |c| {
                let name = |n: &str| OrgName::parse(n).unwrap();
                let a = orgs::insert(c, &name("alpha"), "Alpha", &relaxed, now)?;
                let b = orgs::insert(c, &name("beta"), "Beta", &relaxed, now)?;
                let g = orgs::insert(c, &name("gamma"), "Gamma", &OrgPolicy::default(), now)?;
                Ok((a.id, b.id, g.id))
            })
            .await
            .unwrap();
        Self {
            app,
            alpha,
            beta,
            gamma,
        }
    }

    async fn user(&self, org: &str, name: &str, role: Role) -> UserRow {
        create_user_in(&self.app, org, name, PASSWORD, role).await
    }

    /// A browser that opened `/admin`, was sent to sign in, and signed in by password.
    /// Returns the answer to the password step.
    async fn console_sign_in(&self, client: &reqwest::Client, username: &str) -> reqwest::Response {
        let res = client.get(self.app.url("/admin")).send().await.unwrap();
        assert_eq!(res.status(), 303, "no session: sent to sign in");
        let login = location(&res);
        assert!(login.starts_with("/login?tx="), "{login}");
        self.password_step(client, &login, username).await
    }

    /// Fills the sign-in page at `login` with `username` and the test password.
    async fn password_step(
        &self,
        client: &reqwest::Client,
        login: &str,
        username: &str,
    ) -> reqwest::Response {
        let page = client.get(self.app.url(login)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        self.app
            .post_form(
                client,
                "/login",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await
    }

    /// A browser inside the console as `username` (password only: alpha and beta).
    async fn admin_browser(&self, username: &str) -> reqwest::Client {
        let client = self.app.new_client();
        let res = self.console_sign_in(&client, username).await;
        assert_eq!(res.status(), 303);
        assert_eq!(
            location(&res),
            "/admin",
            "the sign-in resumes to the console"
        );
        client
    }

    /// Enrols TOTP at the sign-in step at `enrol` (where the password step sent the
    /// browser), and continues into the console. Returns the secret.
    async fn enrol_during_sign_in(&self, client: &reqwest::Client, enrol: &str) -> String {
        assert!(enrol.starts_with("/login/totp-enrol?tx="), "{enrol}");
        let (_, html) = self.page(client, enrol).await;
        let secret = element_text(&html, "totp-secret");
        let code = totp_code(&secret, self.app.clock.now().timestamp());
        let res = self
            .post(
                client,
                "/login/totp-enrol",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        let res = self
            .post(
                client,
                "/login/continue",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                ],
            )
            .await;
        assert_eq!(location(&res), "/admin");
        secret
    }

    async fn page(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let res = client.get(self.app.url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    }

    /// The console's CSRF token (the sign-out form on every page carries it).
    async fn csrf(&self, client: &reqwest::Client) -> String {
        let (status, html) = self.page(client, "/admin").await;
        assert_eq!(status, 200, "inside the console: {html}");
        hidden(&html, "csrf")
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.app.post_form(client, path, form).await
    }

    /// Five wrong passwords: the org's lockout policy locks sign-in for `username`.
    async fn lock(&self, username: &str) {
        let client = self.app.new_client();
        for _ in 0..5 {
            let res = self
                .app
                .sign_in(&client, username, "Wrong-Password-1")
                .await;
            assert_eq!(res.status(), 401);
        }
        assert!(self.locked(username).await, "{username} is locked");
    }

    async fn locked(&self, username: &str) -> bool {
        let key = gatehouse::auth::guard::login_key(username);
        let now = self.app.clock.now().naive_utc();
        self.app
            .state
            .store
            .run(move |c| lockouts::find(c, &key))
            .await
            .unwrap()
            .is_some_and(|l| l.permanent || l.locked_until.is_some_and(|t| t > now))
    }

    async fn reload(&self, user: &UserRow) -> UserRow {
        let (id, pii) = (user.id.clone(), self.app.state.pii.clone());
        self.app
            .state
            .store
            .run(move |c| users::find_by_id(c, &pii, &id))
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

    /// Whether an event of `event_type` names `actor` as actor and `subject` as subject.
    async fn audited(&self, event_type: EventType, actor: &str, subject: Option<&str>) -> bool {
        self.events(event_type).await.iter().any(|e| {
            e.actor.as_deref() == Some(actor)
                && subject.is_none_or(|s| e.subject.as_deref() == Some(s))
        })
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_the_console_sends_the_browser_to_sign_in_and_back() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let client = w.admin_browser("alice").await;
    let res = client.get(w.app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    assert!(html.contains("<h2>Find a user</h2>"), "{html}");
    assert_eq!(element_text(&html, "admin-username"), "alice");
    assert!(!html.contains("<script"), "works without JavaScript");
    // Another page without a session also starts a sign-in, never shows anything.
    let anonymous = w.app.new_client();
    let res = anonymous
        .get(w.app.url(&format!("/admin/orgs/{}", w.alpha)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login?tx="));
}

#[tokio::test]
async fn a_plain_user_is_refused_with_a_403_page() {
    let w = World::new().await;
    w.user("alpha", "plain", Role::User).await;
    let client = w.app.new_client();
    let res = w.console_sign_in(&client, "plain").await;
    assert_eq!(location(&res), "/admin");
    let res = client.get(w.app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("for administrators"), "{html}");
    let (status, _) = w.page(&client, &format!("/admin/orgs/{}", w.alpha)).await;
    assert_eq!(status, 403);
    // Not even with a CSRF token from the account page.
    let csrf = w.app.account_csrf(&client).await;
    let victim = w.user("alpha", "victim", Role::User).await;
    w.lock("victim").await;
    let res = w
        .post(
            &client,
            &format!("/admin/users/{}/unlock", victim.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(w.locked("victim").await);
}

#[tokio::test]
async fn support_unlocks_a_user_but_the_policy_form_is_refused() {
    let w = World::new().await;
    let helper = w.user("alpha", "sam", Role::Support).await;
    let victim = w.user("alpha", "vic", Role::User).await;
    w.lock("vic").await;
    let client = w.admin_browser("sam").await;

    // Found by the whole email address in any case (sealed addresses have no parts to
    // search), shown as locked.
    let (status, html) = w.page(&client, "/admin?q=VIC%40Example.org").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("/admin/users/{}", victim.id)),
        "{html}"
    );
    assert!(html.contains("<strong>locked</strong>"), "{html}");
    // The search runs in the database; its LIKE wildcards are taken literally, and no
    // name or address here holds a "%" or a "_".
    for q in ["%25", "_", "v_c"] {
        let (status, html) = w.page(&client, &format!("/admin?q={q}")).await;
        assert_eq!(status, 200);
        assert!(
            !html.contains(&format!("/admin/users/{}", victim.id)),
            "{q}"
        );
    }
    let user_path = format!("/admin/users/{}", victim.id);
    let (status, html) = w.page(&client, &user_path).await;
    assert_eq!(status, 200);
    assert_eq!(element_text(&html, "user-locked"), "locked");

    let csrf = w.csrf(&client).await;
    let res = w
        .post(&client, &format!("{user_path}/unlock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{user_path}?done=unlocked"));
    assert!(!w.locked("vic").await);
    let (_, html) = w.page(&client, &location(&res)).await;
    assert_eq!(element_text(&html, "user-locked"), "not locked");
    assert_eq!(element_text(&html, "notice"), "Sign-in was unlocked.");
    assert!(
        w.audited(EventType::AccountUnlocked, &helper.id, Some(&victim.id))
            .await
    );
    // The user signs in again.
    let res = w.app.sign_in(&w.app.new_client(), "vic", PASSWORD).await;
    assert_eq!(res.status(), 303);

    // Support reads the policies but may not change them.
    let org_path = format!("/admin/orgs/{}", w.alpha);
    let (status, html) = w.page(&client, &org_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"read-only\""), "{html}");
    assert!(!html.contains("save-policy"));
    let before = w.app.state.store.run({
        let id = w.alpha.clone();
        move |c| orgs::find_by_id(c, &id)
    });
    let before = before.await.unwrap().unwrap().policy();
    let res = w
        .post(
            &client,
            &format!("{org_path}/policy"),
            &[
                ("csrf", &csrf),
                ("password.min_length", "20"),
                ("mfa", "off"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    let after = w.app.state.store.run({
        let id = w.alpha.clone();
        move |c| orgs::find_by_id(c, &id)
    });
    assert_eq!(after.await.unwrap().unwrap().policy(), before);
    // Nor may support see IP blocks (across organisations).
    let (status, _) = w.page(&client, "/admin/ip-blocks").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_organisation_admin_gets_404_for_another_organisations_user() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let stranger = w.user("beta", "bob", Role::User).await;
    w.lock("bob").await;
    let client = w.admin_browser("alice").await;
    let csrf = w.csrf(&client).await;
    let path = format!("/admin/users/{}", stranger.id);
    assert_eq!(w.page(&client, &path).await.0, 404);
    for action in ["unlock", "force-reset", "remove-totp", "sessions/end-all"] {
        let res = w
            .post(&client, &format!("{path}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(res.status(), 404, "{action}");
    }
    assert!(w.locked("bob").await);
    assert!(!w.reload(&stranger).await.must_change_password);
    assert_eq!(
        w.page(&client, &format!("/admin/orgs/{}", w.beta)).await.0,
        404
    );
    let res = w
        .post(
            &client,
            &format!("/admin/orgs/{}/policy", w.beta),
            &[("csrf", &csrf), ("mfa", "off")],
        )
        .await;
    assert_eq!(res.status(), 404);
    // The search does not find them; the audit filter does not know them.
    let (_, html) = w.page(&client, "/admin?q=bob").await;
    assert!(html.contains("id=\"no-results\""), "{html}");
    assert!(!html.contains(&stranger.id));
    assert_eq!(w.page(&client, "/admin/audit?user=bob").await.0, 404);
    // Nor may an organisation admin act on an equal: 403, as in the API.
    let peer = w.user("alpha", "ann", Role::OrgAdmin).await;
    let res = w
        .post(
            &client,
            &format!("/admin/users/{}/force-reset", peer.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(!w.reload(&peer).await.must_change_password);
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let victim = w.user("alpha", "vic", Role::User).await;
    w.lock("vic").await;
    let client = w.admin_browser("alice").await;
    let path = format!("/admin/users/{}/unlock", victim.id);
    let res = w.post(&client, &path, &[]).await;
    assert_eq!(res.status(), 403);
    let res = w.post(&client, &path, &[("csrf", "forged")]).await;
    assert_eq!(res.status(), 403);
    assert!(w.locked("vic").await, "nothing happened");
    // Another browser's token is no good either.
    w.user("alpha", "ann", Role::Support).await;
    let other = w.admin_browser("ann").await;
    let theirs = w.csrf(&other).await;
    let res = w.post(&client, &path, &[("csrf", &theirs)]).await;
    assert_eq!(res.status(), 403);
    // A cross-site post is refused even with the right token.
    let csrf = w.csrf(&client).await;
    let res = client
        .post(w.app.url(&path))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(w.locked("vic").await);
    let res = w.post(&client, &path, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert!(!w.locked("vic").await);
}

#[tokio::test]
async fn after_15_idle_minutes_the_console_asks_to_sign_in_again() {
    let w = World::new().await;
    let admin = w.user("alpha", "alice", Role::OrgAdmin).await;
    let victim = w.user("alpha", "vic", Role::User).await;
    let client = w.admin_browser("alice").await;
    assert_eq!(w.page(&client, "/admin").await.0, 200);
    // Activity keeps it open.
    w.app.clock.advance(chrono::Duration::minutes(14));
    assert_eq!(w.page(&client, "/admin").await.0, 200);
    w.app.clock.advance(chrono::Duration::minutes(14));
    let csrf = w.csrf(&client).await;

    w.app.clock.advance(chrono::Duration::minutes(16));
    let victim_page = format!("/admin/users/{}", victim.id);
    let res = client.get(w.app.url(&victim_page)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = location(&res);
    assert!(login.starts_with("/login?tx="), "{login}");
    // The sign-in page knows who it is for.
    let (_, html) = w.page(&client, &login).await;
    assert!(html.contains("value=\"alice\""), "{html}");
    // A form sent now does nothing either.
    let res = w
        .post(
            &client,
            &format!("/admin/users/{}/force-reset", victim.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login?tx="));
    assert!(!w.reload(&victim).await.must_change_password);
    // The SSO session itself is still alive (its own limit is 72 hours).
    assert_eq!(w.page(&client, "/account").await.0, 200);

    // Signed in again, the administrator is back on the page they asked for.
    let res = w.password_step(&client, &login, "alice").await;
    assert_eq!(location(&res), victim_page);
    assert_eq!(w.page(&client, &victim_page).await.0, 200);
    assert!(
        w.events(EventType::SignInSucceeded)
            .await
            .iter()
            .filter(|e| e.subject.as_deref() == Some(&admin.id))
            .count()
            >= 2
    );
}

#[tokio::test]
async fn an_administrator_without_a_second_factor_goes_through_the_totp_step() {
    let w = World::new().await;
    // Signed in as a user (no second factor needed), then made an administrator: the
    // session has only a password behind it.
    let carol = w.user("gamma", "carol", Role::User).await;
    let client = w.app.new_client();
    let res = w.console_sign_in(&client, "carol").await;
    assert_eq!(location(&res), "/admin");
    assert_eq!(w.page(&client, "/admin").await.0, 403);
    let id = carol.id.clone();
    let now = w.app.clock.now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| users::set_role(c, &id, Role::OrgAdmin, now))
        .await
        .unwrap();

    let res = client.get(w.app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = location(&res);
    assert!(login.starts_with("/login?tx="));
    let res = w.password_step(&client, &login, "carol").await;
    assert_eq!(res.status(), 303);
    let secret = w.enrol_during_sign_in(&client, &location(&res)).await;
    assert_eq!(w.page(&client, "/admin").await.0, 200);

    // Next time, an enrolled administrator is asked for a code after the password.
    let fresh = w.app.new_client();
    let res = w.console_sign_in(&fresh, "carol").await;
    let otp = location(&res);
    assert!(otp.starts_with("/login/otp?tx="), "{otp}");
    assert_eq!(w.page(&fresh, "/admin").await.0, 303, "not inside yet");
    w.app.clock.advance(chrono::Duration::seconds(30));
    let (_, html) = w.page(&fresh, &otp).await;
    let code = totp_code(&secret, w.app.clock.now().timestamp());
    let res = w
        .post(
            &fresh,
            "/login/otp",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin");
    assert_eq!(w.page(&fresh, "/admin").await.0, 200);
}

#[tokio::test]
async fn bad_policy_input_is_a_400_page_naming_every_field() {
    let w = World::new().await;
    let admin = w.user("alpha", "alice", Role::OrgAdmin).await;
    let client = w.admin_browser("alice").await;
    let org_path = format!("/admin/orgs/{}", w.alpha);
    let (status, html) = w.page(&client, &org_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"save-policy\""));
    let csrf = hidden(&html, "csrf");
    let policy_of = |id: String| {
        let store = w.app.state.store.clone();
        async move {
            store
                .run(move |c| orgs::find_by_id(c, &id))
                .await
                .unwrap()
                .unwrap()
                .policy()
        }
    };
    let before = policy_of(w.alpha.clone()).await;
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf", csrf.as_str()),
        ("password.min_length", "4"),
        ("password.max_length", "128"),
        ("password.require_upper", "on"),
        ("password.min_strength", "2"),
        ("password.history", "5"),
        ("password.max_age_days", ""),
        ("lockout.threshold", "5"),
        ("lockout.lock_minutes", "soon"),
        ("lockout.permanent_after", "3"),
        ("lockout.reset_failures_after_minutes", "720"),
        ("mfa", "sometimes"),
        ("support_email", "not-an-address"),
        ("session_idle_secs", "3600"),
        ("session_absolute_secs", "60"),
    ];
    let res = w.post(&client, &format!("{org_path}/policy"), &form).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    let errors = &html[html.find("id=\"errors\"").expect("an error list")..];
    for field in [
        "password.min_length",
        "lockout.lock_minutes",
        "mfa",
        "support_email",
        "session_absolute_secs",
    ] {
        assert!(
            errors.contains(&format!("<li>{field}: ")),
            "{field} in {errors}"
        );
    }
    assert!(!errors.contains("<li>password.max_length"), "{errors}");
    // What was typed is shown again to correct.
    assert!(html.contains("value=\"soon\""));
    assert_eq!(policy_of(w.alpha.clone()).await, before, "nothing stored");

    for (name, value) in form.iter_mut() {
        *value = match *name {
            "password.min_length" => "12",
            "lockout.lock_minutes" => "30",
            "mfa" => "everyone",
            "support_email" => "Helpdesk@Example.org",
            "session_absolute_secs" => "86400",
            _ => *value,
        };
    }
    let res = w.post(&client, &format!("{org_path}/policy"), &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{org_path}?done=policy-saved"));
    let after = policy_of(w.alpha.clone()).await;
    assert_eq!(after.password.min_length, 12);
    assert!(after.password.require_upper && !after.password.require_lower);
    assert_eq!(after.lockout.lock_minutes, 30);
    assert_eq!(after.mfa, MfaPolicy::Everyone);
    assert_eq!(after.support_email.as_deref(), Some("Helpdesk@example.org"));
    assert_eq!(after.session_absolute_secs, 86_400);
    assert!(
        w.events(EventType::AdminChange)
            .await
            .iter()
            .any(|e| e.actor.as_deref() == Some(&admin.id)
                && e.org_id.as_deref() == Some(&w.alpha)
                && e.details["object"] == "organisation_policy")
    );
}

#[tokio::test]
async fn every_console_action_is_audited_with_the_acting_administrator() {
    let w = World::new().await;
    let admin = w.user("alpha", "alice", Role::OrgAdmin).await;
    let victim = w.user("alpha", "vic", Role::User).await;
    // Two sessions of the victim, and TOTP enrolled.
    let first = w.app.new_client();
    assert_eq!(w.app.sign_in(&first, "vic", PASSWORD).await.status(), 303);
    let second = w.app.new_client();
    assert_eq!(w.app.sign_in(&second, "vic", PASSWORD).await.status(), 303);
    w.app.enrol_totp(&first).await;
    w.lock("vic").await;

    let client = w.admin_browser("alice").await;
    let csrf = w.csrf(&client).await;
    let path = format!("/admin/users/{}", victim.id);
    let (_, html) = w.page(&client, &path).await;
    assert_eq!(element_text(&html, "user-mfa"), "enrolled");
    assert_eq!(html.matches("class=\"end-session\"").count(), 2, "{html}");

    // End one session: the other browser stays signed in.
    let handle = hidden(&html, "session");
    let res = w
        .post(
            &client,
            &format!("{path}/sessions/end"),
            &[("csrf", &csrf), ("session", &handle)],
        )
        .await;
    assert_eq!(location(&res), format!("{path}?done=session-ended"));
    let (_, html) = w.page(&client, &path).await;
    assert_eq!(html.matches("class=\"end-session\"").count(), 1);
    assert!(
        w.audited(EventType::SessionEnded, &admin.id, Some(&victim.id))
            .await
    );

    for (action, done) in [
        ("unlock", "unlocked"),
        ("remove-totp", "totp-removed"),
        ("sessions/end-all", "sessions-ended"),
        ("force-reset", "reset"),
    ] {
        let res = w
            .post(&client, &format!("{path}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(res.status(), 303, "{action}");
        assert_eq!(location(&res), format!("{path}?done={done}"));
    }
    for event in [
        EventType::AccountUnlocked,
        EventType::MfaRemoved,
        EventType::PasswordResetForced,
    ] {
        assert!(
            w.audited(event, &admin.id, Some(&victim.id)).await,
            "{event} names the administrator"
        );
    }
    let ended: Vec<_> = w
        .events(EventType::SessionEnded)
        .await
        .into_iter()
        .filter(|e| e.actor.as_deref() == Some(&admin.id))
        .collect();
    assert_eq!(ended.len(), 2, "one session, then all: {ended:?}");
    // And the effects are real.
    let after = w.reload(&victim).await;
    assert!(after.must_change_password);
    assert!(!w.locked("vic").await);
    let (_, html) = w.page(&client, &path).await;
    assert_eq!(element_text(&html, "user-mfa"), "not enrolled");
    assert!(html.contains("id=\"no-sessions\""), "{html}");
    assert_eq!(w.page(&first, "/account").await.0, 303, "signed out");

    // The console's own audit page shows them, filtered by user and type.
    let (status, html) = w
        .page(&client, "/admin/audit?user=vic&type=mfa.removed")
        .await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("class=\"event\"").count(), 1, "{html}");
    assert!(
        html.contains("<td class=\"event-actor\">alice</td>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"event-subject\">vic</td>"));
    let (status, html) = w.page(&client, "/admin/audit?type=no.such").await;
    assert_eq!(status, 400);
    assert!(html.contains("type: "), "{html}");
}

#[tokio::test]
async fn the_audit_page_goes_back_fifty_events_at_a_time() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::Support).await;
    let client = w.admin_browser("alice").await;
    for _ in 0..60 {
        w.app
            .state
            .audit
            .record(
                gatehouse::audit::AuditEvent::new(
                    EventType::PasswordResetRequested,
                    gatehouse::audit::Outcome::Success,
                )
                .org(&w.alpha),
            )
            .await
            .unwrap();
    }
    // Another organisation's events are not shown.
    for _ in 0..3 {
        w.app
            .state
            .audit
            .record(
                gatehouse::audit::AuditEvent::new(
                    EventType::PasswordResetRequested,
                    gatehouse::audit::Outcome::Success,
                )
                .org(&w.beta),
            )
            .await
            .unwrap();
    }
    let (status, html) = w
        .page(&client, "/admin/audit?type=password.reset_requested")
        .await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("class=\"event\"").count(), 50);
    let rest = &html[html
        .find("id=\"older\" href=\"")
        .expect("a link to older events")
        + 17..];
    let older = crate::helpers::unescape(&rest[..rest.find('"').unwrap()]);
    assert!(
        older.contains("type=password.reset_requested&before="),
        "{older}"
    );
    let (status, html) = w.page(&client, &older).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("class=\"event\"").count(), 10);
    assert!(!html.contains("id=\"older\""));
}

#[tokio::test]
async fn a_super_administrator_sees_every_organisation_and_lifts_ip_blocks() {
    let w = World::new().await;
    let root = w.user("alpha", "root", Role::SuperAdmin).await;
    let bob = w.user("beta", "bob", Role::User).await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let now = w.app.clock.now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| {
            ip_blocks::block(
                c,
                "203.0.113.9",
                chrono::Duration::hours(1),
                "too many failures",
                now,
            )
        })
        .await
        .unwrap();
    let client = w.admin_browser("root").await;
    let (_, html) = w.page(&client, "/admin?q=bob").await;
    assert!(html.contains(&format!("/admin/users/{}", bob.id)), "{html}");
    assert!(html.contains(&format!("/admin/orgs/{}", w.gamma)));
    assert_eq!(
        w.page(&client, &format!("/admin/users/{}", bob.id)).await.0,
        200
    );

    let (status, html) = w.page(&client, "/admin/ip-blocks").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<td class=\"blocked-ip\">203.0.113.9</td>"),
        "{html}"
    );
    let csrf = hidden(&html, "csrf");
    let res = w
        .post(
            &client,
            "/admin/ip-blocks/lift",
            &[("csrf", &csrf), ("ip", "203.0.113.9")],
        )
        .await;
    assert_eq!(location(&res), "/admin/ip-blocks?done=ip-lifted");
    let (_, html) = w.page(&client, "/admin/ip-blocks").await;
    assert!(html.contains("id=\"no-blocks\""), "{html}");
    let lifted = w.events(EventType::IpUnblocked).await;
    assert!(
        lifted
            .iter()
            .any(|e| e.actor.as_deref() == Some(&root.id) && e.details["ip"] == "203.0.113.9")
    );
    // An organisation admin may not.
    let other = w.admin_browser("alice").await;
    let csrf = w.csrf(&other).await;
    assert_eq!(w.page(&other, "/admin/ip-blocks").await.0, 403);
    let res = w
        .post(
            &other,
            "/admin/ip-blocks/lift",
            &[("csrf", &csrf), ("ip", "203.0.113.9")],
        )
        .await;
    assert_eq!(res.status(), 403);
}

// ---------------------------------------------------------------------------------------
// In a real browser (GATEHOUSE_TEST_BROWSER=1): the support desk's everyday task.

async fn browser_sign_in(browser: &Browser, username: &str, password: &str) {
    browser.fill("form#login input#username", username).await;
    browser.fill("form#login input#password", password).await;
    browser.submit("form#login button#sign-in").await;
}

#[tokio::test]
async fn browser_an_administrator_unlocks_a_user_and_forces_a_new_password() {
    let test = "browser_an_administrator_unlocks_a_user_and_forces_a_new_password";
    let Some(browser) = Browser::start().await else {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    let w = World::new().await;
    // `gamma` requires a second factor of administrators: Ada enrols at her first sign-in.
    w.user("gamma", "ada", Role::OrgAdmin).await;
    let http = w.app.new_client();
    let res = w.console_sign_in(&http, "ada").await;
    let secret = w.enrol_during_sign_in(&http, &location(&res)).await;
    let lou = w.user("gamma", "lou", Role::User).await;
    w.lock("lou").await;

    // The console sends the browser to sign in: password, then a code.
    browser.goto(&w.app.url("/admin")).await;
    browser.wait_for("form#login").await;
    browser_sign_in(&browser, "ada", PASSWORD).await;
    browser.wait_for("form#otp").await;
    w.app.clock.advance(chrono::Duration::seconds(30));
    let code = totp_code(&secret, w.app.clock.now().timestamp());
    browser.fill("form#otp input#code", &code).await;
    browser.submit("form#otp button#verify").await;
    browser.wait_for("form#search").await;
    assert_eq!(browser.current_url().await.path(), "/admin");
    assert_eq!(browser.text("h1").await, "Overview");

    // Find Lou, locked.
    browser.fill("form#search input#q", "lou").await;
    browser.submit("form#search button#search-button").await;
    browser.wait_for("table#results").await;
    assert_eq!(browser.count("table#results tbody tr").await, 1);
    assert_eq!(
        browser.text("table#results tbody tr td:nth-child(6)").await,
        "locked"
    );
    browser.submit("table#results a.user-link").await;
    assert_eq!(
        browser.current_url().await.path(),
        format!("/admin/users/{}", lou.id)
    );
    assert_eq!(browser.text("#user-username").await, "lou");
    assert_eq!(browser.text("#user-locked").await, "locked");

    // Unlock, then require a new password.
    browser.submit("form#unlock button#unlock-button").await;
    assert_eq!(browser.text("#notice").await, "Sign-in was unlocked.");
    assert_eq!(browser.text("#user-locked").await, "not locked");
    assert_eq!(browser.text("#user-must-change").await, "no");
    // A destructive action asks first, on a page of its own.
    browser
        .submit("form#force-reset button#force-reset-button")
        .await;
    assert_eq!(browser.current_url().await.path(), "/admin/confirm");
    assert_eq!(
        browser.text("#confirm-title").await,
        "Require a new password of lou?"
    );
    assert!(!w.reload(&lou).await.must_change_password, "not yet");
    browser.submit("form#confirm button#confirm-button").await;
    assert!(
        browser
            .text("#notice")
            .await
            .starts_with("A new password is required")
    );
    assert_eq!(browser.text("#user-must-change").await, "yes");
    assert!(!w.locked("lou").await);
    assert!(w.reload(&lou).await.must_change_password);

    // Ada signs out; Lou's old password no longer signs in (issue 20 item 14): he gets
    // the wrong-password answer, and the mailed reset link is his way back.
    browser.submit("form#logout button#sign-out").await;
    browser.goto(&w.app.url("/account")).await;
    browser.wait_for("form#login").await;
    browser_sign_in(&browser, "lou", PASSWORD).await;
    browser.wait_for("#error").await;
    assert_eq!(
        browser.text("#error").await,
        "Incorrect username or password."
    );
    assert_eq!(browser.current_url().await.path(), "/login");
    assert!(w.reload(&lou).await.password_hash.is_none());

    browser.close().await;
}

/// `n` sign-in failures of `user` in `org`, one a minute; the user agent is text a
/// spreadsheet would run as a formula.
async fn failures_of(w: &World, user: &UserRow, n: usize) {
    for _ in 0..n {
        let mut event = gatehouse::audit::AuditEvent::new(
            EventType::SignInFailed,
            gatehouse::audit::Outcome::Failure,
        )
        .about(&user.id, &user.org_id);
        event.user_agent = Some("=cmd|' /C calc'!A0".into());
        w.app.state.audit.record(event).await.unwrap();
        w.app.clock.advance(chrono::Duration::minutes(1));
    }
}

/// The seqs of the events a console audit page shows, top to bottom.
fn shown_seqs(html: &str) -> Vec<i64> {
    html.split("<tr class=\"event\">")
        .skip(1)
        .map(|row| {
            let cell = &row[row.find("<td>").unwrap() + 4..];
            cell[..cell.find("</td>").unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_audit_page_filters_by_time_outcome_and_user_sorts_both_ways_and_refuses_bad_filters() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::Support).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let t0 = w.app.clock.now();
    failures_of(&w, &vic, 4).await;
    let client = w.admin_browser("alice").await;

    let (status, html) = w
        .page(&client, "/admin/audit?user=vic&outcome=failure")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<script"), "no script, inline or not");
    let newest_first = shown_seqs(&html);
    assert_eq!(newest_first.len(), 4, "{html}");
    assert!(newest_first.windows(2).all(|p| p[0] > p[1]));
    // The sort toggle keeps the filters and flips the order.
    let rest = &html[html
        .find("id=\"sort-toggle\" href=\"")
        .expect("a sort toggle")
        + 23..];
    let toggle = crate::helpers::unescape(&rest[..rest.find('"').unwrap()]);
    assert!(
        toggle.contains("user=vic") && toggle.contains("dir=asc"),
        "{toggle}"
    );
    let (_, html) = w.page(&client, &toggle).await;
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    assert_eq!(shown_seqs(&html), oldest_first);

    // From and to as a browser's date-time field sends them (UTC, no zone).
    let at = |m: i64| {
        (t0 + chrono::Duration::minutes(m))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let path = format!("/admin/audit?user=vic&from={}&to={}", at(1), at(3));
    let (status, html) = w.page(&client, &path).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(shown_seqs(&html), newest_first[1..3].to_vec());

    for (query, field) in [
        ("from=yesterday", "from: "),
        ("from=2026-12-02&to=2026-12-01", "from: "),
        ("outcome=maybe", "outcome: "),
        ("type=no.such", "type: "),
    ] {
        let (status, html) = w.page(&client, &format!("/admin/audit?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            html.contains(&format!("role=\"alert\">{field}")),
            "{query}: {html}"
        );
    }
}

#[tokio::test]
async fn the_console_exports_what_the_filters_select_and_never_another_organisations_events() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    failures_of(&w, &vic, 2).await;
    failures_of(&w, &bert, 3).await;
    let client = w.admin_browser("alice").await;
    let csrf = w.csrf(&client).await;

    let (_, html) = w.page(&client, "/admin/audit?user=vic").await;
    assert!(html.contains("id=\"export-csv\"") && html.contains("id=\"export-jsonl\""));
    let res = w
        .post(
            &client,
            "/admin/audit/export",
            &[
                ("csrf", &csrf),
                ("format", "csv"),
                ("user", "vic"),
                ("type", "sign_in.failed"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let csv = res.text().await.unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.contains(&vic.id) && r.contains(",vic,"))
    );
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.contains(",'=cmd|' /C calc'!A0,")),
        "{csv}"
    );

    // Another organisation, by filter or by user: not found; without a filter: own only.
    for form in [
        vec![("org", w.beta.as_str())],
        vec![("user", "bert")],
        vec![("user", bert.id.as_str())],
    ] {
        let mut fields = vec![("csrf", csrf.as_str()), ("format", "jsonl")];
        fields.extend(form.iter().copied());
        let res = w.post(&client, "/admin/audit/export", &fields).await;
        assert_eq!(res.status(), 404, "{form:?}");
        assert!(!res.text().await.unwrap().contains(&bert.id));
    }
    let res = w
        .post(
            &client,
            "/admin/audit/export",
            &[("csrf", &csrf), ("format", "jsonl")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let all = res.text().await.unwrap();
    assert!(all.contains(&vic.id) && !all.contains(&bert.id) && !all.contains(&w.beta));

    // A form from elsewhere (no CSRF token) exports nothing.
    let res = w
        .post(&client, "/admin/audit/export", &[("format", "csv")])
        .await;
    assert_eq!(res.status(), 403);
    let res = w
        .post(
            &client,
            "/admin/audit/export",
            &[("csrf", &csrf), ("format", "xlsx")],
        )
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn console_reads_of_users_and_of_the_trail_are_recorded() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::Support).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let client = w.admin_browser("alice").await;
    let csrf = w.csrf(&client).await;
    assert!(w.events(EventType::AdminRead).await.is_empty());

    assert_eq!(w.page(&client, "/admin?q=vi").await.0, 200);
    assert_eq!(
        w.page(&client, &format!("/admin/users/{}", vic.id)).await.0,
        200
    );
    assert_eq!(w.page(&client, "/admin/audit?user=vic").await.0, 200);
    let res = w
        .post(
            &client,
            "/admin/audit/export",
            &[("csrf", &csrf), ("format", "csv")],
        )
        .await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();

    let mut reads = w.events(EventType::AdminRead).await;
    reads.reverse();
    let objects: Vec<&str> = reads
        .iter()
        .map(|e| e.details["object"].as_str().unwrap())
        .collect();
    assert_eq!(objects, ["users", "user", "audit", "audit_export"]);
    assert!(
        reads
            .iter()
            .all(|e| e.actor.as_deref() == Some(alice.id.as_str()))
    );
    assert!(reads.iter().all(|e| e.details["actor_username"] == "alice"));
    assert_eq!(reads[0].details["filter"]["q"], "vi");
    assert_eq!(reads[1].subject.as_deref(), Some(vic.id.as_str()));
    assert_eq!(reads[2].details["filter"]["user"], "vic");
    assert_eq!(reads[3].details["format"], "csv");
}

/// The headings (`<h1>`, `<h2>`) of a page, as written in it.
fn headings(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for tag in ["h1", "h2"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut rest = html;
        while let Some(at) = rest.find(&open) {
            let inner = &rest[at + open.len()..];
            let end = inner.find(&close).expect("a closed heading");
            found.push(inner[..end].to_owned());
            rest = &inner[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_console_speaks_the_administrators_language() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let peer = w.user("alpha", "ann", Role::OrgAdmin).await;
    failures_of(&w, &vic, 1).await;
    let client = w.admin_browser("alice").await;
    let pages = [
        "/admin?q=vic".to_owned(),
        "/admin/audit".to_owned(),
        format!("/admin/users/{}", vic.id),
    ];
    let mut english = Vec::new();
    for path in &pages {
        let (status, html) = w.page(&client, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains("<html lang=\"en\">"), "{path}: {html}");
        english.push(headings(&html));
    }
    assert!(
        english[0].contains(&"Find a user".to_owned()),
        "{english:?}"
    );

    // Her browser asks for Spanish (of Mexico): the console answers in Latin American.
    let res = client
        .get(w.app.url("/admin"))
        .header("Accept-Language", "es-MX,es;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"es-419\">"), "{html}");
    assert!(html.contains("<h1>Resumen</h1>"), "{html}");
    assert!(html.contains("<h2>Buscar un usuario</h2>"), "{html}");

    // She chooses Spanish, and Bogotá's time, for herself: her browser says nothing.
    let csrf = w.app.account_csrf(&client).await;
    let res = w
        .post(
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
    for (path, english) in pages.iter().zip(&english) {
        let (status, html) = w.page(&client, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains("<html lang=\"es-419\">"), "{path}: {html}");
        let spanish = headings(&html);
        assert_eq!(spanish.len(), english.len(), "{path}: {spanish:?}");
        for heading in &spanish {
            assert!(
                !english.contains(heading),
                "{path}: {heading:?} left in English"
            );
        }
    }
    let (_, html) = w.page(&client, "/admin/audit").await;
    assert!(html.contains("<h1>Registro de auditoría</h1>"), "{html}");
    assert!(html.contains(">Exportar como CSV</button>"), "{html}");
    // The event's time is in her time zone (the filters' fields say they are UTC).
    let row = &html[html.find("<tr class=\"event\">").expect("an event")..];
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .take(2)
        .map(|cell| &cell[..cell.find("</td>").unwrap()])
        .collect();
    assert!(cells[1].ends_with(" -05"), "{cells:?}");
    let user_path = format!("/admin/users/{}", vic.id);
    let (_, html) = w.page(&client, &user_path).await;
    assert!(html.contains("<h1>Usuario <span id=\"user-username\">vic</span></h1>"));
    assert_eq!(element_text(&html, "user-locked"), "no bloqueado");

    // What an action did, what is refused, and the error pages speak it too.
    let csrf = hidden(&html, "csrf");
    let res = w
        .post(&client, &format!("{user_path}/unlock"), &[("csrf", &csrf)])
        .await;
    let (_, html) = w.page(&client, &location(&res)).await;
    assert_eq!(
        element_text(&html, "notice"),
        "El inicio de sesión no estaba bloqueado."
    );
    let res = w
        .post(
            &client,
            &format!("/admin/users/{}/force-reset", peer.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"es-419\">"), "{html}");
    assert!(
        html.contains("No puede actuar sobre un usuario cuyo rol es igual o superior al suyo."),
        "{html}"
    );
    let (status, html) = w.page(&client, "/admin/users/no-such-user").await;
    assert_eq!(status, 404);
    assert!(html.contains("<html lang=\"es-419\">"), "{html}");
}

// ---------------------------------------------------------------------------------------
// The overview's dashboard, sortable and paged tables, confirmations (issue 31).

/// The dashboard's figure `id` (`dash-failures`, …) on the page `html`.
fn figure(html: &str, id: &str) -> i64 {
    element_text(html, id)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("#{id} is no number in {html}"))
}

/// The dashboard's figures, as `client` sees them now.
async fn figures(w: &World, client: &reqwest::Client) -> [i64; 4] {
    let (status, html) = w.page(client, "/admin").await;
    assert_eq!(status, 200, "{html}");
    [
        figure(&html, "dash-sign-ins"),
        figure(&html, "dash-failures"),
        figure(&html, "dash-locked"),
        figure(&html, "dash-emergency"),
    ]
}

/// An emergency window `user` opened a minute ago, awaiting review.
async fn emergency_window(w: &World, user: &UserRow) {
    let started = w.app.clock.now().naive_utc() - chrono::Duration::minutes(1);
    let row = gatehouse::store::emergency::EmergencyRow {
        id: gatehouse::store::new_id(),
        org_id: user.org_id.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        session_handle: "ab".repeat(32),
        reason: "Cardiac arrest in bed 4".into(),
        context: None,
        requested_by: None,
        started_at: started,
        expires_at: started + chrono::Duration::minutes(60),
        ended_at: None,
        end_reason: None,
        reviewed_by: None,
        reviewed_at: None,
        review_note: None,
        overdue_notified_at: None,
    };
    w.app
        .state
        .store
        .run(move |c| gatehouse::store::emergency::insert(c, &row))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_dashboard_counts_what_happens_in_the_organisations_the_administrator_sees() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("alpha", "sam", Role::Support).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    let alice = w.admin_browser("alice").await;
    let (_, html) = w.page(&alice, "/admin").await;
    assert!(html.contains("<dl id=\"dashboard\">"), "{html}");
    // Alice's own sign-in, nothing else yet.
    assert_eq!(figures(&w, &alice).await, [1, 0, 0, 0]);
    // What spans organisations is a super administrator's.
    for id in ["dash-ip-blocks", "dash-outbox", "dash-outbox-failed"] {
        assert!(!html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }
    assert!(html.contains("id=\"dash-emergency-link\" href=\"/admin/emergency\""));

    // A failed sign-in of carl raises the failures; one of bert (beta) does not, nor one
    // of a name that is nobody's.
    let carl = w.user("alpha", "carl", Role::User).await;
    let other = w.app.new_client();
    let res = w.app.sign_in(&other, "carl", "Wrong-Password-1").await;
    assert_eq!(res.status(), 401);
    assert_eq!(figures(&w, &alice).await, [1, 1, 0, 0]);
    for name in ["bert", "nobody-at-all"] {
        let res = w.app.sign_in(&other, name, "Wrong-Password-1").await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(figures(&w, &alice).await, [1, 1, 0, 0]);
    // The failures link to the trail shows the same events.
    let (_, html) = w.page(&alice, "/admin").await;
    let rest = &html[html.find("id=\"dash-failures-link\" href=\"").unwrap() + 30..];
    let trail = crate::helpers::unescape(&rest[..rest.find('"').unwrap()]);
    assert!(trail.starts_with("/admin/audit?type=sign_in.failed&outcome=failure&from="));
    let (status, html) = w.page(&alice, &trail).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("class=\"event\"").count(), 1, "{html}");

    // A lock raises the accounts locked (and its five failures the failures); another
    // organisation's lock does not.
    w.lock("vic").await;
    assert_eq!(figures(&w, &alice).await, [1, 6, 1, 0]);
    w.lock("bert").await;
    assert_eq!(figures(&w, &alice).await, [1, 6, 1, 0]);
    // A successful sign-in is counted.
    assert_eq!(w.app.sign_in(&other, "carl", PASSWORD).await.status(), 303);
    assert_eq!(figures(&w, &alice).await, [2, 6, 1, 0]);

    // An emergency window awaiting review, with a link to the reviews.
    emergency_window(&w, &vic).await;
    emergency_window(&w, &bert).await;
    assert_eq!(figures(&w, &alice).await, [2, 6, 1, 1]);
    // Support sees the same figures of the same organisation.
    let sam = w.admin_browser("sam").await;
    assert_eq!(figures(&w, &sam).await, [3, 6, 1, 1]);

    // Unlocked, the account is no longer counted; the failures stay, for a day.
    let csrf = w.csrf(&alice).await;
    let res = w
        .post(
            &alice,
            &format!("/admin/users/{}/unlock", vic.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(figures(&w, &alice).await, [3, 6, 0, 1]);
    w.app.clock.advance(chrono::Duration::hours(25));
    let alice = w.admin_browser("alice").await;
    assert_eq!(
        figures(&w, &alice).await,
        [1, 0, 0, 1],
        "a day later: her new sign-in only; the window still awaits review"
    );
    assert!(!w.locked(&carl.username).await);
}

#[tokio::test]
async fn a_super_administrator_sees_every_organisation_and_the_blocks_and_outbox() {
    use gatehouse::store::outbox;
    let w = World::new().await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    let root = w.admin_browser("root").await;
    let (_, html) = w.page(&root, "/admin").await;
    assert_eq!(figure(&html, "dash-ip-blocks"), 0);
    assert!(html.contains("id=\"dash-ip-blocks-link\" href=\"/admin/ip-blocks\""));

    // Failures in both organisations, and of a name that is nobody's: all counted.
    let other = w.app.new_client();
    for name in ["vic", "bert", "nobody-at-all"] {
        let res = w.app.sign_in(&other, name, "Wrong-Password-1").await;
        assert_eq!(res.status(), 401);
    }
    w.lock("bert").await;
    emergency_window(&w, &vic).await;
    emergency_window(&w, &bert).await;
    assert_eq!(figures(&w, &root).await, [1, 8, 1, 2]);

    // An IP block in force, a mail waiting (not due for a day) and one given up on.
    let (_, html) = w.page(&root, "/admin").await;
    let blocks = figure(&html, "dash-ip-blocks");
    let now = w.app.clock.now().naive_utc();
    let later = now + chrono::Duration::days(1);
    let key = gatehouse::crypto::MasterKey::generate();
    w.app
        .state
        .store
        .run(move |c| {
            ip_blocks::block(c, "203.0.113.7", chrono::Duration::hours(1), "test", now)?;
            for (id, status) in [
                ("w1", outbox::STATUS_PENDING),
                ("f1", outbox::STATUS_FAILED),
            ] {
                let row = outbox::NewOutboxRow {
                    next_attempt_at: later,
                    status,
                    ..outbox::NewOutboxRow::due(id, outbox::KIND_EMAIL, "x@example.org", "Hi", now)
                };
                outbox::insert(c, &key, &row)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let (_, html) = w.page(&root, "/admin").await;
    assert_eq!(figure(&html, "dash-ip-blocks"), blocks + 1);
    // The outbox's figures are its own counts (read on either side of the page: the
    // courier may be at work on the lock's mail meanwhile).
    let counts = || {
        let store = w.app.state.store.clone();
        async move {
            store
                .run(|c| Ok((outbox::pending_count(c)?, outbox::failed_count(c)?)))
                .await
                .unwrap()
        }
    };
    let mut checked = false;
    for _ in 0..10 {
        let before = counts().await;
        let (_, html) = w.page(&root, "/admin").await;
        if counts().await == before {
            assert!(before.0 >= 1 && before.1 >= 1, "{before:?}");
            let shown = (
                figure(&html, "dash-outbox"),
                figure(&html, "dash-outbox-failed"),
            );
            assert_eq!(shown, before);
            checked = true;
            break;
        }
    }
    assert!(checked, "the outbox never kept still");
}

/// `n` users of organisation `org` (an id) named `prefix01`, `prefix02`, …, without a password (quicker
/// than hashing one each).
async fn many_users(w: &World, org: &str, prefix: &str, n: usize) {
    let (org, prefix, pii) = (org.to_owned(), prefix.to_owned(), w.app.state.pii.clone());
    let now = w.app.clock.now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| {
            for i in 1..=n {
                let name = format!("{prefix}{i:02}");
                let new = users::NewUser {
                    org_id: org.clone(),
                    username: Username::parse(&name).unwrap(),
                    email: Email::parse(&format!("{name}@example.org")).unwrap(),
                    display_name: None,
                    role: Role::User,
                    password_hash: None,
                    must_change_password: false,
                };
                users::insert(c, &pii, &new, now)?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

/// The usernames of the search results on a page, top to bottom.
fn result_names(html: &str) -> Vec<String> {
    html.split("class=\"user-link\" href=\"")
        .skip(1)
        .map(|row| {
            let name = &row[row.find('>').unwrap() + 1..];
            name[..name.find('<').unwrap()].to_owned()
        })
        .collect()
}

/// The address of the link with id `id` on the page.
fn link(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" href=\"");
    let rest = &html[html.find(&marker)? + marker.len()..];
    Some(crate::helpers::unescape(&rest[..rest.find('"').unwrap()]))
}

#[tokio::test]
async fn the_search_results_sort_by_their_headings_and_go_fifty_to_a_page() {
    let w = World::new().await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    many_users(&w, &w.alpha, "pat", 60).await;
    many_users(&w, &w.beta, "patb", 1).await;
    let promote = |name: &str, role: Role| {
        let (store, pii, name) = (
            w.app.state.store.clone(),
            w.app.state.pii.clone(),
            name.to_owned(),
        );
        async move {
            store
                .run(move |c| {
                    let user = users::find_by_username(c, &pii, &Username::parse(&name).unwrap())?
                        .unwrap();
                    users::set_role(c, &user.id, role, chrono::Utc::now().naive_utc())
                })
                .await
                .unwrap();
        }
    };
    promote("pat30", Role::Support).await;
    promote("pat45", Role::OrgAdmin).await;
    let client = w.admin_browser("root").await;

    // By username, the default: 50 of 61, and a link to the rest.
    let (status, html) = w.page(&client, "/admin?q=pat").await;
    assert_eq!(status, 200);
    let first = result_names(&html);
    assert_eq!(first.len(), 50, "{html}");
    assert_eq!(first[0], "pat01");
    assert_eq!(element_text(&html, "found"), "61 users match.");
    assert_eq!(element_text(&html, "page-position"), "Page 1 of 2");
    assert!(link(&html, "prev").is_none());
    // The sorted column says so; its heading's link says what it does.
    assert!(
        html.contains(
            "<th scope=\"col\" aria-sort=\"ascending\"><a class=\"sort\" id=\"sort-username\""
        ),
        "{html}"
    );
    assert!(html.contains("(sort descending)</span></a></th>"), "{html}");
    assert_eq!(html.matches("aria-sort=").count(), 1);
    let next = link(&html, "next").expect("a next page");
    assert_eq!(next, "/admin?q=pat&page=2");
    let (_, html) = w.page(&client, &next).await;
    let second = result_names(&html);
    assert_eq!(second.len(), 11);
    assert!(second.iter().all(|n| !first.contains(n)), "no overlap");
    assert!(link(&html, "next").is_none());
    assert_eq!(link(&html, "prev").as_deref(), Some("/admin?q=pat"));

    // The username heading's link turns the order around.
    let desc = link(&html, "sort-username").unwrap();
    assert_eq!(desc, "/admin?q=pat&sort=username&dir=desc");
    let (_, html) = w.page(&client, &desc).await;
    let reversed = result_names(&html);
    assert_eq!(reversed[0], "patb01");
    assert_eq!(reversed[1], "pat60");
    assert!(html.contains("aria-sort=\"descending\""));
    assert_eq!(
        link(&html, "next").as_deref(),
        Some("/admin?q=pat&sort=username&dir=desc&page=2")
    );
    // By role, highest first; by organisation, Beta before Alpha.
    let (_, html) = w.page(&client, "/admin?q=pat&sort=role&dir=desc").await;
    assert_eq!(result_names(&html)[..2], ["pat45", "pat30"]);
    let (_, html) = w.page(&client, "/admin?q=pat&sort=role&dir=asc").await;
    assert_eq!(result_names(&html)[0], "pat01");
    let (_, html) = w.page(&client, "/admin?q=pat&sort=org&dir=desc").await;
    assert_eq!(result_names(&html)[..2], ["patb01", "pat01"]);
    let (_, html) = w.page(&client, "/admin?q=pat&sort=org").await;
    assert_eq!(result_names(&html)[0], "pat01");

    // Whatever else a query says is the default order, from the first page; a page past
    // the last is the last.
    for query in [
        "sort=../x",
        "sort=username%00&dir=sideways",
        "page=-1",
        "page=0",
        "page=abc",
        "page=999999999999",
        "page=99999999999999999999999",
        "sort=&dir=",
        "sort=email",
    ] {
        let (status, html) = w.page(&client, &format!("/admin?q=pat&{query}")).await;
        assert_eq!(status, 200, "{query}: {html}");
        assert_eq!(result_names(&html), first, "{query}");
    }
    let (status, html) = w.page(&client, "/admin?q=pat&page=7").await;
    assert_eq!(status, 200);
    assert_eq!(result_names(&html), second);
    // Fewer than a page: no page links at all.
    let (_, html) = w.page(&client, "/admin?q=pat0").await;
    assert_eq!(result_names(&html).len(), 9);
    assert!(!html.contains("class=\"pager\""), "{html}");
}

/// The cells of each event row of an audit page: seq, time, type, outcome, ….
fn event_rows(html: &str) -> Vec<Vec<String>> {
    html.split("<tr class=\"event\">")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap()];
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    cell[..cell.find("</td>").unwrap()].to_owned()
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_audit_table_sorts_by_type_and_outcome_and_pages_either_way() {
    use gatehouse::audit::{AuditEvent, Outcome};
    let w = World::new().await;
    w.user("alpha", "alice", Role::Support).await;
    let client = w.admin_browser("alice").await;
    for (event_type, outcome, n) in [
        (EventType::PasswordResetRequested, Outcome::Failure, 30),
        (EventType::SignInFailed, Outcome::Failure, 30),
        (EventType::PasswordResetRequested, Outcome::Success, 5),
    ] {
        for _ in 0..n {
            let event = AuditEvent::new(event_type, outcome).org(&w.alpha);
            w.app.state.audit.record(event).await.unwrap();
        }
    }

    // By type, both ways: the first rows swap; 60 failures are two pages.
    let (status, html) = w
        .page(&client, "/admin/audit?outcome=failure&sort=type&dir=asc")
        .await;
    assert_eq!(status, 200, "{html}");
    let rows = event_rows(&html);
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[0][2], "password.reset_requested");
    assert_eq!(rows[49][2], "sign_in.failed");
    assert!(
        html.contains(
            "<th scope=\"col\" aria-sort=\"ascending\"><a class=\"sort\" id=\"sort-type\""
        )
    );
    assert_eq!(element_text(&html, "page-position"), "Page 1 of 2");
    // The filter form keeps the order.
    assert!(html.contains("<input type=\"hidden\" name=\"sort\" value=\"type\">"));
    let next = link(&html, "next").unwrap();
    assert_eq!(
        next,
        "/admin/audit?outcome=failure&sort=type&dir=asc&page=2"
    );
    let (_, html) = w.page(&client, &next).await;
    let rest = event_rows(&html);
    assert_eq!(rest.len(), 10);
    assert!(rest.iter().all(|r| r[2] == "sign_in.failed"));
    assert!(link(&html, "prev").is_some() && link(&html, "next").is_none());
    let desc = link(&html, "sort-type").unwrap();
    assert_eq!(desc, "/admin/audit?outcome=failure&sort=type&dir=desc");
    let (_, html) = w.page(&client, &desc).await;
    let rows = event_rows(&html);
    assert_eq!(rows[0][2], "sign_in.failed");
    // Within a type, newest first.
    let seqs: Vec<i64> = rows[..30].iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|p| p[0] > p[1]), "{seqs:?}");

    // By outcome: failures first ascending, successes first descending.
    let (_, html) = w
        .page(
            &client,
            "/admin/audit?type=password.reset_requested&sort=outcome",
        )
        .await;
    assert_eq!(event_rows(&html)[0][3], "failure");
    let (_, html) = w
        .page(
            &client,
            "/admin/audit?type=password.reset_requested&sort=outcome&dir=desc",
        )
        .await;
    let rows = event_rows(&html);
    assert_eq!(rows.len(), 35);
    assert!(rows[..5].iter().all(|r| r[3] == "success"), "{rows:?}");

    // In time, the default: older events, then newer ones back to the same page.
    let (_, html) = w
        .page(&client, "/admin/audit?type=password.reset_requested")
        .await;
    assert!(html.contains("aria-sort=\"descending\"><a class=\"sort\" id=\"sort-time\""));
    let newest = shown_seqs(&html);
    assert_eq!(newest.len(), 35);
    let (_, html) = w.page(&client, "/admin/audit?outcome=failure").await;
    let page_one = shown_seqs(&html);
    assert!(link(&html, "newer").is_none());
    let older = link(&html, "older").unwrap();
    let (_, html) = w.page(&client, &older).await;
    assert_eq!(shown_seqs(&html).len(), 10);
    let newer = link(&html, "newer").expect("a way back");
    assert!(newer.contains("after="), "{newer}");
    let (_, html) = w.page(&client, &newer).await;
    assert_eq!(shown_seqs(&html), page_one);
    assert!(link(&html, "newer").is_none(), "back at the start");
    assert!(link(&html, "older").is_some());

    // Whatever else a query says is the default: newest first, the first page.
    for query in [
        "sort=../x&dir=up",
        "page=-1",
        "sort=type&page=999999999999",
        "before=abc",
        "after=%2F..%2F",
        "order=sideways",
    ] {
        let (status, html) = w
            .page(&client, &format!("/admin/audit?outcome=failure&{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {html}");
        let seqs = shown_seqs(&html);
        if query.starts_with("sort=type") {
            assert_eq!(
                event_rows(&html)[0][2],
                "password.reset_requested",
                "{query}"
            );
        } else {
            assert_eq!(seqs, page_one, "{query}");
        }
    }
}

/// The address a console button's `GET` form opens (the first form on the page with
/// `marker`, an `id="…"` or `class="…"`): its action with its fields.
fn button_target(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at].rfind("<form").unwrap();
    let end = at + html[at..].find("</form>").unwrap();
    let form = &html[start..end];
    assert!(form.contains("method=\"get\""), "asks first: {form}");
    let action = form_attr(form, "action");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(hidden_fields(form))
        .finish();
    format!("{action}?{query}")
}

fn form_attr(form: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let rest = &form[form.find(&marker).unwrap() + marker.len()..];
    crate::helpers::unescape(&rest[..rest.find('"').unwrap()])
}

/// The hidden fields of a form, in order.
fn hidden_fields(form: &str) -> Vec<(String, String)> {
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| (form_attr(input, "name"), form_attr(input, "value")))
        .collect()
}

/// A confirmation page: what it asks, and its form.
struct Confirmation {
    title: String,
    what: String,
    action: String,
    fields: Vec<(String, String)>,
    cancel: String,
}

fn confirmation(html: &str) -> Confirmation {
    let start = html.find("<form id=\"confirm\"").expect("a confirm form");
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    assert!(form.contains("method=\"post\""), "{form}");
    Confirmation {
        title: crate::helpers::unescape(&element_text(html, "confirm-title")),
        what: crate::helpers::unescape(&element_text(html, "confirm-what")),
        action: form_attr(form, "action"),
        fields: hidden_fields(form),
        cancel: link(html, "cancel").expect("a way back"),
    }
}

/// Opens the confirmation `button` (on the page at `page`) leads to, checks what it
/// says and that Cancel goes back to `page` with the button still there, then sends its
/// form. Returns the confirmation and where the action sent the browser.
async fn confirm(
    w: &World,
    client: &reqwest::Client,
    page: &str,
    button: &str,
    says: &[&str],
) -> (Confirmation, String) {
    let (status, html) = w.page(client, page).await;
    assert_eq!(status, 200, "{html}");
    let target = button_target(&html, button);
    assert!(target.starts_with("/admin/confirm?"), "{target}");
    let (status, html) = w.page(client, &target).await;
    assert_eq!(status, 200, "{target}: {html}");
    let asked = confirmation(&html);
    for words in says {
        assert!(
            asked.title.contains(words) || asked.what.contains(words),
            "{button}: {words:?} in {:?} / {:?}",
            asked.title,
            asked.what
        );
    }
    assert!(html.contains("id=\"confirm-button\""));
    // Cancel: back where the button was, and it is still there.
    assert_eq!(asked.cancel, page.split('?').next().unwrap());
    let (status, back) = w.page(client, &asked.cancel).await;
    assert_eq!(status, 200);
    assert_eq!(button_target(&back, button), target, "nothing changed");
    let fields: Vec<(&str, &str)> = asked
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(fields[0].0, "csrf");
    let res = w.post(client, &asked.action, &fields).await;
    assert_eq!(res.status(), 303, "{button}: {}", asked.action);
    let went = location(&res);
    (asked, went)
}

#[tokio::test]
async fn every_destructive_button_asks_first_and_its_confirmation_posts_the_same_action() {
    let w = World::new().await;
    let root = w.user("alpha", "root", Role::SuperAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    // Two sessions of vic, TOTP, a passkey.
    let first = w.app.new_client();
    assert_eq!(w.app.sign_in(&first, "vic", PASSWORD).await.status(), 303);
    let second = w.app.new_client();
    assert_eq!(w.app.sign_in(&second, "vic", PASSWORD).await.status(), 303);
    w.app.enrol_totp(&first).await;
    let new = gatehouse::store::passkeys::NewPasskey {
        user_id: vic.id.clone(),
        credential_id: "credential-1".into(),
        name: "Desk key".into(),
        credential: "{}".into(),
        aaguid: None,
        backup_eligible: false,
    };
    let now = w.app.clock.now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| gatehouse::store::passkeys::insert(c, &new, now))
        .await
        .unwrap();
    let client = w.admin_browser("root").await;
    let csrf = w.csrf(&client).await;
    let user_path = format!("/admin/users/{}", vic.id);
    // A FHIR server and vic's resource on it, emergency designation, an IP block, an
    // identity provider with a link to vic.
    for (path, form) in [
        (
            "/admin/fhir-servers".to_owned(),
            vec![
                ("base_url", "https://fhir.example.org/r4"),
                ("display_name", "Ward FHIR"),
            ],
        ),
        (
            format!("{user_path}/fhir-users/set"),
            vec![
                ("server", "https://fhir.example.org/r4"),
                ("fhir_user", "Practitioner/p-1"),
            ],
        ),
        (format!("{user_path}/emergency-grant"), vec![]),
        (
            "/admin/connectors".to_owned(),
            vec![
                ("org", w.alpha.as_str()),
                ("slug", "alpha-idp"),
                ("display_name", "Alpha IdP"),
                ("enabled", "on"),
                ("protocol", "oidc"),
                ("issuer", "https://login.alpha.example"),
                ("client_id", "gatehouse"),
                ("client_secret", "s3cret-s3cret-s3cret"),
                ("client_auth", "client_secret_post"),
                ("username_claim", "preferred_username"),
                ("email_claim", "email"),
                ("name_claim", "name"),
                ("default_role", "user"),
            ],
        ),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        let res = w.post(&client, &path, &fields).await;
        assert_eq!(res.status(), 303, "{path}: {}", res.text().await.unwrap());
    }
    let connector = {
        let store = w.app.state.store.clone();
        store
            .run(|c| gatehouse::store::upstream::find_by_slug(c, "alpha-idp"))
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let connector_path = format!("/admin/connectors/{connector}");
    let res = w
        .post(
            &client,
            &format!("{connector_path}/links"),
            &[
                ("csrf", &csrf),
                ("subject", "idp-sub-1"),
                ("username", "vic"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    w.app
        .state
        .store
        .run(move |c| ip_blocks::block(c, "203.0.113.9", chrono::Duration::hours(1), "test", now))
        .await
        .unwrap();

    // The user's page: one session, then every one.
    let (asked, went) = confirm(
        &w,
        &client,
        &user_path,
        "class=\"end-session\"",
        &["vic", "End this session"],
    )
    .await;
    assert_eq!(asked.action, format!("{user_path}/sessions/end"));
    assert_eq!(asked.fields[1].0, "session");
    assert_eq!(went, format!("{user_path}?done=session-ended"));
    let (_, html) = w.page(&client, &user_path).await;
    assert_eq!(html.matches("class=\"end-session\"").count(), 1);
    let (_, went) = confirm(
        &w,
        &client,
        &user_path,
        "id=\"end-all\"",
        &["End every session of vic?", "every browser"],
    )
    .await;
    assert_eq!(went, format!("{user_path}?done=sessions-ended"));
    assert_eq!(w.page(&first, "/account").await.0, 303, "signed out");
    assert_eq!(w.page(&second, "/account").await.0, 303, "signed out");

    let (asked, went) = confirm(
        &w,
        &client,
        &user_path,
        "class=\"remove-passkey\"",
        &["Desk key", "vic"],
    )
    .await;
    assert_eq!(asked.action, format!("{user_path}/passkeys/remove"));
    assert_eq!(went, format!("{user_path}?done=passkey-removed"));
    let (asked, went) = confirm(
        &w,
        &client,
        &user_path,
        "class=\"clear-fhir-user\"",
        &["https://fhir.example.org/r4", "Practitioner/p-1"],
    )
    .await;
    assert_eq!(asked.action, format!("{user_path}/fhir-users/clear"));
    assert_eq!(went, format!("{user_path}?done=fhir-user-cleared"));
    let (_, went) = confirm(
        &w,
        &client,
        &user_path,
        "id=\"remove-totp\"",
        &["two-step verification of vic"],
    )
    .await;
    assert_eq!(went, format!("{user_path}?done=totp-removed"));
    let (_, went) = confirm(
        &w,
        &client,
        &user_path,
        "id=\"emergency-withdraw\"",
        &["emergency access of vic", "break the glass"],
    )
    .await;
    assert_eq!(went, format!("{user_path}?done=emergency-withdrawn"));
    assert!(!w.reload(&vic).await.must_change_password);
    let (_, went) = confirm(
        &w,
        &client,
        &user_path,
        "id=\"force-reset\"",
        &["new password of vic", "mailed a link"],
    )
    .await;
    assert_eq!(went, format!("{user_path}?done=reset"));
    assert!(w.reload(&vic).await.must_change_password);
    let (_, html) = w.page(&client, &user_path).await;
    assert_eq!(element_text(&html, "user-mfa"), "not enrolled");
    assert!(html.contains("id=\"no-passkeys\"") && html.contains("id=\"no-fhir-users\""));
    assert!(!html.contains("id=\"emergency-withdraw\""));
    for event in [
        EventType::SessionEnded,
        EventType::PasskeyRemoved,
        EventType::FhirUserCleared,
        EventType::MfaRemoved,
        EventType::EmergencyDesignation,
        EventType::PasswordResetForced,
    ] {
        assert!(w.audited(event, &root.id, Some(&vic.id)).await, "{event}");
    }

    // The identity provider: a link, then the provider itself.
    let (asked, went) = confirm(
        &w,
        &client,
        &connector_path,
        "class=\"unlink\"",
        &["idp-sub-1", "Alpha IdP", "vic"],
    )
    .await;
    assert_eq!(asked.action, format!("{connector_path}/links/remove"));
    assert_eq!(went, format!("{connector_path}?done=unlinked"));
    let (asked, went) = confirm(
        &w,
        &client,
        &connector_path,
        "id=\"delete-connector\"",
        &["Delete the identity provider Alpha IdP?"],
    )
    .await;
    assert!(asked.fields.contains(&("confirm".into(), "on".into())));
    assert_eq!(went, "/admin/connectors?done=deleted");
    assert_eq!(w.page(&client, &connector_path).await.0, 404);

    // What spans organisations: a FHIR server, an IP block.
    let (asked, went) = confirm(
        &w,
        &client,
        "/admin/fhir-servers",
        "class=\"delete-fhir-server\"",
        &["Ward FHIR", "https://fhir.example.org/r4"],
    )
    .await;
    assert_eq!(asked.action, "/admin/fhir-servers/delete");
    assert_eq!(went, "/admin/fhir-servers?done=fhir-server-deleted");
    let (asked, went) = confirm(
        &w,
        &client,
        "/admin/ip-blocks",
        "class=\"lift\"",
        &["203.0.113.9", "blocked until"],
    )
    .await;
    assert_eq!(asked.fields[1], ("ip".into(), "203.0.113.9".into()));
    assert_eq!(went, "/admin/ip-blocks?done=ip-lifted");
    let (_, html) = w.page(&client, "/admin/ip-blocks").await;
    assert!(html.contains("id=\"no-blocks\""), "{html}");
}

#[tokio::test]
async fn a_confirmation_speaks_the_administrators_language_and_asks_only_what_may_be_done() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("alpha", "sam", Role::Support).await;
    let peer = w.user("alpha", "ann", Role::OrgAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    let bob = w.user("beta", "bob", Role::User).await;
    let first = w.app.new_client();
    assert_eq!(w.app.sign_in(&first, "vic", PASSWORD).await.status(), 303);
    let alice = w.admin_browser("alice").await;
    let end_all = format!("/admin/confirm?action=end-all-sessions&user={}", vic.id);

    let res = alice
        .get(w.app.url(&end_all))
        .header("Accept-Language", "es-MX,es;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"es-419\">"), "{html}");
    let asked = confirmation(&html);
    assert_eq!(asked.title, "¿Cerrar todas las sesiones de vic?");
    assert!(
        asked.what.contains("todos los navegadores"),
        "{}",
        asked.what
    );
    assert!(html.contains(">Confirmar</button>") && html.contains(">Cancelar</a>"));
    assert!(!html.contains("<script"), "works without JavaScript");
    // Only the form does anything: vic is still signed in.
    assert_eq!(w.page(&first, "/account").await.0, 200);

    // The same refusals as the actions: another organisation's user is not found, a
    // peer may not be acted on, support may not touch what spans organisations.
    let bob_end = format!("/admin/confirm?action=end-all-sessions&user={}", bob.id);
    assert_eq!(w.page(&alice, &bob_end).await.0, 404);
    let peer_reset = format!("/admin/confirm?action=force-reset&user={}", peer.id);
    assert_eq!(w.page(&alice, &peer_reset).await.0, 403);
    for path in [
        "/admin/confirm?action=launch-missiles".to_owned(),
        "/admin/confirm".to_owned(),
        "/admin/confirm?action=end-all-sessions&user=no-such-user".to_owned(),
        format!(
            "/admin/confirm?action=end-session&user={}&session=../x",
            vic.id
        ),
        format!(
            "/admin/confirm?action=end-session&user={}&session={}",
            vic.id,
            "ab".repeat(32)
        ),
        format!(
            "/admin/confirm?action=remove-passkey&user={}&passkey=nope",
            vic.id
        ),
        format!("/admin/confirm?action=emergency-withdraw&user={}", vic.id),
        "/admin/confirm?action=delete-connector&connector=nope".to_owned(),
    ] {
        assert_eq!(w.page(&alice, &path).await.0, 404, "{path}");
    }
    let sam = w.admin_browser("sam").await;
    for path in [
        "/admin/confirm?action=delete-fhir-server&id=x",
        "/admin/confirm?action=lift-ip-block&ip=203.0.113.9",
    ] {
        assert_eq!(w.page(&sam, path).await.0, 403, "{path}");
        assert_eq!(w.page(&alice, path).await.0, 403, "{path}");
    }
    let clear = format!(
        "/admin/confirm?action=clear-fhir-user&user={}&server=x",
        vic.id
    );
    assert_eq!(w.page(&sam, &clear).await.0, 403, "support does not manage");
    // Without a session, the confirmation is a sign-in first, and back to it after.
    let anonymous = w.app.new_client();
    let res = anonymous.get(w.app.url(&end_all)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = location(&res);
    let res = w.password_step(&anonymous, &login, "alice").await;
    assert_eq!(location(&res), end_all);
    assert_eq!(w.page(&first, "/account").await.0, 200, "nothing happened");
}

/// axe-core, as `accessibility.rs` pins and installs it.
const AXE: crate::spa::NpmLibrary = crate::spa::NpmLibrary {
    dir: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/axe"),
    name: "axe-core",
    bundle: "node_modules/axe-core/axe.min.js",
    npm_args: &[],
};

/// axe-core's WCAG 2.0 and 2.1 A and AA violations on the page the browser shows, one
/// line each (as `accessibility::violations` reports them).
async fn axe_violations(browser: &Browser, page: &str) -> Vec<String> {
    let source = String::from_utf8(AXE.bundle_bytes()).expect("axe-core is UTF-8");
    let script = format!(
        "{source}\n;const done = arguments[arguments.length - 1];\
         axe.run(document, {{ runOnly: {{ type: 'tag', values: \
         ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }}, resultTypes: ['violations'] }})\
         .then(r => done(r.violations), e => done([{{ id: 'axe-error', impact: String(e), \
         nodes: [] }}]));"
    );
    let found = browser
        .client()
        .execute_async(&script, Vec::new())
        .await
        .expect("axe-core runs in the page");
    found
        .as_array()
        .expect("a list of violations")
        .iter()
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("{} [{}]", n["html"], n["failureSummary"]))
                .collect();
            format!(
                "{page}: {} ({}): {}",
                v["id"],
                v["impact"],
                nodes.join(" | ")
            )
        })
        .collect()
}

#[tokio::test]
async fn browser_the_overview_paged_tables_and_confirmations_pass_axe_core() {
    let test = "browser_the_overview_paged_tables_and_confirmations_pass_axe_core";
    if !Browser::enabled() {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    }
    if let Err(why) = AXE.installed() {
        skip(test, &why);
        return;
    }
    let w = World::new().await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    let vic = w.user("alpha", "vic", Role::User).await;
    many_users(&w, &w.alpha, "pat", 60).await;
    failures_of(&w, &vic, 55).await;
    let now = w.app.clock.now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| ip_blocks::block(c, "203.0.113.9", chrono::Duration::hours(1), "test", now))
        .await
        .unwrap();
    emergency_window(&w, &vic).await;
    let pages = [
        "/admin".to_owned(),
        "/admin?q=pat&sort=role&dir=desc&page=2".to_owned(),
        "/admin/audit?sort=type&dir=desc".to_owned(),
        "/admin/audit?user=vic&before=999999".to_owned(),
        format!("/admin/confirm?action=force-reset&user={}", vic.id),
        "/admin/confirm?action=lift-ip-block&ip=203.0.113.9".to_owned(),
    ];
    let mut problems = Vec::new();
    for (switches, lang) in [
        (&["--accept-lang=en-US"][..], "en"),
        (
            &[
                "--blink-settings=preferredColorScheme=0",
                "--accept-lang=es-MX,es",
            ][..],
            "es-419",
        ),
    ] {
        let browser = Browser::start_with(switches).await.expect("a browser");
        browser.client().delete_all_cookies().await.ok();
        browser.goto(&w.app.url("/admin")).await;
        browser.wait_for("form#login").await;
        browser_sign_in(&browser, "root", PASSWORD).await;
        browser.wait_for("form#search").await;
        for path in &pages {
            browser.goto(&w.app.url(path)).await;
            browser.wait_for("h1").await;
            let shown = browser
                .client()
                .execute("return document.documentElement.lang;", Vec::new())
                .await
                .unwrap();
            assert_eq!(shown.as_str(), Some(lang), "{path}");
            problems.extend(axe_violations(&browser, &format!("{lang} {path}")).await);
        }
        // The pager and the sorted headings are there to be checked.
        browser
            .goto(&w.app.url("/admin?q=pat&sort=role&dir=desc&page=2"))
            .await;
        browser.wait_for("nav.pager a#prev").await;
        browser
            .wait_for("th[aria-sort=descending] a#sort-role")
            .await;
        browser.close().await;
    }
    assert!(
        problems.is_empty(),
        "{} axe-core violations:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
