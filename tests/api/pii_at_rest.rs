//! Issue 27: personal data and credentials at rest. A realistic session through HTTP,
//! then the raw SQLite file (and its WAL) and a `pg_dump` searched for everything
//! personal or secret the session created; and a database written the way an earlier
//! release wrote it, sealed in place at the next start.

use std::time::Duration;

use base64::Engine as _;
use diesel::prelude::*;
use gatehouse::{
    auth::password::Hasher,
    domain::{OrgName, Password, Role},
    store::{
        orgs,
        schema::{outbox, password_history, users},
    },
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    admin::World,
    helpers::{TestApp, eventually, hidden, skip, spawn_with_config, test_database_url},
    mail::{SmtpSink, smtp_url},
};

/// What the session below created that must never be stored in clear.
struct Created {
    needles: Vec<(String, Vec<u8>)>,
}

impl Created {
    fn text(&mut self, what: &str, value: &str) {
        self.needles
            .push((what.to_owned(), value.as_bytes().to_vec()));
    }

    fn bytes(&mut self, what: &str, value: Vec<u8>) {
        self.needles.push((what.to_owned(), value));
    }

    /// The needles found in `haystack`.
    fn found_in(&self, haystack: &[u8]) -> Vec<String> {
        self.needles
            .iter()
            .filter(|(_, needle)| {
                haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
            })
            .map(|(what, _)| what.clone())
            .collect()
    }
}

const ZELDA_EMAIL: &str = "Zelda.Quetzal@Hospital-Example.org";
const ZELDA_NAME: &str = "Zelda Quetzalcoatl-Prime";
const ZELDA_PASSWORD: &str = "Xq7-Unique-Pass-Quill";
const YORICK_EMAIL: &str = "yorick.marmalade@clinic-example.org";
const YORICK_NAME: &str = "Yorick Marmalade-Fennimore";
const YORICK_PASSWORD: &str = "Yq8-Unique-Pass-Marlo";

async fn create(w: &World, token: &str, body: Value) {
    let res = w
        .call(Method::POST, "/users", Some(token), Some(body.clone()))
        .await;
    assert_eq!(res.status(), 201, "{body}: {}", res.text().await.unwrap());
}

