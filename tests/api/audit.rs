//! The audit trail as an auditor and an attacker with database access see it: events
//! are recorded, secrets never reach a row, and every edit made directly in the
//! database — a changed field, a deleted, swapped or forged row, a doctored
//! checkpoint — is named by `audit verify`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use diesel::{Connection, RunQueryDsl};
use gatehouse::{
    audit::{Audit, AuditEvent, AuditFilter, AuditRecord, EventType, Outcome, ProblemKind},
    clock::{Clock, SystemClock},
    config::DatabaseTarget,
    crypto::MasterKey,
    store::{DbConnection, Store},
};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, create_user, skip, spawn_app, spawn_app_with, spawn_with_config, test_config,
    test_database_url,
};

/// Every new instance's trail starts with one event: the first administrator's creation
/// (seq 1). Events a test records follow it.
const FIRST_START_EVENTS: usize = 1;

/// Events 2..=n+1 (on a fresh app): sign-in failures for `user-1` … `user-n`.
pub(crate) async fn record_events(app: &TestApp, n: usize) {
    for i in 1..=n {
        app.state
            .audit
            .record(
                AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
                    .org("org-1")
                    .subject(format!("user-{i}"))
                    .detail("reason", "wrong_password"),
            )
            .await
            .expect("recorded");
    }
}

async fn app_with_events(n: usize) -> TestApp {
    let app = spawn_app().await;
    record_events(&app, n).await;
    app
}

