//! `gatehouse keys`: token and SAML signing keys.

use clap::Subcommand;
use gatehouse::{admin::service::keys as service, config::Config};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Start signing with the published next key, retire the current one (still
    /// published until its tokens expire) and publish a new next key.
    Rotate {
        /// Rotate the SAML signing key (and certificate) instead of the OIDC token keys.
        #[arg(long)]
        saml: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every token signing key: public facts only.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    let op = Operator::open(config).await?;
    match command {
        KeysCommand::Rotate { saml: true, json } => rotate_saml(&op, json).await,
        KeysCommand::Rotate { saml: false, json } => rotate(&op, json).await,
        KeysCommand::List { json } => {
            let rows = service::list(&op.state, &op.who).await.map_err(failed)?;
            if json {
                let keys: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "kid": r.kid,
                            "alg": r.alg,
                            "state": r.state,
                            "created_at": r.created_at.and_utc(),
                            "activated_at": r.activated_at.map(|t| t.and_utc()),
                            "retired_at": r.retired_at.map(|t| t.and_utc()),
                        })
                    })
                    .collect();
                return print_json(&keys);
            }
            for r in rows {
                println!("{}\t{}\t{}", r.kid, r.alg, r.state);
            }
            Ok(())
        }
    }
}

async fn rotate(op: &Operator, json: bool) -> Result<(), String> {
    let rotated = service::rotate(op.by()).await.map_err(failed)?;
    if json {
        let keys: Vec<_> = rotated
            .iter()
            .map(|r| serde_json::json!({ "alg": r.alg, "active_kid": r.active_kid, "next_kid": r.next_kid }))
            .collect();
        return print_json(&serde_json::json!({ "rotated": keys }));
    }
    for r in &rotated {
        println!(
            "{}: signing with key {}; key {} is published and signs at the next rotation.",
            r.alg, r.active_kid, r.next_kid
        );
    }
    println!("Running instances pick this up within signing_key_reload_secs.");
    Ok(())
}

/// `keys rotate --saml`: the SAML key published as next starts signing (DESIGN §10).
async fn rotate_saml(op: &Operator, json: bool) -> Result<(), String> {
    let r = service::rotate_saml(op.by()).await.map_err(failed)?;
    if json {
        return print_json(
            &serde_json::json!({ "saml": { "active_id": r.active_id, "next_id": r.next_id } }),
        );
    }
    println!(
        "SAML: signing with key {}; key {} is published in the metadata and signs at the next rotation.",
        r.active_id, r.next_id
    );
    println!("Running instances pick this up within signing_key_reload_secs.");
    Ok(())
}
