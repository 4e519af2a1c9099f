//! What an audit event says (DESIGN §11): its type, outcome, who and what it is about,
//! where the request came from, and details — never a password, code, token or secret.

use std::{fmt, str::FromStr};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::RequestContext;

/// Every kind of event the trail records. The dotted names are part of the stored
/// data and the admin API: never rename one, add a new one instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    SignInSucceeded,
    /// `details.reason` says why (unknown user, wrong password, disabled, locked…).
    SignInFailed,
    AccountLocked,
    AccountUnlocked,
    IpBlocked,
    IpUnblocked,
    MfaEnrolled,
    MfaRemoved,
    MfaFailed,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    /// An administrator (or policy) required a new password at the next sign-in.
    PasswordResetForced,
    /// An administrator invited a new user: the link to choose a password was mailed.
    InvitationSent,
    /// The invited user chose a password; the account is active.
    InvitationAccepted,
    /// `details.reason`: logout, idle, absolute or revoked.
    SessionEnded,
    TokenIssued,
    TokenRevoked,
    AssertionIssued,
    /// SAML Single Logout with one SP: `details.sp`, `details.direction` (from_sp, to_sp)
    /// and, on failure, `details.reason` (refused, not told, no answer, its status).
    SamlLogout,
    /// An SP's metadata was fetched again from its URL (issue 24 item 6):
    /// `details.entity_id`, `details.changed` (what differs: acs, slo, signing_certs,
    /// encryption_certs) or, on failure, `details.reason` (the old metadata stays).
    SamlSpMetadataRefreshed,
    KeyRotated,
    UserCreated,
    UserUpdated,
    UserEnabled,
    UserDisabled,
    /// Any other administrative change: `details.object` and `details.change` say which.
    AdminChange,
    /// Old events were pruned under the retention policy (a checkpoint was written).
    AuditPruned,
    /// Someone broke the glass (DESIGN §15): `details.emergency_id`, `reason`,
    /// `expires_at`, `context`, `requested_by`; a refusal has outcome failure and
    /// `details.refused` (not_designated, no_second_factor, bad_reason…).
    EmergencyStarted,
    /// An emergency window ended: `details.emergency_id`, `details.reason` (expired,
    /// ended_by_user, signed_out).
    EmergencyEnded,
    /// A second administrator signed an emergency session off: `details.emergency_id`,
    /// `details.note`.
    EmergencyReviewed,
    /// An administrator designated a user for emergency access, or withdrew it:
    /// `details.change` (granted, withdrawn).
    EmergencyDesignation,
    /// An administrator looked at something (ONC 170.315 (d)(2)): `details.object`
    /// (`user`, `users`, `audit`, `audit_export`), `details.filter` (what was asked
    /// for), `details.rows` (how many were shown or exported), `details.format`.
    AdminRead,
    /// `gatehouse keys rotate-master` announced a new master key (DESIGN §12):
    /// `details.old_kid`, `details.new_kid`; `details.resumed` when it took over a
    /// rotation whose command had stopped.
    MasterKeyRotationStarted,
    /// Every sealed value is under the new master key and the key file holds it:
    /// `details.old_kid`, `details.new_kid`, `details.resealed` (values this run
    /// re-sealed).
    MasterKeyRotationFinished,
    /// An upstream identity was linked to a Gatehouse account (DESIGN §16):
    /// `details.connector`, `details.upstream_subject`, `details.how` (just_in_time,
    /// after_sign_in, admin).
    UpstreamLinked,
    /// An upstream identity's link was removed: `details.connector`,
    /// `details.upstream_subject`.
    UpstreamUnlinked,
    /// A passkey was registered (DESIGN §17): `details.credential_id`, `details.name`,
    /// `details.during` (account, sign_in), `details.synced`.
    PasskeyRegistered,
    /// A passkey was renamed: `details.credential_id`, `details.name`.
    PasskeyRenamed,
    /// A passkey was removed, by its owner or an administrator (the actor says which):
    /// `details.credential_id`, `details.name`.
    PasskeyRemoved,
    /// A FHIR server was registered as a resource server (DESIGN §18):
    /// `details.base_url`.
    FhirServerCreated,
    /// A FHIR server's registration changed: `details.base_url`.
    FhirServerUpdated,
    /// A FHIR server's registration was removed: `details.base_url`.
    FhirServerDeleted,
    /// An administrator set a user's FHIR resource on a FHIR server:
    /// `details.base_url`, `details.fhir_user` (`Practitioner/…`).
    FhirUserSet,
    /// An administrator removed a user's FHIR resource on a FHIR server:
    /// `details.base_url`.
    FhirUserCleared,
    /// An EHR registered a SMART launch context for a user (`POST /smart/launch`):
    /// `details.client_id` (the app to launch), `details.launched_by` (the EHR).
    SmartLaunchCreated,
    /// A person allowed an app that asks for consent (some of) what it asked for:
    /// `details.client_id`, `details.scope` (allowed), `details.withheld`.
    ConsentGiven,
    /// A person withdrew their consent to an app on the account page, ending its
    /// tokens for them: `details.client_id`.
    ConsentWithdrawn,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        Self::SignInSucceeded,
        Self::SignInFailed,
        Self::AccountLocked,
        Self::AccountUnlocked,
        Self::IpBlocked,
        Self::IpUnblocked,
        Self::MfaEnrolled,
        Self::MfaRemoved,
        Self::MfaFailed,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::PasswordResetForced,
        Self::InvitationSent,
        Self::InvitationAccepted,
        Self::SessionEnded,
        Self::TokenIssued,
        Self::TokenRevoked,
        Self::AssertionIssued,
        Self::SamlLogout,
        Self::SamlSpMetadataRefreshed,
        Self::KeyRotated,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserEnabled,
        Self::UserDisabled,
        Self::AdminChange,
        Self::AuditPruned,
        Self::EmergencyStarted,
        Self::EmergencyEnded,
        Self::EmergencyReviewed,
        Self::EmergencyDesignation,
        Self::AdminRead,
        Self::MasterKeyRotationStarted,
        Self::MasterKeyRotationFinished,
        Self::UpstreamLinked,
        Self::UpstreamUnlinked,
        Self::PasskeyRegistered,
        Self::PasskeyRenamed,
        Self::PasskeyRemoved,
        Self::FhirServerCreated,
        Self::FhirServerUpdated,
        Self::FhirServerDeleted,
        Self::FhirUserSet,
        Self::FhirUserCleared,
        Self::SmartLaunchCreated,
        Self::ConsentGiven,
        Self::ConsentWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInSucceeded => "sign_in.succeeded",
            Self::SignInFailed => "sign_in.failed",
            Self::AccountLocked => "account.locked",
            Self::AccountUnlocked => "account.unlocked",
            Self::IpBlocked => "ip.blocked",
            Self::IpUnblocked => "ip.unblocked",
            Self::MfaEnrolled => "mfa.enrolled",
            Self::MfaRemoved => "mfa.removed",
            Self::MfaFailed => "mfa.failed",
            Self::PasswordChanged => "password.changed",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset => "password.reset",
            Self::PasswordResetForced => "password.reset_forced",
            Self::InvitationSent => "invitation.sent",
            Self::InvitationAccepted => "invitation.accepted",
            Self::SessionEnded => "session.ended",
            Self::TokenIssued => "token.issued",
            Self::TokenRevoked => "token.revoked",
            Self::AssertionIssued => "assertion.issued",
            Self::SamlLogout => "saml.logout",
            Self::SamlSpMetadataRefreshed => "saml.sp.metadata_refreshed",
            Self::KeyRotated => "key.rotated",
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserEnabled => "user.enabled",
            Self::UserDisabled => "user.disabled",
            Self::AdminChange => "admin.changed",
            Self::AuditPruned => "audit.pruned",
            Self::EmergencyStarted => "emergency.started",
            Self::EmergencyEnded => "emergency.ended",
            Self::EmergencyReviewed => "emergency.reviewed",
            Self::EmergencyDesignation => "emergency.designation",
            Self::AdminRead => "admin.read",
            Self::MasterKeyRotationStarted => "keys.master_rotation_started",
            Self::MasterKeyRotationFinished => "keys.master_rotation_finished",
            Self::UpstreamLinked => "upstream.linked",
            Self::UpstreamUnlinked => "upstream.unlinked",
            Self::PasskeyRegistered => "passkey.registered",
            Self::PasskeyRenamed => "passkey.renamed",
            Self::PasskeyRemoved => "passkey.removed",
            Self::FhirServerCreated => "fhir_server.created",
            Self::FhirServerUpdated => "fhir_server.updated",
            Self::FhirServerDeleted => "fhir_server.deleted",
            Self::FhirUserSet => "fhir_user.set",
            Self::FhirUserCleared => "fhir_user.cleared",
            Self::SmartLaunchCreated => "smart.launch_created",
            Self::ConsentGiven => "consent.given",
            Self::ConsentWithdrawn => "consent.withdrawn",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown audit event type {:?}", truncate(s, 64)))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            other => Err(format!(
                "expected \"success\" or \"failure\", got {:?}",
                truncate(other, 64)
            )),
        }
    }
}

