//! Organisations' branding (issue 31): set over the admin API, checked (contrast, size,
//! kind), shown on the sign-in pages of the app or organisation that asks for it, and
//! served under the strict CSP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use gatehouse::{
    audit::EventType,
    domain::{MfaPolicy, OrgName, OrgPolicy},
    oidc::clients::ClientSpec,
    store::orgs,
};

use crate::{
    admin::audit_events,
    helpers::{TestApp, create_user, hidden, spawn_app},
    oidc::{admin_token, register_client, rp_http, sign_in_url},
};

/// A 120×40 purple PNG.
pub const PNG: &[u8] = include_bytes!("branding_logo.png");
const REDIRECT: &str = "https://rp.example.org/callback";
const PASSWORD: &str = "Branded-Horse-Battery-3";

struct Setup {
    app: TestApp,
    token: String,
    /// Organisation `sanrafael`'s id.
    org: String,
}

async fn setup() -> Setup {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let policy = OrgPolicy {
        mfa: MfaPolicy::Off,
        ..OrgPolicy::default()
    };
    let now = chrono::Utc::now().naive_utc();
    let org = app
        .state
        .store
        .run(move |c| {
            let name = OrgName::parse("sanrafael").unwrap();
            Ok(orgs::insert(c, &name, "San Rafael", &policy, now)?.id)
        })
        .await
        .unwrap();
    Setup { app, token, org }
}

