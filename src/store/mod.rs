//! Durable state: diesel over PostgreSQL (production) or SQLite (embedded default).
//!
//! One connection type for both backends, migrations embedded per backend, and an
//! r2d2 pool used only from `spawn_blocking`, so a slow query never stalls the async
//! workers that answer `/healthz` and the sign-in page.

pub mod branding;
pub mod clients;
pub mod consents;
pub mod emergency;
pub mod fhir_servers;
pub mod grants;
pub mod ip_allow;
pub mod ip_blocks;
pub mod lockouts;
pub mod master_rotation;
pub mod orgs;
pub mod outbox;
pub mod passkeys;
pub mod pii;
pub mod preferences;
pub mod recovery_tokens;
pub mod saml;
pub mod saml_soap_participants;
pub mod schema;
pub mod secrets;
pub mod signing_keys;
#[cfg(test)]
pub(crate) mod testing;
pub mod totp;
pub mod upstream;
pub mod users;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use diesel::{
    Connection, PgConnection, RunQueryDsl, SqliteConnection,
    r2d2::{self, ManageConnection},
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseTarget;

pub use pii::{Pii, Sealer};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Serialises migrations when several instances start at once against one PostgreSQL.
const MIGRATION_LOCK_ID: i64 = 0x6761_7465_686f_7573; // "gatehous"

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached: answered 503, never 500 (DESIGN §14).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Query(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Conflict,
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            DieselError::BrokenTransactionManager => {
                Self::Unavailable("broken transaction manager".into())
            }
            other => {
                let text = other.to_string();
                // SQLite answers "database is locked" when a writer outlasts busy_timeout.
                if text.contains("database is locked") {
                    Self::Unavailable(text)
                } else {
                    Self::Query(text)
                }
            }
        }
    }
}

impl From<r2d2::PoolError> for StoreError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Opens connections for one target, choosing the backend from the URL scheme so a
/// bad PostgreSQL URL reports its own error rather than a SQLite one.
#[derive(Debug, Clone)]
pub struct Manager {
    target: DatabaseTarget,
    deadlines: Deadlines,
}

/// A pooled connection and what the pool knows of its health.
pub struct Pooled {
    conn: DbConnection,
    /// When a round trip on it last succeeded.
    known_good: Instant,
    /// A query on it failed for want of the server: never hand it out again.
    broken: bool,
}

/// A connection that answered this recently is handed out without a `SELECT 1` first:
/// under load every checkout would otherwise cost a round trip of its own. One that
/// has failed since is dropped instead (see `Store::run`), so an outage still costs at
/// most one failed query per pooled connection, answered `Unavailable` (503).
const TRUST_RECENT: Duration = Duration::from_secs(1);

/// How long the database may keep a request waiting (issue 23 item 3). A stalled
/// server or network (connections open, nothing answered) costs a request at most
/// `call`, then 503 with `Retry-After`; nothing waits as long as the stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Every call through `Store::run`: waiting for a connection, its statements and
    /// the commit, measured on this side, so it holds whatever the network does.
    pub call: Duration,
    /// PostgreSQL's own `statement_timeout` (and, doubled,
    /// `idle_in_transaction_session_timeout`, so row locks of a client that went away
    /// mid-transaction are freed), plus libpq's `connect_timeout`, TCP keepalives and
    /// `tcp_user_timeout`: a dead peer is noticed by the socket, not just abandoned.
    pub server: Duration,
}

