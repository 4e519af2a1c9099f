use super::*;

#[test]
fn backoff_doubles_from_ten_seconds_and_stops_at_an_hour() {
    let secs: Vec<i64> = (1..=11).map(|n| backoff(n).num_seconds()).collect();
    assert_eq!(
        secs,
        vec![10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    );
    assert_eq!(backoff(0).num_seconds(), 10);
    assert_eq!(backoff(i32::MAX).num_seconds(), 3600);
}

#[test]
fn errors_never_keep_the_recipient_in_clear() {
    assert_eq!(
        without(
            "550 <Pat.Doe@Example.org>: no such user; pat.doe@example.org",
            "pat.doe@example.org"
        ),
        "550 <<recipient>>: no such user; <recipient>"
    );
    assert_eq!(without("timed out", "pat@example.org"), "timed out");
    assert!(!without("İ pat@example.org", "pat@example.org").contains("pat@"));
}

/// Says when 14:05 UTC is for `tr`: its language shows in the sentence around it,
/// its time zone in the hour.
fn reads(tr: &Tr) -> (String, String) {
    let at = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 7, 14, 5, 0).unwrap();
    let datetime = tr.datetime(at);
    let time = datetime.split(", ").nth(1).unwrap_or_default().to_owned();
    (tr.lang(), time)
}

fn org_policy(language: Option<&str>, time_zone: Option<&str>) -> OrgPolicy {
    OrgPolicy {
        language: language.map(str::to_owned),
        time_zone: time_zone.map(str::to_owned),
        ..OrgPolicy::default()
    }
}

#[test]
fn a_reader_is_the_person_then_the_organisation_then_english() {
    let mine = |language: Option<&str>, time_zone: Option<&str>| Preferences {
        language: language.map(str::to_owned),
        time_zone: time_zone.map(str::to_owned),
    };
    let tr = |own: Preferences, org: OrgPolicy| reads(&reader_wishes(&own, &org).tr());
    let org = org_policy(Some("es-419"), Some("America/Bogota"));
    let utc = ("en".to_owned(), "14:05 UTC".to_owned());
    let bogota = |lang: &str| (lang.to_owned(), "09:05 -05".to_owned());
    assert_eq!(tr(mine(None, None), OrgPolicy::default()), utc);
    assert_eq!(tr(mine(None, None), org.clone()), bogota("es-419"));
    assert_eq!(tr(mine(Some("en"), None), org.clone()), bogota("en"));
    assert_eq!(
        tr(
            mine(Some("es"), Some("Europe/London")),
            OrgPolicy::default()
        ),
        ("es-419".to_owned(), "14:05 GMT".to_owned())
    );
    // A setting Gatehouse cannot honour gives way to the next, not to a default.
    assert_eq!(
        tr(mine(Some("fr"), Some("Mars/Olympus")), org.clone()),
        bogota("es-419")
    );
    assert_eq!(reads(&organisation_reader(&org)), bogota("es-419"));
    assert_eq!(reads(&organisation_reader(&OrgPolicy::default())), utc);
}

fn org_of(c: &mut DbConnection, user_id: &str) -> Result<String, StoreError> {
    let pii = crate::store::testing::pii();
    let user = crate::store::users::find_by_id(c, &pii, user_id)?;
    Ok(user.ok_or(StoreError::NotFound)?.org_id)
}

#[tokio::test]
async fn reader_reads_the_persons_and_the_organisations_settings() {
    use crate::store::testing;
    let dir = tempfile::tempdir().unwrap();
    let store = testing::sqlite(&dir, 2).await;
    let vera = testing::with_user(&store, None).await;
    let reader_of = |store: &Store, vera: &str| {
        let (store, vera) = (store.clone(), vera.to_owned());
        async move {
            store
                .run(move |c| {
                    let org = org_of(c, &vera)?;
                    reader(c, &vera, &org)
                })
                .await
                .map(|tr| reads(&tr))
                .unwrap()
        }
    };
    assert_eq!(
        reader_of(&store, &vera).await,
        ("en".to_owned(), "14:05 UTC".to_owned()),
        "nobody chose: English and UTC"
    );

    let v = vera.clone();
    store
        .transaction(move |c| {
            let org = org_of(c, &v)?;
            orgs::set_policy(
                c,
                &org,
                &org_policy(Some("es-419"), Some("America/Bogota")),
                testing::t0(),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        reader_of(&store, &vera).await,
        ("es-419".to_owned(), "09:05 -05".to_owned()),
        "the organisation's defaults"
    );

    let v = vera.clone();
    store
        .transaction(move |c| {
            let own = Preferences {
                language: Some("en".into()),
                time_zone: None,
            };
            preferences::save(c, &v, &own, testing::t0())
        })
        .await
        .unwrap();
    assert_eq!(
        reader_of(&store, &vera).await,
        ("en".to_owned(), "09:05 -05".to_owned()),
        "her language, the organisation's time zone"
    );
}

#[test]
fn stored_errors_are_one_bounded_line() {
    let long = format!("550 no\r\nsuch {}", "x".repeat(2000));
    let stored = truncate(&long);
    assert!(!stored.contains(['\r', '\n']));
    assert!(stored.chars().count() <= MAX_ERROR_LEN + 1);
}
