//! The brute-force guard (DESIGN §5) around every credential check (password, TOTP
//! code, recovery code): IP blocks, account lockout with exact counting, per-IP rate
//! limits.

mod address;
mod error;
mod notices;

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use prometheus::{IntCounter, IntCounterVec, Opts};

use address::block_key_addr;
pub(crate) use address::counted_ip;
pub use address::{blocked_for, ip_block_key};
pub use error::GuardError;

use super::{hashing::Admission, passkey::PasskeyProof, token_hash, totp::SecondFactor};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    config::Config,
    domain::{LockoutPolicy, Password, UserStatus, Username},
    startup::AppState,
    store::{ip_blocks, lockouts, orgs, users, users::UserRow},
    telemetry::Metrics,
};

/// What a password attempt came to.
#[derive(Debug)]
pub enum Verdict {
    Success(Box<UserRow>),
    /// Wrong password or code, unknown or disabled account, password taken away by a
    /// forced reset: one answer for all.
    Failure,
    /// Refused without checking: the name is locked (real account or not).
    Locked,
    /// Refused without checking: the client address is blocked.
    IpBlocked {
        retry_after: Duration,
    },
}

pub struct Guard {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    attempts: IntCounterVec,
    lockouts: IntCounter,
    ip_blocks: IntCounter,
}

impl Guard {
    pub fn new(config: &Config, metrics: &Metrics) -> Self {
        let per_minute =
            NonZeroU32::new(config.rate_limit_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_limit_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let attempts = IntCounterVec::new(
            Opts::new("sign_in_attempts_total", "password attempts by outcome"),
            &["outcome"],
        )
        .expect("static metric");
        let lockouts = IntCounter::new("lockouts_total", "accounts locked").expect("static metric");
        let ip_blocks =
            IntCounter::new("ip_blocks_total", "client addresses blocked").expect("static metric");
        metrics.register(Box::new(attempts.clone()));
        metrics.register(Box::new(lockouts.clone()));
        metrics.register(Box::new(ip_blocks.clone()));
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            attempts,
            lockouts,
            ip_blocks,
        }
    }

    /// Per-IP quota for the sign-in, reset and token endpoints: `Err` carries the wait.
    pub fn rate_limit(&self, ip: Option<IpAddr>) -> Result<(), GuardError> {
        let Some(ip) = ip else { return Ok(()) };
        self.limiter
            .check_key(&block_key_addr(ip))
            .map_err(|not_until| {
                self.attempts.with_label_values(&["rate_limited"]).inc();
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                GuardError::RateLimited {
                    retry_after: wait.max(Duration::from_secs(1)),
                }
            })
    }

    /// Forgets idle per-IP limiter state (called periodically).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The lockout key of whatever was typed: the normalised username, or for input that
/// can be no username at all, a hash of it (still counted, never stored in clear).
pub fn login_key(raw: &str) -> String {
    match Username::parse(raw) {
        Ok(u) => u.as_str().to_owned(),
        Err(_) => format!("invalid:{}", &token_hash(&raw.trim().to_lowercase())[..32]),
    }
}

/// What was tried at a guarded step. Every kind goes through the same `attempt`
/// (DESIGN §5: failed TOTP codes count), so a lock caused by any of them is counted,
/// audited, mailed and counted against the client address alike (issue 20 item 6).
pub enum Credential {
    /// The password step, or the account page's "current password".
    Password(Password),
    /// A second-factor input of an account whose password was proven in this sign-in
    /// (or session). `None`: input that is no code at all, still a guess.
    SecondFactor(Option<SecondFactor>),
    /// A passkey's answer (DESIGN §17): a whole sign-in, or the second factor.
    Passkey(Box<PasskeyProof>),
}

impl Credential {
    /// `details.factor` of the audit events.
    fn kind(&self) -> &'static str {
        match self {
            Self::Password(_) => "password",
            Self::Passkey(_) => "passkey",
            Self::SecondFactor(Some(SecondFactor::Totp(_))) => "totp",
            Self::SecondFactor(Some(SecondFactor::Recovery(_))) => "recovery_code",
            Self::SecondFactor(None) => "malformed_code",
        }
    }
}

