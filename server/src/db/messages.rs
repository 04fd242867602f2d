//! Text channels' messages: sealed envelopes under a per-channel sequence number. Each message's
//! place is decided in one transaction, and the relay acknowledges it only after that
//! transaction is durable.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::StoredMessage;

use super::{Store, StoreError, blobs, to_u32};
use sotto_net::proto::file_stream::BlobId;

/// What became of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// Stored now.
    Stored(StoredMessage),
    /// The author posted this message id before: where it is.
    AlreadyStored(StoredMessage),
    /// Another member's message has this id in the channel.
    IdTaken,
    /// The message carries a file that is not stored (or not complete): nothing was stored.
    NoSuchFile(BlobId),
    /// The message takes back another member's message, and its author may not: nothing was
    /// stored.
    RetractForbidden,
    /// The channel is in slow mode and the author posted less than its interval ago: nothing
    /// was stored.
    SlowMode {
        /// Seconds until the author may post again (at least 1).
        wait_secs: u64,
    },
}

/// What a post carries besides its envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostExtras<'a> {
    /// Stored files the message carries.
    pub files: &'a [BlobId],
    /// A message of the channel it takes back (its files are let go).
    pub retracts: Option<u64>,
    /// Whether the author may take back other members' messages (a channel admin); the
    /// relay's audit log records when they do.
    pub may_retract_others: bool,
    /// The channel's slow mode for this author, in seconds (0: none, or exempt).
    pub slow_mode_secs: u32,
}

/// Writes the audit entry for a channel admin taking back someone else's message.
fn record_retraction(
    tx: &rusqlite::Connection,
    channel_id: u32,
    seq: u64,
    admin: u32,
    now_unix_ms: u64,
) -> Result<(), StoreError> {
    let (server_id, name, conversation): (i64, String, bool) = tx.query_row(
        "SELECT server_id, name, conversation FROM channels WHERE id = ?1",
        [channel_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let target = if conversation {
        format!("a conversation (message {seq})")
    } else {
        format!("#{name} (message {seq})")
    };
    super::roles::record(
        tx,
        to_u32(server_id, "server id")?,
        admin,
        sotto_net::roles::AuditAction::MessageDeleted,
        &target,
        "",
        now_unix_ms / 1000,
    )
}

impl Store {
    /// Stores `envelope` as the next message of `channel_id` by `author`, unless the author
    /// stored this `message_id` there already.
    pub fn post_message(
        &self,
        channel_id: u32,
        message_id: &[u8; 16],
        author: u32,
        envelope: &[u8],
        now_unix_ms: u64,
    ) -> Result<PostOutcome, StoreError> {
        self.post_message_with(
            channel_id,
            message_id,
            author,
            envelope,
            PostExtras::default(),
            now_unix_ms,
        )
    }

    /// [`Store::post_message`] for a message that carries files or takes one back: the
    /// message, its files and the retraction are one transaction.
    pub fn post_message_with(
        &self,
        channel_id: u32,
        message_id: &[u8; 16],
        author: u32,
        envelope: &[u8],
        extras: PostExtras<'_>,
        now_unix_ms: u64,
    ) -> Result<PostOutcome, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .query_row(
                    "SELECT seq, author, posted_at, envelope FROM messages
                     WHERE channel_id = ?1 AND message_id = ?2",
                    params![channel_id, message_id.as_slice()],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, Vec<u8>>(3)?,
                        ))
                    },
                )
                .optional()?;
            if let Some((seq, stored_author, posted_at, envelope)) = existing {
                if to_u32(stored_author, "author")? != author {
                    return Ok(PostOutcome::IdTaken);
                }
                return Ok(PostOutcome::AlreadyStored(StoredMessage {
                    channel_id,
                    seq: seq as u64,
                    message_id: *message_id,
                    author,
                    posted_at: posted_at as u64,
                    envelope,
                }));
            }
            if extras.slow_mode_secs > 0 {
                let last: Option<i64> = tx
                    .query_row(
                        "SELECT last_at FROM slow_mode_posts WHERE channel_id = ?1 AND member_id = ?2",
                        params![channel_id, author],
                        |row| row.get(0),
                    )
                    .optional()?;
                let interval_ms = u64::from(extras.slow_mode_secs) * 1000;
                if let Some(last) = last {
                    let since = now_unix_ms.saturating_sub(last as u64);
                    if since < interval_ms {
                        return Ok(PostOutcome::SlowMode {
                            wait_secs: (interval_ms - since).div_ceil(1000).max(1),
                        });
                    }
                }
                tx.execute(
                    "INSERT INTO slow_mode_posts (channel_id, member_id, last_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel_id, member_id) DO UPDATE SET last_at = excluded.last_at",
                    params![channel_id, author, now_unix_ms as i64],
                )?;
            }
            let seq: i64 = tx.query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE channel_id = ?1",
                params![channel_id],
                |row| row.get(0),
            )?;
            tx.execute(
                "INSERT INTO messages (channel_id, seq, message_id, author, posted_at, envelope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    channel_id,
                    seq,
                    message_id.as_slice(),
                    author,
                    now_unix_ms as i64,
                    envelope
                ],
            )?;
            if let Err(missing) = blobs::attach_files(&tx, channel_id, seq, extras.files)? {
                return Ok(PostOutcome::NoSuchFile(missing));
            }
            if let Some(retracted) = extras.retracts {
                let retracted_author: Option<i64> = tx
                    .query_row(
                        "SELECT author FROM messages WHERE channel_id = ?1 AND seq = ?2",
                        params![channel_id, retracted as i64],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(retracted_author) = retracted_author {
                    if to_u32(retracted_author, "author")? != author {
                        if !extras.may_retract_others {
                            return Ok(PostOutcome::RetractForbidden);
                        }
                        record_retraction(&tx, channel_id, retracted, author, now_unix_ms)?;
                    }
                    blobs::detach_files(&tx, channel_id, retracted, now_unix_ms)?;
                }
            }
            tx.commit()?;
            Ok(PostOutcome::Stored(StoredMessage {
                channel_id,
                seq: seq as u64,
                message_id: *message_id,
                author,
                posted_at: now_unix_ms,
                envelope: envelope.to_vec(),
            }))
        })
    }

    /// Up to `limit` messages of `channel_id` after seq `after`, by seq, stopping before the
    /// envelopes pass `max_bytes` (at least one is returned if any exists); and whether more
    /// follow.
    pub fn messages_after(
        &self,
        channel_id: u32,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<(Vec<StoredMessage>, bool), StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, message_id, author, posted_at, envelope FROM messages
                 WHERE channel_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let mut rows = statement.query(params![channel_id, after as i64, limit + 1])?;
            let mut messages = Vec::new();
            let mut bytes = 0;
            let mut more = false;
            while let Some(row) = rows.next()? {
                let envelope: Vec<u8> = row.get(4)?;
                if messages.len() == limit as usize
                    || (!messages.is_empty() && bytes + envelope.len() > max_bytes)
                {
                    more = true;
                    break;
                }
                bytes += envelope.len();
                let message_id: Vec<u8> = row.get(1)?;
                messages.push(StoredMessage {
                    channel_id,
                    seq: row.get::<_, i64>(0)? as u64,
                    message_id: message_id
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("message id"))?,
                    author: to_u32(row.get(2)?, "author")?,
                    posted_at: row.get::<_, i64>(3)? as u64,
                    envelope,
                });
            }
            Ok((messages, more))
        })
    }
}
