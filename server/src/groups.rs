//! The relay as MLS delivery service: it checks handshake messages against each group's public
//! state, lets exactly one commit win each epoch (decided by the store, in one transaction),
//! and hands commits, proposals, Welcomes and join requests to the members who need them. It
//! holds no secret: only public group state and messages it cannot read.
//!
//! These functions block (SQLite, MLS checks): call them from `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use sotto_net::group::{
    CONVERSATION_GROUP_PREFIX, DeliveryError, DeliveryGroup, JoinRequest, check_key_package,
    server_group_id,
};
use sotto_net::proto::control::{ControlFrame, PublicKey};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::db::{
    AcceptCommit, CommitOutcome, Member, NewConversation, Role, Store, StoreError,
    StoredConversation,
};

/// The groups' public state, cached from the store, and a signal of every change.
#[derive(Debug)]
pub(crate) struct Groups {
    cache: Mutex<HashMap<Vec<u8>, Arc<Mutex<DeliveryGroup>>>>,
    changed: watch::Sender<u64>,
}

/// What a commit did, for the connection that sent it.
#[derive(Debug)]
pub(crate) struct CommitAnswer {
    /// The frame to answer with.
    pub(crate) answer: ControlFrame,
    /// Members whose server membership the commit ended (their connections should close),
    /// or, for a conversation's group, who are out of the conversation.
    pub(crate) removed_members: Vec<u32>,
    /// The conversation whose group it is; none for the server's group.
    pub(crate) conversation: Option<u32>,
}

