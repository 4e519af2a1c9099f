//! `gatehouse keys`: token and SAML signing keys, sealing a TLS key, and the
//! passphrase-sealed master key file (`init-master`, issue 27).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gatehouse::{
    admin::service::keys as service,
    config::{Config, MasterKeySource},
    crypto::{
        CryptoError, MIN_PASSPHRASE_CHARS, MasterKey, create_sealed_key_file, is_sealed_key_file,
        sealed_key_file_kid, write_sealed_key_file,
    },
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
    if let KeysCommand::SealTlsKey { input, out } = &command {
        return seal_tls_key(&config, input, out);
    }
    if let KeysCommand::InitMaster(_) = command {
        // Needs no database: `main` runs it before anything is opened.
        return Err("keys init-master cannot run here".into());
    }
    let op = Operator::open(config).await?;
    match command {
        KeysCommand::InitMaster(_) => Ok(()),
        KeysCommand::SealTlsKey { .. } => unreachable!("handled before opening the store"),
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
