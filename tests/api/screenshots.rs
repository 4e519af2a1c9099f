//! Two organisations' branded sign-in pages in a real browser (issue 31): each shows its
//! own logo (loaded, not broken), its accent on the button, its support words, and the
//! language asked for; and the console's overview after some activity. With
//! `GATEHOUSE_SCREENSHOTS=DIR` it also saves the pictures the README shows
//! (`docs/screenshots/`):
//!
//! ```text
//! GATEHOUSE_TEST_BROWSER=1 GATEHOUSE_SCREENSHOTS=docs/screenshots \
//!     cargo test --test api screenshots
//! ```

use serde_json::json;

use gatehouse::{
    clock::Clock,
    domain::{MfaPolicy, OrgName, OrgPolicy, Role},
    oidc::clients::ClientSpec,
    store::orgs,
};

use crate::{
    browser::{Browser, sign_in},
    helpers::{TestApp, create_user, create_user_with_role, skip, spawn_app, totp_code},
    oidc::{admin_token, register_client, rp_http, sign_in_url},
};

const REDIRECT: &str = "https://rp.example.org/callback";

/// A 160×48 logo: a white cross on a rounded `colour` square, beside a bar: drawn here,
/// so the repository holds no image it did not make.
fn logo(colour: [u8; 3]) -> Vec<u8> {
    let (w, h) = (160u32, 48u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // no filter
        for x in 0..w {
            let in_square = x < 48;
            let cross = in_square && ((20..28).contains(&x) || (20..28).contains(&y));
            let bar = (60..156).contains(&x) && (18..30).contains(&y);
            let px = match (in_square, cross, bar) {
                (true, true, _) => [255, 255, 255, 255],
                (true, false, _) => [colour[0], colour[1], colour[2], 255],
                (false, _, true) => [colour[0], colour[1], colour[2], 255],
                _ => [0, 0, 0, 0],
            };
            raw.extend_from_slice(&px);
        }
    }
    png(w, h, &raw)
}

