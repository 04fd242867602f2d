//! The relay's run-time settings, with a `validate` that explains what is wrong.

use std::net::SocketAddr;
use std::time::Duration;

use sotto_net::proto::control::MAX_PARTICIPANTS;
use sotto_net::proto::handshake::DEFAULT_HANDSHAKE_TIMEOUT;
use sotto_net::transport::TransportTuning;

/// Default UDP port of a relay.
pub const DEFAULT_PORT: u16 = 7878;

/// How a relay serves.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// TCP address of the Prometheus endpoint; none to disable it.
    pub metrics: Option<SocketAddr>,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Datagrams per second one connection may send on average.
    pub datagram_rate: u32,
    /// Datagrams one connection may send in a burst.
    pub datagram_burst: u32,
    /// Requests (join a voice channel, create an invite) one connection may make per second on
    /// average.
    pub request_rate: u32,
    /// Requests one connection may make in a burst.
    pub request_burst: u32,
    /// Chat messages one member may post per second on average.
    pub message_rate: u32,
    /// Chat messages one member may post in a burst.
    pub message_burst: u32,
    /// Largest file a member may upload, in bytes before sealing.
    pub max_file_size: u64,
    /// Bytes of files (sealed) one member may keep on the relay, posted or not.
    pub member_storage: u64,
    /// Uploads one member may start per second on average.
    pub upload_rate: u32,
    /// Uploads one member may start in a burst.
    pub upload_burst: u32,
    /// How long a stored file no message carries is kept (an upload not posted yet, a message
    /// deleted) before it is deleted.
    pub file_grace: Duration,
    /// How often the relay looks for such files.
    pub file_sweep_interval: Duration,
    /// Most people in one voice channel.
    pub max_voice_participants: usize,
    /// Most active (unexpired, not used up) invites one member may hold.
    pub max_active_invites: u32,
    /// Most invites one member may create per hour.
    pub invites_per_hour: u32,
    /// How long a new connection has to authenticate.
    pub handshake_timeout: Duration,
    /// QUIC timing and buffers.
    pub tuning: TransportTuning,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            metrics: None,
            max_connections: 10_000,
            // Voice is 50–100 packets/s; a 1080p60 screen share needs several hundred.
            datagram_rate: 2_000,
            datagram_burst: 1_000,
            // A person clicks a few times a second at most; a client rejoining after a
            // reconnect makes one or two requests.
            request_rate: 20,
            request_burst: 40,
            // Typing fast is a message a second; pasting a few lines, a burst of them.
            message_rate: 10,
            message_burst: 50,
            // Photos, screenshots, logs and short clips; a relay on a small board may lower it.
            max_file_size: 100 * 1024 * 1024,
            // Dropping a dozen photos into a channel at once is fine; a script uploading
            // without pause is slowed to two a second.
            member_storage: 2 * 1024 * 1024 * 1024,
            upload_rate: 2,
            upload_burst: 12,
            // Long enough for an upload to be finished and posted after a night offline.
            file_grace: Duration::from_secs(24 * 60 * 60),
            file_sweep_interval: Duration::from_secs(10 * 60),
            max_voice_participants: MAX_PARTICIPANTS,
            max_active_invites: 50,
            invites_per_hour: 100,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            tuning: TransportTuning::default(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No connections allowed.
    #[error("--max-connections must be at least 1")]
    NoConnections,
    /// No datagrams allowed.
    #[error("--datagram-rate and --datagram-burst must be at least 1, or no one could talk")]
    NoDatagrams,
    /// No requests allowed.
    #[error(
        "--request-rate and --request-burst must be at least 1, or no one could join a channel"
    )]
    NoRequests,
    /// No message could ever be posted.
    #[error("--message-rate and --message-burst must be at least 1, or no one could chat")]
    NoMessages,
    /// No file could ever be uploaded.
    #[error("--upload-rate and --upload-burst must be at least 1, or no one could share a file")]
    NoUploads,
    /// The sweep for unused files would spin.
    #[error("the file sweep interval must be at least 100 ms")]
    SweepTooOften,
    /// A voice channel limit nobody fits in, or more than a roster can list.
    #[error("--max-voice-participants must be from 1 to {MAX_PARTICIPANTS}, got {0}")]
    VoiceParticipants(usize),
    /// Invite limits that allow no invites.
    #[error("--max-active-invites and --invites-per-hour must be at least 1")]
    NoInvites,
    /// The handshake could never complete.
    #[error("the handshake timeout must be at least 100 ms")]
    HandshakeTooShort,
    /// Metrics and media on the same port of the same address.
    #[error("--metrics {0} collides with --listen; pick another port for metrics")]
    MetricsCollides(SocketAddr),
}

impl RelayConfig {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if self.datagram_rate == 0 || self.datagram_burst == 0 {
            return Err(ConfigError::NoDatagrams);
        }
        if self.request_rate == 0 || self.request_burst == 0 {
            return Err(ConfigError::NoRequests);
        }
        if self.message_rate == 0 || self.message_burst == 0 {
            return Err(ConfigError::NoMessages);
        }
        if self.upload_rate == 0 || self.upload_burst == 0 {
            return Err(ConfigError::NoUploads);
        }
        if self.file_sweep_interval < Duration::from_millis(100) {
            return Err(ConfigError::SweepTooOften);
        }
        if !(1..=MAX_PARTICIPANTS).contains(&self.max_voice_participants) {
            return Err(ConfigError::VoiceParticipants(self.max_voice_participants));
        }
        if self.max_active_invites == 0 || self.invites_per_hour == 0 {
            return Err(ConfigError::NoInvites);
        }
        if self.handshake_timeout < Duration::from_millis(100) {
            return Err(ConfigError::HandshakeTooShort);
        }
        if let Some(metrics) = self.metrics
            && metrics.port() == self.listen.port()
            && metrics.port() != 0
            && metrics.ip() == self.listen.ip()
        {
            return Err(ConfigError::MetricsCollides(metrics));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_settings_are_explained() {
        assert_eq!(RelayConfig::default().validate(), Ok(()));
        let config = RelayConfig {
            max_connections: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoConnections));
        let config = RelayConfig {
            datagram_rate: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoDatagrams));
        let config = RelayConfig {
            request_burst: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoRequests));
        let config = RelayConfig {
            max_voice_participants: MAX_PARTICIPANTS + 1,
            ..RelayConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("from 1 to 1000")
        );
        let config = RelayConfig {
            upload_burst: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoUploads));
        let config = RelayConfig {
            invites_per_hour: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoInvites));
        let config = RelayConfig {
            metrics: Some(RelayConfig::default().listen),
            ..RelayConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("pick another port")
        );
    }
}
