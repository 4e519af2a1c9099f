//! Operations endpoints (DESIGN §14): `/healthz`, `/readyz`; `/metrics` is in
//! `web::metrics`, kept off the public listener.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use actix_web::{HttpResponse, get, http::header::ContentType, web};
use serde_json::json;

use crate::{config::Config, startup::AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Alive: answers without touching any dependency, so a database outage does not get
/// the process restarted by its supervisor.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .insert_header(("Cache-Control", "no-store"))
        .body(r#"{"status":"ok"}"#)
}

/// Ready: the database and the ephemeral store both answer. Details go to the log,
/// not to whoever asks. Also says whether the system clock is synchronised (as the OS
/// last said: `time_sync`), which never makes the instance unready.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (db, eph) = tokio::join!(state.store.ping(), state.ephemeral.ping());
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database");
    }
    if let Err(e) = &eph {
        tracing::warn!(error = %e, "readiness: ephemeral store");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let clock = state.time_sync.current();
    let body = json!({
        "database": word(db.is_ok()),
        "ephemeral": word(eph.is_ok()),
        "clock": clock.sync.as_str(),
        "clock_source": clock.source,
    });
    let mut res = if db.is_ok() && eph.is_ok() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header(("Cache-Control", "no-store")).json(body)
}

/// `gatehouse healthcheck`: asks the server these settings describe for `/healthz` over
/// loopback, so a container image needs no curl. With TLS on, the answer must come with
/// the configured certificate (or the generated one): it is trusted for this one request
/// under the issuer's host name, resolved to the local listener.
pub async fn probe_alive(config: &Config, timeout: Duration) -> Result<(), String> {
    let port = config.bind.port();
    if port == 0 {
        return Err("bind names port 0; the running server's port cannot be known".into());
    }
    let ip = match config.bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, port);
    let mut client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    let url = if config.tls {
        let cert = match &config.tls_cert {
            Some(cert) => cert.clone(),
            None => super::tls::self_signed_paths(&config.data_dir).0,
        };
        let pem = std::fs::read(&cert)
            .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
        let chain = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("bad certificate {}: {e}", cert.display()))?;
        for c in chain {
            client = client.add_root_certificate(c);
        }
        match config.issuer.host() {
            Some(url::Host::Domain(host)) => {
                client = client.resolve(host, target);
                format!("https://{host}:{port}/healthz")
            }
            _ => format!("https://{target}/healthz"),
        }
    } else {
        format!("http://{target}/healthz")
    };
    let client = client
        .build()
        .map_err(|e| format!("cannot build the client: {e}"))?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url}: status {}", res.status()))
    }
}
