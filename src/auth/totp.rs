//! TOTP second factor (DESIGN §6) on totp-rs: RFC 6238, SHA-1, 6 digits, 30 s, ±1 step.
//! Secrets are sealed under the master key; a secret being enrolled waits in the
//! ephemeral store, bound to the transaction or session it was shown to, and reaches
//! the database only once confirmed; each time step is accepted once per user
//! (`store::totp::consume_step`); recovery codes are single use and stored as a keyed
//! hash.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use totp_rs::{Algorithm, Builder, Totp};

use super::token_hash;
use crate::{
    audit::{AuditEvent, EventType, RequestContext},
    auth::AuthError,
    mail::Notice,
    startup::AppState,
    store::{
        totp as store,
        users::{self, UserRow},
    },
};

/// Shown in authenticator apps next to the account name.
pub const ISSUER_LABEL: &str = "Gatehouse";
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// What the person typed at the second-factor step, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// Six digits from an authenticator app.
    Totp(String),
    /// A recovery code, normalised (lower case, no separators).
    Recovery(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Enter the 6-digit code from your authenticator app, or a recovery code.")]
pub struct NotACode;

impl SecondFactor {
    /// Longest input looked at: a 10 KB "code" is refused before any work.
    pub const MAX_INPUT: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, NotACode> {
        if raw.len() > Self::MAX_INPUT {
            return Err(NotACode);
        }
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Self::Totp(compact));
        }
        let lower = compact.to_ascii_lowercase();
        if lower.len() == 10 && lower.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
            return Ok(Self::Recovery(lower));
        }
        Err(NotACode)
    }
}

/// Our configuration of totp-rs, in one place.
pub fn totp(secret: Vec<u8>, account: &str, digits: u8) -> Result<Totp, AuthError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER_LABEL))
        .with_account_name(account)
        .build()
        .map_err(|e| AuthError::Internal(format!("totp: {e}")))
}

fn seal_context(user_id: &str) -> String {
    crate::store::totp::seal_context(user_id)
}

/// What an enrolment page shows: the QR code and the same secret as text.
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
    pub qr_png_base64: String,
}

fn enrolment_view(secret: Vec<u8>, account: &str) -> Result<Enrolment, AuthError> {
    let totp = totp(secret, account, 6)?;
    Ok(Enrolment {
        secret_base32: totp.secret().to_base32(),
        otpauth_url: totp
            .to_url()
            .map_err(|e| AuthError::Internal(format!("totp url: {e}")))?,
        qr_png_base64: totp
            .to_qr_base64()
            .map_err(|e| AuthError::Internal(format!("totp qr: {e}")))?,
    })
}

/// Whom an enrolment was shown to (issue 20 item 3): the login transaction of the
/// enrolment required during sign-in, or the session of the account page. Each gets a
/// fresh secret of its own, and only a code for that secret, sent from that same
/// transaction or session, turns it on. A secret someone else saw (by starting an
/// enrolment with a stolen password and walking away) is never shown again, so it
/// cannot become the victim's second factor.
#[derive(Debug, Clone, Copy)]
pub enum EnrolmentFor<'a> {
    /// A login transaction id.
    Transaction(&'a str),
    /// An SSO session handle.
    Session(&'a str),
}

impl EnrolmentFor<'_> {
    fn key(&self, user_id: &str) -> String {
        self.scoped("totp-enrol", user_id)
    }

    /// The ephemeral key of `what` (an enrolment kind) shown to this transaction or
    /// session for `user_id`: a passkey's registration is bound the same way.
    pub(crate) fn scoped(&self, what: &str, user_id: &str) -> String {
        match self {
            Self::Transaction(id) => format!("{what}:{user_id}:tx:{}", token_hash(id)),
            Self::Session(handle) => format!("{what}:{user_id}:sess:{handle}"),
        }
    }
}

