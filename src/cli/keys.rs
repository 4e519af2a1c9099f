//! `gatehouse keys`: token and SAML signing keys, sealing a TLS key, and the master
//! key: its passphrase-sealed file (`init-master`) and its rotation (`rotate-master`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};
use gatehouse::{
    admin::service::keys as service,
    config::{Config, MasterKeySource, PassphrasePrompt},
    crypto::{
        CryptoError, MIN_PASSPHRASE_CHARS, MasterKey, create_sealed_key_file, is_sealed_key_file,
        sealed_key_file_kid, write_sealed_key_file,
    },
    keys::master::{self, Step},
    startup,
};

use super::{Operator, failed, passphrase, print_json};

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
    /// Create the master key file sealed with a passphrase (argon2id and AES-256-GCM):
    /// a new key, or with --from-plain the key of an existing plaintext key file.
    /// The passphrase (at least 12 characters) comes from standard input
    /// (--passphrase-stdin), a file descriptor (--passphrase-fd N), or is typed twice
    /// on the terminal; never from an argument or an environment variable.
    InitMaster(InitMasterArgs),
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

#[derive(Args)]
pub struct InitMasterArgs {
    /// Read the passphrase from standard input, to its end (one trailing newline is
    /// dropped).
    #[arg(long)]
    passphrase_stdin: bool,
    /// Where to write it (default: master_key_file, else data_dir/master.key). An
    /// existing file is never replaced, except by --from-plain.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Seal the key already in the plaintext key file at that path, in place: the
    /// same key (same kid), so everything sealed under it still opens.
    #[arg(long)]
    from_plain: bool,
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    match command {
        // Needs no database: `main` runs it before anything is opened.
        KeysCommand::InitMaster(_) => Err("keys init-master cannot run here".into()),
        KeysCommand::SealTlsKey { input, out } => seal_tls_key(&config, &input, &out),
        KeysCommand::RotateMaster {
            batch_size,
            grace_secs,
            lease_secs,
        } => rotate_master(config, batch_size, grace_secs, lease_secs).await,
        KeysCommand::Rotate { saml: true, json } => {
            rotate_saml(&Operator::open(config).await?, json).await
        }
        KeysCommand::Rotate { saml: false, json } => {
            rotate(&Operator::open(config).await?, json).await
        }
        KeysCommand::List { json } => list(&Operator::open(config).await?, json).await,
    }
}

/// `keys list`: every token signing key, public facts only.
async fn list(op: &Operator, json: bool) -> Result<(), String> {
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

/// `keys init-master`: every check that can fail is made before the passphrase is
/// asked for, and nothing is written unless all of them pass.
pub fn init_master(
    config: &Config,
    args: &InitMasterArgs,
    passphrase_fd: Option<u32>,
) -> Result<(), String> {
    if config.master_key.is_some() {
        return Err(
            "master_key (GATEHOUSE_MASTER_KEY) is set: a sealed file replaces it; \
             write the key to a file (mode 0600), point master_key_file at it, unset \
             master_key, then run keys init-master --from-plain"
                .into(),
        );
    }
    let path = args
        .file
        .clone()
        .or_else(|| config.master_key_file.clone())
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    let purpose = format!("the new master key file {}", path.display());
    let key = if args.from_plain {
        if is_sealed_key_file(&path).map_err(|e| e.to_string())? {
            return Err(format!(
                "master key file {path:?} is already sealed with a passphrase"
            ));
        }
        MasterKey::from_file(&path).map_err(|e| e.to_string())?
    } else {
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(CryptoError::KeyFileExists { path }.to_string());
        }
        if path.parent() == Some(config.data_dir.as_path()) {
            create_private_dir(&config.data_dir)?;
        }
        MasterKey::generate()
    };
    let passphrase = passphrase::new_passphrase(args.passphrase_stdin, passphrase_fd, &purpose)
        .map_err(|e| e.to_string())?;
    if args.from_plain {
        write_sealed_key_file(&path, &key, &passphrase).map_err(|e| e.to_string())?;
        println!(
            "Sealed master key {} in {} under the passphrase; the same key, so everything sealed still opens.\n\
             Remove every other plaintext copy of it (backups, GATEHOUSE_MASTER_KEY).",
            key.kid(),
            path.display()
        );
    } else {
        create_sealed_key_file(&path, &key, &passphrase).map_err(|e| e.to_string())?;
        println!(
            "Created master key {} in {}, sealed under the passphrase.\n\
             Back up this file and keep the passphrase apart from it: without both, sealed secrets cannot be opened.",
            key.kid(),
            path.display()
        );
    }
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("data_dir {}: {e}", dir.display()))
}

/// For `config check`: which kind of master key is configured, and where.
pub fn describe_master_key(config: &Config) -> String {
    let file = |path: &std::path::Path, generated: bool| match is_sealed_key_file(path) {
        Ok(true) => match sealed_key_file_kid(path) {
            Ok(kid) => format!(
                "passphrase-sealed file {} (kid {kid}; passphrase at least {MIN_PASSPHRASE_CHARS} characters)",
                path.display()
            ),
            Err(e) => format!("passphrase-sealed file, unusable: {e}"),
        },
        Ok(false) => format!("plaintext key file {}", path.display()),
        Err(CryptoError::KeyFileMissing { .. }) if generated => format!(
            "plaintext, generated at first start in {} (the embedded default)",
            path.display()
        ),
        Err(e) => format!("unusable: {e}"),
    };
    match config.master_key_source() {
        Ok(MasterKeySource::Inline) => "plaintext, from the master_key setting".into(),
        Ok(MasterKeySource::File(path)) => file(&path, false),
        Ok(MasterKeySource::Generated(path)) => file(&path, true),
        Err(e) => format!("unusable: {e}"),
    }
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

/// `keys rotate-master`: the steps are in `gatehouse::keys::master`; this prints them.
async fn rotate_master(
    mut config: Config,
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
    config.master_key_passphrase = remembering(config.master_key_passphrase);
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
    let ring = op.state.master_key.clone();
    let persist = |key: &MasterKey| {
        // This host's sealed TLS key first, while the ring still opens the old key.
        startup::reseal_tls_key(&config, &ring).map_err(|e| e.to_string())?;
        startup::persist_rotated_key(&config, key).map_err(|e| e.to_string())
    };
    let finished = master::rotate(&run, &persist, &mut print_step)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Master key rotated: {} -> {}; {} values re-sealed by this run. Copy the key file to every host before restarting any instance.",
        finished.old_kid, finished.new_kid, finished.resealed
    );
    Ok(())
}

/// The passphrase a sealed key file was opened with, asked for once: the new key is
/// sealed under the same passphrase, and a pipe or terminal cannot be read twice.
fn remembering(prompt: PassphrasePrompt) -> PassphrasePrompt {
    let asked: Arc<Mutex<Option<secrecy::SecretString>>> = Arc::default();
    PassphrasePrompt::new(move |path| {
        let mut asked = asked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(passphrase) = asked.as_ref() {
            return Ok(passphrase.clone());
        }
        let passphrase = prompt.ask(path)?;
        *asked = Some(passphrase.clone());
        Ok(passphrase)
    })
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
