//! Anchors: the chain's head, signed and kept outside the database (issue 26).
//!
//! The chain reveals an edited, missing, forged or moved event, but not the newest
//! events deleted together with `audit_head` rewound to the last one kept: what remains
//! is a shorter chain that verifies. So every `audit_anchor_secs`, when the head has
//! moved, each instance appends a signed checkpoint of the head to a file (and, when
//! configured, sends it as a webhook and to syslog), somewhere the database's owner
//! cannot reach. `gatehouse audit verify --anchor FILE` then checks that the database
//! still holds every anchored event.
//!
//! One JSON object per line:
//!
//! ```text
//! {"seq":1050,"hash":"<event hash>","time":"2026-12-07T10:00:00.000000Z","instance":"host-a","mac":"<hex>"}
//! mac = HMAC-SHA-256(anchor key, "gatehouse/audit-anchor/v1\0" || ["gatehouse.audit-anchor.v1", seq, hash, time, instance])
//! ```
//!
//! The anchor key is its own random key, sealed under the master key like the chain key
//! (`sealed_secrets`, name `audit-anchor-key`): a master-key rotation keeps years-old
//! anchors verifiable, and the chain key alone cannot forge one.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::{sync::watch, task::JoinHandle};
use zeroize::Zeroizing;

use super::{Audit, AuditError};
use crate::mail::Mailer;

type HmacSha256 = Hmac<Sha256>;

/// Name of the anchor key in `sealed_secrets`.
pub(super) const ANCHOR_KEY_NAME: &str = "audit-anchor-key";

const MAC_LABEL: &[u8] = b"gatehouse/audit-anchor/v1\0";
const CONTENT_LABEL: &str = "gatehouse.audit-anchor.v1";

/// The webhook event an anchor is sent as (`X-Gatehouse-Event`).
pub const WEBHOOK_EVENT: &str = "audit.anchor";

/// Where syslog listens on Linux.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// syslog priority: facility authpriv (10), severity notice (5).
const SYSLOG_PRIORITY: u8 = 10 * 8 + 5;

/// The key that signs anchors. Never printed.
pub(super) struct AnchorKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnchorKey(..)")
    }
}

impl AnchorKey {
    pub(super) fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    fn mac(&self, anchor: &Anchor) -> HmacSha256 {
        // A 32-byte key is shorter than the block: the infallible constructor applies
        // (RFC 2104 pads it).
        let mut block = Zeroizing::new([0u8; 64]);
        block[..32].copy_from_slice(&*self.0);
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new((&*block).into());
        mac.update(MAC_LABEL);
        mac.update(&anchor.canonical());
        mac
    }

    fn sign(&self, anchor: &mut Anchor) {
        anchor.mac = hex::encode(self.mac(anchor).finalize().into_bytes());
    }

    /// Whether the anchor's `mac` is right (constant time).
    pub(super) fn verifies(&self, anchor: &Anchor) -> bool {
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(&anchor.mac, &mut expected).is_err() {
            return false;
        }
        self.mac(anchor).verify_slice(&expected).is_ok()
    }
}

/// One signed checkpoint of the chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, MACed as written.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub mac: String,
}

impl Anchor {
    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            CONTENT_LABEL,
            self.seq,
            self.hash,
            self.time,
            self.instance,
        ]))
        .unwrap_or_default()
    }

    /// The anchor as one line of the file (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Audit {
    /// A signed anchor of the chain's head as committed now.
    pub async fn anchor(&self, instance: Option<&str>) -> Result<Anchor, AuditError> {
        let head = self.store.run(super::ledger::head).await?;
        let (seq, hash) = head.ok_or_else(super::ledger::missing_head)?;
        let time =
            super::chain::canonical_time(super::event::to_micros(self.clock.now()).naive_utc());
        let mut anchor = Anchor {
            seq,
            hash,
            time,
            instance: instance.map(str::to_owned),
            mac: String::new(),
        };
        self.anchor_key.sign(&mut anchor);
        Ok(anchor)
    }
}

/// Appends `line` and a newline to `path`, created 0600, and waits for the disk: an
/// anchor that a crash could lose is no anchor.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)?;
    file.sync_data()
}

/// Sends `line` as one syslog datagram (RFC 3164 framing) to the socket at `socket`.
#[cfg(unix)]
pub fn send_syslog(socket: &Path, line: &str) -> std::io::Result<()> {
    let message = format!(
        "<{SYSLOG_PRIORITY}>gatehouse[{}]: {WEBHOOK_EVENT} {line}",
        std::process::id()
    );
    let sender = std::os::unix::net::UnixDatagram::unbound()?;
    sender.send_to(message.as_bytes(), socket).map(drop)
}

#[cfg(not(unix))]
pub fn send_syslog(_socket: &Path, _line: &str) -> std::io::Result<()> {
    Err(std::io::Error::other("syslog needs a Unix socket"))
}

/// The last line of the anchor file, if it is an anchor: where this instance's
/// anchoring left off before a restart.
fn last_anchor(path: &Path) -> Option<Anchor> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    // Anchors are a couple of hundred bytes; the tail holds the last whole one.
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let line = tail.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str(line).ok()
}

/// This host's name, to tell instances' anchors apart; `None` where the OS does not say.
pub fn instance_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(253)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
}

