//! The member's own copy of the messages it could open, in SQLite with an FTS5 index: history
//! shows from here, and search never asks the relay.
//!
//! The file is the member's (mode 0600); it holds decrypted text, as any chat client's local
//! history does, so keep the device's disk encrypted.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sotto_net::proto::control::PublicKey;

use zeroize::Zeroizing;

use super::action::{Action, ActionFacts, Attachment, Origin, Refusal, permitted};
use super::{ChatBody, ChatMessage};

/// Why the chat store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatStoreError {
    /// SQLite failed.
    #[error("the local message store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file could not be created.
    #[error("cannot create the local message store {0}: {1}")]
    File(String, std::io::Error),
}

/// What to look for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words that must all appear (each may be the start of a longer word).
    pub words: String,
    /// Only in this channel.
    pub channel_id: Option<u32>,
    /// Only by this member.
    pub author_member: Option<u32>,
    /// Only sent at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only sent before this time (Unix ms).
    pub until_ms: Option<u64>,
    /// Only messages that carry a file.
    pub has_file: bool,
    /// Only messages in a thread (replies, and messages replied to).
    pub in_thread: bool,
    /// At most this many results, newest first.
    pub limit: u32,
}

/// Unread messages of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    /// Messages after the read marker, by others.
    pub messages: u64,
    /// Of those, the ones that call on us.
    pub mentions: u64,
}

/// The store's schema, one step per version (`PRAGMA user_version`).
const MIGRATIONS: [&str; 6] = [
    // 1: messages, reactions, files and the word index.
    "CREATE TABLE IF NOT EXISTS messages (
             id INTEGER PRIMARY KEY,
             server TEXT NOT NULL,
             channel_id INTEGER NOT NULL,
             seq INTEGER NOT NULL,
             author_member INTEGER NOT NULL,
             author_key BLOB,
             sent_at INTEGER,
             posted_at INTEGER NOT NULL,
             body TEXT,
             unreadable TEXT,
             reply_to INTEGER,
             edited INTEGER NOT NULL DEFAULT 0,
             deleted INTEGER NOT NULL DEFAULT 0,
             -- An edit, deletion or reaction: applied to its target, not listed itself.
             hidden INTEGER NOT NULL DEFAULT 0,
             UNIQUE (server, channel_id, seq)
         );
         CREATE TABLE IF NOT EXISTS reactions (
             server TEXT NOT NULL,
             channel_id INTEGER NOT NULL,
             seq INTEGER NOT NULL,
             emoji TEXT NOT NULL,
             author_key BLOB NOT NULL,
             PRIMARY KEY (server, channel_id, seq, emoji, author_key)
         );
         -- Files messages carry; the manifest holds the file's key.
         CREATE TABLE IF NOT EXISTS attachments (
             server TEXT NOT NULL,
             channel_id INTEGER NOT NULL,
             seq INTEGER NOT NULL,
             blob_id BLOB NOT NULL,
             manifest BLOB NOT NULL,
             name TEXT NOT NULL,
             media_type TEXT NOT NULL,
             size INTEGER NOT NULL,
             PRIMARY KEY (server, channel_id, seq)
         );
         CREATE INDEX IF NOT EXISTS messages_by_time ON messages (server, sent_at);
         CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
             body, content = 'messages', content_rowid = 'id',
             tokenize = 'unicode61 remove_diacritics 2'
         );
         CREATE TRIGGER IF NOT EXISTS messages_indexed AFTER INSERT ON messages
             WHEN new.body IS NOT NULL
         BEGIN
             INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
         END;",
    // 2: mentions, pins, threads' index, read markers and drafts.
    "ALTER TABLE messages ADD COLUMN mentions_me INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX messages_by_reply ON messages (server, channel_id, reply_to);
     CREATE TABLE read_markers (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         PRIMARY KEY (server, channel_id)
     );
     CREATE TABLE drafts (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         text TEXT NOT NULL,
         updated_at INTEGER NOT NULL,
         PRIMARY KEY (server, channel_id)
     );",
    // 3: where forwarded messages came from.
    "ALTER TABLE messages ADD COLUMN forwarded_channel INTEGER;
     ALTER TABLE messages ADD COLUMN forwarded_seq INTEGER;
     ALTER TABLE messages ADD COLUMN forwarded_author BLOB;
     ALTER TABLE messages ADD COLUMN forwarded_sent_at INTEGER;",
    // 4: image previews.
    "ALTER TABLE attachments ADD COLUMN thumbnail BLOB;",
    // 5: read receipts: how far each member says it has read, and where we send ours.
    "CREATE TABLE receipts (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         reader_key BLOB NOT NULL,
         up_to INTEGER NOT NULL,
         PRIMARY KEY (server, channel_id, reader_key)
     );
     CREATE TABLE receipt_choices (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         send INTEGER NOT NULL CHECK (send IN (0, 1)),
         PRIMARY KEY (server, channel_id)
     );",
    // 6: channels whose history is shared with members who join later, and whom past keys
    // were shared with.
    "CREATE TABLE history_sharing (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         share INTEGER NOT NULL CHECK (share IN (0, 1)),
         PRIMARY KEY (server, channel_id)
     );
     CREATE TABLE history_recipients (
         server TEXT NOT NULL,
         channel_id INTEGER NOT NULL,
         member_key BLOB NOT NULL,
         PRIMARY KEY (server, channel_id, member_key)
     );",
];

