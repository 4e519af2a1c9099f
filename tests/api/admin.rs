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
    helpers::{TestApp, element_text, hidden, spawn_app_with, totp_code},
    oidc::{REDIRECT, browse_authorize, continue_link, query, register_client, rp_http},
    saml::TestSp,
    saml_metadata_refresh::MetadataServer,
};
use gatehouse::saml::providers::ImportSettings;

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// Two organisations, `alpha` and `beta`, without the MFA requirement (tests sign in by
/// password only), and a console client allowed the admin scope.
pub(crate) struct World {
    pub(crate) app: TestApp,
    console: Registered,
    pub(crate) alpha: String,
    pub(crate) beta: String,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub(crate) async fn with(customise: impl FnOnce(&mut gatehouse::config::Config)) -> Self {
        let app = spawn_app_with(customise).await;
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

    pub(crate) async fn user(&self, org: &str, name: &str, role: Role) -> UserRow {
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
        let browser = self.app.new_client();
        self.token_in(&browser, username, scope).await
    }

    /// The console client's authorization request for `scope`.
    fn authorize_url(&self, scope: &str) -> String {
        let mut url = url::Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &self.console.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope);
        url.into()
    }

    /// As `token_for`, signing in with `browser` (which keeps the SSO session).
    async fn token_in(&self, browser: &reqwest::Client, username: &str, scope: &str) -> String {
        let url = self.authorize_url(scope);
        let back = browse_authorize(&self.app, browser, &url, username, PASSWORD).await;
        self.exchange(&back).await
    }

