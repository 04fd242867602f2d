//! Sotto's client core, free of any GUI: what the command line, the desktop app, kiosk mode and
//! bots share.
//!
//! - [`profile::Profile`]: the identity key (in the OS keychain, or a private file where none
//!   runs) and the servers joined, in `client.db`.
//! - [`connection::Session`]: a client admitted by its relay, with its server and channels.
//! - [`call::Call`]: a voice call — the engine and the network glued together once, with
//!   mute, deafen, push-to-talk, per-person volume, device changes, receiver reports, and
//!   batched meters and statistics as [`call::CallEvent`]s.
//! - [`group`]: the server's end-to-end encryption group (MLS): media keys, invites,
//!   removal, and where the member stands.
//! - [`roster::Roster`]: who is in the voice channel, kept from the client's roster events.
//! - [`tasks`]: tasks run from tags typed in chat.

pub mod bot;
pub mod call;
pub mod chat;
pub mod connection;
mod feedback;
pub mod group;
mod keychain;
pub mod presence;
pub mod profile;
pub mod rights;
pub mod roster;
pub mod tasks;
pub mod verification;

pub use call::{Call, CallControls, CallError, CallEvent, CallOptions, CallStats};
pub use connection::{ConnectError, Session};
pub use profile::{IdentityNotice, Profile, ProfileError, SavedServer};
pub use roster::Roster;
