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
    fn org_names_are_url_safe() {
        assert!(OrgName::parse("st-marys-2").is_ok());
        assert!(OrgName::parse("St Mary's").is_err());
        assert!(OrgName::parse("").is_err());
    }
}
