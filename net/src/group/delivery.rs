//! The delivery service's side: a group's public state, and the checks the relay makes.
//!
//! Holds no secret: [`DeliveryGroup`] wraps openmls's `PublicGroup` (the ratchet tree's public
//! keys, the group context, queued proposals). The relay checks every handshake message with
//! it (signature, membership tag, epoch, the sender is a member) and with the same rules
//! members apply ([`super::policy`]), so a commit every member would refuse is refused before
//! anyone sees it. Which commit wins an epoch is not decided here: the relay's store does that
//! in one transaction, then calls [`DeliveryGroup::merge`].

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn, ProcessedMessageContent, ProposalStore,
    ProtocolMessage, ProtocolVersion, PublicGroup, Sender, StagedCommit,
};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;

use sha2::{Digest, Sha256};

use super::CIPHERSUITE;
use super::admins::AdminList;
use super::codec::{Reader, put_vec32};
use super::error::DeliveryError;
use super::facts::{Before, commit_facts, identity_of};
use super::policy;
use crate::proto::control::PublicKey;

/// A group's public state, as the relay keeps it.
pub struct DeliveryGroup {
    public: PublicGroup,
    storage: MemoryStorage,
    crypto: RustCrypto,
}

impl std::fmt::Debug for DeliveryGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryGroup")
            .field("epoch", &self.epoch())
            .field("members", &self.public.members().count())
            .finish_non_exhaustive()
    }
}

/// A commit that passed every check, waiting for the store to accept it for its epoch.
pub struct CheckedCommit {
    staged: StagedCommit,
    /// What the commit does.
    pub summary: AcceptedCommit,
}

impl std::fmt::Debug for CheckedCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.summary.fmt(f)
    }
}

/// What an accepted commit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedCommit {
    /// The epoch the commit was made in (the one it ends).
    pub epoch: u64,
    /// Who committed.
    pub committer: PublicKey,
    /// Identities added.
    pub added: Vec<PublicKey>,
    /// Identities removed.
    pub removed: Vec<PublicKey>,
}

/// A checked KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageInfo {
    /// Its KeyPackageRef.
    pub reference: Vec<u8>,
    /// Whether it is the member's last-resort KeyPackage (reusable).
    pub last_resort: bool,
}

fn decode_protocol(bytes: &[u8]) -> Result<ProtocolMessage, DeliveryError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|error| DeliveryError::malformed("MLS message", error))?;
    match message.extract() {
        MlsMessageBodyIn::PublicMessage(message) => Ok(ProtocolMessage::from(message)),
        MlsMessageBodyIn::PrivateMessage(_) => {
            Err(DeliveryError::Unsupported("encrypted handshake messages"))
        }
        _ => Err(DeliveryError::malformed(
            "MLS message",
            "not a handshake message",
        )),
    }
}

/// Decodes a KeyPackage sent as an MLS message and checks its signatures.
pub(crate) fn decode_key_package(
    crypto: &impl openmls::prelude::OpenMlsCrypto,
    bytes: &[u8],
) -> Result<openmls::prelude::KeyPackage, DeliveryError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|error| DeliveryError::malformed("KeyPackage", error))?;
    let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
        return Err(DeliveryError::malformed(
            "KeyPackage",
            "another kind of MLS message",
        ));
    };
    key_package
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|error| DeliveryError::Invalid(error.to_string()))
}

/// The identity key a KeyPackage (an MLS message) names, if it is well formed and signed.
pub fn key_package_identity(bytes: &[u8]) -> Option<PublicKey> {
    let key_package = decode_key_package(&RustCrypto::default(), bytes).ok()?;
    identity_of(key_package.leaf_node().credential())
}

