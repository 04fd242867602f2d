//! Sealed files' records: who uploaded what, whether it is complete, and which messages carry
//! it. The bytes live in the data directory's `blobs/` (see `crate::blob_files`).

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::file_stream::BlobId;

use super::{Store, StoreError, to_u32};

/// A stored file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Who uploaded it.
    pub uploader: u32,
    /// Bytes of the sealed file.
    pub sealed_len: u64,
    /// SHA-256 of the sealed file.
    pub sealed_sha256: [u8; 32],
    /// Whether every byte is there and its hash checked.
    pub complete: bool,
}

/// What an upload request finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// A new file: recorded now, nothing stored yet.
    New,
    /// The same member's unfinished upload of the same file: go on.
    Resume,
    /// The file is complete already.
    Complete,
    /// The id belongs to another member's file, or to another file of this member.
    IdTaken,
    /// The member's files would take more than their share of the relay's disk.
    OverQuota {
        /// Bytes their files take now.
        used: u64,
    },
}

impl Store {
    /// Records the start of an upload, or finds the one it continues.
    pub fn begin_upload(
        &self,
        id: &BlobId,
        uploader: u32,
        sealed_len: u64,
        sealed_sha256: &[u8; 32],
        quota: u64,
        now_unix_ms: u64,
    ) -> Result<UploadStart, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(record) = blob_record(&tx, id)? {
                let same = record.uploader == uploader
                    && record.sealed_len == sealed_len
                    && record.sealed_sha256 == *sealed_sha256;
                return Ok(match (same, record.complete) {
                    (false, _) => UploadStart::IdTaken,
                    (true, true) => UploadStart::Complete,
                    (true, false) => {
                        // Still wanted: its grace period starts again.
                        tx.execute(
                            "UPDATE blobs SET unreferenced_since = ?2 WHERE id = ?1",
                            params![id.as_slice(), now_unix_ms as i64],
                        )?;
                        tx.commit()?;
                        UploadStart::Resume
                    }
                });
            }
            // Finished or not, posted or not: every stored byte counts.
            let used: i64 = tx.query_row(
                "SELECT coalesce(sum(sealed_len), 0) FROM blobs WHERE uploader = ?1",
                params![uploader],
                |row| row.get(0),
            )?;
            let used = used as u64;
            if used.saturating_add(sealed_len) > quota {
                return Ok(UploadStart::OverQuota { used });
            }
            tx.execute(
                "INSERT INTO blobs (id, uploader, sealed_len, sealed_sha256, complete, created_at,
                                    unreferenced_since)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
                params![
                    id.as_slice(),
                    uploader,
                    i64::try_from(sealed_len).map_err(|_| StoreError::Corrupt("sealed length"))?,
                    sealed_sha256.as_slice(),
                    now_unix_ms as i64
                ],
            )?;
            tx.commit()?;
            Ok(UploadStart::New)
        })
    }

    /// Marks an upload complete (its bytes are durable and their hash checked); its grace
    /// period for being posted starts now. False if its record is gone.
    pub fn complete_upload(&self, id: &BlobId, now_unix_ms: u64) -> Result<bool, StoreError> {
        self.with(|connection| {
            let changed = connection.execute(
                "UPDATE blobs SET complete = 1, unreferenced_since = ?2 WHERE id = ?1",
                params![id.as_slice(), now_unix_ms as i64],
            )?;
            Ok(changed == 1)
        })
    }

    /// A file's record, if there is one.
    pub fn blob(&self, id: &BlobId) -> Result<Option<BlobRecord>, StoreError> {
        self.with(|connection| blob_record(connection, id))
    }

    /// Deletes the records of files no message carries since before `cutoff_unix_ms`, and
    /// returns their ids (delete their bytes next; a crash in between leaves files without a
    /// record, which [`Store::blob_ids`] lets the relay sweep at start).
    pub fn collect_unreferenced_blobs(
        &self,
        cutoff_unix_ms: u64,
        in_transfer: &std::collections::HashSet<BlobId>,
    ) -> Result<Vec<BlobId>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let candidates = {
                let mut statement = tx.prepare_cached(
                    "SELECT id FROM blobs WHERE unreferenced_since < ?1
                       AND NOT EXISTS (SELECT 1 FROM message_files WHERE blob_id = blobs.id)",
                )?;
                statement
                    .query_map(params![cutoff_unix_ms as i64], |row| {
                        row.get::<_, Vec<u8>>(0)
                    })?
                    .map(|id| id?.try_into().map_err(|_| StoreError::Corrupt("blob id")))
                    .collect::<Result<Vec<BlobId>, StoreError>>()?
            };
            // An upload under way is left alone, however long it takes.
            let doomed: Vec<BlobId> = candidates
                .into_iter()
                .filter(|id| !in_transfer.contains(id))
                .collect();
            for id in &doomed {
                tx.execute("DELETE FROM blobs WHERE id = ?1", params![id.as_slice()])?;
            }
            tx.commit()?;
            Ok(doomed)
        })
    }

    /// Every file id with a record.
    pub fn blob_ids(&self) -> Result<std::collections::HashSet<BlobId>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT id FROM blobs")?;
            let ids = statement
                .query_map([], |row| row.get::<_, Vec<u8>>(0))?
                .map(|id| id?.try_into().map_err(|_| StoreError::Corrupt("blob id")))
                .collect::<Result<_, StoreError>>()?;
            Ok(ids)
        })
    }

    /// Which messages carry file `id`: (channel, seq) pairs.
    pub fn messages_carrying(&self, id: &BlobId) -> Result<Vec<(u32, u64)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT channel_id, seq FROM message_files WHERE blob_id = ?1 ORDER BY 1, 2",
            )?;
            let rows = statement
                .query_map(params![id.as_slice()], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?
                .map(|row| {
                    let (channel, seq) = row?;
                    Ok((to_u32(channel, "channel id")?, seq as u64))
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(rows)
        })
    }
}

