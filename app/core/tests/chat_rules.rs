//! The message rules every member applies, through a real relay with three members: an author
//! edits and deletes within 5 minutes of posting, admins delete at any time, nobody else does.
//! Time is injected where the relay keeps it: the test moves a stored message's time back six
//! minutes in the relay's database, as if it had been posted then (the relay cannot judge these
//! rules: it cannot read what a message does; members judge by the relay's times).

use sotto_client::Session;
use sotto_client::chat::action::Action;
use sotto_client::chat::store::ChatStore;
use sotto_client::chat::{self, ChatBody};
use sotto_relay::RelayConfig;

mod common;
use common::{Person, member, relay};

/// Posts `action` to `channel_id` as `who`; its seq.
async fn act(session: &Session, who: &Person, channel_id: u32, action: Action) -> u64 {
    chat::post_action(session, &who.identity, channel_id, &action)
        .await
        .unwrap()
        .seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_follow_the_five_minute_rule_through_a_real_relay() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, cy) = (Person::new("Ada"), Person::new("Bob"), Person::new("Cy"));
    let ada_session = member(&ada, &relay.owner).await;
    let invite = ada_session.group.create_invite(None, None).await.unwrap();
    let bob_session = member(&bob, &invite).await;
    let cy_session = member(&cy, &invite).await;
    let general = ada_session.channels[0].id;
    let text = |text: &str| Action::Text {
        text: text.into(),
        reply_to: None,
    };
    assert_eq!(act(&bob_session, &bob, general, text("first")).await, 1);
    assert_eq!(act(&bob_session, &bob, general, text("second")).await, 2);
    assert_eq!(act(&bob_session, &bob, general, text("third")).await, 3);

    // Messages 2 and 3 were posted six minutes ago, as far as anyone can tell.
    let database =
        rusqlite::Connection::open(relay.dir.path().join("relay").join("relay.db")).unwrap();
    database
        .execute(
            "UPDATE messages SET posted_at = posted_at - 360000 WHERE channel_id = ?1 AND seq >= 2",
            [general],
        )
        .unwrap();

    // Within 5 minutes: Bob edits his first. Past them: his edit and deletion of the second
    // are ignored by every member; Ada, an admin, deletes the third; Cy may not delete Bob's.
    let edit = |target: u64, text: &str| Action::Edit {
        target,
        text: text.into(),
    };
    act(&bob_session, &bob, general, edit(1, "first, fixed")).await;
    act(&bob_session, &bob, general, edit(2, "second, too late")).await;
    act(&bob_session, &bob, general, Action::Delete { target: 2 }).await;
    act(&ada_session, &ada, general, Action::Delete { target: 3 }).await;
    // A deletion also lets go of files at the relay, which takes it only from the author or
    // the owner: Cy's is refused there already.
    let refused = chat::post_action(
        &cy_session,
        &cy.identity,
        general,
        &Action::Delete { target: 1 },
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(chat::ChatError::Client(
                sotto_net::client::ClientError::Refused { .. }
            ))
        ),
        "{refused:?}"
    );

    // Every member's copy says the same.
    for (session, name) in [
        (&ada_session, "ada"),
        (&bob_session, "bob"),
        (&cy_session, "cy"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
        chat::sync(session, &mut store, "s", general).await.unwrap();
        let message = |seq| store.message("s", general, seq).unwrap().unwrap();
        let first = message(1);
        assert_eq!(first.body, ChatBody::Text("first, fixed".into()), "{name}");
        assert!(first.edited && !first.deleted, "{name}");
        let second = message(2);
        assert_eq!(second.body, ChatBody::Text("second".into()), "{name}");
        assert!(!second.edited && !second.deleted, "{name}");
        assert!(message(3).deleted, "{name}");
    }
}