/// The path of the reset link in the newest reset mail to `to` (any case: mail goes to
/// the address with its domain lower-cased).
async fn reset_link_to(sink: &SmtpSink, to: &str) -> String {
    let found = || {
        sink.messages().into_iter().rev().find_map(|m| {
            let (subject, text) = m.subject_and_text();
            let to_them = m.rcpt_to.len() == 1 && m.rcpt_to[0].eq_ignore_ascii_case(to);
            (to_them && subject == "Reset your password").then_some(text)
        })
    };
    assert!(
        eventually(Duration::from_secs(15), || async { found().is_some() }).await,
        "no reset mail to {to}"
    );
    let text = found().unwrap();
    let start = text.find("/reset/").expect("a reset link");
    let token: String = text[start + "/reset/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("/reset/{token}")
}

async fn ask_for_link(app: &TestApp, login: &str) -> u16 {
    let client = app.new_client();
    let page = client.get(app.url("/reset")).send().await.unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    app.post_form(&client, "/reset", &[("csrf", &csrf), ("login", login)])
        .await
        .status()
        .as_u16()
}

/// The session: users with distinctive addresses, names and passwords made through the
/// admin API (two accounts at one address, in different case), TOTP enrolled for one,
/// reset mails asked for by address, sign-ins, and a search by address.
async fn session(sink: &SmtpSink, database: Option<String>) -> (World, Created) {
    let port = sink.port;
    let w = World::with(move |c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.rate_limit_burst = 1000;
        if database.is_none() {
            c.database_url = None;
        }
    })
    .await;
    let app = &w.app;
    let mut created = Created {
        needles: Vec::new(),
    };
    w.user("alpha", "ada", Role::OrgAdmin).await;
    let token = w.admin_token("ada").await;
    for (name, email, display, password) in [
        ("zelda", ZELDA_EMAIL, ZELDA_NAME, ZELDA_PASSWORD),
        (
            "zelda2",
            &ZELDA_EMAIL.to_lowercase(),
            ZELDA_NAME,
            ZELDA_PASSWORD,
        ),
        ("yorick", YORICK_EMAIL, YORICK_NAME, YORICK_PASSWORD),
    ] {
        create(
            &w,
            &token,
            json!({"org": "alpha", "username": name, "email": email, "display_name": display,
                   "password": password, "must_change_password": false}),
        )
        .await;
    }
    for (what, value) in [
        ("zelda's address", ZELDA_EMAIL),
        ("an address in lower case", &ZELDA_EMAIL.to_lowercase()),
        ("zelda's local part", "Zelda.Quetzal"),
        ("zelda's display name", ZELDA_NAME),
        ("zelda's password", ZELDA_PASSWORD),
        ("yorick's address", YORICK_EMAIL),
        ("yorick's display name", YORICK_NAME),
        ("yorick's password", YORICK_PASSWORD),
        ("a PHC hash", "$argon2"),
    ] {
        created.text(what, value);
    }
    // As typed below into the reset form and the admin search (both audited).
    created.text("zelda's address as typed", &ZELDA_EMAIL.to_uppercase());
    created.text("yorick's address as searched", &YORICK_EMAIL.to_uppercase());

    // TOTP for zelda, through the account page.
    let browser = app.new_client();
    assert_eq!(
        app.sign_in(&browser, "zelda", ZELDA_PASSWORD)
            .await
            .status(),
        303
    );
    let (secret, codes) = app.enrol_totp(&browser).await;
    created.text("the TOTP secret (base32)", &secret);
    let raw = totp_rs::Secret::try_from_base32(&secret)
        .expect("base32 secret")
        .as_ref()
        .to_vec();
    created.text("the TOTP secret (hex)", &hex::encode(&raw));
    created.text(
        "the TOTP secret (base64)",
        &base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw),
    );
    created.bytes("the TOTP secret (raw)", raw);
    created.text("a recovery code", &codes[0]);

    // Reset by address, in another case: both of zelda's accounts are mailed, and the
    // link works.
    assert_eq!(ask_for_link(app, &ZELDA_EMAIL.to_uppercase()).await, 200);
    let to = ZELDA_EMAIL.to_lowercase();
    let arrived = eventually(Duration::from_secs(15), || async {
        sink.messages()
            .iter()
            .filter(|m| m.subject_and_text().0 == "Reset your password")
            .count()
            >= 2
    })
    .await;
    assert!(arrived, "both accounts at the address get a link");
    let rcpts: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| m.subject_and_text().0 == "Reset your password")
        .map(|m| m.rcpt_to[0].to_lowercase())
        .collect();
    assert!(rcpts.iter().all(|r| *r == to), "{rcpts:?}");
    let link = reset_link_to(sink, "Zelda.Quetzal@hospital-example.org").await;
    created.text("the reset token", link.trim_start_matches("/reset/"));

    // Yorick signs in; a search by his whole address (any case) finds him, a part of it
    // finds nobody.
    assert_eq!(
        app.sign_in(&app.new_client(), "yorick", YORICK_PASSWORD)
            .await
            .status(),
        303
    );
    let search = |q: String| {
        let (w, token) = (&w, token.clone());
        async move {
            let path = format!("/users?org={}&q={}", w.alpha, urlencoding(&q));
            let res = w.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(res.status(), 200);
            let found: Value = res.json().await.unwrap();
            found
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search(YORICK_EMAIL.to_uppercase()).await, ["yorick"]);
    assert!(search("clinic-example".into()).await.is_empty());
    assert_eq!(search("yor".into()).await, ["yorick"]);

    // The SAML signing key's PEM body: base64 lines from its second half, the private
    // exponent and primes (the first lines hold the modulus, which the certificate
    // publishes anyway).
    let der = app.state.saml_keys.current().private_der().to_vec();
    let pem = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&[u8]> = pem.as_bytes().chunks(64).collect();
    for n in [lines.len() / 2, lines.len() / 2 + 3, lines.len() - 3] {
        created.text(
            &format!("SAML private key PEM line {}", n + 1),
            std::str::from_utf8(lines[n]).unwrap(),
        );
    }
    (w, created)
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The SQLite file and its WAL, as bytes.
fn sqlite_bytes(app: &TestApp) -> Vec<u8> {
    let db = app.data_dir.path().join("gatehouse.db");
    let mut bytes = std::fs::read(&db).expect("the SQLite file");
    for suffix in ["-wal", "-journal"] {
        if let Ok(more) = std::fs::read(format!("{}{suffix}", db.display())) {
            bytes.extend(more);
        }
    }
    bytes
}

/// A `pg_dump` (schema and data) of the test's own schema.
fn pg_dump(app: &TestApp) -> Vec<u8> {
    let url = app
        .config
        .database_url
        .as_ref()
        .expect("PostgreSQL")
        .clone();
    let schema = url
        .query_pairs()
        .find(|(k, _)| k == "options")
        .and_then(|(_, v)| v.strip_prefix("-csearch_path=").map(str::to_owned))
        .expect("the test's schema");
    let mut base = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "options")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    base.query_pairs_mut().clear().extend_pairs(kept);
    let out = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg("--schema")
        .arg(&schema)
        .arg(base.as_str())
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CREATE TABLE"),
        "an empty dump proves nothing"
    );
    out.stdout
}

