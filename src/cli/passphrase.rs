//! Where the command line gets a passphrase (issue 27, DESIGN §12): an open file
//! descriptor, a systemd credential, the terminal, or `systemd-ask-password`.
//!
//! Never an environment variable or a command-line argument: both are readable by
//! other processes of the same user (`/proc/<pid>/environ`, `ps`), and are copied
//! into shell history, unit files and crash reports.

use std::{
    io::{self, IsTerminal as _, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use gatehouse::config::PassphrasePrompt;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// A passphrase longer than this is the wrong input, not a passphrase.
const MAX_PASSPHRASE_BYTES: u64 = gatehouse::crypto::MAX_PASSPHRASE_BYTES as u64;

/// The systemd credential (`LoadCredential=` / `LoadCredentialEncrypted=`) that holds
/// the master key file's passphrase.
pub const CREDENTIAL_NAME: &str = "gatehouse-passphrase";

/// Where a passphrase comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseSource {
    /// `--passphrase-fd N`: read to its end; one trailing newline is not part of it.
    Fd(u32),
    /// The first available of: the systemd credential [`CREDENTIAL_NAME`], the
    /// terminal (when standard input is one), `systemd-ask-password` (when it is on
    /// `PATH` and there is no terminal).
    Ambient,
}

impl PassphraseSource {
    pub fn from_fd(fd: Option<u32>) -> Self {
        fd.map_or(Self::Ambient, Self::Fd)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("cannot read the passphrase from file descriptor {fd}: {cause}")]
    Fd { fd: u32, cause: io::Error },
    #[error("cannot read the passphrase from standard input: {0}")]
    Stdin(io::Error),
    #[error("systemd credential {path:?}: {reason}")]
    Credential { path: PathBuf, reason: String },
    #[error("cannot read the passphrase from the terminal: {0}")]
    Terminal(io::Error),
    #[error("the two passphrases typed differ")]
    Mismatch,
    #[error("systemd-ask-password gave no passphrase ({0})")]
    AskPassword(String),
    #[error("the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes")]
    TooLong,
    #[error("the passphrase is not UTF-8 text")]
    NotUtf8,
    #[error(
        "no passphrase given: use --passphrase-fd N, a systemd credential named {CREDENTIAL_NAME}, or a terminal"
    )]
    NoSource,
}

/// The passphrase for `purpose` (e.g. "the master key file /var/lib/gatehouse/master.key"),
/// from `source`.
///
/// # Errors
///
/// One line naming the source that failed, never the passphrase.
pub fn obtain_passphrase(
    source: &PassphraseSource,
    purpose: &str,
) -> Result<SecretString, PassphraseError> {
    match *source {
        PassphraseSource::Fd(fd) => from_fd(fd),
        PassphraseSource::Ambient => {
            if let Some(passphrase) = from_credential()? {
                return Ok(passphrase);
            }
            if io::stdin().is_terminal() {
                return from_terminal(purpose);
            }
            if let Some(program) = on_path("systemd-ask-password") {
                return from_ask_password(&program, purpose);
            }
            Err(PassphraseError::NoSource)
        }
    }
}

/// What start-up uses to ask for the sealed master key file's passphrase.
pub fn master_key_prompt(source: PassphraseSource) -> PassphrasePrompt {
    PassphrasePrompt::new(move |path: &Path| {
        obtain_passphrase(&source, &format!("the master key file {}", path.display()))
            .map_err(|e| e.to_string())
    })
}

/// A new passphrase for `keys init-master`: standard input, a file descriptor, or
/// typed twice on the terminal.
pub fn new_passphrase(
    stdin: bool,
    fd: Option<u32>,
    purpose: &str,
) -> Result<SecretString, PassphraseError> {
    use secrecy::ExposeSecret as _;
    match (stdin, fd) {
        (true, _) => read_secret(io::stdin().lock()).map_err(|e| e.or(PassphraseError::Stdin)),
        (false, Some(fd)) => from_fd(fd),
        (false, None) if io::stdin().is_terminal() => {
            let first = from_terminal(purpose)?;
            let second = from_terminal(&format!("{purpose}, once more"))?;
            if first.expose_secret() != second.expose_secret() {
                return Err(PassphraseError::Mismatch);
            }
            Ok(first)
        }
        (false, None) => Err(PassphraseError::NoSource),
    }
}

/// How reading a secret failed: the I/O error is wrapped by the caller, who knows
/// where it was reading from.
enum ReadFailure {
    Io(io::Error),
    Bad(PassphraseError),
}

impl ReadFailure {
    fn or(self, wrap: impl FnOnce(io::Error) -> PassphraseError) -> PassphraseError {
        match self {
            Self::Io(e) => wrap(e),
            Self::Bad(e) => e,
        }
    }
}

