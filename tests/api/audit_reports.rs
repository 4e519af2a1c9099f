//! Audit reports and exports through the admin API (issue 26, ONC 170.315 (d)(2) and
//! (d)(3)), as an auditor and as an organisation administrator trying to see more than
//! their organisation: filters, both orders, JSON lines and CSV of the same selection,
//! spreadsheet formulas neutralised, reads recorded, and names beside ids in every event.

use chrono::Duration;
use gatehouse::{
    audit::{AuditEvent, EventType, Outcome},
    clock::Clock,
    domain::Role,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{World, audit_events};

async fn get_json(w: &World, path: &str, token: &str) -> (u16, Value) {
    let res = w.call(Method::GET, path, Some(token), None).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get_text(w: &World, path: &str, token: &str) -> (u16, String, String) {
    let res = w.call(Method::GET, path, Some(token), None).await;
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, res.text().await.unwrap())
}

fn seqs(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

/// Sign-in failures for `who` in `org`, one a minute, the user agent of each chosen by
/// the client (here: text a spreadsheet would run).
async fn failures(w: &World, org: &str, who: &str, n: usize) {
    for i in 0..n {
        let mut event = AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
            .about(who, org)
            .detail("reason", "wrong_password");
        event.user_agent = Some(format!("=HYPERLINK(\"https://evil.example/{i}\")"));
        w.app.state.audit.record(event).await.unwrap();
        w.app.clock.advance(Duration::minutes(1));
    }
}

#[tokio::test]
async fn reports_filter_sort_and_page_and_refuse_bad_filters_clearly() {
    let w = World::new().await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    let t0 = w.app.clock.now();
    failures(&w, &w.alpha, &amos.id, 4).await;
    failures(&w, &w.beta, &bert.id, 2).await;
    let token = w.admin_token("root").await;

    // By username or by id: the same events, newest first by default.
    let (status, by_name) = get_json(&w, "/audit?user=amos&type=sign_in.failed", &token).await;
    assert_eq!(status, 200, "{by_name}");
    let (_, by_id) = get_json(
        &w,
        &format!("/audit?user={}&type=sign_in.failed", amos.id),
        &token,
    )
    .await;
    let newest_first = seqs(&by_name);
    assert_eq!(newest_first.len(), 4);
    assert_eq!(newest_first, seqs(&by_id));
    assert!(newest_first.windows(2).all(|p| p[0] > p[1]));

    // Oldest first, paged with `after`.
    let (_, page1) = get_json(
        &w,
        "/audit?user=amos&type=sign_in.failed&order=asc&limit=3",
        &token,
    )
    .await;
    let first = seqs(&page1);
    let (_, page2) = get_json(
        &w,
        &format!(
            "/audit?user=amos&type=sign_in.failed&order=asc&limit=3&after={}",
            first[2]
        ),
        &token,
    )
    .await;
    let mut oldest_first = first.clone();
    oldest_first.extend(seqs(&page2));
    let mut expected = newest_first.clone();
    expected.reverse();
    assert_eq!(oldest_first, expected);

    // Time range (minutes 1 and 2 of amos's four), outcome and organisation.
    let from = (t0 + Duration::minutes(1)).to_rfc3339();
    let to = (t0 + Duration::minutes(3)).to_rfc3339();
    let mut url = url::Url::parse("http://x/audit").unwrap();
    url.query_pairs_mut()
        .append_pair("type", "sign_in.failed")
        .append_pair("outcome", "failure")
        .append_pair("org", &w.alpha)
        .append_pair("from", &from)
        .append_pair("to", &to);
    let (_, window) = get_json(&w, &format!("/audit?{}", url.query().unwrap()), &token).await;
    assert_eq!(seqs(&window), newest_first[1..3].to_vec(), "{window}");
    let (_, beta) = get_json(
        &w,
        &format!("/audit?org={}&type=sign_in.failed", w.beta),
        &token,
    )
    .await;
    assert_eq!(beta.as_array().unwrap().len(), 2);
    let (_, none) = get_json(&w, "/audit?outcome=success&type=sign_in.failed", &token).await;
    assert_eq!(none, json!([]));

    // Bad filters: a clear 400 each, naming the field.
    for (query, field) in [
        ("type=sign_in.exploded", "type:"),
        ("outcome=maybe", "outcome:"),
        ("from=yesterday", "from:"),
        ("to=2026-13-01", "to:"),
        ("from=2026-12-02&to=2026-12-01", "from:"),
        ("order=sideways", "order:"),
        ("order=asc&before=5", "before:"),
        ("after=5", "after:"),
        ("limit=0", "limit:"),
    ] {
        let (status, body) = get_json(&w, &format!("/audit?{query}"), &token).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{query}: {body}"
        );
    }
    let (status, _) = get_json(&w, "/audit?user=nobody-at-all", &token).await;
    assert_eq!(status, 404, "an unknown user is not found");
}

#[tokio::test]
async fn exports_are_the_same_selection_as_json_lines_and_csv_with_formulas_neutralised() {
    let w = World::new().await;
    w.user("alpha", "root", Role::SuperAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    failures(&w, &w.alpha, &amos.id, 3).await;
    let token = w.admin_token("root").await;

    let query = "user=amos&type=sign_in.failed";
    let (status, kind, jsonl) = get_text(&w, &format!("/audit/export?{query}"), &token).await;
    assert_eq!(status, 200, "{jsonl}");
    assert!(kind.starts_with("application/jsonl"), "{kind}");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 3);
    // Oldest first by default; the writer named the subject and organisation.
    assert!(lines[0]["seq"].as_i64() < lines[2]["seq"].as_i64());
    assert_eq!(lines[0]["details"]["subject_username"], "amos");
    assert_eq!(lines[0]["details"]["org_name"], "alpha");

    let (status, kind, csv) =
        get_text(&w, &format!("/audit/export?{query}&format=csv"), &token).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 4, "a header and the same three events: {csv}");
    assert!(rows[0].starts_with("seq,time,type,outcome,org_id,org_name"));
    for (row, line) in rows[1..].iter().zip(&lines) {
        assert!(row.contains(line["id"].as_str().unwrap()), "{row}");
        assert!(row.contains(",amos,"), "{row}");
        // The client-chosen user agent cannot start a formula in a spreadsheet.
        assert!(
            row.contains(",\"'=HYPERLINK(\"\"https://evil.example/"),
            "{row}"
        );
        assert!(!row.contains(",=HYPERLINK") && !row.contains(",\"=HYPERLINK"));
    }
    let (status, _, desc) = get_text(
        &w,
        &format!("/audit/export?{query}&format=csv&order=desc"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let desc_rows: Vec<&str> = desc.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(desc_rows[1], rows[3], "newest first when asked");

    for bad in ["format=xlsx", "from=soon", "type=nope"] {
        let (status, _, body) = get_text(&w, &format!("/audit/export?{bad}"), &token).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn an_org_admin_cannot_export_another_organisations_events() {
    let w = World::new().await;
    w.user("alpha", "alice", Role::OrgAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let bert = w.user("beta", "bert", Role::User).await;
    failures(&w, &w.alpha, &amos.id, 2).await;
    failures(&w, &w.beta, &bert.id, 3).await;
    let token = w.admin_token("alice").await;

    // Naming the other organisation, or one of its users: not found.
    for path in [
        format!("/audit/export?org={}", w.beta),
        format!("/audit/export?org={}&format=csv", w.beta),
        format!("/audit/export?user={}", bert.id),
        "/audit/export?user=bert".into(),
        format!("/audit?org={}", w.beta),
        "/audit?user=bert".into(),
    ] {
        let (status, _, body) = get_text(&w, &path, &token).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains(&bert.id), "{path}");
    }
    // Naming none: their own organisation's events only.
    for format in ["jsonl", "csv"] {
        let (status, _, body) =
            get_text(&w, &format!("/audit/export?format={format}"), &token).await;
        assert_eq!(status, 200);
        assert!(body.contains(&amos.id), "{body}");
        assert!(
            !body.contains(&bert.id) && !body.contains(&w.beta),
            "{body}"
        );
    }
    let (_, events) = get_json(&w, "/audit?limit=1000", &token).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["org_id"] == w.alpha.as_str())
    );
}

#[tokio::test]
async fn viewing_users_and_reading_or_exporting_the_trail_are_recorded() {
    let w = World::new().await;
    let alice = w.user("alpha", "alice", Role::OrgAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let token = w.admin_token("alice").await;
    assert!(audit_events(&w.app, EventType::AdminRead).await.is_empty());

    let (status, _) = get_json(&w, &format!("/users/{}", amos.id), &token).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&w, "/users?q=amo", &token).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&w, "/audit?type=sign_in.failed&user=amos", &token).await;
    assert_eq!(status, 200);
    let (status, _, _) = get_text(&w, "/audit/export?format=csv&outcome=failure", &token).await;
    assert_eq!(status, 200);

    let mut reads = audit_events(&w.app, EventType::AdminRead).await;
    reads.reverse();
    let objects: Vec<&str> = reads
        .iter()
        .map(|e| e.details["object"].as_str().unwrap())
        .collect();
    assert_eq!(objects, ["user", "users", "audit", "audit_export"]);
    for read in &reads {
        assert_eq!(read.actor.as_deref(), Some(alice.id.as_str()));
        assert_eq!(read.details["actor_username"], "alice");
        assert_eq!(read.org_id.as_deref(), Some(w.alpha.as_str()));
        assert!(read.request_id.is_some(), "the request is named");
    }
    assert_eq!(reads[0].subject.as_deref(), Some(amos.id.as_str()));
    assert_eq!(reads[0].details["subject_username"], "amos");
    assert_eq!(reads[1].details["filter"]["q"], "amo");
    assert_eq!(reads[1].details["rows"], 1);
    assert_eq!(reads[2].subject.as_deref(), Some(amos.id.as_str()));
    assert_eq!(
        reads[2].details["filter"],
        json!({"type": "sign_in.failed", "user": "amos"})
    );
    assert_eq!(reads[3].details["format"], "csv");
    assert_eq!(
        reads[3].details["filter"],
        json!({"outcome": "failure", "order": "asc"})
    );
    assert_eq!(reads[3].details["rows"], 0);
    // A refused read (another organisation) changes nothing and is not a read.
    let (status, _) = get_json(&w, "/users/no-such-user", &token).await;
    assert_eq!(status, 404);
    assert_eq!(audit_events(&w.app, EventType::AdminRead).await.len(), 4);
    assert!(w.app.state.audit.verify().await.unwrap().intact);
}

#[tokio::test]
async fn every_event_names_its_subject_actor_and_organisation_as_they_were() {
    let w = World::new().await;
    let root = w.user("alpha", "root", Role::SuperAdmin).await;
    let amos = w.user("alpha", "amos", Role::User).await;
    let token = w.admin_token("root").await;
    let record = |note: &'static str| {
        let event = AuditEvent::new(EventType::AdminChange, Outcome::Success)
            .about(&amos.id, &w.alpha)
            .actor(&root.id)
            .detail("note", note)
            // A caller cannot put words in the writer's mouth.
            .detail("subject_username", "someone-else");
        w.app.state.audit.record(event)
    };
    record("before").await.unwrap();
    let res = w
        .call(
            Method::PUT,
            &format!("/users/{}/username", amos.id),
            Some(&token),
            Some(json!({"username": "amos2"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    record("after").await.unwrap();

    let changes = audit_events(&w.app, EventType::AdminChange).await;
    let named = |note: &str| {
        changes
            .iter()
            .find(|e| e.details["note"] == note)
            .unwrap()
            .details
            .clone()
    };
    let before = named("before");
    assert_eq!(before["subject_username"], "amos");
    assert_eq!(before["actor_username"], "root");
    assert_eq!(before["org_name"], "alpha");
    assert_eq!(named("after")["subject_username"], "amos2");
    let renamed = audit_events(&w.app, EventType::UserUpdated).await;
    assert_eq!(renamed[0].details["previous_username"], "amos");
    assert_eq!(renamed[0].details["subject_username"], "amos2");
    // Names are part of what the chain protects.
    let report = w.app.state.audit.verify().await.unwrap();
    assert!(report.intact, "{report}");
    let seq = changes
        .iter()
        .find(|e| e.details["note"] == "before")
        .unwrap()
        .seq;
    let forged = format!(
        "UPDATE audit_events SET details = replace(details, '\"amos\"', '\"mallory\"') WHERE seq = {seq}"
    );
    // As the database's owner would: the append-only triggers out of the way first.
    crate::audit::tamper(&w.app, &[forged]).await;
    let report = w.app.state.audit.verify().await.unwrap();
    assert!(!report.intact);
    assert_eq!(report.problem.unwrap().seq, seq);
}
