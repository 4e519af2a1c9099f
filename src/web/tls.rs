//! TLS: rustls with TLS 1.2 and 1.3 only (DESIGN §13); a self-signed certificate for
//! the embedded default, generated once and reused; the certificate and key re-read on
//! SIGHUP without dropping connections.
//!
//! A private key file may be sealed under the master key (DESIGN §12): the generated
//! one always is, and an operator's may be (`gatehouse keys seal-tls-key`). A sealed
//! file is one line, `v1.<kid>.<payload>`, made by `MasterKey::seal` with the context
//! [`SEALED_KEY_CONTEXT`]; anything else is read as PEM.

use std::{
    fs,
    io::{Read as _, Write},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::crypto::{MasterKey, SEALED_VERSION};

/// What a sealed TLS private key is bound to: it opens as nothing else, and no other
/// sealed value opens as a TLS key.
pub const SEALED_KEY_CONTEXT: &str = "tls-private-key";

/// A PEM private key is a few KiB; anything bigger is the wrong file, and is not read
/// into memory whole.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("tls: {0}")]
    Config(String),
}

/// Where the embedded default keeps its generated pair: the certificate in clear, the
/// private key sealed under the master key.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.sealed"))
}

/// Earlier releases wrote the embedded default's private key in clear as `key.pem`
/// beside `key.sealed`. Seals it into `key` and removes the clear file, so an upgraded
/// installation keeps its certificate. Returns true when it did.
pub fn seal_legacy_key(key: &Path, master: &MasterKey) -> Result<bool, TlsError> {
    let legacy = key.with_file_name("key.pem");
    if key.exists() || !legacy.exists() {
        return Ok(false);
    }
    let pem = read_bounded(&legacy)?;
    if is_sealed(&pem) {
        return Err(TlsError::File {
            what: "unexpected sealed key in",
            path: legacy,
            reason: "expected the clear PEM key of an earlier release".into(),
        });
    }
    // Refuse to seal something that is not a key, rather than carry garbage forward.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::File {
        what: "cannot read private key",
        path: legacy.clone(),
        reason: e.to_string(),
    })?;
    replace_private(key, sealed_text(master, &pem).as_bytes())?;
    fs::remove_file(&legacy).map_err(|e| TlsError::File {
        what: "cannot remove",
        path: legacy,
        reason: e.to_string(),
    })?;
    Ok(true)
}

