//! The client's background task. It only moves bytes: connection attempts, control frames and
//! datagrams go in and out, and every decision — what to send, what an answer means, whether
//! and when to reconnect — is the sans-IO [`ClientSession`]'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::client::connect::{self, Established, connection_error};
use crate::client::receivers::Receivers;
use crate::client::{
    ChannelPage, ClientError, ClientEvent, ClientOptions, Command, GroupEvent, MediaFrame,
    MemberPage, Posted, Shared,
};
use crate::crypto::new_session_salt;
use crate::invite::InviteLink;
use crate::proto::ControlFrame;
use crate::proto::session::{ClientSession, Reconnect, RequestId, SessionEvent};
use crate::transport::{ControlStream, StreamError, close_code};

/// How long one connection attempt may take before the next one starts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the relay's close after it ended the control stream.
const STREAM_END_GRACE: Duration = Duration::from_secs(3);

/// Why a session ended.
enum Ended {
    /// The handle was dropped.
    Shutdown,
    /// The connection was lost.
    Lost(ClientError),
}

type InviteReply = oneshot::Sender<Result<InviteLink, ClientError>>;
type MembersReply = oneshot::Sender<Result<MemberPage, ClientError>>;
type ManageReply = oneshot::Sender<Result<u32, ClientError>>;
type PostReply = oneshot::Sender<Result<Posted, ClientError>>;
type PageReply = oneshot::Sender<Result<ChannelPage, ClientError>>;
type AdminReply = oneshot::Sender<Result<ControlFrame, ClientError>>;

