//! An organisation's branding from the admin console (issue 31): the form, the logo's
//! multipart upload and its removal behind a confirmation, each refused with a page that
//! names what is wrong and changes nothing; a role that may only read sees it read-only;
//! another organisation's administrator gets 404. And in a real browser, a file chosen in
//! the page's file input.

use reqwest::StatusCode;
use serde_json::Value;

use gatehouse::{
    audit::EventType,
    domain::{MfaPolicy, OrgName, OrgPolicy, Role},
    store::orgs,
};

use crate::{
    admin::audit_events,
    branding::PNG,
    browser::{Browser, sign_in},
    helpers::{TestApp, create_user_in, hidden, skip, spawn_app},
    oidc::{admin_token, rp_http},
};

const PASSWORD: &str = "Branded-Console-Battery-5";

/// Organisations `sanrafael` and `northside` (no MFA asked), an administrator of each
/// and a support agent of `sanrafael`.
struct Console {
    app: TestApp,
    token: String,
    /// `sanrafael`'s id and `northside`'s.
    org: String,
    other_org: String,
}

impl Console {
    async fn new() -> Self {
        let app = spawn_app().await;
        let token = admin_token(&app).await;
        let policy = OrgPolicy {
            mfa: MfaPolicy::Off,
            ..OrgPolicy::default()
        };
        let now = chrono::Utc::now().naive_utc();
        let (org, other_org) = app
            .state
            .store
            .run(move |c| {
                let name = |n: &str| OrgName::parse(n).unwrap();
                let a = orgs::insert(c, &name("sanrafael"), "San Rafael", &policy, now)?;
                let b = orgs::insert(c, &name("northside"), "Northside", &policy, now)?;
                Ok((a.id, b.id))
            })
            .await
            .unwrap();
        for (org, name, role) in [
            ("sanrafael", "ora", Role::OrgAdmin),
            ("sanrafael", "sam", Role::Support),
            ("northside", "nat", Role::OrgAdmin),
        ] {
            create_user_in(&app, org, name, PASSWORD, role).await;
        }
        Self {
            app,
            token,
            org,
            other_org,
        }
    }

    /// A browser signed in as `username`, and the console's CSRF token.
    async fn admin(&self, username: &str) -> (reqwest::Client, String) {
        let client = self.app.new_client();
        let res = self.app.sign_in(&client, username, PASSWORD).await;
        assert_eq!(res.status(), 303);
        let html = self.app.page(&client, "/admin").await;
        (client, hidden(&html, "csrf"))
    }

    fn page_path(&self) -> String {
        format!("/admin/orgs/{}/branding", self.org)
    }

    /// The admin API's view: `branding` (the document) and `logo`.
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

    async fn save(&self, client: &reqwest::Client, form: &[(&str, &str)]) -> reqwest::Response {
        let path = self.page_path();
        self.app.post_form(client, &path, form).await
    }

    /// Posts `parts` as `multipart/form-data` to the logo's form.
    async fn upload(&self, client: &reqwest::Client, parts: &[Part<'_>]) -> reqwest::Response {
        self.try_upload(client, parts).await.unwrap()
    }

    /// As `upload`; the server may also close the connection before the body is sent.
    async fn try_upload(
        &self,
        client: &reqwest::Client,
        parts: &[Part<'_>],
    ) -> reqwest::Result<reqwest::Response> {
        let boundary = "gatehouse-test-boundary-7MA4YWxk";
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = match part.file {
                Some((file_name, content_type)) => format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: {content_type}\r\n",
                    part.name
                ),
                None => format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(&part.bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        client
            .post(self.app.url(&format!("/admin/orgs/{}/logo", self.org)))
            .header("Origin", &self.app.base)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
    }

    /// `client`'s branding form and logo upload, with its own CSRF token, both get
    /// `status`.
    async fn both_changes_refused(&self, client: &reqwest::Client, csrf: &str, status: u16) {
        let res = self
            .save(client, &[("csrf", csrf), ("accent", "#000000")])
            .await;
        assert_eq!(res.status(), status, "the form");
        let parts = [field("csrf", csrf), file("logo", "image/png", PNG.to_vec())];
        assert_eq!(
            self.upload(client, &parts).await.status(),
            status,
            "the logo"
        );
    }

    async fn logo(&self) -> reqwest::Response {
        self.app.get(&format!("/branding/{}/logo", self.org)).await
    }
}

/// One part of a multipart body: a field, or a file with its name and media type.
struct Part<'a> {
    name: &'a str,
    file: Option<(&'a str, &'a str)>,
    bytes: Vec<u8>,
}

fn field<'a>(name: &'a str, value: &str) -> Part<'a> {
    Part {
        name,
        file: None,
        bytes: value.as_bytes().to_vec(),
    }
}

