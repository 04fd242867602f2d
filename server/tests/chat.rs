//! Text channels through a real relay: messages stored under gapless per-channel seqs and
//! acknowledged once durable, passed on at once to members online, read back in pages by
//! members who were away, and kept exactly once across a SIGKILL of the relay.
//!
//! Envelopes here are opaque test bytes: the relay never opens them (sealing is tested with
//! the text envelope in `sotto-net`, and end to end in the client core), so any bytes stand in.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::process::*;
use common::*;
use sotto_net::client::{ClientError, ClientEvent};
use sotto_net::proto::control::{ErrorCode, StoredMessage};
use sotto_relay::RelayConfig;

fn message_id(author: u8, index: u32) -> [u8; 16] {
    let mut id = [author; 16];
    id[..4].copy_from_slice(&index.to_be_bytes());
    id
}

/// Every message of `channel`, read page by page.
async fn history(client: &TestClient, channel: u32) -> Vec<StoredMessage> {
    let mut all: Vec<StoredMessage> = Vec::new();
    loop {
        let after = all.last().map_or(0, |message| message.seq);
        let (page, more) = client
            .client
            .read_channel(channel, after, 100)
            .await
            .unwrap();
        all.extend(page);
        if !more {
            return all;
        }
    }
}

/// A relay that lets members post as fast as a test needs.
fn fast_chat() -> RelayConfig {
    RelayConfig {
        message_rate: 100_000,
        message_burst: 100_000,
        ..RelayConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_acknowledged_in_order_and_reach_members_online_at_once() {
    let relay = start_relay().await;
    let ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    let general = text_channel(&ada);

    for index in 1..=3 {
        let posted = ada
            .client
            .post_message(
                general,
                message_id(1, index),
                format!("sealed {index}").into(),
            )
            .await
            .unwrap();
        assert_eq!(posted.seq, u64::from(index));
    }
    for seq in 1..=3u64 {
        let message = bob
            .wait_for("a new message", |event| match event {
                ClientEvent::Message(message) => Some(message.clone()),
                _ => None,
            })
            .await;
        assert_eq!(message.seq, seq);
        assert_eq!(message.envelope, format!("sealed {seq}").into_bytes());
    }
    // Posting an id again (a retry after a lost answer) stores nothing new.
    let again = ada
        .client
        .post_message(general, message_id(1, 2), b"sealed 2".to_vec())
        .await
        .unwrap();
    assert_eq!(again.seq, 2);
    assert_eq!(history(&bob, general).await.len(), 3);

    // The voice channel and unknown channels take no messages, and say so.
    let refusal = |result: Result<_, ClientError>| match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("not refused: {other:?}"),
    };
    let (code, message) = refusal(
        ada.client
            .post_message(ada.voice_channel(), [9; 16], b"x".to_vec())
            .await,
    );
    assert_eq!(code, ErrorCode::NotATextChannel);
    assert!(message.contains("voice channel"), "{message}");
    let (code, _) = refusal(ada.client.post_message(999, [9; 16], b"x".to_vec()).await);
    assert_eq!(code, ErrorCode::NoSuchChannel);
    // Another member cannot take over a message's id.
    let (code, _) = refusal(
        bob.client
            .post_message(general, message_id(1, 1), b"mine".to_vec())
            .await,
    );
    assert_eq!(code, ErrorCode::ProtocolViolation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_away_for_500_messages_reads_them_all_in_order_once() {
    let relay = start_relay_with(fast_chat()).await;
    let ada = connect(&relay.owner_link, "ada").await;
    let general = text_channel(&ada);
    let bob_link = relay.member_link(None, None);
    let bob = connect(&bob_link, "bob").await;
    let bob_identity = bob.identity.clone();
    drop(bob);

    for index in 1..=500 {
        ada.client
            .post_message(general, message_id(1, index), vec![index as u8; 200])
            .await
            .unwrap();
    }
    let bob = connect_as(&bob_link, "bob", bob_identity).await;
    let all = history(&bob, general).await;
    assert_eq!(all.len(), 500);
    for (index, message) in all.iter().enumerate() {
        assert_eq!(message.seq, index as u64 + 1);
        assert_eq!(message.message_id, message_id(1, index as u32 + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_message_rate_is_refused_with_a_clear_reason() {
    let relay = start_relay().await;
    let ada = connect(&relay.owner_link, "ada").await;
    let general = text_channel(&ada);
    let mut refused = None;
    for index in 1..=200 {
        match ada
            .client
            .post_message(general, message_id(1, index), b"spam".to_vec())
            .await
        {
            Ok(_) => {}
            Err(ClientError::Refused { code, message }) => {
                refused = Some((index, code, message));
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let (index, code, message) = refused.expect("the relay never slowed the burst");
    assert!(index > 40, "refused too early, at message {index}");
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(message.contains("wait a moment"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_a_relay_sigkill_exactly_once() {
    let (_dir, data, mut owner_link) = init_data_dir();
    let address: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    owner_link.port = address.port();
    let flags = ["--message-rate", "100000", "--message-burst", "100000"];
    let mut relay = RelayProcess::start_with(data.root(), address, metrics, &flags);
    let ada = connect(&owner_link, "ada").await;
    let invite = ada.client.create_invite(None, None, None).await.unwrap();
    let bob = connect(&invite, "bob").await;
    let cy = connect(&invite, "cy").await;
    let general = text_channel(&ada);

    // Three members post 334 messages each, retrying (same ids) whatever was not answered.
    let post_all = |client: sotto_net::client::Client, author: u8| {
        tokio::spawn(async move {
            let mut acknowledged = HashMap::new();
            for index in 0..334 {
                let id = message_id(author, index);
                loop {
                    match client.post_message(general, id, vec![author; 100]).await {
                        Ok(posted) => {
                            acknowledged.insert(id, posted.seq);
                            break;
                        }
                        Err(ClientError::NotConnected) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            acknowledged
        })
    };
    let posting = [
        post_all(ada.client.clone(), 1),
        post_all(bob.client.clone(), 2),
        post_all(cy.client.clone(), 3),
    ];
    // Kill the relay in the middle of the burst and start it again.
    loop {
        let (stored, _) = ada
            .client
            .read_channel(general, 200, 1)
            .await
            .unwrap_or_default();
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    relay.kill_9();
    let _relay = RelayProcess::start_with(data.root(), address, metrics, &flags);
    let mut acknowledged = HashMap::new();
    for task in posting {
        acknowledged.extend(task.await.unwrap());
    }

    let all = history(&ada, general).await;
    assert_eq!(all.len(), 1002, "every message once, none lost");
    for (index, message) in all.iter().enumerate() {
        assert_eq!(message.seq, index as u64 + 1, "gapless seqs");
    }
    for message in &all {
        assert_eq!(
            acknowledged.get(&message.message_id),
            Some(&message.seq),
            "the acknowledged place"
        );
    }
    println!(
        "1,002 messages from 3 members across a relay SIGKILL: all {} acknowledged ones stored once, at their acknowledged seq",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_reach_members_online_and_are_never_stored() {
    use sotto_net::proto::control::{MemberPresence, Presence};
    let relay = start_relay().await;
    let mut ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    let _cy = connect(&relay.member_link(None, None), "cy").await;
    let general = text_channel(&ada);
    let presence_of = |members: &[MemberPresence]| -> Vec<(Presence, String)> {
        members
            .iter()
            .map(|m| (m.presence, m.status.clone()))
            .collect()
    };

    // Ada asks: Bob and Cy are online (neither said more).
    ada.client
        .set_presence(Presence::DoNotDisturb, "canary-status-4d1e focus")
        .await
        .unwrap();
    let everyone = ada
        .wait_for("everyone's presence", |event| match event {
            ClientEvent::Presence(members) => Some(members.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        presence_of(&everyone),
        [
            (Presence::Online, String::new()),
            (Presence::Online, String::new())
        ]
    );

    // Bob joins in: he learns Ada's status, and Ada learns his.
    bob.client.set_presence(Presence::Idle, "").await.unwrap();
    let seen_by_bob = bob
        .wait_for("everyone's presence", |event| match event {
            ClientEvent::Presence(members) => Some(members.clone()),
            _ => None,
        })
        .await;
    assert!(
        seen_by_bob.iter().any(|m| m.presence == Presence::DoNotDisturb
            && m.status == "canary-status-4d1e focus"),
        "{seen_by_bob:?}"
    );
    let bob_idle = ada
        .wait_for("Bob's presence", |event| match event {
            ClientEvent::Presence(members) => Some(members.clone()),
            _ => None,
        })
        .await;
    assert_eq!(presence_of(&bob_idle), [(Presence::Idle, String::new())]);
    let bob_id = bob_idle[0].member_id;

    // Bob types: Ada sees it; Bob does not hear himself.
    bob.client.typing(general).await.unwrap();
    let (channel, who) = ada
        .wait_for("Bob typing", |event| match event {
            ClientEvent::Typing {
                channel_id,
                member_id,
            } => Some((*channel_id, *member_id)),
            _ => None,
        })
        .await;
    assert_eq!((channel, who), (general, bob_id));

    // Invisible looks offline, status and all; leaving says offline.
    bob.client
        .set_presence(Presence::Invisible, "secret plans")
        .await
        .unwrap();
    let hidden = ada
        .wait_for("Bob invisible", |event| match event {
            ClientEvent::Presence(members) => Some(members.clone()),
            _ => None,
        })
        .await;
    assert_eq!(presence_of(&hidden), [(Presence::Offline, String::new())]);
    drop(bob);
    let gone = ada
        .wait_for("Bob gone", |event| match event {
            ClientEvent::Presence(members) => Some(members.clone()),
            _ => None,
        })
        .await;
    assert_eq!(gone[0].member_id, bob_id);
    assert_eq!(gone[0].presence, Presence::Offline);

    // Nothing of it was stored.
    let root = relay.data.root().to_owned();
    relay.handle.shutdown().await;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [&b"canary-status-4d1e"[..], b"secret plans"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds a status",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_manages_channels_and_everyone_online_sees_it_at_once() {
    use sotto_net::proto::control::{ChannelChange, ChannelInfo, ChannelKind};
    let relay = start_relay_with(fast_chat()).await;
    let ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    let channels_changed = |event: &ClientEvent| match event {
        ClientEvent::ChannelsChanged(channels) => Some(channels.clone()),
        _ => None,
    };
    let named = |channels: &[ChannelInfo], name: &str| {
        channels
            .iter()
            .find(|channel| channel.name == name)
            .cloned()
    };

    // Ada creates a text channel; Bob, online, is told at once and can post in it.
    let design = ada
        .client
        .manage_channel(ChannelChange::Create {
            name: "design".into(),
            kind: ChannelKind::Text,
            category: "Work".into(),
            topic: "mockups and reviews".into(),
        })
        .await
        .unwrap();
    let seen = bob.wait_for("the new channel", channels_changed).await;
    let created = named(&seen, "design").expect("listed");
    assert_eq!(created.id, design);
    assert_eq!(created.topic, "mockups and reviews");
    bob.client
        .post_message(design, message_id(2, 1), vec![2; 100])
        .await
        .unwrap();

    // Members may not; names must differ within a kind; changes keep ids.
    let refused = bob
        .client
        .manage_channel(ChannelChange::Delete { channel_id: design })
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Refused {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{refused}"
    );
    let taken = ada
        .client
        .manage_channel(ChannelChange::Create {
            name: "Design".into(),
            kind: ChannelKind::Text,
            category: String::new(),
            topic: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            taken,
            ClientError::Refused {
                code: ErrorCode::ChannelNameTaken,
                ..
            }
        ),
        "{taken}"
    );
    let voice_design = ada
        .client
        .manage_channel(ChannelChange::Create {
            name: "design".into(),
            kind: ChannelKind::Voice,
            category: "Work".into(),
            topic: String::new(),
        })
        .await
        .expect("a voice channel may share a text channel's name");
    ada.client
        .manage_channel(ChannelChange::Update {
            channel_id: design,
            name: "design-review".into(),
            category: "Work".into(),
            topic: String::new(),
            position: 5,
        })
        .await
        .unwrap();
    let seen = loop {
        let seen = bob.wait_for("the rename", channels_changed).await;
        if named(&seen, "design-review").is_some() {
            break seen;
        }
    };
    let renamed = named(&seen, "design-review").unwrap();
    assert_eq!(renamed.id, design);
    let work: Vec<(u16, u32)> = seen
        .iter()
        .filter(|channel| channel.category == "Work")
        .map(|channel| (channel.position, channel.id))
        .collect();
    assert_eq!(
        work,
        [(0, voice_design), (1, design)],
        "placed last, positions renumbered"
    );

    // Deleting it takes its messages, in the database too.
    ada.client
        .manage_channel(ChannelChange::Delete { channel_id: design })
        .await
        .unwrap();
    let gone = ada.client.read_channel(design, 0, 10).await.unwrap_err();
    assert!(
        matches!(
            gone,
            ClientError::Refused {
                code: ErrorCode::NoSuchChannel,
                ..
            }
        ),
        "{gone}"
    );
    let opened = relay.data.open().unwrap();
    let server = opened.store.default_server().unwrap();
    let kept = opened.store.channels(server.id).unwrap();
    assert!(named(&kept, "design-review").is_none());
    assert!(named(&kept, "design").is_some_and(|c| c.kind == ChannelKind::Voice));
    assert_eq!(
        opened
            .store
            .messages_after(design, 0, 10, 1 << 20)
            .unwrap()
            .0
            .len(),
        0,
        "its messages went with it"
    );
    // A deleted channel's id is never given out again (clients keep its history under it).
    let next = ada
        .client
        .manage_channel(ChannelChange::Create {
            name: "design".into(),
            kind: ChannelKind::Text,
            category: String::new(),
            topic: String::new(),
        })
        .await
        .unwrap();
    assert!(next > design && next > voice_design, "{next}");
}
