//! `gatehouse sp`: SAML service providers (DESIGN §10).

use clap::Subcommand;
use gatehouse::{
    admin::{api::saml::sp_view, service::saml as service},
    config::Config,
    saml::{
        attributes, metadata_fetch, metadata_refresh,
        providers::{self, ImportSettings, ServiceProvider, SettingsChange},
    },
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum SpCommand {
    /// Register a service provider from its metadata, or update one already registered
    /// (settings not given take their defaults); prints its entity_id.
    Import {
        /// A metadata file, or an https:// URL to fetch it from once.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        metadata: Option<String>,
        /// An https:// URL the metadata is fetched from now and refreshed from on a
        /// schedule (`saml_metadata_refresh_secs`).
        #[arg(long)]
        url: Option<String>,
        /// With --url: a PEM certificate the metadata must be signed by.
        #[arg(long = "pinned-cert", requires = "url")]
        pinned_cert: Option<std::path::PathBuf>,
        /// With --url: the entity to take from a federation aggregate.
        #[arg(long = "entity-id", requires = "url")]
        entity_id: Option<String>,
        #[command(flatten)]
        settings: SpSettingsArgs,
        /// field=AttributeName (fields: email, name, username, roles, organisation), or
        /// a well-known attribute by name (mail, uid, displayName, cn, o,
        /// eduPersonPrincipalName, eduPersonAffiliation, eduPersonScopedAffiliation,
        /// subject-id, pairwise-id, or their urn:oid: names); NAME= leaves it out.
        /// Default: what the SP's metadata requests, else every field. Repeat.
        #[arg(long = "attribute")]
        attributes: Vec<String>,
        /// A RelayState such a sign-in may carry (exact string, e.g. a URL). Repeat.
        #[arg(long = "relay-state")]
        relay_states: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a registered service provider's settings; what is not given is kept.
    Update {
        /// The SP's entity id.
        entity_id: String,
        #[command(flatten)]
        settings: SpSettingsArgs,
        /// The whole release list, replacing it: field=AttributeName or a well-known
        /// attribute's name, as at import. Repeat.
        #[arg(long = "attribute")]
        attributes: Vec<String>,
        /// The RelayStates such a sign-in may carry, replacing the list. Repeat.
        #[arg(long = "relay-state", conflicts_with = "no_relay_states")]
        relay_states: Vec<String>,
        /// Allow no RelayState at all.
        #[arg(long = "no-relay-states")]
        no_relay_states: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fetch a URL-imported service provider's metadata again now and apply it.
    Refresh {
        entity_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Every registered service provider.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One service provider's registration.
    Show {
        entity_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget a service provider.
    Delete {
        entity_id: String,
        #[arg(long)]
        json: bool,
    },
}

/// The settings `sp import` and `sp update` share; at import, what is not given takes
/// its default, at update it is kept.
#[derive(clap::Args)]
pub struct SpSettingsArgs {
    /// A display name (default: the entity id).
    #[arg(long)]
    name: Option<String>,
    /// persistent, email, transient or unspecified (default: the first the SP lists,
    /// else persistent).
    #[arg(long = "name-id-format")]
    name_id_format: Option<String>,
    /// pairwise, user_id, username, email or random (default follows the format).
    #[arg(long = "name-id-source")]
    name_id_source: Option<String>,
    /// Sign the Assertion (default true).
    #[arg(long = "sign-assertion")]
    sign_assertion: Option<bool>,
    /// Sign the Response too (default false).
    #[arg(long = "sign-response")]
    sign_response: Option<bool>,
    /// Refuse unsigned AuthnRequests (default: the metadata's AuthnRequestsSigned).
    #[arg(long = "require-signed-requests")]
    require_signed_requests: Option<bool>,
    /// Encrypt assertions (default: when the SP publishes an encryption key).
    #[arg(long = "encrypt-assertions")]
    encrypt_assertions: Option<bool>,
    /// Accept sign-ins started at Gatehouse, /saml/sso/init (default false).
    #[arg(long = "idp-initiated")]
    idp_initiated: Option<bool>,
}

/// What `sp import` and `sp update` print: the registration as it now stands.
fn print_sp(registered: &ServiceProvider, created: Option<bool>, json: bool) {
    let acs: Vec<&str> = registered.acs.iter().map(|e| e.location.as_str()).collect();
    if json {
        let mut out = serde_json::json!({
            "entity_id": registered.entity_id,
            "acs_urls": acs,
            "skipped_acs": registered.skipped_acs.iter().map(|e| {
                serde_json::json!({"binding": e.binding, "location": e.location})
            }).collect::<Vec<_>>(),
            "name_id_format": registered.name_id_format,
            "attributes": registered.attributes,
            "unsupplied_attributes": registered.unsupplied_attributes,
            "sign_assertion": registered.sign_assertion,
            "sign_response": registered.sign_response,
            "require_signed_requests": registered.require_signed_requests,
            "encrypt_assertions": registered.encrypt_assertions,
            "idp_initiated": registered.idp_initiated,
            "idp_initiated_relay_states": registered.idp_initiated_relay_states,
        });
        if let Some(created) = created {
            out["created"] = created.into();
        }
        println!("{out}");
        return;
    }
    println!("entity_id: {}", registered.entity_id);
    println!(
        "{} with {} ACS URL(s); NameID {}; signs the {}{}{}",
        match created {
            Some(true) => "registered",
            _ => "updated",
        },
        acs.len(),
        registered.name_id_format,
        match (registered.sign_assertion, registered.sign_response) {
            (true, true) => "assertion and the response",
            (false, true) => "response",
            _ => "assertion",
        },
        if registered.encrypt_assertions {
            "; encrypts assertions"
        } else {
            ""
        },
        if registered.require_signed_requests {
            "; requires signed requests"
        } else {
            ""
        },
    );
    if registered.idp_initiated {
        println!(
            "IdP-initiated SSO: on, RelayStates allowed: {}",
            if registered.idp_initiated_relay_states.is_empty() {
                "none".to_owned()
            } else {
                registered.idp_initiated_relay_states.join(" ")
            }
        );
    } else {
        println!("IdP-initiated SSO: off");
    }
    let released: Vec<String> = registered
        .attributes
        .iter()
        .map(|(key, name)| format!("{key} as {name}"))
        .collect();
    println!("attributes: {}", released.join(", "));
    for name in &registered.unsupplied_attributes {
        println!("requested attribute {name}: Gatehouse does not hold it, not released");
    }
    for skipped in &registered.skipped_acs {
        println!(
            "skipped ACS {} ({}): Gatehouse answers by HTTP-POST only",
            skipped.location, skipped.binding
        );
    }
}

pub async fn run(config: Config, command: SpCommand) -> Result<(), String> {
    match command {
        SpCommand::Import { .. } => import(config, command).await,
        SpCommand::Update { .. } => update(config, command).await,
        SpCommand::Refresh { entity_id, json } => refresh(config, &entity_id, json).await,
        SpCommand::List { json } => {
            let op = Operator::open(config).await?;
            let all = service::list(&op.state, &op.who).await.map_err(failed)?;
            if json {
                return print_json(&all.into_iter().map(sp_view).collect::<Vec<_>>());
            }
            if all.is_empty() {
                println!("no service providers");
            }
            for sp in all {
                println!("{}\t{}", sp.entity_id, sp.name);
            }
            Ok(())
        }
        SpCommand::Show { entity_id, json } => {
            let op = Operator::open(config).await?;
            let sp = service::find(&op.state, &op.who, &entity_id)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&sp_view(sp));
            }
            print_sp(&sp, None, false);
            Ok(())
        }
        SpCommand::Delete { entity_id, json } => {
            let op = Operator::open(config).await?;
            service::delete(op.by(), &entity_id).await.map_err(failed)?;
            if json {
                return print_json(&serde_json::json!({ "entity_id": entity_id, "deleted": true }));
            }
            println!("deleted service provider {entity_id}");
            Ok(())
        }
    }
}

async fn import(config: Config, command: SpCommand) -> Result<(), String> {
    let SpCommand::Import {
        metadata,
        url,
        pinned_cert,
        entity_id,
        settings: s,
        attributes,
        relay_states,
        json,
    } = command
    else {
        return Ok(());
    };
    let settings = ImportSettings {
        name: s.name,
        name_id_format: s.name_id_format,
        name_id_source: s.name_id_source,
        attributes,
        sign_assertion: s.sign_assertion,
        sign_response: s.sign_response,
        require_signed_requests: s.require_signed_requests,
        encrypt_assertions: s.encrypt_assertions,
        idp_initiated: s.idp_initiated,
        idp_initiated_relay_states: Some(relay_states),
    };
    if let Some(url) = url {
        let source = url_source(url, pinned_cert.as_deref())?;
        let op = Operator::open(config).await?;
        let (registered, created) =
            service::import_url(op.by(), source, entity_id.as_deref(), settings)
                .await
                .map_err(failed)?;
        print_sp(&registered, Some(created), json);
        return Ok(());
    }
    let document = providers::read_metadata(metadata.as_deref().unwrap_or_default())
        .await
        .map_err(|e| e.to_string())?;
    let op = Operator::open(config).await?;
    let (registered, created) = service::import(op.by(), &document, settings, None)
        .await
        .map_err(failed)?;
    print_sp(&registered, Some(created), json);
    Ok(())
}

/// `--url` and `--pinned-cert FILE` as the service takes them.
fn url_source(
    url: String,
    pinned_cert: Option<&std::path::Path>,
) -> Result<metadata_refresh::Source, String> {
    let pinned_cert = match pinned_cert {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("--pinned-cert {}: {e}", path.display()))?;
            Some(metadata_fetch::pinned_certificate(&pem).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(metadata_refresh::Source { url, pinned_cert })
}

async fn refresh(config: Config, entity_id: &str, json: bool) -> Result<(), String> {
    let op = Operator::open(config).await?;
    let refreshed = service::refresh(op.by(), entity_id).await.map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({
            "entity_id": refreshed.entity_id,
            "url": metadata_refresh::shown_url(&refreshed.url),
            "changed": refreshed.changed,
        }));
    }
    if refreshed.changed.is_empty() {
        println!("refreshed {entity_id}: nothing changed");
    } else {
        println!(
            "refreshed {entity_id}: changed {}",
            refreshed.changed.join(", ")
        );
    }
    Ok(())
}

async fn update(config: Config, command: SpCommand) -> Result<(), String> {
    let SpCommand::Update {
        entity_id,
        settings: s,
        attributes,
        relay_states,
        no_relay_states,
        json,
    } = command
    else {
        return Ok(());
    };
    let change = SettingsChange {
        name: s.name,
        name_id_format: s.name_id_format,
        name_id_source: s.name_id_source,
        sign_assertion: s.sign_assertion,
        sign_response: s.sign_response,
        require_signed_requests: s.require_signed_requests,
        encrypt_assertions: s.encrypt_assertions,
        idp_initiated: s.idp_initiated,
        idp_initiated_relay_states: (no_relay_states || !relay_states.is_empty())
            .then_some(relay_states),
        attributes: release_list(&attributes)?,
    };
    let op = Operator::open(config).await?;
    let registered = service::update(op.by(), &entity_id, change)
        .await
        .map_err(failed)?;
    print_sp(&registered, None, json);
    Ok(())
}

/// The release list `--attribute` gives to `sp update` (none: keep it).
fn release_list(
    pairs: &[String],
) -> Result<Option<std::collections::BTreeMap<String, String>>, String> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut list = std::collections::BTreeMap::new();
    attributes::apply(&mut list, pairs).map_err(|e| format!("attribute: {e}"))?;
    Ok(Some(list))
}
