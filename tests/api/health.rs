use std::{process::Stdio, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    METRICS_TOKEN, eventually, skip, spawn_app, spawn_app_with, test_database_url,
};

#[tokio::test]
async fn healthz_answers_200_with_security_headers() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(
        h["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-request-id"].to_str().unwrap().len(), 20);
}

#[tokio::test]
async fn readyz_is_200_when_dependencies_answer() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["ephemeral"], "ok");
}

#[tokio::test]
async fn readyz_and_metrics_say_whether_the_clock_is_synchronised() {
    let app = spawn_app().await;
    // Whatever this machine's clock discipline, the two agree, and an answer nobody
    // gave is "unknown" (-1), never "synchronized".
    let gauge = "gatehouse_clock_synchronized ";
    let asked = app.state.time_sync.refresh().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200, "never a reason to be unready");
    let body: serde_json::Value = res.json().await.unwrap();
    let text = app.metrics_text().await;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(gauge))
        .expect("the gauge")
        .trim()
        .to_owned();
    let expected = match body["clock"].as_str().unwrap() {
        "synchronized" => "1",
        "unsynchronized" => "0",
        "unknown" => {
            assert!(body["clock_source"].is_null(), "{body}");
            "-1"
        }
        other => panic!("clock: {other}"),
    };
    assert_eq!(value, expected, "{body} vs {text}");
    assert_eq!(body["clock"], asked.sync.as_str());
    if expected != "-1" {
        assert!(body["clock_source"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn unknown_path_is_a_json_404_not_a_blank_body() {
    let app = spawn_app().await;
    let res = app.get("/no/such/thing").await;
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    app.get("/nope-secret-looking-path").await;
    let text = app.metrics_text().await;
    assert!(
        text.contains(
            r#"gatehouse_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#));
    assert!(
        !text.contains("nope-secret-looking-path"),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn metrics_on_the_public_listener_need_the_bearer_token() {
    let app = spawn_app().await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
    );
    assert!(!res.text().await.unwrap().contains("gatehouse_"));
    for wrong in [
        format!("Bearer {METRICS_TOKEN}x"),
        format!("Bearer {}", &METRICS_TOKEN[1..]),
        format!("Basic {METRICS_TOKEN}"),
        "Bearer ".to_owned(),
    ] {
        let res = app
            .client
            .get(app.url("/metrics"))
            .header("Authorization", &wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{wrong}");
    }
    assert!(
        app.metrics_text()
            .await
            .contains("gatehouse_http_requests_total")
    );
}

#[tokio::test]
async fn metrics_are_not_served_when_neither_a_token_nor_a_bind_is_set() {
    let app = spawn_app_with(|c| c.metrics_token = None).await;
    for auth in [None, Some(format!("Bearer {METRICS_TOKEN}"))] {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(auth) = &auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 404, "{auth:?}");
        assert!(!res.text().await.unwrap().contains("gatehouse_"));
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `metrics_bind`: a plain-HTTP listener of its own serves `/metrics` (and nothing
/// else); the public listener does not, token or not.
#[tokio::test]
async fn metrics_bind_serves_metrics_internally_and_never_publicly() {
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.metrics_token = None;
        c.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    })
    .await;
    app.get("/healthz").await;
    let public = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    let internal = reqwest::Client::new();
    let res = internal
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"gatehouse_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    for path in ["/healthz", "/login", "/admin/api/users"] {
        let res = internal
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path} on the metrics listener");
    }
}

/// With both set, the internal listener asks for the token too.
#[tokio::test]
async fn metrics_bind_with_a_token_requires_it_internally() {
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let internal = reqwest::Client::new();
    assert_eq!(internal.get(&url).send().await.unwrap().status(), 401);
    let res = internal
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 404);
}

/// A Redis server of this test's own, on a free port, so it can be stopped.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Option<std::process::Child> {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    async fn wait_up(&self) -> bool {
        eventually(Duration::from_secs(10), || async {
            TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
        })
        .await
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn readyz_follows_a_redis_outage_without_restart() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let Some(child) = OwnRedis::start(port) else {
        skip(
            "readyz_follows_a_redis_outage_without_restart",
            "redis-server not installed",
        );
        return;
    };
    let mut redis = OwnRedis {
        port,
        child: Some(child),
    };
    assert!(redis.wait_up().await, "redis-server did not start");
    let app = spawn_app_with(|c| {
        c.redis_url = Some(url::Url::parse(&format!("redis://127.0.0.1:{port}")).unwrap());
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    if let Some(mut c) = redis.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            app.get("/readyz").await.status() == 503
        })
        .await,
        "readyz stayed 200 with Redis stopped"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on Redis"
    );

    redis.child = OwnRedis::start(port);
    assert!(redis.wait_up().await);
    assert!(
        eventually(Duration::from_secs(20), || async {
            app.get("/readyz").await.status() == 200
        })
        .await,
        "readyz did not recover after Redis came back"
    );
}

/// A TCP relay between Gatehouse and PostgreSQL that the test can cut.
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    continue; // dropped: connection refused in effect
                }
                let target = target.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }
}

#[tokio::test]
async fn readyz_follows_a_database_outage_and_recovers() {
    let Some(base) = test_database_url() else {
        skip(
            "readyz_follows_a_database_outage_and_recovers",
            "GATEHOUSE_TEST_DATABASE_URL not set (an embedded SQLite file cannot become unreachable)",
        );
        return;
    };
    let schema_url = url::Url::parse(&crate::helpers::fresh_postgres_url(&base)).unwrap();
    let relay = Relay::start((
        schema_url.host_str().unwrap_or("127.0.0.1").to_owned(),
        schema_url.port().unwrap_or(5432),
    ))
    .await;
    let mut via_relay = schema_url.clone();
    via_relay.set_host(Some("127.0.0.1")).unwrap();
    via_relay.set_port(Some(relay.port)).unwrap();
    let app = spawn_app_with(|c| c.database_url = Some(via_relay)).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    relay.cut.send(true).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            app.get("/readyz").await.status() == 503
        })
        .await,
        "readyz stayed 200 with the database unreachable"
    );
    relay.cut.send(false).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            app.get("/readyz").await.status() == 200
        })
        .await,
        "readyz did not recover after the database came back"
    );
}
