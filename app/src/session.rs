//! Connecting to a saved server.

use std::time::Duration;

use anyhow::{Result, bail};
use sotto_net::client::{Client, ClientEvent, ClientOptions};
use sotto_net::proto::control::{ChannelInfo, ServerInfo};
use tokio::sync::mpsc;

use crate::profile::{Profile, SavedServer};

/// A connected client.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) events: mpsc::Receiver<ClientEvent>,
    pub(crate) server: ServerInfo,
    pub(crate) channels: Vec<ChannelInfo>,
}

/// Connects to `saved` as this profile's identity and waits until admitted.
pub(crate) async fn connect(profile: &Profile, saved: &SavedServer) -> Result<Session> {
    let options = ClientOptions::from_link(
        saved.link.clone(),
        profile.identity()?,
        saved.display_name.clone(),
    )?;
    let (client, mut events) = Client::start(options)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::Connected {
                server, channels, ..
            })) => {
                return Ok(Session {
                    client,
                    events,
                    server,
                    channels,
                });
            }
            Ok(Some(ClientEvent::Stopped(error))) => bail!("{error}"),
            Ok(Some(ClientEvent::Disconnected { reason, .. })) => {
                eprintln!("note: cannot reach the relay yet ({reason}); retrying");
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                bail!(
                    "could not reach the relay at {} within 15 s; is it running?",
                    saved.link.address()
                )
            }
        }
    }
}
