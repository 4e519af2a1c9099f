//! What each notice says, rendered.
use super::*;
use chrono::TimeZone;

const EVIL: &str = "<script>alert(1)</script> & \"Dr\" O'Neil";

fn issuer() -> Url {
    Url::parse("https://idp.example.org/gatehouse").unwrap()
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap()
}

fn en() -> Tr {
    Tr::default()
}

/// A reader of Latin American Spanish, in `zone` (UTC when None).
fn es(zone: Option<&str>) -> Tr {
    crate::i18n::Wishes {
        person: Some("es-419".into()),
        zone: zone.map(str::to_owned),
        ..Default::default()
    }
    .tr()
}

fn token() -> SecretString {
    "tok_Abc-123_xyz".to_owned().into()
}

fn every_notice(name: &str) -> Vec<Notice> {
    every_notice_as(name, "vera")
}

/// Every notice, to or about `username` (what a person typed) called `name`.
fn every_notice_as(name: &str, username: &str) -> Vec<Notice> {
    let ip = Some("203.0.113.7".parse().unwrap());
    vec![
        Notice::ResetLink {
            name: name.into(),
            username: username.into(),
            token: token(),
            expires_at: at(),
        },
        Notice::ForcedReset {
            name: name.into(),
            username: username.into(),
            token: token(),
            expires_at: at(),
        },
        Notice::Invitation {
            name: name.into(),
            username: username.into(),
            org: "St Mary's".into(),
            token: token(),
            expires_at: at(),
        },
        Notice::PasswordChanged {
            name: name.into(),
            username: username.into(),
            at: at(),
            ip,
        },
        Notice::Lockout {
            name: name.into(),
            username: username.into(),
            until: Some(at()),
            ip,
        },
        Notice::Lockout {
            name: name.into(),
            username: username.into(),
            until: None,
            ip: None,
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::AccountLocked {
                username: username.into(),
                until: Some(at()),
                ip,
            },
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::IpBlocked {
                address: "2001:db8:1:2::/64".into(),
                until: at(),
                block_count: 2,
            },
        },
        Notice::TotpEnrolled {
            name: name.into(),
            username: username.into(),
            at: at(),
            ip,
        },
        Notice::TotpRemoved {
            name: name.into(),
            username: username.into(),
            at: at(),
            by_administrator: true,
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::EmergencyStarted(window_of(username)),
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::EmergencyEnded(WindowReport {
                ended_at: Some(at()),
                end_reason: Some("expired".into()),
                ..window_of(username)
            }),
        },
        Notice::EmergencyOverdue {
            org: name.into(),
            overdue_hours: 72,
            reviews: vec![window_of(username), window_of(username)],
        },
        Notice::PasskeyAdded {
            name: name.into(),
            username: username.into(),
            passkey: name.into(),
            at: at(),
            ip,
        },
        Notice::PasskeyRemoved {
            name: name.into(),
            username: username.into(),
            passkey: name.into(),
            at: at(),
            by_administrator: true,
        },
        Notice::PasskeyRenamed {
            name: name.into(),
            username: username.into(),
            passkey: name.into(),
            previous: "Old laptop".into(),
            at: at(),
        },
    ]
}

fn window() -> WindowReport {
    window_of("vera")
}

fn window_of(username: &str) -> WindowReport {
    WindowReport {
        emergency_id: "em1".into(),
        user_id: "u1".into(),
        username: username.into(),
        reason: "Cardiac arrest in bed 4, need history".into(),
        context: Some("Patient 123".into()),
        requested_by: Some("ehr-client".into()),
        started_at: at(),
        expires_at: at() + chrono::Duration::minutes(60),
        ended_at: None,
        end_reason: None,
    }
}

#[test]
fn an_emergency_alert_says_who_when_why_until_when_and_where_to_review() {
    let mail = every_notice("St Mary's")[10].render(&issuer(), &en());
    assert_eq!(mail.subject, "[Gatehouse] Emergency access by vera");
    for part in [
        "vera",
        "24 Nov 2026, 10:15 UTC",
        "24 Nov 2026, 11:15 UTC",
        "Cardiac arrest in bed 4, need history",
        "Patient 123",
        "ehr-client",
        "https://idp.example.org/gatehouse/admin/emergency",
    ] {
        assert!(mail.text.contains(part), "{part}: {}", mail.text);
        assert!(mail.html.contains(part), "{part}: {}", mail.html);
    }
    let ended = every_notice("St Mary's")[11].render(&issuer(), &en());
    assert!(ended.text.contains("its time ran out"), "{}", ended.text);
    let overdue = every_notice("St Mary's")[12].render(&issuer(), &en());
    assert_eq!(
        overdue.subject,
        "[Gatehouse] 2 emergency access reviews overdue in St Mary's"
    );
    assert_eq!(overdue.text.matches("Cardiac arrest").count(), 2);
}

