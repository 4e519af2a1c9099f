//! One conformance suite for both ephemeral stores: every case runs against `MemoryStore`
//! and against `RedisStore`, so that a deployment behaves the same whichever it uses.
//!
//! The Redis half needs `GATEHOUSE_TEST_REDIS_URL` (e.g. redis://127.0.0.1:6379) and skips
//! itself without it. Each Redis test works under its own random key prefix, so tests may
//! run in parallel and against a Redis that holds other data.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::ephemeral::{Ephemeral, EphemeralError, MemoryStore, RedisStore};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
/// Comfortably past `SHORT`, so that expiry checks don't flake on a busy machine.
const PAST_SHORT: Duration = Duration::from_millis(600);

fn memory_store() -> Arc<dyn Ephemeral> {
    Arc::new(MemoryStore::new())
}

fn redis_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: GATEHOUSE_TEST_REDIS_URL not set");
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("gh-test:{}:", uuid::Uuid::new_v4())
}

async fn redis_store() -> Option<Arc<dyn Ephemeral>> {
    let url = redis_url()?;
    let store = RedisStore::connect(&url, &fresh_prefix())
        .await
        .expect("connect to GATEHOUSE_TEST_REDIS_URL");
    Some(Arc::new(store))
}

/// Makes `memory_x` and `redis_x` tests from each `case_x`.
macro_rules! conformance {
    ($($case:ident => $memory:ident, $redis:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $memory() {
                $case(memory_store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $redis() {
                if let Some(store) = redis_store().await {
                    $case(store).await;
                }
            }
        )*
    };
}

conformance! {
    case_set_get_round_trip => memory_set_get_round_trip, redis_set_get_round_trip;
    case_get_missing_is_none => memory_get_missing_is_none, redis_get_missing_is_none;
    case_set_replaces => memory_set_replaces, redis_set_replaces;
    case_set_expires => memory_set_expires, redis_set_expires;
    case_set_if_absent => memory_set_if_absent, redis_set_if_absent;
    case_take_once => memory_take_once, redis_take_once;
    case_concurrent_takes => memory_concurrent_takes, redis_concurrent_takes;
    case_concurrent_incr => memory_concurrent_incr, redis_concurrent_incr;
    case_incr_keeps_window => memory_incr_keeps_window, redis_incr_keeps_window;
    case_counter_reads_as_decimal => memory_counter_reads_as_decimal, redis_counter_reads_as_decimal;
    case_delete => memory_delete, redis_delete;
    case_set_add_members_remove => memory_set_add_members_remove, redis_set_add_members_remove;
    case_set_index_expires => memory_set_index_expires, redis_set_index_expires;
    case_binary_values => memory_binary_values, redis_binary_values;
    case_wrong_kind_is_an_error => memory_wrong_kind_is_an_error, redis_wrong_kind_is_an_error;
    case_ping => memory_ping, redis_ping;
}

async fn case_set_get_round_trip(store: Arc<dyn Ephemeral>) {
    store.set("k", b"value", LONG).await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"value".to_vec()));
    // Empty values are values too, not absence.
    store.set("empty", b"", LONG).await.unwrap();
    assert_eq!(store.get("empty").await.unwrap(), Some(Vec::new()));
}

async fn case_get_missing_is_none(store: Arc<dyn Ephemeral>) {
    assert_eq!(store.get("missing").await.unwrap(), None);
    assert_eq!(store.take("missing").await.unwrap(), None);
}

async fn case_set_replaces(store: Arc<dyn Ephemeral>) {
    store.set("k", b"first", LONG).await.unwrap();
    store.set("k", b"second", LONG).await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"second".to_vec()));
    // The replacement's TTL counts, not the original one.
    store.set("k", b"third", SHORT).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get("k").await.unwrap(), None);
}

async fn case_set_expires(store: Arc<dyn Ephemeral>) {
    store.set("short", b"v", SHORT).await.unwrap();
    store.set("long", b"v", LONG).await.unwrap();
    assert_eq!(store.get("short").await.unwrap(), Some(b"v".to_vec()));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(store.take("short").await.unwrap(), None);
    assert!(!store.delete("short").await.unwrap());
    assert_eq!(store.get("long").await.unwrap(), Some(b"v".to_vec()));
}

async fn case_set_if_absent(store: Arc<dyn Ephemeral>) {
    assert!(store.set_if_absent("nonce", b"a", SHORT).await.unwrap());
    assert!(!store.set_if_absent("nonce", b"b", SHORT).await.unwrap());
    assert_eq!(store.get("nonce").await.unwrap(), Some(b"a".to_vec()));
    tokio::time::sleep(PAST_SHORT).await;
    assert!(store.set_if_absent("nonce", b"c", LONG).await.unwrap());
    assert_eq!(store.get("nonce").await.unwrap(), Some(b"c".to_vec()));
}

