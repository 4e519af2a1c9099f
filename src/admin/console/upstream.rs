//! Upstream identity providers (DESIGN §16): the organisation's connectors, each one's
//! form, and the links from upstream identities to accounts. Administrators only.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;
use crate::{
    admin::service::upstream::{
        self as upstream_service, ConnectorFields, ConnectorView, LinkView, NewConnector,
    },
    domain::{
        AccountMapping, ConnectorSettings, FhirUserMapping, OidcUpstream, SamlUpstream,
        UpstreamClientAuth, UpstreamProtocol, Username,
    },
};
use secrecy::SecretString;

/// A connector's form may carry a CA certificate chain (up to 64 KiB, URL-encoded).
const FORM_LIMIT: usize = 256 * 1024;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    let form = || {
        web::FormConfig::default()
            .limit(FORM_LIMIT)
            .error_handler(crate::web::error::bad_input)
    };
    cfg.service(
        web::resource("/admin/connectors")
            .app_data(form())
            .route(web::get().to(connectors_page))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/admin/connectors/{id}")
            .app_data(form())
            .route(web::get().to(connector_page))
            .route(web::post().to(update)),
    )
    .service(web::resource("/admin/connectors/{id}/delete").route(web::post().to(delete)))
    .service(web::resource("/admin/connectors/{id}/links").route(web::post().to(add_link)))
    .service(
        web::resource("/admin/connectors/{id}/links/remove").route(web::post().to(remove_link)),
    );
}

/// A fixed notice for the action just done, in the administrator's language; nothing
/// of the query is echoed.
fn done_notice(tr: &Tr, done: Option<&str>) -> Option<String> {
    let id = match done? {
        "created" => Id("console-notice-connector-created"),
        "saved" => Id("console-notice-connector-saved"),
        "deleted" => Id("console-notice-connector-deleted"),
        "linked" => Id("console-notice-linked"),
        "unlinked" => Id("console-notice-unlinked"),
        _ => return None,
    };
    Some(tr.id(id))
}

/// The connector form's fields as typed: shown, and shown again with the errors (the
/// client secret never: it is write-only).
#[derive(Deserialize, Default)]
struct ConnectorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    enabled: Option<String>,
    /// `oidc` or `saml`.
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    metadata_url: String,
    #[serde(default)]
    metadata_xml: String,
    #[serde(default)]
    entity_id: String,
    #[serde(default)]
    require_encrypted_assertions: Option<String>,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    remove_client_secret: Option<String>,
    #[serde(default)]
    client_auth: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    just_in_time: Option<String>,
    #[serde(default)]
    trust_upstream_mfa: Option<String>,
    #[serde(default)]
    mfa_acr_values: String,
    #[serde(default)]
    username_claim: String,
    #[serde(default)]
    email_claim: String,
    #[serde(default)]
    name_claim: String,
    #[serde(default)]
    groups_claim: String,
    #[serde(default)]
    role_map: String,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    show_on_login: Option<String>,
    #[serde(default)]
    fhir_user_claim: String,
    #[serde(default)]
    fhir_server: String,
    #[serde(default)]
    domains: String,
}

fn checked(on: bool) -> Option<String> {
    on.then(|| "on".to_owned())
}

fn auth_name(a: UpstreamClientAuth) -> &'static str {
    match a {
        UpstreamClientAuth::ClientSecretBasic => "client_secret_basic",
        UpstreamClientAuth::ClientSecretPost => "client_secret_post",
        UpstreamClientAuth::PrivateKeyJwt => "private_key_jwt",
    }
}

impl ConnectorForm {
    /// A new connector's form: enabled, the default account mapping.
    fn blank(org: &str) -> Self {
        let mut form = Self::from_settings(&ConnectorSettings {
            oidc: None,
            saml: None,
            accounts: AccountMapping::default(),
        });
        form.org = org.to_owned();
        form.enabled = checked(true);
        form
    }

