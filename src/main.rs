//! The `gatehouse` command line (DESIGN §2, configuration and CLI contract).
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use gatehouse::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        account::{NewAccount, create_account},
        recovery::{self, Admin, NewInvitation},
    },
    bootstrap,
    clock::SystemClock,
    config::Config,
    domain::{Email, OrgName, Password, Role, Username},
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
        command: UserCommand,
    },
    /// Blocked client addresses (DESIGN §5).
    Ip {
        #[command(subcommand)]
        command: IpCommand,
    },
    /// OpenID Connect relying parties (DESIGN §9).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// SAML service providers (DESIGN §10).
    Sp {
        #[command(subcommand)]
        command: SpCommand,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check, export and prune the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain. Exit status 0: intact; 1: the first problem is named;
    /// 2: the trail could not be checked.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write events as JSON lines to standard output, oldest first.
    Export {
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
    },
    /// Delete events older than the retention period (`audit_retention_days`), leaving
    /// a signed checkpoint so the rest still verifies.
    Prune {
        /// Prune before this time (RFC 3339) instead of the retention period.
        #[arg(long, value_parser = parse_time)]
        older_than: Option<DateTime<Utc>>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user whose password (read from standard input) obeys the org's policy.
    Create {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: Option<String>,
        /// user, support, org_admin or super_admin.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from the first line of standard input (never from the command
        /// line, where it would land in shell history and `ps`).
        #[arg(long)]
        password_stdin: bool,
        /// Require a new password at the first sign-in.
        #[arg(long)]
        must_change_password: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create a user without a password and mail them a link to choose one (DESIGN §7).
    /// Inviting a still-invited user again mails a fresh link.
    Invite {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: Option<String>,
        /// user, support, org_admin or super_admin.
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// Take the password away at once (it no longer signs in), end the user's sessions
    /// and mail a reset link: one user, or every active user of an organisation.
    ForceReset {
        #[arg(required_unless_present = "org", conflicts_with = "org")]
        username: Option<String>,
        /// Every active user of this organisation.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's second factor (they enrol again at their next sign-in if policy requires it).
    RemoveTotp {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Clear temporary and permanent sign-in locks of a username.
    Unlock {
        username: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IpCommand {
    /// Blocked client addresses.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lift the block of an address (as listed: an IPv4 address or an IPv6 /64).
    Unblock { ip: String },
}

#[derive(Subcommand)]
enum SpCommand {
    /// Register a service provider from its metadata, or update one already registered
    /// (settings not given take their defaults); prints its entity_id.
    Import {
        /// A metadata file, or an https:// URL to fetch it from.
        #[arg(long)]
        metadata: String,
        /// A display name (default: the entity id).
        #[arg(long)]
        name: Option<String>,
        /// persistent, email, transient or unspecified (default: the first the SP lists,
        /// else persistent).
        #[arg(long = "name-id-format")]
        name_id_format: Option<String>,
        /// pairwise, user_id, username, email or random (default follows the format).
        #[arg(long = "name-id-source")]
        name_id_source: Option<String>,
        /// field=AttributeName (fields: email, name, username, roles, organisation); an
        /// empty name leaves the field out. Repeat.
        #[arg(long = "attribute")]
        attributes: Vec<String>,
        /// Sign the Assertion (default true).
        #[arg(long = "sign-assertion")]
        sign_assertion: Option<bool>,
        /// Sign the Response too (default false).
        #[arg(long = "sign-response")]
        sign_response: Option<bool>,
        /// Refuse unsigned AuthnRequests (default: the metadata's AuthnRequestsSigned).
        #[arg(long = "require-signed-requests")]
        require_signed_requests: Option<bool>,
        /// Encrypt assertions (default: when the SP publishes an encryption key).
        #[arg(long = "encrypt-assertions")]
        encrypt_assertions: Option<bool>,
        /// Accept sign-ins started at Gatehouse, /saml/sso/init (default false).
        #[arg(long = "idp-initiated")]
        idp_initiated: Option<bool>,
        /// A RelayState such a sign-in may carry (exact string, e.g. a URL). Repeat.
        #[arg(long = "relay-state")]
        relay_states: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a registered service provider's IdP-initiated SSO settings; what is not
    /// given is kept.
    Update {
        /// The SP's entity id.
        entity_id: String,
        /// Accept sign-ins started at Gatehouse, /saml/sso/init.
        #[arg(long = "idp-initiated")]
        idp_initiated: Option<bool>,
        /// The RelayStates such a sign-in may carry, replacing the list. Repeat.
        #[arg(long = "relay-state", conflicts_with = "no_relay_states")]
        relay_states: Vec<String>,
        /// Allow no RelayState at all.
        #[arg(long = "no-relay-states")]
        no_relay_states: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a relying party; prints its client_id and, once, its secret.
    Create {
        #[arg(long)]
        name: String,
        /// Exact redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Where RP-initiated logout may return; repeat for several.
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// authorization_code, refresh_token, client_credentials; repeat. Default: the first two.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Allowed scopes; repeat. Default: openid profile email offline_access.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
        #[arg(long = "auth-method")]
        auth_method: Option<String>,
        /// The client's JWKS document (for private_key_jwt).
        #[arg(long = "jwks-file")]
        jwks_file: Option<PathBuf>,
        /// Where back-channel logout tokens are POSTed.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// ID token signature: RS256 (default) or ES256.
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        /// Only users of this organisation may sign in to it; repeat for several.
        /// Without any: users of every organisation.
        #[arg(long = "org")]
        orgs: Vec<String>,
        /// A resource server: may introspect tokens issued to other clients.
        #[arg(long)]
        introspection: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Start signing with the published next key, retire the current one (still
    /// published until its tokens expire) and publish a new next key.
    Rotate {
        /// Rotate the SAML signing key (and certificate) instead of the OIDC token keys.
        #[arg(long)]
        saml: bool,
        #[arg(long)]
        json: bool,
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
    let result = runtime.block_on(async move {
        let done = |r: Result<(), String>| r.map(|()| ExitCode::SUCCESS);
        match cli.command {
            Command::Serve => done(serve(config).await),
            Command::Migrate => done(migrate(config).await),
            Command::Healthcheck { timeout_secs } => done(
                gatehouse::web::ops::probe_alive(
                    &config,
                    std::time::Duration::from_secs(timeout_secs),
                )
                .await,
            ),
            Command::User { command } => done(user(config, command).await),
            Command::Ip { command } => done(ip(config, command).await),
            Command::Client { command } => done(client(config, command).await),
            Command::Sp { command } => done(sp(config, command).await),
            Command::Keys { command } => done(keys(config, command).await),
            Command::Audit { command } => audit(config, command).await,
            Command::Config { .. } => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
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
    spawn_reload_on_hangup(app.tls_certificate());
    println!("Gatehouse listening on {scheme}://{}", app.local_addr());
    tracing::info!(addr = %app.local_addr(), "listening");
    if let Some(addr) = app.metrics_addr() {
        tracing::info!(addr = %addr, "metrics listening (plain HTTP, /metrics only)");
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
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
            tracing::error!(error = %e, "cannot listen for SIGHUP; certificate reload disabled");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: TLS is off, nothing to reload");
                continue;
            };
            let cert = tls.clone();
            let result = tokio::task::spawn_blocking(move || cert.reload()).await;
            match result {
                Ok(Ok(())) => {
                    tracing::info!(cert = %tls.cert_path().display(), "SIGHUP: reloaded the TLS certificate and key")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; still serving the previous one")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
            }
        }
    });
}

async fn migrate(config: Config) -> Result<(), String> {
    startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    println!("migrations: up to date");
    Ok(())
}

async fn user(config: Config, command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Unlock { username, json } => return unlock(config, &username, json).await,
        UserCommand::RemoveTotp { username, json } => {
            return remove_totp(config, &username, json).await;
        }
        UserCommand::ForceReset {
            username,
            org,
            json,
        } => return force_reset(config, username, org, json).await,
        UserCommand::Invite {
            org,
            username,
            email,
            display_name,
            role,
            json,
        } => {
            let new = NewInvitation {
                org: OrgName::parse(&org).map_err(|e| format!("--org: {e}"))?,
                username: Username::parse(&username).map_err(|e| format!("--username: {e}"))?,
                email: Email::parse(&email).map_err(|e| format!("--email: {e}"))?,
                display_name: display_name
                    .as_deref()
                    .map(gatehouse::domain::DisplayName::parse)
                    .transpose()
                    .map_err(|e| format!("--display-name: {e}"))?,
                role: role.parse::<Role>().map_err(|e| format!("--role: {e}"))?,
            };
            return invite(config, new, json).await;
        }
        UserCommand::Create { .. } => {}
    }
    let UserCommand::Create {
        org,
        username,
        email,
        display_name,
        role,
        password_stdin,
        must_change_password,
        json,
    } = command
    else {
        return Ok(());
    };
    let new = NewAccount {
        org: OrgName::parse(&org).map_err(|e| format!("--org: {e}"))?,
        username: Username::parse(&username).map_err(|e| format!("--username: {e}"))?,
        email: Email::parse(&email).map_err(|e| format!("--email: {e}"))?,
        display_name: display_name
            .as_deref()
            .map(gatehouse::domain::DisplayName::parse)
            .transpose()
            .map_err(|e| format!("--display-name: {e}"))?,
        role: role.parse::<Role>().map_err(|e| format!("--role: {e}"))?,
        password: if password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            Password::parse(line.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("password: {e}"))?
        } else {
            return Err("--password-stdin is required (or `gatehouse user invite` lets the user choose a password from a mailed link)".into());
        },
        must_change_password,
    };
    let state = startup::build_state(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    bootstrap::ensure_default_org(&state.store, state.clock.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let org_name = new.org.to_string();
    let user = create_account(&state, new)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "org": org_name,
                "role": user.role,
                "must_change_password": user.must_change_password,
            })
        );
    } else {
        println!(
            "created user {} ({}) in organisation {org_name}",
            user.username, user.id
        );
    }
    Ok(())
}

/// Administrative actions from this command line are audited with this actor.
const CLI: Admin<'static> = Admin {
    actor: "cli",
    request: None,
};

async fn invite(config: Config, new: NewInvitation, json: bool) -> Result<(), String> {
    let state = startup::build_state(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    bootstrap::ensure_default_org(&state.store, state.clock.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let invitation = recovery::invite(&state, CLI, new)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&invitation).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{} {} ({}) to organisation {}; the link in the mail to {} works until {}",
            if invitation.reissued {
                "invited again"
            } else {
                "invited"
            },
            invitation.username,
            invitation.id,
            invitation.org,
            invitation.email,
            invitation.expires_at.to_rfc3339()
        );
    }
    Ok(())
}

async fn force_reset(
    config: Config,
    username: Option<String>,
    org: Option<String>,
    json: bool,
) -> Result<(), String> {
    let state = startup::build_state(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    match (username, org) {
        (Some(raw), None) => {
            let username = Username::parse(&raw).map_err(|e| format!("username: {e}"))?;
            let done = recovery::force_reset_user(&state, CLI, &username)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&done).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{}'s password no longer works; a reset link was mailed ({} sessions ended)",
                    done.username, done.sessions_ended
                );
            }
        }
        (None, Some(raw)) => {
            let org = OrgName::parse(&raw).map_err(|e| format!("--org: {e}"))?;
            let done = recovery::force_reset_org(&state, CLI, &org, None)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&done).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{} users of {} must choose a new password from the mailed link",
                    done.reset.len(),
                    done.org
                );
                if !done.skipped.is_empty() {
                    println!("not active, skipped: {}", done.skipped.join(", "));
                }
            }
        }
        _ => return Err("give a username or --org ORG".into()),
    }
    Ok(())
}

async fn unlock(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let username = Username::parse(raw).map_err(|e| format!("username: {e}"))?;
    let store = startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    let key = gatehouse::auth::guard::login_key(username.as_str());
    let cleared = store
        .run(move |c| gatehouse::store::lockouts::unlock(c, &key))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(target: "gatehouse::admin", username = %username, cleared, "unlocked from the command line");
    let audit = startup::open_audit(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    let lookup = username.clone();
    let user = store
        .run(move |c| gatehouse::store::users::find_by_username(c, &lookup))
        .await
        .map_err(|e| e.to_string())?;
    let mut event = AuditEvent::new(EventType::AccountUnlocked, Outcome::Success)
        .actor("cli")
        .detail("was_locked", cleared);
    if let Some(user) = &user {
        event = event.subject(&user.id).org(&user.org_id);
    }
    audit.record(event).await.map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "username": username.as_str(), "was_locked": cleared })
        );
    } else if cleared {
        println!("unlocked {username}");
    } else {
        println!("{username} had no failed attempts or locks");
    }
    Ok(())
}