fn refused(
    group_id: &[u8],
    epoch: u64,
    current_epoch: u64,
    reason: impl std::fmt::Display,
) -> ControlFrame {
    let mut reason = reason.to_string();
    if reason.len() > 1000 {
        let mut end = 1000;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    ControlFrame::GroupRefused {
        group_id: group_id.to_vec(),
        epoch,
        current_epoch,
        reason: reason.replace(char::is_control, " "),
    }
}

impl Groups {
    pub(crate) fn new() -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }

    /// Wakes whenever any group changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    fn forget(&self, group_id: &[u8]) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(group_id);
    }

    /// The group, from the cache or the store.
    fn load(
        &self,
        store: &Store,
        group_id: &[u8],
    ) -> Result<Option<Arc<Mutex<DeliveryGroup>>>, StoreError> {
        if let Some(group) = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(group_id)
        {
            return Ok(Some(group.clone()));
        }
        let Some(stored) = store.group(group_id)? else {
            return Ok(None);
        };
        let group = DeliveryGroup::restore(&stored.state, group_id)
            .map_err(|_| StoreError::Corrupt("group state"))?;
        let group = Arc::new(Mutex::new(group));
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(group_id.to_vec(), group.clone());
        Ok(Some(group))
    }

    /// Answers `GroupSync`: the group's epoch and, for a member not in it yet, the grant of
    /// the invite it came with. Also says whether the member is in the group.
    pub(crate) fn status(
        &self,
        store: &Store,
        server_id: u32,
        member: &Member,
        group_id: &[u8],
    ) -> Result<(ControlFrame, bool), StoreError> {
        let Some(group) = self.load(store, group_id)? else {
            return Ok((
                ControlFrame::GroupStatus {
                    group_id: group_id.to_vec(),
                    epoch: None,
                    grant: None,
                },
                false,
            ));
        };
        let (epoch, in_group) = {
            let group = group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (group.epoch(), group.members().contains(&member.public_key))
        };
        // Invites lead into the server's group only.
        let grant = if in_group || group_id != server_group_id(server_id) {
            None
        } else {
            store.admission_grant(server_id, member.id)?
        };
        Ok((
            ControlFrame::GroupStatus {
                group_id: group_id.to_vec(),
                epoch: Some(epoch),
                grant,
            },
            in_group,
        ))
    }

    /// Creates the server's group from its first member's GroupInfo (the owner only).
    pub(crate) fn create(
        &self,
        store: &Store,
        server_id: u32,
        member: &Member,
        group_id: &[u8],
        group_info: &[u8],
        now_unix: u64,
    ) -> Result<ControlFrame, StoreError> {
        if member.role != Role::Owner {
            return Ok(refused(
                group_id,
                0,
                0,
                "only the server's owner creates its group",
            ));
        }
        let group = match DeliveryGroup::from_group_info(group_info, &member.public_key) {
            Ok(group) => group,
            Err(error) => return Ok(refused(group_id, 0, 0, error)),
        };
        if group.group_id() != group_id {
            return Ok(refused(
                group_id,
                0,
                0,
                "the GroupInfo is for another group",
            ));
        }
        if !store.create_group(server_id, group_id, &group.snapshot(), now_unix)? {
            let current = store.group(group_id)?.map_or(0, |group| group.epoch);
            return Ok(refused(
                group_id,
                0,
                current,
                "the server already has a group",
            ));
        }
        info!(member = member.id, "created the server's MLS group");
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(group_id.to_vec(), Arc::new(Mutex::new(group)));
        self.notify();
        Ok(ControlFrame::GroupStatus {
            group_id: group_id.to_vec(),
            epoch: Some(0),
            grant: None,
        })
    }

    /// Opens a conversation with its group at epoch 0, from its creator's GroupInfo (the
    /// creator alone in it). `members` are everyone in it, the creator included; the caller
    /// checked they are members of the server.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_conversation(
        &self,
        store: &Store,
        server_id: u32,
        creator: &Member,
        members: &[(u32, PublicKey)],
        group_id: &[u8],
        group_info: &[u8],
        now_unix: u64,
    ) -> Result<Result<StoredConversation, String>, StoreError> {
        if !group_id.starts_with(CONVERSATION_GROUP_PREFIX) {
            return Ok(Err(
                "a conversation's group id starts with \"sotto/conversation/\"".into(),
            ));
        }
        let group = match DeliveryGroup::from_group_info(group_info, &creator.public_key) {
            Ok(group) => group,
            Err(error) => return Ok(Err(error.to_string())),
        };
        if group.group_id() != group_id {
            return Ok(Err("the GroupInfo is for another group".into()));
        }
        if group.epoch() != 0 {
            return Ok(Err("a conversation's group must be new (epoch 0)".into()));
        }
        let opened = store.open_conversation(&NewConversation {
            server_id,
            creator: (creator.id, creator.public_key),
            members,
            group_id,
            state: &group.snapshot(),
            now_unix,
        })?;
        let conversation = match opened {
            Ok(conversation) => conversation,
            Err(refusal) => return Ok(Err(refusal.to_string())),
        };
        info!(
            member = creator.id,
            conversation = conversation.id,
            members = members.len(),
            "opened a conversation"
        );
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(group_id.to_vec(), Arc::new(Mutex::new(group)));
        self.notify();
        Ok(Ok(conversation))
    }

    /// Checks a commit and, if the store makes it the commit of its epoch, applies it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit(
        &self,
        store: &Store,
        member: &Member,
        group_id: &[u8],
        epoch: u64,
        commit: &[u8],
        welcome: Option<&[u8]>,
        conversation_members: Option<&[PublicKey]>,
        server_id: u32,
        now_unix: u64,
    ) -> Result<CommitAnswer, StoreError> {
        let refuse = |current: u64, reason: &dyn std::fmt::Display| CommitAnswer {
            answer: refused(group_id, epoch, current, reason),
            removed_members: Vec::new(),
            conversation: None,
        };
        let Some(group) = self.load(store, group_id)? else {
            return Ok(refuse(0, &"the group does not exist"));
        };
        let mut group = group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = group.epoch();
        if current != epoch {
            return Ok(refuse(
                current,
                &format!("the group is at epoch {current}; another commit won epoch {epoch}"),
            ));
        }
        let checked = match group.check_commit(commit, now_unix) {
            Ok(checked) => checked,
            Err(error) => return Ok(refuse(current, &error)),
        };
        let summary = checked.summary.clone();
        if summary.committer != member.public_key {
            return Ok(refuse(
                current,
                &"a commit must be sent by the member who made it",
            ));
        }
        if let Some(allowed) = conversation_members
            && summary.added.iter().any(|added| !allowed.contains(added))
        {
            return Ok(refuse(
                current,
                &"only the conversation's members may be added to its group",
            ));
        }
        if conversation_members.is_none() {
            // The server's group: removing someone is kicking them, unless they asked to
            // leave or are already out of the server.
            for removed in &summary.removed {
                if let Err(reason) = store.may_remove_from_server_group(
                    server_id, group_id, epoch, member.id, removed, now_unix,
                )? {
                    return Ok(refuse(current, &reason));
                }
            }
        }
        if !summary.added.is_empty() && welcome.is_none() {
            return Ok(refuse(
                current,
                &"a commit that adds members must come with their Welcome",
            ));
        }
        if let Err(error) = group.merge(checked) {
            drop(group);
            self.forget(group_id);
            return Ok(refuse(current, &error));
        }
        let state = group.snapshot();
        let outcome = store.accept_commit(&AcceptCommit {
            group_id,
            epoch,
            committer: member.id,
            message: commit,
            state: &state,
            welcome,
            added: &summary.added,
            removed: &summary.removed,
            now_unix,
        });
        drop(group);
        match outcome {
            Ok(CommitOutcome::Accepted {
                removed_members,
                conversation,
            }) => {
                info!(
                    member = member.id,
                    epoch,
                    added = summary.added.len(),
                    removed = summary.removed.len(),
                    "commit accepted"
                );
                self.notify();
                Ok(CommitAnswer {
                    answer: ControlFrame::CommitAccepted {
                        group_id: group_id.to_vec(),
                        epoch,
                    },
                    removed_members,
                    conversation,
                })
            }
            Ok(CommitOutcome::Conflict { current_epoch }) => {
                // Another relay (or a stale cache) moved the group on: reload it next time.
                self.forget(group_id);
                Ok(refuse(
                    current_epoch,
                    &format!("another commit won epoch {epoch}"),
                ))
            }
            Err(error) => {
                self.forget(group_id);
                Err(error)
            }
        }
    }

    /// Queues a member's proposal to leave; answers only a refusal.
    pub(crate) fn propose(
        &self,
        store: &Store,
        member: &Member,
        group_id: &[u8],
        proposal: &[u8],
    ) -> Result<Option<ControlFrame>, StoreError> {
        let Some(group) = self.load(store, group_id)? else {
            return Ok(Some(refused(group_id, 0, 0, "the group does not exist")));
        };
        let mut group = group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let epoch = group.epoch();
        match group.check_proposal(proposal) {
            Ok(proposer) if proposer == member.public_key => {}
            Ok(_) => {
                drop(group);
                self.forget(group_id);
                return Ok(Some(refused(
                    group_id,
                    epoch,
                    epoch,
                    "a proposal must be sent by the member who made it",
                )));
            }
            Err(error) => return Ok(Some(refused(group_id, epoch, epoch, error))),
        }
        let state = group.snapshot();
        drop(group);
        if !store.add_proposal(group_id, epoch, &member.public_key, proposal, &state)? {
            self.forget(group_id);
            return Ok(Some(refused(
                group_id,
                epoch,
                epoch + 1,
                "the group moved on; propose again",
            )));
        }
        self.notify();
        Ok(None)
    }

    /// Stores a request to be let in, after checking everything the relay can: the
    /// KeyPackage is the requester's, the invite proof verifies, the inviter is a member.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn join(
        &self,
        store: &Store,
        server_id: u32,
        member: &Member,
        group_id: &[u8],
        request: &[u8],
        members_online: u32,
        now_unix: u64,
    ) -> Result<ControlFrame, StoreError> {
        if group_id != server_group_id(server_id) {
            return Ok(refused(
                group_id,
                0,
                0,
                "only the server's group takes join requests; a conversation's creator adds its members",
            ));
        }
        let Some(group) = self.load(store, group_id)? else {
            return Ok(refused(
                group_id,
                0,
                0,
                "the server has no group yet; wait for its owner to come online",
            ));
        };
        let (epoch, members) = {
            let group = group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (group.epoch(), group.members())
        };
        let checked = JoinRequest::decode(request)
            .map_err(|error| error.to_string())
            .and_then(|parsed| {
                let info = check_key_package(&parsed.key_package, &member.public_key)
                    .map_err(|error: DeliveryError| error.to_string())?;
                if info.reference != parsed.proof.key_package_ref {
                    return Err("the invite proof is for another KeyPackage".to_owned());
                }
                parsed
                    .proof
                    .verify(group_id, now_unix)
                    .map_err(|error| error.to_string())?;
                if !members.contains(&parsed.proof.grant.inviter) {
                    return Err("the invite was made by someone no longer in the group".to_owned());
                }
                Ok(())
            });
        if let Err(reason) = checked {
            warn!(member = member.id, "refused a join request: {reason}");
            return Ok(refused(group_id, 0, epoch, reason));
        }
        if members.contains(&member.public_key) {
            return Ok(refused(group_id, 0, epoch, "already a member of the group"));
        }
        store.add_join_request(group_id, &member.public_key, request, now_unix)?;
        self.notify();
        Ok(ControlFrame::JoinPending {
            group_id: group_id.to_vec(),
            members_online,
        })
    }
}

