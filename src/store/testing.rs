//! What the store's unit tests (and their neighbours') build on: a migrated SQLite store
//! in a temporary directory, a fixed moment, and an organisation with one user.

use std::sync::Arc;

use chrono::NaiveDateTime;
use secrecy::SecretSlice;

use super::{Pii, Sealer, Store, clients::ClientRow, orgs, users};
use crate::{
    config::DatabaseTarget,
    domain::{Email, OrgName, OrgPolicy, Role, Username},
};

/// 2026-11-24 10:00:00 UTC.
pub fn t0() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap()
}

/// A public client `id` that may do nothing, registered at `t0`.
pub fn client(id: &str) -> ClientRow {
    ClientRow {
        client_id: id.into(),
        name: "n".into(),
        secret_hash: None,
        redirect_uris: "[]".into(),
        post_logout_redirect_uris: "[]".into(),
        grant_types: "[]".into(),
        scopes: "[]".into(),
        token_endpoint_auth_method: "none".into(),
        jwks: None,
        backchannel_logout_uri: None,
        id_token_alg: "RS256".into(),
        created_at: t0(),
        allowed_orgs: None,
        introspection: false,
        allowed_origins: None,
        require_par: false,
        require_dpop: false,
        fapi2: false,
        ask_consent: false,
        jwks_uri: None,
        access_token_alg: "RS256".into(),
    }
}

/// A migrated SQLite store of `pool_size` connections in `dir`.
pub async fn sqlite(dir: &tempfile::TempDir, pool_size: u32) -> Store {
    let target = DatabaseTarget::Sqlite(dir.path().join("gh.db"));
    let store = tokio::task::spawn_blocking(move || Store::connect(&target, pool_size))
        .await
        .unwrap()
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A stand-in for the master key in the store's own tests (the real one lives above the
/// store): "seals" by hex-encoding the context and the value under key id `kid`, and
/// opens what was sealed under any of `opens` for the same context. Not secret at all,
/// but it keeps contexts and key ids apart as the real one does.
pub struct TestSealer {
    pub kid: String,
    pub opens: Vec<String>,
}

impl TestSealer {
    pub fn new(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            opens: vec![kid.into()],
        }
    }
}

impl Sealer for TestSealer {
    fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let body = [context.as_bytes(), b"\0", plaintext].concat();
        format!("v1.{}.{}", self.kid, hex::encode(body))
    }

    fn open(&self, context: &str, sealed: &str) -> Result<SecretSlice<u8>, String> {
        let rest = sealed.strip_prefix("v1.").ok_or("not sealed")?;
        let (kid, body) = rest.split_once('.').ok_or("malformed")?;
        if !self.opens.iter().any(|k| k == kid) {
            return Err(format!("unknown key {kid}"));
        }
        let body = hex::decode(body).map_err(|_| "malformed")?;
        let prefix = [context.as_bytes(), b"\0"].concat();
        let value = body
            .strip_prefix(prefix.as_slice())
            .ok_or("wrong context")?;
        Ok(SecretSlice::from(value.to_vec()))
    }

    fn sealing_kid(&self) -> String {
        self.kid.clone()
    }
}

/// Personal data sealed by a [`TestSealer`] with key id `0000aaaa`.
pub fn pii() -> Pii {
    Pii::new(
        Arc::new(TestSealer::new("0000aaaa")),
        zeroize::Zeroizing::new([7u8; 32]),
    )
}

/// Organisation `default` with the user `vera` (holding `password_hash`); her id.
pub async fn with_user(store: &Store, password_hash: Option<&str>) -> String {
    with_user_sealed_by(store, pii(), password_hash).await
}

/// As [`with_user`], her personal data sealed by `pii` (e.g. under a real master key).
pub async fn with_user_sealed_by(store: &Store, pii: Pii, password_hash: Option<&str>) -> String {
    let password_hash = password_hash.map(str::to_owned);
    store
        .transaction(move |c| {
            let org = orgs::insert(
                c,
                &OrgName::parse("default").unwrap(),
                "Default",
                &OrgPolicy::default(),
                t0(),
            )?;
            let new = users::NewUser {
                org_id: org.id,
                username: Username::parse("vera").unwrap(),
                email: Email::parse("vera@example.org").unwrap(),
                display_name: None,
                role: Role::User,
                password_hash,
                must_change_password: false,
            };
            users::insert(c, &pii, &new, t0())
        })
        .await
        .unwrap()
        .id
}
