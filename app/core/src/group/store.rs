//! The member's MLS state on disk: openmls's store entries, our pending commit, the invite
//! secret we joined with and a few facts about each group (who invited us, when we last
//! rotated our keys), in SQLite, every value sealed.
//!
//! Values are sealed with XChaCha20-Poly1305 under a key derived from the identity key (which
//! lives in the OS keychain), with the table and entry key as associated data, so the file
//! alone reveals no group secret. Each save is one transaction: an operation's whole effect
//! lands on disk or none of it does.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;
use sotto_net::group::{InviteSecret, StoreDelta};
use sotto_net::identity::Identity;
use sotto_net::seal::text::TextSecret;
use zeroize::Zeroizing;

const STORE_KEY_SALT: &[u8] = b"sotto/1 local group store";
const NONCE_LEN: usize = 24;

/// The associated data's key for a text secret: group id, epoch, channel id.
fn text_secret_key(group_id: &[u8], epoch: u64, channel_id: u32) -> Vec<u8> {
    [group_id, &epoch.to_be_bytes(), &channel_id.to_be_bytes()].concat()
}

/// The associated data's key for a fact: group id, a zero byte, the fact's name.
fn fact_key(group_id: &[u8], name: &str) -> Vec<u8> {
    [group_id, b"\0", name.as_bytes()].concat()
}

/// One openmls store entry: key and (opened) value.
pub type StoreEntry = (Vec<u8>, Zeroizing<Vec<u8>>);

/// Why the group store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupStoreError {
    /// SQLite failed.
    #[error("the group store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A sealed value did not open: the file is damaged or belongs to another identity.
    #[error(
        "the group store {0} cannot be read with this identity (damaged, or made by another identity); move it away to start over"
    )]
    Unreadable(String),
}

/// A change to what the store keeps beside openmls's entries.
#[derive(Debug)]
pub enum StoreChange {
    /// Our commit waiting for the relay's answer in a group (or none).
    PendingCommit {
        /// The group.
        group_id: Vec<u8>,
        /// The epoch and the commit, if one is pending.
        commit: Option<(u64, Vec<u8>)>,
    },
    /// The invite secret to prove with until we are let into a group (or none).
    InviteSecret {
        /// The group.
        group_id: Vec<u8>,
        /// The secret.
        secret: Option<InviteSecret>,
    },
    /// Keeps an epoch's text secret of a channel, to read that epoch's messages later.
    TextSecret {
        /// The group.
        group_id: Vec<u8>,
        /// The epoch.
        epoch: u64,
        /// The text channel.
        channel_id: u32,
        /// The secret (MLS exporter value).
        secret: TextSecret,
    },
    /// Keeps (or forgets, with `None`) a named fact about a group.
    Fact {
        /// The group.
        group_id: Vec<u8>,
        /// Which fact.
        name: &'static str,
        /// Its value.
        value: Option<Vec<u8>>,
    },
}

/// What the store kept for one group, read when a session connects.
#[derive(Debug, Clone, Default)]
pub struct StoredGroup {
    /// Our commit the relay may have accepted before we stopped: its epoch and bytes.
    pub pending_commit: Option<(u64, Vec<u8>)>,
    /// The invite secret we are joining with.
    pub invite: Option<InviteSecret>,
    /// Named facts the group logic keeps (see [`StoreChange::Fact`]).
    pub facts: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl StoredGroup {
    /// The fact called `name`, if kept.
    pub fn fact(&self, name: &str) -> Option<&[u8]> {
        self.facts
            .iter()
            .find(|(kept, _)| kept == name)
            .map(|(_, value)| value.as_slice())
    }
}

/// The sealed SQLite file of a member's MLS state.
pub struct GroupStore {
    connection: Connection,
    cipher: XChaCha20Poly1305,
    path: String,
}

impl std::fmt::Debug for GroupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl GroupStore {
    /// Opens (creating if needed) the store at `path`, sealed for `identity`.
    pub fn open(path: &Path, identity: &Identity) -> Result<Self, GroupStoreError> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS mls_entries (key BLOB PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS pending_commits (
                 group_id BLOB PRIMARY KEY, epoch INTEGER NOT NULL, commit_message BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS invite_secrets (
                 group_id BLOB PRIMARY KEY, secret BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS text_secrets (
                 group_id BLOB NOT NULL, epoch INTEGER NOT NULL, channel_id INTEGER NOT NULL,
                 secret BLOB NOT NULL, PRIMARY KEY (group_id, epoch, channel_id));
             CREATE TABLE IF NOT EXISTS group_facts (
                 group_id BLOB NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (group_id, name));",
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let secret = Zeroizing::new(identity.secret_bytes());
        let hkdf = Hkdf::<Sha256>::new(Some(STORE_KEY_SALT), secret.as_slice());
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf.expand(&[], key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice()).expect("32-byte key");
        Ok(Self {
            connection,
            cipher,
            path: path.display().to_string(),
        })
    }

    fn seal(&self, table: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = [table.as_bytes(), b"\0", key].concat();
        let mut sealed = nonce.to_vec();
        sealed.extend(
            self.cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: value,
                        aad: &aad,
                    },
                )
                .expect("sealing in memory cannot fail"),
        );
        sealed
    }

