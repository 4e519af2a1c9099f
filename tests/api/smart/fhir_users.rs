//! Users' FHIR identities (`fhirUser`) as administrators set them: the admin API, the
//! command line and the console, each change audited.

use super::*;

#[tokio::test]
async fn administrators_set_list_and_clear_a_users_fhir_identity_with_each_change_audited() {
    let s = Smart::new().await;
    let list = |user: &'static str| {
        let path = format!("/admin/api/v1/users/{}/fhir-users", s.users[user]);
        let (http, token, url) = (rp_http(), s.admin.clone(), s.app.url(&path));
        async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        list("drsmith").await,
        json!([{"fhir_server": s.fhir_server, "base_url": FHIR, "fhir_user": "Practitioner/dr-7"}])
    );
    // Replaced, not added.
    s.set_fhir_user("drsmith", " Practitioner/dr-8 ").await;
    assert_eq!(list("drsmith").await[0]["fhir_user"], "Practitioner/dr-8");
    for bad in [
        "Observation/1",
        "Practitioner/",
        "Practitioner/a b",
        "dr-8",
        "",
    ] {
        let res = s.put_fhir_user("drsmith", bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("fhir_user"),
            "{body}"
        );
    }
    let no_server = format!(
        "/admin/api/v1/users/{}/fhir-users/no-such-server",
        s.users["drsmith"]
    );
    let res = rp_http()
        .put(s.app.url(&no_server))
        .bearer_auth(&s.admin)
        .json(&json!({"fhir_user": "Practitioner/1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let one = format!(
        "/admin/api/v1/users/{}/fhir-users/{}",
        s.users["drsmith"], s.fhir_server
    );
    let res = rp_http()
        .delete(s.app.url(&one))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["fhir_user"],
        "Practitioner/dr-8"
    );
    assert_eq!(list("drsmith").await, json!([]));
    let again = rp_http()
        .delete(s.app.url(&one))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // Without a FHIR identity the app's token says nothing of one.
    let (browser, _) = s.ehr_session("drsmith").await;
    let tokens = s
        .tokens(&browser, "openid fhirUser patient/*.rs", &[("aud", FHIR)])
        .await;
    assert!(claims_of(tokens["id_token"].as_str().unwrap())["fhirUser"].is_null());

    let set = crate::admin::audit_events(&s.app, EventType::FhirUserSet).await;
    assert_eq!(set.len(), 3, "two at set-up, one replacement");
    assert_eq!(set[0].details["fhir_user"], "Practitioner/dr-8");
    assert_eq!(set[0].subject.as_deref(), Some(s.users["drsmith"].as_str()));
    let cleared = crate::admin::audit_events(&s.app, EventType::FhirUserCleared).await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].details["base_url"], FHIR);
}

#[tokio::test]
async fn the_command_line_and_the_console_set_and_clear_a_fhir_identity() {
    use crate::cli::gatehouse;
    use gatehouse::domain::{MfaPolicy, Role};
    // The command line shares the server's database: the embedded one, in its data
    // directory, with its master key.
    let s = Smart::with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    let dir = s.app.data_dir.path();
    let run = |args: &[&str]| {
        let out = gatehouse(dir).args(args).arg("--json").output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let set = run(&[
        "fhir-server",
        "set-user",
        "pat",
        &format!("{FHIR}/"),
        "RelatedPerson/rp-1",
    ]);
    assert_eq!(set[0]["fhir_user"], "RelatedPerson/rp-1");
    assert_eq!(run(&["fhir-server", "users", "pat"])[0]["base_url"], FHIR);
    run(&["fhir-server", "clear-user", "pat", FHIR]);
    assert_eq!(run(&["fhir-server", "users", "pat"]), json!([]));
    let bad = gatehouse(dir)
        .args(["fhir-server", "set-user", "pat", FHIR, "Encounter/1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    crate::helpers::change_default_policy(&s.app, |p| p.mfa = MfaPolicy::Off).await;
    crate::helpers::create_user_with_role(&s.app, "root", "Quiet-Harbour-42", Role::SuperAdmin)
        .await;
    let root = s.app.new_client();
    assert_eq!(
        s.app
            .sign_in(&root, "root", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
    let page_path = format!("/admin/users/{}", s.users["pat"]);
    let html = s.app.page(&root, &page_path).await;
    assert!(html.contains("no-fhir-users"), "{html}");
    let csrf = crate::helpers::hidden(&html, "csrf");
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/set", s.users["pat"]),
            &[
                ("csrf", &csrf),
                ("server", FHIR),
                ("fhir_user", "Patient/p-43"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = s.app.page(&root, &page_path).await;
    assert!(html.contains("Patient/p-43"), "{html}");
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/set", s.users["pat"]),
            &[("csrf", &csrf), ("server", FHIR), ("fhir_user", "<script>")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/clear", s.users["pat"]),
            &[("csrf", &csrf), ("server", &s.fhir_server)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        s.app
            .page(&root, &page_path)
            .await
            .contains("no-fhir-users")
    );
}
