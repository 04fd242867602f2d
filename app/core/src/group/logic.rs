//! What a member does in its server's MLS group, as plain code: frames in, frames out.
//!
//! It touches no socket or disk, and reads only the wall clock (to check invites' expiry).
//! Tell it what happened ([`GroupLogic::connected`], [`GroupLogic::handle`], and the user's
//! requests), then send what [`GroupLogic::poll_transmit`] yields, save what
//! [`GroupLogic::take_changes`] yields *before* sending (so a commit the relay may accept is
//! always on disk first), and act on [`GroupLogic::poll_event`].
//!
//! Rules it follows:
//! - the server's owner creates the group when the relay has none;
//! - a member not in the group asks to be let in with the invite secret it joined with;
//! - a member in the group admits waiting joiners whose invite proofs verify, and commits the
//!   proposals of members who asked to leave;
//! - our own commit is merged only once the relay accepted it (also after a restart, when the
//!   relay hands it back); a refused one is dropped and the work retried on the new epoch;
//! - a Welcome is taken only into a group the member who signed our invite is in (a relay
//!   cannot make up a group of its own to read what we send);
//! - each member rotates its own keys (a self-update commit) after [`ROTATE_AFTER_SECS`] or
//!   [`ROTATE_AFTER_MESSAGES`] messages sent, whichever comes first; [`GroupLogic::tick`]
//!   tells it the time.

use std::collections::VecDeque;

use sotto_net::group::{
    Group, GroupError, GroupMember, GroupProvider, InviteGrant, InviteSecret, JoinRequest,
    Outgoing, PrivacyCode, Received, StoreDelta, server_group_id,
};
use sotto_net::identity::Identity;
use std::sync::Arc;

use sotto_net::proto::control::{
    ChannelInfo, ChannelKind, ControlFrame, ConversationInfo, PublicKey,
};
use sotto_net::seal::text::TextSecret;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::store::{StoreChange, StoredGroup};

/// A member rotates its keys at least this often (seconds): 7 days.
pub const ROTATE_AFTER_SECS: u64 = 7 * 24 * 60 * 60;

/// A member rotates its keys after sending this many messages.
pub const ROTATE_AFTER_MESSAGES: u64 = 1_000;

/// Single-use KeyPackages a member keeps at the relay (so admins can add it while offline).
const KEY_PACKAGE_TARGET: u32 = 10;

/// Fewer than this many at the relay and the member uploads more.
const KEY_PACKAGE_LOW: u32 = 5;

/// The store's fact naming the member who signed the invite we are joining with.
const FACT_INVITER: &str = "inviter";

/// The store's fact recording our last key rotation: its time and the messages sent since.
const FACT_ROTATION: &str = "rotation";

/// When we last rotated our own keys, and how much we sent since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rotation {
    /// Unix seconds of our last self-update (or of joining).
    since: u64,
    /// Messages sent since.
    sent: u64,
}

impl Rotation {
    fn encode(self) -> Vec<u8> {
        [self.since.to_be_bytes(), self.sent.to_be_bytes()].concat()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let since = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let sent = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(Self { since, sent })
    }

    fn is_due(self, now_unix: u64) -> bool {
        now_unix.saturating_sub(self.since) >= ROTATE_AFTER_SECS
            || self.sent >= ROTATE_AFTER_MESSAGES
    }
}

/// A voice channel's media base key for an epoch.
pub type ChannelBase = (u32, Zeroizing<[u8; 32]>);

/// Where this member stands in its server's group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupState {
    /// Not connected yet, or waiting for the relay's answer.
    Connecting,
    /// The server has no group yet; its owner creates it when next online.
    NoGroupYet,
    /// Our request to be let in is stored; a member online lets us in.
    WaitingToBeLetIn {
        /// Members online who could.
        members_online: u32,
    },
    /// We are not in the group and hold no invite secret to prove we were invited.
    NoInvite,
    /// In the group.
    Member {
        /// The epoch.
        epoch: u64,
        /// The epoch's privacy code (equal for every member).
        privacy_code: PrivacyCode,
        /// Everyone in the group.
        members: Vec<GroupMember>,
    },
    /// We were removed from the group (kicked, or we left).
    Removed,
}

/// Something the front end or the connection should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogicEvent {
    /// The group's epoch changed: install new media keys and re-key our sender: at once when
    /// the commit removed someone (they must not read what we send next), else after a short
    /// delay so the others have the new keys before our media uses them.
    EpochChanged {
        /// The new epoch.
        epoch: u64,
        /// Whether the commit removed members.
        removal: bool,
    },
    /// A commit we asked for was accepted (`Ok`) or finally refused (`Err(reason)`).
    CommitSettled {
        /// What the commit was for.
        purpose: Purpose,
        /// The outcome.
        outcome: Result<(), String>,
    },
    /// The state changed.
    State(GroupState),
    /// Something went wrong that the member should hear about.
    Problem(String),
}

/// Why we made a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Admitting joiners.
    Admit,
    /// Removing members (an admin's kick).
    Remove,
    /// Rotating our keys when asked to.
    SelfUpdate,
    /// Rotating our keys because they were due (time or messages sent).
    Rotation,
    /// Committing members' requests to leave.
    Proposals,
    /// Adding a server member from the KeyPackage the relay keeps for it (admins).
    Add,
}

struct Pending {
    outgoing: Outgoing,
    purpose: Purpose,
    /// The join requests it admits (queued again if the commit is lost).
    admitted: Vec<JoinRequest>,
}

/// Our commit sent before a reconnection or restart, whose fate the relay's sync tells.
struct Unsettled {
    epoch: u64,
    commit: Vec<u8>,
    /// Why we made it; unknown after a restart (nobody waits for it then).
    purpose: Option<Purpose>,
    admitted: Vec<JoinRequest>,
}

