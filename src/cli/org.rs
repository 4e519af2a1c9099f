//! `gatehouse org`: organisations and their policies (DESIGN §3).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use gatehouse::{
    admin::{
        Action,
        api::orgs::{branding_view, org_view},
        service::orgs as service,
    },
    config::Config,
    domain::{Branding, Logo, OrgName, OrgPolicy},
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Every organisation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One organisation and its policy document.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an organisation.
    Create {
        /// a-z, 0-9 and -, 1 to 63 characters; never changes.
        #[arg(long)]
        name: String,
        /// 1 to 200 characters.
        #[arg(long)]
        display_name: String,
        /// A JSON policy document (as `org show --json` prints under `policy`); default:
        /// the defaults.
        #[arg(long)]
        policy_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Replace an organisation's policy with a JSON policy document; fields left out
    /// take their defaults.
    Policy {
        name: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show an organisation's branding; with `--file`, replace its document (display
    /// name, accent colours, support text, apps); with `--logo`, set its logo (a PNG,
    /// JPEG or WebP of at most 256 KiB); with `--remove-logo`, remove it.
    Branding {
        name: String,
        /// A JSON branding document (as `org branding --json` prints under `branding`).
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "remove_logo")]
        logo: Option<PathBuf>,
        #[arg(long)]
        remove_logo: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: OrgCommand) -> Result<(), String> {
    match command {
        OrgCommand::List { json } => list(config, json).await,
        OrgCommand::Show { name, json } => show(config, &name, json).await,
        OrgCommand::Create {
            name,
            display_name,
            policy_file,
            json,
        } => create(config, &name, &display_name, policy_file.as_deref(), json).await,
        OrgCommand::Policy { name, file, json } => set_policy(config, &name, &file, json).await,
        OrgCommand::Branding {
            name,
            file,
            logo,
            remove_logo,
            json,
        } => {
            let change = BrandingChange {
                file,
                logo,
                remove_logo,
            };
            branding(config, &name, change, json).await
        }
    }
}

fn org_name(raw: &str) -> Result<OrgName, String> {
    OrgName::parse(raw).map_err(|e| format!("name: {e}"))
}

/// A policy document from a file, unknown fields refused with their path named.
fn read_policy(path: &Path) -> Result<OrgPolicy, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| format!("{}: {e}", path.display()))
}

fn print_org(org: gatehouse::store::orgs::OrgRow, json: bool) -> Result<(), String> {
    let view = org_view(org);
    if json {
        return print_json(&view);
    }
    println!("{}\t{}\t{}", view.name, view.display_name, view.id);
    let policy = serde_json::to_string_pretty(&view.policy).map_err(|e| e.to_string())?;
    println!("{policy}");
    Ok(())
}

async fn list(config: Config, json: bool) -> Result<(), String> {
    let op = Operator::open(config).await?;
    let all = service::list(&op.state, &op.who).await.map_err(failed)?;
    let views: Vec<_> = all.into_iter().map(org_view).collect();
    if json {
        return print_json(&views);
    }
    for v in views {
        println!("{}\t{}\t{}", v.name, v.display_name, v.id);
    }
    Ok(())
}

async fn show(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let name = org_name(raw)?;
    let op = Operator::open(config).await?;
    let org = op.org(Action::Read, &name).await?;
    print_org(org, json)
}

async fn create(
    config: Config,
    raw: &str,
    display_name: &str,
    policy_file: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    let name = org_name(raw)?;
    let policy = policy_file
        .map(read_policy)
        .transpose()?
        .unwrap_or_default();
    let op = Operator::open(config).await?;
    let org = service::create(op.by(), name, display_name, policy)
        .await
        .map_err(failed)?;
    if !json {
        println!("created organisation {} ({})", org.name, org.id);
        return Ok(());
    }
    print_org(org, json)
}

async fn set_policy(config: Config, raw: &str, file: &Path, json: bool) -> Result<(), String> {
    let name = org_name(raw)?;
    let policy = read_policy(file)?;
    let op = Operator::open(config).await?;
    let org = op.org(Action::Manage, &name).await?;
    service::set_policy(op.by(), &org, policy)
        .await
        .map_err(failed)?;
    let org = op.org(Action::Read, &name).await?;
    if !json {
        println!("replaced the policy of {}", org.name);
        return Ok(());
    }
    print_org(org, json)
}

/// What `org branding` changes before it shows the result.
struct BrandingChange {
    file: Option<PathBuf>,
    logo: Option<PathBuf>,
    remove_logo: bool,
}

async fn branding(
    config: Config,
    raw: &str,
    change: BrandingChange,
    json: bool,
) -> Result<(), String> {
    let name = org_name(raw)?;
    let document = match &change.file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut de = serde_json::Deserializer::from_slice(&text);
            let doc: Branding = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some(doc)
        }
        None => None,
    };
    let logo = match &change.logo {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("png") => "image/png",
                Some("jpg" | "jpeg") => "image/jpeg",
                Some("webp") => "image/webp",
                _ => return Err("--logo: a .png, .jpg or .webp file".into()),
            };
            Some(Logo::parse(kind, bytes).map_err(|e| format!("--logo: {e}"))?)
        }
        None => None,
    };
    let op = Operator::open(config).await?;
    let action = match (&document, &logo, change.remove_logo) {
        (None, None, false) => Action::Read,
        _ => Action::Manage,
    };
    let org = op.org(action, &name).await?;
    if let Some(document) = document {
        service::set_branding(op.by(), &org, document)
            .await
            .map_err(failed)?;
    }
    if logo.is_some() || change.remove_logo {
        service::set_logo(op.by(), &org, logo)
            .await
            .map_err(failed)?;
    }
    let stored = service::branding(&op.state, &org).await.map_err(failed)?;
    let view = branding_view(&org, stored);
    if json {
        return print_json(&view);
    }
    let document = serde_json::to_string_pretty(&view.branding).map_err(|e| e.to_string())?;
    println!("{document}");
    match &view.logo {
        Some(l) => println!("logo: {} ({} bytes) at {}", l.content_type, l.bytes, l.url),
        None => println!("logo: none"),
    }
    Ok(())
}