#[test]
fn a_reason_cannot_break_an_emergency_mail_or_its_subject() {
    let w = WindowReport {
        username: "vera\r\nBcc: x@example.org".into(),
        reason: format!("{EVIL}\r\nReview at: https://evil.example"),
        ..window()
    };
    let mail = Notice::SupportAlert {
        org: "x".into(),
        alert: Alert::EmergencyStarted(w),
    }
    .render(&issuer(), &en());
    assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(
        !mail.text.lines().any(|l| l.starts_with("Review at:")),
        "{}",
        mail.text
    );
}

#[test]
fn emergency_webhooks_carry_the_window() {
    let (event, body) = Alert::EmergencyStarted(window()).webhook_event("stmarys");
    assert_eq!(event, "emergency.started");
    assert_eq!(body["org"], "stmarys");
    assert_eq!(body["context"], "Patient 123");
    assert_eq!(body["expires_at"], "2026-11-24T11:15:00+00:00");
    let (event, body) = Alert::EmergencyEnded(window()).webhook_event("stmarys");
    assert_eq!(event, "emergency.ended");
    assert!(body["ended_at"].is_null() && body.get("reason").is_none());
}

#[test]
fn every_template_renders_text_and_html() {
    for notice in every_notice("Vera Lynn") {
        let mail = notice.render(&issuer(), &en());
        assert!(!mail.subject.is_empty(), "{notice:?}");
        assert!(mail.text.contains("Vera Lynn"), "{notice:?}: {}", mail.text);
        assert!(mail.html.contains("Vera Lynn"), "{notice:?}: {}", mail.html);
        assert!(mail.html.starts_with("<!doctype html>"), "{notice:?}");
        // Every mail points somewhere under the issuer, and nowhere else.
        assert!(
            mail.text.contains("https://idp.example.org/gatehouse/"),
            "{notice:?}: {}",
            mail.text
        );
    }
}

#[test]
fn html_escapes_what_people_typed_and_text_keeps_it_readable() {
    for notice in every_notice(EVIL) {
        let mail = notice.render(&issuer(), &en());
        assert!(!mail.html.contains("<script>"), "{notice:?}: {}", mail.html);
        // askama writes numeric references; either spelling is escaped.
        assert!(
            mail.html.contains("&#60;script&#62;") || mail.html.contains("&lt;script&gt;"),
            "{notice:?}: {}",
            mail.html
        );
        assert!(mail.text.contains(EVIL), "{notice:?}: {}", mail.text);
    }
}

#[test]
fn reset_and_invitation_links_are_built_on_the_issuer() {
    let mail = every_notice("Vera")[0].render(&issuer(), &en());
    let link = "https://idp.example.org/gatehouse/reset/tok_Abc-123_xyz";
    assert!(mail.text.contains(link), "{}", mail.text);
    assert!(
        mail.html.contains(&format!("href=\"{link}\"")),
        "{}",
        mail.html
    );
    assert!(
        mail.text.contains("24 Nov 2026, 10:15 UTC"),
        "{}",
        mail.text
    );

    let mail =
        every_notice("Vera")[2].render(&Url::parse("https://sso.example.org").unwrap(), &en());
    assert!(
        mail.text
            .contains("https://sso.example.org/invite/tok_Abc-123_xyz"),
        "{}",
        mail.text
    );
}

#[test]
fn subjects_never_break_a_header_line() {
    let mail = Notice::SupportAlert {
        org: "x".into(),
        alert: Alert::AccountLocked {
            username: "vera\r\nBcc: x@example.org".into(),
            until: None,
            ip: None,
        },
    }
    .render(&issuer(), &en());
    assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
}

#[test]
fn permanent_locks_say_who_can_lift_them() {
    let mail = every_notice("Vera")[5].render(&issuer(), &en());
    assert!(mail.text.contains("administrator"), "{}", mail.text);
    let mail = every_notice("Vera")[4].render(&issuer(), &en());
    assert!(mail.text.contains("203.0.113.7"), "{}", mail.text);
}

