//! Shared helpers for the relay's integration tests: a real relay on loopback, real clients.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use sotto_net::client::{Client, ClientEvent, ClientOptions, MediaFrame, ReconnectPolicy};
use sotto_net::crypto::{ChannelSecret, KeyProvider, StaticSecretKeys};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::{ChannelInfo, ChannelKind, Participant};
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};
use tokio::sync::mpsc;

pub mod process;
pub mod raw;

/// The first text channel `client` was told of.
pub fn text_channel(client: &TestClient) -> u32 {
    client
        .channels
        .iter()
        .find(|channel| channel.kind == ChannelKind::Text)
        .expect("a text channel")
        .id
}

/// Generous deadline for anything that should happen promptly on loopback.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A relay in a temporary data directory.
pub struct TestRelay {
    pub dir: tempfile::TempDir,
    pub data: DataDir,
    pub handle: RelayHandle,
    /// The owner link, pointing at the running relay.
    pub owner_link: InviteLink,
}

pub fn init_data_dir() -> (tempfile::TempDir, DataDir, InviteLink) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("relay"));
    let report = data
        .initialize(&InitOptions {
            server_name: "Test".into(),
            public_address: "127.0.0.1:7878".into(),
        })
        .unwrap();
    (dir, data, report.owner_link)
}

pub async fn start_relay() -> TestRelay {
    start_relay_with(RelayConfig::default()).await
}

pub async fn start_relay_with(config: RelayConfig) -> TestRelay {
    let (dir, data, mut owner_link) = init_data_dir();
    let config = RelayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let handle = RelayHandle::spawn(&data, config).await.unwrap();
    owner_link.port = handle.local_addr().port();
    TestRelay {
        dir,
        data,
        handle,
        owner_link,
    }
}

impl TestRelay {
    pub fn address(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A fresh member invite with the owner's secret.
    pub fn member_link(&self, max_uses: Option<u32>, expires_at: Option<u64>) -> InviteLink {
        let opened = self.data.open().unwrap();
        let server = opened.store.default_server().unwrap();
        let terms = sotto_relay::db::InviteTerms {
            expires_at,
            max_uses,
            role: sotto_relay::db::Role::Member,
        };
        let token = opened
            .store
            .create_invite(server.id, None, terms, sotto_relay::data_dir::unix_now())
            .unwrap();
        InviteLink {
            token,
            ..self.owner_link.clone()
        }
    }
}

/// A client and its event stream, with helpers to wait for events.
pub struct TestClient {
    pub client: Client,
    pub events: mpsc::Receiver<ClientEvent>,
    pub identity: Identity,
    pub channels: Vec<ChannelInfo>,
    pub slot: Option<u16>,
    /// Our voice channel's roster, kept from the roster events `wait_for` passes by.
    pub roster: std::collections::BTreeMap<u16, Participant>,
}

pub fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    }
}

/// The media secret of these tests. The relay never decrypts, and these tests check what it
/// forwards and stores, so members share one fixed secret instead of an MLS group: a test
/// double at the end-to-end boundary (the group and its keys are tested end to end in
/// `app/core/tests`).
pub const TEST_MEDIA_SECRET: [u8; 32] = [0x42; 32];

/// Media keys from [`TEST_MEDIA_SECRET`].
pub fn test_keys() -> Arc<dyn KeyProvider> {
    Arc::new(StaticSecretKeys::new(ChannelSecret::from_bytes(
        TEST_MEDIA_SECRET,
    )))
}

/// Client options for these tests.
pub fn options(link: &InviteLink, identity: Identity, name: &str) -> ClientOptions {
    ClientOptions::new(link.clone(), identity, name, test_keys()).unwrap()
}

pub async fn connect(link: &InviteLink, name: &str) -> TestClient {
    connect_as(link, name, Identity::generate()).await
}

pub async fn connect_as(link: &InviteLink, name: &str, identity: Identity) -> TestClient {
    let mut options = options(link, identity.clone(), name);
    options.reconnect = fast_reconnect();
    let (client, events) = Client::start(options).unwrap();
    let mut test_client = TestClient {
        client,
        events,
        identity,
        channels: Vec::new(),
        slot: None,
        roster: std::collections::BTreeMap::new(),
    };
    test_client.wait_connected().await;
    test_client
}

impl TestClient {
    /// Next event that `pick` maps to a value; other events are skipped. Panics after DEADLINE.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap_or_else(|| panic!("client ended while waiting for {what}"));
            if let ClientEvent::Stopped(error) = &event {
                panic!("client stopped while waiting for {what}: {error}");
            }
            self.apply_roster(&event);
            if let Some(value) = pick(&event) {
                return value;
            }
        }
    }

    fn apply_roster(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Roster { participants, .. } => {
                self.roster = participants.iter().map(|p| (p.slot, p.clone())).collect();
            }
            ClientEvent::RosterChanged { joined, left, .. } => {
                for slot in left {
                    self.roster.remove(slot);
                }
                for participant in joined {
                    self.roster.insert(participant.slot, participant.clone());
                }
            }
            _ => {}
        }
    }

    pub async fn wait_connected(&mut self) {
        self.channels = self
            .wait_for("Connected", |event| match event {
                ClientEvent::Connected { channels, .. } => Some(channels.clone()),
                _ => None,
            })
            .await;
    }

    pub fn voice_channel(&self) -> u32 {
        self.channels
            .iter()
            .find(|channel| channel.kind == ChannelKind::Voice)
            .expect("a voice channel")
            .id
    }

    pub async fn join_voice(&mut self) -> u16 {
        self.client.join_voice(self.voice_channel()).await.unwrap();
        let slot = self
            .wait_for("VoiceJoined", |event| match event {
                ClientEvent::VoiceJoined { slot, .. } => Some(*slot),
                _ => None,
            })
            .await;
        self.slot = Some(slot);
        slot
    }

    /// Waits for the roster to hold exactly `count` participants.
    pub async fn wait_roster(&mut self, count: usize) -> Vec<Participant> {
        if self.roster.len() == count {
            return self.roster.values().cloned().collect();
        }
        loop {
            self.wait_for(&format!("a roster of {count}"), |event| {
                matches!(
                    event,
                    ClientEvent::Roster { .. } | ClientEvent::RosterChanged { .. }
                )
                .then_some(())
            })
            .await;
            if self.roster.len() == count {
                return self.roster.values().cloned().collect();
            }
        }
    }

    pub async fn next_media(&mut self) -> MediaFrame {
        self.wait_for("media", |event| match event {
            ClientEvent::Media(frame) => Some(frame.clone()),
            _ => None,
        })
        .await
    }

    /// Media frames received within `window`, without waiting longer.
    pub async fn drain_media(&mut self, window: Duration) -> Vec<MediaFrame> {
        let deadline = tokio::time::Instant::now() + window;
        let mut frames = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let ClientEvent::Media(frame) = event {
                frames.push(frame);
            }
        }
        frames
    }
}

/// Ada (the owner) and Bob (a member), both in the voice channel and seeing each other.
pub async fn two_in_a_call(relay: &TestRelay) -> (TestClient, TestClient) {
    let mut ada = connect(&relay.owner_link, "ada").await;
    let mut bob = connect(&relay.member_link(None, None), "bob").await;
    ada.join_voice().await;
    bob.join_voice().await;
    ada.wait_roster(2).await;
    bob.wait_roster(2).await;
    (ada, bob)
}
