//! Per-organisation password policy (DESIGN §4): the rules a new password must meet,
//! every failing one reported at once, and when an old password has expired.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::{Email, Password, Username};

/// An organisation's password rules. Stored as JSON inside the organisation's
/// policies; every field has its DESIGN default, so `{}` is the default policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode code points), default 8.
    pub min_length: usize,
    /// Most characters (Unicode code points), default 128.
    pub max_length: usize,
    /// At least one upper-case letter (any script), default on.
    pub require_upper: bool,
    /// At least one lower-case letter (any script), default on.
    pub require_lower: bool,
    /// At least one character that is neither a letter nor white space, default on.
    pub require_digit_or_symbol: bool,
    /// Lowest acceptable zxcvbn score, 0..=4; 0 disables the check. Default 2.
    pub min_strength: u8,
    /// How many previous passwords may not be reused, default 5. Checked by the caller
    /// against stored hashes, which then reports [`PolicyViolation::Reused`].
    pub history: usize,
    /// Days after which a password must be changed at next sign-in; `None` (the
    /// default) means passwords do not expire.
    pub max_age_days: Option<u32>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            require_upper: true,
            require_lower: true,
            require_digit_or_symbol: true,
            min_strength: 2,
            history: 5,
            max_age_days: None,
        }
    }
}

/// One rule a proposed password breaks. `Display` is a sentence for the person
/// typing; no variant carries the password, so no message can echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    TooShort { min: usize },
    TooLong { max: usize },
    MissingUpper,
    MissingLower,
    MissingDigitOrSymbol,
    ContainsUsername,
    ContainsEmail,
    TooCommon,
    Reused { history: usize },
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort { min: 1 } => f.write_str("Use at least 1 character."),
            Self::TooShort { min } => write!(f, "Use at least {min} characters."),
            Self::TooLong { max: 1 } => f.write_str("Use at most 1 character."),
            Self::TooLong { max } => write!(f, "Use at most {max} characters."),
            Self::MissingUpper => f.write_str("Add an upper-case letter."),
            Self::MissingLower => f.write_str("Add a lower-case letter."),
            Self::MissingDigitOrSymbol => f.write_str("Add a digit or a symbol."),
            Self::ContainsUsername => f.write_str("Do not use your username in your password."),
            Self::ContainsEmail => f.write_str("Do not use your email address in your password."),
            Self::TooCommon => f.write_str("This password is too common or easy to guess."),
            Self::Reused { history: 1 } => {
                f.write_str("Use a password different from your last password.")
            }
            Self::Reused { history } => write!(
                f,
                "Use a password you have not used for your last {history} passwords."
            ),
        }
    }
}

impl PasswordPolicy {
    /// Highest `max_length` an administrator may set: a policy must never demand more
    /// than [`Password`] accepts, even when every character takes four bytes.
    pub const MAX_LENGTH_CEILING: usize = Password::MAX_INPUT_BYTES / 4;
    /// Highest zxcvbn score.
    pub const MAX_STRENGTH: u8 = 4;
    /// Most previous passwords that may be remembered.
    pub const MAX_HISTORY: usize = 24;
    /// Username or email local part shorter than this is not searched for in the
    /// password, so a two-letter username does not forbid half the alphabet.
    const MIN_CONTAINED_CHARS: usize = 3;

