//! A relay on loopback for the client core's tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use sotto_net::invite::InviteLink;
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};

/// A relay in a temporary data directory, and its owner invite.
pub struct Relay {
    pub dir: tempfile::TempDir,
    pub handle: RelayHandle,
    pub owner: InviteLink,
}

/// Starts a relay with `config` (its address replaced by a free loopback port).
pub async fn relay(config: RelayConfig) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("relay"));
    let report = data
        .initialize(&InitOptions {
            server_name: "Tests".into(),
            public_address: "127.0.0.1:7878".into(),
        })
        .unwrap();
    let handle = RelayHandle::spawn(
        &data,
        RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        },
    )
    .await
    .unwrap();
    let owner = InviteLink {
        port: handle.local_addr().port(),
        ..report.owner_link
    };
    Relay { dir, handle, owner }
}
