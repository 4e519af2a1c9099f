//! Brute-force defence (DESIGN §5): lockout, IP blocks, rate limits.

use std::sync::Arc;

use gatehouse::{
    clock::Clock,
    domain::OrgName,
    store::{ip_blocks, orgs},
};

use crate::helpers::{TestApp, create_user, hidden, spawn_app_with, spawn_with_config};

const VERIFY_METRIC: &str = "gatehouse_password_hash_operations_total{kind=\"verify\"} ";
const LOCKED: &str = "sign-in is locked for this username";
const FAILED: &str = "Incorrect username or password.";

/// No rate limit or IP block gets in the way of what a test measures.
fn lenient(c: &mut gatehouse::config::Config) {
    c.rate_limit_per_minute = 100_000;
    c.rate_limit_burst = 100_000;
    c.ip_block_threshold = 100_000;
}

async fn attempt(
    app: &TestApp,
    username: &str,
    password: &str,
    xff: Option<&str>,
) -> (u16, String) {
    let client = app.new_client();
    let (tx, csrf) = app.open_login(&client).await;
    let mut req = client
        .post(app.url("/login"))
        .header("Origin", &app.base)
        .form(&[
            ("tx", tx.as_str()),
            ("csrf", &csrf),
            ("username", username),
            ("password", password),
        ]);
    if let Some(xff) = xff {
        req = req.header("X-Forwarded-For", xff);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn set_lockout(app: &TestApp, threshold: u32, permanent_after: u32) {
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.lockout.threshold = threshold;
            policy.lockout.permanent_after = permanent_after;
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
}

/// `n` sign-ins for `username` with `password`, each from its own browser, posted at
/// once: (status, page) of each.
async fn in_parallel(
    app: &TestApp,
    n: usize,
    username: &str,
    password: &str,
) -> Vec<(u16, String)> {
    let mut prepared = Vec::new();
    for _ in 0..n {
        let client = app.new_client();
        let (tx, csrf) = app.open_login(&client).await;
        prepared.push((client, tx, csrf));
    }
    futures_util::future::join_all(prepared.iter().map(|(client, tx, csrf)| async {
        let res = app
            .post_form(
                client,
                "/login",
                &[
                    ("tx", tx),
                    ("csrf", csrf),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    }))
    .await
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_get_exactly_threshold_checks() {
    let app = spawn_app_with(|c| {
        lenient(c);
        // Every attempt takes a place in the hashing queue before anything else (a
        // full queue answers 503 first); room for all 50 keeps this about the lock.
        c.hashing_queue = 64;
    })
    .await;
    create_user(&app, "vera", "Quiet-Harbour-42", false).await;
    let results = in_parallel(&app, 50, "vera", "Wrong-Harbour-42").await;
    let failed = results.iter().filter(|(_, r)| r.contains(FAILED)).count();
    let locked = results.iter().filter(|(_, r)| r.contains(LOCKED)).count();
    assert_eq!(
        (failed, locked),
        (5, 45),
        "exactly the threshold was checked"
    );
    assert_eq!(
        app.metric(VERIFY_METRIC).await,
        5.0,
        "only 5 argon2 verifications ran"
    );

    let (_, page) = attempt(&app, "vera", "Quiet-Harbour-42", None).await;
    assert!(
        page.contains(LOCKED),
        "the right password does not sign in while locked"
    );
    app.clock.advance(chrono::Duration::minutes(16));
    let (status, _) = attempt(&app, "vera", "Quiet-Harbour-42", None).await;
    assert_eq!(status, 303, "after the lock duration it does");
}

/// Issue 23 item 5: several tabs or apps signing one account in at once, with the right
/// password, are never refused as locked, even with failures already counted (one try
/// left: the attempts take it in turn).
#[tokio::test]
async fn eight_parallel_right_passwords_all_sign_in() {
    let app = spawn_app_with(lenient).await;
    create_user(&app, "kiosk", "Quiet-Harbour-42", false).await;
    for failures_before in [0, 4] {
        for _ in 0..failures_before {
            assert_eq!(
                attempt(&app, "kiosk", "Wrong-Harbour-42", None).await.0,
                401
            );
        }
        let answers: Vec<_> = in_parallel(&app, 8, "kiosk", "Quiet-Harbour-42")
            .await
            .into_iter()
            .map(|(status, page)| (status, page.contains(LOCKED)))
            .collect();
        assert!(
            answers.iter().all(|a| *a == (303, false)),
            "after {failures_before} failures: {answers:?}"
        );
    }
}

#[tokio::test]
async fn unknown_and_existing_usernames_answer_identically_through_a_lock() {
    let app = spawn_app_with(lenient).await;
    create_user(&app, "wes", "Quiet-Harbour-42", false).await;
    for i in 0..6 {
        let (s1, real) = attempt(&app, "wes", "Wrong-Harbour-42", None).await;
        let (s2, ghost) = attempt(&app, "wesley", "Wrong-Harbour-42", None).await;
        assert_eq!(s1, s2, "attempt {i}");
        let strip = |html: &str, name: &str| {
            let mut out = html
                .replace(&hidden(html, "tx"), "…")
                .replace(&hidden(html, "csrf"), "…");
            out = out.replace(name, "NAME");
            out
        };
        assert_eq!(strip(&real, "wes"), strip(&ghost, "wesley"), "attempt {i}");
        if i == 5 {
            assert!(real.contains(LOCKED));
        }
    }
}

#[tokio::test]
async fn a_permanent_lock_after_k_temporary_ones_yields_only_to_unlock() {
    let app = spawn_app_with(lenient).await;
    create_user(&app, "xena", "Quiet-Harbour-42", false).await;
    set_lockout(&app, 2, 2).await;
    for round in 0..2 {
        for _ in 0..2 {
            attempt(&app, "xena", "Wrong-Harbour-42", None).await;
        }
        let (_, page) = attempt(&app, "xena", "Quiet-Harbour-42", None).await;
        assert!(page.contains(LOCKED), "round {round}");
        app.clock.advance(chrono::Duration::minutes(16));
    }
    app.clock.advance(chrono::Duration::days(3));
    let (_, page) = attempt(&app, "xena", "Quiet-Harbour-42", None).await;
    assert!(page.contains(LOCKED), "the second lock is permanent");

    let key = gatehouse::auth::guard::login_key("xena");
    assert!(
        app.state
            .store
            .run(move |c| gatehouse::store::lockouts::unlock(c, &key))
            .await
            .unwrap()
    );
    assert_eq!(attempt(&app, "xena", "Quiet-Harbour-42", None).await.0, 303);
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = spawn_app_with(lenient).await;
    create_user(&app, "yuri", "Quiet-Harbour-42", false).await;
    for _ in 0..4 {
        attempt(&app, "yuri", "Wrong-Harbour-42", None).await;
    }
    assert_eq!(attempt(&app, "yuri", "Quiet-Harbour-42", None).await.0, 303);
    for _ in 0..4 {
        attempt(&app, "yuri", "Wrong-Harbour-42", None).await;
    }
    assert_eq!(
        attempt(&app, "yuri", "Quiet-Harbour-42", None).await.0,
        303,
        "4 + 4 never reached 5 in a row"
    );
}

fn behind_proxy(c: &mut gatehouse::config::Config) {
    c.rate_limit_per_minute = 100_000;
    c.rate_limit_burst = 100_000;
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    c.ip_allow_list = vec!["198.51.100.0/24".parse().unwrap()];
}

async fn spray(app: &TestApp, xff: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(
            attempt(app, &format!("victim{i}"), "Wrong-Harbour-42", Some(xff))
                .await
                .0,
        );
    }
    statuses
}

#[tokio::test]
async fn twenty_one_failures_across_usernames_block_the_address() {
    let app = spawn_app_with(behind_proxy).await;
    create_user(&app, "zack", "Quiet-Harbour-42", false).await;
    let statuses = spray(&app, "203.0.113.7", 21).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let (status, _) = attempt(&app, "zack", "Quiet-Harbour-42", Some("203.0.113.7")).await;
    assert_eq!(status, 429, "blocked, even with the right password");
    // Another client behind the same proxy is unaffected.
    assert_eq!(
        attempt(&app, "zack", "Quiet-Harbour-42", Some("203.0.113.8"))
            .await
            .0,
        303
    );

    let now = app.clock.now().naive_utc();
    let blocks = app
        .state
        .store
        .run(move |c| ip_blocks::list_active(c, now))
        .await
        .unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].ip, "203.0.113.7");
    // PostgreSQL keeps microseconds: compare to the millisecond.
    let length = blocks[0].blocked_until - now;
    assert!(
        (length - chrono::Duration::hours(1))
            .num_milliseconds()
            .abs()
            < 1,
        "{length}"
    );
}

#[tokio::test]
async fn an_allow_listed_address_is_never_blocked() {
    let app = spawn_app_with(behind_proxy).await;
    create_user(&app, "abe", "Quiet-Harbour-42", false).await;
    spray(&app, "198.51.100.9", 25).await;
    assert_eq!(
        attempt(&app, "abe", "Quiet-Harbour-42", Some("198.51.100.9"))
            .await
            .0,
        303
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: every header is the client's own claim, so all 21 failures
    // count against the real peer (127.0.0.1), whatever they say.
    let app = spawn_app_with(|c| {
        c.rate_limit_per_minute = 100_000;
        c.rate_limit_burst = 100_000;
    })
    .await;
    for i in 0..21 {
        attempt(
            &app,
            &format!("v{i}"),
            "Wrong-Harbour-42",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
    }
    let now = app.clock.now().naive_utc();
    let blocks = app
        .state
        .store
        .run(move |c| ip_blocks::list_active(c, now))
        .await
        .unwrap();
    assert_eq!(
        blocks.iter().map(|b| b.ip.as_str()).collect::<Vec<_>>(),
        vec!["127.0.0.1"]
    );
}

#[tokio::test]
async fn ipv6_clients_are_blocked_per_64() {
    let app = spawn_app_with(behind_proxy).await;
    spray(&app, "2001:db8:1:2::17", 21).await;
    // A neighbour in the same /64 is the same client; the next /64 is not.
    assert_eq!(
        attempt(&app, "nobody", "x", Some("2001:db8:1:2::99"))
            .await
            .0,
        429
    );
    assert_eq!(
        attempt(&app, "nobody", "x", Some("2001:db8:1:3::1"))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn malformed_forwarding_headers_fall_back_to_the_peer() {
    let app = spawn_app_with(behind_proxy).await;
    for bogus in [
        "not-an-ip",
        "1.2.3.4, garbage",
        "999.999.1.1",
        "[::1",
        "",
        "203.0.113.1,,,",
    ] {
        let (status, _) = attempt(&app, "nobody", "x", Some(bogus)).await;
        assert_eq!(status, 401, "{bogus:?}");
    }
}

#[tokio::test]
async fn sign_in_posts_beyond_the_rate_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_minute = 3;
        c.rate_limit_burst = 3;
    })
    .await;
    let client = app.new_client();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (tx, csrf) = app.open_login(&client).await;
        let res = app
            .post_form(
                &client,
                "/login",
                &[
                    ("tx", &tx),
                    ("csrf", &csrf),
                    ("username", "u"),
                    ("password", "p"),
                ],
            )
            .await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn a_lock_holds_across_instances_and_restarts() {
    let first = spawn_app_with(lenient).await;
    create_user(&first, "bree", "Quiet-Harbour-42", false).await;
    let second = spawn_with_config(first.config.clone(), Arc::clone(&first.data_dir)).await;
    // Failures split between the two instances lock the account on both.
    for i in 0..5 {
        let app = if i % 2 == 0 { &first } else { &second };
        attempt(app, "bree", "Wrong-Harbour-42", None).await;
    }
    for app in [&first, &second] {
        assert!(
            attempt(app, "bree", "Quiet-Harbour-42", None)
                .await
                .1
                .contains(LOCKED)
        );
    }
    first.stop().await;
    let restarted = spawn_with_config(first.config.clone(), Arc::clone(&first.data_dir)).await;
    assert!(
        attempt(&restarted, "bree", "Quiet-Harbour-42", None)
            .await
            .1
            .contains(LOCKED)
    );
}

#[tokio::test]
async fn a_lock_and_an_ip_block_are_mailed_to_the_user_and_support() {
    let app = spawn_app_with(behind_proxy).await;
    create_user(&app, "nora", "Quiet-Harbour-42", false).await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.support_email = Some("support@hospital.example".into());
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    let outbox = |app: &TestApp| {
        let state = app.state.clone();
        async move {
            state
                .store
                .run(|c| gatehouse::store::outbox::recent(c, 50))
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.open_recipient(&*state.master_key).unwrap(), r.subject))
                .collect::<Vec<_>>()
        }
    };
    // A name with no account locks too, but there is nobody to tell.
    for _ in 0..5 {
        attempt(&app, "ghost", "Wrong-Harbour-42", Some("203.0.113.60")).await;
    }
    assert!(outbox(&app).await.is_empty());

    for _ in 0..5 {
        attempt(&app, "nora", "Wrong-Harbour-42", Some("203.0.113.60")).await;
    }
    let mails = outbox(&app).await;
    assert!(
        mails.iter().any(|(to, _)| to == "nora@example.org"),
        "{mails:?}"
    );
    assert!(
        mails.iter().any(|(to, _)| to == "support@hospital.example"),
        "{mails:?}"
    );
    assert_eq!(mails.len(), 2, "{mails:?}");

    spray(&app, "203.0.113.60", 11).await;
    let mails = outbox(&app).await;
    assert_eq!(
        mails
            .iter()
            .filter(|(to, _)| to == "support@hospital.example")
            .count(),
        2,
        "{mails:?}"
    );
}

/// Issue 20 item 10: an organisation whose lockout policy differs from the default
/// one must not make its members' names stand out from names nobody has.
#[tokio::test]
async fn a_name_in_an_organisation_with_a_lower_threshold_locks_like_a_name_nobody_has() {
    let app = spawn_app_with(lenient).await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let mut policy = gatehouse::domain::OrgPolicy::default();
            policy.lockout.threshold = 3;
            orgs::insert(
                c,
                &OrgName::parse("north").unwrap(),
                "North Clinic",
                &policy,
                now,
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    gatehouse::auth::account::create_account(
        &app.state,
        gatehouse::auth::account::NewAccount {
            org: OrgName::parse("north").unwrap(),
            username: gatehouse::domain::Username::parse("nils").unwrap(),
            email: gatehouse::domain::Email::parse("nils@example.org").unwrap(),
            display_name: None,
            role: gatehouse::domain::Role::User,
            password: gatehouse::domain::Password::parse("Quiet-Harbour-42".into()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    create_user(&app, "dora", "Quiet-Harbour-42", false).await;

    let strip = |html: &str, name: &str| {
        html.replace(&hidden(html, "tx"), "…")
            .replace(&hidden(html, "csrf"), "…")
            .replace(name, "NAME")
    };
    let mut first_locked = Vec::new();
    for name in ["nils", "nilsa", "dora"] {
        let mut answers = Vec::new();
        for _ in 0..7 {
            let (status, page) = attempt(&app, name, "Wrong-Harbour-42", None).await;
            answers.push((status, strip(&page, name)));
        }
        first_locked.push(answers.iter().position(|(_, page)| page.contains(LOCKED)));
        if name == "nilsa" {
            let (_, nils) = attempt(&app, "nils", "Wrong-Harbour-42", None).await;
            let (_, ghost) = attempt(&app, "nilsa", "Wrong-Harbour-42", None).await;
            assert_eq!(strip(&nils, "nils"), strip(&ghost, "nilsa"));
        }
    }
    assert_eq!(
        first_locked,
        vec![Some(3), Some(3), Some(3)],
        "a member of north, a name nobody has and a member of default lock alike"
    );
}
