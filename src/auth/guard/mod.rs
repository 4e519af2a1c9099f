//! The brute-force guard (DESIGN §5) around every credential check (password, TOTP
//! code, recovery code): IP blocks, account lockout with exact counting, per-IP rate
//! limits.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use prometheus::{IntCounter, IntCounterVec, Opts};

use super::{hashing::Admission, login::pool_error, token_hash, totp::SecondFactor};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    bootstrap::DEFAULT_ORG,
    config::Config,
    domain::{Email, LockoutPolicy, OrgName, Password, UserStatus, Username},
    mail::{Alert, Notice},
    startup::AppState,
    store::{ip_allow, ip_blocks, lockouts, orgs, users, users::UserRow},
    telemetry::Metrics,
    web::{RequestContext, error::AppError},
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
    pub fn rate_limit(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        let Some(ip) = ip else { return Ok(()) };
        self.limiter
            .check_key(&block_key_addr(ip))
            .map_err(|not_until| {
                self.attempts.with_label_values(&["rate_limited"]).inc();
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                AppError::TooManyRequests {
                    retry_after_secs: wait.as_secs().max(1),
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

/// IPv6 clients are counted and blocked per /64: one client controls a whole /64.
fn block_key_addr(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

pub fn ip_block_key(ip: IpAddr) -> String {
    match block_key_addr(ip) {
        IpAddr::V6(v6) => format!("{v6}/64"),
        v4 => v4.to_string(),
    }
}

/// Whether `ip` is exempt from counting and blocking: in the `ip_allow_list` setting or
/// in the allow-list administrators keep in the database (read on every check, so an
/// entry added or removed on one instance holds on all of them at once).
pub(crate) async fn allow_listed(state: &AppState, ip: IpAddr) -> Result<bool, AppError> {
    if state
        .config
        .ip_allow_list
        .iter()
        .any(|net| net.contains(&ip))
    {
        return Ok(true);
    }
    let listed = state.store.run(ip_allow::list).await?;
    Ok(listed.iter().any(|row| {
        row.cidr
            .parse::<ipnet::IpNet>()
            .is_ok_and(|net| net.contains(&ip))
    }))
}

/// The client address the guard counts, or None when there is none or it is allow-listed.
pub(crate) async fn counted_ip(
    state: &AppState,
    ip: Option<IpAddr>,
) -> Result<Option<IpAddr>, AppError> {
    match ip {
        Some(ip) if !allow_listed(state, ip).await? => Ok(Some(ip)),
        _ => Ok(None),
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
}

impl Credential {
    /// `details.factor` of the audit events.
    fn kind(&self) -> &'static str {
        match self {
            Self::Password(_) => "password",
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
) -> Result<Verdict, AppError> {
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
) -> Result<Found, AppError> {
    let username = Username::parse(raw_username).ok();
    Ok(state
        .store
        .run(move |c| {
            let blocked = match &ip_key {
                Some(k) => ip_blocks::active(c, k, now)?.map(|b| b.blocked_until),
                None => None,
            };
            let user = match &username {
                Some(u) => users::find_by_username(c, u)?,
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
/// name), with every defence in order: IP block, account lock (reserving the attempt
/// first, so counting is exact under concurrency), the check, then counting a failure.
///
/// A success gives the reserved attempt back but clears nothing: failures and the run
/// of consecutive locks restart only when a whole sign-in succeeds
/// (`sign_in_completed`). Otherwise the right password would wipe the count before
/// every few wrong codes, and guessing the second factor would never lock.
pub async fn attempt(
    state: &AppState,
    ctx: &RequestContext,
    raw_username: &str,
    credential: Credential,
) -> Result<Verdict, AppError> {
    let guard = &state.guard;
    let now = state.clock.now();
    let naive_now = now.naive_utc();
    // Capacity first: under a flood the excess is refused before it costs a query.
    let admission = match credential {
        Credential::Password(_) => Some(state.hashing.admit().map_err(pool_error)?),
        Credential::SecondFactor(_) => None,
    };
    let ip = counted_ip(state, ctx.client_ip).await?;
    let ip_key = ip.map(ip_block_key);
    let key = login_key(raw_username);
    let found = look_up(state, raw_username, ip_key.clone(), naive_now).await?;
    let kind = credential.kind();
    let subject = found
        .user
        .as_ref()
        .map(|u| (u.id.clone(), u.org_id.clone()));
    let failed = |reason: &str| failure_event(ctx, kind, subject.as_ref(), reason);
    if let Some(until) = found.blocked {
        guard.attempts.with_label_values(&["ip_blocked"]).inc();
        state.audit.record(failed("ip_blocked")).await?;
        let wait = (until - naive_now).num_seconds().max(1) as u64;
        return Ok(Verdict::IpBlocked {
            retry_after: Duration::from_secs(wait),
        });
    }

    let (reserve_key, reserve_policy) = (key.clone(), found.policy.clone());
    let reservation = state
        .store
        .run(move |c| lockouts::reserve(c, &reserve_key, &reserve_policy, naive_now))
        .await?;
    if let lockouts::Reservation::Locked { .. } = reservation {
        guard.attempts.with_label_values(&["locked"]).inc();
        state.audit.record(failed("locked")).await?;
        return Ok(Verdict::Locked);
    }

    let reason = failure_reason(found.user.as_ref(), &credential);
    // An invited account has no password yet, a disabled one may still have one, and a
    // forced reset took the password away: none signs in, and all get the answer a
    // wrong password gets.
    let usable = found
        .user
        .filter(|u| u.status() == UserStatus::Active && u.password_hash.is_some());
    let release_key = key.clone();
    let release = || async move {
        state
            .store
            .run(move |c| lockouts::release(c, &release_key))
            .await
    };
    let ok = match check(state, usable.as_ref(), credential, admission).await {
        Ok(ok) => ok,
        Err(e) => {
            // Never checked, so not a guess: give the reserved attempt back.
            release().await?;
            return Err(e);
        }
    };
    if let (true, Some(user)) = (ok, usable) {
        release().await?;
        guard.attempts.with_label_values(&["success"]).inc();
        return Ok(Verdict::Success(Box::new(user)));
    }

    guard.attempts.with_label_values(&["failure"]).inc();
    state.audit.record(failed(reason)).await?;
    count_failure(state, ctx, key, found.policy, subject.as_ref()).await?;
    if let (Some(ip), Some(ip_key)) = (ip, ip_key) {
        count_ip_failure(state, ctx, ip, ip_key, now.timestamp()).await?;
    }
    Ok(Verdict::Failure)
}

/// The whole sign-in succeeded (every factor it needed): the failure count and the run
/// of consecutive locks restart (DESIGN §5 "a success resets the count").
pub async fn sign_in_completed(state: &AppState, username: &str) -> Result<(), AppError> {
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
) -> Result<bool, AppError> {
    match (credential, admission) {
        (Credential::Password(password), Some(admission)) => state
            .hashing
            .verify_admitted(
                admission,
                usable.and_then(|u| u.password_hash.clone()),
                password,
            )
            .await
            .map_err(pool_error),
        (Credential::Password(_), None) => Err(AppError::Internal(
            "password attempt without a hashing admission".into(),
        )),
        (Credential::SecondFactor(Some(factor)), _) => match usable {
            Some(user) => super::totp::check(state, &user.id, &factor).await,
            None => Ok(false),
        },
        (Credential::SecondFactor(None), _) => Ok(false),
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
    subject: Option<&(String, String)>,
    reason: &str,
) -> AuditEvent {
    let event_type = match kind {
        "password" => EventType::SignInFailed,
        _ => EventType::MfaFailed,
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

/// Counts a failed attempt against the name; when it locks, the lock is audited and
/// (for a real account) mailed to the user and support (DESIGN §5).
async fn count_failure(
    state: &AppState,
    ctx: &RequestContext,
    key: String,
    policy: LockoutPolicy,
    subject: Option<&(String, String)>,
) -> Result<(), AppError> {
    let naive_now = state.clock.now().naive_utc();
    let new_lock = state
        .store
        .run(move |c| lockouts::record_failure(c, &key, &policy, naive_now))
        .await?;
    let Some(lock) = new_lock else {
        return Ok(());
    };
    state.guard.lockouts.inc();
    let mut event = AuditEvent::new(EventType::AccountLocked, Outcome::Success)
        .request(ctx)
        .detail("permanent", lock.permanent)
        .detail("lock_count", lock.lock_count)
        .detail("until", lock.until.and_utc().to_rfc3339());
    if let Some((id, org)) = subject {
        event = event.subject(id).org(org);
    }
    state.audit.record(event).await?;
    if let Some((id, _)) = subject {
        let until = (!lock.permanent).then(|| lock.until.and_utc());
        notify_lock(state, id, until, ctx.client_ip).await?;
    }
    tracing::warn!(
        request_id = %ctx.request_id,
        permanent = lock.permanent,
        lock_count = lock.lock_count,
        "account locked after failed sign-ins"
    );
    Ok(())
}

/// DESIGN §5: a lock is mailed to the user and alerted to the organisation's support
/// contact (and the webhook, if configured), all queued in one transaction through the
/// durable outbox. Names that belong to no account lock silently: there is no one to tell.
async fn notify_lock(
    state: &AppState,
    user_id: &str,
    until: Option<chrono::DateTime<chrono::Utc>>,
    ip: Option<IpAddr>,
) -> Result<(), AppError> {
    let (user_id, mailer, issuer) = (
        user_id.to_owned(),
        state.mailer.clone(),
        state.config.issuer.clone(),
    );
    state
        .store
        .transaction(move |c| {
            let Some(user) = users::find_by_id(c, &user_id)? else {
                return Ok(());
            };
            let Some(org) = orgs::find_by_id(c, &user.org_id)? else {
                return Ok(());
            };
            let name = user
                .display_name
                .clone()
                .unwrap_or_else(|| user.username.clone());
            if let Ok(email) = Email::parse(&user.email) {
                let notice = Notice::Lockout {
                    name,
                    username: user.username.clone(),
                    until,
                    ip,
                };
                mailer.enqueue_email(c, &email, &notice.render(&issuer))?;
            }
            let alert = Alert::AccountLocked {
                username: user.username.clone(),
                until,
                ip,
            };
            let (event, payload) = alert.webhook_event(&org.name);
            mailer.enqueue_event(c, event, &payload)?;
            if let Some(support) = org
                .policy()
                .support_email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
            {
                let notice = Notice::SupportAlert {
                    org: org.display_name.clone(),
                    alert,
                };
                mailer.enqueue_email(c, &support, &notice.render(&issuer))?;
            }
            Ok(())
        })
        .await?;
    state.mailer.wake();
    Ok(())
}

/// An IP block is alerted to the default organisation's support contact and the webhook:
/// addresses are not owned by one organisation.
async fn notify_ip_block(state: &AppState, block: &ip_blocks::IpBlockRow) -> Result<(), AppError> {
    let alert = Alert::IpBlocked {
        address: block.ip.clone(),
        until: block.blocked_until.and_utc(),
        block_count: block.block_count.max(0) as u32,
    };
    let (mailer, issuer) = (state.mailer.clone(), state.config.issuer.clone());
    state
        .store
        .transaction(move |c| {
            let org = orgs::find_by_name(
                c,
                &OrgName::parse(DEFAULT_ORG).map_err(|e| crate::store::StoreError::Query(e.0))?,
            )?;
            let org_name = org
                .as_ref()
                .map_or(DEFAULT_ORG.to_owned(), |o| o.name.clone());
            let (event, payload) = alert.webhook_event(&org_name);
            mailer.enqueue_event(c, event, &payload)?;
            if let Some(org) = org
                && let Some(support) = org
                    .policy()
                    .support_email
                    .as_deref()
                    .and_then(|e| Email::parse(e).ok())
            {
                let notice = Notice::SupportAlert {
                    org: org.display_name.clone(),
                    alert,
                };
                mailer.enqueue_email(c, &support, &notice.render(&issuer))?;
            }
            Ok(())
        })
        .await?;
    state.mailer.wake();
    Ok(())
}

/// Counts a failure against the client address over a sliding window (two fixed
/// buckets, the older one weighted by how much of it still overlaps the window) and
/// blocks the address when the estimate passes the threshold.
async fn count_ip_failure(
    state: &AppState,
    ctx: &RequestContext,
    ip: IpAddr,
    ip_key: String,
    now: i64,
) -> Result<(), AppError> {
    let config = &state.config;
    let window = config.ip_block_window_secs.max(1) as i64;
    let bucket = now.div_euclid(window);
    let elapsed = now.rem_euclid(window);
    let current = state
        .ephemeral
        .incr(
            &format!("ipfail:{ip_key}:{bucket}"),
            Duration::from_secs(2 * window as u64),
        )
        .await?;
    let previous: i64 = state
        .ephemeral
        .get(&format!("ipfail:{ip_key}:{}", bucket - 1))
        .await?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let estimate = current + previous * (window - elapsed) / window;
    if estimate <= i64::from(config.ip_block_threshold) {
        return Ok(());
    }
    let base = chrono::Duration::seconds(config.ip_block_secs.max(1) as i64);
    let naive_now = state.clock.now().naive_utc();
    let key = ip_key.clone();
    let blocked = state
        .store
        .run(move |c| ip_blocks::block(c, &key, base, "too many failed sign-ins", naive_now))
        .await?;
    if let Some(block) = blocked {
        state.guard.ip_blocks.inc();
        state
            .audit
            .record(
                AuditEvent::new(EventType::IpBlocked, Outcome::Success)
                    .request(ctx)
                    .detail("blocked", block.ip.as_str())
                    .detail("until", block.blocked_until.and_utc().to_rfc3339())
                    .detail("block_count", block.block_count),
            )
            .await?;
        notify_ip_block(state, &block).await?;
        tracing::warn!(
            client_ip = %ip,
            until = %block.blocked_until,
            block_count = block.block_count,
            "client address blocked after failed sign-ins"
        );
    }
    Ok(())
}
