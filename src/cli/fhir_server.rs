//! `gatehouse fhir-server`: FHIR servers registered as resource servers (DESIGN §18),
//! through the admin service the API uses, audited alike. Named by their base URL.

use clap::{Args, Subcommand};
use gatehouse::{
    admin::{
        Action,
        service::fhir_servers::{self as service, FhirServerFields, FhirUser},
    },
    config::Config,
    domain::Username,
    store::fhir_servers::FhirServerRow,
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum FhirServerCommand {
    /// The registered FHIR servers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One FHIR server, by its base URL.
    Show {
        base_url: String,
        #[arg(long)]
        json: bool,
    },
    /// Register a FHIR server.
    Create {
        #[command(flatten)]
        fields: Fields,
        #[arg(long)]
        json: bool,
    },
    /// Replace a FHIR server's registration (every field, as `create` takes them).
    Update {
        /// The base URL it is registered under now.
        current: String,
        #[command(flatten)]
        fields: Fields,
        #[arg(long)]
        json: bool,
    },
    /// Remove a FHIR server's registration.
    Delete {
        base_url: String,
        #[arg(long)]
        json: bool,
    },
    /// A user's FHIR resources (`fhirUser`), one per server.
    Users {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's FHIR resource on a server (`Practitioner/123`, `Patient/abc`, …).
    SetUser {
        username: String,
        base_url: String,
        fhir_user: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's FHIR resource on a server.
    ClearUser {
        username: String,
        base_url: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct Fields {
    /// The server's FHIR base URL: what `aud` names and the tokens' audience.
    #[arg(long)]
    base_url: String,
    #[arg(long)]
    display_name: String,
    /// A clinical SMART scope it accepts (`patient/*.rs`); repeat for more.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A client id that may ask for tokens to it; repeat for more.
    #[arg(long = "client")]
    clients: Vec<String>,
}

impl From<Fields> for FhirServerFields {
    fn from(f: Fields) -> Self {
        Self {
            base_url: f.base_url,
            display_name: f.display_name,
            allowed_scopes: f.scopes,
            allowed_clients: f.clients,
        }
    }
}

pub async fn run(config: Config, command: FhirServerCommand) -> Result<(), String> {
    let op = Operator::open(config).await?;
    let (row, json) = match command {
        FhirServerCommand::Users { username, json } => {
            let user = op.user(Action::Read, &username_of(&username)?).await?;
            let found = service::user_references(op.by(), &user)
                .await
                .map_err(failed)?;
            return fhir_users(&found, json);
        }
        FhirServerCommand::SetUser {
            username,
            base_url,
            fhir_user,
            json,
        } => {
            let user = op.user(Action::Manage, &username_of(&username)?).await?;
            let set = service::set_user_reference(op.by(), &user, &base_url, &fhir_user)
                .await
                .map_err(failed)?;
            return fhir_users(&[set], json);
        }
        FhirServerCommand::ClearUser {
            username,
            base_url,
            json,
        } => {
            let user = op.user(Action::Manage, &username_of(&username)?).await?;
            let cleared = service::clear_user_reference(op.by(), &user, &base_url)
                .await
                .map_err(failed)?;
            return fhir_users(&[cleared], json);
        }
        FhirServerCommand::List { json } => {
            let rows = service::list(&op.state, &op.who).await.map_err(failed)?;
            if json {
                let views: Vec<_> = rows.iter().map(view).collect();
                return print_json(&views);
            }
            for row in &rows {
                println!("{}  {}  {}", row.id, row.base_url, row.display_name);
            }
            return Ok(());
        }
        FhirServerCommand::Show { base_url, json } => (
            service::by_base_url(&op.state, &op.who, &base_url)
                .await
                .map_err(failed)?,
            json,
        ),
        FhirServerCommand::Create { fields, json } => (
            service::create(op.by(), fields.into())
                .await
                .map_err(failed)?,
            json,
        ),
        FhirServerCommand::Update {
            current,
            fields,
            json,
        } => {
            let row = service::by_base_url(&op.state, &op.who, &current)
                .await
                .map_err(failed)?;
            let updated = service::update(op.by(), &row.id, fields.into())
                .await
                .map_err(failed)?;
            (updated, json)
        }
        FhirServerCommand::Delete { base_url, json } => {
            let row = service::by_base_url(&op.state, &op.who, &base_url)
                .await
                .map_err(failed)?;
            (
                service::delete(op.by(), &row.id).await.map_err(failed)?,
                json,
            )
        }
    };
    if json {
        return print_json(&view(&row));
    }
    println!(
        "{}  {}  {}\n  scopes: {}\n  clients: {}",
        row.id,
        row.base_url,
        row.display_name,
        row.scopes().join(" "),
        row.clients().join(" ")
    );
    Ok(())
}

fn username_of(raw: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| format!("username: {e}"))
}

fn fhir_users(found: &[FhirUser], json: bool) -> Result<(), String> {
    if json {
        return print_json(&found);
    }
    for f in found {
        println!("{}  {}", f.base_url, f.fhir_user);
    }
    Ok(())
}

fn view(row: &FhirServerRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "base_url": row.base_url,
        "display_name": row.display_name,
        "allowed_scopes": row.scopes(),
        "allowed_clients": row.clients(),
        "created_at": row.created_at.and_utc(),
        "updated_at": row.updated_at.and_utc(),
    })
}
