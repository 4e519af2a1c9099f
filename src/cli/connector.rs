//! `gatehouse connector`: an organisation's upstream identity providers and the links
//! from their identities to accounts (DESIGN §16). Connectors are named by their slug.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gatehouse::{
    admin::{
        Action,
        service::upstream::{
            self as service, ConnectorFields, ConnectorView, LinkView, NewConnector,
        },
    },
    config::Config,
    domain::{
        AccountMapping, ConnectorSettings, FhirUserMapping, OidcUpstream, OrgName, Role,
        UpstreamClientAuth, UpstreamProtocol, Username,
    },
};
use secrecy::SecretString;

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// The connectors of an organisation (default: of every organisation).
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One connector (never its secret).
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a connector; its callback URL (`redirect_uri`) is what to register at
    /// the upstream.
    Create {
        #[arg(long, default_value = "default")]
        org: String,
        /// 1 to 40 of a-z, 0-9 and -, unique across organisations.
        #[arg(long)]
        slug: String,
        /// The sign-in button's text.
        #[arg(long)]
        display_name: String,
        /// Create it switched off.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change a connector; what is not given is kept.
    Update {
        slug: String,
        /// A new name in URLs (the upstream's registered callback changes with it).
        #[arg(long)]
        new_slug: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Forget the stored client secret.
        #[arg(long, conflicts_with = "client_secret_stdin")]
        remove_client_secret: bool,
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Switch a connector on.
    Enable {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Switch a connector off: its button and domains no longer lead anywhere.
    Disable {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a connector with its domains and links (the accounts stay).
    Delete {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// The links of a connector, or (`--user`) of an account.
    Links {
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        slug: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Link an upstream identity (its `sub`) to an account of the connector's
    /// organisation.
    Link {
        slug: String,
        #[arg(long)]
        subject: String,
        /// The account's username.
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the link of an upstream identity.
    Unlink {
        slug: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        json: bool,
    },
}

/// The settings, as flags or as one JSON document (`--settings-file`).
#[derive(Args)]
pub struct SettingsArgs {
    /// `oidc` (default) or `saml`.
    #[arg(long)]
    protocol: Option<String>,
    /// The upstream's issuer (https; its discovery document is read from it).
    #[arg(long)]
    issuer: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    /// Read the client secret from the first line of standard input (empty: none).
    #[arg(long)]
    client_secret_stdin: bool,
    /// client_secret_basic (default), client_secret_post or private_key_jwt.
    #[arg(long)]
    client_auth: Option<String>,
    /// A scope asked for besides openid; repeat. Given, replaces the scopes.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A PEM certificate (or chain) to trust for the upstream.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// An email domain whose users are sent to this connector; repeat. Given, replaces
    /// the domains.
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Forget every email domain.
    #[arg(long, conflicts_with = "domains")]
    no_domains: bool,
    /// Create accounts just in time at the first upstream sign-in.
    #[arg(long, conflicts_with = "no_jit")]
    jit: bool,
    /// Never create accounts: only linked ones sign in.
    #[arg(long)]
    no_jit: bool,
    /// The upstream's MFA satisfies ours.
    #[arg(long, conflicts_with = "no_trust_upstream_mfa")]
    trust_upstream_mfa: bool,
    /// Always ask for Gatehouse's own second factor where the policy wants one.
    #[arg(long)]
    no_trust_upstream_mfa: bool,
    /// The role of accounts created just in time whose groups map to none.
    #[arg(long)]
    default_role: Option<String>,
    /// The claim holding the person's groups, for --role-map.
    #[arg(long)]
    groups_claim: Option<String>,
    /// `group=role`: members of the upstream group get the role; repeat. Given,
    /// replaces the map.
    #[arg(long = "role-map")]
    role_map: Vec<String>,
    /// `claim=FHIR base URL`: the claim (SAML attribute Name) holding the person's
    /// FHIR resource (`Practitioner/123`) on that registered FHIR server, taken at each
    /// sign-in (SMART `fhirUser`). An empty value stops mapping it.
    #[arg(long = "fhir-user")]
    fhir_user: Option<String>,
    /// The whole settings document (JSON), instead of the flags above.
    #[arg(long, conflicts_with_all = ["issuer", "client_id", "client_auth", "scopes", "ca_file", "jit", "no_jit", "trust_upstream_mfa", "no_trust_upstream_mfa", "default_role", "groups_claim", "role_map", "fhir_user"])]
    settings_file: Option<PathBuf>,
}

fn protocol(raw: Option<&str>, current: UpstreamProtocol) -> Result<UpstreamProtocol, String> {
    match raw {
        None => Ok(current),
        Some("oidc") => Ok(UpstreamProtocol::Oidc),
        Some("saml") => Ok(UpstreamProtocol::Saml),
        Some(_) => Err("--protocol: one of oidc, saml".into()),
    }
}

impl SettingsArgs {
    /// `current` with the flags (or the file) applied.
    fn apply(&self, mut s: ConnectorSettings) -> Result<ConnectorSettings, String> {
        if let Some(path) = &self.settings_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--settings-file {}: {e}", path.display()))?;
            let mut de = serde_json::Deserializer::from_str(&text);
            return serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                format!("--settings-file: {path}: {}", e.into_inner())
            });
        }
        self.apply_oidc(&mut s)?;
        let a: &mut AccountMapping = &mut s.accounts;
        if self.jit || self.no_jit {
            a.just_in_time = self.jit;
        }
        if self.trust_upstream_mfa || self.no_trust_upstream_mfa {
            a.trust_upstream_mfa = self.trust_upstream_mfa;
        }
        if let Some(raw) = &self.default_role {
            a.default_role = role(raw).map_err(|e| format!("--default-role: {e}"))?;
        }
        if let Some(claim) = &self.groups_claim {
            a.groups_claim = (!claim.is_empty()).then(|| claim.clone());
        }
        if !self.role_map.is_empty() {
            a.role_map.clear();
            for pair in &self.role_map {
                let (group, raw) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--role-map {pair:?}: group=role"))?;
                let r = role(raw).map_err(|e| format!("--role-map {pair:?}: {e}"))?;
                a.role_map.insert(group.to_owned(), r);
            }
        }
        match self.fhir_user.as_deref() {
            None => {}
            Some("") => a.fhir_user = None,
            Some(pair) => {
                let (claim, base) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--fhir-user {pair:?}: claim=FHIR base URL"))?;
                a.fhir_user = Some(FhirUserMapping {
                    claim: claim.to_owned(),
                    fhir_server: base.to_owned(),
                });
            }
        }
        Ok(s)
    }

    fn apply_oidc(&self, s: &mut ConnectorSettings) -> Result<(), String> {
        let touched = self.issuer.is_some()
            || self.client_id.is_some()
            || self.client_auth.is_some()
            || !self.scopes.is_empty()
            || self.ca_file.is_some();
        if !touched {
            return Ok(());
        }
        let mut oidc = match s.oidc.take() {
            Some(o) => o,
            None => {
                let (Some(issuer), Some(client_id)) = (&self.issuer, &self.client_id) else {
                    return Err("--issuer and --client-id are required".into());
                };
                OidcUpstream {
                    issuer: issuer_url(issuer)?,
                    client_id: client_id.clone(),
                    client_auth: UpstreamClientAuth::default(),
                    scopes: vec!["profile".into(), "email".into()],
                    ca_pem: None,
                    end_upstream_session: true,
                }
            }
        };
        if let Some(issuer) = &self.issuer {
            oidc.issuer = issuer_url(issuer)?;
        }
        if let Some(id) = &self.client_id {
            oidc.client_id = id.clone();
        }
        if let Some(raw) = &self.client_auth {
            oidc.client_auth = match raw.as_str() {
                "client_secret_basic" => UpstreamClientAuth::ClientSecretBasic,
                "client_secret_post" => UpstreamClientAuth::ClientSecretPost,
                "private_key_jwt" => UpstreamClientAuth::PrivateKeyJwt,
                _ => return Err("--client-auth: one of client_secret_basic, client_secret_post, private_key_jwt".into()),
            };
        }
        if !self.scopes.is_empty() {
            oidc.scopes = self.scopes.clone();
        }
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
            oidc.ca_pem = Some(pem);
        }
        s.oidc = Some(oidc);
        Ok(())
    }

    /// The secret from standard input, when asked for.
    fn secret(&self) -> Result<Option<SecretString>, String> {
        if !self.client_secret_stdin {
            return Ok(None);
        }
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the client secret from standard input: {e}"))?;
        Ok(Some(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        )))
    }

    /// The domains: the ones given, none, or `current`.
    fn domains(&self, current: Vec<String>) -> Vec<String> {
        if self.no_domains {
            Vec::new()
        } else if self.domains.is_empty() {
            current
        } else {
            self.domains.clone()
        }
    }
}

fn issuer_url(raw: &str) -> Result<url::Url, String> {
    url::Url::parse(raw).map_err(|e| format!("--issuer: {e}"))
}

fn role(raw: &str) -> Result<Role, String> {
    raw.parse::<Role>().map_err(|e| e.to_string())
}

fn print_connector(v: &ConnectorView) {
    println!("slug:          {}", v.slug);
    println!("id:            {}", v.id);
    println!("display name:  {}", v.display_name);
    println!("protocol:      {}", v.protocol);
    println!("enabled:       {}", v.enabled);
    if let Some(oidc) = &v.settings.oidc {
        println!("issuer:        {}", oidc.issuer);
        println!("client id:     {}", oidc.client_id);
    }
    println!(
        "client secret: {}",
        if v.has_client_secret { "set" } else { "none" }
    );
    println!("domains:       {}", v.domains.join(" "));
    println!("redirect uri:  {}", v.redirect_uri);
}

fn print_links(links: &[LinkView]) {
    if links.is_empty() {
        println!("no links");
    }
    for l in links {
        println!(
            "{}\t{}\t{}\tsince {}",
            l.connector_slug,
            l.subject,
            l.user_id,
            l.created_at.to_rfc3339()
        );
    }
}

/// Switches the connector on or off; `changed` false when it already was so.
async fn switch(op: &Operator, v: ConnectorView, on: bool, json: bool) -> Result<(), String> {
    let (v, changed) = service::set_enabled(op.by(), &v.id, on)
        .await
        .map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({ "changed": changed, "connector": v }));
    }
    let state = if on { "enabled" } else { "disabled" };
    match changed {
        true => println!("{} is now {state}", v.slug),
        false => println!("{} was already {state}", v.slug),
    }
    Ok(())
}

