//! The client's session after the handshake, as a sans-IO state machine: which voice channel we
//! want to be in, the requests waiting for answers (the relay answers in order), the checks on
//! every answer, the voice channel's roster, and when to reconnect after losing the relay.
//!
//! It reads no clock and touches no socket. Tell it what happened — [`ClientSession::connected`],
//! [`ClientSession::handle_frame`], [`ClientSession::lost`], and the user's requests — then send
//! what [`ClientSession::poll_transmit`] yields and act on what [`ClientSession::poll_event`]
//! yields. The async client only moves bytes between it and the connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::control::{
    ControlFrame, ErrorCode, InviteToken, ListedMember, Participant, SessionSalt, StoredMessage,
};

/// A connection that lasted this long counts as healthy: the next loss retries quickly again.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Failures that look like a protocol mismatch are retried this many times in a row, then the
/// client gives up (a relay restarting mid-frame can cause one; a real mismatch repeats).
pub const SUSPECT_RETRIES: u32 = 3;

/// Identifies one request whose answer the caller waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// How a lost connection should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The network or the relay went away: retry for as long as it takes.
    Transient,
    /// One side broke the protocol: retry a few times, then give up.
    Suspect,
    /// Retrying cannot help (refused, wrong relay, replaced): stop.
    Permanent,
}

/// What to do after losing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Try again after this long.
    After(Duration),
    /// Stop for good.
    Stop,
}

/// Retry timing: the first wait, doubling up to the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait between retries.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        // Fast first retries so a restarted relay has everyone back within a second or two.
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

/// What the session tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// We are in `channel_id` and send with `slot`; media keys derive from `session_salt`.
    VoiceJoined {
        /// The channel.
        channel_id: u32,
        /// Our sender slot.
        slot: u16,
        /// The salt we joined with.
        session_salt: SessionSalt,
    },
    /// Everyone in our voice channel (ourselves included), sent once after joining.
    Roster {
        /// The channel.
        channel_id: u32,
        /// Everyone in it.
        participants: Vec<Participant>,
    },
    /// Who joined and who left our voice channel since the last roster event. Remove the `left`
    /// slots, then put each `joined` participant in its slot, replacing whoever held it.
    RosterChanged {
        /// The channel.
        channel_id: u32,
        /// Participants who now hold these slots.
        joined: Vec<Participant>,
        /// Slots that are now empty.
        left: Vec<u16>,
    },
    /// An invite was made.
    InviteCreated {
        /// The request.
        request: RequestId,
        /// Its token.
        token: InviteToken,
    },
    /// A page of the server's member list came.
    Members {
        /// The request.
        request: RequestId,
        /// The members, by ascending id.
        members: Vec<ListedMember>,
        /// Whether more follow.
        more: bool,
    },
    /// A channel change was made.
    ChannelManaged {
        /// The request.
        request: RequestId,
        /// The channel.
        channel_id: u32,
    },
    /// A page of a channel's history came.
    ChannelPage {
        /// The request.
        request: RequestId,
        /// The messages, by ascending seq.
        messages: Vec<StoredMessage>,
        /// Whether more follow.
        more: bool,
    },
    /// A message frame outside the request queue: `MessagePosted`, `PostRefused` (answers to
    /// our posts, matched by message id) or `NewMessage` (a push).
    Chat(ControlFrame),
    /// The relay refused a request; `request` is none for a voice join.
    RequestFailed {
        /// The invite request refused, if it was one.
        request: Option<RequestId>,
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// A request will never be answered: the connection went away first.
    RequestAbandoned(RequestId),
    /// An administrative request was answered (`RolesManaged`, `Moderated` or `AuditLog`).
    Answered {
        /// The request.
        request: RequestId,
        /// The answer.
        frame: ControlFrame,
    },
    /// A group frame from the relay (MLS delivery); group frames never take part in the
    /// request queue, so the client's group logic handles them on its own.
    Group(ControlFrame),
}

/// The relay broke the session's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An answer arrived that no request of ours asked for.
    #[error("{0} without a request")]
    Unsolicited(&'static str),
    /// `VoiceJoined` named another channel than the join waiting for an answer.
    #[error("VoiceJoined for channel {got}, but we asked for channel {asked}")]
    WrongChannel {
        /// What we asked for.
        asked: u32,
        /// What the relay answered.
        got: u32,
    },
    /// A frame that only a client sends, or only belongs in the handshake.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
}

