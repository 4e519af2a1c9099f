//! The passphrase-sealed master key file through the real binary (issue 27):
//! `keys init-master`, `serve` unlocking it from a pipe, a systemd credential or
//! `systemd-ask-password`, and every way a wrong passphrase or a damaged, foreign or
//! misplaced file is refused with one line and nothing changed.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use gatehouse::crypto::MasterKey;

use crate::cli::{gatehouse, terminate};
use crate::helpers::client;

const PASSPHRASE: &str = "plum tree quartz lantern 42";

fn key_path(dir: &Path) -> PathBuf {
    dir.join("master.key")
}

/// Runs `cmd` with `stdin` written to it through a pipe, then closed.
fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn init_master(dir: &Path, passphrase: &str, extra: &[&str]) -> Output {
    let mut cmd = gatehouse(dir);
    cmd.args(["keys", "init-master", "--passphrase-stdin"])
        .args(extra);
    run_with_stdin(cmd, &format!("{passphrase}\n"))
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `gatehouse ARGS` with the test's stdin pipe moved to descriptor 3 (as an operator's
/// wrapper would), so `--passphrase-fd 3` reads a pipe that is not stdin.
fn with_fd3(dir: &Path, args: &[&str]) -> Command {
    let inner = gatehouse(dir);
    let mut cmd = Command::new("sh");
    cmd.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.args(["-c", "exec \"$0\" \"$@\" 3<&0 </dev/null"])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args);
    cmd
}

/// `gatehouse serve --passphrase-fd 3`, the passphrase on a pipe at descriptor 3.
fn serve_fd3(dir: &Path) -> Command {
    with_fd3(dir, &["serve", "--passphrase-fd", "3"])
}

/// Starts `cmd` with `passphrase` on its stdin pipe and waits for the listening line.
fn start(mut cmd: Command, passphrase: Option<&str>) -> (Child, String) {
    let mut child = cmd
        .stdin(if passphrase.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(passphrase) = passphrase {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(passphrase.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("Gatehouse listening on ") {
            return (child, url.to_owned());
        }
        seen.push(line);
    }
    let out = child.wait_with_output().unwrap();
    panic!(
        "no listening line; stdout {seen:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts and expects a refusal: the exit status and stderr.
fn refused(cmd: Command, passphrase: &str) -> Output {
    let out = run_with_stdin(cmd, &format!("{passphrase}\n"));
    assert!(!out.status.success(), "started: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{out:?}"
    );
    out
}

fn healthz(base: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}

/// Starts once with a generated plaintext key so that the database holds sealed values,
/// and returns that key's kid.
fn first_start_with_plain_key(dir: &Path) -> String {
    let mut cmd = gatehouse(dir);
    cmd.arg("serve");
    let (mut child, base) = start(cmd, None);
    // Answering also means its SIGTERM handler is in place.
    healthz(&base);
    assert!(terminate(&mut child).success());
    MasterKey::from_file(key_path(dir))
        .unwrap()
        .kid()
        .to_owned()
}

#[test]
fn init_master_over_a_pipe_then_serve_unlocks_it_from_a_pipe_fd() {
    let dir = tempfile::tempdir().unwrap();
    let out = init_master(dir.path(), PASSPHRASE, &[]);
    assert!(out.status.success(), "{out:?}");
    let path = key_path(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("gatehouse-sealed-master-key v1\n"),
        "{text}"
    );
    assert!(
        text.contains("kdf=argon2id v=19 m=65536 t=3 p=1\n"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    let kid = text.lines().nth(1).unwrap().strip_prefix("kid=").unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(kid));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSPHRASE));

    let (mut child, base) = start(serve_fd3(dir.path()), Some(PASSPHRASE));
    healthz(&base);
    assert!(terminate(&mut child).success());
    // Unlocking never rewrites the file.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    let check = gatehouse(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown.starts_with(&format!(
            "# master key: passphrase-sealed file {} (kid {kid}",
            path.display()
        )),
        "{shown}"
    );
}