/// Every stored event, oldest first, through the export.
async fn all_events(app: &TestApp) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    app.state.audit.export(None, &mut out).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("valid JSON line"))
        .map(|v| AuditRecord {
            seq: v["seq"].as_i64().unwrap(),
            id: v["id"].as_str().unwrap().to_owned(),
            time: v["time"].as_str().unwrap().parse().unwrap(),
            org_id: v["org_id"].as_str().map(str::to_owned),
            actor: v["actor"].as_str().map(str::to_owned),
            subject: v["subject"].as_str().map(str::to_owned),
            event_type: v["type"].as_str().unwrap().to_owned(),
            outcome: v["outcome"].as_str().unwrap().to_owned(),
            client_ip: v["client_ip"].as_str().map(str::to_owned),
            user_agent: v["user_agent"].as_str().map(str::to_owned),
            request_id: v["request_id"].as_str().map(str::to_owned),
            details: v["details"].clone(),
            prev_hash: v["prev_hash"].as_str().unwrap().to_owned(),
            hash: v["hash"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The stored event about `subject`.
async fn event_about(app: &TestApp, subject: &str) -> AuditRecord {
    let found = app
        .state
        .audit
        .query(
            AuditFilter {
                user: Some(subject.into()),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{subject}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Runs statements directly against the database, as an attacker with the database
/// owner's rights would: first out of the way go the triggers that keep the trail
/// append-only (which the owner may drop or disable), then the edits, which the hash
/// chain must still reveal.
pub(crate) async fn tamper(app: &TestApp, statements: &[String]) {
    let statements = statements.to_vec();
    app.state
        .store
        .run(move |c| {
            let disable: &[&str] = match c {
                DbConnection::Postgresql(_) => &[
                    "ALTER TABLE audit_events DISABLE TRIGGER USER",
                    "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER",
                ],
                DbConnection::Sqlite(_) => &[
                    "DROP TRIGGER IF EXISTS audit_events_no_update",
                    "DROP TRIGGER IF EXISTS audit_events_no_delete",
                    "DROP TRIGGER IF EXISTS audit_checkpoints_no_update",
                    "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete",
                ],
            };
            for sql in disable {
                diesel::sql_query(*sql).execute(c)?;
            }
            for sql in statements {
                diesel::sql_query(sql).execute(c)?;
            }
            Ok(())
        })
        .await
        .expect("tampering statements run");
}

/// Runs statements in one transaction as someone with write access who leaves the
/// triggers alone; the database's answer (rows the last one touched).
async fn attempt_all(app: &TestApp, statements: &[&str]) -> Result<usize, String> {
    let statements: Vec<String> = statements.iter().map(|s| (*s).to_owned()).collect();
    app.state
        .store
        .run(move |c| {
            Ok(c.transaction(|c| {
                let mut rows = 0;
                for sql in &statements {
                    rows = diesel::sql_query(sql).execute(c)?;
                }
                Ok::<_, diesel::result::Error>(rows)
            }))
        })
        .await
        .expect("the database answers")
        .map_err(|e| e.to_string())
}

fn is_postgres(app: &TestApp) -> bool {
    app.config
        .database_url
        .as_ref()
        .is_some_and(|u| u.scheme().starts_with("postgres"))
}

/// A server on SQLite whatever the environment says, so both backends are attacked in
/// one run.
async fn sqlite_app() -> TestApp {
    spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await
}

/// Asserts the database refused `sql` as an edit of the append-only trail.
async fn assert_refused(app: &TestApp, statements: &[&str]) {
    let backend = if is_postgres(app) {
        "postgres"
    } else {
        "sqlite"
    };
    let err = attempt_all(app, statements)
        .await
        .expect_err(&format!("{backend}: not refused: {statements:?}"));
    assert!(
        err.contains("append-only"),
        "{backend}: {statements:?}: {err}"
    );
}

#[tokio::test]
async fn the_database_refuses_to_update_delete_or_truncate_events() {
    for app in [spawn_app().await, sqlite_app().await] {
        record_events(&app, 5).await;
        let backend = if is_postgres(&app) {
            "postgres"
        } else {
            "sqlite"
        };
        // The prune path's permit, which is for deleting events only.
        let permit = if is_postgres(&app) {
            "SET LOCAL gatehouse.audit_prune = 'on'"
        } else {
            "INSERT INTO audit_prune_permit (id) VALUES (1)"
        };
        for sql in [
            "UPDATE audit_events SET subject = 'someone-else' WHERE seq = 3",
            "UPDATE audit_events SET seq = seq + 100",
            "DELETE FROM audit_events WHERE seq = 6",
            "DELETE FROM audit_events",
        ] {
            assert_refused(&app, &[sql]).await;
        }
        if is_postgres(&app) {
            assert_refused(&app, &["TRUNCATE audit_events"]).await;
        }
        assert_refused(
            &app,
            &[
                permit,
                "UPDATE audit_events SET outcome = 'success' WHERE seq = 2",
            ],
        )
        .await;
        assert_eq!(all_events(&app).await.len(), 6, "{backend}");
        assert!(app.state.audit.verify().await.unwrap().intact, "{backend}");

        // Retention still prunes, through its documented exception.
        app.clock.advance(Duration::days(RETENTION_DAYS + 1));
        record_events(&app, 1).await;
        let checkpoint = app.state.audit.prune(retention_cutoff(&app)).await.unwrap();
        assert_eq!(checkpoint.map(|c| c.last_seq), Some(6), "{backend}");

        // The checkpoint it left cannot be changed or removed, permit or not.
        for sql in [
            "UPDATE audit_checkpoints SET last_seq = 7",
            "DELETE FROM audit_checkpoints",
        ] {
            assert_refused(&app, &[sql]).await;
            assert_refused(&app, &[permit, sql]).await;
        }
        if is_postgres(&app) {
            assert_refused(&app, &["TRUNCATE audit_checkpoints"]).await;
        }
        // And the permit did not outlive the prune.
        assert_refused(&app, &["DELETE FROM audit_events WHERE seq = 7"]).await;
        let report = app.state.audit.verify().await.unwrap();
        assert!(report.intact, "{backend}: {report}");
        assert_eq!(report.checkpoint.map(|c| c.last_seq), Some(6));
    }
}

/// Asserts `verify` names a problem of `kind` at `seq` (and the event's id, if given).
async fn assert_problem(app: &TestApp, kind: ProblemKind, seq: i64, id: Option<&str>) {
    let report = app.state.audit.verify().await.unwrap();
    assert!(!report.intact, "tampering went unnoticed: {report}");
    let problem = report.problem.as_ref().unwrap();
    assert_eq!(
        (problem.kind, problem.seq),
        (kind, seq),
        "wrong diagnosis: {report}"
    );
    assert!(problem.message.contains(&format!("seq {seq}")), "{problem}");
    if let Some(id) = id {
        assert_eq!(problem.id.as_deref(), Some(id), "{problem}");
        assert!(problem.message.contains(id), "{problem}");
    }
}

const FORGED_HASH: &str = "abababababababababababababababababababababababababababababababab";

/// INSERT of a row copied from event `from` with the given seq, id, prev_hash and hash
/// expressions (SQL), and subject 'mallory'.
fn forge(seq: i64, from: i64, id: &str, prev_hash: &str, hash: &str) -> String {
    format!(
        "INSERT INTO audit_events (seq, id, occurred_at, org_id, actor, subject, event_type, \
         outcome, client_ip, user_agent, request_id, details, prev_hash, hash) \
         SELECT {seq}, '{id}', occurred_at, org_id, actor, 'mallory', 'sign_in.succeeded', \
         'success', client_ip, user_agent, request_id, details, {prev_hash}, {hash} \
         FROM audit_events WHERE seq = {from}"
    )
}

#[tokio::test]
async fn an_untouched_chain_verifies() {
    let app = app_with_events(25).await;
    let report = app.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    assert!(report.problem.is_none());
    assert_eq!(report.events_verified, 26);
    assert_eq!(
        (report.first_seq, report.last_seq, report.head_seq),
        (Some(1), Some(26), 26)
    );
    let events = all_events(&app).await;
    assert_eq!(events.len(), 26);
    assert_eq!(events[0].event_type, "user.created");
    assert_eq!(report.head_hash, events[25].hash);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "each event links to the one before"
        );
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }

    // A new instance's trail holds only the first administrator's creation.
    let new = spawn_app().await;
    let report = new.state.audit.verify().await.unwrap();
    assert!(
        report.intact && report.events_verified as usize == FIRST_START_EVENTS,
        "{report}"
    );
}

#[tokio::test]
async fn a_changed_field_is_named_as_altered() {
    let app = app_with_events(10).await;
    let target = event_about(&app, "user-4").await;
    tamper(
        &app,
        &[format!(
            "UPDATE audit_events SET subject = 'user-9' WHERE seq = {}",
            target.seq
        )],
    )
    .await;
    assert_problem(&app, ProblemKind::Altered, target.seq, Some(&target.id)).await;
}

#[tokio::test]
async fn changed_details_or_time_are_named_as_altered() {
    let app = app_with_events(10).await;
    let target = event_about(&app, "user-6").await;
    tamper(
        &app,
        &[format!(
            "UPDATE audit_events SET details = '{{\"reason\":\"unknown_user\"}}' WHERE seq = {}",
            target.seq
        )],
    )
    .await;
    assert_problem(&app, ProblemKind::Altered, target.seq, Some(&target.id)).await;

    // The newest event has no successor: the head vouches for it instead.
    let app = app_with_events(10).await;
    let last = event_about(&app, "user-10").await;
    tamper(
        &app,
        &[format!(
            "UPDATE audit_events SET occurred_at = '2001-01-01 00:00:00' WHERE seq = {}",
            last.seq
        )],
    )
    .await;
    assert_problem(&app, ProblemKind::Altered, last.seq, Some(&last.id)).await;
}

#[tokio::test]
async fn a_deleted_row_is_named_as_removed() {
    let app = app_with_events(10).await;
    let target = event_about(&app, "user-5").await;
    tamper(
        &app,
        &[format!(
            "DELETE FROM audit_events WHERE seq = {}",
            target.seq
        )],
    )
    .await;
    assert_problem(&app, ProblemKind::Removed, target.seq, None).await;

    // The first and the newest events too.
    let app = app_with_events(10).await;
    tamper(&app, &["DELETE FROM audit_events WHERE seq = 1".into()]).await;
    assert_problem(&app, ProblemKind::Removed, 1, None).await;

    let app = app_with_events(10).await;
    tamper(&app, &["DELETE FROM audit_events WHERE seq = 10".into()]).await;
    assert_problem(&app, ProblemKind::Removed, 10, None).await;
}

#[tokio::test]
async fn a_deleted_head_is_reported_and_stops_appends() {
    let app = app_with_events(3).await;
    tamper(&app, &["DELETE FROM audit_head".into()]).await;
    let report = app.state.audit.verify().await.unwrap();
    assert!(!report.intact, "{report}");
    assert_eq!(report.problem.unwrap().kind, ProblemKind::Removed);
    let err = app
        .state
        .audit
        .record(AuditEvent::new(EventType::KeyRotated, Outcome::Success))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("audit_head"), "{err}");
}

fn swap(a: i64, b: i64) -> Vec<String> {
    vec![
        format!("UPDATE audit_events SET seq = -1000 WHERE seq = {a}"),
        format!("UPDATE audit_events SET seq = {a} WHERE seq = {b}"),
        format!("UPDATE audit_events SET seq = {b} WHERE seq = -1000"),
    ]
}

#[tokio::test]
async fn two_swapped_rows_are_named_as_reordered() {
    let app = app_with_events(10).await;
    let first = event_about(&app, "user-3").await;
    let second = event_about(&app, "user-4").await;
    tamper(&app, &swap(first.seq, second.seq)).await;
    // Seq 3 now holds what was written as event 4.
    assert_problem(&app, ProblemKind::Reordered, first.seq, Some(&second.id)).await;

    let app = app_with_events(10).await;
    tamper(&app, &swap(2, 7)).await;
    let moved = event_about(&app, "user-6").await;
    assert_problem(&app, ProblemKind::Reordered, 2, Some(&moved.id)).await;

    // The last two: the head names where the chain really ends.
    let app = app_with_events(10).await;
    tamper(&app, &swap(10, 11)).await;
    let moved = event_about(&app, "user-10").await;
    assert_problem(&app, ProblemKind::Reordered, 10, Some(&moved.id)).await;
}

#[tokio::test]
async fn a_forged_row_is_named_as_inserted() {
    // Appended after the end of the chain, linking to it, without touching the head.
    let app = app_with_events(10).await;
    tamper(
        &app,
        &[forge(
            12,
            11,
            "forged-1",
            "hash",
            &format!("'{FORGED_HASH}'"),
        )],
    )
    .await;
    assert_problem(&app, ProblemKind::Inserted, 12, Some("forged-1")).await;

    // Slipped into the middle, the later rows renumbered to make room.
    let app = app_with_events(10).await;
    tamper(
        &app,
        &[
            "UPDATE audit_events SET seq = -seq WHERE seq >= 5".into(),
            "UPDATE audit_events SET seq = 1 - seq WHERE seq < 0".into(),
            forge(
                5,
                4,
                "forged-2",
                "(SELECT hash FROM audit_events WHERE seq = 4)",
                &format!("'{FORGED_HASH}'"),
            ),
            "UPDATE audit_head SET seq = seq + 1".into(),
        ],
    )
    .await;
    assert_problem(&app, ProblemKind::Inserted, 5, Some("forged-2")).await;

    // A replayed copy of a genuine event.
    let app = app_with_events(10).await;
    tamper(&app, &[forge(12, 3, "copy-3", "prev_hash", "hash")]).await;
    assert_problem(&app, ProblemKind::Inserted, 12, Some("copy-3")).await;
}

#[tokio::test]
async fn audit_verify_on_the_command_line_names_the_tampered_event_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_config(
        gatehouse::config::Config::for_tests(dir.path().to_owned()),
        Arc::new(tempfile::tempdir().unwrap()),
    )
    .await;
    record_events(&app, 6).await;
    let target = event_about(&app, "user-3").await;
    app.stop().await;

    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("intact") && stdout.contains("7 events"),
        "{stdout}"
    );

    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The seven events, then the export itself: a read of the trail is recorded before
    // the first line leaves, naming the person at the terminal (ONC 170.315 (d)(2)).
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[3]["id"], target.id.as_str());
    assert_eq!(lines[7]["type"], "admin.read");
    assert_eq!(lines[7]["details"]["object"], "audit_export");
    assert!(crate::cli::by_operator(&lines[7]["actor"]), "{}", lines[7]);
    for (since, expected) in [
        // The seven, the first export's event, and this one's.
        ("2000-01-01T00:00:00Z", 9),
        ("2999-01-01T00:00:00+02:00", 0),
    ] {
        let out = crate::cli::gatehouse(dir.path())
            .args(["audit", "export", "--since", since])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().lines().count(),
            expected
        );
    }
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "export", "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    // Six years of retention: nothing to prune yet.
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "prune"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing older than"));

    tamper(
        &app,
        &[format!(
            "UPDATE audit_events SET outcome = 'success' WHERE seq = {}",
            target.seq
        )],
    )
    .await;
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("seq {}", target.seq))
            && stdout.contains(&target.id)
            && stdout.contains("altered"),
        "{stdout}"
    );

    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["problem"]["kind"], "altered");
    assert_eq!(report["problem"]["seq"], target.seq);
    assert_eq!(report["problem"]["id"], target.id.as_str());

    // Pruning a tampered trail would erase the evidence: refused.
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "prune", "--older-than", "2000-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to prune a trail that does not verify"),
        "{stderr}"
    );
    // Nothing pruned: the seven events and the three exports' reads are all there.
    assert_eq!(all_events(&app).await.len(), 10);

    // A cut-off inside the retention period is refused whatever the trail's state, in
    // one line naming what was asked and the latest cut-off allowed.
    let out = crate::cli::gatehouse(dir.path())
        .args(["audit", "prune", "--before", "2999-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let latest = (Utc::now() - Duration::days(RETENTION_DAYS))
        .date_naive()
        .to_string();
    assert!(
        stderr.contains("refusing to prune events before 2999-01-01T00:00:00+00:00")
            && stderr.contains("audit_retention_days is 2192")
            && stderr.contains(&format!("latest cut-off allowed is {latest}"))
            && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(all_events(&app).await.len(), 10, "still nothing pruned");
}

#[test]
fn audit_verify_that_cannot_reach_the_database_exits_2_not_1() {
    // 1 means "tampered"; an outage must not page anyone about tampering.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::gatehouse(dir.path())
        .env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env(
            "GATEHOUSE_MASTER_KEY",
            crate::helpers::base64_key(&MasterKey::generate()),
        )
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot verify"), "{stderr}");
}

#[tokio::test]
async fn details_that_look_secret_never_reach_the_trail() {
    let app = spawn_app().await;
    let password = "Correct-Horse-Battery-9";
    let reset_token = "rt_5f0c1e1d9a8b7c6d";
    app.state
        .audit
        .record(
            AuditEvent::new(EventType::PasswordReset, Outcome::Success)
                .subject("user-1")
                .details(json!({
                    "password": password,
                    "reset_token": reset_token,
                    "via": "email",
                    "nested": {"newPassword": password, "otp_code": "123456"},
                })),
        )
        .await
        .unwrap();
    let events = all_events(&app).await;
    assert_eq!(events.len(), FIRST_START_EVENTS + 1);
    assert_eq!(events[1].details, json!({"via": "email", "nested": {}}));
    let mut export = Vec::new();
    app.state.audit.export(None, &mut export).await.unwrap();
    let text = String::from_utf8(export).unwrap();
    for needle in [
        password,
        reset_token,
        "123456",
        "\"password\"",
        "reset_token",
        "newPassword",
        "otp_code",
    ] {
        assert!(!text.contains(needle), "{needle} stored: {text}");
    }
    assert!(app.state.audit.verify().await.unwrap().intact);
}

#[tokio::test]
async fn creating_an_account_records_user_created() {
    let app = spawn_app().await;
    let user = create_user(&app, "rosa", "Quiet-Harbour-42", false).await;
    let found = app
        .state
        .audit
        .query(
            AuditFilter {
                user: Some(user.id.clone()),
                event_type: Some(EventType::UserCreated),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let event = &found[0];
    assert_eq!(event.outcome, "success");
    assert_eq!(event.org_id.as_deref(), Some(user.org_id.as_str()));
    assert_eq!(event.actor, None);
    // The writer names the subject and organisation beside their ids (issue 26).
    assert_eq!(
        event.details,
        json!({"username": "rosa", "role": "user", "subject_username": "rosa", "org_name": "default"})
    );
    let line = serde_json::to_string(event).unwrap();
    assert!(
        !line.contains("Quiet-Harbour-42") && !line.contains("argon2"),
        "{line}"
    );
}

#[tokio::test]
async fn queries_filter_and_page_newest_first() {
    let app = spawn_app().await;
    let t0 = app.clock.now();
    for i in 0..12 {
        let (event_type, outcome) = if i % 3 == 0 {
            (EventType::SignInSucceeded, Outcome::Success)
        } else {
            (EventType::SignInFailed, Outcome::Failure)
        };
        app.state
            .audit
            .record(
                AuditEvent::new(event_type, outcome)
                    .org(if i < 6 { "org-a" } else { "org-b" })
                    .subject(format!("user-{}", i % 4))
                    .actor(if i == 11 { "admin-1" } else { "self" }),
            )
            .await
            .unwrap();
        app.clock.advance(Duration::minutes(1));
    }
    let audit = &app.state.audit;
    let query = |filter: AuditFilter, limit, before| async move {
        audit
            .query(filter, limit, before)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };

    assert_eq!(
        query(AuditFilter::default(), 5, None).await,
        vec![13, 12, 11, 10, 9]
    );
    assert_eq!(
        query(AuditFilter::default(), 5, Some(9)).await,
        vec![8, 7, 6, 5, 4]
    );
    // Seq 1 is the first administrator's creation.
    assert_eq!(
        query(AuditFilter::default(), 5, Some(4)).await,
        vec![3, 2, 1]
    );
    let by = |f: fn(&mut AuditFilter)| {
        let mut filter = AuditFilter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(
        query(by(|f| f.user = Some("user-1".into())), 100, None).await,
        vec![11, 7, 3]
    );
    assert_eq!(
        query(by(|f| f.user = Some("admin-1".into())), 100, None).await,
        vec![13],
        "the actor counts as the user too"
    );
    assert_eq!(
        query(
            by(|f| f.event_type = Some(EventType::SignInSucceeded)),
            100,
            None
        )
        .await,
        vec![11, 8, 5, 2]
    );
    assert_eq!(
        query(by(|f| f.outcome = Some(Outcome::Success)), 100, None).await,
        vec![11, 8, 5, 2, 1]
    );
    assert_eq!(
        query(by(|f| f.org_id = Some("org-a".into())), 100, None).await,
        vec![7, 6, 5, 4, 3, 2]
    );
    let mut window = AuditFilter {
        from: Some(t0 + Duration::minutes(2)),
        to: Some(t0 + Duration::minutes(5)),
        ..Default::default()
    };
    assert_eq!(query(window.clone(), 100, None).await, vec![6, 5, 4]);
    window.org_id = Some("org-b".into());
    assert!(query(window, 100, None).await.is_empty());
    assert_eq!(
        query(AuditFilter::default(), 0, None).await.len(),
        1,
        "limit is clamped to at least one"
    );
}

#[tokio::test]
async fn export_since_filters_by_time_and_writes_json_lines() {
    let app = spawn_app().await;
    let t0 = app.clock.now();
    record_events(&app, 3).await;
    app.clock.advance(Duration::hours(1));
    for i in 0..4 {
        app.state
            .audit
            .record(
                AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                    .subject(format!("later-{i}"))
                    .detail("reason", "logout"),
            )
            .await
            .unwrap();
    }
    let since: DateTime<Utc> = t0 + Duration::minutes(30);
    let mut out = Vec::new();
    let written = app.state.audit.export(Some(since), &mut out).await.unwrap();
    assert_eq!(written, 4);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 4);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["type"], "session.ended");
        assert_eq!(line["outcome"], "success");
        assert_eq!(line["details"], json!({"reason": "logout"}));
        assert_eq!(line["subject"], format!("later-{i}"));
        let time: DateTime<Utc> = line["time"].as_str().unwrap().parse().unwrap();
        assert!(time >= since);
    }
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![5, 6, 7, 8]);

    let mut all = Vec::new();
    assert_eq!(app.state.audit.export(None, &mut all).await.unwrap(), 8);
    let mut none = Vec::new();
    let later = t0 + Duration::days(1);
    assert_eq!(
        app.state
            .audit
            .export(Some(later), &mut none)
            .await
            .unwrap(),
        0
    );
    assert!(none.is_empty());
}

/// The default `audit_retention_days`: events younger than this are never pruned.
const RETENTION_DAYS: i64 = 2192;

/// The latest cut-off `prune` accepts on `app` now.
fn retention_cutoff(app: &TestApp) -> DateTime<Utc> {
    app.clock.now() - Duration::days(RETENTION_DAYS)
}

/// Events 1..=10 old (the first start's and nine more), then a day past the retention
/// period events 11..=20; everything past the retention period is pruned.
async fn pruned_app() -> (TestApp, gatehouse::audit::Checkpoint) {
    let app = spawn_app().await;
    record_events(&app, 10 - FIRST_START_EVENTS).await;
    app.clock.advance(Duration::days(RETENTION_DAYS + 1));
    let cutoff = retention_cutoff(&app);
    for i in 11..=20 {
        app.state
            .audit
            .record(
                AuditEvent::new(EventType::TokenIssued, Outcome::Success)
                    .subject(format!("user-{i}")),
            )
            .await
            .unwrap();
    }
    let checkpoint = app
        .state
        .audit
        .prune(cutoff)
        .await
        .unwrap()
        .expect("something pruned");
    (app, checkpoint)
}

#[tokio::test]
async fn pruning_leaves_a_checkpoint_from_which_the_rest_verifies() {
    let (app, checkpoint) = pruned_app().await;
    assert_eq!(checkpoint.last_seq, 10);
    assert_eq!(checkpoint.pruned_events, 10);

    let events = all_events(&app).await;
    assert_eq!(events.first().unwrap().seq, 11, "the oldest half is gone");
    assert_eq!(events.first().unwrap().prev_hash, checkpoint.last_hash);
    let pruned = events.last().unwrap();
    assert_eq!(pruned.event_type, "audit.pruned");
    assert_eq!(pruned.details["pruned_events"], 10);

    let report = app.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    assert_eq!(report.events_verified, 11);
    assert_eq!(report.checkpoint.as_ref().unwrap().last_seq, 10);

    // Nothing more is old enough.
    let again = retention_cutoff(&app);
    assert_eq!(app.state.audit.prune(again).await.unwrap(), None);

    // Events keep chaining after the checkpoint.
    record_events(&app, 2).await;
    assert!(app.state.audit.verify().await.unwrap().intact);
}

#[tokio::test]
async fn a_doctored_or_missing_checkpoint_is_detected() {
    // Moving the checkpoint forward would hide the removal of events 11 and 12.
    let (app, _) = pruned_app().await;
    tamper(
        &app,
        &[
            "UPDATE audit_checkpoints SET last_seq = 12, last_hash = \
             (SELECT hash FROM audit_events WHERE seq = 12)"
                .into(),
            "DELETE FROM audit_events WHERE seq <= 12".into(),
        ],
    )
    .await;
    assert_problem(&app, ProblemKind::Checkpoint, 12, None).await;

    let (app, _) = pruned_app().await;
    tamper(
        &app,
        &["UPDATE audit_checkpoints SET pruned_events = 3".into()],
    )
    .await;
    assert_problem(&app, ProblemKind::Checkpoint, 10, None).await;

    // Without its checkpoint the pruned chain starts with a gap.
    let (app, _) = pruned_app().await;
    tamper(&app, &["DELETE FROM audit_checkpoints".into()]).await;
    assert_problem(&app, ProblemKind::Removed, 1, None).await;

    // And the first event kept is still protected.
    let (app, _) = pruned_app().await;
    tamper(&app, &["DELETE FROM audit_events WHERE seq = 11".into()]).await;
    assert_problem(&app, ProblemKind::Removed, 11, None).await;
}

#[tokio::test]
async fn a_trail_that_does_not_verify_is_not_pruned() {
    let app = app_with_events(10).await;
    tamper(
        &app,
        &["UPDATE audit_events SET subject = 'someone' WHERE seq = 2".into()],
    )
    .await;
    app.clock.advance(Duration::days(RETENTION_DAYS + 1));
    let err = app
        .state
        .audit
        .prune(retention_cutoff(&app))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("seq 2"), "{err}");
    assert_eq!(all_events(&app).await.len(), 11, "the evidence is kept");
}

