//! Organisations' branding on the pages (issue 31): which organisation a page speaks
//! for, and its logo and colours, served from here under the strict CSP. The pages
//! show the brand through [`Tr::brand`](crate::i18n::Tr::brand) (`templates/base.html`).

use actix_web::{
    HttpResponse, get,
    http::header,
    web::{self, Path},
};

use crate::{
    bootstrap::DEFAULT_ORG,
    domain::OrgName,
    i18n::{Brand, Tr, Wishes},
    startup::AppState,
    store::{branding, orgs},
    web::{
        error::AppError,
        visit::{Answer, browser_wishes, speak},
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(logo).service(colours);
}

/// The brand of organisation `org_id`; None when it has set no branding (the page then
/// looks like Gatehouse's own).
pub async fn of_org(state: &AppState, org_id: &str) -> Result<Option<Brand>, AppError> {
    let id = org_id.to_owned();
    Ok(state.store.run(move |c| branding::brand(c, &id)).await?)
}

/// The brand of the default organisation, for pages no app or person chose one for.
pub async fn default(state: &AppState) -> Result<Option<Brand>, AppError> {
    let name = OrgName::parse(DEFAULT_ORG).map_err(|e| AppError::Internal(e.0))?;
    let org = state
        .store
        .run(move |c| orgs::find_by_name(c, &name))
        .await?;
    match org {
        Some(org) => of_org(state, &org.id).await,
        None => Ok(None),
    }
}

/// The brand a sign-in shows: the organisation named by `org` (an `org` hint, or the one
/// organisation an app is open to), else the one whose branding lists `app` (a client id
/// or an SP entity ID), else the default organisation's.
pub async fn for_sign_in(
    state: &AppState,
    app: Option<&str>,
    org: Option<&str>,
) -> Result<Option<Brand>, AppError> {
    if let Some(name) = org.and_then(|o| OrgName::parse(o).ok()) {
        let found = state
            .store
            .run(move |c| orgs::find_by_name(c, &name))
            .await?;
        if let Some(org) = found {
            return of_org(state, &org.id).await;
        }
    }
    if let Some(app) = app.map(str::to_owned) {
        let listing = state
            .store
            .run(move |c| {
                Ok(branding::all(c)?
                    .into_iter()
                    .find(|(_, s)| s.branding.brands(&app))
                    .map(|(id, _)| id))
            })
            .await?;
        if let Some(org_id) = listing {
            return of_org(state, &org_id).await;
        }
    }
    default(state).await
}

/// A logo: its own media type, `nosniff`, and a CSP that lets nothing in it run, should
/// anyone open it on its own.
#[get("/branding/{org}/logo")]
async fn logo(path: Path<String>, state: web::Data<AppState>) -> Answer {
    let org_id = path.into_inner();
    if org_id.len() > 64 {
        return Err(AppError::NotFound.into());
    }
    let stored = state.store.run(move |c| branding::find(c, &org_id)).await?;
    let Some(logo) = stored.logo else {
        return Err(AppError::NotFound.into());
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, logo.kind.content_type()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .body(logo.bytes))
}

/// The organisation's colours as a stylesheet: the CSP admits no inline style, and the
/// colours were checked for contrast when they were set.
#[get("/branding/{org}/style.css")]
async fn colours(path: Path<String>, state: web::Data<AppState>) -> Answer {
    let org_id = path.into_inner();
    if org_id.len() > 64 {
        return Err(AppError::NotFound.into());
    }
    let stored = state.store.run(move |c| branding::find(c, &org_id)).await?;
    let b = stored.branding;
    let mut css = String::new();
    if let Some(accent) = b.accent {
        css.push_str(&format!(
            ":root {{ --accent: {accent}; --focus: {accent}; }}\n"
        ));
    }
    if let Some(dark) = b.accent_dark {
        css.push_str(&format!(
            "@media (prefers-color-scheme: dark) {{ :root {{ --accent: {dark}; --focus: {dark}; }} }}\n"
        ));
    } else if b.accent.is_some() {
        // Gatehouse's own dark accent: the light one was checked for the light page only.
        css.push_str(
            "@media (prefers-color-scheme: dark) { :root { --accent: #6cb6ff; --focus: #6cb6ff; } }\n",
        );
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(css))
}

/// The language of `req`'s page from the browser, speaking for the default organisation:
/// pages before any app or person is known (the reset request).
pub async fn default_tr(state: &AppState, req: &actix_web::HttpRequest) -> Result<Tr, AppError> {
    Ok(speak(
        req,
        Wishes {
            brand: default(state).await?,
            ..browser_wishes(req)
        },
    ))
}
