//! Sotto's networking: the wire protocol, the QUIC transport and end-to-end media encryption.
//!
//! The crate is layered the way quinn is:
//!
//! - [`proto`] is the protocol itself — control frames, media datagrams, the replay window and
//!   the handshake state machines. It does no I/O and reads no clock: bytes and time are
//!   arguments, output is polled.
//! - [`crypto`] derives the end-to-end media keys behind the [`crypto::KeyProvider`] trait.
//! - [`group`] wraps MLS (openmls): the member side (feature `member`: groups, invite proofs,
//!   epoch media keys, safety numbers) and the relay's secret-free delivery-service checks.
//! - [`seal`] seals chat messages (signed by their author, under the group's per-epoch text
//!   secret) and files (chunked, streamed, under a fresh key each) end to end.
//! - [`transport`] is the thin quinn/tokio layer: endpoint configuration, certificate pinning
//!   and framing of the control stream.
//! - [`client`] is the client connection library used by the `sotto` binary and the GUI.
//!
//! The byte-level format is specified in `net/PROTOCOL.md`.

pub mod client;
pub mod crypto;
pub mod group;
pub mod identity;
pub mod invite;
pub mod proto;
pub mod roles;
pub mod seal;
pub mod transport;

/// The ALPN protocol identifier negotiated on every QUIC connection.
pub const ALPN: &[u8] = b"sotto/1";
