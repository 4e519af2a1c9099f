//! Password recovery, administrator-forced resets and invitations (DESIGN §7).
//!
//! - **Self-service reset**: `request_reset` mails a single-use link to the account a
//!   username or email address names; `complete_reset` sets the new password from it.
//!   The answer to a request never says whether an account exists (`pages` answers
//!   every request alike, after the same minimum time).
//! - **Forced reset** (`issued`): `force_reset` / `force_reset_org` take the password
//!   away at once, end the sessions and mail the user a reset link. The admin API, the
//!   console and the CLI call them.
//! - **Invitation** (`issued`): `invite` creates an account without a password and
//!   mails a link; `accept_invitation` sets the first password and activates the
//!   account.
//!
//! Links carry 256 random bits; only their SHA-256 is stored (`store::recovery_tokens`).
//! Mails are queued in the transaction that issues the token, so a token and its mail
//! commit together or not at all. Every new password goes through
//! `account::commit_new_password`, the one path that ends sessions and is audited.

mod issued;

pub use issued::{
    Admin, AdminError, ForcedReset, Invitation, NewInvitation, OrgForcedReset, force_reset,
    force_reset_org, force_reset_user, invite,
};

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{
    account::{NewPasswordEffects, PasswordChange, commit_new_password, vet_new_password},
    guard::{counted_ip, ip_block_key, login_key},
    random_token, token_hash,
};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    auth::AuthError,
    domain::{Email, UserStatus, Username},
    mail::Notice,
    startup::AppState,
    store::{
        lockouts,
        recovery_tokens::{self, Purpose},
        users::{self, UserRow},
    },
};

/// Most accounts one email address may name in a reset request: each gets its own link.
const MAX_ACCOUNTS_PER_EMAIL: i64 = 10;
/// Reset request counters count per clock hour.
const HOUR_SECS: i64 = 3600;

/// The token of a mailed link, as it arrives in a URL. Only what `random_token` makes
/// can be one: 43 URL-safe base64 characters (32 bytes). Anything else — 10 KB of
/// path, a `%00`, a `/` — is refused here, before it is hashed or looked up.
pub struct LinkToken(SecretString);

impl LinkToken {
    pub const LEN: usize = 43;

    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned().into()))
    }

    fn generate() -> Self {
        Self(random_token().into())
    }

    fn hash(&self) -> String {
        token_hash(self.0.expose_secret())
    }

    fn secret(&self) -> SecretString {
        self.0.clone()
    }
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken([redacted])")
    }
}

/// What became of a submitted link.
#[derive(Debug)]
pub enum LinkOutcome {
    /// The password is set; the link is used up.
    Done,
    /// The new password was refused: every failing rule, the link still unused.
    Refused {
        username: String,
        errors: Vec<super::account::PasswordProblem>,
    },
    /// Unknown, used, expired, replaced by a newer link, or void since the password
    /// changed otherwise: one answer for all.
    Invalid,
}

fn hour_bucket(state: &AppState) -> i64 {
    state.clock.now().timestamp().div_euclid(HOUR_SECS)
}

/// Counts one event under `key` for the current clock hour; true while within `limit`.
async fn within_hourly_limit(state: &AppState, key: &str, limit: u32) -> Result<bool, AuthError> {
    let count = state
        .ephemeral
        .incr(
            &format!("{key}:{}", hour_bucket(state)),
            Duration::from_secs(2 * HOUR_SECS as u64),
        )
        .await?;
    Ok(count <= i64::from(limit))
}

/// The accounts `raw` names: the account of that username, or else every account with
/// that email address. Both lookups run for every input, found or not, so the work is
/// the same either way.
async fn accounts_named(state: &AppState, raw: &str) -> Result<Vec<UserRow>, AuthError> {
    let username = Username::parse(raw).ok();
    let email = Email::parse(raw).ok();
    let pii = state.pii.clone();
    Ok(state
        .store
        .run(move |c| {
            let by_name = match &username {
                Some(u) => users::find_by_username(c, &pii, u)?,
                None => None,
            };
            let by_email = match &email {
                Some(e) => users::find_by_email(c, &pii, e, MAX_ACCOUNTS_PER_EMAIL)?,
                None => Vec::new(),
            };
            Ok(match by_name {
                Some(user) => vec![user],
                None => by_email,
            })
        })
        .await?)
}

