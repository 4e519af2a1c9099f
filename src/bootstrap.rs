//! First start of the embedded default (DESIGN §2): organisation `default` and an
//! administrator whose one-time password is shown once and must be changed.

use secrecy::{ExposeSecret, SecretString};

use crate::{
    audit::{Audit, AuditError, AuditEvent, EventType, Outcome},
    auth::password::{Hasher, generate_one_time_password},
    clock::Clock,
    config::Config,
    domain::{Email, OrgName, OrgPolicy, Password, Role, Username},
    store::{Store, StoreError, orgs, users},
};

pub const DEFAULT_ORG: &str = "default";

/// What a first start created: the caller shows the password once, then drops it.
pub struct FirstAdmin {
    pub user: users::UserRow,
    pub username: Username,
    pub one_time_password: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("{0}")]
    Hash(#[from] crate::auth::password::HashError),
}

/// Organisation `default` exists afterwards (first start, or a CLI run before it).
pub async fn ensure_default_org(store: &Store, clock: &dyn Clock) -> Result<(), BootstrapError> {
    let now = clock.now().naive_utc();
    store
        .transaction(move |conn| {
            let name = OrgName::parse(DEFAULT_ORG).map_err(|e| StoreError::Query(e.0))?;
            if orgs::find_by_name(conn, &name)?.is_none() {
                orgs::insert(
                    conn,
                    &name,
                    "Default organisation",
                    &OrgPolicy::default(),
                    now,
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Creates what a first start needs; a later start finds it and creates nothing.
/// Records the first administrator's creation. After the commit: a crash between the
/// two loses this one event, never the account; the account row itself says when it was
/// created.
pub async fn record_first_admin(audit: &Audit, admin: &FirstAdmin) -> Result<(), AuditError> {
    audit
        .record(
            AuditEvent::new(EventType::UserCreated, Outcome::Success)
                .actor("system")
                .org(&admin.user.org_id)
                .subject(&admin.user.id)
                .detail("username", admin.user.username.as_str())
                .detail("role", admin.user.role.as_str())
                .detail("via", "first_start"),
        )
        .await
}

pub async fn ensure_first_start(
    store: &Store,
    pii: &crate::store::Pii,
    hasher: &Hasher,
    config: &Config,
    clock: &dyn Clock,
) -> Result<Option<FirstAdmin>, BootstrapError> {
    let username =
        Username::parse(&config.admin_username).map_err(|e| BootstrapError::Setting {
            key: "admin_username",
            message: e.to_string(),
        })?;
    let email = Email::parse(&config.admin_email).map_err(|e| BootstrapError::Setting {
        key: "admin_email",
        message: e.to_string(),
    })?;
    let now = clock.now().naive_utc();
    ensure_default_org(store, clock).await?;
    let has_admin = store
        .run(move |conn| Ok(users::count_with_role(conn, Role::SuperAdmin)? > 0))
        .await?;
    if has_admin {
        return Ok(None);
    }

    let password = generate_one_time_password();
    let hash = {
        let hasher = hasher.clone();
        let typed = Password::parse(password.expose_secret().to_owned()).map_err(|e| {
            BootstrapError::Setting {
                key: "admin_username",
                message: e.to_string(),
            }
        })?;
        tokio::task::spawn_blocking(move || hasher.hash(&typed))
            .await
            .map_err(|e| StoreError::Query(e.to_string()))??
    };
    let created = {
        let (username, pii) = (username.clone(), pii.clone());
        store
            .transaction(move |conn| {
                // Another process may have won the race to the first start.
                if users::count_with_role(conn, Role::SuperAdmin)? > 0 {
                    return Ok(None);
                }
                let org = orgs::find_by_name(
                    conn,
                    &OrgName::parse(DEFAULT_ORG).map_err(|e| StoreError::Query(e.0))?,
                )?
                .ok_or(StoreError::NotFound)?;
                users::insert(
                    conn,
                    &pii,
                    &users::NewUser {
                        org_id: org.id,
                        username,
                        email,
                        display_name: Some("Administrator".into()),
                        role: Role::SuperAdmin,
                        password_hash: Some(hash),
                        must_change_password: true,
                    },
                    now,
                )
                .map(Some)
            })
            .await?
    };
    Ok(created.map(|user| FirstAdmin {
        user,
        username,
        one_time_password: password,
    }))
}