pub(crate) async fn run(
    options: ClientOptions,
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
) {
    let mut actor = Actor {
        session: ClientSession::new(options.reconnect),
        receivers: Receivers::new(options.keys.clone()),
        options,
        shared,
        events,
        invites: HashMap::new(),
        member_pages: HashMap::new(),
        channel_pages: HashMap::new(),
        manages: HashMap::new(),
        admin_replies: HashMap::new(),
        posts: HashMap::new(),
    };
    loop {
        let attempt = tokio::time::timeout(
            ATTEMPT_TIMEOUT.max(actor.options.handshake_timeout / 4),
            connect::connect(&endpoint, &actor.options),
        );
        let error = match attempt.await {
            Ok(Ok(established)) => match actor.connected(established, &mut commands).await {
                Ended::Shutdown => break,
                Ended::Lost(error) => error,
            },
            Ok(Err(error)) => error,
            Err(_) => ClientError::Connection(quinn::ConnectionError::TimedOut),
        };
        let decision = actor.session.lost(Instant::now(), error.failure());
        // Posts in flight are not answered on a new connection: their callers post again.
        for (_, replies) in actor.posts.drain() {
            for reply in replies {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
        }
        actor.drain_session().await;
        match decision {
            Reconnect::Stop => {
                info!("client stopped: {error}");
                actor.emit(ClientEvent::Stopped(Arc::new(error))).await;
                break;
            }
            Reconnect::After(retry_in) => {
                debug!("disconnected: {error}; retrying in {retry_in:?}");
                actor
                    .emit(ClientEvent::Disconnected {
                        reason: error.to_string(),
                        retry_in,
                    })
                    .await;
                if !actor.wait(retry_in, &mut commands).await {
                    break;
                }
            }
        }
    }
    endpoint.close(close_code::NORMAL.into(), b"client stopped");
}

/// The relay finished the control stream: it closes the connection next, with its reason
/// (after an `Error` frame, as a relay does when it cuts off a member).
async fn stream_ended(connection: &quinn::Connection) -> ClientError {
    match tokio::time::timeout(STREAM_END_GRACE, connection.closed()).await {
        Ok(error) => connection_error(error),
        Err(_) => ClientError::Protocol("the relay ended the control stream".into()),
    }
}

struct Actor {
    options: ClientOptions,
    shared: Arc<Shared>,
    events: mpsc::Sender<ClientEvent>,
    receivers: Receivers,
    session: ClientSession,
    invites: HashMap<RequestId, InviteReply>,
    member_pages: HashMap<RequestId, MembersReply>,
    channel_pages: HashMap<RequestId, PageReply>,
    manages: HashMap<RequestId, ManageReply>,
    admin_replies: HashMap<RequestId, AdminReply>,
    /// Posts waiting for the relay's answer, by channel and message id.
    posts: HashMap<(u32, [u8; 16]), Vec<PostReply>>,
}

impl Actor {
    /// Waits `delay` while taking commands; false if the handle was dropped.
    async fn wait(&mut self, delay: Duration, commands: &mut mpsc::Receiver<Command>) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                command = commands.recv() => match command {
                    None => return false,
                    Some(command) => self.command(command),
                },
            }
        }
    }

    /// Hands a user's request to the session.
    fn command(&mut self, command: Command) {
        match command {
            Command::JoinVoice(channel_id) => {
                self.session.join_voice(channel_id, new_session_salt());
            }
            Command::Admin { frame, reply } => match self.session.admin_request(frame) {
                Some(request) => {
                    self.admin_replies.insert(request, reply);
                }
                None => {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            },
            Command::LeaveVoice => {
                self.session.leave_voice();
                *self
                    .shared
                    .seat
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
                self.shared.voice.store(None);
                self.receivers.clear();
            }
            Command::Group(frame) => {
                // Dropped while disconnected: the group logic syncs again on reconnecting.
                self.session.send_unqueued(frame);
            }
            Command::Ephemeral(frame) => {
                // Presence and typing: dropped while disconnected (presence is sent again on
                // reconnecting).
                self.session.send_unqueued(frame);
            }
            Command::PostMessage {
                channel_id,
                message_id,
                envelope,
                files,
                retracts,
                reply,
            } => {
                let frame = ControlFrame::PostMessage {
                    channel_id,
                    message_id,
                    envelope,
                    files,
                    retracts,
                };
                if self.session.send_unqueued(frame) {
                    self.posts
                        .entry((channel_id, message_id))
                        .or_default()
                        .push(reply);
                } else {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            }
            Command::ReadChannel {
                channel_id,
                after,
                limit,
                reply,
            } => match self.session.read_channel(channel_id, after, limit) {
                Some(request) => {
                    self.channel_pages.insert(request, reply);
                }
                None => {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            },
            Command::ManageChannel { change, reply } => match self.session.manage_channel(change) {
                Some(request) => {
                    self.manages.insert(request, reply);
                }
                None => {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            },
            Command::ListMembers { after, reply } => match self.session.list_members(after) {
                Some(request) => {
                    self.member_pages.insert(request, reply);
                }
                None => {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            },
            Command::CreateInvite {
                expires_in,
                max_uses,
                grant,
                reply,
            } => {
                let expires_in_secs =
                    expires_in.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
                match self.session.create_invite(expires_in_secs, max_uses, grant) {
                    Some(request) => {
                        self.invites.insert(request, reply);
                    }
                    None => {
                        let _ = reply.send(Err(ClientError::NotConnected));
                    }
                }
            }
        }
    }

    /// Runs one authenticated connection until it ends.
    async fn connected(
        &mut self,
        established: Established,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Ended {
        let Established {
            connection,
            mut control,
            member_id,
            server,
            channels,
        } = established;
        info!(member = member_id, server = %server.name, "connected to relay");
        self.shared.counters.connected();
        self.shared
            .connection
            .store(Some(Arc::new(connection.clone())));
        self.receivers.clear();
        self.session.connected(Instant::now(), new_session_salt());
        let presence = self
            .shared
            .presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some((presence, status)) = presence {
            self.session
                .send_unqueued(ControlFrame::SetPresence { presence, status });
        }
        // Every client keeps the role book: it decides what others' messages may do.
        self.session.send_unqueued(ControlFrame::ReadRoles);
        if let Some(group_events) = &self.options.group_events {
            let _ = group_events
                .send(GroupEvent::Connected {
                    server: server.clone(),
                    channels: channels.clone(),
                })
                .await;
        }
        self.emit(ClientEvent::Connected {
            member_id,
            server,
            channels,
        })
        .await;
        let ended = self.pump(&connection, &mut control, commands).await;
        if matches!(ended, Ended::Shutdown) {
            connection.close(close_code::NORMAL.into(), b"bye");
        }
        self.shared.voice.store(None);
        self.shared.connection.store(None);
        self.receivers.clear();
        ended
    }

    /// Moves bytes between the connection and the session until one side ends.
    async fn pump(
        &mut self,
        connection: &quinn::Connection,
        control: &mut ControlStream,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Ended {
        loop {
            while let Some(frame) = self.session.poll_transmit() {
                if let Err(error) = control.send(&frame).await {
                    return Ended::Lost(error.into());
                }
            }
            if let Err(error) = self.apply_session_events(connection).await {
                return Ended::Lost(error);
            }
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return Ended::Shutdown,
                },
                frame = control.recv() => match frame {
                    Ok(Some(frame)) => {
                        if let Err(error) = self.session.handle_frame(frame) {
                            return Ended::Lost(error.into());
                        }
                    }
                    Ok(None) => return Ended::Lost(stream_ended(connection).await),
                    Err(StreamError::Read(quinn::ReadError::ConnectionLost(error))) => {
                        return Ended::Lost(connection_error(error));
                    }
                    Err(error) => return Ended::Lost(error.into()),
                },
                datagram = connection.read_datagram() => match datagram {
                    Ok(datagram) => self.handle_datagram(datagram),
                    Err(error) => return Ended::Lost(connection_error(error)),
                },
            }
        }
    }

    /// Acts on what the session decided while connected.
    async fn apply_session_events(
        &mut self,
        connection: &quinn::Connection,
    ) -> Result<(), ClientError> {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::VoiceJoined {
                    channel_id,
                    slot,
                    session_salt,
                } => {
                    *self
                        .shared
                        .seat
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                        Some((channel_id, slot, session_salt));
                    self.receivers.set_own_slot(channel_id, slot);
                    self.shared.install_sender(connection);
                    self.emit(ClientEvent::VoiceJoined { channel_id, slot })
                        .await;
                }
                other => self.answer(other).await,
            }
        }
        Ok(())
    }

    /// Acts on what the session decided after the connection went away.
    async fn drain_session(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.answer(event).await;
        }
    }

    /// Delivers answers and roster changes to the user.
    async fn answer(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Roster {
                channel_id,
                participants,
            } => {
                self.receivers.apply_roster(channel_id, &participants);
                self.emit(ClientEvent::Roster {
                    channel_id,
                    participants,
                })
                .await;
            }
            SessionEvent::RosterChanged {
                channel_id,
                joined,
                left,
            } => {
                self.receivers.apply_changes(&joined, &left);
                self.emit(ClientEvent::RosterChanged {
                    channel_id,
                    joined,
                    left,
                })
                .await;
            }
            SessionEvent::InviteCreated { request, token } => {
                if let Some(reply) = self.invites.remove(&request) {
                    let link = InviteLink {
                        token,
                        ..self.options.link.clone()
                    };
                    let _ = reply.send(Ok(link));
                }
            }
            SessionEvent::RequestFailed {
                request,
                code,
                message,
            } => {
                if let Some(reply) = request.and_then(|request| self.invites.remove(&request)) {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: message.clone(),
                    }));
                }
                if let Some(reply) = request.and_then(|request| self.channel_pages.remove(&request))
                {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: message.clone(),
                    }));
                }
                if let Some(reply) = request.and_then(|request| self.member_pages.remove(&request))
                {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: message.clone(),
                    }));
                }
                if let Some(reply) = request.and_then(|request| self.manages.remove(&request)) {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: message.clone(),
                    }));
                }
                if let Some(reply) = request.and_then(|request| self.admin_replies.remove(&request))
                {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: message.clone(),
                    }));
                }
                self.emit(ClientEvent::RequestFailed { code, message })
                    .await;
            }
            SessionEvent::RequestAbandoned(request) => {
                if let Some(reply) = self.invites.remove(&request) {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
                if let Some(reply) = self.member_pages.remove(&request) {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
                if let Some(reply) = self.channel_pages.remove(&request) {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
                if let Some(reply) = self.manages.remove(&request) {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
                if let Some(reply) = self.admin_replies.remove(&request) {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
            }
            SessionEvent::Answered { request, frame } => {
                if let Some(reply) = self.admin_replies.remove(&request) {
                    let _ = reply.send(Ok(frame));
                }
            }
            SessionEvent::ChannelManaged {
                request,
                channel_id,
            } => {
                if let Some(reply) = self.manages.remove(&request) {
                    let _ = reply.send(Ok(channel_id));
                }
            }
            SessionEvent::ChannelPage {
                request,
                messages,
                more,
            } => {
                if let Some(reply) = self.channel_pages.remove(&request) {
                    let _ = reply.send(Ok((messages, more)));
                }
            }
            SessionEvent::Chat(frame) => self.on_chat(frame).await,
            SessionEvent::Members {
                request,
                members,
                more,
            } => {
                if let Some(reply) = self.member_pages.remove(&request) {
                    let _ = reply.send(Ok((members, more)));
                }
            }
            SessionEvent::Group(frame) => match &self.options.group_events {
                Some(group_events) => {
                    let _ = group_events.send(GroupEvent::Frame(frame)).await;
                }
                None => self.emit(ClientEvent::Group(frame)).await,
            },
            // Only possible while connected; handled by `apply_session_events`.
            SessionEvent::VoiceJoined { .. } => {}
        }
    }

    fn handle_datagram(&mut self, datagram: Bytes) {
        match self.receivers.open(datagram) {
            Ok(opened) => {
                self.shared.counters.received();
                let frame = MediaFrame {
                    sender_slot: opened.header.sender,
                    member_id: opened.member_id,
                    stream: opened.header.stream,
                    counter: opened.header.counter,
                    payload: opened.payload,
                };
                if self.events.try_send(ClientEvent::Media(frame)).is_err() {
                    self.shared.counters.dropped();
                }
            }
            Err(error) => {
                debug!("dropped datagram: {error}");
                self.shared.counters.dropped();
            }
        }
    }

    /// Answers our posts and passes new messages on.
    async fn on_chat(&mut self, frame: ControlFrame) {
        match frame {
            ControlFrame::MessagePosted {
                channel_id,
                message_id,
                seq,
                posted_at,
            } => {
                for reply in self
                    .posts
                    .remove(&(channel_id, message_id))
                    .unwrap_or_default()
                {
                    let _ = reply.send(Ok(Posted { seq, posted_at }));
                }
            }
            ControlFrame::PostRefused {
                channel_id,
                message_id,
                code,
                reason,
            } => {
                for reply in self
                    .posts
                    .remove(&(channel_id, message_id))
                    .unwrap_or_default()
                {
                    let _ = reply.send(Err(ClientError::Refused {
                        code,
                        message: reason.clone(),
                    }));
                }
            }
            ControlFrame::NewMessage(message) => self.emit(ClientEvent::Message(message)).await,
            ControlFrame::ChannelsChanged { channels } => {
                if let Some(group_events) = &self.options.group_events {
                    let _ = group_events
                        .send(GroupEvent::ChannelsChanged(channels.clone()))
                        .await;
                }
                self.emit(ClientEvent::ChannelsChanged(channels)).await;
            }
            ControlFrame::PresenceUpdate { members } => {
                self.emit(ClientEvent::Presence(members)).await;
            }
            ControlFrame::Roles(book) => {
                self.shared.roles.send_replace(Some(Arc::new(*book)));
            }
            ControlFrame::MemberTyping {
                channel_id,
                member_id,
            } => {
                self.emit(ClientEvent::Typing {
                    channel_id,
                    member_id,
                })
                .await;
            }
            other => debug!("ignored {} among message frames", other.name()),
        }
    }

    async fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event).await;
    }
}
