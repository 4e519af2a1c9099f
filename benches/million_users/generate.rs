//! Bulk generation for `million_users`: users through the store's own bulk insert
//! (`users::insert_many`, sealed as every write seals them), and an audit trail through
//! the product's own writer, so the hash chain is the chain Gatehouse writes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, future::join_all, stream};
use gatehouse::{
    audit::{Audit, AuditEvent, EventType, Outcome},
    auth::password::Hasher,
    clock::Clock,
    domain::{Email, OrgName, Password, Role, Username},
    startup::AppState,
    store::{orgs, users},
};

use crate::common::PASSWORD;

/// Users per transaction (two statements of 5000 rows, and their password history).
const USERS_PER_TRANSACTION: usize = 10_000;

/// Audit events handed to the writer at once: enough to keep its batches full (256).
const EVENTS_IN_FLIGHT: usize = 8192;

/// Audit events per generated user: created, signed in, then a failure or a logout.
pub const EVENTS_PER_USER: usize = 3;

/// How long the generated trail spans, ending now.
pub const TRAIL_DAYS: i64 = 365;

const GIVEN: [&str; 40] = [
    "ada", "ben", "carla", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas", "kofi",
    "lena", "mateo", "nadia", "oskar", "priya", "rafael", "sofia", "tomas", "ursula", "victor",
    "wen", "ximena", "yusuf", "zoe", "amir", "bianca", "chen", "dara", "emil", "fatima", "gustav",
    "hana", "ivan", "jade", "kai", "lucia", "marek", "noor", "olga",
];
const FAMILY: [&str; 50] = [
    "smith", "garcia", "nguyen", "muller", "rossi", "kowalski", "tanaka", "silva", "dubois",
    "jensen", "novak", "ivanova", "okafor", "haddad", "larsen", "moreau", "costa", "weber", "kim",
    "patel", "cohen", "horvat", "yilmaz", "petrov", "lopez", "schmidt", "rahman", "fischer",
    "bauer", "martin", "wright", "walker", "young", "king", "scott", "green", "baker", "adams",
    "nelson", "carter", "mitchell", "perez", "roberts", "turner", "phillips", "campbell", "parker",
    "evans", "edwards", "collins",
];

/// The family name of the few users a search by part of a name finds: no other name
/// contains it, at any scale.
pub const FEW: &str = "quillfeather";

/// Which generated users carry [`FEW`]: the same five at every scale of 1000 and up.
fn is_one_of_few(i: usize) -> bool {
    i < 1000 && i % 200 == 100
}

/// The username of generated user `i`.
pub fn username(i: usize) -> String {
    let given = GIVEN[i % GIVEN.len()];
    let family = if is_one_of_few(i) {
        FEW
    } else {
        FAMILY[(i / GIVEN.len()) % FAMILY.len()]
    };
    format!("{given}.{family}{i}")
}

/// The address of generated user `i` (mixed case, as people type them).
pub fn email(i: usize) -> String {
    let name = username(i);
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('x');
    format!("{first}{}@Clinic-{}.example.org", chars.as_str(), i % 97)
}

fn display_name(i: usize) -> String {
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let given = GIVEN[i % GIVEN.len()];
    let family = if is_one_of_few(i) {
        FEW
    } else {
        FAMILY[(i / GIVEN.len()) % FAMILY.len()]
    };
    format!("{} {}", cap(given), cap(family))
}

/// What generating the users left: their ids in order, and how long it took.
pub struct Users {
    pub org_id: String,
    pub ids: Vec<String>,
    pub hashing: Duration,
    pub inserting: Duration,
}

