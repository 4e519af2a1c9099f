//! The audit tables: appending under the chain lock, pruning behind a checkpoint, and
//! the reads that verification, queries and export need.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    AuditFilter,
    chain::{ChainKey, CheckpointContent, EventContent},
    event::PreparedEvent,
};
use crate::store::{
    DbConnection, StoreError,
    schema::{audit_checkpoints, audit_events, audit_head},
};

/// The one row of `audit_head`.
const HEAD_ID: i32 = 1;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
// NULL, not DEFAULT, for `None`: lets one INSERT carry a whole batch on SQLite too.
#[diesel(treat_none_as_default_value = false)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub org_id: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub event_type: String,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl EventRow {
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            seq: self.seq,
            id: &self.id,
            occurred_at: self.occurred_at,
            org_id: self.org_id.as_deref(),
            actor: self.actor.as_deref(),
            subject: self.subject.as_deref(),
            event_type: &self.event_type,
            outcome: &self.outcome,
            client_ip: self.client_ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            details: &self.details,
            prev_hash: &self.prev_hash,
        }
    }

    /// `event` placed at `seq` after an event whose hash is `prev_hash`.
    fn chained(event: &PreparedEvent, seq: i64, prev_hash: String, key: &ChainKey) -> Self {
        let mut row = Self {
            seq,
            id: event.id.clone(),
            occurred_at: event.occurred_at,
            org_id: event.org_id.clone(),
            actor: event.actor.clone(),
            subject: event.subject.clone(),
            event_type: event.event_type.to_owned(),
            outcome: event.outcome.to_owned(),
            client_ip: event.client_ip.clone(),
            user_agent: event.user_agent.clone(),
            request_id: event.request_id.clone(),
            details: event.details.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = key.event_hash(&row.content());
        row
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_checkpoints)]
pub struct CheckpointRow {
    pub last_seq: i64,
    pub last_hash: String,
    pub cutoff: NaiveDateTime,
    pub pruned_events: i64,
    pub created_at: NaiveDateTime,
    pub signature: String,
}

impl CheckpointRow {
    pub fn content(&self) -> CheckpointContent<'_> {
        CheckpointContent {
            last_seq: self.last_seq,
            last_hash: &self.last_hash,
            cutoff: self.cutoff,
            pruned_events: self.pruned_events,
            created_at: self.created_at,
        }
    }
}

/// Every append needs the head; without it the chain cannot continue (fail closed).
pub(super) fn missing_head() -> StoreError {
    StoreError::Query("the audit chain head (table audit_head) is missing".into())
}

/// Runs `$body` inside a transaction that holds the chain's write lock, with `$c` the
/// backend's own connection and `$head` the chain's end `(seq, hash)` as committed.
///
/// Why the append is serialised in the database (rather than one chain per writer and
/// a merge): an auditor expects one order of events, verification stays a single walk,
/// and an append is short, so the queue it forms is cheap — each instance also sends
/// its events in batches (see `Audit::record`), one transaction per batch.
///
/// - PostgreSQL: `SELECT … FOR UPDATE` on the one `audit_head` row. Every instance's
///   appends queue on that row lock until the holder commits; under READ COMMITTED the
///   next holder then reads the head its predecessor committed, so each batch links
///   to the last one. Readers (verify, queries, export) never wait for it.
/// - SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the head is read,
///   so a second process (the CLI next to the server) queues on `busy_timeout`. A
///   deferred transaction would read first and then fail with SQLITE_BUSY when it tried
///   to upgrade to a writer.
///
/// A macro because diesel's `for_update()` and `immediate_transaction()` exist only on
/// the concrete connections, and the body must be the same code for both.
macro_rules! locked {
    ($conn:expr, |$c:ident, $head:ident| $body:block) => {
        match $conn {
            DbConnection::Postgresql(pg) => pg.transaction(|$c| {
                let $head: (i64, String) = audit_head::table
                    .find(HEAD_ID)
                    .select((audit_head::seq, audit_head::hash))
                    .for_update()
                    .first($c)
                    .optional()?
                    .ok_or_else(missing_head)?;
                $body
            }),
            DbConnection::Sqlite(lite) => lite.immediate_transaction(|$c| {
                let $head: (i64, String) = audit_head::table
                    .find(HEAD_ID)
                    .select((audit_head::seq, audit_head::hash))
                    .first($c)
                    .optional()?
                    .ok_or_else(missing_head)?;
                $body
            }),
        }
    };
}

