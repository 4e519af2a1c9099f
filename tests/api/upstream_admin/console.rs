//! The console's pages for upstream identity providers: list, create, edit, links,
//! delete, as a browser without JavaScript uses them.

use gatehouse::{domain::Role, store::upstream as rows};
use reqwest::Method;
use serde_json::json;

use super::{PASSWORD, SECRET, connector_changes, json_of, opened, stored};
use crate::{admin::World, helpers::hidden};

/// A browser inside the console as `username` (alpha: password only).
async fn console(w: &World, username: &str) -> (reqwest::Client, String) {
    let browser = w.app.new_client();
    let res = w.app.sign_in(&browser, username, PASSWORD).await;
    assert_eq!(res.status(), 303);
    let page = browser
        .get(w.app.url("/admin/connectors"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    (browser, csrf)
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_lists_creates_edits_links_and_deletes_connectors() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let (browser, csrf) = console(&w, "alice").await;
    let form = |issuer: &'static str, secret: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("org", w.alpha.clone()),
            ("slug", "alpha-google".to_owned()),
            ("display_name", "Google <Workspace>".to_owned()),
            ("enabled", "on".to_owned()),
            ("issuer", issuer.to_owned()),
            ("client_id", "gatehouse-alpha".to_owned()),
            ("client_secret", secret.to_owned()),
            ("client_auth", "client_secret_post".to_owned()),
            ("scopes", "profile email".to_owned()),
            ("just_in_time", "on".to_owned()),
            ("username_claim", "email".to_owned()),
            ("email_claim", "email".to_owned()),
            ("name_claim", "name".to_owned()),
            ("groups_claim", "groups".to_owned()),
            ("role_map", "helpdesk=support\n".to_owned()),
            ("default_role", "user".to_owned()),
            ("domains", "alpha.example\nward.alpha.example".to_owned()),
        ]
    };
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let browser = browser.clone();
        let w = &w;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            w.app.post_form(&browser, &path, &fields).await
        }
    };

    // A refused form comes back with the errors and without the secret.
    let res = post(
        "/admin/connectors".into(),
        form("http://login.alpha.example", SECRET),
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("https"), "{html}");
    assert!(!html.contains(SECRET));
    assert!(html.contains("gatehouse-alpha"), "the rest is kept");

    let res = post(
        "/admin/connectors".into(),
        form("https://accounts.google.com", SECRET),
    )
    .await;
    assert_eq!(res.status(), 303);
    let page_path = location(&res);
    assert!(page_path.ends_with("?done=created"), "{page_path}");
    let html = browser
        .get(w.app.url(&page_path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("/upstream/alpha-google/callback"));
    assert!(
        html.contains("Google &") && !html.contains("<Workspace>"),
        "escaped by the template"
    );
    assert!(!html.contains(SECRET));
    let listed = json_of(
        w.call(
            Method::GET,
            "/connectors",
            Some(&w.admin_token("alice").await),
            None,
        )
        .await,
        200,
    )
    .await;
    let v = &listed[0];
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["settings"]["oidc"]["client_auth"], "client_secret_post");
    assert_eq!(v["settings"]["accounts"]["role_map"]["helpdesk"], "support");
    assert_eq!(v["domains"], json!(["alpha.example", "ward.alpha.example"]));
    assert_eq!(
        opened(&w.app, &stored(&w.app, &id).await).as_deref(),
        Some(SECRET)
    );

    // Saved with the secret field empty: the secret stays; unticked: disabled.
    let mut edit = form("https://accounts.google.com", "");
    edit.retain(|(k, _)| *k != "enabled");
    let res = post(format!("/admin/connectors/{id}"), edit).await;
    assert_eq!(res.status(), 303);
    let row = stored(&w.app, &id).await;
    assert!(!row.enabled);
    assert_eq!(opened(&w.app, &row).as_deref(), Some(SECRET));

    // Without the session's CSRF token nothing changes.
    let mut forged = form("https://evil.example", "");
    forged[0].1 = "forged".into();
    assert_eq!(
        post(format!("/admin/connectors/{id}"), forged)
            .await
            .status(),
        403
    );

    let link = vec![
        ("csrf", csrf.clone()),
        ("subject", "google-sub-1".to_owned()),
        ("username", "amos".to_owned()),
    ];
    let res = post(format!("/admin/connectors/{id}/links"), link.clone()).await;
    assert_eq!(res.status(), 303);
    let html = browser
        .get(w.app.url(&location(&res)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("google-sub-1") && html.contains(&amos.id));
    let res = post(format!("/admin/connectors/{id}/links/remove"), link).await;
    assert_eq!(res.status(), 303);
    let left = {
        let id = id.clone();
        w.app
            .state
            .store
            .run(move |c| rows::links_of_connector(c, &id))
            .await
            .unwrap()
    };
    assert!(left.is_empty());

    let unconfirmed = vec![("csrf", csrf.clone())];
    let res = post(format!("/admin/connectors/{id}/delete"), unconfirmed).await;
    assert_eq!(res.status(), 400);
    let confirmed = vec![("csrf", csrf.clone()), ("confirm", "on".to_owned())];
    let res = post(format!("/admin/connectors/{id}/delete"), confirmed).await;
    assert_eq!(res.status(), 303);
    let gone = browser
        .get(w.app.url(&format!("/admin/connectors/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let names: Vec<String> = connector_changes(&w.app)
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(names, ["created", "updated", "disabled", "deleted"]);
}

#[tokio::test]
async fn support_gets_no_connector_pages() {
    let w = World::new().await;
    w.user("alpha", "sue", Role::Support).await;
    let browser = w.app.new_client();
    assert_eq!(w.app.sign_in(&browser, "sue", PASSWORD).await.status(), 303);
    let home = browser
        .get(w.app.url("/admin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !home.contains("/admin/connectors"),
        "no link to what support may not use"
    );
    let res = browser
        .get(w.app.url("/admin/connectors"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_console_creates_a_saml_connector_and_shows_what_to_register() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let (browser, csrf) = console(&w, "alice").await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("org", w.alpha.as_str()),
        ("slug", "alpha-adfs"),
        ("display_name", "Alpha ADFS"),
        ("enabled", "on"),
        ("protocol", "saml"),
        (
            "metadata_url",
            "https://adfs.alpha.example/FederationMetadata/2007-06/FederationMetadata.xml",
        ),
        ("require_encrypted_assertions", "on"),
        ("just_in_time", "on"),
        (
            "username_claim",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        ),
        (
            "email_claim",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        ),
        (
            "name_claim",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        ),
        ("default_role", "user"),
    ];
    let res = w
        .app
        .post_form(&browser, "/admin/connectors", &fields)
        .await;
    assert_eq!(res.status(), 303);
    let html = browser
        .get(w.app.url(&location(&res)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("/upstream/alpha-adfs/saml/metadata"),
        "{html}"
    );
    assert!(html.contains("SP metadata URL"));
    let listed = json_of(
        w.call(
            Method::GET,
            "/connectors",
            Some(&w.admin_token("alice").await),
            None,
        )
        .await,
        200,
    )
    .await;
    let v = &listed[0];
    assert_eq!(v["protocol"], "saml");
    assert_eq!(v["settings"]["saml"]["require_encrypted_assertions"], true);
    assert!(v["settings"].get("oidc").is_none(), "{v}");
    assert!(
        v["redirect_uri"]
            .as_str()
            .unwrap()
            .ends_with("/upstream/alpha-adfs/saml/metadata")
    );
    // Metadata both by URL and pasted is refused, the form kept.
    let mut both = fields.to_vec();
    both[2] = ("slug", "alpha-adfs-2");
    both.push(("metadata_xml", "<md:EntityDescriptor/>"));
    let res = w.app.post_form(&browser, "/admin/connectors", &both).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("alpha-adfs-2"));
}
