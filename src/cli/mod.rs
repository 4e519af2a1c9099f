//! The `gatehouse` command line (DESIGN §2, configuration and CLI contract), one file
//! per noun. Administrative commands call the admin service (`gatehouse::admin::service`)
//! as the operator `cli:<person>` (`actor.rs`), a super administrator: the same checks
//! and audit events as the admin API and console. `--json` output names things as the protocols do
//! (`client_id`, `entity_id`).

mod actor;
mod audit;
mod client;
mod connector;
mod emergency;
mod fhir_server;
mod ip;
mod keys;
mod org;
mod passkey;
mod passphrase;
mod serve;
mod sp;
mod user;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use gatehouse::{
    admin::service::{Acting, Action, Caller, ServiceError, orgs, users},
    bootstrap,
    clock::SystemClock,
    config::Config,
    domain::{OrgName, Username},
    startup::{self, AppState},
    store::{orgs::OrgRow, users::UserRow},
    telemetry,
};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Identity provider for clinical software"
)]
pub struct Cli {
    /// TOML configuration file; `GATEHOUSE_*` environment variables override it.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Who is making the change, as the audit trail names them (default: the
    /// operating-system user and host); required when `cli_require_actor` is set.
    #[arg(long, global = true)]
    actor: Option<String>,
    /// Read the passphrase of a passphrase-sealed master key file from this open file
    /// descriptor, to its end (one trailing newline is dropped), e.g.
    /// `--passphrase-fd 3 3</run/secrets/gatehouse-passphrase`. Without it: the
    /// systemd credential `gatehouse-passphrase`, the terminal, or
    /// `systemd-ask-password`. There is deliberately no way to give the passphrase
    /// itself as an argument or an environment variable: other processes can read both.
    #[arg(long, global = true, value_name = "N")]
    passphrase_fd: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Ask the running server (as these settings describe it) for /healthz over loopback;
    /// exit status 0 when it is alive. For container health checks.
    Healthcheck {
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Organisations and their policies (DESIGN §3).
    Org {
        #[command(subcommand)]
        command: org::OrgCommand,
    },
    /// Blocked client addresses and the allow-list (DESIGN §5).
    Ip {
        #[command(subcommand)]
        command: ip::IpCommand,
    },
    /// OpenID Connect relying parties (DESIGN §9).
    Client {
        #[command(subcommand)]
        command: client::ClientCommand,
    },
    /// SAML service providers (DESIGN §10).
    Sp {
        #[command(subcommand)]
        command: sp::SpCommand,
    },
    /// Upstream identity providers and their links to accounts (DESIGN §16).
    Connector {
        #[command(subcommand)]
        command: connector::ConnectorCommand,
    },
    /// FHIR servers registered as SMART on FHIR resource servers (DESIGN §18).
    FhirServer {
        #[command(subcommand)]
        command: fhir_server::FhirServerCommand,
    },
    /// Users' passkeys (DESIGN §17).
    Passkey {
        #[command(subcommand)]
        command: passkey::PasskeyCommand,
    },
    /// Token signing keys, and the master key file.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Emergency access: who is designated, and reviewing emergency sessions (DESIGN §15).
    Emergency {
        #[command(subcommand)]
        command: emergency::EmergencyCommand,
    },
    /// Check, export and prune the audit trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

impl Command {
    /// Whether it is an administrative command, whose actions the trail attributes to
    /// a person.
    fn acts(&self) -> bool {
        !matches!(
            self,
            Self::Serve | Self::Healthcheck { .. } | Self::Migrate | Self::Config { .. }
        )
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration and print the effective settings, secrets redacted.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let init_master = match &cli.command {
        Command::Keys {
            command: keys::KeysCommand::InitMaster(args),
        } => Some(args),
        _ => None,
    };
    // `keys init-master` creates the configured key file, so it need not exist yet.
    let loaded = match init_master {
        Some(_) => Config::load_creating_key_file(cli.config.as_deref()),
        None => Config::load(cli.config.as_deref()),
    };
    // One line on stderr and a non-zero status: no panic text, no backtrace.
    let mut config = match loaded {
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
        println!("# master key: {}", keys::describe_master_key(&config));
        print!("{}", config.redacted_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(args) = init_master {
        return match keys::init_master(&config, args, cli.passphrase_fd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::FAILURE
            }
        };
    }
    config.master_key_passphrase =
        passphrase::master_key_prompt(passphrase::PassphraseSource::from_fd(cli.passphrase_fd));
    if cli.command.acts()
        && let Err(e) = actor::settle(cli.actor.as_deref(), config.cli_require_actor)
    {
        eprintln!("gatehouse: {e}");
        return ExitCode::from(2);
    }
    // Declared before the runtime, so dropped after it: what its threads log last is
    // still written out.
    let _log_writer = telemetry::init_logging(&config);
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
    match runtime.block_on(run(config, cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, command: Command) -> Result<ExitCode, String> {
    let done = |r: Result<(), String>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Serve => done(serve::serve(config).await),
        Command::Migrate => done(serve::migrate(config).await),
        Command::Healthcheck { timeout_secs } => {
            done(serve::healthcheck(config, timeout_secs).await)
        }
        Command::User { command } => done(user::run(config, command).await),
        Command::Org { command } => done(org::run(config, command).await),
        Command::Ip { command } => done(ip::run(config, command).await),
        Command::Client { command } => done(client::run(config, command).await),
        Command::Sp { command } => done(sp::run(config, command).await),
        Command::Connector { command } => done(connector::run(config, command).await),
        Command::Passkey { command } => done(passkey::run(config, command).await),
        Command::FhirServer { command } => done(fhir_server::run(config, command).await),
        Command::Keys { command } => done(keys::run(config, command).await),
        Command::Emergency { command } => done(emergency::run(config, command).await),
        Command::Audit { command } => audit::run(config, command).await,
        Command::Config { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// The operator at this terminal, with the application's state over the configured
/// database: what an admin service action needs.
struct Operator {
    state: AppState,
    who: Caller,
}

impl Operator {
    async fn open(config: Config) -> Result<Self, String> {
        let state = startup::build_state(config, Arc::new(SystemClock))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            state,
            who: Caller::cli(actor::person()),
        })
    }

    /// As `open`, with the default organisation made if it is missing: for commands that
    /// add accounts.
    async fn open_for_accounts(config: Config) -> Result<Self, String> {
        let op = Self::open(config).await?;
        bootstrap::ensure_default_org(&op.state.store, op.state.clock.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        Ok(op)
    }

    /// The organisation named `name`, when the operator may take `action` on it.
    async fn org(&self, action: Action, name: &OrgName) -> Result<OrgRow, String> {
        orgs::find_named(&self.state, &self.who, action, name)
            .await
            .map_err(failed)
    }

    /// The user named `name`, as `org`.
    async fn user(&self, action: Action, name: &Username) -> Result<UserRow, String> {
        users::find_named(&self.state, &self.who, action, name)
            .await
            .map_err(failed)
    }

    /// Acting outside any request, audited as `cli:<person>`.
    fn by(&self) -> Acting<'_> {
        Acting::cli(&self.state, &self.who)
    }
}

/// What a failed admin action prints (after `gatehouse: `).
fn failed(e: ServiceError) -> String {
    e.to_string()
}

/// One JSON document on standard output.
fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}
