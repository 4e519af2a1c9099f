use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// DESIGN §3: what a user may administer. Ordered from least to most power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Support,
    OrgAdmin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Support => "support",
            Self::OrgAdmin => "org_admin",
            Self::SuperAdmin => "super_admin",
        }
    }

    /// Any role beyond `user` administers something; MFA policy may single these out.
    pub fn is_admin(self) -> bool {
        self != Self::User
    }
}

impl FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "support" => Ok(Self::Support),
            "org_admin" => Ok(Self::OrgAdmin),
            "super_admin" => Ok(Self::SuperAdmin),
            other => Err(ParseError(format!(
                "unknown role {other:?} (user, support, org_admin, super_admin)"
            ))),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
    /// Created by an administrator without a password; becomes active when the person
    /// chooses one from the invitation link (DESIGN §7). Cannot sign in before that.
    Invited,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Invited => "invited",
        }
    }
}

impl FromStr for UserStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            "invited" => Ok(Self::Invited),
            other => Err(ParseError(format!("unknown status {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::User, Role::Support, Role::OrgAdmin, Role::SuperAdmin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [
            UserStatus::Active,
            UserStatus::Disabled,
            UserStatus::Invited,
        ] {
            assert_eq!(status.as_str().parse::<UserStatus>().unwrap(), status);
        }
        assert!("pending".parse::<UserStatus>().is_err());
    }
}
