//! `gatehouse passkey`: a user's passkeys (DESIGN §17), listed and removed as the admin
//! console and API do, through the same service and audit.

use clap::Subcommand;
use gatehouse::{
    admin::{Action, service::passkeys as service},
    config::Config,
    domain::Username,
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum PasskeyCommand {
    /// The passkeys of a user: id, name, kind, when added and last used.
    List {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove one of a user's passkeys (its id from `list`); the user is told by mail.
    Remove {
        username: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: PasskeyCommand) -> Result<(), String> {
    match command {
        PasskeyCommand::List { username, json } => list(config, &username, json).await,
        PasskeyCommand::Remove { username, id, json } => remove(config, &username, &id, json).await,
    }
}

async fn list(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let name = Username::parse(raw).map_err(|e| format!("username: {e}"))?;
    let op = Operator::open(config).await?;
    let user = op.user(Action::Read, &name).await?;
    let passkeys = service::list(op.by(), &user).await.map_err(failed)?;
    if json {
        return print_json(&passkeys);
    }
    if passkeys.is_empty() {
        println!("{} has no passkey", user.username);
    }
    for p in passkeys {
        let kind = if p.synced { "synced" } else { "device-bound" };
        let used = p
            .last_used_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into());
        println!(
            "{}  {}  {kind}  added {}  last used {used}",
            p.id,
            p.name,
            p.created_at.to_rfc3339()
        );
    }
    Ok(())
}

async fn remove(config: Config, raw: &str, id: &str, json: bool) -> Result<(), String> {
    let name = Username::parse(raw).map_err(|e| format!("username: {e}"))?;
    let op = Operator::open(config).await?;
    let user = op.user(Action::Support, &name).await?;
    let removed = service::remove(op.by(), &user, id).await.map_err(failed)?;
    if json {
        return print_json(&removed);
    }
    println!(
        "removed the passkey \"{}\" of {}",
        removed.name, user.username
    );
    Ok(())
}
