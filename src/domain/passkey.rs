//! What an organisation asks of passkeys (DESIGN §17), and what a passkey is called.

use serde::{Deserialize, Serialize};

use super::{ParseError, Role};

/// Where passkeys stand in an organisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyMode {
    /// Nobody registers or uses one.
    Off,
    /// Anyone may register one, for a second factor or to sign in without a password.
    #[default]
    Allowed,
    /// `support`, `org_admin` and `super_admin` must have one: they register it at
    /// their next sign-in.
    RequiredForAdmins,
    /// Everyone must have one.
    RequiredForEveryone,
}

/// The organisation's passkey rules, part of its policy document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeyPolicy {
    pub mode: PasskeyMode,
    /// Administrators' second factor must resist phishing: a passkey, never a TOTP
    /// code (NIST SP 800-63B AAL3 asks for verifier-impersonation resistance).
    pub phishing_resistant_admins: bool,
    /// When not empty, only authenticators whose AAGUID is listed may be registered.
    pub allowed_aaguids: Vec<uuid::Uuid>,
}

impl PasskeyPolicy {
    /// The most AAGUIDs a policy lists.
    pub const MAX_AAGUIDS: usize = 200;

    pub fn allowed(&self) -> bool {
        self.mode != PasskeyMode::Off
    }

    /// Whether someone of `role` must have a passkey before going on.
    pub fn required_for(&self, role: Role) -> bool {
        let by_mode = match self.mode {
            PasskeyMode::Off | PasskeyMode::Allowed => false,
            PasskeyMode::RequiredForAdmins => role.is_admin(),
            PasskeyMode::RequiredForEveryone => true,
        };
        by_mode || self.phishing_resistant_for(role)
    }

    /// Whether only a passkey counts as the second factor of someone of `role`.
    pub fn phishing_resistant_for(&self, role: Role) -> bool {
        self.phishing_resistant_admins && role.is_admin()
    }

    /// Whether a TOTP code may be the second factor of someone of `role`.
    pub fn totp_allowed_for(&self, role: Role) -> bool {
        !self.phishing_resistant_for(role)
    }

    /// Whether an authenticator of this AAGUID (None: it gave none) may be registered.
    pub fn admits(&self, aaguid: Option<uuid::Uuid>) -> bool {
        self.allowed_aaguids.is_empty() || aaguid.is_some_and(|a| self.allowed_aaguids.contains(&a))
    }

    /// Out-of-bounds fields, each as `field: must be …`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.phishing_resistant_admins && self.mode == PasskeyMode::Off {
            problems.push(
                "passkeys.phishing_resistant_admins: must be false while passkeys.mode is off"
                    .to_owned(),
            );
        }
        if self.allowed_aaguids.len() > Self::MAX_AAGUIDS {
            problems.push(format!(
                "passkeys.allowed_aaguids: must list at most {}",
                Self::MAX_AAGUIDS
            ));
        }
        problems
    }
}

/// What a person calls one of their passkeys ("Work laptop"): 1 to 64 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ParseError("Give the passkey a name.".into()));
        }
        if name.chars().count() > Self::MAX_CHARS || name.chars().any(char::is_control) {
            return Err(ParseError(format!(
                "A passkey's name is at most {} characters, without control characters.",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_are_allowed_and_required_of_nobody_by_default() {
        let p = PasskeyPolicy::default();
        assert!(p.allowed());
        assert!(!p.required_for(Role::SuperAdmin));
        assert!(p.totp_allowed_for(Role::SuperAdmin));
        assert!(p.admits(None));
        assert!(p.problems().is_empty());
    }

    #[test]
    fn phishing_resistance_for_admins_requires_a_passkey_and_turns_totp_off_for_them_only() {
        let p = PasskeyPolicy {
            phishing_resistant_admins: true,
            ..PasskeyPolicy::default()
        };
        assert!(p.required_for(Role::OrgAdmin) && !p.totp_allowed_for(Role::OrgAdmin));
        assert!(!p.required_for(Role::User) && p.totp_allowed_for(Role::User));
        let off = PasskeyPolicy {
            mode: PasskeyMode::Off,
            ..p
        };
        assert_eq!(off.problems().len(), 1);
    }

    #[test]
    fn required_modes_name_their_roles() {
        let admins = PasskeyPolicy {
            mode: PasskeyMode::RequiredForAdmins,
            ..PasskeyPolicy::default()
        };
        assert!(admins.required_for(Role::Support) && !admins.required_for(Role::User));
        let all = PasskeyPolicy {
            mode: PasskeyMode::RequiredForEveryone,
            ..PasskeyPolicy::default()
        };
        assert!(all.required_for(Role::User));
    }

    #[test]
    fn an_aaguid_list_admits_only_what_it_lists() {
        let listed = uuid::Uuid::from_u128(0xcb69_481e_8ff7_4039_93ec_0a27_29a1_54a8);
        let p = PasskeyPolicy {
            allowed_aaguids: vec![listed],
            ..PasskeyPolicy::default()
        };
        assert!(p.admits(Some(listed)));
        assert!(!p.admits(Some(uuid::Uuid::nil())) && !p.admits(None));
    }

    #[test]
    fn passkey_names_are_short_printable_text() {
        assert_eq!(
            PasskeyName::parse("  Work laptop ").unwrap().as_str(),
            "Work laptop"
        );
        assert!(PasskeyName::parse("").is_err());
        assert!(PasskeyName::parse("a\u{7}b").is_err());
        assert!(PasskeyName::parse(&"x".repeat(65)).is_err());
    }
}
