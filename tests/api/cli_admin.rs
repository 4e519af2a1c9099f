//! The CLI's admin commands (issue 22): every change the admin API offers has a CLI form
//! that calls the same admin service, with `--json`, audited with the actor `cli`.

use std::{
    path::Path,
    process::{Output, Stdio},
};

use gatehouse::audit::EventType;
use serde_json::Value;
use utoipa::OpenApi;

use crate::cli::{by_operator, gatehouse};

/// Each admin API operation (by operationId) and the CLI command that does the same.
/// A new API operation must be added here (or to `API_ONLY`), or the test below fails.
const CLI_FORMS: &[(&str, &[&str])] = &[
    ("list_users", &["user", "list"]),
    ("invite_user", &["user", "invite"]),
    ("show_user", &["user", "show"]),
    ("unlock_user", &["user", "unlock"]),
    ("force_reset_user", &["user", "force-reset"]),
    ("remove_totp", &["user", "remove-totp"]),
    ("list_passkeys", &["passkey", "list"]),
    ("list_fhir_servers", &["fhir-server", "list"]),
    ("create_fhir_server", &["fhir-server", "create"]),
    ("show_fhir_server", &["fhir-server", "show"]),
    ("update_fhir_server", &["fhir-server", "update"]),
    ("delete_fhir_server", &["fhir-server", "delete"]),
    ("list_fhir_users", &["fhir-server", "users"]),
    ("set_fhir_user", &["fhir-server", "set-user"]),
    ("clear_fhir_user", &["fhir-server", "clear-user"]),
    ("remove_passkey", &["passkey", "remove"]),
    ("disable_user", &["user", "disable"]),
    ("enable_user", &["user", "enable"]),
    ("set_role", &["user", "role"]),
    ("rename_user", &["user", "rename"]),
    ("list_sessions", &["user", "sessions"]),
    ("end_sessions", &["user", "end-sessions"]),
    ("end_one_session", &["user", "end-sessions"]),
    ("list_orgs", &["org", "list"]),
    ("show_org", &["org", "show"]),
    ("create_org", &["org", "create"]),
    ("set_policy", &["org", "policy"]),
    ("show_branding", &["org", "branding"]),
    ("set_branding", &["org", "branding"]),
    ("set_logo", &["org", "branding"]),
    ("remove_logo", &["org", "branding"]),
    ("force_reset_org", &["user", "force-reset"]),
    ("list_ip_blocks", &["ip", "list"]),
    ("unblock_ip", &["ip", "unblock"]),
    ("list_allowed", &["ip", "allowed"]),
    ("add_allowed", &["ip", "allow"]),
    ("remove_allowed", &["ip", "disallow"]),
    ("query_audit", &["audit", "export"]),
    ("export_audit", &["audit", "export"]),
    ("list_clients", &["client", "list"]),
    ("show_client", &["client", "show"]),
    ("create_client", &["client", "create"]),
    ("update_client", &["client", "update"]),
    ("delete_client", &["client", "delete"]),
    ("rotate_client_secret", &["client", "rotate-secret"]),
    ("list_sps", &["sp", "list"]),
    ("show_sp", &["sp", "show"]),
    ("import_sp", &["sp", "import"]),
    ("update_sp", &["sp", "update"]),
    ("delete_sp", &["sp", "delete"]),
    ("import_sp_from_url", &["sp", "import"]),
    ("refresh_sp", &["sp", "refresh"]),
    ("list_signing_keys", &["keys", "list"]),
    ("rotate_signing_keys", &["keys", "rotate"]),
    ("grant_emergency_access", &["user", "emergency-access"]),
    ("withdraw_emergency_access", &["user", "emergency-access"]),
    ("list_emergency_access", &["emergency", "designated"]),
    ("list_emergency_sessions", &["emergency", "list"]),
    ("show_emergency_session", &["emergency", "show"]),
    ("review_emergency_session", &["emergency", "review"]),
    ("list_connectors", &["connector", "list"]),
    ("create_connector", &["connector", "create"]),
    ("show_connector", &["connector", "show"]),
    ("update_connector", &["connector", "update"]),
    ("delete_connector", &["connector", "delete"]),
    ("list_connector_links", &["connector", "links"]),
    ("add_connector_link", &["connector", "link"]),
    ("remove_connector_link", &["connector", "unlink"]),
    ("list_user_links", &["connector", "links"]),
];

/// Operations with no CLI form, and why.
const API_ONLY: &[(&str, &str)] = &[];

