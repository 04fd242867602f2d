//! The client connection library: connect with an invite link, authenticate, keep the roster,
//! join and leave voice channels, send and receive end-to-end encrypted media, and reconnect
//! with backoff whenever the relay goes away.
//!
//! Media keys come from a [`crate::crypto::KeyProvider`]: in the product the MLS group's
//! [`crate::group::MediaKeyRing`], kept up to date by the client core's group agent.
//!
//! ```no_run
//! # async fn demo(link: sotto_net::invite::InviteLink) -> Result<(), sotto_net::client::ClientError> {
//! use std::sync::Arc;
//!
//! use sotto_net::client::{Client, ClientEvent, ClientOptions};
//! use sotto_net::group::MediaKeyRing;
//! use sotto_net::identity::Identity;
//!
//! let keys = Arc::new(MediaKeyRing::new());
//! let options = ClientOptions::new(link, Identity::generate(), "ada", keys)?;
//! let (client, mut events) = Client::start(options)?;
//! while let Some(event) = events.recv().await {
//!     if let ClientEvent::Connected { channels, .. } = &event {
//!         client.join_voice(channels[1].id).await?;
//!     }
//!     if let ClientEvent::Media(frame) = event {
//!         // hand frame.payload (an Opus packet) to the media engine
//!     }
//! }
//! # Ok(()) }
//! ```

mod actor;
mod connect;
mod error;
mod files;
mod options;
mod receivers;
mod stats;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use error::ClientError;
pub use files::{BlobUpload, TransferError};
pub use options::{ClientOptions, ReconnectPolicy, check_display_name};
pub use stats::ConnectionStats;

use crate::invite::InviteLink;
use crate::proto::control::{ChannelInfo, ErrorCode, Participant, ServerInfo};
use crate::proto::datagram::{MediaSealer, OVERHEAD, StreamKind};
use stats::Counters;

/// Events the client reports, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Connected and authenticated (again, after a reconnect).
    Connected {
        /// Our member id.
        member_id: u32,
        /// The server.
        server: ServerInfo,
        /// Its channels.
        channels: Vec<ChannelInfo>,
    },
    /// We are in a voice channel and send with `slot`.
    VoiceJoined {
        /// The channel.
        channel_id: u32,
        /// Our sender slot.
        slot: u16,
    },
    /// Everyone in our voice channel (ourselves included), once after each join.
    Roster {
        /// The channel.
        channel_id: u32,
        /// Everyone in it.
        participants: Vec<Participant>,
    },
    /// Who joined and left our voice channel since the last roster event: remove the `left`
    /// slots, then put each `joined` participant in its slot, replacing whoever held it.
    RosterChanged {
        /// The channel.
        channel_id: u32,
        /// Participants who now hold these slots.
        joined: Vec<Participant>,
        /// Slots that are now empty.
        left: Vec<u16>,
    },
    /// A decrypted media frame from another participant.
    Media(MediaFrame),
    /// The relay refused a request but the connection goes on.
    RequestFailed {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// The connection dropped; the client retries after `retry_in`.
    Disconnected {
        /// What happened.
        reason: String,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// The client gave up for good (refused, wrong certificate, replaced); see the error.
    Stopped(Arc<ClientError>),
    /// A group frame from the relay (MLS delivery), when no group channel was given.
    Group(crate::proto::ControlFrame),
    /// A message was just stored in a text channel (ours included).
    Message(crate::proto::control::StoredMessage),
    /// The server's channels changed (one was created, changed or deleted); here they all are.
    ChannelsChanged(Vec<ChannelInfo>),
    /// Members' presence: everyone online after [`Client::set_presence`], then each change.
    Presence(Vec<crate::proto::control::MemberPresence>),
    /// A member is typing in a text channel (it lasts a few seconds unless repeated).
    Typing {
        /// The text channel.
        channel_id: u32,
        /// Who.
        member_id: u32,
    },
}

/// Where the relay stored a posted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// Its place in the channel.
    pub seq: u64,
    /// When it was stored, in Unix milliseconds.
    pub posted_at: u64,
}

/// One page of a channel's history and whether more follow.
pub type ChannelPage = (Vec<crate::proto::control::StoredMessage>, bool);

/// One page of the member list and whether more follow.
pub(crate) type MemberPage = (Vec<crate::proto::control::ListedMember>, bool);

/// What the group channel ([`ClientOptions::group_events`]) carries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The relay admitted us (again): sync the group.
    Connected {
        /// The server.
        server: ServerInfo,
        /// Its channels.
        channels: Vec<ChannelInfo>,
    },
    /// A group frame from the relay.
    Frame(crate::proto::ControlFrame),
    /// The server's channels changed; here they all are.
    ChannelsChanged(Vec<ChannelInfo>),
}