#[test]
fn mails_and_their_debug_form_hold_no_token_outside_the_link() {
    let notice = &every_notice("Vera")[0];
    assert!(!format!("{notice:?}").contains("tok_Abc"));
    let mail = notice.render(&issuer(), &en());
    assert!(!format!("{mail:?}").contains("tok_Abc"));
    assert_eq!(mail.text.matches("tok_Abc").count(), 1, "{}", mail.text);
}

#[test]
fn alerts_become_webhook_events() {
    let (event, body) = Alert::IpBlocked {
        address: "198.51.100.4".into(),
        until: at(),
        block_count: 1,
    }
    .webhook_event("default");
    assert_eq!(event, "ip.blocked");
    assert_eq!(body["address"], "198.51.100.4");
    let (event, body) = Alert::AccountLocked {
        username: "vera".into(),
        until: None,
        ip: None,
    }
    .webhook_event("default");
    assert_eq!(event, "account.locked");
    assert_eq!(body["permanent"], true);
}

#[test]
fn passkey_notices_name_the_passkey_and_who_removed_it() {
    let added = every_notice("Ward laptop")[13].render(&issuer(), &en());
    assert_eq!(added.subject, "A passkey was added to your account");
    assert!(added.text.contains("\"Ward laptop\"") && added.text.contains("203.0.113.7"));
    assert!(
        added
            .text
            .contains("https://idp.example.org/gatehouse/account")
    );
    let removed = every_notice("Ward laptop")[14].render(&issuer(), &en());
    assert_eq!(removed.subject, "A passkey was removed from your account");
    assert!(
        removed.text.contains("by an administrator"),
        "{}",
        removed.text
    );
    assert!(removed.text.contains("recovery code"));
    let renamed = every_notice("Ward laptop")[15].render(&issuer(), &en());
    assert_eq!(renamed.subject, "A passkey of your account was renamed");
    assert!(renamed.text.contains("\"Old laptop\"") && renamed.text.contains("\"Ward laptop\""));
}

/// The English words of every mail string: the text between its arguments, where long
/// enough to be a phrase of its own.
fn english_phrases() -> Vec<&'static str> {
    include_str!("../../../locales/en/mail.ftl")
        .lines()
        .filter_map(|l| l.strip_prefix("mail-")?.split_once(" = ").map(|(_, v)| v))
        .flat_map(|v| v.split(['{', '}']))
        .filter(|piece| !piece.contains('$') && !piece.contains("->"))
        .map(str::trim)
        .filter(|piece| piece.len() >= 10)
        .collect()
}

#[test]
fn every_notice_speaks_spanish_with_no_english_left() {
    let phrases = english_phrases();
    assert!(phrases.len() > 50, "{phrases:?}");
    let (english, spanish) = (en(), es(None));
    for notice in every_notice("Vera Lynn") {
        let (en_mail, es_mail) = (
            notice.render(&issuer(), &english),
            notice.render(&issuer(), &spanish),
        );
        assert_ne!(en_mail.subject, es_mail.subject, "{notice:?}");
        assert_ne!(en_mail.text, es_mail.text, "{notice:?}");
        assert!(
            es_mail.html.contains("<html lang=\"es-419\">"),
            "{notice:?}"
        );
        assert!(en_mail.html.contains("<html lang=\"en\">"), "{notice:?}");
        for body in [&es_mail.subject, &es_mail.text, &es_mail.html] {
            for phrase in &phrases {
                assert!(!body.contains(phrase), "{notice:?}: {phrase:?} in {body}");
            }
            for word in [
                "Hello",
                " the ",
                " your ",
                " was ",
                " has ",
                "emergency access",
            ] {
                assert!(!body.contains(word), "{notice:?}: {word:?} in {body}");
            }
        }
        for body in [&es_mail.text, &es_mail.html] {
            assert!(body.contains("mensaje automático"), "{notice:?}: {body}");
            assert!(body.contains("Vera Lynn"), "{notice:?}: {body}");
            assert!(
                body.contains("https://idp.example.org/gatehouse/"),
                "{notice:?}: {body}"
            );
        }
        if notice.addressee().is_some() {
            assert!(
                es_mail.text.starts_with("Hola, Vera Lynn:"),
                "{}",
                es_mail.text
            );
        } else {
            assert!(
                es_mail.subject.starts_with("[Gatehouse] "),
                "{}",
                es_mail.subject
            );
            assert!(
                es_mail.text.contains("consola de administración"),
                "{}",
                es_mail.text
            );
        }
    }
}

