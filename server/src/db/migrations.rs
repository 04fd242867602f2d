//! Versioned schema migrations, applied in order and tracked in `PRAGMA user_version`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::db::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    // 1: servers, channels, members, memberships, invites, settings.
    "CREATE TABLE servers (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL
     );
     CREATE TABLE channels (
         id INTEGER PRIMARY KEY,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         kind TEXT NOT NULL CHECK (kind IN ('text', 'voice')),
         position INTEGER NOT NULL,
         category TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE members (
         id INTEGER PRIMARY KEY,
         public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
         display_name TEXT NOT NULL,
         joined_at INTEGER NOT NULL
     );
     CREATE TABLE invites (
         id INTEGER PRIMARY KEY,
         token_hash BLOB NOT NULL UNIQUE,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         created_by INTEGER REFERENCES members (id),
         created_at INTEGER NOT NULL,
         expires_at INTEGER,
         max_uses INTEGER,
         uses INTEGER NOT NULL DEFAULT 0,
         role TEXT NOT NULL CHECK (role IN ('owner', 'member'))
     );
     CREATE TABLE memberships (
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
         invite_id INTEGER REFERENCES invites (id),
         PRIMARY KEY (member_id, server_id)
     );
     CREATE TABLE settings (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );",
    // 2: find a member's invites quickly, for the per-member invite limits.
    "CREATE INDEX invites_by_creator ON invites (created_by, created_at);",
    // 3: MLS delivery. Everything here is public MLS state or ciphertext: the relay holds no
    // key that decrypts anything. One row per epoch in mls_commits: the primary key is what
    // makes exactly one commit win each epoch.
    "ALTER TABLE invites ADD COLUMN grant BLOB;
     CREATE TABLE mls_groups (
         group_id BLOB PRIMARY KEY,
         server_id INTEGER NOT NULL UNIQUE REFERENCES servers (id) ON DELETE CASCADE,
         epoch INTEGER NOT NULL,
         state BLOB NOT NULL,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE mls_commits (
         group_id BLOB NOT NULL REFERENCES mls_groups (group_id) ON DELETE CASCADE,
         epoch INTEGER NOT NULL,
         committer INTEGER NOT NULL REFERENCES members (id),
         message BLOB NOT NULL,
         accepted_at INTEGER NOT NULL,
         PRIMARY KEY (group_id, epoch)
     );
     CREATE TABLE mls_proposals (
         group_id BLOB NOT NULL REFERENCES mls_groups (group_id) ON DELETE CASCADE,
         epoch INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         proposer BLOB NOT NULL,
         message BLOB NOT NULL,
         PRIMARY KEY (group_id, epoch, seq)
     );
     CREATE TABLE mls_welcomes (
         group_id BLOB NOT NULL REFERENCES mls_groups (group_id) ON DELETE CASCADE,
         member_key BLOB NOT NULL,
         epoch INTEGER NOT NULL,
         message BLOB NOT NULL,
         PRIMARY KEY (group_id, member_key)
     );
     CREATE TABLE mls_join_requests (
         group_id BLOB NOT NULL REFERENCES mls_groups (group_id) ON DELETE CASCADE,
         member_key BLOB NOT NULL,
         request BLOB NOT NULL,
         created_at INTEGER NOT NULL,
         PRIMARY KEY (group_id, member_key)
     );",
    // 4: members' KeyPackages, so others can add them to groups while they are offline.
    "CREATE TABLE key_packages (
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         reference BLOB NOT NULL,
         key_package BLOB NOT NULL,
         last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1)),
         uploaded_at INTEGER NOT NULL,
         PRIMARY KEY (member_id, reference)
     );
     CREATE INDEX key_packages_by_member ON key_packages (member_id, last_resort, uploaded_at);",
    // 5: text channels' messages, sealed: the relay stores envelopes it cannot open.
    "CREATE TABLE messages (
         channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
         seq INTEGER NOT NULL,
         message_id BLOB NOT NULL CHECK (length(message_id) = 16),
         author INTEGER NOT NULL REFERENCES members (id),
         posted_at INTEGER NOT NULL,
         envelope BLOB NOT NULL,
         PRIMARY KEY (channel_id, seq),
         UNIQUE (channel_id, message_id)
     );",
    // 6: sealed files, stored under the random ids their uploaders chose, and which messages
    // carry them. A file no message carries since `unreferenced_since` (Unix ms) is deleted once
    // the grace period has passed.
    "CREATE TABLE blobs (
         id BLOB PRIMARY KEY CHECK (length(id) = 16),
         uploader INTEGER NOT NULL REFERENCES members (id),
         sealed_len INTEGER NOT NULL CHECK (sealed_len >= 0),
         sealed_sha256 BLOB NOT NULL CHECK (length(sealed_sha256) = 32),
         complete INTEGER NOT NULL CHECK (complete IN (0, 1)),
         created_at INTEGER NOT NULL,
         unreferenced_since INTEGER NOT NULL
     );
     CREATE TABLE message_files (
         channel_id INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         blob_id BLOB NOT NULL REFERENCES blobs (id),
         PRIMARY KEY (channel_id, seq, blob_id),
         FOREIGN KEY (channel_id, seq) REFERENCES messages (channel_id, seq) ON DELETE CASCADE
     );
     CREATE INDEX message_files_by_blob ON message_files (blob_id);",
    // 7: channel topics.
    "ALTER TABLE channels ADD COLUMN topic TEXT NOT NULL DEFAULT '';",
    // 8: conversations (direct messages between a few members), each with its own MLS group.
    // A conversation's messages live in `messages` under a channel id that is not listed with
    // the server's channels. mls_groups is rebuilt: a server now has one group of its own and
    // one per conversation (foreign keys are off while migrations run).
    "ALTER TABLE channels ADD COLUMN conversation INTEGER NOT NULL DEFAULT 0
         CHECK (conversation IN (0, 1));
     CREATE TABLE conversations (
         channel_id INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
         group_id BLOB NOT NULL UNIQUE,
         creator INTEGER NOT NULL REFERENCES members (id),
         created_at INTEGER NOT NULL
     );
     CREATE TABLE conversation_members (
         channel_id INTEGER NOT NULL REFERENCES conversations (channel_id) ON DELETE CASCADE,
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         PRIMARY KEY (channel_id, member_id)
     );
     CREATE INDEX conversation_members_by_member ON conversation_members (member_id);
     CREATE TABLE mls_groups_v8 (
         group_id BLOB PRIMARY KEY,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         conversation_id INTEGER UNIQUE REFERENCES conversations (channel_id) ON DELETE CASCADE,
         epoch INTEGER NOT NULL,
         state BLOB NOT NULL,
         created_at INTEGER NOT NULL
     );
     INSERT INTO mls_groups_v8 (group_id, server_id, conversation_id, epoch, state, created_at)
         SELECT group_id, server_id, NULL, epoch, state, created_at FROM mls_groups;
     DROP TABLE mls_groups;
     ALTER TABLE mls_groups_v8 RENAME TO mls_groups;
     CREATE UNIQUE INDEX mls_groups_one_per_server ON mls_groups (server_id)
         WHERE conversation_id IS NULL;",
    // 9: roles and moderation. The built-in roles are seeded by `Store::open` for every
    // server (their permissions are code's defaults). Each change and its audit entry are one
    // transaction.
    "CREATE TABLE roles (
         id INTEGER PRIMARY KEY,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         permissions INTEGER NOT NULL,
         position INTEGER NOT NULL,
         builtin INTEGER NOT NULL CHECK (builtin IN (0, 1)),
         UNIQUE (server_id, name)
     );
     CREATE TABLE member_roles (
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
         PRIMARY KEY (member_id, role_id)
     );
     CREATE TABLE channel_overrides (
         channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
         role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
         allow INTEGER NOT NULL,
         deny INTEGER NOT NULL,
         PRIMARY KEY (channel_id, role_id)
     );
     ALTER TABLE channels ADD COLUMN slow_mode INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE slow_mode_posts (
         channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         last_at INTEGER NOT NULL,
         PRIMARY KEY (channel_id, member_id)
     );
     CREATE TABLE timeouts (
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         until INTEGER NOT NULL,
         PRIMARY KEY (server_id, member_id)
     );
     CREATE TABLE voice_mutes (
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
         muted INTEGER NOT NULL CHECK (muted IN (0, 1)),
         deafened INTEGER NOT NULL CHECK (deafened IN (0, 1)),
         PRIMARY KEY (server_id, member_id)
     );
     CREATE TABLE bans (
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         public_key BLOB NOT NULL CHECK (length(public_key) = 32),
         banned_by INTEGER REFERENCES members (id),
         reason TEXT NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (server_id, public_key)
     );
     CREATE TABLE audit_log (
         id INTEGER PRIMARY KEY,
         server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
         at INTEGER NOT NULL,
         actor INTEGER NOT NULL,
         actor_name TEXT NOT NULL,
         action INTEGER NOT NULL,
         target TEXT NOT NULL,
         detail TEXT NOT NULL
     );
     CREATE INDEX audit_log_by_server ON audit_log (server_id, id);",
];

/// Brings the schema up to date, one transaction per migration.
pub(crate) fn apply(connection: &mut Connection) -> Result<(), StoreError> {
    apply_up_to(connection, MIGRATIONS.len())
}

/// Brings the schema up to version `target` (tests start from older versions with it).
pub(crate) fn apply_up_to(connection: &mut Connection, target: usize) -> Result<(), StoreError> {
    let current: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    if current >= target as i64 {
        return Ok(());
    }
    // Off while tables are rebuilt (a dropped table must not take its rows' dependants with
    // it); every reference is checked before each migration commits.
    connection.pragma_update(None, "foreign_keys", false)?;
    let applied = (|| {
        for (index, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target)
            .skip(current as usize)
        {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(StoreError::BrokenMigration {
                    version: index as i64 + 1,
                    table,
                });
            }
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    })();
    connection.pragma_update(None, "foreign_keys", true)?;
    applied
}
