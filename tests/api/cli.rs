//! The binary as an operator runs it: first start, second start, bad configuration,
//! `config check`, `migrate`, graceful stop.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::client;

pub fn gatehouse(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env("GATEHOUSE_BIND", "127.0.0.1:0")
        .env("GATEHOUSE_LOG_LEVEL", "warn")
        // Whom the trail names for CLI actions (issue 26): `cli:ops-alice@<host>`.
        .env("USER", OPERATOR);
    cmd
}

/// The operating-system user the CLI runs as in these tests.
pub const OPERATOR: &str = "ops-alice";

/// Whether `actor` is the tests' operator at the command line: `cli:ops-alice@<host>`,
/// never a bare `cli`.
pub fn by_operator(actor: &serde_json::Value) -> bool {
    actor
        .as_str()
        .is_some_and(|a| a.starts_with(&format!("cli:{OPERATOR}@")) && a.len() > 15)
}

/// Starts `serve` and reads stdout up to the "listening" line.
fn serve(data_dir: &Path) -> (Child, Vec<String>, String) {
    serve_with(gatehouse(data_dir))
}

/// Starts `serve` from a prepared command; returns the child, the stdout lines up to
/// and including "listening", and the base URL.
pub fn serve_with(mut cmd: Command) -> (Child, Vec<String>, String) {
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut base = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("Gatehouse listening on ") {
            base = url.to_owned();
            lines.push(line);
            break;
        }
        lines.push(line);
    }
    assert!(!base.is_empty(), "no listening line; stdout was {lines:?}");
    (child, lines, base)
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("server did not stop within 10 s of SIGTERM");
}

#[tokio::test]
async fn first_start_creates_an_admin_once_and_second_start_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, base) = serve(dir.path());
    let banner = lines.join("\n");
    assert!(
        banner.contains("created administrator 'admin' with one-time password: "),
        "{banner}"
    );
    // Read to the end: an unfinished response is an in-flight request that a graceful
    // stop rightly waits for.
    let status = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(
        terminate(&mut child).success(),
        "SIGTERM stops gracefully with status 0"
    );

    for file in [
        "gatehouse.db",
        "master.key",
        "tls/cert.pem",
        "tls/key.sealed",
    ] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    // The TLS private key lies sealed under the master key, never in clear.
    assert!(!dir.path().join("tls/key.pem").exists());
    let sealed = std::fs::read_to_string(dir.path().join("tls/key.sealed")).unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains("PRIVATE KEY"));
    #[cfg(unix)]
    for private in ["master.key", "tls/key.sealed"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is readable by others: {mode:o}");
    }
    let key_before = std::fs::read(dir.path().join("master.key")).unwrap();
    let cert_before = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();

    let (mut child, lines, base) = serve(dir.path());
    assert!(
        !lines.join("\n").contains("password"),
        "second start printed {lines:?}"
    );
    assert_eq!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    terminate(&mut child);
    assert_eq!(
        std::fs::read(dir.path().join("master.key")).unwrap(),
        key_before
    );
    assert_eq!(
        std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
        cert_before
    );
}

/// Runs a command expected to fail on configuration; returns its stderr.
fn config_failure(cmd: &mut Command) -> String {
    let out = cmd.arg("serve").output().unwrap();
    assert!(!out.status.success(), "should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");

    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nlisten_addr = \"x\"\n").unwrap();
    let err = config_failure(gatehouse(dir.path()).arg("--config").arg(&file));
    assert!(err.contains("listen_addr"), "{err}");

    let err = config_failure(gatehouse(dir.path()).env("GATEHOUSE_ISSUER", "not a url"));
    assert!(err.contains("GATEHOUSE_ISSUER"), "{err}");

    let err =
        config_failure(gatehouse(dir.path()).env("GATEHOUSE_DATABASE_URL", "postgres//broken"));
    assert!(err.contains("GATEHOUSE_DATABASE_URL"), "{err}");

    let err = config_failure(
        gatehouse(dir.path())
            .env("GATEHOUSE_TLS_CERT", "/nonexistent/cert.pem")
            .env("GATEHOUSE_TLS_KEY", "/nonexistent/key.pem"),
    );
    assert!(
        err.contains("tls_cert") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );

    let err = config_failure(gatehouse(dir.path()).env("GATEHOUSE_MASTER_KEY", "c2hvcnQ="));
    assert!(
        err.contains("master_key") && err.contains("32 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("c2hvcnQ="),
        "the key itself is never echoed: {err}"
    );

    let err = config_failure(gatehouse(dir.path()).env("GATEHOUSE_BIMD", "127.0.0.1:1"));
    assert!(err.contains("GATEHOUSE_BIMD"), "{err}");

    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "nothing was created on bad config"
    );
}

