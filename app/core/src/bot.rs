//! A small SDK for bots. A bot is a member like any other: it joins with an invite (`sotto
//! join` with its own profile), holds its own identity and group keys, and reads and posts
//! sealed messages, so end-to-end encryption holds with bots in the room.
//!
//! ```no_run
//! # async fn run() -> Result<(), sotto_client::bot::BotError> {
//! let profile = sotto_client::Profile::open()?;
//! let mut bot = sotto_client::bot::Bot::connect(&profile, None).await?;
//! while let Some(message) = bot.next_message().await? {
//!     if let Some(words) = message.text.strip_prefix("!echo ") {
//!         bot.reply(&message, words).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`webhook`] turns local HTTP posts (a CI result, a monitoring alert) into messages.

pub mod webhook;

use std::collections::{HashMap, VecDeque};

use sotto_net::client::ClientEvent;
use sotto_net::group::InviteSecret;
use sotto_net::identity::Identity;
use sotto_net::proto::control::{ChannelKind, PublicKey};

use crate::chat::action::Action;
use crate::chat::store::{ChatStore, ChatStoreError};
use crate::chat::{self, ChatBody, ChatError};
use crate::connection::CONNECT_TIMEOUT;
use crate::group::{GroupSetup, GroupStoreError};
use crate::rights::Rights;
use crate::{ConnectError, Profile, ProfileError, SavedServer, Session};