/// One event, as a capability describes it:
///
/// ```
/// # use gatehouse::audit::{AuditEvent, EventType, Outcome};
/// let event = AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
///     .subject("3f2c…")
///     .detail("reason", "wrong_password");
/// ```
///
/// `details` keys whose names suggest a secret are dropped when it is recorded (see
/// [`scrub`]): name details for what they are (`reason`, `client_id`, `grant`, `kid`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub event_type: EventType,
    pub outcome: Outcome,
    pub org_id: Option<String>,
    /// Who did it: the signed-in user or administrator; `None` for the system or the CLI.
    pub actor: Option<String>,
    /// Whom or what it concerns: usually a user id.
    pub subject: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(event_type: EventType, outcome: Outcome) -> Self {
        Self {
            event_type,
            outcome,
            org_id: None,
            actor: None,
            subject: None,
            client_ip: None,
            user_agent: None,
            request_id: None,
            details: Value::Object(Map::new()),
        }
    }

    /// What went well in the request `ctx`.
    pub fn success(event_type: EventType, ctx: &RequestContext) -> Self {
        Self::new(event_type, Outcome::Success).request(ctx)
    }

    /// Whose event it is: the user it concerns and their organisation.
    pub fn about(self, user_id: impl Into<String>, org_id: impl Into<String>) -> Self {
        self.subject(user_id).org(org_id)
    }

    pub fn org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The request it happened in: request id, client IP and user agent.
    pub fn request(mut self, ctx: &RequestContext) -> Self {
        self.request_id = Some(ctx.request_id.clone());
        self.client_ip = ctx.client_ip.map(|ip| ip.to_string());
        self.user_agent = ctx.user_agent.clone();
        self
    }

    /// Adds one detail (replacing a previous value under the same key).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if !self.details.is_object() {
            self.details = Value::Object(Map::new());
        }
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Replaces all details. A value that is not a JSON object is kept under `value`.
    pub fn details(mut self, details: Value) -> Self {
        self.details = match details {
            Value::Object(_) => details,
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                Value::Object(map)
            }
        };
        self
    }
}

