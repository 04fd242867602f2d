//! One member's connection: the handshake, the control loop, and datagram forwarding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sotto_net::proto::MediaHeader;
use sotto_net::proto::control::{
    ChannelChange, ChannelInfo, ChannelKind, ControlFrame, ErrorCode, ListedMember, MAX_CHANNELS,
    MAX_FRAME_LEN, MAX_MEMBERS_PER_PAGE, MAX_MESSAGES_PER_PAGE, StoredMessage,
};
use sotto_net::proto::file_stream::BlobId;
use sotto_net::proto::handshake::{HandshakeError, RelayHandshake};
use sotto_net::transport::{ControlStream, StreamError, close_code};
use tracing::{debug, info, warn};

use sotto_net::group::{InviteGrant, check_key_package, server_group_id};

use crate::conversations::Access;
use crate::data_dir::{unix_now, unix_now_ms};
use crate::db::{
    Acting, AdmissionError, ChannelRefusal, InviteLimits, InviteTerms, KeyPackageCount, Member,
    NewKeyPackage, PostExtras, PostOutcome, Role, StoreError,
};
use crate::groups::GroupCursor;
use crate::metrics::DropReason;
use crate::rate_limit::{RequestLimiter, TokenBucket, Verdict};
use crate::rooms::{JoinError, Joiner, Membership};
use crate::roster_outbox::RosterOutbox;
use crate::server::Shared;
use sotto_net::roles::Permissions;

mod roles;

/// Roster changes are sent to a member at most this often. The first change after a quiet spell
/// goes out at once; only a churning room waits for the batch.
const ROSTER_BATCH: Duration = Duration::from_millis(250);

/// How long a refused client has to read the refusal before the relay closes the connection.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("control stream: {0}")]
    Stream(#[from] StreamError),
    #[error("no control stream opened: {0}")]
    NoControlStream(#[from] quinn::ConnectionError),
    #[error("no control stream opened in time")]
    ControlStreamTimeout,
    #[error("refused: {0}")]
    Refused(AdmissionError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("protocol violation: unexpected {0} frame")]
    Unexpected(&'static str),
    #[error("protocol violation: {0}")]
    Malformed(sotto_net::proto::control::DecodeError),
    #[error("too many requests: {0} refused in a row")]
    Flood(u32),
    #[error("protocol violation: malformed media datagram")]
    MalformedDatagram,
}

impl SessionError {
    /// What to tell the member before closing, for errors after the handshake.
    fn error_frame(&self) -> Option<ControlFrame> {
        let code = match self {
            Self::Unexpected(_) | Self::Malformed(_) => ErrorCode::ProtocolViolation,
            Self::Flood(_) => ErrorCode::RateLimited,
            _ => return None,
        };
        Some(error_frame(
            code,
            format!("{self}; the connection is closed"),
        ))
    }

    fn close_code(&self) -> u32 {
        match self {
            Self::Handshake(
                HandshakeError::AuthenticationFailed | HandshakeError::Refused { .. },
            )
            | Self::Refused(_) => close_code::REFUSED,
            Self::Store(_) => close_code::SHUTTING_DOWN,
            _ => close_code::PROTOCOL_VIOLATION,
        }
    }
}

fn admission_code(error: &AdmissionError) -> ErrorCode {
    match error {
        AdmissionError::NotAMember => ErrorCode::NotAMember,
        AdmissionError::UnknownInvite => ErrorCode::InviteUnknown,
        AdmissionError::Expired => ErrorCode::InviteExpired,
        AdmissionError::UsedUp => ErrorCode::InviteUsedUp,
        AdmissionError::Banned => ErrorCode::Banned,
    }
}

/// Decrements a gauge when dropped.
struct GaugeGuard<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> GaugeGuard<'a> {
    fn new(gauge: &'a std::sync::atomic::AtomicI64) -> Self {
        gauge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs one incoming connection to its end. Errors close only this connection.
pub(crate) async fn handle(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            debug!("QUIC handshake failed: {error}");
            return;
        }
    };
    let metrics = shared.metrics.clone();
    metrics
        .connections_accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _open = GaugeGuard::new(&metrics.connections_open);
    let remote = connection.remote_address();
    match serve(&shared, &connection).await {
        Ok(()) => debug!(%remote, "connection closed"),
        Err(error) => {
            warn!(%remote, "closing connection: {error}");
            let reason = error.to_string();
            let reason = &reason.as_bytes()[..reason.len().min(200)];
            connection.close(error.close_code().into(), reason);
        }
    }
}

async fn serve(shared: &Arc<Shared>, connection: &quinn::Connection) -> Result<(), SessionError> {
    let (send, recv) =
        tokio::time::timeout(shared.config.handshake_timeout, connection.accept_bi())
            .await
            .map_err(|_| SessionError::ControlStreamTimeout)??;
    let mut control = ControlStream::new(send, recv);
    let member = match authenticate(shared, &mut control).await {
        Ok(member) => member,
        Err(error) => {
            shared
                .metrics
                .handshakes_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The refusal's Error frame is queued on the stream: give the client a moment to
            // read it and hang up itself, so it learns why rather than just that.
            control.finish();
            let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
            return Err(error);
        }
    };
    info!(member = member.id, name = %member.display_name, remote = %connection.remote_address(), "member online");
    let _online = GaugeGuard::new(&shared.metrics.members_online);
    if let Some(previous) = shared.register_online(member.id, connection.clone()) {
        previous.close(
            close_code::REPLACED.into(),
            b"signed in again from elsewhere",
        );
    }
    // Kicked or banned between admission and now: the removal missed this connection.
    let still_member = {
        let store = shared.store.clone();
        let (server_id, member_id) = (shared.server.id, member.id);
        tokio::task::spawn_blocking(move || store.is_member(server_id, member_id))
            .await
            .expect("membership checks do not panic")
    };
    if !matches!(still_member, Ok(true)) {
        shared.unregister_online(member.id, connection);
        connection.close(
            close_code::REFUSED.into(),
            b"you were removed from this server",
        );
        return Ok(());
    }
    let mut session = Session {
        shared: shared.clone(),
        connection: connection.clone(),
        voice: Arc::default(),
        outbox: Arc::new(RosterOutbox::new()),
        limiter: RequestLimiter::new(
            shared.config.request_rate,
            shared.config.request_burst,
            Instant::now(),
        ),
        groups: Vec::new(),
        group_changes: shared.groups.subscribe(),
        conversation_feed: shared.conversation_changes.subscribe(),
        message_feed: shared.messages.subscribe(),
        message_limiter: TokenBucket::new(
            shared.config.message_rate,
            shared.config.message_burst,
            Instant::now(),
        ),
        upload_limiter: Arc::new(std::sync::Mutex::new(TokenBucket::new(
            shared.config.upload_rate,
            shared.config.upload_burst,
            Instant::now(),
        ))),
        ephemeral_feed: None,
        channel_feed: shared.channel_changes.subscribe(),
        typing_limit: crate::presence::TypingLimit::default(),
        role_feed: shared.role_changes.subscribe(),
        roles_wanted: false,
        member,
    };
    let result = session.run(&mut control).await;
    session.leave_voice();
    shared.unregister_online(session.member.id, connection);
    if !shared.is_online(session.member.id) {
        shared.presence.gone(session.member.id);
    }
    if let Err(error) = &result
        && let Some(frame) = error.error_frame()
    {
        // Say why before closing, and give the member a moment to read it.
        shared
            .metrics
            .sessions_closed_for_abuse
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::time::timeout(REFUSAL_LINGER, control.send(&frame)).await;
        control.finish();
        let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    }
    result
}

/// Drives the sans-IO handshake over the control stream and decides admission.
async fn authenticate(
    shared: &Shared,
    control: &mut ControlStream,
) -> Result<Member, SessionError> {
    let mut handshake = RelayHandshake::new(
        Instant::now(),
        rand::random(),
        shared.fingerprint,
        shared.config.handshake_timeout,
    );
    loop {
        while let Some(frame) = handshake.poll_transmit() {
            control.send(&frame).await?;
        }
        let deadline = handshake
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + shared.config.handshake_timeout);
        let frame = match tokio::time::timeout_at(deadline.into(), control.recv()).await {
            Ok(frame) => frame?,
            Err(_) => {
                let error = handshake.handle_timeout(Instant::now()).err();
                flush(&mut handshake, control).await;
                return Err(error
                    .unwrap_or(HandshakeError::Timeout(shared.config.handshake_timeout))
                    .into());
            }
        };
        let Some(frame) = frame else {
            return Err(HandshakeError::Unexpected {
                frame: "end of stream",
            }
            .into());
        };
        match handshake.handle_frame(frame) {
            Ok(None) => {}
            Ok(Some(client)) => {
                let store = shared.store.clone();
                let server_id = shared.server.id;
                let decision = tokio::task::spawn_blocking(move || {
                    store.admit(
                        server_id,
                        &client.public_key,
                        &client.display_name,
                        client.invite.as_ref(),
                        unix_now(),
                    )
                })
                .await
                .expect("admission does not panic")?;
                match decision {
                    Ok(member) => {
                        if member.role == Role::Owner && shared.roles.load().owner != member.id {
                            // The owner's first arrival: the role book learns who owns it.
                            shared.reload_roles();
                        }
                        handshake.admit(ControlFrame::Welcome {
                            member_id: member.id,
                            server: shared.server.clone(),
                            channels: visible_channels(shared, member.id, &shared.channels.load()),
                        });
                        flush(&mut handshake, control).await;
                        return Ok(member);
                    }
                    Err(refusal) => {
                        handshake.refuse(admission_code(&refusal), refusal.to_string());
                        flush(&mut handshake, control).await;
                        return Err(SessionError::Refused(refusal));
                    }
                }
            }
            Err(error) => {
                flush(&mut handshake, control).await;
                return Err(error.into());
            }
        }
    }
}

