//! Checks that need more than one key, or the file system: run once after loading.

use secrecy::ExposeSecret;

use super::{Config, ConfigError, MasterKeySource, is_loopback_host, postgres_unverified_hosts};
use crate::crypto::MasterKey;

impl Config {
    /// Checks that need more than one key, or the file system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_all(false)
    }

    /// As [`Self::validate`], for `keys init-master`, which creates the master key
    /// file: it need not exist yet, nor be configured with a shared database.
    pub fn validate_creating_key_file(&self) -> Result<(), ConfigError> {
        self.validate_all(true)
    }

    fn validate_all(&self, creating_key_file: bool) -> Result<(), ConfigError> {
        self.validate_listening()?;
        self.validate_metrics()?;
        self.database_target()?;
        self.validate_redis()?;
        self.validate_mail()?;
        self.validate_lifetimes()?;
        self.validate_master_key(creating_key_file)?;
        self.validate_database_tls()?;
        self.validate_work()
    }

    /// The public URL and the TLS files.
    fn validate_listening(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Issue 27: a PostgreSQL off this host only over verified TLS, unless the operator
    /// said otherwise (then `startup` warns at every start).
    fn validate_database_tls(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.database_url else {
            return Ok(());
        };
        if !matches!(url.scheme(), "postgres" | "postgresql") || !self.database_require_tls {
            return Ok(());
        }
        let hosts = postgres_unverified_hosts(url);
        if hosts.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "database_url",
            message: format!(
                "PostgreSQL at {} is not on this host: add sslmode=verify-full (TLS, with the \
                 server's certificate and name checked), or set database_require_tls = false \
                 to accept a connection that is not verified",
                hosts.join(", ")
            ),
        })
    }

    /// The ephemeral store.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Some(url) = &self.redis_url
            && !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix")
        {
            return invalid(
                "redis_url",
                format!("unsupported scheme {:?}", url.scheme()),
            );
        }
        Ok(())
    }

    /// Outbound mail and the security-event webhook.
    fn validate_mail(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
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
        Ok(())
    }

    /// How long tokens and links live, and the limits on requests and dependencies.
    fn validate_lifetimes(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        for (key, value, max) in [
            ("access_token_secs", self.access_token_secs, 24 * 3600),
            (
                "refresh_token_secs",
                self.refresh_token_secs,
                365 * 24 * 3600,
            ),
            (
                "public_client_refresh_secs",
                self.public_client_refresh_secs,
                365 * 24 * 3600,
            ),
            ("authorization_code_secs", self.authorization_code_secs, 600),
            (
                "signing_key_reload_secs",
                self.signing_key_reload_secs,
                3600,
            ),
            ("master_key_poll_secs", self.master_key_poll_secs, 3600),
            ("saml_clock_skew_secs", self.saml_clock_skew_secs, 600),
            ("saml_assertion_secs", self.saml_assertion_secs, 3600),
            (
                "saml_metadata_valid_days",
                u64::from(self.saml_metadata_valid_days),
                365,
            ),
        ] {
            if value == 0 || value > max {
                return invalid(key, format!("must be between 1 and {max}"));
            }
        }
        if let Some(scope) = &self.saml_scope
            && !crate::domain::valid_scope(scope)
        {
            return invalid(
                "saml_scope",
                "must be a domain name (letters, digits, . and -, at most 127)".into(),
            );
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
        if self.audit_retention_days < crate::audit::MIN_RETENTION_DAYS {
            return invalid(
                "audit_retention_days",
                format!(
                    "must be at least {} (one year: ONC 170.315 (d)(10) expects the audit trail kept at least that long)",
                    crate::audit::MIN_RETENTION_DAYS
                ),
            );
        }
        // Anchors further apart than a day leave a day's newest events deletable
        // unnoticed (0 turns anchoring off, knowingly).
        if self.audit_anchor_secs > 24 * 3600 {
            return invalid(
                "audit_anchor_secs",
                "must be at most 86400 (one day), or 0 to turn anchoring off".into(),
            );
        }
        // Long enough for any statement a request makes; short enough that a stalled
        // dependency is a quick 503, not a hung request.
        for (key, value) in [
            ("database_timeout_secs", self.database_timeout_secs),
            ("redis_timeout_secs", self.redis_timeout_secs),
        ] {
            if !(1..=60).contains(&value) {
                return invalid(key, "must be between 1 and 60".into());
            }
        }
        if self.database_pool_size == 0 {
            return invalid("database_pool_size", "must be at least 1".into());
        }
        Ok(())
    }

    /// The master key: one source, readable, and shared whenever the database is.
    fn validate_master_key(&self, creating_key_file: bool) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
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
        if creating_key_file {
            return Ok(());
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
        Ok(())
    }

    /// Logging filters and password hashing cost.
    fn validate_work(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
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
}
