//! The bounded password-hashing pool (DESIGN §4).
//!
//! argon2 is deliberately expensive. At most `workers` hashes run at once (sized to
//! the cores), each on a dedicated thread of this pool. At most `queue` more may wait;
//! beyond that a sign-in is refused at once with `Busy` (503 + Retry-After) instead of
//! queueing without bound, which is what turns a password-spraying flood into an outage.
//!
//! The hashing threads run at a lower scheduling priority (nice `HASHING_NICE`) than
//! the threads that serve requests. Under a flood, argon2 then takes only the CPU the
//! rest of the server leaves idle: `/healthz`, pages, TLS handshakes and the 503s for
//! the excess keep answering quickly, while hashing throughput is unchanged whenever
//! the server is otherwise idle. A sign-in that will be refused for capacity is refused
//! before it touches the database ([`HashingPool::admit`]).

use std::sync::{Arc, Mutex, mpsc};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::password::{HashError, Hasher};
use crate::{domain::Password, telemetry::Metrics};

/// The nice value of hashing threads: well below request threads (0), above idle.
pub const HASHING_NICE: i8 = 10;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("password hashing is at capacity")]
    Busy,
    #[error("{0}")]
    Hash(#[from] HashError),
    #[error("hashing task failed: {0}")]
    Task(String),
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct HashingPool {
    hasher: Hasher,
    admitted: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified against when the username is unknown so
    /// that both cost the same (DESIGN §4).
    dummy: Arc<str>,
    queued: IntGauge,
    busy: IntCounter,
    operations: IntCounterVec,
}

/// A place in the pool's bounded queue, taken before any other work on a sign-in so
/// that a request refused for capacity costs nothing else.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl HashingPool {
    pub fn new(
        hasher: Hasher,
        workers: usize,
        queue: usize,
        metrics: &Metrics,
    ) -> Result<Self, HashError> {
        let workers = workers.max(1);
        let dummy = hasher.unmatchable();
        let queued = IntGauge::new("hashing_in_flight", "password hashes running or waiting")
            .expect("static metric");
        let busy = IntCounter::new(
            "hashing_rejected_total",
            "sign-ins refused because hashing was at capacity",
        )
        .expect("static metric");
        let operations = IntCounterVec::new(
            Opts::new(
                "password_hash_operations_total",
                "argon2 operations by kind",
            ),
            &["kind"],
        )
        .expect("static metric");
        metrics.register(Box::new(queued.clone()));
        metrics.register(Box::new(busy.clone()));
        metrics.register(Box::new(operations.clone()));
        Ok(Self {
            hasher,
            admitted: Arc::new(Semaphore::new(workers + queue)),
            jobs: spawn_workers(workers)?,
            dummy: dummy.into(),
            queued,
            busy,
            operations,
        })
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// A place in the queue, or `Busy` at once when it is full.
    pub fn admit(&self) -> Result<Admission, PoolError> {
        let Ok(permit) = self.admitted.clone().try_acquire_owned() else {
            self.busy.inc();
            return Err(PoolError::Busy);
        };
        self.queued.inc();
        Ok(Admission {
            _permit: permit,
            gauge: self.queued.clone(),
        })
    }

    /// Runs `job` on a hashing thread under `admission`, which ends with the job.
    async fn run<T: Send + 'static>(
        &self,
        admission: Admission,
        kind: &'static str,
        job: impl FnOnce(&Hasher) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        self.operations.with_label_values(&[kind]).inc();
        let hasher = self.hasher.clone();
        let span = tracing::Span::current();
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _entered = span.enter();
                let out = job(&hasher);
                drop(admission);
                let _ = done.send(out);
            }))
            .map_err(|_| PoolError::Task("the hashing threads have stopped".into()))?;
        result
            .await
            .map_err(|_| PoolError::Task("a hashing job was lost".into()))
    }

    async fn submit<T: Send + 'static>(
        &self,
        kind: &'static str,
        job: impl FnOnce(&Hasher) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let admission = self.admit()?;
        self.run(admission, kind, job).await
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no
    /// account (`phc` = None), so the two take the same time and give the same answer.
    pub async fn verify(&self, phc: Option<String>, password: Password) -> Result<bool, PoolError> {
        let admission = self.admit()?;
        self.verify_admitted(admission, phc, password).await
    }

    /// As [`Self::verify`], in a place taken earlier with [`Self::admit`].
    pub async fn verify_admitted(
        &self,
        admission: Admission,
        phc: Option<String>,
        password: Password,
    ) -> Result<bool, PoolError> {
        let dummy = self.dummy.clone();
        let known = phc.is_some();
        let ok = self
            .run(admission, "verify", move |h| {
                let target = phc.as_deref().unwrap_or(&dummy);
                h.verify(target, &password)
            })
            .await?;
        Ok(ok && known)
    }

    pub async fn hash(&self, password: Password) -> Result<String, PoolError> {
        Ok(self.submit("hash", move |h| h.hash(&password)).await??)
    }

    /// True when any of `hashes` matches (password history, DESIGN §4).
    pub async fn matches_any(
        &self,
        hashes: Vec<String>,
        password: Password,
    ) -> Result<bool, PoolError> {
        if hashes.is_empty() {
            return Ok(false);
        }
        self.submit("history", move |h| {
            hashes.iter().any(|phc| h.verify(phc, &password))
        })
        .await
    }
}

