//! TLS: rustls with TLS 1.2 and 1.3 only (DESIGN §13); a self-signed certificate for
//! the embedded default, generated once and reused.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
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

/// A rustls server configuration from PEM files, TLS 1.2 and 1.3 only.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
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
    // The provider is passed explicitly: other crates in the tree may bring a second
    // one, and relying on a process default would then panic at the first handshake.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not match: {e}")))?;
    // HTTP/1.1 only: actix closes idle HTTP/1.1 connections at a graceful stop but
    // waits out an idle HTTP/2 one, which would stretch every rolling restart to the
    // full shutdown timeout. Sign-in pages load a handful of resources; h2 buys little.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
