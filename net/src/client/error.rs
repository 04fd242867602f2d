//! Client errors.

use crate::proto::control::ErrorCode;
use crate::proto::datagram::SealError;
use crate::proto::handshake::HandshakeError;
use crate::proto::session::{Failure, SessionError};
use crate::transport::{ConfigError, StreamError, close_code};

/// What went wrong for the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The display name breaks the protocol's rules; it was refused before connecting.
    #[error("the display name cannot be used: {0}; pick another with --name")]
    InvalidDisplayName(String),
    /// The relay's name did not resolve.
    #[error("cannot find the relay at {address}: {reason}")]
    Resolve {
        /// The `host:port`.
        address: String,
        /// Why.
        reason: String,
    },
    /// A local UDP socket could not be opened.
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    /// The TLS configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The QUIC connection could not start.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or closed.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The relay's certificate is not the one the invite link pins.
    #[error(
        "the relay's certificate does not match the invite link's fingerprint: this is not the relay you were \
         invited to (or it was reinstalled). Ask for a new invite link"
    )]
    FingerprintMismatch,
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The control stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The relay closed the connection because we signed in elsewhere.
    #[error("this identity signed in from another client, which replaced this one")]
    Replaced,
    /// Not connected right now.
    #[error("not connected to the relay right now; the client is reconnecting")]
    NotConnected,
    /// Not in a voice channel.
    #[error("not in a voice channel; join one first")]
    NotInVoice,
    /// The relay answered a request with a frame of another kind.
    #[error("the relay answered with an unexpected {0} frame")]
    UnexpectedAnswer(&'static str),
    /// The relay refused the request.
    #[error("the relay refused: {message}")]
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Sending a datagram failed.
    #[error("cannot send media: {0}")]
    Send(#[from] quinn::SendDatagramError),
    /// The relay closed the connection with an application code and a reason.
    #[error("the relay closed the connection: {reason}")]
    ClosedByRelay {
        /// The close code (see `net/PROTOCOL.md`).
        code: u32,
        /// The relay's reason.
        reason: String,
    },
    /// The relay broke the protocol.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// The relay broke the session's rules (an answer nobody asked for).
    #[error("the relay broke the protocol: {0}")]
    Session(#[from] SessionError),
    /// The client was stopped.
    #[error("the client has stopped")]
    Stopped,
}

/// Admission refusals: the relay will answer the same way every time.
fn is_permanent_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AuthenticationFailed
            | ErrorCode::InviteUnknown
            | ErrorCode::InviteExpired
            | ErrorCode::InviteUsedUp
            | ErrorCode::NotAMember
            | ErrorCode::Banned
            | ErrorCode::UnsupportedVersion
            | ErrorCode::Forbidden
    )
}

impl ClientError {
    /// How the client should treat a connection that ended with this error.
    pub fn failure(&self) -> Failure {
        match self {
            Self::InvalidDisplayName(_)
            | Self::Socket(_)
            | Self::Config(_)
            | Self::Connect(_)
            | Self::FingerprintMismatch
            | Self::Replaced
            | Self::Stopped => Failure::Permanent,
            Self::Handshake(HandshakeError::Refused { code, .. }) | Self::Refused { code, .. } => {
                if is_permanent_refusal(*code) {
                    Failure::Permanent
                } else {
                    Failure::Transient
                }
            }
            Self::Handshake(HandshakeError::AuthenticationFailed) => Failure::Permanent,
            Self::Handshake(HandshakeError::Unexpected { .. })
            | Self::Stream(StreamError::Decode(_) | StreamError::Encode(_))
            | Self::Protocol(_)
            | Self::UnexpectedAnswer(_)
            | Self::Session(_) => Failure::Suspect,
            Self::ClosedByRelay { code, .. } => match *code {
                close_code::REFUSED => Failure::Permanent,
                close_code::PROTOCOL_VIOLATION => Failure::Suspect,
                _ => Failure::Transient,
            },
            Self::Handshake(_)
            | Self::Resolve { .. }
            | Self::Connection(_)
            | Self::Stream(_)
            | Self::NotConnected
            | Self::NotInVoice
            | Self::Seal(_)
            | Self::Send(_) => Failure::Transient,
        }
    }

    /// Whether retrying cannot help, so the client should stop.
    pub fn is_fatal(&self) -> bool {
        self.failure() == Failure::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::DecodeError;

    fn refused(code: ErrorCode) -> ClientError {
        ClientError::Refused {
            code,
            message: String::new(),
        }
    }

    fn closed(code: u32) -> ClientError {
        ClientError::ClosedByRelay {
            code,
            reason: "why".into(),
        }
    }

    /// Every class of error, and what the client does after it: no permanent error is retried,
    /// and no network hiccup stops the client.
    #[test]
    fn every_error_class_has_a_retry_decision() {
        let permanent = [
            ClientError::InvalidDisplayName("it is empty".into()),
            ClientError::Socket(std::io::Error::other("no sockets")),
            ClientError::Config(ConfigError::NoQuicCipherSuite),
            ClientError::Connect(quinn::ConnectError::EndpointStopping),
            ClientError::FingerprintMismatch,
            ClientError::Replaced,
            ClientError::Stopped,
            ClientError::Handshake(HandshakeError::AuthenticationFailed),
            ClientError::Handshake(HandshakeError::Refused {
                code: ErrorCode::InviteExpired,
                message: String::new(),
            }),
            refused(ErrorCode::InviteUnknown),
            refused(ErrorCode::InviteUsedUp),
            refused(ErrorCode::NotAMember),
            refused(ErrorCode::UnsupportedVersion),
            refused(ErrorCode::AuthenticationFailed),
            refused(ErrorCode::Forbidden),
            closed(close_code::REFUSED),
        ];
        let suspect = [
            ClientError::Protocol("garbage".into()),
            ClientError::Session(SessionError::Unsolicited("VoiceJoined")),
            ClientError::Handshake(HandshakeError::Unexpected { frame: "Roster" }),
            ClientError::Stream(StreamError::Decode(DecodeError::UnknownKind(0x77))),
            closed(close_code::PROTOCOL_VIOLATION),
        ];
        let transient = [
            ClientError::Resolve {
                address: "relay.example:7878".into(),
                reason: "offline".into(),
            },
            ClientError::Connection(quinn::ConnectionError::TimedOut),
            ClientError::Connection(quinn::ConnectionError::Reset),
            ClientError::Handshake(HandshakeError::Timeout(std::time::Duration::from_secs(10))),
            refused(ErrorCode::Internal),
            refused(ErrorCode::RateLimited),
            refused(ErrorCode::HandshakeTimeout),
            closed(close_code::SHUTTING_DOWN),
            closed(close_code::NORMAL),
            ClientError::NotConnected,
            ClientError::NotInVoice,
            ClientError::Seal(SealError::CounterExhausted),
            ClientError::Send(quinn::SendDatagramError::ConnectionLost(
                quinn::ConnectionError::TimedOut,
            )),
        ];
        for (errors, expected) in [
            (&permanent[..], Failure::Permanent),
            (&suspect[..], Failure::Suspect),
            (&transient[..], Failure::Transient),
        ] {
            for error in errors {
                assert_eq!(error.failure(), expected, "{error:?}");
                assert_eq!(error.is_fatal(), expected == Failure::Permanent);
                assert!(!error.to_string().is_empty());
            }
        }
    }
}