/// Reads to the end (bounded), drops one trailing newline (`\n` or `\r\n`), and keeps
/// the bytes only in buffers wiped on drop.
fn read_secret(reader: impl Read) -> Result<SecretString, ReadFailure> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(256));
    reader
        .take(MAX_PASSPHRASE_BYTES + 3)
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    let mut text: &[u8] = &bytes;
    if let Some(rest) = text.strip_suffix(b"\n") {
        text = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    if text.len() as u64 > MAX_PASSPHRASE_BYTES {
        return Err(ReadFailure::Bad(PassphraseError::TooLong));
    }
    secret_from(text).map_err(ReadFailure::Bad)
}

/// Copied into a string of exactly its length, so boxing it as a secret does not
/// reallocate and leave an unwiped copy behind.
fn secret_from(bytes: &[u8]) -> Result<SecretString, PassphraseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PassphraseError::NotUtf8)?;
    let mut owned = String::with_capacity(text.len());
    owned.push_str(text);
    Ok(SecretString::from(owned))
}

/// Opens the descriptor through procfs, a new handle on the same pipe or file, which
/// needs no `unsafe` (the crate forbids it).
fn from_fd(fd: u32) -> Result<SecretString, PassphraseError> {
    let path = if cfg!(target_os = "linux") {
        format!("/proc/self/fd/{fd}")
    } else {
        format!("/dev/fd/{fd}")
    };
    let file = std::fs::File::open(path).map_err(|cause| PassphraseError::Fd {
        fd,
        cause: if cause.kind() == io::ErrorKind::NotFound {
            io::Error::new(io::ErrorKind::NotFound, "it is not open")
        } else {
            cause
        },
    })?;
    read_secret(file).map_err(|e| e.or(|cause| PassphraseError::Fd { fd, cause }))
}

/// `$CREDENTIALS_DIRECTORY/gatehouse-passphrase`, when systemd (or an operator
/// imitating it) provides one.
fn from_credential() -> Result<Option<SecretString>, PassphraseError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = Path::new(&dir).join(CREDENTIAL_NAME);
    let failed = |reason: String| PassphraseError::Credential {
        path: path.clone(),
        reason,
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(|e| failed(e.to_string()))?
            .permissions()
            .mode();
        // systemd makes it 0400 for the service's user; Kubernetes secret volumes
        // are group-readable. Readable by everyone is a leak, not a credential.
        if mode & 0o007 != 0 {
            return Err(failed(format!(
                "readable by others (mode {:04o}); make it 0400",
                mode & 0o7777
            )));
        }
    }
    read_secret(file)
        .map(Some)
        .map_err(|e| e.or(|cause| failed(cause.to_string())))
}

/// Prompt on standard error, read from the terminal with echo off.
fn from_terminal(purpose: &str) -> Result<SecretString, PassphraseError> {
    use std::io::Write as _;
    eprint!("Passphrase for {purpose}: ");
    let _ = io::stderr().flush();
    let typed = Zeroizing::new(rpassword::read_password().map_err(PassphraseError::Terminal)?);
    if typed.len() as u64 > MAX_PASSPHRASE_BYTES {
        return Err(PassphraseError::TooLong);
    }
    secret_from(typed.as_bytes())
}

/// Asks through systemd's password agents (the console, `systemd-tty-ask-password-agent`,
/// Plymouth at boot), for a service started without a terminal.
fn from_ask_password(program: &Path, purpose: &str) -> Result<SecretString, PassphraseError> {
    let output = Command::new(program)
        .arg("--no-tty")
        .arg("--id=gatehouse:master-key")
        .arg(format!("Passphrase for Gatehouse, {purpose}:"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| PassphraseError::AskPassword(e.to_string()))?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(PassphraseError::AskPassword(output.status.to_string()));
    }
    read_secret(&stdout[..])
        .map_err(|e| e.or(|cause| PassphraseError::AskPassword(cause.to_string())))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn read(bytes: &[u8]) -> Result<String, String> {
        read_secret(bytes)
            .map(|s| s.expose_secret().to_owned())
            .map_err(|e| e.or(PassphraseError::Stdin).to_string())
    }

    #[test]
    fn one_trailing_newline_is_dropped_and_nothing_else() {
        assert_eq!(read(b"open sesame 123\n").unwrap(), "open sesame 123");
        assert_eq!(read(b"open sesame 123\r\n").unwrap(), "open sesame 123");
        assert_eq!(read(b"open sesame 123").unwrap(), "open sesame 123");
        assert_eq!(read(b"open sesame 123\n\n").unwrap(), "open sesame 123\n");
        assert_eq!(read(b" spaced \n").unwrap(), " spaced ");
        assert_eq!(read(b"").unwrap(), "");
    }

    #[test]
    fn oversized_or_binary_input_is_refused_without_echo() {
        let long = vec![b'a'; 4096];
        assert_eq!(
            read(&long).unwrap_err(),
            "the passphrase is longer than 1024 bytes"
        );
        assert_eq!(
            read(&[0xff, 0xfe, b'x']).unwrap_err(),
            "the passphrase is not UTF-8 text"
        );
    }

    #[test]
    fn a_closed_descriptor_is_named() {
        let err = from_fd(987).unwrap_err().to_string();
        assert!(err.contains("file descriptor 987"), "{err}");
    }
}
