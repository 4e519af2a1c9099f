//! Outbound mail and webhooks through a durable outbox (DESIGN §14: an SMTP outage
//! loses no mail).
//!
//! Whoever has something to say writes an outbox row, in the same transaction as the
//! change it reports (a reset token and its mail commit together or not at all). A
//! background worker on every instance claims due rows, delivers them over SMTP, as
//! `.eml` files (the embedded default), or as signed webhook POSTs, and retries with
//! exponential backoff until a deadline. Delivery is at least once: a row is only
//! marked sent after the server accepted it, so an instance that dies between the two
//! sends it again after the claim's lease runs out.
//!
//! Other modules put their own kinds of message through the same outbox (the protocols'
//! back-channel logouts): they register a [`Courier`] that builds and sends a row of
//! their kind, and get the same retries, deadline and metrics.

pub mod courier;
pub mod eml;
pub mod notice;
pub mod smtp;
pub mod webhook;

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{NaiveDateTime, Timelike};
use lettre::{
    Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        header::{HeaderName, HeaderValue},
    },
};
use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::{sync::Notify, sync::watch, task::JoinHandle};
use url::Url;

pub use courier::{Courier, Undelivered};
pub use notice::{Alert, Notice, RenderedMail, WindowReport};

use crate::{
    clock::SharedClock,
    config::Config,
    crypto::MasterKey,
    domain::{Email, OrgPolicy},
    i18n::{Tr, Wishes},
    store::{
        DbConnection, Store, StoreError, new_id, orgs,
        outbox::{self, KIND_EMAIL, KIND_WEBHOOK, NewOutboxRow, OutboxRow},
        preferences::{self, Preferences},
        users::UserRow,
    },
    telemetry::Metrics,
};

/// Rows one claim takes. With the SMTP command timeout (30 s) a batch ends well within
/// the lease, so no other instance takes a row that is still being delivered.
const BATCH: i64 = 10;
const LEASE: chrono::Duration = chrono::Duration::minutes(15);
/// After a wake-up, the worker waits this long before claiming: the enqueuing
/// transaction commits in the meantime, and a burst (an org-wide forced reset) goes
/// out as one pass.
const SETTLE: Duration = Duration::from_millis(100);
const FIRST_RETRY: chrono::Duration = chrono::Duration::seconds(10);
const LONGEST_RETRY: chrono::Duration = chrono::Duration::hours(1);
/// Finished rows (recipient, subject, outcome, no bodies) are kept this long for operators.
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(30);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// `last_error` is a summary, not a transcript.
const MAX_ERROR_LEN: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp_url: {0}")]
    Smtp(String),
    #[error("mail_from: {0}")]
    From(String),
    #[error("{0}")]
    Webhook(String),
}

/// The wait before attempt `attempts + 1`: 10 s, 20 s, 40 s … capped at an hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    FIRST_RETRY
        .checked_mul(1i32 << doublings)
        .unwrap_or(LONGEST_RETRY)
        .min(LONGEST_RETRY)
}

/// The handle every capability uses to say something to somebody. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    master_key: Arc<MasterKey>,
    wake: Notify,
    transport: Transport,
    from: Mailbox,
    /// Right-hand side of our Message-IDs: the sender's domain.
    message_id_domain: String,
    webhook: webhook::WebhookSender,
    webhook_url: Option<Url>,
    /// Every link in a mail is built from this (DESIGN §7), never from a request.
    issuer: Url,
    poll: Duration,
    give_up_after: chrono::Duration,
    metrics: MailMetrics,
    couriers: courier::Couriers,
}

enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    /// The embedded default: `.eml` files in this directory.
    Files(PathBuf),
}

struct MailMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    pending: IntGauge,
}

impl MailMetrics {
    fn new(metrics: &Metrics) -> Self {
        let counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["kind"]).expect("static metric")
        };
        let this = Self {
            sent: counter("mail_sent_total", "outbox messages delivered, by kind"),
            failed: counter(
                "mail_failed_total",
                "outbox messages given up on after the retry deadline, by kind",
            ),
            retried: counter(
                "mail_retries_total",
                "delivery attempts that failed and will be retried, by kind",
            ),
            pending: IntGauge::new(
                "mail_outbox_pending",
                "messages waiting in the shared outbox, as of this instance's last pass",
            )
            .expect("static metric"),
        };
        metrics.register(Box::new(this.sent.clone()));
        metrics.register(Box::new(this.failed.clone()));
        metrics.register(Box::new(this.retried.clone()));
        metrics.register(Box::new(this.pending.clone()));
        this
    }
}

