//! The clients' half of the permission matrix: events a relay should have refused but passed
//! (a forged deletion, a late edit, task tags from someone who may not apply them) are ignored
//! by every client, judged by the same role book. The relay's half is
//! `server/tests/permissions.rs`. In memory plus a real SQLite chat store; no network needed:
//! the point is what a client does with what it is handed.

use std::sync::Arc;

use sotto_client::chat::action::Action;
use sotto_client::chat::store::ChatStore;
use sotto_client::chat::{ChatBody, ChatMessage};
use sotto_client::rights::Rights;
use sotto_client::tasks::board::{Board, TagMessage};
use sotto_net::proto::control::ListedMember;
use sotto_net::roles::{ChannelOverride, Permissions, Role, RoleBook};

const CHANNEL: u32 = 1;
const MINUTE: u64 = 60_000;
const T0: u64 = 1_800_000_000_000;

/// Member ids; each member's key is `[id; 32]`.
const ROLES: [(&str, u32); 6] = [
    ("owner", 1),
    ("admin", 2),
    ("moderator", 3),
    ("lead", 4),
    ("member", 5),
    ("observer", 6),
];

fn role(id: u32, name: &str, permissions: Permissions, position: u16) -> Role {
    Role {
        id,
        name: name.into(),
        permissions,
        position,
        builtin: id <= 3,
    }
}

/// The server's book: built-in roles, a custom `lead` (create channels), and an `observer`
/// role denied task tags in the channel.
fn rights() -> Rights {
    let book = RoleBook {
        owner: 1,
        roles: vec![
            role(1, "member", Permissions::MEMBER_DEFAULT, 0),
            role(2, "moderator", Permissions::MODERATOR_DEFAULT, 100),
            role(3, "admin", Permissions::ADMIN_DEFAULT, 200),
            role(4, "lead", Permissions::CREATE_CHANNELS, 2),
            role(5, "observer", Permissions::NONE, 1),
        ],
        assignments: vec![(2, 3), (3, 2), (4, 4), (6, 5)],
        overrides: vec![ChannelOverride {
            channel_id: CHANNEL,
            role_id: 5,
            allow: Permissions::NONE,
            deny: Permissions::APPLY_TAGS,
        }],
        ..RoleBook::default()
    };
    let listed: Vec<ListedMember> = ROLES
        .iter()
        .map(|(name, id)| ListedMember {
            member_id: *id,
            public_key: [*id as u8; 32],
            display_name: (*name).into(),
            is_owner: *id == 1,
            online: false,
        })
        .collect();
    Rights::new(Some(Arc::new(book)), &listed)
}

fn message(seq: u64, author: u32, at_ms: u64, body: ChatBody) -> ChatMessage {
    ChatMessage {
        author: Some([author as u8; 32]),
        sent_at_ms: Some(at_ms),
        ..ChatMessage::new(CHANNEL, seq, author, at_ms, body)
    }
}

/// What `author`'s forged deletion, late edit and task tag did, as a client applies them.
fn outcome(rights: &Rights, author: u32) -> (bool, bool, bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
    let admins = rights.holders(CHANNEL, Permissions::MANAGE_MESSAGES);
    let is_admin = |key: &[u8; 32]| admins.contains(key);
    // Someone with no role of note (not the author).
    let victim = 7;
    store
        .insert(
            "s",
            &[
                message(1, victim, T0, ChatBody::Text("someone else's words".into())),
                message(2, author, T0, ChatBody::Text("my words".into())),
                // Passed by the relay: a deletion of message 1, an edit ten minutes later.
                message(
                    3,
                    author,
                    T0 + MINUTE,
                    ChatBody::Action(Action::Delete { target: 1 }),
                ),
                message(
                    4,
                    author,
                    T0 + 10 * MINUTE,
                    ChatBody::Action(Action::Edit {
                        target: 2,
                        text: "my words, later".into(),
                    }),
                ),
            ],
            &is_admin,
        )
        .unwrap();
    let latest = store.latest("s", CHANNEL, 10).unwrap();
    let deleted = latest.iter().find(|m| m.seq == 1).unwrap().deleted;
    let edited = latest.iter().find(|m| m.seq == 2).unwrap().edited;
    let mut board = Board::new();
    board.apply(
        &TagMessage {
            seq: 5,
            text: "#task Ship the release",
            reply_to: None,
            may_apply_tags: rights.may(&[author as u8; 32], CHANNEL, Permissions::APPLY_TAGS),
        },
        &|_| true,
    );
    (deleted, edited, board.tasks().count() == 1)
}

#[test]
fn every_client_ignores_what_a_role_may_not_do_even_if_the_relay_passed_it() {
    let rights = rights();
    let seen: Vec<(&str, (bool, bool, bool))> = ROLES
        .iter()
        .map(|(name, id)| (*name, outcome(&rights, *id)))
        .collect();
    // (deletes another's message, edits its own after five minutes, its #task counts)
    assert_eq!(
        seen,
        [
            ("owner", (true, true, true)),
            ("admin", (true, true, true)),
            ("moderator", (true, true, true)),
            ("lead", (false, false, true)),
            ("member", (false, false, true)),
            ("observer", (false, false, false)),
        ]
    );
}

#[test]
fn someone_who_left_is_judged_as_a_plain_member() {
    let rights = rights();
    assert_eq!(outcome(&rights, 42), (false, false, true));
}