/// Limits on what one event may hold. Details can carry what a client typed (an
/// unknown username), so every text is bounded before it reaches the database.
const MAX_ID_CHARS: usize = 256;
const MAX_IP_CHARS: usize = 64;
const MAX_USER_AGENT_CHARS: usize = 512;
const MAX_REQUEST_ID_CHARS: usize = 128;
const MAX_DETAIL_STRING_CHARS: usize = 1024;
const MAX_DETAILS_BYTES: usize = 16 * 1024;

/// Fragments of `details` key names that suggest a secret (compared case-insensitively).
const SECRET_KEY_FRAGMENTS: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "token",
    "code",
    "otp",
    "key",
];

/// Whether a details key will be dropped as possibly secret.
pub fn is_secret_key(name: &str) -> bool {
    let lower = name.to_lowercase();
    SECRET_KEY_FRAGMENTS.iter().any(|f| lower.contains(f))
}

/// Drops every object key, at any depth, whose name suggests a secret; returns the
/// dotted paths of the keys dropped (never their values).
///
/// Defence in depth (DESIGN §11, §12): callers must not put secrets in details at all,
/// but a `reset_token` slipped into a details map must still never reach the trail.
pub fn scrub(details: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    scrub_at(details, "", &mut dropped);
    dropped
}

