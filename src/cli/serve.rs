//! Running the server: `serve`, `migrate`, `healthcheck`.

use std::sync::Arc;

use gatehouse::{
    config::Config,
    startup::{self, Application},
};
use secrecy::ExposeSecret;

/// What the server's own lines are logged under, as when they lived in `main.rs`:
/// operators filter and alert on it.
const LOG_TARGET: &str = "gatehouse";

pub async fn serve(config: Config) -> Result<(), String> {
    let scheme = if config.tls { "https" } else { "http" };
    let mut app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(admin) = app.take_first_admin() {
        // Shown once, on the terminal only: never logged, never stored in clear.
        println!(
            "First start: created administrator '{}' with one-time password: {}\n\
             It must be changed at first sign-in and will not be shown again.",
            admin.username,
            admin.one_time_password.expose_secret()
        );
    }
    spawn_reload_on_hangup(app.tls_certificate());
    println!("Gatehouse listening on {scheme}://{}", app.local_addr());
    tracing::info!(target: LOG_TARGET, addr = %app.local_addr(), "listening");
    if let Some(addr) = app.metrics_addr() {
        tracing::info!(target: LOG_TARGET, addr = %addr, "metrics listening (plain HTTP, /metrics only)");
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    tracing::info!(target: LOG_TARGET, "stopped");
    Ok(())
}

/// SIGHUP (`systemctl reload`, `kill -HUP`) re-reads the TLS certificate and key: a
/// renewal needs no restart and drops no connection. A bad new pair is logged and the
/// one in use stays. Handled even without TLS, where the default action would kill us.
fn spawn_reload_on_hangup(tls: Option<Arc<gatehouse::web::tls::ReloadingCert>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, error = %e, "cannot listen for SIGHUP; certificate reload disabled");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(tls) = &tls else {
                tracing::info!(target: LOG_TARGET, "SIGHUP: TLS is off, nothing to reload");
                continue;
            };
            let cert = tls.clone();
            let result = tokio::task::spawn_blocking(move || cert.reload()).await;
            match result {
                Ok(Ok(())) => {
                    tracing::info!(target: LOG_TARGET, cert = %tls.cert_path().display(), "SIGHUP: reloaded the TLS certificate and key")
                }
                Ok(Err(e)) => {
                    tracing::error!(target: LOG_TARGET, error = %e, "SIGHUP: TLS certificate not reloaded; still serving the previous one")
                }
                Err(e) => {
                    tracing::error!(target: LOG_TARGET, error = %e, "SIGHUP: reload task failed")
                }
            }
        }
    });
}

pub async fn migrate(config: Config) -> Result<(), String> {
    startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    println!("migrations: up to date");
    Ok(())
}

pub async fn healthcheck(config: Config, timeout_secs: u64) -> Result<(), String> {
    gatehouse::web::ops::probe_alive(&config, std::time::Duration::from_secs(timeout_secs)).await
}
