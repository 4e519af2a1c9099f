//! Typed settings: a TOML file, then `GATEHOUSE_*` environment overrides, then checks.
//!
//! Every key is a flat, snake_case name so that its environment variable is simply
//! `GATEHOUSE_` + the key in upper case. An unknown key or a malformed value stops
//! start-up with one line naming it: operators script us, and a typo that silently
//! falls back to a default is how an IdP ends up on the wrong database.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

/// The environment variables of the test harness, not settings of the server.
const ENV_PREFIX: &str = "GATEHOUSE_";
const ENV_IGNORED: &[&str] = &["GATEHOUSE_TEST_", "GATEHOUSE_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{source_name}: {key}: {message}")]
    Value {
        source_name: String,
        key: String,
        message: String,
    },
    #[error("unknown setting {name} (see the configuration table in README.md)")]
    UnknownEnv { name: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            other => Err(format!("expected \"json\" or \"pretty\", got {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening address.
    pub bind: SocketAddr,
    /// Serve TLS on `bind`. Turn off only behind a TLS-terminating proxy.
    pub tls: bool,
    /// PEM certificate chain and key; when absent, a self-signed pair is generated in `data_dir`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// An internal plain-HTTP listener that serves `/metrics` and nothing else (e.g.
    /// `127.0.0.1:9464`); when set, the public listener does not serve `/metrics`.
    pub metrics_bind: Option<SocketAddr>,
    /// The bearer token `/metrics` requires wherever it is served. With neither this
    /// nor `metrics_bind`, `/metrics` is not served at all.
    #[serde(serialize_with = "redact_secret")]
    pub metrics_token: Option<SecretString>,
    /// The public URL relying parties see; every link and token issuer is built from it.
    pub issuer: Url,
    pub data_dir: PathBuf,
    /// `postgres://…` for production; `sqlite:PATH`; absent → SQLite in `data_dir`.
    #[serde(serialize_with = "redact_url")]
    pub database_url: Option<Url>,
    pub database_pool_size: u32,
    /// A PostgreSQL that is not on this host must be reached with `sslmode=verify-full`
    /// (issue 27): credentials and personal data cross the network. `false` accepts a
    /// weaker connection, with a warning at every start.
    pub database_require_tls: bool,
    /// Longest PostgreSQL may take over one statement (its `statement_timeout`); a
    /// request whose database call gets no answer a second after that is answered 503
    /// with `Retry-After`, however the network stalls. Also libpq's connect timeout,
    /// TCP keepalive and user timeout.
    pub database_timeout_secs: u64,
    /// Absent → in-process ephemeral state (one instance only).
    #[serde(serialize_with = "redact_url")]
    pub redis_url: Option<Url>,
    pub redis_key_prefix: String,
    /// Longest wait for a Redis connection or reply before the request is answered 503.
    pub redis_timeout_secs: u64,
    /// Base64 of 32 bytes. Prefer `master_key_file` or the environment over the TOML file.
    #[serde(serialize_with = "redact_secret")]
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `smtp://user:pass@host:587` (STARTTLS required), `smtps://…` (implicit TLS),
    /// `smtp://host:25?tls=none` (plaintext, explicitly); absent → `.eml` files in
    /// `data_dir/outbox/`. See `mail::smtp::SmtpTarget`.
    #[serde(serialize_with = "redact_url")]
    pub smtp_url: Option<Url>,
    pub mail_from: String,
    /// How often the mail worker looks for due messages when nothing wakes it.
    pub mail_poll_secs: u64,
    /// A message still undelivered this long after it was queued is marked failed.
    pub mail_give_up_after_hours: u64,
    /// Key of the `X-Gatehouse-Signature` HMAC on webhook deliveries.
    #[serde(serialize_with = "redact_secret")]
    pub webhook_secret: Option<SecretString>,
    /// Where security events (lockouts, IP blocks) are POSTed, for every organisation.
    #[serde(serialize_with = "redact_webhook_url")]
    pub webhook_url: Option<Url>,
    /// Life of OIDC access tokens and ID tokens.
    pub access_token_secs: u64,
    /// Life of an OIDC refresh token (each rotation issues a new one with a new life).
    pub refresh_token_secs: u64,
    /// How long after sign-in a public client (SPA, native app) may refresh when its
    /// tokens are not bound to a DPoP key: rotation alone does not stop a thief who
    /// uses a stolen refresh token first.
    pub public_client_refresh_secs: u64,
    /// Every DPoP proof must carry a nonce from the server's `DPoP-Nonce` header
    /// (RFC 9449 §8), which limits a proof made in advance to a few minutes.
    pub dpop_nonce_required: bool,
    /// Life of an OIDC authorization code.
    pub authorization_code_secs: u64,
    /// How often an instance reloads the signing keys (to follow `gatehouse keys rotate`).
    pub signing_key_reload_secs: u64,
    /// How often an instance looks for a master-key rotation (`gatehouse keys
    /// rotate-master`) to learn the new key; the rotation's grace period must be at
    /// least twice this.
    pub master_key_poll_secs: u64,
    /// Clock difference tolerated on a SAML request's IssueInstant.
    pub saml_clock_skew_secs: u64,
    /// Life of a SAML assertion (Conditions and SubjectConfirmation NotOnOrAfter).
    pub saml_assertion_secs: u64,
    /// How long the signed `/saml/metadata` says it is valid (`validUntil`), in days.
    /// Shibboleth's `RequireValidUntil` filter refuses more than 14 by default.
    pub saml_metadata_valid_days: u32,
    /// How often SP metadata imported from a URL is fetched again (sooner when the
    /// document's `cacheDuration` says so); 0: only on `gatehouse sp refresh`.
    pub saml_metadata_refresh_secs: u64,
    /// Let SP metadata URLs use plain http and name loopback or private addresses (tests,
    /// a lab). Off: https only, public addresses only.
    pub saml_metadata_allow_local: bool,
    /// The scope of scoped SAML attributes (`user@scope`); absent → the issuer's host.
    pub saml_scope: Option<String>,
    /// `tracing` filter directives, e.g. `info` or `gatehouse=debug,info`.
    pub log_level: String,
    pub log_format: LogFormat,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Concurrent password hashes; absent → one per core.
    pub hashing_workers: Option<usize>,
    /// Sign-ins allowed to wait for a hashing worker; beyond that, 503 at once.
    pub hashing_queue: usize,
    /// Failed sign-ins from one address (across all usernames) within the window that block it.
    pub ip_block_threshold: u32,
    pub ip_block_window_secs: u64,
    /// First block length; each repeat doubles it.
    pub ip_block_secs: u64,
    /// Addresses never blocked (a hospital's NAT), as CIDRs.
    pub ip_allow_list: Vec<IpNet>,
    /// Per-IP request quota on the sign-in, reset and token endpoints.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// Life of a self-service reset link (DESIGN §7: 30 minutes).
    pub reset_token_minutes: u32,
    /// Life of an invitation link.
    pub invite_token_hours: u32,
    /// Reset requests one client address may make per hour (allow-listed ones: no limit).
    pub reset_ip_limit_per_hour: u32,
    /// Reset mails one account receives per hour; further requests get the same answer
    /// and send nothing, so `/reset` cannot flood someone's inbox.
    pub reset_account_limit_per_hour: u32,
    /// Username and email of the administrator created on first start.
    pub admin_username: String,
    pub admin_email: String,
    pub shutdown_timeout_secs: u64,
    /// How long audit events are kept before `gatehouse audit prune` may delete them
    /// (DESIGN §11; the default is six years, a common floor for health records).
    pub audit_retention_days: u32,
    /// How often each instance anchors the audit chain's head outside the database, when
    /// it moved (README, Audit trail); 0: never. Also once at a clean shutdown.
    pub audit_anchor_secs: u64,
    /// The file anchors are appended to; absent → `data_dir/audit-anchors.jsonl`.
    pub audit_anchor_file: Option<PathBuf>,
    /// Also send each anchor to syslog (`/dev/log`).
    pub audit_anchor_syslog: bool,
    /// Administrative CLI commands refuse to run without `--actor NAME`: every change
    /// made at the command line then names the person who made it (issue 26).
    pub cli_require_actor: bool,
    /// Where a passphrase-sealed master key file gets its passphrase: given by the
    /// command line (a file descriptor, a systemd credential, the terminal), never by
    /// a setting, so it is neither read from the file nor from the environment.
    #[serde(skip)]
    pub master_key_passphrase: PassphrasePrompt,
}

/// Asks for the passphrase of the sealed master key file at the given path.
type AskPassphrase = dyn Fn(&Path) -> Result<SecretString, String> + Send + Sync;

/// How start-up obtains the passphrase of a sealed master key file (issue 27). Empty
/// by default: a sealed file then stops start-up with a line saying so.
#[derive(Clone, Default)]
pub struct PassphrasePrompt(Option<std::sync::Arc<AskPassphrase>>);

impl PassphrasePrompt {
    pub fn new(
        ask: impl Fn(&Path) -> Result<SecretString, String> + Send + Sync + 'static,
    ) -> Self {
        Self(Some(std::sync::Arc::new(ask)))
    }

    /// The passphrase for the sealed key file at `path`.
    pub fn ask(&self, path: &Path) -> Result<SecretString, String> {
        match &self.0 {
            Some(ask) => ask(path),
            None => Err("no way to ask for its passphrase here; start it with the gatehouse command (--passphrase-fd, a systemd credential or a terminal)".into()),
        }
    }
}

impl std::fmt::Debug for PassphrasePrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PassphrasePrompt(set)"
        } else {
            "PassphrasePrompt(unset)"
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls: true,
            tls_cert: None,
            tls_key: None,
            metrics_bind: None,
            metrics_token: None,
            issuer: Url::parse("https://localhost:8443").expect("static URL parses"),
            data_dir: PathBuf::from("./gatehouse-data"),
            database_url: None,
            database_pool_size: 10,
            database_require_tls: true,
            database_timeout_secs: 5,
            redis_url: None,
            redis_key_prefix: "gatehouse:".into(),
            redis_timeout_secs: 2,
            master_key: None,
            master_key_file: None,
            trusted_proxies: Vec::new(),
            smtp_url: None,
            mail_from: "Gatehouse <gatehouse@localhost>".into(),
            mail_poll_secs: 5,
            mail_give_up_after_hours: 72,
            webhook_secret: None,
            webhook_url: None,
            access_token_secs: 300,
            refresh_token_secs: 14 * 24 * 3600,
            public_client_refresh_secs: 24 * 3600,
            dpop_nonce_required: false,
            authorization_code_secs: 60,
            signing_key_reload_secs: 60,
            master_key_poll_secs: 10,
            saml_clock_skew_secs: 120,
            saml_assertion_secs: 300,
            saml_metadata_valid_days: 7,
            saml_metadata_refresh_secs: 3600,
            saml_metadata_allow_local: false,
            saml_scope: None,
            log_level: "info".into(),
            log_format: LogFormat::Json,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hashing_workers: None,
            hashing_queue: 32,
            ip_block_threshold: 20,
            ip_block_window_secs: 600,
            ip_block_secs: 3600,
            ip_allow_list: Vec::new(),
            rate_limit_per_minute: 60,
            rate_limit_burst: 20,
            reset_token_minutes: 30,
            invite_token_hours: 72,
            reset_ip_limit_per_hour: 30,
            reset_account_limit_per_hour: 3,
            admin_username: "admin".into(),
            admin_email: "admin@localhost".into(),
            shutdown_timeout_secs: 30,
            audit_retention_days: crate::audit::DEFAULT_RETENTION_DAYS,
            audit_anchor_secs: 300,
            audit_anchor_file: None,
            audit_anchor_syslog: false,
            cli_require_actor: false,
            master_key_passphrase: PassphrasePrompt::default(),
        }
    }
}