pub async fn run(config: Config, command: ConnectorCommand) -> Result<(), String> {
    // A connector may be the first thing made in a fresh installation's default
    // organisation, as an account may.
    let op = match &command {
        ConnectorCommand::Create { .. } => Operator::open_for_accounts(config).await?,
        _ => Operator::open(config).await?,
    };
    let named = |slug: String| {
        let op = &op;
        async move {
            service::show_connector_named(&op.state, &op.who, &slug)
                .await
                .map_err(failed)
        }
    };
    let show = |v: ConnectorView, json: bool, said: &str| {
        if json {
            return print_json(&v);
        }
        println!("{said} {}: {}", v.slug, v.redirect_uri);
        Ok(())
    };
    match command {
        ConnectorCommand::List { org, json } => {
            let org = match org {
                Some(raw) => {
                    let name = OrgName::parse(&raw).map_err(|e| format!("--org: {e}"))?;
                    Some(op.org(Action::Manage, &name).await?.id)
                }
                None => None,
            };
            let all = service::list_connectors(&op.state, &op.who, org.as_deref())
                .await
                .map_err(failed)?;
            if json {
                return print_json(&all);
            }
            if all.is_empty() {
                println!("no connectors");
            }
            for v in all {
                let state = if v.enabled { "enabled" } else { "disabled" };
                println!("{}\t{}\t{state}\t{}", v.slug, v.protocol, v.display_name);
            }
        }
        ConnectorCommand::Show { slug, json } => {
            let v = named(slug).await?;
            if json {
                return print_json(&v);
            }
            print_connector(&v);
        }
        ConnectorCommand::Create {
            org,
            slug,
            display_name,
            disabled,
            settings,
            json,
        } => {
            let name = OrgName::parse(&org).map_err(|e| format!("--org: {e}"))?;
            let org = op.org(Action::Manage, &name).await?;
            let fields = ConnectorFields {
                slug,
                display_name,
                protocol: protocol(settings.protocol.as_deref(), UpstreamProtocol::Oidc)?,
                enabled: !disabled,
                settings: settings.apply(ConnectorSettings {
                    oidc: None,
                    saml: None,
                    accounts: AccountMapping::default(),
                })?,
                client_secret: settings.secret()?,
                domains: settings.domains(Vec::new()),
            };
            let new = NewConnector {
                org: org.id,
                fields,
            };
            let v = service::create_connector(op.by(), new)
                .await
                .map_err(failed)?;
            show(v, json, "created")?;
        }
        ConnectorCommand::Update {
            slug,
            new_slug,
            display_name,
            remove_client_secret,
            settings,
            json,
        } => {
            let v = named(slug).await?;
            let current = match v.protocol.as_str() {
                "saml" => UpstreamProtocol::Saml,
                _ => UpstreamProtocol::Oidc,
            };
            let client_secret = if remove_client_secret {
                Some(SecretString::from(String::new()))
            } else {
                settings.secret()?
            };
            let fields = ConnectorFields {
                slug: new_slug.unwrap_or_else(|| v.slug.clone()),
                display_name: display_name.unwrap_or_else(|| v.display_name.clone()),
                protocol: protocol(settings.protocol.as_deref(), current)?,
                enabled: v.enabled,
                settings: settings.apply(v.settings.clone())?,
                client_secret,
                domains: settings.domains(v.domains.clone()),
            };
            let v = service::update_connector(op.by(), &v.id, fields)
                .await
                .map_err(failed)?;
            show(v, json, "updated")?;
        }
        ConnectorCommand::Enable { slug, json } => {
            switch(&op, named(slug).await?, true, json).await?
        }
        ConnectorCommand::Disable { slug, json } => {
            switch(&op, named(slug).await?, false, json).await?
        }
        ConnectorCommand::Delete { slug, json } => {
            let v = named(slug).await?;
            service::delete_connector(op.by(), &v.id)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&serde_json::json!({ "changed": true }));
            }
            println!("deleted {}", v.slug);
        }
        ConnectorCommand::Links { slug, user, json } => {
            let links = match (slug, user) {
                (_, Some(raw)) => {
                    let name = Username::parse(&raw).map_err(|e| format!("--user: {e}"))?;
                    let user = op.user(Action::Manage, &name).await?;
                    service::links_of_user(&op.state, &op.who, &user).await
                }
                (Some(slug), None) => {
                    let v = named(slug).await?;
                    service::list_links(&op.state, &op.who, &v.id).await
                }
                (None, None) => return Err("a connector's slug or --user is required".into()),
            }
            .map_err(failed)?;
            if json {
                return print_json(&links);
            }
            print_links(&links);
        }
        ConnectorCommand::Link {
            slug,
            subject,
            user,
            json,
        } => {
            let v = named(slug).await?;
            let name = Username::parse(&user).map_err(|e| format!("--user: {e}"))?;
            let user = op.user(Action::Manage, &name).await?;
            let link = service::add_link(op.by(), &v.id, &subject, &user)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&link);
            }
            println!("linked {} at {} to {}", link.subject, v.slug, user.username);
        }
        ConnectorCommand::Unlink {
            slug,
            subject,
            json,
        } => {
            let v = named(slug).await?;
            service::remove_link(op.by(), &v.id, &subject)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&serde_json::json!({ "changed": true }));
            }
            println!("unlinked {subject} at {}", v.slug);
        }
    }
    Ok(())
}
