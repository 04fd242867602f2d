//! No member can disrupt the others through the control stream: floods are slowed and then cut
//! off, malformed frames are answered before the close, invites are capped, and voice rooms
//! hold a bounded number of people with rosters that cost O(N) per join.

mod common;

use std::time::{Duration, Instant};

use common::raw::{RawClient, expect_error};
use common::*;
use sotto_net::client::{ClientError, ClientEvent};
use sotto_net::identity::Identity;
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::{ChannelKind, ControlFrame, ErrorCode};
use sotto_net::transport::{StreamError, close_code};
use sotto_relay::RelayConfig;

/// Two members in a call, checked to still hear each other.
async fn still_talking(ada: &mut TestClient, bob: &mut TestClient, round: u32) {
    let message = format!("round {round}");
    ada.client
        .send_media(StreamKind::Voice, message.as_bytes())
        .unwrap();
    bob.wait_for("the round's media", |event| match event {
        ClientEvent::Media(frame) if frame.payload[..] == *message.as_bytes() => Some(()),
        _ => None,
    })
    .await;
}

/// Every event within `window`, without waiting longer.
async fn drain_events(client: &mut TestClient, window: Duration) -> Vec<ClientEvent> {
    let deadline = tokio::time::Instant::now() + window;
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, client.events.recv()).await {
        events.push(event);
    }
    events
}

