//! Text channel messages: sealed with the server group's text secret of the current epoch and
//! signed by their author, posted to the relay (which stores only the envelope), and opened
//! again with the secret of the epoch they were sealed in.
//!
//! What a member can read: messages sealed in epochs it was in. Older ones (from before it
//! joined) stay sealed, and say so.

pub mod action;
pub mod files;
pub mod history;
pub mod markdown;
pub mod mentions;
pub mod query;
pub mod store;
pub mod thumbnail;

use std::time::Duration;

use sotto_net::client::{ClientError, Posted};
use sotto_net::identity::Identity;
use sotto_net::proto::control::{ErrorCode, PublicKey, StoredMessage};
use sotto_net::seal::text::{
    MAX_BODY_LEN, MessageHeader, OpenError, decode_envelope, encode_envelope, open_message,
    seal_message_by,
};

use crate::Session;
use action::{Action, ActionError};

/// How often a post is tried while the connection is down (with the same message id, so it is
/// stored once).
const POST_TRIES: u32 = 20;
const POST_RETRY: Duration = Duration::from_millis(250);

/// How often a post refused for the member's message rate is tried again (40 × 250 ms: the
/// rate's bucket refills long before).
const RATE_LIMITED_TRIES: u32 = 40;

/// Why a message could not be posted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// We are not in the server's encryption group (yet), so we hold no key to seal with.
    #[error("you are not in this server's encryption group yet, so messages cannot be sealed")]
    NotInGroup,
    /// The message is too long.
    #[error("the message is {0} bytes; at most {MAX_BODY_LEN} fit in one")]
    TooLong(usize),
    /// The message is empty.
    #[error("the message is empty")]
    Empty,
    /// Members would not accept it (say, a reaction that is not a short emoji).
    #[error("members would not accept this (a reaction is one emoji of at most 32 bytes)")]
    Malformed,
    /// The relay refused it, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The local message store failed.
    #[error(transparent)]
    Store(#[from] store::ChatStoreError),
}

/// What a stored message says, once opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatBody {
    /// Its text.
    Text(String),
    /// An edit, deletion or reaction of an earlier message (applied to it, not shown).
    Action(Action),
    /// It could not be read, and why (for people).
    Unreadable(String),
}

/// A message of a text channel as a front end shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The channel.
    pub channel_id: u32,
    /// Its place in the channel.
    pub seq: u64,
    /// The author's identity key (signed, when readable) and member id (from the relay).
    pub author: Option<PublicKey>,
    /// The author's member id, as the relay stored it.
    pub author_member: u32,
    /// When the author sent it (author's clock, Unix ms), when readable.
    pub sent_at_ms: Option<u64>,
    /// When the relay stored it (Unix ms).
    pub posted_at_ms: u64,
    /// What it says.
    pub body: ChatBody,
    /// The seq of the message it answers, if a reply.
    pub reply_to: Option<u64>,
    /// Whether its author edited it since (the text is the latest).
    pub edited: bool,
    /// Whether it was deleted (its text is gone).
    pub deleted: bool,
    /// Reactions: each emoji and how many members gave it.
    pub reactions: Vec<(String, u32)>,
    /// The file it carries (its text is the caption).
    pub attachment: Option<action::Attachment>,
    /// Whether it calls on us (`@our name`, `@here`, `@everyone`; never our own messages).
    pub mentions_me: bool,
    /// Whether an admin pinned it to the channel.
    pub pinned: bool,
    /// Where it was forwarded from, if it was (as its forwarder tells it).
    pub forwarded_from: Option<action::Origin>,
}

impl ChatMessage {
    /// Message `seq` of `channel_id` by member `author_member`, stored at `posted_at_ms`,
    /// saying `body`; nothing else known of it yet.
    pub fn new(
        channel_id: u32,
        seq: u64,
        author_member: u32,
        posted_at_ms: u64,
        body: ChatBody,
    ) -> Self {
        Self {
            channel_id,
            seq,
            author: None,
            author_member,
            sent_at_ms: None,
            posted_at_ms,
            body,
            reply_to: None,
            edited: false,
            deleted: false,
            reactions: Vec::new(),
            attachment: None,
            mentions_me: false,
            pinned: false,
            forwarded_from: None,
        }
    }
}

/// Milliseconds since the Unix epoch (messages' times).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Seals `text` and posts it to `channel_id`; done once the relay stored it durably.
pub async fn post(
    session: &Session,
    identity: &Identity,
    channel_id: u32,
    text: &str,
) -> Result<Posted, ChatError> {
    let action = Action::Text {
        text: text.to_owned(),
        reply_to: None,
    };
    post_action(session, identity, channel_id, &action).await
}

