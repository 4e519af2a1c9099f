//! SMART on FHIR scopes (SMART App Launch 2.2 §3, DESIGN §18): the clinical scopes of
//! both grammars, checked at the edge and normalised, so that what a client asks for
//! can be compared with what it is registered for.
//!
//! - v2: `patient/Observation.rs`, `user/*.cruds`, `system/Patient.r`, with granular
//!   constraints `patient/Observation.rs?category=…|laboratory`;
//! - v1: `patient/*.read`, `user/Observation.write`, `system/*.*`.
//!
//! A v1 scope is the v2 scope it means (`read` = `rs`, `write` = `cud`, `*` = `cruds`)
//! but keeps its spelling, so a v1 client gets back what it asked for.

use std::fmt;

use super::ParseError;

/// Whose data a clinical scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SmartContext {
    /// The patient in context (`patient/`).
    Patient,
    /// Whatever the signed-in user may see (`user/`).
    User,
    /// A backend service, no user (`system/`).
    System,
}

impl SmartContext {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "patient" => Some(Self::Patient),
            "user" => Some(Self::User),
            "system" => Some(Self::System),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::User => "user",
            Self::System => "system",
        }
    }
}

/// The v2 permissions of a clinical scope: create, read, update, delete, search, as a
/// set (bit 0 = c … bit 4 = s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    const LETTERS: [char; 5] = ['c', 'r', 'u', 'd', 's'];

    /// v2 letters, in the order `cruds`, each at most once, at least one.
    fn parse_v2(raw: &str) -> Option<Self> {
        let mut bits = 0u8;
        let mut next = 0;
        for ch in raw.chars() {
            let at = Self::LETTERS[next..].iter().position(|l| *l == ch)? + next;
            bits |= 1 << at;
            next = at + 1;
        }
        (bits != 0).then_some(Self(bits))
    }

    /// v1's `read`, `write` and `*`, as the v2 permissions they mean.
    fn parse_v1(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self(0b10010)),
            "write" => Some(Self(0b01101)),
            "*" => Some(Self(0b11111)),
            _ => None,
        }
    }

    /// Every permission of `other` is one of these.
    pub fn covers(self, other: Self) -> bool {
        other.0 & !self.0 == 0
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, letter) in Self::LETTERS.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// Which grammar a clinical scope was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmartVersion {
    V1,
    V2,
}

/// A clinical scope: whose data, which resource type (None: `*`), which permissions,
/// and the granular constraints (v2 only), sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClinicalScope {
    pub context: SmartContext,
    pub resource: Option<String>,
    pub permissions: Permissions,
    pub constraints: Vec<(String, String)>,
    pub version: SmartVersion,
}

impl ClinicalScope {
    /// Whether a client registered for `self` may be granted `other`: the same context,
    /// the same resource type or `*`, at least its permissions, and no constraint of
    /// `self` that `other` lacks (a constrained registration grants constrained scopes
    /// only; an unconstrained one grants constrained ones too).
    pub fn covers(&self, other: &ClinicalScope) -> bool {
        self.context == other.context
            && self
                .resource
                .as_ref()
                .is_none_or(|r| other.resource.as_ref() == Some(r))
            && self.permissions.covers(other.permissions)
            && self
                .constraints
                .iter()
                .all(|c| other.constraints.contains(c))
    }

    /// The v2 spelling (`patient/Observation.rs?category=…`).
    pub fn to_v2(&self) -> String {
        let mut out = format!(
            "{}/{}.{}",
            self.context.as_str(),
            self.resource.as_deref().unwrap_or("*"),
            self.permissions
        );
        for (i, (k, v)) in self.constraints.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// One scope of a SMART request, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SmartScope {
    Clinical(ClinicalScope),
    /// `launch`: the EHR launch context (with the `launch` parameter).
    Launch,
    /// `launch/patient`, `launch/encounter`: ask for that context in a standalone launch.
    LaunchContext(LaunchContext),
    /// `fhirUser`: the user's FHIR resource in the ID token.
    FhirUser,
    /// `openid`, `profile`, `email`, `offline_access`, `online_access` and any other
    /// scope that is not SMART's own, kept as written.
    Other(String),
}

/// The contexts a standalone launch may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaunchContext {
    Patient,
    Encounter,
}

/// The longest scope looked at, and the most constraints one scope may carry.
const MAX_SCOPE_BYTES: usize = 512;
const MAX_CONSTRAINTS: usize = 8;

