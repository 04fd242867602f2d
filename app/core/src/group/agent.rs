//! The task that runs a member's group logic: group frames in, store writes, frames out, media
//! keys installed. It only moves bytes; [`super::logic::GroupLogic`] decides. It runs one logic
//! for the server's group and one per conversation the member is in, and routes each group
//! frame to the logic of its group.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sotto_net::client::{Client, GroupEvent, WeakClient};
use sotto_net::group::{GroupError, MediaKeyRing, server_group_id};
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::{ChannelInfo, ControlFrame, ConversationInfo, PublicKey};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::logic::{GroupLogic, GroupState, LogicEvent, Purpose, unix_now};
use super::store::{GroupStore, StoredGroup};
use sotto_net::seal::text::TextSecret;

/// How long after a new epoch (without removals) our media switches to its key.
const SENDER_SWITCH_DELAY: Duration = Duration::from_millis(300);

/// How often retired media keys are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// How often the logic is told the time (for its key rotations).
const ROTATION_TICK: Duration = Duration::from_secs(60);

/// Why a group action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupActionError {
    /// The group refused or could not do it.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The relay refused the commit.
    #[error("the relay refused it: {0}")]
    Refused(String),
    /// Making the invite failed at the relay.
    #[error(transparent)]
    Client(#[from] sotto_net::client::ClientError),
    /// The connection to the relay is gone.
    #[error("the connection to the relay has ended")]
    Stopped,
    /// A conversation cannot be ready: someone in it cannot be added yet.
    #[error(
        "someone in the conversation has not connected since they joined, so they cannot be added yet; try again once they have"
    )]
    Unreachable,
}

/// A conversation the member is in, as the front end shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    /// The conversation, as the relay describes it.
    pub info: ConversationInfo,
    /// Where we stand in its group.
    pub state: GroupState,
    /// Whether everyone in it is in its group (what we send now, all of them can read).
    pub ready: bool,
}

enum Command {
    Invite {
        expires_in: Option<Duration>,
        max_uses: Option<u32>,
        reply: oneshot::Sender<Result<InviteLink, GroupActionError>>,
    },
    Remove {
        members: Vec<PublicKey>,
        reply: oneshot::Sender<Result<(), GroupActionError>>,
    },
    SelfUpdate {
        reply: oneshot::Sender<Result<(), GroupActionError>>,
    },
    Add {
        member: PublicKey,
        reply: oneshot::Sender<Result<(), GroupActionError>>,
    },
    Leave {
        reply: oneshot::Sender<Result<(), GroupActionError>>,
    },
    NoteSent(u64),
    OpenConversation {
        members: Vec<PublicKey>,
        reply: oneshot::Sender<Result<ConversationInfo, GroupActionError>>,
    },
    TextSecrets {
        channel_id: u32,
        reply: oneshot::Sender<Vec<(u64, TextSecret)>>,
    },
    ImportTextSecrets {
        channel_id: u32,
        secrets: Vec<(u64, TextSecret)>,
        reply: oneshot::Sender<usize>,
    },
    TextSecret {
        channel_id: u32,
        /// The epoch wanted; none for the current one.
        epoch: Option<u64>,
        reply: oneshot::Sender<Option<(u64, TextSecret)>>,
    },
}

/// The front end's handle on the group: its state, and the actions a member can take.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    state: watch::Receiver<GroupState>,
    busy: watch::Receiver<bool>,
    problem: watch::Receiver<Option<String>>,
    conversations: watch::Receiver<Vec<ConversationView>>,
    /// Whether the relay has listed our conversations on this connection.
    conversations_listed: watch::Receiver<bool>,
    commands: mpsc::Sender<Command>,
    own_key: PublicKey,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Invite { .. } => "Invite",
            Self::Remove { .. } => "Remove",
            Self::SelfUpdate { .. } => "SelfUpdate",
            Self::Add { .. } => "Add",
            Self::Leave { .. } => "Leave",
            Self::TextSecret { .. } => "TextSecret",
            Self::NoteSent(_) => "NoteSent",
            Self::OpenConversation { .. } => "OpenConversation",
            Self::TextSecrets { .. } => "TextSecrets",
            Self::ImportTextSecrets { .. } => "ImportTextSecrets",
        })
    }
}

impl GroupHandle {
    /// Where we stand now.
    pub fn state(&self) -> GroupState {
        self.state.borrow().clone()
    }

