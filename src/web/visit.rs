//! A browser request as a page handler needs it.

use std::future::{Ready, ready};

use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, dev::Payload, web};

use super::{RequestContext, pages::PageError};
use crate::{
    i18n::{Tr, Wishes},
    startup::AppState,
};

/// What a page handler answers: a page, a redirect, or an error page.
pub type Answer = Result<HttpResponse, PageError>;

/// A page request as its handler needs it: the application, the request (its cookies
/// and origin) and its context for the audit trail. Handlers take it last, after the
/// path, query and form.
pub struct Visit {
    pub state: web::Data<AppState>,
    pub req: HttpRequest,
    pub ctx: RequestContext,
}

impl Visit {
    /// What this browser says of languages (`Accept-Language`), to add the relying
    /// party's, the person's and the organisation's to.
    pub fn wishes(&self) -> Wishes {
        browser_wishes(&self.req)
    }

    /// The page's language from the browser alone: for pages before anyone is known.
    pub fn tr(&self) -> Tr {
        self.speak(self.wishes())
    }

    /// The page's language from `wishes`; an error page of this request speaks it too.
    pub fn speak(&self, wishes: Wishes) -> Tr {
        speak(&self.req, wishes)
    }
}

/// The language of `req`'s page from `wishes`; an error page of `req` speaks it too.
pub fn speak(req: &HttpRequest, wishes: Wishes) -> Tr {
    let tr = wishes.tr();
    req.extensions_mut().insert(tr.clone());
    tr
}

/// The language of `req`'s page from the browser alone.
pub fn browser_tr(req: &HttpRequest) -> Tr {
    speak(req, browser_wishes(req))
}

/// The languages of the request's `Accept-Language`.
pub fn browser_wishes(req: &HttpRequest) -> Wishes {
    let browser = req
        .headers()
        .get(actix_web::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(crate::i18n::accept_language)
        .unwrap_or_default();
    Wishes {
        browser,
        ..Wishes::default()
    }
}

/// The language a page of `req` was written in, or the browser's if none was yet.
pub fn spoken(req: &HttpRequest) -> Tr {
    if let Some(tr) = req.extensions().get::<Tr>() {
        return tr.clone();
    }
    browser_wishes(req).tr()
}

impl FromRequest for Visit {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = web::Data::<AppState>::from_request(req, payload).into_inner();
        let ctx = RequestContext::from_request(req, payload).into_inner();
        ready(state.and_then(|state| {
            let req = req.clone();
            Ok(Self {
                state,
                req,
                ctx: ctx?,
            })
        }))
    }
}