async fn flush(handshake: &mut RelayHandshake, control: &mut ControlStream) {
    while let Some(frame) = handshake.poll_transmit() {
        if control.send(&frame).await.is_err() {
            return;
        }
    }
}

/// An authenticated member's live connection.
struct Session {
    shared: Arc<Shared>,
    connection: quinn::Connection,
    member: Member,
    voice: Arc<ArcSwapOption<Membership>>,
    outbox: Arc<RosterOutbox>,
    limiter: RequestLimiter,
    /// What of each group the member has had, once it asked with `GroupSync`.
    groups: Vec<GroupCursor>,
    group_changes: tokio::sync::watch::Receiver<u64>,
    /// Conversations opened, to tell the member of those it is in.
    conversation_feed: tokio::sync::broadcast::Receiver<Arc<crate::conversations::Conversation>>,
    /// Messages stored in the server's text channels, to pass on.
    message_feed: tokio::sync::broadcast::Receiver<Arc<StoredMessage>>,
    /// The member's chat message rate.
    message_limiter: TokenBucket,
    /// The member's upload rate, shared by their file streams.
    upload_limiter: Arc<std::sync::Mutex<TokenBucket>>,
    /// Changes to the server's channels, to pass on.
    channel_feed: tokio::sync::broadcast::Receiver<Arc<Vec<ChannelInfo>>>,
    /// Presence and typing to pass on, once the member asked for them with `SetPresence`.
    ephemeral_feed: Option<tokio::sync::broadcast::Receiver<crate::presence::Ephemeral>>,
    typing_limit: crate::presence::TypingLimit,
    /// New role books, passed on once the member asked with `ReadRoles`.
    role_feed: tokio::sync::broadcast::Receiver<Arc<sotto_net::roles::RoleBook>>,
    /// Whether the member asked for the role book.
    roles_wanted: bool,
}