/// Creates `n` users in organisation `default`: one argon2id hash (the configured
/// parameters) of [`PASSWORD`] serves them all, each wrapped for its own row.
pub async fn users(state: &AppState, n: usize) -> Users {
    let started = Instant::now();
    let config = &state.config;
    let hasher = Hasher::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
    )
    .unwrap();
    let phc = hasher
        .hash(&Password::parse(PASSWORD.into()).unwrap())
        .unwrap();
    let hashing = started.elapsed();
    let org_id = state
        .store
        .run(|c| Ok(orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap()))
        .await
        .unwrap()
        .id;
    let started = Instant::now();
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(USERS_PER_TRANSACTION)
        .map(|from| (from, (from + USERS_PER_TRANSACTION).min(n)))
        .collect();
    // Two transactions at a time: one seals its rows while the other's are written.
    let mut ids: Vec<(usize, Vec<String>)> = stream::iter(chunks)
        .map(|(from, to)| {
            let (store, pii, org, phc) = (
                state.store.clone(),
                state.pii.clone(),
                org_id.clone(),
                phc.clone(),
            );
            async move {
                let news: Vec<users::NewUser> = (from..to)
                    .map(|i| users::NewUser {
                        org_id: org.clone(),
                        username: Username::parse(&username(i)).unwrap(),
                        email: Email::parse(&email(i)).unwrap(),
                        display_name: Some(display_name(i)),
                        role: Role::User,
                        password_hash: Some(phc.clone()),
                        must_change_password: false,
                    })
                    .collect();
                let now = Utc::now().naive_utc();
                let ids = store
                    .transaction(move |c| users::insert_many(c, &pii, &news, now))
                    .await
                    .unwrap();
                (from, ids)
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    ids.sort_by_key(|(from, _)| *from);
    Users {
        org_id,
        ids: ids.into_iter().flat_map(|(_, ids)| ids).collect(),
        hashing,
        inserting: started.elapsed(),
    }
}

/// A clock for the generated trail: each reading is `step` after the one before, from
/// `start`. The writer reads it once per event, so the events are spread evenly.
struct SteppingClock {
    start: DateTime<Utc>,
    step_micros: i64,
    readings: AtomicI64,
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        let k = self.readings.fetch_add(1, Ordering::Relaxed);
        self.start + chrono::Duration::microseconds(k * self.step_micros)
    }
}

/// Writes [`EVENTS_PER_USER`] events for each user of `ids`, spread over the last
/// [`TRAIL_DAYS`] days, through a second `Audit` on the same chain (as a second
/// instance would): every event is chained and MACed by the product's writer.
/// Returns how many it wrote.
pub async fn audit_trail(state: &AppState, org_id: &str, ids: &[String]) -> usize {
    let total = ids.len() * EVENTS_PER_USER;
    let span = chrono::Duration::days(TRAIL_DAYS);
    let clock = SteppingClock {
        start: Utc::now() - span - chrono::Duration::hours(1),
        step_micros: span.num_microseconds().unwrap() / total as i64,
        readings: AtomicI64::new(0),
    };
    let audit = Audit::open(state.store.clone(), &state.master_key, Arc::new(clock))
        .await
        .unwrap();
    let n = ids.len();
    for from in (0..total).step_by(EVENTS_IN_FLIGHT) {
        let to = (from + EVENTS_IN_FLIGHT).min(total);
        // `join_all` polls in order, so the clock is read (and events queued) in order.
        let written = join_all((from..to).map(|k| {
            // Each kind of event goes through the users in a scattered order, so that
            // one user's events lie far apart in the trail, as they do in life.
            let i = (k % n).wrapping_mul(7919) % n;
            audit.record(event(k / n, i, &ids[i], org_id))
        }))
        .await;
        for w in written {
            w.unwrap();
        }
    }
    total
}

/// The `kind`-th event of generated user `i`.
fn event(kind: usize, i: usize, id: &str, org_id: &str) -> AuditEvent {
    let (event_type, outcome) = match kind {
        0 => (EventType::UserCreated, Outcome::Success),
        1 => (EventType::SignInSucceeded, Outcome::Success),
        _ if i.is_multiple_of(4) => (EventType::SignInFailed, Outcome::Failure),
        _ => (EventType::SessionEnded, Outcome::Success),
    };
    let event = AuditEvent::new(event_type, outcome).subject(id).org(org_id);
    match event_type {
        EventType::UserCreated => event.actor("cli:import").detail("how", "import"),
        _ => {
            let ctx = gatehouse::audit::RequestContext {
                request_id: uuid::Uuid::new_v4().to_string(),
                client_ip: Some(std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])),
                user_agent: Some(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36".into(),
                ),
            };
            let event = event.request(&ctx);
            match event_type {
                EventType::SignInSucceeded => event.detail("amr", "pwd").detail("acr", "1"),
                EventType::SignInFailed => event.detail("reason", "wrong_password"),
                _ => event.detail("reason", "logout"),
            }
        }
    }
}
