//! DESIGN §5: who hears of a lock or an IP block. Everything here is queued on the
//! caller's connection, inside the transaction that makes the lock or the block, so a
//! lock never exists without its notices (issue 23 item 2); the durable outbox sends
//! them later, whatever SMTP is doing.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::{
    bootstrap::DEFAULT_ORG,
    domain::{Email, OrgName},
    mail::{self, Alert, Mailer, Notice},
    store::{DbConnection, StoreError, ip_blocks::IpBlockRow, orgs, users},
};

/// A lock is mailed to the user (in their language) and alerted to the organisation's
/// support contact (in the organisation's) and the webhook, if configured. Names that
/// belong to no account lock silently: there is no one to tell.
pub(super) fn queue_lock(
    c: &mut DbConnection,
    pii: &crate::store::Pii,
    mailer: &Mailer,
    issuer: &url::Url,
    user_id: &str,
    until: Option<DateTime<Utc>>,
    ip: Option<IpAddr>,
) -> Result<(), StoreError> {
    let Some(user) = users::find_by_id(c, pii, user_id)? else {
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
        let tr = mail::reader(c, &user.id, &user.org_id)?;
        mailer.enqueue_email(c, &email, &notice.render(issuer, &tr))?;
    }
    let alert = Alert::AccountLocked {
        username: user.username.clone(),
        until,
        ip,
    };
    let (event, payload) = alert.webhook_event(&org.name);
    mailer.enqueue_event(c, event, &payload)?;
    if let Some(support) = support_contact(&org) {
        let notice = Notice::SupportAlert {
            org: org.display_name.clone(),
            alert,
        };
        let tr = mail::organisation_reader(&org.policy());
        mailer.enqueue_email(c, &support, &notice.render(issuer, &tr))?;
    }
    Ok(())
}

/// An IP block is alerted to the default organisation's support contact (in its language)
/// and the webhook: addresses are not owned by one organisation.
pub(super) fn queue_ip_block(
    c: &mut DbConnection,
    mailer: &Mailer,
    issuer: &url::Url,
    block: &IpBlockRow,
) -> Result<(), StoreError> {
    let alert = Alert::IpBlocked {
        address: block.ip.clone(),
        until: block.blocked_until.and_utc(),
        block_count: block.block_count.max(0) as u32,
    };
    let default = OrgName::parse(DEFAULT_ORG).map_err(|e| StoreError::Query(e.0))?;
    let org = orgs::find_by_name(c, &default)?;
    let org_name = org
        .as_ref()
        .map_or(DEFAULT_ORG.to_owned(), |o| o.name.clone());
    let (event, payload) = alert.webhook_event(&org_name);
    mailer.enqueue_event(c, event, &payload)?;
    if let Some(org) = org
        && let Some(support) = support_contact(&org)
    {
        let notice = Notice::SupportAlert {
            org: org.display_name.clone(),
            alert,
        };
        let tr = mail::organisation_reader(&org.policy());
        mailer.enqueue_email(c, &support, &notice.render(issuer, &tr))?;
    }
    Ok(())
}

fn support_contact(org: &orgs::OrgRow) -> Option<Email> {
    org.policy()
        .support_email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
}