#[test]
fn wrong_passphrase_stops_start_with_one_line_before_binding_or_writing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let before = file_names(dir.path());
    let sealed = std::fs::read(key_path(dir.path())).unwrap();
    // Holding the configured port: a server that bound before checking the key would
    // fail with "address in use" instead.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let mut cmd = serve_fd3(dir.path());
    cmd.env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"));
    let out = refused(cmd, "plum tree quartz lantern 43");
    let lines = stderr_lines(&out);
    assert_eq!(
        lines,
        [format!(
            "gatehouse: master key file {:?}: wrong passphrase (or the file was altered)",
            key_path(dir.path())
        )]
    );
    assert_eq!(file_names(dir.path()), before, "files appeared");
    assert_eq!(std::fs::read(key_path(dir.path())).unwrap(), sealed);
}

#[test]
fn a_systemd_credential_supplies_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let creds = tempfile::tempdir().unwrap();
    let credential = creds.path().join("gatehouse-passphrase");
    std::fs::write(&credential, format!("{PASSPHRASE}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let mut cmd = gatehouse(dir.path());
    cmd.arg("serve").env("CREDENTIALS_DIRECTORY", creds.path());
    let (mut child, base) = start(cmd, None);
    healthz(&base);
    assert!(terminate(&mut child).success());
}

#[test]
fn systemd_ask_password_is_used_when_there_is_no_terminal() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("systemd-ask-password");
    let asked = bin.path().join("asked");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nprintf '%s\\n' '{PASSPHRASE}'\n",
            asked.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let mut cmd = gatehouse(dir.path());
    cmd.arg("serve").env(
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let (mut child, base) = start(cmd, None);
    healthz(&base);
    assert!(terminate(&mut child).success());
    let args = std::fs::read_to_string(&asked).unwrap();
    assert!(args.contains("--no-tty"), "{args}");
    assert!(args.contains("master key file"), "{args}");
}

#[test]
fn without_any_passphrase_source_start_is_refused_with_the_ways_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let out = gatehouse(dir.path())
        .arg("serve")
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("--passphrase-fd"), "{lines:?}");
}

#[test]
fn a_truncated_sealed_file_is_refused_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let path = key_path(dir.path());
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..120]).unwrap();
    let out = refused(serve_fd3(dir.path()), PASSPHRASE);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("{path:?} is not a usable sealed key file")),
        "{lines:?}"
    );
    assert!(lines[0].contains("truncated"), "{lines:?}");
    // Not taken for a missing key and replaced by a generated one.
    assert_eq!(std::fs::read(&path).unwrap(), &text[..120]);
}

#[test]
fn an_altered_header_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let path = key_path(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    // One character of the salt changed, still valid base64url.
    let salt_changed = {
        let at = text.find("salt=").unwrap() + 5;
        let mut bytes = text.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for altered in [
        text.replacen("t=3 ", "t=2 ", 1),
        salt_changed,
        text.replacen("m=65536", "m=4194304", 1),
    ] {
        assert_ne!(altered, text);
        std::fs::write(&path, &altered).unwrap();
        let out = refused(serve_fd3(dir.path()), PASSPHRASE);
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("the file was altered") || lines[0].contains("out of bounds"),
            "{lines:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), altered);
    }
}

#[test]
fn init_master_refuses_to_overwrite_and_to_take_a_short_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let short = init_master(dir.path(), "eleven char", &[]);
    assert!(!short.status.success());
    assert_eq!(
        stderr_lines(&short),
        ["gatehouse: the passphrase must be at least 12 characters"]
    );
    assert!(!key_path(dir.path()).exists());

    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let sealed = std::fs::read(key_path(dir.path())).unwrap();
    let again = init_master(dir.path(), "another passphrase entirely", &[]);
    assert!(!again.status.success());
    let lines = stderr_lines(&again);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("already exists"), "{lines:?}");
    assert_eq!(std::fs::read(key_path(dir.path())).unwrap(), sealed);

    // A plaintext key file is not replaced either, except by --from-plain.
    let other = tempfile::tempdir().unwrap();
    first_start_with_plain_key(other.path());
    let plain = std::fs::read(key_path(other.path())).unwrap();
    assert!(!init_master(other.path(), PASSPHRASE, &[]).status.success());
    assert_eq!(std::fs::read(key_path(other.path())).unwrap(), plain);
}

