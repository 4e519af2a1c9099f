//! `gatehouse user`: create, invite, find and help users (DESIGN §3, §5–§8).

use clap::Subcommand;
use gatehouse::{
    admin::{Action, api::users::view, service::users as service},
    auth::{account::NewAccount, recovery::NewInvitation, session},
    config::Config,
    domain::{DisplayName, Email, OrgName, Password, Role, UserStatus, Username},
    store::users::UserRow,
};

use super::{Operator, failed, print_json};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user whose password (read from standard input) obeys the org's policy.
    Create {
        #[command(flatten)]
        who: NewUserArgs,
        /// Read the password from the first line of standard input (never from the command
        /// line, where it would land in shell history and `ps`).
        #[arg(long)]
        password_stdin: bool,
        /// Require a new password at the first sign-in.
        #[arg(long)]
        must_change_password: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create a user without a password and mail them a link to choose one (DESIGN §7).
    /// Inviting a still-invited user again mails a fresh link.
    Invite {
        #[command(flatten)]
        who: NewUserArgs,
        #[arg(long)]
        json: bool,
    },
    /// Take the password away at once (it no longer signs in), end the user's sessions
    /// and mail a reset link: one user, or every active user of an organisation.
    ForceReset {
        #[arg(required_unless_present = "org", conflicts_with = "org")]
        username: Option<String>,
        /// Every active user of this organisation.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's second factor (they enrol again at their next sign-in if policy requires it).
    RemoveTotp {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Clear temporary and permanent sign-in locks of a username.
    Unlock {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Users of an organisation (default: `default`), or those whose username or
    /// email contains `--q`.
    List {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One user: role, status, second factor, lock.
    Show {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse the user's sign-in, end every session and revoke every token.
    Disable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Let a disabled user sign in again.
    Enable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a user a new username (their lock, if any, moves with them).
    Rename {
        username: String,
        new_username: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a user another role: user, support, org_admin or super_admin.
    Role {
        username: String,
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// The user's live sign-in sessions.
    Sessions {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// End the user's sessions (all of them, or `--session ID`) and revoke their tokens.
    EndSessions {
        username: String,
        /// One session, by the id `user sessions` lists.
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Designate the user for emergency ("break-glass") access in their organisation, or
    /// withdraw it (DESIGN §15). Without either flag, show whether they are.
    EmergencyAccess {
        username: String,
        #[arg(long, conflicts_with = "withdraw")]
        grant: bool,
        #[arg(long)]
        withdraw: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Who a new user is: `user create` and `user invite` alike.
#[derive(clap::Args)]
pub struct NewUserArgs {
    #[arg(long, default_value = "default")]
    org: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    display_name: Option<String>,
    /// user, support, org_admin or super_admin.
    #[arg(long, default_value = "user")]
    role: String,
}

impl NewUserArgs {
    /// The parsed fields (what an invitation needs), each error naming its option.
    fn parse(&self) -> Result<NewInvitation, String> {
        Ok(NewInvitation {
            org: OrgName::parse(&self.org).map_err(|e| format!("--org: {e}"))?,
            username: Username::parse(&self.username).map_err(|e| format!("--username: {e}"))?,
            email: Email::parse(&self.email).map_err(|e| format!("--email: {e}"))?,
            display_name: self
                .display_name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()
                .map_err(|e| format!("--display-name: {e}"))?,
            role: role(&self.role)?,
        })
    }
}

pub async fn run(config: Config, command: UserCommand) -> Result<(), String> {
    use UserCommand as C;
    match command {
        C::Create { .. } => create(config, command).await,
        C::Invite { .. } => invite(config, command).await,
        C::ForceReset {
            username,
            org,
            json,
        } => force_reset(config, username, org, json).await,
        C::RemoveTotp { username, json } => remove_totp(config, &username, json).await,
        C::Unlock { username, json } => unlock(config, &username, json).await,
        C::List { org, q, json } => list(config, &org, q.as_deref(), json).await,
        C::Show { username, json } => show(config, &username, json).await,
        C::Disable { username, json } => {
            set_status(config, &username, UserStatus::Disabled, json).await
        }
        C::Enable { username, json } => {
            set_status(config, &username, UserStatus::Active, json).await
        }
        C::Rename {
            username,
            new_username,
            json,
        } => rename(config, &username, &new_username, json).await,
        C::Role {
            username,
            role,
            json,
        } => set_role(config, &username, &role, json).await,
        C::Sessions { username, json } => sessions(config, &username, json).await,
        C::EndSessions {
            username,
            session,
            json,
        } => end_sessions(config, &username, session.as_deref(), json).await,
        C::EmergencyAccess {
            username,
            grant,
            withdraw,
            json,
        } => emergency_access(config, &username, grant, withdraw, json).await,
    }
}

async fn emergency_access(
    config: Config,
    raw: &str,
    grant: bool,
    withdraw: bool,
    json: bool,
) -> Result<(), String> {
    use gatehouse::admin::service::emergency;
    let action = if grant || withdraw {
        Action::Manage
    } else {
        Action::Read
    };
    let (op, user) = named(config, raw, action).await?;
    let changed = if grant {
        Some(emergency::grant(op.by(), &user).await.map_err(failed)?)
    } else if withdraw {
        Some(emergency::withdraw(op.by(), &user).await.map_err(failed)?)
    } else {
        None
    };
    let designated = emergency::designation(&op.state, &user)
        .await
        .map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({
            "username": user.username,
            "designated": designated.is_some(),
            "granted_at": designated.as_ref().map(|d| d.granted_at.and_utc().to_rfc3339()),
            "changed": changed,
        }));
    }
    match (changed, &designated) {
        (Some(false), Some(_)) => println!("{} was already designated", user.username),
        (Some(false), None) => println!("{} was not designated", user.username),
        (_, Some(d)) => println!(
            "{} is designated for emergency access (since {} UTC)",
            user.username, d.granted_at
        ),
        (_, None) => println!("{} is not designated for emergency access", user.username),
    }
    Ok(())
}

fn username(raw: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| format!("username: {e}"))
}

fn role(raw: &str) -> Result<Role, String> {
    raw.parse::<Role>().map_err(|e| format!("--role: {e}"))
}

/// Reads the password from the first line of standard input.
fn password_from_stdin(password_stdin: bool) -> Result<Password, String> {
    if !password_stdin {
        return Err("--password-stdin is required (or `gatehouse user invite` lets the user choose a password from a mailed link)".into());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Password::parse(line.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| format!("password: {e}"))
}

/// The operator, and the user named `raw` (after `action` is checked).
async fn named(config: Config, raw: &str, action: Action) -> Result<(Operator, UserRow), String> {
    let name = username(raw)?;
    let op = Operator::open(config).await?;
    let user = op.user(action, &name).await?;
    Ok((op, user))
}

async fn create(config: Config, command: UserCommand) -> Result<(), String> {
    let UserCommand::Create {
        who,
        password_stdin,
        must_change_password,
        json,
    } = command
    else {
        return Ok(());
    };
    let who = who.parse()?;
    let new = NewAccount {
        org: who.org,
        username: who.username,
        email: who.email,
        display_name: who.display_name,
        role: who.role,
        password: password_from_stdin(password_stdin)?,
        must_change_password,
    };
    let op = Operator::open_for_accounts(config).await?;
    let org_name = new.org.to_string();
    let user = service::create(op.by(), new).await.map_err(failed)?;
    if json {
        print_json(&serde_json::json!({
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "org": org_name,
            "role": user.role,
            "must_change_password": user.must_change_password,
        }))
    } else {
        println!(
            "created user {} ({}) in organisation {org_name}",
            user.username, user.id
        );
        Ok(())
    }
}

async fn invite(config: Config, command: UserCommand) -> Result<(), String> {
    let UserCommand::Invite { who, json } = command else {
        return Ok(());
    };
    let new = who.parse()?;
    let op = Operator::open_for_accounts(config).await?;
    let invitation = service::invite(op.by(), new).await.map_err(failed)?;
    if json {
        return print_json(&invitation);
    }
    println!(
        "{} {} ({}) to organisation {}; the link in the mail to {} works until {}",
        if invitation.reissued {
            "invited again"
        } else {
            "invited"
        },
        invitation.username,
        invitation.id,
        invitation.org,
        invitation.email,
        invitation.expires_at.to_rfc3339()
    );
    Ok(())
}

async fn force_reset(
    config: Config,
    name: Option<String>,
    org: Option<String>,
    json: bool,
) -> Result<(), String> {
    match (name, org) {
        (Some(raw), None) => {
            let (op, user) = named(config, &raw, Action::Support).await?;
            let done = service::force_reset(op.by(), &user).await.map_err(failed)?;
            if json {
                return print_json(&done);
            }
            println!(
                "{}'s password no longer works; a reset link was mailed ({} sessions ended)",
                done.username, done.sessions_ended
            );
        }
        (None, Some(raw)) => {
            let name = OrgName::parse(&raw).map_err(|e| format!("--org: {e}"))?;
            let op = Operator::open(config).await?;
            let org = op.org(Action::Manage, &name).await?;
            let done = service::force_reset_org(op.by(), &org)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&done);
            }
            println!(
                "{} users of {} must choose a new password from the mailed link",
                done.reset.len(),
                done.org
            );
            if !done.skipped.is_empty() {
                println!("not active, skipped: {}", done.skipped.join(", "));
            }
        }
        _ => return Err("give a username or --org ORG".into()),
    }
    Ok(())
}

async fn remove_totp(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let (op, user) = named(config, raw, Action::Support).await?;
    let removed = service::remove_totp(op.by(), &user).await.map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({ "username": user.username, "removed": removed }));
    }
    if removed {
        println!("removed two-step verification of {}", user.username);
    } else {
        println!("{} had no two-step verification", user.username);
    }
    Ok(())
}

/// Clears the locks of a username, whether or not an account has it (unknown names are
/// locked like known ones).
async fn unlock(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let name = username(raw)?;
    let op = Operator::open(config).await?;
    let cleared = service::unlock_name(op.by(), &name).await.map_err(failed)?;
    tracing::info!(target: "gatehouse::admin", username = %name, cleared, "unlocked from the command line");
    if json {
        return print_json(
            &serde_json::json!({ "username": name.as_str(), "was_locked": cleared }),
        );
    }
    if cleared {
        println!("unlocked {name}");
    } else {
        println!("{name} had no failed attempts or locks");
    }
    Ok(())
}

async fn list(config: Config, org: &str, q: Option<&str>, json: bool) -> Result<(), String> {
    let name = OrgName::parse(org).map_err(|e| format!("--org: {e}"))?;
    let op = Operator::open(config).await?;
    let org = op.org(Action::Read, &name).await?;
    let members = service::list(op.by(), &org.id, q).await.map_err(failed)?;
    let mut views = Vec::with_capacity(members.len());
    for user in members {
        views.push(view(&op.state, user).await.map_err(|e| e.to_string())?);
    }
    if json {
        return print_json(&views);
    }
    if views.is_empty() {
        println!("no users");
    }
    for v in views {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            v.username, v.email, v.role, v.status, v.id
        );
    }
    Ok(())
}

async fn show(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let (op, user) = named(config, raw, Action::Read).await?;
    service::viewed(op.by(), &user).await.map_err(failed)?;
    let v = view(&op.state, user).await.map_err(|e| e.to_string())?;
    if json {
        return print_json(&v);
    }
    println!("id:                   {}", v.id);
    println!("username:             {}", v.username);
    println!("email:                {}", v.email);
    println!("role:                 {}", v.role);
    println!("status:               {}", v.status);
    println!("must_change_password: {}", v.must_change_password);
    println!("mfa_enrolled:         {}", v.mfa_enrolled);
    println!("locked:               {}", v.locked);
    Ok(())
}

async fn set_status(
    config: Config,
    raw: &str,
    status: UserStatus,
    json: bool,
) -> Result<(), String> {
    let (op, user) = named(config, raw, Action::Manage).await?;
    let changed = service::set_status(op.by(), &user, status)
        .await
        .map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({
            "username": user.username,
            "status": status.as_str(),
            "changed": changed,
        }));
    }
    match (status, changed) {
        (UserStatus::Disabled, true) => {
            println!(
                "disabled {}; their sessions and tokens ended",
                user.username
            )
        }
        (_, true) => println!("enabled {}", user.username),
        (_, false) => println!("{} was already {}", user.username, status.as_str()),
    }
    Ok(())
}

async fn rename(config: Config, raw: &str, new_raw: &str, json: bool) -> Result<(), String> {
    let new_name = username(new_raw)?;
    let (op, user) = named(config, raw, Action::Manage).await?;
    let changed = service::rename(op.by(), &user, new_name.clone())
        .await
        .map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({
            "id": user.id,
            "username": new_name.as_str(),
            "previous_username": user.username,
            "changed": changed,
        }));
    }
    println!("{} is now {new_name}", user.username);
    Ok(())
}

