//! What each member may do, by the server's role book, keyed the way messages are: by the
//! author's identity key.
//!
//! Every client evaluates other members' messages against the same book (the relay's), so
//! they agree on what an edit, a deletion or a task tag did; a relay that passed a message it
//! should have refused does not change what anyone sees.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sotto_net::proto::control::{ListedMember, PublicKey};
use sotto_net::roles::{Permissions, RoleBook};

use crate::Session;

/// How long to wait for the relay's role book right after connecting.
const BOOK_WAIT: Duration = Duration::from_secs(3);

/// A member id no member has: someone who left the server is judged as a plain member.
const NOBODY: u32 = u32::MAX;

/// The role book with identity keys mapped to member ids.
#[derive(Debug, Clone, Default)]
pub struct Rights {
    book: Option<Arc<RoleBook>>,
    ids: HashMap<PublicKey, u32>,
}

impl Rights {
    /// The rights `book` gives the members `listed`.
    pub fn new(book: Option<Arc<RoleBook>>, listed: &[ListedMember]) -> Self {
        Self {
            book,
            ids: listed
                .iter()
                .map(|member| (member.public_key, member.member_id))
                .collect(),
        }
    }

    /// The session's book (waiting briefly for it after connecting) and member list.
    pub async fn load(session: &Session) -> Self {
        let mut changes = session.client.roles_changes();
        let book = match tokio::time::timeout(BOOK_WAIT, changes.wait_for(Option::is_some)).await {
            Ok(Ok(book)) => book.clone(),
            _ => None,
        };
        let listed = session.client.list_members().await.unwrap_or_default();
        Self::new(book, &listed)
    }

    /// The book, if the relay sent one.
    pub fn book(&self) -> Option<&RoleBook> {
        self.book.as_deref()
    }

    /// The member id of a key (none for someone not on the server now).
    pub fn member_id(&self, key: &PublicKey) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// Whether the member with `key` holds `permission` in `channel_id`. Without a book (an
    /// old relay) everyone holds what a plain member does by default.
    pub fn may(&self, key: &PublicKey, channel_id: u32, permission: Permissions) -> bool {
        match &self.book {
            Some(book) => {
                let member = self.member_id(key).unwrap_or(NOBODY);
                book.may_in(member, channel_id, permission)
            }
            None => Permissions::MEMBER_DEFAULT.contains(permission),
        }
    }

    /// The keys of everyone who holds `permission` in `channel_id`, of the members listed.
    pub fn holders(&self, channel_id: u32, permission: Permissions) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self
            .ids
            .keys()
            .filter(|key| self.may(key, channel_id, permission))
            .copied()
            .collect();
        keys.sort_unstable();
        keys
    }
}

#[cfg(test)]
mod tests {
    use sotto_net::roles::{ChannelOverride, Role};

    use super::*;

    fn listed(member_id: u32, key: u8) -> ListedMember {
        ListedMember {
            member_id,
            public_key: [key; 32],
            display_name: format!("m{member_id}"),
            is_owner: member_id == 1,
            online: false,
        }
    }

    #[test]
    fn keys_are_judged_by_their_members_roles_and_strangers_as_plain_members() {
        let book = RoleBook {
            owner: 1,
            roles: vec![
                Role {
                    id: 1,
                    name: "member".into(),
                    permissions: Permissions::MEMBER_DEFAULT,
                    position: 0,
                    builtin: true,
                },
                Role {
                    id: 2,
                    name: "moderator".into(),
                    permissions: Permissions::MODERATOR_DEFAULT,
                    position: 100,
                    builtin: true,
                },
            ],
            assignments: vec![(2, 2)],
            overrides: vec![ChannelOverride {
                channel_id: 7,
                role_id: 1,
                allow: Permissions::NONE,
                deny: Permissions::APPLY_TAGS,
            }],
            ..RoleBook::default()
        };
        let rights = Rights::new(
            Some(Arc::new(book)),
            &[listed(1, 1), listed(2, 2), listed(3, 3)],
        );
        assert_eq!(
            rights.holders(5, Permissions::MANAGE_MESSAGES),
            [[1; 32], [2; 32]]
        );
        assert!(!rights.may(&[3; 32], 7, Permissions::APPLY_TAGS));
        assert!(rights.may(&[3; 32], 5, Permissions::APPLY_TAGS));
        // Someone who left: a plain member.
        assert!(!rights.may(&[9; 32], 7, Permissions::APPLY_TAGS));
        assert!(rights.may(&[9; 32], 5, Permissions::SEND_MESSAGES));
        // No book: the defaults.
        let none = Rights::new(None, &[]);
        assert!(none.may(&[3; 32], 7, Permissions::APPLY_TAGS));
        assert!(!none.may(&[3; 32], 7, Permissions::MANAGE_MESSAGES));
    }
}
