//! The brute-force guard's addresses (DESIGN §5): IP blocks and the allow-list. Both
//! span organisations, so only a super administrator changes them.

use crate::{
    audit::EventType,
    startup::AppState,
    store::{StoreError, ip_allow, ip_blocks},
};

use super::{Acting, Action, Caller, ServiceError};

/// Addresses blocked now.
pub async fn blocks(
    state: &AppState,
    who: &Caller,
) -> Result<Vec<ip_blocks::IpBlockRow>, ServiceError> {
    who.require(Action::Global)?;
    let now = state.clock.now().naive_utc();
    Ok(state
        .store
        .run(move |c| ip_blocks::list_active(c, now))
        .await?)
}

/// Lifts an IP block. True when one was active.
pub async fn lift_ip_block(by: Acting<'_>, ip: &str) -> Result<bool, ServiceError> {
    by.who.require(Action::Global)?;
    let ip = ip.trim();
    if ip.is_empty() || ip.len() > 64 {
        return Err(ServiceError::NotFound(format!("{ip} is not blocked")));
    }
    let (key, now) = (ip.to_owned(), by.state.clock.now().naive_utc());
    let changed = by
        .state
        .store
        .run(move |c| ip_blocks::unblock(c, &key, now))
        .await?;
    if changed {
        let event = by.event(EventType::IpUnblocked).detail("ip", ip);
        by.state.audit.record(event).await?;
    }
    Ok(changed)
}

/// Networks never counted or blocked by the guard (the `ip_allow_list` setting adds its
/// own, not listed here).
pub async fn allowed(
    state: &AppState,
    who: &Caller,
) -> Result<Vec<ip_allow::AllowRow>, ServiceError> {
    who.require(Action::Global)?;
    Ok(state.store.run(ip_allow::list).await?)
}

/// The narrowest reading of an allow-list entry. A very wide network would switch the
/// guard off for a large part of the internet, so those are refused.
pub fn parse_allow(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return Err("an address or a network in CIDR form".into());
    }
    let net = match raw.parse::<ipnet::IpNet>() {
        Ok(net) => net,
        Err(_) => raw
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| format!("{raw:?} is not an address or a network in CIDR form"))?,
    };
    let widest = match net {
        ipnet::IpNet::V4(_) => 8,
        ipnet::IpNet::V6(_) => 32,
    };
    if net.prefix_len() < widest {
        return Err(format!(
            "/{} is too wide (at most /{widest})",
            net.prefix_len()
        ));
    }
    Ok(net.trunc())
}

/// Adds a network to the allow-list, with a note saying why.
pub async fn allow(
    by: Acting<'_>,
    cidr: &str,
    note: Option<&str>,
) -> Result<ip_allow::AllowRow, ServiceError> {
    by.who.require(Action::Global)?;
    let net = parse_allow(cidr).map_err(|e| ServiceError::Invalid(format!("cidr: {e}")))?;
    let note = note.unwrap_or_default().trim().to_owned();
    if note.chars().count() > 200 {
        return Err(ServiceError::Invalid("note: at most 200 characters".into()));
    }
    let row = ip_allow::AllowRow {
        cidr: net.to_string(),
        note,
        created_by: by.who.actor.clone(),
        created_at: by.state.clock.now().naive_utc(),
    };
    let stored = row.clone();
    by.state
        .store
        .run(move |c| ip_allow::insert(c, &stored))
        .await
        .map_err(|e| match e {
            StoreError::Conflict => {
                ServiceError::Conflict("cidr: already on the allow-list".into())
            }
            other => other.into(),
        })?;
    by.record_change(by.state, "ip_allow_list", "added", ("cidr", &row.cidr))
        .await?;
    Ok(row)
}

/// Takes a network off the allow-list; not found when it was not on it.
pub async fn disallow(by: Acting<'_>, cidr: &str) -> Result<(), ServiceError> {
    by.who.require(Action::Global)?;
    let missing = || ServiceError::NotFound(format!("{cidr} is not on the allow-list"));
    let net = cidr.trim().parse::<ipnet::IpNet>().map_err(|_| missing())?;
    let key = net.trunc().to_string();
    let lookup = key.clone();
    if !by
        .state
        .store
        .run(move |c| ip_allow::remove(c, &lookup))
        .await?
    {
        return Err(missing());
    }
    by.record_change(by.state, "ip_allow_list", "removed", ("cidr", &key))
        .await
}

#[cfg(test)]
mod tests {
    use super::parse_allow;

    /// The network `raw` is allow-listed as.
    fn allowed(raw: &str) -> String {
        parse_allow(raw).unwrap().to_string()
    }

    #[test]
    fn an_address_is_allow_listed_as_its_host_network() {
        assert_eq!(allowed("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(allowed("2001:db8::1"), "2001:db8::1/128");
    }

    #[test]
    fn host_bits_are_cleared_so_one_network_has_one_spelling() {
        assert_eq!(allowed(" 10.1.2.3/16 "), "10.1.0.0/16");
        assert_eq!(allowed("2001:db8:1:2::5/48"), "2001:db8:1::/48");
    }

    #[test]
    fn networks_wide_enough_to_switch_the_guard_off_are_refused() {
        for wide in ["0.0.0.0/0", "10.0.0.0/7", "::/0", "2001:db8::/31"] {
            assert!(parse_allow(wide).is_err(), "{wide}");
        }
        assert!(parse_allow("10.0.0.0/8").is_ok());
        assert!(parse_allow("2001:db8::/32").is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "1".repeat(100).as_str(),
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }
}
