//! The openmls provider of a member: RustCrypto plus a key-value store we persist ourselves.
//!
//! openmls keeps all group state (including private keys) in its storage provider. We use its
//! in-memory store and hand the changes since the last flush to the caller as a
//! [`StoreDelta`], which the client writes in one transaction (sealed) together with its own
//! state: so a commit is merged on disk in one step or not at all.

use std::collections::HashMap;

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use zeroize::Zeroizing;

/// A member's openmls provider with a store that can be flushed and restored. One provider
/// holds all of a member's groups (a KeyPackage made for one is used to join another), so it
/// is shared; flushing takes every group's changes at once.
#[derive(Default)]
pub struct GroupProvider {
    crypto: RustCrypto,
    storage: MemoryStorage,
    flushed: std::sync::Mutex<HashMap<Vec<u8>, Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for GroupProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupProvider")
            .field("entries", &self.flushed().len())
            .finish_non_exhaustive()
    }
}

/// Store entries changed since the last flush. Values hold private keys: seal them before they
/// touch a disk.
#[derive(Default)]
pub struct StoreDelta {
    /// Entries written or overwritten.
    pub upserts: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    /// Keys deleted.
    pub deletes: Vec<Vec<u8>>,
}

impl std::fmt::Debug for StoreDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDelta")
            .field("upserts", &self.upserts.len())
            .field("deletes", &self.deletes.len())
            .finish()
    }
}

impl StoreDelta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

impl GroupProvider {
    /// A provider with an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider whose store holds `entries` (as loaded from disk); they count as flushed.
    pub fn restore(entries: impl IntoIterator<Item = (Vec<u8>, Zeroizing<Vec<u8>>)>) -> Self {
        let flushed: HashMap<_, _> = entries.into_iter().collect();
        let storage = MemoryStorage::default();
        {
            let mut values = storage.values.write().expect("store lock poisoned");
            for (key, value) in &flushed {
                values.insert(key.clone(), value.to_vec());
            }
        }
        Self {
            crypto: RustCrypto::default(),
            storage,
            flushed: std::sync::Mutex::new(flushed),
        }
    }

    fn flushed(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Zeroizing<Vec<u8>>>> {
        self.flushed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The changes since the last call (or since [`Self::restore`]), marked as flushed.
    ///
    /// Call it after an operation, write the delta in one transaction, and only then act on
    /// the operation's result.
    pub fn take_delta(&self) -> StoreDelta {
        let mut flushed = self.flushed();
        let values = self.storage.values.read().expect("store lock poisoned");
        let mut delta = StoreDelta::default();
        for (key, value) in values.iter() {
            let unchanged = flushed
                .get(key)
                .is_some_and(|flushed| flushed.as_slice() == value.as_slice());
            if !unchanged {
                delta
                    .upserts
                    .push((key.clone(), Zeroizing::new(value.clone())));
            }
        }
        delta.deletes = flushed
            .keys()
            .filter(|key| !values.contains_key(*key))
            .cloned()
            .collect();
        drop(values);
        for key in &delta.deletes {
            flushed.remove(key);
        }
        for (key, value) in &delta.upserts {
            flushed.insert(key.clone(), value.clone());
        }
        delta
    }

    /// Throws away changes since the last flush (an operation whose result will not be used).
    pub fn discard_unflushed(&self) {
        let flushed = self.flushed();
        let mut values = self.storage.values.write().expect("store lock poisoned");
        values.clear();
        for (key, value) in flushed.iter() {
            values.insert(key.clone(), value.to_vec());
        }
    }
}

impl OpenMlsProvider for GroupProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}