/// The end of the chain, `(seq, hash)`: what the next event links to.
pub type Head = (i64, String);

/// How a batch was appended (see [`append`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPath {
    /// One statement, linked to the head this instance expected.
    Direct,
    /// Under the head's lock, after reading it.
    Locked,
}

impl AppendPath {
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Locked => "locked",
        }
    }
}

/// Appends `batch` in order at the end of the chain, atomically, and returns the new
/// end. `expected` is where this instance believes the chain ends (the head its last
/// append left); `None` when it does not know.
///
/// On PostgreSQL, with an `expected` head, the whole append is one statement: it moves
/// the head only if it is still `expected` and inserts the events only if it did.
/// That is one round trip instead of five (BEGIN, lock, insert, move, COMMIT), and the
/// head's row lock is held for that one statement rather than across them all. If
/// another instance appended in between, nothing is written and the append is redone
/// under the lock (`locked!`), which reads the head afresh.
pub fn append(
    conn: &mut DbConnection,
    key: &ChainKey,
    batch: &[PreparedEvent],
    expected: Option<&Head>,
) -> Result<(Option<Head>, AppendPath), StoreError> {
    if batch.is_empty() {
        return Ok((expected.cloned(), AppendPath::Direct));
    }
    if let (DbConnection::Postgresql(pg), Some(head)) = (&mut *conn, expected) {
        let rows = chain(head.clone(), batch, key);
        if append_if_head(pg, head, &rows)? {
            let end = rows.last().map(|r| (r.seq, r.hash.clone()));
            return Ok((end, AppendPath::Direct));
        }
    }
    locked!(conn, |c, head| {
        let rows = chain(head, batch, key);
        diesel::insert_into(audit_events::table)
            .values(&rows)
            .execute(c)?;
        let end = rows.last().map(|r| (r.seq, r.hash.clone()));
        if let Some((seq, hash)) = &end {
            diesel::update(audit_head::table.find(HEAD_ID))
                .set((audit_head::seq.eq(seq), audit_head::hash.eq(hash)))
                .execute(c)?;
        }
        Ok((end, AppendPath::Locked))
    })
}

/// Appends `batch` inside a transaction the caller has already opened on `conn`, so the
/// events commit or roll back with the change they record (a lock and its
/// `account.locked` event: issue 23 item 2). The head's lock is held until the caller
/// commits: keep that transaction short. On SQLite the caller's transaction must have
/// written before this (it then holds the database's write lock, so the head read here
/// cannot go stale); on PostgreSQL the head is read `FOR UPDATE`.
pub fn append_in_transaction(
    conn: &mut DbConnection,
    key: &ChainKey,
    batch: &[PreparedEvent],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    macro_rules! append_to {
        ($c:expr, $head:expr) => {{
            let head: Head = $head.optional()?.ok_or_else(missing_head)?;
            let rows = chain(head, batch, key);
            diesel::insert_into(audit_events::table)
                .values(&rows)
                .execute($c)?;
            if let Some(last) = rows.last() {
                diesel::update(audit_head::table.find(HEAD_ID))
                    .set((
                        audit_head::seq.eq(last.seq),
                        audit_head::hash.eq(&last.hash),
                    ))
                    .execute($c)?;
            }
            Ok(())
        }};
    }
    let head = audit_head::table
        .find(HEAD_ID)
        .select((audit_head::seq, audit_head::hash));
    match conn {
        DbConnection::Postgresql(pg) => append_to!(pg, head.for_update().first(pg)),
        DbConnection::Sqlite(lite) => append_to!(lite, head.first(lite)),
    }
}

