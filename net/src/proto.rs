//! The sans-IO protocol: codecs and state machines with no sockets and no clock reads.

pub mod control;
pub mod datagram;
pub mod feedback;
pub mod file_stream;
pub mod handshake;
pub mod replay;
pub mod session;
mod wire;

pub use control::{ControlFrame, FrameDecoder};
pub use datagram::{MediaHeader, StreamKind};

/// Version of the control-frame format and the media-datagram format.
pub const PROTOCOL_VERSION: u8 = 1;
