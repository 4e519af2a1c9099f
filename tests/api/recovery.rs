//! Password recovery, forced resets and invitations (DESIGN §7), through HTTP, a real
//! SMTP conversation and the binary's command line.

use std::{sync::Arc, time::Duration};

use chrono::Duration as Span;
use gatehouse::{
    audit::{AuditFilter, AuditRecord, EventType},
    auth::recovery::{self, Admin, NewInvitation},
    clock::Clock,
    config::Config,
    domain::{Email, OrgName, OrgPolicy, Role, Username},
    store::{orgs, outbox, recovery_tokens::Purpose},
};

use crate::{
    cli::gatehouse,
    helpers::{TestApp, create_user, eventually, hidden, spawn_app_with, spawn_with_config},
    mail::{SmtpSink, app_mailing_to, free_port, mail_to, smtp_url},
};

const PASSWORD: &str = "Quiet-Harbour-42";
const NEW_PASSWORD: &str = "Fresh-Meadow-58";
const INVALID: &str = "This link is invalid or has expired";

async fn events(app: &TestApp, event_type: EventType) -> Vec<AuditRecord> {
    app.state
        .audit
        .query(
            AuditFilter {
                event_type: Some(event_type),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap()
}

/// Asks for a reset link for `login` from `client`'s browser, as the page does.
async fn ask_for_link(app: &TestApp, client: &reqwest::Client, login: &str) -> reqwest::Response {
    let page = client.get(app.url("/reset")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    app.post_form(client, "/reset", &[("csrf", &csrf), ("login", login)])
        .await
}

/// The path (`/reset/…` or `/invite/…`) of the link in a mail's text, checking that the
/// link is built from the configured issuer.
fn link_path(app: &TestApp, text: &str, kind: &str) -> String {
    let prefix = format!("{}{kind}/", app.config.issuer);
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64: {token}");
    format!("/{kind}/{token}")
}

/// How many mails with `subject` went to `to`.
fn count(sink: &SmtpSink, to: &str, subject: &str) -> usize {
    sink.messages()
        .iter()
        .filter(|m| m.rcpt_to == [to] && m.subject_and_text().0 == subject)
        .count()
}

/// Asks for a link for `login` and returns the path of the `nth` reset mail to `to`.
async fn reset_link(app: &TestApp, sink: &SmtpSink, login: &str, to: &str, nth: usize) -> String {
    let res = ask_for_link(app, &app.new_client(), login).await;
    assert_eq!(res.status(), 200);
    assert!(
        eventually(Duration::from_secs(15), || async {
            count(sink, to, "Reset your password") >= nth
        })
        .await,
        "reset mail {nth} to {to} never arrived"
    );
    let text = sink
        .messages()
        .iter()
        .filter(|m| m.rcpt_to == [to] && m.subject_and_text().0 == "Reset your password")
        .nth(nth - 1)
        .unwrap()
        .subject_and_text()
        .1;
    link_path(app, &text, "reset")
}

/// Opens a link's form in `client` and submits `password` twice; returns the answer.
async fn choose_password(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    password: &str,
) -> reqwest::Response {
    let page = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200, "{path}");
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    app.post_form(
        client,
        path,
        &[
            ("csrf", &csrf),
            ("new_password", password),
            ("confirm_password", password),
        ],
    )
    .await
}

async fn assert_invalid(res: reqwest::Response) {
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains(INVALID), "{body}");
}

async fn signed_in(app: &TestApp, client: &reqwest::Client) -> bool {
    let res = client.get(app.url("/account")).send().await.unwrap();
    res.status() == 200
}

#[tokio::test]
async fn the_link_in_the_mail_sets_a_new_password_ends_sessions_and_clears_the_lock() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    let user = create_user(&app, "vera", PASSWORD, false).await;
    let earlier = app.new_client();
    assert_eq!(app.sign_in(&earlier, "vera", PASSWORD).await.status(), 303);
    assert!(signed_in(&app, &earlier).await);
    for _ in 0..5 {
        app.sign_in(&app.new_client(), "vera", "Wrong-Harbour-42")
            .await;
    }
    let locked = app.sign_in(&app.new_client(), "vera", PASSWORD).await;
    assert!(locked.text().await.unwrap().contains("locked"));

    // The sign-in page offers the way here.
    let browser = app.new_client();
    let start = browser.get(app.url("/login")).send().await.unwrap();
    let login_page = browser
        .get(app.url(start.headers()["location"].to_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login_page.contains(r#"<a id="forgot-password" href="/reset">"#),
        "{login_page}"
    );

    let path = reset_link(&app, &sink, "vera", "vera@example.org", 1).await;
    let client = app.new_client();
    // A weak password is refused with its reasons; the link still works afterwards.
    let weak = choose_password(&app, &client, &path, "password").await;
    assert_eq!(weak.status(), 400);
    assert!(weak.text().await.unwrap().contains("too common"));
    let page = client
        .get(app.url(&path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="link-username">vera<"#), "{page}");

    let done = choose_password(&app, &client, &path, NEW_PASSWORD).await;
    assert_eq!(done.status(), 200);
    assert!(
        done.headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().contains("gatehouse-session")),
        "a reset signs nobody in"
    );
    assert!(done.text().await.unwrap().contains("Your password was set"));
    assert!(!signed_in(&app, &client).await);

    assert!(
        !signed_in(&app, &earlier).await,
        "the session from before the reset was ended"
    );
    let old = app.sign_in(&app.new_client(), "vera", PASSWORD).await;
    assert_eq!(old.status(), 401);
    let new = app.sign_in(&app.new_client(), "vera", NEW_PASSWORD).await;
    assert_eq!(new.status(), 303, "the lock was cleared");
    assert_eq!(new.headers()["location"], "/account");

    let text = mail_to(&sink, "vera@example.org", "Your password was changed").await;
    assert!(text.contains("\"vera\""), "{text}");
    assert_invalid(choose_password_blind(&app, &client, &path).await).await;

    let requested = events(&app, EventType::PasswordResetRequested).await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].subject.as_deref(), Some(user.id.as_str()));
    let reset = events(&app, EventType::PasswordReset).await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0].details["sessions_ended"], 1);
    // Nothing in the trail is, or contains, the link.
    let token = path.rsplit('/').next().unwrap();
    let mut all = Vec::new();
    app.state.audit.export(None, &mut all).await.unwrap();
    assert!(!String::from_utf8(all).unwrap().contains(token));
}

