//! What a client needs to connect.

use std::sync::Arc;
use std::time::Duration;

use crate::client::ClientError;
use crate::crypto::{KeyProvider, StaticSecretKeys};
use crate::identity::Identity;
use crate::invite::InviteLink;
use crate::proto::handshake::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::transport::TransportTuning;

/// How quickly to retry after losing the relay.
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPolicy {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait between retries.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        // Fast first retries so a restarted relay has everyone back within a second or two.
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

/// A client's settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where the relay is, its certificate, and the invite token.
    pub link: InviteLink,
    /// Our identity.
    pub identity: Identity,
    /// The name others see.
    pub display_name: String,
    /// Source of end-to-end media keys.
    pub keys: Arc<dyn KeyProvider>,
    /// QUIC timing and buffers.
    pub tuning: TransportTuning,
    /// Retry timing.
    pub reconnect: ReconnectPolicy,
    /// How long the relay has to admit us.
    pub handshake_timeout: Duration,
}

impl ClientOptions {
    /// Options using the group secret in `link` for media keys.
    pub fn from_link(
        link: InviteLink,
        identity: Identity,
        display_name: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let secret = link.secret.clone().ok_or(ClientError::NoSecret)?;
        Ok(Self {
            link,
            identity,
            display_name: display_name.into(),
            keys: Arc::new(StaticSecretKeys::new(secret)),
            tuning: TransportTuning::default(),
            reconnect: ReconnectPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }
}
