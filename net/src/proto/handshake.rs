//! The connection handshake, as two sans-IO state machines.
//!
//! ```text
//! client                                relay
//!   Hello {public key, name, invite?} →
//!                                     ← Challenge {nonce}
//!   Authenticate {signature}          →
//!                                     ← Welcome {member, server, channels} | Error {code}
//! ```
//!
//! Neither side reads a clock or touches a socket: feed received frames to `handle_frame`, the
//! current time to `handle_timeout`, and send what `poll_transmit` yields.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::identity::{Identity, verify_challenge};
use crate::proto::control::{ControlFrame, ErrorCode, InviteToken, PublicKey};

/// How long either side waits for the whole handshake by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer did not finish in time.
    #[error("the handshake did not complete within {0:?}")]
    Timeout(Duration),
    /// The peer sent a frame that does not belong at this point.
    #[error("unexpected {frame} frame during the handshake")]
    Unexpected {
        /// The frame's name.
        frame: &'static str,
    },
    /// The client's signature did not verify.
    #[error("the identity signature did not verify")]
    AuthenticationFailed,
    /// The relay refused the client.
    #[error("the relay refused the connection: {message}")]
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
}

impl HandshakeError {
    /// The error code to tell the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Timeout(_) => ErrorCode::HandshakeTimeout,
            Self::Unexpected { .. } => ErrorCode::ProtocolViolation,
            Self::AuthenticationFailed => ErrorCode::AuthenticationFailed,
            Self::Refused { code, .. } => *code,
        }
    }
}

/// A client that proved its key, waiting for the relay's admission decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedClient {
    /// The proven identity key.
    pub public_key: PublicKey,
    /// The name it asked to be shown as.
    pub display_name: String,
    /// The invite it presented, if any.
    pub invite: Option<InviteToken>,
}

#[derive(Debug)]
enum RelayState {
    AwaitHello,
    AwaitAuthenticate {
        public_key: PublicKey,
        display_name: String,
        invite: Option<InviteToken>,
    },
    AwaitVerdict,
    Finished,
}

/// The relay's side of the handshake.
#[derive(Debug)]
pub struct RelayHandshake {
    state: RelayState,
    nonce: [u8; 32],
    relay_fingerprint: [u8; 32],
    timeout: Duration,
    deadline: Instant,
    outgoing: VecDeque<ControlFrame>,
}

impl RelayHandshake {
    /// Starts a handshake at `now` with a fresh random `nonce`.
    pub fn new(
        now: Instant,
        nonce: [u8; 32],
        relay_fingerprint: [u8; 32],
        timeout: Duration,
    ) -> Self {
        Self {
            state: RelayState::AwaitHello,
            nonce,
            relay_fingerprint,
            timeout,
            deadline: now + timeout,
            outgoing: VecDeque::new(),
        }
    }

    /// Feeds a frame from the client. Returns the client once it has proved its key; the
    /// caller then decides with [`RelayHandshake::admit`] or [`RelayHandshake::refuse`].
    pub fn handle_frame(
        &mut self,
        frame: ControlFrame,
    ) -> Result<Option<AuthenticatedClient>, HandshakeError> {
        match (
            std::mem::replace(&mut self.state, RelayState::Finished),
            frame,
        ) {
            (
                RelayState::AwaitHello,
                ControlFrame::Hello {
                    public_key,
                    display_name,
                    invite,
                },
            ) => {
                self.outgoing
                    .push_back(ControlFrame::Challenge { nonce: self.nonce });
                self.state = RelayState::AwaitAuthenticate {
                    public_key,
                    display_name,
                    invite,
                };
                Ok(None)
            }
            (
                RelayState::AwaitAuthenticate {
                    public_key,
                    display_name,
                    invite,
                },
                ControlFrame::Authenticate { signature },
            ) => {
                if !verify_challenge(
                    &public_key,
                    &self.nonce,
                    &self.relay_fingerprint,
                    &signature,
                ) {
                    return Err(self.fail(HandshakeError::AuthenticationFailed));
                }
                self.state = RelayState::AwaitVerdict;
                Ok(Some(AuthenticatedClient {
                    public_key,
                    display_name,
                    invite,
                }))
            }
            (_, frame) => Err(self.fail(HandshakeError::Unexpected {
                frame: frame.name(),
            })),
        }
    }

