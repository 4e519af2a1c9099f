//! The admin API: who may do what, and what bad input gets.

use gatehouse::{
    audit::EventType,
    auth::account::{NewAccount, create_account},
    domain::{Email, MfaPolicy, OrgName, OrgPolicy, Password, Role, Username},
    oidc::clients::{ClientSpec, Registered},
    store::{orgs, users::UserRow},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app},
    oidc::{REDIRECT, browse_authorize, query, register_client, rp_http},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// Two organisations, `alpha` and `beta`, without the MFA requirement (tests sign in by
/// password only), and a console client allowed the admin scope.
struct World {
    app: TestApp,
    console: Registered,
    alpha: String,
    beta: String,
}

impl World {
    async fn new() -> Self {
        let app = spawn_app().await;
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

    /// An access token for `username` through the console client, asking for `scope`.
    async fn token_for(&self, username: &str, scope: &str) -> String {
        let mut url = url::Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &self.console.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope);
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
        tokens["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// A client_credentials service client with the admin scope, and its access token.
    async fn service_token(&self, name: &str) -> (Registered, String) {
        let service = register_client(
            &self.app,
            ClientSpec {
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["gatehouse:admin".into()],
                ..ClientSpec::new(name, &[])
            },
        )
        .await;
        let tokens: Value = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(
                &service.client_id,
                Some(service.client_secret.as_ref().unwrap().expose_secret()),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "gatehouse:admin"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tokens["access_token"].as_str().expect("an access token");
        (service, token.to_owned())
    }

    async fn admin_token(&self, username: &str) -> String {
        self.token_for(username, "openid gatehouse:admin").await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = rp_http().request(method, self.app.url(&format!("/admin/api/v1{path}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }
}

use reqwest::Method;

#[tokio::test]
async fn without_a_proper_admin_token_the_api_answers_401_or_403() {
    let w = World::new().await;
    w.user("alpha", "plain", Role::User).await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let res = w.call(Method::GET, "/orgs", None, None).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(
        w.call(Method::GET, "/orgs", Some("garbage"), None)
            .await
            .status(),
        401
    );
    // A user's token, even with the admin scope, is forbidden.
    let user = w.admin_token("plain").await;
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&user), None)
            .await
            .status(),
        403
    );
    // An administrator's token without the admin scope is not an admin credential.
    let no_scope = w.token_for("alice", "openid").await;
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&no_scope), None)
            .await
            .status(),
        401
    );
    let admin = w.admin_token("alice").await;
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&admin), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_org_admin_sees_only_its_organisation_and_others_are_404() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let mine = w.user("alpha", "amos", Role::User).await;
    let theirs = w.user("beta", "bert", Role::User).await;
    let token = w.admin_token("alice").await;

    let orgs: Value = w
        .call(Method::GET, "/orgs", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["name"], "alpha");