fn blob_record(
    connection: &rusqlite::Connection,
    id: &BlobId,
) -> Result<Option<BlobRecord>, StoreError> {
    let row = connection
        .query_row(
            "SELECT uploader, sealed_len, sealed_sha256, complete FROM blobs WHERE id = ?1",
            params![id.as_slice()],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(uploader, sealed_len, sha, complete)| {
        Ok(BlobRecord {
            uploader: to_u32(uploader, "uploader")?,
            sealed_len: u64::try_from(sealed_len)
                .map_err(|_| StoreError::Corrupt("sealed length"))?,
            sealed_sha256: sha
                .try_into()
                .map_err(|_| StoreError::Corrupt("sealed SHA-256"))?,
            complete,
        })
    })
    .transpose()
}

/// Within a post's transaction: records that message (`channel_id`, `seq`) carries `files`,
/// each of which must be complete; `Err(id)` names the first that is not.
pub(super) fn attach_files(
    tx: &rusqlite::Transaction<'_>,
    channel_id: u32,
    seq: i64,
    files: &[BlobId],
) -> Result<Result<(), BlobId>, StoreError> {
    for id in files {
        match blob_record(tx, id)? {
            Some(record) if record.complete => {}
            _ => return Ok(Err(*id)),
        }
        tx.execute(
            "INSERT OR IGNORE INTO message_files (channel_id, seq, blob_id) VALUES (?1, ?2, ?3)",
            params![channel_id, seq, id.as_slice()],
        )?;
    }
    Ok(Ok(()))
}

/// Within a post's transaction: message (`channel_id`, `seq`) carries no files any more; those
/// no other message carries start their grace period at `now_unix_ms`.
pub(super) fn detach_files(
    tx: &rusqlite::Transaction<'_>,
    channel_id: u32,
    seq: u64,
    now_unix_ms: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE blobs SET unreferenced_since = ?3
         WHERE id IN (SELECT blob_id FROM message_files WHERE channel_id = ?1 AND seq = ?2)",
        params![channel_id, seq as i64, now_unix_ms as i64],
    )?;
    tx.execute(
        "DELETE FROM message_files WHERE channel_id = ?1 AND seq = ?2",
        params![channel_id, seq as i64],
    )?;
    Ok(())
}