#[tokio::test]
async fn no_cutoff_inside_the_retention_period_is_pruned() {
    let app = app_with_events(10).await;
    app.clock.advance(Duration::days(30));
    // A caller of the capability itself (not only the CLI) asks for everything older
    // than now, a day, and a day inside the retention period: each is refused.
    for asked in [
        app.clock.now() + Duration::days(1),
        app.clock.now(),
        retention_cutoff(&app) + Duration::days(1),
    ] {
        let err = app.state.audit.prune(asked).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "refusing to prune events before {}",
                asked.to_rfc3339()
            )) && text.contains(&format!(
                "latest cut-off allowed is {}",
                retention_cutoff(&app).to_rfc3339()
            )),
            "{text}"
        );
    }
    assert_eq!(all_events(&app).await.len(), 11, "nothing was deleted");
    // The retention period's own boundary is allowed (nothing is that old here).
    assert_eq!(
        app.state.audit.prune(retention_cutoff(&app)).await.unwrap(),
        None
    );

    // A shorter retention than a year cannot be asked for, even in code.
    let short = app.state.audit.clone().with_retention(10);
    let err = short
        .prune(app.clock.now() - Duration::days(20))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("audit_retention_days is 365"),
        "{err}"
    );
    assert_eq!(all_events(&app).await.len(), 11);
}