/// CLI forms whose output is JSON already (JSON lines), so they have no `--json`.
const ALWAYS_JSON: &[&[&str]] = &[&["audit", "export"]];

fn operation_ids() -> Vec<String> {
    let doc = gatehouse::admin::openapi::ApiDoc::openapi();
    let mut ids = Vec::new();
    for item in doc.paths.paths.values() {
        let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in operations.into_iter().flatten() {
            ids.push(op.operation_id.clone().expect("every operation has an id"));
        }
    }
    ids
}

#[test]
fn every_admin_api_operation_has_a_cli_form_with_json_output() {
    let ids = operation_ids();
    assert!(
        ids.len() >= 37,
        "the document lists the operations: {ids:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    for id in &ids {
        let form = CLI_FORMS.iter().find(|(op, _)| op == id);
        let api_only = API_ONLY.iter().any(|(op, _)| op == id);
        assert!(
            form.is_some() || api_only,
            "admin API operation {id} has no CLI form: add one (and to CLI_FORMS), or list it in API_ONLY with a reason"
        );
        let Some((_, argv)) = form else { continue };
        let out = gatehouse(dir.path())
            .args(*argv)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "gatehouse {argv:?} --help: {help}");
        assert!(
            ALWAYS_JSON.contains(argv) || help.contains("--json"),
            "gatehouse {argv:?} has no --json"
        );
    }
    for (op, _) in CLI_FORMS {
        assert!(ids.iter().any(|id| id == op), "{op} is no API operation");
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    gatehouse(dir).args(args).output().unwrap()
}

/// Runs a command that must succeed with `--json`; its output.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = gatehouse(dir).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gatehouse {args:?} --json: {e}: {:?}", out.stdout))
}

