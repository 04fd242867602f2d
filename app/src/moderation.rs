//! `sotto roles`, `sotto role …`, `sotto kick/ban/unban/timeout/mute`, `sotto audit` and the
//! channel permission commands: what a server's admins and moderators do. The relay decides
//! and records each change; this asks and says what happened.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_client::Session;
use sotto_client::group::GroupState;
use sotto_client::{Profile, rights::Rights};
use sotto_net::invite::encode_b64;
use sotto_net::proto::control::{ListedMember, PublicKey};
use sotto_net::roles::{ChannelOverride, Moderation, Permissions, Role, RoleBook, RoleChange};

use crate::members::short_id;
use crate::session;

/// What `sotto role` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RoleCommand {
    /// Create a custom role, ranked above the other custom roles and below moderator.
    Create {
        /// Its name.
        name: String,
        /// What it grants, comma-separated: view, send, tags, speak, invite, create-channels,
        /// manage-channels, manage-messages, participants, timeout, mute, kick, ban, roles,
        /// settings, audit, administrator.
        #[arg(long, default_value = "")]
        permissions: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Set what a role grants (replacing what it granted), or rename it.
    Set {
        /// The role.
        name: String,
        /// What it grants now, comma-separated.
        #[arg(long)]
        permissions: Option<String>,
        /// Its new name.
        #[arg(long)]
        rename: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Delete a custom role; whoever held it loses it.
    Delete {
        /// The role.
        name: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Give a member a role.
    Assign {
        /// The role.
        role: String,
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Take a role from a member.
    Revoke {
        /// The role.
        role: String,
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
}

/// A connected session with the server's role book and member list.
struct Admin {
    session: Session,
    book: RoleBook,
    members: Vec<ListedMember>,
}

async fn admin_session(server: Option<&str>) -> Result<Admin> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let session = session::connect(&profile, &saved, None).await?;
    let rights = Rights::load(&session).await;
    let book = rights.book().cloned().context(
        "the relay did not send the server's roles; it may be an older version without roles",
    )?;
    let members = session.client.list_members().await?;
    Ok(Admin {
        session,
        book,
        members,
    })
}

impl Admin {
    /// The member called `who`: an id (or its first characters), else a display name.
    fn member(&self, who: &str) -> Result<&ListedMember> {
        crate::members::find_listed(&self.members, who)
    }

    fn role(&self, name: &str) -> Result<&Role> {
        self.book
            .roles
            .iter()
            .find(|role| role.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("there is no role `{name}`; `sotto roles` lists them"))
    }

    fn name_of(&self, member_id: u32) -> String {
        self.members
            .iter()
            .find(|member| member.member_id == member_id)
            .map_or_else(|| format!("member {member_id}"), label)
    }
}

fn label(member: &ListedMember) -> String {
    format!(
        "{} ({})",
        sotto_client::chat::printable(&member.display_name),
        short_id(&member.public_key)
    )
}

/// Permissions from `view,send,…` (spaces and empty items ignored).
fn parse_permissions(text: &str) -> Result<Permissions> {
    let mut permissions = Permissions::NONE;
    for word in text
        .split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
    {
        let Some(permission) = Permissions::parse_one(&word.to_ascii_lowercase()) else {
            let known: Vec<&str> = Permissions::NAMED.iter().map(|(_, name)| *name).collect();
            bail!(
                "there is no permission `{word}`; the permissions are: {}",
                known.join(", ")
            );
        };
        permissions = permissions.union(permission);
    }
    Ok(permissions)
}

fn permission_words(permissions: Permissions) -> String {
    if permissions.contains(Permissions::ADMINISTRATOR) {
        return "everything (administrator)".into();
    }
    let names = permissions.names();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// `sotto roles`: every role, what it grants and who holds it; then channel rules.
pub(crate) async fn list(server: Option<&str>) -> Result<()> {
    let admin = admin_session(server).await?;
    let book = &admin.book;
    println!("Roles on {} (highest first):", admin.session.server.name);
    for role in &book.roles {
        let holders: Vec<String> = book
            .assignments
            .iter()
            .filter(|(_, role_id)| *role_id == role.id)
            .map(|(member, _)| admin.name_of(*member))
            .collect();
        let who = if role.builtin && role.name == sotto_net::roles::builtin::MEMBER {
            "everyone".to_owned()
        } else if holders.is_empty() {
            "nobody yet".to_owned()
        } else {
            holders.join(", ")
        };
        let kind = if role.builtin { " (built-in)" } else { "" };
        println!("  {}{kind}", role.name);
        println!("      grants: {}", permission_words(role.permissions));
        println!("      held by: {who}");
    }
    println!(
        "  The owner, {}, may do everything.",
        admin.name_of(book.owner)
    );
    let channel_name = |id: u32| {
        admin
            .session
            .channels
            .iter()
            .find(|channel| channel.id == id)
            .map_or_else(
                || format!("channel {id}"),
                |channel| format!("#{}", channel.name),
            )
    };
    if !book.overrides.is_empty() || !book.slow_modes.is_empty() {
        println!("Channel rules:");
        for o in &book.overrides {
            let role = book.role(o.role_id).map_or("?", |role| role.name.as_str());
            println!(
                "  {} for {role}: allow {}; deny {}",
                channel_name(o.channel_id),
                permission_words(o.allow),
                permission_words(o.deny)
            );
        }
        for (channel, seconds) in &book.slow_modes {
            println!(
                "  {}: slow mode, {seconds} s between messages",
                channel_name(*channel)
            );
        }
    }
    let now = sotto_client::chat::unix_now_ms() / 1000;
    let timed_out: Vec<String> = book
        .timeouts
        .iter()
        .filter(|(_, until)| *until > now)
        .map(|(member, until)| format!("{} for {}", admin.name_of(*member), remaining(until - now)))
        .collect();
    if !timed_out.is_empty() {
        println!("Timed out: {}", timed_out.join(", "));
    }
    Ok(())
}

fn remaining(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// `sotto role …`.
pub(crate) async fn role(command: RoleCommand) -> Result<()> {
    let server = match &command {
        RoleCommand::Create { server, .. }
        | RoleCommand::Set { server, .. }
        | RoleCommand::Delete { server, .. }
        | RoleCommand::Assign { server, .. }
        | RoleCommand::Revoke { server, .. } => server.clone(),
    };
    let admin = admin_session(server.as_deref()).await?;
    let (change, done) = match &command {
        RoleCommand::Create {
            name, permissions, ..
        } => {
            let permissions = parse_permissions(permissions)?;
            (
                RoleChange::Create {
                    name: name.trim().to_owned(),
                    permissions,
                },
                format!(
                    "Created the role `{}`, granting {}.",
                    name.trim(),
                    permission_words(permissions)
                ),
            )
        }
        RoleCommand::Set {
            name,
            permissions,
            rename,
            ..
        } => {
            let role = admin.role(name)?;
            let permissions = match permissions {
                Some(text) => parse_permissions(text)?,
                None => role.permissions,
            };
            let new_name = rename.as_deref().map_or(role.name.as_str(), str::trim);
            (
                RoleChange::Update {
                    role_id: role.id,
                    name: new_name.to_owned(),
                    permissions,
                },
                format!(
                    "The role `{new_name}` grants {}.",
                    permission_words(permissions)
                ),
            )
        }
        RoleCommand::Delete { name, .. } => {
            let role = admin.role(name)?;
            (
                RoleChange::Delete { role_id: role.id },
                format!("Deleted the role `{}`.", role.name),
            )
        }
        RoleCommand::Assign { role, member, .. } | RoleCommand::Revoke { role, member, .. } => {
            let role = admin.role(role)?;
            let member = admin.member(member)?;
            if matches!(command, RoleCommand::Assign { .. }) {
                (
                    RoleChange::Assign {
                        role_id: role.id,
                        member_id: member.member_id,
                    },
                    format!("{} now holds the role `{}`.", label(member), role.name),
                )
            } else {
                (
                    RoleChange::Revoke {
                        role_id: role.id,
                        member_id: member.member_id,
                    },
                    format!(
                        "{} no longer holds the role `{}`.",
                        label(member),
                        role.name
                    ),
                )
            }
        }
    };
    admin
        .session
        .client
        .manage_roles(change)
        .await
        .context("the relay refused")?;
    println!("{done}");
    Ok(())
}

/// What `sotto moderate` style commands ask for.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Kick,
    Ban,
    Timeout(Option<Duration>),
    Mute { deafen: bool, off: bool },
}

/// `sotto kick`, `sotto ban`, `sotto timeout`, `sotto mute`.
pub(crate) async fn moderate(
    server: Option<&str>,
    who: &str,
    action: Action,
    reason: Option<&str>,
) -> Result<()> {
    let mut admin = admin_session(server).await?;
    if matches!(action, Action::Ban)
        && admin.member(who).is_err()
        && let Some(public_key) = full_key(who)
    {
        // Not a member now (say, kicked earlier): the key itself is banned.
        admin
            .session
            .client
            .moderate(Moderation::BanKey {
                public_key,
                reason: reason.unwrap_or("").trim().to_owned(),
            })
            .await
            .context("the relay refused")?;
        println!(
            "Banned the identity {}…: an invite cannot bring it in.",
            &who.trim()[..11]
        );
        return Ok(());
    }
    moderate_in(&mut admin, who, action, reason).await
}

/// A whole identity key in base64url, as `sotto ban` and `sotto audit` print them.
fn full_key(text: &str) -> Option<PublicKey> {
    sotto_net::invite::decode_b64(text.trim())
        .and_then(|bytes| PublicKey::try_from(bytes.as_slice()).ok())
}

async fn moderate_in(
    admin: &mut Admin,
    who: &str,
    action: Action,
    reason: Option<&str>,
) -> Result<()> {
    let member = admin.member(who)?;
    let reason = reason.unwrap_or("").trim().to_owned();
    let member_id = member.member_id;
    let (moderation, done) = match action {
        Action::Kick => (
            Moderation::Kick { member_id, reason },
            format!("Removed {} from the server.", label(member)),
        ),
        Action::Ban => (
            Moderation::Ban { member_id, reason },
            format!(
                "Banned {}: an invite cannot bring this identity back (`sotto unban {}` lifts it).",
                label(member),
                encode_b64(&member.public_key)
            ),
        ),
        Action::Timeout(duration) => {
            let seconds = duration.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let done = if seconds == 0 {
                format!("{} may send and speak again.", label(member))
            } else {
                format!(
                    "{} cannot send or speak for {}.",
                    label(member),
                    remaining(u64::from(seconds))
                )
            };
            (
                Moderation::Timeout {
                    member_id,
                    seconds,
                    reason,
                },
                done,
            )
        }
        Action::Mute { deafen, off } => {
            let done = match (off, deafen) {
                (true, _) => format!("{} is no longer muted or deafened in voice.", label(member)),
                (false, true) => format!("{} is muted and deafened in voice.", label(member)),
                (false, false) => format!("Nobody hears {} in voice now.", label(member)),
            };
            (
                Moderation::Mute {
                    member_id,
                    muted: !off,
                    deafened: deafen && !off,
                },
                done,
            )
        }
    };
    let removes = matches!(moderation, Moderation::Kick { .. } | Moderation::Ban { .. });
    let key = member.public_key;
    admin
        .session
        .client
        .moderate(moderation)
        .await
        .context("the relay refused")?;
    println!("{done}");
    if removes {
        remove_keys(&mut admin.session, key).await;
    }
    Ok(())
}

/// Takes a removed member's keys out of the encryption group, if we may (group admins);
/// else says who will.
async fn remove_keys(session: &mut Session, key: PublicKey) {
    session.group.join_within(crate::GROUP_WAIT).await;
    let is_group_admin = matches!(
        session.group.state(),
        GroupState::Member { ref members, .. }
            if members.iter().any(|member| member.public_key == session.group.own_key() && member.is_admin)
    );
    let in_group = matches!(
        session.group.state(),
        GroupState::Member { ref members, .. } if members.iter().any(|member| member.public_key == key)
    );
    if !in_group {
        return;
    }
    if !is_group_admin {
        println!(
            "Their keys stay in the encryption group until one of its admins is next online \
             (their app removes them); the relay already refuses them everything."
        );
        return;
    }
    match session.group.remove(vec![key]).await {
        Ok(()) => println!(
            "Their keys are out of the encryption group: they cannot read anything sent from now on."
        ),
        Err(error) => println!(
            "The relay removed them, but taking their keys out of the encryption group failed ({error}); run `sotto kick` again."
        ),
    }
}

/// `sotto kick`: through the relay for a member of the server; for keys left in the
/// encryption group by someone no longer on it, their removal from the group.
pub(crate) async fn kick(server: Option<&str>, who: &str, reason: Option<&str>) -> Result<()> {
    let mut admin = admin_session(server).await?;
    if admin.member(who).is_ok() {
        moderate_in(&mut admin, who, Action::Kick, reason).await
    } else {
        drop(admin);
        crate::members::kick(server, who).await
    }
}

/// A timeout's length from `10m`, `2h`, … (none for `off` or `0`).
pub(crate) fn timeout_duration(text: &str) -> Result<Option<Duration>> {
    if text.eq_ignore_ascii_case("off") || text == "0" {
        return Ok(None);
    }
    let duration = humantime::parse_duration(text)
        .with_context(|| format!("`{text}` is not a duration: use e.g. 10m, 2h, 1d, or off"))?;
    if duration.as_secs() == 0 {
        return Ok(None);
    }
    Ok(Some(duration))
}

/// `sotto unban <key>`.
pub(crate) async fn unban(server: Option<&str>, key: &str) -> Result<()> {
    let admin = admin_session(server).await?;
    let bytes = full_key(key).context(
            "give the banned identity's whole key, as `sotto ban` printed it (or the audit log shows it)",
        )?;
    admin
        .session
        .client
        .moderate(Moderation::Unban { public_key: bytes })
        .await
        .context("the relay refused")?;
    println!(
        "Unbanned {}: a new invite can bring them back.",
        &key.trim()[..11.min(key.trim().len())]
    );
    Ok(())
}

/// `sotto audit`: the newest entries of the server's audit log.
pub(crate) async fn audit(server: Option<&str>, limit: u16) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let session = session::connect(&profile, &saved, None).await?;
    let (entries, more) = session
        .client
        .read_audit(0, limit.clamp(1, 100))
        .await
        .context("the relay refused")?;
    if entries.is_empty() {
        println!(
            "The audit log of {} is empty: no admin action yet.",
            session.server.name
        );
        return Ok(());
    }
    println!("Audit log of {} (newest first):", session.server.name);
    for entry in &entries {
        // The time comes from the relay: an absurd one is shown as unknown, not trusted.
        let at = std::time::UNIX_EPOCH
            .checked_add(Duration::from_secs(entry.at))
            .filter(|at| *at < std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
            .map_or_else(
                || "????-??-??T??:??:??Z".to_owned(),
                |at| humantime::format_rfc3339_seconds(at).to_string(),
            );
        let detail = if entry.detail.is_empty() {
            String::new()
        } else {
            format!(" — {}", sotto_client::chat::printable(&entry.detail))
        };
        println!(
            "  {at}  {}: {} {}{detail}",
            sotto_client::chat::printable(&entry.actor_name),
            entry.action.label(),
            sotto_client::chat::printable(&entry.target),
        );
    }
    if more {
        println!("  … older entries exist; ask for more with --limit (up to 100).");
    }
    Ok(())
}

/// `sotto channel permissions <channel> [role --allow … --deny …]`.
pub(crate) async fn channel_permissions(
    server: Option<&str>,
    channel: &str,
    role: Option<&str>,
    allow: &str,
    deny: &str,
) -> Result<()> {
    let admin = admin_session(server).await?;
    let channel = crate::channels::find(&admin.session, channel)?;
    let Some(role) = role else {
        println!("Who may do what in #{}:", channel.name);
        // What someone holding just this role may do here (the member role: everyone).
        const SOMEONE: u32 = u32::MAX;
        for role in &admin.book.roles {
            let mut book = admin.book.clone();
            book.assignments.retain(|(member, _)| *member != SOMEONE);
            if !role.builtin || role.name != sotto_net::roles::builtin::MEMBER {
                book.assignments.push((SOMEONE, role.id));
            }
            let permissions = book.channel_permissions(SOMEONE, channel.id);
            println!(
                "  {:<12} {}",
                role.name,
                permission_words(permissions.intersection(Permissions::CHANNEL))
            );
        }
        if admin.book.is_private(channel.id) {
            println!(
                "  #{} is private: only the roles allowed to view it see it.",
                channel.name
            );
        }
        return Ok(());
    };
    let role = admin.role(role)?;
    let allow = parse_permissions(allow)?;
    let deny = parse_permissions(deny)?;
    admin
        .session
        .client
        .manage_roles(RoleChange::Override(ChannelOverride {
            channel_id: channel.id,
            role_id: role.id,
            allow,
            deny,
        }))
        .await
        .context("the relay refused")?;
    if allow.is_empty() && deny.is_empty() {
        println!("#{} has no rule for `{}` now.", channel.name, role.name);
    } else {
        println!(
            "In #{}, `{}` is allowed {} and denied {}.",
            channel.name,
            role.name,
            permission_words(allow),
            permission_words(deny)
        );
    }
    Ok(())
}

/// `sotto channel slowmode <channel> <duration|off>`.
pub(crate) async fn slow_mode(server: Option<&str>, channel: &str, every: &str) -> Result<()> {
    let admin = admin_session(server).await?;
    let channel = crate::channels::find(&admin.session, channel)?;
    let seconds = if every.eq_ignore_ascii_case("off") || every == "0" {
        0
    } else {
        let duration = humantime::parse_duration(every)
            .with_context(|| format!("`{every}` is not a duration: use e.g. 30s, 2m, or off"))?;
        u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
    };
    admin
        .session
        .client
        .manage_roles(RoleChange::SlowMode {
            channel_id: channel.id,
            seconds,
        })
        .await
        .context("the relay refused")?;
    if seconds == 0 {
        println!("#{} is no longer in slow mode.", channel.name);
    } else {
        println!(
            "#{} is in slow mode: {} between each member's messages (moderators are exempt).",
            channel.name,
            remaining(u64::from(seconds))
        );
    }
    Ok(())
}