/// `writers` tasks each recording `per_writer` events through `audit`.
async fn hammer(audit: &Audit, label: &str, writers: usize, per_writer: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let audit = audit.clone();
        let label = label.to_owned();
        tasks.spawn(async move {
            for i in 0..per_writer {
                audit
                    .record(
                        AuditEvent::new(EventType::TokenIssued, Outcome::Success)
                            .subject(format!("{label}-{w}-{i}"))
                            .detail("client_id", "bench"),
                    )
                    .await
                    .expect("recorded under concurrency");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task");
    }
}

/// Two instances on one fresh PostgreSQL schema with one master key, as a deployment
/// of several instances is; `None` (and a line saying so) without PostgreSQL.
async fn two_instances_on_postgres(test: &str) -> Option<(TestApp, TestApp)> {
    if test_database_url().is_none() {
        skip(test, "GATEHOUSE_TEST_DATABASE_URL not set");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir);
    let a = spawn_with_config(config.clone(), Arc::new(dir)).await;
    let b = spawn_with_config(config, Arc::new(tempfile::tempdir().unwrap())).await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_keep_one_chain_under_concurrent_writes() {
    let Some((a, b)) = two_instances_on_postgres(
        "two_instances_on_one_postgres_keep_one_chain_under_concurrent_writes",
    )
    .await
    else {
        return;
    };

    let (audit_a, audit_b) = (a.state.audit.clone(), b.state.audit.clone());
    let one = tokio::spawn(async move { hammer(&audit_a, "a", 8, 625).await });
    let two = tokio::spawn(async move { hammer(&audit_b, "b", 8, 625).await });
    one.await.unwrap();
    two.await.unwrap();

    let report = b.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    // The second instance found the first's administrator: one first start between them.
    let total = 10_000 + FIRST_START_EVENTS;
    assert_eq!(report.events_verified as usize, total);
    assert_eq!(report.head_seq as usize, total);
    let events = all_events(&a).await;
    let from_a = events
        .iter()
        .filter(|e| e.subject.as_deref().is_some_and(|s| s.starts_with("a-")))
        .count();
    assert_eq!((events.len(), from_a), (total, 5_000));
}

/// An event with every optional column filled (or, `full = false`, none of them), so
/// a column the one-statement append put in the wrong place fails verification.
fn varied_event(i: usize, full: bool) -> AuditEvent {
    let event = AuditEvent::new(EventType::TokenIssued, Outcome::Success)
        .detail("client_id", format!("client-{i}"));
    if !full {
        return event;
    }
    let ctx = gatehouse::web::RequestContext {
        request_id: format!("req-{i}"),
        client_ip: Some(std::net::IpAddr::from([192, 0, 2, 7])),
        user_agent: Some(format!("agent/{i}")),
    };
    event
        .org("org-1")
        .actor(format!("actor-{i}"))
        .subject(format!("subject-{i}"))
        .request(&ctx)
}

#[tokio::test]
async fn an_instance_appends_in_one_statement_until_another_instance_moves_the_chain() {
    let Some((a, b)) = two_instances_on_postgres(
        "an_instance_appends_in_one_statement_until_another_instance_moves_the_chain",
    )
    .await
    else {
        return;
    };
    const DIRECT: &str = "gatehouse_audit_appends_total{path=\"direct\"}";
    const LOCKED: &str = "gatehouse_audit_appends_total{path=\"locked\"}";

    // Make sure `a` knows where the chain ends (its first append reads the head).
    a.state.audit.record(varied_event(0, true)).await.unwrap();
    let (direct, locked) = (a.metric(DIRECT).await, a.metric(LOCKED).await);
    for i in 1..=4 {
        a.state
            .audit
            .record(varied_event(i, i % 2 == 0))
            .await
            .unwrap();
    }
    assert_eq!(a.metric(DIRECT).await - direct, 4.0, "one statement each");
    assert_eq!(a.metric(LOCKED).await, locked);

    // Another instance moves the chain: `a`'s idea of the head is stale now.
    b.state.audit.record(varied_event(5, true)).await.unwrap();
    a.state.audit.record(varied_event(6, false)).await.unwrap();
    assert_eq!(
        a.metric(DIRECT).await - direct,
        4.0,
        "stale head: nothing written"
    );
    assert_eq!(
        a.metric(LOCKED).await - locked,
        1.0,
        "redone under the lock"
    );
    a.state.audit.record(varied_event(7, true)).await.unwrap();
    assert_eq!(
        a.metric(DIRECT).await - direct,
        5.0,
        "back to one statement"
    );

    let report = a.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    let events = all_events(&a).await;
    let ours: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "token.issued")
        .collect();
    assert_eq!(ours.len(), 8, "each event exactly once");
    let full = ours
        .iter()
        .find(|e| e.actor.as_deref() == Some("actor-2"))
        .expect("event 2");
    assert_eq!(full.subject.as_deref(), Some("subject-2"));
    assert_eq!(full.org_id.as_deref(), Some("org-1"));
    assert_eq!(full.client_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(full.user_agent.as_deref(), Some("agent/2"));
    assert_eq!(full.request_id.as_deref(), Some("req-2"));
    let bare = ours
        .iter()
        .find(|e| e.details["client_id"] == "client-3")
        .expect("event 3");
    assert_eq!(
        (
            &bare.actor,
            &bare.subject,
            &bare.client_ip,
            &bare.request_id
        ),
        (&None, &None, &None, &None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_sqlite_keep_one_chain() {
    let app = spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    // A second pool on the same file, as `gatehouse user create` next to a running
    // server would be: its appends queue on SQLite's write lock.
    let target = DatabaseTarget::Sqlite(app.config.data_dir.join("gatehouse.db"));
    let other_store = tokio::task::spawn_blocking(move || Store::connect(&target, 2))
        .await
        .unwrap()
        .unwrap();
    let key = MasterKey::from_file(app.config.data_dir.join("master.key")).unwrap();
    let other = Audit::open(other_store, &key, Arc::new(SystemClock))
        .await
        .unwrap();

    let main = app.state.audit.clone();
    let one = tokio::spawn(async move { hammer(&main, "main", 16, 150).await });
    let two = tokio::spawn(async move { hammer(&other, "cli", 4, 150).await });
    one.await.unwrap();
    two.await.unwrap();

    let report = app.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    assert_eq!(report.events_verified as usize, 3_000 + FIRST_START_EVENTS);
}
