//! FHIR servers registered as resource servers (issue 30, DESIGN §18): the admin API
//! and the CLI register, show, replace and remove them through the one service, with
//! their base URL in one spelling, clinical scopes normalised, clients that exist, and
//! every change audited.

use gatehouse::{audit::EventType, oidc::clients::ClientSpec};
use serde_json::{Value, json};

use crate::{
    admin::audit_events,
    cli::{by_operator, gatehouse},
    helpers::{change_default_policy, create_user_with_role, spawn_app},
    oidc::{admin_token, register_client, rp_http},
};

#[tokio::test]
async fn the_admin_api_registers_checks_replaces_and_removes_a_fhir_server() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let ehr = register_client(
        &app,
        ClientSpec::new("EHR", &["https://ehr.example.org/cb"]),
    )
    .await;
    let http = rp_http();
    let post = |body: Value| {
        http.post(app.url("/admin/api/v1/fhir-servers"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let res = post(json!({
        "base_url": "https://fhir.example.org/r4/",
        "display_name": "St Mary's FHIR",
        "allowed_scopes": ["patient/*.read", "user/Observation.rs", "patient/*.read"],
        "allowed_clients": [ehr.client_id],
    }))
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    assert_eq!(
        made["base_url"], "https://fhir.example.org/r4",
        "one spelling"
    );
    assert_eq!(
        made["allowed_scopes"],
        json!(["patient/*.read", "user/Observation.rs"])
    );
    let id = made["id"].as_str().unwrap().to_owned();

    for (body, field) in [
        (
            json!({"base_url": "http://fhir.example.org", "display_name": "X"}),
            "base_url",
        ),
        (
            json!({"base_url": "https://a.example.org", "display_name": "X", "allowed_scopes": ["patient/Observation.sr"]}),
            "allowed_scopes",
        ),
        (
            json!({"base_url": "https://a.example.org", "display_name": "X", "allowed_scopes": ["openid"]}),
            "allowed_scopes",
        ),
        (
            json!({"base_url": "https://a.example.org", "display_name": "X", "allowed_clients": ["nobody"]}),
            "allowed_clients",
        ),
        (
            json!({"base_url": "https://a.example.org", "display_name": " "}),
            "display_name",
        ),
        (
            json!({"base_url": "https://a.example.org", "display_name": "X", "colour": "red"}),
            "colour",
        ),
    ] {
        let res = post(body.clone()).await.unwrap();
        let status = res.status();
        let msg: Value = res.json().await.unwrap();
        assert_eq!(status, 400, "{body} → {msg}");
        assert!(
            msg["message"].as_str().unwrap().contains(field),
            "{body} → {msg}"
        );
    }
    let again = post(json!({"base_url": "https://fhir.example.org/r4", "display_name": "Again"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    let url = app.url(&format!("/admin/api/v1/fhir-servers/{id}"));
    let replaced: Value = http
        .put(&url)
        .bearer_auth(&token)
        .json(&json!({"base_url": "https://fhir.example.org/r5", "display_name": "R5"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replaced["base_url"], "https://fhir.example.org/r5");
    assert_eq!(
        replaced["allowed_clients"],
        json!([]),
        "PUT replaces every field"
    );
    let gone = http.delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), 200);
    assert_eq!(
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    for event in [
        EventType::FhirServerCreated,
        EventType::FhirServerUpdated,
        EventType::FhirServerDeleted,
    ] {
        let events = audit_events(&app, event).await;
        assert_eq!(events.len(), 1, "{event}");
        assert!(events[0].actor.as_deref().unwrap().starts_with("client:"));
    }
}

fn json_of(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = gatehouse(dir).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_command_line_registers_shows_updates_and_deletes_a_fhir_server() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let made = json_of(
        dir,
        &[
            "fhir-server",
            "create",
            "--base-url",
            "https://fhir.example.org/r4",
            "--display-name",
            "Lab",
            "--scope",
            "system/*.rs",
        ],
    );
    assert_eq!(made["allowed_scopes"], json!(["system/*.rs"]));
    let listed = json_of(dir, &["fhir-server", "list"]);
    assert_eq!(listed[0]["base_url"], "https://fhir.example.org/r4");
    let updated = json_of(
        dir,
        &[
            "fhir-server",
            "update",
            "https://fhir.example.org/r4/",
            "--base-url",
            "https://fhir.example.org/r4",
            "--display-name",
            "Laboratory",
        ],
    );
    assert_eq!(updated["display_name"], "Laboratory");
    let shown = json_of(dir, &["fhir-server", "show", "https://fhir.example.org/r4"]);
    assert_eq!(shown["allowed_scopes"], json!([]));
    let bad = gatehouse(dir)
        .args([
            "fhir-server",
            "create",
            "--base-url",
            "https://b.example.org",
        ])
        .args(["--display-name", "B", "--scope", "patient/Observation.x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("allowed_scopes"));
    json_of(
        dir,
        &["fhir-server", "delete", "https://fhir.example.org/r4"],
    );
    assert_eq!(json_of(dir, &["fhir-server", "list"]), json!([]));
    let out = gatehouse(dir).args(["audit", "export"]).output().unwrap();
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for kind in [
        "fhir_server.created",
        "fhir_server.updated",
        "fhir_server.deleted",
    ] {
        let event = events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} recorded"));
        assert!(by_operator(&event["actor"]), "{event}");
    }
}

#[tokio::test]
async fn a_super_administrator_registers_and_removes_a_fhir_server_in_the_console() {
    use gatehouse::domain::{MfaPolicy, Role};
    let app = spawn_app().await;
    change_default_policy(&app, |p| p.mfa = MfaPolicy::Off).await;
    for (name, role) in [("root", Role::SuperAdmin), ("olga", Role::OrgAdmin)] {
        create_user_with_role(&app, name, "Quiet-Harbour-42", role).await;
    }
    let root = app.new_client();
    assert_eq!(
        app.sign_in(&root, "root", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
    let html = app.page(&root, "/admin/fhir-servers").await;
    assert!(html.contains("no-fhir-servers"), "{html}");
    let csrf = crate::helpers::hidden(&html, "csrf");
    let res = app
        .post_form(
            &root,
            "/admin/fhir-servers",
            &[
                ("csrf", &csrf),
                ("base_url", "https://fhir.example.org/r4/"),
                ("display_name", "Lab <FHIR>"),
                ("scopes", "patient/*.rs\nuser/Observation.read"),
                ("clients", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = app.page(&root, "/admin/fhir-servers").await;
    assert!(html.contains("https://fhir.example.org/r4<"), "{html}");
    assert!(html.contains("Lab &#60;FHIR&#62;") || html.contains("Lab &lt;FHIR&gt;"));
    assert!(html.contains("patient/*.rs user/Observation.read"));
    let bad = app
        .post_form(
            &root,
            "/admin/fhir-servers",
            &[
                ("csrf", &csrf),
                ("base_url", "https://b.example.org"),
                ("display_name", "B"),
                ("scopes", "patient/Observation.sr"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let id = crate::helpers::hidden(&html, "id");
    let res = app
        .post_form(
            &root,
            "/admin/fhir-servers/delete",
            &[("csrf", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        app.page(&root, "/admin/fhir-servers")
            .await
            .contains("no-fhir-servers")
    );

    // An organisation's administrator has no say over servers every organisation uses.
    let olga = app.new_client();
    app.sign_in(&olga, "olga", "Quiet-Harbour-42").await;
    let res = olga
        .get(app.url("/admin/fhir-servers"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
