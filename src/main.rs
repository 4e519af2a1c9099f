//! The `gatehouse` command line (DESIGN §2, configuration and CLI contract).
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use gatehouse::{
    config::Config,
    startup::{self, Application},
    telemetry,
};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Identity provider for clinical software"
)]
struct Cli {
    /// TOML configuration file; `GATEHOUSE_*` environment variables override it.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration and print the effective settings, secrets redacted.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One line on stderr and a non-zero status: no panic text, no backtrace.
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gatehouse: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        print!("{}", config.redacted_toml());
        return ExitCode::SUCCESS;
    }
    telemetry::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Config { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
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
    println!("Gatehouse listening on {scheme}://{}", app.local_addr());
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn migrate(config: Config) -> Result<(), String> {
    startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    println!("migrations: up to date");
    Ok(())
}
