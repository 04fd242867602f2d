//! Sotto's relay: it knows who may be where, forwards end-to-end encrypted media to the right
//! people, and stores what must survive — but never holds a key that opens user content.
//!
//! - [`data_dir`]: the database file and TLS certificate, and `init`.
//! - [`db`]: servers, channels, members, invites in SQLite, durable before acknowledgement.
//! - [`server`]: the QUIC endpoint, connection cap and graceful shutdown.
//! - `connection`: one member's handshake, control loop and datagram forwarding.
//! - [`rooms`]: voice rooms and their lock-free fan-out lists.
//! - [`metrics`]: counters and the Prometheus endpoint.
//! - [`impairment`]: a lossy, jittery UDP proxy for tests.

mod blob_files;
pub mod config;
mod connection;
mod conversations;
pub mod data_dir;
pub mod db;
mod file_streams;
mod groups;
pub mod impairment;
pub mod metrics;
mod presence;
pub mod rate_limit;
pub mod rooms;
pub mod roster_outbox;
pub mod server;

pub use config::RelayConfig;
pub use data_dir::{DataDir, InitOptions};
pub use server::{Relay, RelayError, RelayHandle};