fn png(w: u32, h: u32, raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut header = Vec::new();
    header.extend_from_slice(&w.to_be_bytes());
    header.extend_from_slice(&h.to_be_bytes());
    header.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// An organisation `name` with `branding` and a logo in `colour`; its client's id.
async fn branded(
    app: &TestApp,
    token: &str,
    name: &str,
    branding: serde_json::Value,
    colour: [u8; 3],
) -> String {
    let policy = OrgPolicy {
        mfa: MfaPolicy::Off,
        ..OrgPolicy::default()
    };
    let (org_name, now) = (name.to_owned(), chrono::Utc::now().naive_utc());
    let org = app
        .state
        .store
        .run(move |c| {
            let name = OrgName::parse(&org_name).unwrap();
            Ok(orgs::insert(c, &name, &org_name, &policy, now)?.id)
        })
        .await
        .unwrap();
    let spec = ClientSpec {
        allowed_orgs: Some(vec![name.to_owned()]),
        ..ClientSpec::new(&format!("{name} portal"), &[REDIRECT])
    };
    let client = register_client(app, spec).await.client_id;
    let api = |path: &str| app.url(&format!("/admin/api/v1/orgs/{org}/{path}"));
    let res = rp_http()
        .put(api("branding"))
        .bearer_auth(token)
        .json(&branding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = rp_http()
        .put(api("logo"))
        .bearer_auth(token)
        .header("Content-Type", "image/png")
        .body(logo(colour))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    client
}

#[tokio::test]
async fn browser_two_organisations_sign_in_pages_wear_their_own_branding() {
    let test = "browser_two_organisations_sign_in_pages_wear_their_own_branding";
    if !Browser::enabled() {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    }
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let rafael = branded(
        &app,
        &token,
        "sanrafael",
        json!({
            "display_name": "Hospital San Rafael",
            "accent": "#7b1fa2",
            "accent_dark": "#ce93d8",
            "support_text": "¿Necesita ayuda? Mesa de servicio de TI: extensión 4400, las 24 horas.",
        }),
        [0x7b, 0x1f, 0xa2],
    )
    .await;
    let northside = branded(
        &app,
        &token,
        "northside",
        json!({
            "display_name": "Northside Community Clinics",
            "accent": "#00695c",
            "support_text": "Trouble signing in? Call the Northside service desk on 0800 555 0199.",
        }),
        [0x00, 0x69, 0x5c],
    )
    .await;

    for (client_id, lang, page_lang, accent, shot) in [
        (
            &rafael,
            "es-419,es",
            "es-419",
            "rgb(123, 31, 162)",
            "sign-in-san-rafael.png",
        ),
        (
            &northside,
            "en-GB,en",
            "en",
            "rgb(0, 105, 92)",
            "sign-in-northside.png",
        ),
    ] {
        let switch = format!("--accept-lang={lang}");
        let Some(browser) = Browser::start_with(&[switch.as_str()]).await else {
            return;
        };
        browser
            .goto(&sign_in_url(&app, client_id, REDIRECT, "openid", &[]))
            .await;
        browser.wait_for("form#login").await;
        let shown = browser
            .client()
            .execute(
                "const img = document.getElementById('brand-logo');\
                 const button = document.getElementById('sign-in');\
                 return [img.complete && img.naturalWidth, getComputedStyle(button).backgroundColor,\
                 document.documentElement.lang, document.getElementById('brand-support').innerText];",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(shown[0], 160, "{client_id}: the logo loads: {shown}");
        assert_eq!(shown[1], accent, "{client_id}: the accent is on the button");
        assert_eq!(shown[2], page_lang);
        assert!(!shown[3].as_str().unwrap().is_empty());
        if let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOTS") {
            browser
                .screenshot(std::path::Path::new(&dir).join(shot))
                .await;
        }
        browser.close().await;
    }
}

/// The console's overview after a morning's activity, as a super administrator sees it
/// in a real browser: the figures count what happened. With `GATEHOUSE_SCREENSHOTS=DIR`
/// it saves `console-overview.png` there, the README's picture of the console.
#[tokio::test]
async fn browser_the_console_overview_counts_the_days_sign_ins_failures_and_locks() {
    let test = "browser_the_console_overview_counts_the_days_sign_ins_failures_and_locks";
    let Some(browser) = Browser::start_with(&["--accept-lang=en-GB,en"]).await else {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    };
    const PASSWORD: &str = "Overview-Horse-Battery-7";
    let app = spawn_app().await;
    create_user_with_role(&app, "ada", PASSWORD, Role::SuperAdmin).await;
    for name in ["olga", "ben", "mia", "tom", "lou"] {
        create_user(&app, name, PASSWORD, false).await;
    }
    // Three people sign in; Tom mistypes twice; Lou's five failures lock him out.
    for name in ["olga", "ben", "mia"] {
        let res = app.sign_in(&app.new_client(), name, PASSWORD).await;
        assert_eq!(res.status(), 303);
    }
    let wrong = [("tom", 2), ("lou", 5)];
    for (name, times) in wrong {
        for _ in 0..times {
            let res = app
                .sign_in(&app.new_client(), name, "not-the-password")
                .await;
            assert_eq!(res.status(), 401, "{name}: the sign-in page again");
        }
    }

    // Ada's first sign-in enrols her second factor; then the console opens on the overview.
    browser.goto(&app.url("/admin")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "ada", PASSWORD).await;
    browser.wait_for("form#totp-enrol").await;
    let secret = browser.text("#totp-secret").await;
    let code = totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#totp-enrol input#code", &code).await;
    browser.submit("form#totp-enrol button#confirm-totp").await;
    browser.wait_for("#recovery-codes").await;
    browser.submit("form#continue button#continue-button").await;
    browser.wait_for("dl#dashboard").await;
    assert_eq!(browser.text("h1").await, "Overview");
    let figure = |id: &'static str| {
        let browser = &browser;
        async move {
            browser
                .text(&format!("dd#{id}"))
                .await
                .parse::<i64>()
                .unwrap()
        }
    };
    // Ada's own sign-in counts too.
    assert_eq!(figure("dash-sign-ins").await, 4);
    assert_eq!(figure("dash-failures").await, 7);
    assert_eq!(figure("dash-locked").await, 1);
    if let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOTS") {
        browser
            .screenshot(std::path::Path::new(&dir).join("console-overview.png"))
            .await;
    }
    browser.close().await;
}
