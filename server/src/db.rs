//! The relay's durable state in SQLite: servers, channels, members, memberships, invites.
//!
//! The database runs in WAL mode with `synchronous = FULL`, and every write the relay
//! acknowledges to a client is committed before the acknowledgement is sent, so a `kill -9`
//! (or a power cut) never loses it. Invite tokens are stored only as SHA-256 hashes.

mod blobs;
mod channels;
mod conversations;
mod groups;
mod key_packages;
mod messages;
mod migrations;
mod moderation;
mod roles;

pub use blobs::{BlobRecord, UploadStart};
pub use channels::{Acting, ChannelRefusal};
pub use conversations::{
    ConversationRefusal, MAX_CONVERSATIONS_OPENED, MAX_CONVERSATIONS_PER_MEMBER, NewConversation,
    StoredConversation,
};
pub use groups::{AcceptCommit, CommitOutcome, StoredGroup};
pub use key_packages::{KeyPackageCount, MAX_STORED_KEY_PACKAGES, NewKeyPackage};
pub use messages::{PostExtras, PostOutcome};
pub use moderation::{MAX_TIMEOUT_SECS, Moderated};
pub use roles::{MAX_ROLE_NAME_CHARS, MAX_SLOW_MODE_SECS, Refused};

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use sotto_net::proto::control::{ChannelInfo, ChannelKind, InviteToken, PublicKey, ServerInfo};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer relay.
    #[error(
        "the database is at schema version {found}, newer than this relay's {supported}; upgrade sotto-relay"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The data directory has no server yet.
    #[error("the database has no server; run `sotto-relay init` first")]
    NoServer,
    /// A stored value is out of range.
    #[error("the database holds an invalid {0}; it may be damaged")]
    Corrupt(&'static str),
    /// A schema migration left a reference that points nowhere (nothing was changed).
    #[error(
        "upgrading the database to schema version {version} would break references in table {table}; it may be damaged"
    )]
    BrokenMigration {
        /// The version it was moving to.
        version: i64,
        /// A table with a broken reference.
        table: String,
    },
}

/// Why a key was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// Not a member, and no invite presented.
    #[error("this key is not a member of the server; join with an invite link")]
    NotAMember,
    /// The invite token is unknown.
    #[error("the invite is not valid for this relay; ask for a new invite link")]
    UnknownInvite,
    /// The invite has expired.
    #[error("the invite has expired; ask for a new invite link")]
    Expired,
    /// The invite has no uses left.
    #[error("the invite has been used up; ask for a new invite link")]
    UsedUp,
    /// The key is banned from the server.
    #[error("this identity is banned from the server; an invite cannot bring it back")]
    Banned,
}

/// Why a member may not create another invite now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteLimitError {
    /// The member holds as many active invites as allowed.
    #[error(
        "you already have {0} active invites, the most allowed; wait until some expire or are used up"
    )]
    TooManyActive(u32),
    /// The member created as many invites in the last hour as allowed.
    #[error("you created {0} invites in the last hour, the most allowed; try again later")]
    TooManyPerHour(u32),
}

/// How many invites one member may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    /// Most active (unexpired, not used up) invites at once.
    pub max_active: u32,
    /// Most created in the last hour.
    pub per_hour: u32,
}

/// A member's role on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Created the server; may do everything.
    Owner,
    /// An ordinary member.
    Member,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            _ => Err(StoreError::Corrupt("role")),
        }
    }
}

/// A member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Identifier.
    pub id: u32,
    /// Identity key.
    pub public_key: PublicKey,
    /// Last display name the member connected with.
    pub display_name: String,
    /// Role on the server.
    pub role: Role,
}

/// A new invite's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteTerms {
    /// Seconds since the Unix epoch after which it no longer admits; none for never.
    pub expires_at: Option<u64>,
    /// How many members it may admit; none for unlimited.
    pub max_uses: Option<u32>,
    /// The role new members get.
    pub role: Role,
}

/// The relay's database.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
}

/// An invite as read for admission: id, expiry, max uses, uses, role.
type InviteRow = (i64, Option<i64>, Option<i64>, i64, String);

fn token_hash(token: &InviteToken) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn insert_invite(
    connection: &Connection,
    token: &InviteToken,
    server_id: u32,
    created_by: Option<u32>,
    terms: InviteTerms,
    grant: Option<&[u8]>,
    now_unix: u64,
) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO invites (token_hash, server_id, created_by, created_at, expires_at, max_uses, uses, role, grant)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)",
        params![
            token_hash(token).as_slice(),
            server_id,
            created_by,
            now_unix as i64,
            terms.expires_at.map(|at| at as i64),
            terms.max_uses,
            terms.role.as_str(),
            grant
        ],
    )?;
    Ok(())
}

