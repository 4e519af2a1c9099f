//! Operations endpoints (DESIGN §14): `/healthz`, `/readyz`, `/metrics`.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// Alive: answers without touching any dependency, so a database outage does not get
/// the process restarted by its supervisor.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "ok" }))
}

/// Ready: the database and the ephemeral store both answer. Details go to the log,
/// not to whoever asks.
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
    let body = json!({ "database": word(db.is_ok()), "ephemeral": word(eph.is_ok()) });
    let mut res = if db.is_ok() && eph.is_ok() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header(("Cache-Control", "no-store")).json(body)
}

#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
