//! Audit trail throughput: events appended per second by concurrent writers (SQLite,
//! and PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set), and events verified per
//! second by `audit verify`'s walk.
//!
//! `cargo bench --bench audit`; `AUDIT_BENCH_EVENTS` sets how many events (default
//! 40 000). Numbers depend on the disk's fsync latency: each batch is one commit.

use std::{sync::Arc, time::Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use gatehouse::{
    audit::{Audit, AuditEvent, EventType, Outcome},
    clock::SystemClock,
    config::DatabaseTarget,
    crypto::MasterKey,
    store::Store,
};

fn main() {
    let events: usize = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        bench(
            "SQLite",
            DatabaseTarget::Sqlite(dir.path().join("bench.db")),
            events,
        )
        .await;
        match std::env::var("GATEHOUSE_TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                bench(
                    "PostgreSQL",
                    DatabaseTarget::Postgres(fresh_schema(&base)),
                    events,
                )
                .await
            }
            _ => println!("PostgreSQL: skipped (GATEHOUSE_TEST_DATABASE_URL not set)"),
        }
    });
}

async fn bench(name: &str, target: DatabaseTarget, events: usize) {
    let store = tokio::task::spawn_blocking(move || Store::connect(&target, 10))
        .await
        .expect("task")
        .expect("database reachable");
    store.migrate().await.expect("migrations");
    let key = MasterKey::generate();
    let audit = Audit::open(store, &key, Arc::new(SystemClock))
        .await
        .expect("audit opens");

    // One writer: what a lone sign-in waits for.
    let single = (events / 20).max(100);
    let started = Instant::now();
    write(&audit, 1, single).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{name}: 1 writer: {single} events in {elapsed:.2} s = {:.0} events/s ({:.2} ms per event)",
        single as f64 / elapsed,
        elapsed * 1000.0 / single as f64
    );

    for writers in [8, 64] {
        let per_writer = events / writers;
        let total = per_writer * writers;
        let started = Instant::now();
        write(&audit, writers, per_writer).await;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{name}: {writers} concurrent writers: {total} events in {elapsed:.2} s = {:.0} events/s",
            total as f64 / elapsed
        );
    }

    let started = Instant::now();
    let report = audit.verify().await.expect("verify runs");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.intact, "{report}");
    println!(
        "{name}: verify: {} events in {elapsed:.2} s = {:.0} events/s",
        report.events_verified,
        report.events_verified as f64 / elapsed
    );
}

async fn write(audit: &Audit, writers: usize, per_writer: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let audit = audit.clone();
        tasks.spawn(async move {
            for i in 0..per_writer {
                audit
                    .record(
                        AuditEvent::new(EventType::SignInSucceeded, Outcome::Success)
                            .org("00000000-0000-4000-8000-000000000001")
                            .subject(format!("user-{w}-{i}"))
                            .detail("method", "password"),
                    )
                    .await
                    .expect("recorded");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer");
    }
}

/// A fresh schema in the benchmark database, as a URL whose connections use it.
fn fresh_schema(base: &str) -> String {
    let schema = format!("gh_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(base).expect("GATEHOUSE_TEST_DATABASE_URL reachable");
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}