impl Mailer {
    /// Builds the transport `config` names. Inside a tokio runtime (the SMTP pool's
    /// housekeeping is a task).
    pub fn new(
        config: &Config,
        store: Store,
        clock: SharedClock,
        master_key: Arc<MasterKey>,
        metrics: &Metrics,
    ) -> Result<Self, MailError> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| MailError::From(format!("{e}")))?;
        let transport = match &config.smtp_url {
            Some(url) => {
                let target = smtp::SmtpTarget::from_url(url).map_err(MailError::Smtp)?;
                Transport::Smtp(Box::new(target.transport().map_err(MailError::Smtp)?))
            }
            None => {
                let dir = config.data_dir.join("outbox");
                eml::ensure_dir(&dir).map_err(|e| {
                    MailError::Smtp(format!("cannot create {}: {e}", dir.display()))
                })?;
                Transport::Files(dir)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                master_key,
                wake: Notify::new(),
                transport,
                message_id_domain: from.email.domain().to_owned(),
                from,
                webhook: webhook::WebhookSender::new(config.webhook_secret.clone())
                    .map_err(MailError::Webhook)?,
                webhook_url: config.webhook_url.clone(),
                issuer: config.issuer.clone(),
                poll: Duration::from_secs(config.mail_poll_secs.max(1)),
                give_up_after: chrono::Duration::hours(
                    config.mail_give_up_after_hours.min(24 * 365) as i64,
                ),
                metrics: MailMetrics::new(metrics),
                couriers: courier::Couriers::default(),
            }),
        })
    }

    /// Queues `mail` to `to` on `conn`, so it commits or rolls back with the caller's
    /// transaction. The bodies are sealed under the master key: a reset link is as
    /// good as the token, and the token itself is stored only as a hash.
    pub fn enqueue_email(
        &self,
        conn: &mut DbConnection,
        to: &Email,
        mail: &RenderedMail,
    ) -> Result<(), StoreError> {
        let id = new_id();
        let now = self.now();
        let key = &self.inner.master_key;
        let text = key.seal(&seal_context("text", &id), mail.text.as_bytes());
        let html = key.seal(&seal_context("html", &id), mail.html.as_bytes());
        let subject = one_line(&mail.subject);
        let row = NewOutboxRow {
            body_text: Some(&text),
            body_html: Some(&html),
            ..NewOutboxRow::due(&id, KIND_EMAIL, to.as_str(), &subject, now)
        };
        outbox::insert(conn, &*self.inner.master_key, &row)?;
        self.wake();
        Ok(())
    }

    /// Renders `notice` with links from the configured `issuer`, in the language and
    /// time zone `user` reads (see [`reader`]), and queues it to `user`'s address on
    /// `conn`, in the caller's transaction. False, with a warning,
    /// when the stored address no longer parses: nobody can be told, and the change the
    /// notice reports still commits.
    pub fn enqueue_notice(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        notice: &Notice,
    ) -> Result<bool, StoreError> {
        match Email::parse(&user.email) {
            Ok(to) => {
                let tr = reader(conn, &user.id, &user.org_id)?;
                self.enqueue_email(conn, &to, &notice.render(&self.inner.issuer, &tr))?;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "no usable email address; notice not sent");
                Ok(false)
            }
        }
    }

    /// `enqueue_email` in a transaction of its own.
    pub async fn send(&self, to: &Email, mail: &RenderedMail) -> Result<(), StoreError> {
        let (this, to, mail) = (self.clone(), to.clone(), mail.clone());
        self.inner
            .store
            .transaction(move |conn| this.enqueue_email(conn, &to, &mail))
            .await?;
        self.wake();
        Ok(())
    }

    /// Queues a signed JSON POST of `event` to `url`. The body is
    /// `{"id", "event", "created_at", "data": payload}`, fixed now so every retry sends
    /// (and signs) the same bytes; `id` is also the `X-Gatehouse-Delivery` header.
    pub fn enqueue_webhook(
        &self,
        conn: &mut DbConnection,
        url: &Url,
        event: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let id = new_id();
        let now = self.now();
        let body = serde_json::json!({
            "id": id,
            "event": event,
            "created_at": now.and_utc().to_rfc3339(),
            "data": payload,
        })
        .to_string();
        let subject = one_line(event);
        let row = NewOutboxRow {
            payload: Some(&body),
            ..NewOutboxRow::due(&id, KIND_WEBHOOK, url.as_str(), &subject, now)
        };
        outbox::insert(conn, &*self.inner.master_key, &row)?;
        self.wake();
        Ok(())
    }

    /// `enqueue_webhook` to the configured `webhook_url`; false when none is configured.
    pub fn enqueue_event(
        &self,
        conn: &mut DbConnection,
        event: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        match &self.inner.webhook_url {
            Some(url) => {
                let url = url.clone();
                self.enqueue_webhook(conn, &url, event, payload)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Hands the rows of `kind` to `courier` (at start-up, before the worker runs).
    pub fn register_courier(&self, kind: &'static str, courier: Arc<dyn Courier>) {
        self.inner.couriers.register(kind, courier);
    }

    /// Queues a message of a courier's `kind` on `conn`, in the caller's transaction:
    /// `payload` is what the courier needs to build it at delivery time, sealed under the
    /// master key (it names a person and a session); `recipient` and `subject` stay in
    /// clear for operators (a client id or entity id, and what it is).
    pub fn enqueue_sealed(
        &self,
        conn: &mut DbConnection,
        kind: &str,
        recipient: &str,
        subject: &str,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let id = new_id();
        let now = self.now();
        let sealed = self
            .inner
            .master_key
            .seal(&seal_context("payload", &id), payload);
        let (recipient, subject) = (one_line(recipient), one_line(subject));
        let row = NewOutboxRow {
            payload: Some(&sealed),
            ..NewOutboxRow::due(&id, kind, &recipient, &subject, now)
        };
        outbox::insert(conn, &*self.inner.master_key, &row)?;
        Ok(())
    }

    /// The organisation-independent webhook, if configured.
    pub fn webhook_url(&self) -> Option<&Url> {
        self.inner.webhook_url.as_ref()
    }

    /// Asks the worker to look for due rows now instead of at its next poll. Callers
    /// that enqueue inside a long transaction may call it again after commit.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Delivers every row that is due now, on this task; returns how many were
    /// attempted. The worker runs this; a command-line tool may too.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        self.deliver_due_unless(&|| false).await
    }

    async fn deliver_due_unless(
        &self,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, StoreError> {
        let mut attempted = 0;
        while !stopping() {
            let now = self.now();
            let rows = self
                .inner
                .store
                .run(move |c| outbox::claim_due(c, now, now + LEASE, BATCH))
                .await?;
            if rows.is_empty() {
                break;
            }
            attempted += rows.len();
            // The whole batch is finished even when stopping: its rows are claimed.
            for row in rows {
                self.deliver_row(row).await;
            }
        }
        let pending = self.inner.store.run(outbox::pending_count).await?;
        self.inner.metrics.pending.set(pending);
        Ok(attempted)
    }

    async fn deliver_row(&self, row: OutboxRow) {
        let courier = self.inner.couriers.get(&row.kind);
        let recipient = row
            .open_recipient(&*self.inner.master_key)
            .map_err(|e| Undelivered::permanent(e.to_string()));
        let result = match (&recipient, row.kind.as_str(), &courier) {
            (Err(failure), _, _) => Err(failure.clone()),
            (Ok(to), KIND_EMAIL, _) => self.deliver_email(&row, to).await,
            (Ok(to), KIND_WEBHOOK, _) => self.deliver_webhook(&row, to).await,
            (Ok(to), _, Some(courier)) => match self.open_payload(&row) {
                Ok(payload) => courier.deliver(to, &payload).await,
                Err(failure) => Err(failure),
            },
            (Ok(_), other, None) => Err(Undelivered::permanent(format!("unknown kind {other:?}"))),
        };
        // A server's refusal may quote the address: it is not kept in clear that way.
        let result = match (result, &recipient) {
            (Err(mut failure), Ok(to)) => {
                failure.message = without(&failure.message, to);
                Err(failure)
            }
            (result, _) => result,
        };
        let recipient = recipient.unwrap_or_default();
        let id = row.id.clone();
        let recorded = match result {
            Ok(()) => {
                let now = self.now();
                self.inner
                    .metrics
                    .sent
                    .with_label_values(&[&row.kind])
                    .inc();
                tracing::info!(delivery = %row.id, kind = %row.kind, attempt = row.attempts, "delivered");
                self.inner
                    .store
                    .run(move |c| outbox::mark_sent(c, &id, now))
                    .await
            }
            Err(failure) => {
                self.record_failure(&row, &recipient, failure, courier)
                    .await
            }
        };
        if let Err(e) = recorded {
            // The lease brings the row back; a delivered one may then go out twice.
            tracing::error!(delivery = %row.id, error = %e, "could not record a delivery outcome");
        }
    }

    /// A failed attempt: retried with [`backoff`] until the deadline, then given up on
    /// (and the courier, if any, told, so it can record it for operators).
    async fn record_failure(
        &self,
        row: &OutboxRow,
        recipient: &str,
        failure: Undelivered,
        courier: Option<Arc<dyn Courier>>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let kind = row.kind.as_str();
        let id = row.id.clone();
        let error = truncate(&failure.message);
        let deadline = row.created_at + self.inner.give_up_after;
        if failure.permanent || now >= deadline {
            self.inner.metrics.failed.with_label_values(&[kind]).inc();
            tracing::error!(
                delivery = %row.id,
                kind,
                attempt = row.attempts,
                error = %error,
                "delivery failed; giving up"
            );
            if let (Some(courier), Ok(payload)) = (courier, self.open_payload(row)) {
                courier.gave_up(recipient, &payload, &error).await;
            }
            self.inner
                .store
                .run(move |c| outbox::mark_failed(c, &id, &error))
                .await
        } else {
            let next = (now + backoff(row.attempts)).min(deadline);
            self.inner.metrics.retried.with_label_values(&[kind]).inc();
            tracing::warn!(
                delivery = %row.id,
                kind,
                attempt = row.attempts,
                retry_at = %next,
                error = %error,
                "delivery failed; will retry"
            );
            self.inner
                .store
                .run(move |c| outbox::mark_retry(c, &id, next, &error))
                .await
        }
    }

    /// The sealed payload of a courier's row.
    fn open_payload(&self, row: &OutboxRow) -> Result<Vec<u8>, Undelivered> {
        let sealed = row
            .payload
            .as_deref()
            .ok_or_else(|| Undelivered::permanent("no payload"))?;
        let plain = self
            .inner
            .master_key
            .open(&seal_context("payload", &row.id), sealed)
            .map_err(|e| Undelivered::permanent(format!("payload: {e}")))?;
        Ok(secrecy::ExposeSecret::expose_secret(&plain).to_vec())
    }

    async fn deliver_email(&self, row: &OutboxRow, recipient: &str) -> Result<(), Undelivered> {
        let open = |part: &str, sealed: &Option<String>| {
            let sealed = sealed
                .as_deref()
                .ok_or_else(|| Undelivered::permanent(format!("no {part} body")))?;
            let plain = self
                .inner
                .master_key
                .open(&seal_context(part, &row.id), sealed)
                .map_err(|e| Undelivered::permanent(format!("{part} body: {e}")))?;
            String::from_utf8(secrecy::ExposeSecret::expose_secret(&plain).to_vec())
                .map_err(|_| Undelivered::permanent(format!("{part} body is not UTF-8")))
        };
        let text = open("text", &row.body_text)?;
        let html = open("html", &row.body_html)?;
        let to: Address = recipient
            .parse()
            .map_err(|e| Undelivered::permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .message_id(Some(format!(
                "<{}@{}>",
                row.id, self.inner.message_id_domain
            )))
            .date(row.created_at.and_utc().into())
            .from(self.inner.from.clone())
            .to(Mailbox::new(None, to))
            .subject(row.subject.clone())
            // RFC 3834: out-of-office robots must not answer.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| Undelivered::permanent(format!("message: {e}")))?;
        match &self.inner.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| Undelivered::transient(format!("smtp: {e}"))),
            Transport::Files(dir) => {
                let dir = dir.clone();
                let name = format!(
                    "{}-{}",
                    row.created_at.and_utc().format("%Y%m%dT%H%M%S%.6fZ"),
                    row.id
                );
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || eml::write(&dir, &name, &bytes))
                    .await
                    .map_err(|e| Undelivered::transient(format!("eml writer: {e}")))?
                    .map(|_| ())
                    .map_err(|e| Undelivered::transient(format!("eml file: {e}")))
            }
        }
    }

    async fn deliver_webhook(&self, row: &OutboxRow, recipient: &str) -> Result<(), Undelivered> {
        let url = Url::parse(recipient)
            .map_err(|e| Undelivered::permanent(format!("webhook URL: {e}")))?;
        let body = row
            .payload
            .as_deref()
            .ok_or_else(|| Undelivered::permanent("no payload"))?;
        let timestamp = self.inner.clock.now().timestamp();
        self.inner
            .webhook
            .deliver(&url, &row.subject, &row.id, body, timestamp)
            .await
            .map_err(|e| Undelivered::transient(format!("webhook: {}", e.0)))
    }

    /// Starts the background worker; it runs until `MailWorker::stop` (or until the
    /// handle is dropped).
    pub fn spawn_worker(&self) -> MailWorker {
        let (stop, mut stopped) = watch::channel(false);
        let mailer = self.clone();
        let task = tokio::spawn(async move {
            let mut last_purge: Option<tokio::time::Instant> = None;
            loop {
                let stopping = {
                    let stopped = stopped.clone();
                    move || *stopped.borrow()
                };
                if stopping() {
                    break;
                }
                if let Err(e) = mailer.deliver_due_unless(&stopping).await {
                    tracing::warn!(error = %e, "mail outbox unavailable; will try again");
                }
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(tokio::time::Instant::now());
                    mailer.purge().await;
                }
                tokio::select! {
                    // Err: the handle was dropped, which also means stop.
                    changed = stopped.changed() => if changed.is_err() || *stopped.borrow() { break },
                    () = mailer.inner.wake.notified() => {
                        tokio::select! {
                            _ = stopped.changed() => {},
                            () = tokio::time::sleep(SETTLE) => {},
                        }
                    }
                    () = tokio::time::sleep(mailer.inner.poll) => {},
                }
            }
        });
        MailWorker { stop, task }
    }

    async fn purge(&self) {
        let before = self.now() - KEEP_FINISHED;
        match self
            .inner
            .store
            .run(move |c| outbox::purge_finished(c, before))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "purged finished outbox rows"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
    }

    /// The clock's time at the precision both databases store (microseconds), so a row
    /// queued "now" is due "now".
    fn now(&self) -> NaiveDateTime {
        let now = self.inner.clock.now().naive_utc();
        now.with_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now)
    }
}

