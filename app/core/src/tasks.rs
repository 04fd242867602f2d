//! Tasks run from chat: `#task`, `#bug` and `#epic` create them, management tags change them,
//! and every client derives the same board from the channel's ordered messages (the relay
//! cannot read them).
//!
//! - [`tags`]: the tag parser (plain code, the seed's rules exactly).
//! - [`board`]: the board every client derives from the channel's messages in order.

pub mod board;
pub mod tags;
