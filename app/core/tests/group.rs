//! The server's encryption group over a real relay on loopback: members let in by invite
//! proofs (also while the joiner waits offline), media keys that follow epochs, removal that
//! cuts a member off, state that survives a restart, and a relay whose files hold no secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sotto_client::Session;
use sotto_client::group::GroupState;
use sotto_net::client::ClientEvent;
use sotto_net::crypto::{KeyProvider, SenderContext};
use sotto_net::invite::encode_b64;
use sotto_net::proto::StreamKind;
use sotto_relay::RelayConfig;

mod common;
use common::{DEADLINE, Person, is_member, relay, until};

fn code_and_epoch(state: &GroupState) -> (String, u64) {
    match state {
        GroupState::Member {
            privacy_code,
            epoch,
            ..
        } => (privacy_code.to_string(), *epoch),
        other => panic!("not a member: {other:?}"),
    }
}

/// Joins `channel_id` and waits until the relay seats us.
async fn join_voice(session: &mut Session, channel_id: u32) {
    session.client.join_voice(channel_id).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, session.events.recv()).await {
            Ok(Some(ClientEvent::VoiceJoined { .. })) => return,
            Ok(Some(_)) => {}
            other => panic!("not seated: {other:?}"),
        }
    }
}

/// Media payloads received within `wait`.
async fn received(session: &mut Session, wait: Duration) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.events.recv()).await {
        if let ClientEvent::Media(frame) = event {
            payloads.push(frame.payload.to_vec());
        }
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_waits_for_a_member_and_is_let_in_when_one_comes_online() {
    let relay = relay(RelayConfig::default()).await;
    let ada = Person::new("Ada");
    let bob = Person::new("Bob");
    let (mut ada_session, _) = ada.connect(&relay.owner).await;
    let created = until(&mut ada_session, "the group", is_member).await;
    assert_eq!(code_and_epoch(&created).1, 0);
    let invite = ada_session
        .group
        .create_invite(None, Some(1))
        .await
        .unwrap();
    assert!(
        invite.secret.is_some(),
        "the link carries the invite secret"
    );
    drop(ada_session);

    // Nobody is online to vouch for Bob: he is told so.
    let (mut bob_session, _) = bob.connect(&invite).await;
    let waiting = bob_session.group.join_within(DEADLINE).await;
    assert_eq!(waiting, GroupState::WaitingToBeLetIn { members_online: 0 });

    // Ada comes back (her group state restored from disk) and lets him in.
    let (mut ada_session, _) = ada.connect(&relay.owner).await;
    let bob_in = until(&mut bob_session, "Bob let in", is_member).await;
    let ada_state = until(&mut ada_session, "Ada at Bob's epoch", |state| {
        matches!(state, GroupState::Member { epoch, .. } if *epoch == code_and_epoch(&bob_in).1)
    })
    .await;
    assert_eq!(code_and_epoch(&ada_state), code_and_epoch(&bob_in));
    let GroupState::Member { members, .. } = &bob_in else {
        unreachable!()
    };
    assert_eq!(members.len(), 2);
    assert_eq!(
        members.iter().filter(|member| member.is_admin).count(),
        1,
        "only the owner is an admin"
    );

    // Bob restarts: his membership and keys come back from his sealed store.
    drop(bob_session);
    let (mut bob_session, _) = bob.connect(&invite).await;
    let again = until(&mut bob_session, "Bob back", is_member).await;
    assert_eq!(code_and_epoch(&again), code_and_epoch(&ada_state));

    // Two rotations asked at once: the second waits for the first, and both happen.
    let (first, second) = tokio::join!(
        ada_session.group.self_update(),
        ada_session.group.self_update()
    );
    first.unwrap();
    second.unwrap();
    let epoch = code_and_epoch(&again).1 + 2;
    until(
        &mut bob_session,
        "Bob two epochs on",
        |state| matches!(state, GroupState::Member { epoch: now, .. } if *now == epoch),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_gets_no_key_for_anything_sent_after_its_removal() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, cy) = (Person::new("Ada"), Person::new("Bob"), Person::new("Cy"));
    let (mut ada_session, _) = ada.connect(&relay.owner).await;
    until(&mut ada_session, "the group", is_member).await;
    let invite = ada_session.group.create_invite(None, None).await.unwrap();
    let (mut bob_session, bob_keys) = bob.connect(&invite).await;
    until(&mut bob_session, "Bob let in", is_member).await;
    let (mut cy_session, cy_keys) = cy.connect(&invite).await;
    until(&mut cy_session, "Cy let in", is_member).await;
    until(
        &mut bob_session,
        "Bob at Cy's epoch",
        |state| matches!(state, GroupState::Member { members, .. } if members.len() == 3),
    )
    .await;

    let voice = ada_session.voice_channels().next().unwrap().id;
    for session in [&mut ada_session, &mut bob_session, &mut cy_session] {
        join_voice(session, voice).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        ada_session
            .client
            .send_media(StreamKind::Voice, b"before the removal")
            .unwrap();
    }
    assert!(
        !received(&mut cy_session, Duration::from_millis(500))
            .await
            .is_empty(),
        "Cy hears Ada while a member"
    );

    let cy_key = cy.identity.public_key();
    ada_session.group.remove(vec![cy_key]).await.unwrap();
    let GroupState::Member { epoch, members, .. } = ada_session.group.state() else {
        panic!("Ada left the group")
    };
    assert!(!members.iter().any(|member| member.public_key == cy_key));
    // Ada seals with the new key at once; Bob can open it once he has merged the commit too
    // (a few packets' time), so Ada talks on for a while, as in a call.
    for _ in 0..25 {
        ada_session
            .client
            .send_media(StreamKind::Voice, b"after the removal")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bob_heard = received(&mut bob_session, Duration::from_millis(500)).await;
    let after = bob_heard
        .iter()
        .filter(|payload| payload.as_slice() == b"after the removal")
        .count();
    println!("removal: Bob opened {after} of Ada's 25 frames sent after it (20 ms apart)");
    assert!(
        bob_heard
            .iter()
            .any(|payload| payload == b"after the removal"),
        "Bob still hears Ada"
    );
    let cy_heard = received(&mut cy_session, Duration::from_millis(300)).await;
    assert!(
        !cy_heard
            .iter()
            .any(|payload| payload == b"after the removal"),
        "Cy decrypted a frame sent after the removal"
    );

    // Beyond the relay cutting Cy off: Cy holds no key of the new epoch at all.
    let sender = SenderContext {
        channel_id: voice,
        public_key: ada.identity.public_key(),
        session_salt: [0; 16],
    };
    let new_key_id = (epoch & 0xff) as u8;
    assert!(bob_keys.media_key(&sender, new_key_id).is_ok());
    assert!(cy_keys.media_key(&sender, new_key_id).is_err());
    assert_ne!(cy_keys.current_key_id(), new_key_id);
}

/// Every file of the relay's data directory, as bytes.
fn relay_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Everything Sotto's crates log in this test process, at every level.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("sotto_relay=trace,sotto_net=trace,sotto_client=trace")
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
    .clone()
}

/// Appends log lines to the shared buffer.
struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_keeps_no_invite_secret_and_no_media_it_forwarded() {
    let logs = captured_logs();
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob) = (Person::new("Ada"), Person::new("Bob"));
    let (mut ada_session, _) = ada.connect(&relay.owner).await;
    until(&mut ada_session, "the group", is_member).await;
    let invite = ada_session.group.create_invite(None, None).await.unwrap();
    let (mut bob_session, _) = bob.connect(&invite).await;
    until(&mut bob_session, "Bob let in", is_member).await;
    let voice = ada_session.voice_channels().next().unwrap().id;
    join_voice(&mut ada_session, voice).await;
    join_voice(&mut bob_session, voice).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let canary = b"canary-voice-7c1e9a55d3";
    for _ in 0..20 {
        ada_session
            .client
            .send_media(StreamKind::Voice, canary)
            .unwrap();
    }
    assert!(
        received(&mut bob_session, Duration::from_millis(500))
            .await
            .iter()
            .any(|payload| payload == canary)
    );
    drop((ada_session, bob_session));
    relay.handle.shutdown().await;

    let secret = invite.secret.unwrap().as_bytes().to_vec();
    let encoded = encode_b64(&secret);
    let files = relay_files(&relay.dir.path().join("relay"));
    assert!(files.len() >= 3);
    for (path, bytes) in files {
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(
            !contains(&secret),
            "{} holds the invite secret",
            path.display()
        );
        assert!(
            !contains(encoded.as_bytes()),
            "{} holds the encoded invite secret",
            path.display()
        );
        assert!(
            !contains(canary),
            "{} holds forwarded media",
            path.display()
        );
    }
    // Nor do the logs, at the most detailed level, of the relay or the clients.
    let logs = logs.lock().unwrap().clone();
    assert!(logs.len() > 1_000, "hardly anything was logged");
    for needle in [&secret[..], encoded.as_bytes(), &canary[..]] {
        assert!(!logs.windows(needle.len()).any(|window| window == needle));
    }
    // Nor does Bob's own store hold the secret in the clear.
    let store = std::fs::read(&bob.store).unwrap();
    assert!(
        !store
            .windows(secret.len())
            .any(|window| window == secret.as_slice())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_offline_for_seventy_commits_catches_up_and_racing_rotations_all_settle() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, cy) = (Person::new("Ada"), Person::new("Bob"), Person::new("Cy"));
    let (mut ada_session, _) = ada.connect(&relay.owner).await;
    until(&mut ada_session, "the group", is_member).await;
    let invite = ada_session.group.create_invite(None, None).await.unwrap();
    let (mut bob_session, _) = bob.connect(&invite).await;
    until(&mut bob_session, "Bob let in", is_member).await;
    let (mut cy_session, _) = cy.connect(&invite).await;
    until(&mut cy_session, "Cy let in", is_member).await;
    drop(cy_session);

    // Ada and Bob rotate at the same time, over and over (within the relay's request rate):
    // every rotation settles (the loser of each race tries again by itself).
    let (ada_group, bob_group) = (ada_session.group.clone(), bob_session.group.clone());
    let rotate = |group: sotto_client::group::GroupHandle| {
        tokio::spawn(async move {
            for _ in 0..35 {
                tokio::time::timeout(DEADLINE, group.self_update())
                    .await
                    .expect("a rotation never settled")
                    .unwrap();
                // Under the relay's 20 requests a second (retries count too).
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        })
    };
    let (a, b) = (rotate(ada_group), rotate(bob_group));
    a.await.unwrap();
    b.await.unwrap();
    let ada_now = until(&mut ada_session, "Ada at epoch 72", |state| {
        matches!(state, GroupState::Member { epoch: 72, .. })
    })
    .await;

    // Cy was away for all 70 of them (more than the relay sends in one batch); he comes back and catches up.
    let (mut cy_session, _) = cy.connect(&invite).await;
    let cy_now = until(&mut cy_session, "Cy at epoch 72", |state| {
        matches!(state, GroupState::Member { epoch: 72, .. })
    })
    .await;
    assert_eq!(code_and_epoch(&cy_now), code_and_epoch(&ada_now));
    let bob_now = until(&mut bob_session, "Bob at epoch 72", |state| {
        matches!(state, GroupState::Member { epoch: 72, .. })
    })
    .await;
    assert_eq!(code_and_epoch(&bob_now), code_and_epoch(&ada_now));
}
