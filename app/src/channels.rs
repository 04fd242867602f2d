//! `sotto channel …`: creating, renaming, moving, re-topicking and deleting a server's channels
//! (its owner, until roles come). Members online see the change at once.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sotto_client::{Profile, Session};
use sotto_net::proto::control::{ChannelChange, ChannelInfo, ChannelKind};

use crate::session;

/// What to do to a channel.
#[derive(Debug, Subcommand)]
pub(crate) enum ChannelCommand {
    /// Create a channel (text unless --voice), listed last in its category.
    Create {
        /// Its name.
        name: String,
        /// A voice channel.
        #[arg(long)]
        voice: bool,
        /// The category it is listed under.
        #[arg(long, default_value = "")]
        category: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        topic: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Rename a channel.
    Rename {
        /// Its name now.
        name: String,
        /// Its new name.
        new_name: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Set what a channel is for (no text clears it).
    Topic {
        /// The channel.
        name: String,
        /// The topic.
        topic: Vec<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Move a channel to a place in its category (0 is first), or into another category.
    Move {
        /// The channel.
        name: String,
        /// Its new place.
        position: u16,
        /// Move it under this category.
        #[arg(long)]
        category: Option<String>,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Share a text channel's history with members who join later, or stop (admins).
    ///
    /// Off by default: what was said before someone joined stays sealed to them. On, members
    /// hand the channel's past keys to those who join, inside the channel's encryption.
    History {
        /// The text channel.
        name: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        switch: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show who may do what in a channel, or set a role's rule there: `--allow` and `--deny`
    /// take permissions (view, send, tags, speak, manage-channels, manage-messages,
    /// participants); neither clears the role's rule. Deny `view` to `member` and allow it to
    /// a role to make the channel private to that role.
    Permissions {
        /// The channel.
        name: String,
        /// The role whose rule to set.
        role: Option<String>,
        /// What the role may do here even if it could not elsewhere, comma-separated.
        #[arg(long, default_value = "", requires = "role")]
        allow: String,
        /// What the role may not do here, comma-separated.
        #[arg(long, default_value = "", requires = "role")]
        deny: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Make members wait between messages in a channel, e.g. `30s`; `off` ends it.
    /// Members with "manage-messages" are exempt.
    Slowmode {
        /// The channel.
        name: String,
        /// How long each member waits between messages (at most 6h), or `off`.
        every: String,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
    /// Delete a channel and all its messages and files, for everyone.
    Delete {
        /// The channel.
        name: String,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
        /// Which joined server. Default: the first one joined.
        #[arg(long)]
        server: Option<String>,
    },
}

/// The channel called `name` (with or without '#'; text channels first when both kinds have
/// it).
pub(crate) fn find<'a>(session: &'a Session, name: &str) -> Result<&'a ChannelInfo> {
    let wanted = name.trim_start_matches('#');
    let mut found: Vec<&ChannelInfo> = session
        .channels
        .iter()
        .filter(|channel| channel.name.eq_ignore_ascii_case(wanted))
        .collect();
    found.sort_by_key(|channel| channel.kind != ChannelKind::Text);
    found.first().copied().with_context(|| {
        format!(
            "no channel \"#{wanted}\" on {}; `sotto channels` lists them",
            session.server.name
        )
    })
}

fn kind_word(kind: ChannelKind) -> &'static str {
    if kind == ChannelKind::Voice {
        "voice channel"
    } else {
        "text channel"
    }
}

/// Carries out `command`.
pub(crate) async fn run(command: ChannelCommand) -> Result<()> {
    if let ChannelCommand::History {
        name,
        switch,
        server,
    } = &command
    {
        return crate::chat::history_sharing(server.as_deref(), name, switch == "on").await;
    }
    if let ChannelCommand::Permissions {
        name,
        role,
        allow,
        deny,
        server,
    } = &command
    {
        return crate::moderation::channel_permissions(
            server.as_deref(),
            name,
            role.as_deref(),
            allow,
            deny,
        )
        .await;
    }
    if let ChannelCommand::Slowmode {
        name,
        every,
        server,
    } = &command
    {
        return crate::moderation::slow_mode(server.as_deref(), name, every).await;
    }
    let server = match &command {
        ChannelCommand::Create { server, .. }
        | ChannelCommand::Rename { server, .. }
        | ChannelCommand::Topic { server, .. }
        | ChannelCommand::Move { server, .. }
        | ChannelCommand::Delete { server, .. }
        | ChannelCommand::Permissions { server, .. }
        | ChannelCommand::Slowmode { server, .. }
        | ChannelCommand::History { server, .. } => server.clone(),
    };
    let profile = Profile::open()?;
    let saved = profile.server(server.as_deref())?;
    let session = session::connect(&profile, &saved, None).await?;
    let update = |channel: &ChannelInfo| ChannelChange::Update {
        channel_id: channel.id,
        name: channel.name.clone(),
        category: channel.category.clone(),
        topic: channel.topic.clone(),
        position: channel.position,
    };
    let (change, done) = match command {
        ChannelCommand::Create {
            name,
            voice,
            category,
            topic,
            ..
        } => {
            let kind = if voice {
                ChannelKind::Voice
            } else {
                ChannelKind::Text
            };
            let done = format!("Created the {} #{}.", kind_word(kind), name.trim());
            let change = ChannelChange::Create {
                name,
                kind,
                category,
                topic,
            };
            (change, done)
        }
        ChannelCommand::Rename { name, new_name, .. } => {
            let channel = find(&session, &name)?;
            let done = format!("Renamed #{} to #{}.", channel.name, new_name.trim());
            let mut change = update(channel);
            if let ChannelChange::Update { name, .. } = &mut change {
                *name = new_name;
            }
            (change, done)
        }
        ChannelCommand::Topic { name, topic, .. } => {
            let channel = find(&session, &name)?;
            let topic = topic.join(" ");
            let done = if topic.trim().is_empty() {
                format!("Cleared the topic of #{}.", channel.name)
            } else {
                format!("Set the topic of #{}.", channel.name)
            };
            let mut change = update(channel);
            if let ChannelChange::Update { topic: old, .. } = &mut change {
                *old = topic;
            }
            (change, done)
        }
        ChannelCommand::Move {
            name,
            position,
            category,
            ..
        } => {
            let channel = find(&session, &name)?;
            let mut change = update(channel);
            if let ChannelChange::Update {
                position: old_position,
                category: old_category,
                ..
            } = &mut change
            {
                *old_position = position;
                if let Some(category) = category {
                    *old_category = category;
                }
            }
            (change, format!("Moved #{}.", channel.name))
        }
        ChannelCommand::Delete { name, yes, .. } => {
            let channel = find(&session, &name)?;
            if !yes {
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    bail!(
                        "deleting #{} removes its messages and files for everyone; add --yes to do it",
                        channel.name
                    );
                }
                let question = format!(
                    "Delete the {} #{} with all its messages and files, for everyone?",
                    kind_word(channel.kind),
                    channel.name
                );
                if !crate::members::confirm(&question)? {
                    println!("Nothing deleted.");
                    return Ok(());
                }
            }
            let done = format!("Deleted #{}.", channel.name);
            (
                ChannelChange::Delete {
                    channel_id: channel.id,
                },
                done,
            )
        }
        ChannelCommand::History { .. }
        | ChannelCommand::Permissions { .. }
        | ChannelCommand::Slowmode { .. } => unreachable!("carried out above"),
    };
    session
        .client
        .manage_channel(change)
        .await
        .context("the relay did not make the change")?;
    println!("{done}");
    Ok(())
}