fn to_u32(value: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(what))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::apply(&mut connection)?;
        let servers: Vec<i64> = connection
            .prepare("SELECT id FROM servers")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for server in servers {
            roles::seed_builtin_roles(&connection, server)?;
        }
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection)
    }

    /// Creates a server with a `general` text channel and a `voice` voice channel, unless one
    /// exists. Returns the server.
    pub fn ensure_default_server(&self, name: &str) -> Result<ServerInfo, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<(i64, String)> = tx
                .query_row("SELECT id, name FROM servers ORDER BY id LIMIT 1", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let server = match existing {
                Some((id, name)) => ServerInfo { id: to_u32(id, "server id")?, name },
                None => {
                    tx.execute("INSERT INTO servers (name) VALUES (?1)", [name])?;
                    let id = tx.last_insert_rowid();
                    for (position, (channel, kind, category)) in
                        [("general", "text", "Text channels"), ("voice", "voice", "Voice channels")].iter().enumerate()
                    {
                        tx.execute(
                            "INSERT INTO channels (server_id, name, kind, position, category) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![id, channel, kind, position as i64, category],
                        )?;
                    }
                    roles::seed_builtin_roles(&tx, id)?;
                    ServerInfo { id: to_u32(id, "server id")?, name: name.to_owned() }
                }
            };
            tx.commit()?;
            Ok(server)
        })
    }

    /// The relay's server (the first one).
    pub fn default_server(&self) -> Result<ServerInfo, StoreError> {
        self.with(|connection| {
            let row: Option<(i64, String)> = connection
                .query_row(
                    "SELECT id, name FROM servers ORDER BY id LIMIT 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let (id, name) = row.ok_or(StoreError::NoServer)?;
            Ok(ServerInfo {
                id: to_u32(id, "server id")?,
                name,
            })
        })
    }

    /// The server's channels, by category then position.
    pub fn channels(&self, server_id: u32) -> Result<Vec<ChannelInfo>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, name, kind, position, category, topic FROM channels
                 WHERE server_id = ?1 AND conversation = 0
                 ORDER BY category, position, id",
            )?;
            let rows = statement.query_map([server_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, name, kind, position, category, topic) = row?;
                Ok(ChannelInfo {
                    id: to_u32(id, "channel id")?,
                    name,
                    kind: match kind.as_str() {
                        "text" => ChannelKind::Text,
                        "voice" => ChannelKind::Voice,
                        _ => return Err(StoreError::Corrupt("channel kind")),
                    },
                    position: u16::try_from(position)
                        .map_err(|_| StoreError::Corrupt("channel position"))?,
                    category,
                    topic,
                })
            })
            .collect()
        })
    }

    /// Adds a channel at the end of `server_id`'s list.
    pub fn create_channel(
        &self,
        server_id: u32,
        name: &str,
        kind: ChannelKind,
        category: &str,
    ) -> Result<ChannelInfo, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let position: i64 = tx.query_row(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM channels
                 WHERE server_id = ?1 AND conversation = 0",
                [server_id],
                |row| row.get(0),
            )?;
            let kind_text = match kind {
                ChannelKind::Voice => "voice",
                _ => "text",
            };
            tx.execute(
                "INSERT INTO channels (server_id, name, kind, position, category) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![server_id, name, kind_text, position, category],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(ChannelInfo {
                id: to_u32(id, "channel id")?,
                name: name.to_owned(),
                kind,
                position: u16::try_from(position).map_err(|_| StoreError::Corrupt("channel position"))?,
                category: category.to_owned(),
                topic: String::new(),
            })
        })
    }

    /// Admits `public_key`: an existing member is let in (and its display name updated); a new
    /// key needs a valid invite, whose use is counted in the same transaction.
    pub fn admit(
        &self,
        server_id: u32,
        public_key: &PublicKey,
        display_name: &str,
        invite: Option<&InviteToken>,
        now_unix: u64,
    ) -> Result<Result<Member, AdmissionError>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if moderation::is_banned(&tx, server_id, public_key)? {
                return Ok(Err(AdmissionError::Banned));
            }
            let existing: Option<(i64, String)> = tx
                .query_row(
                    "SELECT m.id, ms.role FROM members m JOIN memberships ms ON ms.member_id = m.id
                     WHERE m.public_key = ?1 AND ms.server_id = ?2",
                    params![public_key.as_slice(), server_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, role)) = existing {
                tx.execute("UPDATE members SET display_name = ?1 WHERE id = ?2", params![display_name, id])?;
                tx.commit()?;
                return Ok(Ok(Member {
                    id: to_u32(id, "member id")?,
                    public_key: *public_key,
                    display_name: display_name.to_owned(),
                    role: Role::parse(&role)?,
                }));
            }
            let Some(token) = invite else { return Ok(Err(AdmissionError::NotAMember)) };
            let hash = token_hash(token);
            let row: Option<InviteRow> = tx
                .query_row(
                    "SELECT id, expires_at, max_uses, uses, role FROM invites WHERE token_hash = ?1 AND server_id = ?2",
                    params![hash.as_slice(), server_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .optional()?;
            let Some((invite_id, expires_at, max_uses, uses, role)) = row else {
                return Ok(Err(AdmissionError::UnknownInvite));
            };
            if expires_at.is_some_and(|at| at <= now_unix as i64) {
                return Ok(Err(AdmissionError::Expired));
            }
            if max_uses.is_some_and(|max| uses >= max) {
                return Ok(Err(AdmissionError::UsedUp));
            }
            tx.execute("UPDATE invites SET uses = uses + 1 WHERE id = ?1", [invite_id])?;
            tx.execute(
                "INSERT INTO members (public_key, display_name, joined_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (public_key) DO UPDATE SET display_name = excluded.display_name",
                params![public_key.as_slice(), display_name, now_unix as i64],
            )?;
            let member_id: i64 =
                tx.query_row("SELECT id FROM members WHERE public_key = ?1", [public_key.as_slice()], |row| row.get(0))?;
            tx.execute(
                "INSERT INTO memberships (member_id, server_id, role, invite_id) VALUES (?1, ?2, ?3, ?4)",
                params![member_id, server_id, role, invite_id],
            )?;
            tx.commit()?;
            Ok(Ok(Member {
                id: to_u32(member_id, "member id")?,
                public_key: *public_key,
                display_name: display_name.to_owned(),
                role: Role::parse(&role)?,
            }))
        })
    }

    /// Stores a new invite for `server_id` and returns its token (only its hash is kept).
    pub fn create_invite(
        &self,
        server_id: u32,
        created_by: Option<u32>,
        terms: InviteTerms,
        now_unix: u64,
    ) -> Result<InviteToken, StoreError> {
        let token: InviteToken = rand::random();
        self.with(|connection| {
            insert_invite(
                connection, &token, server_id, created_by, terms, None, now_unix,
            )?;
            Ok(token)
        })
    }

    /// Stores a new invite made by member `created_by`, unless that member is over `limits`;
    /// the check and the insert are one transaction, so concurrent requests cannot both slip
    /// under a limit.
    pub fn create_member_invite(
        &self,
        server_id: u32,
        created_by: u32,
        terms: InviteTerms,
        limits: InviteLimits,
        grant: Option<&[u8]>,
        now_unix: u64,
    ) -> Result<Result<InviteToken, InviteLimitError>, StoreError> {
        let token: InviteToken = rand::random();
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_unix as i64;
            let (active, last_hour): (i64, i64) = tx.query_row(
                "SELECT
                     COALESCE(SUM((expires_at IS NULL OR expires_at > ?2)
                                  AND (max_uses IS NULL OR uses < max_uses)), 0),
                     COALESCE(SUM(created_at > ?2 - 3600), 0)
                 FROM invites WHERE created_by = ?1 AND server_id = ?3",
                params![created_by, now, server_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if active >= i64::from(limits.max_active) {
                return Ok(Err(InviteLimitError::TooManyActive(limits.max_active)));
            }
            if last_hour >= i64::from(limits.per_hour) {
                return Ok(Err(InviteLimitError::TooManyPerHour(limits.per_hour)));
            }
            insert_invite(
                &tx,
                &token,
                server_id,
                Some(created_by),
                terms,
                grant,
                now_unix,
            )?;
            tx.commit()?;
            Ok(Ok(token))
        })
    }

    /// Every member of `server_id`.
    pub fn members(&self, server_id: u32) -> Result<Vec<Member>, StoreError> {
        self.members_after(server_id, 0, u32::MAX)
    }

    /// Up to `limit` members of a server with ids above `after`, by id (a page of the list).
    pub fn members_after(
        &self,
        server_id: u32,
        after: u32,
        limit: u32,
    ) -> Result<Vec<Member>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT m.id, m.public_key, m.display_name, ms.role FROM members m
                 JOIN memberships ms ON ms.member_id = m.id
                 WHERE ms.server_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3",
            )?;
            let rows = statement.query_map(params![server_id, after, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (id, key, display_name, role) = row?;
                Ok(Member {
                    id: to_u32(id, "member id")?,
                    public_key: key
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("public key"))?,
                    display_name,
                    role: Role::parse(&role)?,
                })
            })
            .collect()
        })
    }

    /// A relay setting, e.g. the public address printed in invite links.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|connection| {
            Ok(connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    /// Sets a relay setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
