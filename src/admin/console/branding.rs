//! An organisation's branding in the console (issue 31): its name, colours, support words
//! and the apps it brands on one form, its logo uploaded from a file (multipart, no
//! script), all through the admin service, as for the API and the CLI.

use actix_multipart::form::{MultipartForm, bytes::Bytes as FilePart, text::Text};

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::domain::{Branding, Colour, Logo, LogoKind};
use crate::store::branding::Stored;

/// The branding form as typed: every field a string, so a refused form comes back as it
/// was sent.
#[derive(Deserialize, Default)]
pub(super) struct BrandingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    accent: String,
    #[serde(default)]
    accent_dark: String,
    #[serde(default)]
    support_text: String,
    /// Client ids and SP entity IDs, one per line or separated by spaces.
    #[serde(default)]
    apps: String,
}

impl BrandingForm {
    fn from_branding(b: &Branding) -> Self {
        let colour = |c: Option<Colour>| c.map(|c| c.to_string()).unwrap_or_default();
        Self {
            csrf: String::new(),
            display_name: b.display_name.clone().unwrap_or_default(),
            accent: colour(b.accent),
            accent_dark: colour(b.accent_dark),
            support_text: b.support_text.clone().unwrap_or_default(),
            apps: b.apps.join("\n"),
        }
    }

