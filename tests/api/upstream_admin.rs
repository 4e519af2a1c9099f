//! Administering upstream identity providers (issue 28, DESIGN §16): connectors and
//! links through the admin API, the console and the CLI, which all call the one admin
//! service. Who may, what is refused, what the trail says, and that the client secret
//! is sealed and never comes back.

use gatehouse::{audit::EventType, domain::Role, store::upstream as rows};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    admin::{World, audit_events},
    helpers::TestApp,
};

const SECRET: &str = "upstream-client-secret-Zq81x";
const PASSWORD: &str = "Correct-Horse-Battery-9";

fn settings(issuer: &str) -> Value {
    json!({ "oidc": { "issuer": issuer, "client_id": "gatehouse" } })
}

fn connector(slug: &str, domains: &[&str]) -> Value {
    json!({
        "slug": slug,
        "display_name": format!("{slug} sign-in"),
        "settings": settings("https://login.hospital.example"),
        "client_secret": SECRET,
        "domains": domains,
    })
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn stored(app: &TestApp, id: &str) -> rows::ConnectorRow {
    let id = id.to_owned();
    app.state
        .store
        .run(move |c| rows::find(c, &id))
        .await
        .unwrap()
        .expect("stored")
}

/// The secret the row holds, opened as the sign-in opens it.
fn opened(app: &TestApp, row: &rows::ConnectorRow) -> Option<String> {
    let sealed = row.secret_sealed.as_ref()?;
    let clear = app
        .state
        .master_key
        .open(&rows::secret_context(&row.id), sealed)
        .unwrap();
    Some(String::from_utf8(clear.expose_secret().to_vec()).unwrap())
}

/// The `change` details of the trail's connector events, oldest first.
async fn connector_changes(app: &TestApp) -> Vec<(String, Option<String>)> {
    let mut events = audit_events(app, EventType::AdminChange).await;
    events.reverse();
    events
        .iter()
        .filter(|e| e.details["object"] == "upstream_connector")
        .map(|e| {
            (
                e.details["change"].as_str().unwrap().to_owned(),
                e.actor.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_org_admin_manages_its_connectors_and_the_secret_is_sealed_never_shown() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let token = w.admin_token("alice").await;

    let res = w
        .call(
            Method::POST,
            "/connectors",
            Some(&token),
            Some(connector("alpha-entra", &["Alpha.Example"])),
        )
        .await;
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(SECRET),
        "the secret never comes back: {text}"
    );
    let made: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        made["org_id"],
        w.alpha.as_str(),
        "the caller's own by default"
    );
    assert_eq!(made["has_client_secret"], true);
    assert_eq!(made["domains"], json!(["alpha.example"]));
    assert_eq!(made["enabled"], true);
    assert_eq!(made["settings"]["oidc"]["client_id"], "gatehouse");
    assert_eq!(made["settings"]["accounts"]["default_role"], "user");
    assert!(
        made["redirect_uri"]
            .as_str()
            .unwrap()
            .ends_with("/upstream/alpha-entra/callback")
    );
    let id = made["id"].as_str().unwrap().to_owned();

    // Sealed at rest, to its row: the database holds no clear secret.
    let row = stored(&w.app, &id).await;
    let sealed = row.secret_sealed.clone().unwrap();
    assert!(!sealed.contains(SECRET));
    assert_eq!(opened(&w.app, &row).as_deref(), Some(SECRET));

    let shown = json_of(
        w.call(
            Method::GET,
            &format!("/connectors/{id}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shown, made);
    let listed = json_of(
        w.call(Method::GET, "/connectors", Some(&token), None).await,
        200,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Left out, the secret is kept; sent empty, it is removed.
    let mut change = connector("alpha-entra", &["alpha.example", "clinic.alpha.example"]);
    change["display_name"] = "Alpha staff".into();
    change.as_object_mut().unwrap().remove("client_secret");
    let kept = json_of(
        w.call(
            Method::PUT,
            &format!("/connectors/{id}"),
            Some(&token),
            Some(change.clone()),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(kept["display_name"], "Alpha staff");
    assert_eq!(kept["has_client_secret"], true);
    assert_eq!(stored(&w.app, &id).await.secret_sealed, Some(sealed));
    change["client_secret"] = "".into();
    change["enabled"] = false.into();
    let removed = json_of(
        w.call(
            Method::PUT,
            &format!("/connectors/{id}"),
            Some(&token),
            Some(change),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(removed["has_client_secret"], false);
    assert_eq!(removed["enabled"], false);
    assert!(stored(&w.app, &id).await.secret_sealed.is_none());

    json_of(
        w.call(
            Method::DELETE,
            &format!("/connectors/{id}"),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    let gone = w
        .call(
            Method::GET,
            &format!("/connectors/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(gone.status(), 404);

    let changes = connector_changes(&w.app).await;
    let names: Vec<&str> = changes.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        ["created", "updated", "updated", "disabled", "deleted"]
    );
    assert!(
        changes
            .iter()
            .all(|(_, a)| a.as_deref() == Some(alice.id.as_str()))
    );
    let trail = serde_json::to_string(
        &audit_events(&w.app, EventType::AdminChange)
            .await
            .iter()
            .map(|e| e.details.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!trail.contains(SECRET), "the trail never holds the secret");
    assert!(trail.contains("\"credential\":\"removed\""), "{trail}");
}

#[tokio::test]
async fn users_support_and_other_organisations_admins_are_refused() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    w.user("alpha", "sue", Role::Support).await;
    w.user("alpha", "plain", Role::User).await;
    w.user("beta", "bob", Role::OrgAdmin).await;
    let alice = w.admin_token("alice").await;
    let made = json_of(
        w.call(
            Method::POST,
            "/connectors",
            Some(&alice),
            Some(connector("alpha-sso", &[])),
        )
        .await,
        201,
    )
    .await;
    let id = made["id"].as_str().unwrap();

    let plain = w.admin_token("plain").await;
    let sue = w.admin_token("sue").await;
    for token in [&plain, &sue] {
        assert_eq!(
            w.call(Method::GET, "/connectors", Some(token), None)
                .await
                .status(),
            403
        );
        let res = w
            .call(
                Method::POST,
                "/connectors",
                Some(token),
                Some(connector("mine", &[])),
            )
            .await;
        assert_eq!(res.status(), 403);
    }
    assert_eq!(
        w.call(Method::GET, "/connectors", None, None)
            .await
            .status(),
        401
    );

    // Another organisation's administrator finds nothing of alpha's.
    let bob = w.admin_token("bob").await;
    let theirs = json_of(
        w.call(Method::GET, "/connectors", Some(&bob), None).await,
        200,
    )
    .await;
    assert_eq!(theirs, json!([]));
    let org_query = format!("/connectors?org={}", w.alpha);
    assert_eq!(
        w.call(Method::GET, &org_query, Some(&bob), None)
            .await
            .status(),
        404
    );
    for (method, path) in [
        (Method::GET, format!("/connectors/{id}")),
        (Method::DELETE, format!("/connectors/{id}")),
        (Method::GET, format!("/connectors/{id}/links")),
    ] {
        let res = w.call(method.clone(), &path, Some(&bob), None).await;
        assert_eq!(res.status(), 404, "{method} {path}");
    }
    let res = w
        .call(
            Method::PUT,
            &format!("/connectors/{id}"),
            Some(&bob),
            Some(connector("x", &[])),
        )
        .await;
    assert_eq!(res.status(), 404);
    let mut into_alpha = connector("bob-in-alpha", &[]);
    into_alpha["org_id"] = w.alpha.clone().into();
    let res = w
        .call(Method::POST, "/connectors", Some(&bob), Some(into_alpha))
        .await;
    assert_eq!(res.status(), 404);

    // Just-in-time accounts get no role their administrator could not grant.
    let mut escalate = connector("alpha-admins", &[]);
    escalate["settings"]["accounts"] = json!({ "role_map": { "it": "super_admin" } });
    let res = w
        .call(Method::POST, "/connectors", Some(&alice), Some(escalate))
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        w.call(
            Method::GET,
            &format!("/connectors/{id}"),
            Some(&alice),
            None
        )
        .await
        .status()
            == 200
    );
}

#[tokio::test]
async fn malformed_connectors_are_refused_naming_what_is_wrong() {
    let w = World::new().await;
    let (_, token) = w.service_token("Automation").await;
    let in_alpha = |mut body: Value| {
        body["org_id"] = w.alpha.clone().into();
        body
    };
    json_of(
        w.call(
            Method::POST,
            "/connectors",
            Some(&token),
            Some(in_alpha(connector("taken", &["taken.example"]))),
        )
        .await,
        201,
    )
    .await;

    let mut http_issuer = connector("clear", &[]);
    http_issuer["settings"] = settings("http://login.hospital.example");
    let mut unknown = connector("typo", &[]);
    unknown["settings"]["oidc"]["scopez"] = json!(["email"]);
    let mut saml = connector("saml", &[]);
    saml["protocol"] = "saml".into();
    let mut ldap = connector("ldap", &[]);
    ldap["protocol"] = "ldap".into();
    let mut extra = connector("extra", &[]);
    extra["colour"] = "red".into();
    let cases = [
        (connector("Bad Slug", &[]), 400, "slug"),
        (http_issuer, 400, "https"),
        (unknown, 400, "settings.oidc"),
        (
            connector("dup-domain", &["TAKEN.example"]),
            409,
            "domains: taken.example",
        ),
        (connector("taken", &[]), 409, "slug"),
        (connector("bad-domain", &["not a domain"]), 400, "domains"),
        (saml, 400, "SAML"),
        (ldap, 400, "protocol"),
        (extra, 400, "colour"),
        (json!({ "slug": "x", "display_name": "X" }), 400, "settings"),
    ];
    for (body, status, says) in cases {
        let res = w
            .call(
                Method::POST,
                "/connectors",
                Some(&token),
                Some(in_alpha(body.clone())),
            )
            .await;
        let got = json_of(res, status).await;
        let message = got["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    // A super administrator (or service) names the organisation.
    let res = w
        .call(
            Method::POST,
            "/connectors",
            Some(&token),
            Some(connector("nowhere", &[])),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = w.client_post_raw("/connectors", &token, "slug=x").await;
    assert_eq!(res.status(), 400, "a form body is not JSON");
    let listed = json_of(
        w.call(Method::GET, "/connectors", Some(&token), None).await,
        200,
    )
    .await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing refused was stored"
    );
}

impl World {
    async fn client_post_raw(&self, path: &str, token: &str, body: &str) -> reqwest::Response {
        crate::oidc::rp_http()
            .post(self.app.url(&format!("/admin/api/v1{path}")))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn links_are_added_and_removed_only_for_accounts_of_the_connectors_organisation() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let olga = w.user("alpha", "olga", Role::OrgAdmin).await;
    let bert = w.user("beta", "bert", Role::User).await;
    let token = w.admin_token("alice").await;
    let (_, service) = w.service_token("Automation").await;
    let made = json_of(
        w.call(
            Method::POST,
            "/connectors",
            Some(&token),
            Some(connector("alpha-okta", &[])),
        )
        .await,
        201,
    )
    .await;
    let id = made["id"].as_str().unwrap();
    let links = format!("/connectors/{id}/links");
    let subject = "auth0|amos/42 x";

    let link = |user: &str| json!({ "subject": subject, "user_id": user });
    // Even a super administrator does not link across organisations.
    let res = w
        .call(Method::POST, &links, Some(&service), Some(link(&bert.id)))
        .await;
    let refused = json_of(res, 400).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("another organisation")
    );
    // An organisation admin cannot link someone it may not act on: the upstream would
    // sign in as them.
    let res = w
        .call(Method::POST, &links, Some(&token), Some(link(&olga.id)))
        .await;
    assert_eq!(res.status(), 403);
    let made = json_of(
        w.call(Method::POST, &links, Some(&token), Some(link(&amos.id)))
            .await,
        201,
    )
    .await;
    assert_eq!(made["user_id"], amos.id.as_str());
    assert_eq!(made["connector_slug"], "alpha-okta");
    let again = w
        .call(Method::POST, &links, Some(&token), Some(link(&amos.id)))
        .await;
    assert_eq!(again.status(), 409);
    let long = json!({ "subject": "s".repeat(256), "user_id": amos.id });
    assert_eq!(
        w.call(Method::POST, &links, Some(&token), Some(long))
            .await
            .status(),
        400
    );

    let listed = json_of(w.call(Method::GET, &links, Some(&token), None).await, 200).await;
    assert_eq!(listed[0]["subject"], subject);
    let of_amos = json_of(
        w.call(
            Method::GET,
            &format!("/users/{}/links", amos.id),
            Some(&token),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(of_amos[0]["connector_id"], id);
    let bob_sees = w
        .call(
            Method::GET,
            &format!("/users/{}/links", bert.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(bob_sees.status(), 404);

    // Once olga is linked (by a super administrator), alice may no longer point the
    // connector at another upstream, though she may rename it.
    let olga_link = json!({ "subject": "olga-sub", "user_id": olga.id });
    json_of(
        w.call(Method::POST, &links, Some(&service), Some(olga_link))
            .await,
        201,
    )
    .await;
    let mut repointed = connector("alpha-okta", &[]);
    repointed["settings"] = settings("https://evil.example");
    let res = w
        .call(
            Method::PUT,
            &format!("/connectors/{id}"),
            Some(&token),
            Some(repointed),
        )
        .await;
    assert_eq!(res.status(), 403);
    let mut renamed = connector("alpha-okta", &[]);
    renamed["display_name"] = "Okta".into();
    let res = w
        .call(
            Method::PUT,
            &format!("/connectors/{id}"),
            Some(&token),
            Some(renamed),
        )
        .await;
    assert_eq!(res.status(), 200);

    let encoded: String = url::form_urlencoded::byte_serialize(subject.as_bytes()).collect();
    let one = format!("{links}/{}", encoded.replace('+', "%20"));
    json_of(w.call(Method::DELETE, &one, Some(&token), None).await, 200).await;
    assert_eq!(
        w.call(Method::DELETE, &one, Some(&token), None)
            .await
            .status(),
        404
    );
    let left = json_of(w.call(Method::GET, &links, Some(&token), None).await, 200).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "olga's stays");

    let linked = audit_events(&w.app, EventType::UpstreamLinked).await;
    let by_alice = linked
        .iter()
        .find(|e| e.subject.as_deref() == Some(amos.id.as_str()))
        .expect("amos's link audited");
    assert_eq!(by_alice.actor.as_deref(), Some(alice.id.as_str()));
    assert_eq!(by_alice.details["how"], "admin");
    assert_eq!(by_alice.details["upstream_subject"], subject);
    let unlinked = audit_events(&w.app, EventType::UpstreamUnlinked).await;
    assert_eq!(unlinked.len(), 1);
    assert_eq!(unlinked[0].actor.as_deref(), Some(alice.id.as_str()));
    assert_eq!(unlinked[0].details["connector"], "alpha-okta");
}

mod cli;
mod console;