/// `batch` as rows linked one after the other from `head`.
fn chain(head: Head, batch: &[PreparedEvent], key: &ChainKey) -> Vec<EventRow> {
    let (mut seq, mut prev) = head;
    let mut rows = Vec::with_capacity(batch.len());
    for event in batch {
        seq += 1;
        let row = EventRow::chained(event, seq, prev, key);
        prev = row.hash.clone();
        rows.push(row);
    }
    rows
}

/// One statement: moves the head from `head` to the last of `rows` and inserts `rows`,
/// or (the head has moved on) does neither. Whether it wrote them.
///
/// Under READ COMMITTED the UPDATE waits for any other holder of the head's row lock
/// and then re-checks its condition against the row that holder committed, so a
/// stale `head` matches nothing. The INSERT takes its rows only if the UPDATE matched,
/// and the statement is one implicit transaction: both or neither. The events travel
/// as one array per column, so the statement's text does not depend on the batch size
/// and can stay prepared.
fn append_if_head(
    pg: &mut diesel::PgConnection,
    head: &Head,
    rows: &[EventRow],
) -> Result<bool, StoreError> {
    let Some(last) = rows.last() else {
        return Ok(true);
    };
    let column = |f: fn(&EventRow) -> String| rows.iter().map(f).collect();
    let optional = |f: fn(&EventRow) -> Option<String>| rows.iter().map(f).collect();
    let inserted = AppendIfHead {
        new_seq: last.seq,
        new_hash: last.hash.clone(),
        old_seq: head.0,
        old_hash: head.1.clone(),
        seq: rows.iter().map(|r| r.seq).collect(),
        id: column(|r| r.id.clone()),
        occurred_at: rows.iter().map(|r| r.occurred_at).collect(),
        org_id: optional(|r| r.org_id.clone()),
        actor: optional(|r| r.actor.clone()),
        subject: optional(|r| r.subject.clone()),
        event_type: column(|r| r.event_type.clone()),
        outcome: column(|r| r.outcome.clone()),
        client_ip: optional(|r| r.client_ip.clone()),
        user_agent: optional(|r| r.user_agent.clone()),
        request_id: optional(|r| r.request_id.clone()),
        details: column(|r| r.details.clone()),
        prev_hash: column(|r| r.prev_hash.clone()),
        hash: column(|r| r.hash.clone()),
    }
    .execute(pg)?;
    match inserted {
        0 => Ok(false),
        n if n == rows.len() => Ok(true),
        // Not reachable: the INSERT takes all of `rows` or none, in one statement.
        n => Err(StoreError::Query(format!(
            "audit append wrote {n} of {} events",
            rows.len()
        ))),
    }
}