#[derive(Debug)]
enum Pending {
    Join {
        channel_id: u32,
        session_salt: SessionSalt,
        /// We left before the answer came: the answer is consumed and ignored.
        cancelled: bool,
    },
    Invite(RequestId),
    Members(RequestId),
    Read(RequestId),
    Manage(RequestId),
    /// Roles, moderation or the audit log.
    Admin(RequestId),
}

impl Pending {
    /// The id of a request the user waits on (invites and member lists).
    fn request(&self) -> Option<RequestId> {
        match self {
            Self::Invite(request)
            | Self::Members(request)
            | Self::Read(request)
            | Self::Manage(request)
            | Self::Admin(request) => Some(*request),
            Self::Join { .. } => None,
        }
    }
}

/// The client's session state; see the module documentation.
#[derive(Debug)]
pub struct ClientSession {
    backoff: Backoff,
    wanted_voice: Option<u32>,
    connected_at: Option<Instant>,
    pending: VecDeque<Pending>,
    /// The voice channel we are in (answered), whose rosters we pass on.
    voice: Option<u32>,
    next_request: u64,
    next_wait: Duration,
    suspect_in_a_row: u32,
    transmit: VecDeque<ControlFrame>,
    events: VecDeque<SessionEvent>,
}

impl ClientSession {
    /// A session not yet connected.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            wanted_voice: None,
            connected_at: None,
            pending: VecDeque::new(),
            voice: None,
            next_request: 0,
            next_wait: backoff.initial,
            suspect_in_a_row: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    /// The voice channel we want to be in (we rejoin it after reconnecting).
    pub fn wanted_voice(&self) -> Option<u32> {
        self.wanted_voice
    }

    /// The relay admitted us at `now`. `session_salt` is fresh randomness for rejoining the voice
    /// channel we were in, if any.
    pub fn connected(&mut self, now: Instant, session_salt: SessionSalt) {
        self.connected_at = Some(now);
        self.pending.clear();
        self.voice = None;
        if let Some(channel_id) = self.wanted_voice {
            self.send_join(channel_id, session_salt);
        }
    }

    /// Asks to join `channel_id` (leaving any other) with a fresh `session_salt`. While
    /// disconnected, only remembers it for the next connection.
    pub fn join_voice(&mut self, channel_id: u32, session_salt: SessionSalt) {
        self.wanted_voice = Some(channel_id);
        if self.is_connected() {
            self.send_join(channel_id, session_salt);
        }
    }

    /// Leaves the voice channel (no answer comes for this).
    pub fn leave_voice(&mut self) {
        self.wanted_voice = None;
        self.voice = None;
        for pending in &mut self.pending {
            if let Pending::Join { cancelled, .. } = pending {
                *cancelled = true;
            }
        }
        if self.is_connected() {
            self.transmit.push_back(ControlFrame::LeaveVoice);
        }
    }

    /// Asks for an invite; none while disconnected.
    pub fn create_invite(
        &mut self,
        expires_in_secs: Option<u32>,
        max_uses: Option<u32>,
        grant: Option<Vec<u8>>,
    ) -> Option<RequestId> {
        if !self.is_connected() {
            return None;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending::Invite(request));
        self.transmit.push_back(ControlFrame::CreateInvite {
            expires_in_secs,
            max_uses,
            grant,
        });
        Some(request)
    }

    /// Asks for a page of the member list (ids above `after`); none while disconnected.
    pub fn list_members(&mut self, after: u32) -> Option<RequestId> {
        if !self.is_connected() {
            return None;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending::Members(request));
        self.transmit.push_back(ControlFrame::ListMembers { after });
        Some(request)
    }

    /// Asks to create, change or delete a channel; none while disconnected.
    pub fn manage_channel(
        &mut self,
        change: crate::proto::control::ChannelChange,
    ) -> Option<RequestId> {
        if !self.is_connected() {
            return None;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending::Manage(request));
        self.transmit.push_back(ControlFrame::ManageChannel(change));
        Some(request)
    }