fn create_user(dir: &Path, username: &str) -> Value {
    use std::io::Write;
    let email = format!("{username}@example.org");
    let mut child = gatehouse(dir)
        .args(["user", "create", "--username", username, "--email", &email])
        .args(["--password-stdin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Quiet-Harbour-42\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The audit trail as `audit export` writes it.
fn events(dir: &Path, event_type: EventType) -> Vec<Value> {
    let out = run(dir, &["audit", "export"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == event_type.as_str())
        .collect()
}

#[tokio::test]
async fn user_disable_enable_role_and_rename_from_the_command_line_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let id = create_user(dir, "ana")["id"].as_str().unwrap().to_owned();

    let done = json(dir, &["user", "disable", "ana"]);
    assert_eq!(done["changed"], true);
    assert_eq!(json(dir, &["user", "show", "ana"])["status"], "disabled");
    assert_eq!(json(dir, &["user", "disable", "ana"])["changed"], false);
    let disabled = events(dir, EventType::UserDisabled);
    assert_eq!(disabled.len(), 1, "only the change is audited");
    assert!(by_operator(&disabled[0]["actor"]), "{disabled:?}");
    assert_eq!(disabled[0]["subject"], id.as_str());

    assert_eq!(json(dir, &["user", "enable", "ana"])["changed"], true);
    assert_eq!(json(dir, &["user", "show", "ana"])["status"], "active");
    assert!(by_operator(
        &events(dir, EventType::UserEnabled)[0]["actor"]
    ));

    assert_eq!(
        json(dir, &["user", "role", "ana", "support"])["role"],
        "support"
    );
    let bad = run(dir, &["user", "role", "ana", "emperor"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--role"));

    assert_eq!(
        json(dir, &["user", "rename", "ana", "anna"])["changed"],
        true
    );
    let shown = json(dir, &["user", "show", "anna"]);
    assert_eq!(
        (shown["id"].as_str(), shown["role"].as_str()),
        (Some(id.as_str()), Some("support"))
    );
    let updated = events(dir, EventType::UserUpdated);
    assert!(
        updated
            .iter()
            .any(|e| e["details"]["role"] == "support" && by_operator(&e["actor"]))
    );
    assert!(
        updated
            .iter()
            .any(|e| e["details"]["previous_username"] == "ana")
    );
    let missing = run(dir, &["user", "show", "ana"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user named"));

    let listed = json(dir, &["user", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "anna")
    );
    assert_eq!(
        json(dir, &["user", "sessions", "anna"]),
        serde_json::json!([])
    );
    assert_eq!(
        json(dir, &["user", "end-sessions", "anna"])["sessions_ended"],
        0
    );
}

#[tokio::test]
async fn an_organisations_branding_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    json(
        dir,
        &[
            "org",
            "create",
            "--name",
            "norte",
            "--display-name",
            "Norte",
        ],
    );
    let file = dir.join("branding.json");
    std::fs::write(
        &file,
        r##"{"display_name": "Clínica Norte", "accent": "#7b1fa2", "apps": ["ward"]}"##,
    )
    .unwrap();
    let logo = dir.join("logo.png");
    std::fs::write(&logo, crate::branding::PNG).unwrap();
    let (file, logo) = (file.to_str().unwrap(), logo.to_str().unwrap());
    let shown = json(
        dir,
        &["org", "branding", "norte", "--file", file, "--logo", logo],
    );
    assert_eq!(shown["branding"]["display_name"], "Clínica Norte");
    assert_eq!(shown["logo"]["content_type"], "image/png");
    assert_eq!(json(dir, &["org", "branding", "norte"]), shown);
    let removed = json(dir, &["org", "branding", "norte", "--remove-logo"]);
    assert!(removed["logo"].is_null());

    std::fs::write(dir.join("pale.json"), r##"{"accent": "#8ab4f8"}"##).unwrap();
    let pale = dir.join("pale.json");
    let out = run(
        dir,
        &["org", "branding", "norte", "--file", pale.to_str().unwrap()],
    );
    assert!(!out.status.success(), "checked as the API checks it");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("accent: #8ab4f8"), "{said}");
    let svg = dir.join("logo.svg");
    std::fs::write(&svg, "<svg/>").unwrap();
    let out = run(
        dir,
        &["org", "branding", "norte", "--logo", svg.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert_eq!(
        json(dir, &["org", "branding", "norte"])["branding"]["accent"],
        "#7b1fa2",
        "unchanged"
    );
}

#[tokio::test]
async fn organisations_and_their_policy_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let org = json(
        dir,
        &[
            "org",
            "create",
            "--name",
            "beta",
            "--display-name",
            "Beta Clinic",
        ],
    );
    assert_eq!(org["name"], "beta");
    let mut policy = org["policy"].clone();
    policy["lockout"]["threshold"] = 7.into();
    let file = dir.join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let replaced = json(
        dir,
        &["org", "policy", "beta", "--file", file.to_str().unwrap()],
    );
    assert_eq!(replaced["policy"]["lockout"]["threshold"], 7);
    assert_eq!(
        json(dir, &["org", "show", "beta"])["policy"]["lockout"]["threshold"],
        7
    );

    policy["lockout"]["threshold"] = 1000.into();
    std::fs::write(&file, policy.to_string()).unwrap();
    let out = run(
        dir,
        &["org", "policy", "beta", "--file", file.to_str().unwrap()],
    );
    assert!(!out.status.success(), "validated as the API validates it");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lockout.threshold"));

    let changes = events(dir, EventType::AdminChange);
    let objects: Vec<&str> = changes
        .iter()
        .filter(|e| by_operator(&e["actor"]))
        .filter_map(|e| e["details"]["object"].as_str())
        .collect();
    assert_eq!(objects, ["organisation", "organisation_policy"]);
    let dup = run(
        dir,
        &["org", "create", "--name", "beta", "--display-name", "Again"],
    );
    assert!(!dup.status.success());
}

#[tokio::test]
async fn the_allow_list_and_clients_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let added = json(
        dir,
        &["ip", "allow", "10.20.3.4/16", "--note", "St Mary's NAT"],
    );
    assert_eq!(added["cidr"], "10.20.0.0/16");
    assert!(by_operator(&added["created_by"]), "{added}");
    assert_eq!(json(dir, &["ip", "allowed"])[0]["cidr"], "10.20.0.0/16");
    assert!(!run(dir, &["ip", "allow", "0.0.0.0/0"]).status.success());
    json(dir, &["ip", "disallow", "10.20.0.0/16"]);
    assert_eq!(json(dir, &["ip", "allowed"]), serde_json::json!([]));
    assert!(
        !run(dir, &["ip", "disallow", "10.20.0.0/16"])
            .status
            .success()
    );

    let created = json(
        dir,
        &[
            "client",
            "create",
            "--name",
            "Ward",
            "--redirect-uri",
            "https://ward.example/cb",
        ],
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let updated = json(dir, &["client", "update", &client_id, "--name", "Ward 2"]);
    assert_eq!(updated["client"]["name"], "Ward 2");
    assert_eq!(json(dir, &["client", "show", &client_id])["name"], "Ward 2");
    let rotated = json(dir, &["client", "rotate-secret", &client_id]);
    assert_ne!(rotated["client_secret"], created["client_secret"]);
    assert_eq!(json(dir, &["client", "list"]).as_array().unwrap().len(), 1);
    json(dir, &["client", "delete", &client_id]);
    assert!(!run(dir, &["client", "show", &client_id]).status.success());

    let changes: Vec<String> = events(dir, EventType::AdminChange)
        .iter()
        .filter(|e| by_operator(&e["actor"]) && e["details"]["client_id"] == client_id.as_str())
        .map(|e| e["details"]["change"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, ["created", "updated", "secret_rotated", "deleted"]);
    let allow: Vec<&str> = vec!["added", "removed"];
    let allow_events: Vec<String> = events(dir, EventType::AdminChange)
        .iter()
        .filter(|e| e["details"]["object"] == "ip_allow_list")
        .map(|e| e["details"]["change"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(allow_events, allow);
}

#[tokio::test]
async fn token_keys_are_listed_and_rotated_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let before = json(dir, &["keys", "list"]);
    let rotated = json(dir, &["keys", "rotate"]);
    let first = &rotated["rotated"][0];
    let after = json(dir, &["keys", "list"]);
    assert!(after.as_array().unwrap().len() > before.as_array().unwrap().len());
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == first["active_kid"] && k["state"] == "active")
    );
    let audited = events(dir, EventType::KeyRotated);
    assert!(audited.iter().all(|e| by_operator(&e["actor"])));
    assert!(
        audited
            .iter()
            .any(|e| e["details"]["active_kid"] == first["active_kid"])
    );
}

/// Issue 26: the trail names the person behind a CLI change, never a bare `cli`; with
/// `cli_require_actor` a change without `--actor` is refused and leaves no trace.
#[tokio::test]
async fn cli_changes_name_a_person_and_the_policy_can_insist_on_actor() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "ana");

    json(dir, &["user", "disable", "ana"]);
    let disabled = events(dir, EventType::UserDisabled);
    let actor = disabled[0]["actor"].as_str().unwrap();
    assert_ne!(actor, "cli", "a bare cli names nobody");
    assert!(by_operator(&disabled[0]["actor"]), "{actor}");

    json(dir, &["user", "enable", "ana", "--actor", "dr.nils"]);
    assert_eq!(
        events(dir, EventType::UserEnabled)[0]["actor"],
        "cli:dr.nils"
    );

    for bad in ["", "two words", "=cmd|calc", &"n".repeat(65)] {
        let out = run(dir, &["user", "disable", "ana", "--actor", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--actor:"),
            "{bad:?}"
        );
    }
    assert_eq!(events(dir, EventType::UserDisabled).len(), 1);

    // The policy: without --actor, one clear line and nothing done.
    let out = gatehouse(dir)
        .env("GATEHOUSE_CLI_REQUIRE_ACTOR", "true")
        .args(["user", "disable", "ana"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--actor") && stderr.contains("cli_require_actor"),
        "{stderr}"
    );
    assert_eq!(json(dir, &["user", "show", "ana"])["status"], "active");
    let out = gatehouse(dir)
        .env("GATEHOUSE_CLI_REQUIRE_ACTOR", "true")
        .args(["user", "disable", "ana", "--actor", "dr.nils", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disabled = events(dir, EventType::UserDisabled);
    assert_eq!(disabled.len(), 2);
    assert_eq!(disabled[1]["actor"], "cli:dr.nils");
}

/// Issue 26 (d)(2): an operator looking at a user or listing users is recorded too.
#[tokio::test]
async fn cli_reads_of_users_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let id = create_user(dir, "ana")["id"].as_str().unwrap().to_owned();
    // Reading the trail to check is a read too (an `audit_export`): set those aside.
    let user_reads = |dir: &Path| -> Vec<Value> {
        events(dir, EventType::AdminRead)
            .into_iter()
            .filter(|e| e["details"]["object"] != "audit_export")
            .collect()
    };
    assert!(user_reads(dir).is_empty());
    assert!(
        !events(dir, EventType::AdminRead).is_empty(),
        "the exports themselves are recorded"
    );
    json(dir, &["user", "show", "ana"]);
    json(dir, &["user", "list", "--q", "an"]);
    let reads = user_reads(dir);
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(reads[0]["details"]["object"], "user");
    assert_eq!(reads[0]["subject"], id.as_str());
    assert_eq!(reads[0]["details"]["subject_username"], "ana");
    assert_eq!(reads[1]["details"]["object"], "users");
    assert_eq!(reads[1]["details"]["filter"]["q"], "an");
    assert_eq!(reads[1]["details"]["rows"], 1);
    assert!(reads.iter().all(|r| by_operator(&r["actor"])));
}
