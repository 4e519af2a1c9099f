//! `gatehouse ip`: blocked client addresses and the guard's allow-list (DESIGN §5).

use clap::Subcommand;
use gatehouse::{
    admin::{api::network::allow_view, service::network as service},
    config::Config,
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum IpCommand {
    /// Blocked client addresses.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lift the block of an address (as listed: an IPv4 address or an IPv6 /64).
    Unblock {
        ip: String,
        #[arg(long)]
        json: bool,
    },
    /// Networks the guard never counts or blocks (the `ip_allow_list` setting adds its
    /// own, not listed here).
    Allowed {
        #[arg(long)]
        json: bool,
    },
    /// Put a network on the allow-list: IPv4 /8 or narrower, IPv6 /32 or narrower.
    Allow {
        cidr: String,
        /// Why, e.g. "St Mary's outbound NAT" (up to 200 characters).
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take a network off the allow-list.
    Disallow {
        cidr: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: IpCommand) -> Result<(), String> {
    let op = Operator::open(config).await?;
    match command {
        IpCommand::List { json } => {
            let blocks = service::blocks(&op.state, &op.who).await.map_err(failed)?;
            if json {
                return print_json(&blocks);
            }
            if blocks.is_empty() {
                println!("no blocked addresses");
            }
            for b in blocks {
                println!(
                    "{}\tuntil {} UTC\tblock #{}\t{}",
                    b.ip, b.blocked_until, b.block_count, b.reason
                );
            }
        }
        IpCommand::Unblock { ip, json } => {
            let lifted = service::lift_ip_block(op.by(), &ip).await.map_err(failed)?;
            if !lifted {
                return Err(format!("{ip} is not blocked"));
            }
            if json {
                return print_json(&serde_json::json!({ "ip": ip.trim(), "changed": true }));
            }
            println!("unblocked {ip}");
        }
        IpCommand::Allowed { json } => {
            let rows = service::allowed(&op.state, &op.who).await.map_err(failed)?;
            if json {
                return print_json(&rows.into_iter().map(allow_view).collect::<Vec<_>>());
            }
            if rows.is_empty() {
                println!("no allow-listed networks");
            }
            for r in rows {
                println!("{}\t{}\t{}", r.cidr, r.created_by, r.note);
            }
        }
        IpCommand::Allow { cidr, note, json } => {
            let row = service::allow(op.by(), &cidr, note.as_deref())
                .await
                .map_err(failed)?;
            if json {
                return print_json(&allow_view(row));
            }
            println!("allow-listed {}", row.cidr);
        }
        IpCommand::Disallow { cidr, json } => {
            service::disallow(op.by(), &cidr).await.map_err(failed)?;
            if json {
                return print_json(&serde_json::json!({ "cidr": cidr.trim(), "changed": true }));
            }
            println!("removed {cidr} from the allow-list");
        }
    }
    Ok(())
}