fn scrub_at(value: &mut Value, path: &str, dropped: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let secret: Vec<String> = map.keys().filter(|k| is_secret_key(k)).cloned().collect();
            for key in secret {
                map.remove(&key);
                dropped.push(join_path(path, &key));
            }
            for (key, child) in map.iter_mut() {
                let child_path = join_path(path, key);
                scrub_at(child, &child_path, dropped);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub_at(item, &format!("{path}[{i}]"), dropped);
            }
        }
        Value::String(s) if s.chars().count() > MAX_DETAIL_STRING_CHARS => {
            *s = truncate(s, MAX_DETAIL_STRING_CHARS);
        }
        _ => {}
    }
}

fn join_path(path: &str, key: &str) -> String {
    // Key names come from code, but bound them anyway: they end up in a log line.
    let key = truncate(key, 64);
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Serialises JSON deterministically: object keys sorted by their UTF-8 bytes, no
/// whitespace, serde_json's escaping and number formatting. The chain hashes this text
/// exactly as stored, so it never has to be reproduced from a parsed value.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, child)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(child, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// An event made ready for the chain: scrubbed, bounded, timed to the microsecond.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEvent {
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub org_id: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub event_type: &'static str,
    pub outcome: &'static str,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Canonical JSON text of the details.
    pub details: String,
}

impl PreparedEvent {
    /// Scrubs and bounds `event`, logging (by name only) any details key it drops.
    pub fn new(event: AuditEvent, now: DateTime<Utc>) -> Self {
        let mut details = match event.details {
            Value::Object(_) => event.details,
            Value::Null => Value::Object(Map::new()),
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                Value::Object(map)
            }
        };
        for path in scrub(&mut details) {
            tracing::warn!(
                event_type = event.event_type.as_str(),
                key = %path,
                "dropped an audit details key that may hold a secret"
            );
        }
        let mut text = canonical_json(&details);
        if text.len() > MAX_DETAILS_BYTES {
            tracing::warn!(
                event_type = event.event_type.as_str(),
                bytes = text.len(),
                "audit details too large; replaced by their size"
            );
            text = canonical_json(&serde_json::json!({ "oversized_details_bytes": text.len() }));
        }
        Self {
            id: crate::store::new_id(),
            occurred_at: to_micros(now).naive_utc(),
            org_id: event.org_id.map(|s| clean(&s, MAX_ID_CHARS)),
            actor: event.actor.map(|s| clean(&s, MAX_ID_CHARS)),
            subject: event.subject.map(|s| clean(&s, MAX_ID_CHARS)),
            event_type: event.event_type.as_str(),
            outcome: event.outcome.as_str(),
            client_ip: event.client_ip.map(|s| clean(&s, MAX_IP_CHARS)),
            user_agent: event.user_agent.map(|s| clean(&s, MAX_USER_AGENT_CHARS)),
            request_id: event.request_id.map(|s| clean(&s, MAX_REQUEST_ID_CHARS)),
            details: text,
        }
    }
}