/// Checks `password` for what was typed as a username, with every defence in order.
pub async fn password_attempt(
    state: &AppState,
    ctx: &RequestContext,
    raw_username: &str,
    password: Password,
) -> Result<Verdict, GuardError> {
    attempt(state, ctx, raw_username, Credential::Password(password)).await
}

/// What the guard reads before an attempt.
struct Found {
    user: Option<UserRow>,
    policy: LockoutPolicy,
    blocked: Option<chrono::NaiveDateTime>,
}

async fn look_up(
    state: &AppState,
    raw_username: &str,
    ip_key: Option<String>,
    now: chrono::NaiveDateTime,
) -> Result<Found, GuardError> {
    let username = Username::parse(raw_username).ok();
    let pii = state.pii.clone();
    Ok(state
        .store
        .run(move |c| {
            let blocked = match &ip_key {
                Some(k) => ip_blocks::active(c, k, now)?.map(|b| b.blocked_until),
                None => None,
            };
            let user = match &username {
                Some(u) => users::find_by_username(c, &pii, u)?,
                None => None,
            };
            // One policy for every name, real or not, whatever its organisation: see
            // `LockoutPolicy::strictest` (issue 20 item 10).
            let policy =
                LockoutPolicy::strictest(orgs::list(c)?.iter().map(|o| o.policy().lockout));
            Ok(Found {
                user,
                policy,
                blocked,
            })
        })
        .await?)
}

/// Checks `credential` for what was typed as a username (or the signed-in account's
/// name), with every defence in order: IP block, account lock (leasing one of the tries
/// left first, so counting is exact under concurrency), the check, then the verdict.
///
/// A success gives the lease back but clears nothing: failures and the run of
/// consecutive locks restart only when a whole sign-in succeeds (`sign_in_completed`).
/// Otherwise the right password would wipe the count before every few wrong codes, and
/// guessing the second factor would never lock.
pub async fn attempt(
    state: &AppState,
    ctx: &RequestContext,
    raw_username: &str,
    credential: Credential,
) -> Result<Verdict, GuardError> {
    let guard = &state.guard;
    let now = state.clock.now();
    let naive_now = now.naive_utc();
    // Capacity first: under a flood the excess is refused before it costs a query.
    let admission = match credential {
        Credential::Password(_) => Some(state.hashing.admit()?),
        Credential::SecondFactor(_) | Credential::Passkey(_) => None,
    };
    let ip = counted_ip(state, ctx.client_ip).await?;
    let ip_key = ip.map(ip_block_key);
    let key = login_key(raw_username);
    let found = look_up(state, raw_username, ip_key.clone(), naive_now).await?;
    let kind = credential.kind();
    // A passkey without a password before it is a sign-in of its own.
    let whole_sign_in = match &credential {
        Credential::Password(_) => true,
        Credential::Passkey(proof) => proof.passwordless(),
        Credential::SecondFactor(_) => false,
    };
    let subject = found
        .user
        .as_ref()
        .map(|u| (u.id.clone(), u.org_id.clone()));
    let failed = |reason: &str| failure_event(ctx, kind, whole_sign_in, subject.as_ref(), reason);
    if let Some(until) = found.blocked {
        guard.attempts.with_label_values(&["ip_blocked"]).inc();
        state.audit.record(failed("ip_blocked")).await?;
        let wait = (until - naive_now).num_seconds().max(1) as u64;
        return Ok(Verdict::IpBlocked {
            retry_after: Duration::from_secs(wait),
        });
    }

    if !take_a_try(state, &key, &found.policy).await? {
        guard.attempts.with_label_values(&["locked"]).inc();
        state.audit.record(failed("locked")).await?;
        return Ok(Verdict::Locked);
    }

    let reason = failure_reason(found.user.as_ref(), &credential);
    // An invited account has no password yet, a disabled one may still have one, and a
    // forced reset took the password away: none signs in, and all get the answer a
    // wrong password gets. A passkey is a credential of its own: it needs no password.
    let needs_password = !matches!(credential, Credential::Passkey(_));
    let usable = found.user.filter(|u| {
        u.status() == UserStatus::Active && (u.password_hash.is_some() || !needs_password)
    });
    let ok = match check(state, usable.as_ref(), credential, admission).await {
        Ok(ok) => ok,
        Err(e) => {
            // Never checked, so not a guess: give the try back.
            release(state, &key).await;
            return Err(e);
        }
    };
    if let (true, Some(user)) = (ok, usable) {
        release(state, &key).await;
        guard.attempts.with_label_values(&["success"]).inc();
        return Ok(Verdict::Success(Box::new(user)));
    }

    guard.attempts.with_label_values(&["failure"]).inc();
    let event = failed(reason);
    let failure = Failure {
        key,
        policy: found.policy,
        subject,
        event,
    };
    record_failure(state, ctx, failure).await?;
    if let (Some(ip), Some(ip_key)) = (ip, ip_key) {
        address::count_failure(state, ctx, ip, ip_key, now.timestamp()).await?;
    }
    Ok(Verdict::Failure)
}