#[tokio::test]
async fn a_sqlite_file_and_a_postgres_dump_hold_no_personal_data_or_credential_in_clear() {
    let sink = SmtpSink::start().await;
    let (w, created) = session(&sink, None).await;
    // Give the background work (hash upgrades, mail) time to land, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes = sqlite_bytes(&w.app);
    assert!(bytes.len() > 100_000, "the file holds the session");
    let found = created.found_in(&bytes);
    assert!(found.is_empty(), "in the SQLite file: {found:?}");
    // The search above is not a vacuous one: the same bytes do hold the usernames.
    assert!(!created.found_in(b"..Zelda.Quetzal..").is_empty());
    assert!(bytes.windows(6).any(|w| w == b"yorick"));

    let Some(base) = test_database_url() else {
        skip(
            "pii_at_rest (PostgreSQL part)",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
        return;
    };
    let sink = SmtpSink::start().await;
    let (w, created) = session(&sink, Some(base)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dump = pg_dump(&w.app);
    let found = created.found_in(&dump);
    assert!(found.is_empty(), "in the PostgreSQL dump: {found:?}");
    assert!(dump.windows(6).any(|w| w == b"yorick"));
}

// ---------------------------------------------------------------------------------
// Upgrading: rows as an earlier release wrote them.

const LUCY_EMAIL: &str = "Lucy.Legacy@Old-Ward.example";
const LUCY_NAME: &str = "Lucy Legacy-Person";
const LUCY_PASSWORD: &str = "Lq9-Legacy-Pass-Otter";

#[tokio::test]
async fn an_upgraded_database_is_sealed_at_start_and_old_hashes_still_sign_in() {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let first = crate::helpers::spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url(port, ""));
        c.rate_limit_burst = 1000;
    })
    .await;
    // The earlier release is stopped before this one starts (its mail worker too).
    first.stop().await;
    let phc = Hasher::new(64, 1, 1)
        .unwrap()
        .hash(&Password::parse(LUCY_PASSWORD.into()).unwrap())
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let legacy_phc = phc.clone();
    first
        .state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            // What the schema migration leaves of an earlier release's rows: clear text
            // in the renamed columns, no blind index, a clear PHC string.
            diesel::insert_into(users::table)
                .values((
                    users::id.eq("legacy-lucy"),
                    users::org_id.eq(&org.id),
                    users::username.eq("lucy"),
                    users::email_sealed.eq(LUCY_EMAIL),
                    users::display_name_sealed.eq(Some(LUCY_NAME)),
                    users::role.eq("user"),
                    users::status.eq("active"),
                    users::password_hash.eq(Some(&legacy_phc)),
                    users::password_changed_at.eq(Some(now)),
                    users::must_change_password.eq(false),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(password_history::table)
                .values((
                    password_history::id.eq("legacy-history"),
                    password_history::user_id.eq("legacy-lucy"),
                    password_history::password_hash.eq(&legacy_phc),
                    password_history::created_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(outbox::table)
                .values((
                    outbox::id.eq("legacy-mail"),
                    outbox::kind.eq("email"),
                    outbox::recipient_sealed.eq(""),
                    outbox::legacy_recipient.eq(Some(LUCY_EMAIL)),
                    outbox::subject.eq("Your password was changed"),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_at.eq(now + chrono::Duration::days(1)),
                    outbox::status.eq("pending"),
                    outbox::created_at.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();

    // This release starts on that database, twice at once as two instances would.
    let (a, b) = tokio::join!(
        spawn_with_config(first.config.clone(), first.data_dir.clone()),
        spawn_with_config(first.config.clone(), first.data_dir.clone()),
    );
    drop(b);
    let app = a;
    let (lucy, mail) = {
        let (pii, key) = (app.state.pii.clone(), app.state.master_key.clone());
        app.state
            .store
            .run(move |c| {
                let lucy = gatehouse::store::users::find_by_id(c, &pii, "legacy-lucy")?.unwrap();
                let mail = gatehouse::store::outbox::find(c, "legacy-mail")?.unwrap();
                Ok((lucy, mail.open_recipient(&*key)?))
            })
            .await
            .unwrap()
    };
    assert_eq!(lucy.email, LUCY_EMAIL);
    assert_eq!(lucy.display_name.as_deref(), Some(LUCY_NAME));
    assert_eq!(lucy.password_hash.as_deref(), Some(phc.as_str()));
    assert!(!lucy.password_hash_in_clear, "wrapped at start-up");
    assert_eq!(mail, LUCY_EMAIL);

    let mut legacy = Created {
        needles: Vec::new(),
    };
    legacy.text("lucy's address", LUCY_EMAIL);
    legacy.text("lucy's address in lower case", &LUCY_EMAIL.to_lowercase());
    legacy.text("lucy's display name", LUCY_NAME);
    legacy.text("lucy's PHC string", &phc);
    legacy.text("a PHC hash", "$argon2");
    let found = match test_database_url() {
        Some(_) => legacy.found_in(&pg_dump(&app)),
        None => legacy.found_in(&sqlite_bytes(&app)),
    };
    assert!(found.is_empty(), "left in clear: {found:?}");

    // She signs in with her old password, and resets by her address in another case.
    assert_eq!(
        app.sign_in(&app.new_client(), "lucy", LUCY_PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(ask_for_link(&app, &LUCY_EMAIL.to_uppercase()).await, 200);
    reset_link_to(&sink, LUCY_EMAIL).await;

    // A clear hash written in later (an edited row) is wrapped at the next sign-in.
    let clear = phc.clone();
    app.state
        .store
        .run(move |c| {
            diesel::update(users::table.find("legacy-lucy"))
                .set(users::password_hash.eq(Some(clear)))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        app.sign_in(&app.new_client(), "lucy", LUCY_PASSWORD)
            .await
            .status(),
        303
    );
    let wrapped = eventually(Duration::from_secs(10), || {
        let state = app.state.clone();
        async move {
            let stored: Option<String> = state
                .store
                .run(|c| {
                    Ok(users::table
                        .find("legacy-lucy")
                        .select(users::password_hash)
                        .first(c)?)
                })
                .await
                .unwrap();
            stored.is_some_and(|s| s.starts_with("v1."))
        }
    })
    .await;
    assert!(wrapped, "the clear hash was wrapped after the sign-in");
}