    fn open_value(
        &self,
        table: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, GroupStoreError> {
        let unreadable = || GroupStoreError::Unreadable(self.path.clone());
        if sealed.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = [table.as_bytes(), b"\0", key].concat();
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| unreadable())
    }

    /// Every openmls entry, opened.
    pub fn entries(&self) -> Result<Vec<StoreEntry>, GroupStoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT key, value FROM mls_entries")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (key, sealed) = row?;
            let value = self.open_value("mls_entries", &key, &sealed)?;
            entries.push((key, value));
        }
        Ok(entries)
    }

    /// Our pending commit in `group_id`: its epoch and bytes.
    pub fn pending_commit(
        &self,
        group_id: &[u8],
    ) -> Result<Option<(u64, Vec<u8>)>, GroupStoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT epoch, commit_message FROM pending_commits WHERE group_id = ?1",
                params![group_id],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?)
    }

    /// The invite secret kept for `group_id`.
    pub fn invite_secret(&self, group_id: &[u8]) -> Result<Option<InviteSecret>, GroupStoreError> {
        let sealed: Option<Vec<u8>> = self
            .connection
            .query_row(
                "SELECT secret FROM invite_secrets WHERE group_id = ?1",
                params![group_id],
                |row| row.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let bytes = self.open_value("invite_secrets", group_id, &sealed)?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| GroupStoreError::Unreadable(self.path.clone()))?;
        Ok(Some(InviteSecret::from_bytes(bytes)))
    }

    /// The text secret of `channel_id` in `epoch`, if we were in the group then.
    pub fn text_secret(
        &self,
        group_id: &[u8],
        epoch: u64,
        channel_id: u32,
    ) -> Result<Option<TextSecret>, GroupStoreError> {
        let sealed: Option<Vec<u8>> = self
            .connection
            .query_row(
                "SELECT secret FROM text_secrets WHERE group_id = ?1 AND epoch = ?2 AND channel_id = ?3",
                params![group_id, epoch as i64, channel_id],
                |row| row.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let opened = self.open_value(
            "text_secrets",
            &text_secret_key(group_id, epoch, channel_id),
            &sealed,
        )?;
        let secret: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| GroupStoreError::Unreadable(self.path.clone()))?;
        Ok(Some(TextSecret::from_bytes(secret)))
    }

    /// Every text secret of `channel_id` kept for `group_id`, by epoch.
    pub fn text_secrets(
        &self,
        group_id: &[u8],
        channel_id: u32,
    ) -> Result<Vec<(u64, TextSecret)>, GroupStoreError> {
        let epochs: Vec<i64> = {
            let mut statement = self.connection.prepare(
                "SELECT epoch FROM text_secrets WHERE group_id = ?1 AND channel_id = ?2
                 ORDER BY epoch",
            )?;
            statement
                .query_map(params![group_id, channel_id], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut secrets = Vec::with_capacity(epochs.len());
        for epoch in epochs {
            if let Some(secret) = self.text_secret(group_id, epoch as u64, channel_id)? {
                secrets.push((epoch as u64, secret));
            }
        }
        Ok(secrets)
    }

    /// Keeps `secrets` of `channel_id` (shared by another member) for the epochs we hold none
    /// of: ours are never replaced. Returns how many were new.
    pub fn import_text_secrets(
        &mut self,
        group_id: &[u8],
        channel_id: u32,
        secrets: Vec<(u64, TextSecret)>,
    ) -> Result<usize, GroupStoreError> {
        let mut changes = Vec::new();
        for (epoch, secret) in secrets {
            if self.text_secret(group_id, epoch, channel_id)?.is_none() {
                changes.push(StoreChange::TextSecret {
                    group_id: group_id.to_vec(),
                    epoch,
                    channel_id,
                    secret,
                });
            }
        }
        let imported = changes.len();
        self.save(StoreDelta::default(), &changes)?;
        Ok(imported)
    }

    /// Everything kept for `group_id`.
    pub fn stored(&self, group_id: &[u8]) -> Result<StoredGroup, GroupStoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT name, value FROM group_facts WHERE group_id = ?1")?;
        let rows = statement.query_map(params![group_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut facts = Vec::new();
        for row in rows {
            let (name, sealed) = row?;
            let value = self.open_value("group_facts", &fact_key(group_id, &name), &sealed)?;
            facts.push((name, value));
        }
        Ok(StoredGroup {
            pending_commit: self.pending_commit(group_id)?,
            invite: self.invite_secret(group_id)?,
            facts,
        })
    }

    /// Writes `delta` and `changes` in one transaction.
    pub fn save(
        &mut self,
        delta: StoreDelta,
        changes: &[StoreChange],
    ) -> Result<(), GroupStoreError> {
        if delta.is_empty() && changes.is_empty() {
            return Ok(());
        }
        let sealed: Vec<(Vec<u8>, Vec<u8>)> = delta
            .upserts
            .iter()
            .map(|(key, value)| (key.clone(), self.seal("mls_entries", key, value)))
            .collect();
        let sealed_secrets: Vec<Option<Vec<u8>>> = changes
            .iter()
            .map(|change| match change {
                StoreChange::InviteSecret {
                    group_id,
                    secret: Some(secret),
                } => Some(self.seal("invite_secrets", group_id, secret.as_bytes())),
                StoreChange::Fact {
                    group_id,
                    name,
                    value: Some(value),
                } => Some(self.seal("group_facts", &fact_key(group_id, name), value)),
                StoreChange::TextSecret {
                    group_id,
                    epoch,
                    channel_id,
                    secret,
                } => Some(self.seal(
                    "text_secrets",
                    &text_secret_key(group_id, *epoch, *channel_id),
                    secret.as_bytes(),
                )),
                _ => None,
            })
            .collect();
        let tx = self.connection.transaction()?;
        for key in &delta.deletes {
            tx.execute("DELETE FROM mls_entries WHERE key = ?1", params![key])?;
        }
        for (key, value) in &sealed {
            tx.execute(
                "INSERT OR REPLACE INTO mls_entries (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        for (change, sealed_secret) in changes.iter().zip(&sealed_secrets) {
            match change {
                StoreChange::PendingCommit {
                    group_id,
                    commit: Some((epoch, commit)),
                } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO pending_commits (group_id, epoch, commit_message)
                         VALUES (?1, ?2, ?3)",
                        params![group_id, *epoch as i64, commit],
                    )?;
                }
                StoreChange::PendingCommit {
                    group_id,
                    commit: None,
                } => {
                    tx.execute(
                        "DELETE FROM pending_commits WHERE group_id = ?1",
                        params![group_id],
                    )?;
                }
                StoreChange::TextSecret {
                    group_id,
                    epoch,
                    channel_id,
                    ..
                } => {
                    if let Some(sealed) = sealed_secret {
                        tx.execute(
                            "INSERT OR REPLACE INTO text_secrets (group_id, epoch, channel_id, secret)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![group_id, *epoch as i64, channel_id, sealed],
                        )?;
                    }
                }
                StoreChange::Fact { group_id, name, .. } => match sealed_secret {
                    Some(sealed) => {
                        tx.execute(
                            "INSERT OR REPLACE INTO group_facts (group_id, name, value)
                             VALUES (?1, ?2, ?3)",
                            params![group_id, name, sealed],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM group_facts WHERE group_id = ?1 AND name = ?2",
                            params![group_id, name],
                        )?;
                    }
                },
                StoreChange::InviteSecret { group_id, .. } => match sealed_secret {
                    Some(sealed) => {
                        tx.execute(
                            "INSERT OR REPLACE INTO invite_secrets (group_id, secret) VALUES (?1, ?2)",
                            params![group_id, sealed],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM invite_secrets WHERE group_id = ?1",
                            params![group_id],
                        )?;
                    }
                },
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sealed_and_open_only_for_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.db");
        let identity = Identity::generate();
        let mut store = GroupStore::open(&path, &identity).unwrap();
        let canary = b"canary-secret-9f3a".to_vec();
        let delta = StoreDelta {
            upserts: vec![(b"k1".to_vec(), Zeroizing::new(canary.clone()))],
            deletes: Vec::new(),
        };
        let secret = InviteSecret::from_bytes([0x5a; 32]);
        store
            .save(
                delta,
                &[
                    StoreChange::InviteSecret {
                        group_id: b"g".to_vec(),
                        secret: Some(secret.clone()),
                    },
                    StoreChange::PendingCommit {
                        group_id: b"g".to_vec(),
                        commit: Some((4, vec![1, 2, 3])),
                    },
                    StoreChange::Fact {
                        group_id: b"g".to_vec(),
                        name: "inviter",
                        value: Some(vec![0x77; 32]),
                    },
                ],
            )
            .unwrap();
        drop(store);

        let raw = std::fs::read(&path).unwrap();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(canary.len()).any(|w| w == canary));
            assert!(!bytes.windows(32).any(|w| w == [0x5a; 32]));
            assert!(!bytes.windows(32).any(|w| w == [0x77; 32]));
        }

        let store = GroupStore::open(&path, &identity).unwrap();
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].1.as_slice(), canary.as_slice());
        assert_eq!(store.invite_secret(b"g").unwrap(), Some(secret));
        assert_eq!(
            store.pending_commit(b"g").unwrap(),
            Some((4, vec![1, 2, 3]))
        );
        let stored = store.stored(b"g").unwrap();
        assert_eq!(stored.fact("inviter"), Some(&[0x77; 32][..]));
        assert_eq!(stored.fact("rotation"), None);
        drop(store);

        let stranger = GroupStore::open(&path, &Identity::generate()).unwrap();
        assert!(matches!(
            stranger.entries(),
            Err(GroupStoreError::Unreadable(_))
        ));
    }
}