/// Why a bot could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BotError {
    /// The profile (identity, saved servers) could not be read.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The group store could not be opened.
    #[error(transparent)]
    GroupStore(#[from] GroupStoreError),
    /// The client could not start or connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The client's options were refused.
    #[error(transparent)]
    Client(#[from] sotto_net::client::ClientError),
    /// A message could not be sealed or posted.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The bot's chat store failed.
    #[error(transparent)]
    Store(#[from] ChatStoreError),
    /// No text channel has that name.
    #[error("no text channel is called \"{0}\" on this server")]
    NoSuchChannel(String),
}

/// A message someone else posted in a channel or conversation the bot is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Where: a channel or conversation id.
    pub channel_id: u32,
    /// Its place there.
    pub seq: u64,
    /// Who wrote it (their identity key), if the message could be read.
    pub author: Option<PublicKey>,
    /// Their display name, as the relay lists it.
    pub author_name: String,
    /// The text.
    pub text: String,
    /// The message it replies to.
    pub reply_to: Option<u64>,
}

/// A bot's connection to one server.
pub struct Bot {
    session: Session,
    identity: Identity,
    store: ChatStore,
    server_name: String,
    queue: VecDeque<Incoming>,
    /// The last seq of each channel handed out (or there before the bot came): what
    /// follows is new. Kept apart from the store, so a sync cut short loses nothing.
    delivered: HashMap<u32, u64>,
}

/// Connects `profile` to `saved` and waits until the relay admits it (the CLI connects this
/// way too). `notices` hears about a new identity key and failed attempts, for people.
pub async fn connect_saved(
    profile: &Profile,
    saved: &SavedServer,
    invite: Option<InviteSecret>,
    mut notices: impl FnMut(&str),
) -> Result<(Session, Identity), BotError> {
    let identity = profile.identity(|notice| notices(&notice.to_string()))?;
    let group = GroupSetup::open(&profile.group_store_path(), &identity, invite)?;
    let options = sotto_net::client::ClientOptions::new(
        saved.link.clone(),
        identity.clone(),
        saved.display_name.clone(),
        group.keys(),
    )?;
    let session = Session::connect(options, group, CONNECT_TIMEOUT, |reason| {
        notices(&format!(
            "note: cannot reach the relay yet ({reason}); retrying"
        ));
    })
    .await?;
    Ok((session, identity))
}

impl Bot {
    /// Connects the profile's identity to a joined server (the first one when `server` is
    /// none), and waits until it is in the server's encryption group.
    pub async fn connect(profile: &Profile, server: Option<&str>) -> Result<Self, BotError> {
        let saved = profile.server(server)?;
        let (mut session, identity) =
            connect_saved(profile, &saved, None, |notice| tracing::info!("{notice}")).await?;
        session
            .group
            .join_within(std::time::Duration::from_secs(30))
            .await;
        let store = ChatStore::open(&profile.chat_store_path())?;
        let server_name = session.server.name.clone();
        let mut bot = Self {
            session,
            identity,
            store,
            server_name,
            queue: VecDeque::new(),
            delivered: HashMap::new(),
        };
        // What was said while the bot was away is history, not commands.
        for channel_id in bot.text_channels() {
            chat::sync(&bot.session, &mut bot.store, &bot.server_name, channel_id).await?;
            let last = bot.store.last_seq(&bot.server_name, channel_id)?;
            bot.delivered.insert(channel_id, last);
        }
        Ok(bot)
    }

    /// The session (client, group, server) under the bot.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The server's text channels.
    pub fn text_channels(&self) -> Vec<u32> {
        self.session
            .channels
            .iter()
            .filter(|channel| channel.kind == ChannelKind::Text)
            .map(|channel| channel.id)
            .collect()
    }

    /// The id of the text channel called `name` (with or without '#').
    pub fn channel_id(&self, name: &str) -> Result<u32, BotError> {
        let wanted = name.trim_start_matches('#');
        self.session
            .channels
            .iter()
            .find(|channel| channel.kind == ChannelKind::Text && channel.name == wanted)
            .map(|channel| channel.id)
            .ok_or_else(|| BotError::NoSuchChannel(wanted.to_owned()))
    }

    /// The next message someone else posts; none once the connection is gone for good.
    /// Cancel-safe: a call dropped midway (in a `select!`) loses no message.
    pub async fn next_message(&mut self) -> Result<Option<Incoming>, BotError> {
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Ok(Some(message));
            }
            let Some(event) = self.session.events.recv().await else {
                return Ok(None);
            };
            match event {
                ClientEvent::Message(stored) => self.catch_up(stored.channel_id).await?,
                ClientEvent::Stopped(error) => {
                    tracing::warn!("the bot's connection ended: {error}");
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// Reads what is new in `channel_id` (edits and deletions applied) and queues others'
    /// texts.
    async fn catch_up(&mut self, channel_id: u32) -> Result<(), BotError> {
        chat::sync(
            &self.session,
            &mut self.store,
            &self.server_name,
            channel_id,
        )
        .await?;
        let names = self.session.client.list_members().await.unwrap_or_default();
        let own = self.identity.public_key();
        let last = self.store.last_seq(&self.server_name, channel_id)?;
        let from = self.delivered.get(&channel_id).map_or(1, |seq| seq + 1);
        for seq in from..=last {
            self.delivered.insert(channel_id, seq);
            let Some(message) = self.store.message(&self.server_name, channel_id, seq)? else {
                continue;
            };
            let ChatBody::Text(text) = &message.body else {
                continue;
            };
            if message.author == Some(own) || message.deleted {
                continue;
            }
            let author_name = names
                .iter()
                .find(|member| member.member_id == message.author_member)
                .map_or_else(
                    || "someone".to_owned(),
                    |member| chat::printable(&member.display_name),
                );
            self.queue.push_back(Incoming {
                channel_id,
                seq: message.seq,
                author: message.author,
                author_name,
                text: text.clone(),
                reply_to: message.reply_to,
            });
        }
        Ok(())
    }

    /// Posts `text` to a channel; its seq there.
    pub async fn send(&self, channel_id: u32, text: &str) -> Result<u64, BotError> {
        Ok(chat::post(&self.session, &self.identity, channel_id, text)
            .await?
            .seq)
    }

    /// Answers `to` with `text`, as a reply to it.
    pub async fn reply(&self, to: &Incoming, text: &str) -> Result<u64, BotError> {
        self.reply_to(to.channel_id, to.seq, text).await
    }

    /// Posts `text` to a channel as a reply to its message `seq`.
    pub async fn reply_to(&self, channel_id: u32, seq: u64, text: &str) -> Result<u64, BotError> {
        let action = Action::Text {
            text: text.to_owned(),
            reply_to: Some(seq),
        };
        Ok(
            chat::post_action(&self.session, &self.identity, channel_id, &action)
                .await?
                .seq,
        )
    }

    /// The task board of `channel_id`, as the bot's copy of the channel derives it.
    pub async fn board(&self, channel_id: u32) -> Result<crate::tasks::Derived, BotError> {
        let messages = self.store.latest(&self.server_name, channel_id, u32::MAX)?;
        let rights = Rights::load(&self.session).await;
        let members = self.session.client.list_members().await.unwrap_or_default();
        let user_exists = |wanted: &str| {
            members
                .iter()
                .any(|member| member.display_name.eq_ignore_ascii_case(wanted))
        };
        Ok(crate::tasks::derive(
            &messages,
            channel_id,
            &rights,
            &user_exists,
        ))
    }
}
