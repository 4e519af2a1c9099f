//! `gatehouse connector` on the same database: the same service, the same checks and
//! the same trail, with `--json` for scripts.

use std::{
    io::Write,
    path::Path,
    process::{Output, Stdio},
};

use serde_json::Value;

use super::SECRET;
use crate::cli::{by_operator, gatehouse};

fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = gatehouse(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json(dir: &Path, args: &[&str], stdin: &str) -> Value {
    let out = run(dir, &[args, &["--json"]].concat(), stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(SECRET), "the secret is never printed");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn connectors_are_created_listed_linked_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let made = json(
        dir,
        &[
            "connector",
            "create",
            "--slug",
            "entra",
            "--display-name",
            "St Mary's Entra",
            "--issuer",
            "https://login.microsoftonline.com/tenant/v2.0",
            "--client-id",
            "gh-app",
            "--client-secret-stdin",
            "--scope",
            "email",
            "--domain",
            "stmarys.example",
            "--no-jit",
            "--trust-upstream-mfa",
            "--role-map",
            "GH-Admins=org_admin",
            "--groups-claim",
            "groups",
        ],
        &format!("{}\n", SECRET),
    );
    assert_eq!(made["has_client_secret"], true);
    assert_eq!(made["settings"]["accounts"]["just_in_time"], false);
    assert_eq!(made["settings"]["accounts"]["trust_upstream_mfa"], true);
    assert_eq!(
        made["settings"]["accounts"]["role_map"]["GH-Admins"],
        "org_admin"
    );
    assert_eq!(
        made["settings"]["oidc"]["scopes"],
        serde_json::json!(["email"])
    );
    assert_eq!(made["domains"], serde_json::json!(["stmarys.example"]));

    let listed = json(dir, &["connector", "list"], "");
    assert_eq!(listed[0]["slug"], "entra");
    let off = json(dir, &["connector", "disable", "entra"], "");
    assert_eq!(off["changed"], true);
    assert_eq!(
        json(dir, &["connector", "show", "entra"], "")["enabled"],
        false
    );
    let updated = json(
        dir,
        &[
            "connector",
            "update",
            "entra",
            "--display-name",
            "Entra",
            "--remove-client-secret",
        ],
        "",
    );
    assert_eq!(updated["display_name"], "Entra");
    assert_eq!(updated["has_client_secret"], false);
    assert_eq!(updated["settings"]["oidc"]["client_id"], "gh-app", "kept");

    let bad = run(
        dir,
        &[
            "connector",
            "create",
            "--slug",
            "clear",
            "--display-name",
            "X",
            "--issuer",
            "http://idp.example",
            "--client-id",
            "c",
        ],
        "",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("https"));

    let user = run(
        dir,
        &[
            "user",
            "create",
            "--username",
            "nina",
            "--email",
            "nina@example.org",
            "--password-stdin",
        ],
        "Quiet-Harbour-42\n",
    );
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
    let link = json(
        dir,
        &[
            "connector",
            "link",
            "entra",
            "--subject",
            "oid-1",
            "--user",
            "nina",
        ],
        "",
    );
    assert_eq!(link["subject"], "oid-1");
    assert_eq!(
        json(dir, &["connector", "links", "--user", "nina"], "")[0]["connector_slug"],
        "entra"
    );
    json(
        dir,
        &["connector", "unlink", "entra", "--subject", "oid-1"],
        "",
    );
    assert_eq!(
        json(dir, &["connector", "links", "entra"], ""),
        serde_json::json!([])
    );

    json(dir, &["connector", "delete", "entra"], "");
    assert_eq!(json(dir, &["connector", "list"], ""), serde_json::json!([]));
    let missing = run(dir, &["connector", "show", "entra"], "");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no connector named"));

    let out = run(dir, &["audit", "export"], "");
    let trail = String::from_utf8_lossy(&out.stdout);
    assert!(!trail.contains(SECRET));
    let changes: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["details"]["object"] == "upstream_connector")
        .collect();
    let names: Vec<&str> = changes
        .iter()
        .filter_map(|e| e["details"]["change"].as_str())
        .collect();
    assert_eq!(names, ["created", "disabled", "updated", "deleted"]);
    assert!(changes.iter().all(|e| by_operator(&e["actor"])));
}