/// The running worker of one instance.
pub struct MailWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MailWorker {
    /// Lets the delivery in progress finish (within `grace`) and stops. Rows it had
    /// claimed but not reached become due again when their lease runs out.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The language and time zone of a mail to the person `user_id` about their own account:
/// their own setting, else their organisation's (`org_id`) default, else English; their
/// time zone, else the organisation's, else UTC. A person invited a moment ago has no
/// setting yet, so their invitation is in the organisation's language.
pub fn reader(conn: &mut DbConnection, user_id: &str, org_id: &str) -> Result<Tr, StoreError> {
    let own = preferences::find(conn, user_id)?;
    let policy = orgs::find_by_id(conn, org_id)?
        .map(|o| o.policy())
        .unwrap_or_default();
    Ok(Wishes {
        brand: crate::store::branding::brand(conn, org_id)?,
        ..reader_wishes(&own, &policy)
    }
    .tr())
}

/// The language and time zone of a mail to an organisation's support contact or privacy
/// officer (alerts, emergency notices): the organisation's defaults, else English and UTC.
pub fn organisation_reader(policy: &OrgPolicy) -> Tr {
    reader_wishes(&Preferences::default(), policy).tr()
}

/// A person's choices before their organisation's. A time zone that no longer parses
/// gives way to the next, not to UTC. (No browser and no `ui_locales`: a mail has none.)
fn reader_wishes(own: &Preferences, org: &OrgPolicy) -> Wishes {
    let zone = |z: &Option<String>| z.as_deref().and_then(crate::i18n::time_zone);
    Wishes {
        person: own.language.clone(),
        organisation: org.language.clone(),
        zone: zone(&own.time_zone).or_else(|| zone(&org.time_zone)),
        ..Wishes::default()
    }
}

fn seal_context(part: &str, id: &str) -> String {
    crate::store::outbox::seal_context(part, id)
}

/// No line breaks or other control characters, whatever the input: subjects become
/// header lines, errors become log lines.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` with every occurrence of `recipient` (in any case) replaced by a placeholder.
fn without(text: &str, recipient: &str) -> String {
    if recipient.is_empty() {
        return text.to_owned();
    }
    let (lower, needle) = (text.to_lowercase(), recipient.to_lowercase());
    // Lower-casing may change lengths outside ASCII: then the whole text goes.
    if lower.len() != text.len() {
        return if lower.contains(&needle) {
            "(error text withheld: it named the recipient)".into()
        } else {
            text.to_owned()
        };
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        out.push_str(&text[at..at + found]);
        out.push_str("<recipient>");
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

fn truncate(s: &str) -> String {
    let line = one_line(s);
    match line.char_indices().nth(MAX_ERROR_LEN) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

#[cfg(test)]
mod tests;
