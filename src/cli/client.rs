//! `gatehouse client`: OpenID Connect relying parties (DESIGN §9).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use gatehouse::{
    admin::{
        api::clients::client_view,
        service::clients::{self as service, ClientChange},
    },
    config::Config,
    oidc::clients::ClientSpec,
};
use secrecy::ExposeSecret;

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a relying party; prints its client_id and, once, its secret.
    Create {
        #[arg(long)]
        name: String,
        /// Exact redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Where RP-initiated logout may return; repeat for several.
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// authorization_code, refresh_token, client_credentials; repeat. Default: the first two.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Allowed scopes; repeat. Default: openid profile email offline_access.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
        #[arg(long = "auth-method")]
        auth_method: Option<String>,
        /// The client's JWKS document (for private_key_jwt).
        #[arg(long = "jwks-file", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Or where the client publishes its JWKS (https, or http on loopback).
        #[arg(long = "jwks-uri")]
        jwks_uri: Option<String>,
        /// Where back-channel logout tokens are POSTed.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// ID token (and back-channel logout token) signature: RS256 (default), ES256 or
        /// EdDSA.
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        /// Access token signature: RS256 (default), ES256 or EdDSA.
        #[arg(long = "access-token-alg")]
        access_token_alg: Option<String>,
        /// Only users of this organisation may sign in to it; repeat for several.
        /// Without any: users of every organisation.
        #[arg(long = "org")]
        orgs: Vec<String>,
        /// A resource server: may introspect tokens issued to other clients.
        #[arg(long)]
        introspection: bool,
        /// A web origin (https://app.example.org) whose browser app may call /token,
        /// /userinfo, /revoke (CORS); "+" for the redirect URIs' origins; repeat.
        /// Default: "+".
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
        /// Must push its authorization requests to /par (RFC 9126).
        #[arg(long)]
        require_par: bool,
        /// Every token it gets is bound to a DPoP key (RFC 9449).
        #[arg(long)]
        require_dpop: bool,
        /// The FAPI 2.0 security profile: PAR and DPoP required, private_key_jwt, PKCE.
        #[arg(long)]
        fapi2: bool,
        /// Ask each user which of the requested scopes it may have (a patient-facing app).
        #[arg(long)]
        ask_consent: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every relying party.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One relying party (never its secret: only the hash is kept).
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a relying party; what is not given is kept. Moving to a secret-based
    /// auth method prints a new secret once.
    Update {
        client_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Replaces the redirect URIs; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Replaces the post-logout URIs; repeat for several.
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// Replaces the grants; repeat.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Replaces the scopes; repeat.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// client_secret_basic, client_secret_post, private_key_jwt or none.
        #[arg(long = "auth-method")]
        auth_method: Option<String>,
        /// Replaces the JWKS document, or the jwks_uri.
        #[arg(long = "jwks-file", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Replaces the jwks_uri, or the JWKS document.
        #[arg(long = "jwks-uri")]
        jwks_uri: Option<String>,
        /// An empty value removes it.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        #[arg(long = "access-token-alg")]
        access_token_alg: Option<String>,
        /// Replaces the organisations whose users may sign in; repeat.
        #[arg(long = "org", conflicts_with = "every_org")]
        orgs: Vec<String>,
        /// Admit users of every organisation.
        #[arg(long)]
        every_org: bool,
        #[arg(long)]
        introspection: Option<bool>,
        /// Replaces the allowed web origins (CORS); "+" for the redirect URIs'; repeat.
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
        #[arg(long)]
        require_par: Option<bool>,
        #[arg(long)]
        require_dpop: Option<bool>,
        #[arg(long)]
        fapi2: Option<bool>,
        #[arg(long)]
        ask_consent: Option<bool>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a relying party; its grants and tokens go with it.
    Delete {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret (printed once); the old one stops working at once.
    RotateSecret {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Create { .. } => create(config, command).await,
        ClientCommand::Update { .. } => update(config, command).await,
        ClientCommand::List { json } => list(config, json).await,
        ClientCommand::Show { client_id, json } => show(config, &client_id, json).await,
        ClientCommand::Delete { client_id, json } => {
            let op = Operator::open(config).await?;
            service::delete(op.by(), &client_id).await.map_err(failed)?;
            if json {
                return print_json(&serde_json::json!({ "client_id": client_id, "deleted": true }));
            }
            println!("deleted client {client_id}");
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, json } => {
            let op = Operator::open(config).await?;
            let (client_id, secret) = service::rotate_secret(op.by(), &client_id)
                .await
                .map_err(failed)?;
            let secret = secret.expose_secret();
            if json {
                return print_json(
                    &serde_json::json!({ "client_id": client_id, "client_secret": secret }),
                );
            }
            println!("client_id:     {client_id}");
            println!("client_secret: {secret}");
            println!("The secret is shown only now; the previous one no longer works.");
            Ok(())
        }
    }
}

fn read_jwks(path: Option<&Path>) -> Result<Option<String>, String> {
    path.map(|path| {
        std::fs::read_to_string(path).map_err(|e| format!("jwks-file {}: {e}", path.display()))
    })
    .transpose()
}

async fn create(config: Config, command: ClientCommand) -> Result<(), String> {
    let ClientCommand::Create {
        name,
        redirect_uris,
        public,
        post_logout_uris,
        grants,
        scopes,
        auth_method,
        jwks_file,
        jwks_uri,
        backchannel_logout_uri,
        id_token_alg,
        access_token_alg,
        orgs,
        introspection,
        allowed_origins,
        require_par,
        require_dpop,
        fapi2,
        ask_consent,
        json,
    } = command
    else {
        return Ok(());
    };
    let jwks = read_jwks(jwks_file.as_deref())?;
    let spec = ClientSpec {
        name,
        redirect_uris,
        post_logout_redirect_uris: post_logout_uris,
        public,
        grant_types: grants,
        scopes,
        auth_method,
        jwks,
        jwks_uri,
        backchannel_logout_uri,
        id_token_alg,
        access_token_alg,
        allowed_orgs: (!orgs.is_empty()).then_some(orgs),
        introspection,
        allowed_origins: replacing(allowed_origins),
        require_par,
        require_dpop,
        fapi2,
        ask_consent,
    };
    let op = Operator::open(config).await?;
    let registered = service::register(op.by(), spec.clone())
        .await
        .map_err(failed)?;
    let secret = registered
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    if json {
        return print_json(&serde_json::json!({
            "client_id": registered.client_id,
            "client_secret": secret,
            "client_name": spec.name,
            "redirect_uris": spec.redirect_uris,
            "allowed_orgs": spec.allowed_orgs,
            "introspection": spec.introspection,
            "allowed_origins": spec.allowed_origins.clone().unwrap_or_else(|| vec!["+".into()]),
        }));
    }
    println!("client_id:     {}", registered.client_id);
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        println!("The secret is shown only now; Gatehouse keeps only its hash.");
    }
    match &spec.allowed_orgs {
        Some(orgs) => println!("allowed_orgs:  {}", orgs.join(" ")),
        None => println!("allowed_orgs:  every organisation (pass --org to admit only some)"),
    }
    Ok(())
}

/// A list option given (non-empty) replaces the list; left out, it is kept.
fn replacing(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

async fn update(config: Config, command: ClientCommand) -> Result<(), String> {
    let ClientCommand::Update {
        client_id,
        name,
        redirect_uris,
        post_logout_uris,
        grants,
        scopes,
        auth_method,
        jwks_file,
        jwks_uri,
        backchannel_logout_uri,
        id_token_alg,
        access_token_alg,
        orgs,
        every_org,
        introspection,
        allowed_origins,
        require_par,
        require_dpop,
        fapi2,
        ask_consent,
        json,
    } = command
    else {
        return Ok(());
    };
    let change = ClientChange {
        name,
        redirect_uris: replacing(redirect_uris),
        post_logout_redirect_uris: replacing(post_logout_uris),
        grant_types: replacing(grants),
        scopes: replacing(scopes),
        auth_method,
        jwks: read_jwks(jwks_file.as_deref())?,
        jwks_uri,
        backchannel_logout_uri,
        id_token_alg,
        access_token_alg,
        allowed_orgs: if every_org {
            Some(None)
        } else {
            replacing(orgs).map(Some)
        },
        introspection,
        allowed_origins: replacing(allowed_origins).map(Some),
        require_par,
        require_dpop,
        fapi2,
        ask_consent,
    };
    let op = Operator::open(config).await?;
    let (row, secret) = service::update(op.by(), &client_id, change)
        .await
        .map_err(failed)?;
    let secret = secret.map(|s| s.expose_secret().to_owned());
    if json {
        return print_json(&serde_json::json!({
            "client_id": row.client_id,
            "client_secret": secret,
            "client": client_view(&row),
        }));
    }
    println!("updated client {}", row.client_id);
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        println!("The secret is shown only now; Gatehouse keeps only its hash.");
    }
    Ok(())
}

async fn list(config: Config, json: bool) -> Result<(), String> {
    let op = Operator::open(config).await?;
    let rows = service::list(&op.state, &op.who).await.map_err(failed)?;
    if json {
        return print_json(&rows.iter().map(client_view).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        println!("no clients");
    }
    for r in rows {
        println!(
            "{}\t{}\t{}",
            r.client_id, r.token_endpoint_auth_method, r.name
        );
    }
    Ok(())
}

async fn show(config: Config, client_id: &str, json: bool) -> Result<(), String> {
    let op = Operator::open(config).await?;
    let row = service::find(&op.state, &op.who, client_id)
        .await
        .map_err(failed)?;
    let view = client_view(&row);
    if json {
        return print_json(&view);
    }
    println!("client_id:     {}", view.client_id);
    println!("name:          {}", view.name);
    println!("auth_method:   {}", view.token_endpoint_auth_method);
    println!("redirect_uris: {}", view.redirect_uris.join(" "));
    println!("grant_types:   {}", view.grant_types.join(" "));
    println!("scopes:        {}", view.scopes.join(" "));
    match &view.allowed_orgs {
        Some(orgs) => println!("allowed_orgs:  {}", orgs.join(" ")),
        None => println!("allowed_orgs:  every organisation"),
    }
    println!("web_origins:   {}", view.web_origins.join(" "));
    println!(
        "signed with:   {} (ID tokens), {} (access tokens)",
        view.id_token_signed_response_alg, view.access_token_signed_response_alg
    );
    if view.fapi2 {
        println!("profile:       FAPI 2.0 (PAR, DPoP, private_key_jwt, PKCE)");
    }
    println!(
        "require_par:   {}",
        view.require_pushed_authorization_requests
    );
    println!("require_dpop:  {}", view.dpop_bound_access_tokens);
    println!("ask_consent:   {}", view.ask_consent);
    if let Some(uri) = &view.jwks_uri {
        println!("jwks_uri:      {uri}");
    }
    Ok(())
}