    fn from_settings(s: &ConnectorSettings) -> Self {
        let a = &s.accounts;
        let mut form = Self {
            just_in_time: checked(a.just_in_time),
            trust_upstream_mfa: checked(a.trust_upstream_mfa),
            mfa_acr_values: a.mfa_acr_values.join(" "),
            username_claim: a.username_claim.clone(),
            email_claim: a.email_claim.clone(),
            name_claim: a.name_claim.clone(),
            groups_claim: a.groups_claim.clone().unwrap_or_default(),
            role_map: a
                .role_map
                .iter()
                .map(|(group, role)| format!("{group}={role}\n"))
                .collect(),
            default_role: a.default_role.as_str().to_owned(),
            show_on_login: checked(a.show_on_login),
            fhir_user_claim: a
                .fhir_user
                .as_ref()
                .map(|m| m.claim.clone())
                .unwrap_or_default(),
            fhir_server: a
                .fhir_user
                .as_ref()
                .map(|m| m.fhir_server.clone())
                .unwrap_or_default(),
            client_auth: auth_name(UpstreamClientAuth::default()).to_owned(),
            scopes: "profile email".into(),
            protocol: "oidc".into(),
            ..Self::default()
        };
        if let Some(saml) = &s.saml {
            form.protocol = "saml".into();
            form.metadata_url = saml
                .metadata_url
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            form.metadata_xml = saml.metadata_xml.clone().unwrap_or_default();
            form.entity_id = saml.entity_id.clone().unwrap_or_default();
            form.require_encrypted_assertions = checked(saml.require_encrypted_assertions);
        }
        if let Some(o) = &s.oidc {
            form.issuer = o.issuer.to_string();
            form.client_id = o.client_id.clone();
            form.client_auth = auth_name(o.client_auth).to_owned();
            form.scopes = o.scopes.join(" ");
            form.ca_pem = o.ca_pem.clone().unwrap_or_default();
        }
        form
    }

    fn from_view(v: &ConnectorView) -> Self {
        let mut form = Self::from_settings(&v.settings);
        form.org = v.org_id.clone();
        form.slug = v.slug.clone();
        form.display_name = v.display_name.clone();
        form.enabled = checked(v.enabled);
        form.domains = v.domains.iter().map(|d| format!("{d}\n")).collect();
        form
    }