    /// The branding the form asks for, or every field that is wrong. An empty field is
    /// unset.
    fn parse(&self, tr: &Tr) -> Result<Branding, Vec<String>> {
        let mut errors = FieldErrors::new(tr);
        let text = |raw: &str| Some(raw.trim().to_owned()).filter(|t| !t.is_empty());
        let mut colour = |field: &str, raw: &str| match raw.trim() {
            "" => None,
            raw => Colour::parse(raw)
                .inspect_err(|_| errors.push(Id("console-colour-invalid"), field))
                .ok(),
        };
        let branding = Branding {
            accent: colour("accent", &self.accent),
            accent_dark: colour("accent_dark", &self.accent_dark),
            display_name: text(&self.display_name),
            support_text: text(&self.support_text),
            apps: self.apps.split_whitespace().map(str::to_owned).collect(),
        };
        let mut said = errors.said;
        if let Err(problems) = branding.validate() {
            said.extend(problems);
        }
        if said.is_empty() {
            Ok(branding)
        } else {
            Err(said)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/branding.html")]
struct BrandingPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    org: OrgRow,
    form: BrandingForm,
    /// The logo's media type and size, when there is one.
    logo: Option<(&'static str, usize)>,
    can_manage: bool,
    /// What is wrong with the branding form, or with the logo sent.
    errors: Vec<String>,
    logo_error: Option<String>,
}

impl BrandingPage {
    fn new(console: &Console, org: OrgRow, stored: &Stored) -> Self {
        Self {
            nav: console.nav(),
            tr: console.tr(),
            notice: None,
            form: BrandingForm::from_branding(&stored.branding),
            logo: stored
                .logo
                .as_ref()
                .map(|l| (l.kind.content_type(), l.bytes.len())),
            can_manage: console.who.require(Action::Manage).is_ok(),
            errors: Vec::new(),
            logo_error: None,
            org,
        }
    }

    /// The logo's size, as the page says it.
    fn logo_size(&self) -> String {
        self.logo
            .map(|(_, bytes)| format!("{:.1} KiB", bytes as f64 / 1024.0))
            .unwrap_or_default()
    }
}

/// The branding page of the organisation `id`, for an administrator who may see it.
async fn page(
    visit: &Visit,
    console: &Console,
    id: &str,
    action: Action,
) -> Result<BrandingPage, AppError> {
    let tr = console.tr();
    let org = org_service::find(&visit.state, &console.who, action, id)
        .await
        .said(&tr)?;
    let stored = org_service::branding(&visit.state, &org).await.said(&tr)?;
    Ok(BrandingPage::new(console, org, &stored))
}

#[get("/admin/orgs/{id}/branding")]
pub(super) async fn branding_page(
    path: Path<String>,
    query: Query<DoneQuery>,
    visit: Visit,
) -> Answer {
    let console = inside!(visit.enter().await?);
    let mut page = page(&visit, &console, &path, Action::Read).await?;
    page.notice = notice(&page.tr, query.done.as_deref());
    Ok(render(&page, StatusCode::OK))
}

#[post("/admin/orgs/{id}/branding")]
pub(super) async fn save_branding(
    path: Path<String>,
    form: Form<BrandingForm>,
    visit: Visit,
) -> Answer {
    let form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let mut page = page(&visit, &console, &path, Action::Manage).await?;
    let branding = match form.parse(&page.tr) {
        Ok(b) => b,
        Err(errors) => {
            page.form = form;
            page.errors = errors;
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    org_service::set_branding(visit.by(&console), &page.org, branding)
        .await
        .said(&page.tr)?;
    Ok(see_other(&format!(
        "/admin/orgs/{}/branding?done=branding-saved",
        page.org.id
    )))
}

/// The logo form: the session's CSRF token and one image file.
#[derive(MultipartForm)]
#[multipart(deny_unknown_fields, duplicate_field = "deny")]
pub(super) struct LogoUpload {
    csrf: Text<String>,
    /// A little more than a logo may be is read, so the page can say it is too large.
    #[multipart(limit = "260 KiB")]
    logo: FilePart,
}

/// The most a logo upload's body may be: the file, its part's headers and the token.
pub(super) const LOGO_UPLOAD_LIMIT: usize = 270 * 1024;

/// `POST /admin/orgs/{id}/logo` (routed with its size limits in `routes`).
pub(super) async fn upload_logo(
    path: Path<String>,
    upload: Result<MultipartForm<LogoUpload>, actix_web::Error>,
    visit: Visit,
) -> Answer {
    let upload = match upload {
        Ok(u) => u.into_inner(),
        // Unreadable, too large, or fields it does not know: nothing changes.
        Err(e) => {
            tracing::info!(error = %e, "console logo upload refused");
            let tr = spoken(&visit.req);
            return Err(AppError::BadRequest(tr.t("console-logo-unreadable")).into());
        }
    };
    let console = inside!(visit.enter_form(&upload.csrf).await?);
    let mut page = page(&visit, &console, &path, Action::Manage).await?;
    let declared = upload
        .logo
        .content_type
        .as_ref()
        .map(|m| m.essence_str().to_owned())
        .unwrap_or_default();
    let bytes = upload.logo.data.to_vec();
    let problem = if bytes.len() > Logo::MAX_BYTES {
        Some(Id("console-logo-too-large"))
    } else if LogoKind::from_content_type(&declared).is_none() {
        Some(Id("console-logo-kind"))
    } else {
        None
    };
    let logo = match problem {
        Some(id) => Err(id),
        None => Logo::parse(&declared, bytes).map_err(|_| Id("console-logo-not-that-kind")),
    };
    let logo = match logo {
        Ok(logo) => logo,
        Err(id) => {
            page.logo_error = Some(page.tr.id(id));
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    org_service::set_logo(visit.by(&console), &page.org, Some(logo))
        .await
        .said(&page.tr)?;
    Ok(see_other(&format!(
        "/admin/orgs/{}/branding?done=logo-saved",
        page.org.id
    )))
}

#[post("/admin/orgs/{id}/logo/remove")]
pub(super) async fn remove_logo(path: Path<String>, form: Form<CsrfForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    let org = org_service::find(&visit.state, &console.who, Action::Manage, &path)
        .await
        .said(&tr)?;
    org_service::set_logo(visit.by(&console), &org, None)
        .await
        .said(&tr)?;
    Ok(see_other(&format!(
        "/admin/orgs/{}/branding?done=logo-removed",
        org.id
    )))
}