async fn client(config: Config, command: ClientCommand) -> Result<(), String> {
    let ClientCommand::Create {
        name,
        redirect_uris,
        public,
        post_logout_uris,
        grants,
        scopes,
        auth_method,
        jwks_file,
        backchannel_logout_uri,
        id_token_alg,
        orgs,
        introspection,
        json,
    } = command;
    let jwks = jwks_file
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|e| format!("jwks-file {}: {e}", path.display()))
        })
        .transpose()?;
    let store = startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    let spec = gatehouse::oidc::clients::ClientSpec {
        name,
        redirect_uris,
        post_logout_redirect_uris: post_logout_uris,
        public,
        grant_types: grants,
        scopes,
        auth_method,
        jwks,
        backchannel_logout_uri,
        id_token_alg,
        allowed_orgs: (!orgs.is_empty()).then_some(orgs),
        introspection,
    };
    let registered = gatehouse::oidc::clients::register(&store, spec.clone(), Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    let audit = startup::open_audit(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .actor("cli")
                .detail("object", "oidc_client")
                .detail("change", "created")
                .detail("client_id", registered.client_id.as_str()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let secret = registered
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "client_id": registered.client_id,
                "client_secret": secret,
                "client_name": spec.name,
                "redirect_uris": spec.redirect_uris,
                "allowed_orgs": spec.allowed_orgs,
                "introspection": spec.introspection,
            })
        );
    } else {
        println!("client_id:     {}", registered.client_id);
        if let Some(secret) = secret {
            println!("client_secret: {secret}");
            println!("The secret is shown only now; Gatehouse keeps only its hash.");
        }
        match &spec.allowed_orgs {
            Some(orgs) => println!("allowed_orgs:  {}", orgs.join(" ")),
            None => println!("allowed_orgs:  every organisation (pass --org to admit only some)"),
        }
    }
    Ok(())
}

