//! `/metrics` (DESIGN §14), kept off the public internet (issue 20, item 15): request
//! counts by route and outcome, failed sign-ins and lockouts tell an attacker how a
//! guessing run is going. It is served either on an internal listener of its own
//! (`metrics_bind`, plain HTTP, nothing else on it) or, on the public listener, behind a
//! bearer token (`metrics_token`); with neither, nowhere (404). A configured token is
//! required wherever `/metrics` is served.

use std::net::{SocketAddr, TcpListener};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::Server,
    http::header::{self, HeaderValue},
    web,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{config::Config, startup::AppState};

/// `/metrics` on the public listener: only behind a token, and only when no internal
/// listener has it.
pub fn public_routes(cfg: &mut web::ServiceConfig, config: &Config) {
    if config.metrics_bind.is_none() && config.metrics_token.is_some() {
        routes(cfg);
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(token) = &state.config.metrics_token
        && !presents(&req, token)
    {
        return HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatehouse-metrics\""),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("/metrics needs the bearer token set as metrics_token.\n");
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Whether the request carries `Authorization: Bearer <token>`. Both sides are hashed
/// first, so the comparison takes the same time whatever the length or content of a
/// guess.
fn presents(req: &HttpRequest, token: &SecretString) -> bool {
    let Some(presented) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(token.expose_secret().as_bytes());
    bool::from(presented.as_slice().ct_eq(expected.as_slice()))
}

/// Binds `metrics_bind`, if set (before anything else starts, so a taken port stops
/// start-up with its name).
pub fn bind(config: &Config) -> std::io::Result<Option<TcpListener>> {
    match config.metrics_bind {
        Some(addr) => TcpListener::bind(addr)
            .map(Some)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{addr}: {e}"))),
        None => Ok(None),
    }
}

/// The internal listener: plain HTTP, `/metrics` only, everything else 404. It takes no
/// signals of its own; the application stops it when the public server stops.
pub fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
) -> std::io::Result<(SocketAddr, Server)> {
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(routes)
            .default_service(web::to(super::error::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
    .run();
    Ok((addr, server))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn token() -> SecretString {
        "scrape-me-0123456789abcdef".to_owned().into()
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let with = |value: &str| {
            TestRequest::get()
                .insert_header(("Authorization", value))
                .to_http_request()
        };
        assert!(presents(
            &with("Bearer scrape-me-0123456789abcdef"),
            &token()
        ));
        assert!(presents(
            &with("bearer scrape-me-0123456789abcdef"),
            &token()
        ));
        for wrong in [
            "Bearer scrape-me-0123456789abcde",
            "Bearer scrape-me-0123456789abcdefg",
            "Basic scrape-me-0123456789abcdef",
            "Bearer",
            "scrape-me-0123456789abcdef",
            "",
        ] {
            assert!(!presents(&with(wrong), &token()), "{wrong:?}");
        }
        assert!(!presents(&TestRequest::get().to_http_request(), &token()));
    }
}
