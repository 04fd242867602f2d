//! The relay: accepts connections, caps their number, and shuts down gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sotto_net::proto::control::{ChannelInfo, ServerInfo, StoredMessage};
use sotto_net::transport::{RelayCertificate, close_code, endpoint_config, server_config};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::blob_files::BlobFiles;
use crate::config::{ConfigError, RelayConfig};
use crate::connection;
use crate::data_dir::{DataDir, DataDirError};
use crate::db::{Store, StoreError};
use crate::groups::Groups;
use crate::metrics::{self, Metrics};
use crate::rooms::VoiceRooms;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The settings are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS or QUIC settings were rejected.
    #[error(transparent)]
    Transport(#[from] sotto_net::transport::ConfigError),
    /// A socket could not be bound.
    #[error(
        "cannot listen on {address}: {source}; is another relay running there? pick another address with --listen"
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Stored messages buffered for connections that have not passed them on yet; one that falls
/// further behind skips some, and its member reads the gap from the channel's history.
const MESSAGE_FEED: usize = 4096;

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) server: ServerInfo,
    /// The server's channels as they are now (swapped whole on every change).
    pub(crate) channels: arc_swap::ArcSwap<Vec<ChannelInfo>>,
    /// Every change to the channels, for the connections to pass on.
    pub(crate) channel_changes: tokio::sync::broadcast::Sender<Arc<Vec<ChannelInfo>>>,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) rooms: VoiceRooms,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: RelayConfig,
    pub(crate) groups: Groups,
    /// Every message stored, for the connections to pass on to their members.
    pub(crate) messages: tokio::sync::broadcast::Sender<Arc<StoredMessage>>,
    /// Sealed files' bytes.
    pub(crate) blobs: BlobFiles,
    /// Files being uploaded right now (the sweep leaves them alone).
    pub(crate) uploading: Mutex<std::collections::HashSet<sotto_net::proto::file_stream::BlobId>>,
    /// Who is here and who types: in memory only.
    pub(crate) presence: crate::presence::PresenceBook,
    /// The server's conversations and who is in each.
    pub(crate) conversations: crate::conversations::Conversations,
    /// Each conversation opened or changed (someone out of it), for the connections to tell
    /// its members.
    pub(crate) conversation_changes:
        tokio::sync::broadcast::Sender<Arc<crate::conversations::Conversation>>,
    /// Roles, overrides, slow modes, timeouts and voice mutes: what the relay checks each
    /// request against (the database holds the truth; this is its latest reading).
    pub(crate) roles: arc_swap::ArcSwap<sotto_net::roles::RoleBook>,
    /// Each new role book, for the connections to pass on.
    pub(crate) role_changes: tokio::sync::broadcast::Sender<Arc<sotto_net::roles::RoleBook>>,
    /// Held while the role book is read and published.
    roles_reload: Mutex<()>,
    online: Mutex<HashMap<u32, quinn::Connection>>,
}

impl Shared {
    /// Records `member_id` as online on `connection`; returns the connection it replaces.
    pub(crate) fn register_online(
        &self,
        member_id: u32,
        connection: quinn::Connection,
    ) -> Option<quinn::Connection> {
        self.online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(member_id, connection)
    }

    /// How many members are online.
    pub(crate) fn online_count(&self) -> usize {
        self.online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// The members connected now.
    pub(crate) fn online_members(&self) -> Vec<u32> {
        let mut members: Vec<u32> = self
            .online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .copied()
            .collect();
        members.sort_unstable();
        members
    }

    /// Whether `member_id` is connected now.
    pub(crate) fn is_online(&self, member_id: u32) -> bool {
        self.online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&member_id)
    }