#[test]
fn spanish_mails_say_what_happened_in_spanish() {
    let spanish = es(None);
    let notices = every_notice("Vera Lynn");
    let mail = |i: usize| notices[i].render(&issuer(), &spanish);
    assert_eq!(mail(0).subject, "Restablezca su contraseña");
    assert!(
        mail(0).text.contains("su cuenta “vera”"),
        "{}",
        mail(0).text
    );
    assert!(
        mail(2)
            .text
            .contains("Se creó una cuenta para usted en St Mary's")
    );
    assert!(mail(5).text.contains("un administrador o su mesa de ayuda"));
    assert!(mail(8).text.contains("verificación en dos pasos"));
    assert!(
        mail(9)
            .text
            .contains("Un administrador quitó la verificación")
    );
    assert!(
        mail(10).text.contains("rompió el cristal"),
        "{}",
        mail(10).text
    );
    assert!(
        mail(11).text.contains("se agotó su tiempo"),
        "{}",
        mail(11).text
    );
    assert!(mail(13).text.contains("llave de acceso"));
    assert!(mail(14).text.contains("código de recuperación"));
    assert!(mail(14).html.contains("Abrir mi cuenta"));
}

#[test]
fn dates_are_in_the_readers_time_zone() {
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 14, 5, 0).unwrap();
    let notice = Notice::PasswordChanged {
        name: "Vera".into(),
        username: "vera".into(),
        at,
        ip: None,
    };
    let bogota = notice.render(&issuer(), &es(Some("America/Bogota")));
    for body in [&bogota.text, &bogota.html] {
        // The month's name is common.ftl's (`dic`); the hour and zone are Bogotá's.
        assert!(
            body.contains("el 7 ") && body.contains(" 2026, 09:05 -05"),
            "{body}"
        );
        assert!(!body.contains("14:05"), "{body}");
    }
    let utc = notice.render(&issuer(), &en());
    assert!(
        utc.text.contains("on 7 Dec 2026, 14:05 UTC."),
        "{}",
        utc.text
    );

    let alert = every_notice("St Mary's")[10].render(&issuer(), &es(Some("America/Bogota")));
    assert!(alert.text.contains("2026, 05:15 -05"), "{}", alert.text);
    assert!(alert.text.contains("2026, 06:15 -05"), "{}", alert.text);
}

#[test]
fn html_escapes_a_hostile_username_in_both_languages() {
    for tr in [en(), es(None)] {
        for notice in every_notice_as(EVIL, EVIL) {
            let mail = notice.render(&issuer(), &tr);
            assert!(!mail.html.contains("<script>"), "{notice:?}: {}", mail.html);
            assert!(
                mail.html.contains("&#60;script&#62;") || mail.html.contains("&lt;script&gt;"),
                "{notice:?}: {}",
                mail.html
            );
            assert!(mail.text.contains(EVIL), "{notice:?}: {}", mail.text);
            assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
        }
        // The username itself, not only the name, reaches the mail escaped.
        let mail = every_notice_as("Vera", EVIL)[0].render(&issuer(), &tr);
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(mail.text.contains(EVIL), "{}", mail.text);
    }
}

#[test]
fn overdue_reviews_and_hours_are_counted_in_each_language() {
    let overdue = |reviews: usize, hours: u32| Notice::EmergencyOverdue {
        org: "St Mary's".into(),
        overdue_hours: hours,
        reviews: vec![window(); reviews],
    };
    let one = overdue(1, 1).render(&issuer(), &en());
    assert_eq!(
        one.subject,
        "[Gatehouse] 1 emergency access review overdue in St Mary's"
    );
    assert!(one.text.contains("for more than 1 hour:"), "{}", one.text);
    let many = overdue(3, 72).render(&issuer(), &en());
    assert!(
        many.text.contains("for more than 72 hours:"),
        "{}",
        many.text
    );

    let uno = overdue(1, 1).render(&issuer(), &es(None));
    assert_eq!(
        uno.subject,
        "[Gatehouse] 1 revisión de acceso de emergencia vencida en St Mary's"
    );
    assert!(
        uno.text.contains("más de 1 hora a la espera"),
        "{}",
        uno.text
    );
    let varias = overdue(3, 72).render(&issuer(), &es(None));
    assert_eq!(
        varias.subject,
        "[Gatehouse] 3 revisiones de acceso de emergencia vencidas en St Mary's"
    );
    assert!(
        varias.text.contains("más de 72 horas a la espera"),
        "{}",
        varias.text
    );
    assert_eq!(varias.text.matches("Cardiac arrest").count(), 3);
}