    let res = w
        .call(
            Method::GET,
            &format!("/users/{}", mine.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["username"], "amos");
    assert!(shown.get("password_hash").is_none());
    for path in [
        format!("/users/{}", theirs.id),
        format!("/users/{}/unlock", theirs.id),
        format!("/orgs/{}", w.beta),
        format!("/users?org={}", w.beta),
        format!("/audit?org={}", w.beta),
        "/users/no-such-user".into(),
    ] {
        let method = if path.ends_with("/unlock") {
            Method::POST
        } else {
            Method::GET
        };
        let res = w.call(method, &path, Some(&token), None).await;
        assert_eq!(res.status(), 404, "{path}");
    }
    let listed: Value = w
        .call(Method::GET, "/users?q=amo", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["amos"]);
    // IP blocks are global: a super administrator's business.
    assert_eq!(
        w.call(Method::GET, "/ip-blocks", Some(&token), None)
            .await
            .status(),
        403
    );
    // Nobody grants more than they have.
    let res = w
        .call(
            Method::PUT,
            &format!("/users/{}/role", mine.id),
            Some(&token),
            Some(json!({"role": "super_admin"})),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = w
        .call(
            Method::PUT,
            &format!("/users/{}/role", mine.id),
            Some(&token),
            Some(json!({"role": "support"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated = audit_events(&w.app, EventType::UserUpdated).await;
    assert_eq!(updated[0].details["role"], "support");
    assert_eq!(updated[0].details["previous_role"], "user");
    let _ = w.alpha;
}

#[tokio::test]
async fn support_can_unlock_and_force_a_reset_but_not_change_policy_or_roles() {
    let w = World::new().await;
    w.user("alpha", "sue", Role::Support).await;
    let locked = w.user("alpha", "lou", Role::User).await;
    let token = w.admin_token("sue").await;

    // Lock lou with wrong passwords.
    for _ in 0..5 {
        let browser = w.app.new_client();
        w.app.sign_in(&browser, "lou", "Wrong-Password-1").await;
    }
    let shown: Value = w
        .call(
            Method::GET,
            &format!("/users/{}", locked.id),
            Some(&token),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["locked"], true);
    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/unlock", locked.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["changed"], true);
    let browser = w.app.new_client();
    let res = w.app.sign_in(&browser, "lou", PASSWORD).await;
    assert_eq!(res.status(), 303, "unlocked: the password works again");

    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/force-reset", locked.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let browser = w.app.new_client();
    let res = w.app.sign_in(&browser, "lou", PASSWORD).await;
    let next = res.headers()["location"].to_str().unwrap();
    assert!(
        next.starts_with("/login/password"),
        "a new password comes first: {next}"
    );

    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = w
        .call(
            Method::PUT,
            &format!("/users/{}/role", locked.id),
            Some(&token),
            Some(json!({"role": "support"})),
        )
        .await;
    assert_eq!(res.status(), 403);
    // The audit trail records the acting administrator.
    let events: Value = w
        .call(
            Method::GET,
            &format!("/audit?user={}&type=account.unlocked", locked.id),
            Some(&token),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let sue_id = shown_id(&w, &token, "sue").await;
    assert_eq!(events[0]["actor"], sue_id.as_str());
}

async fn shown_id(w: &World, token: &str, username: &str) -> String {
    let listed: Value = w
        .call(
            Method::GET,
            &format!("/users?q={username}"),
            Some(token),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    listed[0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bad_json_bodies_are_400_naming_the_field() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let token = w.admin_token("alice").await;
    let long = "x".repeat(10_000);
    let cases = [
        (
            json!({"org": "alpha", "username": "new", "email": "n@example.org", "colour": "red"}),
            "colour",
        ),
        (
            json!({"org": "alpha", "username": 5, "email": "n@example.org"}),
            "username",
        ),
        (
            json!({"org": "alpha", "username": long, "email": "n@example.org"}),
            "username",
        ),
        (
            json!({"org": "alpha", "username": "new", "email": "n@example.org", "display_name": long}),
            "display_name",
        ),
        (
            json!({"org": "alpha", "username": "new", "email": "not-an-address"}),
            "email",
        ),
        (
            json!({"org": "alpha", "username": "new", "email": "n@example.org", "role": "emperor"}),
            "role",
        ),
        (json!({"username": "new", "email": "n@example.org"}), "org"),
    ];
    for (body, field) in cases {
        let res = w
            .call(Method::POST, "/users", Some(&token), Some(body.clone()))
            .await;
        assert_eq!(res.status(), 400, "{body}");
        let msg: Value = res.json().await.unwrap();
        assert!(
            msg["message"].as_str().unwrap().contains(field),
            "{body} → {msg}"
        );
    }
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&token),
            Some(json!({"password": {"min_length": "eight"}})),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        res.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("password.min_length")
    );
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&token),
            Some(json!({"password": {"min_length": 4}})),
        )
        .await;
    assert_eq!(res.status(), 400);
    // Not JSON at all.
    let res = rp_http()
        .post(w.app.url("/admin/api/v1/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A valid invitation is created, and the policy change is stored.
    let res = w
        .call(
            Method::POST,
            "/users",
            Some(&token),
            Some(json!({"org": "alpha", "username": "newbie", "email": "newbie@example.org"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&token),
            Some(json!({"password": {"min_length": 12}, "mfa": "off"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["policy"]["password"]["min_length"],
        12
    );
    let changes = audit_events(&w.app, EventType::AdminChange).await;
    assert!(
        changes
            .iter()
            .any(|e| e.details["object"] == "organisation_policy")
    );
}

#[tokio::test]
async fn a_service_client_acts_as_super_admin_and_disabling_a_user_ends_their_sessions() {
    let w = World::new().await;
    let victim = w.user("beta", "vic", Role::User).await;
    let (service, token) = w.service_token("Provisioning").await;
    let token = token.as_str();
    let orgs: Value = w
        .call(Method::GET, "/orgs", Some(token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 3, "default, alpha and beta");
    assert_eq!(
        w.call(Method::GET, "/ip-blocks", Some(token), None)
            .await
            .status(),
        200
    );

    let browser = w.app.new_client();
    w.app.sign_in(&browser, "vic", PASSWORD).await;
    assert_eq!(
        browser
            .get(w.app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/disable", victim.id),
            Some(token),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        browser
            .get(w.app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "session ended"
    );
    let again = w.app.new_client();
    let res = w.app.sign_in(&again, "vic", PASSWORD).await;
    assert_eq!(res.status(), 401, "a disabled user cannot sign in");
    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/enable", victim.id),
            Some(token),
            None,
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["changed"], true);
    // Both changes are in the trail, by the service client.
    for event_type in [EventType::UserDisabled, EventType::UserEnabled] {
        let found = audit_events(&w.app, event_type).await;
        assert_eq!(found.len(), 1, "{event_type:?}");
        assert_eq!(found[0].subject.as_deref(), Some(victim.id.as_str()));
        let actor = format!("client:{}", service.client_id);
        assert_eq!(found[0].actor.as_deref(), Some(actor.as_str()));
    }
}

pub async fn audit_events(
    app: &TestApp,
    event_type: EventType,
) -> Vec<gatehouse::audit::AuditRecord> {
    app.state
        .audit
        .query(
            gatehouse::audit::AuditFilter {
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
async fn the_openapi_document_describes_the_api() {
    let w = World::new().await;
    let doc: Value = rp_http()
        .get(w.app.url("/admin/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/admin/api/v1/users",
        "/admin/api/v1/users/{id}/unlock",
        "/admin/api/v1/audit",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Schemathesis (from PyPI) against the running API: `GATEHOUSE_TEST_SCHEMATHESIS` names
/// its binary (`.ci/run` installs it in a virtualenv).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let Some(bin) = std::env::var("GATEHOUSE_TEST_SCHEMATHESIS")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        crate::helpers::skip(
            "admin::schemathesis",
            "GATEHOUSE_TEST_SCHEMATHESIS (path to the schemathesis binary) is not set",
        );
        return;
    };
    let w = World::new().await;
    w.user("alpha", "amos", Role::User).await;
    let (_, token) = w.service_token("Schemathesis").await;
    let args: Vec<String> = [
            "run",
            w.app.url("/admin/api/v1/openapi.json").as_str(),
            "--url",
            w.app.base.as_str(),
            "-H",
            format!("Authorization: Bearer {token}").as_str(),
            "--tls-verify",
            "false",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "40",
            "--generation-deterministic",
            "--workers",
            "1",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
    // Blocking, off the runtime that serves the application.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .args(&args)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
}

#[tokio::test]
async fn nobody_acts_on_a_user_of_equal_or_higher_role() {
    let w = World::new().await;
    w.user("alpha", "sue", Role::Support).await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let boss = w.user("alpha", "olga", Role::OrgAdmin).await;
    let peer = w.user("alpha", "sam", Role::Support).await;
    let support = w.admin_token("sue").await;
    let admin = w.admin_token("alice").await;
    for action in ["unlock", "force-reset", "remove-totp"] {
        for target in [&boss.id, &peer.id] {
            let res = w
                .call(
                    Method::POST,
                    &format!("/users/{target}/{action}"),
                    Some(&support),
                    None,
                )
                .await;
            assert_eq!(res.status(), 403, "support {action} on {target}");
        }
        let res = w
            .call(
                Method::POST,
                &format!("/users/{}/{action}", boss.id),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(res.status(), 403, "org_admin {action} on another org_admin");
    }
    let res = w
        .call(
            Method::DELETE,
            &format!("/users/{}/sessions", boss.id),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/disable", boss.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status(), 403);
    // Downwards it works.
    let res = w
        .call(
            Method::POST,
            &format!("/users/{}/force-reset", peer.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
}
