//! Bad input from one peer closes only that peer; everyone else keeps talking.

mod common;

use std::time::Duration;

use common::raw::RawClient;
use common::*;
use sotto_net::proto::StreamKind;
use sotto_net::transport::close_code;

/// Two members in a call, checked to still hear each other after each attack.
async fn still_talking(ada: &mut TestClient, bob: &mut TestClient, round: u32) {
    let message = format!("round {round}");
    ada.client
        .send_media(StreamKind::Voice, message.as_bytes())
        .unwrap();
    assert_eq!(&bob.next_media().await.payload[..], message.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_the_offender() {
    let relay = start_relay().await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    still_talking(&mut ada, &mut bob, 0).await;

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            (0..200u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        (
            "oversized length prefix",
            vec![0xff, 0xff, 0xff, 0xff, 1, 1],
        ),
        ("unknown version", vec![0, 0, 0, 2, 9, 0x01]),
        ("unknown frame kind", vec![0, 0, 0, 2, 1, 0x7f]),
        (
            "truncated hello",
            vec![0, 0, 0, 10, 1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8],
        ),
    ];
    for (round, (name, bytes)) in attacks.into_iter().enumerate() {
        let mut raw = RawClient::connect(&relay.owner_link).await;
        // Write raw bytes straight onto the control stream.
        raw.control.send_raw(&bytes).await.unwrap();
        let code = raw.closed_code().await;
        assert_eq!(
            code,
            Some(u64::from(close_code::PROTOCOL_VIOLATION)),
            "{name}"
        );
        still_talking(&mut ada, &mut bob, round as u32 + 1).await;
    }

    let refused = relay
        .handle
        .metrics()
        .handshakes_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 5);

    // An authenticated member sending a malformed datagram is cut off; the call goes on.
    let link = relay.member_link(None, None);
    let identity = sotto_net::identity::Identity::generate();
    let mut raw = RawClient::connect(&link).await;
    raw.handshake(&link, &identity, &identity).await;
    raw.join_voice(&identity, ada.voice_channel()).await;
    raw.connection.send_datagram(vec![0xff; 40].into()).unwrap();
    assert_eq!(
        raw.closed_code().await,
        Some(u64::from(close_code::PROTOCOL_VIOLATION))
    );
    still_talking(&mut ada, &mut bob, 99).await;
    bob.client
        .send_media(StreamKind::Voice, b"still here")
        .unwrap();
    let frames = ada.drain_media(Duration::from_millis(300)).await;
    assert!(
        frames
            .iter()
            .any(|frame| &frame.payload[..] == b"still here")
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_time_out() {
    use sotto_net::proto::control::{ControlFrame, ErrorCode};

    let config = sotto_relay::RelayConfig {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let relay = start_relay_with(config).await;
    // Opens a connection but never a stream.
    let silent = RawClient::connect(&relay.owner_link).await;
    assert_eq!(
        silent.closed_code().await,
        Some(u64::from(close_code::PROTOCOL_VIOLATION))
    );
    // Says Hello, then never answers the challenge.
    let mut stalled = RawClient::connect(&relay.owner_link).await;
    let hello = ControlFrame::Hello {
        public_key: [1; 32],
        display_name: "slow".into(),
        invite: None,
    };
    stalled.control.send(&hello).await.unwrap();
    assert!(matches!(
        stalled.control.recv().await.unwrap(),
        Some(ControlFrame::Challenge { .. })
    ));
    common::raw::expect_error(
        stalled.control.recv().await.unwrap().unwrap(),
        ErrorCode::HandshakeTimeout,
    );
    // Meanwhile a prompt client is admitted.
    connect(&relay.owner_link, "prompt").await;
    relay.handle.shutdown().await;
}