/// Where anchors go, from the configuration.
#[derive(Clone)]
pub struct AnchorTargets {
    pub file: PathBuf,
    /// The syslog socket, when `audit_anchor_syslog` is on.
    pub syslog: Option<PathBuf>,
    /// Sent as a signed webhook when the mailer has a `webhook_url`.
    pub mailer: Option<Mailer>,
    pub instance: Option<String>,
}

/// Writes anchors of one instance's view of the chain.
pub struct Anchoring {
    audit: Audit,
    targets: AnchorTargets,
    /// The head last anchored: `(seq, hash)`.
    last: Mutex<Option<(i64, String)>>,
}

impl std::fmt::Debug for Anchoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchoring")
            .field("file", &self.targets.file)
            .finish_non_exhaustive()
    }
}

impl Anchoring {
    pub fn new(audit: Audit, targets: AnchorTargets) -> Self {
        let last = last_anchor(&targets.file).map(|a| (a.seq, a.hash));
        Self {
            audit,
            targets,
            last: Mutex::new(last),
        }
    }

    pub fn file(&self) -> &Path {
        &self.targets.file
    }

    /// Anchors the head if it moved since the last anchor: written to the file (and
    /// synced) first, then to syslog and the webhook outbox. `None`: nothing new.
    pub async fn anchor_if_moved(&self) -> Result<Option<Anchor>, AuditError> {
        let anchor = self.audit.anchor(self.targets.instance.as_deref()).await?;
        let head = Some((anchor.seq, anchor.hash.clone()));
        if *self.last.lock().unwrap_or_else(|p| p.into_inner()) == head {
            return Ok(None);
        }
        let line = anchor.to_line();
        let (file, written) = (self.targets.file.clone(), line.clone());
        tokio::task::spawn_blocking(move || append_line(&file, &written))
            .await
            .map_err(|e| AuditError::Io(std::io::Error::other(e.to_string())))??;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = head;
        if let Some(socket) = &self.targets.syslog
            && let Err(e) = send_syslog(socket, &line)
        {
            tracing::warn!(error = %e, socket = %socket.display(), "audit anchor not sent to syslog");
        }
        if let Some(mailer) = &self.targets.mailer
            && mailer.webhook_url().is_some()
        {
            let (mailer, payload) = (
                mailer.clone(),
                serde_json::to_value(&anchor).unwrap_or_default(),
            );
            let queued = self
                .audit
                .store
                .run(move |c| mailer.enqueue_event(c, WEBHOOK_EVENT, &payload))
                .await;
            if let Err(e) = queued {
                tracing::warn!(error = %e, "audit anchor webhook not queued");
            }
        }
        Ok(Some(anchor))
    }

    /// Anchors every `every` until stopped, and once more when stopped (a clean
    /// shutdown leaves the final head anchored).
    pub fn spawn(self: Arc<Self>, every: Duration) -> AnchorWorker {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = self.anchor_if_moved().await {
                    tracing::warn!(error = %e, "audit anchor not written; will try again");
                }
            }
            if let Err(e) = self.anchor_if_moved().await {
                tracing::warn!(error = %e, "final audit anchor not written");
            }
        });
        AnchorWorker { stop, task }
    }
}

/// The running anchoring of one instance.
pub struct AnchorWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AnchorWorker {
    /// Writes the final anchor (within `grace`) and stops.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AnchorKey {
        AnchorKey::new(Zeroizing::new([byte; 32]))
    }

    fn signed(key: &AnchorKey) -> Anchor {
        let mut anchor = Anchor {
            seq: 1050,
            hash: "ab".repeat(32),
            time: "2026-12-07T10:00:00.000000Z".into(),
            instance: Some("host-a".into()),
            mac: String::new(),
        };
        key.sign(&mut anchor);
        anchor
    }

    #[test]
    fn an_anchor_survives_its_line_and_any_edit_breaks_its_mac() {
        let key = key(7);
        let anchor = signed(&key);
        let parsed: Anchor = serde_json::from_str(&anchor.to_line()).unwrap();
        assert_eq!(parsed, anchor);
        assert!(key.verifies(&parsed));
        for edit in [
            |a: &mut Anchor| a.seq -= 8,
            |a: &mut Anchor| a.hash = "cd".repeat(32),
            |a: &mut Anchor| a.time = "2026-12-07T10:00:00.000001Z".into(),
            |a: &mut Anchor| a.instance = None,
            |a: &mut Anchor| a.mac = "00".repeat(32),
            |a: &mut Anchor| a.mac = "not hex".into(),
        ] {
            let mut edited = anchor.clone();
            edit(&mut edited);
            assert!(!key.verifies(&edited), "{edited:?}");
        }
        assert!(!self::key(8).verifies(&anchor), "another key's anchor");
    }

    #[test]
    fn the_file_is_appended_private_and_its_last_line_resumes_anchoring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.jsonl");
        let key = key(1);
        let first = signed(&key);
        let mut second = first.clone();
        second.seq += 1;
        key.sign(&mut second);
        append_line(&path, &first.to_line()).unwrap();
        append_line(&path, &second.to_line()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(last_anchor(&path), Some(second));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn syslog_gets_one_datagram_per_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log");
        let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
        let line = signed(&key(2)).to_line();
        send_syslog(&socket, &line).unwrap();
        let mut buf = [0u8; 1024];
        let n = listener.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<85>gatehouse["), "{got}");
        assert!(got.ends_with(&format!("]: audit.anchor {line}")), "{got}");
        assert!(!got.contains('\n'));
    }
}
