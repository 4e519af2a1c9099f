//! Upstream identity providers (DESIGN §16): connectors, their home-realm domains, and
//! the links from an upstream identity to a Gatehouse account.
//!
//! The client secret arrives here already sealed (`secret_sealed`); the store never
//! sees it in clear.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError, changed_one, new_id,
    schema::{upstream_connectors, upstream_domains, upstream_links},
};

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = upstream_connectors)]
pub struct ConnectorRow {
    pub id: String,
    pub org_id: String,
    pub slug: String,
    pub display_name: String,
    pub protocol: String,
    pub enabled: bool,
    pub settings: String,
    pub secret_sealed: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The sealed secret stays out of logs.
impl std::fmt::Debug for ConnectorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("slug", &self.slug)
            .field("protocol", &self.protocol)
            .field("enabled", &self.enabled)
            .field("has_secret", &self.secret_sealed.is_some())
            .finish_non_exhaustive()
    }
}

/// A connector to insert or the new values of one (everything but the id and times).
#[derive(Debug, Clone)]
pub struct ConnectorValues {
    pub org_id: String,
    pub slug: String,
    pub display_name: String,
    pub protocol: String,
    pub enabled: bool,
    pub settings: String,
    pub secret_sealed: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = upstream_connectors)]
struct NewConnector<'a> {
    id: &'a str,
    org_id: &'a str,
    slug: &'a str,
    display_name: &'a str,
    protocol: &'a str,
    enabled: bool,
    settings: &'a str,
    secret_sealed: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConnection,
    values: &ConnectorValues,
    now: NaiveDateTime,
) -> Result<ConnectorRow, StoreError> {
    insert_with_id(conn, &new_id(), values, now)
}

