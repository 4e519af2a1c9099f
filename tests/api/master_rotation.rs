//! `gatehouse keys rotate-master` through the real binary (issue 27, DESIGN §12): the
//! master key changes while instances serve, the command is killed half-way and run
//! again, and afterwards every secret still opens under the new key alone.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use diesel::Connection;
use gatehouse::{
    crypto::{MasterKey, sealed_key_file_kid, write_sealed_key_file},
    keys::master::SEALED_COLUMNS,
    store::{DbConnection, master_rotation},
};
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    cli::{OPERATOR, by_operator, gatehouse, serve_with, terminate},
    helpers::{client, fresh_postgres_url, hidden, skip, test_database_url, totp_code},
};

const PASSWORD: &str = "Quiet-Harbour-42";
/// The passphrase of a sealed master key file, given to every process as a systemd
/// credential.
const PASSPHRASE: &str = "tidal ledger over the old quay";
/// One public URL for every instance, as behind a load balancer.
const ISSUER: &str = "https://localhost:8443";

/// A shared database and key file, and the settings every process gets.
struct Cluster {
    shared: TempDir,
    /// The key file is sealed with [`PASSPHRASE`] (`keys init-master`'s format).
    sealed: bool,
    dirs: Vec<TempDir>,
    env: Vec<(&'static str, String)>,
    database_url: String,
}

impl Cluster {
    fn new(database_url: String, sealed: bool) -> Self {
        let shared = tempfile::tempdir().unwrap();
        let key_file = shared.path().join("master.key");
        let credentials = shared.path().join("credentials");
        if sealed {
            write_sealed_key_file(
                &key_file,
                &MasterKey::generate(),
                &secrecy::SecretString::from(PASSPHRASE),
            )
            .unwrap();
            std::fs::create_dir(&credentials).unwrap();
            write_private(&credentials.join("gatehouse-passphrase"), PASSPHRASE);
        } else {
            write_private(
                &key_file,
                &crate::helpers::base64_key(&MasterKey::generate()),
            );
        }
        let mut env = vec![
            ("GATEHOUSE_DATABASE_URL", database_url.clone()),
            ("GATEHOUSE_MASTER_KEY_FILE", key_file.display().to_string()),
            ("GATEHOUSE_ISSUER", ISSUER.to_owned()),
            ("GATEHOUSE_ARGON2_MEMORY_KIB", "64".to_owned()),
            ("GATEHOUSE_ARGON2_ITERATIONS", "1".to_owned()),
            ("GATEHOUSE_MASTER_KEY_POLL_SECS", "1".to_owned()),
            ("GATEHOUSE_SIGNING_KEY_RELOAD_SECS", "1".to_owned()),
            // Nothing listens there: mail stays queued, its bodies sealed in the outbox.
            (
                "GATEHOUSE_SMTP_URL",
                "smtp://127.0.0.1:9?tls=none".to_owned(),
            ),
        ];
        if sealed {
            env.push(("CREDENTIALS_DIRECTORY", credentials.display().to_string()));
        }
        Self {
            shared,
            sealed,
            dirs: Vec::new(),
            env,
            database_url,
        }
    }

    fn key_file(&self) -> PathBuf {
        self.shared.path().join("master.key")
    }

    fn kid_on_disk(&self) -> String {
        if self.sealed {
            // Still sealed, under the same passphrase (every command opens it).
            return sealed_key_file_kid(&self.key_file()).unwrap();
        }
        MasterKey::from_file(self.key_file())
            .unwrap()
            .kid()
            .to_owned()
    }

