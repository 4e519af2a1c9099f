use serde::{Deserialize, Serialize};

use super::{LockoutPolicy, ParseError, PasswordPolicy, Role};

/// An organisation's short name (the `--org` of the CLI): lower-case, URL-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 63 {
            return Err(ParseError(
                "organisation name must be 1 to 63 characters".into(),
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ParseError(
                "organisation name may contain a-z, 0-9 and - only".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrgName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The policies an organisation owns (DESIGN §3). Stored as one JSON document; every
/// field has its DESIGN default, so older documents gain new knobs at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgPolicy {
    pub password: PasswordPolicy,
    pub lockout: LockoutPolicy,
    pub mfa: MfaPolicy,
    /// Where lockout and IP-block alerts go.
    pub support_email: Option<String>,
    /// SSO session idle timeout (DESIGN §8: 72 h).
    pub session_idle_secs: u64,
    /// SSO session absolute lifetime (DESIGN §8: 30 days).
    pub session_absolute_secs: u64,
    /// Told, with the support contact, whenever someone breaks the glass (DESIGN §15).
    pub privacy_officer_email: Option<String>,
    /// How long an emergency window stays open (DESIGN §15: 60 minutes); never
    /// extended: a longer need is a new window, with a new reason.
    pub emergency_window_minutes: u32,
    /// After how long an emergency session still awaiting review is overdue, and mailed
    /// about daily (72 hours).
    pub emergency_review_overdue_hours: u32,
    /// Passkeys (DESIGN §17): allowed, required, phishing-resistant only for admins.
    pub passkeys: super::PasskeyPolicy,
    /// The language of its people's pages and mails when neither they nor their
    /// browser chose one Gatehouse speaks (issue 31): `en`, `es-419`.
    pub language: Option<String>,
    /// The time zone its people's dates are shown in unless they chose another (an
    /// IANA name, `America/Bogota`); UTC when absent.
    pub time_zone: Option<String>,
}

impl OrgPolicy {
    /// Bounds an administrator may set: one message per failing field, each naming it,
    /// so a form can show every mistake at once.
    pub fn validate(&self) -> Result<(), PolicyProblems> {
        let p = &self.password;
        let l = &self.lockout;
        let checks: [(&str, bool, &str); 17] = [
            (
                "password.min_length",
                (8..=128).contains(&p.min_length),
                "between 8 and 128",
            ),
            (
                "password.max_length",
                p.max_length >= p.min_length && p.max_length <= 1024,
                "at least min_length and at most 1024",
            ),
            ("password.min_strength", p.min_strength <= 4, "0 to 4"),
            ("password.history", p.history <= 24, "0 to 24"),
            (
                "password.max_age_days",
                p.max_age_days.is_none_or(|d| (1..=3650).contains(&d)),
                "1 to 3650, or null",
            ),
            ("lockout.threshold", l.threshold <= 100, "0 (off) to 100"),
            (
                "lockout.lock_minutes",
                (1..=7 * 24 * 60).contains(&l.lock_minutes),
                "1 to 10080",
            ),
            (
                "lockout.permanent_after",
                l.permanent_after <= 100,
                "0 (never) to 100",
            ),
            (
                "lockout.reset_failures_after_minutes",
                (1..=30 * 24 * 60).contains(&l.reset_failures_after_minutes),
                "1 to 43200",
            ),
            (
                "session_idle_secs",
                (60..=30 * 86_400).contains(&self.session_idle_secs),
                "60 to 2592000",
            ),
            (
                "session_absolute_secs",
                self.session_absolute_secs >= self.session_idle_secs
                    && self.session_absolute_secs <= 365 * 86_400,
                "at least session_idle_secs and at most 31536000",
            ),
            (
                "support_email",
                self.support_email
                    .as_deref()
                    .is_none_or(|e| super::Email::parse(e).is_ok()),
                "an email address",
            ),
            (
                "privacy_officer_email",
                self.privacy_officer_email
                    .as_deref()
                    .is_none_or(|e| super::Email::parse(e).is_ok()),
                "an email address",
            ),
            (
                "emergency_window_minutes",
                (5..=12 * 60).contains(&self.emergency_window_minutes),
                "5 to 720",
            ),
            (
                "emergency_review_overdue_hours",
                (1..=30 * 24).contains(&self.emergency_review_overdue_hours),
                "1 to 720",
            ),
            (
                "language",
                self.language
                    .as_deref()
                    .is_none_or(|l| crate::i18n::supported(l).as_deref() == Some(l)),
                "a language Gatehouse speaks (en, es-419)",
            ),
            (
                "time_zone",
                self.time_zone
                    .as_deref()
                    .is_none_or(|z| crate::i18n::time_zone(z).as_deref() == Some(z)),
                "an IANA time zone name, as America/Bogota",
            ),
        ];
        let mut problems: Vec<String> = checks
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(field, _, want)| format!("{field}: must be {want}"))
            .collect();
        problems.extend(self.passkeys.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyProblems(problems))
        }
    }
}

/// The fields of an [`OrgPolicy`] that are out of bounds, in document order; shown as
/// one line (`field: must be …; field: must be …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblems(pub Vec<String>);

impl std::fmt::Display for PolicyProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl Default for OrgPolicy {
    fn default() -> Self {
        Self {
            password: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            mfa: MfaPolicy::default(),
            support_email: None,
            session_idle_secs: 72 * 3600,
            session_absolute_secs: 30 * 24 * 3600,
            privacy_officer_email: None,
            emergency_window_minutes: 60,
            emergency_review_overdue_hours: 72,
            passkeys: super::PasskeyPolicy::default(),
            language: None,
            time_zone: None,
        }
    }
}

/// Who must use a second factor (DESIGN §6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaPolicy {
    Off,
    /// `support`, `org_admin` and `super_admin`: whoever can change other accounts.
    #[default]
    Admins,
    Everyone,
}

impl MfaPolicy {
    pub fn requires(self, role: Role) -> bool {
        match self {
            Self::Off => false,
            Self::Admins => role.is_admin(),
            Self::Everyone => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_document_gets_design_defaults() {
        let p: OrgPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, OrgPolicy::default());
        assert_eq!(p.session_idle_secs, 259_200);
    }

    #[test]
    fn mfa_is_required_of_admin_roles_by_default() {
        let p = OrgPolicy::default().mfa;
        assert!(!p.requires(Role::User));
        assert!(p.requires(Role::Support) && p.requires(Role::SuperAdmin));
        assert!(MfaPolicy::Everyone.requires(Role::User));
        assert!(!MfaPolicy::Off.requires(Role::SuperAdmin));
    }

    #[test]
    fn every_failing_policy_field_is_named() {
        assert_eq!(OrgPolicy::default().validate(), Ok(()));
        let mut p = OrgPolicy::default();
        p.password.min_length = 4;
        p.lockout.lock_minutes = 0;
        p.support_email = Some("not an address".into());
        let err = p.validate().unwrap_err();
        let problems = &err.0;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("password.min_length: "));
        assert!(problems[1].starts_with("lockout.lock_minutes: "));
        assert!(problems[2].starts_with("support_email: "));
        assert!(
            err.to_string()
                .contains("password.min_length: must be between 8 and 128; ")
        );
    }

    #[test]
    fn org_names_are_url_safe() {
        assert!(OrgName::parse("st-marys-2").is_ok());
        assert!(OrgName::parse("St Mary's").is_err());
        assert!(OrgName::parse("").is_err());
    }
}
