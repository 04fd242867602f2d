//! The member's own copy of the messages it could open, in SQLite with an FTS5 index: history
//! shows from here, and search never asks the relay.
//!
//! The file is the member's (mode 0600); it holds decrypted text, as any chat client's local
//! history does, so keep the device's disk encrypted.

use std::path::Path;

use rusqlite::{Connection, params};
use sotto_net::proto::control::PublicKey;

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
    /// At most this many results, newest first.
    pub limit: u32,
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
        db.execute_batch(
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
                 UNIQUE (server, channel_id, seq)
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
        )?;
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

    /// Keeps `messages` of `server` (those held already are left as they are); returns how
    /// many were new. One transaction.
    pub fn insert(
        &mut self,
        server: &str,
        messages: &[ChatMessage],
    ) -> Result<usize, ChatStoreError> {
        let tx = self.db.transaction()?;
        let mut added = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                     (server, channel_id, seq, author_member, author_key, sent_at, posted_at,
                      body, unreadable)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for message in messages {
                let (body, unreadable) = match &message.body {
                    ChatBody::Text(text) => (Some(text.as_str()), None),
                    ChatBody::Unreadable(why) => (None, Some(why.as_str())),
                };
                added += insert.execute(params![
                    server,
                    message.channel_id,
                    message.seq as i64,
                    message.author_member,
                    message.author.as_ref().map(|key| key.as_slice()),
                    message.sent_at_ms.map(|at| at as i64),
                    message.posted_at_ms as i64,
                    body,
                    unreadable,
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// The newest `limit` messages of a channel, oldest first.
    pub fn latest(
        &self,
        server: &str,
        channel_id: u32,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let mut statement = self.db.prepare_cached(
            "SELECT channel_id, seq, author_member, author_key, sent_at, posted_at, body,
                    unreadable
             FROM messages WHERE server = ?1 AND channel_id = ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let mut messages = statement
            .query_map(params![server, channel_id, limit], row_message)?
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Messages matching `query`, newest first.
    pub fn search(
        &self,
        server: &str,
        query: &SearchQuery,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let Some(expression) = fts_expression(&query.words) else {
            return Ok(Vec::new());
        };
        let mut statement = self.db.prepare_cached(
            "SELECT m.channel_id, m.seq, m.author_member, m.author_key, m.sent_at, m.posted_at,
                    m.body, m.unreadable
             FROM messages_fts f JOIN messages m ON m.id = f.rowid
             WHERE messages_fts MATCH ?1 AND m.server = ?2
               AND (?3 IS NULL OR m.channel_id = ?3)
               AND (?4 IS NULL OR m.author_member = ?4)
               AND (?5 IS NULL OR m.sent_at >= ?5)
               AND (?6 IS NULL OR m.sent_at < ?6)
             ORDER BY m.sent_at DESC LIMIT ?7",
        )?;
        let results = statement
            .query_map(
                params![
                    expression,
                    server,
                    query.channel_id,
                    query.author_member,
                    query.since_ms.map(|at| at as i64),
                    query.until_ms.map(|at| at as i64),
                    query.limit.max(1),
                ],
                row_message,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(results)
    }
}

fn row_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    let key: Option<Vec<u8>> = row.get(3)?;
    let body: Option<String> = row.get(6)?;
    let unreadable: Option<String> = row.get(7)?;
    Ok(ChatMessage {
        channel_id: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        author_member: row.get(2)?,
        author: key.and_then(|key| PublicKey::try_from(key.as_slice()).ok()),
        sent_at_ms: row.get::<_, Option<i64>>(4)?.map(|at| at as u64),
        posted_at_ms: row.get::<_, i64>(5)? as u64,
        body: match body {
            Some(text) => ChatBody::Text(text),
            None => ChatBody::Unreadable(unreadable.unwrap_or_default()),
        },
    })
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
        ChatMessage {
            channel_id,
            seq,
            author: Some([author_member as u8; 32]),
            author_member,
            sent_at_ms: Some(1_800_000_000_000 + seq * 1000),
            posted_at_ms: 1_800_000_000_000 + seq * 1000,
            body: match text {
                Some(text) => ChatBody::Text(text.into()),
                None => ChatBody::Unreadable("sent before you joined".into()),
            },
        }
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
        assert_eq!(store.insert("s", &batch).unwrap(), 4);
        assert_eq!(store.insert("s", &batch[..2]).unwrap(), 0, "nothing twice");
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
}