#[test]
fn config_check_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
    let out = gatehouse(dir.path())
        .env("GATEHOUSE_MASTER_KEY", key)
        .env("GATEHOUSE_REDIS_URL", "redis://:s3cret-pass@127.0.0.1:6379")
        .env("GATEHOUSE_SMTP_URL", "smtp://gh:smtp-pass@mail.example.org")
        .env("GATEHOUSE_WEBHOOK_SECRET", "whsec-hook-secret-1234")
        .env(
            "GATEHOUSE_WEBHOOK_URL",
            "https://hooks.example.org/T0/path-token",
        )
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bind = \"127.0.0.1:0\""), "{text}");
    for secret in [
        key,
        "s3cret-pass",
        "smtp-pass",
        "whsec-hook-secret-1234",
        "path-token",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("[redacted]"));
}

#[test]
fn migrate_applies_then_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = gatehouse(dir.path()).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("gatehouse.db").exists());
}

fn create_user_cmd(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = gatehouse(dir)
        .args(["user", "create"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn user_create_makes_an_account_that_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--username",
        "Rosa",
        "--email",
        "rosa@example.org",
        "--password-stdin",
        "--json",
    ];
    let out = create_user_cmd(dir.path(), &args, "Quiet-Harbour-42\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["username"], "rosa");
    assert_eq!(json["org"], "default");
    assert_eq!(json["role"], "user");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Quiet-Harbour-42"));

    let again = create_user_cmd(dir.path(), &args, "Quiet-Harbour-42\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let weak = create_user_cmd(
        dir.path(),
        &[
            "--username",
            "sam",
            "--email",
            "sam@example.org",
            "--password-stdin",
        ],
        "password\n",
    );
    assert!(!weak.status.success());
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(
        err.contains("upper-case") && err.contains("too common"),
        "{err}"
    );
    assert!(!err.contains("password\n"));

    let no_stdin = gatehouse(dir.path())
        .args([
            "user",
            "create",
            "--username",
            "tom",
            "--email",
            "tom@example.org",
        ])
        .output()
        .unwrap();
    assert!(!no_stdin.status.success());
    assert!(String::from_utf8_lossy(&no_stdin.stderr).contains("--password-stdin"));

    let bad_role = create_user_cmd(
        dir.path(),
        &[
            "--username",
            "uma",
            "--email",
            "uma@example.org",
            "--role",
            "root",
            "--password-stdin",
        ],
        "Quiet-Harbour-42\n",
    );
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("--role"));

    // The server on the same data directory signs the new user in.
    let mut config = gatehouse::config::Config::for_tests(dir.path().to_owned());
    config.log_level = "warn".into();
    let app = crate::helpers::spawn_with_config(
        config,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
    )
    .await;
    let res = app
        .sign_in(&app.new_client(), "rosa", "Quiet-Harbour-42")
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
}

#[tokio::test]
async fn unlock_and_remove_totp_work_from_the_command_line() {
    use gatehouse::clock::Clock;
    let dir = tempfile::tempdir().unwrap();
    let out = create_user_cmd(
        dir.path(),
        &[
            "--username",
            "lou",
            "--email",
            "lou@example.org",
            "--password-stdin",
        ],
        "Quiet-Harbour-42\n",
    );
    assert!(out.status.success());
    let mut config = gatehouse::config::Config::for_tests(dir.path().to_owned());
    config.rate_limit_burst = 1000;
    let app = crate::helpers::spawn_with_config(
        config,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
    )
    .await;
    let client = app.new_client();
    app.sign_in(&client, "lou", "Quiet-Harbour-42").await;
    let (secret, _) = app.enrol_totp(&client).await;
    assert!(!secret.is_empty());
    for _ in 0..5 {
        app.sign_in(&app.new_client(), "lou", "Wrong-Harbour-42")
            .await;
    }
    let locked = app
        .sign_in(&app.new_client(), "lou", "Quiet-Harbour-42")
        .await;
    assert!(locked.text().await.unwrap().contains("locked"));

    let out = gatehouse(dir.path())
        .args(["user", "unlock", "LOU", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["was_locked"], true);
    let res = app
        .sign_in(&app.new_client(), "lou", "Quiet-Harbour-42")
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login/otp"),
        "unlocked; the code step follows"
    );

    let out = gatehouse(dir.path())
        .args(["user", "remove-totp", "lou"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = app.clock.now();
    let res = app
        .sign_in(&app.new_client(), "lou", "Quiet-Harbour-42")
        .await;
    assert_eq!(
        res.headers()["location"],
        "/account",
        "no second step after removal"
    );

    let out = gatehouse(dir.path())
        .args(["ip", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = gatehouse(dir.path())
        .args(["ip", "unblock", "203.0.113.1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing to unblock");
}

/// DESIGN §11, §12: a known password, a wrong guess, a reset token and the new password,
/// used through the real binary with debug logging, appear nowhere in clear: not in its
/// output, not in the audit export, not in the database file.
#[tokio::test]
async fn known_passwords_and_a_reset_token_never_reach_logs_audit_or_database() {
    const PASSWORD: &str = "Known-Secret-Pass-31";
    const WRONG: &str = "Wrong-Guess-Pass-77";
    const NEW: &str = "Fresh-Chosen-Pass-58";
    let dir = tempfile::tempdir().unwrap();
    let created = create_user_cmd(
        dir.path(),
        &[
            "--username",
            "nora",
            "--email",
            "nora@example.org",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(created.status.success(), "{created:?}");

    let stdout_path = dir.path().join("server.out");
    let stderr_path = dir.path().join("server.err");
    let mut child = gatehouse(dir.path())
        .env("GATEHOUSE_LOG_LEVEL", "debug")
        .arg("serve")
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("binary runs");
    let mut base = String::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("Gatehouse listening on "))
        {
            base = line
                .trim_start_matches("Gatehouse listening on ")
                .to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!base.is_empty(), "the server did not start");
    // Forms are checked against the configured issuer (the default), not the address.
    let origin = "https://localhost:8443";
    let post = |client: &reqwest::Client, path: &str, form: Vec<(&str, String)>| {
        client
            .post(format!("{base}{path}"))
            .header("Origin", origin)
            .form(&form)
            .send()
    };
    let sign_in = |password: &'static str| {
        let base = base.clone();
        async move {
            let browser = client();
            let res = browser.get(format!("{base}/login")).send().await.unwrap();
            let location = res.headers()["location"].to_str().unwrap().to_owned();
            let html = browser
                .get(format!("{base}{location}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            browser
                .post(format!("{base}/login"))
                .header("Origin", origin)
                .form(&[
                    ("tx", crate::helpers::hidden(&html, "tx")),
                    ("csrf", crate::helpers::hidden(&html, "csrf")),
                    ("username", "nora".into()),
                    ("password", password.into()),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(sign_in(WRONG).await, 401);
    assert_eq!(sign_in(PASSWORD).await, 303);

    // A reset link, from the .eml the embedded default writes.
    let browser = client();
    let page = browser.get(format!("{base}/reset")).send().await.unwrap();
    let csrf = crate::helpers::hidden(&page.text().await.unwrap(), "csrf");
    let res = post(
        &browser,
        "/reset",
        vec![("csrf", csrf), ("login", "nora".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let outbox = dir.path().join("outbox");
    let mut token = String::new();
    for _ in 0..150 {
        if let Ok(entries) = std::fs::read_dir(&outbox) {
            for entry in entries.flatten() {
                let raw = std::fs::read(entry.path()).unwrap();
                let Some(message) = mail_parser::MessageParser::default().parse(&raw) else {
                    continue;
                };
                let text = message.body_text(0).unwrap_or_default().to_string();
                if let Some(i) = text.find("/reset/") {
                    token = text[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                }
            }
        }
        if !token.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(token.len(), 43, "a reset link was written to the outbox");
    let path = format!("/reset/{token}");
    let page = browser.get(format!("{base}{path}")).send().await.unwrap();
    let csrf = crate::helpers::hidden(&page.text().await.unwrap(), "csrf");
    let res = post(
        &browser,
        &path,
        vec![
            ("csrf", csrf),
            ("new_password", NEW.into()),
            ("confirm_password", NEW.into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "the new password was accepted");
    assert_eq!(sign_in(NEW).await, 303);
    assert!(terminate(&mut child).success());

    let export = gatehouse(dir.path())
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(export.status.success());
    let mut haystacks = vec![
        ("server stdout", std::fs::read(&stdout_path).unwrap()),
        ("server stderr", std::fs::read(&stderr_path).unwrap()),
        ("audit export", export.stdout),
    ];
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("gatehouse.db") || name.ends_with(".db") || name.ends_with("-wal") {
            haystacks.push(("database file", std::fs::read(entry.path()).unwrap()));
        }
    }
    assert!(
        haystacks.iter().any(|(what, _)| *what == "database file"),
        "the SQLite database was found"
    );
    // The log is really there, so its silence below means something: the reset's
    // access line (by route pattern, never the path with its token), and the line the
    // server logs as it stops, written out before the process ended.
    let server_log = String::from_utf8_lossy(&haystacks[1].1);
    assert!(
        server_log.contains(r#""route":"/reset/{token:.*}""#),
        "the reset's access line was logged: {server_log}"
    );
    assert!(
        server_log.contains(r#""message":"stopped","target":"gatehouse"}"#),
        "the stop was logged: {server_log}"
    );
    let audit_lines = String::from_utf8_lossy(&haystacks[2].1).lines().count();
    assert!(
        audit_lines >= 4,
        "the flow was audited ({audit_lines} events)"
    );
    for (what, bytes) in &haystacks {
        let text = String::from_utf8_lossy(bytes);
        for secret in [PASSWORD, WRONG, NEW, token.as_str()] {
            assert!(!text.contains(secret), "{secret:?} found in {what}");
        }
    }
}
