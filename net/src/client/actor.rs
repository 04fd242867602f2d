//! The client's background task: connect, run the session, reconnect with backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::client::connect::{self, Established, connection_error};
use crate::client::receivers::Receivers;
use crate::client::{
    ClientError, ClientEvent, ClientOptions, Command, MediaFrame, Shared, VoiceSender,
};
use crate::crypto::{SenderContext, new_session_salt};
use crate::invite::InviteLink;
use crate::proto::control::{ControlFrame, SessionSalt};
use crate::proto::datagram::MediaSealer;
use crate::transport::{StreamError, close_code};

/// How long one connection attempt may take before the next one starts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a session ended.
enum Ended {
    /// The handle was dropped.
    Shutdown,
    /// The connection was lost; retry.
    Lost(ClientError),
}

/// A request waiting for the relay's answer (the relay answers in order).
enum Pending {
    Join,
    Invite {
        reply: tokio::sync::oneshot::Sender<Result<InviteLink, ClientError>>,
    },
}

pub(crate) async fn run(
    options: ClientOptions,
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
) {
    let mut actor = Actor {
        receivers: Receivers::new(options.keys.clone()),
        options,
        shared,
        events,
        wanted_voice: None,
    };
    let mut backoff = actor.options.reconnect.initial;
    loop {
        let attempt = tokio::time::timeout(
            ATTEMPT_TIMEOUT.max(actor.options.handshake_timeout / 4),
            connect::connect(&endpoint, &actor.options),
        );
        let error = match attempt.await {
            Ok(Ok(established)) => {
                backoff = actor.options.reconnect.initial;
                match actor.session(established, &mut commands).await {
                    Ended::Shutdown => break,
                    Ended::Lost(error) => error,
                }
            }
            Ok(Err(error)) => error,
            Err(_) => ClientError::Connection(quinn::ConnectionError::TimedOut),
        };
        if error.is_fatal() {
            info!("client stopped: {error}");
            let _ = actor
                .events
                .send(ClientEvent::Stopped(Arc::new(error)))
                .await;
            break;
        }
        debug!("disconnected: {error}; retrying in {backoff:?}");
        let _ = actor
            .events
            .send(ClientEvent::Disconnected {
                reason: error.to_string(),
                retry_in: backoff,
            })
            .await;
        if !actor.wait(backoff, &mut commands).await {
            break;
        }
        backoff = (backoff * 2).min(actor.options.reconnect.max);
    }
    endpoint.close(close_code::NORMAL.into(), b"client stopped");
}

struct Actor {
    options: ClientOptions,
    shared: Arc<Shared>,
    events: mpsc::Sender<ClientEvent>,
    receivers: Receivers,
    wanted_voice: Option<u32>,
}

