//! The mail outbox (DESIGN §14): real SMTP conversations, an SMTP outage, the `.eml`
//! default, signed webhooks, and several instances on one outbox.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use chrono::Duration as Span;
use gatehouse::{
    clock::Clock,
    config::DatabaseTarget,
    domain::Email,
    mail::{Notice, RenderedMail, webhook},
    store::{
        Store,
        outbox::{self, NewOutboxRow, OutboxRow},
    },
};
use hmac::{Hmac, Mac};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::Sha256;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    task::JoinHandle,
};
use url::Url;

use crate::helpers::{
    TestApp, eventually, fresh_postgres_url, skip, spawn_app, spawn_app_with, spawn_with_config,
    test_database_url,
};

// ---------------------------------------------------------------------------------
// A small SMTP server: enough of RFC 5321 for a real client (greeting, EHLO with
// AUTH PLAIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT).

#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as the client sent it, dots unstuffed.
    pub data: Vec<u8>,
    /// (user, password) from AUTH PLAIN, if the client authenticated.
    pub auth: Option<(String, String)>,
}

impl Received {
    /// (subject, text body) of the message.
    pub fn subject_and_text(&self) -> (String, String) {
        let message = MessageParser::default()
            .parse(&self.data)
            .expect("RFC 5322");
        (
            message.subject().unwrap_or_default().to_owned(),
            message.body_text(0).unwrap_or_default().into_owned(),
        )
    }
}

