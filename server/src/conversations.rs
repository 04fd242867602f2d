//! The server's conversations as the relay checks them on every message: who is in which.
//! Kept in memory (swapped whole on each change, which is rare) and mirrored from the store,
//! which decides every change in one transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sotto_net::proto::control::{ConversationInfo, PublicKey};

use crate::db::StoredConversation;

/// One conversation and who is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conversation {
    /// Its channel id.
    pub(crate) id: u32,
    /// Its MLS group.
    pub(crate) group_id: Vec<u8>,
    /// Who opened it.
    pub(crate) creator: PublicKey,
    /// Its members: ids and identity keys.
    pub(crate) members: Vec<(u32, PublicKey)>,
}

impl Conversation {
    /// Whether `member_id` is in it.
    pub(crate) fn includes(&self, member_id: u32) -> bool {
        self.members.iter().any(|(id, _)| *id == member_id)
    }

    /// Its members' identity keys.
    pub(crate) fn keys(&self) -> Vec<PublicKey> {
        self.members.iter().map(|(_, key)| *key).collect()
    }

    /// As members are told of it.
    pub(crate) fn info(&self) -> ConversationInfo {
        ConversationInfo {
            id: self.id,
            group_id: self.group_id.clone(),
            creator: self.creator,
            members: self.keys(),
        }
    }
}

impl From<StoredConversation> for Conversation {
    fn from(stored: StoredConversation) -> Self {
        Self {
            id: stored.id,
            group_id: stored.group_id,
            creator: stored.creator.1,
            members: stored.members,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Book {
    by_id: HashMap<u32, Arc<Conversation>>,
    by_group: HashMap<Vec<u8>, u32>,
}

/// Every conversation of the server.
#[derive(Debug, Default)]
pub(crate) struct Conversations {
    book: ArcSwap<Book>,
    /// Serialises changes (readers never wait).
    writing: Mutex<()>,
}

/// Whether a channel id is a conversation, and whether a member may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Not a conversation (maybe a channel).
    NotAConversation,
    /// A conversation the member is in.
    Member,
    /// A conversation the member is not in.
    Outsider,
}

impl Conversations {
    /// The conversations stored.
    pub(crate) fn load(stored: Vec<StoredConversation>) -> Self {
        let conversations = Self::default();
        for conversation in stored {
            conversations.insert(conversation.into());
        }
        conversations
    }

    /// Adds or replaces a conversation.
    pub(crate) fn insert(&self, conversation: Conversation) {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut book = Book::clone(&self.book.load());
        book.by_group
            .insert(conversation.group_id.clone(), conversation.id);
        book.by_id.insert(conversation.id, Arc::new(conversation));
        self.book.store(Arc::new(book));
    }

    /// Takes `removed` out of every conversation; returns the conversations that changed, as
    /// they are now.
    pub(crate) fn remove_everywhere(&self, removed: &[u32]) -> Vec<Arc<Conversation>> {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut book = Book::clone(&self.book.load());
        let mut changed = Vec::new();
        for conversation in book.by_id.values_mut() {
            if conversation
                .members
                .iter()
                .any(|(id, _)| removed.contains(id))
            {
                let mut now = Conversation::clone(conversation);
                now.members.retain(|(member, _)| !removed.contains(member));
                *conversation = Arc::new(now);
                changed.push(conversation.clone());
            }
        }
        self.book.store(Arc::new(book));
        changed
    }

    /// Takes `removed` out of conversation `id`; returns it as it is now.
    pub(crate) fn remove_members(&self, id: u32, removed: &[u32]) -> Option<Arc<Conversation>> {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut book = Book::clone(&self.book.load());
        let conversation = book.by_id.get(&id)?;
        let mut changed = Conversation::clone(conversation);
        changed
            .members
            .retain(|(member, _)| !removed.contains(member));
        let changed = Arc::new(changed);
        book.by_id.insert(id, changed.clone());
        self.book.store(Arc::new(book));
        Some(changed)
    }

    /// Conversation `id`, if there is one.
    #[cfg(test)]
    pub(crate) fn get(&self, id: u32) -> Option<Arc<Conversation>> {
        self.book.load().by_id.get(&id).cloned()
    }

    /// The conversation whose group is `group_id`, if any.
    pub(crate) fn by_group(&self, group_id: &[u8]) -> Option<Arc<Conversation>> {
        let book = self.book.load();
        book.by_group
            .get(group_id)
            .and_then(|id| book.by_id.get(id))
            .cloned()
    }

    /// Whether `channel_id` is a conversation `member_id` may use.
    pub(crate) fn access(&self, channel_id: u32, member_id: u32) -> Access {
        match self.book.load().by_id.get(&channel_id) {
            None => Access::NotAConversation,
            Some(conversation) if conversation.includes(member_id) => Access::Member,
            Some(_) => Access::Outsider,
        }
    }

    /// The conversations `member_id` is in, by id.
    pub(crate) fn of_member(&self, member_id: u32) -> Vec<ConversationInfo> {
        let mut found: Vec<ConversationInfo> = self
            .book
            .load()
            .by_id
            .values()
            .filter(|conversation| conversation.includes(member_id))
            .map(|conversation| conversation.info())
            .collect();
        found.sort_by_key(|info| info.id);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: u32, members: &[u32]) -> StoredConversation {
        StoredConversation {
            id,
            group_id: format!("sotto/conversation/{id}").into_bytes(),
            creator: (members[0], [members[0] as u8; 32]),
            members: members.iter().map(|id| (*id, [*id as u8; 32])).collect(),
        }
    }

    #[test]
    fn members_reach_their_conversations_and_nobody_else_does() {
        let book = Conversations::load(vec![stored(10, &[1, 2]), stored(11, &[2, 3, 4])]);
        assert_eq!(book.access(10, 1), Access::Member);
        assert_eq!(book.access(10, 3), Access::Outsider);
        assert_eq!(book.access(12, 1), Access::NotAConversation);
        let of_two: Vec<u32> = book.of_member(2).iter().map(|info| info.id).collect();
        assert_eq!(of_two, [10, 11]);
        assert_eq!(book.by_group(b"sotto/conversation/11").unwrap().id, 11);
        assert_eq!(book.get(11).unwrap().keys(), [[2; 32], [3; 32], [4; 32]]);
    }

    #[test]
    fn a_member_out_of_the_server_is_out_of_every_conversation() {
        let book = Conversations::load(vec![
            stored(10, &[1, 2]),
            stored(11, &[2, 3]),
            stored(12, &[1, 3]),
        ]);
        let changed: Vec<u32> = book
            .remove_everywhere(&[2])
            .iter()
            .map(|conversation| conversation.id)
            .collect();
        let mut changed = changed;
        changed.sort_unstable();
        assert_eq!(changed, [10, 11]);
        assert!(book.of_member(2).is_empty());
        assert_eq!(book.get(12).unwrap().keys(), [[1; 32], [3; 32]]);
    }

    #[test]
    fn a_removed_member_loses_access_and_leaves_the_list() {
        let book = Conversations::load(vec![stored(10, &[1, 2, 3])]);
        book.remove_members(10, &[2]);
        assert_eq!(book.access(10, 2), Access::Outsider);
        assert_eq!(book.access(10, 3), Access::Member);
        assert_eq!(book.get(10).unwrap().info().members, [[1; 32], [3; 32]]);
        assert!(book.of_member(2).is_empty());
    }
}