async fn set_role(config: Config, raw: &str, role_name: &str, json: bool) -> Result<(), String> {
    let new_role = role(role_name)?;
    let (op, user) = named(config, raw, Action::Manage).await?;
    let changed = service::set_role(op.by(), &user, new_role)
        .await
        .map_err(failed)?;
    if json {
        return print_json(&serde_json::json!({
            "username": user.username,
            "role": new_role.as_str(),
            "previous_role": user.role().as_str(),
            "changed": changed,
        }));
    }
    println!("{} is now {}", user.username, new_role.as_str());
    Ok(())
}

async fn sessions(config: Config, raw: &str, json: bool) -> Result<(), String> {
    let (op, user) = named(config, raw, Action::Read).await?;
    let state = &op.state;
    let live = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        let out: Vec<_> = live
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.handle,
                    "created_at": s.created_at,
                    "last_seen": s.last_seen,
                    "acr": s.acr(),
                    "client_ip": s.client_ip,
                    "user_agent": s.user_agent,
                })
            })
            .collect();
        return print_json(&out);
    }
    if live.is_empty() {
        println!("{} has no live sessions", user.username);
    }
    for s in live {
        println!(
            "{}\t{}\t{}",
            s.handle,
            s.acr(),
            s.client_ip.unwrap_or_default()
        );
    }
    Ok(())
}

async fn end_sessions(
    config: Config,
    raw: &str,
    handle: Option<&str>,
    json: bool,
) -> Result<(), String> {
    let (op, user) = named(config, raw, Action::Support).await?;
    let ended = match handle {
        Some(handle) => {
            let ended = service::end_session(op.by(), &user, handle)
                .await
                .map_err(failed)?;
            if !ended {
                return Err(format!("{} has no session {handle}", user.username));
            }
            1
        }
        None => service::end_all_sessions(op.by(), &user)
            .await
            .map_err(failed)?,
    };
    if json {
        return print_json(
            &serde_json::json!({ "username": user.username, "sessions_ended": ended }),
        );
    }
    println!("ended {ended} session(s) of {}", user.username);
    Ok(())
}
