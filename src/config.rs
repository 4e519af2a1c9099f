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
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use crate::crypto::MasterKey;

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
    /// Absent → in-process ephemeral state (one instance only).
    #[serde(serialize_with = "redact_url")]
    pub redis_url: Option<Url>,
    pub redis_key_prefix: String,
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
    /// Life of an OIDC authorization code.
    pub authorization_code_secs: u64,
    /// How often an instance reloads the signing keys (to follow `gatehouse keys rotate`).
    pub signing_key_reload_secs: u64,
    /// Clock difference tolerated on a SAML request's IssueInstant.
    pub saml_clock_skew_secs: u64,
    /// Life of a SAML assertion (Conditions and SubjectConfirmation NotOnOrAfter).
    pub saml_assertion_secs: u64,
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
            redis_url: None,
            redis_key_prefix: "gatehouse:".into(),
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
            authorization_code_secs: 60,
            signing_key_reload_secs: 60,
            saml_clock_skew_secs: 120,
            saml_assertion_secs: 300,
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
            audit_retention_days: 2192,
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

impl Config {
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

    /// Applies `GATEHOUSE_<KEY>` overrides; an unknown `GATEHOUSE_` variable is an error.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_IGNORED.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            self.set(&key.to_ascii_lowercase(), &value)
                .map_err(|e| match e {
                    SetError::Unknown => ConfigError::UnknownEnv { name: name.clone() },
                    SetError::Malformed(message) => ConfigError::Value {
                        source_name: "environment".into(),
                        key: name.clone(),
                        message,
                    },
                })?;
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), SetError> {
        fn parse<T: FromStr>(value: &str) -> Result<T, SetError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| SetError::Malformed(e.to_string()))
        }
        fn non_empty<T: FromStr>(value: &str) -> Result<Option<T>, SetError>
        where
            T::Err: std::fmt::Display,
        {
            if value.trim().is_empty() {
                Ok(None)
            } else {
                parse(value).map(Some)
            }
        }
        match key {
            "bind" => self.bind = parse(value)?,
            "tls" => self.tls = parse(value)?,
            "tls_cert" => self.tls_cert = non_empty(value)?,
            "tls_key" => self.tls_key = non_empty(value)?,
            "metrics_bind" => self.metrics_bind = non_empty(value)?,
            "metrics_token" => {
                self.metrics_token = (!value.trim().is_empty()).then(|| value.to_owned().into())
            }
            "issuer" => self.issuer = parse(value)?,
            "data_dir" => self.data_dir = parse(value)?,
            "database_url" => self.database_url = non_empty(value)?,
            "database_pool_size" => self.database_pool_size = parse(value)?,
            "redis_url" => self.redis_url = non_empty(value)?,
            "redis_key_prefix" => self.redis_key_prefix = value.to_owned(),
            "master_key" => {
                self.master_key = (!value.trim().is_empty()).then(|| value.to_owned().into())
            }
            "master_key_file" => self.master_key_file = non_empty(value)?,
            "trusted_proxies" => self.trusted_proxies = parse_ip_list(value)?,
            "smtp_url" => self.smtp_url = non_empty(value)?,
            "mail_from" => self.mail_from = value.to_owned(),
            "mail_poll_secs" => self.mail_poll_secs = parse(value)?,
            "mail_give_up_after_hours" => self.mail_give_up_after_hours = parse(value)?,
            "webhook_secret" => {
                self.webhook_secret = (!value.trim().is_empty()).then(|| value.to_owned().into())
            }
            "webhook_url" => self.webhook_url = non_empty(value)?,
            "access_token_secs" => self.access_token_secs = parse(value)?,
            "refresh_token_secs" => self.refresh_token_secs = parse(value)?,
            "authorization_code_secs" => self.authorization_code_secs = parse(value)?,
            "signing_key_reload_secs" => self.signing_key_reload_secs = parse(value)?,
            "saml_clock_skew_secs" => self.saml_clock_skew_secs = parse(value)?,
            "saml_assertion_secs" => self.saml_assertion_secs = parse(value)?,
            "log_level" => self.log_level = value.to_owned(),
            "log_format" => self.log_format = parse(value)?,
            "argon2_memory_kib" => self.argon2_memory_kib = parse(value)?,
            "argon2_iterations" => self.argon2_iterations = parse(value)?,
            "argon2_parallelism" => self.argon2_parallelism = parse(value)?,
            "hashing_workers" => self.hashing_workers = non_empty(value)?,
            "hashing_queue" => self.hashing_queue = parse(value)?,
            "ip_block_threshold" => self.ip_block_threshold = parse(value)?,
            "ip_block_window_secs" => self.ip_block_window_secs = parse(value)?,
            "ip_block_secs" => self.ip_block_secs = parse(value)?,
            "ip_allow_list" => self.ip_allow_list = parse_ip_list(value)?,
            "rate_limit_per_minute" => self.rate_limit_per_minute = parse(value)?,
            "rate_limit_burst" => self.rate_limit_burst = parse(value)?,
            "reset_token_minutes" => self.reset_token_minutes = parse(value)?,
            "invite_token_hours" => self.invite_token_hours = parse(value)?,
            "reset_ip_limit_per_hour" => self.reset_ip_limit_per_hour = parse(value)?,
            "reset_account_limit_per_hour" => self.reset_account_limit_per_hour = parse(value)?,
            "admin_username" => self.admin_username = value.to_owned(),
            "admin_email" => self.admin_email = value.to_owned(),
            "shutdown_timeout_secs" => self.shutdown_timeout_secs = parse(value)?,
            "audit_retention_days" => self.audit_retention_days = parse(value)?,
            _ => return Err(SetError::Unknown),
        }
        Ok(())
    }

    /// Checks that need more than one key, or the file system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        match self.issuer.scheme() {
            "https" => {}
            "http" if is_loopback_host(&self.issuer) => {}
            _ => return invalid("issuer", "must be an https URL".into()),
        }
        if self.issuer.query().is_some() || self.issuer.fragment().is_some() {
            return invalid("issuer", "must not have a query or fragment".into());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return invalid("tls_key", "tls_cert is set but tls_key is not".into());
            }
            (None, Some(_)) => {
                return invalid("tls_cert", "tls_key is set but tls_cert is not".into());
            }
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key)] {
                    if let Err(e) = std::fs::metadata(path) {
                        return invalid(
                            name,
                            format!("cannot read {}: {}", path.display(), e.kind()),
                        );
                    }
                }
            }
            (None, None) => {}
        }
        self.validate_metrics()?;
        self.database_target()?;
        if let Some(url) = &self.redis_url
            && !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix")
        {
            return invalid(
                "redis_url",
                format!("unsupported scheme {:?}", url.scheme()),
            );
        }
        if let Some(url) = &self.smtp_url
            && let Err(message) = crate::mail::smtp::SmtpTarget::from_url(url)
        {
            return invalid("smtp_url", message);
        }
        if let Err(e) = self.mail_from.parse::<lettre::message::Mailbox>() {
            return invalid(
                "mail_from",
                format!("not a mailbox such as \"Gatehouse <idp@example.org>\": {e}"),
            );
        }
        if self.mail_poll_secs == 0 {
            return invalid("mail_poll_secs", "must be at least 1".into());
        }
        for (key, value, max) in [
            ("access_token_secs", self.access_token_secs, 24 * 3600),
            (
                "refresh_token_secs",
                self.refresh_token_secs,
                365 * 24 * 3600,
            ),
            ("authorization_code_secs", self.authorization_code_secs, 600),
            (
                "signing_key_reload_secs",
                self.signing_key_reload_secs,
                3600,
            ),
            ("saml_clock_skew_secs", self.saml_clock_skew_secs, 600),
            ("saml_assertion_secs", self.saml_assertion_secs, 3600),
        ] {
            if value == 0 || value > max {
                return invalid(key, format!("must be between 1 and {max}"));
            }
        }
        if self.mail_give_up_after_hours == 0 {
            return invalid("mail_give_up_after_hours", "must be at least 1".into());
        }
        if let Some(url) = &self.webhook_url {
            match url.scheme() {
                "https" => {}
                "http" if is_loopback_host(url) => {}
                _ => return invalid("webhook_url", "must be an https URL".into()),
            }
            if self.webhook_secret.is_none() {
                // An unsigned security event is one anybody could forge.
                return invalid(
                    "webhook_secret",
                    "webhook_url is set but webhook_secret is not".into(),
                );
            }
        }
        if let Some(secret) = &self.webhook_secret
            && secret.expose_secret().len() < 16
        {
            return invalid("webhook_secret", "must be at least 16 characters".into());
        }
        // A link that outlives a day stops being a recovery step and becomes a standing
        // credential in someone's mailbox.
        if !(1..=24 * 60).contains(&self.reset_token_minutes) {
            return invalid("reset_token_minutes", "must be 1 to 1440".into());
        }
        if !(1..=24 * 30).contains(&self.invite_token_hours) {
            return invalid("invite_token_hours", "must be 1 to 720".into());
        }
        if self.reset_ip_limit_per_hour == 0 {
            return invalid("reset_ip_limit_per_hour", "must be at least 1".into());
        }
        if self.reset_account_limit_per_hour == 0 {
            return invalid("reset_account_limit_per_hour", "must be at least 1".into());
        }
        if self.audit_retention_days == 0 {
            return invalid("audit_retention_days", "must be at least 1".into());
        }
        if self.database_pool_size == 0 {
            return invalid("database_pool_size", "must be at least 1".into());
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return invalid(
                "master_key",
                "set either master_key or master_key_file, not both".into(),
            );
        }
        if let Some(key) = &self.master_key {
            MasterKey::from_base64(key.expose_secret()).map_err(|e| ConfigError::Invalid {
                key: "master_key",
                message: e.to_string(),
            })?;
        }
        if let Some(path) = &self.master_key_file
            && let Err(e) = std::fs::metadata(path)
        {
            return invalid(
                "master_key_file",
                format!("cannot read {}: {}", path.display(), e.kind()),
            );
        }
        if self.master_key_source()? == MasterKeySource::Generated(self.data_dir.join("master.key"))
            && !self.is_embedded_database()
        {
            // A key generated on one instance of a shared database would make every
            // other instance unable to open what this one seals.
            return invalid(
                "master_key",
                "a shared database needs a master key: set GATEHOUSE_MASTER_KEY or master_key_file"
                    .into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return invalid("log_level", e.to_string());
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1)
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            return invalid(
                "argon2_memory_kib",
                "argon2 needs iterations ≥ 1, parallelism ≥ 1 and memory ≥ 8 KiB per lane".into(),
            );
        }
        Ok(())
    }

    /// `/metrics` must never share the public listener unguarded (issue 20, item 15).
    fn validate_metrics(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if let Some(token) = &self.metrics_token
            && token.expose_secret().trim().len() < 16
        {
            return invalid("metrics_token", "must be at least 16 characters");
        }
        if let Some(token) = &self.metrics_token
            && token.expose_secret().trim() != token.expose_secret()
        {
            return invalid("metrics_token", "must not start or end with whitespace");
        }
        if let Some(addr) = self.metrics_bind {
            let same_ip = addr.ip() == self.bind.ip()
                || addr.ip().is_unspecified()
                || self.bind.ip().is_unspecified();
            if addr.port() != 0 && addr.port() == self.bind.port() && same_ip {
                return invalid(
                    "metrics_bind",
                    "must be another address than bind: the public listener never serves the internal one's /metrics",
                );
            }
        }
        Ok(())
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

enum SetError {
    Unknown,
    Malformed(String),
}

fn parse_ip_list(value: &str) -> Result<Vec<IpNet>, SetError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_ip_net)
        .collect::<Result<_, _>>()
        .map_err(SetError::Malformed)
}

