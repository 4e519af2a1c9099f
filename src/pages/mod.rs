//! The pages people meet (DESIGN §2, §19): signing in (`/login`, its second-factor
//! steps), their own account (`/account`), and recovery (`/reset`, `/invite`). A door
//! like the protocols: each handler parses, calls one sign-in capability (`auth`), and
//! renders; the sign-in capabilities know nothing of pages.

pub mod account;
pub mod branding;
pub mod login;
pub mod recovery;

use crate::{
    auth::account::PasswordProblem,
    domain::{PolicyViolation, Role},
    i18n::{Id, Tr},
};

/// A role's name for people.
pub fn role_name(role: Role) -> Id {
    match role {
        Role::User => Id("role-user"),
        Role::Support => Id("role-support"),
        Role::OrgAdmin => Id("role-org-admin"),
        Role::SuperAdmin => Id("role-super-admin"),
    }
}

impl PasswordProblem {
    /// The problem in the reader's language, for the password forms.
    pub fn said(&self, tr: &Tr) -> String {
        match self {
            Self::Missing => tr.t("password-missing"),
            Self::TooLong => tr.t("password-too-long"),
            Self::Mismatch => tr.t("passwords-differ"),
            Self::Rule(rule) => match rule {
                PolicyViolation::TooShort { min } => tr.n("password-too-short", "min", *min),
                PolicyViolation::TooLong { max } => tr.n("password-over-max", "max", *max),
                PolicyViolation::MissingUpper => tr.t("password-needs-upper"),
                PolicyViolation::MissingLower => tr.t("password-needs-lower"),
                PolicyViolation::MissingDigitOrSymbol => tr.t("password-needs-digit-or-symbol"),
                PolicyViolation::ContainsUsername => tr.t("password-has-username"),
                PolicyViolation::ContainsEmail => tr.t("password-has-email"),
                PolicyViolation::TooCommon => tr.t("password-too-common"),
                PolicyViolation::Reused { history } => tr.n("password-reused", "history", *history),
            },
        }
    }
}

/// Why a passkey was not registered, in the reader's language.
pub fn passkey_refusal(why: crate::auth::passkey::ceremony::Refusal, tr: &Tr) -> String {
    use crate::auth::passkey::ceremony::Refusal;
    tr.id(match why {
        Refusal::TooLarge => Id("passkey-answer-too-large"),
        Refusal::NotCreated => Id("passkey-not-created"),
        Refusal::TimedOut => Id("passkey-setup-timed-out"),
        Refusal::Invalid => Id("passkey-not-registered"),
        Refusal::KindNotAllowed => Id("passkey-kind-not-allowed"),
        Refusal::AlreadyOrFull => Id("passkey-already-or-full"),
    })
}

/// Why `raw` is not a passkey's name (`PasskeyName::parse` refused it).
pub fn passkey_name_problem(raw: &str, tr: &Tr) -> String {
    match raw.trim().is_empty() {
        true => tr.t("passkey-name-missing"),
        false => tr.t("passkey-name-too-long"),
    }
}

/// Why the glass was not broken, in the reader's language; `reason` is what was typed.
pub fn emergency_refusal(why: &crate::auth::emergency::Refusal, reason: &str, tr: &Tr) -> String {
    use crate::{auth::emergency::Refusal, domain::EmergencyReason};
    match why {
        Refusal::NotDesignated => tr.t("emergency-refused-not-designated"),
        Refusal::NoSecondFactor => tr.t("emergency-refused-no-second-factor"),
        Refusal::BadReason(_) => {
            let length = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            match length.chars().count() {
                n if n < EmergencyReason::MIN_CHARS => tr.n(
                    "emergency-reason-too-short",
                    "min",
                    EmergencyReason::MIN_CHARS,
                ),
                n if n > EmergencyReason::MAX_CHARS => tr.n(
                    "emergency-reason-too-long",
                    "max",
                    EmergencyReason::MAX_CHARS,
                ),
                _ => tr.t("emergency-reason-characters"),
            }
        }
        Refusal::BadContext => tr.t("emergency-refused-context"),
        Refusal::AlreadyOpen(until) => tr.a("emergency-refused-open", "until", until),
        Refusal::Inactive => tr.t("emergency-refused-inactive"),
    }
}

