//! Sign-in load benchmark (issue: password sign-in). Run with
//! `cargo bench --bench signin_load`. Prints, for the default argon2 parameters:
//!
//! 1. raw argon2id verifications per second on all cores (the bound);
//! 2. password sign-ins per second through the real HTTPS server (target ≥ 90 % of 1);
//! 3. a flood at 10× that rate: p99 of `/healthz` and of the sign-in page, and how fast
//!    the excess sign-ins are refused with 503.
//!
//! The load generator shares the machine with the server, so (2) is a lower bound.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use gatehouse::domain::OrgName;

mod common;
#[path = "common/hashing.rs"]
mod hashing;

use common::PASSWORD;
use hashing::{percentile, raw_verifications_per_second};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(512)
        .build()
        .unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Opens `n` login transactions for `client` (one browser): (tx, csrf) pairs.
async fn open_transactions(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let res = client.get(format!("{base}/login")).send().await.unwrap();
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let html = client
            .get(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push((hidden(&html, "tx"), hidden(&html, "csrf")));
    }
    out
}

async fn post_sign_in(
    client: &reqwest::Client,
    base: &str,
    tx: &str,
    csrf: &str,
) -> (u16, Duration) {
    let started = Instant::now();
    let res = client
        .post(format!("{base}/login"))
        .header("Origin", base)
        .form(&[
            ("tx", tx),
            ("csrf", csrf),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await;
    let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
    (status, started.elapsed())
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    println!("== raw argon2id (m=19456 KiB, t=2, p=1) on all cores");
    let raw = raw_verifications_per_second(8);
    println!("raw verifications/s: {raw:.1}");

    let dir = tempfile::tempdir().unwrap();
    // The per-IP quota is lifted (`common::config`), so the flood reaches the hashing
    // queue, which is what this measures.
    let (state, base) = common::serve(common::config(dir.path()), None).await;

    println!("\n== the brute-force guard's cost: 200 sequential sign-ins, lockout on vs off");
    let browser = client();
    for (label, threshold) in [("guard on ", 5u32), ("guard off", 0u32)] {
        let org_state = state.clone();
        org_state
            .store
            .run(move |c| {
                use gatehouse::store::orgs;
                let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
                let mut policy = org.policy();
                policy.lockout.threshold = threshold;
                orgs::set_policy(c, &org.id, &policy, chrono::Utc::now().naive_utc())
            })
            .await
            .unwrap();
        let txs = open_transactions(&browser, &base, 200).await;
        let mut latencies = Vec::new();
        for (tx, csrf) in txs {
            let (status, took) = post_sign_in(&browser, &base, &tx, &csrf).await;
            assert_eq!(status, 303);
            latencies.push(took);
        }
        latencies.sort();
        println!(
            "{label}: p50 {:?} p99 {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }

    println!("\n== sign-ins through the server (closed loop, 8 concurrent)");
    let seconds = 10.0;
    let txs = open_transactions(&browser, &base, (raw * seconds * 1.5) as usize + 50).await;
    let txs = Arc::new(tokio::sync::Mutex::new(txs));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (browser, base, txs) = (browser.clone(), base.clone(), txs.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < deadline {
                    let Some((tx, csrf)) = txs.lock().await.pop() else {
                        break;
                    };
                    if post_sign_in(&browser, &base, &tx, &csrf).await.0 == 303 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut signed_in = 0;
    for w in workers {
        signed_in += w.await.unwrap();
    }
    let rate = signed_in as f64 / started.elapsed().as_secs_f64();
    println!(
        "sign-ins/s: {rate:.1} ({:.0} % of raw argon2id)",
        100.0 * rate / raw
    );

    let flood_rate = rate * 10.0;
    let flood_secs = 5.0;
    println!(
        "\n== flood: {flood_rate:.0} sign-ins/s for {flood_secs} s, probing /healthz and /login"
    );
    let flood_txs = open_transactions(&browser, &base, (flood_rate * flood_secs) as usize).await;
    let probe = |path: &'static str| {
        let (client, base) = (client(), base.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let end = Instant::now() + Duration::from_secs_f64(flood_secs);
            while Instant::now() < end {
                let t = Instant::now();
                let res = client.get(format!("{base}{path}")).send().await.unwrap();
                let _ = res.bytes().await;
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            latencies
        })
    };
    let health = probe("/healthz");
    let login_page = probe("/login");
    let interval = Duration::from_secs_f64(1.0 / flood_rate);
    let mut shots = Vec::new();
    let flood_start = Instant::now();
    for (i, (tx, csrf)) in flood_txs.into_iter().enumerate() {
        let due = flood_start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (browser, base) = (browser.clone(), base.clone());
        shots.push(tokio::spawn(async move {
            post_sign_in(&browser, &base, &tx, &csrf).await
        }));
    }
    let mut refused = Vec::new();
    let (mut accepted, mut other) = (0, 0);
    for s in shots {
        match s.await.unwrap() {
            (503, d) => refused.push(d),
            (303, _) => accepted += 1,
            _ => other += 1,
        }
    }
    refused.sort();
    let mut health = health.await.unwrap();
    let mut login_page = login_page.await.unwrap();
    health.sort();
    login_page.sort();
    println!(
        "accepted: {accepted}, refused 503: {}, other: {other}",
        refused.len()
    );
    println!(
        "503 latency p50 {:?} p99 {:?}",
        percentile(&refused, 0.5),
        percentile(&refused, 0.99)
    );
    println!(
        "/healthz p50 {:?} p99 {:?} ({} probes)",
        percentile(&health, 0.5),
        percentile(&health, 0.99),
        health.len()
    );
    println!(
        "/login page p50 {:?} p99 {:?} ({} probes)",
        percentile(&login_page, 0.5),
        percentile(&login_page, 0.99),
        login_page.len()
    );
}