    /// Closes `member_id`'s connection, if online, saying why.
    pub(crate) fn disconnect(&self, member_id: u32, code: u32, reason: &str) {
        if let Some(connection) = self
            .online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&member_id)
        {
            connection.close(code.into(), reason.as_bytes());
        }
    }

    /// Reads the role book again after a change (blocking: call it off the async threads)
    /// and tells every connection. Reads and publishes happen one at a time, so a book read
    /// before a change is never published after one read later.
    pub(crate) fn reload_roles(&self) {
        let _one_at_a_time = self
            .roles_reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self
            .store
            .role_book(self.server.id, crate::data_dir::unix_now())
        {
            Ok(book) => {
                let book = Arc::new(book);
                self.roles.store(book.clone());
                let _ = self.role_changes.send(book);
            }
            Err(error) => tracing::warn!("could not read the roles again: {error}"),
        }
    }

    /// Whether `member_id` may read `channel_id`'s messages (and files): a channel they may
    /// view, or a conversation they are in.
    pub(crate) fn may_read(&self, member_id: u32, channel_id: u32) -> bool {
        match self.conversations.access(channel_id, member_id) {
            crate::conversations::Access::Member => true,
            crate::conversations::Access::Outsider => false,
            crate::conversations::Access::NotAConversation => self.roles.load().may_in(
                member_id,
                channel_id,
                sotto_net::roles::Permissions::VIEW_CHANNEL,
            ),
        }
    }

    /// Members are out of the server: close their connections, and tell their
    /// conversations' members (the openers then remove them from those groups).
    pub(crate) fn removed_from_server(&self, members: &[u32], reason: &str) {
        for member_id in members {
            tracing::info!(member = member_id, "removed from the server");
            self.disconnect(
                *member_id,
                sotto_net::transport::close_code::REFUSED,
                reason,
            );
        }
        for conversation in self.conversations.remove_everywhere(members) {
            let _ = self.conversation_changes.send(conversation);
        }
    }

    /// Forgets `member_id`'s connection if it is still `connection`.
    pub(crate) fn unregister_online(&self, member_id: u32, connection: &quinn::Connection) {
        let mut online = self
            .online
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if online
            .get(&member_id)
            .is_some_and(|current| current.stable_id() == connection.stable_id())
        {
            online.remove(&member_id);
        }
    }
}

/// Kernel receive buffer the relay asks for (Linux doubles it for bookkeeping). Big enough that a
/// burst from hundreds of members does not overflow it (the default is about 200 KiB), small
/// enough that an overloaded relay drops excess packets instead of queueing them: at a core's
/// full load (about 35,000 packets in per second) it holds some 40 ms, where 8 MiB held a quarter
/// of a second of stale voice for everyone.
const RECEIVE_BUFFER: usize = 512 << 10;

/// Kernel send buffer the relay asks for; the kernel may grant less (`net.core.wmem_max`).
const SEND_BUFFER: usize = 8 << 20;