/// A member's group logic for one group: its server's, or one conversation's.
pub struct GroupLogic {
    identity: Identity,
    /// Shared by all of a member's groups (a KeyPackage made for one joins another).
    provider: Arc<GroupProvider>,
    /// The conversation this group is for; none for the server's group.
    conversation: Option<ConversationInfo>,
    /// Conversation members the relay held no KeyPackage for, or would not let us add (not
    /// tried again on this connection).
    unreachable: Vec<PublicKey>,
    /// The conversation member our pending commit adds.
    adding: Option<PublicKey>,
    group_id: Vec<u8>,
    group: Option<Group>,
    invite: Option<InviteSecret>,
    /// Who signed the grant of the invite we are joining with.
    inviter: Option<PublicKey>,
    rotation: Option<Rotation>,
    /// The latest time [`Self::tick`] was given: the logic's clock never runs behind it.
    told_time: u64,
    pending: Option<Pending>,
    /// Our commit from before a restart, to recognise when the relay hands it back.
    restored_pending: Option<Unsettled>,
    /// A rotation whose commit lost its epoch to another: made again on the next epoch.
    retry: Option<Purpose>,
    join_queue: Vec<JoinRequest>,
    /// Whether our KeyPackages at the relay were topped up on this connection.
    key_packages_topped_up: bool,
    /// KeyPackage uploads (and queries) the relay has not answered yet.
    uploads_unanswered: u32,
    /// Members whose KeyPackage we asked the relay for, to add them.
    claims: Vec<PublicKey>,
    /// Whether the relay answered our last `GroupSync` (false from each (re)connection on).
    synced: bool,
    /// Our `GroupSync`s the relay has not answered yet (on this connection).
    syncs_unanswered: u32,
    /// The latest epoch the relay said the group is at.
    relay_epoch: Option<u64>,
    voice_channels: Vec<u32>,
    text_channels: Vec<u32>,
    state: GroupState,
    transmit: VecDeque<ControlFrame>,
    events: VecDeque<LogicEvent>,
    changes: Vec<StoreChange>,
}

