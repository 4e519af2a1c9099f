//! Anchors of the audit chain's head, kept outside the database: the one thing that
//! reveals the newest events deleted together with the head rewound, which leaves a
//! shorter chain that verifies (issue 26).

use std::{path::Path, sync::Arc, time::Duration};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use gatehouse::config::Config;
use serde_json::Value;

use crate::{
    audit::{record_events, tamper},
    helpers::{TestApp, eventually, spawn_app_with, spawn_with_config},
};

/// A server on SQLite in `dir`, so the CLI can open the same trail after it stops.
async fn app_in(dir: &Path) -> TestApp {
    spawn_with_config(
        Config::for_tests(dir.to_owned()),
        Arc::new(tempfile::tempdir().unwrap()),
    )
    .await
}

fn anchor_file(dir: &Path) -> std::path::PathBuf {
    dir.join("audit-anchors.jsonl")
}

/// `gatehouse audit verify [--json] --anchor FILE` on `dir`: (exit code, stdout).
fn verify_with_anchors(dir: &Path, json: bool) -> (Option<i32>, String) {
    let file = anchor_file(dir);
    let mut args = vec!["audit", "verify", "--anchor", file.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let out = crate::cli::gatehouse(dir).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// Head at seq 10, anchored; then at seq 13, anchored again; the server stopped.
async fn anchored_app(dir: &Path) -> (TestApp, Vec<Value>) {
    let app = app_in(dir).await;
    record_events(&app, 9).await;
    let first = app.state.anchoring.anchor_if_moved().await.unwrap();
    assert_eq!(first.as_ref().map(|a| a.seq), Some(10));
    assert_eq!(
        app.state.anchoring.anchor_if_moved().await.unwrap(),
        None,
        "the head did not move: no new anchor"
    );
    record_events(&app, 3).await;
    let second = app.state.anchoring.anchor_if_moved().await.unwrap();
    assert_eq!(second.map(|a| a.seq), Some(13));
    app.stop().await;
    let lines = anchors(dir);
    assert_eq!(lines.len(), 2, "{lines:?}");
    (app, lines)
}

fn anchors(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(anchor_file(dir))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[tokio::test]
async fn a_healthy_trail_verifies_against_its_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, lines) = anchored_app(dir.path()).await;
    for (line, seq) in lines.iter().zip([10, 13]) {
        assert_eq!(line["seq"], seq);
        assert_eq!(line["hash"].as_str().unwrap().len(), 64);
        assert_eq!(line["mac"].as_str().unwrap().len(), 64);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(anchor_file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the anchor file is private");
    }
    let (code, out) = verify_with_anchors(dir.path(), false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("audit trail intact") && out.contains("anchors intact: 2 anchors verified"),
        "{out}"
    );
}

#[tokio::test]
async fn a_truncated_tail_passes_the_chain_but_not_the_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let (app, lines) = anchored_app(dir.path()).await;
    // The attacker owns the database: off go the triggers, the newest three events,
    // and the head is rewound to the last event kept.
    tamper(
        &app,
        &[
            "DELETE FROM audit_events WHERE seq > 10".into(),
            "UPDATE audit_head SET seq = 10, \
             hash = (SELECT hash FROM audit_events WHERE seq = 10)"
                .into(),
        ],
    )
    .await;

    // The gap this closes: the chain alone verifies.
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("intact: 10 events"), "{stdout}");

    let (code, out) = verify_with_anchors(dir.path(), false);
    assert_eq!(code, Some(1), "{out}");
    let time = lines[1]["time"].as_str().unwrap();
    assert!(
        out.contains(&format!(
            "events 11–13 were anchored at {time} and are missing from the database"
        )),
        "{out}"
    );

    let (code, out) = verify_with_anchors(dir.path(), true);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["chain"]["intact"], true);
    assert_eq!(report["anchors"]["intact"], false);
    let problems = report["anchors"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "missing");
    assert_eq!(problems[0]["seq"], 13);
    assert_eq!(problems[0]["line"], 2);

    // The trail goes on after the truncation: new events take the anchored seqs, and
    // the anchors still tell them from the ones removed.
    record_events(&app, 3).await;
    assert!(app.state.audit.verify().await.unwrap().intact);
    let text = std::fs::read_to_string(anchor_file(dir.path())).unwrap();
    let report = app.state.audit.verify_anchors(&text).await.unwrap();
    assert!(!report.intact);
    assert_eq!(report.problems.len(), 1, "{report}");
    let problem = &report.problems[0];
    assert_eq!(
        (problem.kind, problem.seq),
        (gatehouse::audit::AnchorProblemKind::Replaced, Some(13))
    );
    assert!(
        problem.message.contains(&format!(
            "event seq 13 was anchored at {time} with hash {}",
            lines[1]["hash"].as_str().unwrap()
        )),
        "{report}"
    );
}

