//! `GATEHOUSE_*` environment overrides: one variable per key, parsed into its type.

use std::str::FromStr;

use ipnet::IpNet;
use secrecy::SecretString;

use super::{Config, ConfigError, ENV_IGNORED, ENV_PREFIX};

impl Config {
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

    /// Sets `key` (lower case, no prefix) from the environment's `value`.
    fn set(&mut self, key: &str, value: &str) -> Result<(), SetError> {
        if self.set_service(key, value)?
            || self.set_lives(key, value)?
            || self.set_guard(key, value)?
        {
            Ok(())
        } else {
            Err(SetError::Unknown)
        }
    }

    /// Listeners, storage, secrets and mail. False: not one of these keys.
    fn set_service(&mut self, key: &str, value: &str) -> Result<bool, SetError> {
        match key {
            "bind" => self.bind = parse(value)?,
            "tls" => self.tls = parse(value)?,
            "tls_cert" => self.tls_cert = non_empty(value)?,
            "tls_key" => self.tls_key = non_empty(value)?,
            "metrics_bind" => self.metrics_bind = non_empty(value)?,
            "metrics_token" => self.metrics_token = secret(value),
            "issuer" => self.issuer = parse(value)?,
            "data_dir" => self.data_dir = parse(value)?,
            "database_url" => self.database_url = non_empty(value)?,
            "database_pool_size" => self.database_pool_size = parse(value)?,
            "database_require_tls" => self.database_require_tls = parse(value)?,
            "database_timeout_secs" => self.database_timeout_secs = parse(value)?,
            "redis_url" => self.redis_url = non_empty(value)?,
            "redis_key_prefix" => self.redis_key_prefix = value.to_owned(),
            "redis_timeout_secs" => self.redis_timeout_secs = parse(value)?,
            "master_key" => self.master_key = secret(value),
            "master_key_file" => self.master_key_file = non_empty(value)?,
            "trusted_proxies" => self.trusted_proxies = parse_ip_list(value)?,
            "smtp_url" => self.smtp_url = non_empty(value)?,
            "mail_from" => self.mail_from = value.to_owned(),
            "mail_poll_secs" => self.mail_poll_secs = parse(value)?,
            "mail_give_up_after_hours" => self.mail_give_up_after_hours = parse(value)?,
            "webhook_secret" => self.webhook_secret = secret(value),
            "webhook_url" => self.webhook_url = non_empty(value)?,
            "log_level" => self.log_level = value.to_owned(),
            "log_format" => self.log_format = parse(value)?,
            "admin_username" => self.admin_username = value.to_owned(),
            "admin_email" => self.admin_email = value.to_owned(),
            "shutdown_timeout_secs" => self.shutdown_timeout_secs = parse(value)?,
            "saml_metadata_allow_local" => self.saml_metadata_allow_local = parse(value)?,
            "dpop_nonce_required" => self.dpop_nonce_required = parse(value)?,
            "audit_anchor_file" => self.audit_anchor_file = non_empty(value)?,
            "audit_anchor_syslog" => self.audit_anchor_syslog = parse(value)?,
            "cli_require_actor" => self.cli_require_actor = parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// How long tokens, links, keys and records live. False: not one of these keys.
    fn set_lives(&mut self, key: &str, value: &str) -> Result<bool, SetError> {
        match key {
            "access_token_secs" => self.access_token_secs = parse(value)?,
            "refresh_token_secs" => self.refresh_token_secs = parse(value)?,
            "public_client_refresh_secs" => self.public_client_refresh_secs = parse(value)?,
            "authorization_code_secs" => self.authorization_code_secs = parse(value)?,
            "signing_key_reload_secs" => self.signing_key_reload_secs = parse(value)?,
            "master_key_poll_secs" => self.master_key_poll_secs = parse(value)?,
            "saml_clock_skew_secs" => self.saml_clock_skew_secs = parse(value)?,
            "saml_assertion_secs" => self.saml_assertion_secs = parse(value)?,
            "saml_metadata_valid_days" => self.saml_metadata_valid_days = parse(value)?,
            "saml_metadata_refresh_secs" => self.saml_metadata_refresh_secs = parse(value)?,
            "saml_scope" => self.saml_scope = non_empty(value)?,
            "reset_token_minutes" => self.reset_token_minutes = parse(value)?,
            "invite_token_hours" => self.invite_token_hours = parse(value)?,
            "audit_retention_days" => self.audit_retention_days = parse(value)?,
            "audit_anchor_secs" => self.audit_anchor_secs = parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Password hashing, the brute-force guard and rate limits. False: not one of these.
    fn set_guard(&mut self, key: &str, value: &str) -> Result<bool, SetError> {
        match key {
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
            "reset_ip_limit_per_hour" => self.reset_ip_limit_per_hour = parse(value)?,
            "reset_account_limit_per_hour" => self.reset_account_limit_per_hour = parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn parse<T: FromStr>(value: &str) -> Result<T, SetError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| SetError::Malformed(e.to_string()))
}

/// Empty (or blank): unset.
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

/// A secret as given (not trimmed); blank: unset.
fn secret(value: &str) -> Option<SecretString> {
    (!value.trim().is_empty()).then(|| value.to_owned().into())
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
