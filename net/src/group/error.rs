//! Errors of the group module, one enum per side.

use super::policy::PolicyViolation;

/// Why a member-side group operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// Bytes from the network or the store are not a well-formed MLS message of the kind
    /// expected.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// openmls refused an operation (a message for another epoch, a bad signature, a commit
    /// already pending, ...).
    #[error("MLS could not {operation}: {detail}")]
    Mls {
        /// What was attempted, in words ("process a commit").
        operation: &'static str,
        /// openmls's own explanation.
        detail: String,
    },
    /// A commit breaks the group's rules; it was not merged.
    #[error("refused a commit that breaks the group's rules: {0}")]
    Refused(#[from] PolicyViolation),
    /// Only admins may do this.
    #[error("only an admin of the group can {0}")]
    NotAdmin(&'static str),
    /// The member named is not in the group.
    #[error("that member is not in the group")]
    NotAMember,
    /// The group id is empty or longer than [`super::MAX_GROUP_ID_LEN`] bytes.
    #[error("a group id must be 1 to 64 bytes")]
    GroupId,
    /// A commit of ours is waiting for the relay's answer; nothing else can be committed
    /// until it is merged or discarded.
    #[error("a commit is already waiting for the relay's answer")]
    CommitPending,
    /// No commit of ours is pending.
    #[error("no commit of ours is pending")]
    NoPendingCommit,
    /// We are no longer a member of this group.
    #[error("we were removed from this group")]
    Removed,
}

#[cfg(feature = "member")]
impl GroupError {
    pub(crate) fn mls(operation: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Mls {
            operation,
            detail: error.to_string(),
        }
    }

    pub(crate) fn malformed(what: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: error.to_string(),
        }
    }
}

/// Why the delivery service refused a handshake message or a KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The bytes are not an MLS message of the kind expected.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The message is for another group.
    #[error("the message is for another group")]
    WrongGroup,
    /// The commit is not for the group's current epoch (another commit won the epoch, or the
    /// sender is behind).
    #[error("the commit is for epoch {got}, the group is at epoch {current}")]
    WrongEpoch {
        /// The group's current epoch.
        current: u64,
        /// The epoch the message was for.
        got: u64,
    },
    /// openmls found the message invalid (signature, membership tag, sender not a member,
    /// invalid proposals, ...).
    #[error("invalid handshake message: {0}")]
    Invalid(String),
    /// A handshake message of a kind the delivery service does not take (an application
    /// message, an external commit, ...).
    #[error("the relay does not take {0}")]
    Unsupported(&'static str),
    /// The KeyPackage's identity is not the member who uploaded it, or its credential and
    /// signature key differ.
    #[error("the KeyPackage does not belong to the member who uploaded it")]
    WrongIdentity,
    /// The KeyPackage uses another ciphersuite.
    #[error("the KeyPackage uses another ciphersuite")]
    WrongCiphersuite,
}

impl DeliveryError {
    pub(crate) fn malformed(what: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: error.to_string(),
        }
    }
}