    /// Sends an administrative request: `ManageRoles`, `Moderate` or `ReadAudit`, answered
    /// with [`SessionEvent::Answered`]; none while disconnected.
    pub fn admin_request(&mut self, frame: ControlFrame) -> Option<RequestId> {
        if !self.is_connected() {
            return None;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending::Admin(request));
        self.transmit.push_back(frame);
        Some(request)
    }

    /// Asks for a page of a channel's history (after `after`); none while disconnected.
    pub fn read_channel(&mut self, channel_id: u32, after: u64, limit: u16) -> Option<RequestId> {
        if !self.is_connected() {
            return None;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending::Read(request));
        self.transmit.push_back(ControlFrame::ReadChannel {
            channel_id,
            after,
            limit,
        });
        Some(request)
    }

    /// Sends a frame outside the request queue (group frames, message posts: their answers
    /// are matched by their own ids); false while disconnected.
    pub fn send_unqueued(&mut self, frame: ControlFrame) -> bool {
        if !self.is_connected() {
            return false;
        }
        self.transmit.push_back(frame);
        true
    }

    fn send_join(&mut self, channel_id: u32, session_salt: SessionSalt) {
        self.pending.push_back(Pending::Join {
            channel_id,
            session_salt,
            cancelled: false,
        });
        self.transmit.push_back(ControlFrame::JoinVoice {
            channel_id,
            session_salt,
        });
    }

    /// A frame from the relay. An error means the relay broke the protocol: end the connection.
    pub fn handle_frame(&mut self, frame: ControlFrame) -> Result<(), SessionError> {
        match frame {
            ControlFrame::VoiceJoined { channel_id, slot } => {
                self.on_voice_joined(channel_id, slot)
            }
            ControlFrame::Roster {
                channel_id,
                participants,
            } => {
                if self.voice == Some(channel_id) {
                    self.events.push_back(SessionEvent::Roster {
                        channel_id,
                        participants,
                    });
                }
                Ok(())
            }
            ControlFrame::RosterChanged {
                channel_id,
                joined,
                left,
            } => {
                // Rosters of a channel we left or never entered are stale: ignore them.
                if self.voice == Some(channel_id) {
                    self.events.push_back(SessionEvent::RosterChanged {
                        channel_id,
                        joined,
                        left,
                    });
                }
                Ok(())
            }
            ControlFrame::InviteCreated { token, .. } => match self.pending.pop_front() {
                Some(Pending::Invite(request)) => {
                    self.events
                        .push_back(SessionEvent::InviteCreated { request, token });
                    Ok(())
                }
                _ => Err(SessionError::Unsolicited("InviteCreated")),
            },
            ControlFrame::ChannelMessages { messages, more, .. } => {
                match self.pending.pop_front() {
                    Some(Pending::Read(request)) => {
                        self.events.push_back(SessionEvent::ChannelPage {
                            request,
                            messages,
                            more,
                        });
                        Ok(())
                    }
                    _ => Err(SessionError::Unsolicited("ChannelMessages")),
                }
            }
            chat @ (ControlFrame::MessagePosted { .. }
            | ControlFrame::PostRefused { .. }
            | ControlFrame::NewMessage(_)
            | ControlFrame::PresenceUpdate { .. }
            | ControlFrame::MemberTyping { .. }
            | ControlFrame::Roles(_)
            | ControlFrame::ChannelsChanged { .. }) => {
                self.events.push_back(SessionEvent::Chat(chat));
                Ok(())
            }
            ControlFrame::ChannelManaged { channel_id } => match self.pending.pop_front() {
                Some(Pending::Manage(request)) => {
                    self.events.push_back(SessionEvent::ChannelManaged {
                        request,
                        channel_id,
                    });
                    Ok(())
                }
                _ => Err(SessionError::Unsolicited("ChannelManaged")),
            },
            answer @ (ControlFrame::RolesManaged
            | ControlFrame::Moderated { .. }
            | ControlFrame::AuditLog { .. }) => match self.pending.pop_front() {
                Some(Pending::Admin(request)) => {
                    self.events.push_back(SessionEvent::Answered {
                        request,
                        frame: answer,
                    });
                    Ok(())
                }
                _ => Err(SessionError::Unsolicited(answer.name())),
            },
            ControlFrame::MemberList { members, more } => match self.pending.pop_front() {
                Some(Pending::Members(request)) => {
                    self.events.push_back(SessionEvent::Members {
                        request,
                        members,
                        more,
                    });
                    Ok(())
                }
                _ => Err(SessionError::Unsolicited("MemberList")),
            },
            ControlFrame::Error { code, message } => {
                self.on_error(code, message);
                Ok(())
            }
            group @ (ControlFrame::GroupStatus { .. }
            | ControlFrame::CommitAccepted { .. }
            | ControlFrame::GroupRefused { .. }
            | ControlFrame::GroupMessage { .. }
            | ControlFrame::GroupWelcome { .. }
            | ControlFrame::JoinRequested { .. }
            | ControlFrame::JoinPending { .. }
            | ControlFrame::KeyPackagesStored { .. }
            | ControlFrame::KeyPackageClaimed { .. }
            | ControlFrame::Conversations { .. }) => {
                self.events.push_back(SessionEvent::Group(group));
                Ok(())
            }
            other => Err(SessionError::Unexpected(other.name())),
        }
    }