/// The statement of [`append_if_head`], one array per column. A query fragment rather
/// than `sql_query` so that diesel keeps it prepared on each connection instead of
/// having PostgreSQL parse and plan it for every batch.
struct AppendIfHead {
    new_seq: i64,
    new_hash: String,
    old_seq: i64,
    old_hash: String,
    seq: Vec<i64>,
    id: Vec<String>,
    occurred_at: Vec<NaiveDateTime>,
    org_id: Vec<Option<String>>,
    actor: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    event_type: Vec<String>,
    outcome: Vec<String>,
    client_ip: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    details: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for AppendIfHead {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
        type Texts = Array<Text>;
        type MaybeTexts = Array<Nullable<Text>>;
        out.push_sql("WITH moved AS (UPDATE audit_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&self.new_seq)?;
        out.push_sql(", hash = ");
        out.push_bind_param::<Text, _>(&self.new_hash)?;
        out.push_sql(" WHERE id = 1 AND seq = ");
        out.push_bind_param::<BigInt, _>(&self.old_seq)?;
        out.push_sql(" AND hash = ");
        out.push_bind_param::<Text, _>(&self.old_hash)?;
        out.push_sql(
            " RETURNING id) \
             INSERT INTO audit_events (seq, id, occurred_at, org_id, actor, subject, event_type, \
             outcome, client_ip, user_agent, request_id, details, prev_hash, hash) \
             SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Texts, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.occurred_at)?;
        for column in [&self.org_id, &self.actor, &self.subject] {
            out.push_sql(", ");
            out.push_bind_param::<MaybeTexts, _>(column)?;
        }
        for column in [&self.event_type, &self.outcome] {
            out.push_sql(", ");
            out.push_bind_param::<Texts, _>(column)?;
        }
        for column in [&self.client_ip, &self.user_agent, &self.request_id] {
            out.push_sql(", ");
            out.push_bind_param::<MaybeTexts, _>(column)?;
        }
        for column in [&self.details, &self.prev_hash, &self.hash] {
            out.push_sql(", ");
            out.push_bind_param::<Texts, _>(column)?;
        }
        out.push_sql(") WHERE EXISTS (SELECT 1 FROM moved)");
        Ok(())
    }
}

impl diesel::query_builder::QueryId for AppendIfHead {
    type QueryId = ();
    // Cached by its SQL text, which is the same for every batch.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<diesel::PgConnection> for AppendIfHead {}

/// Deletes the oldest events, up to (not including) the first one at or after
/// `cutoff`, and writes a signed checkpoint holding the last deleted event's seq and
/// hash. `None` when there is nothing to delete.
///
/// Only a prefix of the chain is ever deleted, even if instances' clocks disagree and
/// an older event sits after a newer one: the chain can only be resumed from a point.
pub fn prune(
    conn: &mut DbConnection,
    key: &ChainKey,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Option<CheckpointRow>, StoreError> {
    locked!(conn, |c, head| {
        let first_kept: Option<i64> = audit_events::table
            .filter(audit_events::occurred_at.ge(cutoff))
            .select(diesel::dsl::min(audit_events::seq))
            .first(c)?;
        let last = first_kept.map_or(head.0, |seq| seq - 1);
        let start: Option<i64> = audit_checkpoints::table
            .select(diesel::dsl::max(audit_checkpoints::last_seq))
            .first(c)?;
        if last <= start.unwrap_or(0) {
            return Ok(None);
        }
        let last_hash: Option<String> = audit_events::table
            .find(last)
            .select(audit_events::hash)
            .first(c)
            .optional()?;
        let Some(last_hash) = last_hash else {
            return Err(StoreError::Query(format!(
                "cannot prune: event seq {last} is missing"
            )));
        };
        c.permit_prune()?;
        let pruned =
            diesel::delete(audit_events::table.filter(audit_events::seq.le(last))).execute(c)?;
        c.end_prune_permit()?;
        let mut checkpoint = CheckpointRow {
            last_seq: last,
            last_hash,
            cutoff,
            pruned_events: i64::try_from(pruned).unwrap_or(i64::MAX),
            created_at: now,
            signature: String::new(),
        };
        checkpoint.signature = key.checkpoint_signature(&checkpoint.content());
        diesel::insert_into(audit_checkpoints::table)
            .values(&checkpoint)
            .execute(c)?;
        Ok(Some(checkpoint))
    })
}

/// How the prune transaction gets past the append-only triggers (migration
/// `2026-12-07-100000_audit_append_only`): the documented exception, for this
/// transaction only. Nothing else in Gatehouse deletes or updates an event.
trait PrunePermit {
    fn permit_prune(&mut self) -> QueryResult<()>;
    fn end_prune_permit(&mut self) -> QueryResult<()>;
}

impl PrunePermit for diesel::PgConnection {
    /// A transaction-local setting the DELETE trigger honours; it ends with the
    /// transaction whatever happens, and is switched off at once anyway.
    fn permit_prune(&mut self) -> QueryResult<()> {
        diesel::sql_query("SET LOCAL gatehouse.audit_prune = 'on'")
            .execute(self)
            .map(drop)
    }

    fn end_prune_permit(&mut self) -> QueryResult<()> {
        diesel::sql_query("SET LOCAL gatehouse.audit_prune = 'off'")
            .execute(self)
            .map(drop)
    }
}

impl PrunePermit for diesel::SqliteConnection {
    /// SQLite has no session settings a trigger can read: a row in
    /// `audit_prune_permit`, inserted and removed inside this transaction, so no other
    /// connection ever sees it committed.
    fn permit_prune(&mut self) -> QueryResult<()> {
        diesel::sql_query("INSERT INTO audit_prune_permit (id) VALUES (1)")
            .execute(self)
            .map(drop)
    }

    fn end_prune_permit(&mut self) -> QueryResult<()> {
        diesel::sql_query("DELETE FROM audit_prune_permit")
            .execute(self)
            .map(drop)
    }
}

/// The chain's end as committed: `(seq, hash)`; `None` only if someone deleted it.
pub fn head(conn: &mut DbConnection) -> Result<Option<(i64, String)>, StoreError> {
    Ok(audit_head::table
        .find(HEAD_ID)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)
        .optional()?)
}

/// The checkpoint verification starts from: the one furthest along the chain.
pub fn latest_checkpoint(conn: &mut DbConnection) -> Result<Option<CheckpointRow>, StoreError> {
    Ok(audit_checkpoints::table
        .order(audit_checkpoints::last_seq.desc())
        .select(CheckpointRow::as_select())
        .first(conn)
        .optional()?)
}

/// Up to `limit` events with `after < seq <= upto`, in seq order.
pub fn page(
    conn: &mut DbConnection,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::seq.gt(after))
        .filter(audit_events::seq.le(upto))
        .order(audit_events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

/// Up to `limit` events with `seq > after` and `occurred_at >= since`, in seq order.
pub fn page_since(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut query = audit_events::table
        .filter(audit_events::seq.gt(after))
        .select(EventRow::as_select())
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(audit_events::occurred_at.ge(since));
    }
    Ok(query
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?)
}

/// `(seq, hash)` of the events at `seqs` that exist.
pub fn hashes_at(conn: &mut DbConnection, seqs: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::seq.eq_any(seqs))
        .select((audit_events::seq, audit_events::hash))
        .load(conn)?)
}

/// The highest seq present below `seq`.
pub fn last_seq_below(conn: &mut DbConnection, seq: i64) -> Result<Option<i64>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::seq.lt(seq))
        .select(diesel::dsl::max(audit_events::seq))
        .first(conn)?)
}

