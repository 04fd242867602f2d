//! The member's side of the server's end-to-end encryption group (MLS).
//!
//! - [`store::GroupStore`]: the group state on disk, every secret sealed.
//! - [`logic::GroupLogic`]: what a member does, as plain code (create the group, ask to be let
//!   in, admit joiners, merge commits only once the relay accepted them).
//! - [`agent::GroupHandle`]: the running logic, with the actions a member can take
//!   (invite, remove, rotate keys, leave) and its [`logic::GroupState`].
//!
//! Media keys come from the group: the [`sotto_net::group::MediaKeyRing`] a session's client
//! seals and opens media with is installed anew at every epoch.

pub mod agent;
pub mod logic;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use sotto_net::group::{GroupProvider, InviteSecret, MediaKeyRing};
use sotto_net::identity::Identity;

pub use agent::{ConversationView, GroupActionError, GroupHandle};
pub use logic::{GroupLogic, GroupState};
pub use store::{GroupStore, GroupStoreError};

/// Everything a session needs for its group, opened before connecting.
#[derive(Debug)]
pub struct GroupSetup {
    pub(crate) store: GroupStore,
    pub(crate) logic: GroupLogic,
    pub(crate) keys: Arc<MediaKeyRing>,
}

impl GroupSetup {
    /// Opens the group store at `path` for `identity`. `invite` is the secret of the link we
    /// are joining with, if any (kept sealed until we are let in).
    pub fn open(
        path: &Path,
        identity: &Identity,
        invite: Option<InviteSecret>,
    ) -> Result<Self, GroupStoreError> {
        let store = GroupStore::open(path, identity)?;
        let provider = GroupProvider::restore(store.entries()?);
        Ok(Self {
            store,
            logic: GroupLogic::new(identity.clone(), provider, invite),
            keys: Arc::new(MediaKeyRing::new()),
        })
    }

    /// The media keys the client must use ([`sotto_net::client::ClientOptions::keys`]).
    pub fn keys(&self) -> Arc<MediaKeyRing> {
        self.keys.clone()
    }
}