    /// The last problem the group met that a person should hear about (say, a relay that
    /// withheld a commit or sent a Welcome into a group it made up), if any.
    pub fn last_problem(&self) -> Option<String> {
        self.problem.borrow().clone()
    }

    /// Our identity key.
    pub fn own_key(&self) -> PublicKey {
        self.own_key
    }

    /// Waits up to `timeout` until no work is under way (joiners admitted, commits answered).
    pub async fn wait_idle(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.busy.wait_for(|busy| !busy))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Waits up to `timeout` to be in the group; returns the state then (a member, or why not
    /// yet: waiting to be let in, no invite, ...). Returns early when waiting cannot help: no
    /// member is online to let us in, or we hold no invite.
    pub async fn join_within(&mut self, timeout: Duration) -> GroupState {
        let _ = tokio::time::timeout(
            timeout,
            self.wait_for(|state| {
                matches!(
                    state,
                    GroupState::Member { .. }
                        | GroupState::Removed
                        | GroupState::NoInvite
                        | GroupState::NoGroupYet
                        | GroupState::WaitingToBeLetIn { members_online: 0 }
                )
            }),
        )
        .await;
        self.state()
    }

    /// Waits until the state satisfies `done`, and returns it.
    pub async fn wait_for(
        &mut self,
        mut done: impl FnMut(&GroupState) -> bool,
    ) -> Result<GroupState, GroupActionError> {
        let state = self
            .state
            .wait_for(|state| done(state))
            .await
            .map_err(|_| GroupActionError::Stopped)?;
        Ok(state.clone())
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, GroupActionError>>) -> Command,
    ) -> Result<T, GroupActionError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| GroupActionError::Stopped)?;
        answer.await.map_err(|_| GroupActionError::Stopped)?
    }

    /// Makes an invite link carrying a fresh invite secret, with its grant stored at the relay.
    pub async fn create_invite(
        &self,
        expires_in: Option<Duration>,
        max_uses: Option<u32>,
    ) -> Result<InviteLink, GroupActionError> {
        self.ask(|reply| Command::Invite {
            expires_in,
            max_uses,
            reply,
        })
        .await
    }

    /// Removes members from the server and its group (admins only); done once the relay has
    /// accepted the commit.
    pub async fn remove(&self, members: Vec<PublicKey>) -> Result<(), GroupActionError> {
        self.ask(|reply| Command::Remove { members, reply }).await
    }

    /// Adds a server member who is not in the group (admins only), from the KeyPackage the
    /// relay keeps for it; done once the relay has accepted the commit.
    pub async fn add(&self, member: PublicKey) -> Result<(), GroupActionError> {
        self.ask(|reply| Command::Add { member, reply }).await
    }

    /// Rotates our keys.
    pub async fn self_update(&self) -> Result<(), GroupActionError> {
        self.ask(|reply| Command::SelfUpdate { reply }).await
    }

    /// Counts `messages` we sent in the group: after 1,000 our keys rotate.
    pub async fn note_sent(&self, messages: u64) {
        let _ = self.commands.send(Command::NoteSent(messages)).await;
    }

    /// The current epoch and its text secret for `channel_id`, to seal a message with; none
    /// while we are not in the group.
    pub async fn text_secret(&self, channel_id: u32) -> Option<(u64, TextSecret)> {
        self.text_secret_of(channel_id, None).await
    }

    /// The text secret of `channel_id` in `epoch` (none: the current one), to open a message
    /// with; none if we were not in the group then.
    pub async fn text_secret_of(
        &self,
        channel_id: u32,
        epoch: Option<u64>,
    ) -> Option<(u64, TextSecret)> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::TextSecret {
                channel_id,
                epoch,
                reply,
            })
            .await
            .ok()?;
        answer.await.ok()?
    }

    /// Asks to leave the group; the next member online commits it.
    pub async fn leave(&self) -> Result<(), GroupActionError> {
        self.ask(|reply| Command::Leave { reply }).await
    }

    /// Every text secret of server channel `channel_id` this member holds, by epoch (to
    /// share a channel's history with members who join later).
    pub async fn text_secrets(&self, channel_id: u32) -> Vec<(u64, TextSecret)> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::TextSecrets { channel_id, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Keeps text secrets of server channel `channel_id` another member shared, for the epochs
    /// we hold none of; returns how many were new.
    pub async fn import_text_secrets(
        &self,
        channel_id: u32,
        secrets: Vec<(u64, TextSecret)>,
    ) -> usize {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::ImportTextSecrets {
                channel_id,
                secrets,
                reply,
            })
            .await
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or_default()
    }

    /// The conversations we are in, by id.
    pub fn conversations(&self) -> Vec<ConversationView> {
        self.conversations.borrow().clone()
    }

    /// Waits up to `timeout` until the relay has listed our conversations on this connection;
    /// returns them.
    pub async fn conversations_within(&mut self, timeout: Duration) -> Vec<ConversationView> {
        let _ =
            tokio::time::timeout(timeout, self.conversations_listed.wait_for(|done| *done)).await;
        self.conversations()
    }

    /// Waits up to `timeout` until conversation `id` is ready (everyone in it is in its
    /// group); returns it as it is then.
    pub async fn conversation_ready_within(
        &mut self,
        id: u32,
        timeout: Duration,
    ) -> Option<ConversationView> {
        let _ = tokio::time::timeout(
            timeout,
            self.conversations
                .wait_for(|all| all.iter().any(|view| view.info.id == id && view.ready)),
        )
        .await;
        self.conversations()
            .into_iter()
            .find(|view| view.info.id == id)
    }

    /// Opens a conversation with `members` (others on the server): done once the relay
    /// stored it and we added all of them to its group, so all of them read it from the first
    /// message.
    pub async fn open_conversation(
        &self,
        members: Vec<PublicKey>,
    ) -> Result<ConversationInfo, GroupActionError> {
        self.ask(|reply| Command::OpenConversation { members, reply })
            .await
    }
}