/// The first event past the committed head, if any: one statement, so it sees the
/// head and the events as of one moment even while other instances append.
pub fn first_beyond_head(conn: &mut DbConnection) -> Result<Option<EventRow>, StoreError> {
    let head_seq = audit_head::table
        .filter(audit_head::id.eq(HEAD_ID))
        .select(audit_head::seq)
        .single_value()
        .assume_not_null();
    Ok(audit_events::table
        .filter(audit_events::seq.gt(head_seq))
        .order(audit_events::seq.asc())
        .select(EventRow::as_select())
        .first(conn)
        .optional()?)
}

/// Seqs of the events (other than `except`) whose `prev_hash` is `hash`. Only asked
/// once a problem has been found, so the scan this costs is acceptable.
pub fn linked_from(
    conn: &mut DbConnection,
    hash: &str,
    except: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::prev_hash.eq(hash))
        .filter(audit_events::seq.ne(except))
        .order(audit_events::seq.asc())
        .limit(16)
        .select(audit_events::seq)
        .load(conn)?)
}

/// Another event carrying the same id or hash as `row`: a copy.
pub fn copy_of(conn: &mut DbConnection, row: &EventRow) -> Result<Option<i64>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::seq.ne(row.seq))
        .filter(
            audit_events::id
                .eq(&row.id)
                .or(audit_events::hash.eq(&row.hash)),
        )
        .order(audit_events::seq.asc())
        .select(audit_events::seq)
        .first(conn)
        .optional()?)
}

