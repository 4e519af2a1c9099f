//! The bounded password-hashing pool (DESIGN §4).
//!
//! argon2 is deliberately expensive. At most `workers` hashes run at once (sized to
//! the cores), on blocking threads so they never stall the async workers that answer
//! `/healthz` and render pages. At most `queue` more may wait; beyond that a sign-in is
//! refused at once with `Busy` (503 + Retry-After) instead of queueing without bound,
//! which is what turns a password-spraying flood into an outage.

use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::sync::Semaphore;

use super::password::{HashError, Hasher};
use crate::{domain::Password, telemetry::Metrics};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("password hashing is at capacity")]
    Busy,
    #[error("{0}")]
    Hash(#[from] HashError),
    #[error("hashing task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct HashingPool {
    hasher: Hasher,
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    /// A hash of a random password, verified against when the username is unknown so
    /// that both cost the same (DESIGN §4).
    dummy: Arc<str>,
    queued: IntGauge,
    busy: IntCounter,
    operations: IntCounterVec,
}

impl HashingPool {
    pub fn new(
        hasher: Hasher,
        workers: usize,
        queue: usize,
        metrics: &Metrics,
    ) -> Result<Self, HashError> {
        let workers = workers.max(1);
        let random = crate::auth::password::generate_one_time_password();
        let dummy = hasher.hash(
            &Password::parse(secrecy::ExposeSecret::expose_secret(&random).to_owned())
                .map_err(|e| HashError::Hash(e.0))?,
        )?;
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
            running: Arc::new(Semaphore::new(workers)),
            dummy: dummy.into(),
            queued,
            busy,
            operations,
        })
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Runs `job` on the pool, or answers `Busy` at once when the queue is full.
    async fn submit<T: Send + 'static>(
        &self,
        kind: &'static str,
        job: impl FnOnce(&Hasher) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let Ok(admission) = self.admitted.clone().try_acquire_owned() else {
            self.busy.inc();
            return Err(PoolError::Busy);
        };
        self.queued.inc();
        let _gauge = GaugeGuard(&self.queued);
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PoolError::Task(e.to_string()))?;
        self.operations.with_label_values(&[kind]).inc();
        let hasher = self.hasher.clone();
        let span = tracing::Span::current();
        let result = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let out = job(&hasher);
            drop(permit);
            drop(admission);
            out
        })
        .await
        .map_err(|e| PoolError::Task(e.to_string()))?;
        Ok(result)
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no
    /// account (`phc` = None), so the two take the same time and give the same answer.
    pub async fn verify(&self, phc: Option<String>, password: Password) -> Result<bool, PoolError> {
        let dummy = self.dummy.clone();
        let known = phc.is_some();
        let ok = self
            .submit("verify", move |h| {
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

struct GaugeGuard<'a>(&'a IntGauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
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
