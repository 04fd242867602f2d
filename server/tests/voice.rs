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
    assert_eq!(roster.iter().map(|p| p.slot).collect::<HashSet<_>>(), HashSet::from([ada_slot, bob_slot]));
    assert!(roster.iter().any(|p| p.display_name == "bob" && p.public_key == bob.identity.public_key()));
    bob.wait_roster(2).await;

    ada.client.send_media(StreamKind::Voice, b"hello bob").unwrap();
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
