//! Creating, changing and deleting a server's channels. Each change is one transaction; a
//! channel's messages (and their hold on files) go with it.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::ChannelKind;
use sotto_net::roles::AuditAction;

use super::{Store, StoreError, to_u32};

/// Why a channel change was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefusal {
    /// The channel does not exist.
    #[error("there is no such channel")]
    NoSuchChannel,
    /// Another channel of the same kind has the name.
    #[error("another channel of that kind already has that name; pick another")]
    NameTaken,
}

fn kind_text(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Voice => "voice",
        _ => "text",
    }
}

/// Whether a channel of `kind` other than `except` is called `name` (case folded).
fn name_taken(
    tx: &rusqlite::Transaction<'_>,
    server_id: u32,
    kind: &str,
    name: &str,
    except: Option<u32>,
) -> Result<bool, StoreError> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM channels WHERE server_id = ?1 AND kind = ?2
                        AND lower(name) = lower(?3) AND id IS NOT ?4
                        AND conversation = 0)",
        params![server_id, kind, name, except],
        |row| row.get(0),
    )?;
    Ok(taken)
}

/// Numbers the channels of `category` 0, 1, 2, … in their present order, `first` (if any)
/// placed at `at`.
fn renumber(
    tx: &rusqlite::Transaction<'_>,
    server_id: u32,
    category: &str,
    first: Option<(u32, u16)>,
) -> Result<(), StoreError> {
    let mut ids: Vec<u32> = {
        let mut statement = tx.prepare(
            "SELECT id FROM channels WHERE server_id = ?1 AND category = ?2 AND conversation = 0
             ORDER BY position, id",
        )?;
        statement
            .query_map(params![server_id, category], |row| row.get::<_, i64>(0))?
            .map(|id| to_u32(id?, "channel id"))
            .collect::<Result<_, _>>()?
    };
    if let Some((moved, at)) = first {
        ids.retain(|id| *id != moved);
        ids.insert(usize::from(at).min(ids.len()), moved);
    }
    for (position, id) in ids.iter().enumerate() {
        tx.execute(
            "UPDATE channels SET position = ?1 WHERE id = ?2",
            params![position as i64, id],
        )?;
    }
    Ok(())
}

/// A fresh channel id, recorded as the last one handed out. Ids are never reused: clients
/// keep a deleted channel's messages under its id.
pub(super) fn next_channel_id(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    let id: i64 = tx.query_row(
        "SELECT max(coalesce((SELECT max(id) FROM channels), 0),
                    coalesce((SELECT CAST(value AS INTEGER) FROM settings
                              WHERE key = 'last_channel_id'), 0)) + 1",
        [],
        |row| row.get(0),
    )?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('last_channel_id', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [id.to_string()],
    )?;
    Ok(id)
}

/// Who makes a change, and when: the change's audit entry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting {
    /// The member.
    pub member_id: u32,
    /// Now, in Unix seconds.
    pub now_unix: u64,
}

impl Acting {
    fn record(
        self,
        tx: &rusqlite::Connection,
        server_id: u32,
        action: AuditAction,
        target: &str,
    ) -> Result<(), StoreError> {
        super::roles::record(
            tx,
            server_id,
            self.member_id,
            action,
            target,
            "",
            self.now_unix,
        )
    }
}

impl Store {
    /// Adds a channel at the end of its category, unless a channel of its kind has its name.
    pub fn add_channel(
        &self,
        server_id: u32,
        name: &str,
        kind: ChannelKind,
        category: &str,
        topic: &str,
        acting: Acting,
    ) -> Result<Result<u32, ChannelRefusal>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if name_taken(&tx, server_id, kind_text(kind), name, None)? {
                return Ok(Err(ChannelRefusal::NameTaken));
            }
            let position: i64 = tx.query_row(
                "SELECT coalesce(max(position) + 1, 0) FROM channels
                 WHERE server_id = ?1 AND category = ?2 AND conversation = 0",
                params![server_id, category],
                |row| row.get(0),
            )?;
            let id = next_channel_id(&tx)?;
            tx.execute(
                "INSERT INTO channels (id, server_id, name, kind, position, category, topic)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    server_id,
                    name,
                    kind_text(kind),
                    position,
                    category,
                    topic
                ],
            )?;
            let id = to_u32(id, "channel id")?;
            acting.record(
                &tx,
                server_id,
                AuditAction::ChannelCreated,
                &format!("#{name}"),
            )?;
            tx.commit()?;
            Ok(Ok(id))
        })
    }

    /// Renames, moves or re-topics a channel.
    #[allow(clippy::too_many_arguments)]
    pub fn update_channel(
        &self,
        server_id: u32,
        channel_id: u32,
        name: &str,
        category: &str,
        topic: &str,
        position: u16,
        acting: Acting,
    ) -> Result<Result<(), ChannelRefusal>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT kind, category FROM channels
                     WHERE id = ?1 AND server_id = ?2 AND conversation = 0",
                    params![channel_id, server_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((kind, old_category)) = found else {
                return Ok(Err(ChannelRefusal::NoSuchChannel));
            };
            if name_taken(&tx, server_id, &kind, name, Some(channel_id))? {
                return Ok(Err(ChannelRefusal::NameTaken));
            }
            tx.execute(
                "UPDATE channels SET name = ?1, category = ?2, topic = ?3 WHERE id = ?4",
                params![name, category, topic, channel_id],
            )?;
            renumber(&tx, server_id, category, Some((channel_id, position)))?;
            if old_category != category {
                renumber(&tx, server_id, &old_category, None)?;
            }
            acting.record(
                &tx,
                server_id,
                AuditAction::ChannelUpdated,
                &format!("#{name}"),
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Deletes a channel and its messages; false if there was none.
    pub fn delete_channel(
        &self,
        server_id: u32,
        channel_id: u32,
        acting: Acting,
    ) -> Result<bool, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT category, name FROM channels
                     WHERE id = ?1 AND server_id = ?2 AND conversation = 0",
                    params![channel_id, server_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((category, name)) = found else {
                return Ok(false);
            };
            acting.record(
                &tx,
                server_id,
                AuditAction::ChannelDeleted,
                &format!("#{name}"),
            )?;
            tx.execute("DELETE FROM channels WHERE id = ?1", params![channel_id])?;
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ('last_channel_id', ?1)
                 ON CONFLICT (key) DO UPDATE
                 SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                [channel_id.to_string()],
            )?;
            renumber(&tx, server_id, &category, None)?;
            tx.commit()?;
            Ok(true)
        })
    }
}