/// Seals the PEM private key in `input` into `output` (`gatehouse keys seal-tls-key`).
/// `output` must not exist yet: nothing is overwritten.
pub fn seal_key_file(input: &Path, output: &Path, master: &MasterKey) -> Result<(), TlsError> {
    let pem = read_bounded(input)?;
    if is_sealed(&pem) {
        return Err(TlsError::File {
            what: "already sealed:",
            path: input.to_owned(),
            reason: "give the clear PEM key".into(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::File {
        what: "cannot read private key",
        path: input.to_owned(),
        reason: e.to_string(),
    })?;
    if output.exists() {
        return Err(TlsError::File {
            what: "will not overwrite",
            path: output.to_owned(),
            reason: "the file exists".into(),
        });
    }
    replace_private(output, sealed_text(master, &pem).as_bytes())
}

/// Re-seals a sealed key file under `master`'s current key when it was sealed under
/// another one it can still open (during a master-key rotation). A clear PEM file is
/// left alone. Returns true when it rewrote the file.
pub fn reseal_key_file(path: &Path, master: &MasterKey) -> Result<bool, TlsError> {
    let bytes = read_bounded(path)?;
    if !is_sealed(&bytes) || sealed_kid(&bytes) == Some(master.sealing_kid().as_str()) {
        return Ok(false);
    }
    let pem = open_sealed(path, &bytes, master)?;
    replace_private(path, sealed_text(master, pem.expose_secret()).as_bytes())?;
    Ok(true)
}

/// Generates a self-signed certificate for `hosts` unless one already exists.
/// Returns true when it generated.
pub fn ensure_self_signed(
    cert: &Path,
    key: &Path,
    hosts: &[String],
    master: &MasterKey,
) -> Result<bool, TlsError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| TlsError::Config(format!("cannot generate a certificate: {e}")))?;
    if let Some(dir) = cert.parent() {
        fs::create_dir_all(dir).map_err(|e| TlsError::File {
            what: "cannot create",
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
    }
    let pem = Zeroizing::new(generated.signing_key.serialize_pem());
    replace_private(key, sealed_text(master, pem.as_bytes()).as_bytes())?;
    fs::write(cert, generated.cert.pem()).map_err(|e| TlsError::File {
        what: "cannot write",
        path: cert.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(true)
}

/// Writes `bytes` to `path` owner-only, replacing any earlier file atomically: a
/// temporary file beside it, synced, then renamed over it, so a crash leaves the old
/// key or the new one, never half of one.
fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| TlsError::File {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(err("cannot write", &temp))
        .and_then(|()| fs::rename(&temp, path).map_err(err("cannot replace", path)));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The one-line text a sealed key file holds.
fn sealed_text(master: &MasterKey, pem: &[u8]) -> String {
    let mut text = master.seal(SEALED_KEY_CONTEXT, pem);
    text.push('\n');
    text
}

/// A sealed file starts with the version tag of sealed values; a PEM file with
/// `-----BEGIN`.
fn is_sealed(bytes: &[u8]) -> bool {
    bytes
        .trim_ascii_start()
        .strip_prefix(SEALED_VERSION.as_bytes())
        .is_some_and(|rest| rest.starts_with(b"."))
}

/// The key id a sealed file names (`v1.<kid>.…`).
fn sealed_kid(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes.trim_ascii()).ok()?;
    text.split('.').nth(1)
}

/// Reads at most [`MAX_KEY_FILE_LEN`] bytes into a buffer wiped on drop.
fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let err = |what| {
        move |e: std::io::Error| TlsError::File {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        }
    };
    let mut bytes = Zeroizing::new(Vec::with_capacity(8 * 1024));
    fs::File::open(path)
        .map_err(err("cannot read private key"))?
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(err("cannot read private key"))?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(TlsError::File {
            what: "private key file too large:",
            path: path.to_owned(),
            reason: format!("more than {MAX_KEY_FILE_LEN} bytes"),
        });
    }
    Ok(bytes)
}

/// Opens a sealed key file's text under the master key.
fn open_sealed(
    path: &Path,
    bytes: &[u8],
    master: &MasterKey,
) -> Result<secrecy::SecretSlice<u8>, TlsError> {
    let text = std::str::from_utf8(bytes.trim_ascii()).map_err(|_| TlsError::File {
        what: "cannot open sealed private key",
        path: path.to_owned(),
        reason: "not text".into(),
    })?;
    master
        .open(SEALED_KEY_CONTEXT, text)
        .map_err(|e| TlsError::File {
            what: "cannot open sealed private key",
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// The private key in `path`, sealed or PEM.
fn read_private_key(path: &Path, master: &MasterKey) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_bounded(path)?;
    let parsed = if is_sealed(&bytes) {
        let pem = open_sealed(path, &bytes, master)?;
        PrivateKeyDer::from_pem_slice(pem.expose_secret())
    } else {
        PrivateKeyDer::from_pem_slice(&bytes)
    };
    parsed.map_err(|e| TlsError::File {
        what: "cannot read private key",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The serving certificate and key, re-read from their files on demand (SIGHUP), so a
/// renewed certificate takes effect without a restart. Connections already open keep
/// the key they shook hands with; only new handshakes see the new one.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    /// Opens a sealed key file, at start and at every reload.
    master: Arc<MasterKey>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Loads the pair once; a start with unusable files fails here.
    pub fn load(cert: &Path, key: &Path, master: Arc<MasterKey>) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(Arc::new(certified_key(cert, key, &master)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
            master,
        })
    }

    /// Re-reads both files. On any error (unreadable, not PEM, key not matching the
    /// certificate) the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(certified_key(&self.cert, &self.key, &self.master)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Where the certificate is read from, for log lines.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn provider() -> Arc<CryptoProvider> {
    // The provider is passed explicitly: other crates in the tree may bring a second
    // one, and relying on a process default would then panic at the first handshake.
    Arc::new(ring::default_provider())
}

/// A certificate chain and its private key from PEM files, checked to belong together.
fn certified_key(cert: &Path, key: &Path, master: &MasterKey) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::File {
            what: "cannot read certificate",
            path: cert.to_owned(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File {
            what: "bad certificate",
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            what: "no certificate in",
            path: cert.to_owned(),
            reason: "expected PEM CERTIFICATE blocks".into(),
        });
    }
    let key = read_private_key(key, master)?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| TlsError::Config(format!("certificate and key do not match: {e}")))
}

/// A rustls server configuration serving `cert`, TLS 1.2 and 1.3 only.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    // HTTP/1.1 only: actix closes idle HTTP/1.1 connections at a graceful stop but
    // waits out an idle HTTP/2 one, which would stretch every rolling restart to the
    // full shutdown timeout. Sign-in pages load a handful of resources; h2 buys little.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
