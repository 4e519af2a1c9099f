//! `gatehouse emergency`: who is designated for emergency access, and the review of the
//! emergency sessions they opened (DESIGN §15). Designating a user is
//! `gatehouse user emergency-access`.

use clap::Subcommand;
use gatehouse::{
    admin::{
        Action,
        api::emergency::{designation_view, emergency_view},
        service::emergency::{self as service, Listing},
    },
    config::Config,
    domain::{OrgName, ReviewNote},
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum EmergencyCommand {
    /// The users of an organisation designated for emergency access.
    Designated {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Emergency sessions awaiting review, oldest first (`--all`: every one, newest first).
    List {
        /// Only this organisation's.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One emergency session, by the id `emergency list` shows.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Sign an emergency session off with a note (1 to 2000 characters).
    Review {
        id: String,
        #[arg(long)]
        note: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: EmergencyCommand) -> Result<(), String> {
    let op = Operator::open(config).await?;
    match command {
        EmergencyCommand::Designated { org, json } => {
            let name = OrgName::parse(&org).map_err(|e| format!("--org: {e}"))?;
            let org = op.org(Action::Read, &name).await?;
            let all = service::designated(&op.state, &op.who, &org.id)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&all.into_iter().map(designation_view).collect::<Vec<_>>());
            }
            if all.is_empty() {
                println!("nobody in {} is designated", org.name);
            }
            for d in all {
                println!(
                    "{}\tsince {} UTC\tby {}",
                    d.username, d.row.granted_at, d.row.granted_by
                );
            }
        }
        EmergencyCommand::List { org, all, json } => {
            let org = match org {
                Some(raw) => {
                    let name = OrgName::parse(&raw).map_err(|e| format!("--org: {e}"))?;
                    Some(op.org(Action::Read, &name).await?.id)
                }
                None => None,
            };
            let listing = if all { Listing::All } else { Listing::Awaiting };
            let rows = service::windows(&op.state, &op.who, org.as_deref(), listing)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&rows.into_iter().map(emergency_view).collect::<Vec<_>>());
            }
            if rows.is_empty() {
                println!("no emergency sessions");
            }
            for w in rows {
                let review = match &w.reviewed_at {
                    Some(at) => format!("signed off {at} UTC"),
                    None => "awaiting review".to_owned(),
                };
                println!(
                    "{}\t{}\tstarted {} UTC\t{}\t{}",
                    w.id, w.username, w.started_at, review, w.reason
                );
            }
        }
        EmergencyCommand::Show { id, json } => {
            let w = service::window(&op.state, &op.who, Action::Read, &id)
                .await
                .map_err(failed)?;
            let v = emergency_view(w);
            if json {
                return print_json(&v);
            }
            println!("id:           {}", v.id);
            println!("user:         {} ({})", v.username, v.user_id);
            println!("reason:       {}", v.reason);
            println!("context:      {}", v.context.as_deref().unwrap_or("-"));
            println!(
                "asked for by: {}",
                v.requested_by.as_deref().unwrap_or("account page")
            );
            println!("started:      {}", v.started_at.to_rfc3339());
            println!("expires:      {}", v.expires_at.to_rfc3339());
            if let Some(ended) = v.ended_at {
                println!("ended:        {}", ended.to_rfc3339());
            }
            match (v.reviewed_at, v.reviewed_by, v.review_note) {
                (Some(at), Some(by), Some(note)) => {
                    println!("signed off:   {} by {by}: {note}", at.to_rfc3339());
                }
                _ => println!("review:       awaiting"),
            }
        }
        EmergencyCommand::Review { id, note, json } => {
            let note = ReviewNote::parse(&note).map_err(|e| format!("--note: {e}"))?;
            let w = service::window(&op.state, &op.who, Action::Support, &id)
                .await
                .map_err(failed)?;
            let signed = service::sign_off(op.by(), &w, &note)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&emergency_view(signed));
            }
            println!("signed off the emergency session of {}", signed.username);
        }
    }
    Ok(())
}
