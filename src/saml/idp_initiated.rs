//! IdP-initiated SSO (SAML Profiles §4.1.5) as a per-SP opt-in (issue 20, item 12).
//!
//! `/saml/sso/init?sp=…&RelayState=…` is a plain link: any site can send a signed-in
//! browser to it, and the SP then receives an unsolicited Response and follows the
//! RelayState. So it works only for an SP an administrator switched it on for, and only
//! with no RelayState or one of the exact values registered for that SP — never one a
//! stranger's link chose.

use super::providers::{ServiceProvider, SpError, invalid};

/// Longest RelayState an SP may register for IdP-initiated SSO (as `/saml/sso/init`
/// accepts), and how many it may register.
pub const MAX_RELAY_STATE_LEN: usize = 1024;
pub const MAX_RELAY_STATES: usize = 50;

/// Why an IdP-initiated sign-in may not go to an SP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdpInitiatedRefusal {
    #[error(
        "This application does not accept sign-ins started at Gatehouse (IdP-initiated SSO \
         is off for it); open the application and sign in from there."
    )]
    Off,
    #[error(
        "The RelayState is not one this application registered for sign-ins started at Gatehouse."
    )]
    RelayState,
}

impl ServiceProvider {
    /// Whether an IdP-initiated sign-in may be sent to this SP with `relay_state`: only
    /// when the SP opted in, and only with no RelayState or one it registered, so a link
    /// on another site cannot choose where the SP sends the person next.
    pub fn idp_initiated_allows(
        &self,
        relay_state: Option<&str>,
    ) -> Result<(), IdpInitiatedRefusal> {
        if !self.idp_initiated {
            return Err(IdpInitiatedRefusal::Off);
        }
        match relay_state {
            Some(r) if !self.idp_initiated_relay_states.iter().any(|a| a == r) => {
                Err(IdpInitiatedRefusal::RelayState)
            }
            _ => Ok(()),
        }
    }
}

/// The RelayStates an SP registers: exact strings, each 1 to [`MAX_RELAY_STATE_LEN`]
/// bytes of printable text, at most [`MAX_RELAY_STATES`] of them, duplicates dropped.
pub(super) fn relay_states(list: &[String]) -> Result<Vec<String>, SpError> {
    if list.len() > MAX_RELAY_STATES {
        return Err(invalid(
            "relay-state",
            format!("at most {MAX_RELAY_STATES} values"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for value in list {
        if value.is_empty() || value.len() > MAX_RELAY_STATE_LEN {
            return Err(invalid(
                "relay-state",
                format!("each value 1 to {MAX_RELAY_STATE_LEN} bytes"),
            ));
        }
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                "relay-state",
                format!("{value:?}: no spaces or control characters"),
            ));
        }
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(on: bool, relay_states: &[&str]) -> ServiceProvider {
        ServiceProvider {
            entity_id: "https://sp.example.org/metadata".into(),
            name: "SP".into(),
            acs: Vec::new(),
            skipped_acs: Vec::new(),
            slo: Vec::new(),
            signing_certs: Vec::new(),
            encryption_certs: Vec::new(),
            name_id_format: super::super::providers::NAMEID_PERSISTENT.into(),
            name_id_source: super::super::providers::NameIdSource::Pairwise,
            attributes: Default::default(),
            unsupplied_attributes: Vec::new(),
            sign_assertion: true,
            sign_response: false,
            require_signed_requests: false,
            encrypt_assertions: false,
            idp_initiated: on,
            idp_initiated_relay_states: relay_states.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn an_sp_that_did_not_opt_in_gets_nothing_whatever_the_relay_state() {
        let off = sp(false, &["/home"]);
        assert_eq!(
            off.idp_initiated_allows(None),
            Err(IdpInitiatedRefusal::Off)
        );
        assert_eq!(
            off.idp_initiated_allows(Some("/home")),
            Err(IdpInitiatedRefusal::Off)
        );
    }

    #[test]
    fn only_a_registered_relay_state_matches_exactly() {
        let on = sp(true, &["https://sp.example.org/home"]);
        assert_eq!(on.idp_initiated_allows(None), Ok(()));
        assert_eq!(
            on.idp_initiated_allows(Some("https://sp.example.org/home")),
            Ok(())
        );
        for other in [
            "https://evil.example",
            "https://sp.example.org/home/",
            "https://SP.example.org/home",
            "",
        ] {
            assert_eq!(
                on.idp_initiated_allows(Some(other)),
                Err(IdpInitiatedRefusal::RelayState),
                "{other:?}"
            );
        }
    }

    #[test]
    fn registered_relay_states_are_bounded_printable_and_deduplicated() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            relay_states(&list(&["/a", "/b", "/a"])).unwrap(),
            list(&["/a", "/b"])
        );
        for bad in ["", "a b", "a\u{0}", "a\u{2028}"] {
            assert!(relay_states(&list(&[bad])).is_err(), "{bad:?}");
        }
        assert!(relay_states(&["x".repeat(MAX_RELAY_STATE_LEN + 1)]).is_err());
        assert!(relay_states(&vec!["/a".to_owned(); MAX_RELAY_STATES + 1]).is_err());
    }
}