impl Setup {
    async fn put_branding(&self, org: &str, body: Value) -> reqwest::Response {
        rp_http()
            .put(self.app.url(&format!("/admin/api/v1/orgs/{org}/branding")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn put_logo(&self, content_type: &str, bytes: Vec<u8>) -> reqwest::Response {
        let org = &self.org;
        rp_http()
            .put(self.app.url(&format!("/admin/api/v1/orgs/{org}/logo")))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    async fn branding(&self) -> Value {
        let org = &self.org;
        rp_http()
            .get(self.app.url(&format!("/admin/api/v1/orgs/{org}/branding")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The sign-in page a browser reaches from `/authorize` for `client_id` with `extra`.
    async fn sign_in_page(&self, client_id: &str, extra: &[(&str, &str)]) -> String {
        let url = sign_in_url(&self.app, client_id, REDIRECT, "openid", extra);
        let browser = self.app.new_client();
        let res = browser.get(url).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        self.app.page(&browser, &location).await
    }
}

async fn client(app: &TestApp, name: &str, allowed_orgs: Option<&[&str]>) -> String {
    let spec = ClientSpec {
        allowed_orgs: allowed_orgs.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
        ..ClientSpec::new(name, &[REDIRECT])
    };
    register_client(app, spec).await.client_id
}

fn branded_by(page: &str, org: &str) -> bool {
    page.contains("id=\"brand\"") && page.contains(&format!("/branding/{org}/"))
}

#[tokio::test]
async fn the_sign_in_pages_of_an_organisations_apps_show_its_branding() {
    let s = setup().await;
    let listed = client(&s.app, "Ward app", None).await;
    let own = client(&s.app, "Clinic portal", Some(&["sanrafael"])).await;
    let other = client(&s.app, "Lab viewer", None).await;
    let res = s
        .put_branding(
            &s.org,
            json!({
                "display_name": "Hospital San Rafael",
                "accent": "#7b1fa2",
                "accent_dark": "#ce93d8",
                "support_text": "Mesa de ayuda: ext. 4400 <script>alert(1)</script>",
                "apps": [listed],
            }),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(s.put_logo("image/png", PNG.to_vec()).await.status(), 200);
    let shown = s.branding().await;
    assert_eq!(shown["branding"]["accent"], "#7b1fa2");
    assert_eq!(shown["logo"]["content_type"], "image/png");
    assert_eq!(shown["logo"]["bytes"], PNG.len());

    // The app the branding lists, the app open to this organisation alone, and any app
    // with the `org` hint: branded. Another app: Gatehouse's own look.
    for (client_id, extra) in [
        (&listed, &[][..]),
        (&own, &[][..]),
        (&other, &[("org", "sanrafael")][..]),
    ] {
        let page = s.sign_in_page(client_id, extra).await;
        assert!(branded_by(&page, &s.org), "{client_id} {extra:?}: {page}");
        assert!(page.contains("id=\"brand-logo\"") && page.contains("alt=\"Hospital San Rafael\""));
        assert!(page.contains(&format!("href=\"/branding/{}/style.css?v=", s.org)));
        assert!(
            page.contains("Mesa de ayuda: ext. 4400 &#60;script&#62;")
                || page.contains("Mesa de ayuda: ext. 4400 &lt;script&gt;"),
            "escaped: {page}"
        );
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("· Hospital San Rafael</title>"));
    }
    for extra in [&[][..], &[("org", "nosuch")][..], &[("org", "../x")][..]] {
        let page = s.sign_in_page(&other, extra).await;
        assert!(!page.contains("id=\"brand\""), "{extra:?}: {page}");
    }

    // The logo and colours, served under a CSP that runs nothing.
    let logo = s.app.get(&format!("/branding/{}/logo", s.org)).await;
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.headers()["x-content-type-options"], "nosniff");
    assert!(
        logo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(logo.bytes().await.unwrap().as_ref(), PNG);
    let css = s
        .app
        .get(&format!("/branding/{}/style.css", s.org))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        css.contains("--accent: #7b1fa2") && css.contains("--accent: #ce93d8"),
        "{css}"
    );
    for path in ["/branding/nosuch/logo", "/branding/..%2F..%2Fetc/logo"] {
        assert_eq!(s.app.get(path).await.status(), 404, "{path}");
    }

    // Removing the logo shows the name instead.
    let org = &s.org;
    let res = rp_http()
        .delete(s.app.url(&format!("/admin/api/v1/orgs/{org}/logo")))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = s.sign_in_page(&listed, &[]).await;
    assert!(
        page.contains("id=\"brand-name\">Hospital San Rafael<"),
        "{page}"
    );
    assert_eq!(
        s.app.get(&format!("/branding/{org}/logo")).await.status(),
        404
    );

    let changes = audit_events(&s.app, EventType::AdminChange).await;
    let branding_changes = changes
        .iter()
        .filter(|e| e.details["object"] == "organisation_branding")
        .count();
    assert_eq!(
        branding_changes, 3,
        "document, logo, logo removed: {changes:?}"
    );
}

#[tokio::test]
async fn the_default_organisations_branding_shows_where_nothing_else_chose_one() {
    let s = setup().await;
    create_user(&s.app, "dora", PASSWORD, false).await;
    let default = s
        .app
        .state
        .store
        .run(|c| {
            Ok(orgs::find_by_name(c, &OrgName::parse("default").unwrap())?
                .unwrap()
                .id)
        })
        .await
        .unwrap();
    let res = s
        .put_branding(
            &default,
            json!({"display_name": "Red de Salud", "support_text": "Soporte 24 h"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let browser = s.app.new_client();
    let reset = s.app.page(&browser, "/reset").await;
    assert!(branded_by(&reset, &default) || reset.contains("id=\"brand-name\">Red de Salud<"));
    let res = s.app.sign_in(&browser, "dora", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let account = s.app.page(&browser, "/account").await;
    assert!(
        account.contains("id=\"brand-name\">Red de Salud<"),
        "{account}"
    );
    assert!(account.contains("id=\"brand-support\"><p>Soporte 24 h</p>"));
    // The sign-in page of an app nobody branded: the default organisation's.
    let other = client(&s.app, "Lab viewer", None).await;
    let page = s.sign_in_page(&other, &[]).await;
    assert!(page.contains("id=\"brand-name\">Red de Salud<"), "{page}");
    assert!(hidden(&page, "csrf").len() > 10, "a sign-in form");
}

#[tokio::test]
async fn branding_that_would_not_be_readable_or_safe_is_refused_and_nothing_changes() {
    let s = setup().await;
    let good = json!({"display_name": "San Rafael", "accent": "#7b1fa2"});
    assert_eq!(s.put_branding(&s.org, good).await.status(), 200);
    assert_eq!(s.put_logo("image/png", PNG.to_vec()).await.status(), 200);
    let before = s.branding().await;

    for (body, names) in [
        (json!({"accent": "#8ab4f8"}), "accent: #8ab4f8 is"),
        (json!({"accent_dark": "#0b5cad"}), "accent_dark"),
        (json!({"accent": "javascript:alert(1)"}), "accent"),
        (json!({"accent": "#7b1fa2; color: red"}), "accent"),
        (json!({"display_name": "two\nlines"}), "display_name"),
        (json!({"display_name": "x".repeat(81)}), "display_name"),
        (json!({"support_text": "y".repeat(501)}), "support_text"),
        (json!({"apps": vec!["a"; 101]}), "apps"),
        (json!({"logo": "data:image/png;base64,AAAA"}), "logo"),
    ] {
        let res = s.put_branding(&s.org, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        let text = res.text().await.unwrap();
        assert!(text.contains(names), "{body}: {text}");
    }
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let mut big = PNG.to_vec();
    big.resize(260 * 1024, 0);
    for (content_type, bytes) in [
        ("image/svg+xml", svg),
        ("image/jpeg", PNG.to_vec()),
        (
            "image/png",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
        ("text/html", PNG.to_vec()),
        ("image/png", big),
        ("image/png", Vec::new()),
    ] {
        let res = s.put_logo(content_type, bytes).await;
        assert_eq!(res.status(), 400, "{content_type}");
        assert!(res.text().await.unwrap().contains("logo"));
    }
    let mut huge = PNG.to_vec();
    huge.resize(2 * 1024 * 1024, 0);
    let res = s.put_logo("image/png", huge).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(s.branding().await, before, "nothing changed");
    let logo = s.app.get(&format!("/branding/{}/logo", s.org)).await;
    assert_eq!(logo.status(), StatusCode::OK);
    assert_eq!(logo.bytes().await.unwrap().as_ref(), PNG);
}

#[tokio::test]
async fn a_persons_mails_carry_their_organisations_name_and_support_words() {
    let sink = crate::mail::SmtpSink::start().await;
    let app = crate::mail::app_mailing_to(&sink).await;
    let token = admin_token(&app).await;
    create_user(&app, "dora", PASSWORD, false).await;
    let default = app
        .state
        .store
        .run(|c| {
            Ok(orgs::find_by_name(c, &OrgName::parse("default").unwrap())?
                .unwrap()
                .id)
        })
        .await
        .unwrap();
    let res = rp_http()
        .put(app.url(&format!("/admin/api/v1/orgs/{default}/branding")))
        .bearer_auth(&token)
        .json(&json!({"display_name": "Red de Salud", "support_text": "Soporte: ext. 24 <b>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let browser = app.new_client();
    let form = app.page(&browser, "/reset").await;
    let res = app
        .post_form(
            &browser,
            "/reset",
            &[("csrf", &hidden(&form, "csrf")), ("login", "dora")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = crate::mail::mail_to(&sink, "dora@example.org", "Reset your password").await;
    assert!(
        text.contains("Soporte: ext. 24 <b>"),
        "the text mail: {text}"
    );
    let html = sink
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_to == ["dora@example.org"])
        .find_map(|m| {
            let parsed = mail_parser::MessageParser::default().parse(&m.data)?;
            Some(parsed.body_html(0)?.into_owned())
        })
        .expect("an HTML part");
    assert!(html.contains("Red de Salud"), "{html}");
    assert!(
        html.contains("ext. 24 &") && !html.contains("ext. 24 <b>"),
        "escaped: {html}"
    );
}
