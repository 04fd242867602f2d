//! Conversations: direct messages between a few members of a server. Each has a channel id
//! (its messages are stored like a text channel's, but it is not listed with the channels),
//! its members, and an MLS group of its own, stored here in the same transaction.

use std::collections::HashMap;

use rusqlite::{TransactionBehavior, params};
use sotto_net::proto::control::PublicKey;

use super::channels::next_channel_id;
use super::{Store, StoreError, to_u32};

/// Most conversations one member may be in (all of them fit in one `Conversations` frame).
pub const MAX_CONVERSATIONS_PER_MEMBER: u32 = 1000;

/// Most conversations one member may open (so nobody fills another's list alone).
pub const MAX_CONVERSATIONS_OPENED: u32 = 200;

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConversation {
    /// Its channel id.
    pub id: u32,
    /// Its MLS group.
    pub group_id: Vec<u8>,
    /// The member who opened it: id and identity key.
    pub creator: (u32, PublicKey),
    /// Its members now (ids and identity keys), the creator included while in it, by
    /// ascending id.
    pub members: Vec<(u32, PublicKey)>,
}

/// Why a conversation was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConversationRefusal {
    /// The group id is taken (by the server's group or another conversation).
    #[error("that group id is taken; open the conversation again")]
    GroupIdTaken,
    /// One of its members is in too many conversations already.
    #[error("a member is in {MAX_CONVERSATIONS_PER_MEMBER} conversations already")]
    TooMany,
    /// Its opener opened too many already.
    #[error("you opened {MAX_CONVERSATIONS_OPENED} conversations already")]
    TooManyOpened,
    /// Someone in it is not a member of the server (any more).
    #[error("someone in it is not a member of this server")]
    NotAMember,
}

/// A new conversation to store.
#[derive(Debug, Clone, Copy)]
pub struct NewConversation<'a> {
    /// The server.
    pub server_id: u32,
    /// Who opens it.
    pub creator: (u32, PublicKey),
    /// Everyone in it (ids and identity keys), the creator included.
    pub members: &'a [(u32, PublicKey)],
    /// Its MLS group.
    pub group_id: &'a [u8],
    /// The group's public state at epoch 0 (a `DeliveryGroup` snapshot).
    pub state: &'a [u8],
    /// Now, Unix seconds.
    pub now_unix: u64,
}

impl Store {
    /// Stores a conversation, its members and its group at epoch 0, in one transaction.
    pub fn open_conversation(
        &self,
        new: &NewConversation<'_>,
    ) -> Result<Result<StoredConversation, ConversationRefusal>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM mls_groups WHERE group_id = ?1)",
                params![new.group_id],
                |row| row.get(0),
            )?;
            if taken {
                return Ok(Err(ConversationRefusal::GroupIdTaken));
            }
            let opened: u32 = tx.query_row(
                "SELECT count(*) FROM conversations cv JOIN channels c ON c.id = cv.channel_id
                 WHERE cv.creator = ?1 AND c.server_id = ?2",
                params![new.creator.0, new.server_id],
                |row| row.get(0),
            )?;
            if opened >= MAX_CONVERSATIONS_OPENED {
                return Ok(Err(ConversationRefusal::TooManyOpened));
            }
            for (member, _) in new.members {
                // Checked here, in the transaction that stores it: nobody removed meanwhile.
                let in_server: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM memberships WHERE member_id = ?1
                                    AND server_id = ?2)",
                    params![member, new.server_id],
                    |row| row.get(0),
                )?;
                if !in_server {
                    return Ok(Err(ConversationRefusal::NotAMember));
                }
                let count: u32 = tx.query_row(
                    "SELECT count(*) FROM conversation_members WHERE member_id = ?1",
                    params![member],
                    |row| row.get(0),
                )?;
                if count >= MAX_CONVERSATIONS_PER_MEMBER {
                    return Ok(Err(ConversationRefusal::TooMany));
                }
            }
            let id = next_channel_id(&tx)?;
            let now = new.now_unix.min(i64::MAX as u64) as i64;
            tx.execute(
                "INSERT INTO channels (id, server_id, name, kind, position, category, conversation)
                 VALUES (?1, ?2, '', 'text', 0, '', 1)",
                params![id, new.server_id],
            )?;
            tx.execute(
                "INSERT INTO conversations (channel_id, group_id, creator, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, new.group_id, new.creator.0, now],
            )?;
            let mut members = new.members.to_vec();
            members.sort_unstable();
            members.dedup();
            for (member, _) in &members {
                tx.execute(
                    "INSERT INTO conversation_members (channel_id, member_id) VALUES (?1, ?2)",
                    params![id, member],
                )?;
            }
            tx.execute(
                "INSERT INTO mls_groups (group_id, server_id, conversation_id, epoch, state, created_at)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5)",
                params![new.group_id, new.server_id, id, new.state, now],
            )?;
            tx.commit()?;
            Ok(Ok(StoredConversation {
                id: to_u32(id, "conversation id")?,
                group_id: new.group_id.to_vec(),
                creator: new.creator,
                members,
            }))
        })
    }

    /// Every conversation of `server_id`, by id.
    pub fn conversations(&self, server_id: u32) -> Result<Vec<StoredConversation>, StoreError> {
        self.with(|connection| {
            let mut members: HashMap<i64, Vec<(u32, PublicKey)>> = HashMap::new();
            let mut statement = connection.prepare_cached(
                "SELECT cm.channel_id, cm.member_id, m.public_key FROM conversation_members cm
                 JOIN channels c ON c.id = cm.channel_id
                 JOIN members m ON m.id = cm.member_id
                 WHERE c.server_id = ?1 ORDER BY cm.channel_id, cm.member_id",
            )?;
            for row in statement.query_map([server_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })? {
                let (channel, member, key) = row?;
                members
                    .entry(channel)
                    .or_default()
                    .push((to_u32(member, "member id")?, to_key(key)?));
            }
            let mut statement = connection.prepare_cached(
                "SELECT cv.channel_id, cv.group_id, cv.creator, m.public_key FROM conversations cv
                 JOIN channels c ON c.id = cv.channel_id
                 JOIN members m ON m.id = cv.creator
                 WHERE c.server_id = ?1 ORDER BY cv.channel_id",
            )?;
            let rows = statement.query_map([server_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (id, group_id, creator, creator_key) = row?;
                Ok(StoredConversation {
                    id: to_u32(id, "conversation id")?,
                    group_id,
                    creator: (to_u32(creator, "member id")?, to_key(creator_key)?),
                    members: members.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
        })
    }
}

fn to_key(bytes: Vec<u8>) -> Result<PublicKey, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("member key"))
}