/// One decrypted media frame.
#[derive(Debug, Clone)]
pub struct MediaFrame {
    /// The sender's slot.
    pub sender_slot: u16,
    /// The sender's member id.
    pub member_id: u32,
    /// What the stream carries.
    pub stream: StreamKind,
    /// The sender's packet counter (for ordering and loss detection).
    pub counter: u32,
    /// The plaintext payload, e.g. one Opus packet.
    pub payload: Bytes,
}

/// What the media sender path needs, swapped in on every voice join.
struct VoiceSender {
    connection: quinn::Connection,
    sealer: Mutex<MediaSealer>,
    /// The seat (channel, slot, salt) it seals for.
    seat: (u32, u16, crate::proto::control::SessionSalt),
}

/// State shared between the [`Client`] handle and its background task.
struct Shared {
    voice: ArcSwapOption<VoiceSender>,
    connection: ArcSwapOption<quinn::Connection>,
    counters: Counters,
    /// Our seat in a voice channel: channel, slot and the join's salt.
    seat: Mutex<Option<(u32, u16, crate::proto::control::SessionSalt)>>,
    keys: Arc<dyn crate::crypto::KeyProvider>,
    own_key: crate::proto::control::PublicKey,
    /// The presence we set, sent again on every connection.
    presence: Mutex<Option<(crate::proto::control::Presence, String)>>,
    /// The server's latest role book (none until the relay sent one), and its changes.
    roles: tokio::sync::watch::Sender<Option<Arc<crate::roles::RoleBook>>>,
}

impl Shared {
    /// Keys our media for our seat with the key provider's current key, on `connection`.
    /// Without a seat, or without a key yet (group keys not there), nothing is sent.
    fn install_sender(&self, connection: &quinn::Connection) {
        let seat = *self
            .seat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((channel_id, slot, session_salt)) = seat else {
            self.voice.store(None);
            return;
        };
        let context = crate::crypto::SenderContext {
            channel_id,
            public_key: self.own_key,
            session_salt,
        };
        let key_id = self.keys.current_key_id();
        match self.keys.media_key(&context, key_id) {
            Ok(key) => {
                // The same seat with a new epoch's key: counters go on (the receivers' media
                // sequence must not restart); a new seat starts at 0 under its fresh salt.
                let same_seat = self.voice.load().as_ref().and_then(|voice| {
                    let sealer = voice
                        .sealer
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    (voice.seat == (channel_id, slot, session_salt))
                        .then(|| sealer.rekeyed(&key, key_id))
                });
                let sealer = same_seat.unwrap_or_else(|| MediaSealer::new(&key, key_id, slot));
                self.voice.store(Some(Arc::new(VoiceSender {
                    connection: connection.clone(),
                    sealer: Mutex::new(sealer),
                    seat: (channel_id, slot, session_salt),
                })));
            }
            Err(error) => {
                tracing::debug!("not sending media yet: {error}");
                self.voice.store(None);
            }
        }
    }
}

enum Command {
    /// `ManageRoles`, `Moderate` or `ReadAudit`; the reply is the relay's answer.
    Admin {
        frame: crate::proto::ControlFrame,
        reply: oneshot::Sender<Result<crate::proto::ControlFrame, ClientError>>,
    },
    JoinVoice(u32),
    LeaveVoice,
    CreateInvite {
        expires_in: Option<Duration>,
        max_uses: Option<u32>,
        grant: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<InviteLink, ClientError>>,
    },
    Group(crate::proto::ControlFrame),
    Ephemeral(crate::proto::ControlFrame),
    ManageChannel {
        change: crate::proto::control::ChannelChange,
        reply: oneshot::Sender<Result<u32, ClientError>>,
    },
    ListMembers {
        after: u32,
        reply: oneshot::Sender<Result<MemberPage, ClientError>>,
    },
    PostMessage {
        channel_id: u32,
        message_id: [u8; 16],
        envelope: Vec<u8>,
        files: Vec<crate::proto::file_stream::BlobId>,
        retracts: Option<u64>,
        reply: oneshot::Sender<Result<Posted, ClientError>>,
    },
    ReadChannel {
        channel_id: u32,
        after: u64,
        limit: u16,
        reply: oneshot::Sender<Result<ChannelPage, ClientError>>,
    },
}

/// Events buffered before the oldest media frames are dropped.
pub const EVENT_QUEUE: usize = 1024;

/// A handle to a running client. Dropping it (and every clone) stops the client.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// A handle that does not keep the client running (for tasks that serve the client).
#[derive(Clone)]
pub struct WeakClient {
    commands: mpsc::WeakSender<Command>,
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for WeakClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakClient").finish_non_exhaustive()
    }
}

