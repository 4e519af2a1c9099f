//! Loading, overriding and checking settings.

#![allow(clippy::field_reassign_with_default)] // each test changes one thing from the default

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
    let mut c = Config::from_toml_str("bind = \"0.0.0.0:9000\"\n", Path::new("t.toml")).unwrap();
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
    let err = Config::from_toml_str("issuer = \"not a url\"\n", Path::new("t.toml")).unwrap_err();
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
    c.audit_retention_days = 364;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("audit_retention_days: must be at least 365"),
        "{err}"
    );
    c.audit_retention_days = 365;
    c.validate().unwrap();
}

#[test]
fn audit_anchors_default_to_five_minutes_in_the_data_directory() {
    let mut c = Config::default();
    assert_eq!(c.audit_anchor_secs, 300);
    assert!(!c.audit_anchor_syslog);
    assert_eq!(
        c.audit_anchor_path(),
        c.data_dir.join("audit-anchors.jsonl")
    );
    c.apply_env(env(&[
        ("GATEHOUSE_AUDIT_ANCHOR_SECS", "0"),
        (
            "GATEHOUSE_AUDIT_ANCHOR_FILE",
            "/var/log/gatehouse/anchors.jsonl",
        ),
        ("GATEHOUSE_AUDIT_ANCHOR_SYSLOG", "true"),
    ]))
    .unwrap();
    assert_eq!(c.audit_anchor_secs, 0);
    assert!(c.audit_anchor_syslog);
    assert_eq!(
        c.audit_anchor_path(),
        std::path::PathBuf::from("/var/log/gatehouse/anchors.jsonl")
    );
    c.validate().unwrap();
    c.audit_anchor_secs = 86_401;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.starts_with("audit_anchor_secs:"), "{err}");
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

#[test]
fn a_postgres_off_this_host_needs_verified_tls_unless_the_operator_opts_out() {
    let with = |url: &str| {
        let mut c = Config::default();
        c.database_url = Some(Url::parse(url).unwrap());
        c.apply_env(env(&[(
            "GATEHOUSE_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )]))
        .unwrap();
        c
    };
    for fine in [
        "postgres://gh@127.0.0.1:5432/gh?sslmode=disable",
        "postgres://gh@localhost/gh",
        "postgres://gh@[::1]:5432/gh",
        "postgres:///gh?host=/var/run/postgresql",
        "postgres://gh@db.example.org/gh?sslmode=verify-full",
        "postgresql://gh@10.0.0.5,10.0.0.6/gh?sslmode=verify-full",
    ] {
        assert!(with(fine).validate().is_ok(), "{fine}");
    }
    for refused in [
        "postgres://gh@db.example.org/gh",
        "postgres://gh@db.example.org/gh?sslmode=require",
        "postgres://gh@db.example.org/gh?sslmode=verify-ca",
        "postgres://gh@10.0.0.5:5432/gh?sslmode=prefer",
        // libpq's `host` parameter wins over the URL's host.
        "postgres://gh@localhost/gh?host=db.example.org",
        "postgres://gh@localhost/gh?host=/run/postgresql,db.example.org",
    ] {
        let err = with(refused).validate().unwrap_err().to_string();
        assert!(
            err.contains("database_url") && err.contains("sslmode=verify-full"),
            "{refused}: {err}"
        );
        assert!(!err.contains("gh@"), "no credentials in the message: {err}");
        let mut c = with(refused);
        c.database_require_tls = false;
        assert!(c.validate().is_ok(), "{refused} with the opt-out");
    }
    let mut c = Config::default();
    c.apply_env(env(&[("GATEHOUSE_DATABASE_REQUIRE_TLS", "false")]))
        .unwrap();
    assert!(!c.database_require_tls);
}