/// `$query` (boxed, over `audit_events`) narrowed to the events `$filter` wants.
macro_rules! matching {
    ($query:expr, $filter:expr) => {{
        let (mut query, filter): (_, &AuditFilter) = ($query, $filter);
        if let Some(user) = &filter.user {
            query = query.filter(
                audit_events::subject
                    .eq(user.clone())
                    .or(audit_events::actor.eq(user.clone())),
            );
        }
        if let Some(org) = &filter.org_id {
            query = query.filter(audit_events::org_id.eq(org.clone()));
        }
        if let Some(event_type) = filter.event_type {
            query = query.filter(audit_events::event_type.eq(event_type.as_str()));
        }
        if let Some(outcome) = filter.outcome {
            query = query.filter(audit_events::outcome.eq(outcome.as_str()));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_events::occurred_at.ge(from.naive_utc()));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_events::occurred_at.lt(to.naive_utc()));
        }
        query
    }};
}

/// Which stretch of the matching events one read returns.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    pub order: super::Order,
    /// Events past this seq in `order` (older when newest first, newer when oldest
    /// first): the last seq of the previous page.
    pub cursor: Option<i64>,
    /// Events up to this seq only: an export stops at the head it started from.
    pub upto: Option<i64>,
}

/// At most `limit` events matching `filter`, within `slice`.
pub fn search(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    limit: i64,
    slice: Slice,
) -> Result<Vec<EventRow>, StoreError> {
    let all = audit_events::table
        .select(EventRow::as_select())
        .into_boxed();
    let mut query = matching!(all, filter);
    if let Some(upto) = slice.upto {
        query = query.filter(audit_events::seq.le(upto));
    }
    query = match (slice.order, slice.cursor) {
        (super::Order::Newest, Some(c)) => query.filter(audit_events::seq.lt(c)),
        (super::Order::Oldest, Some(c)) => query.filter(audit_events::seq.gt(c)),
        (_, None) => query,
    };
    query = match slice.order {
        super::Order::Newest => query.order(audit_events::seq.desc()),
        super::Order::Oldest => query.order(audit_events::seq.asc()),
    };
    Ok(query.limit(limit).load(conn)?)
}

/// How many events match `filter` up to seq `upto`.
pub fn count(conn: &mut DbConnection, filter: &AuditFilter, upto: i64) -> Result<i64, StoreError> {
    let all = audit_events::table.count().into_boxed();
    let query = matching!(all, filter);
    Ok(query.filter(audit_events::seq.le(upto)).get_result(conn)?)
}

/// At most `limit` events matching `filter` after the first `offset`, ordered by
/// `column` (ascending or not) and then newest first: a console page of a report
/// sorted by something other than time.
pub fn search_by(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    column: super::SortColumn,
    ascending: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    use super::SortColumn;
    let all = audit_events::table
        .select(EventRow::as_select())
        .into_boxed();
    let mut query = matching!(all, filter);
    query = match (column, ascending) {
        (SortColumn::Type, true) => query.order(audit_events::event_type.asc()),
        (SortColumn::Type, false) => query.order(audit_events::event_type.desc()),
        (SortColumn::Outcome, true) => query.order(audit_events::outcome.asc()),
        (SortColumn::Outcome, false) => query.order(audit_events::outcome.desc()),
    };
    Ok(query
        .then_order_by(audit_events::seq.desc())
        .offset(offset)
        .limit(limit)
        .load(conn)?)
}
