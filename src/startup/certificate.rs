//! The TLS certificate an instance serves: the configured one, or the embedded
//! default's self-signed one.

use super::StartupError;
use crate::{config::Config, crypto::MasterKey, web as gw};

/// The configured certificate, or a self-signed one for the names this instance is
/// reached by (generated once, kept in the data directory, its key sealed).
pub(super) fn certificate_paths(
    config: &Config,
    master_key: &MasterKey,
) -> Result<(std::path::PathBuf, std::path::PathBuf), StartupError> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        return Ok((cert.clone(), key.clone()));
    }
    let (cert, key) = gw::tls::self_signed_paths(&config.data_dir);
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = config.issuer.host_str() {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if gw::tls::seal_legacy_key(&key, master_key)? {
        tracing::info!(key = %key.display(), "sealed the self-signed TLS key an earlier release kept in clear");
    }
    if gw::tls::ensure_self_signed(&cert, &key, &hosts, master_key)? {
        tracing::warn!(cert = %cert.display(), "generated a self-signed TLS certificate; use a real one in production");
    }
    Ok((cert, key))
}
