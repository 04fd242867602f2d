//! What a client needs to connect.

use std::sync::Arc;
use std::time::Duration;

use crate::client::ClientError;
use crate::crypto::KeyProvider;
use crate::identity::Identity;
use crate::invite::InviteLink;
use crate::proto::control::{MAX_NAME_LEN, validate_text};
use crate::proto::handshake::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::proto::session::Backoff;
use crate::transport::TransportTuning;

/// How quickly to retry after losing the relay.
pub type ReconnectPolicy = Backoff;

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
    /// Where group frames (MLS delivery) go, with a note on every (re)connection; without it
    /// they arrive as [`crate::client::ClientEvent::Group`].
    pub group_events: Option<tokio::sync::mpsc::Sender<crate::client::GroupEvent>>,
}

impl ClientOptions {
    /// Options for connecting through `link` as `identity`, with media keys from `keys` (the
    /// MLS group's [`crate::group::MediaKeyRing`] in the product). Refuses a display name the
    /// relay would refuse, before any connection is made.
    pub fn new(
        link: InviteLink,
        identity: Identity,
        display_name: impl Into<String>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, ClientError> {
        let display_name = display_name.into();
        check_display_name(&display_name)?;
        Ok(Self {
            link,
            identity,
            display_name,
            keys,
            tuning: TransportTuning::default(),
            reconnect: ReconnectPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            group_events: None,
        })
    }
}

/// Checks a display name against the protocol's rules, in a person's words.
pub fn check_display_name(name: &str) -> Result<(), ClientError> {
    let invalid = |reason: String| ClientError::InvalidDisplayName(reason);
    if name.trim().is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if name.trim() != name {
        return Err(invalid("it starts or ends with spaces".into()));
    }
    validate_text(name, MAX_NAME_LEN).map_err(|_| {
        if name.len() > MAX_NAME_LEN {
            invalid(format!(
                "it is {} bytes long; the most is {MAX_NAME_LEN}",
                name.len()
            ))
        } else {
            invalid("it contains control characters".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_relay_would_refuse_are_refused_here() {
        assert!(check_display_name("Zoë").is_ok());
        for bad in [
            "",
            "   ",
            " ada",
            "ada\n",
            "a\u{7}b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            let error = check_display_name(bad).unwrap_err();
            assert!(
                error.to_string().starts_with("the display name"),
                "{bad:?}: {error}"
            );
        }
        assert!(check_display_name(&"é".repeat(MAX_NAME_LEN / 2)).is_ok());
    }
}
