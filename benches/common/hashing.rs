//! The hashing bound of sign-in benchmarks: raw argon2id verifications per second at
//! the default parameters, and percentiles. Included with
//! `#[path = "common/hashing.rs"] mod hashing;` by the benchmarks that need it.

use std::time::{Duration, Instant};

use gatehouse::{auth::password::Hasher, config::Config, domain::Password};

use crate::common::PASSWORD;

/// The `p` quantile (0–1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Verifications per second for `seconds`, one thread per core, at the default argon2
/// parameters: what a sign-in costs, and so the most sign-ins the machine can do.
pub fn raw_verifications_per_second(seconds: u64) -> f64 {
    let defaults = Config::default();
    let hasher = Hasher::new(
        defaults.argon2_memory_kib,
        defaults.argon2_iterations,
        defaults.argon2_parallelism,
    )
    .unwrap();
    let phc = hasher
        .hash(&Password::parse(PASSWORD.into()).unwrap())
        .unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, phc) = (hasher.clone(), phc.clone());
            std::thread::spawn(move || {
                let password = Password::parse(PASSWORD.into()).unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    assert!(hasher.verify(&phc, &password));
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / started.elapsed().as_secs_f64()
}
