//! The audit trail (DESIGN §11): one `record` call every capability uses, a hash chain
//! that shows alteration, removal, insertion and reordering, queries for the admin API,
//! JSON-lines export, and retention that prunes behind a signed checkpoint, never inside
//! `audit_retention_days`. The database refuses every other update or delete (migration
//! `2026-12-07-100000_audit_append_only`), and signed anchors of the head, kept outside
//! it (`anchor`), reveal the newest events deleted with the head rewound.
//!
//! ```text
//! state.audit.record(
//!     AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
//!         .subject(&user.id)
//!         .request(&ctx)
//!         .detail("reason", "wrong_password"),
//! ).await?;
//! ```
//!
//! Writes: `record` hands the event to this instance's writer thread and waits until the
//! transaction holding it has committed. The writer appends whatever events are
//! waiting (up to [`MAX_BATCH`]) in one transaction under the chain lock, so concurrent
//! sign-ins share one commit instead of queueing for one each.

mod anchor;
mod anchor_verify;
mod chain;
mod context;
mod event;
mod ledger;
mod names;
mod report;
mod verify;

use std::{io::Write, sync::Arc};

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use anchor::{Anchor, AnchorTargets, AnchorWorker, Anchoring, SYSLOG_SOCKET, instance_name};
pub use anchor_verify::{AnchorProblem, AnchorProblemKind, AnchorReport};
pub use context::RequestContext;
pub use event::{AuditEvent, EventType, Outcome};
pub use report::{CSV_HEADER, ExportFormat, Order, Selection, SortColumn, csv_cell, csv_row};
pub use verify::{CheckpointSummary, Problem, ProblemKind, VerifyReport};

use crate::{
    clock::SharedClock,
    crypto::MasterKey,
    keys::sealed as secrets,
    store::{Store, StoreError},
};
use chain::{ChainKey, canonical_time};
use event::PreparedEvent;
use ledger::EventRow;

/// Name of the chain key in `sealed_secrets`.
const CHAIN_KEY_NAME: &str = "audit-chain-key";

/// Most events appended in one transaction.
pub const MAX_BATCH: usize = 256;

/// Events waiting for the writer before `record` itself waits (back-pressure).
const QUEUE: usize = 4096;

/// Rows read per round trip by the export.
const PAGE: i64 = 1000;

/// Most rows one query returns.
pub const MAX_QUERY_LIMIT: i64 = 1000;

/// How long events are kept unless configured otherwise: six years, a common floor
/// for health records (`audit_retention_days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 2192;