impl WeakClient {
    /// The client, if it still runs.
    pub fn upgrade(&self) -> Option<Client> {
        Some(Client {
            commands: self.commands.upgrade()?,
            shared: self.shared.upgrade()?,
        })
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Starts connecting in the background on the current tokio runtime. Events arrive on the
    /// returned receiver; media frames are dropped (and counted) if it is not drained.
    pub fn start(
        options: ClientOptions,
    ) -> Result<(Self, mpsc::Receiver<ClientEvent>), ClientError> {
        let endpoint = connect::client_endpoint()?;
        let (commands, command_rx) = mpsc::channel(64);
        let (events, event_rx) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared {
            voice: ArcSwapOption::empty(),
            connection: ArcSwapOption::empty(),
            counters: Counters::default(),
            seat: Mutex::new(None),
            keys: options.keys.clone(),
            own_key: options.identity.public_key(),
            presence: Mutex::new(None),
            roles: tokio::sync::watch::channel(None).0,
        });
        tokio::spawn(actor::run(
            options,
            endpoint,
            shared.clone(),
            command_rx,
            events,
        ));
        Ok((Self { commands, shared }, event_rx))
    }

    /// Joins a voice channel (leaving any other). The client rejoins it after reconnecting.
    pub async fn join_voice(&self, channel_id: u32) -> Result<(), ClientError> {
        self.commands
            .send(Command::JoinVoice(channel_id))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Leaves the voice channel.
    pub async fn leave_voice(&self) -> Result<(), ClientError> {
        self.commands
            .send(Command::LeaveVoice)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Asks the relay for a new invite and returns the link (without a secret: the caller adds
    /// the invite secret whose grant it passes here).
    pub async fn create_invite(
        &self,
        expires_in: Option<Duration>,
        max_uses: Option<u32>,
        grant: Option<Vec<u8>>,
    ) -> Result<InviteLink, ClientError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::CreateInvite {
                expires_in,
                max_uses,
                grant,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        response.await.map_err(|_| ClientError::Stopped)?
    }

    /// The server's members, as the relay knows them (every page of its list).
    pub async fn list_members(
        &self,
    ) -> Result<Vec<crate::proto::control::ListedMember>, ClientError> {
        // At most this many pages (a million members): a relay cannot keep us asking forever.
        const MAX_PAGES: usize = 1000;
        let mut members: Vec<crate::proto::control::ListedMember> = Vec::new();
        for _ in 0..MAX_PAGES {
            let after = members.last().map_or(0, |member| member.member_id);
            let (reply, response) = oneshot::channel();
            self.commands
                .send(Command::ListMembers { after, reply })
                .await
                .map_err(|_| ClientError::Stopped)?;
            let (page, more) = response.await.map_err(|_| ClientError::Stopped)??;
            let progressed = page.last().is_some_and(|last| last.member_id > after);
            members.extend(page);
            // A relay that says "more" but gives nothing new is not followed forever.
            if !more || !progressed {
                break;
            }
        }
        Ok(members)
    }

    /// Posts a sealed message to a text channel; done once the relay has stored it durably.
    /// Posting the same `message_id` again (say, after a lost connection) is harmless: the
    /// relay answers with where it stored it the first time.
    pub async fn post_message(
        &self,
        channel_id: u32,
        message_id: [u8; 16],
        envelope: Vec<u8>,
    ) -> Result<Posted, ClientError> {
        self.post_message_with(channel_id, message_id, envelope, Vec::new(), None)
            .await
    }

    /// [`Client::post_message`] for a message that carries stored files (uploaded with
    /// [`Client::upload_blob`]) or takes back an earlier message of the channel (`retracts`:
    /// its seq), so the relay keeps the files while a message carries them and lets go of
    /// them after.
    pub async fn post_message_with(
        &self,
        channel_id: u32,
        message_id: [u8; 16],
        envelope: Vec<u8>,
        files: Vec<crate::proto::file_stream::BlobId>,
        retracts: Option<u64>,
    ) -> Result<Posted, ClientError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::PostMessage {
                channel_id,
                message_id,
                envelope,
                files,
                retracts,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        response.await.map_err(|_| ClientError::Stopped)?
    }

    /// Creates, changes or deletes a channel (the server's owner); the channel's id once done.
    /// Every member online then gets [`ClientEvent::ChannelsChanged`].
    pub async fn manage_channel(
        &self,
        change: crate::proto::control::ChannelChange,
    ) -> Result<u32, ClientError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::ManageChannel { change, reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        response.await.map_err(|_| ClientError::Stopped)?
    }

    /// The server's roles, overrides, slow modes and timeouts as the relay last sent them
    /// (it sends them on every connection and after every change); none before the first.
    pub fn roles(&self) -> Option<Arc<crate::roles::RoleBook>> {
        self.shared.roles.borrow().clone()
    }

    /// Follows [`Client::roles`]: changes whenever a new book arrives.
    pub fn roles_changes(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<Arc<crate::roles::RoleBook>>> {
        self.shared.roles.subscribe()
    }

    /// Creates, changes, deletes, gives or takes a role, or sets a channel's override or slow
    /// mode; done once the relay made it (the new book follows in [`Client::roles`]).
    pub async fn manage_roles(&self, change: crate::roles::RoleChange) -> Result<(), ClientError> {
        match self
            .admin(crate::proto::ControlFrame::ManageRoles(change))
            .await?
        {
            crate::proto::ControlFrame::RolesManaged => Ok(()),
            other => Err(ClientError::UnexpectedAnswer(other.name())),
        }
    }

    /// Kicks, bans, unbans, times out or mutes a member; the identity key it was about.
    pub async fn moderate(
        &self,
        moderation: crate::roles::Moderation,
    ) -> Result<crate::proto::control::PublicKey, ClientError> {
        match self
            .admin(crate::proto::ControlFrame::Moderate(moderation))
            .await?
        {
            crate::proto::ControlFrame::Moderated { public_key } => Ok(public_key),
            other => Err(ClientError::UnexpectedAnswer(other.name())),
        }
    }

    /// A page of the audit log, newest first: entries older than `before` (0: the newest),
    /// and whether older ones remain.
    pub async fn read_audit(
        &self,
        before: u64,
        limit: u16,
    ) -> Result<(Vec<crate::roles::AuditEntry>, bool), ClientError> {
        match self
            .admin(crate::proto::ControlFrame::ReadAudit { before, limit })
            .await?
        {
            crate::proto::ControlFrame::AuditLog { entries, more } => Ok((entries, more)),
            other => Err(ClientError::UnexpectedAnswer(other.name())),
        }
    }

    async fn admin(
        &self,
        frame: crate::proto::ControlFrame,
    ) -> Result<crate::proto::ControlFrame, ClientError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Admin { frame, reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        response.await.map_err(|_| ClientError::Stopped)?
    }

    /// A page of a channel's history: messages after seq `after`, at most `limit`.
    pub async fn read_channel(
        &self,
        channel_id: u32,
        after: u64,
        limit: u16,
    ) -> Result<ChannelPage, ClientError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::ReadChannel {
                channel_id,
                after,
                limit,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        response.await.map_err(|_| ClientError::Stopped)?
    }

    /// Sends a group frame (MLS delivery) to the relay; dropped while disconnected.
    pub async fn send_group(&self, frame: crate::proto::ControlFrame) -> Result<(), ClientError> {
        self.commands
            .send(Command::Group(frame))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Says how present we are (and a custom status, empty for none), now and on every
    /// reconnection, and asks for everyone's: [`ClientEvent::Presence`] follows. Members online
    /// see it at once; nothing is stored.
    pub async fn set_presence(
        &self,
        presence: crate::proto::control::Presence,
        status: &str,
    ) -> Result<(), ClientError> {
        let frame = crate::proto::ControlFrame::SetPresence {
            presence,
            status: status.to_owned(),
        };
        frame
            .to_bytes()
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        *self
            .shared
            .presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((presence, status.to_owned()));
        self.commands
            .send(Command::Ephemeral(frame))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Tells members online that we are typing in `channel_id` (send it every few seconds
    /// while typing; dropped while disconnected).
    pub async fn typing(&self, channel_id: u32) -> Result<(), ClientError> {
        self.commands
            .send(Command::Ephemeral(crate::proto::ControlFrame::Typing {
                channel_id,
            }))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Re-keys our outgoing media with the key provider's current key (after a new epoch).
    /// Takes effect at once: the next datagram sent uses the new key.
    pub fn rekey_media(&self) {
        if let Some(connection) = self.shared.connection.load_full() {
            self.shared.install_sender(&connection);
        }
    }

    /// A handle that does not keep the client running.
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            commands: self.commands.downgrade(),
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Encrypts `payload` and sends it to everyone else in our voice channel. Never blocks:
    /// if the connection's send buffer is full, QUIC drops the oldest queued datagram.
    pub fn send_media(&self, stream: StreamKind, payload: &[u8]) -> Result<(), ClientError> {
        let guard = self.shared.voice.load();
        let voice = guard.as_ref().ok_or(ClientError::NotInVoice)?;
        // A fresh buffer per packet: it becomes the datagram's `Bytes` without a copy.
        let mut sealed = Vec::with_capacity(payload.len() + OVERHEAD);
        voice
            .sealer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .seal(stream, payload, &mut sealed)?;
        voice.connection.send_datagram(Bytes::from(sealed))?;
        self.shared.counters.sent();
        Ok(())
    }

    /// Connection statistics now.
    pub fn stats(&self) -> ConnectionStats {
        let connection = self.shared.connection.load();
        self.shared.counters.snapshot(connection.as_deref())
    }
}