impl std::fmt::Debug for GroupLogic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLogic")
            .field("group_id", &String::from_utf8_lossy(&self.group_id))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch (invite expiry is checked against it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl GroupLogic {
    /// The logic for `identity`, over a provider restored from disk, with the invite secret of
    /// the link we are joining with (if any).
    pub fn new(identity: Identity, provider: GroupProvider, invite: Option<InviteSecret>) -> Self {
        Self::with_provider(identity, Arc::new(provider), invite, None)
    }

    /// The logic of conversation `conversation`'s group, over the provider the server's
    /// logic uses ([`Self::shared_provider`]).
    pub fn for_conversation(
        identity: Identity,
        provider: Arc<GroupProvider>,
        conversation: ConversationInfo,
    ) -> Self {
        Self::with_provider(identity, provider, None, Some(conversation))
    }

    fn with_provider(
        identity: Identity,
        provider: Arc<GroupProvider>,
        invite: Option<InviteSecret>,
        conversation: Option<ConversationInfo>,
    ) -> Self {
        Self {
            identity,
            provider,
            conversation,
            unreachable: Vec::new(),
            adding: None,
            group_id: Vec::new(),
            group: None,
            invite,
            inviter: None,
            rotation: None,
            told_time: 0,
            pending: None,
            restored_pending: None,
            retry: None,
            join_queue: Vec::new(),
            key_packages_topped_up: false,
            uploads_unanswered: 0,
            claims: Vec::new(),
            synced: false,
            syncs_unanswered: 0,
            relay_epoch: None,
            voice_channels: Vec::new(),
            text_channels: Vec::new(),
            state: GroupState::Connecting,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            changes: Vec::new(),
        }
    }

    /// The relay admitted us to server `server_id`. `stored` is what the store kept for its
    /// group: our pending commit from before a restart, our invite secret and our facts.
    pub fn connected(&mut self, server_id: u32, channels: &[ChannelInfo], stored: StoredGroup) {
        let group_id = match &self.conversation {
            Some(conversation) => conversation.group_id.clone(),
            None => server_group_id(server_id),
        };
        if self.group_id != group_id {
            self.group_id = group_id;
            self.restored_pending =
                stored
                    .pending_commit
                    .clone()
                    .map(|(epoch, commit)| Unsettled {
                        epoch,
                        commit,
                        purpose: None,
                        admitted: Vec::new(),
                    });
            self.inviter = stored
                .fact(FACT_INVITER)
                .and_then(|bytes| bytes.try_into().ok());
            self.rotation = stored.fact(FACT_ROTATION).and_then(Rotation::decode);
            let stored_invite = stored.invite;
            match self.invite.clone() {
                // The link's secret: keep it (sealed) until we are let in.
                Some(secret) => self.changes.push(StoreChange::InviteSecret {
                    group_id: self.group_id.clone(),
                    secret: Some(secret),
                }),
                None => self.invite = stored_invite,
            }
            self.group = match Group::load(&self.provider, &self.identity, &self.group_id) {
                Ok(group) => group,
                Err(error) => {
                    self.problem(format!("could not load this server's group state: {error}"));
                    None
                }
            };
            if self.group.is_some() {
                self.announce_member();
                self.events.push_back(LogicEvent::EpochChanged {
                    epoch: self.epoch().unwrap_or(0),
                    removal: false,
                });
            }
        }
        self.channels_changed(channels);
        // Whatever was in flight before a reconnection is settled by the sync that follows:
        // the relay hands our commit back if it took it.
        if let Some(pending) = self.pending.take() {
            self.restored_pending = Some(Unsettled {
                epoch: pending.outgoing.epoch,
                commit: pending.outgoing.commit,
                purpose: Some(pending.purpose),
                admitted: pending.admitted,
            });
        }
        self.synced = false;
        self.syncs_unanswered = 0;
        self.send_sync();
        // The relay may hold KeyPackages of those it lacked before.
        self.unreachable.clear();
        if self.conversation.is_some() {
            // The server's logic keeps our KeyPackages topped up.
            for _ in self.claims.drain(..) {
                self.events.push_back(LogicEvent::CommitSettled {
                    purpose: Purpose::Add,
                    outcome: Err("the connection to the relay dropped; try again".into()),
                });
            }
            return;
        }
        // How many KeyPackages the relay holds for us (topped up on its answer).
        self.key_packages_topped_up = false;
        self.uploads_unanswered = 1;
        // Claims sent on the last connection will not be answered.
        for _ in self.claims.drain(..) {
            self.events.push_back(LogicEvent::CommitSettled {
                purpose: Purpose::Add,
                outcome: Err("the connection to the relay dropped; try again".into()),
            });
        }
        self.transmit.push_back(ControlFrame::UploadKeyPackages {
            key_packages: Vec::new(),
            last_resort: None,
        });
    }

    /// Asks the relay for what we missed of the group from our epoch on.
    fn send_sync(&mut self) {
        self.syncs_unanswered += 1;
        self.transmit.push_back(ControlFrame::GroupSync {
            group_id: self.group_id.clone(),
            epoch: self.active_group().map(Group::epoch),
        });
    }

    fn active_group(&self) -> Option<&Group> {
        self.group.as_ref().filter(|group| group.is_active())
    }

    /// Our current epoch, if in the group.
    pub fn epoch(&self) -> Option<u64> {
        self.active_group().map(Group::epoch)
    }

    /// Whether work is under way: the relay has not answered our syncs or KeyPackage uploads
    /// yet, we have not caught up with the epoch it reported, a commit waits for the relay,
    /// joiners wait to be admitted, or proposals to be committed.
    pub fn is_busy(&self) -> bool {
        let behind = match (self.active_group(), self.relay_epoch) {
            (Some(group), Some(relay_epoch)) => group.epoch() < relay_epoch,
            _ => false,
        };
        !self.synced
            || self.syncs_unanswered > 0
            || self.uploads_unanswered > 0
            || !self.claims.is_empty()
            || behind
            || self.pending.is_some()
            || self.restored_pending.is_some()
            || self.retry.is_some()
            || !self.join_queue.is_empty()
            || self
                .active_group()
                .is_some_and(|group| group.has_pending_proposals())
    }

    /// Our identity key.
    pub fn own_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    /// The group id (empty before the first connection).
    pub fn group_id(&self) -> &[u8] {
        &self.group_id
    }

    /// Where we stand.
    pub fn state(&self) -> &GroupState {
        &self.state
    }

    /// The server's channels now: keys for new voice channels, and text secrets kept for new
    /// text channels from this epoch on.
    pub fn channels_changed(&mut self, channels: &[ChannelInfo]) {
        if let Some(conversation) = &self.conversation {
            // A conversation's group keys its one text channel, whatever the server has.
            self.text_channels = vec![conversation.id];
            self.record_text_secrets();
            return;
        }
        self.voice_channels = channels
            .iter()
            .filter(|channel| channel.kind == ChannelKind::Voice)
            .map(|channel| channel.id)
            .collect();
        self.text_channels = channels
            .iter()
            .filter(|channel| channel.kind == ChannelKind::Text)
            .map(|channel| channel.id)
            .collect();
        self.record_text_secrets();
    }

    /// Keeps the current epoch's text secrets on disk, so its messages stay readable later.
    fn record_text_secrets(&mut self) {
        let Some(group) = self.group.as_ref().filter(|group| group.is_active()) else {
            return;
        };
        for channel_id in &self.text_channels {
            match group.text_secret(&self.provider, *channel_id) {
                Ok(secret) => self.changes.push(StoreChange::TextSecret {
                    group_id: self.group_id.clone(),
                    epoch: group.epoch(),
                    channel_id: *channel_id,
                    secret: TextSecret::from_bytes(*secret),
                }),
                Err(error) => warn!("could not derive a text secret: {error}"),
            }
        }
    }

    /// The current epoch and its text secret for `channel_id` (to seal a message with): a
    /// text channel of the server's, or our conversation; none for any other id.
    pub fn text_secret(&self, channel_id: u32) -> Option<(u64, TextSecret)> {
        if !self.text_channels.contains(&channel_id) {
            return None;
        }
        let group = self.active_group()?;
        let secret = group.text_secret(&self.provider, channel_id).ok()?;
        Some((group.epoch(), TextSecret::from_bytes(*secret)))
    }

    /// The media base keys of every voice channel for the current epoch.
    pub fn media_bases(&self) -> Option<(u64, Vec<ChannelBase>)> {
        let group = self.active_group()?;
        let bases = self
            .voice_channels
            .iter()
            .filter_map(|channel| {
                group
                    .media_base(&self.provider, *channel)
                    .ok()
                    .map(|base| (*channel, base))
            })
            .collect();
        Some((group.epoch(), bases))
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LogicEvent> {
        self.events.pop_front()
    }

    /// What to write to disk (in one transaction) before sending anything.
    pub fn take_changes(&mut self) -> (StoreDelta, Vec<StoreChange>) {
        (
            self.provider.take_delta(),
            std::mem::take(&mut self.changes),
        )
    }

    fn problem(&mut self, message: String) {
        warn!("{message}");
        self.events.push_back(LogicEvent::Problem(message));
    }

    fn set_state(&mut self, state: GroupState) {
        if self.state != state {
            self.state = state.clone();
            self.events.push_back(LogicEvent::State(state));
        }
    }

    fn announce_member(&mut self) {
        let state = match self.group.as_ref() {
            Some(group) if group.is_active() => GroupState::Member {
                epoch: group.epoch(),
                privacy_code: group.privacy_code(),
                members: group.members(),
            },
            Some(_) => GroupState::Removed,
            None => return,
        };
        self.set_state(state);
    }

    fn epoch_changed(&mut self) {
        self.epoch_changed_by(false);
    }

    fn epoch_changed_by(&mut self, removal: bool) {
        self.announce_member();
        self.record_text_secrets();
        if let Some(epoch) = self.epoch() {
            self.events
                .push_back(LogicEvent::EpochChanged { epoch, removal });
        }
    }

    /// Handles a group frame from the relay.
    pub fn handle(&mut self, frame: ControlFrame) {
        match frame {
            ControlFrame::GroupStatus { epoch, grant, .. } => self.on_status(epoch, grant),
            ControlFrame::CommitAccepted { epoch, .. } => self.on_accepted(epoch),
            ControlFrame::GroupRefused {
                epoch,
                current_epoch,
                reason,
                ..
            } => self.on_refused(epoch, current_epoch, reason),
            ControlFrame::GroupMessage { epoch, message, .. } => self.on_message(epoch, &message),
            ControlFrame::GroupWelcome { welcome, .. } => self.on_welcome(&welcome),
            ControlFrame::JoinRequested { request, .. } => self.on_join_requested(&request),
            ControlFrame::JoinPending { members_online, .. } => {
                self.set_state(GroupState::WaitingToBeLetIn { members_online });
            }
            ControlFrame::KeyPackagesStored {
                available,
                last_resort,
            } => self.on_key_packages_stored(available, last_resort),
            ControlFrame::KeyPackageClaimed {
                member,
                key_package,
            } => self.on_key_package_claimed(member, key_package),
            other => debug!("ignored {} in the group logic", other.name()),
        }
        self.next_commit();
    }

    fn on_status(&mut self, relay_epoch: Option<u64>, grant: Option<Vec<u8>>) {
        self.synced = true;
        self.syncs_unanswered = self.syncs_unanswered.saturating_sub(1);
        self.relay_epoch = relay_epoch;
        let Some(relay_epoch) = relay_epoch else {
            if self.conversation.is_some() {
                // The relay stores a conversation's group when it is opened.
                self.problem(
                    "the relay has lost this conversation's encryption group; it may have been reset"
                        .into(),
                );
                return;
            }
            if self.active_group().is_some_and(|group| group.epoch() > 0) {
                self.problem(
                    "the relay has lost this server's encryption group; it may have been reset"
                        .into(),
                );
                return;
            }
            // Only the server's owner may create it: the relay refuses anyone else.
            self.create();
            return;
        };
        if let Some(group) = self.active_group() {
            let ours = group.epoch();
            if ours > relay_epoch {
                self.problem(format!(
                    "the relay is at epoch {relay_epoch} but we are at {ours}: its state was rolled back"
                ));
            }
            // A commit of ours from before a reconnection that the relay never took.
            if self
                .restored_pending
                .as_ref()
                .is_some_and(|unsettled| unsettled.epoch >= relay_epoch)
                && let Some(unsettled) = self.restored_pending.take()
            {
                self.commit_lost(
                    unsettled.purpose,
                    unsettled.admitted,
                    "the connection to the relay dropped before it answered",
                );
            }
            if ours == 0 && relay_epoch == 0 {
                // The group we created is stored: keys for epoch 0.
                if self.rotation.is_none() {
                    self.rotated(self.now());
                }
                self.epoch_changed();
                return;
            }
            self.announce_member();
            return;
        }
        if let Some(group) = &self.group
            && !group.is_active()
        {
            self.set_state(GroupState::Removed);
            return;
        }
        self.ask_to_join(grant);
    }

    fn ask_to_join(&mut self, grant: Option<Vec<u8>>) {
        let (Some(secret), Some(grant)) = (self.invite.clone(), grant) else {
            self.set_state(GroupState::NoInvite);
            return;
        };
        let grant = match InviteGrant::decode(&grant)
            .and_then(|grant| grant.verify(&self.group_id, unix_now()).map(|()| grant))
        {
            Ok(grant) => grant,
            Err(error) => {
                self.problem(format!(
                    "the relay sent an invite grant that does not hold ({error}); ask for a new invite link"
                ));
                return;
            }
        };
        let inviter = grant.inviter;
        match Group::join_request(&self.provider, &self.identity, &secret, grant) {
            Ok(request) => {
                // Kept before the request goes out: the Welcome must come from a group the
                // inviter is in, also after a restart.
                self.inviter = Some(inviter);
                self.changes.push(StoreChange::Fact {
                    group_id: self.group_id.clone(),
                    name: FACT_INVITER,
                    value: Some(inviter.to_vec()),
                });
                // The relay's JoinPending says how many could let us in.
                self.transmit.push_back(ControlFrame::JoinGroup {
                    group_id: self.group_id.clone(),
                    request: request.encode(),
                });
            }
            Err(GroupError::Refused(violation)) => self.problem(format!(
                "the relay sent an invite grant that does not hold ({violation}); ask for a new invite link"
            )),
            Err(error) => self.problem(format!("could not make a request to join: {error}")),
        }
    }

    fn create(&mut self) {
        if let Some(group) = &self.group
            && group.is_active()
            && group.epoch() == 0
        {
            // Made before a restart and never stored by the relay: offer it again.
            match group.group_info(&self.provider, &self.identity) {
                Ok(group_info) => self.transmit.push_back(ControlFrame::GroupCreate {
                    group_id: self.group_id.clone(),
                    group_info,
                }),
                Err(error) => self.problem(format!("could not offer the group again: {error}")),
            }
            return;
        }
        match Group::create(&self.provider, &self.identity, &self.group_id)
            .and_then(|group| Ok((group.group_info(&self.provider, &self.identity)?, group)))
        {
            Ok((group_info, group)) => {
                // We are a member once the relay has stored the group (its GroupStatus).
                info!("creating this server's encryption group");
                self.group = Some(group);
                self.transmit.push_back(ControlFrame::GroupCreate {
                    group_id: self.group_id.clone(),
                    group_info,
                });
            }
            Err(error) => self.problem(format!("could not create the group: {error}")),
        }
    }

    fn on_welcome(&mut self, welcome: &[u8]) {
        if self.active_group().is_some() {
            return;
        }
        if self.inviter.is_none() && self.invite.is_some() {
            // We are joining by invite, and asked nobody yet.
            self.problem("the relay sent a Welcome we never asked for; ignoring it".into());
            return;
        }
        // Without an invite, an admin added us from the KeyPackage the relay keeps for us. A
        // conversation's group must have its opener in it.
        let joined = match &self.conversation {
            Some(conversation) => Group::join_conversation(
                &self.provider,
                &self.identity,
                welcome,
                &self.group_id,
                &conversation.creator,
                &conversation.members,
            ),
            None => Group::join(
                &self.provider,
                &self.identity,
                welcome,
                &self.group_id,
                self.inviter.as_ref(),
            ),
        };
        match joined {
            Ok(group) => {
                info!(epoch = group.epoch(), "let into the group");
                self.group = Some(group);
                self.changes.push(StoreChange::InviteSecret {
                    group_id: self.group_id.clone(),
                    secret: None,
                });
                self.changes.push(StoreChange::Fact {
                    group_id: self.group_id.clone(),
                    name: FACT_INVITER,
                    value: None,
                });
                self.invite = None;
                self.inviter = None;
                self.rotated(self.now());
                self.send_sync();
                self.epoch_changed();
            }
            Err(GroupError::Refused(violation)) => self.problem(format!(
                "refused the Welcome the relay sent: {violation}; the relay may be trying to \
                 read our messages, so we stay out and wait"
            )),
            Err(error) => self.problem(format!("could not join with the Welcome: {error}")),
        }
    }

    fn on_accepted(&mut self, epoch: u64) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if pending.outgoing.epoch != epoch {
            self.pending = Some(pending);
            return;
        }
        self.merge_own(Some(pending.purpose));
    }

    /// Merges our commit the relay accepted; `purpose` is unknown for one from before a
    /// restart (nobody waits for it then).
    fn merge_own(&mut self, purpose: Option<Purpose>) {
        let Some(group) = self.group.as_mut() else {
            return;
        };
        match group.merge_pending(&self.provider) {
            Ok(()) => {
                self.adding = None;
                self.changes.push(StoreChange::PendingCommit {
                    group_id: self.group_id.clone(),
                    commit: None,
                });
                self.restored_pending = None;
                if matches!(
                    purpose,
                    Some(Purpose::SelfUpdate | Purpose::Rotation) | None
                ) {
                    self.rotated(self.now());
                }
                // The new state and keys first: whoever waits for the commit sees them. A
                // commit from before a restart may have removed someone: re-key at once.
                self.epoch_changed_by(matches!(
                    purpose,
                    Some(Purpose::Remove | Purpose::Proposals) | None
                ));
                if let Some(purpose) = purpose {
                    self.events.push_back(LogicEvent::CommitSettled {
                        purpose,
                        outcome: Ok(()),
                    });
                }
            }
            Err(error) => self.problem(format!("could not merge our accepted commit: {error}")),
        }
    }

    fn drop_pending_commit(&mut self) {
        self.adding = None;
        if let Some(group) = self.group.as_mut()
            && group.has_pending_commit()
            && let Err(error) = group.discard_pending(&self.provider)
        {
            warn!("could not drop our pending commit: {error}");
        }
        self.restored_pending = None;
        self.changes.push(StoreChange::PendingCommit {
            group_id: self.group_id.clone(),
            commit: None,
        });
    }

    fn on_refused(&mut self, epoch: u64, current_epoch: u64, reason: String) {
        let ours = self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.outgoing.epoch == epoch);
        if !ours {
            let created_here = self
                .active_group()
                .is_some_and(|group| group.epoch() == 0 && epoch == 0);
            if created_here && current_epoch == 0 {
                // Our GroupCreate was refused (we do not own the server): forget that group.
                if let Some(group) = self.group.take()
                    && let Err(error) = group.delete(&self.provider)
                {
                    warn!("could not delete a refused group: {error}");
                }
                debug!("not creating the group: {reason}");
                self.set_state(GroupState::NoGroupYet);
                return;
            }
            if current_epoch > epoch {
                // The refusal of a commit we already know lost its epoch.
                debug!("our commit for epoch {epoch} was refused: {reason}");
                return;
            }
            self.problem(format!("the relay refused a group request: {reason}"));
            return;
        }
        let pending = self.pending.take().expect("checked above");
        let lost_race = current_epoch > epoch;
        if lost_race {
            // Another commit won the epoch; it follows as a GroupMessage, then we retry.
            debug!("our commit for epoch {epoch} lost to another; retrying after it");
            self.commit_lost(
                Some(pending.purpose),
                pending.admitted,
                &format!("another change came first ({reason})"),
            );
        } else {
            let adding = self.adding.take();
            self.drop_pending_commit();
            if let Some(member) = adding {
                // Not asked for again on this connection: the relay would refuse it again.
                self.unreachable.push(member);
                self.problem(format!(
                    "the relay would not let us add someone to this conversation: {reason}"
                ));
            }
            self.events.push_back(LogicEvent::CommitSettled {
                purpose: pending.purpose,
                outcome: Err(reason),
            });
        }
    }

    fn on_message(&mut self, epoch: u64, message: &[u8]) {
        // Our own commit handed back after a reconnection: it was accepted.
        if let Some(unsettled) = &self.restored_pending
            && unsettled.epoch == epoch
        {
            if unsettled.commit.as_slice() == message {
                let purpose = unsettled.purpose;
                self.merge_own(purpose);
                return;
            }
            // Another commit took that epoch.
            if let Some(unsettled) = self.restored_pending.take() {
                self.commit_lost(
                    unsettled.purpose,
                    unsettled.admitted,
                    "another change came first",
                );
            }
        }
        let Some(group) = self.group.as_mut().filter(|group| group.is_active()) else {
            return;
        };
        let ours = group.epoch();
        if epoch < ours {
            return; // Already applied.
        }
        if epoch > ours {
            // A commit for an epoch we never reached: one was withheld from us.
            self.problem(format!(
                "the relay sent a message of epoch {epoch} while we are at epoch {ours}: it \
                 skipped a commit; asking for what we missed"
            ));
            self.send_sync();
            return;
        }
        if group.has_pending_commit() {
            // Someone else's commit won the epoch our commit was for (its refusal follows).
            match self.pending.take() {
                Some(pending) => self.commit_lost(
                    Some(pending.purpose),
                    pending.admitted,
                    "another change came first",
                ),
                None => self.drop_pending_commit(),
            }
        }
        let Some(group) = self.group.as_mut() else {
            return;
        };
        match group.receive(&self.provider, message, unix_now()) {
            Ok(Received::Commit { epoch, added, removed }) => {
                debug!(epoch, added = added.len(), removed = removed.len(), "applied a commit");
                let own = self.identity.public_key();
                self.join_queue.retain(|request| {
                    !added
                        .iter()
                        .any(|key| *key == request_key(request).unwrap_or(own))
                });
                self.epoch_changed_by(!removed.is_empty());
            }
            Ok(Received::Removed) => {
                info!("removed from the group");
                self.set_state(GroupState::Removed);
                self.events.push_back(LogicEvent::EpochChanged {
                    epoch: epoch + 1,
                    removal: true,
                });
            }
            Ok(Received::Proposal) => debug!("a member asked to leave"),
            Ok(Received::Application { .. }) => debug!("ignored an application message"),
            Ok(_) => {}
            Err(GroupError::Refused(violation)) => self.problem(format!(
                "refused a commit that breaks the group's rules ({violation}); the relay or a member may be misbehaving"
            )),
            Err(error) => self.problem(format!("could not apply a group message: {error}")),
        }
    }

    fn on_join_requested(&mut self, request: &[u8]) {
        match JoinRequest::decode(request) {
            Ok(request) => {
                let key = request_key(&request);
                self.join_queue.retain(|queued| request_key(queued) != key);
                self.join_queue.push(request);
            }
            Err(error) => debug!("ignored a malformed join request: {error}"),
        }
    }

    /// Starts the next commit the group needs, if none is pending.
    fn next_commit(&mut self) {
        if self.pending.is_some() || self.restored_pending.is_some() {
            return;
        }
        let Some(group) = self.group.as_mut().filter(|group| group.is_active()) else {
            return;
        };
        if group.has_pending_commit() {
            return;
        }
        if group.has_pending_proposals() {
            let outgoing = group.commit_proposals(&self.provider, &self.identity);
            self.send_commit(outgoing, Purpose::Proposals);
            return;
        }
        let members: Vec<PublicKey> = group
            .members()
            .iter()
            .map(|member| member.public_key)
            .collect();
        if let Some(stale) = self.next_to_remove(&members) {
            // Out of the conversation (say, removed from the server): out of its group, so
            // it reads nothing sent from now on.
            let Some(group) = self.group.as_mut() else {
                return;
            };
            let outgoing = group.remove(&self.provider, &self.identity, &[stale]);
            self.send_commit(outgoing, Purpose::Remove);
            return;
        }
        if let Some(missing) = self.next_to_add(&members) {
            // A conversation's opener adds its members, one commit each.
            self.claims.push(missing);
            self.transmit
                .push_back(ControlFrame::ClaimKeyPackage { member: missing });
            return;
        }
        let waiting: Vec<JoinRequest> = std::mem::take(&mut self.join_queue)
            .into_iter()
            .filter(|request| request_key(request).is_some_and(|key| !members.contains(&key)))
            .collect();
        if waiting.is_empty() {
            self.retry_rotation();
            return;
        }
        let Some(group) = self.group.as_mut() else {
            return;
        };
        // Admit those whose proofs verify; drop the others with a note.
        let now = unix_now();
        let mut admitted = Vec::new();
        for request in waiting {
            match group.verify_join_request(&self.provider, &request, now) {
                Ok(()) => admitted.push(request),
                Err(error) => warn!("not admitting a joiner: {error}"),
            }
        }
        if admitted.is_empty() {
            self.retry_rotation();
            return;
        }
        let outgoing = group.admit(&self.provider, &self.identity, &admitted, now);
        self.send_commit_admitting(outgoing, Purpose::Admit, admitted);
    }

    /// The next member of our conversation to add, if we opened it and someone is missing
    /// (and no claim is under way).
    fn next_to_add(&self, members: &[PublicKey]) -> Option<PublicKey> {
        let conversation = self.conversation.as_ref()?;
        let own = self.identity.public_key();
        if conversation.creator != own || !self.synced || !self.claims.is_empty() {
            return None;
        }
        conversation
            .members
            .iter()
            .find(|key| !members.contains(key) && !self.unreachable.contains(key))
            .copied()
    }

    /// The next one in our conversation's group who is no longer in the conversation, if we
    /// opened it.
    fn next_to_remove(&self, members: &[PublicKey]) -> Option<PublicKey> {
        let conversation = self.conversation.as_ref()?;
        let own = self.identity.public_key();
        if conversation.creator != own || !self.synced {
            return None;
        }
        members
            .iter()
            .find(|key| **key != own && !conversation.members.contains(key))
            .copied()
    }

    /// The conversation this group is for; none for the server's group.
    pub fn conversation(&self) -> Option<&ConversationInfo> {
        self.conversation.as_ref()
    }

    /// The relay's new description of our conversation (someone left it). Only who is in it
    /// may change, and only by leaving; anything else is ignored.
    pub fn set_conversation(&mut self, conversation: ConversationInfo) {
        let Some(known) = &self.conversation else {
            return;
        };
        if known.id != conversation.id
            || known.group_id != conversation.group_id
            || known.creator != conversation.creator
            || !conversation
                .members
                .iter()
                .all(|key| known.members.contains(key))
        {
            self.problem("the relay changed a conversation in a way it cannot; ignored".into());
            return;
        }
        self.conversation = Some(conversation);
        self.next_commit();
    }

    /// Whether our conversation's group holds exactly the conversation's members: all of
    /// them can read what we send now, and nobody else (someone out of the conversation whom
    /// its opener has not removed yet would). Always false for the server's group.
    pub fn conversation_ready(&self) -> bool {
        let (Some(conversation), Some(group)) = (&self.conversation, self.active_group()) else {
            return false;
        };
        let members: Vec<PublicKey> = group
            .members()
            .iter()
            .map(|member| member.public_key)
            .collect();
        conversation.members.iter().all(|key| members.contains(key))
            && members.iter().all(|key| conversation.members.contains(key))
    }

    /// Members of our conversation we could not add: the relay holds no KeyPackage of theirs.
    pub fn unreachable(&self) -> &[PublicKey] {
        &self.unreachable
    }

    /// Whether we asked the relay for `member`'s KeyPackage and wait for it.
    pub fn has_claim(&self, member: &PublicKey) -> bool {
        self.claims.contains(member)
    }

    /// The logic of a conversation's group, for the same member over the same provider.
    pub fn conversation_logic(&self, conversation: ConversationInfo) -> Self {
        Self::for_conversation(self.identity.clone(), self.provider.clone(), conversation)
    }

    /// Deletes the state of a group we made that the relay refused (a conversation it would
    /// not open); saved with the next changes.
    pub fn forget_group(&self, group_id: &[u8]) {
        match Group::load(&self.provider, &self.identity, group_id) {
            Ok(Some(group)) => {
                if let Err(error) = group.delete(&self.provider) {
                    warn!("could not delete a refused group: {error}");
                }
            }
            Ok(None) => {}
            Err(error) => warn!("could not load a refused group: {error}"),
        }
    }

    /// Makes the group of a conversation we open: its id and GroupInfo (to send with
    /// `OpenConversation`). Its state is in the provider, saved with the next changes.
    pub fn new_conversation_group(&self) -> Result<(Vec<u8>, Vec<u8>), GroupError> {
        if self.active_group().is_none() {
            return Err(GroupError::Removed);
        }
        let group_id = sotto_net::group::new_conversation_group_id();
        let group = Group::create(&self.provider, &self.identity, &group_id)?;
        let group_info = group.group_info(&self.provider, &self.identity)?;
        Ok((group_id, group_info))
    }

    /// Makes again a rotation whose commit lost its epoch.
    fn retry_rotation(&mut self) {
        if !self.synced {
            return; // After the relay's status, on the epoch it says.
        }
        let Some(purpose) = self.retry.take() else {
            return;
        };
        let Some(group) = self.group.as_mut().filter(|group| group.is_active()) else {
            return;
        };
        let outgoing = group.self_update(&self.provider, &self.identity);
        self.send_commit(outgoing, purpose);
    }

    /// Our commit will not be accepted (`why`): forget it, queue its joiners again, and retry
    /// a rotation or tell whoever waits for anything else.
    fn commit_lost(&mut self, purpose: Option<Purpose>, admitted: Vec<JoinRequest>, why: &str) {
        self.drop_pending_commit();
        self.join_queue.extend(admitted);
        match purpose {
            Some(purpose @ (Purpose::SelfUpdate | Purpose::Rotation)) => self.retry = Some(purpose),
            Some(purpose @ (Purpose::Remove | Purpose::Add)) => {
                self.events.push_back(LogicEvent::CommitSettled {
                    purpose,
                    outcome: Err(format!("{why}; try again")),
                })
            }
            // Admits and proposals are made again from what is queued.
            _ => {}
        }
    }

    fn send_commit(&mut self, outgoing: Result<Outgoing, GroupError>, purpose: Purpose) {
        self.send_commit_admitting(outgoing, purpose, Vec::new());
    }

    fn send_commit_admitting(
        &mut self,
        outgoing: Result<Outgoing, GroupError>,
        purpose: Purpose,
        admitted: Vec<JoinRequest>,
    ) {
        match outgoing {
            Ok(outgoing) => {
                self.changes.push(StoreChange::PendingCommit {
                    group_id: self.group_id.clone(),
                    commit: Some((outgoing.epoch, outgoing.commit.clone())),
                });
                self.transmit.push_back(ControlFrame::GroupCommit {
                    group_id: self.group_id.clone(),
                    epoch: outgoing.epoch,
                    commit: outgoing.commit.clone(),
                    welcome: outgoing.welcome.clone(),
                });
                self.pending = Some(Pending {
                    outgoing,
                    purpose,
                    admitted,
                });
            }
            Err(error) => {
                self.events.push_back(LogicEvent::CommitSettled {
                    purpose,
                    outcome: Err(error.to_string()),
                });
            }
        }
    }

    /// The wall clock, or the time last told if that is later.
    fn now(&self) -> u64 {
        unix_now().max(self.told_time)
    }

    /// Tops up our KeyPackages at the relay, once per connection, when it holds few.
    fn on_key_packages_stored(&mut self, available: u32, last_resort: bool) {
        self.uploads_unanswered = self.uploads_unanswered.saturating_sub(1);
        if self.key_packages_topped_up {
            if available < KEY_PACKAGE_LOW {
                warn!("the relay kept only {available} of our KeyPackages");
            }
            return;
        }
        self.key_packages_topped_up = true;
        if available >= KEY_PACKAGE_LOW && last_resort {
            return;
        }
        let fresh = KEY_PACKAGE_TARGET.saturating_sub(available);
        let made: Result<Vec<Vec<u8>>, GroupError> = (0..fresh)
            .map(|_| Group::key_package(&self.provider, &self.identity, false).map(|kp| kp.0))
            .collect();
        let last = if last_resort {
            Ok(None)
        } else {
            Group::key_package(&self.provider, &self.identity, true).map(|kp| Some(kp.0))
        };
        match (made, last) {
            (Ok(key_packages), Ok(last_resort)) => {
                debug!(count = key_packages.len(), "uploading KeyPackages");
                self.uploads_unanswered += 1;
                self.transmit.push_back(ControlFrame::UploadKeyPackages {
                    key_packages,
                    last_resort,
                });
            }
            (Err(error), _) | (_, Err(error)) => {
                self.problem(format!("could not make KeyPackages: {error}"));
            }
        }
    }

    fn on_key_package_claimed(&mut self, member: PublicKey, key_package: Option<Vec<u8>>) {
        let Some(index) = self.claims.iter().position(|claimed| *claimed == member) else {
            return;
        };
        self.claims.remove(index);
        let Some(key_package) = key_package else {
            if self.conversation.is_some() {
                self.unreachable.push(member);
                self.problem(
                    "the relay holds no KeyPackage for someone in this conversation: they must \
                     connect once before they can be added"
                        .into(),
                );
                return;
            }
            self.events.push_back(LogicEvent::CommitSettled {
                purpose: Purpose::Add,
                outcome: Err(
                    "the relay holds no KeyPackage for them: they must connect once (with this \
                     version of Sotto) before they can be added"
                        .into(),
                ),
            });
            return;
        };
        if self.pending.is_some() || self.restored_pending.is_some() {
            self.events.push_back(LogicEvent::CommitSettled {
                purpose: Purpose::Add,
                outcome: Err("another change is under way; try again in a moment".into()),
            });
            return;
        }
        let Some(group) = self.group.as_mut().filter(|group| group.is_active()) else {
            return;
        };
        let outgoing = group.add_member(&self.provider, &self.identity, &member, &key_package);
        if self.conversation.is_some() {
            self.adding = Some(member);
        }
        self.send_commit(outgoing, Purpose::Add);
    }

    /// Adds a server member who is not in the group yet (admins only), from a KeyPackage the
    /// relay keeps for it; settles as a `CommitSettled` event.
    pub fn add(&mut self, member: PublicKey) -> Result<(), GroupError> {
        let group = self.active_group().ok_or(GroupError::Removed)?;
        if !group.admins().contains(&self.identity.public_key()) {
            return Err(GroupError::NotAdmin("add members without an invite"));
        }
        if !self.claims.contains(&member) {
            self.claims.push(member);
            self.transmit
                .push_back(ControlFrame::ClaimKeyPackage { member });
        }
        Ok(())
    }

    /// Records that our keys were just rotated (or first made) at `now_unix`.
    fn rotated(&mut self, now_unix: u64) {
        self.set_rotation(Rotation {
            since: now_unix,
            sent: 0,
        });
    }

    fn set_rotation(&mut self, rotation: Rotation) {
        self.rotation = Some(rotation);
        self.changes.push(StoreChange::Fact {
            group_id: self.group_id.clone(),
            name: FACT_ROTATION,
            value: Some(rotation.encode()),
        });
    }

    /// Counts `messages` we sealed and sent in the group (they bring the next rotation
    /// closer).
    pub fn note_sent(&mut self, messages: u64) {
        if let Some(mut rotation) = self.rotation {
            rotation.sent = rotation.sent.saturating_add(messages);
            self.set_rotation(rotation);
        }
    }

    /// Whether our keys are due for rotation at `now_unix`.
    pub fn rotation_due(&self, now_unix: u64) -> bool {
        self.active_group().is_some() && self.rotation.is_some_and(|r| r.is_due(now_unix))
    }

    /// Tells the logic the time: rotates our keys when they are due and nothing else is under
    /// way (a member who was in the group before rotations were kept starts counting now).
    pub fn tick(&mut self, now_unix: u64) {
        self.told_time = self.told_time.max(now_unix);
        if self.active_group().is_none() {
            return;
        }
        if self.rotation.is_none() {
            self.rotated(now_unix);
        }
        if !self.rotation_due(now_unix) || self.is_busy() {
            return;
        }
        info!("rotating our keys (a self-update is due)");
        let Some(group) = self.group.as_mut() else {
            return;
        };
        let outgoing = group.self_update(&self.provider, &self.identity);
        self.send_commit(outgoing, Purpose::Rotation);
    }

    /// Whether a commit of ours waits for the relay's answer (another must wait for it).
    pub fn commit_pending(&self) -> bool {
        self.pending.is_some() || self.restored_pending.is_some()
    }

    /// Removes `members` from the group (admins only); settles as a `CommitSettled` event.
    pub fn remove(&mut self, members: &[PublicKey]) -> Result<(), GroupError> {
        if self.commit_pending() {
            return Err(GroupError::CommitPending);
        }
        let group = self.group.as_mut().ok_or(GroupError::Removed)?;
        let outgoing = group.remove(&self.provider, &self.identity, members)?;
        self.send_commit(Ok(outgoing), Purpose::Remove);
        Ok(())
    }

    /// Rotates our keys with a self-update commit.
    pub fn self_update(&mut self) -> Result<(), GroupError> {
        if self.commit_pending() {
            return Err(GroupError::CommitPending);
        }
        let group = self.group.as_mut().ok_or(GroupError::Removed)?;
        let outgoing = group.self_update(&self.provider, &self.identity)?;
        self.send_commit(Ok(outgoing), Purpose::SelfUpdate);
        Ok(())
    }

    /// Asks to leave: the next member online commits our removal.
    pub fn leave(&mut self) -> Result<(), GroupError> {
        let group = self.group.as_mut().ok_or(GroupError::Removed)?;
        let proposal = group.propose_leave(&self.provider, &self.identity)?;
        self.transmit.push_back(ControlFrame::GroupProposal {
            group_id: self.group_id.clone(),
            proposal,
        });
        Ok(())
    }

    /// A new invite secret and its grant (to send with `CreateInvite`), valid until
    /// `expires_at` (Unix seconds).
    pub fn new_invite(&self, expires_at: u64) -> Result<(InviteSecret, Vec<u8>), GroupError> {
        if self.active_group().is_none() {
            return Err(GroupError::Removed);
        }
        let secret = InviteSecret::generate();
        let grant = InviteGrant::sign(&self.identity, &self.group_id, &secret, expires_at)
            .map_err(GroupError::Refused)?;
        Ok((secret, grant.encode()))
    }

    /// Keeps `secret` (sealed on disk) to prove our invite with until we are let in.
    pub fn set_invite(&mut self, group_id: Vec<u8>, secret: InviteSecret) {
        self.changes.push(StoreChange::InviteSecret {
            group_id,
            secret: Some(secret.clone()),
        });
        self.invite = Some(secret);
    }
}

fn request_key(request: &JoinRequest) -> Option<PublicKey> {
    // The KeyPackage's identity is checked by every admitter; here it only names the request.
    sotto_net::group::key_package_identity(&request.key_package)
}

#[cfg(test)]
mod tests;