/// Posts a new password to `path` with a CSRF token from a link page that works (any
/// link page of this browser gives one), without loading `path` itself.
async fn choose_password_blind(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
) -> reqwest::Response {
    let csrf = csrf_for_link_form(app, client, Purpose::Reset).await;
    app.post_form(
        client,
        path,
        &[
            ("csrf", &csrf),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ],
    )
    .await
}

/// The CSRF token of the `purpose` link form in `client`'s browser, from a fresh link
/// of a throwaway account.
async fn csrf_for_link_form(app: &TestApp, client: &reqwest::Client, purpose: Purpose) -> String {
    use gatehouse::{
        auth::{random_token, token_hash},
        domain::UserStatus,
        store::{recovery_tokens, users},
    };
    let name = format!("csrf{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let user = create_user(app, &name, PASSWORD, false).await;
    let token = random_token();
    let (hash, now) = (token_hash(&token), app.clock.now().naive_utc());
    app.state
        .store
        .run(move |c| {
            if purpose == Purpose::Invite {
                users::set_status(c, &user.id, UserStatus::Invited, now)?;
            }
            recovery_tokens::issue(c, &user.id, purpose, &hash, now, now + Span::minutes(30))
        })
        .await
        .unwrap();
    let kind = match purpose {
        Purpose::Reset => "reset",
        Purpose::Invite => "invite",
    };
    let page = client
        .get(app.url(&format!("/{kind}/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    hidden(&page.text().await.unwrap(), "csrf")
}

#[tokio::test]
async fn an_email_address_in_any_case_finds_the_account() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    create_user(&app, "wren", PASSWORD, false).await;
    let path = reset_link(&app, &sink, "WREN@Example.ORG", "wren@example.org", 1).await;
    let res = choose_password(&app, &app.new_client(), &path, NEW_PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.sign_in(&app.new_client(), "wren", NEW_PASSWORD)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn used_expired_superseded_and_outdated_links_all_get_the_clear_page() {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.rate_limit_burst = 1000;
        // Four links within the hour: more than the default allows one account.
        c.reset_account_limit_per_hour = 10;
    })
    .await;
    create_user(&app, "ada", PASSWORD, false).await;
    let client = app.new_client();

    // Superseded: a newer link voids the older one.
    let first = reset_link(&app, &sink, "ada", "ada@example.org", 1).await;
    let second = reset_link(&app, &sink, "ada", "ada@example.org", 2).await;
    assert_ne!(first, second);
    assert_invalid(client.get(app.url(&first)).send().await.unwrap()).await;
    assert_invalid(choose_password_blind(&app, &client, &first).await).await;

    // Expired: thirty minutes by the clock.
    app.clock.advance(Span::minutes(30) + Span::seconds(1));
    assert_invalid(client.get(app.url(&second)).send().await.unwrap()).await;
    assert_invalid(choose_password_blind(&app, &client, &second).await).await;

    // Outdated: the password was changed on the account page after the link was sent.
    let third = reset_link(&app, &sink, "ada", "ada@example.org", 3).await;
    let account = app.new_client();
    app.sign_in(&account, "ada", PASSWORD).await;
    let csrf = app.account_csrf(&account).await;
    let changed = app
        .post_form(
            &account,
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "Other-Meadow-91"),
                ("confirm_password", "Other-Meadow-91"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 303);
    assert_invalid(client.get(app.url(&third)).send().await.unwrap()).await;
    assert_invalid(choose_password_blind(&app, &client, &third).await).await;

    // Used: it worked once.
    let fourth = reset_link(&app, &sink, "ada", "ada@example.org", 4).await;
    assert_eq!(
        choose_password(&app, &client, &fourth, NEW_PASSWORD)
            .await
            .status(),
        200
    );
    assert_invalid(client.get(app.url(&fourth)).send().await.unwrap()).await;
    assert_invalid(choose_password_blind(&app, &client, &fourth).await).await;

    // None of the refused links changed the password.
    assert_eq!(
        app.sign_in(&app.new_client(), "ada", NEW_PASSWORD)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn unknown_names_and_addresses_get_the_same_answer_and_no_mail() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    create_user(&app, "otis", PASSWORD, false).await;
    let client = app.new_client();

    let known = ask_for_link(&app, &client, "otis").await;
    let (status, body) = (known.status(), known.text().await.unwrap());
    assert_eq!(status, 200);
    for unknown in ["nobody", "nobody@example.org", "not a username!"] {
        let res = ask_for_link(&app, &client, unknown).await;
        assert_eq!(res.status(), status, "{unknown}");
        assert_eq!(res.text().await.unwrap(), body, "{unknown}");
    }
    // The known account's mail is the only one: nothing for the others, ever.
    mail_to(&sink, "otis@example.org", "Reset your password").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1);
    let rows = app
        .state
        .store
        .run(|c| outbox::recent(c, 100))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].open_recipient(&*app.state.master_key).unwrap(),
        "otis@example.org"
    );
    assert_eq!(
        events(&app, EventType::PasswordResetRequested).await.len(),
        1,
        "only the real account's request is in the trail"
    );
}

#[tokio::test]
async fn a_reset_mail_waits_out_an_smtp_outage_and_its_link_still_works() {
    let port = free_port();
    let app = spawn_app_with(|c| c.smtp_url = Some(smtp_url(port, ""))).await;
    create_user(&app, "nell", PASSWORD, false).await;
    assert_eq!(
        ask_for_link(&app, &app.new_client(), "nell").await.status(),
        200
    );
    let rows = || async {
        app.state
            .store
            .run(|c| outbox::recent(c, 10))
            .await
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            rows().await.first().is_some_and(|r| r.last_error.is_some())
        })
        .await,
        "the first attempt failed and was kept"
    );
    let row = rows().await.remove(0);
    assert_eq!(
        (
            row.status.as_str(),
            row.open_recipient(&*app.state.master_key).unwrap().as_str()
        ),
        ("pending", "nell@example.org")
    );

    // SMTP comes back on the same port; Gatehouse is not restarted.
    let sink = SmtpSink::start_on(port).await;
    app.clock.advance(Span::seconds(11));
    app.state.mailer.wake();
    let text = mail_to(&sink, "nell@example.org", "Reset your password").await;
    let path = link_path(&app, &text, "reset");
    let res = choose_password(&app, &app.new_client(), &path, NEW_PASSWORD).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn reset_requests_are_limited_per_account_and_per_address() {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.rate_limit_burst = 1000;
        c.reset_account_limit_per_hour = 2;
        c.reset_ip_limit_per_hour = 4;
    })
    .await;
    create_user(&app, "ines", PASSWORD, false).await;
    let client = app.new_client();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let res = ask_for_link(&app, &client, "ines").await;
        assert_eq!(res.status(), 200);
        bodies.push(res.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the same answer each time"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&sink, "ines@example.org", "Reset your password") == 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&sink, "ines@example.org", "Reset your password"), 2);
    let refused = events(&app, EventType::PasswordResetRequested).await;
    assert!(
        refused
            .iter()
            .any(|e| e.details["reason"] == "rate_limited"),
        "{refused:?}"
    );

    // The address: the fifth request within the hour is refused, whatever it names.
    assert_eq!(ask_for_link(&app, &client, "someone").await.status(), 200);
    let over = ask_for_link(&app, &client, "someone-else").await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));

    // The next hour starts afresh.
    app.clock.advance(Span::hours(1));
    assert_eq!(ask_for_link(&app, &client, "ines").await.status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&sink, "ines@example.org", "Reset your password") == 3
        })
        .await
    );
}