    /// Every failing rule at once (DESIGN §4: "each rule that fails is named to the
    /// user, all at once"), in a fixed order. Empty means acceptable.
    ///
    /// History is not checked here (that needs the stored hashes): the caller appends
    /// [`PolicyViolation::Reused`] itself. zxcvbn is skipped when the password is
    /// already too long, so its cost stays bounded by `max_length`.
    pub fn check(
        &self,
        password: &Password,
        username: &Username,
        email: &Email,
    ) -> Vec<PolicyViolation> {
        let raw = password.expose();
        let mut violations = Vec::new();

        let length = raw.chars().count();
        let too_long = length > self.max_length;
        if length < self.min_length {
            violations.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if too_long {
            violations.push(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }

        if self.require_upper && !raw.chars().any(char::is_uppercase) {
            violations.push(PolicyViolation::MissingUpper);
        }
        if self.require_lower && !raw.chars().any(char::is_lowercase) {
            violations.push(PolicyViolation::MissingLower);
        }
        if self.require_digit_or_symbol
            && !raw
                .chars()
                .any(|c| !c.is_alphabetic() && !c.is_whitespace())
        {
            violations.push(PolicyViolation::MissingDigitOrSymbol);
        }

        // Compare in the username's own form (NFKC, lower case), so neither case nor
        // full-width look-alikes hide the username or email inside the password.
        let folded = fold(raw);
        let folded_username = fold(username.as_str());
        if folded_username.chars().count() >= Self::MIN_CONTAINED_CHARS
            && folded.contains(&folded_username)
        {
            violations.push(PolicyViolation::ContainsUsername);
        }
        let local_part = email
            .as_str()
            .rsplit_once('@')
            .map_or(email.as_str(), |(local, _)| local);
        let folded_local = fold(local_part);
        if folded.contains(&fold(email.as_str()))
            || (folded_local.chars().count() >= Self::MIN_CONTAINED_CHARS
                && folded.contains(&folded_local))
        {
            violations.push(PolicyViolation::ContainsEmail);
        }

        if self.min_strength > 0 && !too_long {
            let inputs = [username.as_str(), email.as_str(), local_part];
            let score = u8::from(zxcvbn::zxcvbn(raw, &inputs).score());
            if score < self.min_strength {
                violations.push(PolicyViolation::TooCommon);
            }
        }

        violations
    }

    /// True when a password last changed at `changed_at` has reached `max_age_days`
    /// at `now` (it expires at `changed_at + max_age_days`, inclusive). Never true
    /// without a maximum age, nor for a `changed_at` in the future.
    pub fn is_expired(&self, changed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let Some(days) = self.max_age_days else {
            return false;
        };
        let Some(max_age) = TimeDelta::try_days(i64::from(days)) else {
            return false;
        };
        now.signed_duration_since(changed_at) >= max_age
    }

    /// Sanity of an administrator-supplied policy. `Err` names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_length < 1 {
            return Err("min_length must be at least 1".into());
        }
        if self.max_length > Self::MAX_LENGTH_CEILING {
            return Err(format!(
                "max_length must be at most {}",
                Self::MAX_LENGTH_CEILING
            ));
        }
        if self.min_length > self.max_length {
            return Err(format!(
                "min_length ({}) must not exceed max_length ({})",
                self.min_length, self.max_length
            ));
        }
        if self.min_strength > Self::MAX_STRENGTH {
            return Err(format!(
                "min_strength must be between 0 and {}",
                Self::MAX_STRENGTH
            ));
        }
        if self.history > Self::MAX_HISTORY {
            return Err(format!("history must be at most {}", Self::MAX_HISTORY));
        }
        if self.max_age_days == Some(0) {
            return Err("max_age_days must be at least 1, or absent for no expiry".into());
        }
        Ok(())
    }
}