/// A CIDR, or a lone address meaning just that host.
fn parse_ip_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
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

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)] // each test changes one thing from the default
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_default() {
        let c = Config::default();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8443");
        assert_eq!(c.issuer.as_str(), "https://localhost:8443/");
        assert!(c.validate().is_ok());
        assert_eq!(
            c.database_target().unwrap(),
            DatabaseTarget::Sqlite(PathBuf::from("./gatehouse-data/gatehouse.db"))
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c =
            Config::from_toml_str("bind = \"0.0.0.0:9000\"\n", Path::new("t.toml")).unwrap();
        c.apply_env(env(&[
            ("GATEHOUSE_BIND", "127.0.0.1:9443"),
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("PATH", "/usr/bin"),
            ("GATEHOUSE_TEST_DATABASE_URL", "postgres://x"),
        ]))
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9443");
        assert_eq!(c.trusted_proxies.len(), 2);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = Config::from_toml_str("bnid = \"x\"\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }

    #[test]
    fn malformed_file_value_names_its_key() {
        let err =
            Config::from_toml_str("issuer = \"not a url\"\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }

    #[test]
    fn toml_syntax_error_is_one_line_with_its_line_number() {
        let err = Config::from_toml_str("tls = true\nbind = \n", Path::new("t.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn unknown_environment_variable_is_named() {
        let err = Config::default()
            .apply_env(env(&[("GATEHOUSE_BINDD", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("GATEHOUSE_BINDD"));
    }

    #[test]
    fn malformed_environment_value_is_named() {
        let err = Config::default()
            .apply_env(env(&[("GATEHOUSE_DATABASE_POOL_SIZE", "many")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("GATEHOUSE_DATABASE_POOL_SIZE"),
            "{err}"
        );
    }

    #[test]
    fn master_key_of_the_wrong_length_is_refused() {
        let mut c = Config::default();
        c.apply_env(env(&[("GATEHOUSE_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAA==")]))
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("master_key:"), "{err}");
    }

    #[test]
    fn shared_database_without_master_key_is_refused() {
        let mut c = Config::default();
        c.database_url = Some(Url::parse("postgres://db/gatehouse").unwrap());
        assert!(c.validate().unwrap_err().to_string().contains("master key"));
    }

    #[test]
    fn missing_certificate_file_is_named() {
        let mut c = Config::default();
        c.tls_cert = Some("/nonexistent/cert.pem".into());
        c.tls_key = Some("/nonexistent/key.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("tls_cert") && err.contains("/nonexistent/cert.pem"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_issuer_is_refused_off_loopback() {
        let mut c = Config::default();
        c.issuer = Url::parse("http://idp.example.org").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn redacted_settings_hide_passwords_and_keys() {
        let mut c = Config::default();
        c.database_url = Some(Url::parse("postgres://gh:hunter2@db/gatehouse").unwrap());
        c.master_key = Some(
            "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
                .to_owned()
                .into(),
        );
        let text = c.redacted_toml();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn redacted_settings_hide_the_webhook_secret_and_path() {
        let mut c = Config::default();
        c.webhook_secret = Some("whsec-0123456789abcdef".to_owned().into());
        c.webhook_url = Some(Url::parse("https://hooks.example.org/T0/B0/tok3n").unwrap());
        c.smtp_url = Some(Url::parse("smtp://mailer:p%40ss@mail.example.org:587").unwrap());
        assert!(c.validate().is_ok());
        let text = c.redacted_toml();
        for secret in ["whsec-0123456789abcdef", "tok3n", "p%40ss"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("https://hooks.example.org/[redacted]"),
            "{text}"
        );
    }

    #[test]
    fn webhook_url_without_a_secret_is_refused() {
        let mut c = Config::default();
        c.webhook_url = Some(Url::parse("https://hooks.example.org/in").unwrap());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("webhook_secret:"), "{err}");
        c.webhook_secret = Some("short".to_owned().into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("webhook_secret:"), "{err}");
    }

    #[test]
    fn plain_http_webhook_is_refused_off_loopback() {
        let mut c = Config::default();
        c.webhook_secret = Some("whsec-0123456789abcdef".to_owned().into());
        c.webhook_url = Some(Url::parse("http://hooks.example.org/in").unwrap());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("webhook_url:")
        );
        c.webhook_url = Some(Url::parse("http://127.0.0.1:9000/in").unwrap());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn mail_settings_are_checked_and_named() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("GATEHOUSE_MAIL_POLL_SECS", "2"),
            ("GATEHOUSE_MAIL_GIVE_UP_AFTER_HOURS", "24"),
        ]))
        .unwrap();
        assert_eq!((c.mail_poll_secs, c.mail_give_up_after_hours), (2, 24));
        c.smtp_url = Some(Url::parse("smtp://mail.example.org?tls=maybe").unwrap());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("smtp_url:")
        );
        c.smtp_url = None;
        c.mail_from = "not a mailbox".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("mail_from:")
        );
        c.mail_from = "Gatehouse <idp@example.org>".into();
        c.mail_poll_secs = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("mail_poll_secs:")
        );
    }

    #[test]
    fn audit_retention_defaults_to_six_years_and_can_be_overridden() {
        let mut c = Config::default();
        assert_eq!(c.audit_retention_days, 2192);
        c.apply_env(env(&[("GATEHOUSE_AUDIT_RETENTION_DAYS", "3650")]))
            .unwrap();
        assert_eq!(c.audit_retention_days, 3650);
        c.audit_retention_days = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("audit_retention_days:"), "{err}");
    }

    #[test]
    fn recovery_settings_default_to_design_and_are_bounded() {
        let mut c = Config::default();
        assert_eq!((c.reset_token_minutes, c.invite_token_hours), (30, 72));
        c.apply_env(env(&[
            ("GATEHOUSE_RESET_TOKEN_MINUTES", "15"),
            ("GATEHOUSE_INVITE_TOKEN_HOURS", "24"),
            ("GATEHOUSE_RESET_IP_LIMIT_PER_HOUR", "500"),
            ("GATEHOUSE_RESET_ACCOUNT_LIMIT_PER_HOUR", "5"),
        ]))
        .unwrap();
        assert_eq!((c.reset_token_minutes, c.invite_token_hours), (15, 24));
        assert_eq!(
            (c.reset_ip_limit_per_hour, c.reset_account_limit_per_hour),
            (500, 5)
        );
        assert!(c.validate().is_ok());
        c.reset_token_minutes = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("reset_token_minutes:"), "{err}");
        c.reset_token_minutes = 30;
        c.invite_token_hours = 10_000;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("invite_token_hours:"), "{err}");
    }

    #[test]
    fn metrics_settings_come_from_the_environment_and_are_checked() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("GATEHOUSE_METRICS_BIND", "127.0.0.1:9464"),
            ("GATEHOUSE_METRICS_TOKEN", "scrape-0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(
            c.metrics_bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert!(c.validate().is_ok());
        assert!(!c.redacted_toml().contains("scrape-0123456789abcdef"));
        c.metrics_token = Some("short".to_owned().into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("metrics_token:"), "{err}");
        c.metrics_token = None;
        c.metrics_bind = Some(SocketAddr::from(([0, 0, 0, 0], 8443)));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("metrics_bind:"), "{err}");
        let err = Config::default()
            .apply_env(env(&[("GATEHOUSE_METRICS_BIND", "port 9464")]))
            .unwrap_err();
        assert!(err.to_string().contains("GATEHOUSE_METRICS_BIND"), "{err}");
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        let mut c = Config::default();
        c.database_url = Some(Url::parse("sqlite:/var/lib/gh/gh.db").unwrap());
        assert_eq!(
            c.database_target().unwrap(),
            DatabaseTarget::Sqlite("/var/lib/gh/gh.db".into())
        );
        c.database_url = Some(Url::parse("mysql://db/x").unwrap());
        assert!(c.database_target().is_err());
    }
}