#[tokio::test]
async fn bad_links_get_the_clear_page_and_never_a_500() {
    let app = spawn_app_with(|c| c.rate_limit_burst = 1000).await;
    let client = app.new_client();
    let csrf = csrf_for_link_form(&app, &client, Purpose::Reset).await;
    let invite_csrf = csrf_for_link_form(&app, &client, Purpose::Invite).await;
    let long = "A".repeat(10 * 1024);
    let bad = [
        "abc",
        long.as_str(),
        "%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00",
        "tok!en-with-a-bang-and-forty-three-chars-xx",
        "tok%2Fen-with-a-slash-and-forty-three-chars",
        "a/b/c",
        "%ZZ",
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
        "",
        // Well formed, never issued.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ];
    for kind in ["reset", "invite"] {
        for token in bad {
            let path = format!("/{kind}/{token}");
            let res = client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(
                res.status(),
                400,
                "GET {kind}/{}",
                &token[..token.len().min(40)]
            );
            assert!(res.text().await.unwrap().contains(INVALID));
            let form_csrf = if kind == "reset" { &csrf } else { &invite_csrf };
            let res = app
                .post_form(
                    &client,
                    &path,
                    &[
                        ("csrf", form_csrf.as_str()),
                        ("new_password", NEW_PASSWORD),
                        ("confirm_password", NEW_PASSWORD),
                    ],
                )
                .await;
            assert_eq!(
                res.status(),
                400,
                "POST {kind}/{}",
                &token[..token.len().min(40)]
            );
            assert!(res.text().await.unwrap().contains(INVALID));
        }
    }

    // Missing and repeated fields are a 400 page, not a 500: the form is refused before
    // the link is looked at, so any path will do.
    let path = "/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let bodies: [&[(&str, &str)]; 3] = [
        &[("csrf", &csrf), ("new_password", NEW_PASSWORD)],
        &[
            ("csrf", &csrf),
            ("new_password", NEW_PASSWORD),
            ("new_password", "Another-One-77"),
            ("confirm_password", NEW_PASSWORD),
        ],
        &[
            ("csrf", &csrf),
            ("csrf", &csrf),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ],
    ];
    for form in bodies {
        let res = app.post_form(&client, path, form).await;
        assert_eq!(res.status(), 400, "{form:?}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    let page = client.get(app.url("/reset")).send().await.unwrap();
    let request_csrf = hidden(&page.text().await.unwrap(), "csrf");
    for form in [
        vec![("csrf", request_csrf.as_str())],
        vec![
            ("csrf", request_csrf.as_str()),
            ("login", "a"),
            ("login", "b"),
        ],
    ] {
        let res = app.post_form(&client, "/reset", &form).await;
        assert_eq!(res.status(), 400, "{form:?}");
    }
    let empty = app
        .post_form(
            &client,
            "/reset",
            &[("csrf", &request_csrf), ("login", "  ")],
        )
        .await;
    assert_eq!(empty.status(), 400);
    let huge = app
        .post_form(
            &client,
            "/reset",
            &[("csrf", &request_csrf), ("login", &long)],
        )
        .await;
    assert_eq!(huge.status(), 400);
}

#[tokio::test]
async fn reset_forms_without_the_right_csrf_token_are_refused() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    create_user(&app, "cara", PASSWORD, false).await;
    let client = app.new_client();
    let page = client.get(app.url("/reset")).send().await.unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let other_browser = {
        let other = app.new_client();
        let page = other.get(app.url("/reset")).send().await.unwrap();
        hidden(&page.text().await.unwrap(), "csrf")
    };
    assert_ne!(csrf, other_browser);
    for form in [
        vec![("login", "cara")],
        vec![("csrf", ""), ("login", "cara")],
        vec![("csrf", "forged"), ("login", "cara")],
        vec![("csrf", other_browser.as_str()), ("login", "cara")],
    ] {
        let res = app.post_form(&client, "/reset", &form).await;
        assert_eq!(res.status(), 403, "{form:?}");
    }
    // A browser without our cookie has no valid token at all.
    let res = app
        .post_form(
            &app.new_client(),
            "/reset",
            &[("csrf", &csrf), ("login", "cara")],
        )
        .await;
    assert_eq!(res.status(), 403);
    // Another site.
    let res = client
        .post(app.url("/reset"))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("login", "cara")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().is_empty(), "no refused request sent mail");

    let path = reset_link(&app, &sink, "cara", "cara@example.org", 1).await;
    let link_page = client.get(app.url(&path)).send().await.unwrap();
    let link_csrf = hidden(&link_page.text().await.unwrap(), "csrf");
    for bad in ["", "forged", csrf.as_str(), other_browser.as_str()] {
        let res = app
            .post_form(
                &client,
                &path,
                &[
                    ("csrf", bad),
                    ("new_password", NEW_PASSWORD),
                    ("confirm_password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 403, "csrf {bad:?}");
    }
    let res = client
        .post(app.url(&path))
        .header("Origin", "https://evil.example")
        .form(&[
            ("csrf", link_csrf.as_str()),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // None of that used the link up.
    let res = app
        .post_form(
            &client,
            &path,
            &[
                ("csrf", &link_csrf),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
}

// ---------------------------------------------------------------------------------
// Administrators: forced resets and invitations, from the command line.

/// A server on `dir` (SQLite there, shared with the binary), mailing through `sink`.
async fn server_on(dir: &tempfile::TempDir, sink: &SmtpSink) -> TestApp {
    let mut config = Config::for_tests(dir.path().to_owned());
    config.smtp_url = Some(smtp_url(sink.port, ""));
    config.mail_poll_secs = 1;
    config.rate_limit_burst = 1000;
    spawn_with_config(config, Arc::new(tempfile::tempdir().unwrap())).await
}

fn run(app: &TestApp, dir: &tempfile::TempDir, args: &[&str]) -> serde_json::Value {
    let out = gatehouse(dir.path())
        .env("GATEHOUSE_ISSUER", app.config.issuer.as_str())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command stamps what it queues with the real time; this server's clock stands
    // still until a test moves it, so move it past that.
    app.clock.advance(Span::minutes(1));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn an_org_wide_forced_reset_reaches_every_user_of_that_org_and_no_other() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = server_on(&dir, &sink).await;
    create_user(&app, "rosa", PASSWORD, false).await;
    create_user(&app, "sam", PASSWORD, false).await;
    let now = app.clock.now().naive_utc();
    app.state
        .store
        .run(move |c| {
            orgs::insert(
                c,
                &OrgName::parse("north").unwrap(),
                "North Clinic",
                &OrgPolicy::default(),
                now,
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    gatehouse::auth::account::create_account(
        &app.state,
        gatehouse::auth::account::NewAccount {
            org: OrgName::parse("north").unwrap(),
            username: Username::parse("nils").unwrap(),
            email: Email::parse("nils@example.org").unwrap(),
            display_name: None,
            role: Role::User,
            password: gatehouse::domain::Password::parse(PASSWORD.into()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    let rosa_browser = app.new_client();
    app.sign_in(&rosa_browser, "rosa", PASSWORD).await;
    let nils_browser = app.new_client();
    app.sign_in(&nils_browser, "nils", PASSWORD).await;
    assert!(signed_in(&app, &rosa_browser).await && signed_in(&app, &nils_browser).await);

    let json = run(
        &app,
        &dir,
        &["user", "force-reset", "--org", "default", "--json"],
    );
    assert_eq!(json["org"], "default");
    let mut reset: Vec<String> = json["reset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    reset.sort();
    assert_eq!(reset, ["admin", "rosa", "sam"]);

    // rosa's session is gone (the command cannot reach this server's in-memory sessions,
    // so it ends at its next use); nils, in another organisation, keeps his.
    assert!(!signed_in(&app, &rosa_browser).await);
    assert!(signed_in(&app, &nils_browser).await);
    // Their old passwords no longer sign in (issue 20 item 14): the generic refusal.
    let mut links = Vec::new();
    for name in ["rosa", "sam"] {
        let res = app.sign_in(&app.new_client(), name, PASSWORD).await;
        assert_eq!(res.status(), 401, "{name}");
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("Incorrect username or password."),
            "{name}"
        );
        let text = mail_to(
            &sink,
            &format!("{name}@example.org"),
            "You need to choose a new password",
        )
        .await;
        links.push(link_path(&app, &text, "reset"));
    }
    let res = app.sign_in(&app.new_client(), "nils", PASSWORD).await;
    assert_eq!(res.headers()["location"], "/account");
    assert_eq!(
        count(
            &sink,
            "nils@example.org",
            "You need to choose a new password"
        ),
        0
    );

    // rosa sets a new one from the mailed link, and is in.
    let res = choose_password(&app, &app.new_client(), &links[0], NEW_PASSWORD).await;
    assert_eq!(res.status(), 200);
    let client = app.new_client();
    let res = app.sign_in(&client, "rosa", NEW_PASSWORD).await;
    assert_eq!(res.headers()["location"], "/account");
    assert!(signed_in(&app, &client).await);

    // One user by name.
    let json = run(&app, &dir, &["user", "force-reset", "NILS", "--json"]);
    assert_eq!(json["username"], "nils");
    let res = app.sign_in(&app.new_client(), "nils", PASSWORD).await;
    assert_eq!(res.status(), 401);
    let forced = events(&app, EventType::PasswordResetForced).await;
    assert_eq!(forced.len(), 4);
    assert!(
        forced
            .iter()
            .all(|e| e.actor.as_deref().is_some_and(|a| a.starts_with("cli:")))
    );

    let out = gatehouse(dir.path())
        .args(["user", "force-reset", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named"));
    let out = gatehouse(dir.path())
        .args(["user", "force-reset"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a name or --org is required");
}

#[tokio::test]
async fn an_invited_user_chooses_a_password_from_the_mailed_link() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = server_on(&dir, &sink).await;

    let json = run(
        &app,
        &dir,
        &[
            "user",
            "invite",
            "--username",
            "Ivy",
            "--email",
            "ivy@example.org",
            "--role",
            "support",
            "--json",
        ],
    );
    assert_eq!(json["username"], "ivy");
    assert_eq!(json["role"], "support");
    assert_eq!(json["org"], "default");
    assert_eq!(json["reissued"], false);

    // Before accepting, nothing signs in, and the answer is the generic one.
    let res = app.sign_in(&app.new_client(), "ivy", PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Incorrect username or password.")
    );
    let refused = events(&app, EventType::SignInFailed).await;
    assert_eq!(refused[0].details["reason"], "invitation_pending");
    // Nor does a reset link get sent to an invitation that is still open.
    ask_for_link(&app, &app.new_client(), "ivy").await;

    let text = mail_to(
        &sink,
        "ivy@example.org",
        "Your invitation to Default organisation",
    )
    .await;
    assert!(text.contains("\"ivy\""), "{text}");
    let path = link_path(&app, &text, "invite");
    let client = app.new_client();
    let page = client
        .get(app.url(&path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Choose your password"), "{page}");
    let weak = choose_password(&app, &client, &path, "ivy12345").await;
    assert_eq!(weak.status(), 400);
    let res = choose_password(&app, &client, &path, NEW_PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Your account is ready"));
    assert_invalid(client.get(app.url(&path)).send().await.unwrap()).await;

    let res = app.sign_in(&app.new_client(), "ivy", NEW_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(count(&sink, "ivy@example.org", "Reset your password"), 0);
    assert_eq!(events(&app, EventType::InvitationSent).await.len(), 1);
    let accepted = events(&app, EventType::InvitationAccepted).await;
    assert_eq!(accepted.len(), 1);
    let created = events(&app, EventType::UserCreated).await;
    assert!(created.iter().any(|e| e.details["status"] == "invited"));

    // An active account cannot be invited again.
    let out = gatehouse(dir.path())
        .args([
            "user",
            "invite",
            "--username",
            "ivy",
            "--email",
            "ivy@example.org",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[tokio::test]
async fn an_expired_invitation_is_refused_and_a_new_one_replaces_it() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    let admin = Admin {
        actor: "test",
        request: None,
    };
    let invitation = || NewInvitation {
        org: OrgName::parse("default").unwrap(),
        username: Username::parse("ike").unwrap(),
        email: Email::parse("ike@example.org").unwrap(),
        display_name: Some(gatehouse::domain::DisplayName::parse("Ike Okafor").unwrap()),
        role: Role::User,
    };
    let first = recovery::invite(&app.state, admin, invitation())
        .await
        .unwrap();
    assert!(!first.reissued);
    let text = mail_to(
        &sink,
        "ike@example.org",
        "Your invitation to Default organisation",
    )
    .await;
    assert!(text.contains("Hello Ike Okafor"), "{text}");
    let old = link_path(&app, &text, "invite");

    app.clock.advance(Span::hours(72) + Span::seconds(1));
    let client = app.new_client();
    assert_invalid(client.get(app.url(&old)).send().await.unwrap()).await;
    assert_eq!(
        app.sign_in(&app.new_client(), "ike", PASSWORD)
            .await
            .status(),
        401
    );

    let again = recovery::invite(&app.state, admin, invitation())
        .await
        .unwrap();
    assert!(again.reissued);
    assert_eq!(again.id, first.id);
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(
                &sink,
                "ike@example.org",
                "Your invitation to Default organisation",
            ) == 2
        })
        .await
    );
    let text = sink
        .messages()
        .iter()
        .filter(|m| m.rcpt_to == ["ike@example.org"])
        .nth(1)
        .unwrap()
        .subject_and_text()
        .1;
    let new = link_path(&app, &text, "invite");
    assert_ne!(new, old);
    assert_eq!(
        choose_password(&app, &client, &new, NEW_PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.sign_in(&app.new_client(), "ike", NEW_PASSWORD)
            .await
            .status(),
        303
    );
}

/// Issue 20 item 14: a forced reset ends the old password's power at once. Whoever
/// knows it (the reason for forcing a reset) gets what a wrong password gets, at the
/// sign-in page and through an OIDC flow; the mailed link is the way back in.
#[tokio::test]
async fn after_a_forced_reset_the_old_password_fails_like_a_wrong_one_everywhere() {
    use crate::oidc::{REDIRECT, register_client};
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    create_user(&app, "fern", PASSWORD, false).await;
    let reg = register_client(
        &app,
        gatehouse::oidc::clients::ClientSpec::new("Ward app", &[REDIRECT]),
    )
    .await;
    let admin = Admin {
        actor: "test",
        request: None,
    };
    recovery::force_reset_user(&app.state, admin, &Username::parse("fern").unwrap())
        .await
        .unwrap();

    let page_of = |html: &str| {
        html.replace(&hidden(html, "tx"), "…")
            .replace(&hidden(html, "csrf"), "…")
    };
    let old = app.sign_in(&app.new_client(), "fern", PASSWORD).await;
    let wrong = app
        .sign_in(&app.new_client(), "fern", "Wrong-Harbour-42")
        .await;
    assert_eq!(old.status(), 401, "no change-password step, no session");
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        page_of(&old.text().await.unwrap()),
        page_of(&wrong.text().await.unwrap()),
        "the old password gets exactly the wrong password's answer"
    );

    // Through a relying party: no code, no session.
    let browser = app.new_client();
    let mut authorize = url::Url::parse(&app.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st-1")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let res = browser.get(authorize.as_str()).send().await.unwrap();
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(login.starts_with("/login?tx="), "{login}");
    let html = browser
        .get(app.url(&login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = app
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "fern"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    let body = res.text().await.unwrap();
    assert!(
        !body.contains(REDIRECT) && !body.contains("code="),
        "{body}"
    );
    assert!(!signed_in(&app, &browser).await);
    let again = browser.get(authorize.as_str()).send().await.unwrap();
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?tx="),
        "still no session to answer from"
    );

    // The mailed link sets a new password, and that one signs in.
    let text = mail_to(
        &sink,
        "fern@example.org",
        "You need to choose a new password",
    )
    .await;
    let path = link_path(&app, &text, "reset");
    let res = choose_password(&app, &app.new_client(), &path, NEW_PASSWORD).await;
    assert_eq!(res.status(), 200);
    let res = app.sign_in(&app.new_client(), "fern", NEW_PASSWORD).await;
    assert_eq!(res.headers()["location"], "/account");
    let res = app.sign_in(&app.new_client(), "fern", PASSWORD).await;
    assert_eq!(res.status(), 401, "the old password stays dead");
}