/// Seals `action` (a text, reply, edit, deletion or reaction) and posts it to `channel_id`.
pub async fn post_action(
    session: &Session,
    identity: &Identity,
    channel_id: u32,
    action: &Action,
) -> Result<Posted, ChatError> {
    if let Action::Text { text, .. } | Action::Edit { text, .. } = action
        && text.trim().is_empty()
    {
        return Err(ChatError::Empty);
    }
    let (kind, body) = action.encode();
    if body.len() > MAX_BODY_LEN {
        return Err(ChatError::TooLong(body.len()));
    }
    // What other members would refuse to read is not sent.
    if Action::parse(kind, &body).as_ref() != Ok(action) {
        return Err(ChatError::Malformed);
    }
    let (epoch, secret) = session
        .group
        .text_secret(channel_id)
        .await
        .ok_or(ChatError::NotInGroup)?;
    let header = MessageHeader {
        channel_id,
        epoch,
        author: identity.public_key(),
        sent_at_ms: unix_now_ms(),
        kind,
    };
    let sealed = seal_message_by(&secret, identity, &header, &body)
        .map_err(|_| ChatError::TooLong(body.len()))?;
    let envelope = encode_envelope(&sealed);
    // The relay keeps a file while a message carries it, and lets go of a deleted message's.
    let files = match action {
        Action::File { file, .. }
        | Action::Forward {
            file: Some(file), ..
        } => vec![file.blob_id],
        _ => Vec::new(),
    };
    let retracts = match action {
        Action::Delete { target } => Some(*target),
        _ => None,
    };
    let mut tries = 0;
    let mut rate_limited = 0;
    loop {
        match session
            .client
            .post_message_with(
                channel_id,
                *sealed.message_id(),
                envelope.clone(),
                files.clone(),
                retracts,
            )
            .await
        {
            Err(ClientError::NotConnected) if tries < POST_TRIES => {
                tries += 1;
                tokio::time::sleep(POST_RETRY).await;
            }
            // Over the relay's message rate (a bot sending a burst): its bucket refills in a
            // moment, so wait and send again rather than drop the message.
            Err(ClientError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) if rate_limited < RATE_LIMITED_TRIES => {
                rate_limited += 1;
                tokio::time::sleep(POST_RETRY).await;
            }
            result => {
                let posted = result?;
                session.group.note_sent(1).await;
                return Ok(posted);
            }
        }
    }
}

/// Opens a stored message with the text secret of the epoch it was sealed in.
pub async fn open(session: &Session, stored: &StoredMessage) -> ChatMessage {
    let mut message = ChatMessage::new(
        stored.channel_id,
        stored.seq,
        stored.author,
        stored.posted_at,
        ChatBody::Unreadable(String::new()),
    );
    message.body = match open_body(session, stored).await {
        Ok((author, sent_at_ms, action)) => {
            message.author = Some(author);
            message.sent_at_ms = Some(sent_at_ms);
            match action {
                Action::Text { text, reply_to } => {
                    message.reply_to = reply_to;
                    ChatBody::Text(printable(&text))
                }
                Action::File { file, text } => {
                    message.attachment = Some(file);
                    ChatBody::Text(printable(&text))
                }
                Action::Forward { origin, file, text } => {
                    message.attachment = file;
                    message.forwarded_from = Some(origin);
                    ChatBody::Text(printable(&text))
                }
                other => ChatBody::Action(other),
            }
        }
        Err(why) => ChatBody::Unreadable(why.into()),
    };
    // A forward does not call on anyone again.
    if let (ChatBody::Text(text), None) = (&message.body, &message.forwarded_from) {
        message.mentions_me =
            stored.author != session.member_id && mentions::mentions(text, &session.display_name);
    }
    message
}

async fn open_body(
    session: &Session,
    stored: &StoredMessage,
) -> Result<(PublicKey, u64, Action), &'static str> {
    let sealed = decode_envelope(&stored.envelope).map_err(|_| "not a message envelope")?;
    let header = *sealed.header();
    if header.channel_id != stored.channel_id || *sealed.message_id() != stored.message_id {
        return Err("the relay filed it under another channel or id");
    }
    let (_, secret) = session
        .group
        .text_secret_of(header.channel_id, Some(header.epoch))
        .await
        .ok_or("sent before you joined (or its keys are gone): it stays sealed")?;
    let opened = open_message(&secret, &stored.envelope).map_err(|error| match error {
        OpenError::BadSignature | OpenError::InvalidAuthorKey => {
            "its signature does not hold: forged"
        }
        _ => "damaged or sealed with other keys",
    })?;
    let action = Action::parse(header.kind, &opened.body).map_err(|error| match error {
        ActionError::UnknownKind => "a kind of message this version does not show",
        _ => "a malformed message",
    })?;
    Ok((header.author, header.sent_at_ms, action))
}

