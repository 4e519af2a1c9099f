//! Consent (DESIGN §18): what a person is asked before an app that must ask gets its
//! scopes, in plain words, and which scopes they may withhold.

use super::{LaunchContext, SmartContext, SmartScope};

/// Whether a person may withhold `scope` from an app: everything but `openid` (the app
/// is then not told who signed in at all: refusing is the Deny button) and `launch`
/// (the context the EHR opened the app in).
pub fn may_withhold(scope: &str) -> bool {
    !matches!(scope, "openid" | "launch")
}

/// `MedicationRequest` → `medication requests`.
fn resource_words(resource: &str) -> String {
    let mut out = String::new();
    for (i, ch) in resource.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    if !out.ends_with('s') {
        out.push('s');
    }
    out
}

/// `cruds` → `create, read, update, delete and search`, capitalised.
fn verbs(permissions: &str) -> String {
    let words: Vec<&str> = permissions
        .chars()
        .filter_map(|c| match c {
            'c' => Some("create"),
            'r' => Some("read"),
            'u' => Some("update"),
            'd' => Some("delete"),
            's' => Some("search"),
            _ => None,
        })
        .collect();
    let text = match words.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// What `scope` lets an app do, as a person reads it.
pub fn plain_words(scope: &str) -> String {
    match SmartScope::parse(scope) {
        Ok(SmartScope::Clinical(c)) => {
            let whose = match (c.context, c.resource.as_deref()) {
                (SmartContext::Patient, None) => "all of the patient's records".to_owned(),
                (SmartContext::Patient, Some(r)) => format!("the patient's {}", resource_words(r)),
                (SmartContext::User, None) => "all records you may see".to_owned(),
                (SmartContext::User, Some(r)) => format!("{} you may see", resource_words(r)),
                (SmartContext::System, None) => "all records".to_owned(),
                (SmartContext::System, Some(r)) => format!("all {}", resource_words(r)),
            };
            let limited = if c.constraints.is_empty() {
                ""
            } else {
                " (some of them only)"
            };
            format!("{} {whose}{limited}", verbs(&c.permissions.to_string()))
        }
        Ok(SmartScope::Launch) => "Open in the patient and visit your EHR has open".into(),
        Ok(SmartScope::LaunchContext(LaunchContext::Patient)) => {
            "Know which patient's record to open".into()
        }
        Ok(SmartScope::LaunchContext(LaunchContext::Encounter)) => {
            "Know which visit to open".into()
        }
        Ok(SmartScope::FhirUser) => "Know who you are in the clinical record".into(),
        _ => match scope {
            "openid" => "Know that it is you who signed in".into(),
            "profile" => "See your name and username".into(),
            "email" => "See your email address".into(),
            "offline_access" => "Keep access after you sign out, until you withdraw it".into(),
            "online_access" => "Keep access while you are signed in".into(),
            other => format!("Use “{other}”"),
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
    fn scopes_read_as_plain_words() {
        assert_eq!(
            plain_words("patient/Observation.rs"),
            "Read and search the patient's observations"
        );
        assert_eq!(
            plain_words("user/MedicationRequest.cud"),
            "Create, update and delete medication requests you may see"
        );
        assert_eq!(
            plain_words("patient/*.read"),
            "Read and search all of the patient's records"
        );
        assert_eq!(
            plain_words("patient/Condition.s?clinical-status=active"),
            "Search the patient's conditions (some of them only)"
        );
        assert_eq!(
            plain_words("fhirUser"),
            "Know who you are in the clinical record"
        );
        assert!(plain_words("openid").contains("signed in"));
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
