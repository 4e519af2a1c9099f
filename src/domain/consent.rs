//! Consent (DESIGN §18): what a person is asked before an app that must ask gets its
//! scopes (what each means; the pages put it in words), and which they may withhold.

use super::{LaunchContext, SmartContext, SmartScope};

/// Whether a person may withhold `scope` from an app: everything but `openid` (the app
/// is then not told who signed in at all: refusing is the Deny button) and `launch`
/// (the context the EHR opened the app in).
pub fn may_withhold(scope: &str) -> bool {
    !matches!(scope, "openid" | "launch")
}

/// Whose records a clinical scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The patient in context (`patient/`).
    Patient,
    /// Those the signed-in person may see (`user/`).
    User,
    /// Every record (`system/`).
    System,
}

/// What a scope lets an app do, for the consent page to say in the reader's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// A SMART clinical scope: its permissions (`c`, `r`, `u`, `d`, `s`, in order), whose
    /// records, which resource type (None: all), and whether constraints narrow it.
    Clinical {
        permissions: Vec<char>,
        whose: Whose,
        resource: Option<String>,
        limited: bool,
    },
    Launch,
    LaunchPatient,
    LaunchEncounter,
    FhirUser,
    OpenId,
    Profile,
    Email,
    OfflineAccess,
    OnlineAccess,
    /// A scope Gatehouse has no words for: shown as it is.
    Other(String),
}

/// What `scope` lets an app do.
pub fn meaning(scope: &str) -> Meaning {
    match SmartScope::parse(scope) {
        Ok(SmartScope::Clinical(c)) => Meaning::Clinical {
            permissions: c.permissions.to_string().chars().collect(),
            whose: match c.context {
                SmartContext::Patient => Whose::Patient,
                SmartContext::User => Whose::User,
                SmartContext::System => Whose::System,
            },
            resource: c.resource.clone(),
            limited: !c.constraints.is_empty(),
        },
        Ok(SmartScope::Launch) => Meaning::Launch,
        Ok(SmartScope::LaunchContext(LaunchContext::Patient)) => Meaning::LaunchPatient,
        Ok(SmartScope::LaunchContext(LaunchContext::Encounter)) => Meaning::LaunchEncounter,
        Ok(SmartScope::FhirUser) => Meaning::FhirUser,
        _ => match scope {
            "openid" => Meaning::OpenId,
            "profile" => Meaning::Profile,
            "email" => Meaning::Email,
            "offline_access" => Meaning::OfflineAccess,
            "online_access" => Meaning::OnlineAccess,
            other => Meaning::Other(other.to_owned()),
        },
    }
}

/// What a remembered decision gives a request for `requested`: the scopes allowed, when
/// the person was asked about all of them before; None: ask again.
pub fn remembered(
    asked: &[String],
    granted: &[String],
    requested: &[String],
) -> Option<Vec<String>> {
    if !requested.iter().all(|s| asked.contains(s)) {
        return None;
    }
    Some(
        requested
            .iter()
            .filter(|s| granted.contains(s) || !may_withhold(s))
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn a_scope_means_what_it_lets_the_app_do() {
        assert_eq!(
            meaning("patient/Condition.s?clinical-status=active"),
            Meaning::Clinical {
                permissions: vec!['s'],
                whose: Whose::Patient,
                resource: Some("Condition".into()),
                limited: true,
            }
        );
        assert_eq!(
            meaning("patient/*.read"),
            Meaning::Clinical {
                permissions: vec!['r', 's'],
                whose: Whose::Patient,
                resource: None,
                limited: false,
            }
        );
        assert_eq!(meaning("fhirUser"), Meaning::FhirUser);
        assert_eq!(meaning("x-y"), Meaning::Other("x-y".into()));
    }

    #[test]
    fn a_decision_is_remembered_for_what_was_asked_and_no_more() {
        let asked = list("openid fhirUser patient/*.rs offline_access");
        let granted = list("openid patient/*.rs");
        assert_eq!(
            remembered(&asked, &granted, &list("openid fhirUser patient/*.rs")),
            Some(list("openid patient/*.rs"))
        );
        assert_eq!(
            remembered(&asked, &granted, &list("openid patient/*.cruds")),
            None,
            "more than was asked: ask again"
        );
        assert!(!may_withhold("openid") && !may_withhold("launch"));
        assert!(may_withhold("patient/*.rs") && may_withhold("offline_access"));
    }
}
