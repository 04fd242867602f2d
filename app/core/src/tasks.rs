//! Tasks run from chat: `#task`, `#bug` and `#epic` create them, management tags change them,
//! and every client derives the same board from the channel's ordered messages (the relay
//! cannot read them).
//!
//! - [`tags`]: the tag parser (plain code, the seed's rules exactly).
//! - [`board`]: the board every client derives from the channel's messages in order.

pub mod board;
pub mod tags;

use std::collections::HashMap;

use sotto_net::roles::Permissions;

use crate::chat::{ChatBody, ChatMessage};
use crate::rights::Rights;

/// A channel's board, and the ✅/❌ summary of each message that carried tags.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// The board.
    pub board: board::Board,
    /// What each tagged message's tags did, by seq.
    pub summaries: HashMap<u64, Vec<String>>,
}

/// The board of `channel_id` from its messages in seq order: tags count only from members
/// `rights` lets apply them there; `user_exists` says whether a member has a name.
pub fn derive(
    messages: &[ChatMessage],
    channel_id: u32,
    rights: &Rights,
    user_exists: &dyn Fn(&str) -> bool,
) -> Derived {
    let mut derived = Derived::default();
    for message in messages {
        let ChatBody::Text(text) = &message.body else {
            continue;
        };
        let tagged = board::TagMessage {
            seq: message.seq,
            text,
            reply_to: message.reply_to,
            may_apply_tags: message
                .author
                .is_some_and(|author| rights.may(&author, channel_id, Permissions::APPLY_TAGS)),
        };
        let summary = derived.board.apply(&tagged, user_exists);
        if !summary.is_empty() {
            derived.summaries.insert(message.seq, summary);
        }
    }
    derived
}