/// The chain records time to the microsecond: what PostgreSQL's TIMESTAMP keeps, so a
/// stored time reads back exactly as it was hashed.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Bounded, and without control characters (PostgreSQL TEXT refuses NUL; newlines in
/// an exported trail would only confuse readers).
pub(super) fn clean(s: &str, max_chars: usize) -> String {
    s.chars()
        .take(max_chars)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_event_type_has_a_unique_dotted_name_that_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            let name = t.as_str();
            assert!(seen.insert(name), "{name} used twice");
            let (area, action) = name.split_once('.').expect("dotted");
            assert!(!area.is_empty() && !action.is_empty(), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{name}"
            );
            assert_eq!(name.parse::<EventType>().unwrap(), *t);
        }
        assert!("sign_in.exploded".parse::<EventType>().is_err());
    }

    #[test]
    fn design_section_11_events_are_all_named() {
        for name in [
            "sign_in.succeeded",
            "sign_in.failed",
            "account.locked",
            "account.unlocked",
            "ip.blocked",
            "ip.unblocked",
            "mfa.enrolled",
            "mfa.removed",
            "mfa.failed",
            "password.changed",
            "password.reset_requested",
            "password.reset",
            "password.reset_forced",
            "session.ended",
            "token.issued",
            "token.revoked",
            "assertion.issued",
            "key.rotated",
            "user.created",
            "user.updated",
            "user.disabled",
            "admin.changed",
        ] {
            assert!(name.parse::<EventType>().is_ok(), "{name}");
        }
    }

    #[test]
    fn outcome_round_trips_and_rejects_others() {
        for o in [Outcome::Success, Outcome::Failure] {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        }
        assert!("maybe".parse::<Outcome>().is_err());
    }

    #[test]
    fn secret_looking_keys_are_dropped_at_any_depth_and_named() {
        let mut details = json!({
            "reason": "wrong_password",
            "Password": "hunter2",
            "reset_token": "abc",
            "nested": {"client_secret": "s", "otpCode": "123456", "kept": 1},
            "list": [{"apiKey": "k", "name": "x"}],
            "username": "rosa",
        });
        let mut dropped = scrub(&mut details);
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                "Password",
                "list[0].apiKey",
                "nested.client_secret",
                "nested.otpCode",
                "reset_token"
            ]
        );
        assert_eq!(
            details,
            json!({
                "reason": "wrong_password",
                "nested": {"kept": 1},
                "list": [{"name": "x"}],
                "username": "rosa",
            })
        );
        let text = canonical_json(&details);
        for secret in ["hunter2", "abc\"", "123456", "\"k\""] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level_and_has_no_whitespace() {
        let value = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "é\n\"q\""}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"é\n\"q\"","z":[3,{"x":true,"y":null}]},"b":1}"#
        );
        let reparsed: Value = serde_json::from_str(&canonical_json(&value)).unwrap();
        assert_eq!(reparsed, value);
    }

    #[test]
    fn prepared_event_bounds_what_a_client_can_send() {
        let event = AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
            .subject("x".repeat(10_000))
            .detail("username", "u".repeat(10_000))
            .details(json!({"username": "a\u{0}b", "items": vec!["y".repeat(900); 40]}));
        let prepared = PreparedEvent::new(event, Utc::now());
        assert_eq!(prepared.subject.as_ref().unwrap().chars().count(), 256);
        assert!(prepared.details.len() <= MAX_DETAILS_BYTES);
        assert!(prepared.details.contains("oversized_details_bytes"));

        let event = AuditEvent::new(EventType::SignInFailed, Outcome::Failure)
            .actor("a\u{0}\nb")
            .detail("username", "u".repeat(5_000));
        let prepared = PreparedEvent::new(event, Utc::now());
        assert_eq!(prepared.actor.as_deref(), Some("a\u{fffd}\u{fffd}b"));
        let details: Value = serde_json::from_str(&prepared.details).unwrap();
        assert_eq!(
            details["username"].as_str().unwrap().chars().count(),
            MAX_DETAIL_STRING_CHARS + 1
        );
    }

    #[test]
    fn time_is_kept_to_the_microsecond() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let prepared =
            PreparedEvent::new(AuditEvent::new(EventType::KeyRotated, Outcome::Success), t);
        assert_eq!(
            prepared.occurred_at.and_utc().to_rfc3339(),
            "2026-11-24T10:00:00.123456+00:00"
        );
    }

    #[test]
    fn non_object_details_are_kept_under_value() {
        let event =
            AuditEvent::new(EventType::AdminChange, Outcome::Success).details(json!([1, 2]));
        assert_eq!(event.details, json!({"value": [1, 2]}));
        let event = event.detail("object", "org");
        assert_eq!(event.details, json!({"value": [1, 2], "object": "org"}));
    }
}
