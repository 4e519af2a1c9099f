//! The hash chain: what exactly is hashed, under which key.
//!
//! Each event stores `prev_hash` (its predecessor's `hash`; [`GENESIS_HASH`] for the
//! first) and
//!
//! ```text
//! hash = HMAC-SHA-256(chain key, prev_hash (32 bytes) || canonical(content))
//! ```
//!
//! where `canonical(content)` is the JSON array
//! `["gatehouse.audit.v1", seq, id, time, org, actor, subject, type, outcome, ip,
//! user_agent, request_id, details]`, time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` and
//! details as the canonical JSON text stored in the row. Every stored column is
//! covered, so changing any of them — including `seq`, which is what makes moving an
//! event detectable — breaks that event's MAC, and changing a `hash` breaks its
//! successor's link. An HMAC rather than a plain hash: someone who can write to the
//! database but does not hold the key cannot recompute the chain after editing it.
//!
//! Checkpoints (written when old events are pruned) are MACed under the same key with
//! a distinct label, so neither kind of MAC can stand in for the other.

use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// `prev_hash` of the first event ever written.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const EVENT_LABEL: &str = "gatehouse.audit.v1";
const CHECKPOINT_LABEL: &[u8] = b"gatehouse/audit-checkpoint/v1\0";
const HMAC_BLOCK_LEN: usize = 64;

/// The 256-bit chain key. Generated once per deployment and stored sealed under the
/// master key (`sealed_secrets`), so a master-key rotation can re-seal it and the
/// chain keeps verifying. Never printed.
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// Every stored column of an event except its own `hash`.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub occurred_at: NaiveDateTime,
    pub org_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub event_type: &'a str,
    pub outcome: &'a str,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
    pub prev_hash: &'a str,
}

/// The signed content of a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointContent<'a> {
    pub last_seq: i64,
    pub last_hash: &'a str,
    pub cutoff: NaiveDateTime,
    pub pruned_events: i64,
    pub created_at: NaiveDateTime,
}

impl ChainKey {
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // A 32-byte key is zero-padded to the block length by definition (RFC 2104),
        // which lets us use the infallible constructor.
        let mut block = Zeroizing::new([0u8; HMAC_BLOCK_LEN]);
        block[..32].copy_from_slice(&*self.0);
        <HmacSha256 as hmac::digest::KeyInit>::new((&*block).into())
    }

    /// The MAC over `content`; `None` if its `prev_hash` is not 64 hex digits (only a
    /// tampered row can have that).
    fn event_mac(&self, content: &EventContent<'_>) -> Option<HmacSha256> {
        let mut prev = [0u8; 32];
        hex::decode_to_slice(content.prev_hash, &mut prev).ok()?;
        let mut mac = self.mac();
        mac.update(&prev);
        mac.update(&canonical_event(content));
        Some(mac)
    }

    /// `hash` for an event being appended (its `prev_hash` is the chain's current end,
    /// always well formed).
    pub fn event_hash(&self, content: &EventContent<'_>) -> String {
        match self.event_mac(content) {
            Some(mac) => hex::encode(mac.finalize().into_bytes()),
            // Unreachable for hashes this module produced; an empty hash never verifies.
            None => String::new(),
        }
    }

    /// Whether `hash` is the MAC of `content` under this key (constant time).
    pub fn verifies_event(&self, content: &EventContent<'_>, hash: &str) -> bool {
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(hash, &mut expected).is_err() {
            return false;
        }
        self.event_mac(content)
            .is_some_and(|mac| mac.verify_slice(&expected).is_ok())
    }

    pub fn checkpoint_signature(&self, content: &CheckpointContent<'_>) -> String {
        let mut mac = self.mac();
        mac.update(CHECKPOINT_LABEL);
        mac.update(&canonical_checkpoint(content));
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn verifies_checkpoint(&self, content: &CheckpointContent<'_>, signature: &str) -> bool {
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(signature, &mut expected).is_err() {
            return false;
        }
        let mut mac = self.mac();
        mac.update(CHECKPOINT_LABEL);
        mac.update(&canonical_checkpoint(content));
        mac.verify_slice(&expected).is_ok()
    }
}

/// The time format inside the chain: UTC, always six fractional digits.
pub fn canonical_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A JSON array: unambiguous field boundaries, `null` distinct from `""`, and one
/// serialisation for each value (serde_json's escaping is deterministic).
fn canonical_event(c: &EventContent<'_>) -> Vec<u8> {
    serde_json::json!([
        EVENT_LABEL,
        c.seq,
        c.id,
        canonical_time(c.occurred_at),
        c.org_id,
        c.actor,
        c.subject,
        c.event_type,
        c.outcome,
        c.client_ip,
        c.user_agent,
        c.request_id,
        c.details,
    ])
    .to_string()
    .into_bytes()
}

