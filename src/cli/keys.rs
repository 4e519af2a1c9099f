//! `gatehouse keys`: token and SAML signing keys, and the master key.

use std::time::Duration;

use clap::Subcommand;
use gatehouse::{
    admin::service::keys as service,
    config::Config,
    crypto::MasterKey,
    keys::master::{self, Step},
    startup,
};

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
    /// Replace the master key with a new one and re-seal every sealed secret under it
    /// while instances keep running (DESIGN §12). Interrupted, run it again: it resumes.
    RotateMaster {
        /// Values re-sealed per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
        /// Seconds to wait after announcing the new key, and again after switching
        /// instances to it, so that every instance has followed; at least twice
        /// `master_key_poll_secs` (default: three times it).
        #[arg(long)]
        grace_secs: Option<u64>,
        /// How long this command's claim on the rotation lasts unless renewed: a run
        /// that was killed can be resumed once it has run out.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
        lease_secs: u64,
    },
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    if let KeysCommand::RotateMaster {
        batch_size,
        grace_secs,
        lease_secs,
    } = command
    {
        return rotate_master(config, batch_size, grace_secs, lease_secs).await;
    }
    let op = Operator::open(config).await?;
    match command {
        KeysCommand::Rotate { saml: true, json } => rotate_saml(&op, json).await,
        KeysCommand::Rotate { saml: false, json } => rotate(&op, json).await,
        KeysCommand::RotateMaster { .. } => Ok(()),
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

/// `keys rotate-master`: the steps are in `gatehouse::keys::master`; this prints them.
async fn rotate_master(
    config: Config,
    batch_size: i64,
    grace_secs: Option<u64>,
    lease_secs: u64,
) -> Result<(), String> {
    let poll = config.master_key_poll_secs;
    let grace = grace_secs.unwrap_or(3 * poll);
    if grace < 2 * poll {
        return Err(format!(
            "--grace-secs must be at least twice master_key_poll_secs ({poll}), or an instance could meet a value under a key it has not learnt yet"
        ));
    }
    // Before anything changes: an inline key cannot be replaced, a read-only key
    // directory would stop the rotation at its very end.
    startup::rotation_target(&config).map_err(|e| e.to_string())?;
    let op = Operator::open(config).await?;
    let holder = format!(
        "{} (pid {}, {})",
        super::actor::person(),
        std::process::id(),
        &gatehouse::store::new_id()[..8]
    );
    let run = master::Rotation {
        store: &op.state.store,
        audit: &op.state.audit,
        clock: &op.state.clock,
        loaded: &op.state.master_key,
        actor: &op.who.actor,
        holder,
        batch_size,
        grace: Duration::from_secs(grace),
        lease: Duration::from_secs(lease_secs),
    };
    let config = op.state.config.clone();
    let persist =
        |key: &MasterKey| startup::persist_rotated_key(&config, key).map_err(|e| e.to_string());
    let finished = master::rotate(&run, &persist, &mut print_step)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Master key rotated: {} -> {}; {} values re-sealed by this run. Copy the key file to every host before restarting any instance.",
        finished.old_kid, finished.new_kid, finished.resealed
    );
    Ok(())
}

fn print_step(step: Step<'_>) {
    match step {
        Step::Started {
            old_kid,
            new_kid,
            resumed: false,
            ..
        } => println!(
            "Rotating the master key {old_kid} -> {new_kid}; instances learn the new key within master_key_poll_secs."
        ),
        Step::Started {
            old_kid,
            new_kid,
            resumed: true,
            state,
        } => println!(
            "Resuming the rotation of the master key {old_kid} -> {new_kid} (it was {state})."
        ),
        Step::Waiting { secs, why } => println!("Waiting {secs} s {why}."),
        Step::Resealing => {
            println!("Instances now seal under the new key; re-sealing every stored value.")
        }
        Step::Batch {
            column,
            resealed,
            total,
        } => println!("re-sealed {resealed} in {column} ({total} so far)"),
        Step::Verified => println!("No stored value is left under the old key."),
        Step::Persisted { kid } => println!("The key file now holds key {kid}."),
    }
}