    /// The connector the form describes, starting from `base` for what the form does
    /// not show; or every field that is wrong, in `tr`'s words. The service checks the
    /// rest.
    fn parse(&self, tr: &Tr, base: &ConnectorSettings) -> Result<ConnectorFields, Vec<String>> {
        let mut errors = FieldErrors::new(tr);
        let mut settings = base.clone();
        let protocol = match self.protocol.as_str() {
            "saml" => UpstreamProtocol::Saml,
            _ => UpstreamProtocol::Oidc,
        };
        if protocol == UpstreamProtocol::Saml {
            settings.oidc = None;
            settings.saml = Some(self.saml(&mut errors));
        } else {
            settings.saml = None;
            self.oidc(&mut settings, &mut errors);
        }
        self.accounts(&mut settings, &mut errors);
        let client_secret = if self.remove_client_secret.is_some() {
            Some(SecretString::from(String::new()))
        } else if self.client_secret.is_empty() || protocol == UpstreamProtocol::Saml {
            None
        } else {
            Some(SecretString::from(self.client_secret.clone()))
        };
        if !errors.said.is_empty() {
            return Err(errors.said);
        }
        Ok(ConnectorFields {
            slug: self.slug.trim().to_owned(),
            display_name: self.display_name.clone(),
            protocol,
            enabled: self.enabled.is_some(),
            settings,
            client_secret,
            domains: self
                .domains
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The SAML part: the IdP's metadata by URL or pasted.
    fn saml(&self, errors: &mut FieldErrors) -> SamlUpstream {
        let (url, xml) = (self.metadata_url.trim(), self.metadata_xml.trim());
        let metadata_url = match url {
            "" => None,
            raw => match url::Url::parse(raw) {
                Ok(u) => Some(u),
                Err(_) => {
                    errors.push(Id("console-field-url"), "metadata_url");
                    None
                }
            },
        };
        let entity_id = self.entity_id.trim();
        SamlUpstream {
            metadata_url,
            metadata_xml: (!xml.is_empty()).then(|| xml.to_owned()),
            entity_id: (!entity_id.is_empty()).then(|| entity_id.to_owned()),
            require_encrypted_assertions: self.require_encrypted_assertions.is_some(),
        }
    }

    /// The OIDC part.
    fn oidc(&self, settings: &mut ConnectorSettings, errors: &mut FieldErrors) {
        let issuer = url::Url::parse(self.issuer.trim());
        if issuer.is_err() {
            errors.push(Id("console-field-url"), "issuer");
        }
        let client_auth = match self.client_auth.as_str() {
            "client_secret_basic" => UpstreamClientAuth::ClientSecretBasic,
            "client_secret_post" => UpstreamClientAuth::ClientSecretPost,
            "private_key_jwt" => UpstreamClientAuth::PrivateKeyJwt,
            _ => {
                errors.push(Id("console-field-method-choice"), "client_auth");
                UpstreamClientAuth::default()
            }
        };
        let ca = self.ca_pem.trim();
        if let Ok(issuer) = issuer {
            let end_upstream_session = settings
                .oidc
                .as_ref()
                .is_none_or(|o| o.end_upstream_session);
            settings.oidc = Some(OidcUpstream {
                issuer,
                client_id: self.client_id.trim().to_owned(),
                client_auth,
                scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
                ca_pem: (!ca.is_empty()).then(|| format!("{ca}\n")),
                end_upstream_session,
            });
        }
    }

    /// The account mapping.
    fn accounts(&self, settings: &mut ConnectorSettings, errors: &mut FieldErrors) {
        let a = &mut settings.accounts;
        a.just_in_time = self.just_in_time.is_some();
        a.trust_upstream_mfa = self.trust_upstream_mfa.is_some();
        a.show_on_login = self.show_on_login.is_some();
        a.mfa_acr_values = self
            .mfa_acr_values
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        a.username_claim = self.username_claim.trim().to_owned();
        a.email_claim = self.email_claim.trim().to_owned();
        a.name_claim = self.name_claim.trim().to_owned();
        let groups = self.groups_claim.trim();
        a.groups_claim = (!groups.is_empty()).then(|| groups.to_owned());
        a.fhir_user = match (self.fhir_user_claim.trim(), self.fhir_server.trim()) {
            ("", "") => None,
            (claim, fhir_server) => Some(FhirUserMapping {
                claim: claim.to_owned(),
                fhir_server: fhir_server.to_owned(),
            }),
        };
        match self.default_role.parse() {
            Ok(role) => a.default_role = role,
            Err(_) => errors.push(Id("console-field-role-choice"), "default_role"),
        }
        a.role_map.clear();
        for line in self
            .role_map
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            match line
                .split_once('=')
                .map(|(g, r)| (g.trim(), r.trim().parse()))
            {
                Some((group, Ok(role))) if !group.is_empty() => {
                    a.role_map.insert(group.to_owned(), role);
                }
                _ => {
                    let id = Id("console-field-role-map-line");
                    let line = format!("{line:?}");
                    let said = errors.tr.a2(id.0, "field", "role_map", "line", &line);
                    errors.said.push(said);
                }
            }
        }
    }
}

/// The form's errors, or the service's refusal of what it describes as a form error;
/// anything else goes to the error page.
fn form_error(tr: &Tr, e: ServiceError) -> Result<(Vec<String>, StatusCode), PageError> {
    match e {
        ServiceError::Invalid(m) => Ok((vec![m], StatusCode::BAD_REQUEST)),
        ServiceError::Conflict(m) => Ok((vec![m], StatusCode::CONFLICT)),
        ServiceError::Forbidden(m) => Ok((vec![forbidden(tr, m)], StatusCode::FORBIDDEN)),
        other => Err(refusal(tr, other).into()),
    }
}

struct ConnectorLine {
    id: String,
    slug: String,
    display_name: String,
    org: String,
    protocol: String,
    enabled: bool,
    domains: String,
}

struct OrgOption {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "admin/connectors.html")]
struct ConnectorsPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    connectors: Vec<ConnectorLine>,
    /// The organisations a new connector may belong to.
    orgs: Vec<OrgOption>,
    form: ConnectorForm,
    errors: Vec<String>,
    creating: bool,
    has_secret: bool,
    action: String,
}

