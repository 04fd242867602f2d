//! A relay on loopback for the client core's tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sotto_client::Session;
use sotto_client::group::{GroupSetup, GroupState};
use sotto_net::client::ClientOptions;
use sotto_net::group::MediaKeyRing;
use sotto_net::identity::Identity;
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

pub const DEADLINE: Duration = Duration::from_secs(15);

/// Someone with an identity and a group store that outlive their sessions.
pub struct Person {
    pub name: &'static str,
    pub identity: Identity,
    pub store: PathBuf,
    _dir: tempfile::TempDir,
}

impl Person {
    pub fn new(name: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            name,
            identity: Identity::generate(),
            store: dir.path().join("group.db"),
            _dir: dir,
        }
    }

    /// Connects with `link`; returns the session and its media key ring.
    pub async fn connect(&self, link: &InviteLink) -> (Session, Arc<MediaKeyRing>) {
        let group = GroupSetup::open(&self.store, &self.identity, link.secret.clone()).unwrap();
        let keys = group.keys();
        let options =
            ClientOptions::new(link.clone(), self.identity.clone(), self.name, keys.clone())
                .unwrap();
        let session = Session::connect(options, group, DEADLINE, |_| {})
            .await
            .unwrap();
        (session, keys)
    }
}

pub async fn until(
    session: &mut Session,
    what: &str,
    done: impl FnMut(&GroupState) -> bool,
) -> GroupState {
    match tokio::time::timeout(DEADLINE, session.group.wait_for(done)).await {
        Ok(Ok(state)) => state,
        _ => panic!(
            "timed out waiting for {what}; state {:?}",
            session.group.state()
        ),
    }
}

pub fn is_member(state: &GroupState) -> bool {
    matches!(state, GroupState::Member { .. })
}

/// Connects `person` and waits until it is in the server's group.
pub async fn member(person: &Person, link: &InviteLink) -> Session {
    let (mut session, _) = person.connect(link).await;
    until(&mut session, "in the server's group", is_member).await;
    session
}
