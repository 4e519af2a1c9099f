//! An upstream IdP's Response, checked as an SP must (SAML Profiles §4.1.4.3): every
//! check Gatehouse's IdP side makes of what SPs send, in the other direction.
//!
//! Signatures go through the one confined verification ([`request::verified_element`]:
//! the bounded shape check of `dsig` first, then libxmlsec with only the certificates of
//! the upstream's metadata, never a KeyInfo key) and what is used is read from the
//! element that verified (no signature wrapping):
//! - the assertion signed: it is verified as a document of its own (`envelope`), and its
//!   content is read from what verified, with its ID compared to the one received;
//! - only the Response signed: the whole Response is verified and everything, the
//!   assertion (or its ciphertext) included, is read from what verified;
//! - neither: refused.

use chrono::{DateTime, Duration, Utc};
use openssl::pkey::{PKey, Private};
use samael::schema::{Assertion, Response};

use super::{
    decrypt,
    envelope::{self, Envelope},
    idp::UpstreamIdp,
};
use crate::{
    auth::upstream::UpstreamError,
    saml::{
        assertion::STATUS_SUCCESS,
        dsig,
        providers::NAMEID_TRANSIENT,
        request::{self, MessageError},
        xml::{self, MAX_MESSAGE_BYTES},
    },
};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What the Response must match.
pub struct Expected<'a> {
    pub idp: &'a UpstreamIdp,
    /// Our SP entity id for this connector: the Audience.
    pub sp_entity_id: &'a str,
    /// Our ACS for this connector: Destination and Recipient.
    pub acs_url: &'a str,
    /// The ID of the AuthnRequest we sent: InResponseTo.
    pub request_id: &'a str,
    pub now: DateTime<Utc>,
    pub skew: Duration,
    pub require_encrypted: bool,
}

/// An assertion that passed every check.
#[derive(Debug)]
pub struct Accepted {
    pub assertion: Assertion,
    /// Until when it could be presented: how long its ID is remembered.
    pub valid_until: DateTime<Utc>,
}

fn rejected(why: impl Into<String>) -> UpstreamError {
    UpstreamError::Rejected(why.into())
}

fn signature(e: MessageError) -> UpstreamError {
    match e {
        MessageError::BadSignature => {
            rejected("the signature does not verify with the identity provider's certificate")
        }
        MessageError::Busy => UpstreamError::Unreachable(e.to_string()),
        other => rejected(other.to_string()),
    }
}

/// Checks the Response `xml` (through the XML gate already) against `expected`;
/// `key` opens encrypted assertions.
pub async fn check(
    xml: &str,
    expected: &Expected<'_>,
    key: &PKey<Private>,
) -> Result<Accepted, UpstreamError> {
    let certs = &expected.idp.signing_certs;
    let envelope = envelope::read(xml).map_err(rejected)?;
    let unverified: Response = xml
        .parse()
        .map_err(|_| rejected("the message is not a valid Response"))?;
    // Only the Response signed: everything is read from what its signature verified.
    let (response, envelope, response_verified) =
        if envelope.response_signed && envelope.signatures == 1 {
            let verified = request::verified_element(xml, certs)
                .await
                .map_err(signature)?;
            let response: Response = verified
                .parse()
                .map_err(|_| rejected("the signed Response does not parse"))?;
            if response.id != unverified.id {
                return Err(rejected("the signed element is not the Response"));
            }
            let envelope = envelope::read(&verified).map_err(rejected)?;
            (response, envelope, true)
        } else {
            (unverified, envelope, false)
        };
    check_response(&response, expected, response_verified)?;
    let assertion = assertion(&envelope, expected, key, response_verified).await?;
    let valid_until = check_assertion(&assertion, expected)?;
    Ok(Accepted {
        assertion,
        valid_until,
    })
}

fn check_response(
    response: &Response,
    expected: &Expected<'_>,
    signed: bool,
) -> Result<(), UpstreamError> {
    if response.version != "2.0" {
        return Err(rejected("the Response is not SAML 2.0"));
    }
    if let Some(issuer) = response.issuer.as_ref().and_then(|i| i.value.as_deref())
        && issuer.trim() != expected.idp.entity_id
    {
        return Err(rejected("the Response names another issuer"));
    }
    // Bindings §3.5.5.2: a signed Response names its Destination, and any Destination
    // is this ACS (a Response for another SP is not replayed here).
    match response.destination.as_deref().map(str::trim) {
        Some(d) if d == expected.acs_url => {}
        Some(_) => return Err(rejected("the Response is addressed to another endpoint")),
        None if signed => return Err(rejected("the signed Response names no Destination")),
        None => {}
    }
    // Unsolicited Responses are not accepted: the one we asked for, or nothing.
    if response.in_response_to.as_deref() != Some(expected.request_id) {
        return Err(rejected("the Response does not answer our request"));
    }
    let status = response.status.as_ref();
    let code = status
        .and_then(|s| s.status_code.value.as_deref())
        .unwrap_or("");
    if code != STATUS_SUCCESS {
        let message = status
            .and_then(|s| s.status_message.as_ref())
            .and_then(|m| m.value.as_deref())
            .unwrap_or("");
        let said: String = format!("{code} {message}")
            .trim()
            .chars()
            .take(300)
            .collect();
        return Err(UpstreamError::Denied(said));
    }
    Ok(())
}