async fn list_page(
    visit: &Visit,
    console: &Console,
    notice: Option<String>,
    form: ConnectorForm,
    errors: Vec<String>,
    status: StatusCode,
) -> Answer {
    let (state, who, tr) = (&visit.state, &console.who, console.tr());
    let all = upstream_service::list_connectors(state, who, None)
        .await
        .said(&tr)?;
    let orgs = org_service::list(state, who).await.said(&tr)?;
    let name = |id: &str| {
        orgs.iter()
            .find(|o| o.id == id)
            .map(|o| o.display_name.clone())
            .unwrap_or_default()
    };
    let connectors = all
        .into_iter()
        .map(|v| ConnectorLine {
            org: name(&v.org_id),
            domains: v.domains.join(", "),
            id: v.id,
            slug: v.slug,
            display_name: v.display_name,
            protocol: v.protocol,
            enabled: v.enabled,
        })
        .collect();
    let page = ConnectorsPage {
        nav: console.nav(),
        tr,
        notice,
        connectors,
        orgs: orgs
            .iter()
            .map(|o| OrgOption {
                id: o.id.clone(),
                name: o.display_name.clone(),
            })
            .collect(),
        form,
        errors,
        creating: true,
        has_secret: false,
        action: "/admin/connectors".into(),
    };
    Ok(render(&page, status))
}

async fn connectors_page(query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    console.who.require(Action::Manage).said(&tr)?;
    let form = ConnectorForm::blank(&console.user.org_id);
    let notice = done_notice(&tr, query.done.as_deref());
    list_page(&visit, &console, notice, form, Vec::new(), StatusCode::OK).await
}

async fn create(form: Form<ConnectorForm>, visit: Visit) -> Answer {
    let mut form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    console.who.require(Action::Manage).said(&tr)?;
    let base = ConnectorSettings {
        oidc: None,
        saml: None,
        accounts: AccountMapping::default(),
    };
    let result = match form.parse(&tr, &base) {
        Ok(fields) => {
            let new = NewConnector {
                org: form.org.clone(),
                fields,
            };
            upstream_service::create_connector(visit.by(&console), new)
                .await
                .map_err(|e| form_error(&tr, e))
        }
        Err(errors) => Err(Ok((errors, StatusCode::BAD_REQUEST))),
    };
    match result {
        Ok(v) => Ok(see_other(&format!(
            "/admin/connectors/{}?done=created",
            v.id
        ))),
        Err(refused) => {
            let (errors, status) = refused?;
            form.client_secret.clear();
            list_page(&visit, &console, None, form, errors, status).await
        }
    }
}

struct LinkLine {
    subject: String,
    user_id: String,
    username: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "admin/connector.html")]
struct ConnectorPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    connector: ConnectorView,
    links: Vec<LinkLine>,
    orgs: Vec<OrgOption>,
    form: ConnectorForm,
    errors: Vec<String>,
    creating: bool,
    has_secret: bool,
    action: String,
}

/// Links shown on a connector's page (with their usernames); the API lists them all.
const LINKS_SHOWN: usize = 500;