impl Deadlines {
    /// From the `database_timeout_secs` setting: the server gives up first, with its
    /// own error; the call deadline, a second later, covers a server that cannot say so.
    pub fn from_timeout(timeout: Duration) -> Self {
        Self {
            call: timeout + Duration::from_secs(1),
            server: timeout,
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Self::from_timeout(Duration::from_secs(5))
    }
}

/// libpq settings that make a dead or unreachable server an error instead of a wait:
/// `connect_timeout`, TCP keepalives, and `tcp_user_timeout` (unacknowledged data).
/// Settings the URL already has are left as the operator wrote them.
fn bounded_url(url: &str, timeout: Duration) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let secs = timeout.as_secs().max(2).to_string();
    let ms = timeout.as_millis().max(1000).to_string();
    let wanted = [
        ("connect_timeout", secs.as_str()),
        ("keepalives", "1"),
        ("keepalives_idle", secs.as_str()),
        ("keepalives_interval", "1"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", ms.as_str()),
    ];
    let present: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    {
        let mut query = parsed.query_pairs_mut();
        for (key, value) in wanted {
            if !present.iter().any(|p| p == key) {
                query.append_pair(key, value);
            }
        }
    }
    parsed.to_string()
}

impl Manager {
    fn open(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.target {
            DatabaseTarget::Postgres(url) => {
                let url = bounded_url(url, self.deadlines.server);
                let mut conn =
                    PgConnection::establish(&url).map_err(diesel::r2d2::Error::ConnectionError)?;
                let ms = self.deadlines.server.as_millis();
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    &format!(
                        "SET statement_timeout = {ms}; \
                         SET idle_in_transaction_session_timeout = {};",
                        2 * ms
                    ),
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgresql(conn))
            }
            DatabaseTarget::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers proceed during a write; busy_timeout makes writers
                // queue instead of failing; foreign keys are off by default in SQLite.
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        Ok(Pooled {
            conn: self.open()?,
            known_good: Instant::now(),
            broken: false,
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), Self::Error> {
        if pooled.known_good.elapsed() < TRUST_RECENT {
            return Ok(());
        }
        diesel::sql_query("SELECT 1")
            .execute(&mut pooled.conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
        pooled.known_good = Instant::now();
        Ok(())
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        pooled.broken
    }
}

pub type Pool = r2d2::Pool<Manager>;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// One permit per pooled connection, handed out first come, first served. Without
    /// it, every waiting request parks a blocking thread on the pool, and a connection
    /// given back goes to whichever thread grabs it first, not necessarily the one that
    /// has waited longest.
    gate: Arc<tokio::sync::Semaphore>,
    checkout_timeout: Duration,
    /// Longest a `run` may take from the call to its answer (see [`Deadlines`]).
    call_timeout: Duration,
    backend: Backend,
}

/// Longest a request waits for a database connection before it is answered 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Opens the pool with the default [`Deadlines`]. Blocking: call before the server
    /// starts or from `spawn_blocking`.
    pub fn connect(target: &DatabaseTarget, pool_size: u32) -> Result<Self, StoreError> {
        Self::connect_bounded(target, pool_size, Deadlines::default())
    }

    /// Opens the pool. Blocking: call before the server starts or from `spawn_blocking`.
    pub fn connect_bounded(
        target: &DatabaseTarget,
        pool_size: u32,
        deadlines: Deadlines,
    ) -> Result<Self, StoreError> {
        let backend = match target {
            DatabaseTarget::Postgres(_) => Backend::Postgres,
            DatabaseTarget::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                Backend::Sqlite
            }
        };
        let manager = Manager {
            target: target.clone(),
            deadlines,
        };
        // Fail fast with the real reason instead of r2d2's generic time-out.
        let mut first = manager
            .open()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        diesel::sql_query("SELECT 1")
            .execute(&mut first)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        drop(first);
        let checkout_timeout = CHECKOUT_TIMEOUT.min(deadlines.call);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(checkout_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build_unchecked(manager);
        let gate = Arc::new(tokio::sync::Semaphore::new(pool_size as usize));
        Ok(Self {
            pool,
            gate,
            checkout_timeout,
            call_timeout: deadlines.call,
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Longest a `run` takes before it answers `Unavailable`: for callers that wait on
    /// the database another way (the audit writer) and must give up as soon.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Runs `f` with a pooled connection on the blocking pool, answering `Unavailable`
    /// once the call deadline has passed, whatever the network is doing (issue 23 item
    /// 3). The abandoned work keeps its connection and its permit until it ends (the
    /// socket's keepalive and user timeout see to that for a dead peer), so the pool
    /// never hands out more connections than it has.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let checkout = tokio::time::Instant::now() + self.checkout_timeout;
        let permit =
            tokio::time::timeout_at(checkout.min(deadline), self.gate.clone().acquire_owned())
                .await
                .map_err(|_| StoreError::Unavailable("no database connection came free".into()))?
                .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let store = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            store.run_blocking(f)
        });
        match tokio::time::timeout_at(deadline, work).await {
            Ok(joined) => {
                joined.map_err(|e| StoreError::Query(format!("database task failed: {e}")))?
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from the database within {} ms",
                self.call_timeout.as_millis()
            ))),
        }
    }

