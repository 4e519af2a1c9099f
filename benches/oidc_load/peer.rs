//! The peer: panva's oidc-provider in one Node process (`tests/api/node_op/load_peer.mjs`).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use base64::{Engine, engine::general_purpose::STANDARD};

const SECRET: &str = "bench-peer-secret-0123456789abcdef";

/// The running peer; stopped when dropped.
pub struct Peer {
    child: Child,
    pub pid: u32,
    pub base: String,
}

impl Peer {
    /// Starts the peer, or says why it cannot. It inherits this process's CPU affinity.
    pub fn start() -> Result<Self, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/node_op");
        if !dir.join("node_modules/oidc-provider").exists() {
            return Err(format!(
                "oidc-provider is not installed: run `npm ci --prefix {}`",
                dir.display()
            ));
        }
        let mut child = Command::new("node")
            .arg(dir.join("load_peer.mjs"))
            .arg(SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node does not start: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("the peer said nothing: {e}"))?;
        let said: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("the peer said {line:?}: {e}"))?;
        let (Some(base), Some(pid)) = (said["issuer"].as_str(), said["pid"].as_u64()) else {
            return Err(format!("the peer said {line:?}"));
        };
        Ok(Self {
            pid: u32::try_from(pid).map_err(|e| e.to_string())?,
            base: base.to_owned(),
            child,
        })
    }

    /// HTTP Basic credentials of its client_credentials client.
    pub fn basic(&self) -> String {
        STANDARD.encode(format!("bench-service:{SECRET}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