#[tokio::test]
async fn an_edited_or_forged_anchor_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, lines) = anchored_app(dir.path()).await;
    // Moving the second anchor back to seq 12 would hide the removal of seq 13.
    let mut edited = lines[1].clone();
    edited["seq"] = 12.into();
    let mut text = format!("{}\n{}\n", lines[0], edited);
    text.push_str("this is not an anchor\n");
    std::fs::write(anchor_file(dir.path()), text).unwrap();

    let (code, out) = verify_with_anchors(dir.path(), false);
    assert_eq!(code, Some(1), "{out}");
    let time = lines[1]["time"].as_str().unwrap();
    assert!(
        out.contains(&format!(
            "line 2 (an anchor of seq 12 at {time}) was edited or forged: its MAC does not verify"
        )) && out.contains("line 3 is not an anchor"),
        "{out}"
    );
    assert!(out.contains("1 anchors verified"), "{out}");

    // An unreadable file is "could not check", not "tampered".
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "verify", "--anchor", "/nonexistent/anchors.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the anchor file"));
}

#[tokio::test]
async fn pruned_anchored_events_are_covered_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    record_events(&app, 4).await;
    let old = app
        .state
        .anchoring
        .anchor_if_moved()
        .await
        .unwrap()
        .unwrap();
    app.clock.advance(chrono::Duration::days(
        i64::from(app.config.audit_retention_days) + 1,
    ));
    record_events(&app, 2).await;
    let cutoff = app.state.audit.latest_prune_cutoff();
    let checkpoint = app.state.audit.prune(cutoff).await.unwrap().unwrap();
    assert_eq!(checkpoint.last_seq, old.seq);
    app.state
        .anchoring
        .anchor_if_moved()
        .await
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(app.state.anchoring.file()).unwrap();
    let report = app.state.audit.verify_anchors(&text).await.unwrap();
    assert!(report.intact, "{report}");
    assert_eq!(report.anchors_verified, 2);
}

#[tokio::test]
async fn anchors_are_written_on_a_timer_and_at_shutdown_and_sent_as_a_webhook() {
    let app = spawn_app_with(|c| {
        c.audit_anchor_secs = 1;
        c.webhook_url = Some("http://127.0.0.1:9/hooks/anchors".parse().unwrap());
        c.webhook_secret = Some("an-anchor-webhook-secret-0123456789".to_owned().into());
    })
    .await;
    let file = app.state.anchoring.file().to_owned();
    let head = |app: &TestApp| {
        let audit = app.state.audit.clone();
        async move { audit.verify().await.unwrap().head_seq }
    };
    let seq = head(&app).await;
    let last_anchored = |file: std::path::PathBuf| async move {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|v| v["seq"].as_i64())
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            last_anchored(file.clone()).await == Some(seq)
        })
        .await,
        "no timed anchor of seq {seq}"
    );

    // Events after the last tick: the clean shutdown anchors them.
    record_events(&app, 2).await;
    app.stop().await;
    let seq = head(&app).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            last_anchored(file.clone()).await == Some(seq)
        })
        .await,
        "no anchor of seq {seq} at shutdown"
    );

    use gatehouse::store::schema::outbox;
    let payloads: Vec<Option<String>> = app
        .state
        .store
        .run(|c| {
            Ok(outbox::table
                .filter(outbox::subject.eq("audit.anchor"))
                .select(outbox::payload)
                .load(c)?)
        })
        .await
        .unwrap();
    assert!(!payloads.is_empty(), "no audit.anchor webhook queued");
    let body: Value = serde_json::from_str(payloads[0].as_deref().unwrap()).unwrap();
    assert_eq!(body["event"], "audit.anchor");
    assert!(body["data"]["mac"].as_str().is_some_and(|m| m.len() == 64));
    // What a receiver keeps is as good as the file: each `data` one line.
    let received: String = payloads
        .iter()
        .map(|p| {
            let body: Value = serde_json::from_str(p.as_deref().unwrap()).unwrap();
            format!("{}\n", body["data"])
        })
        .collect();
    let report = app.state.audit.verify_anchors(&received).await.unwrap();
    assert!(report.intact, "{report}");
    assert_eq!(report.anchors_verified as usize, payloads.len());
}