    /// Like `run`, but on the calling thread, which must be one that may block (a
    /// thread of its own, never a Tokio worker). It does not queue at the gate: it waits
    /// in the pool itself, for at most the same checkout timeout. Meant for the one
    /// long-lived thread that writes the audit trail, which would otherwise pay two
    /// thread hand-offs per batch.
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.pool.get()?;
        let result = f(&mut pooled.conn);
        match &result {
            Ok(_) => pooled.known_good = Instant::now(),
            Err(StoreError::Unavailable(_)) => pooled.broken = true,
            Err(_) => {}
        }
        result
    }

    /// Like `run`, inside one transaction, for writing: on SQLite it begins IMMEDIATE
    /// (see [`write_transaction`]).
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| write_transaction(conn, f)).await
    }

    /// Applies pending migrations; returns the names of those applied (empty on a no-op).
    pub fn migrate_blocking(&self) -> Result<Vec<String>, StoreError> {
        let mut pooled = self.pool.get()?;
        let applied = match &mut pooled.conn {
            DbConnection::Postgresql(pg) => {
                // A migration (or waiting for another instance's) may outlast the
                // per-statement bound meant for requests.
                diesel::sql_query("SET statement_timeout = 0").execute(pg)?;
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                    .execute(pg)?;
                let result = pg
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>());
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                    .execute(pg)?;
                result
            }
            DbConnection::Sqlite(lite) => lite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>()),
        };
        // Unbounded now: dropped rather than handed to a request.
        pooled.broken = matches!(pooled.conn, DbConnection::Postgresql(_));
        applied.map_err(|e| StoreError::Query(format!("migration failed: {e}")))
    }

    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.migrate_blocking())
            .await
            .map_err(|e| StoreError::Query(format!("migration task failed: {e}")))?
    }

    /// For `/readyz`: a fresh round trip, bounded in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let check = self.run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        });
        match tokio::time::timeout(Duration::from_secs(3), check).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable("ping timed out".into())),
        }
    }
}

/// Runs `f` in a transaction that will write. On SQLite it begins `IMMEDIATE`: the write
/// lock is taken first, so a writer waits its turn (`busy_timeout`). A deferred
/// transaction that reads and then writes cannot wait: when another connection has
/// written since its read, SQLite refuses the upgrade at once with SQLITE_BUSY, and the
/// request that held it answers 503 in under a millisecond (issue 23 item 4). Inside a
/// transaction already, it nests as a savepoint, as `Connection::transaction` does.
pub fn write_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(lite) = &mut *conn else {
        return conn.transaction(f);
    };
    if AnsiTransactionManager::transaction_manager_status_mut(lite)
        .transaction_depth()?
        .is_some()
    {
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(&mut *lite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    // The same connection, now seen as SQLite again to end what was begun on it.
    let DbConnection::Sqlite(lite) = &mut *conn else {
        return result;
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(lite)?;
            Ok(value)
        }
        Err(e) => match AnsiTransactionManager::rollback_transaction(lite) {
            Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Ok when an update changed `rows` rows; `NotFound` when there was none to change.
pub fn changed_one(rows: usize) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// New primary keys: random UUIDs stored as text on both backends.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{testing::sqlite, *};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_callers_than_connections_all_get_one_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir, 2).await;
        let (busy, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls = (0..20).map(|_| {
            let (store, busy, most) = (store.clone(), busy.clone(), most.clone());
            tokio::spawn(async move {
                store
                    .run(move |c| {
                        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        diesel::sql_query("SELECT 1").execute(c)?;
                        std::thread::sleep(Duration::from_millis(5));
                        busy.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            })
        });
        for call in futures_util::future::join_all(calls).await {
            call.unwrap().unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "never more than the pool at once"
        );
    }

    /// Issue 23 item 4: on SQLite a deferred transaction that reads and then writes is
    /// refused at once (SQLITE_BUSY) when another writer committed after its read; a
    /// write transaction waits its turn instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn write_transactions_that_read_first_wait_for_each_other_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir, 4).await;
        store
            .run(|c| {
                diesel::sql_query("CREATE TABLE tally (n INTEGER NOT NULL)").execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        let writers = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transaction(|c| {
                        diesel::sql_query("SELECT count(*) FROM tally").execute(c)?;
                        std::thread::sleep(Duration::from_millis(20));
                        diesel::sql_query("INSERT INTO tally (n) VALUES (1)").execute(c)?;
                        Ok(())
                    })
                    .await
            })
        });
        for written in futures_util::future::join_all(writers).await {
            written.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_caller_that_waits_too_long_is_told_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = sqlite(&dir, 1).await;
        store.checkout_timeout = Duration::from_millis(50);
        let held = store.gate.clone().acquire_owned().await.unwrap();
        let waited = store.run(|_| Ok(())).await;
        assert!(
            matches!(waited, Err(StoreError::Unavailable(_))),
            "{waited:?}"
        );
        drop(held);
        store.run(|_| Ok(())).await.unwrap();
    }
}
