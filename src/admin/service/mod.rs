//! The admin service: every change an administrator can make, once (issue 22). The admin
//! API, the admin console and the CLI only parse and render; each action here checks
//! the caller's role and rank over whom it acts on, and records its audit event naming
//! the acting administrator (DESIGN §3, §11).
//!
//! An action takes `Acting`: who acts (`Caller`: an administrator, a service client, or
//! the CLI's operator) and the request it came in (none from the CLI). It answers with
//! `ServiceError`, which the API turns into JSON (`admin::ApiError`) and the console into
//! pages, in one place each; the CLI prints it.

pub mod audit;
pub mod clients;
pub mod dashboard;
pub mod emergency;
pub mod fhir_servers;
pub mod keys;
pub mod network;
pub mod orgs;
pub mod passkeys;
pub mod saml;
pub mod upstream;
pub mod users;

use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{account::CreateAccountError, recovery},
    domain::Role,
    oidc::clients::ClientError,
    saml::providers::SpError,
    startup::AppState,
    store::{StoreError, users::UserRow},
    web::{RequestContext, error::AppError},
};

/// Who is acting.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A user id, `client:<client_id>` for a service client, or `cli:<person>` for the
    /// operator at the command line (the audit actor).
    pub actor: String,
    pub role: Role,
    /// The caller's own organisation (None for a service client and the CLI).
    pub org_id: Option<String>,
}

/// What the actor of a command-line action starts with.
pub const CLI_ACTOR_PREFIX: &str = "cli:";

impl Caller {
    /// Whoever runs `gatehouse` on the server, with access to its database and key: a
    /// super administrator, audited as `cli:<person>` (`person` as the CLI found it:
    /// `--actor`, or the operating-system user and host). Never a bare `cli`: the trail
    /// names the person behind every change (issue 26).
    pub fn cli(person: &str) -> Self {
        Self {
            actor: format!("{CLI_ACTOR_PREFIX}{person}"),
            role: Role::SuperAdmin,
            org_id: None,
        }
    }

    /// Whether the caller may see anything of organisation `org_id`.
    pub fn sees_org(&self, org_id: &str) -> bool {
        match self.role {
            Role::SuperAdmin => true,
            Role::OrgAdmin | Role::Support => self.org_id.as_deref() == Some(org_id),
            Role::User => false,
        }
    }

    /// The organisation-level actions `support` may take; everything else needs an admin.
    pub fn require(&self, action: Action) -> Result<(), ServiceError> {
        let allowed = match self.role {
            Role::SuperAdmin => true,
            Role::OrgAdmin => action != Action::Global,
            Role::Support => matches!(action, Action::Read | Action::Support),
            Role::User => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("your role does not allow this"))
        }
    }

    /// Changing someone needs more power than they have: support cannot remove an
    /// administrator's second factor, an organisation admin cannot reset another
    /// organisation admin. Only a super administrator acts on its peers.
    pub fn may_act_on(&self, user: &UserRow) -> Result<(), ServiceError> {
        if self.role == Role::SuperAdmin || user.role() < self.role {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "you cannot act on a user whose role is equal to or above yours",
            ))
        }
    }

    /// A user the caller may see, or not found.
    pub fn visible_user(&self, user: Option<UserRow>) -> Result<UserRow, ServiceError> {
        user.filter(|u| self.sees_org(&u.org_id))
            .ok_or_else(|| ServiceError::NotFound("no such user".into()))
    }

    /// Whether `who` may hand out `role`: nobody grants more than they have.
    pub fn may_grant(&self, role: Role) -> Result<(), ServiceError> {
        let ok = match self.role {
            Role::SuperAdmin => true,
            Role::OrgAdmin => role != Role::SuperAdmin,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("you cannot grant this role"))
        }
    }
}

/// What an action does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Look at users, sessions, audit events of visible organisations.
    Read,
    /// Help a user: unlock, force a reset, remove TOTP, end sessions.
    Support,
    /// Change users, roles and policies of the caller's organisation.
    Manage,
    /// Across organisations: organisations, IP blocks, clients, keys.
    Global,
}

/// An administrator acting on the application, and the request they came in by (none
/// from the CLI).
#[derive(Clone, Copy)]
pub struct Acting<'a> {
    pub state: &'a AppState,
    pub who: &'a Caller,
    pub request: Option<&'a RequestContext>,
}

impl<'a> Acting<'a> {
    pub fn new(state: &'a AppState, who: &'a Caller, request: &'a RequestContext) -> Self {
        let request = Some(request);
        Self {
            state,
            who,
            request,
        }
    }

    /// The CLI operator, outside any request.
    pub fn cli(state: &'a AppState, who: &'a Caller) -> Self {
        Self {
            state,
            who,
            request: None,
        }
    }

    /// The audit event of a successful action, naming the actor and the request.
    fn event(&self, event_type: EventType) -> AuditEvent {
        let event = AuditEvent::new(event_type, Outcome::Success).actor(&self.who.actor);
        match self.request {
            Some(ctx) => event.request(ctx),
            None => event,
        }
    }

    /// The same actor, as the recovery capability names it.
    fn recovery(&self) -> recovery::Admin<'a> {
        recovery::Admin {
            actor: &self.who.actor,
            request: self.request,
        }
    }

    /// Records a change to a global object (`object`), naming it by `id`.
    async fn record_change(
        &self,
        state: &crate::startup::AppState,
        object: &str,
        change: &str,
        id: (&str, &str),
    ) -> Result<(), ServiceError> {
        let event = self
            .event(EventType::AdminChange)
            .detail("object", object)
            .detail("change", change)
            .detail(id.0, id.1);
        state.audit.record(event).await?;
        Ok(())
    }
}

/// Why an admin action was not done. Its messages name fields as the CLI names its
/// options; the API renames them where its JSON fields differ (`admin::ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Forbidden(&'static str),
    /// The message is for the CLI; the API and console answer a bare 404, so nothing
    /// tells whether an object exists in an organisation the caller cannot see.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Account(CreateAccountError),
    #[error(transparent)]
    Recovery(recovery::AdminError),
    #[error(transparent)]
    Client(ClientError),
    #[error(transparent)]
    Sp(SpError),
    /// The store, the audit trail or another capability failed.
    #[error("{}", describe(.0))]
    Failed(#[from] AppError),
}

/// What the CLI prints for a failure below the service (the API shows less).
fn describe(e: &AppError) -> String {
    match e {
        AppError::Internal(m) | AppError::Unavailable(m) => m.clone(),
        other => other.to_string(),
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Conflict => Self::Conflict("it already exists".into()),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<crate::audit::AuditError> for ServiceError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<crate::ephemeral::EphemeralError> for ServiceError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<crate::auth::AuthError> for ServiceError {
    fn from(e: crate::auth::AuthError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<CreateAccountError> for ServiceError {
    fn from(e: CreateAccountError) -> Self {
        Self::Account(e)
    }
}

impl From<recovery::AdminError> for ServiceError {
    fn from(e: recovery::AdminError) -> Self {
        Self::Recovery(e)
    }
}

impl From<ClientError> for ServiceError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl From<SpError> for ServiceError {
    fn from(e: SpError) -> Self {
        Self::Sp(e)
    }
}

/// An id from outside (a path, a form) that cannot be ours is simply not found.
pub fn object_id(raw: &str) -> Result<String, ServiceError> {
    if raw.is_empty()
        || raw.len() > 64
        || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ServiceError::NotFound("no such object".into()));
    }
    Ok(raw.to_owned())
}
