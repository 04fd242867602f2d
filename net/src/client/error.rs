//! Client errors.

use crate::proto::control::ErrorCode;
use crate::proto::datagram::SealError;
use crate::proto::handshake::HandshakeError;
use crate::transport::{ConfigError, StreamError};

/// What went wrong for the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The invite link has no group secret.
    #[error("the invite link has no secret after '#'; ask for the full link")]
    NoSecret,
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
    /// The relay broke the protocol.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// The client was stopped.
    #[error("the client has stopped")]
    Stopped,
}

impl ClientError {
    /// Whether retrying cannot help, so the client should stop.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::NoSecret
            | Self::FingerprintMismatch
            | Self::Replaced
            | Self::Config(_)
            | Self::Stopped => true,
            Self::Handshake(HandshakeError::Refused { code, .. }) | Self::Refused { code, .. } => {
                matches!(
                    code,
                    ErrorCode::AuthenticationFailed
                        | ErrorCode::InviteUnknown
                        | ErrorCode::InviteExpired
                        | ErrorCode::InviteUsedUp
                        | ErrorCode::NotAMember
                        | ErrorCode::UnsupportedVersion
                )
            }
            _ => false,
        }
    }
}
