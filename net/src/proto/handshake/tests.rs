//! Two peers in memory: frames cross an encoded byte pipe with latency, on a simulated clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::control::{FrameDecoder, ServerInfo};

const LATENCY: Duration = Duration::from_millis(40);
const RELAY_FINGERPRINT: [u8; 32] = [0xAB; 32];

/// One direction of the pipe: encoded bytes that arrive after `LATENCY`.
#[derive(Default)]
struct Pipe {
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    decoder: FrameDecoder,
}

impl Pipe {
    fn send(&mut self, now: Instant, frame: &ControlFrame) {
        self.in_flight
            .push_back((now + LATENCY, frame.to_bytes().unwrap()));
    }

    fn deliver(&mut self, now: Instant) -> Vec<ControlFrame> {
        while self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.in_flight.pop_front().unwrap();
            // Deliver byte by byte to exercise partial-frame buffering.
            for byte in bytes {
                self.decoder.push(&[byte]);
            }
        }
        std::iter::from_fn(|| self.decoder.poll_frame().unwrap()).collect()
    }
}

struct Pair {
    now: Instant,
    client: ClientHandshake,
    relay: RelayHandshake,
    to_relay: Pipe,
    to_client: Pipe,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Admitted(Admission, AuthenticatedClient),
    ClientFailed(HandshakeError),
    RelayFailed(HandshakeError),
}

impl Pair {
    fn new(identity: Identity, client_fingerprint: [u8; 32]) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: ClientHandshake::new(
                now,
                identity,
                "ada".into(),
                Some([5; 16]),
                client_fingerprint,
                DEFAULT_HANDSHAKE_TIMEOUT,
            ),
            relay: RelayHandshake::new(
                now,
                [0x11; 32],
                RELAY_FINGERPRINT,
                DEFAULT_HANDSHAKE_TIMEOUT,
            ),
            to_relay: Pipe::default(),
            to_client: Pipe::default(),
        }
    }

    /// Runs until an outcome, advancing the clock by 1 ms steps; `drop_client_frames` loses
    /// everything the client sends.
    fn run(&mut self, drop_client_frames: bool) -> Outcome {
        let mut authenticated = None;
        for _ in 0..20_000 {
            while let Some(frame) = self.client.poll_transmit() {
                if !drop_client_frames {
                    self.to_relay.send(self.now, &frame);
                }
            }
            while let Some(frame) = self.relay.poll_transmit() {
                self.to_client.send(self.now, &frame);
            }
            for frame in self.to_relay.deliver(self.now) {
                match self.relay.handle_frame(frame) {
                    Ok(Some(client)) => {
                        self.relay.admit(welcome());
                        authenticated = Some(client);
                    }
                    Ok(None) => {}
                    Err(error) => return Outcome::RelayFailed(error),
                }
            }
            for frame in self.to_client.deliver(self.now) {
                match self.client.handle_frame(frame) {
                    Ok(Some(admission)) => {
                        return Outcome::Admitted(admission, authenticated.unwrap());
                    }
                    Ok(None) => {}
                    Err(error) => return Outcome::ClientFailed(error),
                }
            }
            if let Err(error) = self.relay.handle_timeout(self.now) {
                return Outcome::RelayFailed(error);
            }
            if let Err(error) = self.client.handle_timeout(self.now) {
                return Outcome::ClientFailed(error);
            }
            self.now += Duration::from_millis(1);
        }
        panic!("handshake neither finished nor timed out");
    }
}

/// A client handshake that has queued its Hello and awaits the relay.
fn fresh_client(now: Instant) -> ClientHandshake {
    ClientHandshake::new(
        now,
        Identity::generate(),
        "x".into(),
        None,
        RELAY_FINGERPRINT,
        DEFAULT_HANDSHAKE_TIMEOUT,
    )
}

fn welcome() -> ControlFrame {
    ControlFrame::Welcome {
        member_id: 1,
        server: ServerInfo {
            id: 1,
            name: "home".into(),
        },
        channels: vec![],
    }
}

#[test]
fn completes_in_two_round_trips() {
    let identity = Identity::generate();
    let mut pair = Pair::new(identity.clone(), RELAY_FINGERPRINT);
    let start = pair.now;
    match pair.run(false) {
        Outcome::Admitted(admission, client) => {
            assert_eq!(admission.welcome, welcome());
            assert_eq!(client.public_key, identity.public_key());
            assert_eq!(client.display_name, "ada");
            assert_eq!(client.invite, Some([5; 16]));
        }
        other => panic!("expected admission, got {other:?}"),
    }
    // Four one-way trips (Hello, Challenge, Authenticate, Welcome); each reply leaves on the
    // next 1 ms tick of the simulation.
    let elapsed = pair.now - start;
    assert!(
        elapsed >= 4 * LATENCY && elapsed <= 4 * LATENCY + Duration::from_millis(4),
        "{elapsed:?}"
    );
    assert!(pair.relay.is_finished());
}

#[test]
fn signature_for_another_relay_is_refused_and_the_client_told() {
    let mut pair = Pair::new(Identity::generate(), [0xCD; 32]);
    assert_eq!(
        pair.run(false),
        Outcome::RelayFailed(HandshakeError::AuthenticationFailed)
    );
    // The relay queued an Error frame for the client.
    match pair.relay.poll_transmit() {
        Some(ControlFrame::Error { code, .. }) => assert_eq!(code, ErrorCode::AuthenticationFailed),
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

#[test]
fn silent_client_times_out_on_the_simulated_clock() {
    let mut pair = Pair::new(Identity::generate(), RELAY_FINGERPRINT);
    let start = pair.now;
    let outcome = pair.run(true);
    assert_eq!(
        outcome,
        Outcome::RelayFailed(HandshakeError::Timeout(DEFAULT_HANDSHAKE_TIMEOUT))
    );
    assert_eq!(pair.now - start, DEFAULT_HANDSHAKE_TIMEOUT);
}

#[test]
fn out_of_order_frames_are_protocol_violations() {
    let now = Instant::now();
    let mut relay = RelayHandshake::new(now, [0; 32], RELAY_FINGERPRINT, DEFAULT_HANDSHAKE_TIMEOUT);
    let error = relay
        .handle_frame(ControlFrame::Authenticate { signature: [0; 64] })
        .unwrap_err();
    assert_eq!(
        error,
        HandshakeError::Unexpected {
            frame: "Authenticate"
        }
    );
    assert_eq!(error.code(), ErrorCode::ProtocolViolation);
    assert!(relay.is_finished());

    let mut client = fresh_client(now);
    assert_eq!(
        client.handle_frame(welcome()).unwrap_err(),
        HandshakeError::Unexpected { frame: "Welcome" }
    );
}

#[test]
fn refusal_reaches_the_client_with_its_reason() {
    let now = Instant::now();
    let mut client = fresh_client(now);
    let refused = ControlFrame::Error {
        code: ErrorCode::InviteExpired,
        message: "expired".into(),
    };
    assert_eq!(
        client.handle_frame(refused).unwrap_err(),
        HandshakeError::Refused {
            code: ErrorCode::InviteExpired,
            message: "expired".into()
        }
    );
}