/// How long a shown secret waits for its first code: as long as a login transaction.
const PENDING_TTL: std::time::Duration = super::transaction::TRANSACTION_TTL;

/// The secret shown to `to`, sealed (the ephemeral store may be a shared Redis).
async fn pending_secret(
    state: &AppState,
    user_id: &str,
    to: EnrolmentFor<'_>,
) -> Result<Option<SecretSlice<u8>>, AuthError> {
    let key = to.key(user_id);
    let Some(raw) = state.ephemeral.get(&key).await? else {
        return Ok(None);
    };
    let sealed = String::from_utf8(raw).map_err(|e| AuthError::Internal(e.to_string()))?;
    let secret = state
        .master_key
        .open(&key, &sealed)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(Some(secret))
}

/// The enrolment shown to `to`: its own pending secret, or a new one (160 bits). An
/// active second factor is never replaced here.
pub async fn enrolment(
    state: &AppState,
    user_id: &str,
    account: &str,
    to: EnrolmentFor<'_>,
) -> Result<Enrolment, AuthError> {
    if is_enrolled(state, user_id).await? {
        return Err(AuthError::Invalid(
            "Two-step verification is already set up.".into(),
        ));
    }
    if let Some(secret) = pending_secret(state, user_id, to).await? {
        return enrolment_view(secret.expose_secret().to_vec(), account);
    }
    let secret: [u8; 20] = rand::thread_rng().r#gen();
    let key = to.key(user_id);
    let sealed = state.master_key.seal(&key, &secret);
    // Two tabs of one browser asking at once see the same secret: the first one set.
    if !state
        .ephemeral
        .set_if_absent(&key, sealed.as_bytes(), PENDING_TTL)
        .await?
        && let Some(first) = pending_secret(state, user_id, to).await?
    {
        return enrolment_view(first.expose_secret().to_vec(), account);
    }
    enrolment_view(secret.to_vec(), account)
}

/// What came of a code sent to confirm an enrolment.
pub enum Confirmation {
    /// Turned on: the recovery codes to show once.
    Enrolled(Vec<String>),
    /// Not a valid code for the secret shown to this transaction or session.
    WrongCode,
    /// Nothing was shown to this transaction or session (or it timed out).
    Expired,
}