    /// Admits the authenticated client with its `Welcome` frame.
    pub fn admit(&mut self, welcome: ControlFrame) {
        debug_assert!(matches!(welcome, ControlFrame::Welcome { .. }));
        self.outgoing.push_back(welcome);
        self.state = RelayState::Finished;
    }

    /// Refuses the client, telling it why.
    pub fn refuse(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.outgoing.push_back(ControlFrame::Error {
            code,
            message: message.into(),
        });
        self.state = RelayState::Finished;
    }

    /// Fails the handshake if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        let waiting = !matches!(self.state, RelayState::Finished | RelayState::AwaitVerdict);
        if waiting && now >= self.deadline {
            return Err(self.fail(HandshakeError::Timeout(self.timeout)));
        }
        Ok(())
    }

    /// When [`RelayHandshake::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            RelayState::Finished | RelayState::AwaitVerdict => None,
            _ => Some(self.deadline),
        }
    }

    /// The next frame to send to the client.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        self.outgoing.pop_front()
    }

    /// Whether the handshake has ended (admitted, refused or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, RelayState::Finished)
    }

    fn fail(&mut self, error: HandshakeError) -> HandshakeError {
        self.state = RelayState::Finished;
        self.outgoing.push_back(ControlFrame::Error {
            code: error.code(),
            message: error.to_string(),
        });
        error
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    AwaitChallenge,
    AwaitWelcome,
    Finished,
}

/// What the relay said when it admitted the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The `Welcome` frame.
    pub welcome: ControlFrame,
}

/// The client's side of the handshake.
#[derive(Debug)]
pub struct ClientHandshake {
    identity: Identity,
    relay_fingerprint: [u8; 32],
    state: ClientState,
    timeout: Duration,
    deadline: Instant,
    outgoing: VecDeque<ControlFrame>,
}

impl ClientHandshake {
    /// Starts a handshake at `now`; the `Hello` is queued at once.
    pub fn new(
        now: Instant,
        identity: Identity,
        display_name: String,
        invite: Option<InviteToken>,
        relay_fingerprint: [u8; 32],
        timeout: Duration,
    ) -> Self {
        let hello = ControlFrame::Hello {
            public_key: identity.public_key(),
            display_name,
            invite,
        };
        Self {
            identity,
            relay_fingerprint,
            state: ClientState::AwaitChallenge,
            timeout,
            deadline: now + timeout,
            outgoing: VecDeque::from([hello]),
        }
    }

    /// Feeds a frame from the relay. Returns the admission once welcomed.
    pub fn handle_frame(
        &mut self,
        frame: ControlFrame,
    ) -> Result<Option<Admission>, HandshakeError> {
        let state = std::mem::replace(&mut self.state, ClientState::Finished);
        match (state, frame) {
            (_, ControlFrame::Error { code, message }) => {
                Err(HandshakeError::Refused { code, message })
            }
            (ClientState::AwaitChallenge, ControlFrame::Challenge { nonce }) => {
                let signature = self
                    .identity
                    .sign_challenge(&nonce, &self.relay_fingerprint);
                self.outgoing
                    .push_back(ControlFrame::Authenticate { signature });
                self.state = ClientState::AwaitWelcome;
                Ok(None)
            }
            (ClientState::AwaitWelcome, welcome @ ControlFrame::Welcome { .. }) => {
                Ok(Some(Admission { welcome }))
            }
            (_, frame) => Err(HandshakeError::Unexpected {
                frame: frame.name(),
            }),
        }
    }

    /// Fails the handshake if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if self.state != ClientState::Finished && now >= self.deadline {
            self.state = ClientState::Finished;
            return Err(HandshakeError::Timeout(self.timeout));
        }
        Ok(())
    }

    /// When [`ClientHandshake::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != ClientState::Finished).then_some(self.deadline)
    }

    /// The next frame to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        self.outgoing.pop_front()
    }
}

#[cfg(test)]
mod tests;