/// The assertion, decrypted and verified, read from what verified.
async fn assertion(
    envelope: &Envelope,
    expected: &Expected<'_>,
    key: &PKey<Private>,
    response_verified: bool,
) -> Result<Assertion, UpstreamError> {
    let inner = envelope
        .assertion
        .as_ref()
        .ok_or_else(|| rejected("the Response carries no assertion"))?;
    if expected.require_encrypted && !inner.encrypted {
        return Err(rejected(
            "the assertion came in clear, and this connector requires encrypted assertions",
        ));
    }
    let text = if inner.encrypted {
        let plain = decrypt::decrypt(&inner.xml, key).map_err(|e| rejected(e.to_string()))?;
        envelope::with_namespaces(&plain, &inner.in_scope).map_err(rejected)?
    } else {
        inner.xml.clone()
    };
    xml::check_untrusted(&text, MAX_MESSAGE_BYTES).map_err(|e| rejected(e.to_string()))?;
    let shape = dsig::inspect(&text).map_err(|e| rejected(format!("the assertion: {e}")))?;
    let unverified: Assertion = text
        .parse()
        .map_err(|_| rejected("the assertion is not a valid Assertion"))?;
    if shape.signed {
        let verified = request::verified_element(&text, &expected.idp.signing_certs)
            .await
            .map_err(signature)?;
        let assertion: Assertion = verified
            .parse()
            .map_err(|_| rejected("the signed assertion does not parse"))?;
        if assertion.id != unverified.id {
            return Err(rejected("the signed element is not the assertion"));
        }
        return Ok(assertion);
    }
    if response_verified {
        return Ok(unverified);
    }
    Err(rejected("neither the Response nor its assertion is signed"))
}

/// Profiles §4.1.4.3 and Core §2.5: issuer, bearer confirmation for this request at this
/// ACS, time window, audience. Returns until when it could be presented.
fn check_assertion(a: &Assertion, e: &Expected<'_>) -> Result<DateTime<Utc>, UpstreamError> {
    if a.version != "2.0" {
        return Err(rejected("the assertion is not SAML 2.0"));
    }
    if a.issuer.value.as_deref().map(str::trim) != Some(e.idp.entity_id.as_str()) {
        return Err(rejected("the assertion names another issuer"));
    }
    let (now, skew) = (e.now, e.skew);
    let subject = a
        .subject
        .as_ref()
        .ok_or_else(|| rejected("the assertion has no Subject"))?;
    let name_id = subject
        .name_id
        .as_ref()
        .filter(|n| !n.value.trim().is_empty())
        .ok_or_else(|| rejected("the assertion names no one (no NameID)"))?;
    // A transient NameID is new at every sign-in: linked, it would make a new account
    // each time, or let the next holder of the same value in.
    if name_id.format.as_deref().map(str::trim) == Some(NAMEID_TRANSIENT) {
        return Err(rejected(
            "a transient NameID cannot name an account; ask the identity provider for a persistent one",
        ));
    }
    let confirmation = subject
        .subject_confirmations
        .iter()
        .flatten()
        .filter(|c| c.method.as_deref() == Some(BEARER))
        .filter_map(|c| c.subject_confirmation_data.as_ref())
        .find(|d| {
            d.recipient.as_deref().map(str::trim) == Some(e.acs_url)
                && d.in_response_to.as_deref() == Some(e.request_id)
                && d.not_on_or_after.is_some_and(|t| now < t + skew)
                && d.not_before.is_none_or(|t| t <= now + skew)
        })
        .ok_or_else(|| {
            rejected(
                "no bearer SubjectConfirmation is for this request, to this ACS, and still valid",
            )
        })?;
    let conditions = a
        .conditions
        .as_ref()
        .ok_or_else(|| rejected("the assertion has no Conditions"))?;
    if conditions.not_before.is_some_and(|t| now + skew < t) {
        return Err(rejected("the assertion is not valid yet (NotBefore)"));
    }
    if conditions.not_on_or_after.is_some_and(|t| now >= t + skew) {
        return Err(rejected("the assertion has expired (NotOnOrAfter)"));
    }
    // Core §2.5.1.4: every AudienceRestriction must name us; and there must be one.
    let restrictions = conditions.audience_restrictions.as_deref().unwrap_or(&[]);
    if restrictions.is_empty()
        || !restrictions
            .iter()
            .all(|r| r.audience.iter().any(|x| x.trim() == e.sp_entity_id))
    {
        return Err(rejected("the assertion is meant for another audience"));
    }
    if a.authn_statements.as_deref().unwrap_or(&[]).is_empty() {
        return Err(rejected("the assertion has no AuthnStatement"));
    }
    let until = [conditions.not_on_or_after, confirmation.not_on_or_after]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
        + skew;
    Ok(until)
}