    fn on_voice_joined(&mut self, channel_id: u32, slot: u16) -> Result<(), SessionError> {
        let Some(Pending::Join {
            channel_id: asked,
            session_salt,
            cancelled,
        }) = self.pending.pop_front()
        else {
            return Err(SessionError::Unsolicited("VoiceJoined"));
        };
        if asked != channel_id {
            return Err(SessionError::WrongChannel {
                asked,
                got: channel_id,
            });
        }
        if cancelled {
            // Our LeaveVoice, sent after, takes us out again: nothing to set up.
            return Ok(());
        }
        self.voice = Some(channel_id);
        self.events.push_back(SessionEvent::VoiceJoined {
            channel_id,
            slot,
            session_salt,
        });
        Ok(())
    }

    fn on_error(&mut self, code: ErrorCode, message: String) {
        let request = match self.pending.pop_front() {
            Some(
                Pending::Invite(request)
                | Pending::Members(request)
                | Pending::Read(request)
                | Pending::Manage(request)
                | Pending::Admin(request),
            ) => Some(request),
            // A join we gave up on: its refusal changes nothing.
            Some(Pending::Join {
                cancelled: true, ..
            }) => return,
            Some(Pending::Join { channel_id, .. }) => {
                let another_join_pending = self.pending.iter().any(|p| {
                    matches!(
                        p,
                        Pending::Join {
                            cancelled: false,
                            ..
                        }
                    )
                });
                // The relay leaves us where we were: want that after a reconnect, not the
                // channel that refused us.
                if self.wanted_voice == Some(channel_id) && !another_join_pending {
                    self.wanted_voice = self.voice;
                }
                None
            }
            None => None,
        };
        self.events.push_back(SessionEvent::RequestFailed {
            request,
            code,
            message,
        });
    }

    /// The connection ended at `now` (or an attempt failed) in a way `failure` describes. Every
    /// request in flight is abandoned; the answer says whether and when to try again.
    pub fn lost(&mut self, now: Instant, failure: Failure) -> Reconnect {
        let was_stable = self
            .connected_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) >= STABLE_CONNECTION);
        for pending in std::mem::take(&mut self.pending) {
            if let Some(request) = pending.request() {
                self.events
                    .push_back(SessionEvent::RequestAbandoned(request));
            }
        }
        self.voice = None;
        self.transmit.clear();
        if was_stable {
            self.next_wait = self.backoff.initial;
            self.suspect_in_a_row = 0;
        }
        match failure {
            Failure::Permanent => return Reconnect::Stop,
            Failure::Suspect => {
                self.suspect_in_a_row += 1;
                if self.suspect_in_a_row > SUSPECT_RETRIES {
                    return Reconnect::Stop;
                }
            }
            Failure::Transient => self.suspect_in_a_row = 0,
        }
        let wait = self.next_wait;
        self.next_wait = (self.next_wait * 2).min(self.backoff.max);
        Reconnect::After(wait)
    }

    /// The next frame to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        self.transmit.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