/// Longest an attempt waits for the verdicts of attempts in flight on the same name.
/// A check is a hash and a few statements; leases orphaned by an outage lapse on their
/// own later (`lockouts::IN_FLIGHT_LEASE`), and meanwhile the answer is "try again".
const WAIT_FOR_VERDICTS: Duration = Duration::from_secs(5);

/// Takes one of the tries left on `key`: true when this attempt may be checked, false
/// when the name is locked. When every try left is held by attempts still being checked,
/// waits for their verdicts instead of answering "locked" (issue 23 item 5): eight tabs
/// signing in at once with the right password all get in, while of fifty parallel
/// guesses exactly the threshold are checked and the rest, once those failed, are
/// refused as locked.
async fn take_a_try(
    state: &AppState,
    key: &str,
    policy: &LockoutPolicy,
) -> Result<bool, GuardError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let (k, p) = (key.to_owned(), policy.clone());
        let now = state.clock.now().naive_utc();
        match state
            .store
            .run(move |c| lockouts::reserve(c, &k, &p, now))
            .await?
        {
            lockouts::Reservation::Allowed => return Ok(true),
            lockouts::Reservation::Locked { .. } => return Ok(false),
            lockouts::Reservation::Busy => {}
        }
        if started.elapsed() + pause > WAIT_FOR_VERDICTS {
            // Never "locked" when it is not: the honest answer is to come back.
            return Err(GuardError::Unavailable(
                "earlier attempts on this name are still being checked".into(),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Ends a lease without a failure. If the database cannot be told, the lease lapses by
/// itself (`lockouts::IN_FLIGHT_LEASE`): nothing is counted either way.
async fn release(state: &AppState, key: &str) {
    let key = key.to_owned();
    if let Err(e) = state.store.run(move |c| lockouts::release(c, &key)).await {
        tracing::warn!(error = %e, "a sign-in attempt's lease is left to lapse");
    }
}

/// A checked attempt that failed, ready to be recorded.
struct Failure {
    key: String,
    policy: LockoutPolicy,
    /// The account's (id, org id), when the name is one.
    subject: Option<(String, String)>,
    /// Its `sign_in.failed` or `mfa.failed` event.
    event: AuditEvent,
}

/// The verdict of a failed attempt as one transaction: the count, the lock it may
/// cause, both audit events and the lock's notices — all or none (issue 23 item 2). If
/// the database goes away before the commit, the attempt is answered 503 and its lease
/// lapses: nothing was counted, nothing is locked, nobody was told.
async fn record_failure(
    state: &AppState,
    ctx: &RequestContext,
    failure: Failure,
) -> Result<(), GuardError> {
    let naive_now = state.clock.now().naive_utc();
    let Failure {
        key,
        policy,
        subject,
        event,
    } = failure;
    let mut locked_event = AuditEvent::new(EventType::AccountLocked, Outcome::Success).request(ctx);
    if let Some((id, org)) = &subject {
        locked_event = locked_event.subject(id).org(org);
    }
    let user_id = subject.map(|(id, _)| id);
    let client_ip = ctx.client_ip;
    let (audit, mailer, issuer, pii) = (
        state.audit.clone(),
        state.mailer.clone(),
        state.config.issuer.clone(),
        state.pii.clone(),
    );
    let new_lock = state
        .store
        .transaction(move |c| {
            let new_lock = lockouts::record_failure(c, &key, &policy, naive_now)?;
            let mut events = vec![event];
            if let Some(lock) = &new_lock {
                events.push(
                    locked_event
                        .detail("permanent", lock.permanent)
                        .detail("lock_count", lock.lock_count)
                        .detail("until", lock.until.and_utc().to_rfc3339()),
                );
                if let Some(id) = &user_id {
                    let until = (!lock.permanent).then(|| lock.until.and_utc());
                    notices::queue_lock(c, &pii, &mailer, &issuer, id, until, client_ip)?;
                }
            }
            audit.record_in(c, events)?;
            Ok(new_lock)
        })
        .await?;
    if let Some(lock) = new_lock {
        state.guard.lockouts.inc();
        state.mailer.wake();
        tracing::warn!(
            request_id = %ctx.request_id,
            permanent = lock.permanent,
            lock_count = lock.lock_count,
            "account locked after failed sign-ins"
        );
    }
    Ok(())
}

/// The whole sign-in succeeded (every factor it needed): the failure count and the run
/// of consecutive locks restart (DESIGN §5 "a success resets the count").
pub async fn sign_in_completed(state: &AppState, username: &str) -> Result<(), GuardError> {
    let key = login_key(username);
    state
        .store
        .run(move |c| lockouts::record_success(c, &key))
        .await?;
    Ok(())
}

/// Checks the credential against the account, or against nothing (a dummy hash for a
/// password, so an unknown name costs the same time) when there is no usable account.
async fn check(
    state: &AppState,
    usable: Option<&UserRow>,
    credential: Credential,
    admission: Option<Admission>,
) -> Result<bool, GuardError> {
    match (credential, admission) {
        (Credential::Password(password), Some(admission)) => state
            .hashing
            .verify_admitted(
                admission,
                usable.and_then(|u| u.password_hash.clone()),
                password,
            )
            .await
            .map_err(GuardError::from),
        (Credential::Password(_), None) => Err(GuardError::Internal(
            "password attempt without a hashing admission".into(),
        )),
        (Credential::SecondFactor(Some(factor)), _) => match usable {
            Some(user) => super::totp::check(state, &user.id, &factor)
                .await
                .map_err(GuardError::from),
            None => Ok(false),
        },
        (Credential::SecondFactor(None), _) => Ok(false),
        (Credential::Passkey(proof), _) => super::passkey::verify(state, usable, *proof)
            .await
            .map_err(GuardError::from),
    }
}

/// Why an attempt failed, for the audit trail only: the person is told one thing.
fn failure_reason(user: Option<&UserRow>, credential: &Credential) -> &'static str {
    let Some(user) = user else {
        return "unknown_account";
    };
    match (user.status(), user.password_hash.is_some(), credential) {
        (UserStatus::Invited, _, _) => "invitation_pending",
        (UserStatus::Disabled, _, _) => "account_disabled",
        (UserStatus::Active, _, Credential::Passkey(_)) => "bad_passkey",
        // An administrator forced a reset: only the mailed link sets a password now.
        (UserStatus::Active, false, _) => "password_reset_required",
        (UserStatus::Active, true, Credential::Password(_)) => "bad_password",
        (UserStatus::Active, true, Credential::SecondFactor(Some(_))) => "bad_code",
        (UserStatus::Active, true, Credential::SecondFactor(None)) => "malformed_code",
    }
}

/// The audit event of a failed attempt: a sign-in failure for a password, an MFA
/// failure for a second factor.
fn failure_event(
    ctx: &RequestContext,
    kind: &str,
    whole_sign_in: bool,
    subject: Option<&(String, String)>,
    reason: &str,
) -> AuditEvent {
    let event_type = match whole_sign_in {
        true => EventType::SignInFailed,
        false => EventType::MfaFailed,
    };
    let mut event = AuditEvent::new(event_type, Outcome::Failure)
        .request(ctx)
        .detail("reason", reason)
        .detail("factor", kind);
    if let Some((id, org)) = subject {
        event = event.subject(id).org(org);
    }
    event
}
