//! Administrators and users' passkeys (issue 29): listed and removed through the admin
//! API, the console and the CLI, each through the one service with its rank rule, each
//! removal mailed to the owner and audited naming the administrator.

use gatehouse::{
    audit::EventType,
    domain::{MfaPolicy, Role},
    store::outbox,
};
use serde_json::Value;

use crate::{
    admin::audit_events,
    cli::{by_operator, gatehouse},
    helpers::{TestApp, change_default_policy, create_user_with_role, hidden, spawn_app_with},
    oidc::{admin_token, rp_http},
    passkey::{SoftKey, user_with_passkey},
};

const PASSWORD: &str = "Quiet-Harbour-42";

/// Gatehouse as `localhost` on SQLite in its data directory (so the CLI beside it reads
/// the same database), with an organisation that asks no second factor of admins.
async fn app() -> TestApp {
    let app = spawn_app_with(|c| {
        c.issuer = url::Url::parse("https://localhost:0").unwrap();
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    change_default_policy(&app, |p| p.mfa = MfaPolicy::Off).await;
    app
}

async fn staff(app: &TestApp, name: &str, role: Role) -> gatehouse::store::users::UserRow {
    create_user_with_role(app, name, PASSWORD, role).await
}

async fn removal_mails(app: &TestApp) -> usize {
    app.state
        .store
        .run(|c| outbox::recent(c, 100))
        .await
        .unwrap()
        .iter()
        .filter(|r| r.subject == "A passkey was removed from your account")
        .count()
}

#[tokio::test]
async fn the_admin_api_lists_and_removes_a_users_passkeys() {
    let app = app().await;
    let mut key = SoftKey::new();
    let pat = user_with_passkey(&app, "pat", &mut key).await;
    let token = admin_token(&app).await;
    let http = rp_http();
    let url = app.url(&format!("/admin/api/v1/users/{pat}/passkeys"));
    let listed: Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "Work laptop");
    assert_eq!(listed[0]["synced"], false);
    assert!(listed[0].get("credential").is_none(), "never the key");
    let id = listed[0]["id"].as_str().unwrap();

    let unknown = http
        .delete(format!("{url}/no-such-passkey"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let removed = http
        .delete(format!("{url}/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let again: Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, serde_json::json!([]));
    let events = audit_events(&app, EventType::PasskeyRemoved).await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0]
            .actor
            .as_deref()
            .unwrap_or("")
            .starts_with("client:")
    );
    assert_eq!(removal_mails(&app).await, 1);
}

#[tokio::test]
async fn the_console_removes_a_passkey_of_a_lower_role_only() {
    let app = app().await;
    let mut key = SoftKey::new();
    let pat = user_with_passkey(&app, "pat", &mut key).await;
    let olga = staff(&app, "olga", Role::OrgAdmin).await;
    staff(&app, "sid", Role::Support).await;
    let mut admins_key = SoftKey::new();
    let olga_client = app.new_client();
    let res = app.sign_in(&olga_client, "olga", PASSWORD).await;
    assert_eq!(res.status(), 303);
    // Olga has a passkey too: support may not remove it.
    let csrf = hidden(&app.page(&olga_client, "/account/passkeys").await, "csrf");
    let options: Value = app
        .post_form(
            &olga_client,
            "/account/passkeys/options",
            &[("csrf", &csrf)],
        )
        .await
        .json()
        .await
        .unwrap();
    let created = admins_key.create(&options, &crate::passkey::honest(&app));
    let res = app
        .post_form(
            &olga_client,
            "/account/passkeys",
            &[
                ("csrf", &csrf),
                ("name", "Olga's key"),
                ("credential", &created.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);

    let page = app.page(&olga_client, &format!("/admin/users/{pat}")).await;
    assert!(page.contains("Remove passkey Work laptop"), "{page}");
    let csrf = hidden(&page, "csrf");
    let passkey = hidden(&page, "passkey");
    let res = app
        .post_form(
            &olga_client,
            &format!("/admin/users/{pat}/passkeys/remove"),
            &[("csrf", &csrf), ("passkey", &passkey)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("/admin/users/{pat}?done=passkey-removed").as_str()
    );
    let events = audit_events(&app, EventType::PasskeyRemoved).await;
    assert_eq!(events.len(), 1);

    // Support over an org_admin: refused, nothing removed.
    let olga_id = olga.id.clone();
    let sid_client = app.new_client();
    app.sign_in(&sid_client, "sid", PASSWORD).await;
    let page = app
        .page(&sid_client, &format!("/admin/users/{olga_id}"))
        .await;
    assert!(!page.contains("Remove passkey"), "{page}");
    let olga_passkeys = gatehouse::auth::passkey::list(&app.state, &olga_id)
        .await
        .unwrap();
    let res = app
        .post_form(
            &sid_client,
            &format!("/admin/users/{olga_id}/passkeys/remove"),
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("passkey", &olga_passkeys[0].id),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        gatehouse::auth::passkey::list(&app.state, &olga_id)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_command_line_lists_and_removes_a_users_passkeys() {
    let app = app().await;
    let mut key = SoftKey::new();
    user_with_passkey(&app, "pat", &mut key).await;
    let dir = app.data_dir.path();
    let out = gatehouse(dir)
        .args(["passkey", "list", "pat", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "Work laptop");
    let id = listed[0]["id"].as_str().unwrap();
    let out = gatehouse(dir)
        .args(["passkey", "remove", "pat", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed the passkey \"Work laptop\" of pat")
    );
    let out = gatehouse(dir)
        .args(["passkey", "remove", "pat", id])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second removal finds nothing");
    let events = audit_events(&app, EventType::PasskeyRemoved).await;
    assert_eq!(events.len(), 1);
    assert!(by_operator(&serde_json::json!(events[0].actor)));
    assert_eq!(removal_mails(&app).await, 1);
}
