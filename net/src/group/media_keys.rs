//! Media keys from MLS epochs: the [`KeyProvider`] of a server's voice channels.
//!
//! Per epoch each channel's base key is `MLS-Exporter("sotto media v1", channel id, 32)`; each
//! sender's key derives from it exactly as [`crate::crypto::derive_media_key`] describes, with
//! the key id being the low byte of the epoch. When a new epoch is installed the previous one
//! stays usable for [`PREVIOUS_EPOCH_GRACE`] (packets sealed just before the change are still
//! in flight), then its base key is wiped.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::crypto::{KeyError, KeyProvider, MediaKey, SenderContext, derive_media_key};

/// How long the previous epoch's keys stay usable after a new epoch is installed.
pub const PREVIOUS_EPOCH_GRACE: Duration = Duration::from_secs(10);

struct EpochKey {
    epoch: u64,
    bases: HashMap<u32, Zeroizing<[u8; 32]>>,
}

impl EpochKey {
    fn key_id(&self) -> u8 {
        (self.epoch & 0xff) as u8
    }
}

#[derive(Default)]
struct Ring {
    current: Option<EpochKey>,
    previous: Option<(EpochKey, Instant)>,
}

/// The media keys of a server's voice channels across MLS epochs.
#[derive(Default)]
pub struct MediaKeyRing {
    ring: RwLock<Ring>,
    generation: AtomicU64,
}

impl std::fmt::Debug for MediaKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (current, previous) = self.epochs();
        f.debug_struct("MediaKeyRing")
            .field("current_epoch", &current)
            .field("previous_epoch", &previous)
            .finish()
    }
}

impl MediaKeyRing {
    /// An empty ring: it gives no key until an epoch is installed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `epoch` (with each channel's base key from [`super::Group::media_base`]) the one
    /// new media is sealed with; the epoch it replaces stays readable until
    /// `now + PREVIOUS_EPOCH_GRACE`. Installing an epoch not newer than the current one does
    /// nothing.
    pub fn install(
        &self,
        epoch: u64,
        bases: impl IntoIterator<Item = (u32, Zeroizing<[u8; 32]>)>,
        now: Instant,
    ) {
        let bases = bases.into_iter().collect();
        let mut ring = self.ring.write().expect("key ring lock poisoned");
        if ring
            .current
            .as_ref()
            .is_some_and(|current| current.epoch >= epoch)
        {
            return;
        }
        let replaced = ring.current.replace(EpochKey { epoch, bases });
        ring.previous = replaced.map(|key| (key, now + PREVIOUS_EPOCH_GRACE));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Adds the keys of channels created during `epoch`, if it is the current epoch (keys of
    /// channels already known stay as they are).
    pub fn add_channels(
        &self,
        epoch: u64,
        bases: impl IntoIterator<Item = (u32, Zeroizing<[u8; 32]>)>,
    ) {
        let mut ring = self.ring.write().expect("key ring lock poisoned");
        if let Some(current) = ring
            .current
            .as_mut()
            .filter(|current| current.epoch == epoch)
        {
            for (channel_id, base) in bases {
                current.bases.entry(channel_id).or_insert(base);
            }
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Wipes the previous epoch's key once its grace time has passed.
    pub fn expire(&self, now: Instant) {
        let mut ring = self.ring.write().expect("key ring lock poisoned");
        if ring
            .previous
            .as_ref()
            .is_some_and(|(_, retire_at)| now >= *retire_at)
        {
            ring.previous = None;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Forgets every key (we left the group or were removed).
    pub fn clear(&self) {
        *self.ring.write().expect("key ring lock poisoned") = Ring::default();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current and the previous epoch still held.
    pub fn epochs(&self) -> (Option<u64>, Option<u64>) {
        let ring = self.ring.read().expect("key ring lock poisoned");
        (
            ring.current.as_ref().map(|key| key.epoch),
            ring.previous.as_ref().map(|(key, _)| key.epoch),
        )
    }
}

impl KeyProvider for MediaKeyRing {
    fn current_key_id(&self) -> u8 {
        let ring = self.ring.read().expect("key ring lock poisoned");
        ring.current.as_ref().map_or(0, EpochKey::key_id)
    }

    fn media_key(&self, sender: &SenderContext, key_id: u8) -> Result<MediaKey, KeyError> {
        let ring = self.ring.read().expect("key ring lock poisoned");
        let epoch_key = ring
            .current
            .iter()
            .chain(ring.previous.iter().map(|(key, _)| key))
            .find(|key| key.key_id() == key_id)
            .ok_or(KeyError::UnknownKeyId(key_id))?;
        let base = epoch_key
            .bases
            .get(&sender.channel_id)
            .ok_or(KeyError::UnknownKeyId(key_id))?;
        Ok(derive_media_key(base, sender, key_id))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn holds(&self, key_id: u8) -> bool {
        let ring = self.ring.read().expect("key ring lock poisoned");
        ring.current
            .iter()
            .chain(ring.previous.iter().map(|(key, _)| key))
            .any(|key| key.key_id() == key_id)
    }
}
