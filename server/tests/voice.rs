//! Voice channels through a real relay on loopback: rosters and fan-out.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use sotto_net::proto::StreamKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_hear_each_other() {
    let relay = start_relay().await;
    let mut ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    let ada_slot = ada.join_voice().await;
    ada.wait_roster(1).await;
    let bob_slot = bob.join_voice().await;
    let roster = ada.wait_roster(2).await;
    assert_eq!(
        roster.iter().map(|p| p.slot).collect::<HashSet<_>>(),
        HashSet::from([ada_slot, bob_slot])
    );
    assert!(
        roster
            .iter()
            .any(|p| p.display_name == "bob" && p.public_key == bob.identity.public_key())
    );
    bob.wait_roster(2).await;

    ada.client
        .send_media(StreamKind::Voice, b"hello bob")
        .unwrap();
    let frame = bob.next_media().await;
    assert_eq!(&frame.payload[..], b"hello bob");
    assert_eq!(frame.sender_slot, ada_slot);
    bob.client.send_media(StreamKind::Voice, b"hi ada").unwrap();
    assert_eq!(&ada.next_media().await.payload[..], b"hi ada");

    bob.client.leave_voice().await.unwrap();
    let roster = ada.wait_roster(1).await;
    assert_eq!(roster[0].slot, ada_slot);
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_reaches_twenty_receivers_exactly_once_and_nobody_else() {
    const RECEIVERS: usize = 20;
    const PACKETS: u32 = 300;
    let relay = start_relay().await;
    let invite = relay.member_link(None, None);
    let mut sender = connect(&relay.owner_link, "sender").await;
    sender.join_voice().await;
    let mut receivers = Vec::new();
    for index in 0..RECEIVERS {
        let mut receiver = connect(&invite, &format!("listener {index}")).await;
        receiver.join_voice().await;
        receivers.push(receiver);
    }
    // Connected to the server but not in the voice channel.
    let mut outsider = connect(&invite, "outsider").await;
    for receiver in &mut receivers {
        receiver.wait_roster(RECEIVERS + 1).await;
    }
    sender.wait_roster(RECEIVERS + 1).await;

    for counter in 0..PACKETS {
        sender
            .client
            .send_media(StreamKind::Voice, &counter.to_be_bytes())
            .unwrap();
        if counter % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for (index, receiver) in receivers.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.len() < PACKETS as usize {
            let frame = receiver.next_media().await;
            seen.push(u32::from_be_bytes(frame.payload[..].try_into().unwrap()));
        }
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            PACKETS as usize,
            "receiver {index} got duplicates"
        );
        assert_eq!(
            unique,
            (0..PACKETS).collect(),
            "receiver {index} missed packets"
        );
        assert!(
            receiver
                .drain_media(Duration::from_millis(100))
                .await
                .is_empty(),
            "receiver {index} got extras"
        );
    }
    assert!(
        outsider
            .drain_media(Duration::from_millis(200))
            .await
            .is_empty(),
        "a non-member received media"
    );
    let metrics = relay.handle.metrics();
    assert_eq!(
        metrics
            .datagrams_in
            .load(std::sync::atomic::Ordering::Relaxed),
        u64::from(PACKETS)
    );
    assert_eq!(
        metrics
            .datagrams_out
            .load(std::sync::atomic::Ordering::Relaxed),
        u64::from(PACKETS) * RECEIVERS as u64
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sender_is_dropped_by_the_relay_and_replays_by_the_receiver() {
    use common::raw::RawClient;
    use sotto_net::identity::Identity;
    use sotto_relay::metrics::DropReason;

    let relay = start_relay().await;
    let mut listener = connect(&relay.owner_link, "listener").await;
    listener.join_voice().await;
    let link = relay.member_link(None, None);
    let identity = Identity::generate();
    let mut raw = RawClient::connect(&link).await;
    let welcome = raw.handshake(&link, &identity, &identity).await;
    assert!(matches!(
        welcome,
        sotto_net::proto::control::ControlFrame::Welcome { .. }
    ));
    let (slot, mut sealer) = raw.join_voice(&identity, listener.voice_channel()).await;
    listener.wait_roster(2).await;

    // A datagram claiming another member's slot never leaves the relay.
    let mut forged = Vec::new();
    let mut forged_sealer = sotto_net::proto::datagram::MediaSealer::new(
        &sotto_net::crypto::MediaKey::from_bytes([1; 32]),
        0,
        listener.slot.unwrap(),
    );
    forged_sealer
        .seal(StreamKind::Voice, b"impostor", &mut forged)
        .unwrap();
    raw.connection.send_datagram(forged.into()).unwrap();

    // A genuine datagram sent twice: the relay forwards both, the receiver accepts one.
    let mut genuine = Vec::new();
    sealer
        .seal(StreamKind::Voice, b"once only", &mut genuine)
        .unwrap();
    raw.connection
        .send_datagram(genuine.clone().into())
        .unwrap();
    raw.connection.send_datagram(genuine.into()).unwrap();
    // And a datagram for our slot sealed with a key nobody derived: forwarded, rejected.
    let mut bad_key = Vec::new();
    sotto_net::proto::datagram::MediaSealer::new(
        &sotto_net::crypto::MediaKey::from_bytes([2; 32]),
        0,
        slot,
    )
    .seal(StreamKind::Voice, b"forgery", &mut bad_key)
    .unwrap();
    raw.connection.send_datagram(bad_key.into()).unwrap();

    let frame = listener.next_media().await;
    assert_eq!(&frame.payload[..], b"once only");
    assert!(
        listener
            .drain_media(Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert_eq!(relay.handle.metrics().dropped(DropReason::ForgedSender), 1);
    let stats = listener.client.stats();
    assert_eq!(stats.datagrams_received, 1);
    assert_eq!(stats.datagrams_dropped, 2, "the replay and the forgery");
    relay.handle.shutdown().await;
}
