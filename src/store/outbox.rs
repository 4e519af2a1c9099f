//! The mail and webhook outbox (DESIGN §14), shared by every instance.
//!
//! A row is claimed by moving its `next_attempt_at` past a lease, in a short
//! transaction of its own: the network conversation then happens with no transaction
//! or row lock held, and no other instance sees the row as due until the lease runs
//! out. On PostgreSQL the claim reads with `FOR UPDATE SKIP LOCKED`, so instances
//! polling at the same moment take disjoint rows instead of queueing on each other;
//! SQLite (one instance) claims in an immediate transaction.

use chrono::NaiveDateTime;
use diesel::{dsl, prelude::*};

use super::{
    DbConnection, StoreError,
    pii::{Sealer, open_text},
    schema::outbox,
};

pub const KIND_EMAIL: &str = "email";
pub const KIND_WEBHOOK: &str = "webhook";
/// An OpenID Connect Back-Channel Logout token for a relying party (recipient: its
/// client id). Built and signed at delivery time by the courier registered for it.
pub const KIND_OIDC_BACKCHANNEL_LOGOUT: &str = "oidc_backchannel_logout";
/// A SAML LogoutRequest over the SOAP binding for an SP (recipient: its entity id).
pub const KIND_SAML_SOAP_LOGOUT: &str = "saml_soap_logout";
pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SENT: &str = "sent";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    /// Sealed (`outbox-recipient:<id>`): an address is personal data. Read it with
    /// [`OutboxRow::open_recipient`].
    pub recipient_sealed: String,
    pub subject: String,
    /// Sealed under the master key; None once the row is finished.
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub payload: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

impl OutboxRow {
    /// The recipient, opened: an address, a webhook URL, a client or entity id.
    pub fn open_recipient(&self, key: &(impl Sealer + ?Sized)) -> Result<String, StoreError> {
        open_text(
            key,
            &recipient_context(&self.id),
            &self.recipient_sealed,
            "outbox recipient",
            &self.id,
        )
    }
}

fn recipient_context(id: &str) -> String {
    format!("outbox-recipient:{id}")
}

/// A row to queue; [`insert`] seals its recipient.
#[derive(Debug)]
pub struct NewOutboxRow<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: Option<&'a str>,
    pub body_html: Option<&'a str>,
    pub payload: Option<&'a str>,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
}

impl<'a> NewOutboxRow<'a> {
    /// A message for `recipient`, due `now` and never tried, with no body or payload yet.
    pub fn due(
        id: &'a str,
        kind: &'a str,
        recipient: &'a str,
        subject: &'a str,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            id,
            kind,
            recipient,
            subject,
            body_text: None,
            body_html: None,
            payload: None,
            attempts: 0,
            next_attempt_at: now,
            status: STATUS_PENDING,
            created_at: now,
        }
    }
}