/// An SMTP server for tests (other test modules use it too).
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind sink");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(socket, store).await;
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let arrived = eventually(within, || async { self.messages().len() >= count }).await;
        assert!(
            arrived,
            "expected {count} messages, got {}",
            self.messages().len()
        );
        self.messages()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(
    socket: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut auth = None;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n",
            "HELO" => b"250 sink.test\r\n",
            "AUTH" => {
                let mut parts = command.split_whitespace().skip(1);
                let mechanism = parts.next().unwrap_or("");
                let initial = match parts.next() {
                    Some(b64) => b64.to_owned(),
                    None => {
                        write.write_all(b"334 \r\n").await?;
                        let mut response = String::new();
                        lines.read_line(&mut response).await?;
                        response.trim_end().to_owned()
                    }
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(initial)
                    .unwrap_or_default();
                let fields: Vec<String> = decoded
                    .split(|b| *b == 0)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                if mechanism.eq_ignore_ascii_case("PLAIN") && fields.len() == 3 {
                    auth = Some((fields[1].clone(), fields[2].clone()));
                    b"235 2.7.0 Authentication successful\r\n"
                } else {
                    b"535 5.7.8 Authentication failed\r\n"
                }
            }
            "MAIL" => {
                mail_from = angle(&command);
                rcpt_to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" => {
                rcpt_to.push(angle(&command));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if lines.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" || raw == b".\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                    let raw = raw.strip_prefix(b".").unwrap_or(&raw);
                    data.extend_from_slice(raw);
                }
                store.lock().unwrap().push(Received {
                    mail_from: mail_from.clone(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                    auth: auth.clone(),
                });
                b"250 2.0.0 Queued\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognised\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// `MAIL FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn angle(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| i + start);
    command[start..end].to_owned()
}

// ---------------------------------------------------------------------------------

pub fn smtp_url(port: u16, userinfo: &str) -> Url {
    Url::parse(&format!("smtp://{userinfo}127.0.0.1:{port}?tls=none")).unwrap()
}

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn reset_mail(app: &TestApp, name: &str, token: &str) -> RenderedMail {
    Notice::ResetLink {
        name: name.into(),
        username: "vera".into(),
        token: token.to_owned().into(),
        expires_at: app.clock.now() + Span::minutes(30),
    }
    .render(&app.config.issuer, &gatehouse::i18n::Tr::default())
}

fn vera() -> Email {
    Email::parse("vera@example.org").unwrap()
}

async fn rows(app: &TestApp) -> Vec<OutboxRow> {
    app.state
        .store
        .run(|c| outbox::recent(c, 100))
        .await
        .unwrap()
}

async fn only_row(app: &TestApp) -> OutboxRow {
    let mut rows = rows(app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

async fn row_status_becomes(app: &TestApp, status: &str) -> OutboxRow {
    let reached = eventually(Duration::from_secs(10), || async {
        rows(app).await.first().is_some_and(|r| r.status == status)
    })
    .await;
    let row = only_row(app).await;
    assert!(reached, "row never became {status}: {row:?}");
    row
}

#[tokio::test]
async fn a_queued_mail_is_delivered_over_a_real_smtp_conversation() {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_app_with(|c| {
        // Credentials with reserved characters, percent-encoded in the URL.
        c.smtp_url = Some(smtp_url(port, "gh%40hospital.example:s3cr%3At%2Fpw@"));
        c.mail_from = "Gatehouse <idp@hospital.example>".into();
        // Prompt delivery must come from the wake-up, not from polling.
        c.mail_poll_secs = 3600;
    })
    .await;
    let mail = reset_mail(&app, "Vera <script>alert(1)</script>", "tok_Abc-123");

    app.state.mailer.send(&vera(), &mail).await.unwrap();

    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    let got = &got[0];
    assert_eq!(got.mail_from, "idp@hospital.example");
    assert_eq!(got.rcpt_to, vec!["vera@example.org".to_owned()]);
    assert_eq!(
        got.auth,
        Some(("gh@hospital.example".into(), "s3cr:t/pw".into()))
    );
    let message = MessageParser::default().parse(&got.data).expect("RFC 5322");
    assert_eq!(message.subject(), Some("Reset your password"));
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("vera@example.org")
    );
    assert_eq!(
        message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("idp@hospital.example")
    );
    let content_type = message.content_type().expect("content type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    let link = format!("{}reset/tok_Abc-123", app.config.issuer);
    let text = message.body_text(0).unwrap();
    assert!(text.contains(&link), "{text}");
    let html = message.body_html(0).unwrap();
    assert!(html.contains(&link), "{html}");
    assert!(
        !html.contains("<script>")
            && (html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;")),
        "{html}"
    );
    assert!(message.date().is_some());
    let row = row_status_becomes(&app, "sent").await;
    assert_eq!(
        message.message_id(),
        Some(format!("{}@hospital.example", row.id).as_str())
    );
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );

    // Finished rows keep who and what, not the bodies (the link is as good as the token).
    assert_eq!((row.attempts, row.sent_at.is_some()), (1, true));
    assert!(row.body_text.is_none() && row.body_html.is_none());
    assert_eq!(
        app.metric("gatehouse_mail_sent_total{kind=\"email\"} ")
            .await,
        1.0
    );
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_is_delivered_when_it_returns() {
    let port = free_port();
    let app = spawn_app_with(|c| c.smtp_url = Some(smtp_url(port, ""))).await;
    let queued_at = app.clock.now().naive_utc();

    app.state
        .mailer
        .send(&vera(), &reset_mail(&app, "Vera", "tok_down"))
        .await
        .unwrap();

    // Refused, kept, and scheduled 10 s later (the clock stands still).
    let failed_once = eventually(Duration::from_secs(10), || async {
        rows(&app)
            .await
            .first()
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    let row = only_row(&app).await;
    assert!(failed_once, "{row:?}");
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
    let wait = row.next_attempt_at - queued_at;
    assert!(
        wait >= Span::seconds(9) && wait <= Span::seconds(11),
        "{wait:?}"
    );
    let error = row.last_error.clone().unwrap();
    assert!(error.starts_with("smtp:"), "{error}");
    // While it waits, the body in the database does not show the link.
    let sealed = row.body_text.clone().unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains("tok_down"));
    assert_eq!(
        app.metric("gatehouse_mail_retries_total{kind=\"email\"} ")
            .await,
        1.0
    );

    // SMTP comes back on the same port; Gatehouse is not restarted.
    let sink = SmtpSink::start_on(port).await;
    app.clock.advance(Span::seconds(11));
    app.state.mailer.wake();

    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let message = MessageParser::default().parse(&got[0].data).unwrap();
    assert!(message.body_text(0).unwrap().contains("reset/tok_down"));
    let row = row_status_becomes(&app, "sent").await;
    assert_eq!(row.attempts, 2);
    assert!(row.last_error.is_none());
}

#[tokio::test]
async fn a_mail_undeliverable_past_the_deadline_is_marked_failed() {
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.mail_give_up_after_hours = 72;
    })
    .await;
    app.state
        .mailer
        .send(&vera(), &reset_mail(&app, "Vera", "tok_lost"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            rows(&app)
                .await
                .first()
                .is_some_and(|r| r.attempts == 1 && r.last_error.is_some())
        })
        .await
    );

    app.clock.advance(Span::hours(72) + Span::seconds(1));
    app.state.mailer.wake();

    let row = row_status_becomes(&app, "failed").await;
    assert_eq!(row.attempts, 2);
    assert!(row.last_error.as_deref().unwrap().starts_with("smtp:"));
    assert!(row.body_text.is_none() && row.body_html.is_none());
    assert_eq!(
        app.metric("gatehouse_mail_failed_total{kind=\"email\"} ")
            .await,
        1.0
    );
    assert_eq!(app.metric("gatehouse_mail_outbox_pending ").await, 0.0);
}

#[tokio::test]
async fn without_smtp_mail_lands_as_private_eml_files() {
    let app = spawn_app().await;
    assert!(app.config.smtp_url.is_none());
    let mail = reset_mail(&app, "Vera", "tok_file");

    app.state.mailer.send(&vera(), &mail).await.unwrap();

    let dir = app.data_dir.path().join("outbox");
    let eml = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(eventually(Duration::from_secs(10), || async { eml(&dir).len() == 1 }).await);
    let path = eml(&dir).remove(0);
    let row = row_status_becomes(&app, "sent").await;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(&format!("-{}.eml", row.id)), "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let bytes = std::fs::read(&path).unwrap();
    let message = MessageParser::default().parse(&bytes).expect("RFC 5322");
    assert_eq!(message.subject(), Some("Reset your password"));
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("vera@example.org")
    );
    assert!(message.body_text(0).unwrap().contains("/reset/tok_file"));
    assert!(message.body_html(0).is_some());
}

#[tokio::test]
async fn a_mail_enqueued_in_a_rolled_back_transaction_is_never_sent() {
    let app = spawn_app().await;
    let mailer = app.state.mailer.clone();
    let mail = reset_mail(&app, "Vera", "tok_rollback");
    let result = app
        .state
        .store
        .transaction(move |c| {
            mailer.enqueue_email(c, &vera(), &mail)?;
            Err::<(), _>(gatehouse::store::StoreError::Conflict)
        })
        .await;
    assert!(result.is_err());
    app.state.mailer.deliver_due().await.unwrap();
    assert!(rows(&app).await.is_empty());
    assert!(
        !app.data_dir
            .path()
            .join("outbox")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "eml"))
    );
}

