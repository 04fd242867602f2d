//! A relay on loopback for the client core's tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use sotto_net::invite::InviteLink;
use sotto_relay::{RelayConfig, RelayHandle};

/// A relay in a temporary data directory, and its owner invite.
pub struct Relay {
    pub dir: tempfile::TempDir,
    pub handle: RelayHandle,
    pub owner: InviteLink,
}

/// Starts a relay with `config` (its address replaced by a free loopback port).
pub async fn relay(config: RelayConfig) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let (handle, owner) =
        RelayHandle::spawn_on_loopback(&dir.path().join("relay"), "Tests", config)
            .await
            .unwrap();
    Relay { dir, handle, owner }
}