/// The form names are compared in: NFKC, then lower case (as [`Username`] does).
fn fold(s: &str) -> String {
    s.nfkc().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use PolicyViolation::*;

    const GOOD: &str = "Correct-Horse-Battery-9";

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).unwrap()
    }

    fn alice() -> (Username, Email) {
        (
            Username::parse("alice").unwrap(),
            Email::parse("alice.liddell@example.org").unwrap(),
        )
    }

    /// Default policy, user `alice` / `alice.liddell@example.org`.
    fn check(password: &str) -> Vec<PolicyViolation> {
        check_under(&PasswordPolicy::default(), password)
    }

    /// `policy`, user `alice` / `alice.liddell@example.org`.
    /// The default policy with one change.
    fn adjusted(change: impl FnOnce(&mut PasswordPolicy)) -> PasswordPolicy {
        let mut policy = PasswordPolicy::default();
        change(&mut policy);
        policy
    }

    fn check_under(policy: &PasswordPolicy, password: &str) -> Vec<PolicyViolation> {
        let (u, e) = alice();
        policy.check(&pw(password), &u, &e)
    }

    fn check_as(password: &str, username: &str, email: &str) -> Vec<PolicyViolation> {
        PasswordPolicy::default().check(
            &pw(password),
            &Username::parse(username).unwrap(),
            &Email::parse(email).unwrap(),
        )
    }

    fn score(password: &str) -> u8 {
        let (u, e) = alice();
        u8::from(zxcvbn::zxcvbn(password, &[u.as_str(), e.as_str()]).score())
    }

    #[test]
    fn a_good_password_passes() {
        assert!(score(GOOD) >= 2, "zxcvbn score {}", score(GOOD));
        assert_eq!(check(GOOD), vec![]);
    }

    #[test]
    fn a_short_password_fails_only_for_length() {
        let policy = adjusted(|p| p.min_length = 30);
        assert_eq!(check_under(&policy, GOOD), vec![TooShort { min: 30 }]);
    }

    #[test]
    fn a_long_password_fails_only_for_length() {
        let policy = adjusted(|p| p.max_length = 16);
        assert_eq!(check_under(&policy, GOOD), vec![TooLong { max: 16 }]);
    }

    #[test]
    fn a_too_long_password_skips_the_strength_check() {
        // Weak by any measure, but only the length is reported.
        let policy = PasswordPolicy {
            max_length: 10,
            min_strength: 4,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            check_under(&policy, "Aaaaaaaaaaaaaaaaaaaa1"),
            vec![TooLong { max: 10 }]
        );
    }

    #[test]
    fn a_password_without_upper_case_fails_only_for_upper_case() {
        assert_eq!(check("correct-horse-battery-9"), vec![MissingUpper]);
    }

    #[test]
    fn a_password_without_lower_case_fails_only_for_lower_case() {
        assert_eq!(check("CORRECT-HORSE-BATTERY-9"), vec![MissingLower]);
    }

    #[test]
    fn a_password_of_letters_only_fails_only_for_digit_or_symbol() {
        assert_eq!(
            check("CorrectHorseBatteryStaple"),
            vec![MissingDigitOrSymbol]
        );
    }

    #[test]
    fn a_space_is_not_a_symbol() {
        assert_eq!(
            check("Correct Horse Battery Staple"),
            vec![MissingDigitOrSymbol]
        );
        assert_eq!(check("Correct Horse Battery Staple!"), vec![]);
    }

    #[test]
    fn a_common_password_fails_only_for_strength() {
        assert!(score("Password1") < 2);
        assert_eq!(check("Password1"), vec![TooCommon]);
    }

    #[test]
    fn a_password_containing_the_username_fails_only_for_that() {
        assert_eq!(check("MyAlice!Garden77"), vec![ContainsUsername]);
    }

    #[test]
    fn username_containment_is_case_and_width_insensitive() {
        assert_eq!(check("MyALICE!Garden77"), vec![ContainsUsername]);
        // Full-width ＡＬＩＣＥ folds to the same username under NFKC.
        assert_eq!(check("Myａｌｉｃｅ!Garden77"), vec![ContainsUsername]);
    }

    #[test]
    fn a_two_character_username_does_not_trigger_containment() {
        let password = "Always-Alert-Pal-42";
        assert_eq!(check_as(password, "al", "zed.quill@example.org"), vec![]);
    }

    #[test]
    fn a_password_containing_the_email_local_part_fails_only_for_that() {
        assert_eq!(
            check_as("Carol.Smith-Rides-42", "bob7", "carol.smith@example.org"),
            vec![ContainsEmail]
        );
        // Local parts are kept as typed; the comparison still ignores case.
        assert_eq!(
            check_as("carol.smith-Rides-42", "bob7", "Carol.Smith@Example.org"),
            vec![ContainsEmail]
        );
    }

    #[test]
    fn a_password_containing_the_whole_email_fails_even_with_a_short_local_part() {
        assert_eq!(
            check_as("Xy!JO@Example.org9", "bob7", "jo@example.org"),
            vec![ContainsEmail]
        );
        // ...but a two-letter local part alone is not searched for.
        assert_eq!(
            check_as("Jolly-Horse-Battery-9", "bob7", "jo@example.org"),
            vec![]
        );
    }

    #[test]
    fn every_failing_rule_is_reported_at_once() {
        assert_eq!(
            check("alice"),
            vec![
                TooShort { min: 8 },
                MissingUpper,
                MissingDigitOrSymbol,
                ContainsUsername,
                TooCommon
            ]
        );
        assert_eq!(check("password1"), vec![MissingUpper, TooCommon]);
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        assert_eq!("ÉÉÉÉéééé1".len(), 17);
        let policy = PasswordPolicy {
            min_length: 9,
            max_length: 9,
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(check_under(&policy, "ÉÉÉÉéééé1"), vec![]);
        assert_eq!(check_under(&policy, "ÉÉÉÉééé1"), vec![TooShort { min: 9 }]);
    }

    #[test]
    fn accented_letters_count_as_upper_and_lower_case() {
        let policy = PasswordPolicy {
            min_length: 1,
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(check_under(&policy, "ñandú-9"), vec![MissingUpper]);
        assert_eq!(check_under(&policy, "ÑANDÚ-9"), vec![MissingLower]);
        assert_eq!(check_under(&policy, "Ñandú-9"), vec![]);
    }

    #[test]
    fn a_disabled_rule_is_not_checked() {
        let policy = PasswordPolicy {
            require_upper: false,
            require_lower: false,
            require_digit_or_symbol: false,
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(check_under(&policy, "password"), vec![]);
    }

    fn days_ago(days: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (now - TimeDelta::days(days), now)
    }

    #[test]
    fn a_password_expires_after_its_maximum_age() {
        let policy = adjusted(|p| p.max_age_days = Some(90));
        let (changed, now) = days_ago(89);
        assert!(!policy.is_expired(changed, now));
        let (changed, now) = days_ago(90);
        assert!(policy.is_expired(changed, now));
        let (changed, now) = days_ago(91);
        assert!(policy.is_expired(changed, now));
        // A change time in the future (clock skew) is not expired.
        let (changed, now) = days_ago(-5);
        assert!(!policy.is_expired(changed, now));
    }

    #[test]
    fn without_a_maximum_age_a_password_never_expires() {
        let policy = PasswordPolicy::default();
        let (changed, now) = days_ago(100_000);
        assert!(!policy.is_expired(changed, now));
    }

    #[test]
    fn the_largest_maximum_age_does_not_overflow() {
        let policy = adjusted(|p| p.max_age_days = Some(u32::MAX));
        assert!(!policy.is_expired(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn an_empty_policy_document_gets_design_defaults() {
        let policy: PasswordPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy, PasswordPolicy::default());
        assert_eq!(policy.min_length, 8);
        assert_eq!(policy.max_length, 128);
        assert_eq!(policy.min_strength, 2);
        assert_eq!(policy.history, 5);
        assert_eq!(policy.max_age_days, None);
        assert!(policy.require_upper && policy.require_lower && policy.require_digit_or_symbol);
    }

    #[test]
    fn a_partial_policy_document_keeps_other_defaults_and_round_trips() {
        let policy: PasswordPolicy =
            serde_json::from_str(r#"{"min_length": 12, "max_age_days": 90}"#).unwrap();
        assert_eq!(
            policy,
            PasswordPolicy {
                min_length: 12,
                max_age_days: Some(90),
                ..PasswordPolicy::default()
            }
        );
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            serde_json::from_str::<PasswordPolicy>(&json).unwrap(),
            policy
        );
    }

    #[test]
    fn an_unknown_policy_field_is_rejected() {
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_lenght": 12}"#).is_err());
    }

    #[test]
    fn the_default_policy_is_valid() {
        assert_eq!(PasswordPolicy::default().validate(), Ok(()));
        let widest = PasswordPolicy {
            min_length: 1,
            max_length: 256,
            min_strength: 4,
            history: 24,
            max_age_days: Some(1),
            ..PasswordPolicy::default()
        };
        assert_eq!(widest.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_insane_policies_naming_the_field() {
        let base = PasswordPolicy::default();
        let cases = [
            (
                PasswordPolicy {
                    min_length: 20,
                    max_length: 10,
                    ..base.clone()
                },
                "min_length",
            ),
            (
                PasswordPolicy {
                    min_strength: 5,
                    ..base.clone()
                },
                "min_strength",
            ),
            (
                PasswordPolicy {
                    min_length: 0,
                    ..base.clone()
                },
                "min_length",
            ),
            (
                PasswordPolicy {
                    max_length: 257,
                    ..base.clone()
                },
                "max_length",
            ),
            (
                PasswordPolicy {
                    history: 25,
                    ..base.clone()
                },
                "history",
            ),
            (
                PasswordPolicy {
                    max_age_days: Some(0),
                    ..base.clone()
                },
                "max_age_days",
            ),
        ];
        for (policy, field) in cases {
            let err = policy.validate().unwrap_err();
            assert!(err.contains(field), "{policy:?}: {err}");
        }
    }

    #[test]
    fn messages_never_contain_the_password() {
        let password = "alice";
        let mut violations = check(password);
        violations.extend([
            TooLong { max: 128 },
            MissingLower,
            ContainsEmail,
            Reused { history: 5 },
            Reused { history: 1 },
            TooShort { min: 1 },
        ]);
        for v in &violations {
            let message = v.to_string();
            assert!(!message.to_lowercase().contains(password), "{message}");
            assert!(message.ends_with('.'), "{message}");
        }
        assert_eq!(
            TooShort { min: 8 }.to_string(),
            "Use at least 8 characters."
        );
        assert_eq!(
            Reused { history: 5 }.to_string(),
            "Use a password you have not used for your last 5 passwords."
        );
    }

    fn arbitrary_password() -> impl Strategy<Value = String> {
        prop_oneof![
            // Any Unicode, up to 256 chars (≤ 1024 bytes, so usually accepted).
            "\\PC{0,256}",
            // Long printable ASCII, up to the 1024-byte cap.
            "[ -~]{0,1024}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn check_never_panics(raw in arbitrary_password(), name in "[a-zA-Z0-9._@+-]{1,20}") {
            let Ok(password) = Password::parse(raw) else {
                return Ok(());
            };
            let username = Username::parse(&name).unwrap();
            let email = Email::parse(&format!("{name}@example.org")).unwrap();
            let permissive = PasswordPolicy {
                max_length: 256,
                min_strength: 4,
                ..PasswordPolicy::default()
            };
            for policy in [PasswordPolicy::default(), permissive] {
                let violations = policy.check(&password, &username, &email);
                let count = password.expose().chars().count();
                prop_assert_eq!(
                    violations.contains(&PolicyViolation::TooLong { max: policy.max_length }),
                    count > policy.max_length
                );
            }
        }
    }
}