impl SmartScope {
    /// Checks one scope (a token of the space-separated `scope` parameter). A scope that
    /// starts like a clinical one (`patient/`, `user/`, `system/`) must be one; anything
    /// else that is not SMART's own is kept as it is.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.is_empty() || raw.len() > MAX_SCOPE_BYTES {
            return Err(ParseError("a scope is 1 to 512 characters".into()));
        }
        match raw {
            "launch" => return Ok(Self::Launch),
            "launch/patient" => return Ok(Self::LaunchContext(LaunchContext::Patient)),
            "launch/encounter" => return Ok(Self::LaunchContext(LaunchContext::Encounter)),
            "fhirUser" => return Ok(Self::FhirUser),
            _ => {}
        }
        let Some((context, rest)) = raw.split_once('/') else {
            return Ok(Self::Other(raw.to_owned()));
        };
        if context == "launch" {
            return Err(invalid(
                raw,
                "the launch contexts are launch/patient and launch/encounter",
            ));
        }
        let Some(context) = SmartContext::parse(context) else {
            return Ok(Self::Other(raw.to_owned()));
        };
        parse_clinical(raw, context, rest).map(Self::Clinical)
    }

    /// The scope as the token response and introspection say it: clinical scopes in
    /// their own grammar's spelling, normalised.
    pub fn spelling(&self) -> String {
        match self {
            Self::Clinical(c) if c.version == SmartVersion::V1 => format!(
                "{}/{}.{}",
                c.context.as_str(),
                c.resource.as_deref().unwrap_or("*"),
                v1_word(c.permissions)
            ),
            Self::Clinical(c) => c.to_v2(),
            Self::Launch => "launch".into(),
            Self::LaunchContext(LaunchContext::Patient) => "launch/patient".into(),
            Self::LaunchContext(LaunchContext::Encounter) => "launch/encounter".into(),
            Self::FhirUser => "fhirUser".into(),
            Self::Other(s) => s.clone(),
        }
    }
}

/// Whether a registration listing `registered` admits the clinical scope `asked`: some
/// registered clinical scope covers it (see [`ClinicalScope::covers`]). Anything that is
/// not a well-formed clinical scope is admitted by no registration here.
pub fn covered_by(registered: &[String], asked: &str) -> bool {
    let Ok(SmartScope::Clinical(asked)) = SmartScope::parse(asked) else {
        return false;
    };
    registered
        .iter()
        .any(|r| matches!(SmartScope::parse(r), Ok(SmartScope::Clinical(r)) if r.covers(&asked)))
}

/// Whether `raw` is a well-formed clinical scope (`patient/…`, `user/…`, `system/…`).
pub fn is_clinical(raw: &str) -> bool {
    matches!(SmartScope::parse(raw), Ok(SmartScope::Clinical(_)))
}

/// SMART's own words besides the clinical scopes (`online_access` is SMART's too; the
/// other standard scopes are OpenID Connect's).
pub fn is_smart_word(raw: &str) -> bool {
    raw == "online_access"
        || matches!(
            SmartScope::parse(raw),
            Ok(SmartScope::Launch | SmartScope::LaunchContext(_) | SmartScope::FhirUser)
        )
}

fn invalid(raw: &str, why: &str) -> ParseError {
    ParseError(format!("invalid SMART scope `{raw}`: {why}"))
}

fn v1_word(p: Permissions) -> &'static str {
    match p {
        Permissions(0b10010) => "read",
        Permissions(0b01101) => "write",
        _ => "*",
    }
}

fn parse_clinical(
    raw: &str,
    context: SmartContext,
    rest: &str,
) -> Result<ClinicalScope, ParseError> {
    let (target, query) = match rest.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (rest, None),
    };
    let Some((resource, permissions)) = target.split_once('.') else {
        return Err(invalid(
            raw,
            "expected resource.permissions, such as Observation.rs",
        ));
    };
    let resource = match resource {
        "*" => None,
        r if is_resource_type(r) => Some(r.to_owned()),
        _ => return Err(invalid(raw, "the resource type is a FHIR type name or *")),
    };
    let (permissions, version) = if let Some(p) = Permissions::parse_v1(permissions) {
        (p, SmartVersion::V1)
    } else if let Some(p) = Permissions::parse_v2(permissions) {
        (p, SmartVersion::V2)
    } else {
        return Err(invalid(
            raw,
            "permissions are v2 letters in the order c, r, u, d, s (such as rs), or v1 read, write or *",
        ));
    };
    let constraints = match query {
        None => Vec::new(),
        Some(_) if version == SmartVersion::V1 => {
            return Err(invalid(raw, "granular constraints need v2 permissions"));
        }
        Some(q) => constraints(raw, q)?,
    };
    Ok(ClinicalScope {
        context,
        resource,
        permissions,
        constraints,
        version,
    })
}