impl Session {
    async fn run(&mut self, control: &mut ControlStream) -> Result<(), SessionError> {
        let forwarder = tokio::spawn(forward_datagrams(
            self.shared.clone(),
            self.connection.clone(),
            self.voice.clone(),
            self.member.id,
        ));
        // Roster changes go out at most once per batch interval: a room churning fast costs
        // each member a few frames a second, however many joins and leaves happen.
        let batch = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(batch);
        let mut roster_due = false;
        let mut last_roster = tokio::time::Instant::now()
            .checked_sub(ROSTER_BATCH)
            .unwrap_or_else(tokio::time::Instant::now);
        let result = loop {
            let sent_before = control.bytes_sent();
            let step = tokio::select! {
                frame = control.recv() => match frame {
                    Ok(Some(frame)) => self.handle_frame(frame, control).await,
                    Ok(None) | Err(StreamError::Read(_)) => break Ok(()),
                    Err(StreamError::Decode(error)) => Err(SessionError::Malformed(error)),
                    Err(error) => Err(error.into()),
                },
                () = self.outbox.changed(), if !roster_due => {
                    roster_due = true;
                    batch.as_mut().reset(last_roster + ROSTER_BATCH);
                    Ok(())
                }
                message = self.message_feed.recv() => match message {
                    Ok(message) if self.may_read(message.channel_id) => control
                        .send(&ControlFrame::NewMessage((*message).clone()))
                        .await
                        .map_err(SessionError::from),
                    Ok(_) => Ok(()),
                    // Fallen behind: the member notices the gap in seqs and reads it.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                        debug!(member = self.member.id, skipped, "skipped stored messages");
                        Ok(())
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => Ok(()),
                },
                changed = self.channel_feed.recv() => match changed {
                    Ok(channels) => control
                        .send(&ControlFrame::ChannelsChanged {
                            channels: visible_channels(&self.shared, self.member.id, &channels),
                        })
                        .await
                        .map_err(SessionError::from),
                    // Behind: the latest list says it all.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => control
                        .send(&ControlFrame::ChannelsChanged {
                            channels: visible_channels(
                                &self.shared,
                                self.member.id,
                                &self.shared.channels.load(),
                            ),
                        })
                        .await
                        .map_err(SessionError::from),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => Ok(()),
                },
                book = self.role_feed.recv() => match book {
                    Ok(book) if self.roles_wanted => {
                        // Roles decide which channels the member sees: the list follows.
                        let channels = ControlFrame::ChannelsChanged {
                            channels: visible_channels(
                                &self.shared,
                                self.member.id,
                                &self.shared.channels.load(),
                            ),
                        };
                        match control.send(&ControlFrame::Roles(Box::new((*book).clone()))).await {
                            Ok(()) => control.send(&channels).await.map_err(SessionError::from),
                            Err(error) => Err(error.into()),
                        }
                    }
                    Ok(_) => Ok(()),
                    // Behind: the latest book says it all.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) if self.roles_wanted => control
                        .send(&ControlFrame::Roles(Box::new((**self.shared.roles.load()).clone())))
                        .await
                        .map_err(SessionError::from),
                    Err(_) => Ok(()),
                },
                opened = self.conversation_feed.recv() => match opened {
                    Ok(conversation) if conversation.includes(self.member.id) => control
                        .send(&ControlFrame::Conversations {
                            conversations: vec![conversation.info()],
                            complete: false,
                        })
                        .await
                        .map_err(SessionError::from),
                    Ok(_) => Ok(()),
                    // Behind: the whole list says it all.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => control
                        .send(&ControlFrame::Conversations {
                            conversations: self.shared.conversations.of_member(self.member.id),
                            complete: true,
                        })
                        .await
                        .map_err(SessionError::from),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => Ok(()),
                },
                ephemeral = next_ephemeral(&mut self.ephemeral_feed) => match ephemeral {
                    Ok(item) if item.0 != self.member.id && self.may_see(&item.1) => control
                        .send(&item.1)
                        .await
                        .map_err(SessionError::from),
                    Ok(_) => Ok(()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                        debug!(member = self.member.id, skipped, "skipped presence updates");
                        Ok(())
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => Ok(()),
                },
                stream = self.connection.accept_bi() => match stream {
                    Ok((send, recv)) => {
                        tokio::spawn(crate::file_streams::serve(
                            self.shared.clone(),
                            crate::file_streams::Uploader {
                                member_id: self.member.id,
                                uploads: self.upload_limiter.clone(),
                            },
                            send,
                            recv,
                        ));
                        Ok(())
                    }
                    // The connection is closing: the control stream ends next.
                    Err(_) => break Ok(()),
                },
                changed = self.group_changes.changed(), if !self.groups.is_empty() => match changed {
                    Ok(()) => self.push_group_updates(control).await,
                    Err(_) => Ok(()),
                },
                () = &mut batch, if roster_due => {
                    roster_due = false;
                    match self.outbox.take() {
                        Some(frame) => {
                            last_roster = tokio::time::Instant::now();
                            control.send(&frame).await.map_err(SessionError::from)
                        }
                        // A stale wake-up: the next change may still go out at once.
                        None => Ok(()),
                    }
                }
            };
            self.shared.metrics.control_bytes_out.fetch_add(
                control.bytes_sent() - sent_before,
                std::sync::atomic::Ordering::Relaxed,
            );
            if let Err(error) = step {
                break match error {
                    // The member went away mid-write: an ordinary end.
                    SessionError::Stream(StreamError::Write(_)) => Ok(()),
                    other => Err(other),
                };
            }
        };
        forwarder.abort();
        result
    }

    async fn handle_frame(
        &mut self,
        frame: ControlFrame,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        let answer = match frame {
            ControlFrame::LeaveVoice => {
                // Counted like any request, but always carried out, so a client never believes
                // it left while the relay still forwards to it. It has no answer, so over the
                // limit there is no "slow down" either: a flood of it is simply closed.
                let verdict = self.limiter.check(Instant::now());
                self.leave_voice();
                if verdict == Verdict::Close {
                    return Err(SessionError::Flood(
                        crate::rate_limit::REFUSALS_BEFORE_CLOSE,
                    ));
                }
                return Ok(());
            }
            ControlFrame::JoinVoice { .. }
            | ControlFrame::CreateInvite { .. }
            | ControlFrame::ListMembers { .. }
            | ControlFrame::ManageChannel(_)
            | ControlFrame::ManageRoles(_)
            | ControlFrame::Moderate(_)
            | ControlFrame::ReadAudit { .. }
            | ControlFrame::ReadChannel { .. } => match self.limiter.check(Instant::now()) {
                Verdict::Allow => match frame {
                    ControlFrame::JoinVoice {
                        channel_id,
                        session_salt,
                    } => self.join_voice(channel_id, session_salt, control).await?,
                    ControlFrame::ListMembers { after } => self.list_members(after).await?,
                    ControlFrame::ReadChannel {
                        channel_id,
                        after,
                        limit,
                    } => self.read_channel(channel_id, after, limit).await,
                    ControlFrame::ManageChannel(change) => self.manage_channel(change).await?,
                    ControlFrame::ManageRoles(change) => self.manage_roles(change).await?,
                    ControlFrame::Moderate(moderation) => self.moderate(moderation).await?,
                    ControlFrame::ReadAudit { before, limit } => {
                        self.read_audit(before, limit).await?
                    }
                    _ => self.create_invite(&frame).await?,
                },
                Verdict::Refuse => {
                    self.shared
                        .metrics
                        .requests_rate_limited
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    error_frame(
                        ErrorCode::RateLimited,
                        format!(
                            "too many requests: at most {} per second; slow down",
                            self.shared.config.request_rate
                        ),
                    )
                }
                Verdict::Close => {
                    return Err(SessionError::Flood(
                        crate::rate_limit::REFUSALS_BEFORE_CLOSE,
                    ));
                }
            },
            group @ (ControlFrame::GroupSync { .. }
            | ControlFrame::GroupCreate { .. }
            | ControlFrame::GroupCommit { .. }
            | ControlFrame::GroupProposal { .. }
            | ControlFrame::JoinGroup { .. }
            | ControlFrame::OpenConversation { .. }) => {
                return self.handle_group_frame(group, control).await;
            }
            ControlFrame::ReadRoles => {
                // Never refused (its answer is matched by kind, not queued): only a flood
                // closes the connection.
                if self.limiter.check(Instant::now()) == Verdict::Close {
                    return Err(SessionError::Flood(
                        crate::rate_limit::REFUSALS_BEFORE_CLOSE,
                    ));
                }
                self.read_roles()
            }
            ControlFrame::ListConversations => {
                if self.limiter.check(Instant::now()) == Verdict::Close {
                    return Err(SessionError::Flood(
                        crate::rate_limit::REFUSALS_BEFORE_CLOSE,
                    ));
                }
                ControlFrame::Conversations {
                    conversations: self.shared.conversations.of_member(self.member.id),
                    complete: true,
                }
            }
            ControlFrame::PostMessage {
                channel_id,
                message_id,
                envelope,
                files,
                retracts,
            } => {
                self.post_message(channel_id, message_id, envelope, files, retracts)
                    .await
            }
            ControlFrame::SetPresence { presence, status } => {
                if self.limiter.check(Instant::now()) != Verdict::Allow {
                    // Dropped: the last presence set stands.
                    return Ok(());
                }
                self.shared.presence.set(self.member.id, presence, &status);
                if self.ephemeral_feed.is_none() {
                    // First time: subscribe, then tell them who is here.
                    self.ephemeral_feed = Some(self.shared.presence.subscribe());
                    let online = self.shared.online_members();
                    for members in self.shared.presence.snapshot(&online, self.member.id) {
                        control
                            .send(&ControlFrame::PresenceUpdate { members })
                            .await?;
                    }
                }
                return Ok(());
            }
            ControlFrame::Typing { channel_id } => {
                if self.text_channel(channel_id).is_ok()
                    && !self.shared.presence.is_invisible(self.member.id)
                    && self.typing_limit.allow(channel_id, Instant::now())
                {
                    self.shared.presence.typing(self.member.id, channel_id);
                }
                return Ok(());
            }
            key_packages @ (ControlFrame::UploadKeyPackages { .. }
            | ControlFrame::ClaimKeyPackage { .. }) => {
                return self.handle_key_packages(key_packages, control).await;
            }
            other => return Err(SessionError::Unexpected(other.name())),
        };
        control.send(&answer).await?;
        Ok(())
    }

    /// Seats the member in a voice channel; returns the answer (the roster is sent here).
    async fn join_voice(
        &mut self,
        channel_id: u32,
        session_salt: sotto_net::proto::control::SessionSalt,
        control: &mut ControlStream,
    ) -> Result<ControlFrame, SessionError> {
        let channels = self.shared.channels.load_full();
        let visible =
            self.shared
                .roles
                .load()
                .may_in(self.member.id, channel_id, Permissions::VIEW_CHANNEL);
        let found = channels.iter().find(|channel| channel.id == channel_id);
        let Some(channel) = found.filter(|_| visible) else {
            return Ok(error_frame(
                ErrorCode::NoSuchChannel,
                "there is no such channel",
            ));
        };
        if channel.kind != ChannelKind::Voice {
            return Ok(error_frame(
                ErrorCode::NotAVoiceChannel,
                "that is a text channel",
            ));
        }
        let joiner = Joiner {
            member_id: self.member.id,
            public_key: self.member.public_key,
            display_name: self.member.display_name.clone(),
            session_salt,
            connection: self.connection.clone(),
            outbox: self.outbox.clone(),
        };
        // A refused join leaves the member in the room it is in.
        let current = self.voice.load_full();
        match self
            .shared
            .rooms
            .join(channel_id, joiner, current.as_deref())
        {
            Ok(mut membership) => {
                let slot = membership.slot;
                let participants = std::mem::take(&mut membership.roster);
                self.voice.store(Some(Arc::new(membership)));
                info!(
                    member = self.member.id,
                    channel = channel_id,
                    slot,
                    "joined voice"
                );
                control
                    .send(&ControlFrame::VoiceJoined { channel_id, slot })
                    .await?;
                Ok(ControlFrame::Roster {
                    channel_id,
                    participants,
                })
            }
            Err(error @ JoinError::Full { .. }) => {
                Ok(error_frame(ErrorCode::ChannelFull, error.to_string()))
            }
        }
    }

    /// Stores the member's KeyPackages, or hands out another member's. Like group frames,
    /// these are never answered with `Error`: an upload is answered with what is stored (bad
    /// KeyPackages are dropped), a claim with a KeyPackage or none.
    async fn handle_key_packages(
        &mut self,
        frame: ControlFrame,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        let verdict = self.limiter.check(Instant::now());
        if verdict == Verdict::Close {
            return Err(SessionError::Flood(
                crate::rate_limit::REFUSALS_BEFORE_CLOSE,
            ));
        }
        let allowed = verdict == Verdict::Allow;
        if !allowed {
            self.shared
                .metrics
                .requests_rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let shared = self.shared.clone();
        let member = self.member.clone();
        let answer = tokio::task::spawn_blocking(move || match frame {
            ControlFrame::UploadKeyPackages {
                key_packages,
                last_resort,
            } => {
                let checked: Vec<(Vec<u8>, Vec<u8>, bool)> = if allowed {
                    key_packages
                        .into_iter()
                        .map(|kp| (kp, false))
                        .chain(last_resort.map(|kp| (kp, true)))
                        .filter_map(|(kp, wants_last_resort)| {
                            match check_key_package(&kp, &member.public_key) {
                                Ok(info) if info.last_resort == wants_last_resort => {
                                    Some((info.reference, kp, wants_last_resort))
                                }
                                Ok(_) => {
                                    debug!(
                                        member = member.id,
                                        "dropped a KeyPackage of the wrong kind"
                                    );
                                    None
                                }
                                Err(error) => {
                                    debug!(member = member.id, "dropped a KeyPackage: {error}");
                                    None
                                }
                            }
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let new: Vec<NewKeyPackage<'_>> = checked
                    .iter()
                    .map(|(reference, key_package, last_resort)| NewKeyPackage {
                        reference,
                        key_package,
                        last_resort: *last_resort,
                    })
                    .collect();
                // A store failure is answered as "none stored", so the member uploads again.
                let count = shared
                    .store
                    .store_key_packages(member.id, &new, unix_now())
                    .unwrap_or_else(|error| {
                        warn!(member = member.id, "could not store KeyPackages: {error}");
                        KeyPackageCount {
                            available: 0,
                            last_resort: false,
                        }
                    });
                ControlFrame::KeyPackagesStored {
                    available: count.available,
                    last_resort: count.last_resort,
                }
            }
            ControlFrame::ClaimKeyPackage { member: wanted } => {
                let key_package = if allowed {
                    shared
                        .store
                        .claim_key_package(shared.server.id, &wanted)
                        .unwrap_or_else(|error| {
                            warn!(
                                member = member.id,
                                "could not hand out a KeyPackage: {error}"
                            );
                            None
                        })
                } else {
                    None
                };
                ControlFrame::KeyPackageClaimed {
                    member: wanted,
                    key_package,
                }
            }
            other => other,
        })
        .await
        .expect("KeyPackage work does not panic");
        control.send(&answer).await.map_err(Into::into)
    }

    /// Creates, changes or deletes a channel (with the create-channels or manage-channels
    /// permission), then tells every member online.
    async fn manage_channel(&self, change: ChannelChange) -> Result<ControlFrame, SessionError> {
        let book = self.shared.roles.load();
        let allowed = match &change {
            ChannelChange::Create { .. } => book.may(self.member.id, Permissions::CREATE_CHANNELS),
            ChannelChange::Update { channel_id, .. } | ChannelChange::Delete { channel_id } => book
                .may_in(
                    self.member.id,
                    *channel_id,
                    Permissions::MANAGE_CHANNELS.union(Permissions::VIEW_CHANNEL),
                ),
        };
        if !allowed {
            return Ok(error_frame(
                ErrorCode::Forbidden,
                match &change {
                    ChannelChange::Create { .. } => {
                        "you need the \"create-channels\" permission to create channels; ask an admin"
                    }
                    _ => {
                        "you need the \"manage-channels\" permission to change or delete this channel; ask an admin"
                    }
                },
            ));
        }
        drop(book);
        let acting = Acting {
            member_id: self.member.id,
            now_unix: unix_now(),
        };
        let named = match &change {
            ChannelChange::Create { name, .. } | ChannelChange::Update { name, .. } => {
                Some(name.trim().to_owned())
            }
            ChannelChange::Delete { .. } => None,
        };
        if let Some(name) = &named
            && (name.is_empty() || name.chars().count() > MAX_CHANNEL_NAME_CHARS)
        {
            return Ok(error_frame(
                ErrorCode::ProtocolViolation,
                format!("a channel name has 1 to {MAX_CHANNEL_NAME_CHARS} characters"),
            ));
        }
        let name = named.unwrap_or_default();
        if !list_fits(&self.shared.channels.load(), &change, &name) {
            return Ok(error_frame(
                ErrorCode::Forbidden,
                format!(
                    "the server has as many channels (or as long topics) as members can be sent; \
                     delete some or shorten topics first (at most {MAX_CHANNELS} channels)"
                ),
            ));
        }
        let shared = self.shared.clone();
        let server_id = shared.server.id;
        let outcome = tokio::task::spawn_blocking(move || {
            let store = &shared.store;
            let outcome = match change {
                ChannelChange::Create {
                    kind,
                    category,
                    topic,
                    ..
                } => store.add_channel(
                    server_id,
                    &name,
                    kind,
                    category.trim(),
                    topic.trim(),
                    acting,
                )?,
                ChannelChange::Update {
                    channel_id,
                    category,
                    topic,
                    position,
                    ..
                } => store
                    .update_channel(
                        server_id,
                        channel_id,
                        &name,
                        category.trim(),
                        topic.trim(),
                        position,
                        acting,
                    )?
                    .map(|()| channel_id),
                ChannelChange::Delete { channel_id } => {
                    if store.delete_channel(server_id, channel_id, acting)? {
                        Ok(channel_id)
                    } else {
                        Err(ChannelRefusal::NoSuchChannel)
                    }
                }
            };
            let channels = store.channels(server_id)?;
            Ok::<_, StoreError>((outcome, channels))
        })
        .await
        .expect("channel changes do not panic");
        match outcome {
            Ok((Ok(channel_id), channels)) => {
                let channels = Arc::new(channels);
                self.shared.channels.store(channels.clone());
                let _ = self.shared.channel_changes.send(channels);
                info!(member = self.member.id, channel_id, "channels changed");
                Ok(ControlFrame::ChannelManaged { channel_id })
            }
            Ok((Err(refusal), _)) => Ok(error_frame(
                match refusal {
                    ChannelRefusal::NoSuchChannel => ErrorCode::NoSuchChannel,
                    ChannelRefusal::NameTaken => ErrorCode::ChannelNameTaken,
                },
                refusal.to_string(),
            )),
            Err(error) => {
                warn!("could not change the channels: {error}");
                Ok(error_frame(
                    ErrorCode::Internal,
                    "the relay could not change the channels; try again",
                ))
            }
        }
    }

    /// Whether `channel_id` is one of the server's text channels; else why not.
    /// Whether the member may read `channel_id`'s messages: any channel, and the
    /// conversations it is in.
    fn may_read(&self, channel_id: u32) -> bool {
        self.shared.may_read(self.member.id, channel_id)
    }

    /// Whether the member may see a presence or typing frame (typing in a conversation is
    /// for its members only).
    fn may_see(&self, frame: &ControlFrame) -> bool {
        match frame {
            ControlFrame::MemberTyping { channel_id, .. } => self.may_read(*channel_id),
            _ => true,
        }
    }

    fn text_channel(&self, channel_id: u32) -> Result<(), (ErrorCode, &'static str)> {
        match self.shared.conversations.access(channel_id, self.member.id) {
            Access::Member => return Ok(()),
            // To an outsider a conversation does not exist.
            Access::Outsider => {
                return Err((ErrorCode::NoSuchChannel, "there is no such channel"));
            }
            Access::NotAConversation => {}
        }
        match self
            .shared
            .channels
            .load()
            .iter()
            .find(|channel| channel.id == channel_id)
        {
            None => Err((ErrorCode::NoSuchChannel, "there is no such channel")),
            // A channel the member may not view does not exist for them.
            Some(_)
                if !self.shared.roles.load().may_in(
                    self.member.id,
                    channel_id,
                    Permissions::VIEW_CHANNEL,
                ) =>
            {
                Err((ErrorCode::NoSuchChannel, "there is no such channel"))
            }
            Some(channel) if channel.kind != ChannelKind::Text => Err((
                ErrorCode::NotATextChannel,
                "that is a voice channel; messages go to text channels",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Stores a message and passes it on to everyone online; answers its author.
    async fn post_message(
        &mut self,
        channel_id: u32,
        message_id: [u8; 16],
        envelope: Vec<u8>,
        files: Vec<BlobId>,
        retracts: Option<u64>,
    ) -> ControlFrame {
        let refused = |code, reason: String| ControlFrame::PostRefused {
            channel_id,
            message_id,
            code,
            reason,
        };
        if let Err((code, reason)) = self.text_channel(channel_id) {
            return refused(code, reason.into());
        }
        if !self.message_limiter.try_take(Instant::now()) {
            self.shared
                .metrics
                .requests_rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return refused(
                ErrorCode::RateLimited,
                format!(
                    "too many messages: at most {} per second; wait a moment and send again",
                    self.shared.config.message_rate
                ),
            );
        }
        let (may_retract_others, slow_mode_secs) = match self.may_post(channel_id) {
            Ok(rights) => rights,
            Err((code, reason)) => return refused(code, reason),
        };
        let shared = self.shared.clone();
        let author = self.member.id;
        let outcome = tokio::task::spawn_blocking(move || {
            let extras = PostExtras {
                files: &files,
                retracts,
                may_retract_others,
                slow_mode_secs,
            };
            shared.store.post_message_with(
                channel_id,
                &message_id,
                author,
                &envelope,
                extras,
                unix_now_ms(),
            )
        })
        .await
        .expect("storing a message does not panic");
        match outcome {
            Ok(PostOutcome::Stored(message)) => {
                let answer = ControlFrame::MessagePosted {
                    channel_id,
                    message_id,
                    seq: message.seq,
                    posted_at: message.posted_at,
                };
                // Durable now: pass it on (nobody listening is fine).
                let _ = self.shared.messages.send(Arc::new(message));
                answer
            }
            Ok(PostOutcome::AlreadyStored(message)) => ControlFrame::MessagePosted {
                channel_id,
                message_id,
                seq: message.seq,
                posted_at: message.posted_at,
            },
            Ok(PostOutcome::IdTaken) => refused(
                ErrorCode::ProtocolViolation,
                "another member's message has this id; pick a random one".into(),
            ),
            Ok(PostOutcome::NoSuchFile(_)) => refused(
                ErrorCode::NoSuchFile,
                "the message carries a file the relay does not hold (not uploaded, not finished, or deleted); upload it again".into(),
            ),
            Ok(PostOutcome::RetractForbidden) => refused(
                ErrorCode::Forbidden,
                "only a message's author or a channel admin (the \"manage-messages\" permission) may take it back".into(),
            ),
            Ok(PostOutcome::SlowMode { wait_secs }) => refused(
                ErrorCode::SlowMode,
                format!("this channel is in slow mode; you can send again in {wait_secs} s"),
            ),
            Err(error) => {
                warn!(
                    member = self.member.id,
                    "could not store a message: {error}"
                );
                refused(
                    ErrorCode::Internal,
                    "the relay could not store the message; send it again".into(),
                )
            }
        }
    }

    /// Whether the member may post in `channel_id` now: `(may take back others' messages,
    /// slow mode seconds that apply to them)`, or why not. In a conversation only the
    /// owner's old power to take back messages applies.
    fn may_post(&self, channel_id: u32) -> Result<(bool, u32), (ErrorCode, String)> {
        if self.shared.conversations.access(channel_id, self.member.id) == Access::Member {
            return Ok((self.member.role == Role::Owner, 0));
        }
        let book = self.shared.roles.load();
        let member = self.member.id;
        if let Some(until) = book.timed_out_until(member, unix_now()) {
            return Err((
                ErrorCode::TimedOut,
                format!(
                    "you are timed out for {}; you can send again after that",
                    crate::connection::remaining_words(until.saturating_sub(unix_now()))
                ),
            ));
        }
        if !book.may_in(member, channel_id, Permissions::SEND_MESSAGES) {
            return Err((
                ErrorCode::Forbidden,
                "you may read this channel but not send to it; ask an admin for the \"send\" permission".into(),
            ));
        }
        let admin = book.may_in(member, channel_id, Permissions::MANAGE_MESSAGES);
        Ok((admin, if admin { 0 } else { book.slow_mode(channel_id) }))
    }

    /// A page of a text channel's history.
    async fn read_channel(&self, channel_id: u32, after: u64, limit: u16) -> ControlFrame {
        if let Err((code, reason)) = self.text_channel(channel_id) {
            return error_frame(code, reason);
        }
        let shared = self.shared.clone();
        let limit = u32::from(limit).clamp(1, MAX_MESSAGES_PER_PAGE as u32);
        let page = tokio::task::spawn_blocking(move || {
            shared
                .store
                .messages_after(channel_id, after, limit, HISTORY_PAGE_BYTES)
        })
        .await
        .expect("reading messages does not panic");
        match page {
            Ok((messages, more)) => ControlFrame::ChannelMessages {
                channel_id,
                messages,
                more,
            },
            Err(error) => {
                warn!("could not read messages: {error}");
                error_frame(
                    ErrorCode::Internal,
                    "the relay could not read the channel; try again",
                )
            }
        }
    }

    /// A page of the server's member list, with who is online.
    async fn list_members(&self, after: u32) -> Result<ControlFrame, SessionError> {
        let shared = self.shared.clone();
        let page = MAX_MEMBERS_PER_PAGE as u32;
        let listed = tokio::task::spawn_blocking(move || {
            // One more than a page tells whether more follow.
            shared
                .store
                .members_after(shared.server.id, after, page + 1)
                .map(|members| {
                    members
                        .into_iter()
                        .map(|member| ListedMember {
                            online: shared.is_online(member.id),
                            member_id: member.id,
                            public_key: member.public_key,
                            display_name: member.display_name,
                            is_owner: member.role == Role::Owner,
                        })
                        .collect::<Vec<_>>()
                })
        })
        .await
        .expect("listing members does not panic");
        Ok(match listed {
            Ok(mut members) => {
                let more = members.len() > MAX_MEMBERS_PER_PAGE;
                members.truncate(MAX_MEMBERS_PER_PAGE);
                ControlFrame::MemberList { members, more }
            }
            Err(error) => {
                warn!("could not list members: {error}");
                error_frame(
                    ErrorCode::Internal,
                    "the relay could not list members; try again",
                )
            }
        })
    }

    /// Makes an invite, within the member's limits; returns the answer.
    async fn create_invite(&self, request: &ControlFrame) -> Result<ControlFrame, SessionError> {
        let ControlFrame::CreateInvite {
            expires_in_secs,
            max_uses,
            ref grant,
        } = *request
        else {
            unreachable!("called for CreateInvite only")
        };
        if !self
            .shared
            .roles
            .load()
            .may(self.member.id, Permissions::CREATE_INVITES)
        {
            return Ok(error_frame(
                ErrorCode::Forbidden,
                "you need the \"invite\" permission to make invite links; ask an admin",
            ));
        }
        let now = unix_now();
        if let Some(grant) = grant
            && let Err(reason) = self.check_grant(grant, now)
        {
            return Ok(error_frame(
                ErrorCode::Forbidden,
                format!("the invite's grant is not valid: {reason}"),
            ));
        }
        let grant = grant.clone();
        let terms = InviteTerms {
            expires_at: expires_in_secs.map(|secs| now + u64::from(secs)),
            max_uses,
            role: Role::Member,
        };
        let limits = InviteLimits {
            max_active: self.shared.config.max_active_invites,
            per_hour: self.shared.config.invites_per_hour,
        };
        let store = self.shared.store.clone();
        let (server_id, member_id) = (self.shared.server.id, self.member.id);
        let decision = tokio::task::spawn_blocking(move || {
            store.create_member_invite(server_id, member_id, terms, limits, grant.as_deref(), now)
        })
        .await
        .expect("invite creation does not panic")?;
        Ok(match decision {
            Ok(token) => ControlFrame::InviteCreated {
                token,
                expires_at: terms.expires_at,
                max_uses,
            },
            Err(limit) => error_frame(ErrorCode::InviteLimit, limit.to_string()),
        })
    }

    /// A grant must be this member's, for this server's group, and not expired.
    fn check_grant(&self, grant: &[u8], now_unix: u64) -> Result<(), String> {
        let grant = InviteGrant::decode(grant).map_err(|error| error.to_string())?;
        if grant.inviter != self.member.public_key {
            return Err("it was signed by someone else".into());
        }
        grant
            .verify(&server_group_id(self.shared.server.id), now_unix)
            .map_err(|error| error.to_string())
    }

    /// Handles a group frame (MLS delivery) within the member's request budget.
    async fn handle_group_frame(
        &mut self,
        frame: ControlFrame,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        let group_id = match &frame {
            ControlFrame::GroupSync { group_id, .. }
            | ControlFrame::GroupCreate { group_id, .. }
            | ControlFrame::GroupCommit { group_id, .. }
            | ControlFrame::GroupProposal { group_id, .. }
            | ControlFrame::JoinGroup { group_id, .. }
            | ControlFrame::OpenConversation { group_id, .. } => group_id.clone(),
            other => return Err(SessionError::Unexpected(other.name())),
        };
        match self.limiter.check(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                self.shared
                    .metrics
                    .requests_rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // A refused commit names its epoch, so its sender drops it.
                let epoch = match &frame {
                    ControlFrame::GroupCommit { epoch, .. } => *epoch,
                    _ => 0,
                };
                let answer = ControlFrame::GroupRefused {
                    group_id,
                    epoch,
                    current_epoch: 0,
                    reason: "too many requests; slow down".into(),
                };
                control.send(&answer).await?;
                return Ok(());
            }
            Verdict::Close => {
                return Err(SessionError::Flood(
                    crate::rate_limit::REFUSALS_BEFORE_CLOSE,
                ));
            }
        }
        if let ControlFrame::OpenConversation {
            group_id,
            members,
            group_info,
        } = frame
        {
            return self
                .open_conversation(group_id, members, group_info, control)
                .await;
        }
        // The server's group, or a conversation's the member is in.
        let conversation = self.shared.conversations.by_group(&group_id);
        let allowed = match &conversation {
            Some(conversation) => conversation.includes(self.member.id),
            None => group_id == server_group_id(self.shared.server.id),
        };
        if !allowed {
            let answer = ControlFrame::GroupRefused {
                group_id,
                epoch: 0,
                current_epoch: 0,
                reason: "this relay has no such group".into(),
            };
            control.send(&answer).await?;
            return Ok(());
        }
        let conversation_keys = conversation
            .as_ref()
            .map(|conversation| conversation.keys());
        let shared = self.shared.clone();
        let member = self.member.clone();
        let members_online =
            u32::try_from(shared.online_count().saturating_sub(1)).unwrap_or(u32::MAX);
        let now = unix_now();
        let is_sync = matches!(frame, ControlFrame::GroupSync { .. });
        let is_create = matches!(frame, ControlFrame::GroupCreate { .. });
        let (answer, sync, removed) = tokio::task::spawn_blocking(move || {
            let store = &shared.store;
            let groups = &shared.groups;
            let server_id = shared.server.id;
            Ok::<_, StoreError>(match frame {
                ControlFrame::GroupSync { group_id, epoch } => {
                    let (status, in_group) = groups.status(store, server_id, &member, &group_id)?;
                    if in_group && epoch.is_some() {
                        store.forget_welcome(&group_id, &member.public_key)?;
                    }
                    (
                        Some(status),
                        Some((in_group && epoch.is_some(), epoch)),
                        Removed::Nobody,
                    )
                }
                ControlFrame::GroupCreate {
                    group_id,
                    group_info,
                } => (
                    Some(groups.create(store, server_id, &member, &group_id, &group_info, now)?),
                    None,
                    Removed::Nobody,
                ),
                ControlFrame::GroupCommit {
                    group_id,
                    epoch,
                    commit,
                    welcome,
                } => {
                    let done = groups.commit(
                        store,
                        &member,
                        &group_id,
                        epoch,
                        &commit,
                        welcome.as_deref(),
                        conversation_keys.as_deref(),
                        server_id,
                        now,
                    )?;
                    (
                        Some(done.answer),
                        None,
                        done.conversation
                            .map_or(Removed::FromServer(done.removed_members.clone()), |id| {
                                Removed::FromConversation(id, done.removed_members)
                            }),
                    )
                }
                ControlFrame::GroupProposal { group_id, proposal } => (
                    groups.propose(store, &member, &group_id, &proposal)?,
                    None,
                    Removed::Nobody,
                ),
                ControlFrame::JoinGroup { group_id, request } => (
                    Some(groups.join(
                        store,
                        server_id,
                        &member,
                        &group_id,
                        &request,
                        members_online,
                        now,
                    )?),
                    None,
                    Removed::Nobody,
                ),
                _ => unreachable!("only group frames get here"),
            })
        })
        .await
        .expect("group handling does not panic")?;
        if let Some((in_group, epoch)) = sync {
            self.set_cursor(GroupCursor {
                group_id: group_id.clone(),
                in_group,
                next_epoch: epoch.unwrap_or(0),
                proposals_sent: None,
                requests_sent: Default::default(),
                welcome_sent: false,
                claimed_epoch: epoch.filter(|_| !in_group),
                more: false,
            });
        }
        if is_create
            && matches!(
                answer,
                Some(ControlFrame::GroupStatus { epoch: Some(0), .. })
            )
        {
            // The creator is the group's first member: it hears from it from epoch 0.
            self.set_cursor(GroupCursor {
                group_id: group_id.clone(),
                in_group: true,
                next_epoch: 0,
                proposals_sent: None,
                requests_sent: Default::default(),
                welcome_sent: false,
                claimed_epoch: None,
                more: false,
            });
        }
        if let (Some(ControlFrame::CommitAccepted { epoch, .. }), Some(cursor)) = (
            &answer,
            self.groups
                .iter_mut()
                .find(|cursor| cursor.group_id == group_id),
        ) {
            // Our own commit is not sent back to us.
            if cursor.next_epoch == *epoch {
                cursor.next_epoch = epoch + 1;
                cursor.proposals_sent = None;
            }
        }
        if is_sync {
            // What the member missed goes first, so when it reads the status it has all of it.
            self.push_group_updates(control).await?;
        }
        if let Some(answer) = answer {
            control.send(&answer).await?;
        }
        match removed {
            Removed::Nobody => {}
            Removed::FromServer(members) => {
                if !members.is_empty() {
                    self.shared
                        .removed_from_server(&members, "you were removed from this server");
                    self.shared.reload_roles();
                }
            }
            Removed::FromConversation(conversation, members) => {
                if !members.is_empty() {
                    info!(conversation, removed = members.len(), "left a conversation");
                    if let Some(now) = self
                        .shared
                        .conversations
                        .remove_members(conversation, &members)
                    {
                        let _ = self.shared.conversation_changes.send(now);
                    }
                }
            }
        }
        if is_create {
            self.push_group_updates(control).await?;
        }
        Ok(())
    }

    /// Opens a conversation between the member and `members`, with its group at epoch 0.
    /// Everyone in it who is online hears of it (the opener too) through the feed; a refusal
    /// is answered with `GroupRefused`.
    async fn open_conversation(
        &mut self,
        group_id: Vec<u8>,
        members: Vec<sotto_net::proto::control::PublicKey>,
        group_info: Vec<u8>,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        let shared = self.shared.clone();
        let creator = self.member.clone();
        let now = unix_now();
        let answer_group_id = group_id.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let server_id = shared.server.id;
            let server_members = shared.store.members(server_id)?;
            let mut everyone = vec![(creator.id, creator.public_key)];
            for key in &members {
                let Some(member) = server_members
                    .iter()
                    .find(|member| member.public_key == *key)
                else {
                    return Ok(Err(
                        "someone in it is not a member of this server".to_owned()
                    ));
                };
                if everyone.iter().any(|(id, _)| *id == member.id) {
                    return Ok(Err("someone is named twice (or is you)".to_owned()));
                }
                everyone.push((member.id, member.public_key));
            }
            if everyone.len() < 2 {
                return Ok(Err("a conversation needs someone besides you".to_owned()));
            }
            shared.groups.open_conversation(
                &shared.store,
                server_id,
                &creator,
                &everyone,
                &group_id,
                &group_info,
                now,
            )
        })
        .await
        .expect("opening a conversation does not panic")?;
        match opened {
            Ok(stored) => {
                let conversation = crate::conversations::Conversation::from(stored);
                self.shared.conversations.insert(conversation.clone());
                let _ = self
                    .shared
                    .conversation_changes
                    .send(Arc::new(conversation));
                Ok(())
            }
            Err(reason) => {
                debug!(member = self.member.id, "refused a conversation: {reason}");
                control
                    .send(&ControlFrame::GroupRefused {
                        group_id: answer_group_id,
                        epoch: 0,
                        current_epoch: 0,
                        reason,
                    })
                    .await?;
                Ok(())
            }
        }
    }

    /// Starts (or restarts) following a group.
    fn set_cursor(&mut self, cursor: GroupCursor) {
        self.groups.retain(|old| old.group_id != cursor.group_id);
        self.groups.push(cursor);
    }

    /// Sends the member what it has not had yet of its groups.
    async fn push_group_updates(
        &mut self,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        // A member out of a conversation hears no more of its group.
        let conversations = &self.shared.conversations;
        let member_id = self.member.id;
        self.groups.retain(|cursor| {
            conversations
                .by_group(&cursor.group_id)
                .is_none_or(|conversation| conversation.includes(member_id))
        });
        let mut cursors = std::mem::take(&mut self.groups);
        let mut result = Ok(());
        for cursor in &mut cursors {
            result = self.push_updates_of(cursor, control).await;
            if result.is_err() {
                break;
            }
        }
        self.groups = cursors;
        result
    }

    /// Sends the member what it has not had yet of one group.
    async fn push_updates_of(
        &mut self,
        cursor: &mut GroupCursor,
        control: &mut ControlStream,
    ) -> Result<(), SessionError> {
        // In batches, until the member has everything (a member back after a long time may
        // have hundreds of commits to catch up on).
        loop {
            let shared = self.shared.clone();
            let key = self.member.public_key;
            let mut moved = std::mem::take(cursor);
            let (moved, frames) = tokio::task::spawn_blocking(move || {
                let frames = moved.pending(&shared.store, &key);
                (moved, frames)
            })
            .await
            .expect("reading group updates does not panic");
            *cursor = moved;
            for frame in frames? {
                control.send(&frame).await?;
            }
            if !cursor.more {
                return Ok(());
            }
        }
    }

    fn leave_voice(&self) {
        if let Some(membership) = self.voice.swap(None) {
            self.shared.rooms.leave(&membership);
            info!(
                member = self.member.id,
                channel = membership.room.channel_id(),
                "left voice"
            );
        }
    }
}

/// Whom a commit took out.
#[derive(Debug)]
enum Removed {
    /// Nobody.
    Nobody,
    /// These members, out of the server (their connections close).
    FromServer(Vec<u32>),
    /// These members, out of this conversation only.
    FromConversation(u32, Vec<u32>),
}

/// The next presence or typing item, once subscribed (never, before).
async fn next_ephemeral(
    feed: &mut Option<tokio::sync::broadcast::Receiver<crate::presence::Ephemeral>>,
) -> Result<crate::presence::Ephemeral, tokio::sync::broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the channel list after `change` still fits in the frames that carry it (`Welcome`,
/// `ChannelsChanged`): past that, nobody could connect.
fn list_fits(channels: &[ChannelInfo], change: &ChannelChange, name: &str) -> bool {
    let mut next = channels.to_vec();
    match change {
        ChannelChange::Create {
            kind,
            category,
            topic,
            ..
        } => next.push(ChannelInfo {
            id: u32::MAX,
            name: name.to_owned(),
            kind: *kind,
            position: u16::MAX,
            category: category.clone(),
            topic: topic.clone(),
        }),
        ChannelChange::Update {
            channel_id,
            category,
            topic,
            ..
        } => {
            if let Some(channel) = next.iter_mut().find(|c| c.id == *channel_id) {
                channel.name = name.to_owned();
                channel.category.clone_from(category);
                channel.topic.clone_from(topic);
            }
        }
        ChannelChange::Delete { .. } => return true,
    }
    // Room for the rest of a Welcome: ids and the server's name.
    next.len() <= MAX_CHANNELS
        && ControlFrame::ChannelsChanged { channels: next }
            .to_bytes()
            .is_ok_and(|bytes| bytes.len() + 1024 <= MAX_FRAME_LEN)
}

/// Longest channel name, in characters.
const MAX_CHANNEL_NAME_CHARS: usize = 100;

/// Envelope bytes in one page of history (the frame may hold 2 MiB).
const HISTORY_PAGE_BYTES: usize = 1536 * 1024;

fn error_frame(code: ErrorCode, message: impl Into<String>) -> ControlFrame {
    ControlFrame::Error {
        code,
        message: message.into(),
    }
}

/// Forwards this connection's media datagrams to the other members of its voice room.
/// The channels `member_id` may view (the others do not exist for them, names included).
fn visible_channels(shared: &Shared, member_id: u32, channels: &[ChannelInfo]) -> Vec<ChannelInfo> {
    let book = shared.roles.load();
    channels
        .iter()
        .filter(|channel| book.may_in(member_id, channel.id, Permissions::VIEW_CHANNEL))
        .cloned()
        .collect()
}

/// A duration left, for people: "45 s", "12 min", "3 h", "2 d" (rounded up).
pub(crate) fn remaining_words(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{} s", seconds.max(1)),
        60..3_600 => format!("{} min", seconds.div_ceil(60)),
        3_600..86_400 => format!("{} h", seconds.div_ceil(3_600)),
        _ => format!("{} d", seconds.div_ceil(86_400)),
    }
}

/// Whether a member may be heard in a voice channel now, from the latest role book; read
/// again when the book changes or a second has passed (timeouts end by the clock).
struct VoiceRight {
    member_id: u32,
    channel_id: u32,
    book: Option<Arc<sotto_net::roles::RoleBook>>,
    checked_at: Instant,
    may_speak: bool,
    /// Members of the room who must not hear: deafened, or no longer allowed to view it.
    unheard: Vec<u32>,
}

impl VoiceRight {
    const RECHECK: Duration = Duration::from_secs(1);

    fn new(member_id: u32) -> Self {
        Self {
            member_id,
            channel_id: 0,
            book: None,
            checked_at: Instant::now(),
            may_speak: true,
            unheard: Vec::new(),
        }
    }

    /// Whether the member may be heard in `room` now; refreshes who in it may not hear.
    fn may_speak(&mut self, shared: &Shared, room: &crate::rooms::Room, now: Instant) -> bool {
        let channel_id = room.channel_id();
        let book = shared.roles.load();
        let fresh = self.channel_id == channel_id
            && now.duration_since(self.checked_at) < Self::RECHECK
            && self
                .book
                .as_ref()
                .is_some_and(|seen| Arc::ptr_eq(seen, &book));
        if !fresh {
            self.may_speak = !book.muted.contains(&self.member_id)
                && book.timed_out_until(self.member_id, unix_now()).is_none()
                && book.may_in(
                    self.member_id,
                    channel_id,
                    sotto_net::roles::Permissions::SPEAK,
                );
            self.unheard = room
                .peers()
                .iter()
                .map(|peer| peer.member_id)
                .filter(|member| {
                    book.deafened.contains(member)
                        || !book.may_in(
                            *member,
                            channel_id,
                            sotto_net::roles::Permissions::VIEW_CHANNEL,
                        )
                })
                .collect();
            self.book = Some(arc_swap::Guard::into_inner(book));
            self.channel_id = channel_id;
            self.checked_at = now;
        }
        self.may_speak
    }
}

async fn forward_datagrams(
    shared: Arc<Shared>,
    connection: quinn::Connection,
    voice: Arc<ArcSwapOption<Membership>>,
    member_id: u32,
) {
    let mut right = VoiceRight::new(member_id);
    let metrics = &shared.metrics;
    let mut bucket = TokenBucket::new(
        shared.config.datagram_rate,
        shared.config.datagram_burst,
        Instant::now(),
    );
    while let Ok(datagram) = connection.read_datagram().await {
        metrics
            .datagrams_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !bucket.try_take(Instant::now()) {
            metrics.drop_datagram(DropReason::RateLimited);
            continue;
        }
        let header = match MediaHeader::parse(&datagram) {
            Ok(header) => header,
            Err(error) => {
                metrics.drop_datagram(DropReason::Malformed);
                let reason = SessionError::MalformedDatagram;
                warn!(remote = %connection.remote_address(), "closing connection: {reason} ({error})");
                connection.close(reason.close_code().into(), b"malformed media datagram");
                return;
            }
        };
        let guard = voice.load();
        let Some(membership) = guard.as_ref() else {
            metrics.drop_datagram(DropReason::NotInVoice);
            continue;
        };
        if header.sender != membership.slot {
            metrics.drop_datagram(DropReason::ForgedSender);
            continue;
        }
        if !right.may_speak(&shared, &membership.room, Instant::now()) {
            metrics.drop_datagram(DropReason::Silenced);
            continue;
        }
        let mut sent = 0;
        for peer in membership.room.peers().iter() {
            if peer.slot == membership.slot || right.unheard.contains(&peer.member_id) {
                continue;
            }
            match peer.connection.send_datagram(datagram.clone()) {
                Ok(()) => sent += 1,
                Err(_) => metrics.drop_datagram(DropReason::SendFailed),
            }
        }
        metrics
            .datagrams_out
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }
}
