//! How a finished sign-in answers the request that started it (DESIGN §1). Each door
//! that starts sign-ins (the account page, the admin console, OIDC `/authorize`, SAML
//! SSO) registers its answer once at start-up under the name its transactions carry
//! (`Resume::kind`); the sign-in pages look the name up and know no protocol.

use std::{collections::HashMap, sync::Arc};

use actix_web::HttpResponse;

use crate::{
    auth::{session::SsoSession, transaction::Resume},
    startup::AppState,
    web::{RequestContext, error::AppError},
};

/// A finished sign-in, as a door gets it: the person is signed in with `session`;
/// `resume` holds the request the door stored when it started the sign-in.
pub struct Finished<'a> {
    pub state: &'a AppState,
    pub ctx: &'a RequestContext,
    pub resume: Resume,
    pub session: &'a SsoSession,
}

/// One door's answer to a finished sign-in.
#[async_trait::async_trait(?Send)]
pub trait AnswerSignIn: Send + Sync {
    async fn answer(&self, done: Finished<'_>) -> Result<HttpResponse, AppError>;
}

/// The registered answers, by the name their transactions carry.
#[derive(Default)]
pub struct SignInAnswers(HashMap<&'static str, Arc<dyn AnswerSignIn>>);

impl SignInAnswers {
    /// Registers `answer` under `kind`; a second registration of one kind is a
    /// programming error caught at start-up, not a silent replacement.
    pub fn register(&mut self, kind: &'static str, answer: Arc<dyn AnswerSignIn>) {
        let previous = self.0.insert(kind, answer);
        assert!(
            previous.is_none(),
            "sign-in answer `{kind}` registered twice"
        );
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn AnswerSignIn>> {
        self.0.get(kind)
    }
}