async fn sp(config: Config, command: SpCommand) -> Result<(), String> {
    let (registered, created, json) = match command {
        SpCommand::Update { .. } => sp_update(&config, command).await?,
        SpCommand::Import { .. } => sp_import(&config, command).await?,
    };
    let audit = startup::open_audit(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .actor("cli")
                .detail("object", "saml_sp")
                .detail(
                    "change",
                    if created == Some(true) {
                        "created"
                    } else {
                        "updated"
                    },
                )
                .detail("entity_id", registered.entity_id.as_str()),
        )
        .await
        .map_err(|e| e.to_string())?;
    print_sp(&registered, created, json);
    Ok(())
}

type SpOutcome = (
    gatehouse::saml::providers::ServiceProvider,
    Option<bool>,
    bool,
);

async fn sp_import(config: &Config, command: SpCommand) -> Result<SpOutcome, String> {
    use gatehouse::saml::providers;
    let SpCommand::Import {
        metadata,
        name,
        name_id_format,
        name_id_source,
        attributes,
        sign_assertion,
        sign_response,
        require_signed_requests,
        encrypt_assertions,
        idp_initiated,
        relay_states,
        json,
    } = command
    else {
        return Err("not an import".into());
    };
    let document = providers::read_metadata(&metadata)
        .await
        .map_err(|e| e.to_string())?;
    let settings = providers::ImportSettings {
        name,
        name_id_format,
        name_id_source,
        attributes,
        sign_assertion,
        sign_response,
        require_signed_requests,
        encrypt_assertions,
        idp_initiated,
        idp_initiated_relay_states: Some(relay_states),
    };
    let store = startup::open_store(config)
        .await
        .map_err(|e| e.to_string())?;
    let (registered, created) = providers::import(&store, &document, &settings, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    Ok((registered, Some(created), json))
}

async fn sp_update(config: &Config, command: SpCommand) -> Result<SpOutcome, String> {
    use gatehouse::saml::providers;
    let SpCommand::Update {
        entity_id,
        idp_initiated,
        relay_states,
        no_relay_states,
        json,
    } = command
    else {
        return Err("not an update".into());
    };
    let change = providers::SettingsChange {
        idp_initiated,
        idp_initiated_relay_states: (no_relay_states || !relay_states.is_empty())
            .then_some(relay_states),
        ..Default::default()
    };
    let store = startup::open_store(config)
        .await
        .map_err(|e| e.to_string())?;
    let registered = providers::update_settings(&store, &entity_id, change, Utc::now())
        .await
        .map_err(|e| match e {
            providers::SpError::Store(gatehouse::store::StoreError::NotFound) => {
                format!("service provider {entity_id} is not registered")
            }
            e => e.to_string(),
        })?;
    Ok((registered, None, json))
}

/// What `sp import` and `sp update` print: the registration as it now stands.
fn print_sp(
    registered: &gatehouse::saml::providers::ServiceProvider,
    created: Option<bool>,
    json: bool,
) {
    let acs: Vec<&str> = registered.acs.iter().map(|e| e.location.as_str()).collect();
    if json {
        let mut out = serde_json::json!({
            "entity_id": registered.entity_id,
            "acs_urls": acs,
            "name_id_format": registered.name_id_format,
            "sign_assertion": registered.sign_assertion,
            "sign_response": registered.sign_response,
            "require_signed_requests": registered.require_signed_requests,
            "encrypt_assertions": registered.encrypt_assertions,
            "idp_initiated": registered.idp_initiated,
            "idp_initiated_relay_states": registered.idp_initiated_relay_states,
        });
        if let Some(created) = created {
            out["created"] = created.into();
        }
        println!("{out}");
        return;
    }
    println!("entity_id: {}", registered.entity_id);
    println!(
        "{} with {} ACS URL(s); NameID {}; signs the {}{}{}",
        match created {
            Some(true) => "registered",
            _ => "updated",
        },
        acs.len(),
        registered.name_id_format,
        match (registered.sign_assertion, registered.sign_response) {
            (true, true) => "assertion and the response",
            (false, true) => "response",
            _ => "assertion",
        },
        if registered.encrypt_assertions {
            "; encrypts assertions"
        } else {
            ""
        },
        if registered.require_signed_requests {
            "; requires signed requests"
        } else {
            ""
        },
    );
    if registered.idp_initiated {
        println!(
            "IdP-initiated SSO: on, RelayStates allowed: {}",
            if registered.idp_initiated_relay_states.is_empty() {
                "none".to_owned()
            } else {
                registered.idp_initiated_relay_states.join(" ")
            }
        );
    } else {
        println!("IdP-initiated SSO: off");
    }
}

async fn keys(config: Config, command: KeysCommand) -> Result<(), String> {
    let KeysCommand::Rotate { saml, json } = command;
    let master_key = Arc::new(startup::load_master_key(&config).map_err(|e| e.to_string())?);
    let store = startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    if saml {
        return saml_keys_rotate(&config, &store, master_key, json).await;
    }
    let rotated = gatehouse::keys::rings::rotate(&store, master_key, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    let audit = startup::open_audit(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    for r in &rotated {
        audit
            .record(
                AuditEvent::new(EventType::KeyRotated, Outcome::Success)
                    .actor("cli")
                    .detail("alg", r.alg)
                    .detail("active_kid", r.active_kid.as_str())
                    .detail("next_kid", r.next_kid.as_str()),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    if json {
        let keys: Vec<_> = rotated
            .iter()
            .map(|r| serde_json::json!({ "alg": r.alg, "active_kid": r.active_kid, "next_kid": r.next_kid }))
            .collect();
        println!("{}", serde_json::json!({ "rotated": keys }));
    } else {
        for r in &rotated {
            println!(
                "{}: signing with key {}; key {} is published and signs at the next rotation.",
                r.alg, r.active_kid, r.next_kid
            );
        }
        println!("Running instances pick this up within signing_key_reload_secs.");
    }
    Ok(())
}

/// `keys rotate --saml`: the SAML key published as next starts signing (DESIGN §10).
async fn saml_keys_rotate(
    config: &Config,
    store: &gatehouse::store::Store,
    master_key: Arc<gatehouse::crypto::MasterKey>,
    json: bool,
) -> Result<(), String> {
    let entity_id = format!(
        "{}/saml/metadata",
        config.issuer.as_str().trim_end_matches('/')
    );
    let now = Utc::now();
    // A database from before rotation may lack a next key: ensure publishes one first.
    gatehouse::saml::keys::ensure(store, master_key.clone(), &entity_id, now)
        .await
        .map_err(|e| e.to_string())?;
    let r = gatehouse::saml::keys::rotate(store, master_key, &entity_id, now)
        .await
        .map_err(|e| e.to_string())?;
    let audit = startup::open_audit(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    audit
        .record(
            AuditEvent::new(EventType::KeyRotated, Outcome::Success)
                .actor("cli")
                .detail("protocol", "saml")
                .detail("active_id", r.active_id.as_str())
                .detail("next_id", r.next_id.as_str()),
        )
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "saml": { "active_id": r.active_id, "next_id": r.next_id } })
        );
    } else {
        println!(
            "SAML: signing with key {}; key {} is published in the metadata and signs at the next rotation.",
            r.active_id, r.next_id
        );
        println!("Running instances pick this up within signing_key_reload_secs.");
    }
    Ok(())
}

async fn ip(config: Config, command: IpCommand) -> Result<(), String> {
    use gatehouse::store::ip_blocks;
    let store = startup::open_store(&config)
        .await
        .map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().naive_utc();
    match command {
        IpCommand::List { json } => {
            let blocks = store
                .run(move |c| ip_blocks::list_active(c, now))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&blocks).map_err(|e| e.to_string())?
                );
            } else if blocks.is_empty() {
                println!("no blocked addresses");
            } else {
                for b in blocks {
                    println!(
                        "{}\tuntil {} UTC\tblock #{}\t{}",
                        b.ip, b.blocked_until, b.block_count, b.reason
                    );
                }
            }
        }
        IpCommand::Unblock { ip } => {
            let key = ip.trim().to_owned();
            if key.len() > 64 {
                return Err("ip: not an address".into());
            }
            let lifted = store
                .run(move |c| ip_blocks::unblock(c, &key, now))
                .await
                .map_err(|e| e.to_string())?;
            if !lifted {
                return Err(format!("{ip} is not blocked"));
            }
            let audit = startup::open_audit(&config, Arc::new(SystemClock))
                .await
                .map_err(|e| e.to_string())?;
            audit
                .record(
                    AuditEvent::new(EventType::IpUnblocked, Outcome::Success)
                        .actor("cli")
                        .detail("unblocked", ip.trim()),
                )
                .await
                .map_err(|e| e.to_string())?;
            println!("unblocked {ip}");
        }
    }
    Ok(())
}

