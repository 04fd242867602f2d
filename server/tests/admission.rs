//! Who gets in: invites, expiry, use limits, signatures, certificate pinning.

mod common;

use common::raw::{RawClient, expect_error};
use common::*;
use sotto_net::client::{Client, ClientError, ClientEvent};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::{ControlFrame, ErrorCode};
use sotto_net::transport::close_code;

/// Starts a client and returns the error it stops with.
async fn stopped_with(link: &InviteLink, identity: Identity) -> std::sync::Arc<ClientError> {
    let mut options = options(link, identity, "someone");
    options.reconnect = fast_reconnect();
    let (_client, mut events) = Client::start(options).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the client stops")
            .expect("an event")
        {
            ClientEvent::Stopped(error) => return error,
            ClientEvent::Connected { .. } => panic!("should not be admitted"),
            _ => {}
        }
    }
}

fn refused_code(error: &ClientError) -> ErrorCode {
    match error {
        ClientError::Handshake(sotto_net::proto::handshake::HandshakeError::Refused {
            code,
            ..
        }) => *code,
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_invite_admits_once_and_members_return_without_one() {
    let relay = start_relay().await;
    let owner = Identity::generate();
    let first = connect_as(&relay.owner_link, "owner", owner.clone()).await;
    drop(first);
    // The owner link was single-use: a second key is refused, with the reason.
    let error = stopped_with(&relay.owner_link, Identity::generate()).await;
    assert_eq!(refused_code(&error), ErrorCode::InviteUsedUp);
    assert!(error.to_string().contains("used up"), "{error}");
    // The owner is a member now and gets in with the same (spent) link.
    let again = connect_as(&relay.owner_link, "owner", owner).await;
    assert!(!again.channels.is_empty());
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_unknown_and_used_up_invites_are_refused() {
    let relay = start_relay().await;
    let expired = relay.member_link(None, Some(sotto_relay::data_dir::unix_now() - 1));
    assert_eq!(
        refused_code(&*stopped_with(&expired, Identity::generate()).await),
        ErrorCode::InviteExpired
    );

    let unknown = InviteLink {
        token: [0xEE; 16],
        ..relay.owner_link.clone()
    };
    assert_eq!(
        refused_code(&*stopped_with(&unknown, Identity::generate()).await),
        ErrorCode::InviteUnknown
    );

    let twice = relay.member_link(Some(2), None);
    connect(&twice, "one").await;
    connect(&twice, "two").await;
    assert_eq!(
        refused_code(&*stopped_with(&twice, Identity::generate()).await),
        ErrorCode::InviteUsedUp
    );
    assert!(
        relay
            .handle
            .metrics()
            .handshakes_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signature_is_refused_and_the_connection_closed() {
    let relay = start_relay().await;
    let mut raw = RawClient::connect(&relay.owner_link).await;
    let victim = Identity::generate();
    let answer = raw
        .handshake(&relay.owner_link, &victim, &Identity::generate())
        .await;
    expect_error(answer, ErrorCode::AuthenticationFailed);
    assert_eq!(
        raw.closed_code().await,
        Some(u64::from(close_code::REFUSED))
    );
    // The invite was not spent by the failed attempt.
    connect(&relay.owner_link, "real owner").await;
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_handshake_is_a_protocol_violation() {
    let relay = start_relay().await;
    let mut raw = RawClient::connect(&relay.owner_link).await;
    raw.control
        .send(&ControlFrame::Authenticate { signature: [0; 64] })
        .await
        .unwrap();
    let answer = raw.control.recv().await.unwrap().unwrap();
    expect_error(answer, ErrorCode::ProtocolViolation);
    assert_eq!(
        raw.closed_code().await,
        Some(u64::from(close_code::PROTOCOL_VIOLATION))
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_certificate_fingerprint_stops_the_client_with_a_clear_error() {
    let relay = start_relay().await;
    let wrong = InviteLink {
        fingerprint: [7; 32],
        ..relay.owner_link.clone()
    };
    let error = stopped_with(&wrong, Identity::generate()).await;
    assert!(
        matches!(*error, ClientError::FingerprintMismatch),
        "{error}"
    );
    assert!(error.to_string().contains("does not match the invite link"));
    relay.handle.shutdown().await;
}