/// As `insert`, under an id chosen beforehand: the secret is sealed to its row's id
/// (`secret_context`), so the id is known before the row is written.
pub fn insert_with_id(
    conn: &mut DbConnection,
    id: &str,
    values: &ConnectorValues,
    now: NaiveDateTime,
) -> Result<ConnectorRow, StoreError> {
    diesel::insert_into(upstream_connectors::table)
        .values(&NewConnector {
            id,
            org_id: &values.org_id,
            slug: &values.slug,
            display_name: &values.display_name,
            protocol: &values.protocol,
            enabled: values.enabled,
            settings: &values.settings,
            secret_sealed: values.secret_sealed.as_deref(),
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    find(conn, id)?.ok_or(StoreError::NotFound)
}

/// Replaces a connector's values; its organisation never changes.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    values: &ConnectorValues,
    now: NaiveDateTime,
) -> Result<ConnectorRow, StoreError> {
    changed_one(
        diesel::update(
            upstream_connectors::table
                .find(id)
                .filter(upstream_connectors::org_id.eq(&values.org_id)),
        )
        .set((
            upstream_connectors::slug.eq(&values.slug),
            upstream_connectors::display_name.eq(&values.display_name),
            upstream_connectors::enabled.eq(values.enabled),
            upstream_connectors::settings.eq(&values.settings),
            upstream_connectors::secret_sealed.eq(values.secret_sealed.as_deref()),
            upstream_connectors::updated_at.eq(now),
        ))
        .execute(conn)?,
    )?;
    find(conn, id)?.ok_or(StoreError::NotFound)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ConnectorRow>, StoreError> {
    Ok(upstream_connectors::table
        .find(id)
        .select(ConnectorRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_slug(
    conn: &mut DbConnection,
    slug: &str,
) -> Result<Option<ConnectorRow>, StoreError> {
    Ok(upstream_connectors::table
        .filter(upstream_connectors::slug.eq(slug))
        .select(ConnectorRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every connector, or one organisation's, by slug.
pub fn list(
    conn: &mut DbConnection,
    org_id: Option<&str>,
) -> Result<Vec<ConnectorRow>, StoreError> {
    let mut query = upstream_connectors::table
        .order(upstream_connectors::slug.asc())
        .select(ConnectorRow::as_select())
        .into_boxed();
    if let Some(org_id) = org_id {
        query = query.filter(upstream_connectors::org_id.eq(org_id.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Removes a connector with its domains and links.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    diesel::delete(upstream_domains::table.filter(upstream_domains::connector_id.eq(id)))
        .execute(conn)?;
    diesel::delete(upstream_links::table.filter(upstream_links::connector_id.eq(id)))
        .execute(conn)?;
    changed_one(diesel::delete(upstream_connectors::table.find(id)).execute(conn)?)
}

/// The connector an email domain (lower case) is mapped to.
pub fn find_by_domain(
    conn: &mut DbConnection,
    domain: &str,
) -> Result<Option<ConnectorRow>, StoreError> {
    Ok(upstream_domains::table
        .inner_join(
            upstream_connectors::table
                .on(upstream_connectors::id.eq(upstream_domains::connector_id)),
        )
        .filter(upstream_domains::domain.eq(domain))
        .select(ConnectorRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether any enabled connector has an email domain.
pub fn any_enabled_domain(conn: &mut DbConnection) -> Result<bool, StoreError> {
    let found: Option<String> = upstream_domains::table
        .inner_join(
            upstream_connectors::table
                .on(upstream_connectors::id.eq(upstream_domains::connector_id)),
        )
        .filter(upstream_connectors::enabled.eq(true))
        .select(upstream_domains::domain)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

pub fn domains(conn: &mut DbConnection, connector_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(upstream_domains::table
        .filter(upstream_domains::connector_id.eq(connector_id))
        .order(upstream_domains::domain.asc())
        .select(upstream_domains::domain)
        .load(conn)?)
}

/// Replaces the connector's domains; a domain another connector holds is a conflict.
pub fn set_domains(
    conn: &mut DbConnection,
    connector_id: &str,
    domains: &[String],
) -> Result<(), StoreError> {
    diesel::delete(upstream_domains::table.filter(upstream_domains::connector_id.eq(connector_id)))
        .execute(conn)?;
    for domain in domains {
        diesel::insert_into(upstream_domains::table)
            .values((
                upstream_domains::domain.eq(domain),
                upstream_domains::connector_id.eq(connector_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = upstream_links)]
pub struct LinkRow {
    pub connector_id: String,
    pub subject: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// The account an upstream subject is linked to.
pub fn find_link(
    conn: &mut DbConnection,
    connector_id: &str,
    subject: &str,
) -> Result<Option<LinkRow>, StoreError> {
    Ok(upstream_links::table
        .find((connector_id, subject))
        .select(LinkRow::as_select())
        .first(conn)
        .optional()?)
}

/// Links `subject` to `user_id`; a subject already linked is a conflict.
pub fn insert_link(
    conn: &mut DbConnection,
    connector_id: &str,
    subject: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<LinkRow, StoreError> {
    diesel::insert_into(upstream_links::table)
        .values((
            upstream_links::connector_id.eq(connector_id),
            upstream_links::subject.eq(subject),
            upstream_links::user_id.eq(user_id),
            upstream_links::created_at.eq(now),
        ))
        .execute(conn)?;
    find_link(conn, connector_id, subject)?.ok_or(StoreError::NotFound)
}

pub fn touch_link(
    conn: &mut DbConnection,
    connector_id: &str,
    subject: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(upstream_links::table.find((connector_id, subject)))
        .set(upstream_links::last_used_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// A user's links, oldest first.
pub fn links_of_user(conn: &mut DbConnection, user_id: &str) -> Result<Vec<LinkRow>, StoreError> {
    Ok(upstream_links::table
        .filter(upstream_links::user_id.eq(user_id))
        .order(upstream_links::created_at.asc())
        .select(LinkRow::as_select())
        .load(conn)?)
}

/// A connector's links, oldest first.
pub fn links_of_connector(
    conn: &mut DbConnection,
    connector_id: &str,
) -> Result<Vec<LinkRow>, StoreError> {
    Ok(upstream_links::table
        .filter(upstream_links::connector_id.eq(connector_id))
        .order(upstream_links::created_at.asc())
        .select(LinkRow::as_select())
        .load(conn)?)
}

pub fn delete_link(
    conn: &mut DbConnection,
    connector_id: &str,
    subject: &str,
) -> Result<(), StoreError> {
    changed_one(diesel::delete(upstream_links::table.find((connector_id, subject))).execute(conn)?)
}

/// The seal context of a connector's secret: ties the value to its row.
pub fn secret_context(connector_id: &str) -> String {
    format!("upstream-connector-secret:{connector_id}")
}

super::master_rotation::column_resealer!(
    /// Re-seals connector secrets under the new master key (issue 27's rotation).
    reseal,
    upstream_connectors,
    id,
    secret_sealed,
    |id| secret_context(id)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{sqlite, t0};

    fn values(slug: &str) -> ConnectorValues {
        ConnectorValues {
            org_id: "org-1".into(),
            slug: slug.into(),
            display_name: "Hospital SSO".into(),
            protocol: "oidc".into(),
            enabled: true,
            settings: "{}".into(),
            secret_sealed: None,
        }
    }

    #[tokio::test]
    async fn a_connector_keeps_its_domains_and_links_until_it_is_deleted() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sqlite(&dir, 1).await;
        store
            .run(|conn| {
                let now = t0();
                let c = insert(conn, &values("hospital"), now)?;
                assert!(matches!(
                    insert(conn, &values("hospital"), now),
                    Err(StoreError::Conflict)
                ));
                set_domains(conn, &c.id, &["hospital.example".into()])?;
                assert_eq!(find_by_domain(conn, "hospital.example")?.unwrap().id, c.id);
                let other = insert(conn, &values("clinic"), now)?;
                assert!(matches!(
                    set_domains(conn, &other.id, &["hospital.example".into()]),
                    Err(StoreError::Conflict)
                ));
                insert_link(conn, &c.id, "sub-1", "user-1", now)?;
                assert!(matches!(
                    insert_link(conn, &c.id, "sub-1", "user-2", now),
                    Err(StoreError::Conflict)
                ));
                assert_eq!(find_link(conn, &c.id, "sub-1")?.unwrap().user_id, "user-1");
                delete(conn, &c.id)?;
                assert!(find_link(conn, &c.id, "sub-1")?.is_none());
                assert!(find_by_domain(conn, "hospital.example")?.is_none());
                Ok(())
            })
            .await
            .unwrap();
    }
}
