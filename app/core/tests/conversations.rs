//! Conversations (direct messages) over a real relay on loopback: each has an MLS group of its
//! own that its opener fills, only its members can read or even see it, and it survives a
//! reconnection.

use std::time::Duration;

use sotto_client::Session;
use sotto_client::chat::{self, ChatBody};
use sotto_client::group::GroupState;
use sotto_net::client::{ClientError, ClientEvent};
use sotto_net::proto::control::{ConversationInfo, ErrorCode};
use sotto_relay::RelayConfig;

mod common;
use common::{DEADLINE, Person, member, relay};

/// Waits until `session` sees conversation `id` ready (everyone in its group).
async fn ready(session: &mut Session, id: u32) {
    let view = session.group.conversation_ready_within(id, DEADLINE).await;
    assert!(
        view.as_ref().is_some_and(|view| view.ready),
        "conversation {id} not ready: {view:?}"
    );
}

/// The texts of conversation `id`'s messages, read from the relay and opened.
async fn texts(session: &Session, id: u32) -> Vec<String> {
    let (messages, _) = chat::history(session, id, 0, 100).await.unwrap();
    messages
        .into_iter()
        .map(|message| match message.body {
            ChatBody::Text(text) => text,
            other => format!("<{other:?}>"),
        })
        .collect()
}

fn refused_as_missing(result: Result<impl std::fmt::Debug, ClientError>) {
    match result {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::NoSuchChannel),
        other => panic!("an outsider got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_conversations_members_read_it_and_each_has_its_own_group() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, cy) = (Person::new("Ada"), Person::new("Bob"), Person::new("Cy"));
    let ada_session = member(&ada, &relay.owner).await;
    let invite = ada_session.group.create_invite(None, None).await.unwrap();
    let mut bob_session = member(&bob, &invite).await;
    let mut cy_session = member(&cy, &invite).await;
    let bob_key = bob.identity.public_key();
    let cy_key = cy.identity.public_key();

    // Ada opens a conversation with Bob; it is ready once Bob is in its group.
    let direct: ConversationInfo =
        tokio::time::timeout(DEADLINE, ada_session.group.open_conversation(vec![bob_key]))
            .await
            .expect("opened in time")
            .unwrap();
    assert_eq!(direct.creator, ada.identity.public_key());
    assert_eq!(direct.members.len(), 2);
    ready(&mut bob_session, direct.id).await;
    let ada_view = ada_session
        .group
        .conversations()
        .into_iter()
        .find(|view| view.info.id == direct.id)
        .unwrap();
    let GroupState::Member { members, .. } = &ada_view.state else {
        panic!(
            "Ada is not in the conversation's group: {:?}",
            ada_view.state
        )
    };
    assert_eq!(members.len(), 2);

    chat::post(
        &ada_session,
        &ada.identity,
        direct.id,
        "canary-dm hello Bob",
    )
    .await
    .unwrap();
    chat::post(&bob_session, &bob.identity, direct.id, "hi Ada")
        .await
        .unwrap();
    assert_eq!(
        texts(&bob_session, direct.id).await,
        ["canary-dm hello Bob", "hi Ada"]
    );
    assert_eq!(
        texts(&ada_session, direct.id).await,
        ["canary-dm hello Bob", "hi Ada"]
    );

    // To Cy it does not exist: no listing, no history, no posting, no live messages.
    assert!(
        cy_session
            .group
            .conversations_within(DEADLINE)
            .await
            .is_empty()
    );
    refused_as_missing(cy_session.client.read_channel(direct.id, 0, 10).await);
    refused_as_missing(
        cy_session
            .client
            .post_message_with(direct.id, [7; 16], vec![1; 64], Vec::new(), None)
            .await,
    );
    chat::post(&bob_session, &bob.identity, direct.id, "still private")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, cy_session.events.recv()).await {
        if let ClientEvent::Message(message) = event {
            assert_ne!(message.channel_id, direct.id, "Cy got a message of it");
        }
    }

    // A group conversation: all three, its own group (Cy can read it from its first message).
    let group = tokio::time::timeout(
        DEADLINE,
        ada_session.group.open_conversation(vec![bob_key, cy_key]),
    )
    .await
    .expect("opened in time")
    .unwrap();
    assert_ne!(group.group_id, direct.group_id);
    ready(&mut cy_session, group.id).await;
    chat::post(&ada_session, &ada.identity, group.id, "welcome, both")
        .await
        .unwrap();
    assert_eq!(texts(&cy_session, group.id).await, ["welcome, both"]);
    refused_as_missing(cy_session.client.read_channel(direct.id, 0, 10).await);

    // Bob comes back: both conversations are listed, and what was said is still readable.
    drop(bob_session);
    let mut bob_session = member(&bob, &invite).await;
    let listed: Vec<u32> = bob_session
        .group
        .conversations_within(DEADLINE)
        .await
        .iter()
        .map(|view| view.info.id)
        .collect();
    assert_eq!(listed, [direct.id, group.id]);
    ready(&mut bob_session, direct.id).await;
    assert_eq!(
        texts(&bob_session, direct.id).await,
        ["canary-dm hello Bob", "hi Ada", "still private"]
    );
    chat::post(&bob_session, &bob.identity, group.id, "back again")
        .await
        .unwrap();
    assert_eq!(
        texts(&cy_session, group.id).await,
        ["welcome, both", "back again"]
    );

    // Cy is removed from the server: out of the conversation, and its opener takes him out of
    // its group, so nothing sent from then on is sealed to him.
    ada_session.group.remove(vec![cy_key]).await.unwrap();
    for session in [&ada_session, &bob_session] {
        let members = group_members_once(session, group.id, 2).await;
        assert!(!members.contains(&cy_key));
    }
    chat::post(&ada_session, &ada.identity, group.id, "just us now")
        .await
        .unwrap();
    assert_eq!(
        texts(&bob_session, group.id).await,
        ["welcome, both", "back again", "just us now"]
    );
}

/// Waits until conversation `id`'s group has `count` members as `session` sees it; returns
/// their keys.
async fn group_members_once(
    session: &Session,
    id: u32,
    count: usize,
) -> Vec<sotto_net::proto::control::PublicKey> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let view = session
            .group
            .conversations()
            .into_iter()
            .find(|view| view.info.id == id);
        if let Some(GroupState::Member { members, .. }) = view.as_ref().map(|view| &view.state)
            && members.len() == count
        {
            return members.iter().map(|member| member.public_key).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conversation {id} never had {count} members: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_conversations_with_strangers_or_nobody() {
    let relay = relay(RelayConfig::default()).await;
    let ada = Person::new("Ada");
    let ada_session = member(&ada, &relay.owner).await;
    let stranger = Person::new("Stranger").identity.public_key();
    for members in [vec![stranger], Vec::new(), vec![ada.identity.public_key()]] {
        let refused = tokio::time::timeout(
            DEADLINE,
            ada_session.group.open_conversation(members.clone()),
        )
        .await
        .expect("answered in time");
        assert!(
            matches!(
                refused,
                Err(sotto_client::group::GroupActionError::Refused(_))
            ),
            "{members:?}: {refused:?}"
        );
    }
    assert!(ada_session.group.conversations().is_empty());
}