    /// The access token for the code the browser came back with.
    async fn exchange(&self, back: &url::Url) -> String {
        let tokens: Value = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(
                &self.console.client_id,
                Some(self.console.client_secret.as_ref().unwrap().expose_secret()),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", query(back)["code"].as_str()),
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
    pub(crate) async fn service_token(&self, name: &str) -> (Registered, String) {
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

    pub(crate) async fn admin_token(&self, username: &str) -> String {
        self.token_for(username, "openid gatehouse:admin").await
    }

    pub(crate) async fn call(
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
    assert_eq!(
        res.status(),
        401,
        "the old password no longer signs in (issue 20 item 14)"
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

    // Revoked (RFC 7009), the service's token no longer opens the API.
    let revoked = rp_http()
        .post(w.app.url("/revoke"))
        .basic_auth(
            &service.client_id,
            Some(service.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(token), None)
            .await
            .status(),
        401
    );
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
    // Nor in bulk: an org-wide reset by an org_admin spares the org_admins (itself too).
    let done = json_of(
        w.call(
            Method::POST,
            &format!("/orgs/{}/force-reset", w.alpha),
            Some(&admin),
            None,
        )
        .await,
        200,
    )
    .await;
    let reset: Vec<&str> = done["reset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["username"].as_str().unwrap())
        .collect();
    let skipped = done["skipped"].to_string();
    assert!(reset.contains(&"sue") && reset.contains(&"sam"), "{done}");
    for spared in ["alice", "olga"] {
        assert!(
            !reset.contains(&spared) && skipped.contains(spared),
            "{done}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Every endpoint × every role.

/// The callers of the authorisation table, in the order each endpoint is tried: the
/// refusals first, then the two that succeed.
const ROLES: [&str; 6] = [
    "no token",
    "user",
    "org_admin of B",
    "support of A",
    "org_admin of A",
    "super_admin",
];

/// What each caller of `ROLES` gets: `None` means any 2xx.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// Things of organisation A that support may read or help with.
    OrgSupport,
    /// Changes inside organisation A: administrators of A and super administrators.
    OrgManage,
    /// Listing what the caller can see: every administrator.
    AnyAdmin,
    /// Global things (organisations, clients, SPs, keys, IP lists): super administrators.
    Global,
}

impl Access {
    fn expected(self) -> [Option<u16>; 6] {
        match self {
            Self::OrgSupport => [Some(401), Some(403), Some(404), None, None, None],
            Self::OrgManage => [Some(401), Some(403), Some(404), Some(403), None, None],
            Self::AnyAdmin => [Some(401), Some(403), None, None, None, None],
            Self::Global => [Some(401), Some(403), Some(403), Some(403), Some(403), None],
        }
    }
}

/// Every operation of the API and who may call it. The test walks the OpenAPI document:
/// an operation missing here fails it, so a new endpoint cannot ship without its row.
const ACCESS: &[(&str, &str, Access)] = &[
    ("GET", "/users", Access::OrgSupport),
    ("POST", "/users", Access::OrgManage),
    ("GET", "/users/{id}", Access::OrgSupport),
    ("POST", "/users/{id}/unlock", Access::OrgSupport),
    ("POST", "/users/{id}/force-reset", Access::OrgSupport),
    ("POST", "/users/{id}/remove-totp", Access::OrgSupport),
    ("GET", "/users/{id}/passkeys", Access::OrgSupport),
    (
        "DELETE",
        "/users/{id}/passkeys/{passkey}",
        Access::OrgSupport,
    ),
    ("GET", "/users/{id}/fhir-users", Access::OrgSupport),
    ("PUT", "/users/{id}/fhir-users/{server}", Access::OrgManage),
    (
        "DELETE",
        "/users/{id}/fhir-users/{server}",
        Access::OrgManage,
    ),
    ("POST", "/users/{id}/disable", Access::OrgManage),
    ("POST", "/users/{id}/enable", Access::OrgManage),
    ("PUT", "/users/{id}/role", Access::OrgManage),
    ("PUT", "/users/{id}/username", Access::OrgManage),
    ("GET", "/users/{id}/sessions", Access::OrgSupport),
    ("DELETE", "/users/{id}/sessions", Access::OrgSupport),
    (
        "DELETE",
        "/users/{id}/sessions/{session}",
        Access::OrgSupport,
    ),
    ("GET", "/orgs", Access::AnyAdmin),
    ("POST", "/orgs", Access::Global),
    ("GET", "/orgs/{id}", Access::OrgSupport),
    ("PUT", "/orgs/{id}/policy", Access::OrgManage),
    ("POST", "/orgs/{id}/force-reset", Access::OrgManage),
    ("GET", "/orgs/{id}/branding", Access::OrgSupport),
    ("PUT", "/orgs/{id}/branding", Access::OrgManage),
    ("PUT", "/orgs/{id}/logo", Access::OrgManage),
    ("DELETE", "/orgs/{id}/logo", Access::OrgManage),
    ("GET", "/ip-blocks", Access::Global),
    ("DELETE", "/ip-blocks/{ip}", Access::Global),
    ("GET", "/ip-allow-list", Access::Global),
    ("POST", "/ip-allow-list", Access::Global),
    (
        "DELETE",
        "/ip-allow-list/{address}/{prefix}",
        Access::Global,
    ),
    ("GET", "/audit", Access::OrgSupport),
    ("GET", "/audit/export", Access::OrgSupport),
    ("GET", "/clients", Access::Global),
    ("POST", "/clients", Access::Global),
    ("GET", "/clients/{client_id}", Access::Global),
    ("PUT", "/clients/{client_id}", Access::Global),
    ("DELETE", "/clients/{client_id}", Access::Global),
    ("POST", "/clients/{client_id}/secret", Access::Global),
    ("GET", "/saml-sps", Access::Global),
    ("POST", "/saml-sps", Access::Global),
    ("GET", "/saml-sps/{id}", Access::Global),
    ("PUT", "/saml-sps/{id}", Access::Global),
    ("DELETE", "/saml-sps/{id}", Access::Global),
    ("POST", "/saml-sps/from-url", Access::Global),
    ("POST", "/saml-sps/{id}/refresh", Access::Global),
    ("GET", "/signing-keys", Access::Global),
    ("POST", "/signing-keys/rotate", Access::Global),
    ("GET", "/fhir-servers", Access::Global),
    ("POST", "/fhir-servers", Access::Global),
    ("GET", "/fhir-servers/{id}", Access::Global),
    ("PUT", "/fhir-servers/{id}", Access::Global),
    ("DELETE", "/fhir-servers/{id}", Access::Global),
    ("PUT", "/users/{id}/emergency-access", Access::OrgManage),
    ("DELETE", "/users/{id}/emergency-access", Access::OrgManage),
    ("GET", "/orgs/{id}/emergency-access", Access::OrgSupport),
    ("GET", "/emergency-sessions", Access::AnyAdmin),
    ("GET", "/emergency-sessions/{id}", Access::OrgSupport),
    (
        "POST",
        "/emergency-sessions/{id}/review",
        Access::OrgSupport,
    ),
    ("GET", "/connectors", Access::OrgManage),
    ("POST", "/connectors", Access::OrgManage),
    ("GET", "/connectors/{id}", Access::OrgManage),
    ("PUT", "/connectors/{id}", Access::OrgManage),
    ("DELETE", "/connectors/{id}", Access::OrgManage),
    ("GET", "/connectors/{id}/links", Access::OrgManage),
    ("POST", "/connectors/{id}/links", Access::OrgManage),
    (
        "DELETE",
        "/connectors/{id}/links/{subject}",
        Access::OrgManage,
    ),
    ("GET", "/users/{id}/links", Access::OrgManage),
];

/// The entity id's path handle, as the API lists it.
fn sp_handle(entity_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(entity_id)
}

impl World {
    /// A concrete request for one try of `method template`: a fresh target in
    /// organisation A (or a fresh global object) each time, so every caller meets the
    /// same situation and a success cannot spoil the next try.
    async fn instance(&self, method: &str, template: &str, n: usize) -> (String, Option<Value>) {
        let fresh_user = || async { self.user("alpha", &format!("target{n}"), Role::User).await };
        match (method, template) {
            ("GET", "/users") => (format!("/users?org={}", self.alpha), None),
            ("POST", "/users") => (
                "/users".into(),
                Some(
                    json!({"org": "alpha", "username": format!("invited{n}"), "email": format!("invited{n}@example.org")}),
                ),
            ),
            ("PUT", "/users/{id}/role") => (
                format!("/users/{}/role", fresh_user().await.id),
                Some(json!({"role": "support"})),
            ),
            ("PUT", "/users/{id}/username") => (
                format!("/users/{}/username", fresh_user().await.id),
                Some(json!({"username": format!("renamed{n}")})),
            ),
            ("DELETE", "/users/{id}/sessions/{session}") => {
                let user = fresh_user().await;
                let browser = self.app.new_client();
                assert_eq!(
                    self.app
                        .sign_in(&browser, &user.username, PASSWORD)
                        .await
                        .status(),
                    303
                );
                let sessions = gatehouse::auth::session::list(
                    self.app.state.ephemeral.as_ref(),
                    self.app.state.clock.as_ref(),
                    &user.id,
                )
                .await
                .unwrap();
                (
                    format!("/users/{}/sessions/{}", user.id, sessions[0].handle),
                    None,
                )
            }
            (_, "/users/{id}/fhir-users/{server}") => {
                let user = fresh_user().await;
                let values = gatehouse::store::fhir_servers::FhirServerValues {
                    base_url: format!("https://fhir{n}.example.org/r4"),
                    display_name: format!("FHIR {n}"),
                    allowed_scopes: vec![],
                    allowed_clients: vec![],
                };
                let (now, user_id) = (chrono::Utc::now().naive_utc(), user.id.clone());
                let with_reference = method == "DELETE";
                let server = self
                    .app
                    .state
                    .store
                    .run(move |c| {
                        let server = gatehouse::store::fhir_servers::insert(c, &values, now)?;
                        if with_reference {
                            gatehouse::store::fhir_servers::set_user_reference(
                                c,
                                &user_id,
                                &server.id,
                                "Practitioner/1",
                                now,
                            )?;
                        }
                        Ok(server)
                    })
                    .await
                    .unwrap();
                (
                    format!("/users/{}/fhir-users/{}", user.id, server.id),
                    (method == "PUT").then(|| json!({"fhir_user": "Practitioner/p-1"})),
                )
            }
            ("DELETE", "/users/{id}/passkeys/{passkey}") => {
                let user = fresh_user().await;
                let new = gatehouse::store::passkeys::NewPasskey {
                    user_id: user.id.clone(),
                    credential_id: format!("credential-{n}"),
                    name: "Desk key".into(),
                    credential: "{}".into(),
                    aaguid: None,
                    backup_eligible: false,
                };
                let now = chrono::Utc::now().naive_utc();
                let row = self
                    .app
                    .state
                    .store
                    .run(move |c| gatehouse::store::passkeys::insert(c, &new, now))
                    .await
                    .unwrap();
                (format!("/users/{}/passkeys/{}", user.id, row.id), None)
            }
            (_, t) if t.starts_with("/users/{id}") => {
                (t.replace("{id}", &fresh_user().await.id), None)
            }
            ("POST", "/orgs") => (
                "/orgs".into(),
                Some(json!({"name": format!("org-{n}"), "display_name": format!("Org {n}")})),
            ),
            ("PUT", "/orgs/{id}/policy") => (
                format!("/orgs/{}/policy", self.alpha),
                Some(json!({"mfa": "off"})),
            ),
            ("PUT", "/orgs/{id}/branding") => (
                format!("/orgs/{}/branding", self.alpha),
                Some(json!({"display_name": "Alpha clinic"})),
            ),
            (_, t) if t.starts_with("/orgs/{id}") => (t.replace("{id}", &self.alpha), None),
            ("DELETE", "/ip-blocks/{ip}") => (format!("/ip-blocks/192.0.2.{}", n % 256), None),
            ("POST", "/ip-allow-list") => (
                "/ip-allow-list".into(),
                Some(
                    json!({"cidr": format!("10.{}.{}.0/24", n / 256, n % 256), "note": "clinic NAT"}),
                ),
            ),
            ("DELETE", "/ip-allow-list/{address}/{prefix}") => {
                let row = gatehouse::store::ip_allow::AllowRow {
                    cidr: format!("10.{}.{}.0/24", n / 256, n % 256),
                    note: String::new(),
                    created_by: "test".into(),
                    created_at: chrono::Utc::now().naive_utc(),
                };
                self.app
                    .state
                    .store
                    .run(move |c| gatehouse::store::ip_allow::insert(c, &row))
                    .await
                    .unwrap();
                (
                    format!("/ip-allow-list/10.{}.{}.0/24", n / 256, n % 256),
                    None,
                )
            }
            ("GET", "/audit") => (format!("/audit?org={}", self.alpha), None),
            (_, t) if t.starts_with("/emergency-sessions/{id}") => {
                // A fresh window of a fresh user of A, awaiting review.
                let user = fresh_user().await;
                let now = chrono::Utc::now().naive_utc();
                let row = gatehouse::store::emergency::EmergencyRow {
                    id: gatehouse::store::new_id(),
                    org_id: user.org_id.clone(),
                    user_id: user.id.clone(),
                    username: user.username.clone(),
                    session_handle: "ab".repeat(32),
                    reason: "Cardiac arrest in bed 4".into(),
                    context: None,
                    requested_by: None,
                    started_at: now,
                    expires_at: now + chrono::Duration::minutes(60),
                    ended_at: None,
                    end_reason: None,
                    reviewed_by: None,
                    reviewed_at: None,
                    review_note: None,
                    overdue_notified_at: None,
                };
                let path = t.replace("{id}", &row.id);
                self.app
                    .state
                    .store
                    .run(move |c| gatehouse::store::emergency::insert(c, &row))
                    .await
                    .unwrap();
                let body = (method == "POST").then(|| json!({"note": "Justified."}));
                (path, body)
            }
            ("GET", "/audit/export") => (format!("/audit/export?org={}", self.alpha), None),
            ("POST", "/fhir-servers") => (
                "/fhir-servers".into(),
                Some(json!({
                    "base_url": format!("https://fhir{n}.example.org/r4"),
                    "display_name": "Lab FHIR",
                    "allowed_scopes": ["patient/*.rs"],
                })),
            ),
            (_, t) if t.starts_with("/fhir-servers/{id}") => {
                let values = gatehouse::store::fhir_servers::FhirServerValues {
                    base_url: format!("https://target{n}.example.org/fhir"),
                    display_name: "Target FHIR".into(),
                    allowed_scopes: vec![],
                    allowed_clients: vec![],
                };
                let now = chrono::Utc::now().naive_utc();
                let row = self
                    .app
                    .state
                    .store
                    .run(move |c| gatehouse::store::fhir_servers::insert(c, &values, now))
                    .await
                    .unwrap();
                let body = (method == "PUT").then(|| {
                    json!({"base_url": format!("https://renamed{n}.example.org/fhir"), "display_name": "Renamed"})
                });
                (t.replace("{id}", &row.id), body)
            }
            ("POST", "/clients") => (
                "/clients".into(),
                Some(json!({"name": format!("RP {n}"), "redirect_uris": [REDIRECT]})),
            ),
            (_, t) if t.starts_with("/clients/{client_id}") => {
                let client =
                    register_client(&self.app, ClientSpec::new("Target RP", &[REDIRECT])).await;
                let body = (method == "PUT").then(|| json!({"scopes": ["openid"]}));
                (t.replace("{client_id}", &client.client_id), body)
            }
            ("POST", "/saml-sps") => {
                let sp = TestSp::new("https://sp.example.org/acs");
                (
                    "/saml-sps".into(),
                    Some(json!({"metadata": sp.metadata(false)})),
                )
            }
            (_, "/saml-sps/{id}") => {
                let sp = TestSp::new("https://sp.example.org/acs");
                sp.register(&self.app, ImportSettings::default()).await;
                let body = (method == "PUT").then(|| json!({"sign_response": true}));
                (format!("/saml-sps/{}", sp_handle(&sp.entity_id)), body)
            }
            ("POST", "/saml-sps/from-url") => {
                let sp = TestSp::new("https://sp.example.org/acs");
                let server = MetadataServer::start(sp.metadata(false)).await;
                let body = json!({"url": server.url()});
                (template.to_owned(), Some(body))
            }
            ("POST", "/saml-sps/{id}/refresh") => {
                let sp = TestSp::new("https://sp.example.org/acs");
                let server = MetadataServer::start(sp.metadata(false)).await;
                let source = gatehouse::saml::metadata_refresh::Source {
                    url: server.url(),
                    pinned_cert: None,
                };
                gatehouse::saml::metadata_refresh::import(
                    &self.app.state,
                    &source,
                    None,
                    &ImportSettings::default(),
                )
                .await
                .expect("imported from its URL");
                let path = format!("/saml-sps/{}/refresh", sp_handle(&sp.entity_id));
                (path, None)
            }
            ("GET", "/connectors") => (format!("/connectors?org={}", self.alpha), None),
            ("POST", "/connectors") => {
                let mut body = upstream_connector(n);
                body["org_id"] = self.alpha.clone().into();
                ("/connectors".into(), Some(body))
            }
            (_, t) if t.starts_with("/connectors/{id}") => {
                // A fresh connector of A, its identity `sub-1` linked to a fresh user of A.
                use gatehouse::store::upstream as rows;
                let user = fresh_user().await;
                let values = rows::ConnectorValues {
                    org_id: self.alpha.clone(),
                    slug: format!("upstream-{n}"),
                    display_name: format!("Upstream {n}"),
                    protocol: "oidc".into(),
                    enabled: true,
                    settings: upstream_connector(n)["settings"].to_string(),
                    secret_sealed: None,
                };
                let now = chrono::Utc::now().naive_utc();
                let user_id = user.id.clone();
                let id = self
                    .app
                    .state
                    .store
                    .run(move |c| {
                        let row = rows::insert(c, &values, now)?;
                        rows::insert_link(c, &row.id, "sub-1", &user_id, now)?;
                        Ok(row.id)
                    })
                    .await
                    .unwrap();
                let path = t.replace("{id}", &id).replace("{subject}", "sub-1");
                let body = match (method, t) {
                    ("PUT", _) => Some(upstream_connector(n)),
                    ("POST", _) => Some(json!({"subject": "sub-2", "user_id": user.id})),
                    _ => None,
                };
                (path, body)
            }
            (_, t) => (t.to_owned(), None),
        }
    }
}

/// A connector's body for the authorisation table.
fn upstream_connector(n: usize) -> Value {
    json!({
        "slug": format!("upstream-{n}"),
        "display_name": format!("Upstream {n}"),
        "settings": {"oidc": {"issuer": "https://login.example", "client_id": "gatehouse"}},
    })
}

#[tokio::test]
async fn every_endpoint_answers_every_role_as_the_role_model_says() {
    // SP metadata URLs on loopback (the test's metadata servers) are allowed.
    let w = World::with(|c| c.saml_metadata_allow_local = true).await;
    w.user("alpha", "uma", Role::User).await;
    w.user("beta", "bob", Role::OrgAdmin).await;
    w.user("alpha", "sue", Role::Support).await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("beta", "root", Role::SuperAdmin).await;
    let mut tokens = vec![None];
    for name in ["uma", "bob", "sue", "alice", "root"] {
        tokens.push(Some(w.admin_token(name).await));
    }

    let doc: Value = rp_http()
        .get(w.app.url("/admin/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let template = path
            .strip_prefix("/admin/api/v1")
            .unwrap_or_else(|| panic!("{path} is outside the API"));
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let method = method.to_uppercase();
            let access = ACCESS
                .iter()
                .find(|(m, t, _)| *m == method && *t == template)
                .map(|(_, _, a)| *a)
                .unwrap_or_else(|| panic!("{method} {template} has no row in ACCESS"));
            operations.push((method, template.to_owned(), access));
        }
    }
    assert_eq!(
        operations.len(),
        ACCESS.len(),
        "every row of ACCESS is an operation of the document"
    );
    // An organisation-wide forced reset ends the sessions (and tokens) of A's
    // administrators: it goes last.
    operations.sort_by_key(|(m, t, _)| m == "POST" && t == "/orgs/{id}/force-reset");

    let mut n = 0;
    let mut wrong = Vec::new();
    for (method, template, access) in &operations {
        for (i, expected) in access.expected().iter().enumerate() {
            n += 1;
            let (path, body) = w.instance(method, template, n).await;
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let res = if method == Method::PUT && template == "/orgs/{id}/logo" {
                // The one body that is not JSON: an image.
                let mut req = rp_http()
                    .put(w.app.url(&format!("/admin/api/v1{path}")))
                    .header("Content-Type", "image/png")
                    .body(crate::branding::PNG.to_vec());
                if let Some(t) = tokens[i].as_deref() {
                    req = req.bearer_auth(t);
                }
                req.send().await.unwrap()
            } else {
                w.call(method.clone(), &path, tokens[i].as_deref(), body)
                    .await
            };
            let status = res.status().as_u16();
            let fine = match expected {
                Some(want) => status == *want,
                None => res.status().is_success(),
            };
            if !fine {
                let text = res.text().await.unwrap_or_default();
                wrong.push(format!(
                    "{method} {template} as {}: {status}, expected {} ({text})",
                    ROLES[i],
                    expected.map_or("2xx".to_owned(), |s| s.to_string())
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The newer resources: input checks, audit, and that what the API creates works.

/// `method path body` must be 400 with `field` named in the message.
async fn refused_naming(
    w: &World,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
    field: &str,
) {
    let res = w
        .call(method.clone(), path, Some(token), Some(body.clone()))
        .await;
    let status = res.status();
    let msg: Value = res.json().await.unwrap();
    assert_eq!(status, 400, "{method} {path} {body} → {msg}");
    assert!(
        msg["message"].as_str().unwrap().contains(field),
        "{method} {path} {body} → {msg} does not name {field}"
    );
}

#[tokio::test]
async fn bad_bodies_for_the_newer_endpoints_are_400_naming_the_field() {
    let w = World::new().await;
    w.user("beta", "root", Role::SuperAdmin).await;
    let target = w.user("alpha", "tess", Role::User).await;
    let token = w.admin_token("root").await;
    let long = "x".repeat(5_000);
    let rename = format!("/users/{}/username", target.id);
    let client = register_client(&w.app, ClientSpec::new("Existing RP", &[REDIRECT])).await;
    let client_path = format!("/clients/{}", client.client_id);
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&w.app, ImportSettings::default()).await;
    let sp_path = format!("/saml-sps/{}", sp_handle(&sp.entity_id));
    let user = |extra: Value| {
        let mut body = json!({"org": "alpha", "username": "pat", "email": "pat@example.org"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::POST,
            "/orgs",
            json!({"name": "gamma", "display_name": "G", "colour": 1}),
            "colour",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": 5, "display_name": "G"}),
            "name",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "Not A Name!", "display_name": "G"}),
            "name",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "gamma", "display_name": ""}),
            "display_name",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "gamma", "display_name": long}),
            "display_name",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "gamma", "display_name": "G", "policy": {"password": {"min_length": "eight"}}}),
            "policy.password.min_length",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "gamma", "display_name": "G", "policy": {"support_email": "nobody"}}),
            "support_email",
        ),
        (
            Method::POST,
            "/users",
            user(json!({"password": "short"})),
            "password",
        ),
        (
            Method::POST,
            "/users",
            user(json!({"password": 12345678})),
            "password",
        ),
        (
            Method::POST,
            "/users",
            user(json!({"password": long})),
            "password",
        ),
        (
            Method::POST,
            "/users",
            user(json!({"must_change_password": true})),
            "must_change_password",
        ),
        (
            Method::PUT,
            rename.as_str(),
            json!({"username": 5}),
            "username",
        ),
        (
            Method::PUT,
            rename.as_str(),
            json!({"username": long}),
            "username",
        ),
        (
            Method::PUT,
            rename.as_str(),
            json!({"username": "tess", "why": "typo"}),
            "why",
        ),
        (
            Method::POST,
            "/ip-allow-list",
            json!({"cidr": "not-an-address"}),
            "cidr",
        ),
        (
            Method::POST,
            "/ip-allow-list",
            json!({"cidr": "0.0.0.0/0"}),
            "cidr",
        ),
        (
            Method::POST,
            "/ip-allow-list",
            json!({"cidr": "10.0.0.0/16", "note": long}),
            "note",
        ),
        (
            Method::POST,
            "/ip-allow-list",
            json!({"cidr": ["10.0.0.0/16"]}),
            "cidr",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": REDIRECT}),
            "redirect_uris",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": ["http://rp.example.org/cb"]}),
            "redirect_uris",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": [REDIRECT], "grant_types": ["password"]}),
            "grant_types",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "magic"}),
            "token_endpoint_auth_method",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": [REDIRECT], "id_token_signed_response_alg": "HS256"}),
            "id_token_signed_response_alg",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": [REDIRECT], "scopes": ["everything"]}),
            "scopes",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": long, "redirect_uris": [REDIRECT]}),
            "name",
        ),
        (
            Method::POST,
            "/clients",
            json!({"name": "RP", "redirect_uris": [format!("https://rp.example.org/{long}")]}),
            "redirect_uris",
        ),
        (
            Method::PUT,
            client_path.as_str(),
            json!({"backchannel_logout_uri": "ftp://rp.example.org/bc"}),
            "backchannel_logout_uri",
        ),
        (
            Method::PUT,
            client_path.as_str(),
            json!({"post_logout_redirect_uris": ["javascript:alert(1)"]}),
            "post_logout_redirect_uris",
        ),
        (
            Method::PUT,
            client_path.as_str(),
            json!({"client_secret": "mine"}),
            "client_secret",
        ),
        (
            Method::POST,
            "/saml-sps",
            json!({"metadata": "<not xml"}),
            "metadata",
        ),
        (
            Method::POST,
            "/saml-sps",
            json!({"metadata": 5}),
            "metadata",
        ),
        (
            Method::POST,
            "/saml-sps",
            json!({"metadata": format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}", sp.metadata(false))}),
            "metadata",
        ),
        (
            Method::POST,
            "/saml-sps",
            json!({"metadata": sp.metadata(false), "name_id_source": "telepathy"}),
            "name_id_source",
        ),
        (
            Method::PUT,
            sp_path.as_str(),
            json!({"attributes": {"shoe_size": "shoeSize"}}),
            "attributes",
        ),
        (
            Method::PUT,
            sp_path.as_str(),
            json!({"require_signed_requests": "yes"}),
            "require_signed_requests",
        ),
        (
            Method::PUT,
            sp_path.as_str(),
            json!({"name_id_format": "email", "name_id_source": "pairwise"}),
            "name_id_source",
        ),
    ];
    for (method, path, body, field) in cases {
        refused_naming(&w, &token, method, path, body, field).await;
    }
    // Metadata beyond the limit is refused (by the body limit or by the parser), never
    // parsed.
    let huge = format!("{}<!--{}-->", sp.metadata(false), "y".repeat(1_100_000));
    let res = w
        .call(
            Method::POST,
            "/saml-sps",
            Some(&token),
            Some(json!({ "metadata": huge })),
        )
        .await;
    assert!(
        matches!(res.status().as_u16(), 400 | 413),
        "{}",
        res.status()
    );
    // Nothing of the refused requests was stored.
    let listed: Value = w
        .call(Method::GET, "/clients", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "the console and the existing RP"
    );
    let orgs: Value = w
        .call(Method::GET, "/orgs", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 3);
}

async fn json_of(res: reqwest::Response, want: u16) -> Value {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, want, "{body}");
    body
}

/// A client_credentials token request; the answer's status and body.
async fn client_credentials(w: &World, client_id: &str, secret: &str) -> (u16, Value) {
    let res = rp_http()
        .post(w.app.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_client_created_over_the_api_gets_tokens_until_its_secret_rotates_or_it_is_deleted() {
    let w = World::new().await;
    let (_, token) = w.service_token("Provisioning").await;
    let created = json_of(
        w.call(
            Method::POST,
            "/clients",
            Some(&token),
            Some(json!({
                "name": "Lab results feed",
                "grant_types": ["client_credentials"],
                "scopes": ["openid"],
                "token_endpoint_auth_method": "client_secret_basic",
            })),
        )
        .await,
        201,
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["client"]["has_secret"], true);
    let (status, tokens) = client_credentials(&w, &id, &secret).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].as_str().is_some());
    // The secret is never shown again.
    let shown = json_of(
        w.call(Method::GET, &format!("/clients/{id}"), Some(&token), None)
            .await,
        200,
    )
    .await;
    assert!(!shown.to_string().contains(&secret));
    assert_eq!(shown["grant_types"], json!(["client_credentials"]));

    // A rotated secret replaces the old one at once.
    let rotated = json_of(
        w.call(
            Method::POST,
            &format!("/clients/{id}/secret"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(client_credentials(&w, &id, &secret).await.0, 401);
    assert_eq!(client_credentials(&w, &id, &new_secret).await.0, 200);

    // Taking the grant away stops it; the update keeps what it does not name.
    let updated = json_of(
        w.call(
            Method::PUT,
            &format!("/clients/{id}"),
            Some(&token),
            Some(json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "id_token_signed_response_alg": "ES256"})),
        )
        .await,
        200,
    )
    .await;
    assert!(
        updated["client_secret"].is_null(),
        "the secret stays, unshown"
    );
    assert_eq!(updated["client"]["id_token_signed_response_alg"], "ES256");
    assert_eq!(updated["client"]["name"], "Lab results feed");
    let (status, body) = client_credentials(&w, &id, &new_secret).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client");

    // Deleted, it is unknown.
    json_of(
        w.call(
            Method::DELETE,
            &format!("/clients/{id}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(client_credentials(&w, &id, &new_secret).await.0, 401);
    assert_eq!(
        w.call(Method::GET, &format!("/clients/{id}"), Some(&token), None)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn an_sp_imported_over_the_api_receives_an_idp_initiated_assertion() {
    let w = World::new().await;
    let (_, token) = w.service_token("Provisioning").await;
    w.user("alpha", "erin", Role::User).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let imported = json_of(
        w.call(
            Method::POST,
            "/saml-sps",
            Some(&token),
            Some(json!({
                "metadata": sp.metadata(false),
                "name": "Radiology viewer",
                "encrypt_assertions": false,
                "attributes": {"email": "mail", "username": "uid"},
                // IdP-initiated SSO is an opt-in (issue 20, item 12).
                "idp_initiated": true,
            })),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(imported["entity_id"], sp.entity_id.as_str());
    assert_eq!(
        imported["attributes"],
        json!({"email": "mail", "username": "uid"})
    );
    let handle = imported["id"].as_str().unwrap().to_owned();
    // Sign the response as well as the assertion.
    let updated = json_of(
        w.call(
            Method::PUT,
            &format!("/saml-sps/{handle}"),
            Some(&token),
            Some(json!({"sign_response": true})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["sign_response"], true);
    assert_eq!(updated["sign_assertion"], true);
    assert_eq!(updated["name"], "Radiology viewer");

    let browser = w.app.new_client();
    assert_eq!(
        w.app.sign_in(&browser, "erin", PASSWORD).await.status(),
        303
    );
    let init = format!(
        "/saml/sso/init?sp={}",
        url::form_urlencoded::byte_serialize(sp.entity_id.as_bytes()).collect::<String>()
    );
    let res = browser.get(w.app.url(&init)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (action, response, _) = crate::saml::posted(&res.text().await.unwrap());
    assert_eq!(action, sp.acs);
    assert!(
        response.contains(">erin@example.org<"),
        "mapped attributes are sent"
    );
    assert!(response.contains("Name=\"mail\""));
    assert!(
        !response.contains("Name=\"roles\""),
        "unmapped fields are not"
    );
    sp.samael(&w.app, true)
        .await
        .parse_xml_response(&response, None)
        .expect("accepted as IdP-initiated");

    // Deleted, the SP gets nothing.
    json_of(
        w.call(
            Method::DELETE,
            &format!("/saml-sps/{handle}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let res = browser.get(w.app.url(&init)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(!res.text().await.unwrap().contains("SAMLResponse"));
}

#[tokio::test]
async fn the_allow_list_kept_over_the_api_exempts_an_address_from_blocking() {
    let w = World::with(|c| {
        c.rate_limit_per_minute = 100_000;
        c.rate_limit_burst = 100_000;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    w.user("alpha", "abe", Role::User).await;
    let (_, token) = w.service_token("Network team").await;
    let added = json_of(
        w.call(
            Method::POST,
            "/ip-allow-list",
            Some(&token),
            Some(json!({"cidr": "198.51.100.77/24", "note": "St Mary's NAT"})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(added["cidr"], "198.51.100.0/24", "stored as the network");
    assert_eq!(
        w.call(
            Method::POST,
            "/ip-allow-list",
            Some(&token),
            Some(json!({"cidr": "198.51.100.0/24"}))
        )
        .await
        .status(),
        409
    );
    let attempt = |xff: &'static str, username: String, password: &'static str| {
        let app = &w.app;
        async move {
            let client = app.new_client();
            let (tx, csrf) = app.open_login(&client).await;
            client
                .post(app.url("/login"))
                .header("Origin", &app.base)
                .header("X-Forwarded-For", xff)
                .form(&[
                    ("tx", tx.as_str()),
                    ("csrf", &csrf),
                    ("username", &username),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // More failures than the block threshold (20), each on another name so no account
    // locks: the allow-listed address is never blocked, another one is.
    for i in 0..22 {
        attempt("198.51.100.9", format!("nobody{i}"), "Wrong-Harbour-42").await;
        attempt("203.0.113.9", format!("nobody{i}"), "Wrong-Harbour-42").await;
    }
    assert_eq!(attempt("198.51.100.9", "abe".into(), PASSWORD).await, 303);
    assert_eq!(attempt("203.0.113.9", "abe".into(), PASSWORD).await, 429);

    // Removed, the address counts again.
    json_of(
        w.call(
            Method::DELETE,
            "/ip-allow-list/198.51.100.0/24",
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let listed = json_of(
        w.call(Method::GET, "/ip-allow-list", Some(&token), None)
            .await,
        200,
    )
    .await;
    assert_eq!(listed, json!([]));
    for i in 0..22 {
        attempt("198.51.100.9", format!("again{i}"), "Wrong-Harbour-42").await;
    }
    assert_eq!(attempt("198.51.100.9", "abe".into(), PASSWORD).await, 429);
}

#[tokio::test]
async fn users_created_with_a_password_and_renamed_sign_in_under_their_new_name() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("beta", "taken", Role::User).await;
    let token = w.admin_token("alice").await;
    let created = json_of(
        w.call(
            Method::POST,
            "/users",
            Some(&token),
            Some(
                json!({"org": "alpha", "username": "nurse-kim", "email": "kim@example.org",
                "password": PASSWORD, "must_change_password": false}),
            ),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["status"], "active");
    assert!(!created.to_string().contains(PASSWORD));
    let id = created["id"].as_str().unwrap().to_owned();
    let browser = w.app.new_client();
    assert_eq!(
        w.app
            .sign_in(&browser, "nurse-kim", PASSWORD)
            .await
            .status(),
        303
    );
    // The organisation's password policy names every rule that fails.
    let res = w
        .call(
            Method::POST,
            "/users",
            Some(&token),
            Some(json!({"org": "alpha", "username": "weak", "email": "weak@example.org", "password": "weak"})),
        )
        .await;
    let msg = json_of(res, 400).await["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.starts_with("password:") && msg.contains("8"), "{msg}");

    // Renamed (case and width folded like every username), the old name is gone.
    json_of(
        w.call(
            Method::PUT,
            &format!("/users/{id}/username"),
            Some(&token),
            Some(json!({"username": "Nurse-Kim-Lee"})),
        )
        .await,
        200,
    )
    .await;
    let browser = w.app.new_client();
    assert_eq!(
        w.app
            .sign_in(&browser, "nurse-kim-lee", PASSWORD)
            .await
            .status(),
        303
    );
    let browser = w.app.new_client();
    assert_eq!(
        w.app
            .sign_in(&browser, "nurse-kim", PASSWORD)
            .await
            .status(),
        401
    );
    // Unique across organisations, and not for one's peers.
    assert_eq!(
        w.call(
            Method::PUT,
            &format!("/users/{id}/username"),
            Some(&token),
            Some(json!({"username": "taken"}))
        )
        .await
        .status(),
        409
    );
    let peer = w.user("alpha", "olga", Role::OrgAdmin).await;
    assert_eq!(
        w.call(
            Method::PUT,
            &format!("/users/{}/username", peer.id),
            Some(&token),
            Some(json!({"username": "olga2"}))
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn a_rename_does_not_lift_a_lockout() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let locked = w.user("alpha", "lou", Role::User).await;
    let token = w.admin_token("alice").await;
    for _ in 0..5 {
        let browser = w.app.new_client();
        w.app.sign_in(&browser, "lou", "Wrong-Password-1").await;
    }
    let path = format!("/users/{}", locked.id);
    let shown =
        || async { json_of(w.call(Method::GET, &path, Some(&token), None).await, 200).await };
    assert_eq!(shown().await["locked"], true);
    json_of(
        w.call(
            Method::PUT,
            &format!("/users/{}/username", locked.id),
            Some(&token),
            Some(json!({"username": "lou-renamed"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        shown().await["locked"],
        true,
        "the lock moved with the account"
    );
    let browser = w.app.new_client();
    assert_eq!(
        w.app
            .sign_in(&browser, "lou-renamed", PASSWORD)
            .await
            .status(),
        401,
        "still locked under the new name"
    );
}

#[tokio::test]
async fn every_change_over_the_newer_endpoints_is_audited_with_the_acting_administrator() {
    let w = World::new().await;
    let root = w.user("beta", "root", Role::SuperAdmin).await;
    let victim = w.user("alpha", "vera", Role::User).await;
    let token = w.admin_token("root").await;
    let org = json_of(
        w.call(
            Method::POST,
            "/orgs",
            Some(&token),
            Some(json!({"name": "gamma", "display_name": "Gamma Clinic",
            "policy": {"support_email": "helpdesk@gamma.example"}})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(org["policy"]["support_email"], "helpdesk@gamma.example");
    let created = json_of(
        w.call(
            Method::POST,
            "/users",
            Some(&token),
            Some(json!({"org": "gamma", "username": "gus",
            "email": "gus@example.org", "password": PASSWORD})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        created["must_change_password"], true,
        "by default the user picks their own"
    );
    json_of(
        w.call(
            Method::PUT,
            &format!("/users/{}/username", victim.id),
            Some(&token),
            Some(json!({"username": "vera-b"})),
        )
        .await,
        200,
    )
    .await;
    let browser = w.app.new_client();
    w.app.sign_in(&browser, "vera-b", PASSWORD).await;
    let sessions = json_of(
        w.call(
            Method::GET,
            &format!("/users/{}/sessions", victim.id),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let session = sessions[0]["id"].as_str().unwrap().to_owned();
    json_of(
        w.call(
            Method::DELETE,
            &format!("/users/{}/sessions/{session}", victim.id),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        browser
            .get(w.app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "that session is over"
    );
    assert_eq!(
        w.call(
            Method::DELETE,
            &format!("/users/{}/sessions/{session}", victim.id),
            Some(&token),
            None
        )
        .await
        .status(),
        404
    );
    json_of(
        w.call(
            Method::POST,
            "/ip-allow-list",
            Some(&token),
            Some(json!({"cidr": "192.0.2.0/24"})),
        )
        .await,
        201,
    )
    .await;
    json_of(
        w.call(
            Method::DELETE,
            "/ip-allow-list/192.0.2.0/24",
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let client = json_of(
        w.call(
            Method::POST,
            "/clients",
            Some(&token),
            Some(json!({"name": "RP", "redirect_uris": [REDIRECT]})),
        )
        .await,
        201,
    )
    .await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    json_of(
        w.call(
            Method::PUT,
            &format!("/clients/{client_id}"),
            Some(&token),
            Some(json!({"name": "RP 2"})),
        )
        .await,
        200,
    )
    .await;
    json_of(
        w.call(
            Method::POST,
            &format!("/clients/{client_id}/secret"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    json_of(
        w.call(
            Method::DELETE,
            &format!("/clients/{client_id}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let imported = json_of(
        w.call(
            Method::POST,
            "/saml-sps",
            Some(&token),
            Some(json!({"metadata": sp.metadata(false)})),
        )
        .await,
        201,
    )
    .await;
    let handle = imported["id"].as_str().unwrap();
    json_of(
        w.call(
            Method::PUT,
            &format!("/saml-sps/{handle}"),
            Some(&token),
            Some(json!({"name_id_format": "email"})),
        )
        .await,
        200,
    )
    .await;
    json_of(
        w.call(
            Method::DELETE,
            &format!("/saml-sps/{handle}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let before = json_of(
        w.call(Method::GET, "/signing-keys", Some(&token), None)
            .await,
        200,
    )
    .await;
    let rotated = json_of(
        w.call(Method::POST, "/signing-keys/rotate", Some(&token), None)
            .await,
        200,
    )
    .await;
    assert_eq!(
        rotated.as_array().unwrap().len(),
        3,
        "RS256, ES256 and EdDSA"
    );

    // The keys: public facts, never private material; the rotation took the published
    // `next` key into service and this instance signs with it at once.
    let after = json_of(
        w.call(Method::GET, "/signing-keys", Some(&token), None)
            .await,
        200,
    )
    .await;
    assert!(!after.to_string().contains("private"));
    for r in rotated.as_array().unwrap() {
        let was = before
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == r["active_kid"])
            .expect("the new active key was published before");
        assert_eq!(was["state"], "next");
        let now = after
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == r["active_kid"])
            .unwrap();
        assert_eq!(now["state"], "active");
    }
    assert_eq!(
        w.app
            .state
            .keys
            .current()
            .active_kid(gatehouse::crypto::signing::SigningAlg::Rs256),
        rotated
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alg"] == "RS256")
            .unwrap()["active_kid"]
            .as_str()
            .unwrap()
    );
    let retired = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "retired")
        .count();
    assert_eq!(
        retired, 3,
        "the keys of RS256, ES256 and EdDSA that signed before"
    );
    // The old token (signed by a now retired key) still works.
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&token), None)
            .await
            .status(),
        200
    );

    let admin_changes = audit_events(&w.app, EventType::AdminChange).await;
    let mut seen: Vec<(String, String)> = admin_changes
        .iter()
        .map(|e| {
            assert_eq!(e.actor.as_deref(), Some(root.id.as_str()), "{e:?}");
            (
                e.details["object"].as_str().unwrap().to_owned(),
                e.details["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String)> = [
        ("ip_allow_list", "added"),
        ("ip_allow_list", "removed"),
        ("oidc_client", "created"),
        ("oidc_client", "deleted"),
        ("oidc_client", "secret_rotated"),
        ("oidc_client", "updated"),
        ("organisation", "created"),
        ("saml_sp", "created"),
        ("saml_sp", "deleted"),
        ("saml_sp", "updated"),
    ]
    .iter()
    .map(|(o, c)| ((*o).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(seen, want);
    let client_events: Vec<_> = admin_changes
        .iter()
        .filter(|e| e.details["object"] == "oidc_client")
        .collect();
    assert!(
        client_events
            .iter()
            .all(|e| e.details["client_id"] == client_id.as_str())
    );
    // No secret in the trail.
    let rotated_secret = admin_changes
        .iter()
        .any(|e| e.details.to_string().contains("client_secret\":\""));
    assert!(!rotated_secret);

    let user_created = audit_events(&w.app, EventType::UserCreated).await;
    let gus = user_created
        .iter()
        .find(|e| e.details["username"] == "gus")
        .unwrap();
    assert_eq!(gus.actor.as_deref(), Some(root.id.as_str()));
    let renamed = audit_events(&w.app, EventType::UserUpdated).await;
    assert_eq!(renamed[0].actor.as_deref(), Some(root.id.as_str()));
    assert_eq!(renamed[0].subject.as_deref(), Some(victim.id.as_str()));
    assert_eq!(renamed[0].details["username"], "vera-b");
    assert_eq!(renamed[0].details["previous_username"], "vera");
    let ended = audit_events(&w.app, EventType::SessionEnded).await;
    assert!(
        ended
            .iter()
            .any(|e| e.actor.as_deref() == Some(root.id.as_str())
                && e.subject.as_deref() == Some(victim.id.as_str()))
    );
    let keys = audit_events(&w.app, EventType::KeyRotated).await;
    assert_eq!(keys.len(), 3, "one per algorithm: RS256, ES256, EdDSA");
    assert!(
        keys.iter()
            .all(|e| e.actor.as_deref() == Some(root.id.as_str()))
    );
}

// ---------------------------------------------------------------------------------------
// Issue 20: authorisation hardening (items 4, 5 and 8).

use gatehouse::clock::Clock;

/// Sets organisation `org_id`'s MFA policy, as an operator would.
async fn set_mfa(w: &World, org_id: &str, mfa: MfaPolicy) {
    let id = org_id.to_owned();
    let now = chrono::Utc::now().naive_utc();
    w.app
        .state
        .store
        .run(move |c| {
            let org = orgs::find_by_id(c, &id)?.unwrap();
            let policy = OrgPolicy {
                mfa,
                ..org.policy()
            };
            orgs::set_policy(c, &id, &policy, now)
        })
        .await
        .unwrap();
}

/// The live SSO session handles of a user.
async fn session_handles(app: &TestApp, user_id: &str) -> Vec<String> {
    gatehouse::auth::session::list(
        app.state.ephemeral.as_ref(),
        app.state.clock.as_ref(),
        user_id,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|s| s.handle)
    .collect()
}

/// Item 4: the reviewer's path. An administrator signed in by password while the
/// organisation asked for no second factor; then the policy was turned on. Neither the
/// token from that sign-in nor a new code from the live SSO session may open the admin
/// API; after the step-up (enrolment, here) it opens again.
#[tokio::test]
async fn a_password_only_admin_session_gets_no_admin_power_once_the_policy_requires_mfa() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let browser = w.app.new_client();
    let before = w
        .token_in(&browser, "alice", "openid gatehouse:admin")
        .await;
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&before), None)
            .await
            .status(),
        200,
        "no second factor asked of anyone yet"
    );
    set_mfa(&w, &w.alpha, MfaPolicy::Admins).await;

    let res = w.call(Method::GET, "/orgs", Some(&before), None).await;
    assert_eq!(res.status(), 401, "a password-only token opens nothing now");
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.contains("urn:gatehouse:acr:mfa"),
        "{challenge}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("second factor"),
        "{body}"
    );

    // The live password-only session is not enough for a new code: it steps up.
    let res = browser
        .get(w.authorize_url("openid gatehouse:admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/login?tx="),
        "no code for a session without the second factor: {location}"
    );
    let html = browser
        .get(w.app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = w
        .app
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let enrol = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(enrol.starts_with("/login/totp-enrol?tx="), "{enrol}");
    let html = browser
        .get(w.app.url(&enrol))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = element_text(&html, "totp-secret");
    let code = totp_code(&secret, w.app.clock.now().timestamp());
    let res = w
        .app
        .post_form(
            &browser,
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
    let res = w
        .app
        .post_form(
            &browser,
            "/login/continue",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let back = url::Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let after = w.exchange(&back).await;
    assert_eq!(
        w.call(Method::GET, "/orgs", Some(&after), None)
            .await
            .status(),
        200,
        "after the step-up the admin API opens"
    );
    // And the stepped-up SSO session now answers at once.
    let res = browser
        .get(w.authorize_url("openid gatehouse:admin"))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
}

/// Item 5, through the admin API: an org_admin ends "a session of amos" that is really
/// bert's (another organisation's user). Nothing of bert's ends, nothing is logged.
#[tokio::test]
async fn ending_another_users_session_handle_through_the_admin_api_ends_nothing() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    let bert_browser = w.app.new_client();
    let bert_token = w.token_in(&bert_browser, "bert", "openid").await;
    let handles = session_handles(&w.app, &bert.id).await;
    assert_eq!(handles.len(), 1);
    let token = w.admin_token("alice").await;

    let res = w
        .call(
            Method::DELETE,
            &format!("/users/{}/sessions/{}", amos.id, handles[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(res.status(), 404, "not a session of amos");
    let info = rp_http()
        .get(w.app.url("/userinfo"))
        .bearer_auth(&bert_token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "bert's tokens are not revoked");
    assert_eq!(
        bert_browser
            .get(w.app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "bert's session lives"
    );
    assert!(
        audit_events(&w.app, EventType::SessionEnded)
            .await
            .is_empty()
    );
    assert!(
        audit_events(&w.app, EventType::TokenRevoked)
            .await
            .is_empty()
    );
}

/// Item 8: an org_admin cannot weaken the policy that governs a super administrator.
#[tokio::test]
async fn an_org_admin_cannot_change_the_policy_of_an_organisation_holding_a_super_admin() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    w.user("beta", "bea", Role::OrgAdmin).await;
    let weaker = json!({"mfa": "off", "lockout": {"threshold": 0}});
    let alice = w.admin_token("alice").await;
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&alice),
            Some(weaker.clone()),
        )
        .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("super_admin"),
        "{body}"
    );
    let shown: Value = w
        .call(
            Method::GET,
            &format!("/orgs/{}", w.alpha),
            Some(&alice),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["policy"]["lockout"]["threshold"], 5, "unchanged");

    // Where nobody outranks the org_admin, and for a super administrator, it works.
    let bea = w.admin_token("bea").await;
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.beta),
            Some(&bea),
            Some(weaker.clone()),
        )
        .await;
    assert_eq!(res.status(), 200);
    let root = w.admin_token("root").await;
    let res = w
        .call(
            Method::PUT,
            &format!("/orgs/{}/policy", w.alpha),
            Some(&root),
            Some(weaker),
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// Items 9 and 11 over the admin API: `allowed_orgs` and `introspection` are set at
/// creation, changed, cleared (null: every organisation) or kept (left out) on update,
/// and bad values are a 400 naming the field.
#[tokio::test]
async fn clients_take_allowed_orgs_and_the_introspection_permission_over_the_api() {
    let w = World::new().await;
    let (_, token) = w.service_token("Provisioning").await;
    let created = json_of(
        w.call(
            Method::POST,
            "/clients",
            Some(&token),
            Some(json!({
                "name": "Hospital A app",
                "redirect_uris": [REDIRECT],
                "allowed_orgs": ["alpha"],
                "introspection": true,
            })),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["client"]["allowed_orgs"], json!(["alpha"]));
    assert_eq!(created["client"]["introspection"], true);
    let path = format!("/clients/{}", created["client_id"].as_str().unwrap());
    for bad in [
        json!(["nowhere"]),
        json!([]),
        json!(["Not A Name"]),
        json!("alpha"),
    ] {
        let body = json!({"name": "x", "redirect_uris": [REDIRECT], "allowed_orgs": bad});
        refused_naming(&w, &token, Method::POST, "/clients", body, "allowed_orgs").await;
        let body = json!({"allowed_orgs": bad});
        refused_naming(&w, &token, Method::PUT, &path, body, "allowed_orgs").await;
    }
    let update = |body: Value| {
        let (w, token, path) = (&w, &token, &path);
        async move {
            json_of(
                w.call(Method::PUT, path, Some(token), Some(body)).await,
                200,
            )
            .await
        }
    };
    let changed = update(json!({"allowed_orgs": ["beta", "alpha"], "introspection": false})).await;
    assert_eq!(changed["client"]["allowed_orgs"], json!(["beta", "alpha"]));
    assert_eq!(changed["client"]["introspection"], false);
    let kept = update(json!({"name": "Hospital app"})).await;
    assert_eq!(kept["client"]["allowed_orgs"], json!(["beta", "alpha"]));
    let cleared = update(json!({"allowed_orgs": null})).await;
    assert_eq!(cleared["client"]["allowed_orgs"], Value::Null);
}

#[tokio::test]
async fn clients_take_the_fapi2_par_and_dpop_requirements_over_the_api() {
    let w = World::new().await;
    let (_, token) = w.service_token("Provisioning").await;
    // FAPI 2.0 allows no shared secret: refused, naming the field.
    let body = json!({"name": "Bank-grade app", "redirect_uris": [REDIRECT], "fapi2": true});
    refused_naming(&w, &token, Method::POST, "/clients", body, "fapi2").await;
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let created = json_of(
        w.call(
            Method::POST,
            "/clients",
            Some(&token),
            Some(json!({
                "name": "Bank-grade app",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks,
                "fapi2": true,
            })),
        )
        .await,
        201,
    )
    .await;
    let client = &created["client"];
    assert_eq!(client["fapi2"], true);
    assert_eq!(client["require_pushed_authorization_requests"], true);
    assert_eq!(client["dpop_bound_access_tokens"], true);
    // A plain client can ask for PAR alone, and drop it again.
    let plain = json_of(
        w.call(
            Method::POST,
            "/clients",
            Some(&token),
            Some(json!({"name": "Portal", "redirect_uris": [REDIRECT],
                        "require_pushed_authorization_requests": true})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        plain["client"]["require_pushed_authorization_requests"],
        true
    );
    assert_eq!(plain["client"]["dpop_bound_access_tokens"], false);
    let path = format!("/clients/{}", plain["client_id"].as_str().unwrap());
    let changed = json_of(
        w.call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"require_pushed_authorization_requests": false,
                        "dpop_bound_access_tokens": true})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        changed["client"]["require_pushed_authorization_requests"],
        false
    );
    assert_eq!(changed["client"]["dpop_bound_access_tokens"], true);
}