/// Which logic a frame or a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The server's group.
    Server,
    /// The conversation at this index.
    Conversation(usize),
}

/// A conversation being opened: its group made, the relay not yet answered or the members not
/// all added yet.
struct Opening {
    group_id: Vec<u8>,
    /// Everyone we asked for, us included.
    members: Vec<PublicKey>,
    reply: oneshot::Sender<Result<ConversationInfo, GroupActionError>>,
}

/// Longest life of an invite whose maker gave none: grants must expire.
const DEFAULT_INVITE_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);

struct Agent {
    /// Weak, so the agent does not keep the client running after its session is dropped.
    client: WeakClient,
    logic: GroupLogic,
    /// One logic per conversation we are in.
    conversation_logics: Vec<GroupLogic>,
    opening: Vec<Opening>,
    /// Every conversation id the relay told us of: never keyed by the server's group.
    conversation_ids: std::collections::HashSet<u32>,
    conversations: watch::Sender<Vec<ConversationView>>,
    conversations_listed: watch::Sender<bool>,
    /// The server and its channels, from the last connection.
    server: Option<(u32, Vec<ChannelInfo>)>,
    store: Arc<Mutex<GroupStore>>,
    keys: Arc<MediaKeyRing>,
    state: watch::Sender<GroupState>,
    busy: watch::Sender<bool>,
    problem: watch::Sender<Option<String>>,
    waiting: Vec<(Purpose, oneshot::Sender<Result<(), GroupActionError>>)>,
    /// Commands that make a commit, asked while another commit was under way: carried out
    /// once it settles, in order.
    deferred: std::collections::VecDeque<Command>,
}

/// Starts the agent; it runs until the client's group channel closes.
pub(crate) fn spawn(
    client: Client,
    events: mpsc::Receiver<GroupEvent>,
    logic: GroupLogic,
    store: GroupStore,
    keys: Arc<MediaKeyRing>,
) -> GroupHandle {
    let (state_tx, state) = watch::channel(GroupState::Connecting);
    let (busy_tx, busy) = watch::channel(true);
    let (problem_tx, problem) = watch::channel(None);
    let (conversations_tx, conversations) = watch::channel(Vec::new());
    let (listed_tx, conversations_listed) = watch::channel(false);
    let (commands_tx, commands) = mpsc::channel(16);
    let own_key = logic.own_key();
    let agent = Agent {
        client: client.downgrade(),
        logic,
        conversation_logics: Vec::new(),
        opening: Vec::new(),
        conversation_ids: std::collections::HashSet::new(),
        conversations: conversations_tx,
        conversations_listed: listed_tx,
        server: None,
        store: Arc::new(Mutex::new(store)),
        keys,
        state: state_tx,
        busy: busy_tx,
        problem: problem_tx,
        waiting: Vec::new(),
        deferred: std::collections::VecDeque::new(),
    };
    tokio::spawn(agent.run(events, commands));
    GroupHandle {
        state,
        busy,
        problem,
        conversations,
        conversations_listed,
        commands: commands_tx,
        own_key,
    }
}

