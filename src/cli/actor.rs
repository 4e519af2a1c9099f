//! Who is at the command line (issue 26, ONC 170.315 (d)(2)): every change made with the
//! CLI is audited as `cli:<person>`, never as a bare `cli`. The person is `--actor NAME`
//! when given, else the operating-system user and host (`alice@ward-3`). With
//! `cli_require_actor = true`, administrative commands refuse to run without `--actor`:
//! a shared `root` on a jump host names nobody.

use std::sync::OnceLock;

/// Longest `--actor` accepted, and longest user or host part kept.
const MAX_CHARS: usize = 64;

static PERSON: OnceLock<String> = OnceLock::new();

/// The person this process acts for, once `settle` ran; `unknown@unknown` otherwise
/// (no administrative command runs without `settle`).
pub fn person() -> &'static str {
    PERSON.get().map_or("unknown@unknown", String::as_str)
}

/// Decides who acts for this process: `--actor`, or (unless `required`) the operating
/// system's user and host. The error is the one line the CLI prints.
pub fn settle(flag: Option<&str>, required: bool) -> Result<(), String> {
    let person = match flag {
        Some(name) => parse(name)?,
        None if required => {
            return Err(
                "this command needs --actor NAME (cli_require_actor is set): \
                 name the person making the change"
                    .into(),
            );
        }
        None => format!("{}@{}", os_user(), host()),
    };
    // Set once per process; a second call keeps the first answer.
    let _ = PERSON.set(person);
    Ok(())
}

/// `--actor`: a name a reader of the trail recognises, without spaces or control
/// characters (it is shown in exports and CSV cells).
fn parse(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_CHARS {
        return Err(format!("--actor: 1 to {MAX_CHARS} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
    {
        return Err("--actor: letters, digits and . _ - @ + only".into());
    }
    Ok(name.to_owned())
}

/// `$USER` or `$LOGNAME`, else the passwd entry of this process's uid, else `uid<N>`.
fn os_user() -> String {
    let from_env = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|v| tidy(&v));
    from_env
        .or_else(|| uid().and_then(passwd_name).and_then(|n| tidy(&n)))
        .or_else(|| uid().map(|u| format!("uid{u}")))
        .unwrap_or_else(|| "unknown".into())
}

/// This process's uid, from the owner of its `/proc` entry (no `unsafe` needed).
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn passwd_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_lookup(&passwd, uid)
}

/// The name of `uid` in a passwd file's text.
fn passwd_lookup(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// The host's name, as the kernel knows it.
fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .find_map(|h| tidy(&h))
        .unwrap_or_else(|| "unknown".into())
}

/// `raw` trimmed, bounded, and without characters that would make the actor ambiguous
/// (`@`, `:`, whitespace, controls); `None` when nothing is left.
fn tidy(raw: &str) -> Option<String> {
    let kept: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '@' | ':'))
        .take(MAX_CHARS)
        .collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_names_are_bounded_and_plain() {
        assert_eq!(parse(" dr.nils ").unwrap(), "dr.nils");
        assert_eq!(parse("rosa@ward-3").unwrap(), "rosa@ward-3");
        for bad in ["", "  ", "a b", "x\ny", "=cmd", &"a".repeat(65), "root;rm"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwd_entries_are_found_by_uid() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken\n";
        assert_eq!(passwd_lookup(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_lookup(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_lookup(passwd, 7), None);
    }

    #[test]
    fn user_and_host_parts_cannot_forge_the_separator() {
        assert_eq!(tidy(" eve@host:x \n").as_deref(), Some("evehostx"));
        assert_eq!(tidy(" \n"), None);
    }
}
