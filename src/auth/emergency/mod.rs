//! Emergency ("break-glass") access (DESIGN §15, ONC 170.315 (d)(6)).
//!
//! A user designated in advance, signed in with a second factor, raises their SSO
//! session to emergency access for a limited window by giving a reason. Relying parties
//! that ask for it (OIDC `acr_values`, SAML `RequestedAuthnContext` naming
//! [`ACR_EMERGENCY`]) see the emergency `acr` and an `emergency` claim while the window
//! is open; support and the privacy officer are told at once; every window awaits a
//! second administrator's review.

pub mod alerts;
pub mod review;

/// The authentication context class of an emergency session.
pub const ACR_EMERGENCY: &str = "urn:gatehouse:acr:emergency";