async fn remove_totp(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let username = Username::parse(raw).map_err(|e| format!("username: {e}"))?;
    let state = startup::build_state(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    let lookup = username.clone();
    let user = state
        .store
        .run(move |c| gatehouse::store::users::find_by_username(c, &lookup))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {username}"))?;
    let removed = gatehouse::auth::totp::remove(&state, &user.id, true)
        .await
        .map_err(|e| e.to_string())?;
    if removed {
        state
            .audit
            .record(
                AuditEvent::new(EventType::MfaRemoved, Outcome::Success)
                    .actor("cli")
                    .subject(&user.id)
                    .org(&user.org_id),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "username": user.username, "removed": removed })
        );
    } else if removed {
        println!("removed two-step verification of {}", user.username);
    } else {
        println!("{} had no two-step verification", user.username);
    }
    Ok(())
}

async fn audit(config: Config, command: AuditCommand) -> Result<ExitCode, String> {
    let retention_days = config.audit_retention_days;
    let opened = startup::open_audit(&config, Arc::new(SystemClock)).await;
    match command {
        AuditCommand::Verify { json } => {
            // 1 is reserved for "the chain is broken", so a script can tell tampering
            // from a database that could not be reached.
            let report = match opened {
                Ok(audit) => audit.verify().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let report = match report {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("gatehouse: cannot verify the audit trail: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if json {
                let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                println!("{report}");
            }
            Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export { since } => {
            let audit = opened.map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            audit
                .export(since, &mut out)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prune { older_than } => {
            let audit = opened.map_err(|e| e.to_string())?;
            let cutoff = match older_than {
                Some(t) => t,
                None => Utc::now() - chrono::Duration::days(i64::from(retention_days)),
            };
            match audit.prune(cutoff).await.map_err(|e| e.to_string())? {
                Some(cp) => println!(
                    "pruned {} events before {}; the chain now resumes after seq {}",
                    cp.pruned_events,
                    cp.pruned_before.to_rfc3339(),
                    cp.last_seq
                ),
                None => println!("nothing older than {} to prune", cutoff.to_rfc3339()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