async fn case_take_once(store: Arc<dyn Ephemeral>) {
    store.set("code", b"one-time", LONG).await.unwrap();
    assert_eq!(
        store.take("code").await.unwrap(),
        Some(b"one-time".to_vec())
    );
    assert_eq!(store.take("code").await.unwrap(), None);
    assert_eq!(store.get("code").await.unwrap(), None);
}

async fn case_concurrent_takes(store: Arc<dyn Ephemeral>) {
    store.set("code", b"once", LONG).await.unwrap();
    let takers: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take("code").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        if let Some(value) = taker.await.unwrap() {
            assert_eq!(value, b"once".to_vec());
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn case_concurrent_incr(store: Arc<dyn Ephemeral>) {
    let incrementers: Vec<_> = (0..100)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.incr("counter", LONG).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for incrementer in incrementers {
        seen.push(incrementer.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=100).collect::<Vec<i64>>());
    assert_eq!(store.get("counter").await.unwrap(), Some(b"100".to_vec()));
}

async fn case_incr_keeps_window(store: Arc<dyn Ephemeral>) {
    let start = Instant::now();
    assert_eq!(store.incr("window", SHORT).await.unwrap(), 1);
    tokio::time::sleep(SHORT / 2).await;
    // A later increment with a long TTL must not move the end of the window.
    assert_eq!(store.incr("window", LONG).await.unwrap(), 2);
    tokio::time::sleep(PAST_SHORT.saturating_sub(start.elapsed())).await;
    assert_eq!(store.get("window").await.unwrap(), None);
    assert_eq!(store.incr("window", LONG).await.unwrap(), 1);
}

async fn case_counter_reads_as_decimal(store: Arc<dyn Ephemeral>) {
    for _ in 0..3 {
        store.incr("n", LONG).await.unwrap();
    }
    assert_eq!(store.get("n").await.unwrap(), Some(b"3".to_vec()));
    // A decimal value set as bytes counts on from there, as Redis' INCR does.
    store.set("m", b"41", LONG).await.unwrap();
    assert_eq!(store.incr("m", LONG).await.unwrap(), 42);
    assert_eq!(store.take("n").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get("n").await.unwrap(), None);
}

async fn case_delete(store: Arc<dyn Ephemeral>) {
    store.set("k", b"v", LONG).await.unwrap();
    assert!(store.delete("k").await.unwrap());
    assert!(!store.delete("k").await.unwrap());
    assert_eq!(store.get("k").await.unwrap(), None);
    // Delete works whatever the key holds.
    store.incr("counter", LONG).await.unwrap();
    store.set_add("set", "m", LONG).await.unwrap();
    assert!(store.delete("counter").await.unwrap());
    assert!(store.delete("set").await.unwrap());
    assert!(store.set_members("set").await.unwrap().is_empty());
}

fn sorted(mut members: Vec<String>) -> Vec<String> {
    members.sort();
    members
}

async fn case_set_add_members_remove(store: Arc<dyn Ephemeral>) {
    assert!(store.set_members("sessions").await.unwrap().is_empty());
    store.set_add("sessions", "s1", LONG).await.unwrap();
    store.set_add("sessions", "s2", LONG).await.unwrap();
    store.set_add("sessions", "s1", LONG).await.unwrap();
    store.set_add("sessions", "s3", LONG).await.unwrap();
    assert_eq!(
        sorted(store.set_members("sessions").await.unwrap()),
        ["s1", "s2", "s3"]
    );
    store.set_remove("sessions", "s2").await.unwrap();
    store.set_remove("sessions", "absent").await.unwrap();
    store.set_remove("no-such-set", "s1").await.unwrap();
    assert_eq!(
        sorted(store.set_members("sessions").await.unwrap()),
        ["s1", "s3"]
    );
    store.set_remove("sessions", "s1").await.unwrap();
    store.set_remove("sessions", "s3").await.unwrap();
    assert!(store.set_members("sessions").await.unwrap().is_empty());
    // An emptied set is gone, as if it had never been.
    assert!(!store.delete("sessions").await.unwrap());
}

async fn case_set_index_expires(store: Arc<dyn Ephemeral>) {
    let start = Instant::now();
    store.set_add("index", "a", SHORT).await.unwrap();
    tokio::time::sleep(SHORT / 2).await;
    // Adding renews the TTL of the whole set, older members included.
    store.set_add("index", "b", SHORT).await.unwrap();
    let renewed = Instant::now();
    tokio::time::sleep((SHORT + SHORT / 6).saturating_sub(start.elapsed())).await;
    if renewed.elapsed() < SHORT {
        let members: HashSet<String> = store
            .set_members("index")
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(members, HashSet::from(["a".to_owned(), "b".to_owned()]));
    }
    tokio::time::sleep(PAST_SHORT.saturating_sub(renewed.elapsed())).await;
    assert!(store.set_members("index").await.unwrap().is_empty());
}

async fn case_binary_values(store: Arc<dyn Ephemeral>) {
    let value: Vec<u8> = (0..=255u8)
        .rev()
        .chain([0, 0xff, 0xc3, 0x28, b'\n', b'\r'])
        .collect();
    assert!(std::str::from_utf8(&value).is_err());
    store.set("bin", &value, LONG).await.unwrap();
    assert_eq!(store.get("bin").await.unwrap(), Some(value.clone()));
    assert!(store.set_if_absent("bin2", &value, LONG).await.unwrap());
    assert_eq!(store.take("bin2").await.unwrap(), Some(value));
    // Keys need not be plain words either.
    store
        .set("weird key: ünïcode/\u{0}", b"v", LONG)
        .await
        .unwrap();
    assert_eq!(
        store.get("weird key: ünïcode/\u{0}").await.unwrap(),
        Some(b"v".to_vec())
    );
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, EphemeralError>) {
    match result {
        Err(EphemeralError::Unavailable(message)) => assert!(!message.is_empty()),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn case_wrong_kind_is_an_error(store: Arc<dyn Ephemeral>) {
    store.set_add("set", "m", LONG).await.unwrap();
    store.set("bytes", b"not a number", LONG).await.unwrap();
    store.incr("counter", LONG).await.unwrap();

    assert_unavailable(store.get("set").await);
    assert_unavailable(store.take("set").await);
    assert_unavailable(store.incr("set", LONG).await);
    assert_unavailable(store.incr("bytes", LONG).await);
    assert_unavailable(store.set_add("bytes", "m", LONG).await);
    assert_unavailable(store.set_add("counter", "m", LONG).await);
    assert_unavailable(store.set_remove("bytes", "m").await);
    assert_unavailable(store.set_members("counter").await);

    // Failed operations leave the keys as they were.
    assert_eq!(store.set_members("set").await.unwrap(), ["m"]);
    assert_eq!(
        store.get("bytes").await.unwrap(),
        Some(b"not a number".to_vec())
    );
    assert_eq!(store.get("counter").await.unwrap(), Some(b"1".to_vec()));
    // set_if_absent sees any kind of key as present; set replaces any kind.
    assert!(!store.set_if_absent("set", b"v", LONG).await.unwrap());
    store.set("set", b"now bytes", LONG).await.unwrap();
    assert_eq!(store.get("set").await.unwrap(), Some(b"now bytes".to_vec()));
}

async fn case_ping(store: Arc<dyn Ephemeral>) {
    store.ping().await.unwrap();
}

// Redis only.

#[tokio::test]
async fn redis_prefixes_isolate_stores() {
    let Some(url) = redis_url() else { return };
    let a = RedisStore::connect(&url, &fresh_prefix()).await.unwrap();
    let b = RedisStore::connect(&url, &fresh_prefix()).await.unwrap();
    a.set("shared-name", b"a", LONG).await.unwrap();
    a.set_add("shared-set", "a", LONG).await.unwrap();
    a.incr("shared-counter", LONG).await.unwrap();
    assert_eq!(b.get("shared-name").await.unwrap(), None);
    assert!(b.set_members("shared-set").await.unwrap().is_empty());
    assert_eq!(b.incr("shared-counter", LONG).await.unwrap(), 1);
    assert!(b.set_if_absent("shared-name", b"b", LONG).await.unwrap());
    assert!(!b.delete("shared-set").await.unwrap());
    assert_eq!(a.get("shared-name").await.unwrap(), Some(b"a".to_vec()));
    assert_eq!(b.get("shared-name").await.unwrap(), Some(b"b".to_vec()));
}

#[tokio::test]
async fn redis_debug_shows_no_url() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let store = RedisStore::connect(&url, &prefix).await.unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains(&prefix));
    assert!(!shown.contains(&url), "{shown}");
}

/// Needs no Redis: a closed port must fail fast, not hang start-up or /readyz.
#[tokio::test]
async fn redis_connect_to_closed_port_fails_fast() {
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        RedisStore::connect("redis://gh-user:s3cr3t-pa55@127.0.0.1:1/0", "gh-test:"),
    )
    .await
    .expect("connect must give up on its own");
    let elapsed = start.elapsed();
    let Err(EphemeralError::Unavailable(message)) = result else {
        panic!("connecting to a closed port succeeded");
    };
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let shown = format!(
        "{message} {:?}",
        EphemeralError::Unavailable(message.clone())
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(!shown.contains("127.0.0.1"), "{shown}");
}

/// Needs no Redis: a malformed URL is reported without echoing it (it may hold a password).
#[tokio::test]
async fn redis_bad_url_is_reported_without_the_url() {
    let result = RedisStore::connect("http://gh-user:s3cr3t-pa55@example.invalid/", "p:").await;
    let Err(EphemeralError::Unavailable(message)) = result else {
        panic!("a non-redis URL was accepted");
    };
    assert!(!message.contains("s3cr3t"), "{message}");
}
