//! A FHIR server registered as a resource server (DESIGN §18): its base URL, which
//! `aud` (and RFC 8707 `resource`) at `/authorize` must name and which becomes the
//! access token's `aud`, and what it accepts: the clinical scopes and the clients.

use url::Url;

use super::{ParseError, SmartScope};

/// A FHIR server's base URL: absolute, `https` (or `http` on a loopback host, for
/// development), without credentials, query or fragment, and without a trailing `/`,
/// so that one server has one spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirBaseUrl(String);

impl FhirBaseUrl {
    pub const MAX_BYTES: usize = 2048;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > Self::MAX_BYTES {
            return Err(ParseError("a FHIR base URL is 1 to 2048 characters".into()));
        }
        let url = Url::parse(raw).map_err(|e| ParseError(format!("a FHIR base URL: {e}")))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok || url.host_str().is_none() {
            return Err(ParseError(
                "a FHIR base URL is https (http only on a loopback host)".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ParseError("a FHIR base URL has no credentials".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ParseError(
                "a FHIR base URL has no query or fragment".into(),
            ));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The clinical scopes a FHIR server accepts, checked and in their normalised spelling:
/// nothing but `patient/…`, `user/…` and `system/…` scopes, at most 100.
pub fn fhir_scopes(raw: &[String]) -> Result<Vec<String>, ParseError> {
    if raw.len() > 100 {
        return Err(ParseError("at most 100 scopes".into()));
    }
    let mut out = Vec::with_capacity(raw.len());
    for scope in raw {
        match SmartScope::parse(scope.trim())? {
            s @ SmartScope::Clinical(_) => out.push(s.spelling()),
            _ => {
                return Err(ParseError(format!(
                    "`{scope}` is not a clinical scope (patient/…, user/… or system/…)"
                )));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A FHIR logical id (FHIR R4 §2.1.0 `id`): 1 to 64 of `A-Z a-z 0-9 - .`. The patient
/// and encounter of a launch context are ids of this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirId(String);

impl FhirId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(ParseError(
                "a FHIR id is 1 to 64 letters, digits, '-' or '.'".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kinds of resource a user can be on a FHIR server (SMART App Launch 2.2 §2.0.5,
/// `fhirUser`).
pub const FHIR_USER_TYPES: &[&str] = &["Practitioner", "Patient", "RelatedPerson", "Person"];

/// A user's FHIR resource on one server: `Practitioner/123`, `Patient/abc`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirUserRef {
    resource_type: &'static str,
    id: FhirId,
}

impl FhirUserRef {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let (kind, id) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| ParseError("a FHIR user is Type/id, such as Practitioner/123".into()))?;
        let resource_type = FHIR_USER_TYPES
            .iter()
            .find(|t| **t == kind)
            .ok_or_else(|| {
                ParseError(format!(
                    "a FHIR user is a {} (Type/id)",
                    FHIR_USER_TYPES.join(", ")
                ))
            })?;
        Ok(Self {
            resource_type,
            id: FhirId::parse(id)?,
        })
    }

    pub fn resource_type(&self) -> &'static str {
        self.resource_type
    }

    pub fn id(&self) -> &FhirId {
        &self.id
    }

    /// The patient this user is, when the user is a patient (a standalone launch's
    /// `launch/patient` then needs no choosing).
    pub fn patient(&self) -> Option<&FhirId> {
        (self.resource_type == "Patient").then_some(&self.id)
    }

    /// The `fhirUser` claim: the resource's absolute URL on the server at `base`.
    pub fn url_at(&self, base: &FhirBaseUrl) -> String {
        format!("{}/{}", base.as_str(), self)
    }
}

impl std::fmt::Display for FhirUserRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fhir_user_is_one_of_four_types_and_an_id() {
        let base = FhirBaseUrl::parse("https://fhir.example.org/r4").unwrap();
        let me = FhirUserRef::parse("Practitioner/dr-1.2").unwrap();
        assert_eq!(
            me.url_at(&base),
            "https://fhir.example.org/r4/Practitioner/dr-1.2"
        );
        assert_eq!(me.patient(), None);
        let patient = FhirUserRef::parse("Patient/p7").unwrap();
        assert_eq!(patient.patient().map(FhirId::as_str), Some("p7"));
        for bad in [
            "Observation/1",
            "Patient/",
            "Patient",
            "Patient/a/b",
            "Patient/a b",
            "/1",
            "patient/1",
        ] {
            assert!(FhirUserRef::parse(bad).is_err(), "{bad}");
        }
        assert!(FhirId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_base_url_has_one_spelling_and_no_extras() {
        assert_eq!(
            FhirBaseUrl::parse(" https://fhir.example.org/r4/ ")
                .unwrap()
                .as_str(),
            "https://fhir.example.org/r4"
        );
        assert!(FhirBaseUrl::parse("http://127.0.0.1:8080/fhir").is_ok());
        for bad in [
            "http://fhir.example.org/r4",
            "https://user:pw@fhir.example.org",
            "https://fhir.example.org/r4?x=1",
            "https://fhir.example.org/r4#f",
            "fhir.example.org",
            "",
        ] {
            assert!(FhirBaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_servers_scopes_are_clinical_and_normalised() {
        let scopes = fhir_scopes(&[
            "patient/*.rs".into(),
            "user/Observation.read".into(),
            "patient/*.rs".into(),
        ])
        .unwrap();
        assert_eq!(scopes, ["patient/*.rs", "user/Observation.read"]);
        assert!(fhir_scopes(&["openid".into()]).is_err());
        assert!(fhir_scopes(&["patient/Observation.sr".into()]).is_err());
    }
}