/// Activates the enrolment shown to `to` when `code` is valid for its secret now: the
/// secret is stored sealed and confirmed, with the code's time step used up and fresh
/// recovery codes, and the user is told by mail in the same commit (a second factor
/// someone else added would otherwise go unnoticed).
pub async fn confirm(
    state: &AppState,
    ctx: &RequestContext,
    user_id: &str,
    to: EnrolmentFor<'_>,
    code: &str,
) -> Result<Confirmation, AuthError> {
    let ip = ctx.client_ip;
    let Some(secret) = pending_secret(state, user_id, to).await? else {
        return Ok(Confirmation::Expired);
    };
    let now = state.clock.now();
    let Some(step) =
        totp(secret.expose_secret().to_vec(), "", 6)?.check(code, now.timestamp().max(0) as u64)
    else {
        return Ok(Confirmation::WrongCode);
    };
    // One confirmation per shown secret, even if the form is sent twice at once.
    if state.ephemeral.take(&to.key(user_id)).await?.is_none() {
        return Ok(Confirmation::Expired);
    }
    let sealed = state
        .master_key
        .seal(&seal_context(user_id), secret.expose_secret());
    let (codes, hashes) = new_recovery_codes(state);
    let (id, mailer) = (user_id.to_owned(), state.mailer.clone());
    let pii = state.pii.clone();
    let activated = state
        .store
        .transaction(move |c| {
            store::activate(c, &id, &sealed, step as i64, now.naive_utc())?;
            store::replace_recovery_codes(c, &id, &hashes, now.naive_utc())?;
            let Some(user) = users::find_by_id(c, &pii, &id)? else {
                return Ok(None);
            };
            let notice = Notice::TotpEnrolled {
                name: user.addressed_as(),
                username: user.username.clone(),
                at: now,
                ip,
            };
            mailer.enqueue_notice(c, &user, &notice)?;
            Ok(Some(user.org_id))
        })
        .await;
    let org_id = match activated {
        Ok(org_id) => org_id,
        // Another transaction or session of this user turned one on first.
        Err(crate::store::StoreError::Conflict) => {
            return Err(AuthError::Invalid(
                "Two-step verification is already set up.".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    state.mailer.wake();
    tracing::info!(user_id = %user_id, "second factor enrolled");
    let during = match to {
        EnrolmentFor::Transaction(_) => "sign_in",
        EnrolmentFor::Session(_) => "account",
    };
    let mut event = AuditEvent::success(EventType::MfaEnrolled, ctx)
        .subject(user_id)
        .detail("during", during);
    if let Some(org_id) = &org_id {
        event = event.org(org_id);
    }
    state.audit.record(event).await?;
    Ok(Confirmation::Enrolled(codes))
}

/// Checks six digits against the user's active secret at the current time, ±1 step,
/// and uses the step up.
pub async fn check_totp(state: &AppState, user_id: &str, code: &str) -> Result<bool, AuthError> {
    let id = user_id.to_owned();
    let Some(row) = state.store.run(move |c| store::find(c, &id)).await? else {
        return Ok(false);
    };
    // A secret that was never confirmed is no second factor.
    if row.confirmed_at.is_none() {
        return Ok(false);
    }
    let secret = state
        .master_key
        .open(&seal_context(user_id), &row.secret_sealed)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let totp = totp(secret.expose_secret().to_vec(), "", 6)?;
    let now = state.clock.now().timestamp().max(0) as u64;
    let Some(step) = totp.check(code, now) else {
        return Ok(false);
    };
    let id = user_id.to_owned();
    Ok(state
        .store
        .run(move |c| store::consume_step(c, &id, step as i64))
        .await?)
}

/// A fresh set of recovery codes; the old set is void.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    user_id: &str,
) -> Result<Vec<String>, AuthError> {
    let (codes, hashes) = new_recovery_codes(state);
    let (id, now) = (user_id.to_owned(), state.clock.now().naive_utc());
    state
        .store
        .transaction(move |c| store::replace_recovery_codes(c, &id, &hashes, now))
        .await?;
    Ok(codes)
}

fn new_recovery_codes(state: &AppState) -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rngs::OsRng;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = (0..10)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    let hashes = codes
        .iter()
        .map(|c| recovery_hash(state, &c.replace('-', "")))
        .collect();
    (codes, hashes)
}

fn recovery_hash(state: &AppState, normalised: &str) -> String {
    let key = state.master_key.derive("recovery-codes");
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).expect("HMAC takes any key length");
    mac.update(normalised.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// How many of the user's recovery codes are left.
pub async fn unused_recovery_codes(state: &AppState, user_id: &str) -> Result<i64, AuthError> {
    let id = user_id.to_owned();
    Ok(state
        .store
        .run(move |c| store::unused_recovery_codes(c, &id))
        .await?)
}

/// Uses a recovery code once.
pub async fn use_recovery_code(
    state: &AppState,
    user_id: &str,
    normalised: &str,
) -> Result<bool, AuthError> {
    let hash = recovery_hash(state, normalised);
    let (id, now) = (user_id.to_owned(), state.clock.now().naive_utc());
    Ok(state
        .store
        .run(move |c| store::use_recovery_code(c, &id, &hash, now))
        .await?)
}

/// Checks whatever second factor was given.
pub async fn check(
    state: &AppState,
    user_id: &str,
    factor: &SecondFactor,
) -> Result<bool, AuthError> {
    match factor {
        SecondFactor::Totp(code) => check_totp(state, user_id, code).await,
        SecondFactor::Recovery(code) => use_recovery_code(state, user_id, code).await,
    }
}

pub async fn is_enrolled(state: &AppState, user_id: &str) -> Result<bool, AuthError> {
    let id = user_id.to_owned();
    Ok(state.store.run(move |c| store::is_enrolled(c, &id)).await?)
}

/// Removes the second factor (by the user, or an administrator) and tells the user by
/// mail in the same commit (DESIGN §6).
/// The user removes their own second factor (DESIGN §6), after proving password and
/// code: removed, mailed, and recorded as their own act.
pub async fn remove_own(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<bool, AuthError> {
    let removed = remove(state, &user.id, false).await?;
    if removed {
        let event = AuditEvent::success(EventType::MfaRemoved, ctx).actor(&user.id);
        state
            .audit
            .record(event.about(&user.id, &user.org_id))
            .await?;
    }
    Ok(removed)
}

pub async fn remove(
    state: &AppState,
    user_id: &str,
    by_administrator: bool,
) -> Result<bool, AuthError> {
    let (id, now, mailer) = (user_id.to_owned(), state.clock.now(), state.mailer.clone());
    let pii = state.pii.clone();
    let removed = state
        .store
        .transaction(move |c| {
            // Recovery codes are also the way back to an account whose passkeys are
            // lost (DESIGN §17): they stay while it has any.
            let passkeys = crate::store::passkeys::count_for(c, &id)? > 0;
            if !store::remove(c, &id, passkeys)? {
                return Ok(false);
            }
            if let Some(user) = users::find_by_id(c, &pii, &id)? {
                let notice = Notice::TotpRemoved {
                    name: user.addressed_as(),
                    username: user.username.clone(),
                    at: now,
                    by_administrator,
                };
                mailer.enqueue_notice(c, &user, &notice)?;
            }
            Ok(true)
        })
        .await?;
    if removed {
        tracing::info!(user_id = %user_id, "second factor removed");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows: our configuration at 8 digits gives the
    /// published values, and our 6-digit codes are their last six digits.
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let vectors = [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let eight = totp(secret.clone(), "alice", 8).unwrap();
        let six = totp(secret, "alice", 6).unwrap();
        for (time, expected) in vectors {
            assert_eq!(eight.generate(time).to_string(), expected, "t={time}");
            assert_eq!(six.generate(time).to_string(), expected[2..], "t={time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let t = totp(vec![7u8; 20], "a", 6).unwrap();
        let now = 1_700_000_000u64;
        let code = t.generate(now).to_string();
        assert!(t.check(&code, now + 30).is_some());
        assert!(t.check(&code, now - 30).is_some());
        assert!(
            t.check(&code, now + 60).is_none(),
            "two steps old is refused"
        );
    }

    #[test]
    fn codes_are_parsed_at_the_edge() {
        assert_eq!(
            SecondFactor::parse(" 123 456 ").unwrap(),
            SecondFactor::Totp("123456".into())
        );
        assert_eq!(
            SecondFactor::parse("ABCDE-FGHJK").unwrap(),
            SecondFactor::Recovery("abcdefghjk".into())
        );
        for bad in [
            "12345",
            "1234567",
            "abcdef",
            "",
            "12345a",
            &"1".repeat(10_000),
            "abcde-fghj0",
        ] {
            assert!(SecondFactor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_otpauth_url_names_issuer_and_account() {
        let view = enrolment_view(vec![1u8; 20], "alice").unwrap();
        assert!(
            view.otpauth_url
                .starts_with("otpauth://totp/Gatehouse:alice?"),
            "{}",
            view.otpauth_url
        );
        assert!(view.otpauth_url.contains("issuer=Gatehouse"));
        assert!(
            view.otpauth_url
                .contains(&format!("secret={}", view.secret_base32))
        );
        assert!(!view.qr_png_base64.is_empty());
        let _ = totp_rs::Secret::try_from_base32(&view.secret_base32).unwrap();
    }
}