fn file<'a>(name: &'a str, content_type: &'a str, bytes: Vec<u8>) -> Part<'a> {
    Part {
        name,
        file: Some(("logo.png", content_type)),
        bytes,
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_administrator_brands_the_organisation_and_uploads_its_logo_from_the_console() {
    let c = Console::new().await;
    let (ora, csrf) = c.admin("ora").await;
    let org_page = c.app.page(&ora, &format!("/admin/orgs/{}", c.org)).await;
    assert!(
        org_page.contains(&c.page_path()),
        "a link from the org page"
    );
    let html = c.app.page(&ora, &c.page_path()).await;
    assert!(html.contains("form id=\"branding\""), "{html}");
    assert!(html.contains("id=\"no-logo\""), "{html}");

    let res = c
        .save(
            &ora,
            &[
                ("csrf", &csrf),
                ("display_name", "Hospital San Rafael"),
                ("accent", "#7B1FA2"),
                ("accent_dark", ""),
                (
                    "support_text",
                    "Mesa de ayuda <script>alert(1)</script>: 4400",
                ),
                ("apps", "portal\nhttps://sp.example.org/saml  pharmacy"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        format!("{}?done=branding-saved", c.page_path())
    );
    let saved = c.branding().await["branding"].clone();
    assert_eq!(saved["display_name"], "Hospital San Rafael");
    assert_eq!(saved["accent"], "#7b1fa2");
    assert_eq!(saved["accent_dark"], Value::Null);
    assert_eq!(
        saved["apps"],
        serde_json::json!(["portal", "https://sp.example.org/saml", "pharmacy"])
    );
    let html = c
        .app
        .page(&ora, &format!("{}?done=branding-saved", c.page_path()))
        .await;
    assert!(html.contains("id=\"notice\""), "{html}");
    assert!(
        html.contains("&#60;script&#62;") && !html.contains("<script>alert"),
        "escaped: {html}"
    );

    let res = c
        .upload(
            &ora,
            &[
                field("csrf", &csrf),
                file("logo", "image/png", PNG.to_vec()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{}?done=logo-saved", c.page_path()));
    let logo = c.logo().await;
    assert_eq!(logo.status(), StatusCode::OK);
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(logo.bytes().await.unwrap().as_ref(), PNG);
    let html = c.app.page(&ora, &c.page_path()).await;
    assert!(html.contains("id=\"current-logo\""), "{html}");

    // Removing it asks first, then removes it.
    let confirm = c
        .app
        .page(
            &ora,
            &format!("/admin/confirm?action=remove-logo&org={}", c.org),
        )
        .await;
    assert!(confirm.contains("id=\"confirm-title\""), "{confirm}");
    let action = format!("/admin/orgs/{}/logo/remove", c.org);
    assert!(confirm.contains(&action), "{confirm}");
    assert_eq!(c.logo().await.status(), StatusCode::OK, "not yet");
    let res = c.app.post_form(&ora, &action, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(c.logo().await.status(), StatusCode::NOT_FOUND);
    let confirm = ora
        .get(
            c.app
                .url(&format!("/admin/confirm?action=remove-logo&org={}", c.org)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 404, "no logo to remove");

    let changes: Vec<_> = audit_events(&c.app, EventType::AdminChange)
        .await
        .into_iter()
        .filter(|e| e.details["object"] == "organisation_branding")
        .collect();
    assert_eq!(changes.len(), 3, "document, logo, logo removed");
    assert!(changes.iter().all(|e| e.actor.as_deref() != Some("test")));
}

#[tokio::test]
async fn a_bad_branding_form_or_logo_is_refused_with_a_page_naming_it_and_nothing_changes() {
    let c = Console::new().await;
    let (ora, csrf) = c.admin("ora").await;
    let res = c
        .save(
            &ora,
            &[
                ("csrf", &csrf),
                ("display_name", "San Rafael"),
                ("accent", "#0b5cad"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = c
        .upload(
            &ora,
            &[
                field("csrf", &csrf),
                file("logo", "image/png", PNG.to_vec()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let before = c.branding().await;

    for (form, names) in [
        (vec![("accent", "#8ab4f8")], vec!["accent: #8ab4f8 is"]),
        (
            vec![("accent", "red"), ("accent_dark", "#0b5cad")],
            vec!["accent: must be", "accent_dark: #0b5cad is"],
        ),
        (vec![("display_name", "two\nlines")], vec!["display_name"]),
        (
            vec![("support_text", &"y".repeat(501))],
            vec!["support_text"],
        ),
    ] {
        let mut sent = vec![("csrf", csrf.as_str())];
        sent.extend(form.iter().copied());
        let res = c.save(&ora, &sent).await;
        assert_eq!(res.status(), 400, "{form:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"errors\""), "{html}");
        for name in names {
            assert!(html.contains(name), "{form:?} names {name}: {html}");
        }
        // The page gives back what was typed.
        let (_, typed) = form[0];
        if !typed.contains('\n') && typed.len() < 20 {
            assert!(html.contains(&format!("value=\"{typed}\"")), "{html}");
        }
    }

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let mut big = PNG.to_vec();
    big.resize(257 * 1024, 0);
    for (content_type, bytes, error) in [
        ("image/svg+xml", svg, "PNG, JPEG or WebP"),
        ("image/jpeg", PNG.to_vec(), "not the kind of image"),
        (
            "image/png",
            b"<html><script>".to_vec(),
            "not the kind of image",
        ),
        ("text/html", PNG.to_vec(), "PNG, JPEG or WebP"),
        ("image/png", big, "larger than 256 KiB"),
    ] {
        let res = c
            .upload(
                &ora,
                &[field("csrf", &csrf), file("logo", content_type, bytes)],
            )
            .await;
        assert_eq!(res.status(), 400, "{content_type}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("id=\"logo-error\"") && html.contains(error),
            "{content_type}: {html}"
        );
    }
    // Beyond what a logo may be, the body is not read to its end.
    let mut huge = PNG.to_vec();
    huge.resize(4 * 1024 * 1024, 0);
    // It answers 400, or closes the connection before the client has sent it all.
    let res = c
        .try_upload(
            &ora,
            &[field("csrf", &csrf), file("logo", "image/png", huge)],
        )
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 400);
    }
    // Fields it does not know, a second logo, no file, or no multipart at all.
    for parts in [
        vec![
            field("csrf", &csrf),
            file("logo", "image/png", PNG.to_vec()),
            field("display_name", "x"),
        ],
        vec![
            field("csrf", &csrf),
            file("logo", "image/png", PNG.to_vec()),
            file("logo", "image/png", PNG.to_vec()),
        ],
        vec![field("csrf", &csrf)],
    ] {
        let res = c.upload(&ora, &parts).await;
        assert_eq!(res.status(), 400);
    }
    let res = c
        .app
        .post_form(
            &ora,
            &format!("/admin/orgs/{}/logo", c.org),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 400);
    // Without the session's token, or from another site: refused.
    let res = c
        .upload(
            &ora,
            &[
                field("csrf", "forged"),
                file("logo", "image/png", PNG.to_vec()),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = c
        .save(&ora, &[("csrf", "forged"), ("accent", "#000000")])
        .await;
    assert_eq!(res.status(), 403);
    let res = ora
        .post(c.app.url(&c.page_path()))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("accent", "#000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    assert_eq!(c.branding().await, before, "nothing changed");
    assert_eq!(c.logo().await.bytes().await.unwrap().as_ref(), PNG);
}

#[tokio::test]
async fn support_reads_the_branding_and_another_organisations_administrator_gets_404() {
    let c = Console::new().await;
    let (sam, sam_csrf) = c.admin("sam").await;
    let html = c.app.page(&sam, &c.page_path()).await;
    assert!(html.contains("id=\"read-only\""), "{html}");
    assert!(!html.contains("id=\"save-branding\""), "{html}");
    assert!(!html.contains("id=\"logo-upload\""), "{html}");
    c.both_changes_refused(&sam, &sam_csrf, 403).await;

    let (nat, nat_csrf) = c.admin("nat").await;
    let res = nat.get(c.app.url(&c.page_path())).send().await.unwrap();
    assert_eq!(res.status(), 404);
    c.both_changes_refused(&nat, &nat_csrf, 404).await;
    // Nat's own organisation is theirs to brand.
    let own = format!("/admin/orgs/{}/branding", c.other_org);
    assert_eq!(nat.get(c.app.url(&own)).send().await.unwrap().status(), 200);
    assert_eq!(c.branding().await["branding"]["accent"], Value::Null);
    assert_eq!(c.logo().await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn browser_an_administrator_chooses_a_logo_file_and_the_sign_in_page_shows_it() {
    let test = "browser_an_administrator_chooses_a_logo_file_and_the_sign_in_page_shows_it";
    let Some(browser) = Browser::start().await else {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    let c = Console::new().await;
    browser.goto(&c.app.url("/admin")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "ora", PASSWORD).await;
    browser.wait_for("dl#dashboard").await;
    browser
        .goto(&c.app.url(&format!("/admin/orgs/{}", c.org)))
        .await;
    browser.click("a#org-branding").await;
    browser.wait_for("form#branding").await;
    browser
        .fill("form#branding input#display_name", "Hospital San Rafael")
        .await;
    browser.fill("form#branding input#accent", "#7b1fa2").await;
    browser.submit("form#branding button#save-branding").await;
    browser.wait_for("#notice").await;

    let logo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/branding_logo.png");
    let input = browser
        .client()
        .find(fantoccini::Locator::Css("form#logo-upload input#logo"))
        .await
        .unwrap();
    input.send_keys(logo).await.unwrap();
    browser.submit("form#logo-upload button#upload-logo").await;
    browser.wait_for("img#current-logo").await;
    let width = browser
        .client()
        .execute(
            "const img = document.getElementById('current-logo');\
             return img.complete && img.naturalWidth;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(width, 120, "the uploaded logo shows");
    assert_eq!(c.logo().await.bytes().await.unwrap().as_ref(), PNG);
    browser.close().await;
}