/// DESIGN §7 self-service reset: for each active account `raw` (a username or an email
/// address) names, mail a new single-use link, voiding any older one. Says nothing about
/// what it found: `Ok(())` for a real account and for none at all. `Err` only for what
/// does not depend on the accounts: the client address over its hourly limit, or the
/// database unreachable for the lookup. A failure after the lookup, for one account, is
/// logged and not answered: an error page only real accounts could cause would tell
/// which names exist.
///
/// An account that has already had `reset_account_limit_per_hour` mails this hour gets
/// no more (recorded in the audit trail, not told to the requester), so `/reset` cannot
/// flood an inbox.
pub async fn request_reset(
    state: &AppState,
    ctx: &RequestContext,
    raw: &str,
) -> Result<(), AuthError> {
    let config = &state.config;
    if let Some(ip) = counted_ip(state, ctx.client_ip).await? {
        let key = format!("reset-ip:{}", ip_block_key(ip));
        if !within_hourly_limit(state, &key, config.reset_ip_limit_per_hour).await? {
            let into_hour = state.clock.now().timestamp().rem_euclid(HOUR_SECS);
            return Err(AuthError::TooManyAttempts {
                retry_after: std::time::Duration::from_secs((HOUR_SECS - into_hour).max(1) as u64),
            });
        }
    }
    let mut mailed = false;
    for user in accounts_named(state, raw).await? {
        match mail_reset_link(state, ctx, &user).await {
            Ok(sent) => mailed |= sent,
            Err(e) => tracing::error!(
                request_id = %ctx.request_id,
                user_id = %user.id,
                error = %e,
                "reset link not queued"
            ),
        }
    }
    if mailed {
        state.mailer.wake();
    }
    Ok(())
}

/// Queues a reset link to one account found by `request_reset`, if it may have one now.
async fn mail_reset_link(
    state: &AppState,
    ctx: &RequestContext,
    user: &UserRow,
) -> Result<bool, AuthError> {
    let refused = |reason: &str| {
        AuditEvent::new(EventType::PasswordResetRequested, Outcome::Failure)
            .request(ctx)
            .about(&user.id, &user.org_id)
            .detail("reason", reason)
    };
    match user.status() {
        UserStatus::Active => {}
        UserStatus::Disabled => {
            state.audit.record(refused("account_disabled")).await?;
            return Ok(false);
        }
        // The invitation link is how an invited account gets its first password.
        UserStatus::Invited => {
            state.audit.record(refused("invitation_pending")).await?;
            return Ok(false);
        }
    }
    let key = format!("reset-mail:{}", user.id);
    let limit = state.config.reset_account_limit_per_hour;
    if !within_hourly_limit(state, &key, limit).await? {
        state.audit.record(refused("rate_limited")).await?;
        return Ok(false);
    }
    let expires_at = issue_link(state, user, Purpose::Reset, |token, expires_at| {
        Notice::ResetLink {
            name: user.addressed_as(),
            username: user.username.clone(),
            token,
            expires_at,
        }
    })
    .await?;
    let event = AuditEvent::success(EventType::PasswordResetRequested, ctx)
        .about(&user.id, &user.org_id)
        .detail("expires_at", expires_at.to_rfc3339());
    state.audit.record(event).await?;
    tracing::info!(request_id = %ctx.request_id, user_id = %user.id, "reset link queued");
    Ok(true)
}

/// How long a link of `purpose` works.
fn lifetime(state: &AppState, purpose: Purpose) -> chrono::Duration {
    match purpose {
        Purpose::Reset => chrono::Duration::minutes(i64::from(state.config.reset_token_minutes)),
        Purpose::Invite => chrono::Duration::hours(i64::from(state.config.invite_token_hours)),
    }
}

/// Issues a new link of `purpose` for `user` (voiding older ones) and queues the mail
/// `notice` builds from it, in one transaction. Returns when the link expires.
async fn issue_link(
    state: &AppState,
    user: &UserRow,
    purpose: Purpose,
    notice: impl FnOnce(SecretString, DateTime<Utc>) -> Notice,
) -> Result<DateTime<Utc>, AuthError> {
    let token = LinkToken::generate();
    let now = state.clock.now();
    let expires_at = now + lifetime(state, purpose);
    let notice = notice(token.secret(), expires_at);
    let (user, hash, mailer) = (user.clone(), token.hash(), state.mailer.clone());
    state
        .store
        .transaction(move |c| {
            recovery_tokens::issue(
                c,
                &user.id,
                purpose,
                &hash,
                now.naive_utc(),
                expires_at.naive_utc(),
            )?;
            mailer.enqueue_notice(c, &user, &notice)?;
            Ok(())
        })
        .await?;
    Ok(expires_at)
}