impl Actor {
    /// Waits `delay` while answering commands; false if the handle was dropped.
    async fn wait(&mut self, delay: Duration, commands: &mut mpsc::Receiver<Command>) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                command = commands.recv() => match command {
                    None => return false,
                    Some(Command::JoinVoice(channel)) => self.wanted_voice = Some(channel),
                    Some(Command::LeaveVoice) => self.wanted_voice = None,
                    Some(Command::CreateInvite { reply, .. }) => {
                        let _ = reply.send(Err(ClientError::NotConnected));
                    }
                },
            }
        }
    }

    async fn session(
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
        let _ = self
            .events
            .send(ClientEvent::Connected {
                member_id,
                server,
                channels,
            })
            .await;
        let mut pending = std::collections::VecDeque::new();
        let mut salt: Option<(u32, SessionSalt)> = None;
        if let Some(channel_id) = self.wanted_voice {
            let session_salt = new_session_salt();
            salt = Some((channel_id, session_salt));
            if let Err(error) = control
                .send(&ControlFrame::JoinVoice {
                    channel_id,
                    session_salt,
                })
                .await
            {
                return self.end(Ended::Lost(error.into()));
            }
            pending.push_back(Pending::Join);
        }
        let ended = loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break Ended::Shutdown };
                    let frame = match command {
                        Command::JoinVoice(channel_id) => {
                            self.wanted_voice = Some(channel_id);
                            let session_salt = new_session_salt();
                            salt = Some((channel_id, session_salt));
                            pending.push_back(Pending::Join);
                            ControlFrame::JoinVoice { channel_id, session_salt }
                        }
                        Command::LeaveVoice => {
                            self.wanted_voice = None;
                            self.shared.voice.store(None);
                            self.receivers.clear();
                            ControlFrame::LeaveVoice
                        }
                        Command::CreateInvite { expires_in, max_uses, reply } => {
                            let expires_in_secs = expires_in.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
                            pending.push_back(Pending::Invite { reply });
                            ControlFrame::CreateInvite { expires_in_secs, max_uses }
                        }
                    };
                    if let Err(error) = control.send(&frame).await {
                        break Ended::Lost(error.into());
                    }
                }
                frame = control.recv() => match frame {
                    Ok(Some(frame)) => {
                        if let Err(error) = self.handle_frame(frame, &connection, &mut pending, salt).await {
                            break Ended::Lost(error);
                        }
                    }
                    Ok(None) => break Ended::Lost(ClientError::Protocol("the relay ended the control stream".into())),
                    Err(StreamError::Read(quinn::ReadError::ConnectionLost(error))) => {
                        break Ended::Lost(connection_error(error));
                    }
                    Err(error) => break Ended::Lost(error.into()),
                },
                datagram = connection.read_datagram() => match datagram {
                    Ok(datagram) => self.handle_datagram(datagram),
                    Err(error) => break Ended::Lost(connection_error(error)),
                },
            }
        };
        for request in pending {
            if let Pending::Invite { reply } = request {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
        }
        if matches!(ended, Ended::Shutdown) {
            connection.close(close_code::NORMAL.into(), b"bye");
        }
        self.end(ended)
    }

    fn end(&mut self, ended: Ended) -> Ended {
        self.shared.voice.store(None);
        self.shared.connection.store(None);
        self.receivers.clear();
        ended
    }

    async fn handle_frame(
        &mut self,
        frame: ControlFrame,
        connection: &quinn::Connection,
        pending: &mut std::collections::VecDeque<Pending>,
        salt: Option<(u32, SessionSalt)>,
    ) -> Result<(), ClientError> {
        match frame {
            ControlFrame::VoiceJoined { channel_id, slot } => {
                let Some(Pending::Join) = pending.pop_front() else {
                    return Err(ClientError::Protocol(
                        "VoiceJoined without a join request".into(),
                    ));
                };
                let Some((salt_channel, session_salt)) =
                    salt.filter(|(channel, _)| *channel == channel_id)
                else {
                    return Err(ClientError::Protocol(
                        "VoiceJoined for a channel we did not ask for".into(),
                    ));
                };
                let context = SenderContext {
                    channel_id: salt_channel,
                    public_key: self.options.identity.public_key(),
                    session_salt,
                };
                let key_id = self.options.keys.current_key_id();
                let key = self
                    .options
                    .keys
                    .media_key(&context, key_id)
                    .map_err(|error| ClientError::Protocol(format!("no media key: {error}")))?;
                self.shared.voice.store(Some(Arc::new(VoiceSender {
                    connection: connection.clone(),
                    sealer: Mutex::new(MediaSealer::new(&key, key_id, slot)),
                })));
                self.receivers.set_own_slot(channel_id, slot);
                self.emit(ClientEvent::VoiceJoined { channel_id, slot })
                    .await;
            }
            ControlFrame::Roster {
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
            ControlFrame::InviteCreated { token, .. } => {
                let Some(Pending::Invite { reply }) = pending.pop_front() else {
                    return Err(ClientError::Protocol(
                        "InviteCreated without a request".into(),
                    ));
                };
                let link = InviteLink {
                    token,
                    ..self.options.link.clone()
                };
                let _ = reply.send(Ok(link));
            }
            ControlFrame::Error { code, message } => {
                match pending.pop_front() {
                    Some(Pending::Invite { reply }) => {
                        let _ = reply.send(Err(ClientError::Refused {
                            code,
                            message: message.clone(),
                        }));
                    }
                    Some(Pending::Join) => self.wanted_voice = None,
                    None => {}
                }
                self.emit(ClientEvent::RequestFailed { code, message })
                    .await;
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "unexpected {} frame",
                    other.name()
                )));
            }
        }
        Ok(())
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

    async fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event).await;
    }
}
