//! The real `sotto-relay` binary killed with SIGKILL mid-call: state survives and clients come
//! back on their own. Also: the database never holds the group secret or media bytes.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use sotto_net::client::ClientEvent;
use sotto_net::invite::InviteLink;
use sotto_net::proto::StreamKind;

/// Waits until `client` has reconnected and rejoined voice; returns when it did.
async fn wait_rejoined(client: &mut TestClient) {
    client
        .wait_for("a reconnect", |event| {
            matches!(event, ClientEvent::Connected { .. }).then_some(())
        })
        .await;
    client
        .wait_for("a voice rejoin", |event| {
            matches!(event, ClientEvent::VoiceJoined { .. }).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_keeps_state_and_clients_come_back() {
    let (_dir, data, mut owner_link) = init_data_dir();
    let address: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    owner_link.port = address.port();
    let mut relay = RelayProcess::start(data.root(), address, metrics);

    // The relay binary needs a moment to bind; the client retries until it answers.
    let mut ada = connect(&owner_link, "ada").await;
    // An invite acknowledged by the relay must survive the kill.
    let invite: InviteLink = ada
        .client
        .create_invite(Some(Duration::from_secs(3600)), Some(5), None)
        .await
        .unwrap();
    let mut bob = connect(&invite, "bob").await;
    ada.join_voice().await;
    bob.join_voice().await;
    ada.wait_roster(2).await;
    ada.client.send_media(StreamKind::Voice, b"before").unwrap();
    assert_eq!(&bob.next_media().await.payload[..], b"before");
    let text = metrics_text(metrics).await;
    assert!(text.contains("sotto_members_online 2"), "{text}");
    assert!(text.contains("sotto_datagrams_out_total 1"), "{text}");

    relay.kill_9();
    let killed_at = Instant::now();
    let mut relay = RelayProcess::start(data.root(), address, metrics);
    wait_rejoined(&mut ada).await;
    wait_rejoined(&mut bob).await;
    let reconnected = killed_at.elapsed();
    ada.wait_roster(2).await;
    // Audio resumes: send until the first frame arrives.
    let resumed = loop {
        ada.client.send_media(StreamKind::Voice, b"after").unwrap();
        let frames = bob.drain_media(Duration::from_millis(20)).await;
        if frames.iter().any(|frame| &frame.payload[..] == b"after") {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < DEADLINE, "audio did not resume");
    };
    println!(
        "relay restart: clients reconnected after {reconnected:?}, audio resumed after {resumed:?}"
    );

    // Members, channels and the invite (with its use count) survived: a third person can still
    // join with the invite, and bob (a member now) is in the roster.
    let carol = connect(&invite, "carol").await;
    assert_eq!(carol.channels.len(), 2);
    relay.kill_9();
    let opened = data.open().unwrap();
    let server = opened.store.default_server().unwrap();
    let members = opened.store.members(server.id).unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.display_name.as_str())
            .collect::<Vec<_>>(),
        ["ada", "bob", "carol"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_never_holds_the_secret_or_media() {
    let relay = start_relay().await;
    let (ada, mut bob) = two_in_a_call(&relay).await;
    let payload = b"SOTTO-PLAINTEXT-MARKER-0123456789";
    for _ in 0..50 {
        ada.client.send_media(StreamKind::Voice, payload).unwrap();
    }
    assert_eq!(&bob.next_media().await.payload[..], payload);
    ada.client.create_invite(None, None, None).await.unwrap();
    let root = relay.data.root().to_owned();
    relay.handle.shutdown().await;

    let secret = TEST_MEDIA_SECRET.to_vec();
    let encoded = sotto_net::invite::encode_b64(&secret);
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // The file store: no file was shared here.
            assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(
            !contains(&secret),
            "{} holds the group secret",
            path.display()
        );
        assert!(
            !contains(encoded.as_bytes()),
            "{} holds the encoded group secret",
            path.display()
        );
        assert!(!contains(payload), "{} holds media payload", path.display());
        assert!(
            !contains(&relay.owner_link.token),
            "{} holds a raw invite token",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "database, certificate and key files were checked"
    );
}