/// The shortest retention there is: ONC 170.315 (d)(2)/(d)(10) test procedures expect
/// at least a year, so neither the configuration nor a caller can go below it.
pub const MIN_RETENTION_DAYS: u32 = 365;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail: {0}")]
    Store(#[from] StoreError),
    #[error("audit chain key: {0}")]
    Key(#[from] secrets::SecretError),
    #[error("the audit writer has stopped")]
    Closed,
    #[error("refusing to prune a trail that does not verify: {0}")]
    Broken(Problem),
    #[error(
        "refusing to prune events before {}: audit_retention_days is {retention_days}, so the latest cut-off allowed is {}",
        asked.to_rfc3339(),
        latest.to_rfc3339()
    )]
    WithinRetention {
        asked: DateTime<Utc>,
        latest: DateTime<Utc>,
        retention_days: u32,
    },
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Which events a query wants; every field narrows it.
///
/// Times are compared at the microsecond the trail stores, so the time of an event, as
/// a query returned it, is a usable bound on both backends.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events whose subject or actor is this user id.
    pub user: Option<String>,
    pub org_id: Option<String>,
    pub event_type: Option<EventType>,
    pub outcome: Option<Outcome>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// A stored event, as queries and the export show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub time: DateTime<Utc>,
    pub org_id: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    /// The stored name; a name this build does not know (written by a newer one) is
    /// shown as it is rather than hidden.
    #[serde(rename = "type")]
    pub event_type: String,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<EventRow> for AuditRecord {
    fn from(row: EventRow) -> Self {
        // Details were written as canonical JSON; if a row was edited into something
        // else, show the text rather than fail the whole query.
        let details = serde_json::from_str(&row.details)
            .unwrap_or_else(|_| serde_json::Value::String(row.details.clone()));
        Self {
            seq: row.seq,
            id: row.id,
            time: row.occurred_at.and_utc(),
            org_id: row.org_id,
            actor: row.actor,
            subject: row.subject,
            event_type: row.event_type,
            outcome: row.outcome,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            details,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// The result of pruning: the chain now resumes after `last_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub last_seq: i64,
    pub last_hash: String,
    pub pruned_before: DateTime<Utc>,
    pub pruned_events: i64,
    pub created_at: DateTime<Utc>,
}

struct Pending {
    event: PreparedEvent,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The audit capability. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    key: Arc<ChainKey>,
    /// Signs anchors of the head (`anchor`); not the chain key.
    anchor_key: Arc<anchor::AnchorKey>,
    clock: SharedClock,
    writer: mpsc::Sender<Pending>,
    /// Events younger than this are never pruned (ONC 170.315 (d)(10)).
    retention_days: u32,
    /// Batches appended, by how: `direct` (one statement, the head as this instance
    /// left it) or `locked` (the head read under its lock: first batch, SQLite, or
    /// another instance appended in between).
    appends: IntCounterVec,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// Loads (or, on the very first start, creates) the chain key and starts this
    /// instance's writer thread.
    pub async fn open(
        store: Store,
        master_key: &MasterKey,
        clock: SharedClock,
    ) -> Result<Self, AuditError> {
        let now = clock.now().naive_utc();
        let key = secrets::load_or_create_key(&store, master_key, CHAIN_KEY_NAME, now).await?;
        let key = Arc::new(ChainKey::new(key));
        let anchor_key =
            secrets::load_or_create_key(&store, master_key, anchor::ANCHOR_KEY_NAME, now).await?;
        let anchor_key = Arc::new(anchor::AnchorKey::new(anchor_key));
        let (writer, queue) = mpsc::channel(QUEUE);
        let appends = IntCounterVec::new(
            Opts::new(
                "audit_appends_total",
                "Audit batches appended: direct (one statement) or locked (head re-read)",
            ),
            &["path"],
        )
        .expect("static metric definition");
        let writer_thread = {
            let (store, key, appends) = (store.clone(), key.clone(), appends.clone());
            std::thread::Builder::new()
                .name("audit-writer".into())
                .spawn(move || write_batches(&store, &key, queue, &appends))
        };
        writer_thread.map_err(|e| {
            AuditError::Store(StoreError::Unavailable(format!(
                "cannot start the audit writer: {e}"
            )))
        })?;
        Ok(Self {
            store,
            key,
            anchor_key,
            clock,
            writer,
            retention_days: DEFAULT_RETENTION_DAYS,
            appends,
        })
    }

    /// Keeps events for `days` (`audit_retention_days`) instead of the default; never
    /// less than [`MIN_RETENTION_DAYS`], whatever the caller asks.
    #[must_use]
    pub fn with_retention(mut self, days: u32) -> Self {
        self.retention_days = days.max(MIN_RETENTION_DAYS);
        self
    }

    /// The newest cut-off [`Audit::prune`] accepts now: now − the retention period.
    pub fn latest_prune_cutoff(&self) -> DateTime<Utc> {
        self.clock.now() - chrono::Duration::days(i64::from(self.retention_days))
    }

    /// Publishes the writer's counters with the server's other metrics.
    pub fn register_metrics(&self, metrics: &crate::telemetry::Metrics) {
        metrics.register(Box::new(self.appends.clone()));
    }

    /// Appends `event` to the chain; returns once it is committed.
    ///
    /// Details keys that look like secrets are dropped (and named in a warning), and
    /// every text is bounded: see [`AuditEvent`].
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let event = PreparedEvent::new(event, self.clock.now());
        let (done, committed) = oneshot::channel();
        // Bounded like any database call (issue 23 item 3): when the writer is stuck
        // on a stalled database, the request is answered 503 rather than held; the
        // event is still written if the database comes back.
        let wait = async {
            self.writer
                .send(Pending { event, done })
                .await
                .map_err(|_| AuditError::Closed)?;
            committed.await.map_err(|_| AuditError::Closed)??;
            Ok(())
        };
        tokio::time::timeout(self.store.call_timeout(), wait)
            .await
            .map_err(|_| {
                AuditError::Store(StoreError::Unavailable(
                    "the audit trail got no answer from the database in time".into(),
                ))
            })?
    }

    /// Appends `events` inside the transaction the caller has open on `conn` (see
    /// `ledger::append_in_transaction`): for a change that must never exist without its
    /// events, nor they without it. Everything else uses [`Audit::record`].
    pub fn record_in(
        &self,
        conn: &mut crate::store::DbConnection,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut batch: Vec<_> = events
            .into_iter()
            .map(|e| PreparedEvent::new(e, now))
            .collect();
        names::resolve(conn, &mut batch)?;
        ledger::append_in_transaction(conn, &self.key, &batch)
    }

    /// Walks the whole chain from the latest checkpoint (or the first event) to the
    /// head, a page at a time, and names the first problem.
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        let (head, checkpoint) = self
            .store
            .run(|c| Ok((ledger::head(c)?, ledger::latest_checkpoint(c)?)))
            .await?;
        let Some(head) = head else {
            return Ok(verify::without_head(checkpoint.as_ref()));
        };
        let summary = checkpoint.as_ref().map(CheckpointSummary::from);
        let report = |walk: Option<&verify::Walk>, problem: Option<Problem>| VerifyReport {
            intact: problem.is_none(),
            events_verified: walk.map_or(0, |w| w.verified),
            first_seq: walk.and_then(|w| w.first_seq),
            last_seq: walk.and_then(|w| (w.verified > 0).then_some(w.expected_seq - 1)),
            head_seq: head.0,
            head_hash: head.1.clone(),
            checkpoint: summary.clone(),
            problem,
        };
        let mut walk = match verify::start(&self.key, checkpoint.as_ref()) {
            Ok(walk) => walk,
            Err(problem) => return Ok(report(None, Some(problem))),
        };
        // Each page is read and checked on the blocking pool: HMACs are CPU work.
        let mut after = i64::MIN;
        loop {
            let (key, page_head) = (self.key.clone(), head.clone());
            let (moved, page) = self
                .store
                .run(move |c| verify::walk_page(c, &key, walk, after, &page_head))
                .await?;
            walk = moved;
            match page {
                verify::Page::Continue { last_seq } => after = last_seq,
                verify::Page::End => break,
                verify::Page::Problem(problem) => return Ok(report(Some(&walk), Some(problem))),
            }
        }
        if let Some(problem) = walk.finish(head.0, &head.1) {
            return Ok(report(Some(&walk), Some(problem)));
        }
        let beyond = self.store.run(ledger::first_beyond_head).await?;
        let problem = beyond.map(|row| verify::beyond_head(&row, head.0));
        Ok(report(Some(&walk), problem))
    }

    /// Writes every event at or after `since` (all when `None`) as one JSON object per
    /// line, in seq order, a page at a time. Returns how many were written.
    pub async fn export(
        &self,
        since: Option<DateTime<Utc>>,
        out: &mut impl Write,
    ) -> Result<u64, AuditError> {
        let since = since.map(|t| event::to_micros(t).naive_utc());
        let mut after = i64::MIN;
        let mut written = 0u64;
        loop {
            let rows = self
                .store
                .run(move |c| ledger::page_since(c, since, after, PAGE))
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for row in rows {
                let line = serde_json::to_string(&AuditRecord::from(row))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                written += 1;
            }
        }
        out.flush()?;
        Ok(written)
    }

    /// Events matching `filter`, newest first; pass the smallest seq of one page as
    /// `before_seq` to get the next. `limit` is clamped to 1..=[`MAX_QUERY_LIMIT`].
    pub async fn query(
        &self,
        filter: AuditFilter,
        limit: i64,
        before_seq: Option<i64>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        self.report(filter, Order::Newest, limit, before_seq).await
    }

    /// Deletes the events older than `older_than` (DESIGN §11 retention) and leaves a
    /// checkpoint signed with the chain key, so what remains still verifies. Refuses
    /// when the trail does not verify: pruning must not erase the evidence. Records
    /// an `audit.pruned` event. `None` when nothing was old enough.
    ///
    /// Refuses any cut-off newer than [`Audit::latest_prune_cutoff`]: the check is here,
    /// not in a door, so no door can delete events the retention period still covers
    /// (ONC 170.315 (d)(10): the technology must not delete the trail).
    pub async fn prune(&self, older_than: DateTime<Utc>) -> Result<Option<Checkpoint>, AuditError> {
        let latest = self.latest_prune_cutoff();
        if older_than > latest {
            return Err(AuditError::WithinRetention {
                asked: older_than,
                latest,
                retention_days: self.retention_days,
            });
        }
        let report = self.verify().await?;
        if let Some(problem) = report.problem {
            return Err(AuditError::Broken(problem));
        }
        let key = self.key.clone();
        let cutoff = event::to_micros(older_than).naive_utc();
        let now = event::to_micros(self.clock.now()).naive_utc();
        let Some(row) = self
            .store
            .run(move |c| ledger::prune(c, &key, cutoff, now))
            .await?
        else {
            return Ok(None);
        };
        let checkpoint = Checkpoint {
            last_seq: row.last_seq,
            last_hash: row.last_hash,
            pruned_before: row.cutoff.and_utc(),
            pruned_events: row.pruned_events,
            created_at: row.created_at.and_utc(),
        };
        self.record(
            AuditEvent::new(EventType::AuditPruned, Outcome::Success)
                .detail("pruned_before", canonical_time(row.cutoff))
                .detail("pruned_events", checkpoint.pruned_events)
                .detail("last_pruned_seq", checkpoint.last_seq),
        )
        .await?;
        Ok(Some(checkpoint))
    }
}

