//! JWT minting and checking: the ID tokens Gatehouse signs (built with `openidconnect`),
//! access tokens as JWTs per RFC 9068 (`typ: at+jwt`) and back-channel logout tokens;
//! and verification of its own access tokens and ID token hints. Refresh tokens are
//! opaque, not JWTs: `store::grants` keeps them, as hashes.

use chrono::{DateTime, Utc};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationContextClass,
    AuthenticationMethodReference, ClientId, EndUserEmail, EndUserName, EndUserUsername,
    IdTokenClaims, IssuerUrl, LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier,
    core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    auth::{
        emergency::{ACR_EMERGENCY, EmergencyWindow},
        random_token, session,
    },
    crypto::signing::{KeyRing, SigningAlg},
    oidc::smart::SmartGrant,
    store::{grants::GrantRow, users::UserRow},
};

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The OIDC `sid` claim, and `org` (the user's organisation, by name: issue 20 item 9),
/// ride along with the standard ones.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SessionClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// DESIGN §15: the open emergency window the sign-in was raised to (`reason`,
    /// `started_at`, `expires_at`, `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Value>,
    /// DESIGN §18: the user's FHIR resource on the SMART app's FHIR server, as an
    /// absolute URL, when the app asked for `fhirUser`.
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}
impl AdditionalClaims for SessionClaims {}

pub type IdToken = openidconnect::IdToken<
    SessionClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The access token's claims (RFC 9068 §2.2), plus `gid`: the grant it belongs to, so
/// revoking the grant makes it inactive at `/userinfo` and `/introspect` at once. A
/// client_credentials token has no grant (and no `gid`): it stands for its client, as
/// long as the client exists and the token's `jti` is not revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's organisation, by name (issue 20 item 9); none for client_credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The key the token is bound to (RFC 9449 §6.1): only a DPoP proof made with it
    /// lets the token be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// DESIGN §15: the emergency window the token was issued under, while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Value>,
    /// DESIGN §18: the patient and encounter in a SMART app's launch context, and the
    /// user's FHIR resource, for the FHIR server (`aud`) to enforce and introspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}

/// RFC 7800 `cnf`, as DPoP uses it: the JWK SHA-256 thumbprint of the client's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    /// The thumbprint of the DPoP key the token is bound to, if it is.
    pub fn bound_to(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }
}

/// Everything a token response is made from.
pub struct Grant<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The user's grant and account; None for client_credentials, where the client is
    /// the subject and nothing is stored.
    pub user: Option<(&'a GrantRow, &'a UserRow)>,
    /// The user's organisation, by name (the `org` claim).
    pub org: Option<&'a str>,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub lifetime_secs: i64,
    /// The client's registered ID token algorithm.
    pub id_token_alg: SigningAlg,
    /// The client's registered access token algorithm.
    pub access_token_alg: SigningAlg,
    /// The thumbprint of the DPoP key the access token is bound to (`cnf.jkt`).
    pub dpop_jkt: Option<&'a str>,
    /// The open emergency window the grant was made under (DESIGN §15): its `acr` and
    /// `emergency` claim.
    pub emergency: Option<&'a EmergencyWindow>,
    /// A SMART app's grant (DESIGN §18): the access token is for its FHIR server and
    /// carries the patient and encounter in context and the user's `fhirUser`.
    pub smart: Option<&'a SmartGrant>,
}

