//! End-to-end media keys.
//!
//! Every sender seals with its own key, derived per voice-channel join:
//!
//! ```text
//! key = HKDF-SHA256(salt = "sotto/1 media key", ikm = group secret,
//!                   info = channel id (u32 BE) | sender public key (32) | session salt (16) | key id (1))
//! ```
//!
//! The session salt is fresh random bytes for every join, so a key never sees a counter twice
//! even across reconnects and restarts. The group secret comes from a [`KeyProvider`]: in the
//! product the MLS group's [`crate::group::MediaKeyRing`] (a per-epoch, per-channel exporter
//! value); [`StaticSecretKeys`] over a fixed [`ChannelSecret`] exists for relay tests and load
//! tools, where the relay's forwarding, not the group, is under test.

use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::proto::control::{PublicKey, SessionSalt};

const MEDIA_KEY_SALT: &[u8] = b"sotto/1 media key";

/// A 256-bit ChaCha20-Poly1305 key, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MediaKey([u8; 32]);

impl MediaKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes (for test vectors and diagnostics; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn as_key(&self) -> &chacha20poly1305::Key {
        chacha20poly1305::Key::from_slice(&self.0)
    }
}

impl std::fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaKey(..)")
    }
}

/// Who a media key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderContext {
    /// The voice channel.
    pub channel_id: u32,
    /// The sender's identity key.
    pub public_key: PublicKey,
    /// The salt the sender chose for this join.
    pub session_salt: SessionSalt,
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The provider has no secret for that key id (an epoch not known, or already erased).
    #[error("no group secret for key id {0}; the sender may be ahead of or behind our group state")]
    UnknownKeyId(u8),
}

/// The source of group secrets from which media keys are derived.
///
/// Implementations must be cheap to call: keys are derived once per sender join, not per
/// packet.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The key id new media should be sealed with.
    fn current_key_id(&self) -> u8;

    /// The media key of `sender` under `key_id`.
    fn media_key(&self, sender: &SenderContext, key_id: u8) -> Result<MediaKey, KeyError>;

    /// A number that changes whenever keys are added or retired; receivers re-check the keys
    /// they cached when it does.
    fn generation(&self) -> u64 {
        0
    }

    /// Whether keys under `key_id` may still be used.
    fn holds(&self, key_id: u8) -> bool {
        let _ = key_id;
        true
    }
}

/// A fixed group secret, for relay tests and load tools only (the product's keys come from MLS).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ChannelSecret([u8; 32]);

impl ChannelSecret {
    /// Bytes of a secret.
    pub const LEN: usize = 32;

    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes (to put in an invite link).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecret(..)")
    }
}

/// Derives the media key of a sender from a group secret.
pub fn derive_media_key(secret: &[u8; 32], sender: &SenderContext, key_id: u8) -> MediaKey {
    let hkdf = Hkdf::<Sha256>::new(Some(MEDIA_KEY_SALT), secret);
    let mut info = [0u8; 4 + 32 + 16 + 1];
    info[..4].copy_from_slice(&sender.channel_id.to_be_bytes());
    info[4..36].copy_from_slice(&sender.public_key);
    info[36..52].copy_from_slice(&sender.session_salt);
    info[52] = key_id;
    let mut key = [0u8; 32];
    hkdf.expand(&info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    MediaKey(key)
}

/// A key provider over one fixed secret, key id 0: for relay tests and load tools only.
#[derive(Debug, Clone)]
pub struct StaticSecretKeys {
    secret: ChannelSecret,
}

impl StaticSecretKeys {
    /// A provider for `secret`.
    pub fn new(secret: ChannelSecret) -> Self {
        Self { secret }
    }
}

impl KeyProvider for StaticSecretKeys {
    fn current_key_id(&self) -> u8 {
        0
    }

    fn media_key(&self, sender: &SenderContext, key_id: u8) -> Result<MediaKey, KeyError> {
        if key_id != 0 {
            return Err(KeyError::UnknownKeyId(key_id));
        }
        Ok(derive_media_key(self.secret.as_bytes(), sender, key_id))
    }
}

/// Fresh random salt for a voice-channel join.
pub fn new_session_salt() -> SessionSalt {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt
}
