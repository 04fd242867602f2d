//! `sotto`: the Sotto client on the command line — join servers, talk in voice channels, host a
//! relay, or watch the whole system work with `sotto demo`.

mod blocking;
mod channels;
mod chat;
mod demo;
mod dms;
mod files;
mod live;
mod members;
mod moderation;
mod ptt;
mod session;
mod tasks;
mod voice;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::ChannelKind;

use sotto_client::chat::action::Action;
use sotto_client::group::GroupState;
use sotto_client::{Profile, SavedServer};

/// Sotto: end-to-end encrypted voice through a relay that cannot hear you.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a relay on this machine, let two members talk through it with recorded speech, and
    /// report what the listener heard and how long it took.
    Demo(demo::DemoArgs),
    /// Join a server with an invite link (creates your identity on first use). Paste the link
    /// when asked, or pipe it in: a link's secret must not go on the command line, where other
    /// users of the machine can read it.
    Join {
        /// An invite link without a secret (an owner link from the relay); links made with
        /// `sotto invite` are read from standard input instead.
        link: Option<String>,
        /// Your display name. Default: your login name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Talk in a voice channel.
    Voice(voice::VoiceArgs),
    /// List the servers you have joined.
    Servers,
    /// List a server's channels.
    Channels {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// List audio devices.
    Devices,
    /// Make an invite link for a server you belong to.
    Invite {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
        /// How long it stays valid, e.g. `1h`, `7d`. Default: never expires.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// How many people may join with it. Default: unlimited.
        #[arg(long)]
        max_uses: Option<u32>,
    },
    /// List the members of a server's encryption group, with their verification state.
    Members {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show the safety number you share with a member and mark them verified.
    Verify {
        /// The member's name, or its id (or the id's first characters), as `sotto members`
        /// lists them.
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
        /// Mark as verified without asking (you compared the numbers already).
        #[arg(long)]
        yes: bool,
        /// Accept a verified member's changed key without checking it (it then shows as not
        /// verified, and calls are no longer blocked).
        #[arg(long, conflicts_with = "yes")]
        accept_change: bool,
    },
    /// Remove a member from a server (the "kick" permission); an invite can bring them back.
    Kick {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Remove a member and refuse their identity from now on, even with a new invite (the
    /// "ban" permission).
    Ban {
        /// The member's name, or its id (or the id's first characters); or the whole key of
        /// someone no longer on the server (as `sotto audit` shows it).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Let a banned identity come back with a new invite.
    Unban {
        /// The identity's whole key, as `sotto ban` printed it or `sotto audit` shows it.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Keep a member from sending messages and speaking for a while (the "timeout"
    /// permission), e.g. `sotto timeout dan 10m`; `off` ends it early.
    Timeout {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// How long, e.g. `10m`, `2h`, `1d` (at most 28 days), or `off`.
        duration: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Server-mute a member in voice (nobody hears them), and deafen them with --deafen.
    Mute {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Also deafen: they hear nobody.
        #[arg(long)]
        deafen: bool,
        /// Lift the mute and the deafening.
        #[arg(long, conflicts_with = "deafen")]
        off: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Hide a member's messages and silence their voice on this device (nobody is told).
    Block {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a blocked member again.
    Unblock {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// List the members you blocked.
    Blocked,
    /// List the server's roles, what each grants, who holds it, and channel rules.
    Roles {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Create, change, delete, give or take roles (the "roles" permission).
    #[command(subcommand)]
    Role(moderation::RoleCommand),
    /// Show the server's audit log: every admin and moderator action (the "audit"
    /// permission).
    Audit {
        /// How many entries, newest first (at most 100).
        #[arg(long, default_value_t = 30)]
        limit: u16,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Let a server member into the encryption group who joined without an invite secret
    /// (admins; `sotto members` lists who waits).
    Admit {
        /// The member's name, or its id (or the id's first characters).
        #[arg(allow_hyphen_values = true)]
        member: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Create, rename, move, re-topic or delete channels (the server's owner).
    #[command(subcommand)]
    Channel(channels::ChannelCommand),
    /// Open a text channel live: messages appear as they come, lines you type are sent, and
    /// commands (/help) reply, edit, react, pin, share files and set your status.
    Chat {
        /// The text channel, e.g. `general` or `#general`.
        channel: String,
        /// Print events as JSON lines and read commands from standard input (for bots).
        #[arg(long)]
        json: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Write to members directly, in a conversation only they can read.
    ///
    /// A conversation (up to 10 people) is sealed with keys of its own that only its members
    /// hold. With a message, sends it; without, opens the conversation live like `sotto chat`.
    /// Elsewhere `@bob` (or `@bob,cy`) names the conversation in place of a channel.
    Dm {
        /// Who: a member's name or id, or several separated by commas (`bob,cy`).
        members: String,
        /// The message; when left out, the conversation opens live.
        text: Vec<String>,
        /// Live: print events as JSON lines and read commands from standard input (for bots).
        #[arg(long)]
        json: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show or switch your read receipts in a conversation (off unless you switch them on).
    ///
    /// With them on, the others in the conversation see how far you have read.
    Receipts {
        /// The conversation, e.g. `@bob` or `@bob,cy`.
        conversation: String,
        /// `on` or `off`; left out, shows how it stands.
        #[arg(value_parser = ["on", "off"])]
        switch: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// List a channel's tasks, made and changed by tags in its messages (#task, #status, …).
    Tasks {
        /// The text channel.
        channel: String,
        /// Only those with this status, e.g. "In Progress".
        #[arg(long)]
        status: Option<String>,
        /// Only those assigned to this member.
        #[arg(long)]
        assignee: Option<String>,
        /// Only tasks, bugs or epics.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a channel's tasks as a board: a column per status.
    Board {
        /// The text channel.
        channel: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// List your conversations (direct messages) with their unread counts.
    Dms {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Send a message to a text channel (end-to-end encrypted: the relay stores it sealed).
    Send {
        /// The text channel, e.g. `general` or `#general`, or `@bob` for a conversation.
        channel: String,
        /// The message; read from standard input when left out.
        text: Vec<String>,
        /// Reply to this message (its number in `sotto history`).
        #[arg(long, value_name = "N")]
        reply_to: Option<u64>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Change the text of a message you sent (within 5 minutes).
    Edit {
        /// The text channel.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// The new text.
        #[arg(required = true)]
        text: Vec<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Delete a message: yours within 5 minutes, anyone's if you are an admin.
    Delete {
        /// The text channel.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// React to a message with an emoji (or take your reaction back with --remove).
    React {
        /// The text channel.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// The emoji.
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Share a file in a text channel: sealed on this device, so the relay stores only
    /// ciphertext; resumes by itself if the connection drops.
    Upload {
        /// The text channel, e.g. `general` or `#general`.
        channel: String,
        /// The file to share.
        path: std::path::PathBuf,
        /// A message to go with it.
        #[arg(long, default_value = "")]
        text: String,
        /// Print progress and the result as JSON lines (for scripts and bots).
        #[arg(long)]
        json: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Save a file shared in a text channel, checked against what its sender sealed.
    Download {
        /// The text channel.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// Where to save it: a folder, or a new file's name. Default: the current folder.
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
        /// Save the image's preview (a small JPEG that came with the message) instead.
        #[arg(long)]
        preview: bool,
        /// Print progress and the result as JSON lines (for scripts and bots).
        #[arg(long)]
        json: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Pass a message (and its file) on to another text channel.
    Forward {
        /// The text channel it is in.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// The text channel to pass it on to.
        to: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Pin a message to its channel, or unpin it with --remove (admins).
    Pin {
        /// The text channel.
        channel: String,
        /// The message's number, as `sotto history` shows it.
        message: u64,
        /// Unpin it.
        #[arg(long)]
        remove: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a text channel's pinned messages.
    Pins {
        /// The text channel.
        channel: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a message and every reply down its chain.
    Thread {
        /// The text channel.
        channel: String,
        /// The first message's number, as `sotto history` shows it.
        message: u64,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a text channel's latest messages.
    History {
        /// The text channel, e.g. `general` or `#general`.
        channel: String,
        /// How many of the latest messages to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Search the messages on this device (the relay is never asked what you look for).
    Search {
        /// Words that must all appear (each may start a longer word), and filters among them:
        /// has:file, in:thread, after:2026-11-01, before:2026-12-01, during:2026-11-29 (UTC).
        #[arg(required = true)]
        words: Vec<String>,
        /// Only in this text channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only by this member (their name).
        #[arg(long)]
        from: Option<String>,
        /// At most this many results, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Rotate your encryption keys in a server now (they also rotate by themselves every 7
    /// days and during calls). Use it if you fear this device's keys were exposed.
    Rekey {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Leave a server: you are removed from its encryption group and it is forgotten here.
    Leave {
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
        /// Leave without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Host a relay from this machine and print the link to share.
    Host {
        /// Relay data directory. Default: the platform data directory for sotto-relay.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:7878")]
        listen: SocketAddr,
        /// The `host:port` others reach this machine at; it goes into invite links.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7878")]
        public_addr: String,
    },
}

fn default_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "someone".into())
}

async fn join(link: Option<&str>, name: Option<String>) -> Result<()> {
    let display_name = name.unwrap_or_else(default_name);
    // Refuse a name the relay would refuse before anything is created or sent.
    sotto_net::client::check_display_name(&display_name)?;
    let link = match link {
        Some(text) => {
            let link = InviteLink::parse(text)?;
            if link.secret.is_some() {
                anyhow::bail!(
                    "this invite link carries a secret (the part after '#'), which must not go on the \
                     command line, where other users of this machine can read it. Run `sotto join` and \
                     paste the link when asked, or pipe it in: `sotto join < link.txt`"
                );
            }
            link
        }
        None => read_link()?,
    };
    let profile = Profile::open()?;
    // The link's secret goes to the sealed group store, never to client.db in the clear.
    let invite = link.secret.clone();
    let link = InviteLink {
        secret: None,
        ..link
    };
    let probe = SavedServer {
        name: String::new(),
        link: link.clone(),
        display_name: display_name.clone(),
    };
    let mut session = session::connect(&profile, &probe, invite).await?;
    let saved = SavedServer {
        name: session.server.name.clone(),
        link,
        display_name,
    };
    profile.save_server(&saved)?;
    println!(
        "Joined \"{}\" as {}. Channels:",
        saved.name, saved.display_name
    );
    print_channels(&session.channels);
    let state = session.group.join_within(GROUP_WAIT).await;
    // Let the group finish what it started (our KeyPackages reaching the relay, so an admin
    // can add us while we are away).
    session.group.wait_idle(Duration::from_secs(3)).await;
    println!("{}", describe_group(&state));
    Ok(())
}

/// How long commands wait to be let into the encryption group before reporting.
pub(crate) const GROUP_WAIT: Duration = Duration::from_secs(10);

/// Where we stand in the server's encryption group, for people.
pub(crate) fn describe_group(state: &GroupState) -> String {
    match state {
        GroupState::Member {
            epoch,
            privacy_code,
            members,
        } => format!(
            "End-to-end encrypted with {} member(s), epoch {epoch}. Privacy code: {privacy_code}\n\
             (everyone in the server sees the same code; compare it to rule out a relay in the middle)",
            members.len()
        ),
        GroupState::WaitingToBeLetIn { members_online: 0 } => {
            "Waiting to be let into the encryption group: no member is online to \
             vouch for your invite. You are let in as soon as one comes online; until then calls \
             stay silent."
                .into()
        }
        GroupState::WaitingToBeLetIn { members_online } => format!(
            "Waiting to be let into the encryption group ({members_online} member(s) online); \
             try again in a moment."
        ),
        GroupState::NoInvite => {
            "You are on the relay but not in the server's encryption group: this link carries \
             no invite secret. Ask a member for a link made with `sotto invite`."
                .into()
        }
        GroupState::NoGroupYet => {
            "The server's encryption group does not exist yet: its owner creates it when \
             they next connect."
                .into()
        }
        GroupState::Removed => "You were removed from this server's encryption group.".into(),
        _ => "Still connecting to the encryption group.".into(),
    }
}

/// Reads an invite link from standard input, prompting when it is a terminal.
fn read_link() -> Result<InviteLink> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste the invite link: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the invite link from standard input")?;
    if line.trim().is_empty() {
        anyhow::bail!("no invite link given: paste it when asked, or pipe it in");
    }
    Ok(InviteLink::parse(&line)?)
}

fn print_channels(channels: &[sotto_net::proto::control::ChannelInfo]) {
    for channel in channels {
        let kind = if channel.kind == ChannelKind::Voice {
            "voice"
        } else {
            "text "
        };
        println!("  {kind}  #{}  ({})", channel.name, channel.category);
    }
}

async fn invite(
    server: Option<&str>,
    expires: Option<Duration>,
    max_uses: Option<u32>,
) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    let state = session.group.join_within(GROUP_WAIT).await;
    if !matches!(state, GroupState::Member { .. }) {
        anyhow::bail!("cannot invite anyone yet. {}", describe_group(&state));
    }
    let link = session.group.create_invite(expires, max_uses).await?;
    println!("{link}");
    eprintln!(
        "note: the part after '#' lets its holder into the encryption group; send the whole link \
         privately (it does not decrypt anything by itself)."
    );
    Ok(())
}

async fn host(data: Option<PathBuf>, listen: SocketAddr, public_addr: String) -> Result<()> {
    let dir = data.unwrap_or_else(|| {
        directories::ProjectDirs::from("org", "Sotto", "sotto-relay").map_or_else(
            || PathBuf::from("sotto-relay-data"),
            |dirs| dirs.data_dir().to_owned(),
        )
    });
    let data = sotto_relay::DataDir::new(dir);
    if !data.is_initialized() {
        let options = sotto_relay::InitOptions {
            server_name: "My Sotto".into(),
            public_address: public_addr,
        };
        let report = data.initialize(&options)?;
        println!("invite   {}", report.owner_link);
        println!(
            "         (single use: the first to join owns the server; then `sotto invite` makes more)"
        );
    }
    let config = sotto_relay::RelayConfig {
        listen,
        ..Default::default()
    };
    let relay = sotto_relay::RelayHandle::spawn(&data, config).await?;
    println!(
        "hosting  udp://{} with data in {}; Ctrl-C stops",
        relay.local_addr(),
        data.root().display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    relay.shutdown().await;
    Ok(())
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo(_) => unreachable!("the demo runs its own runtime"),
        Command::Join { link, name } => join(link.as_deref(), name).await,
        Command::Members { server } => members::list(server.as_deref()).await,
        Command::Verify {
            member,
            server,
            yes,
            accept_change,
        } => members::verify(server.as_deref(), &member, yes, accept_change).await,
        Command::Kick {
            member,
            reason,
            server,
        } => moderation::kick(server.as_deref(), &member, reason.as_deref()).await,
        Command::Ban {
            member,
            reason,
            server,
        } => {
            moderation::moderate(
                server.as_deref(),
                &member,
                moderation::Action::Ban,
                reason.as_deref(),
            )
            .await
        }
        Command::Unban { key, server } => moderation::unban(server.as_deref(), &key).await,
        Command::Timeout {
            member,
            duration,
            reason,
            server,
        } => {
            let duration = moderation::timeout_duration(&duration)?;
            moderation::moderate(
                server.as_deref(),
                &member,
                moderation::Action::Timeout(duration),
                reason.as_deref(),
            )
            .await
        }
        Command::Mute {
            member,
            deafen,
            off,
            server,
        } => {
            moderation::moderate(
                server.as_deref(),
                &member,
                moderation::Action::Mute { deafen, off },
                None,
            )
            .await
        }
        Command::Roles { server } => moderation::list(server.as_deref()).await,
        Command::Block { member, server } => {
            blocking::block(server.as_deref(), &member, true).await
        }
        Command::Unblock { member, server } => {
            blocking::block(server.as_deref(), &member, false).await
        }
        Command::Blocked => blocking::list(),
        Command::Role(command) => moderation::role(command).await,
        Command::Audit { limit, server } => moderation::audit(server.as_deref(), limit).await,
        Command::Rekey { server } => members::rekey(server.as_deref()).await,
        Command::Chat {
            channel,
            json,
            server,
        } => live::chat(server.as_deref(), &channel, json).await,
        Command::Send {
            channel,
            text,
            reply_to,
            server,
        } => chat::send(server.as_deref(), &channel, &text, reply_to).await,
        Command::Dm {
            members,
            text,
            json,
            server,
        } => {
            let conversation = format!("@{}", members.trim_start_matches('@'));
            if text.is_empty() {
                live::chat(server.as_deref(), &conversation, json).await
            } else {
                chat::send(server.as_deref(), &conversation, &text, None).await
            }
        }
        Command::Dms { server } => dms::list(server.as_deref()).await,
        Command::Tasks {
            channel,
            status,
            assignee,
            kind,
            server,
        } => {
            let filter = tasks::Filter {
                status,
                assignee,
                kind,
            };
            tasks::tasks(server.as_deref(), &channel, filter).await
        }
        Command::Board { channel, server } => tasks::board(server.as_deref(), &channel).await,
        Command::Receipts {
            conversation,
            switch,
            server,
        } => {
            let switch = switch.map(|switch| switch == "on");
            dms::receipts(server.as_deref(), &conversation, switch).await
        }
        Command::Edit {
            channel,
            message,
            text,
            server,
        } => {
            let action = Action::Edit {
                target: message,
                text: text.join(" "),
            };
            let (name, _) = chat::act(server.as_deref(), &channel, &action).await?;
            println!("Edited message {message} in {name}.");
            Ok(())
        }
        Command::Delete {
            channel,
            message,
            server,
        } => {
            let action = Action::Delete { target: message };
            let (name, _) = chat::act(server.as_deref(), &channel, &action).await?;
            println!("Deleted message {message} in {name}.");
            Ok(())
        }
        Command::React {
            channel,
            message,
            emoji,
            remove,
            server,
        } => {
            let action = Action::Reaction {
                target: message,
                emoji: emoji.clone(),
                add: !remove,
            };
            let (name, _) = chat::act(server.as_deref(), &channel, &action).await?;
            if remove {
                println!("Took back {emoji} from message {message} in {name}.");
            } else {
                println!("Reacted {emoji} to message {message} in {name}.");
            }
            Ok(())
        }
        Command::Upload {
            channel,
            path,
            text,
            json,
            server,
        } => files::upload(server.as_deref(), &channel, &path, &text, json).await,
        Command::Download {
            channel,
            message,
            out,
            preview,
            json,
            server,
        } => {
            let what = files::Wanted {
                seq: message,
                out: out.as_deref(),
                preview,
                json,
            };
            files::download(server.as_deref(), &channel, what).await
        }
        Command::Pin {
            channel,
            message,
            remove,
            server,
        } => {
            let action = Action::Pin {
                target: message,
                pin: !remove,
            };
            let (name, _) = chat::act(server.as_deref(), &channel, &action).await?;
            let done = if remove { "Unpinned" } else { "Pinned" };
            println!("{done} message {message} in {name}.");
            Ok(())
        }
        Command::Forward {
            channel,
            message,
            to,
            server,
        } => chat::forward(server.as_deref(), &channel, message, &to).await,
        Command::Pins { channel, server } => chat::pins(server.as_deref(), &channel).await,
        Command::Thread {
            channel,
            message,
            server,
        } => chat::thread(server.as_deref(), &channel, message).await,
        Command::History {
            channel,
            limit,
            server,
        } => chat::history(server.as_deref(), &channel, limit).await,
        Command::Search {
            words,
            channel,
            from,
            limit,
            server,
        } => {
            chat::search(
                server.as_deref(),
                &words,
                channel.as_deref(),
                from.as_deref(),
                limit,
            )
            .await
        }
        Command::Admit { member, server } => members::admit(server.as_deref(), &member).await,
        Command::Leave { server, yes } => members::leave(server.as_deref(), yes).await,
        Command::Voice(args) => voice::run(&args).await,
        Command::Channel(command) => channels::run(command).await,
        Command::Servers => {
            let servers = Profile::open()?.servers()?;
            if servers.is_empty() {
                println!("No servers yet: run `sotto join <invite link>`.");
            }
            for server in servers {
                println!(
                    "{}  (as {}, relay {})",
                    server.name,
                    server.display_name,
                    server.link.address()
                );
            }
            Ok(())
        }
        Command::Channels { server } => chat::channels(server.as_deref()).await,
        Command::Devices => {
            print!("{}", sotto_media::device::listing()?);
            Ok(())
        }
        Command::Invite {
            server,
            expires,
            max_uses,
        } => invite(server.as_deref(), expires, max_uses).await,
        Command::Host {
            data,
            listen,
            public_addr,
        } => host(data, listen, public_addr).await,
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The sound server client logs every failed reconnect; a lost device is reported
            // in Sotto's own words instead.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,pulseaudio=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        command => tokio::runtime::Runtime::new()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(command))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
