//! HTTP plumbing shared by every endpoint: request ids, client IP, security headers,
//! the access log and metrics, all applied in one middleware.

pub mod client_ip;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod tls;
pub mod visit;

use std::time::Instant;

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use rand::{Rng, distributions::Alphanumeric};

pub use crate::audit::RequestContext;
use crate::startup::AppState;

/// DESIGN §13. A page that needs more (an auto-submitting SAML form) sets its own.
pub const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

impl FromRequest for RequestContext {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let context = req
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext {
                request_id: new_request_id(),
                client_ip: req.peer_addr().map(|a| a.ip()),
                user_agent: None,
            });
        std::future::ready(Ok(context))
    }
}

fn new_request_id() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// The one middleware every request passes through.
pub async fn context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let trusted = state
        .as_ref()
        .map(|s| s.config.trusted_proxies.as_slice())
        .unwrap_or(&[]);
    let context = RequestContext {
        request_id: new_request_id(),
        client_ip: client_ip::client_ip(req.peer_addr(), req.headers(), trusted),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    };
    req.extensions_mut().insert(context.clone());
    let method = req.method().clone();

    // Handler errors arrive here already rendered as responses (AppError's
    // ResponseError); only a failure of the service itself is propagated.
    let mut res = next.call(req).await?.map_into_boxed_body();

    // The route pattern (`/reset/{token}`), never the concrete path: paths can carry
    // tokens, and raw paths would let anyone create unbounded metric series.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status();
    let https = state
        .as_ref()
        .is_some_and(|s| s.config.issuer.scheme() == "https");
    apply_security_headers(res.headers_mut(), https);
    if let Ok(v) = HeaderValue::from_str(&context.request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }

    let elapsed = started.elapsed();
    if let Some(state) = &state {
        state
            .metrics
            .http_requests
            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
            .inc();
        state
            .metrics
            .http_duration
            .with_label_values(&[route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        target: "gatehouse::access",
        method = %method,
        route = %route,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %context.request_id,
        client_ip = %Ip(context.client_ip),
        "request"
    );
    Ok(res)
}

/// An address as the access log writes it: the address, or `-` without one.
struct Ip(Option<std::net::IpAddr>);

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

fn apply_security_headers(headers: &mut header::HeaderMap, https: bool) {
    let defaults: [(&str, &str); 6] = [
        ("content-security-policy", DEFAULT_CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ];
    for (name, value) in defaults {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
}