/// `text` without control characters other than newlines and tabs (a terminal must not be
/// steered by a message).
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Brings the local copy of `channel_id` up to date: reads what it lacks from the relay (in
/// pages), opens it and keeps it. Returns how many messages were new.
pub async fn sync(
    session: &Session,
    store: &mut store::ChatStore,
    server: &str,
    channel_id: u32,
) -> Result<usize, ChatError> {
    Ok(sync_messages(session, store, server, channel_id)
        .await?
        .len())
}

/// [`sync`], returning the new messages as opened (edits, deletions and reactions included,
/// already applied to the store).
pub async fn sync_messages(
    session: &Session,
    store: &mut store::ChatStore,
    server: &str,
    channel_id: u32,
) -> Result<Vec<ChatMessage>, ChatError> {
    let admins = channel_admins(session, channel_id).await;
    let is_admin = |key: &PublicKey| admins.contains(key);
    let mut added = Vec::new();
    loop {
        let after = store.last_seq(server, channel_id)?;
        let (messages, more) = history(session, channel_id, after, SYNC_PAGE).await?;
        store.insert(server, &messages, &is_admin)?;
        let done = !more || messages.is_empty();
        added.extend(messages);
        if done {
            break;
        }
    }
    self::history::import_shared(session, store, server, channel_id, &added, &is_admin).await?;
    Ok(added)
}

/// Who may pin, delete others' messages, and edit or delete their own at any time in
/// `channel_id`: [`admins_of`] the group, and in a server channel everyone the role book
/// gives "manage-messages" there.
pub async fn channel_admins(session: &Session, channel_id: u32) -> Vec<PublicKey> {
    let mut admins = admins_of(session, channel_id);
    let in_conversation = session
        .group
        .conversations()
        .iter()
        .any(|view| view.info.id == channel_id);
    if !in_conversation {
        let rights = crate::rights::Rights::load(session).await;
        for key in rights.holders(channel_id, sotto_net::roles::Permissions::MANAGE_MESSAGES) {
            if !admins.contains(&key) {
                admins.push(key);
            }
        }
    }
    admins
}

/// The admins of the group that keys `channel_id` (a conversation's is its opener, while in
/// it; a channel's, the server's group admins).
pub fn admins_of(session: &Session, channel_id: u32) -> Vec<PublicKey> {
    if let Some(conversation) = session
        .group
        .conversations()
        .into_iter()
        .find(|view| view.info.id == channel_id)
    {
        let opener = conversation.info.creator;
        return if conversation.info.members.contains(&opener) {
            vec![opener]
        } else {
            Vec::new()
        };
    }
    match session.group.state() {
        crate::group::GroupState::Member { members, .. } => members
            .into_iter()
            .filter(|member| member.is_admin)
            .map(|member| member.public_key)
            .collect(),
        _ => Vec::new(),
    }
}

/// Messages read from the relay per request while syncing.
const SYNC_PAGE: u16 = 100;

/// A page of `channel_id`'s history after seq `after`, opened; and whether more follow.
pub async fn history(
    session: &Session,
    channel_id: u32,
    after: u64,
    limit: u16,
) -> Result<(Vec<ChatMessage>, bool), ChatError> {
    let mut rate_limited = 0;
    let (stored, more) = loop {
        match session.client.read_channel(channel_id, after, limit).await {
            // Over the relay's request rate: its bucket refills in a moment.
            Err(ClientError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) if rate_limited < RATE_LIMITED_TRIES => {
                rate_limited += 1;
                tokio::time::sleep(POST_RETRY).await;
            }
            result => break result?,
        }
    };
    let mut messages = Vec::with_capacity(stored.len());
    for message in &stored {
        messages.push(open(session, message).await);
    }
    Ok((messages, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_dropped_but_lines_stay() {
        assert_eq!(
            printable("hi\u{1b}[31mred\u{7}\n\tnext\u{0}"),
            "hi[31mred\n\tnext"
        );
    }
}