/// The user a live link of `purpose` belongs to, if the account is in the state the
/// link is for (active for a reset, invited for an invitation). The link stays unused:
/// this shows the form it opens, and a mail scanner that follows links uses up nothing.
pub async fn peek(
    state: &AppState,
    token: &LinkToken,
    purpose: Purpose,
) -> Result<Option<UserRow>, AuthError> {
    let (hash, now) = (token.hash(), state.clock.now().naive_utc());
    let status = match purpose {
        Purpose::Reset => UserStatus::Active,
        Purpose::Invite => UserStatus::Invited,
    };
    let pii = state.pii.clone();
    Ok(state
        .store
        .run(move |c| {
            let Some(row) = recovery_tokens::peek(c, purpose, &hash, now)? else {
                return Ok(None);
            };
            Ok(users::find_by_id(c, &pii, &row.user_id)?.filter(|u| u.status() == status))
        })
        .await?)
}

/// DESIGN §7: sets the new password from a reset link. In one transaction the link is
/// used up, the password set (clearing `must_change_password` and voiding other links)
/// and the lockout cleared; then every session ends and the user is told by mail. Does
/// not sign anyone in.
pub async fn complete_reset(
    state: &AppState,
    ctx: &RequestContext,
    token: &LinkToken,
    change: PasswordChange,
) -> Result<LinkOutcome, AuthError> {
    set_password_by_link(state, ctx, token, change, Purpose::Reset).await
}

/// Sets the first password of an invited account from its link and activates it.
pub async fn accept_invitation(
    state: &AppState,
    ctx: &RequestContext,
    token: &LinkToken,
    change: PasswordChange,
) -> Result<LinkOutcome, AuthError> {
    set_password_by_link(state, ctx, token, change, Purpose::Invite).await
}

/// Both links: the link's user must still be as the link found them (active for a
/// reset, invited for an invitation) when the link is used up, in the same transaction
/// that sets the password.
async fn set_password_by_link(
    state: &AppState,
    ctx: &RequestContext,
    token: &LinkToken,
    change: PasswordChange,
    purpose: Purpose,
) -> Result<LinkOutcome, AuthError> {
    let Some(user) = peek(state, token, purpose).await? else {
        return Ok(LinkOutcome::Invalid);
    };
    let hash = match vet_new_password(state, &user, change).await? {
        Ok(hash) => hash,
        Err(errors) => {
            return Ok(LinkOutcome::Refused {
                username: user.username,
                errors,
            });
        }
    };
    let (token_hash, now) = (token.hash(), state.clock.now().naive_utc());
    let (user_id, lock_key) = (user.id.clone(), login_key(&user.username));
    let (effects, status) = match purpose {
        Purpose::Reset => (
            NewPasswordEffects {
                keep: None,
                via: "reset",
                event: EventType::PasswordReset,
                notify: true,
            },
            UserStatus::Active,
        ),
        Purpose::Invite => (
            NewPasswordEffects {
                keep: None,
                via: "invitation",
                event: EventType::InvitationAccepted,
                // They chose it a moment ago: a "your password was changed" mail would alarm.
                notify: false,
            },
            UserStatus::Invited,
        ),
    };
    let pii = state.pii.clone();
    let done = commit_new_password(state, ctx, &user, hash, effects, move |c| {
        if recovery_tokens::take(c, purpose, &token_hash, now)?.as_deref() != Some(user_id.as_str())
        {
            return Ok(false);
        }
        let as_found = users::find_by_id(c, &pii, &user_id)?.is_some_and(|u| u.status() == status);
        if as_found {
            match purpose {
                // DESIGN §7: a reset clears the lockout, a permanent one too.
                Purpose::Reset => {
                    lockouts::unlock(c, &lock_key)?;
                }
                Purpose::Invite => users::set_status(c, &user_id, UserStatus::Active, now)?,
            }
        }
        Ok(as_found)
    })
    .await?;
    Ok(if done {
        LinkOutcome::Done
    } else {
        LinkOutcome::Invalid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_random_token_makes_is_a_link_token() {
        let made = random_token();
        assert!(LinkToken::parse(&made).is_some(), "{made}");
        for bad in [
            "",
            &made[..LinkToken::LEN - 1],
            &format!("{made}A"),
            &"A".repeat(10_000),
            &format!("{}=", &made[..LinkToken::LEN - 1]),
            &format!("{}/", &made[..LinkToken::LEN - 1]),
            &format!("{}+", &made[..LinkToken::LEN - 1]),
            &format!("{}\0", &made[..LinkToken::LEN - 1]),
            &format!("{}é", &made[..LinkToken::LEN - 2]),
        ] {
            assert!(LinkToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_link_token_does_not_print() {
        let token = LinkToken::generate();
        assert!(!format!("{token:?}").contains(token.0.expose_secret()));
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_input_never_panics_and_accepts_only_43_url_safe_bytes(raw in ".{0,64}") {
            if let Some(token) = LinkToken::parse(&raw) {
                proptest::prop_assert_eq!(token.0.expose_secret().len(), LinkToken::LEN);
            }
        }
    }
}