fn amr(grant: &GrantRow) -> Vec<String> {
    grant
        .amr
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn sid(grant: &GrantRow) -> Option<String> {
    grant.session_handle.as_deref().map(super::sid_for)
}

impl Grant<'_> {
    fn has_scope(&self, s: &str) -> bool {
        self.scope.iter().any(|x| x == s)
    }

    /// The `acr` of a user's tokens: emergency while the window is open, else what the
    /// methods used amount to.
    fn acr(&self, amr: &[String]) -> &'static str {
        if self.emergency.is_some() {
            ACR_EMERGENCY
        } else {
            session::acr(amr)
        }
    }

    pub fn access_token(&self, ring: &KeyRing) -> String {
        let now = self.now.timestamp();
        let (sub, auth) = match self.user {
            Some((grant, user)) => {
                let amr = amr(grant);
                (
                    user.id.clone(),
                    Some((grant, self.acr(&amr).to_owned(), amr)),
                )
            }
            None => (self.client_id.to_owned(), None),
        };
        let grant = auth.as_ref().map(|a| a.0);
        let smart = self.smart;
        let claims = AccessClaims {
            iss: self.issuer.to_owned(),
            sub,
            aud: smart
                .map_or(self.client_id, |s| s.audience.as_str())
                .to_owned(),
            client_id: self.client_id.to_owned(),
            exp: now + self.lifetime_secs,
            iat: now,
            jti: random_token(),
            scope: self.scope.join(" "),
            gid: grant.map(|g| g.id.clone()),
            auth_time: grant.and_then(|g| g.auth_time),
            sid: grant.and_then(sid),
            acr: auth.as_ref().map(|a| a.1.clone()),
            amr: auth.map(|a| a.2),
            org: grant.and(self.org).map(str::to_owned),
            cnf: self.dpop_jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
            emergency: grant.and(self.emergency).map(EmergencyWindow::claim),
            patient: smart.and_then(|s| s.context.patient.clone()),
            encounter: smart.and_then(|s| s.context.encounter.clone()),
            // Only for an app allowed `fhirUser`: the app can read its token. The FHIR
            // server learns it by introspection either way (from the grant).
            fhir_user: smart
                .filter(|_| self.has_scope("fhirUser"))
                .and_then(|s| s.fhir_user.clone()),
        };
        let value = serde_json::to_value(&claims).expect("claims serialise");
        ring.sign_jwt_with(self.access_token_alg, ACCESS_TOKEN_TYPE, &value)
    }

    /// The ID token for a user grant; `at_hash` binds it to `access_token`.
    pub fn id_token(&self, ring: &KeyRing, access_token: &str) -> Result<String, String> {
        let (grant, user) = self.user.ok_or("no user")?;
        let mut standard = StandardClaims::new(SubjectIdentifier::new(user.id.clone()));
        if self.has_scope("profile") {
            standard =
                standard.set_preferred_username(Some(EndUserUsername::new(user.username.clone())));
            if let Some(name) = &user.display_name {
                standard =
                    standard.set_name(Some(LocalizedClaim::from(EndUserName::new(name.clone()))));
            }
        }
        if self.has_scope("email") {
            standard = standard.set_email(Some(EndUserEmail::new(user.email.clone())));
        }
        let amr = amr(grant);
        let auth_time = grant
            .auth_time
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
        let issuer = IssuerUrl::new(self.issuer.to_owned()).map_err(|e| e.to_string())?;
        let claims = IdTokenClaims::new(
            issuer,
            vec![Audience::new(self.client_id.to_owned())],
            self.now + chrono::Duration::seconds(self.lifetime_secs),
            self.now,
            standard,
            SessionClaims {
                sid: sid(grant),
                org: self.org.map(str::to_owned),
                emergency: self.emergency.map(EmergencyWindow::claim),
                fhir_user: self
                    .smart
                    .filter(|_| self.has_scope("fhirUser"))
                    .and_then(|s| s.fhir_user.clone()),
            },
        )
        .set_nonce(self.nonce.map(|n| Nonce::new(n.to_owned())))
        .set_auth_time(auth_time)
        .set_auth_context_ref(Some(AuthenticationContextClass::new(
            self.acr(&amr).to_owned(),
        )))
        .set_auth_method_refs(Some(
            amr.into_iter()
                .map(AuthenticationMethodReference::new)
                .collect(),
        ))
        .set_authorized_party(Some(ClientId::new(self.client_id.to_owned())));
        let access = AccessToken::new(access_token.to_owned());
        let token = IdToken::new(
            claims,
            ring.signing_key(self.id_token_alg),
            self.id_token_alg.jws(),
            Some(&access),
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(token.to_string())
    }
}

/// An access token we signed, not expired, that may be used as a bearer token: one
/// bound to a DPoP key is not (RFC 9449 §7.2), since whoever presents it as Bearer has
/// proved no key. Whether its grant is still live is the caller's question (it needs
/// the database).
pub fn verify_access_token(
    ring: &KeyRing,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Option<AccessClaims> {
    verify_issued_access_token(ring, issuer, token, now).filter(|c| c.cnf.is_none())
}

/// An access token we signed, not expired, bound to a key or not: for the endpoints
/// where the client names a token it holds (introspection, revocation), and for a
/// resource endpoint that checks the binding itself.
pub fn verify_issued_access_token(
    ring: &KeyRing,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Option<AccessClaims> {
    let (header, claims) = ring.verify_jwt(token)?;
    if header.get("typ").and_then(Value::as_str) != Some(ACCESS_TOKEN_TYPE) {
        return None;
    }
    let claims: AccessClaims = serde_json::from_value(claims).ok()?;
    (claims.iss == issuer && claims.exp > now.timestamp()).then_some(claims)
}

/// Claims of an ID token we signed (for `id_token_hint`), expired or not.
pub fn verify_id_token_hint(ring: &KeyRing, issuer: &str, token: &str) -> Option<Value> {
    let (header, claims) = ring.verify_jwt(token)?;
    // Only an ID token: ours carry no `typ` (or `JWT`); access tokens say `at+jwt` and
    // logout tokens `logout+jwt`, and neither may stand in for one.
    let typ = header.get("typ").and_then(Value::as_str);
    if !matches!(typ, None | Some("JWT")) || claims.get("events").is_some() {
        return None;
    }
    let has = |claim: &str| claims.get(claim).is_some();
    (claims.get("iss").and_then(Value::as_str) == Some(issuer) && has("sub") && has("aud"))
        .then_some(claims)
}

/// The `logout_token` of OIDC Back-Channel Logout 1.0 §2.4, signed with `alg`: the
/// client's ID token algorithm. §2.4 signs logout tokens with the keys of ID tokens, and
/// §2.6 has the relying party check one as it checks an ID token (`openid-client` holds
/// it to `id_token_signed_response_alg`).
pub fn logout_token(
    ring: &KeyRing,
    alg: SigningAlg,
    issuer: &str,
    client_id: &str,
    sub: Option<&str>,
    sid: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let mut claims = json!({
        "iss": issuer,
        "aud": client_id,
        "iat": now.timestamp(),
        "exp": now.timestamp() + 120,
        "jti": random_token(),
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    ring.sign_jwt_with(alg, "logout+jwt", &claims)
}