#[test]
fn from_plain_seals_the_same_key_so_the_database_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let kid = first_start_with_plain_key(dir.path());
    let out = init_master(dir.path(), PASSPHRASE, &["--from-plain"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&kid));
    let text = std::fs::read_to_string(key_path(dir.path())).unwrap();
    assert!(text.contains(&format!("\nkid={kid}\n")), "{text}");
    assert_eq!(
        file_names(dir.path())
            .iter()
            .filter(|n| n.contains("tmp"))
            .count(),
        0
    );

    // The audit key sealed under the plaintext key opens: start-up reaches /healthz.
    let (mut child, base) = start(serve_fd3(dir.path()), Some(PASSPHRASE));
    healthz(&base);
    assert!(terminate(&mut child).success());

    // Converting twice is refused.
    let twice = init_master(dir.path(), PASSPHRASE, &["--from-plain"]);
    assert!(!twice.status.success());
    assert!(stderr_lines(&twice)[0].contains("already sealed"));
}

#[test]
fn a_sealed_key_of_another_installation_is_refused_naming_both_kids() {
    let dir = tempfile::tempdir().unwrap();
    let database_kid = first_start_with_plain_key(dir.path());
    let path = key_path(dir.path());
    std::fs::remove_file(&path).unwrap();
    assert!(init_master(dir.path(), PASSPHRASE, &[]).status.success());
    let sealed = std::fs::read_to_string(&path).unwrap();
    let file_kid = sealed.lines().nth(1).unwrap().strip_prefix("kid=").unwrap();
    assert_ne!(file_kid, database_kid);

    let out = refused(serve_fd3(dir.path()), PASSPHRASE);
    let lines = stderr_lines(&out);
    assert_eq!(
        lines,
        [format!(
            "gatehouse: master key file {path:?}: this master key (kid {file_kid}) is not the one this database was sealed with (kid {database_kid})"
        )]
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), sealed);

    // Administrative commands that open the key refuse it the same way.
    let audit = refused(
        with_fd3(dir.path(), &["audit", "verify", "--passphrase-fd", "3"]),
        PASSPHRASE,
    );
    let audit_lines = stderr_lines(&audit);
    assert_eq!(audit_lines.len(), 1, "{audit_lines:?}");
    assert!(
        audit_lines[0].ends_with(lines[0].trim_start_matches("gatehouse: ")),
        "{audit_lines:?}"
    );
}

#[test]
fn an_administrative_command_unlocks_the_sealed_key_too() {
    let dir = tempfile::tempdir().unwrap();
    let kid = first_start_with_plain_key(dir.path());
    assert!(
        init_master(dir.path(), PASSPHRASE, &["--from-plain"])
            .status
            .success()
    );
    let out = run_with_stdin(
        with_fd3(dir.path(), &["audit", "verify", "--passphrase-fd", "3"]),
        &format!("{PASSPHRASE}\n"),
    );
    assert!(out.status.success(), "{out:?} (kid {kid})");
    let wrong = refused(
        with_fd3(dir.path(), &["audit", "verify", "--passphrase-fd", "3"]),
        "not the passphrase at all",
    );
    assert!(stderr_lines(&wrong)[0].contains("wrong passphrase"));
}

#[test]
fn on_postgresql_the_configured_sealed_file_opens_and_another_is_refused() {
    let Some(base) = crate::helpers::test_database_url() else {
        return crate::helpers::skip(
            "on_postgresql_the_configured_sealed_file_opens_and_another_is_refused",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
    };
    let database = crate::helpers::fresh_postgres_url(&base);
    let dir = tempfile::tempdir().unwrap();
    let on_postgres = |cmd: &mut Command, key: &Path| {
        cmd.env("GATEHOUSE_DATABASE_URL", &database)
            .env("GATEHOUSE_MASTER_KEY_FILE", key);
    };
    let (ours, theirs) = (dir.path().join("ours.key"), dir.path().join("theirs.key"));
    for key in [&ours, &theirs] {
        // The configured file does not exist yet: init-master creates it.
        let mut cmd = gatehouse(dir.path());
        cmd.args(["keys", "init-master", "--passphrase-stdin"]);
        on_postgres(&mut cmd, key);
        let out = run_with_stdin(cmd, &format!("{PASSPHRASE}\n"));
        assert!(out.status.success(), "{out:?}");
    }

    let mut cmd = serve_fd3(dir.path());
    on_postgres(&mut cmd, &ours);
    let (mut child, url) = start(cmd, Some(PASSPHRASE));
    healthz(&url);
    assert!(terminate(&mut child).success());

    let mut cmd = serve_fd3(dir.path());
    on_postgres(&mut cmd, &theirs);
    let out = refused(cmd, PASSPHRASE);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("is not the one this database was sealed with"),
        "{lines:?}"
    );
}