fn canonical_checkpoint(c: &CheckpointContent<'_>) -> Vec<u8> {
    serde_json::json!([
        c.last_seq,
        c.last_hash,
        canonical_time(c.cutoff),
        c.pruned_events,
        canonical_time(c.created_at),
    ])
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ChainKey {
        ChainKey::new(Zeroizing::new([byte; 32]))
    }

    fn time(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn content() -> EventContent<'static> {
        EventContent {
            seq: 7,
            id: "0b0d5bb4-4a1c-4c43-8a57-2c6b3e1c9a10",
            occurred_at: time("2026-11-24 10:00:00.123456"),
            org_id: Some("org-1"),
            actor: None,
            subject: Some("user-1"),
            event_type: "sign_in.failed",
            outcome: "failure",
            client_ip: Some("192.0.2.7"),
            user_agent: Some("curl/8"),
            request_id: Some("req-1"),
            details: r#"{"reason":"wrong_password"}"#,
            prev_hash: GENESIS_HASH,
        }
    }

    /// Pins the canonical form and the MAC construction: stored chains must keep
    /// verifying across releases. Computed independently with Python's `hmac`:
    /// `hmac.new(bytes([1]*32), bytes(32) + canonical, 'sha256').hexdigest()`.
    #[test]
    fn event_hash_matches_an_independent_computation() {
        let canonical = String::from_utf8(canonical_event(&content())).unwrap();
        assert_eq!(
            canonical,
            r#"["gatehouse.audit.v1",7,"0b0d5bb4-4a1c-4c43-8a57-2c6b3e1c9a10","2026-11-24T10:00:00.123456Z","org-1",null,"user-1","sign_in.failed","failure","192.0.2.7","curl/8","req-1","{\"reason\":\"wrong_password\"}"]"#
        );
        assert_eq!(key(1).event_hash(&content()), EXPECTED_HASH);
    }

    const EXPECTED_HASH: &str = "e89f6daecba6f88b1a308eacb62e721b725189bde948a19109f8c4c8d9f95dd4";

    #[test]
    fn every_field_is_covered_by_the_mac() {
        let k = key(1);
        let base = content();
        let hash = k.event_hash(&base);
        assert!(k.verifies_event(&base, &hash));
        let other_prev = "1".repeat(64);
        let variants: Vec<EventContent<'_>> = vec![
            EventContent { seq: 8, ..base },
            EventContent {
                id: "other",
                ..base
            },
            EventContent {
                occurred_at: time("2026-11-24 10:00:00.123457"),
                ..base
            },
            EventContent {
                org_id: None,
                ..base
            },
            EventContent {
                actor: Some(""),
                ..base
            },
            EventContent {
                subject: Some("user-2"),
                ..base
            },
            EventContent {
                event_type: "sign_in.succeeded",
                ..base
            },
            EventContent {
                outcome: "success",
                ..base
            },
            EventContent {
                client_ip: Some("192.0.2.8"),
                ..base
            },
            EventContent {
                user_agent: None,
                ..base
            },
            EventContent {
                request_id: Some("req-2"),
                ..base
            },
            EventContent {
                details: r#"{"reason":"unknown_user"}"#,
                ..base
            },
            EventContent {
                prev_hash: &other_prev,
                ..base
            },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert!(!k.verifies_event(v, &hash), "variant {i} still verifies");
        }
        assert!(!key(2).verifies_event(&base, &hash), "another key verifies");
    }

    #[test]
    fn malformed_hashes_never_verify_or_panic() {
        let k = key(1);
        for bad in ["", "zz", &"0".repeat(63), &"0".repeat(65), "Ω"] {
            assert!(!k.verifies_event(&content(), bad));
            assert!(
                !k.verifies_event(
                    &EventContent {
                        prev_hash: bad,
                        ..content()
                    },
                    &k.event_hash(&content())
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn checkpoint_signature_covers_every_field() {
        let k = key(3);
        let base = CheckpointContent {
            last_seq: 100,
            last_hash: GENESIS_HASH,
            cutoff: time("2020-01-01 00:00:00"),
            pruned_events: 100,
            created_at: time("2026-11-24 10:00:00"),
        };
        let sig = k.checkpoint_signature(&base);
        assert!(k.verifies_checkpoint(&base, &sig));
        let other = "f".repeat(64);
        for v in [
            CheckpointContent {
                last_seq: 101,
                ..base
            },
            CheckpointContent {
                last_hash: &other,
                ..base
            },
            CheckpointContent {
                cutoff: time("2020-01-02 00:00:00"),
                ..base
            },
            CheckpointContent {
                pruned_events: 99,
                ..base
            },
            CheckpointContent {
                created_at: time("2026-11-24 10:00:01"),
                ..base
            },
        ] {
            assert!(!k.verifies_checkpoint(&v, &sig), "{v:?}");
        }
        assert!(!k.verifies_checkpoint(&base, "nothex"));
    }
}
