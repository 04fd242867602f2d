//! The rules every member applies to every commit before merging it.
//!
//! Plain code over plain facts ([`CommitFacts`]), so it is tested without MLS: the member side
//! extracts the facts from a staged commit and refuses to merge if [`check_commit`] says no.
//! Because every member applies the same rules, neither a buggy client nor a relay can add a
//! key, remove a member or change the admin list on its own.

use super::admins::AdminList;
use super::admission::JoinProof;
use crate::proto::control::PublicKey;

/// Why a commit (or an admission proof) breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// The committer is not a member (an external commit, or a forged sender).
    #[error("the commit does not come from a member of the group")]
    NotFromMember,
    /// The commit carries a proposal Sotto never uses.
    #[error("the commit carries a {0} proposal, which Sotto does not use")]
    Unsupported(&'static str),
    /// A non-admin added someone without a valid invite proof.
    #[error("a member was added without an invite proof or an admin's commit")]
    AddWithoutProof,
    /// An added member's credential names another key than its leaf's signature key.
    #[error("an added member's credential and signature key differ")]
    IdentityMismatch,
    /// An added identity is already in the group.
    #[error("an added identity is already a member")]
    AlreadyMember,
    /// The invite was made by someone who is not a member.
    #[error("the invite was not made by a member of the group")]
    InviterNotMember,
    /// A conversation's Welcome was not sent by its opener.
    #[error("the Welcome was not sent by the conversation's opener")]
    NotFromOpener,
    /// A conversation's group holds someone who is not in the conversation.
    #[error("the conversation's group holds someone who is not in the conversation")]
    StrangerInConversation,
    /// The invite proof does not verify.
    #[error("the invite proof does not verify")]
    BadProof,
    /// The invite proof is for another group.
    #[error("the invite proof is for another group")]
    ProofForAnotherGroup,
    /// The invite has expired.
    #[error("the invite has expired")]
    InviteExpired,
    /// The invite proof or the commit's authenticated data is not well formed.
    #[error("the invite proof is malformed")]
    MalformedProof,
    /// A non-admin removed someone other than a member who asked to leave.
    #[error("a member was removed by someone who is not an admin")]
    RemoveByNonAdmin,
    /// A non-admin changed the admin list.
    #[error("the admin list was changed by someone who is not an admin")]
    AdminChangeByNonAdmin,
    /// The new admin list is empty or names someone outside the group.
    #[error("the new admin list is empty or names someone who is not a member")]
    BadAdminList,
}

/// One added member, as the commit shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFacts {
    /// The KeyPackageRef of the added KeyPackage.
    pub key_package_ref: Vec<u8>,
    /// The identity in its credential.
    pub identity: Vec<u8>,
    /// Its leaf's signature key.
    pub signature_key: Vec<u8>,
}

/// One removed member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveFacts {
    /// Who is removed.
    pub removed: PublicKey,
    /// Who proposed the removal (the committer when the commit carries it inline).
    pub proposer: Option<PublicKey>,
}

/// Everything the rules look at in one commit.
#[derive(Debug, Clone)]
pub struct CommitFacts<'a> {
    /// The group.
    pub group_id: &'a [u8],
    /// The receiver's clock, Unix seconds (invite expiry).
    pub now_unix: u64,
    /// The committer's identity; `None` when the sender is not a member.
    pub committer: Option<PublicKey>,
    /// The members before the commit.
    pub members_before: &'a [PublicKey],
    /// The admin list before the commit.
    pub admins_before: &'a AdminList,
    /// Members added.
    pub adds: Vec<AddFacts>,
    /// Members removed.
    pub removes: Vec<RemoveFacts>,
    /// The new admin list, if the commit changes it.
    pub admins_after: Option<AdminList>,
    /// The first proposal kind Sotto never uses, if any.
    pub unsupported: Option<&'static str>,
    /// The commit's authenticated data (the join proofs).
    pub authenticated_data: &'a [u8],
}

/// Decides whether a commit may be merged.
pub fn check_commit(facts: &CommitFacts<'_>) -> Result<(), PolicyViolation> {
    let committer = facts.committer.ok_or(PolicyViolation::NotFromMember)?;
    if !facts.members_before.contains(&committer) {
        return Err(PolicyViolation::NotFromMember);
    }
    if let Some(kind) = facts.unsupported {
        return Err(PolicyViolation::Unsupported(kind));
    }
    let committer_is_admin = facts.admins_before.contains(&committer);
    let proofs = if facts.adds.is_empty() || committer_is_admin {
        Vec::new()
    } else {
        JoinProof::decode_all(facts.authenticated_data)?
    };

    let mut added: Vec<&[u8]> = Vec::with_capacity(facts.adds.len());
    for add in &facts.adds {
        if add.identity != add.signature_key || add.identity.len() != 32 {
            return Err(PolicyViolation::IdentityMismatch);
        }
        let already = facts
            .members_before
            .iter()
            .any(|member| member[..] == add.identity[..])
            || added.contains(&&add.identity[..]);
        if already {
            return Err(PolicyViolation::AlreadyMember);
        }
        added.push(&add.identity);
        if !committer_is_admin {
            check_add_proof(facts, &proofs, add)?;
        }
    }

    for remove in &facts.removes {
        if !committer_is_admin && remove.proposer != Some(remove.removed) {
            return Err(PolicyViolation::RemoveByNonAdmin);
        }
    }

    if let Some(admins_after) = &facts.admins_after {
        if !committer_is_admin {
            return Err(PolicyViolation::AdminChangeByNonAdmin);
        }
        let is_member_after = |key: &PublicKey| {
            let stays = facts.members_before.contains(key)
                && !facts.removes.iter().any(|remove| remove.removed == *key);
            stays || added.contains(&&key[..])
        };
        if admins_after.keys().is_empty() || !admins_after.keys().iter().all(is_member_after) {
            return Err(PolicyViolation::BadAdminList);
        }
    }
    Ok(())
}

fn check_add_proof(
    facts: &CommitFacts<'_>,
    proofs: &[JoinProof],
    add: &AddFacts,
) -> Result<(), PolicyViolation> {
    let proof = proofs
        .iter()
        .find(|proof| proof.key_package_ref == add.key_package_ref)
        .ok_or(PolicyViolation::AddWithoutProof)?;
    proof.verify(facts.group_id, facts.now_unix)?;
    if !facts.members_before.contains(&proof.grant.inviter) {
        return Err(PolicyViolation::InviterNotMember);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
