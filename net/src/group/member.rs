//! A member's view of one group: create, admit, remove, rotate, receive, derive keys.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    Capabilities, ExtensionType, Extensions, GroupId, KeyPackage, LeafNodeIndex,
    LeafNodeParameters, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupJoinConfig,
    MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, ProcessedMessageContent, Proposal, Sender,
    StagedCommit, StagedWelcome, WireFormatPolicy,
};
use openmls_traits::OpenMlsProvider as _;
use zeroize::Zeroizing;

use super::admins::AdminList;
use super::admission::{InviteGrant, InviteSecret, JoinProof, JoinRequest};
use super::error::GroupError;
use super::facts::{Before, commit_facts, identity_of};
use super::policy;
use super::provider::GroupProvider;
use super::signer::{IdentitySigner, credential_of};
use super::verify::PrivacyCode;
use super::{
    ADMINS_EXTENSION, CIPHERSUITE, MAX_GROUP_ID_LEN, MEDIA_EXPORTER_LABEL, TEXT_EXPORTER_LABEL,
};
use crate::identity::Identity;
use crate::proto::control::PublicKey;

/// A member's state of one MLS group.
#[derive(Debug)]
pub struct Group {
    pub(super) mls: MlsGroup,
    own_key: PublicKey,
}

/// A member of a group, as the group's tree shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's identity key.
    pub public_key: PublicKey,
    /// Whether the admin list names the member.
    pub is_admin: bool,
}

/// A commit of ours, to hand to the relay. Merge it with [`Group::merge_pending`] only once
/// the relay has accepted it; discard it with [`Group::discard_pending`] if it was refused.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The commit (an MLS PublicMessage).
    pub commit: Vec<u8>,
    /// The Welcome for added members, if any.
    pub welcome: Option<Vec<u8>>,
    /// The epoch the commit was made in (the relay accepts one commit per epoch).
    pub epoch: u64,
}

/// What a received handshake or application message did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A commit was checked and merged; the group is now at `epoch`.
    Commit {
        /// The new epoch.
        epoch: u64,
        /// Identities added.
        added: Vec<PublicKey>,
        /// Identities removed.
        removed: Vec<PublicKey>,
    },
    /// A commit removed us: the group is over for this member.
    Removed,
    /// A proposal was stored for the next commit.
    Proposal,
    /// An application message.
    Application {
        /// Who sent it.
        sender: PublicKey,
        /// What it says.
        data: Zeroizing<Vec<u8>>,
    },
}

fn capabilities() -> Capabilities {
    Capabilities::builder()
        .ciphersuites(vec![CIPHERSUITE])
        .extensions(vec![
            ExtensionType::Unknown(ADMINS_EXTENSION),
            ExtensionType::LastResort,
        ])
        .build()
}

fn wire_format_policy() -> WireFormatPolicy {
    // Handshake messages go out as PublicMessages so the relay can check them against the
    // group's public state; application messages are always PrivateMessages.
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(wire_format_policy())
        .use_ratchet_tree_extension(true)
        .max_past_epochs(0)
        .build()
}

fn serialize(message: &MlsMessageOut) -> Result<Vec<u8>, GroupError> {
    message
        .tls_serialize_detached()
        .map_err(|error| GroupError::mls("encode a message", error))
}

/// Decodes and validates a KeyPackage sent as an MLS message.
pub(crate) fn parse_key_package(
    provider: &impl openmls_traits::OpenMlsProvider,
    bytes: &[u8],
) -> Result<KeyPackage, GroupError> {
    super::delivery::decode_key_package(provider.crypto(), bytes)
        .map_err(|error| GroupError::malformed("KeyPackage", error))
}

impl Group {
    /// Creates a group with `identity` as its only member and admin.
    pub fn create(
        provider: &GroupProvider,
        identity: &Identity,
        group_id: &[u8],
    ) -> Result<Self, GroupError> {
        if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_LEN {
            return Err(GroupError::GroupId);
        }
        let admins = AdminList::new([identity.public_key()])
            .map_err(|error| GroupError::mls("create a group", error))?;
        let extensions = Extensions::single(admins.to_extension())
            .map_err(|error| GroupError::mls("create a group", error))?;
        let mls = MlsGroup::builder()
            .with_group_id(GroupId::from_slice(group_id))
            .ciphersuite(CIPHERSUITE)
            .with_wire_format_policy(wire_format_policy())
            .use_ratchet_tree_extension(true)
            .max_past_epochs(0)
            .with_capabilities(capabilities())
            .with_group_context_extensions(extensions)
            .build(provider, &IdentitySigner(identity), credential_of(identity))
            .map_err(|error| GroupError::mls("create a group", error))?;
        Ok(Self {
            mls,
            own_key: identity.public_key(),
        })
    }

