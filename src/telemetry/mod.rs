//! JSON logs through `tracing`, and Prometheus metrics (DESIGN §14).
//!
//! Metrics live in a registry owned by each running application rather than a
//! process-global one, so two instances in one test process count separately.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{Config, LogFormat};

mod batch;
mod json;

pub use batch::FlushGuard;

/// Installs the global subscriber; logs go to stderr so stdout stays for the operator's
/// banner (listening address, first-start password).
///
/// A line is formatted on the thread that logs it and gathered in memory; a thread of
/// its own (`log-writer`) writes what has gathered every 100 ms, or sooner once 64 KiB
/// have (see `batch`). A busy server so makes one system call and wakes its log reader
/// (journald, a container runtime) once per batch instead of once per request. Writing
/// each line from the request's own worker cost 13 % of the token endpoint's throughput
/// at `info` with stderr on a file, 18 % on a pipe, and a third of discovery's; a queue
/// that woke the writer for each line still cost a cheap endpoint about a fifth of its
/// CPU (`oidc_load`). Nothing is dropped: past 8 MiB waiting, threads that log wait.
///
/// Keep the guard until the process ends: dropping it writes out what is still waiting.
/// `None` when a subscriber was already installed (tests start many apps), which keeps
/// the first.
#[must_use = "dropping the guard stops the log writer"]
pub fn init_logging(config: &Config) -> Option<FlushGuard> {
    match batch::batched(std::io::stderr()) {
        Ok((writer, guard)) => install(config, writer).then_some(guard),
        Err(e) => {
            eprintln!("gatehouse: no log writer thread ({e}); each line is written as logged");
            install(config, std::io::stderr);
            None
        }
    }
}

/// Installs the subscriber, writing through `writer`; false when one already was.
fn install<W>(config: &Config, writer: W) -> bool
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(writer);
    let result = match config.log_format {
        LogFormat::Json => builder.event_format(json::JsonLines).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.is_ok()
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("gatehouse".into()), None)
            .unwrap_or_else(|_| Registry::new());
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .expect("static metric definition");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_duration,
        }
    }

    /// Registers a capability's own collector (sign-ins, lockouts, hashing queue…).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "metric registration failed");
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