/// Invites members made, as stored in the relay's database.
fn member_invites_stored(relay: &TestRelay) -> u32 {
    rusqlite::Connection::open(relay.data.database_path())
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM invites WHERE created_by IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

/// A member who passed the handshake, driven by hand.
async fn raw_member(relay: &TestRelay) -> (RawClient, Identity, sotto_net::invite::InviteLink) {
    let link = relay.member_link(None, None);
    let identity = Identity::generate();
    let mut raw = RawClient::connect(&link).await;
    let welcome = raw.handshake(&link, &identity, &identity).await;
    assert!(
        matches!(welcome, ControlFrame::Welcome { .. }),
        "{welcome:?}"
    );
    (raw, identity, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_after_the_handshake_are_answered_with_an_error_before_the_close() {
    let relay = start_relay().await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("unknown frame kind", vec![0, 0, 0, 2, 1, 0x7f]),
        ("truncated JoinVoice", vec![0, 0, 0, 4, 1, 0x05, 0, 0]),
        (
            "a Roster, which only the relay sends",
            ControlFrame::Roster {
                channel_id: 2,
                participants: vec![],
            }
            .to_bytes()
            .unwrap(),
        ),
        (
            "a second Hello",
            ControlFrame::Hello {
                public_key: [1; 32],
                display_name: "again".into(),
                invite: None,
            }
            .to_bytes()
            .unwrap(),
        ),
    ];
    for (round, (name, bytes)) in garbage.into_iter().enumerate() {
        let (mut raw, _, _) = raw_member(&relay).await;
        raw.control.send_raw(&bytes).await.unwrap();
        let answer = tokio::time::timeout(DEADLINE, raw.control.recv())
            .await
            .expect("an answer")
            .unwrap_or_else(|error| panic!("{name}: no Error frame before the close: {error}"))
            .unwrap_or_else(|| panic!("{name}: stream ended without an Error frame"));
        let ControlFrame::Error { code, message } = answer else {
            panic!("{name}: expected an Error frame, got {answer:?}")
        };
        assert_eq!(code, ErrorCode::ProtocolViolation, "{name}");
        assert!(message.contains("closed"), "{name}: {message}");
        assert_eq!(
            raw.closed_code().await,
            Some(u64::from(close_code::PROTOCOL_VIOLATION)),
            "{name}"
        );
        still_talking(&mut ada, &mut bob, round as u32).await;
    }
    relay.handle.shutdown().await;
}

/// Floods JoinVoice/LeaveVoice as fast as the stream takes them, reading answers in between.
/// Returns the rate-limit errors seen and the close code.
async fn flood_joins(raw: &mut RawClient, channel_id: u32) -> (u64, u64, Option<u64>) {
    let mut chunk = Vec::new();
    for i in 0..500u32 {
        let frame = if i % 2 == 0 {
            ControlFrame::JoinVoice {
                channel_id,
                session_salt: [i as u8; 16],
            }
        } else {
            ControlFrame::LeaveVoice
        };
        frame.encode(&mut chunk).unwrap();
    }
    let (mut sent, mut rate_limited) = (0u64, 0u64);
    let started = Instant::now();
    'flood: while started.elapsed() < DEADLINE {
        if raw.control.send_raw(&chunk).await.is_err() {
            break;
        }
        sent += 500;
        // Read whatever answers are already here without waiting for more.
        loop {
            match tokio::time::timeout(Duration::from_millis(1), raw.control.recv()).await {
                Err(_) => break,
                Ok(Ok(Some(ControlFrame::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }))) => rate_limited += 1,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(StreamError::Read(_))) => break 'flood,
                Ok(Err(error)) => panic!("bad frame from the relay: {error}"),
            }
        }
    }
    (sent, rate_limited, raw.closed_code().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_leave_flood_is_slowed_then_cut_off_while_the_others_keep_talking() {
    let relay = start_relay().await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    let voice = ada.voice_channel();
    let (mut raw, _, _) = raw_member(&relay).await;

    let flood = flood_joins(&mut raw, voice);
    let talk = async {
        let mut round = 0;
        while round < 10_000 {
            still_talking(&mut ada, &mut bob, round).await;
            still_talking(&mut bob, &mut ada, round).await;
            round += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (sent, rate_limited, closed) = tokio::select! {
        result = flood => result,
        () = talk => unreachable!("the flood ends first"),
    };
    println!(
        "flood: {sent} requests written, {rate_limited} answered with 'slow down', then closed"
    );
    assert!(rate_limited >= 1, "the flooder was told to slow down");
    assert_eq!(closed, Some(u64::from(close_code::PROTOCOL_VIOLATION)));
    // After the flood: both still connected on their first connection, still hearing each
    // other, and the roster shows only the two of them.
    for round in 0..5 {
        still_talking(&mut ada, &mut bob, 20_000 + round).await;
        still_talking(&mut bob, &mut ada, 20_000 + round).await;
    }
    assert_eq!(
        ada.client.stats().connections,
        1,
        "ada was never disconnected"
    );
    assert_eq!(
        bob.client.stats().connections,
        1,
        "bob was never disconnected"
    );
    assert_eq!(ada.wait_roster(2).await.len(), 2);
    let metrics = relay.handle.metrics();
    assert!(
        metrics
            .sessions_closed_for_abuse
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_are_capped_per_member_and_the_refusal_says_why() {
    // A generous request rate, so the invite limits themselves are what stops the member.
    let relay = start_relay_with(RelayConfig {
        request_rate: 10_000,
        request_burst: 10_000,
        ..RelayConfig::default()
    })
    .await;
    let mut ada = connect(&relay.owner_link, "ada").await;
    let (mut made, mut refusals) = (0, Vec::new());
    for _ in 0..200 {
        match ada.client.create_invite(None, None, None).await {
            Ok(_) => made += 1,
            Err(error) => refusals.push(error),
        }
    }
    assert_eq!(made, RelayConfig::default().max_active_invites);
    assert_eq!(refusals.len(), 200 - made as usize);
    for error in &refusals {
        let ClientError::Refused { code, message } = error else {
            panic!("expected a refusal, got {error}")
        };
        assert_eq!(*code, ErrorCode::InviteLimit);
        assert!(message.contains("50 active invites"), "{message}");
    }
    // Ada is still connected and can do everything else.
    assert_eq!(ada.client.stats().connections, 1);
    ada.join_voice().await;
    let stored = member_invites_stored(&relay);
    assert_eq!(stored, made);
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_flood_at_default_settings_is_rate_limited_then_capped() {
    let relay = start_relay().await;
    let (mut raw, _, _) = raw_member(&relay).await;
    let mut chunk = Vec::new();
    for _ in 0..10_000 {
        ControlFrame::CreateInvite {
            expires_in_secs: None,
            max_uses: None,
            grant: None,
        }
        .encode(&mut chunk)
        .unwrap();
    }
    let _ = raw.control.send_raw(&chunk).await;
    let (mut created, mut rate_limited, mut capped) = (0, 0, 0);
    loop {
        match tokio::time::timeout(DEADLINE, raw.control.recv()).await {
            Ok(Ok(Some(ControlFrame::InviteCreated { .. }))) => created += 1,
            Ok(Ok(Some(frame @ ControlFrame::Error { code, .. }))) => match code {
                ErrorCode::RateLimited => rate_limited += 1,
                ErrorCode::InviteLimit => capped += 1,
                _ => expect_error(frame, ErrorCode::RateLimited),
            },
            Ok(Ok(Some(other))) => panic!("unexpected {other:?}"),
            Ok(Ok(None) | Err(_)) => break,
            Err(_) => panic!("the relay neither answered nor closed"),
        }
    }
    println!(
        "invite flood: {created} created, {capped} over the member's limit, {rate_limited} rate-limited, then closed"
    );
    // The burst, plus the few tokens that trickle in while the relay works through the flood,
    // and never more than the member's cap.
    let defaults = RelayConfig::default();
    assert!(created >= defaults.request_burst, "{created}");
    assert!(created <= defaults.max_active_invites, "{created}");
    assert!(rate_limited >= 1);
    assert_eq!(
        raw.closed_code().await,
        Some(u64::from(close_code::PROTOCOL_VIOLATION))
    );
    let stored = member_invites_stored(&relay);
    assert!(
        stored <= RelayConfig::default().max_active_invites,
        "{stored}"
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_voice_channel_refuses_the_next_joiner_and_nobody_inside_notices() {
    let relay = start_relay_with(RelayConfig {
        max_voice_participants: 2,
        ..RelayConfig::default()
    })
    .await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    let mut carol = connect(&relay.member_link(None, None), "carol").await;
    carol
        .client
        .join_voice(carol.voice_channel())
        .await
        .unwrap();
    let (code, message) = carol
        .wait_for("the refusal", |event| match event {
            ClientEvent::RequestFailed { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::ChannelFull);
    assert!(message.contains("full (2 people)"), "{message}");
    still_talking(&mut ada, &mut bob, 0).await;
    // Nobody inside saw a roster change.
    let events = drain_events(&mut ada, Duration::from_millis(300)).await;
    assert!(
        !events.iter().any(|event| matches!(
            event,
            ClientEvent::Roster { .. } | ClientEvent::RosterChanged { .. }
        )),
        "{events:?}"
    );
    assert_eq!(ada.roster.len(), 2);
    // When someone leaves, the next join succeeds.
    bob.client.leave_voice().await.unwrap();
    ada.wait_roster(1).await;
    assert!(carol.join_voice().await < 2);
    relay.handle.shutdown().await;
}

/// The answer to a join: the channel we were seated in, or the refusal's code.
async fn refusal(client: &mut TestClient) -> Result<u32, ErrorCode> {
    client
        .wait_for("a refusal or a seat", |event| match event {
            ClientEvent::RequestFailed { code, .. } => Some(Err(*code)),
            ClientEvent::VoiceJoined { channel_id, .. } => Some(Ok(*channel_id)),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_switch_leaves_the_member_where_it_was() {
    // Two voice channels of one seat each.
    let (_dir, data, mut owner_link) = init_data_dir();
    {
        let opened = data.open().unwrap();
        let server = opened.store.default_server().unwrap();
        opened
            .store
            .create_channel(server.id, "second", ChannelKind::Voice, "")
            .unwrap();
    }
    let handle = sotto_relay::RelayHandle::spawn(
        &data,
        RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_voice_participants: 1,
            ..RelayConfig::default()
        },
    )
    .await
    .unwrap();
    owner_link.port = handle.local_addr().port();
    let relay = TestRelay {
        dir: _dir,
        data,
        handle,
        owner_link,
    };
    let mut ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    let mut carol = connect(&relay.member_link(None, None), "carol").await;
    let voice: Vec<u32> = ada
        .channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Voice)
        .map(|c| c.id)
        .collect();
    assert_eq!(voice.len(), 2);
    ada.client.join_voice(voice[0]).await.unwrap();
    assert_eq!(refusal(&mut ada).await, Ok(voice[0]));
    bob.client.join_voice(voice[1]).await.unwrap();
    assert_eq!(refusal(&mut bob).await, Ok(voice[1]));
    // Ada tries to move to Bob's full channel: refused, and she keeps her seat, which Carol
    // then cannot take.
    ada.client.join_voice(voice[1]).await.unwrap();
    assert_eq!(refusal(&mut ada).await, Err(ErrorCode::ChannelFull));
    carol.client.join_voice(voice[0]).await.unwrap();
    assert_eq!(refusal(&mut carol).await, Err(ErrorCode::ChannelFull));
    // Rejoining her own channel when it is full (of herself) works.
    ada.client.join_voice(voice[0]).await.unwrap();
    assert_eq!(refusal(&mut ada).await, Ok(voice[0]));
    // Once Ada moves out, Carol gets in.
    bob.client.leave_voice().await.unwrap();
    // Bob's leave has no answer: Ada retries until the relay has carried it out.
    let mut moved = Err(ErrorCode::ChannelFull);
    for _ in 0..100 {
        ada.client.join_voice(voice[1]).await.unwrap();
        moved = refusal(&mut ada).await;
        if moved.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(moved, Ok(voice[1]));
    carol.client.join_voice(voice[0]).await.unwrap();
    assert_eq!(refusal(&mut carol).await, Ok(voice[0]));
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_leaves_is_carried_out_then_closed() {
    let relay = start_relay().await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    let (mut raw, _, _) = raw_member(&relay).await;
    let mut chunk = Vec::new();
    for _ in 0..1_000 {
        ControlFrame::LeaveVoice.encode(&mut chunk).unwrap();
    }
    let _ = raw.control.send_raw(&chunk).await;
    // No answers to leaves; the only frame is the Error that comes with the close.
    let last = tokio::time::timeout(DEADLINE, raw.control.recv())
        .await
        .expect("the relay acts");
    match last {
        Ok(Some(frame)) => expect_error(frame, ErrorCode::RateLimited),
        other => panic!("expected the closing Error, got {other:?}"),
    }
    assert_eq!(
        raw.closed_code().await,
        Some(u64::from(close_code::PROTOCOL_VIOLATION))
    );
    still_talking(&mut ada, &mut bob, 0).await;
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_who_is_on_the_server_with_names_and_who_is_online() {
    let relay = start_relay().await;
    let ada = connect(&relay.owner_link, "Ada").await;
    let bob = connect(&relay.member_link(None, None), "Bob ❤").await;
    let cy = connect(&relay.member_link(None, None), "Cy").await;
    let cy_key = cy.identity.public_key();
    drop(cy);
    // Cy's connection ends; the relay notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    let members = loop {
        let members = bob.client.list_members().await.unwrap();
        if members.iter().any(|m| m.public_key == cy_key && !m.online) || Instant::now() > deadline
        {
            break members;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let summary: Vec<(&str, bool, bool)> = members
        .iter()
        .map(|m| (m.display_name.as_str(), m.is_owner, m.online))
        .collect();
    assert_eq!(
        summary,
        [
            ("Ada", true, true),
            ("Bob ❤", false, true),
            ("Cy", false, false)
        ]
    );
    assert_eq!(members[0].public_key, ada.identity.public_key());
}
