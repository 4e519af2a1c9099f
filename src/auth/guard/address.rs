//! The client address side of the guard (DESIGN §5): which address is counted, the
//! allow-lists, and blocking an address that fails too often across usernames.

use std::{net::IpAddr, time::Duration};

use super::{GuardError, notices};
use crate::{
    audit::{AuditEvent, EventType, Outcome, RequestContext},
    startup::AppState,
    store::{ip_allow, ip_blocks},
};

/// IPv6 clients are counted and blocked per /64: one client controls a whole /64.
pub(super) fn block_key_addr(ip: IpAddr) -> IpAddr {
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
pub(crate) async fn allow_listed(state: &AppState, ip: IpAddr) -> Result<bool, GuardError> {
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

/// How long the client's address stays blocked, when it is (DESIGN §5): a blocked
/// address signs in no way at all, through an upstream identity provider neither.
pub async fn blocked_for(
    state: &AppState,
    ip: Option<IpAddr>,
) -> Result<Option<std::time::Duration>, GuardError> {
    let Some(ip) = counted_ip(state, ip).await? else {
        return Ok(None);
    };
    let now = state.clock.now().naive_utc();
    let key = ip_block_key(ip);
    let until = state
        .store
        .run(move |c| crate::store::ip_blocks::active(c, &key, now))
        .await?
        .map(|b| b.blocked_until);
    Ok(
        until
            .map(|until| std::time::Duration::from_secs((until - now).num_seconds().max(1) as u64)),
    )
}

/// The client address the guard counts, or None when there is none or it is allow-listed.
pub(crate) async fn counted_ip(
    state: &AppState,
    ip: Option<IpAddr>,
) -> Result<Option<IpAddr>, GuardError> {
    match ip {
        Some(ip) if !allow_listed(state, ip).await? => Ok(Some(ip)),
        _ => Ok(None),
    }
}

/// Counts a failure against the client address over a sliding window (two fixed
/// buckets, the older one weighted by how much of it still overlaps the window) and
/// blocks the address when the estimate passes the threshold.
pub(super) async fn count_failure(
    state: &AppState,
    ctx: &RequestContext,
    ip: IpAddr,
    ip_key: String,
    now: i64,
) -> Result<(), GuardError> {
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
    let Some(block) = block(state, ctx, ip_key).await? else {
        return Ok(());
    };
    state.guard.ip_blocks.inc();
    state.mailer.wake();
    tracing::warn!(
        client_ip = %ip,
        until = %block.blocked_until,
        block_count = block.block_count,
        "client address blocked after failed sign-ins"
    );
    Ok(())
}

/// The block, its audit event and its notices, in one transaction: all or none.
/// None when another instance blocked the address a moment ago.
async fn block(
    state: &AppState,
    ctx: &RequestContext,
    ip_key: String,
) -> Result<Option<ip_blocks::IpBlockRow>, GuardError> {
    let base = chrono::Duration::seconds(state.config.ip_block_secs.max(1) as i64);
    let naive_now = state.clock.now().naive_utc();
    let event = AuditEvent::new(EventType::IpBlocked, Outcome::Success).request(ctx);
    let (audit, mailer, issuer) = (
        state.audit.clone(),
        state.mailer.clone(),
        state.config.issuer.clone(),
    );
    Ok(state
        .store
        .transaction(move |c| {
            let reason = "too many failed sign-ins";
            let Some(block) = ip_blocks::block(c, &ip_key, base, reason, naive_now)? else {
                return Ok(None);
            };
            let event = event
                .detail("blocked", block.ip.as_str())
                .detail("until", block.blocked_until.and_utc().to_rfc3339())
                .detail("block_count", block.block_count);
            notices::queue_ip_block(c, &mailer, &issuer, &block)?;
            audit.record_in(c, vec![event])?;
            Ok(Some(block))
        })
        .await?)
}
