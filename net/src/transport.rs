//! The quinn layer: endpoint configuration, certificate pinning and the framed control stream.

mod config;
mod control_stream;
mod pinning;

pub use config::{
    ConfigError, RelayCertificate, TransportTuning, certificate_fingerprint, client_config,
    endpoint_config, generate_certificate, server_config,
};
pub use control_stream::{ControlStream, StreamError};
pub use pinning::PinnedCertificate;

/// Application close codes carried in QUIC `CONNECTION_CLOSE` frames.
pub mod close_code {
    /// Normal shutdown by either side.
    pub const NORMAL: u32 = 0;
    /// The peer sent malformed or unexpected bytes.
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// The relay refused the member (authentication or admission).
    pub const REFUSED: u32 = 2;
    /// The relay is shutting down; reconnect later.
    pub const SHUTTING_DOWN: u32 = 3;
    /// The same member connected again elsewhere; this connection is replaced.
    pub const REPLACED: u32 = 4;
}
