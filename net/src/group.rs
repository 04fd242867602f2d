//! MLS groups (RFC 9420, through openmls): the only module of Sotto that touches openmls.
//!
//! Every server has one MLS group holding all its members (and later one group per private
//! channel and per conversation). Each member's leaf carries its Sotto identity: the credential
//! is a basic credential whose identity is the member's Ed25519 public key, and the leaf's
//! signature key is that same key, so one identity signs both the relay handshake and MLS.
//!
//! The module has two sides:
//!
//! - the **member** side ([`Group`], [`GroupProvider`]) holds secrets: it creates groups,
//!   admits joiners who prove they hold an invite ([`JoinRequest`]), removes members, rotates
//!   keys and derives media keys ([`MediaKeyRing`]) and the verification codes
//!   ([`PrivacyCode`], [`SafetyNumber`]). It is compiled only with the `member` feature;
//! - the **delivery** side ([`DeliveryGroup`], [`check_key_package`]) holds none: it is what the
//!   relay uses to check handshake messages against a group's public state.
//!
//! What members accept is decided by plain code in [`policy`], tested without any MLS
//! machinery: an Add needs an admin's commit or a valid invite proof, a Remove needs an admin
//! or the removed member's own proposal, and the admin list (a group-context extension) changes
//! only by an admin's commit.

mod admins;
mod admission;
mod codec;
mod delivery;
mod error;
mod facts;
#[cfg(feature = "member")]
mod media_keys;
#[cfg(feature = "member")]
mod member;
pub mod policy;
#[cfg(feature = "member")]
mod provider;
#[cfg(feature = "member")]
mod signer;
mod verify;

#[cfg(all(test, feature = "member"))]
mod tests;

pub use admins::{AdminList, AdminListError, MAX_ADMINS};
pub use admission::{InviteGrant, InviteSecret, JoinProof, JoinRequest};
pub use delivery::{
    AcceptedCommit, CheckedCommit, DeliveryGroup, KeyPackageInfo, check_key_package,
    key_package_identity,
};
pub use error::{DeliveryError, GroupError};
#[cfg(feature = "member")]
pub use media_keys::{MediaKeyRing, PREVIOUS_EPOCH_GRACE};
#[cfg(feature = "member")]
pub use member::{Group, GroupMember, Outgoing, Received};
#[cfg(feature = "member")]
pub use provider::{GroupProvider, StoreDelta};
pub use verify::{PrivacyCode, SafetyNumber};

use openmls::prelude::Ciphersuite;

/// The one ciphersuite Sotto uses: X25519, ChaCha20-Poly1305, SHA-256, Ed25519 (0x0003).
pub(crate) const CIPHERSUITE: Ciphersuite =
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// The group-context extension that lists the group's admins (private-use range).
pub(crate) const ADMINS_EXTENSION: u16 = 0xF5A0;

/// Exporter label of the per-channel media base key.
pub const MEDIA_EXPORTER_LABEL: &str = "sotto media v1";

/// Exporter label of the per-epoch text secret.
pub const TEXT_EXPORTER_LABEL: &str = "sotto text v1";

/// Longest group id accepted, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 64;

/// The id of the MLS group that holds all members of server `server_id`.
pub fn server_group_id(server_id: u32) -> Vec<u8> {
    format!("sotto/server/{server_id}").into_bytes()
}

/// Every conversation's group id starts with this (so none is ever a server's).
pub const CONVERSATION_GROUP_PREFIX: &[u8] = b"sotto/conversation/";

/// A fresh, random id for a new conversation's MLS group.
pub fn new_conversation_group_id() -> Vec<u8> {
    use rand::RngCore;
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let mut id = CONVERSATION_GROUP_PREFIX.to_vec();
    for byte in random {
        id.extend_from_slice(format!("{byte:02x}").as_bytes());
    }
    id
}