pub fn insert(
    conn: &mut DbConnection,
    key: &(impl Sealer + ?Sized),
    row: &NewOutboxRow<'_>,
) -> Result<(), StoreError> {
    let recipient = key.seal(&recipient_context(row.id), row.recipient.as_bytes());
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(row.id),
            outbox::kind.eq(row.kind),
            outbox::recipient_sealed.eq(&recipient),
            outbox::subject.eq(row.subject),
            outbox::body_text.eq(row.body_text),
            outbox::body_html.eq(row.body_html),
            outbox::payload.eq(row.payload),
            outbox::attempts.eq(row.attempts),
            outbox::next_attempt_at.eq(row.next_attempt_at),
            outbox::status.eq(row.status),
            outbox::created_at.eq(row.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Claims up to `limit` due rows for `lease_until`, counting the attempt now (an
/// instance that dies mid-delivery has still used one). Call outside a transaction.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    // A macro, not a closure: the query is typed per backend.
    macro_rules! due {
        () => {
            outbox::table
                .filter(outbox::status.eq(STATUS_PENDING))
                .filter(outbox::next_attempt_at.le(now))
                .order(outbox::next_attempt_at.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
        };
    }
    let lease = |ids: &[String]| {
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids.to_vec()))).set((
            outbox::next_attempt_at.eq(lease_until),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
    };
    let mut rows = match conn {
        DbConnection::Postgresql(c) => c.transaction(|c| {
            let rows = due!().for_update().skip_locked().load(c)?;
            let ids: Vec<String> = rows.iter().map(|r: &OutboxRow| r.id.clone()).collect();
            if !ids.is_empty() {
                lease(&ids).execute(c)?;
            }
            Ok::<_, StoreError>(rows)
        })?,
        DbConnection::Sqlite(c) => c.immediate_transaction(|c| {
            let rows = due!().load(c)?;
            let ids: Vec<String> = rows.iter().map(|r: &OutboxRow| r.id.clone()).collect();
            if !ids.is_empty() {
                lease(&ids).execute(c)?;
            }
            Ok::<_, StoreError>(rows)
        })?,
    };
    for row in &mut rows {
        row.attempts += 1;
        row.next_attempt_at = lease_until;
    }
    Ok(rows)
}

/// Delivered: the bodies (which may hold a reset link) are dropped.
pub fn mark_sent(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    finish(conn, id, STATUS_SENT, Some(now), None)
}

/// Not delivered this time: try again at `next`.
pub fn mark_retry(
    conn: &mut DbConnection,
    id: &str,
    next: NaiveDateTime,
    error: &str,
) -> Result<(), StoreError> {
    diesel::update(pending(id))
        .set((
            outbox::next_attempt_at.eq(next),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Given up: kept for the operator (recipient, subject, error), bodies dropped.
pub fn mark_failed(conn: &mut DbConnection, id: &str, error: &str) -> Result<(), StoreError> {
    finish(conn, id, STATUS_FAILED, None, Some(error))
}

/// A pending row sent or given up: its bodies dropped (a pending row has no `sent_at`,
/// so a failure leaves it empty).
fn finish(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    sent_at: Option<NaiveDateTime>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(pending(id))
        .set((
            outbox::status.eq(status),
            outbox::sent_at.eq(sent_at),
            outbox::last_error.eq(error),
            outbox::body_text.eq(None::<String>),
            outbox::body_html.eq(None::<String>),
            outbox::payload.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// The row `id` while it is pending: a row already sent or given up is left alone.
fn pending(
    id: &str,
) -> dsl::Filter<dsl::Find<outbox::table, &str>, dsl::Eq<outbox::status, &'static str>> {
    outbox::table
        .find(id)
        .filter(outbox::status.eq(STATUS_PENDING))
}

/// Forgets finished rows queued before `before`. Returns how many.
pub fn purge_finished(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        outbox::table
            .filter(outbox::status.ne(STATUS_PENDING))
            .filter(outbox::created_at.lt(before)),
    )
    .execute(conn)?)
}

pub fn pending_count(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(outbox::table
        .filter(outbox::status.eq(STATUS_PENDING))
        .count()
        .get_result(conn)?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    Ok(outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?)
}

/// The newest rows first, for operators and tests.
pub fn recent(conn: &mut DbConnection, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(outbox::table
        .order((outbox::created_at.desc(), outbox::id.desc()))
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?)
}

/// What one sealed part of an outbox row (`text`, `html`, `payload`) is sealed for:
/// that part of that row (DESIGN §12). Here, beside the columns, so that the
/// master-key rotation can re-seal them.
pub fn seal_context(part: &str, id: &str) -> String {
    format!("outbox-{part}:{id}")
}

super::master_rotation::column_resealer!(
    /// Re-seals outbox text bodies for a master-key rotation.
    reseal_body_text, outbox, id, body_text, |id| seal_context("text", id)
);
super::master_rotation::column_resealer!(
    /// Re-seals outbox HTML bodies for a master-key rotation.
    reseal_body_html, outbox, id, body_html, |id| seal_context("html", id)
);
super::master_rotation::column_resealer!(
    /// Re-seals outbox payloads for a master-key rotation.
    reseal_payload, outbox, id, payload, |id| seal_context("payload", id)
);

/// Seals up to `limit` recipients of rows an earlier release queued in clear
/// (`legacy_recipient`), each only while still unsealed. Returns how many.
pub fn seal_legacy_recipients(
    conn: &mut DbConnection,
    key: &(impl Sealer + ?Sized),
    limit: i64,
) -> Result<usize, StoreError> {
    let rows: Vec<(String, Option<String>)> = outbox::table
        .filter(outbox::legacy_recipient.is_not_null())
        .limit(limit)
        .select((outbox::id, outbox::legacy_recipient))
        .load(conn)?;
    let mut sealed = 0;
    for (id, clear) in rows {
        let Some(clear) = clear else { continue };
        let unchanged = outbox::table
            .find(&id)
            .filter(outbox::legacy_recipient.eq(&clear));
        sealed += diesel::update(unchanged)
            .set((
                outbox::recipient_sealed.eq(key.seal(&recipient_context(&id), clear.as_bytes())),
                outbox::legacy_recipient.eq(None::<String>),
            ))
            .execute(conn)?;
    }
    Ok(sealed)
}

super::master_rotation::column_resealer!(
    /// Re-seals `outbox.recipient_sealed` for a master-key rotation.
    rotate_recipients, outbox, id, recipient_sealed, |id| recipient_context(id)
);

/// How many rows have given up (`failed`): kept until `purge_finished` forgets them.
pub fn failed_count(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(outbox::table
        .filter(outbox::status.eq(STATUS_FAILED))
        .count()
        .get_result(conn)?)
}