async fn link_lines(
    state: &AppState,
    tr: &Tr,
    links: Vec<LinkView>,
) -> Result<Vec<LinkLine>, PageError> {
    let pii = state.pii.clone();
    let ids: Vec<String> = links
        .iter()
        .take(LINKS_SHOWN)
        .map(|l| l.user_id.clone())
        .collect();
    let names: HashMap<String, String> = state
        .store
        .run(move |c| {
            let mut names = HashMap::new();
            for id in ids {
                if let Some(u) = users::find_by_id(c, &pii, &id)? {
                    names.insert(id, u.username);
                }
            }
            Ok(names)
        })
        .await?;
    Ok(links
        .into_iter()
        .take(LINKS_SHOWN)
        .map(|l| LinkLine {
            username: names.get(&l.user_id).cloned().unwrap_or_default(),
            created: tr.datetime(l.created_at),
            last_used: l.last_used_at.map(|t| tr.datetime(t)).unwrap_or_default(),
            subject: l.subject,
            user_id: l.user_id,
        })
        .collect())
}

async fn edit_page(
    visit: &Visit,
    console: &Console,
    connector: ConnectorView,
    notice: Option<String>,
    form: ConnectorForm,
    errors: Vec<String>,
    status: StatusCode,
) -> Answer {
    let (state, tr) = (&visit.state, console.tr());
    let links = upstream_service::list_links(state, &console.who, &connector.id)
        .await
        .said(&tr)?;
    let page = ConnectorPage {
        nav: console.nav(),
        notice,
        links: link_lines(state, &tr, links).await?,
        tr,
        orgs: Vec::new(),
        form,
        errors,
        creating: false,
        has_secret: connector.has_client_secret,
        action: format!("/admin/connectors/{}", connector.id),
        connector,
    };
    Ok(render(&page, status))
}

async fn connector_page(path: Path<String>, query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    let v = upstream_service::show_connector(&visit.state, &console.who, &path)
        .await
        .said(&tr)?;
    let form = ConnectorForm::from_view(&v);
    let notice = done_notice(&tr, query.done.as_deref());
    edit_page(
        &visit,
        &console,
        v,
        notice,
        form,
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

async fn update(path: Path<String>, form: Form<ConnectorForm>, visit: Visit) -> Answer {
    let mut form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    let v = upstream_service::show_connector(&visit.state, &console.who, &path)
        .await
        .said(&tr)?;
    let result = match form.parse(&tr, &v.settings) {
        Ok(fields) => upstream_service::update_connector(visit.by(&console), &v.id, fields)
            .await
            .map_err(|e| form_error(&tr, e)),
        Err(errors) => Err(Ok((errors, StatusCode::BAD_REQUEST))),
    };
    match result {
        Ok(saved) => Ok(see_other(&format!(
            "/admin/connectors/{}?done=saved",
            saved.id
        ))),
        Err(refused) => {
            let (errors, status) = refused?;
            form.client_secret.clear();
            edit_page(&visit, &console, v, None, form, errors, status).await
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: Option<String>,
}

async fn delete(path: Path<String>, form: Form<DeleteForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    if form.confirm.is_none() {
        return Err(AppError::BadRequest(tr.t("console-confirm-delete-first")).into());
    }
    upstream_service::delete_connector(visit.by(&console), &path)
        .await
        .said(&tr)?;
    Ok(see_other("/admin/connectors?done=deleted"))
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    username: String,
}

async fn add_link(path: Path<String>, form: Form<LinkForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let (state, who, tr) = (&visit.state, &console.who, console.tr());
    let v = upstream_service::show_connector(state, who, &path)
        .await
        .said(&tr)?;
    let name = Username::parse(form.username.trim())
        .map_err(|_| AppError::BadRequest(tr.t("console-not-a-username")))?;
    let user = user_service::find_named(state, who, Action::Manage, &name)
        .await
        .said(&tr)?;
    upstream_service::add_link(visit.by(&console), &v.id, &form.subject, &user)
        .await
        .said(&tr)?;
    Ok(see_other(&format!(
        "/admin/connectors/{}?done=linked",
        v.id
    )))
}

async fn remove_link(path: Path<String>, form: Form<LinkForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    let v = upstream_service::show_connector(&visit.state, &console.who, &path)
        .await
        .said(&tr)?;
    upstream_service::remove_link(visit.by(&console), &v.id, &form.subject)
        .await
        .said(&tr)?;
    Ok(see_other(&format!(
        "/admin/connectors/{}?done=unlinked",
        v.id
    )))
}