/// What a connection has handed its member of one group so far.
#[derive(Debug, Default)]
pub(crate) struct GroupCursor {
    /// The group.
    pub(crate) group_id: Vec<u8>,
    /// Whether the member is in the group (else it waits for a Welcome).
    pub(crate) in_group: bool,
    /// The next commit epoch to send.
    pub(crate) next_epoch: u64,
    /// Proposals of `next_epoch` sent, by sequence number.
    pub(crate) proposals_sent: Option<u64>,
    /// Join requests sent (a digest of each, so a replaced request goes out again).
    pub(crate) requests_sent: HashMap<PublicKey, [u8; 32]>,
    /// Whether the Welcome was sent.
    pub(crate) welcome_sent: bool,
    /// The epoch a member no longer in the group says it holds: it gets the commits from
    /// there once, so it learns it was removed.
    pub(crate) claimed_epoch: Option<u64>,
    /// Whether the last [`Self::pending`] stopped at its batch limit (more commits wait).
    pub(crate) more: bool,
}

/// Most commits sent per wake-up; the rest follow on the next.
const COMMITS_PER_BATCH: u32 = 64;

impl GroupCursor {
    /// The frames the member has not had yet; advances the cursor past them.
    pub(crate) fn pending(
        &mut self,
        store: &Store,
        member: &PublicKey,
    ) -> Result<Vec<ControlFrame>, StoreError> {
        let mut frames = Vec::new();
        if !self.in_group {
            if let Some(epoch) = self.claimed_epoch.take() {
                for (epoch, message) in
                    store.commits_since(&self.group_id, epoch, COMMITS_PER_BATCH)?
                {
                    frames.push(ControlFrame::GroupMessage {
                        group_id: self.group_id.clone(),
                        epoch,
                        message,
                    });
                }
            }
            if !self.welcome_sent
                && let Some(welcome) = store.welcome_for(&self.group_id, member)?
            {
                self.welcome_sent = true;
                frames.push(ControlFrame::GroupWelcome {
                    group_id: self.group_id.clone(),
                    welcome,
                });
            }
            return Ok(frames);
        }
        let commits = store.commits_since(&self.group_id, self.next_epoch, COMMITS_PER_BATCH)?;
        self.more = commits.len() >= COMMITS_PER_BATCH as usize;
        for (epoch, message) in commits {
            self.next_epoch = epoch + 1;
            self.proposals_sent = None;
            frames.push(ControlFrame::GroupMessage {
                group_id: self.group_id.clone(),
                epoch,
                message,
            });
        }
        for (seq, message) in store.proposals(&self.group_id, self.next_epoch, member)? {
            if self.proposals_sent.is_some_and(|sent| seq <= sent) {
                continue;
            }
            self.proposals_sent = Some(seq);
            frames.push(ControlFrame::GroupMessage {
                group_id: self.group_id.clone(),
                epoch: self.next_epoch,
                message,
            });
        }
        for (key, request) in store.join_requests(&self.group_id)? {
            let digest: [u8; 32] = Sha256::digest(&request).into();
            if self.requests_sent.get(&key) == Some(&digest) {
                continue;
            }
            self.requests_sent.insert(key, digest);
            frames.push(ControlFrame::JoinRequested {
                group_id: self.group_id.clone(),
                request,
            });
        }
        Ok(frames)
    }
}
