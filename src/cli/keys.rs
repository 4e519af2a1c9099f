//! `gatehouse keys`: token and SAML signing keys, and sealing a TLS key.

use std::path::PathBuf;

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
    /// Seal a PEM TLS private key under the master key, for `tls_key`: the sealed file
    /// opens only on a Gatehouse holding this master key. Overwrites nothing.
    SealTlsKey {
        /// The clear PEM private key.
        #[arg(long = "in", value_name = "PEM")]
        input: PathBuf,
        /// Where to write the sealed key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    if let KeysCommand::SealTlsKey { input, out } = &command {
        return seal_tls_key(&config, input, out);
    }
    let op = Operator::open(config).await?;
    match command {
        KeysCommand::Rotate { saml: true, json } => rotate_saml(&op, json).await,
        KeysCommand::Rotate { saml: false, json } => rotate(&op, json).await,
        KeysCommand::SealTlsKey { .. } => unreachable!("handled before opening the store"),
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

/// `keys seal-tls-key`: needs the master key only, not the database.
fn seal_tls_key(
    config: &Config,
    input: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), String> {
    let master = gatehouse::startup::load_master_key(config).map_err(|e| e.to_string())?;
    gatehouse::web::tls::seal_key_file(input, out, &master).map_err(|e| e.to_string())?;
    println!(
        "Sealed {} into {} under master key {}. Set tls_key to the sealed file; remove the clear one once it is no longer needed.",
        input.display(),
        out.display(),
        master.kid()
    );
    Ok(())
}
