//! TLS: rustls with TLS 1.2 and 1.3 only (DESIGN §13); a self-signed certificate for
//! the embedded default, generated once and reused; the certificate and key re-read on
//! SIGHUP without dropping connections.

use std::{
    fs,
    io::Write,
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

/// Where the embedded default keeps its generated pair.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Generates a self-signed certificate for `hosts` unless one already exists.
/// Returns true when it generated.
pub fn ensure_self_signed(cert: &Path, key: &Path, hosts: &[String]) -> Result<bool, TlsError> {
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
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert, generated.cert.pem()).map_err(|e| TlsError::File {
        what: "cannot write",
        path: cert.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |e: std::io::Error| TlsError::File {
        what: "cannot write",
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(err)?;
    file.write_all(bytes).map_err(err)
}

/// The serving certificate and key, re-read from their files on demand (SIGHUP), so a
/// renewed certificate takes effect without a restart. Connections already open keep
/// the key they shook hands with; only new handshakes see the new one.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Loads the pair once; a start with unusable files fails here.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(Arc::new(certified_key(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Re-reads both files. On any error (unreadable, not PEM, key not matching the
    /// certificate) the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(certified_key(&self.cert, &self.key)?);
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
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
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
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        what: "cannot read private key",
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
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
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str, host: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        ensure_self_signed(&cert, &key, &[host.to_owned()]).unwrap();
        (cert, key)
    }

    fn served_cert(r: &ReloadingCert) -> Vec<u8> {
        r.get().cert[0].as_ref().to_vec()
    }

    #[test]
    fn reload_swaps_in_the_new_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "live", "old.example");
        let reloading = ReloadingCert::load(&cert, &key).unwrap();
        let before = served_cert(&reloading);
        let (new_cert, new_key) = pair(dir.path(), "new", "new.example");
        fs::rename(new_cert, &cert).unwrap();
        fs::rename(new_key, &key).unwrap();
        reloading.reload().unwrap();
        let after = served_cert(&reloading);
        assert_ne!(before, after);
        assert_eq!(
            after,
            fs::read(&cert)
                .map(|pem| {
                    CertificateDer::pem_slice_iter(&pem)
                        .next()
                        .unwrap()
                        .unwrap()
                        .as_ref()
                        .to_vec()
                })
                .unwrap()
        );
    }

    #[test]
    fn a_bad_new_pair_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "live", "old.example");
        let reloading = ReloadingCert::load(&cert, &key).unwrap();
        let before = served_cert(&reloading);

        // A key that belongs to another certificate.
        let (_, other_key) = pair(dir.path(), "other", "other.example");
        fs::copy(&other_key, &key).unwrap();
        let err = reloading.reload().unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
        assert_eq!(served_cert(&reloading), before);

        // A certificate file that is not PEM at all.
        fs::write(&cert, "not a certificate").unwrap();
        assert!(reloading.reload().is_err());
        assert_eq!(served_cert(&reloading), before);
    }
}