/// Where the database lives, decided from the URL scheme so a bad URL gets its real
/// message instead of diesel trying every backend in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Postgres(String),
    Sqlite(PathBuf),
}

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Inline,
    File(PathBuf),
    /// The embedded default: generated in `data_dir` on first start.
    Generated(PathBuf),
}

mod checks;
mod env;
#[cfg(test)]
mod tests;

impl Config {
    /// The public base URL without a trailing slash: the OIDC issuer identifier, and
    /// what every link, the SAML entity id and endpoint address are built from.
    pub fn public_base(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// File (if any), then environment, then checks.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.apply_env(std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// As [`Self::load`], for `keys init-master`, which creates the master key file.
    pub fn load_creating_key_file(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.apply_env(std::env::vars())?;
        config.validate_creating_key_file()?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.kind().to_string(),
        })?;
        Self::from_toml_str(&text, path)
    }

    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1),
            message: e.message().trim().to_owned(),
        })?;
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Value {
                source_name: path.display().to_string(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message: e.inner().message().trim().to_owned(),
            }
        })
    }

    pub fn database_target(&self) -> Result<DatabaseTarget, ConfigError> {
        let Some(url) = &self.database_url else {
            return Ok(DatabaseTarget::Sqlite(self.data_dir.join("gatehouse.db")));
        };
        match url.scheme() {
            "postgres" | "postgresql" => Ok(DatabaseTarget::Postgres(url.to_string())),
            "sqlite" => {
                let path = match url.host_str() {
                    Some(host) => format!("{host}{}", url.path()),
                    None => url.path().to_owned(),
                };
                if path.is_empty() {
                    return Err(ConfigError::Invalid {
                        key: "database_url",
                        message: "sqlite URL needs a file path, e.g. sqlite:/var/lib/gatehouse/gatehouse.db".into(),
                    });
                }
                Ok(DatabaseTarget::Sqlite(PathBuf::from(path)))
            }
            other => Err(ConfigError::Invalid {
                key: "database_url",
                message: format!("unsupported scheme {other:?} (use postgres:// or sqlite:)"),
            }),
        }
    }

    /// The database bounds from `database_timeout_secs`.
    pub fn database_deadlines(&self) -> crate::store::Deadlines {
        crate::store::Deadlines::from_timeout(std::time::Duration::from_secs(
            self.database_timeout_secs,
        ))
    }

    pub fn redis_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.redis_timeout_secs)
    }

    fn is_embedded_database(&self) -> bool {
        matches!(self.database_target(), Ok(DatabaseTarget::Sqlite(_)))
    }

    pub fn master_key_source(&self) -> Result<MasterKeySource, ConfigError> {
        Ok(match (&self.master_key, &self.master_key_file) {
            (Some(_), _) => MasterKeySource::Inline,
            (None, Some(path)) => MasterKeySource::File(path.clone()),
            (None, None) => MasterKeySource::Generated(self.data_dir.join("master.key")),
        })
    }

    /// The effective settings as TOML with every secret redacted, for `config check`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// Where audit anchors are appended (`audit_anchor_file`).
    pub fn audit_anchor_path(&self) -> PathBuf {
        self.audit_anchor_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-anchors.jsonl"))
    }

    /// A configuration for tests and benchmarks: everything under `data_dir`, port 0.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            log_level: "warn".into(),
            database_pool_size: 4,
            ..Self::default()
        }
    }
}