impl Agent {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<GroupEvent>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        let mut rotation_tick = tokio::time::interval(ROTATION_TICK);
        rotation_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(GroupEvent::Connected { server, channels }) => {
                        self.connected(server.id, channels).await;
                        self.remove_departed().await;
                    }
                    Some(GroupEvent::Frame(frame)) => self.frame(frame).await,
                    Some(GroupEvent::ChannelsChanged(channels)) => {
                        self.logic.channels_changed(&channels);
                        if let Some((epoch, bases)) = self.logic.media_bases() {
                            self.keys.add_channels(epoch, bases);
                        }
                        if let Some((_, known)) = self.server.as_mut() {
                            *known = channels;
                        }
                        self.settle(Target::Server).await;
                        // The relay sends the list after each role or moderation change: a
                        // kick by someone who is not a group admin leaves keys for us to remove.
                        self.remove_departed().await;
                    }
                    Some(_) => {}
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command).await,
                _ = tick.tick() => self.keys.expire(Instant::now()),
                _ = rotation_tick.tick() => {
                    let now = unix_now();
                    self.logic.tick(now);
                    self.settle(Target::Server).await;
                    for index in 0..self.conversation_logics.len() {
                        self.conversation_logics[index].tick(now);
                        self.settle(Target::Conversation(index)).await;
                    }
                }
            }
            self.run_deferred().await;
        }
        for (_, reply) in self.waiting.drain(..) {
            let _ = reply.send(Err(GroupActionError::Stopped));
        }
        for opening in self.opening.drain(..) {
            let _ = opening.reply.send(Err(GroupActionError::Stopped));
        }
        for command in self.deferred.drain(..) {
            if let Command::Remove { reply, .. }
            | Command::Add { reply, .. }
            | Command::SelfUpdate { reply } = command
            {
                let _ = reply.send(Err(GroupActionError::Stopped));
            }
        }
    }

    /// The relay admitted us (again): sync every group we know, and ask which conversations we
    /// are in.
    async fn connected(&mut self, server_id: u32, channels: Vec<ChannelInfo>) {
        let stored = self.stored(server_group_id(server_id)).await;
        self.logic.connected(server_id, &channels, stored);
        self.settle(Target::Server).await;
        for index in 0..self.conversation_logics.len() {
            let group_id = self.conversation_logics[index].group_id().to_vec();
            let group_id = if group_id.is_empty() {
                self.conversation_logics[index]
                    .conversation()
                    .map(|conversation| conversation.group_id.clone())
                    .unwrap_or_default()
            } else {
                group_id
            };
            let stored = self.stored(group_id).await;
            self.conversation_logics[index].connected(server_id, &channels, stored);
            self.settle(Target::Conversation(index)).await;
        }
        self.server = Some((server_id, channels));
        // Asked on the last connection: the relay's list tells whether it was opened.
        for opening in self.opening.drain(..) {
            let _ = opening.reply.send(Err(GroupActionError::Refused(
                "the connection to the relay dropped before it answered; try again".into(),
            )));
        }
        let _ = self.conversations_listed.send(false);
        if let Some(client) = self.client.upgrade() {
            let _ = client.send_group(ControlFrame::ListConversations).await;
        }
    }

    /// As a group admin: removes from the server's group the keys of members no longer on the
    /// server (kicked or banned by a moderator who cannot commit removals). The group's members
    /// are read before the relay's list, so nobody added in between looks departed. A commit
    /// in flight defers it to the next trigger.
    async fn remove_departed(&mut self) {
        let own = self.logic.own_key();
        let GroupState::Member { members, .. } = self.logic.state() else {
            return;
        };
        if !members
            .iter()
            .any(|member| member.public_key == own && member.is_admin)
        {
            return;
        }
        let in_group: Vec<PublicKey> = members
            .iter()
            .map(|member| member.public_key)
            .filter(|key| *key != own)
            .collect();
        let Some(client) = self.client.upgrade() else {
            return;
        };
        let Ok(listed) = client.list_members().await else {
            return;
        };
        let departed: Vec<PublicKey> = in_group
            .into_iter()
            .filter(|key| !listed.iter().any(|member| member.public_key == *key))
            .collect();
        if departed.is_empty() {
            return;
        }
        match self.logic.remove(&departed) {
            Ok(()) => {
                info!(
                    removed = departed.len(),
                    "removed departed members' keys from the group"
                );
                self.settle(Target::Server).await;
            }
            Err(error) => debug!("left departed members' keys for later: {error}"),
        }
    }

    /// Hands a frame to the logic of its group.
    async fn frame(&mut self, frame: ControlFrame) {
        if let ControlFrame::Conversations {
            conversations,
            complete,
        } = frame
        {
            self.conversations_changed(conversations, complete).await;
            return;
        }
        let target = match group_of(&frame) {
            Some(group_id) => {
                if let Some(index) = self
                    .conversation_logics
                    .iter()
                    .position(|logic| logic.group_id() == group_id)
                {
                    Target::Conversation(index)
                } else if group_id == self.logic.group_id() {
                    Target::Server
                } else {
                    if let ControlFrame::GroupRefused { reason, .. } = &frame {
                        let (group_id, reason) = (group_id.to_vec(), reason.clone());
                        self.refused_opening(&group_id, &reason).await;
                    }
                    return;
                }
            }
            None => match &frame {
                ControlFrame::KeyPackageClaimed { member, .. } => self
                    .conversation_logics
                    .iter()
                    .position(|logic| logic.has_claim(member))
                    .map_or(Target::Server, Target::Conversation),
                _ => Target::Server,
            },
        };
        if let Some(logic) = self.logic_mut(target) {
            logic.handle(frame);
        }
        self.settle(target).await;
    }

    /// The relay refused to open a conversation: tell whoever asked, and forget its group.
    async fn refused_opening(&mut self, group_id: &[u8], reason: &str) {
        if let Some(index) = self
            .opening
            .iter()
            .position(|opening| opening.group_id == group_id)
        {
            let opening = self.opening.remove(index);
            let _ = opening
                .reply
                .send(Err(GroupActionError::Refused(reason.to_owned())));
            self.logic.forget_group(group_id);
            self.settle(Target::Server).await;
        }
    }

    /// The relay told us of conversations we are in: all of them (`complete`), or new ones.
    async fn conversations_changed(
        &mut self,
        conversations: Vec<ConversationInfo>,
        complete: bool,
    ) {
        if complete {
            // Out of the others (we left, or were taken out): their history stays readable
            // from the keys on disk.
            self.conversation_logics.retain(|logic| {
                logic.conversation().is_some_and(|known| {
                    conversations
                        .iter()
                        .any(|conversation| conversation.id == known.id)
                })
            });
        }
        for conversation in conversations {
            if let Err(why) = self.acceptable(&conversation) {
                warn!(
                    conversation = conversation.id,
                    "ignored a conversation: {why}"
                );
                let _ = self.problem.send(Some(format!(
                    "the relay described a conversation that cannot be right ({why}); it is ignored"
                )));
                if let Some(index) = self
                    .opening
                    .iter()
                    .position(|opening| opening.group_id == conversation.group_id)
                {
                    let opening = self.opening.remove(index);
                    let _ = opening
                        .reply
                        .send(Err(GroupActionError::Refused(why.to_owned())));
                }
                continue;
            }
            self.conversation_ids.insert(conversation.id);
            if let Some(index) = self.conversation_logics.iter().position(|logic| {
                logic
                    .conversation()
                    .is_some_and(|known| known.id == conversation.id)
            }) {
                self.conversation_logics[index].set_conversation(conversation);
                self.settle(Target::Conversation(index)).await;
                continue;
            }
            let Some((server_id, channels)) = self.server.clone() else {
                continue;
            };
            let stored = self.stored(conversation.group_id.clone()).await;
            let mut logic = self.logic.conversation_logic(conversation);
            logic.connected(server_id, &channels, stored);
            self.conversation_logics.push(logic);
            let index = self.conversation_logics.len() - 1;
            self.settle(Target::Conversation(index)).await;
        }
        if complete {
            let _ = self.conversations_listed.send(true);
        }
        self.publish_conversations();
        self.publish_busy();
    }

    /// Whether a conversation as the relay describes it can be right: we are in it, its group
    /// is a conversation's and its id no channel's, it matches what we knew of it (members
    /// only ever leave), and one we open has exactly the members we asked for.
    fn acceptable(&self, conversation: &ConversationInfo) -> Result<(), &'static str> {
        let own = self.logic.own_key();
        if !conversation.members.contains(&own) {
            return Err("we are not in it");
        }
        if !conversation
            .group_id
            .starts_with(sotto_net::group::CONVERSATION_GROUP_PREFIX)
        {
            return Err("its group is not a conversation's");
        }
        let channels = self
            .server
            .as_ref()
            .map_or(&[][..], |(_, channels)| channels);
        if channels.iter().any(|channel| channel.id == conversation.id) {
            return Err("its id is a channel's");
        }
        let mut distinct = conversation.members.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != conversation.members.len() {
            return Err("someone is listed twice");
        }
        for logic in &self.conversation_logics {
            let Some(known) = logic.conversation() else {
                continue;
            };
            let same_id = known.id == conversation.id;
            let same_group = known.group_id == conversation.group_id;
            if same_id != same_group || (same_id && known.creator != conversation.creator) {
                return Err("it clashes with a conversation we know");
            }
            if same_id
                && !conversation
                    .members
                    .iter()
                    .all(|key| known.members.contains(key))
            {
                return Err("someone was added to it");
            }
        }
        if let Some(opening) = self
            .opening
            .iter()
            .find(|opening| opening.group_id == conversation.group_id)
        {
            let mut asked = opening.members.clone();
            asked.sort_unstable();
            asked.dedup();
            if conversation.creator != own || asked != distinct {
                return Err("it is not the conversation we asked for");
            }
        }
        Ok(())
    }

    fn logic_mut(&mut self, target: Target) -> Option<&mut GroupLogic> {
        match target {
            Target::Server => Some(&mut self.logic),
            Target::Conversation(index) => self.conversation_logics.get_mut(index),
        }
    }

    /// Tells the front end where each conversation stands, and answers those who opened one
    /// once it is ready (or cannot be).
    fn publish_conversations(&mut self) {
        let views: Vec<ConversationView> = self
            .conversation_logics
            .iter()
            .filter_map(|logic| {
                Some(ConversationView {
                    info: logic.conversation()?.clone(),
                    state: logic.state().clone(),
                    ready: logic.conversation_ready(),
                })
            })
            .collect();
        // The views first: whoever is answered sees the conversation ready.
        self.conversations.send_if_modified(|known| {
            if *known == views {
                return false;
            }
            *known = views;
            true
        });
        let mut index = 0;
        while index < self.opening.len() {
            let group_id = &self.opening[index].group_id;
            let logic = self
                .conversation_logics
                .iter()
                .find(|logic| logic.group_id() == group_id.as_slice());
            let outcome = match logic {
                Some(logic) if logic.conversation_ready() => logic.conversation().cloned().map(Ok),
                Some(logic) if !logic.unreachable().is_empty() => {
                    Some(Err(GroupActionError::Unreachable))
                }
                _ => None,
            };
            match outcome {
                Some(outcome) => {
                    let opening = self.opening.remove(index);
                    let _ = opening.reply.send(outcome);
                }
                None => index += 1,
            }
        }
    }

    /// Runs `work` on the group store, off the async threads (SQLite blocks); none if the
    /// blocking task died.
    async fn on_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut GroupStore) -> T + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            work(
                &mut store
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            )
        })
        .await
        .ok()
    }

    /// What the store kept for `group_id`.
    async fn stored(&self, group_id: Vec<u8>) -> StoredGroup {
        self.on_store(move |store| {
            store.stored(&group_id).unwrap_or_else(|error| {
                warn!("{error}");
                StoredGroup::default()
            })
        })
        .await
        .unwrap_or_default()
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Invite {
                expires_in,
                max_uses,
                reply,
            } => {
                let life = expires_in.unwrap_or(DEFAULT_INVITE_LIFE);
                let result = self.invite(life, max_uses).await;
                let _ = reply.send(result);
            }
            Command::Remove { members, reply } => match self.logic.remove(&members) {
                Ok(()) => {
                    self.waiting.push((Purpose::Remove, reply));
                    self.settle(Target::Server).await;
                }
                Err(GroupError::CommitPending) => {
                    self.deferred.push_back(Command::Remove { members, reply });
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Command::Add { member, reply } => match self.logic.add(member) {
                Ok(()) => {
                    self.waiting.push((Purpose::Add, reply));
                    self.settle(Target::Server).await;
                }
                Err(GroupError::CommitPending) => {
                    self.deferred.push_back(Command::Add { member, reply });
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Command::SelfUpdate { reply } => match self.logic.self_update() {
                Ok(()) => {
                    self.waiting.push((Purpose::SelfUpdate, reply));
                    self.settle(Target::Server).await;
                }
                Err(GroupError::CommitPending) => {
                    self.deferred.push_back(Command::SelfUpdate { reply });
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Command::NoteSent(messages) => {
                self.logic.note_sent(messages);
                // Due now? The next tick would do it too; no need to wait a minute.
                self.logic.tick(unix_now());
                self.settle(Target::Server).await;
            }
            Command::OpenConversation { members, reply } => self.open(members, reply).await,
            Command::TextSecrets { channel_id, reply } => {
                let group_id = self.logic.group_id().to_vec();
                let secrets = self
                    .on_store(move |store| store.text_secrets(&group_id, channel_id))
                    .await
                    .and_then(|found| found.map_err(|error| warn!("{error}")).ok())
                    .unwrap_or_default();
                let _ = reply.send(secrets);
            }
            Command::ImportTextSecrets {
                channel_id,
                secrets,
                reply,
            } => {
                let group_id = self.logic.group_id().to_vec();
                let imported = self
                    .on_store(move |store| {
                        store.import_text_secrets(&group_id, channel_id, secrets)
                    })
                    .await
                    .and_then(|done| done.map_err(|error| warn!("{error}")).ok())
                    .unwrap_or(0);
                let _ = reply.send(imported);
            }
            Command::TextSecret {
                channel_id,
                epoch,
                reply,
            } => {
                // A conversation's secrets come from its own group (never the server's, even
                // once we are out of it), and sealing waits until exactly its members are in.
                let conversation = self.conversation_logics.iter().find(|logic| {
                    logic
                        .conversation()
                        .is_some_and(|conversation| conversation.id == channel_id)
                });
                let logic = match conversation {
                    Some(logic) => logic,
                    None if self.conversation_ids.contains(&channel_id) => {
                        let _ = reply.send(None);
                        return;
                    }
                    None => &self.logic,
                };
                let group_id = logic.group_id().to_vec();
                let sealing_early = epoch.is_none()
                    && logic.conversation().is_some()
                    && !logic.conversation_ready();
                let current = if sealing_early {
                    None
                } else {
                    logic.text_secret(channel_id)
                };
                let secret = match epoch {
                    None => current,
                    Some(epoch) if current.as_ref().is_some_and(|(now, _)| *now == epoch) => {
                        current
                    }
                    Some(epoch) => self
                        .on_store(move |store| store.text_secret(&group_id, epoch, channel_id))
                        .await
                        .and_then(Result::ok)
                        .flatten()
                        .map(|secret| (epoch, secret)),
                };
                let _ = reply.send(secret);
            }
            Command::Leave { reply } => {
                let result = self.logic.leave().map_err(GroupActionError::from);
                self.settle(Target::Server).await;
                let _ = reply.send(result);
            }
        }
    }

    /// Makes a conversation's group and asks the relay to open it; answered once everyone is
    /// in the group.
    async fn open(
        &mut self,
        mut members: Vec<PublicKey>,
        reply: oneshot::Sender<Result<ConversationInfo, GroupActionError>>,
    ) {
        let (group_id, group_info) = match self.logic.new_conversation_group() {
            Ok(made) => made,
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        };
        // The new group's keys are on disk before the relay hears of it.
        self.settle(Target::Server).await;
        let Some(client) = self.client.upgrade() else {
            let _ = reply.send(Err(GroupActionError::Stopped));
            return;
        };
        let frame = ControlFrame::OpenConversation {
            group_id: group_id.clone(),
            members: members.clone(),
            group_info,
        };
        if client.send_group(frame).await.is_err() {
            let _ = reply.send(Err(GroupActionError::Stopped));
            return;
        }
        members.push(self.logic.own_key());
        self.opening.push(Opening {
            group_id,
            members,
            reply,
        });
    }

    async fn invite(
        &mut self,
        life: Duration,
        max_uses: Option<u32>,
    ) -> Result<InviteLink, GroupActionError> {
        let (secret, grant) = self.logic.new_invite(unix_now() + life.as_secs())?;
        let client = self.client.upgrade().ok_or(GroupActionError::Stopped)?;
        let mut link = client
            .create_invite(Some(life), max_uses, Some(grant))
            .await?;
        link.secret = Some(secret);
        Ok(link)
    }

    /// Saves what the logic changed, then sends its frames and acts on its events.
    /// Carries out deferred commands, in order, while no commit is under way.
    async fn run_deferred(&mut self) {
        while !self.logic.commit_pending() {
            let Some(command) = self.deferred.pop_front() else {
                return;
            };
            let waiting = self.deferred.len();
            self.command(command).await;
            if self.deferred.len() > waiting {
                // Deferred again (something else started a commit first): keep its place.
                if let Some(again) = self.deferred.pop_back() {
                    self.deferred.push_front(again);
                }
                return;
            }
        }
    }

    async fn settle(&mut self, target: Target) {
        let Some(logic) = self.logic_mut(target) else {
            return;
        };
        let (delta, changes) = logic.take_changes();
        if !delta.is_empty() || !changes.is_empty() {
            let saved = self
                .on_store(move |store| store.save(delta, &changes))
                .await;
            match saved {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    // Nothing is sent that is not on disk: a commit must not be accepted by the
                    // relay and then forgotten here.
                    warn!("could not save the group state, so nothing was sent: {error}");
                    if let Some(logic) = self.logic_mut(target) {
                        while logic.poll_transmit().is_some() {}
                    }
                    return;
                }
                None => return,
            }
        }
        if let Some(client) = self.client.upgrade() {
            while let Some(frame) = self.logic_mut(target).and_then(GroupLogic::poll_transmit) {
                if client.send_group(frame).await.is_err() {
                    break;
                }
            }
        }
        if let Target::Conversation(index) = target {
            // A conversation's group has no media and nobody waits on its commits.
            while let Some(event) = self
                .conversation_logics
                .get_mut(index)
                .and_then(GroupLogic::poll_event)
            {
                if let LogicEvent::Problem(message) = event {
                    warn!("conversation group: {message}");
                    let _ = self.problem.send(Some(message));
                }
            }
            self.publish_conversations();
            self.publish_busy();
            return;
        }
        while let Some(event) = self.logic.poll_event() {
            match event {
                LogicEvent::EpochChanged { removal, .. } => self.install_keys(removal),
                LogicEvent::State(state) => {
                    if state == GroupState::Removed {
                        self.keys.clear();
                    }
                    let _ = self.state.send(state);
                }
                LogicEvent::CommitSettled { purpose, outcome } => {
                    if let Some(index) = self
                        .waiting
                        .iter()
                        .position(|(waiting, _)| *waiting == purpose)
                    {
                        let (_, reply) = self.waiting.remove(index);
                        let _ = reply.send(outcome.map_err(GroupActionError::Refused));
                    }
                }
                LogicEvent::Problem(message) => {
                    warn!("group: {message}");
                    let _ = self.problem.send(Some(message));
                }
            }
        }
        self.publish_busy();
    }

    fn publish_busy(&self) {
        let busy = self.logic.is_busy() || self.conversation_logics.iter().any(GroupLogic::is_busy);
        let _ = self.busy.send(busy);
    }

    fn install_keys(&mut self, removal: bool) {
        match self.logic.media_bases() {
            Some((epoch, bases)) => {
                // Receivers can open the new epoch at once; the old one stays readable for the
                // grace time.
                let first = self.keys.epochs().0.is_none();
                self.keys.install(epoch, bases, Instant::now());
                let Some(client) = self.client.upgrade() else {
                    return;
                };
                if removal || first {
                    // Whoever was removed must not read what we send from now on; and with no
                    // key before this one there is nothing to wait for.
                    client.rekey_media();
                } else {
                    // Others merge the commit a moment after us: sealing with the new key only
                    // after that keeps their audio whole.
                    let client = client.downgrade();
                    tokio::spawn(async move {
                        tokio::time::sleep(SENDER_SWITCH_DELAY).await;
                        if let Some(client) = client.upgrade() {
                            client.rekey_media();
                        }
                    });
                }
            }
            None => self.keys.clear(),
        }
    }
}

/// The group a group frame is about, if it names one.
fn group_of(frame: &ControlFrame) -> Option<&[u8]> {
    match frame {
        ControlFrame::GroupStatus { group_id, .. }
        | ControlFrame::CommitAccepted { group_id, .. }
        | ControlFrame::GroupRefused { group_id, .. }
        | ControlFrame::GroupMessage { group_id, .. }
        | ControlFrame::GroupWelcome { group_id, .. }
        | ControlFrame::JoinRequested { group_id, .. }
        | ControlFrame::JoinPending { group_id, .. } => Some(group_id),
        _ => None,
    }
}
