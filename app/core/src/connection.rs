//! Connecting to a relay and waiting until it admits us.

use std::sync::Arc;
use std::time::Duration;

use sotto_net::client::{Client, ClientError, ClientEvent, ClientOptions};
use sotto_net::proto::control::{ChannelInfo, ChannelKind, ServerInfo};
use tokio::sync::mpsc;

use crate::group::{GroupHandle, GroupSetup};

/// Group frames buffered between the client and the group agent.
const GROUP_QUEUE: usize = 256;

/// How long [`Session::connect`] waits for the relay by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The client could not start.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The client gave up for good (refused, wrong relay, bad settings).
    #[error(transparent)]
    Stopped(Arc<ClientError>),
    /// The relay did not admit us in time.
    #[error("could not reach the relay at {address} within {timeout:?}; is it running?")]
    Timeout {
        /// The relay's `host:port`.
        address: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// A client admitted by its relay, with the server it belongs to.
#[derive(Debug)]
pub struct Session {
    /// The client handle.
    pub client: Client,
    /// Its events (a [`crate::call::Call`] takes them over while it runs).
    pub events: mpsc::Receiver<ClientEvent>,
    /// Our member id.
    pub member_id: u32,
    /// The server.
    pub server: ServerInfo,
    /// Its channels.
    pub channels: Vec<ChannelInfo>,
    /// The server's encryption group.
    pub group: GroupHandle,
    /// The display name we connected with.
    pub display_name: String,
}

impl Session {
    /// Starts a client and waits until the relay admits it; `on_retry` hears about each
    /// failed attempt (the client keeps trying until `timeout`).
    pub async fn connect(
        mut options: ClientOptions,
        group: GroupSetup,
        timeout: Duration,
        mut on_retry: impl FnMut(&str),
    ) -> Result<Self, ConnectError> {
        let address = options.link.address();
        let display_name = options.display_name.clone();
        let (group_tx, group_rx) = mpsc::channel(GROUP_QUEUE);
        options.keys = group.keys();
        options.group_events = Some(group_tx);
        let (client, mut events) = Client::start(options)?;
        let group = crate::group::agent::spawn(
            client.clone(),
            group_rx,
            group.logic,
            group.store,
            group.keys,
        );
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ClientEvent::Connected {
                    member_id,
                    server,
                    channels,
                })) => {
                    return Ok(Self {
                        client,
                        events,
                        member_id,
                        server,
                        channels,
                        group,
                        display_name,
                    });
                }
                Ok(Some(ClientEvent::Stopped(error))) => return Err(ConnectError::Stopped(error)),
                Ok(Some(ClientEvent::Disconnected { reason, .. })) => on_retry(&reason),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err(ConnectError::Timeout { address, timeout }),
            }
        }
    }

    /// The server's voice channels, in order.
    pub fn voice_channels(&self) -> impl Iterator<Item = &ChannelInfo> {
        self.channels
            .iter()
            .filter(|channel| channel.kind == ChannelKind::Voice)
    }
}