/// Checks a KeyPackage uploaded by `owner`: well formed, valid signatures, our ciphersuite,
/// and its credential and signature key are both `owner`'s identity key.
pub fn check_key_package(bytes: &[u8], owner: &PublicKey) -> Result<KeyPackageInfo, DeliveryError> {
    let crypto = RustCrypto::default();
    let key_package = decode_key_package(&crypto, bytes)?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(DeliveryError::WrongCiphersuite);
    }
    let leaf = key_package.leaf_node();
    if identity_of(leaf.credential()).as_ref() != Some(owner)
        || leaf.signature_key().as_slice() != owner.as_slice()
    {
        return Err(DeliveryError::WrongIdentity);
    }
    let reference = key_package
        .hash_ref(&crypto)
        .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
    Ok(KeyPackageInfo {
        reference: reference.as_slice().to_vec(),
        last_resort: key_package.last_resort(),
    })
}

impl DeliveryGroup {
    /// Starts tracking a group from the GroupInfo (with its ratchet tree) its creator
    /// uploaded. `creator` must be the group's only member.
    pub fn from_group_info(bytes: &[u8], creator: &PublicKey) -> Result<Self, DeliveryError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|error| DeliveryError::malformed("GroupInfo", error))?;
        let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            return Err(DeliveryError::malformed(
                "GroupInfo",
                "another kind of MLS message",
            ));
        };
        let tree = info
            .extensions()
            .ratchet_tree()
            .ok_or_else(|| DeliveryError::malformed("GroupInfo", "it carries no ratchet tree"))?
            .ratchet_tree()
            .clone();
        let storage = MemoryStorage::default();
        let crypto = RustCrypto::default();
        let (public, _) =
            PublicGroup::from_external(&crypto, &storage, tree, info, ProposalStore::new())
                .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        let group = Self {
            public,
            storage,
            crypto,
        };
        if group.public.ciphersuite() != CIPHERSUITE {
            return Err(DeliveryError::WrongCiphersuite);
        }
        if group.members() != [*creator] {
            return Err(DeliveryError::WrongIdentity);
        }
        AdminList::from_context(group.public.group_context().extensions())
            .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        Ok(group)
    }

    /// The group's public state as bytes, for the relay's store: a SHA-256 of the entries,
    /// then the entries (count u32, then key and value each with a u32 length).
    pub fn snapshot(&self) -> Vec<u8> {
        let values = self.storage.values.read().expect("store lock poisoned");
        let mut entries: Vec<_> = values.iter().collect();
        entries.sort_unstable();
        let mut body = Vec::new();
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (key, value) in entries {
            put_vec32(&mut body, key);
            put_vec32(&mut body, value);
        }
        let mut out = Sha256::digest(&body).to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Restores a group from [`Self::snapshot`]. A damaged snapshot is refused before any of
    /// it is parsed (openmls's store trusts what it reads back).
    pub fn restore(snapshot: &[u8], group_id: &[u8]) -> Result<Self, DeliveryError> {
        let malformed = |error| DeliveryError::malformed("stored group state", error);
        if snapshot.len() < 32 || Sha256::digest(&snapshot[32..])[..] != snapshot[..32] {
            return Err(DeliveryError::malformed(
                "stored group state",
                "its checksum does not match; the database may be damaged",
            ));
        }
        let mut reader = Reader::new(&snapshot[32..]);
        let count = reader.u32().map_err(malformed)?;
        let mut values = std::collections::HashMap::new();
        for _ in 0..count {
            let key = reader.vec32().map_err(malformed)?.to_vec();
            let value = reader.vec32().map_err(malformed)?.to_vec();
            values.insert(key, value);
        }
        reader.finish().map_err(malformed)?;
        let storage = MemoryStorage {
            values: std::sync::RwLock::new(values),
        };
        let public = PublicGroup::load(&storage, &openmls::prelude::GroupId::from_slice(group_id))
            .map_err(|error| DeliveryError::malformed("stored group state", error))?
            .ok_or_else(|| DeliveryError::malformed("stored group state", "no group in it"))?;
        Ok(Self {
            public,
            storage,
            crypto: RustCrypto::default(),
        })
    }

    /// The group id.
    pub fn group_id(&self) -> &[u8] {
        self.public.group_id().as_slice()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.public.group_context().epoch().as_u64()
    }

    /// The members' identity keys, sorted.
    pub fn members(&self) -> Vec<PublicKey> {
        let mut members: Vec<PublicKey> = self
            .public
            .members()
            .filter_map(|member| identity_of(&member.credential))
            .collect();
        members.sort_unstable();
        members
    }

    /// The admin list of the current epoch.
    pub fn admins(&self) -> AdminList {
        AdminList::from_context(self.public.group_context().extensions()).unwrap_or_default()
    }

    fn key_at(&self, leaf: LeafNodeIndex) -> Option<PublicKey> {
        self.public
            .leaf(leaf)
            .and_then(|leaf| identity_of(leaf.credential()))
    }

    fn check_frame(&self, message: &ProtocolMessage) -> Result<(), DeliveryError> {
        if message.group_id().as_slice() != self.group_id() {
            return Err(DeliveryError::WrongGroup);
        }
        let got = message.epoch().as_u64();
        if got != self.epoch() {
            return Err(DeliveryError::WrongEpoch {
                current: self.epoch(),
                got,
            });
        }
        Ok(())
    }

    /// Checks a commit against the current epoch: MLS validity and the group's rules. Nothing
    /// changes until [`Self::merge`].
    pub fn check_commit(
        &self,
        bytes: &[u8],
        now_unix: u64,
    ) -> Result<CheckedCommit, DeliveryError> {
        let message = decode_protocol(bytes)?;
        self.check_frame(&message)?;
        let processed = self
            .public
            .process_message(&self.crypto, message)
            .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        let sender = processed.sender().clone();
        let authenticated_data = processed.aad().to_vec();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(DeliveryError::Unsupported(
                "a proposal or message where a commit belongs",
            ));
        };
        let Sender::Member(leaf) = sender else {
            return Err(DeliveryError::Unsupported("commits from non-members"));
        };
        let members = self.members();
        let admins = self.admins();
        let key_at = |leaf| self.key_at(leaf);
        let before = Before {
            group_id: self.group_id(),
            members: &members,
            admins: &admins,
            key_at: &key_at,
        };
        let committer = self.key_at(leaf);
        let facts = commit_facts(
            &self.crypto,
            &before,
            committer,
            &authenticated_data,
            &staged,
            now_unix,
        )
        .map_err(DeliveryError::Invalid)?;
        policy::check_commit(&facts).map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        let summary = AcceptedCommit {
            epoch: self.epoch(),
            committer: committer.ok_or(DeliveryError::Unsupported("commits from non-members"))?,
            added: facts
                .adds
                .iter()
                .filter_map(|add| add.identity.as_slice().try_into().ok())
                .collect(),
            removed: facts.removes.iter().map(|remove| remove.removed).collect(),
        };
        Ok(CheckedCommit {
            staged: *staged,
            summary,
        })
    }

    /// Applies a commit the store accepted for its epoch.
    pub fn merge(&mut self, commit: CheckedCommit) -> Result<(), DeliveryError> {
        self.public
            .merge_commit(&self.storage, commit.staged)
            .map_err(|error| DeliveryError::Invalid(error.to_string()))
    }

    /// Checks a stand-alone proposal (only a member asking to leave is taken) and queues it
    /// for the next commit.
    pub fn check_proposal(&mut self, bytes: &[u8]) -> Result<PublicKey, DeliveryError> {
        let message = decode_protocol(bytes)?;
        self.check_frame(&message)?;
        let processed = self
            .public
            .process_message(&self.crypto, message)
            .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        let sender = processed.sender().clone();
        let ProcessedMessageContent::ProposalMessage(proposal) = processed.into_content() else {
            return Err(DeliveryError::Unsupported(
                "a commit or message where a proposal belongs",
            ));
        };
        let leaver = match (&sender, proposal.proposal()) {
            (Sender::Member(leaf), openmls::prelude::Proposal::Remove(remove))
                if remove.removed() == *leaf =>
            {
                self.key_at(*leaf)
            }
            _ => None,
        }
        .ok_or(DeliveryError::Unsupported("proposals other than leaving"))?;
        self.public
            .add_proposal(&self.storage, *proposal)
            .map_err(|error| DeliveryError::Invalid(error.to_string()))?;
        Ok(leaver)
    }
}