/// This instance's writer, on a thread of its own: takes whatever events are waiting
/// and appends them in one transaction, then tells each caller. Ends when every `Audit`
/// handle is gone.
///
/// A thread rather than a task: as a task, each batch went from the request's worker to
/// a Tokio worker, then to a blocking thread for the database and back. Under load on
/// one core, those threads took about a fifth of the server's CPU at the token
/// endpoint (perf, `oidc_load`); this thread, woken once a batch, took about an
/// eighth, and less again once it yielded its core before each batch (below).
fn write_batches(
    store: &Store,
    key: &ChainKey,
    mut queue: mpsc::Receiver<Pending>,
    appends: &IntCounterVec,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Where this writer's last append left the chain; other instances may since have
    // moved it, which `ledger::append` notices.
    let mut head: Option<ledger::Head> = None;
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        // Let whatever else is ready to run on this core (the request workers, under
        // load) go first: on an idle core this returns at once, on a busy one the
        // workers add their events to this batch, and one commit then serves them all.
        // With the server on one core at the token endpoint, that made batches about
        // ten times larger and PostgreSQL's CPU per token a tenth; a lone sequential
        // writer's rate did not move (`cargo bench --bench audit`). A timer would
        // delay every event, busy or not: waiting 300 µs for company halved a lone
        // writer's rate and cost 8 concurrent writers a fifth of theirs.
        std::thread::yield_now();
        // Whatever else arrived meanwhile (while the last batch was being written, most
        // of all) joins this batch.
        take_waiting(&mut queue, &mut batch);
        let (mut events, waiting): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.done)).unzip();
        let expected = head.take();
        let result = store.run_blocking(|c| {
            // Names as they are now: read just before the append, once for the batch.
            names::resolve(c, &mut events)?;
            ledger::append(c, key, &events, expected.as_ref())
        });
        let result = match result {
            Ok((end, path)) => {
                appends.with_label_values(&[path.label()]).inc();
                head = end;
                Ok(())
            }
            Err(e) => {
                // `head` stays unknown: the next batch reads it under the lock.
                tracing::error!(error = %e, events = waiting.len(), "audit events could not be written");
                Err(e)
            }
        };
        for done in waiting {
            // A caller that stopped waiting (its request was cancelled) still had its
            // event written; nothing to tell it.
            let _ = done.send(result.clone());
        }
    }
}

/// Moves the events already queued into `batch`, up to [`MAX_BATCH`].
fn take_waiting(queue: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }
}
