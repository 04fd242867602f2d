//! Connecting to a saved server.

use anyhow::Result;
use sotto_client::Session;
use sotto_client::connection::CONNECT_TIMEOUT;
use sotto_net::client::ClientOptions;

use sotto_client::{Profile, SavedServer};

/// Connects to `saved` as this profile's identity and waits until admitted.
pub(crate) async fn connect(profile: &Profile, saved: &SavedServer) -> Result<Session> {
    let options = ClientOptions::from_link(
        saved.link.clone(),
        profile.identity(|notice| eprintln!("{notice}"))?,
        saved.display_name.clone(),
    )?;
    let session = Session::connect(options, CONNECT_TIMEOUT, |reason| {
        eprintln!("note: cannot reach the relay yet ({reason}); retrying");
    })
    .await?;
    Ok(session)
}
