//! Reading the facts the rules need out of a staged commit (member and relay alike).

use openmls::prelude::{
    BasicCredential, Credential, LeafNodeIndex, OpenMlsCrypto, Proposal, StagedCommit,
};

use super::admins::AdminList;
use super::policy::{AddFacts, CommitFacts, RemoveFacts};
use crate::proto::control::PublicKey;

/// The identity key a basic credential names, if it is one of ours.
pub(crate) fn identity_of(credential: &Credential) -> Option<PublicKey> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    basic.identity().try_into().ok()
}

/// What the group looked like before the commit.
pub(crate) struct Before<'a> {
    pub(crate) group_id: &'a [u8],
    pub(crate) members: &'a [PublicKey],
    pub(crate) admins: &'a AdminList,
    /// The identity at a leaf of the tree before the commit.
    pub(crate) key_at: &'a dyn Fn(LeafNodeIndex) -> Option<PublicKey>,
}

/// The facts of `staged`, committed by `committer`, for [`super::policy::check_commit`].
pub(crate) fn commit_facts<'a>(
    crypto: &impl OpenMlsCrypto,
    before: &Before<'a>,
    committer: Option<PublicKey>,
    authenticated_data: &'a [u8],
    staged: &StagedCommit,
    now_unix: u64,
) -> Result<CommitFacts<'a>, String> {
    let mut unsupported = None;
    let mut admins_changed = false;
    for queued in staged.queued_proposals() {
        match queued.proposal() {
            Proposal::Add(_) | Proposal::Update(_) | Proposal::Remove(_) => {}
            Proposal::GroupContextExtensions(_) => admins_changed = true,
            Proposal::PreSharedKey(_) => unsupported = Some("pre-shared key"),
            Proposal::ReInit(_) => unsupported = Some("re-init"),
            Proposal::ExternalInit(_) => unsupported = Some("external init"),
            Proposal::SelfRemove => unsupported = Some("self-remove"),
            _ => unsupported = Some("custom"),
        }
    }
    let mut adds = Vec::new();
    for add in staged.add_proposals() {
        let key_package = add.add_proposal().key_package();
        let reference = key_package
            .hash_ref(crypto)
            .map_err(|error| error.to_string())?;
        let leaf = key_package.leaf_node();
        adds.push(AddFacts {
            key_package_ref: reference.as_slice().to_vec(),
            identity: identity_of(leaf.credential())
                .map(|key| key.to_vec())
                .unwrap_or_default(),
            signature_key: leaf.signature_key().as_slice().to_vec(),
        });
    }
    let sender_key = |sender: &openmls::prelude::Sender| match sender {
        openmls::prelude::Sender::Member(leaf) => (before.key_at)(*leaf),
        _ => None,
    };
    let removes = staged
        .remove_proposals()
        .filter_map(|remove| {
            let removed = (before.key_at)(remove.remove_proposal().removed())?;
            Some(RemoveFacts {
                removed,
                proposer: sender_key(remove.sender()),
            })
        })
        .collect();
    let admins_after = admins_changed
        .then(|| AdminList::from_context(staged.group_context().extensions()).unwrap_or_default());
    Ok(CommitFacts {
        group_id: before.group_id,
        now_unix,
        committer,
        members_before: before.members,
        admins_before: before.admins,
        adds,
        removes,
        admins_after,
        unsupported,
        authenticated_data,
    })
}
