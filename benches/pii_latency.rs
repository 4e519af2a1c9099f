//! Latency of the two requests that look people up by personal data (issue 27: sealed
//! fields and a blind index must cost no more than 5 %): the password step of a sign-in
//! and a reset asked for by email address (through the page, which answers no sooner
//! than 500 ms, and at the capability). Run with `cargo bench --bench pii_latency`;
//! prints mean, p50 and p90 of each over sequential requests, against a table of a few
//! hundred other accounts. Uses only what existed before issue 27, so the same file
//! measures the code before and after it.

use std::time::{Duration, Instant};

use gatehouse::{
    auth::account::{NewAccount, create_account},
    domain::{Email, OrgName, Password, Role, Username},
};

mod common;

use common::{PASSWORD, USERNAME};

const ROUNDS: usize = 300;
/// Reset requests through the page: each takes its 500 ms floor, so a few show it.
const PAGE_RESETS: usize = 40;
const OTHER_ACCOUNTS: usize = 300;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn page(client: &reqwest::Client, url: &str) -> String {
    let mut res = client.get(url).send().await.unwrap();
    if let Some(location) = res.headers().get("location") {
        let next = location.to_str().unwrap().to_owned();
        let base = &url[..url.find("://").unwrap() + 3];
        let host_end = url[base.len()..]
            .find('/')
            .map_or(url.len(), |i| base.len() + i);
        res = client
            .get(format!("{}{next}", &url[..host_end]))
            .send()
            .await
            .unwrap();
    }
    res.text().await.unwrap()
}

fn report(what: &str, mut took: Vec<Duration>) {
    took.sort();
    let mean = took.iter().sum::<Duration>() / took.len() as u32;
    println!(
        "{what}: mean {:.3} ms, p50 {:.3} ms, p90 {:.3} ms ({} requests)",
        mean.as_secs_f64() * 1e3,
        took[took.len() / 2].as_secs_f64() * 1e3,
        took[took.len() * 9 / 10].as_secs_f64() * 1e3,
        took.len()
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.reset_account_limit_per_hour = 1_000_000;
    config.reset_ip_limit_per_hour = 1_000_000;
    let (state, base) = common::serve(config, Some("Bench Person")).await;
    for n in 0..OTHER_ACCOUNTS {
        create_account(
            &state,
            NewAccount {
                org: OrgName::parse("default").unwrap(),
                username: Username::parse(&format!("other{n}")).unwrap(),
                email: Email::parse(&format!("other{n}@example.org")).unwrap(),
                display_name: None,
                role: Role::User,
                password: Password::parse(PASSWORD.into()).unwrap(),
                must_change_password: false,
            },
        )
        .await
        .unwrap();
    }
    let browser = client();
    let (mut sign_in, mut reset) = (Vec::new(), Vec::new());
    // The first rounds warm connections and caches; they are not counted.
    for round in 0..ROUNDS + 20 {
        let html = page(&browser, &format!("{base}/login")).await;
        let form = [
            ("tx", hidden(&html, "tx")),
            ("csrf", hidden(&html, "csrf")),
            ("username", USERNAME.to_owned()),
            ("password", PASSWORD.to_owned()),
        ];
        let started = Instant::now();
        let res = browser
            .post(format!("{base}/login"))
            .header("Origin", &base)
            .form(&form)
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(res.status(), 303);

        if round >= PAGE_RESETS + 20 {
            if round >= 20 {
                sign_in.push(took);
            }
            continue;
        }
        let html = page(&browser, &format!("{base}/reset")).await;
        let form = [
            ("csrf", hidden(&html, "csrf")),
            ("login", "BENCH@Example.org".to_owned()),
        ];
        let started = Instant::now();
        let res = browser
            .post(format!("{base}/reset"))
            .header("Origin", &base)
            .form(&form)
            .send()
            .await
            .unwrap();
        let took_reset = started.elapsed();
        assert_eq!(res.status(), 200);
        if round >= 20 {
            sign_in.push(took);
            reset.push(took_reset);
        }
    }
    report("sign-in, password step", sign_in);
    report("reset by email address (the page, 500 ms floor)", reset);

    // The page answers no sooner than its floor, whatever the lookup costs: the work
    // behind it, timed at the capability.
    let ctx = gatehouse::audit::RequestContext {
        request_id: "bench".into(),
        client_ip: None,
        user_agent: None,
    };
    let mut work = Vec::new();
    for round in 0..ROUNDS + 20 {
        let started = Instant::now();
        gatehouse::auth::recovery::request_reset(&state, &ctx, "BENCH@Example.org")
            .await
            .unwrap();
        if round >= 20 {
            work.push(started.elapsed());
        }
    }
    report("reset by email address (the work behind the page)", work);
}