    /// `gatehouse` with the shared settings and a data directory of its own.
    fn command(&mut self) -> Command {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = gatehouse(dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.dirs.push(dir);
        cmd
    }

    fn serve(&mut self) -> (Child, String) {
        let (child, _, base) = serve_with(self.command());
        (child, base)
    }

    /// Serves again in the data directory of the `n`th command run.
    fn serve_in(&self, n: usize) -> (Child, String) {
        let mut cmd = gatehouse(self.dirs[n].path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (child, _, base) = serve_with(cmd);
        (child, base)
    }

    /// The key id the TLS private key in the `n`th data directory is sealed under.
    fn tls_kid(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dirs[n].path().join("tls/key.sealed")).unwrap();
        assert!(!text.contains("PRIVATE KEY"));
        text.split('.').nth(1).unwrap().to_owned()
    }

    fn run(&mut self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    fn rotate(&mut self) -> Command {
        let mut cmd = self.command();
        cmd.args(["keys", "rotate-master", "--batch-size", "1"])
            .args(["--grace-secs", "2", "--lease-secs", "3"]);
        cmd
    }

    fn connection(&self) -> DbConnection {
        if self.database_url.starts_with("postgres") {
            DbConnection::Postgresql(diesel::PgConnection::establish(&self.database_url).unwrap())
        } else {
            let path = self.database_url.trim_start_matches("sqlite:");
            DbConnection::Sqlite(diesel::SqliteConnection::establish(path).unwrap())
        }
    }

    /// Sealed values under `kid`, per column, where any are.
    fn under(&self, kid: &str) -> Vec<(String, i64)> {
        let mut conn = self.connection();
        SEALED_COLUMNS
            .iter()
            .map(|c| {
                let n = master_rotation::count_under(&mut conn, c, kid).unwrap();
                (format!("{}.{}", c.table, c.column), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn rotation_row(&self) -> Option<(String, String)> {
        master_rotation::find(&mut self.connection())
            .unwrap()
            .map(|r| (r.state, r.new_kid))
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(file, "{text}").unwrap();
}

/// A user's TOTP secret, and the last time step a code of it was used at.
struct Totp {
    secret: String,
    last_step: i64,
}

impl Totp {
    /// A code for a step later than any used, within the one step of skew allowed;
    /// waits for the clock when every such step is used up.
    async fn next_code(&mut self) -> String {
        loop {
            let now = chrono::Utc::now().timestamp() / 30;
            let step = (self.last_step + 1).max(now - 1);
            if step <= now + 1 {
                self.last_step = step;
                return totp_code(&self.secret, step * 30);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Posts a browser form as a page of `ISSUER` would.
async fn post(
    browser: &reqwest::Client,
    base: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(format!("{base}{path}"))
        .header("Origin", ISSUER)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn page(browser: &reqwest::Client, base: &str, path: &str) -> String {
    let res = browser.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

/// The password step of a fresh sign-in; the response's `Location`.
async fn password_step(browser: &reqwest::Client, base: &str) -> String {
    let res = browser.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    let html = page(browser, base, &login).await;
    let res = post(
        browser,
        base,
        "/login",
        &[
            ("tx", &hidden(&html, "tx")),
            ("csrf", &hidden(&html, "csrf")),
            ("username", "ada"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 303, "password accepted on {base}");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Signs `ada` in on `base` with her password and `code` (TOTP or recovery code):
/// the second factor's secret or hash had to be opened or derived there.
async fn sign_in(base: &str, code: &str) {
    let browser = client();
    let otp = password_step(&browser, base).await;
    assert!(otp.starts_with("/login/otp?tx="), "{otp}");
    let html = page(&browser, base, &otp).await;
    let res = post(
        &browser,
        base,
        "/login/otp",
        &[
            ("tx", &hidden(&html, "tx")),
            ("csrf", &hidden(&html, "csrf")),
            ("code", code),
        ],
    )
    .await;
    assert_eq!(res.status(), 303, "second factor accepted on {base}");
    assert_eq!(res.headers()["location"], "/account");
}

/// Enrols TOTP for `ada` on `base`; her secret and recovery codes.
async fn enrol(base: &str) -> (Totp, Vec<String>) {
    let browser = client();
    assert_eq!(password_step(&browser, base).await, "/account");
    let html = page(&browser, base, "/account/totp").await;
    let marker = "id=\"totp-secret\">";
    let start = html.find(marker).unwrap() + marker.len();
    let secret = html[start..start + html[start..].find('<').unwrap()].to_owned();
    let mut totp = Totp {
        secret,
        last_step: 0,
    };
    let code = totp.next_code().await;
    let res = post(
        &browser,
        base,
        "/account/totp",
        &[("csrf", &hidden(&html, "csrf")), ("code", &code)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (totp, codes)
}

/// Queues a reset mail for `ada` (the SMTP server is unreachable: it stays queued).
async fn queue_mail(base: &str) {
    let browser = client();
    let html = page(&browser, base, "/reset").await;
    let res = post(
        &browser,
        base,
        "/reset",
        &[("csrf", &hidden(&html, "csrf")), ("login", "ada")],
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// A client_credentials access token from `base`, verified against `base`'s JWKS;
/// the kid that signed it.
async fn token_verifies(base: &str, client_id: &str, secret: &str) -> String {
    use openidconnect::{
        JsonWebKey,
        core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
    };
    let http = client();
    let res = http
        .post(format!("{base}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "token from {base}");
    let tokens: Value = res.json().await.unwrap();
    let jwt = tokens["access_token"].as_str().unwrap().to_owned();
    let jwks: CoreJsonWebKeySet = http
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut parts = jwt.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let key = jwks
        .keys()
        .iter()
        .find(|k| k.key_id().map(|k| k.as_str()) == Some(kid.as_str()))
        .expect("the signing key is published");
    key.verify_signature(
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        format!("{h}.{c}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(s).unwrap(),
    )
    .expect("signature verifies against the JWKS");
    kid
}

/// Reads `child`'s stdout until `progress` re-sealing lines went by; all lines read.
fn read_until_progress(child: &mut Child, progress: usize) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("re-sealed ");
        lines.push(line);
        if done {
            seen += 1;
            if seen == progress {
                break;
            }
        }
    }
    lines
}

/// The whole story, on `database_url`, with `instances` instances serving.
async fn rotation_while_serving(database_url: String, instances: usize, sealed: bool) {
    let mut cluster = Cluster::new(database_url, sealed);
    let old_kid = cluster.kid_on_disk();
    let mut servers: Vec<(Child, String)> = (0..instances).map(|_| cluster.serve()).collect();
    let bases: Vec<String> = servers.iter().map(|(_, b)| b.clone()).collect();
    let (a, b) = (bases[0].clone(), bases[instances - 1].clone());

    let mut create = cluster.command();
    let mut user = create
        .args(["user", "create", "--username", "ada"])
        .args(["--email", "ada@example.org", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(user.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(user.wait().unwrap().success());
    let out = cluster.run(&[
        "client",
        "create",
        "--name",
        "Lab feed",
        "--grant",
        "client_credentials",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (client_id, secret) = (
        svc["client_id"].as_str().unwrap().to_owned(),
        svc["client_secret"].as_str().unwrap().to_owned(),
    );

    let (mut totp, codes) = enrol(&a).await;
    queue_mail(&b).await;
    let signing_kid = token_verifies(&b, &client_id, &secret).await;
    let before = cluster.under(&old_kid);
    for column in [
        "totp_credentials.secret_sealed",
        "signing_keys.private_sealed",
        "saml_keys.private_sealed",
        "sealed_secrets.value",
        "outbox.body_text",
        "outbox.recipient_sealed",
        "users.email_sealed",
        "users.password_hash",
    ] {
        assert!(
            before.iter().any(|(c, _)| c == column),
            "{column} holds values: {before:?}"
        );
    }

    // Killed half-way through the re-sealing.
    let mut first = cluster.rotate().stdout(Stdio::piped()).spawn().unwrap();
    let lines = read_until_progress(&mut first, 3);
    first.kill().unwrap();
    first.wait().unwrap();
    let joined = lines.join("\n");
    assert!(
        joined.contains(&format!("Rotating the master key {old_kid} -> ")),
        "{joined}"
    );
    let (state, new_kid) = cluster.rotation_row().expect("the rotation is recorded");
    assert_eq!(state, "resealing", "{joined}");
    assert!(!cluster.under(&old_kid).is_empty(), "killed before the end");
    assert!(!cluster.under(&new_kid).is_empty(), "some values moved");
    assert_eq!(cluster.kid_on_disk(), old_kid, "the file is untouched");

    // Every instance still serves, whichever key a value is under.
    sign_in(&a, &totp.next_code().await).await;
    sign_in(&b, &codes[0]).await;
    assert_eq!(token_verifies(&a, &client_id, &secret).await, signing_kid);

    // Run again: refused while the dead run's lease lasts, then it resumes.
    let mut finished = None;
    for _ in 0..20 {
        let out = cluster.rotate().output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            finished = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        assert!(
            stderr.starts_with(&format!(
                "gatehouse: a rotation is already under way (new key id {new_kid}, held by {OPERATOR}@"
            )),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stdout = finished.expect("the second run finished the rotation");
    assert!(
        stdout.contains(&format!(
            "Resuming the rotation of the master key {old_kid} -> {new_kid} (it was resealing)."
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Master key rotated: {old_kid} -> {new_kid}")),
        "{stdout}"
    );

    // Nothing is left under the old key; the key file holds the new one.
    assert_eq!(cluster.kid_on_disk(), new_kid);
    assert_eq!(cluster.under(&old_kid), vec![]);
    assert_eq!(cluster.rotation_row(), None);
    // Instances forget the old key within a poll; everything still opens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sign_in(&b, &totp.next_code().await).await;
    sign_in(&a, &codes[1]).await;
    assert_eq!(token_verifies(&b, &client_id, &secret).await, signing_kid);
    // Each instance re-sealed its own TLS key under the new master key (the instances
    // are the first commands run, so their data directories come first).
    for n in 0..instances {
        assert_eq!(cluster.tls_kid(n), new_kid, "instance {n}'s TLS key");
    }

    let out = cluster.run(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cluster.run(&["audit", "export"]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (kind, count) in [
        ("keys.master_rotation_started", 2),
        ("keys.master_rotation_finished", 1),
    ] {
        let found: Vec<&Value> = events.iter().filter(|e| e["type"] == kind).collect();
        assert_eq!(found.len(), count, "{kind}: {found:?}");
        assert!(found.iter().all(|e| by_operator(&e["actor"])), "{found:?}");
        assert!(
            found
                .iter()
                .all(|e| e["details"]["new_kid"] == new_kid.as_str())
        );
    }

    // A new instance, started from the new key file alone.
    for (child, _) in &mut servers {
        terminate(child);
    }
    let (mut fresh, c) = cluster.serve();
    sign_in(&c, &totp.next_code().await).await;
    sign_in(&c, &codes[2]).await;
    assert_eq!(token_verifies(&c, &client_id, &secret).await, signing_kid);
    terminate(&mut fresh);
    // And an instance restarted where it ran: its re-sealed TLS key opens.
    let (mut again, d) = cluster.serve_in(0);
    sign_in(&d, &codes[3]).await;
    terminate(&mut again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_follow_a_rotation_that_is_killed_and_resumed() {
    let Some(base) = test_database_url() else {
        return skip(
            "two_instances_on_postgres_follow_a_rotation_that_is_killed_and_resumed",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
    };
    rotation_while_serving(fresh_postgres_url(&base), 2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_sqlite_follows_a_rotation_that_is_killed_and_resumed() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", db.path().join("gatehouse.db").display());
    rotation_while_serving(url, 1, false).await;
}

/// The same with the master key in a passphrase-sealed file: the new key is sealed
/// under the same passphrase, which every command reads from a systemd credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_sealed_key_file_is_rotated_and_stays_sealed() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", db.path().join("gatehouse.db").display());
    rotation_while_serving(url, 1, true).await;
}

#[tokio::test]
async fn rotation_is_refused_for_an_inline_key_a_short_grace_and_a_second_run_at_once() {
    let db = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(
        format!("sqlite:{}", db.path().join("gatehouse.db").display()),
        false,
    );
    let one_line = |out: &std::process::Output| {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        stderr
    };

    let inline = crate::helpers::base64_key(&MasterKey::generate());
    let out = cluster
        .command()
        .env_remove("GATEHOUSE_MASTER_KEY_FILE")
        .env("GATEHOUSE_MASTER_KEY", &inline)
        .args(["keys", "rotate-master"])
        .output()
        .unwrap();
    let err = one_line(&out);
    assert!(
        err.contains("put the key in a file (master_key_file"),
        "{err}"
    );
    assert!(!err.contains(&inline));

    let out = cluster
        .command()
        .env("GATEHOUSE_MASTER_KEY_POLL_SECS", "10")
        .args(["keys", "rotate-master", "--grace-secs", "5"])
        .output()
        .unwrap();
    let err = one_line(&out);
    assert!(
        err.contains("--grace-secs must be at least twice master_key_poll_secs (10)"),
        "{err}"
    );

    // One run holds the rotation (waiting out a long grace period)...
    let old_kid = cluster.kid_on_disk();
    let mut first = cluster
        .command()
        .args(["keys", "rotate-master", "--grace-secs", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = first.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = lines.next().unwrap().unwrap();
    let waiting = lines.next().unwrap().unwrap();
    assert!(waiting.starts_with("Waiting 60 s"), "{started}\n{waiting}");
    let (state, new_kid) = cluster.rotation_row().unwrap();
    assert_eq!(state, "announced");

    // ...so a second one is refused, and changes nothing.
    let err = one_line(&cluster.run(&["keys", "rotate-master", "--grace-secs", "2"]));
    assert!(
        err.starts_with(&format!(
            "gatehouse: a rotation is already under way (new key id {new_kid}, held by {OPERATOR}@"
        )),
        "{err}"
    );
    assert!(err.contains(" until "), "{err}");
    assert_eq!(
        cluster.rotation_row(),
        Some(("announced".to_owned(), new_kid))
    );
    assert_eq!(cluster.kid_on_disk(), old_kid);
    first.kill().unwrap();
    first.wait().unwrap();

    // A key that is neither side of the rotation cannot take it over (nor serve).
    std::fs::remove_file(cluster.key_file()).unwrap();
    write_private(
        &cluster.key_file(),
        &crate::helpers::base64_key(&MasterKey::generate()),
    );
    let err = one_line(&cluster.run(&["keys", "rotate-master", "--grace-secs", "2"]));
    assert!(err.contains("is neither the old ("), "{err}");
}