/// The PostgreSQL hosts `url` reaches over the network without `sslmode=verify-full`:
/// none for a Unix socket, loopback, or a verified TLS connection. Reads libpq's `host`
/// parameter (which overrides the URL's host, and may list several) as libpq does.
pub fn postgres_unverified_hosts(url: &Url) -> Vec<String> {
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("sslmode").as_deref() == Some("verify-full") {
        return Vec::new();
    }
    let hosts: Vec<String> = match param("host") {
        Some(list) => list.split(',').map(|h| h.trim().to_owned()).collect(),
        None => url.host_str().map(str::to_owned).into_iter().collect(),
    };
    hosts
        .into_iter()
        .filter(|h| {
            // Empty: libpq's default Unix socket; a path or `@name`: a Unix socket.
            let socket = h.is_empty() || h.starts_with('/') || h.starts_with('@');
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            !(socket || loopback)
        })
        .collect()
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn redact_secret<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

fn redact_url<S: Serializer>(value: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => s.serialize_str(redacted(url).as_str()),
        None => s.serialize_none(),
    }
}

/// Webhook URLs often carry their credential in the path (`/services/T0/B0/XXXX`):
/// only the origin is shown.
fn redact_webhook_url<S: Serializer>(value: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => s.serialize_str(&format!(
            "{}/[redacted]",
            url.origin().ascii_serialization()
        )),
        None => s.serialize_none(),
    }
}

/// The URL with its password replaced, for logs and `config check`.
pub fn redacted(url: &Url) -> Url {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    url
}
