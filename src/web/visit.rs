//! A browser request as a page handler needs it.

use std::future::{Ready, ready};

use actix_web::{Error, FromRequest, HttpRequest, HttpResponse, dev::Payload, web};

use super::{RequestContext, pages::PageError};
use crate::startup::AppState;

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