/// Brings the schema up to date, one transaction per step.
fn migrate(db: &mut Connection) -> Result<(), ChatStoreError> {
    let current: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = db.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The local message store of one profile.
#[derive(Debug)]
pub struct ChatStore {
    db: Connection,
}

impl ChatStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ChatStoreError> {
        // Created private before SQLite writes anything into it.
        let mut create = std::fs::OpenOptions::new();
        create.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            create.mode(0o600);
        }
        create
            .open(path)
            .map_err(|error| ChatStoreError::File(path.display().to_string(), error))?;
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        let mut db = db;
        migrate(&mut db)?;
        Ok(Self { db })
    }

    /// The last seq of `channel_id` held here (0 for none).
    pub fn last_seq(&self, server: &str, channel_id: u32) -> Result<u64, ChatStoreError> {
        let seq: i64 = self.db.query_row(
            "SELECT coalesce(max(seq), 0) FROM messages WHERE server = ?1 AND channel_id = ?2",
            params![server, channel_id],
            |row| row.get(0),
        )?;
        Ok(seq as u64)
    }

    /// Keeps `messages` of `server` in seq order (those held already are left as they are)
    /// and applies the edits, deletions and reactions among them that the rules allow
    /// ([`permitted`]); `is_admin` says whether a key is a group admin. Returns how many were
    /// new. One transaction.
    pub fn insert(
        &mut self,
        server: &str,
        messages: &[ChatMessage],
        is_admin: &dyn Fn(&PublicKey) -> bool,
    ) -> Result<usize, ChatStoreError> {
        let tx = self.db.transaction()?;
        let added = insert_rows(&tx, server, messages, is_admin)?;
        tx.commit()?;
        Ok(added)
    }

    /// Whether `actor` may do `action` in `channel_id` now, by what this store holds (a
    /// front end checks before posting; every member checks again when applying).
    pub fn check(
        &self,
        server: &str,
        channel_id: u32,
        action: &Action,
        actor: &PublicKey,
        actor_is_admin: bool,
        now_ms: u64,
    ) -> Result<(), CheckError> {
        let Some(target) = action.target().or(match action {
            Action::Text { reply_to, .. } => *reply_to,
            _ => None,
        }) else {
            return Ok(());
        };
        let found = target_row(&self.db, server, channel_id, target)?
            .ok_or(CheckError::NoSuchMessage(target))?;
        permitted(
            action,
            &ActionFacts {
                actor_is_author: found.author_key.as_ref() == Some(actor),
                actor_is_admin,
                target_posted_at_ms: found.posted_at_ms,
                action_posted_at_ms: now_ms,
                target_deleted: found.deleted,
            },
        )
        .map_err(CheckError::Refused)
    }

    /// The newest `limit` messages of a channel, oldest first, with their reactions.
    pub fn latest(
        &self,
        server: &str,
        channel_id: u32,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM messages m
             WHERE m.server = ?1 AND m.channel_id = ?2 AND m.hidden = 0
             ORDER BY m.seq DESC LIMIT ?3"
        ))?;
        let mut messages = statement
            .query_map(params![server, channel_id, limit], row_message)?
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        self.fill_in(server, &mut messages)?;
        Ok(messages)
    }

    /// Adds each message's reactions and file.
    fn fill_in(&self, server: &str, messages: &mut [ChatMessage]) -> Result<(), ChatStoreError> {
        let mut reactions = self.db.prepare_cached(
            "SELECT emoji, count(*) FROM reactions
             WHERE server = ?1 AND channel_id = ?2 AND seq = ?3
             GROUP BY emoji ORDER BY min(rowid)",
        )?;
        for message in messages {
            message.reactions = reactions
                .query_map(
                    params![server, message.channel_id, message.seq as i64],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            message.attachment = self.attachment(server, message.channel_id, message.seq)?;
        }
        Ok(())
    }

    /// The file message `seq` of `channel_id` carries, if this device holds it.
    pub fn attachment(
        &self,
        server: &str,
        channel_id: u32,
        seq: u64,
    ) -> Result<Option<Attachment>, ChatStoreError> {
        let found = self
            .db
            .prepare_cached(
                "SELECT blob_id, manifest, name, media_type, size, thumbnail FROM attachments
                 WHERE server = ?1 AND channel_id = ?2 AND seq = ?3",
            )?
            .query_row(params![server, channel_id, seq as i64], |row| {
                let blob_id: Vec<u8> = row.get(0)?;
                Ok(Attachment {
                    blob_id: blob_id.try_into().unwrap_or_default(),
                    manifest: Zeroizing::new(row.get(1)?),
                    name: row.get(2)?,
                    media_type: row.get(3)?,
                    size: row.get::<_, i64>(4)? as u64,
                    thumbnail: row.get(5)?,
                })
            })
            .optional()?;
        Ok(found)
    }

    /// A thread: the message at `root` and every reply to it or to its replies, by seq.
    pub fn thread(
        &self,
        server: &str,
        channel_id: u32,
        root: u64,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(&format!(
            "WITH RECURSIVE thread (seq) AS (
                 SELECT ?3
                 UNION
                 SELECT m.seq FROM messages m JOIN thread t ON m.reply_to = t.seq
                 WHERE m.server = ?1 AND m.channel_id = ?2 AND m.hidden = 0
             )
             SELECT {COLUMNS} FROM messages m
             WHERE m.server = ?1 AND m.channel_id = ?2 AND m.hidden = 0
               AND m.seq IN (SELECT seq FROM thread)
             ORDER BY m.seq"
        ))?;
        let mut messages = statement
            .query_map(params![server, channel_id, root as i64], row_message)?
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_in(server, &mut messages)?;
        Ok(messages)
    }

    /// Message `seq` of `channel_id` as shown (none if held not, or an edit or reaction).
    pub fn message(
        &self,
        server: &str,
        channel_id: u32,
        seq: u64,
    ) -> Result<Option<ChatMessage>, ChatStoreError> {
        let found = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages m
                 WHERE m.server = ?1 AND m.channel_id = ?2 AND m.seq = ?3 AND m.hidden = 0"
            ))?
            .query_row(params![server, channel_id, seq as i64], row_message)
            .optional()?;
        let mut found: Vec<ChatMessage> = found.into_iter().collect();
        self.fill_in(server, &mut found)?;
        Ok(found.pop())
    }

    /// The channel's pinned messages, oldest first.
    pub fn pins(&self, server: &str, channel_id: u32) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM messages m
             WHERE m.server = ?1 AND m.channel_id = ?2 AND m.pinned = 1 AND m.hidden = 0
             ORDER BY m.seq"
        ))?;
        let mut messages = statement
            .query_map(params![server, channel_id], row_message)?
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_in(server, &mut messages)?;
        Ok(messages)
    }

    /// How far each member's read receipts say it has read `channel_id` (ours included), by
    /// key.
    pub fn receipts(
        &self,
        server: &str,
        channel_id: u32,
    ) -> Result<Vec<(PublicKey, u64)>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT reader_key, up_to FROM receipts WHERE server = ?1 AND channel_id = ?2
             ORDER BY up_to DESC, reader_key",
        )?;
        let rows = statement.query_map(params![server, channel_id], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut receipts = Vec::new();
        for row in rows {
            let (key, up_to) = row?;
            if let Ok(key) = PublicKey::try_from(key.as_slice()) {
                receipts.push((key, up_to as u64));
            }
        }
        Ok(receipts)
    }

    /// Whether `channel_id`'s past text keys go to members who join later (an admin's
    /// choice; off unless one switched it on).
    pub fn shares_history(&self, server: &str, channel_id: u32) -> Result<bool, ChatStoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT share FROM history_sharing WHERE server = ?1 AND channel_id = ?2",
                params![server, channel_id],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Whom `channel_id`'s past keys were shared with, by anyone.
    pub fn history_recipients(
        &self,
        server: &str,
        channel_id: u32,
    ) -> Result<Vec<PublicKey>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT member_key FROM history_recipients WHERE server = ?1 AND channel_id = ?2",
        )?;
        let rows =
            statement.query_map(params![server, channel_id], |row| row.get::<_, Vec<u8>>(0))?;
        let mut keys = Vec::new();
        for row in rows {
            if let Ok(key) = PublicKey::try_from(row?.as_slice()) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Whether any message of `channel_id` might carry a task tag (has a `#` in its text): a
    /// channel without one needs no board.
    pub fn may_have_tags(&self, server: &str, channel_id: u32) -> Result<bool, ChatStoreError> {
        Ok(self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE server = ?1 AND channel_id = ?2
                            AND instr(body, '#') > 0)",
            params![server, channel_id],
            |row| row.get(0),
        )?)
    }

    /// The first message of `channel_id` this device could open, if any.
    pub fn first_readable_seq(
        &self,
        server: &str,
        channel_id: u32,
    ) -> Result<Option<u64>, ChatStoreError> {
        let first: Option<i64> = self.db.query_row(
            "SELECT min(seq) FROM messages WHERE server = ?1 AND channel_id = ?2
             AND unreadable IS NULL",
            params![server, channel_id],
            |row| row.get(0),
        )?;
        Ok(first.map(|seq| seq as u64))
    }

    /// The seqs of `channel_id`'s messages this device could not open, oldest first.
    pub fn unreadable_seqs(
        &self,
        server: &str,
        channel_id: u32,
    ) -> Result<Vec<u64>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT seq FROM messages WHERE server = ?1 AND channel_id = ?2
             AND unreadable IS NOT NULL ORDER BY seq",
        )?;
        let rows = statement.query_map(params![server, channel_id], |row| row.get::<_, i64>(0))?;
        let mut seqs = Vec::new();
        for row in rows {
            seqs.push(row? as u64);
        }
        Ok(seqs)
    }

    /// Replaces messages this device could not open with `messages` (the same seqs, opened
    /// now), applying the edits, deletions and reactions among them; returns how many were
    /// replaced. Messages it could open are left as they are.
    pub fn reopen(
        &mut self,
        server: &str,
        messages: &[ChatMessage],
        is_admin: &dyn Fn(&PublicKey) -> bool,
    ) -> Result<usize, ChatStoreError> {
        let opened: Vec<ChatMessage> = messages
            .iter()
            .filter(|message| !matches!(message.body, ChatBody::Unreadable(_)))
            .cloned()
            .collect();
        let tx = self.db.transaction()?;
        for message in &opened {
            tx.execute(
                "DELETE FROM messages WHERE server = ?1 AND channel_id = ?2 AND seq = ?3
                 AND unreadable IS NOT NULL",
                params![server, message.channel_id, message.seq as i64],
            )?;
        }
        let replaced = insert_rows(&tx, server, &opened, is_admin)?;
        tx.commit()?;
        Ok(replaced)
    }

    /// Whether we send read receipts in `channel_id` (off unless switched on).
    pub fn sends_receipts(&self, server: &str, channel_id: u32) -> Result<bool, ChatStoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT send FROM receipt_choices WHERE server = ?1 AND channel_id = ?2",
                params![server, channel_id],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Switches our read receipts in `channel_id` on or off.
    pub fn set_sends_receipts(
        &self,
        server: &str,
        channel_id: u32,
        send: bool,
    ) -> Result<(), ChatStoreError> {
        self.db.execute(
            "INSERT INTO receipt_choices (server, channel_id, send) VALUES (?1, ?2, ?3)
             ON CONFLICT (server, channel_id) DO UPDATE SET send = excluded.send",
            params![server, channel_id, send],
        )?;
        Ok(())
    }

    /// The read receipt we owe in `channel_id`, if we send them: up to the last message others
    /// posted there, when our last receipt (or none) is short of it. Receipts never answer
    /// receipts.
    pub fn receipt_due(
        &self,
        server: &str,
        channel_id: u32,
        own: &PublicKey,
    ) -> Result<Option<u64>, ChatStoreError> {
        if !self.sends_receipts(server, channel_id)? {
            return Ok(None);
        }
        let Some(last) = self.last_from_others(server, channel_id, own)? else {
            return Ok(None);
        };
        let sent: Option<i64> = self
            .db
            .query_row(
                "SELECT up_to FROM receipts WHERE server = ?1 AND channel_id = ?2
                 AND reader_key = ?3",
                params![server, channel_id, own.as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        Ok((sent.is_none_or(|sent| (sent as u64) < last)).then_some(last))
    }

    /// The last message (not an action) in `channel_id` that someone other than `member`
    /// posted: what `member` has to read.
    pub fn last_from_others(
        &self,
        server: &str,
        channel_id: u32,
        member: &PublicKey,
    ) -> Result<Option<u64>, ChatStoreError> {
        let last: Option<i64> = self.db.query_row(
            "SELECT max(seq) FROM messages WHERE server = ?1 AND channel_id = ?2 AND hidden = 0
             AND (author_key IS NULL OR author_key != ?3)",
            params![server, channel_id, member.as_slice()],
            |row| row.get(0),
        )?;
        Ok(last.map(|seq| seq as u64))
    }

    /// Marks `channel_id` read up to `seq` (a marker never moves back).
    pub fn mark_read(&self, server: &str, channel_id: u32, seq: u64) -> Result<(), ChatStoreError> {
        self.db.execute(
            "INSERT INTO read_markers (server, channel_id, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (server, channel_id) DO UPDATE SET seq = max(seq, excluded.seq)",
            params![server, channel_id, seq as i64],
        )?;
        Ok(())
    }

    /// How many messages of `channel_id` after its read marker, by others than `me`, are
    /// unread, and how many of those call on `me`.
    pub fn unread(
        &self,
        server: &str,
        channel_id: u32,
        me: &PublicKey,
    ) -> Result<Unread, ChatStoreError> {
        let (messages, mentions): (i64, i64) = self.db.query_row(
            "SELECT count(*), coalesce(sum(m.mentions_me), 0) FROM messages m
             WHERE m.server = ?1 AND m.channel_id = ?2 AND m.hidden = 0 AND m.deleted = 0
               AND m.seq > coalesce((SELECT seq FROM read_markers
                                     WHERE server = ?1 AND channel_id = ?2), 0)
               AND (m.author_key IS NULL OR m.author_key != ?3)",
            params![server, channel_id, me.as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(Unread {
            messages: messages as u64,
            mentions: mentions as u64,
        })
    }

    /// Keeps what was typed but not sent in `channel_id` (empty text forgets it).
    pub fn set_draft(
        &self,
        server: &str,
        channel_id: u32,
        text: &str,
        now_ms: u64,
    ) -> Result<(), ChatStoreError> {
        if text.trim().is_empty() {
            self.db.execute(
                "DELETE FROM drafts WHERE server = ?1 AND channel_id = ?2",
                params![server, channel_id],
            )?;
        } else {
            self.db.execute(
                "INSERT INTO drafts (server, channel_id, text, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (server, channel_id)
                 DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                params![server, channel_id, text, now_ms as i64],
            )?;
        }
        Ok(())
    }

    /// The draft kept for `channel_id`, if any.
    pub fn draft(&self, server: &str, channel_id: u32) -> Result<Option<String>, ChatStoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT text FROM drafts WHERE server = ?1 AND channel_id = ?2",
                params![server, channel_id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Messages matching `query`, newest first.
    pub fn search(
        &self,
        server: &str,
        query: &SearchQuery,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let expression = fts_expression(&query.words);
        if expression.is_none() && !query.has_file && !query.in_thread {
            return Ok(Vec::new());
        }
        // With words, the index picks the candidates; `has:file` alone lists files.
        let source = if expression.is_some() {
            "messages_fts f JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ?1"
        } else {
            "messages m WHERE ?1 IS NULL AND m.hidden = 0 AND m.deleted = 0"
        };
        let mut statement = self.db.prepare_cached(&format!(
            "SELECT {COLUMNS}
             FROM {source} AND m.server = ?2
               AND (?3 IS NULL OR m.channel_id = ?3)
               AND (?4 IS NULL OR m.author_member = ?4)
               AND (?5 IS NULL OR m.sent_at >= ?5)
               AND (?6 IS NULL OR m.sent_at < ?6)
               AND (?8 = 0 OR EXISTS (SELECT 1 FROM attachments a WHERE a.server = m.server
                    AND a.channel_id = m.channel_id AND a.seq = m.seq))
               AND (?9 = 0 OR m.reply_to IS NOT NULL OR EXISTS (SELECT 1 FROM messages r
                    WHERE r.server = m.server AND r.channel_id = m.channel_id
                      AND r.reply_to = m.seq AND r.hidden = 0))
             ORDER BY m.sent_at DESC LIMIT ?7"
        ))?;
        let mut results = statement
            .query_map(
                params![
                    expression,
                    server,
                    query.channel_id,
                    query.author_member,
                    query.since_ms.map(|at| at as i64),
                    query.until_ms.map(|at| at as i64),
                    query.limit.max(1),
                    query.has_file,
                    query.in_thread,
                ],
                row_message,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_in(server, &mut results)?;
        Ok(results)
    }
}

/// The columns [`row_message`] reads, of `messages m`.
const COLUMNS: &str = "m.channel_id, m.seq, m.author_member, m.author_key, m.sent_at, m.posted_at,
     m.body, m.unreadable, m.reply_to, m.edited, m.deleted, m.mentions_me, m.pinned,
     m.forwarded_channel, m.forwarded_seq, m.forwarded_author, m.forwarded_sent_at";

fn row_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    let key: Option<Vec<u8>> = row.get(3)?;
    let body: Option<String> = row.get(6)?;
    let unreadable: Option<String> = row.get(7)?;
    let deleted: bool = row.get(10)?;
    Ok(ChatMessage {
        reply_to: row.get::<_, Option<i64>>(8)?.map(|seq| seq as u64),
        edited: row.get(9)?,
        deleted,
        reactions: Vec::new(),
        attachment: None,
        mentions_me: row.get(11)?,
        pinned: row.get(12)?,
        forwarded_from: match (
            row.get::<_, Option<u32>>(13)?,
            row.get::<_, Option<i64>>(14)?,
            row.get::<_, Option<Vec<u8>>>(15)?,
            row.get::<_, Option<i64>>(16)?,
        ) {
            (Some(channel_id), Some(seq), Some(author), Some(sent_at)) => {
                author.try_into().ok().map(|author| Origin {
                    channel_id,
                    seq: seq as u64,
                    author,
                    sent_at_ms: sent_at as u64,
                })
            }
            _ => None,
        },
        channel_id: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        author_member: row.get(2)?,
        author: key.and_then(|key| PublicKey::try_from(key.as_slice()).ok()),
        sent_at_ms: row.get::<_, Option<i64>>(4)?.map(|at| at as u64),
        posted_at_ms: row.get::<_, i64>(5)? as u64,
        body: match body {
            Some(text) => ChatBody::Text(text),
            None if deleted => ChatBody::Text(String::new()),
            None => ChatBody::Unreadable(unreadable.unwrap_or_default()),
        },
    })
}

/// Inserts `messages` (those held already are left as they are) and applies the actions
/// among them the rules allow; returns how many were new.
fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    server: &str,
    messages: &[ChatMessage],
    is_admin: &dyn Fn(&PublicKey) -> bool,
) -> Result<usize, ChatStoreError> {
    let mut added = 0;
    for message in messages {
        let (body, unreadable, hidden) = match &message.body {
            ChatBody::Text(text) => (Some(text.as_str()), None, false),
            ChatBody::Unreadable(why) => (None, Some(why.as_str()), false),
            ChatBody::Action(_) => (None, None, true),
        };
        let new = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO messages
                 (server, channel_id, seq, author_member, author_key, sent_at, posted_at,
                  body, unreadable, reply_to, hidden, mentions_me, forwarded_channel,
                  forwarded_seq, forwarded_author, forwarded_sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                server,
                message.channel_id,
                message.seq as i64,
                message.author_member,
                message.author.as_ref().map(|key| key.as_slice()),
                message.sent_at_ms.map(|at| at as i64),
                message.posted_at_ms as i64,
                body,
                unreadable,
                message.reply_to.map(|seq| seq as i64),
                hidden,
                message.mentions_me,
                message.forwarded_from.map(|origin| origin.channel_id),
                message.forwarded_from.map(|origin| origin.seq as i64),
                message.forwarded_from.map(|origin| origin.author.to_vec()),
                message
                    .forwarded_from
                    .map(|origin| origin.sent_at_ms as i64),
            ])?;
        added += new;
        if let (1, Some(file)) = (new, &message.attachment) {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO attachments
                 (server, channel_id, seq, blob_id, manifest, name, media_type, size,
                  thumbnail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                server,
                message.channel_id,
                message.seq as i64,
                file.blob_id.as_slice(),
                file.manifest.as_slice(),
                file.name,
                file.media_type,
                file.size as i64,
                file.thumbnail,
            ])?;
        }
        if let (1, ChatBody::Action(action)) = (new, &message.body) {
            apply(tx, server, message, action, is_admin)?;
        }
    }
    Ok(added)
}

/// What the rules need of a message acted on.
struct TargetRow {
    id: i64,
    author_key: Option<PublicKey>,
    posted_at_ms: u64,
    deleted: bool,
    body: Option<String>,
}

fn target_row(
    db: &Connection,
    server: &str,
    channel_id: u32,
    seq: u64,
) -> Result<Option<TargetRow>, ChatStoreError> {
    Ok(db
        .query_row(
            "SELECT id, author_key, posted_at, deleted, body FROM messages
             WHERE server = ?1 AND channel_id = ?2 AND seq = ?3 AND hidden = 0",
            params![server, channel_id, seq as i64],
            |row| {
                let key: Option<Vec<u8>> = row.get(1)?;
                Ok(TargetRow {
                    id: row.get(0)?,
                    author_key: key.and_then(|key| PublicKey::try_from(key.as_slice()).ok()),
                    posted_at_ms: row.get::<_, i64>(2)? as u64,
                    deleted: row.get(3)?,
                    body: row.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Applies an edit, deletion or reaction to its target, if the rules allow it.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    server: &str,
    message: &ChatMessage,
    action: &Action,
    is_admin: &dyn Fn(&PublicKey) -> bool,
) -> Result<(), ChatStoreError> {
    match (action, message.author) {
        (Action::HistorySharing { share }, Some(actor)) => {
            if is_admin(&actor) {
                tx.execute(
                    "INSERT INTO history_sharing (server, channel_id, share) VALUES (?1, ?2, ?3)
                     ON CONFLICT (server, channel_id) DO UPDATE SET share = excluded.share",
                    params![server, message.channel_id, share],
                )?;
            }
            return Ok(());
        }
        // Only keys given cover anyone.
        (Action::HistoryKeys { recipients, keys }, Some(_)) if !keys.0.is_empty() => {
            for recipient in recipients {
                tx.execute(
                    "INSERT OR IGNORE INTO history_recipients (server, channel_id, member_key)
                     VALUES (?1, ?2, ?3)",
                    params![server, message.channel_id, recipient.as_slice()],
                )?;
            }
            return Ok(());
        }
        _ => {}
    }
    if let (Action::Read { up_to }, Some(reader)) = (action, message.author) {
        // Never past the receipt itself, and never moving back.
        let up_to = (*up_to).min(message.seq);
        tx.execute(
            "INSERT INTO receipts (server, channel_id, reader_key, up_to) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (server, channel_id, reader_key)
             DO UPDATE SET up_to = max(up_to, excluded.up_to)",
            params![server, message.channel_id, reader.as_slice(), up_to as i64],
        )?;
        return Ok(());
    }
    let (Some(target_seq), Some(actor)) = (action.target(), message.author) else {
        return Ok(());
    };
    let Some(target) = target_row(tx, server, message.channel_id, target_seq)? else {
        return Ok(()); // Unknown, or one we could not read: nothing to change.
    };
    let facts = ActionFacts {
        actor_is_author: target.author_key == Some(actor),
        actor_is_admin: is_admin(&actor),
        target_posted_at_ms: target.posted_at_ms,
        action_posted_at_ms: message.posted_at_ms,
        target_deleted: target.deleted,
    };
    if permitted(action, &facts).is_err() {
        return Ok(()); // Every member refuses it alike.
    }
    let unindex = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
        if let Some(old) = &target.body {
            tx.execute(
                "INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', ?1, ?2)",
                params![target.id, old],
            )?;
        }
        Ok(())
    };
    match action {
        Action::Edit { text, .. } => {
            unindex(tx)?;
            tx.execute(
                "UPDATE messages SET body = ?1, edited = 1 WHERE id = ?2",
                params![text, target.id],
            )?;
            tx.execute(
                "INSERT INTO messages_fts (rowid, body) VALUES (?1, ?2)",
                params![target.id, text],
            )?;
        }
        Action::Delete { .. } => {
            unindex(tx)?;
            tx.execute(
                "UPDATE messages SET body = NULL, deleted = 1, pinned = 0 WHERE id = ?1",
                params![target.id],
            )?;
            tx.execute(
                "DELETE FROM reactions WHERE server = ?1 AND channel_id = ?2 AND seq = ?3",
                params![server, message.channel_id, target_seq as i64],
            )?;
            // The file goes with it, key and all.
            tx.execute(
                "DELETE FROM attachments WHERE server = ?1 AND channel_id = ?2 AND seq = ?3",
                params![server, message.channel_id, target_seq as i64],
            )?;
        }
        Action::Reaction { emoji, add, .. } => {
            let sql = if *add {
                "INSERT OR IGNORE INTO reactions (server, channel_id, seq, emoji, author_key)
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            } else {
                "DELETE FROM reactions WHERE server = ?1 AND channel_id = ?2 AND seq = ?3
                 AND emoji = ?4 AND author_key = ?5"
            };
            tx.execute(
                sql,
                params![
                    server,
                    message.channel_id,
                    target_seq as i64,
                    emoji,
                    actor.as_slice()
                ],
            )?;
        }
        Action::Pin { pin, .. } => {
            tx.execute(
                "UPDATE messages SET pinned = ?1 WHERE id = ?2",
                params![pin, target.id],
            )?;
        }
        Action::Text { .. }
        | Action::File { .. }
        | Action::Forward { .. }
        | Action::Read { .. }
        | Action::HistorySharing { .. }
        | Action::HistoryKeys { .. } => {}
    }
    Ok(())
}

/// Why an action is not possible on this device's copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// This device holds no such message (or could not read it).
    #[error("there is no message {0} here that you can read")]
    NoSuchMessage(u64),
    /// The rules say no.
    #[error(transparent)]
    Refused(Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ChatStoreError),
}

/// The FTS5 expression for what a person typed: every word must appear, each as the start of
/// a word; FTS5's own syntax is never passed through (so no input is a syntax error).
pub fn fts_expression(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\"*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel_id: u32, seq: u64, author_member: u32, text: Option<&str>) -> ChatMessage {
        let body = match text {
            Some(text) => ChatBody::Text(text.into()),
            None => ChatBody::Unreadable("sent before you joined".into()),
        };
        let posted_at_ms = 1_800_000_000_000 + seq * 1000;
        ChatMessage {
            author: Some([author_member as u8; 32]),
            sent_at_ms: Some(posted_at_ms),
            ..ChatMessage::new(channel_id, seq, author_member, posted_at_ms, body)
        }
    }

    fn nobody_is_admin(_: &PublicKey) -> bool {
        false
    }

    #[test]
    fn messages_are_kept_once_and_found_by_words_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
        let batch = [
            message(1, 1, 7, Some("The deploy is at noon")),
            message(1, 2, 8, Some("Déployé? the DEPLOY moved to 3pm")),
            message(2, 1, 7, Some("lunch at noon")),
            message(1, 3, 8, None),
        ];
        assert_eq!(store.insert("s", &batch, &nobody_is_admin).unwrap(), 4);
        assert_eq!(
            store.insert("s", &batch[..2], &nobody_is_admin).unwrap(),
            0,
            "nothing twice"
        );
        assert_eq!(store.last_seq("s", 1).unwrap(), 3);
        assert_eq!(store.last_seq("other", 1).unwrap(), 0);

        let found = |query: SearchQuery| -> Vec<(u32, u64)> {
            store
                .search("s", &SearchQuery { limit: 10, ..query })
                .unwrap()
                .iter()
                .map(|m| (m.channel_id, m.seq))
                .collect()
        };
        let words = |words: &str| SearchQuery {
            words: words.into(),
            ..SearchQuery::default()
        };
        assert_eq!(
            found(words("deploy")),
            [(1, 2), (1, 1)],
            "newest first, any case"
        );
        assert_eq!(found(words("déploy")), [(1, 2), (1, 1)], "accents folded");
        assert_eq!(found(words("dep noon")), [(1, 1)], "all words, as prefixes");
        assert_eq!(
            found(SearchQuery {
                channel_id: Some(2),
                ..words("noon")
            }),
            [(2, 1)]
        );
        assert_eq!(
            found(SearchQuery {
                author_member: Some(8),
                ..words("deploy")
            }),
            [(1, 2)]
        );
        assert_eq!(
            found(SearchQuery {
                since_ms: Some(1_800_000_001_500),
                ..words("deploy")
            }),
            [(1, 2)]
        );
        // FTS5 syntax typed by a person is just words.
        assert_eq!(found(words("\"deploy*")), [(1, 2), (1, 1)]);
        assert_eq!(found(words("(deploy) -")), [(1, 2), (1, 1)]);
        assert!(found(words("  ")).is_empty());

        let latest = store.latest("s", 1, 2).unwrap();
        assert_eq!(latest.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        assert!(matches!(latest[1].body, ChatBody::Unreadable(_)));
    }

    fn action(seq: u64, author_member: u32, after_ms: u64, action: Action) -> ChatMessage {
        ChatMessage {
            posted_at_ms: 1_800_000_001_000 + after_ms,
            sent_at_ms: Some(1_800_000_001_000 + after_ms),
            body: ChatBody::Action(action),
            ..message(1, seq, author_member, None)
        }
    }

    #[test]
    fn edits_deletions_and_reactions_apply_as_the_rules_say() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
        let admin = |key: &PublicKey| *key == [9; 32];
        let minute = 60_000;
        store
            .insert(
                "s",
                &[
                    message(1, 1, 7, Some("teh plan")),
                    message(1, 2, 8, Some("ok")),
                    message(1, 3, 7, Some("oops")),
                ],
                &admin,
            )
            .unwrap();
        let edit = |target, text: &str| Action::Edit {
            target,
            text: text.into(),
        };
        let react = |target, emoji: &str, add| Action::Reaction {
            target,
            emoji: emoji.into(),
            add,
        };
        store
            .insert(
                "s",
                &[
                    // Ada fixes her typo in time; Bob cannot edit her words; too late later.
                    action(4, 7, minute, edit(1, "the plan")),
                    action(5, 8, minute, edit(1, "bob was here")),
                    action(6, 7, 10 * minute, edit(1, "too late")),
                    // Reactions from two members, one taken back.
                    action(7, 8, minute, react(2, "👍", true)),
                    action(8, 7, minute, react(2, "👍", true)),
                    action(9, 7, minute, react(2, "🎉", true)),
                    action(10, 7, minute, react(2, "🎉", false)),
                    // Bob cannot delete Ada's message; an admin can, much later.
                    action(11, 8, minute, Action::Delete { target: 3 }),
                    action(12, 9, 600 * minute, Action::Delete { target: 3 }),
                ],
                &admin,
            )
            .unwrap();
        let latest = store.latest("s", 1, 10).unwrap();
        assert_eq!(latest.len(), 3, "actions are not listed");
        assert_eq!(latest[0].body, ChatBody::Text("the plan".into()));
        assert!(latest[0].edited);
        assert_eq!(latest[1].reactions, [("👍".to_owned(), 2)]);
        assert!(latest[2].deleted);
        assert_eq!(latest[2].body, ChatBody::Text(String::new()));
        // Search follows: the edited words are found, the old and the deleted ones not.
        let find = |words: &str| {
            store
                .search(
                    "s",
                    &SearchQuery {
                        words: words.into(),
                        limit: 10,
                        ..SearchQuery::default()
                    },
                )
                .unwrap()
                .len()
        };
        assert_eq!((find("the plan"), find("teh"), find("oops")), (1, 0, 0));
        // A member checks before acting, by the same rules.
        assert!(matches!(
            store.check("s", 1, &edit(2, "x"), &[7; 32], false, 1_800_000_003_000),
            Err(CheckError::Refused(Refusal::NotTheAuthor))
        ));
        assert!(matches!(
            store.check("s", 1, &Action::Delete { target: 40 }, &[7; 32], true, 0),
            Err(CheckError::NoSuchMessage(40))
        ));
    }

    fn reply(seq: u64, author_member: u32, to: u64, text: &str) -> ChatMessage {
        ChatMessage {
            reply_to: Some(to),
            ..message(1, seq, author_member, Some(text))
        }
    }

    #[test]
    fn threads_pins_read_markers_mentions_and_drafts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
        let admin = |key: &PublicKey| *key == [9; 32];
        let mut called = message(1, 4, 8, Some("@ada look"));
        called.mentions_me = true;
        store
            .insert(
                "s",
                &[
                    message(1, 1, 7, Some("root question")),
                    reply(2, 8, 1, "first answer"),
                    message(1, 3, 8, Some("unrelated")),
                    called,
                    reply(5, 7, 2, "answer to the answer"),
                ],
                &admin,
            )
            .unwrap();

        // A thread is the root and every reply down its chain, apart from the rest.
        let thread: Vec<u64> = store
            .thread("s", 1, 1)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(thread, [1, 2, 5]);
        let query = SearchQuery {
            in_thread: true,
            limit: 10,
            ..SearchQuery::default()
        };
        let in_threads: Vec<u64> = store
            .search("s", &query)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(in_threads, [5, 2, 1], "in:thread, newest first");

        // Admins pin; others' pins are ignored by everyone.
        store
            .insert(
                "s",
                &[
                    action(
                        6,
                        8,
                        0,
                        Action::Pin {
                            target: 3,
                            pin: true,
                        },
                    ),
                    action(
                        7,
                        9,
                        0,
                        Action::Pin {
                            target: 1,
                            pin: true,
                        },
                    ),
                ],
                &admin,
            )
            .unwrap();
        let pins: Vec<u64> = store.pins("s", 1).unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(pins, [1]);
        store
            .insert(
                "s",
                &[action(
                    8,
                    9,
                    0,
                    Action::Pin {
                        target: 1,
                        pin: false,
                    },
                )],
                &admin,
            )
            .unwrap();
        assert!(store.pins("s", 1).unwrap().is_empty());

        // Unread: others' visible messages after the marker; mentions among them.
        let me = [7u8; 32];
        assert_eq!(
            store.unread("s", 1, &me).unwrap(),
            Unread {
                messages: 3,
                mentions: 1
            }
        );
        store.mark_read("s", 1, 4).unwrap();
        store.mark_read("s", 1, 2).unwrap(); // never moves back
        assert_eq!(store.unread("s", 1, &me).unwrap(), Unread::default());
        assert_eq!(store.unread("s", 2, &me).unwrap(), Unread::default());

        // Drafts are kept per channel until sent (emptied).
        assert_eq!(store.draft("s", 1).unwrap(), None);
        store.set_draft("s", 1, "half a tho", 1).unwrap();
        store.set_draft("s", 1, "half a thought", 2).unwrap();
        assert_eq!(
            store.draft("s", 1).unwrap().as_deref(),
            Some("half a thought")
        );
        assert_eq!(store.draft("s", 2).unwrap(), None);
        store.set_draft("s", 1, "  ", 3).unwrap();
        assert_eq!(store.draft("s", 1).unwrap(), None);
    }

    #[test]
    fn read_receipts_are_owed_only_when_switched_on_and_never_answer_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChatStore::open(&dir.path().join("chat.db")).unwrap();
        let me = [7u8; 32];
        store
            .insert(
                "s",
                &[
                    message(1, 1, 7, Some("mine")),
                    message(1, 2, 8, Some("theirs")),
                ],
                &nobody_is_admin,
            )
            .unwrap();
        // Off by default.
        assert!(!store.sends_receipts("s", 1).unwrap());
        assert_eq!(store.receipt_due("s", 1, &me).unwrap(), None);
        store.set_sends_receipts("s", 1, true).unwrap();
        assert_eq!(store.receipt_due("s", 1, &me).unwrap(), Some(2));
        // Our receipt is applied like anyone's; then nothing is owed, even for their receipt.
        store
            .insert(
                "s",
                &[
                    action(3, 7, 0, Action::Read { up_to: 2 }),
                    action(4, 8, 0, Action::Read { up_to: 99 }),
                ],
                &nobody_is_admin,
            )
            .unwrap();
        assert_eq!(store.receipt_due("s", 1, &me).unwrap(), None);
        assert_eq!(
            store.receipts("s", 1).unwrap(),
            [([8; 32], 4), ([7; 32], 2)],
            "a receipt never claims more than was posted before it"
        );
        // Their next message is owed a receipt; switched off, none is.
        store
            .insert("s", &[message(1, 5, 8, Some("more"))], &nobody_is_admin)
            .unwrap();
        assert_eq!(store.receipt_due("s", 1, &me).unwrap(), Some(5));
        store.set_sends_receipts("s", 1, false).unwrap();
        assert_eq!(store.receipt_due("s", 1, &me).unwrap(), None);
        // A receipt is not an unread message.
        assert_eq!(store.unread("s", 1, &me).unwrap().messages, 2);
    }
}