/// What `scope` lets an app do, as a person reads it in their language: "Read and
/// search the patient's observations".
pub fn scope_words(scope: &str, tr: &Tr) -> String {
    use crate::domain::consent::{Meaning, Whose, meaning};
    let id = |id: Id| tr.id(id);
    match meaning(scope) {
        Meaning::Clinical {
            permissions,
            whose,
            resource,
            limited,
        } => {
            let verbs: Vec<String> = permissions
                .iter()
                .filter_map(|p| match p {
                    'c' => Some(id(Id("scope-create"))),
                    'r' => Some(id(Id("scope-read"))),
                    'u' => Some(id(Id("scope-update"))),
                    'd' => Some(id(Id("scope-delete"))),
                    's' => Some(id(Id("scope-search"))),
                    _ => None,
                })
                .collect();
            let whose = match (whose, resource) {
                (Whose::Patient, None) => id(Id("scope-patient-all")),
                (Whose::User, None) => id(Id("scope-user-all")),
                (Whose::System, None) => id(Id("scope-system-all")),
                (whose, Some(resource)) => {
                    let words = resource_words(&resource);
                    let args = [("resource", resource.as_str()), ("words", words.as_str())];
                    match whose {
                        Whose::Patient => tr.with("scope-patient-resource", &args),
                        Whose::User => tr.with("scope-user-resource", &args),
                        Whose::System => tr.with("scope-system-resource", &args),
                    }
                }
            };
            let text = tr.with(
                "scope-clinical",
                &[("verbs", &listed(tr, &verbs)), ("whose", &whose)],
            );
            let text = match limited {
                true => tr.a("scope-limited", "text", &text),
                false => text,
            };
            capitalised(&text)
        }
        Meaning::Launch => id(Id("scope-launch")),
        Meaning::LaunchPatient => id(Id("scope-launch-patient")),
        Meaning::LaunchEncounter => id(Id("scope-launch-encounter")),
        Meaning::FhirUser => id(Id("scope-fhir-user")),
        Meaning::OpenId => id(Id("scope-openid")),
        Meaning::Profile => id(Id("scope-profile")),
        Meaning::Email => id(Id("scope-email")),
        Meaning::OfflineAccess => id(Id("scope-offline-access")),
        Meaning::OnlineAccess => id(Id("scope-online-access")),
        Meaning::Other(scope) => tr.a("scope-other", "scope", &scope),
    }
}

/// `MedicationRequest` → `medication requests`: the English words for a resource type.
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

/// `a`, `a and b`, `a, b and c`, in the reader's language.
fn listed(tr: &Tr, items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => tr.with("list-and", &[("rest", &rest.join(", ")), ("last", last)]),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Wishes;

    fn spanish() -> Tr {
        Wishes {
            person: Some("es-419".into()),
            ..Wishes::default()
        }
        .tr()
    }

    #[test]
    fn scopes_read_as_plain_words() {
        let en = Tr::default();
        let said = |scope| scope_words(scope, &en);
        assert_eq!(
            said("patient/Observation.rs"),
            "Read and search the patient's observations"
        );
        assert_eq!(
            said("user/MedicationRequest.cud"),
            "Create, update and delete medication requests you may see"
        );
        assert_eq!(
            said("patient/*.read"),
            "Read and search all of the patient's records"
        );
        assert_eq!(
            said("patient/Condition.s?clinical-status=active"),
            "Search the patient's conditions (some of them only)"
        );
        assert_eq!(said("fhirUser"), "Know who you are in the clinical record");
        assert!(said("openid").contains("signed in"));
        assert_eq!(said("x-custom"), "Use “x-custom”");
    }

    #[test]
    fn scopes_read_as_plain_words_in_spanish_too() {
        let es = spanish();
        let said = |scope| scope_words(scope, &es);
        assert_eq!(
            said("patient/Observation.rs"),
            "Leer y buscar los registros Observation del paciente"
        );
        assert_eq!(
            said("patient/*.cruds"),
            "Crear, leer, actualizar, eliminar y buscar todos los registros del paciente"
        );
    }
}