#[tokio::test]
async fn the_worker_stops_with_the_server() {
    let app = spawn_app().await;
    app.stop().await;
    // The worker stops just after the server; give it that moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.state
        .mailer
        .send(&vera(), &reset_mail(&app, "Vera", "tok_after"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        only_row(&app).await.status,
        "pending",
        "nobody delivered it"
    );

    // The row itself was fine: a pass run by hand delivers it.
    assert_eq!(app.state.mailer.deliver_due().await.unwrap(), 1);
    assert_eq!(only_row(&app).await.status, "sent");
}

// ---------------------------------------------------------------------------------
// Webhooks: a real HTTP receiver.

const SECRET: &str = "whsec-test-0123456789abcdef";

#[derive(Debug, Clone)]
struct Hit {
    event: String,
    delivery: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests answered 500 before the receiver starts accepting.
    failures: Arc<Mutex<usize>>,
}

async fn hook(req: HttpRequest, body: web::Bytes, rx: web::Data<Receiver>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    rx.hits.lock().unwrap().push(Hit {
        event: header("X-Gatehouse-Event"),
        delivery: header("X-Gatehouse-Delivery"),
        timestamp: header("X-Gatehouse-Timestamp"),
        signature: header("X-Gatehouse-Signature"),
        content_type: header("Content-Type"),
        body: body.to_vec(),
    });
    let mut failures = rx.failures.lock().unwrap();
    if *failures > 0 {
        *failures -= 1;
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::NoContent().finish()
    }
}

async fn start_receiver(failures: usize) -> (SocketAddr, Receiver) {
    let rx = Receiver {
        hits: Arc::new(Mutex::new(Vec::new())),
        failures: Arc::new(Mutex::new(failures)),
    };
    let data = web::Data::new(rx.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hooks/gatehouse", web::post().to(hook))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (addr, rx)
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_until_the_receiver_accepts() {
    let (addr, rx) = start_receiver(1).await;
    let app = spawn_app_with(|c| {
        c.webhook_url = Some(Url::parse(&format!("http://{addr}/hooks/gatehouse")).unwrap());
        c.webhook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    let mailer = app.state.mailer.clone();
    let payload = serde_json::json!({"org": "default", "username": "vera", "permanent": false});
    let queued = app
        .state
        .store
        .transaction(move |c| mailer.enqueue_event(c, "account.locked", &payload))
        .await
        .unwrap();
    assert!(queued);

    // First answer 500: kept and retried after the backoff.
    let row = {
        assert!(
            eventually(Duration::from_secs(10), || async {
                rows(&app)
                    .await
                    .first()
                    .is_some_and(|r| r.last_error.is_some())
            })
            .await
        );
        only_row(&app).await
    };
    assert_eq!(row.status, "pending");
    assert!(
        row.last_error.as_deref().unwrap().contains("500"),
        "{row:?}"
    );
    assert!(
        !row.last_error
            .as_deref()
            .unwrap()
            .contains("hooks/gatehouse")
    );
    app.clock.advance(Span::seconds(11));
    app.state.mailer.wake();
    let row = row_status_becomes(&app, "sent").await;
    assert_eq!(row.attempts, 2);

    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "{hits:?}");
    for hit in &hits {
        assert_eq!(hit.event, "account.locked");
        assert_eq!(hit.delivery, row.id, "the same delivery id on every retry");
        assert_eq!(hit.content_type, "application/json");
        // Recompute the signature independently: HMAC-SHA-256 over "<timestamp>.<body>".
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(hit.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&hit.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(hit.signature, expected);
        assert!(webhook::verify(
            SECRET.as_bytes(),
            &hit.timestamp,
            &hit.body,
            &hit.signature,
            app.clock.now().timestamp(),
            300,
        ));
        // A wrong secret or an altered body does not verify.
        assert!(!webhook::verify(
            b"some-other-secret-0000",
            &hit.timestamp,
            &hit.body,
            &hit.signature,
            app.clock.now().timestamp(),
            300,
        ));
        let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
        assert_eq!(body["event"], "account.locked");
        assert_eq!(body["id"], row.id.as_str());
        assert_eq!(body["data"]["username"], "vera");
    }
    // The retry is signed afresh, at its own time, over the very same body.
    assert_eq!(hits[0].body, hits[1].body);
    assert_ne!(hits[0].timestamp, hits[1].timestamp);
    assert_eq!(
        app.metric("gatehouse_mail_sent_total{kind=\"webhook\"} ")
            .await,
        1.0
    );
}

#[tokio::test]
async fn without_a_webhook_url_no_event_is_queued() {
    let app = spawn_app().await;
    let mailer = app.state.mailer.clone();
    let queued = app
        .state
        .store
        .transaction(move |c| mailer.enqueue_event(c, "ip.blocked", &serde_json::json!({})))
        .await
        .unwrap();
    assert!(!queued);
    assert!(rows(&app).await.is_empty());
}

// ---------------------------------------------------------------------------------

#[tokio::test]
async fn two_instances_on_one_database_never_send_a_row_twice() {
    if test_database_url().is_none() {
        skip(
            "two_instances_on_one_database_never_send_a_row_twice",
            "needs GATEHOUSE_TEST_DATABASE_URL (PostgreSQL shared by two instances)",
        );
        return;
    }
    const MAILS: usize = 40;
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let a = spawn_app_with(|c| c.smtp_url = Some(smtp_url(port, ""))).await;
    let b = spawn_with_config(a.config.clone(), a.data_dir.clone()).await;

    // Half queued through each instance, in one transaction each, so both workers
    // find a crowd of due rows at once.
    for app in [&a, &b] {
        let mailer = app.state.mailer.clone();
        let mail = reset_mail(app, "Vera", "tok_many");
        app.state
            .store
            .transaction(move |c| {
                for _ in 0..MAILS / 2 {
                    mailer.enqueue_email(c, &vera(), &mail)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    // Beside both workers, four more passes race for the same rows.
    let extra = futures_util::future::join_all([
        a.state.mailer.deliver_due(),
        b.state.mailer.deliver_due(),
        a.state.mailer.deliver_due(),
        b.state.mailer.deliver_due(),
    ]);
    for result in extra.await {
        result.unwrap();
    }

    sink.wait_for(MAILS, Duration::from_secs(15)).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            rows(&a).await.iter().all(|r| r.status == "sent")
        })
        .await
    );
    // Anything sent twice would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = sink.messages();
    let mut ids: Vec<String> = received
        .iter()
        .map(|m| {
            MessageParser::default()
                .parse(&m.data)
                .unwrap()
                .message_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(received.len(), MAILS);
    assert_eq!(ids.len(), MAILS);
    let sent = a.metric("gatehouse_mail_sent_total{kind=\"email\"} ").await
        + b.metric("gatehouse_mail_sent_total{kind=\"email\"} ").await;
    assert_eq!(sent, MAILS as f64);
    assert!(rows(&a).await.iter().all(|r| r.attempts == 1));
}

// ---------------------------------------------------------------------------------
// The claim itself, on a store with no worker attached.

async fn bare_store(dir: &tempfile::TempDir) -> Store {
    let target = match test_database_url() {
        Some(base) => DatabaseTarget::Postgres(fresh_postgres_url(&base)),
        None => DatabaseTarget::Sqlite(dir.path().join("gh.db")),
    };
    let store = tokio::task::spawn_blocking(move || Store::connect(&target, 2))
        .await
        .unwrap()
        .unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn a_claimed_row_is_nobody_elses_until_its_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = bare_store(&dir).await;
    let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap();
    let lease = Span::minutes(15);
    let key = gatehouse::crypto::MasterKey::generate();
    store
        .run(move |c| {
            for (id, due) in [("due", t0), ("later", t0 + Span::hours(1))] {
                outbox::insert(
                    c,
                    &key,
                    &NewOutboxRow {
                        id,
                        kind: outbox::KIND_EMAIL,
                        recipient: "vera@example.org",
                        subject: "Reset your password",
                        body_text: Some("sealed text"),
                        body_html: Some("sealed html"),
                        payload: None,
                        attempts: 0,
                        next_attempt_at: due,
                        status: outbox::STATUS_PENDING,
                        created_at: t0,
                    },
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let claim = |at: chrono::NaiveDateTime| {
        let store = store.clone();
        async move {
            store
                .run(move |c| outbox::claim_due(c, at, at + lease, 10))
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.attempts))
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(claim(t0).await, vec![("due".to_owned(), 1)]);
    // Another instance a minute later finds nothing: the row is being delivered.
    assert!(claim(t0 + Span::minutes(1)).await.is_empty());
    // The claimant vanished: after the lease the row is due again, a second attempt.
    assert_eq!(claim(t0 + lease).await, vec![("due".to_owned(), 2)]);
    store
        .run(move |c| outbox::mark_sent(c, "due", t0 + lease))
        .await
        .unwrap();
    let at = t0 + Span::hours(1);
    assert_eq!(claim(at).await, vec![("later".to_owned(), 1)]);
    // A sent row never comes back, however late.
    assert_eq!(
        claim(at + Span::days(1)).await,
        vec![("later".to_owned(), 2)]
    );

    let sent = store
        .run(|c| outbox::find(c, "due"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, "sent");
    assert!(sent.body_text.is_none() && sent.body_html.is_none());
    assert_eq!(store.run(outbox::pending_count).await.unwrap(), 1);
}

#[tokio::test]
async fn a_lockout_reaches_the_webhook_with_a_valid_signature() {
    let (addr, rx) = start_receiver(0).await;
    let app = spawn_app_with(|c| {
        c.webhook_url = Some(Url::parse(&format!("http://{addr}/hooks/gatehouse")).unwrap());
        c.webhook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    crate::helpers::create_user(&app, "wyn", "Quiet-Harbour-42", false).await;
    for _ in 0..5 {
        app.sign_in(&app.new_client(), "wyn", "Wrong-Harbour-42")
            .await;
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            rx.hits
                .lock()
                .unwrap()
                .iter()
                .any(|h| h.event == "account.locked")
        })
        .await,
        "no account.locked webhook arrived"
    );
    let hits = rx.hits.lock().unwrap();
    let hit = hits.iter().find(|h| h.event == "account.locked").unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        gatehouse::mail::webhook::verify(
            SECRET.as_bytes(),
            &hit.timestamp,
            &hit.body,
            &hit.signature,
            now,
            300
        ),
        "signature does not verify"
    );
    assert!(!gatehouse::mail::webhook::verify(
        b"another-secret-entirely",
        &hit.timestamp,
        &hit.body,
        &hit.signature,
        now,
        300
    ));
    let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["event"], "account.locked");
    assert!(body.to_string().contains("wyn"));
}

// ---------------------------------------------------------------------------------
// Notices of account changes (DESIGN §6, §7), queued in the transaction of the change.

/// A server that mails through `sink`, with room for many requests from one address.
pub async fn app_mailing_to(sink: &SmtpSink) -> TestApp {
    let port = sink.port;
    spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.rate_limit_burst = 1000;
    })
    .await
}

/// The text of the first message to `to` whose subject is `subject`, once it arrives.
pub async fn mail_to(sink: &SmtpSink, to: &str, subject: &str) -> String {
    let find = || {
        sink.messages().into_iter().find_map(|m| {
            let (s, text) = m.subject_and_text();
            (m.rcpt_to == [to] && s == subject).then_some(text)
        })
    };
    let arrived = eventually(Duration::from_secs(15), || async { find().is_some() }).await;
    let subjects: Vec<_> = sink
        .messages()
        .iter()
        .map(|m| (m.rcpt_to.clone(), m.subject_and_text().0))
        .collect();
    assert!(arrived, "no {subject:?} to {to}; got {subjects:?}");
    find().unwrap()
}

#[tokio::test]
async fn turning_totp_on_and_off_on_the_account_page_is_mailed_to_the_user() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    crate::helpers::create_user(&app, "tara", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "tara", "Quiet-Harbour-42").await;

    let (secret, _) = app.enrol_totp(&client).await;
    let text = mail_to(
        &sink,
        "tara@example.org",
        "Two-step verification was turned on",
    )
    .await;
    assert!(
        text.contains("\"tara\"") && text.contains("from the address 127.0.0.1"),
        "{text}"
    );

    app.clock.advance(Span::seconds(30));
    let page = client
        .get(app.url("/account/totp"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    let res = app
        .post_form(
            &client,
            "/account/totp/remove",
            &[
                ("csrf", &crate::helpers::hidden(&page, "csrf")),
                ("password", "Quiet-Harbour-42"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let text = mail_to(
        &sink,
        "tara@example.org",
        "Two-step verification was removed",
    )
    .await;
    assert!(!text.contains("by an administrator"), "{text}");
}

#[tokio::test]
async fn enrolling_totp_during_sign_in_is_mailed_to_the_user() {
    use gatehouse::{
        domain::{MfaPolicy, OrgName},
        store::orgs,
    };
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            policy.mfa = MfaPolicy::Everyone;
            orgs::set_policy(c, &org.id, &policy, now)
        })
        .await
        .unwrap();
    crate::helpers::create_user(&app, "fern", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    let res = app.sign_in(&client, "fern", "Quiet-Harbour-42").await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login/totp-enrol?tx="), "{location}");
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = crate::helpers::element_text(&page, "totp-secret");
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    let res = app
        .post_form(
            &client,
            "/login/totp-enrol",
            &[
                ("tx", &crate::helpers::hidden(&page, "tx")),
                ("csrf", &crate::helpers::hidden(&page, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = mail_to(
        &sink,
        "fern@example.org",
        "Two-step verification was turned on",
    )
    .await;
    assert!(text.contains("\"fern\""), "{text}");
}

#[tokio::test]
async fn removing_totp_from_the_command_line_is_mailed_as_an_administrators_doing() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = gatehouse::config::Config::for_tests(dir.path().to_owned());
    config.smtp_url = Some(smtp_url(sink.port, ""));
    config.mail_poll_secs = 1;
    config.rate_limit_burst = 1000;
    let app = spawn_with_config(config, Arc::new(tempfile::tempdir().unwrap())).await;
    crate::helpers::create_user(&app, "cole", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "cole", "Quiet-Harbour-42").await;
    app.enrol_totp(&client).await;
    mail_to(
        &sink,
        "cole@example.org",
        "Two-step verification was turned on",
    )
    .await;

    // The command queues the notice in the shared database; the server's worker sends it.
    let out = crate::cli::gatehouse(dir.path())
        .env("GATEHOUSE_ISSUER", app.config.issuer.as_str())
        .args(["user", "remove-totp", "cole", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command stamps the row with the real time; move this server's clock past it.
    app.clock.advance(Span::minutes(1));
    let text = mail_to(
        &sink,
        "cole@example.org",
        "Two-step verification was removed",
    )
    .await;
    assert!(text.contains("by an administrator"), "{text}");
}

#[tokio::test]
async fn a_password_change_on_the_account_page_is_mailed_to_the_user() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    crate::helpers::create_user(&app, "pia", "Quiet-Harbour-42", false).await;
    let client = app.new_client();
    app.sign_in(&client, "pia", "Quiet-Harbour-42").await;
    let csrf = app.account_csrf(&client).await;
    let res = app
        .post_form(
            &client,
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", "Quiet-Harbour-42"),
                ("new_password", "Fresh-Meadow-58"),
                ("confirm_password", "Fresh-Meadow-58"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let text = mail_to(&sink, "pia@example.org", "Your password was changed").await;
    assert!(
        text.contains("\"pia\"") && text.contains("from the address 127.0.0.1"),
        "{text}"
    );
    assert!(
        !text.contains("Fresh-Meadow-58"),
        "never the password itself"
    );
}
