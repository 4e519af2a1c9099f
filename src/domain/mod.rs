//! Pure types and rules, no I/O. Input becomes one of these at the edge; past that
//! point the type proves the check was done.

mod branding;
pub mod consent;
mod display_name;
mod email;
mod emergency;
mod fhir_server;
mod lockout;
mod org;
mod passkey;
mod password;
mod password_policy;
mod role;
mod scope;
mod smart_scope;
mod upstream;
mod username;

pub use branding::{Branding, Colour, Logo, LogoKind};
pub use display_name::DisplayName;
pub use email::Email;
pub use emergency::{ContextLabel, EmergencyReason, ReviewNote};
pub use fhir_server::{FHIR_USER_TYPES, FhirBaseUrl, FhirId, FhirUserRef, fhir_scopes};
pub use lockout::LockoutPolicy;
pub use org::{MfaPolicy, OrgName, OrgPolicy, PolicyProblems};
pub use passkey::{PasskeyMode, PasskeyName, PasskeyPolicy};
pub use password::Password;
pub use password_policy::{PasswordPolicy, PolicyViolation};
pub use role::{Role, UserStatus};
pub use scope::valid_scope;
pub use smart_scope::{
    ClinicalScope, LaunchContext, Permissions, SmartContext, SmartScope, SmartVersion, covered_by,
    is_clinical, is_smart_word,
};
pub use upstream::{
    AccountMapping, ConnectorSettings, ConnectorSlug, FhirUserMapping, MailDomain, OidcUpstream,
    REGISTERED_METHODS, SamlUpstream, UpstreamClientAuth, UpstreamProtocol,
};
pub use username::Username;

/// Why an input was refused; shown to the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
