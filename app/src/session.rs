//! Connecting to a saved server.

use anyhow::Result;
use sotto_client::Session;
use sotto_client::connection::CONNECT_TIMEOUT;
use sotto_client::group::GroupSetup;
use sotto_net::client::ClientOptions;
use sotto_net::group::InviteSecret;

use sotto_client::{Profile, SavedServer};

/// Connects to `saved` as this profile's identity and waits until admitted. `invite` is the
/// secret of the link being joined with, if any; it is kept sealed until we are let into the
/// server's encryption group.
pub(crate) async fn connect(
    profile: &Profile,
    saved: &SavedServer,
    invite: Option<InviteSecret>,
) -> Result<Session> {
    let identity = profile.identity(|notice| eprintln!("{notice}"))?;
    let group = GroupSetup::open(&profile.group_store_path(), &identity, invite)?;
    let options = ClientOptions::new(
        saved.link.clone(),
        identity,
        saved.display_name.clone(),
        group.keys(),
    )?;
    let session = Session::connect(options, group, CONNECT_TIMEOUT, |reason| {
        eprintln!("note: cannot reach the relay yet ({reason}); retrying");
    })
    .await?;
    Ok(session)
}