/// Starts `workers` hashing threads that take jobs until every sender is gone.
fn spawn_workers(workers: usize) -> Result<mpsc::Sender<Job>, HashError> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..workers {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || {
                lower_priority();
                loop {
                    // The lock is held only while waiting for the next job.
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| HashError::Hash(format!("starting a hashing thread: {e}")))?;
    }
    Ok(jobs)
}

/// Lowers the calling thread's priority to nice `HASHING_NICE` (per thread on Linux).
/// Lowering never needs privileges; if the platform refuses, hashing runs at normal
/// priority, which is correct, only less graceful under a flood.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    // thread-priority maps 0..=99 onto nice 19..=-20: 22 is nice 10.
    let Ok(value) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
        tracing::warn!(error = ?e, "hashing threads keep normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(workers: usize, queue: usize) -> HashingPool {
        HashingPool::new(
            Hasher::new(64, 1, 1).unwrap(),
            workers,
            queue,
            &Metrics::new(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn unknown_account_never_verifies_even_with_the_dummy_password() {
        let p = pool(1, 1);
        assert!(
            !p.verify(None, Password::parse("anything".into()).unwrap())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let p = pool(1, 1);
        let phc = p
            .hash(Password::parse("Xy-123456".into()).unwrap())
            .await
            .unwrap();
        assert!(
            p.verify(
                Some(phc.clone()),
                Password::parse("Xy-123456".into()).unwrap()
            )
            .await
            .unwrap()
        );
        assert!(
            !p.verify(Some(phc), Password::parse("Xy-123457".into()).unwrap())
                .await
                .unwrap()
        );
    }

    /// The nice value of each of this process's threads called `name`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i64> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            found.push(nice_of(
                &std::fs::read_to_string(task.path().join("stat")).unwrap(),
            ));
        }
        found
    }

    /// The nice value in a `/proc/…/stat` line: field 19, counting "(comm)" as field 2.
    #[cfg(target_os = "linux")]
    fn nice_of(stat: &str) -> i64 {
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_below_request_threads() {
        let p = pool(2, 1);
        assert!(
            p.verify(None, Password::parse("anything".into()).unwrap())
                .await
                .is_ok()
        );
        // Each thread lowers its own priority as it starts; give the second a moment.
        let mut nice = Vec::new();
        for _ in 0..100 {
            nice = [nice_of_threads("argon2-0"), nice_of_threads("argon2-1")].concat();
            if nice.len() >= 2 && nice.iter().all(|n| *n == i64::from(HASHING_NICE)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(nice.len() >= 2, "hashing threads not found: {nice:?}");
        assert!(
            nice.iter().all(|n| *n == i64::from(HASHING_NICE)),
            "{nice:?}"
        );
        // The thread that awaited the result (a request thread, in the server) does not.
        assert_eq!(
            nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()),
            0
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        // Expensive enough that the first jobs are still running when the flood arrives.
        let p =
            HashingPool::new(Hasher::new(64 * 1024, 3, 1).unwrap(), 1, 1, &Metrics::new()).unwrap();
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(
                    async move { p.hash(Password::parse("Flood-1234".into()).unwrap()).await },
                )
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for j in jobs {
            match j.await.unwrap() {
                Ok(_) => done += 1,
                Err(PoolError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(done, 2, "one running plus one queued");
        assert_eq!(busy, 4);
    }
}