/// `Observation`, `MedicationRequest`: a FHIR resource type name.
fn is_resource_type(raw: &str) -> bool {
    let mut chars = raw.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && raw.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// `category=http://…|laboratory&code=…`: search parameters, each name=value, sorted.
fn constraints(raw: &str, query: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(raw, "a granular constraint is name=value"));
        };
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        let value_ok = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '&' | '?' | '"'));
        if !name_ok || !value_ok {
            return Err(invalid(
                raw,
                "a granular constraint is a search parameter=value",
            ));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    if out.len() > MAX_CONSTRAINTS {
        return Err(invalid(raw, "at most 8 granular constraints"));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clinical(raw: &str) -> ClinicalScope {
        match SmartScope::parse(raw).unwrap() {
            SmartScope::Clinical(c) => c,
            other => panic!("{raw} is {other:?}"),
        }
    }

    #[test]
    fn v2_scopes_parse_with_their_permissions_and_constraints() {
        let c = clinical("patient/Observation.rs");
        assert_eq!(c.context, SmartContext::Patient);
        assert_eq!(c.resource.as_deref(), Some("Observation"));
        assert_eq!(c.permissions.to_string(), "rs");
        assert_eq!(c.version, SmartVersion::V2);
        assert_eq!(clinical("user/*.cruds").resource, None);
        assert_eq!(clinical("system/Patient.r").context, SmartContext::System);
        let g = clinical(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        );
        assert_eq!(g.constraints.len(), 1);
        assert_eq!(g.constraints[0].0, "category");
    }

    #[test]
    fn v1_scopes_mean_their_v2_permissions_and_keep_their_spelling() {
        let read = clinical("patient/*.read");
        assert_eq!(read.permissions.to_string(), "rs");
        assert_eq!(read.version, SmartVersion::V1);
        assert_eq!(
            clinical("user/Observation.write").permissions.to_string(),
            "cud"
        );
        assert_eq!(clinical("system/*.*").permissions.to_string(), "cruds");
        let scope = SmartScope::parse("patient/*.read").unwrap();
        assert_eq!(scope.spelling(), "patient/*.read");
        assert_eq!(read.to_v2(), "patient/*.rs");
    }

    #[test]
    fn a_registration_covers_narrower_scopes_of_the_same_context() {
        let registered = vec![
            "patient/*.rs".to_owned(),
            "user/Observation.read".to_owned(),
            "openid".to_owned(),
        ];
        for ok in [
            "patient/*.rs",
            "patient/Observation.r",
            "patient/*.read",
            "patient/Condition.s?clinical-status=active",
            "user/Observation.rs",
            "user/Observation.read",
        ] {
            assert!(covered_by(&registered, ok), "{ok}");
        }
        for no in [
            "patient/*.cruds",
            "patient/*.write",
            "user/Patient.r",
            "system/*.rs",
            "openid",
            "patient/Observation.sr",
        ] {
            assert!(!covered_by(&registered, no), "{no}");
        }
        assert!(is_smart_word("launch/patient") && is_smart_word("online_access"));
        assert!(!is_smart_word("openid") && !is_smart_word("patient/*.rs"));
    }

    #[test]
    fn v2_syntax_errors_are_refused_and_named() {
        for bad in [
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.",
            "patient/Observation.x",
            "patient/observation.rs",
            "patient/Observation",
            "patient/.rs",
            "user/*.read?category=x",
            "patient/Observation.rs?category",
            "patient/Observation.rs?=x",
            "patient/Observation.rs?category=",
            "launch/location",
        ] {
            let err = SmartScope::parse(bad).unwrap_err();
            assert!(err.0.contains("invalid SMART scope"), "{bad}: {}", err.0);
        }
        assert!(SmartScope::parse(&format!("patient/{}.rs", "A".repeat(600))).is_err());
    }

    #[test]
    fn smart_words_and_other_scopes_are_recognised() {
        assert_eq!(SmartScope::parse("launch").unwrap(), SmartScope::Launch);
        assert_eq!(
            SmartScope::parse("launch/patient").unwrap(),
            SmartScope::LaunchContext(LaunchContext::Patient)
        );
        assert_eq!(SmartScope::parse("fhirUser").unwrap(), SmartScope::FhirUser);
        for other in [
            "openid",
            "profile",
            "offline_access",
            "online_access",
            "api/x.y",
        ] {
            assert_eq!(
                SmartScope::parse(other).unwrap(),
                SmartScope::Other(other.into())
            );
        }
    }

    #[test]
    fn a_registration_covers_what_is_within_it_and_nothing_beyond() {
        let registered = clinical("patient/*.rs");
        assert!(registered.covers(&clinical("patient/Observation.r")));
        assert!(registered.covers(&clinical("patient/*.read")));
        assert!(registered.covers(&clinical("patient/Observation.rs?category=laboratory")));
        assert!(!registered.covers(&clinical("patient/Observation.u")));
        assert!(!registered.covers(&clinical("user/Observation.r")));
        let one = clinical("patient/Observation.rs?category=laboratory");
        assert!(one.covers(&clinical("patient/Observation.r?category=laboratory")));
        assert!(!one.covers(&clinical("patient/Observation.r")));
        assert!(!one.covers(&clinical("patient/Condition.r?category=laboratory")));
        assert!(clinical("system/*.cruds").covers(&clinical("system/Patient.cruds")));
    }

    #[test]
    fn constraints_are_sorted_so_equal_scopes_compare_equal() {
        assert_eq!(
            clinical("patient/Observation.rs?b=2&a=1"),
            clinical("patient/Observation.rs?a=1&b=2")
        );
        assert_eq!(
            clinical("patient/Observation.rs?b=2&a=1").to_v2(),
            "patient/Observation.rs?a=1&b=2"
        );
    }
}
