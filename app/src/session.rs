//! Connecting to a saved server.

use anyhow::Result;
use sotto_client::Session;
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
    let (session, _identity) = sotto_client::bot::connect_saved(profile, saved, invite, |notice| {
        eprintln!("{notice}");
    })
    .await?;
    Ok(session)
}