/// Binds the relay's UDP socket with sized kernel buffers (best effort).
fn bind_udp(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        None,
    )?;
    if address.is_ipv6() {
        // Accept IPv4 too when listening on [::].
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    let _ = socket.set_send_buffer_size(SEND_BUFFER);
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Opens the file store and deletes bytes left without a record by a crash.
fn open_blob_files(root: &std::path::Path, store: &Store) -> Result<BlobFiles, RelayError> {
    let io = |source| {
        RelayError::DataDir(DataDirError::Io {
            action: "cannot open the file store in",
            path: root.join("blobs"),
            source,
        })
    };
    let blobs = BlobFiles::open(root).map_err(io)?;
    let swept = blobs.sweep_orphans(&store.blob_ids()?).map_err(io)?;
    if swept > 0 {
        info!(swept, "deleted stored files that had no record");
    }
    Ok(blobs)
}

/// Deletes, now and then, the files no message has carried for the grace period.
async fn sweep_unused_files(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(shared.config.file_sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let grace_ms = u64::try_from(shared.config.file_grace.as_millis()).unwrap_or(u64::MAX);
        let cutoff = crate::data_dir::unix_now_ms().saturating_sub(grace_ms);
        let swept = shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let in_transfer = swept
                .uploading
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            let ids = swept
                .store
                .collect_unreferenced_blobs(cutoff, &in_transfer)?;
            for id in &ids {
                swept.blobs.remove(id);
            }
            Ok::<_, StoreError>(ids.len())
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => {
                info!(deleted, "deleted stored files no message carries");
                shared
                    .metrics
                    .files_deleted
                    .fetch_add(deleted as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Err(error)) => warn!("cannot sweep unused files: {error}"),
            Err(error) => warn!("the file sweep failed: {error}"),
        }
    }
}

/// A bound relay, ready to [`Relay::run`].
#[derive(Debug)]
pub struct Relay {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    metrics_listener: Option<TcpListener>,
    certificate: RelayCertificate,
}

impl Relay {
    /// Opens `data` and binds the sockets `config` names.
    pub async fn bind(data: &DataDir, config: RelayConfig) -> Result<Self, RelayError> {
        config.validate()?;
        let opened = data.open()?;
        let (store, certificate) = (opened.store, opened.certificate);
        let server = store.default_server()?;
        let channels = store.channels(server.id)?;
        let roles = store.role_book(server.id, crate::data_dir::unix_now())?;
        let conversations =
            crate::conversations::Conversations::load(store.conversations(server.id)?);
        let blobs = open_blob_files(data.root(), &store)?;
        let socket = bind_udp(config.listen).map_err(|source| RelayError::Bind {
            address: config.listen,
            source,
        })?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&opened.reset_secret),
            Some(server_config(&certificate, &config.tuning)?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| RelayError::Bind {
            address: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics {
            Some(address) => Some(
                metrics::bind(address)
                    .await
                    .map_err(|source| RelayError::Bind { address, source })?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            store: Arc::new(store),
            server,
            channels: arc_swap::ArcSwap::from_pointee(channels),
            channel_changes: tokio::sync::broadcast::channel(16).0,
            fingerprint: certificate.fingerprint(),
            rooms: VoiceRooms::new(config.max_voice_participants),
            metrics: Arc::new(Metrics::default()),
            config,
            groups: Groups::new(),
            messages: tokio::sync::broadcast::channel(MESSAGE_FEED).0,
            blobs,
            uploading: Mutex::new(std::collections::HashSet::new()),
            presence: crate::presence::PresenceBook::new(),
            conversations,
            conversation_changes: tokio::sync::broadcast::channel(64).0,
            roles: arc_swap::ArcSwap::from_pointee(roles),
            role_changes: tokio::sync::broadcast::channel(16).0,
            roles_reload: Mutex::new(()),
            online: Mutex::new(HashMap::new()),
        });
        Ok(Self {
            endpoint,
            shared,
            metrics_listener,
            certificate,
        })
    }

    /// The UDP address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// The TCP address of the metrics endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// SHA-256 of the relay's certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.certificate.fingerprint()
    }

    /// The relay's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Serves until `shutdown` resolves, then closes every connection and waits briefly for
    /// the close to reach clients.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            endpoint,
            shared,
            metrics_listener,
            ..
        } = self;
        let metrics_task = metrics_listener
            .map(|listener| tokio::spawn(metrics::serve(listener, shared.metrics.clone())));
        let sweeper = tokio::spawn(sweep_unused_files(shared.clone()));
        let permits = Arc::new(Semaphore::new(shared.config.max_connections));
        info!(address = %endpoint.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "relay serving");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        warn!(remote = %incoming.remote_address(), "refusing connection: --max-connections reached");
                        incoming.refuse();
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        connection::handle(shared, incoming).await;
                        drop(permit);
                    });
                }
                () = &mut shutdown => break,
            }
        }
        info!("relay shutting down");
        endpoint.close(close_code::SHUTTING_DOWN.into(), b"relay shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        if let Some(task) = metrics_task {
            task.abort();
        }
        sweeper.abort();
        // Its hold on the database ends before `run` does.
        let _ = sweeper.await;
    }
}

/// A relay running on its own task, for hosting in-process and for tests.
#[derive(Debug)]
pub struct RelayHandle {
    address: SocketAddr,
    fingerprint: [u8; 32],
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Binds and starts a relay on the current tokio runtime.
    pub async fn spawn(data: &DataDir, config: RelayConfig) -> Result<Self, RelayError> {
        let relay = Relay::bind(data, config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        Ok(Self {
            address: relay.local_addr(),
            fingerprint: relay.fingerprint(),
            metrics: relay.metrics(),
            metrics_addr: relay.metrics_addr(),
            stop: Some(stop),
            task: tokio::spawn(relay.run(async {
                let _ = stopped.await;
            })),
        })
    }

    /// Initializes a fresh data directory at `root` for a server called `server_name` and
    /// starts a relay on a free loopback port (for demos, tests and load tools); returns it
    /// and the owner's invite link, which points at that port.
    pub async fn spawn_on_loopback(
        root: &std::path::Path,
        server_name: &str,
        config: RelayConfig,
    ) -> Result<(Self, sotto_net::invite::InviteLink), RelayError> {
        let data = DataDir::new(root.to_owned());
        let report = data.initialize(&crate::InitOptions {
            server_name: server_name.into(),
            public_address: "127.0.0.1:7878".into(),
        })?;
        let relay = Self::spawn(
            &data,
            RelayConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..config
            },
        )
        .await?;
        let owner_link = sotto_net::invite::InviteLink {
            port: relay.local_addr().port(),
            ..report.owner_link
        };
        Ok((relay, owner_link))
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The metrics endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// SHA-256 of its certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Its counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops it gracefully and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
