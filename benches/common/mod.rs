//! Set-up the server benchmarks share: a configuration without the per-IP quota, and a
//! server on a loopback port with its one user. Each benchmark is a crate of its own
//! and includes this with `mod common;`.

use std::{path::Path, sync::Arc};

use actix_web::web;
use gatehouse::{
    auth::account::{NewAccount, create_account},
    clock::SystemClock,
    config::Config,
    domain::{Email, OrgName, Password, Role, Username},
    startup::{AppState, Application},
};

/// The benchmark user's name and password.
pub const USERNAME: &str = "bench";
pub const PASSWORD: &str = "Quiet-Harbour-42";

/// Set to a log level (`info`, production's default) to install the server's JSON
/// logger, writing to stderr as in production; unset, no logger is installed and
/// logging costs nothing.
pub const LOG_LEVEL_VAR: &str = "GATEHOUSE_BENCH_LOG_LEVEL";

/// The test configuration in `dir`, with the per-IP quota lifted (one load generator
/// is one client address) and logs as [`LOG_LEVEL_VAR`] asks.
pub fn config(dir: &Path) -> Config {
    let mut config = Config::for_tests(dir.to_owned());
    config.log_level = std::env::var(LOG_LEVEL_VAR).unwrap_or_else(|_| "error".into());
    config.rate_limit_per_minute = 1_000_000;
    config.rate_limit_burst = 1_000_000;
    config
}

/// Starts a server with `config` on a loopback port (its issuer set to that address,
/// HTTPS; with `config.tls` off it listens on plain HTTP, as behind a proxy that ends
/// TLS, and the URL returned is the plain one) and creates the user [`USERNAME`]; returns its state and base URL.
pub async fn serve(
    mut config: Config,
    display_name: Option<&str>,
) -> (web::Data<AppState>, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    config.issuer = url::Url::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let scheme = if config.tls { "https" } else { "http" };
    let base = format!("{scheme}://127.0.0.1:{port}");
    if std::env::var_os(LOG_LEVEL_VAR).is_some() {
        // The subscriber is the process's for good, and so is its writer.
        std::mem::forget(gatehouse::telemetry::init_logging(&config));
    }
    let mut app = Application::build_on(listener, config, Arc::new(SystemClock))
        .await
        .unwrap();
    app.next_keys_published().await;
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    create_account(
        &state,
        NewAccount {
            org: OrgName::parse("default").unwrap(),
            username: Username::parse(USERNAME).unwrap(),
            email: Email::parse("bench@example.org").unwrap(),
            display_name: display_name.map(|d| gatehouse::domain::DisplayName::parse(d).unwrap()),
            role: Role::User,
            password: Password::parse(PASSWORD.into()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    (state, base)
}