    /// Loads a group from the provider's store.
    pub fn load(
        provider: &GroupProvider,
        identity: &Identity,
        group_id: &[u8],
    ) -> Result<Option<Self>, GroupError> {
        let mls = MlsGroup::load(provider.storage(), &GroupId::from_slice(group_id))
            .map_err(|error| GroupError::mls("load a group", error))?;
        Ok(mls.map(|mls| Self {
            mls,
            own_key: identity.public_key(),
        }))
    }

    /// A fresh KeyPackage (as an MLS message) and its KeyPackageRef. Its private keys stay in
    /// the provider's store until a Welcome uses them (a last-resort one is kept after use).
    pub fn key_package(
        provider: &GroupProvider,
        identity: &Identity,
        last_resort: bool,
    ) -> Result<(Vec<u8>, Vec<u8>), GroupError> {
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                provider,
                &IdentitySigner(identity),
                credential_of(identity),
            )
            .map_err(|error| GroupError::mls("make a KeyPackage", error))?;
        let key_package = bundle.key_package().clone();
        let reference = key_package
            .hash_ref(provider.crypto())
            .map_err(|error| GroupError::mls("make a KeyPackage", error))?
            .as_slice()
            .to_vec();
        Ok((serialize(&MlsMessageOut::from(key_package))?, reference))
    }

    /// What a joiner holding `secret` uploads to be admitted under `grant`.
    pub fn join_request(
        provider: &GroupProvider,
        identity: &Identity,
        secret: &InviteSecret,
        grant: InviteGrant,
    ) -> Result<JoinRequest, GroupError> {
        if grant.invite_key != secret.invite_public_key() {
            // The relay handed us a grant for someone else's invite.
            return Err(GroupError::Refused(policy::PolicyViolation::BadProof));
        }
        let (key_package, reference) = Self::key_package(provider, identity, false)?;
        Ok(JoinRequest {
            key_package,
            proof: JoinProof::new(secret, grant, &reference),
        })
    }

    /// Joins the group a Welcome is for; `expected_group_id` is the group the invite named and
    /// `inviter` the member who signed its grant. A group without the inviter in it (say, one a
    /// relay made up to read what we send) is refused. Without an inviter (an admin added us
    /// from the KeyPackage the relay keeps for us) there is nothing to check it against: the
    /// relay was trusted to admit us, and safety numbers tell the rest.
    pub fn join(
        provider: &GroupProvider,
        identity: &Identity,
        welcome: &[u8],
        expected_group_id: &[u8],
        inviter: Option<&PublicKey>,
    ) -> Result<Self, GroupError> {
        let staged = Self::stage_welcome(provider, welcome, expected_group_id)?;
        // The tree's leaves are signed by their own keys, so only the inviter can have put a
        // leaf with its key in it.
        let inviter_is_member = |inviter: &PublicKey| {
            staged.members().any(|member| {
                identity_of(&member.credential).as_ref() == Some(inviter)
                    && member.signature_key.as_slice() == inviter.as_slice()
            })
        };
        if inviter.is_some_and(|inviter| !inviter_is_member(inviter)) {
            return Err(GroupError::Refused(
                policy::PolicyViolation::InviterNotMember,
            ));
        }
        Self::join_staged(provider, identity, staged)
    }

    /// Joins a conversation's group: the Welcome must have been sent (signed) by the
    /// conversation's `opener`, and every member of the group must be one of `members` (a
    /// relay cannot put us into a group of its own, nor a stranger into ours).
    pub fn join_conversation(
        provider: &GroupProvider,
        identity: &Identity,
        welcome: &[u8],
        expected_group_id: &[u8],
        opener: &PublicKey,
        members: &[PublicKey],
    ) -> Result<Self, GroupError> {
        let staged = Self::stage_welcome(provider, welcome, expected_group_id)?;
        // The GroupInfo inside is signed by the sender's leaf key: only the opener can have
        // sent a Welcome from its own leaf.
        let sender = staged
            .welcome_sender()
            .map_err(|error| GroupError::mls("join from a Welcome", error))?;
        if identity_of(sender.credential()).as_ref() != Some(opener)
            || sender.signature_key().as_slice() != opener.as_slice()
        {
            return Err(GroupError::Refused(policy::PolicyViolation::NotFromOpener));
        }
        let stranger = staged.members().any(|member| {
            identity_of(&member.credential).is_none_or(|key| {
                !members.contains(&key) || member.signature_key.as_slice() != key.as_slice()
            })
        });
        if stranger {
            return Err(GroupError::Refused(
                policy::PolicyViolation::StrangerInConversation,
            ));
        }
        Self::join_staged(provider, identity, staged)
    }

    fn join_staged(
        provider: &GroupProvider,
        identity: &Identity,
        staged: StagedWelcome,
    ) -> Result<Self, GroupError> {
        let mls = staged
            .into_group(provider)
            .map_err(|error| GroupError::mls("join from a Welcome", error))?;
        Ok(Self {
            mls,
            own_key: identity.public_key(),
        })
    }

    /// Decodes and stages a Welcome for `expected_group_id` with a well-formed admin list.
    fn stage_welcome(
        provider: &GroupProvider,
        welcome: &[u8],
        expected_group_id: &[u8],
    ) -> Result<StagedWelcome, GroupError> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|error| GroupError::malformed("Welcome", error))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(GroupError::malformed(
                "Welcome",
                "another kind of MLS message",
            ));
        };
        let staged = StagedWelcome::new_from_welcome(provider, &join_config(), welcome, None)
            .map_err(|error| GroupError::mls("join from a Welcome", error))?;
        if staged.group_context().group_id().as_slice() != expected_group_id {
            return Err(GroupError::malformed(
                "Welcome",
                "it is for another group than the invite",
            ));
        }
        AdminList::from_context(staged.group_context().extensions())
            .map_err(|error| GroupError::malformed("Welcome", error))?;
        Ok(staged)
    }

    /// Deletes this group's state from the provider's store (a group the relay refused to
    /// create, or one we were removed from).
    pub fn delete(mut self, provider: &GroupProvider) -> Result<(), GroupError> {
        self.mls
            .delete(provider.storage())
            .map_err(|error| GroupError::mls("delete a group", error))
    }

    /// The group id.
    pub fn group_id(&self) -> &[u8] {
        self.mls.group_id().as_slice()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.mls.epoch().as_u64()
    }

    /// Our identity key.
    pub fn own_key(&self) -> PublicKey {
        self.own_key
    }

    /// Whether we are still a member.
    pub fn is_active(&self) -> bool {
        self.mls.is_active()
    }

    /// The admin list of the current epoch.
    pub fn admins(&self) -> AdminList {
        AdminList::from_context(self.mls.extensions()).unwrap_or_default()
    }

    /// The members, sorted by key.
    pub fn members(&self) -> Vec<GroupMember> {
        let admins = self.admins();
        let mut members: Vec<GroupMember> = self
            .mls
            .members()
            .filter_map(|member| identity_of(&member.credential))
            .map(|public_key| GroupMember {
                public_key,
                is_admin: admins.contains(&public_key),
            })
            .collect();
        members.sort_unstable_by_key(|member| member.public_key);
        members
    }

    fn member_keys(&self) -> Vec<PublicKey> {
        self.mls
            .members()
            .filter_map(|member| identity_of(&member.credential))
            .collect()
    }

    pub(super) fn leaf_of(&self, key: &PublicKey) -> Option<LeafNodeIndex> {
        self.mls
            .members()
            .find(|member| identity_of(&member.credential).as_ref() == Some(key))
            .map(|member| member.index)
    }

    fn key_at(&self, leaf: LeafNodeIndex) -> Option<PublicKey> {
        self.mls
            .member_at(leaf)
            .and_then(|member| identity_of(&member.credential))
    }

    fn ensure_ready(&self) -> Result<(), GroupError> {
        if !self.mls.is_active() {
            return Err(GroupError::Removed);
        }
        if self.mls.pending_commit().is_some() {
            return Err(GroupError::CommitPending);
        }
        Ok(())
    }

    fn outgoing(
        &self,
        epoch: u64,
        commit: &MlsMessageOut,
        welcome: Option<&MlsMessageOut>,
    ) -> Result<Outgoing, GroupError> {
        Ok(Outgoing {
            commit: serialize(commit)?,
            welcome: welcome.map(serialize).transpose()?,
            epoch,
        })
    }

    /// Commits the Adds of joiners whose proofs verify (each checked exactly as every other
    /// member will check it).
    pub fn admit(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
        requests: &[JoinRequest],
        now_unix: u64,
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        let members = self.member_keys();
        let mut key_packages = Vec::with_capacity(requests.len());
        let mut proofs = Vec::with_capacity(requests.len());
        for request in requests {
            key_packages.push(self.checked_key_package(provider, &members, request, now_unix)?);
            proofs.push(request.proof.clone());
        }
        let epoch = self.epoch();
        self.mls.set_aad(JoinProof::encode_all(&proofs));
        let (commit, welcome, _) = self
            .mls
            .add_members(provider, &IdentitySigner(identity), &key_packages)
            .map_err(|error| GroupError::mls("admit a member", error))?;
        self.outgoing(epoch, &commit, Some(&welcome))
    }

    /// Commits the Adds of `member`'s KeyPackage (an admin adding someone without an invite
    /// proof: a server member the relay lists, from the KeyPackage it keeps for them).
    pub fn add_member(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
        member: &PublicKey,
        key_package: &[u8],
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        if !self.admins().contains(&self.own_key) {
            return Err(GroupError::NotAdmin("add members without an invite"));
        }
        let key_package = parse_key_package(provider, key_package)?;
        let leaf = key_package.leaf_node();
        // The relay chose the KeyPackage: it must be the member's own, signed by its key.
        if identity_of(leaf.credential()).as_ref() != Some(member)
            || leaf.signature_key().as_slice() != member.as_slice()
        {
            return Err(policy::PolicyViolation::IdentityMismatch.into());
        }
        if self.member_keys().contains(member) {
            return Err(policy::PolicyViolation::AlreadyMember.into());
        }
        let epoch = self.epoch();
        self.mls.set_aad(Vec::new());
        let (commit, welcome, _) = self
            .mls
            .add_members(provider, &IdentitySigner(identity), &[key_package])
            .map_err(|error| GroupError::mls("add a member", error))?;
        self.outgoing(epoch, &commit, Some(&welcome))
    }

    /// Checks a join request exactly as [`Self::admit`] and every other member would.
    pub fn verify_join_request(
        &self,
        provider: &GroupProvider,
        request: &JoinRequest,
        now_unix: u64,
    ) -> Result<(), GroupError> {
        self.checked_key_package(provider, &self.member_keys(), request, now_unix)
            .map(|_| ())
    }

    fn checked_key_package(
        &self,
        provider: &GroupProvider,
        members: &[PublicKey],
        request: &JoinRequest,
        now_unix: u64,
    ) -> Result<KeyPackage, GroupError> {
        let key_package = parse_key_package(provider, &request.key_package)?;
        let reference = key_package
            .hash_ref(provider.crypto())
            .map_err(|error| GroupError::mls("admit a member", error))?;
        if reference.as_slice() != request.proof.key_package_ref.as_slice() {
            return Err(policy::PolicyViolation::BadProof.into());
        }
        request.proof.verify(self.group_id(), now_unix)?;
        if !members.contains(&request.proof.grant.inviter) {
            return Err(policy::PolicyViolation::InviterNotMember.into());
        }
        let leaf = key_package.leaf_node();
        let identity_key = identity_of(leaf.credential());
        if identity_key.map(|key| key.to_vec()) != Some(leaf.signature_key().as_slice().to_vec()) {
            return Err(policy::PolicyViolation::IdentityMismatch.into());
        }
        if identity_key.is_some_and(|key| members.contains(&key)) {
            return Err(policy::PolicyViolation::AlreadyMember.into());
        }
        Ok(key_package)
    }

    /// Commits the removal of `members` (admins only).
    pub fn remove(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
        members: &[PublicKey],
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        if !self.admins().contains(&self.own_key) {
            return Err(GroupError::NotAdmin("remove members"));
        }
        let leaves = members
            .iter()
            .map(|key| self.leaf_of(key).ok_or(GroupError::NotAMember))
            .collect::<Result<Vec<_>, _>>()?;
        let epoch = self.epoch();
        let (commit, welcome, _) = self
            .mls
            .remove_members(provider, &IdentitySigner(identity), &leaves)
            .map_err(|error| GroupError::mls("remove members", error))?;
        self.outgoing(epoch, &commit, welcome.as_ref())
    }

    /// Commits a fresh leaf (with path): the post-compromise-security rotation.
    pub fn self_update(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        let epoch = self.epoch();
        let bundle = self
            .mls
            .self_update(
                provider,
                &IdentitySigner(identity),
                LeafNodeParameters::default(),
            )
            .map_err(|error| GroupError::mls("rotate our keys", error))?;
        let (commit, welcome, _) = bundle.into_messages();
        self.outgoing(epoch, &commit, welcome.as_ref())
    }

    /// Commits the proposals received since the last commit (members who asked to leave).
    pub fn commit_proposals(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        let epoch = self.epoch();
        let (commit, welcome, _) = self
            .mls
            .commit_to_pending_proposals(provider, &IdentitySigner(identity))
            .map_err(|error| GroupError::mls("commit pending proposals", error))?;
        self.outgoing(epoch, &commit, welcome.as_ref())
    }

    /// Whether proposals wait for a commit.
    pub fn has_pending_proposals(&self) -> bool {
        self.mls.pending_proposals().next().is_some()
    }

    /// A proposal to remove ourselves, for the next member online to commit.
    pub fn propose_leave(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
    ) -> Result<Vec<u8>, GroupError> {
        self.ensure_ready()?;
        let proposal = self
            .mls
            .leave_group(provider, &IdentitySigner(identity))
            .map_err(|error| GroupError::mls("leave the group", error))?;
        serialize(&proposal)
    }

    /// Commits a new admin list (admins only; every admin must be a member).
    pub fn set_admins(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
        admins: &AdminList,
    ) -> Result<Outgoing, GroupError> {
        self.ensure_ready()?;
        if !self.admins().contains(&self.own_key) {
            return Err(GroupError::NotAdmin("change the admin list"));
        }
        let members = self.member_keys();
        if admins.keys().is_empty() || !admins.keys().iter().all(|key| members.contains(key)) {
            return Err(policy::PolicyViolation::BadAdminList.into());
        }
        let extensions = Extensions::single(admins.to_extension())
            .map_err(|error| GroupError::mls("change the admin list", error))?;
        let epoch = self.epoch();
        let (commit, welcome, _) = self
            .mls
            .update_group_context_extensions(provider, extensions, &IdentitySigner(identity))
            .map_err(|error| GroupError::mls("change the admin list", error))?;
        self.outgoing(epoch, &commit, welcome.as_ref())
    }

    /// Whether a commit of ours waits for the relay's answer (also after a restart).
    pub fn has_pending_commit(&self) -> bool {
        self.mls.pending_commit().is_some()
    }

    /// Merges our pending commit: call once the relay has accepted it.
    pub fn merge_pending(&mut self, provider: &GroupProvider) -> Result<(), GroupError> {
        if self.mls.pending_commit().is_none() {
            return Err(GroupError::NoPendingCommit);
        }
        self.mls
            .merge_pending_commit(provider)
            .map_err(|error| GroupError::mls("merge our commit", error))
    }

    /// Drops our pending commit: call when the relay refused it (another commit won the
    /// epoch). Proposals received stay queued for the next attempt.
    pub fn discard_pending(&mut self, provider: &GroupProvider) -> Result<(), GroupError> {
        self.mls
            .clear_pending_commit(provider.storage())
            .map_err(|error| GroupError::mls("drop our commit", error))
    }

    /// Sends `data` to the group as an application message (a PrivateMessage).
    pub fn seal_application(
        &mut self,
        provider: &GroupProvider,
        identity: &Identity,
        data: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        if !self.mls.is_active() {
            return Err(GroupError::Removed);
        }
        let message = self
            .mls
            .create_message(provider, &IdentitySigner(identity), data)
            .map_err(|error| GroupError::mls("seal a message", error))?;
        serialize(&message)
    }

    /// Processes a message from the relay: a commit is checked against the group's rules and
    /// merged only if it passes; a proposal is stored; an application message is opened.
    pub fn receive(
        &mut self,
        provider: &GroupProvider,
        message: &[u8],
        now_unix: u64,
    ) -> Result<Received, GroupError> {
        if !self.mls.is_active() {
            return Err(GroupError::Removed);
        }
        let message = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|error| GroupError::malformed("MLS message", error))?;
        let protocol = message
            .try_into_protocol_message()
            .map_err(|error| GroupError::malformed("MLS message", error))?;
        let processed = self
            .mls
            .process_message(provider, protocol)
            .map_err(|error| GroupError::mls("process a message", error))?;
        let sender = processed.sender().clone();
        let authenticated_data = processed.aad().to_vec();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(application) => {
                let sender = self.sender_key(&sender).ok_or(GroupError::NotAMember)?;
                Ok(Received::Application {
                    sender,
                    data: Zeroizing::new(application.into_bytes()),
                })
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                self.check_proposal(&sender, proposal.proposal())?;
                self.mls
                    .store_pending_proposal(provider.storage(), *proposal)
                    .map_err(|error| GroupError::mls("store a proposal", error))?;
                Ok(Received::Proposal)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.receive_commit(provider, &sender, &authenticated_data, *staged, now_unix)
            }
            _ => Err(GroupError::malformed(
                "MLS message",
                "a kind Sotto does not use",
            )),
        }
    }

    fn sender_key(&self, sender: &Sender) -> Option<PublicKey> {
        match sender {
            Sender::Member(leaf) => self.key_at(*leaf),
            _ => None,
        }
    }

    /// A stand-alone proposal is accepted only when a member asks to remove itself.
    fn check_proposal(&self, sender: &Sender, proposal: &Proposal) -> Result<(), GroupError> {
        match (sender, proposal) {
            (Sender::Member(leaf), Proposal::Remove(remove)) if remove.removed() == *leaf => Ok(()),
            _ => Err(policy::PolicyViolation::Unsupported("stand-alone").into()),
        }
    }

    fn receive_commit(
        &mut self,
        provider: &GroupProvider,
        sender: &Sender,
        authenticated_data: &[u8],
        staged: StagedCommit,
        now_unix: u64,
    ) -> Result<Received, GroupError> {
        let members_before = self.member_keys();
        let admins_before = self.admins();
        let key_at = |leaf| self.key_at(leaf);
        let before = Before {
            group_id: self.mls.group_id().as_slice(),
            members: &members_before,
            admins: &admins_before,
            key_at: &key_at,
        };
        let facts = commit_facts(
            provider.crypto(),
            &before,
            self.sender_key(sender),
            authenticated_data,
            &staged,
            now_unix,
        )
        .map_err(|error| GroupError::mls("check a commit", error))?;
        policy::check_commit(&facts)?;
        let added = facts
            .adds
            .iter()
            .filter_map(|add| add.identity.as_slice().try_into().ok())
            .collect();
        let removed = facts.removes.iter().map(|remove| remove.removed).collect();
        self.mls
            .merge_staged_commit(provider, staged)
            .map_err(|error| GroupError::mls("merge a commit", error))?;
        if !self.mls.is_active() {
            return Ok(Received::Removed);
        }
        Ok(Received::Commit {
            epoch: self.epoch(),
            added,
            removed,
        })
    }

    /// The media base key of `channel_id` in this epoch:
    /// `MLS-Exporter("sotto media v1", channel id (u32 BE), 32)`.
    pub fn media_base(
        &self,
        provider: &GroupProvider,
        channel_id: u32,
    ) -> Result<Zeroizing<[u8; 32]>, GroupError> {
        self.export(provider, MEDIA_EXPORTER_LABEL, &channel_id.to_be_bytes())
    }

    /// The text secret of `channel_id` in this epoch:
    /// `MLS-Exporter("sotto text v1", channel id (u32 BE), 32)`.
    pub fn text_secret(
        &self,
        provider: &GroupProvider,
        channel_id: u32,
    ) -> Result<Zeroizing<[u8; 32]>, GroupError> {
        self.export(provider, TEXT_EXPORTER_LABEL, &channel_id.to_be_bytes())
    }

    fn export(
        &self,
        provider: &GroupProvider,
        label: &str,
        context: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, GroupError> {
        let secret = Zeroizing::new(
            self.mls
                .export_secret(provider.crypto(), label, context, 32)
                .map_err(|error| GroupError::mls("derive a key", error))?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&secret);
        Ok(out)
    }

    /// The privacy code of this epoch: equal for every member, so comparing it out of band
    /// shows nobody sees a different group.
    pub fn privacy_code(&self) -> PrivacyCode {
        PrivacyCode::from_authenticator(self.mls.epoch_authenticator().as_slice())
    }

    /// The group's public state, for the relay: a GroupInfo (with the ratchet tree) as an MLS
    /// message.
    pub fn group_info(
        &self,
        provider: &GroupProvider,
        identity: &Identity,
    ) -> Result<Vec<u8>, GroupError> {
        let info = self
            .mls
            .export_group_info(provider.crypto(), &IdentitySigner(identity), true)
            .map_err(|error| GroupError::mls("export the group's public state", error))?;
        serialize(&info)
    }
}
