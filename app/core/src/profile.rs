//! The user's local profile: identity key and joined servers, in the platform data directory
//! (or `SOTTO_DATA_DIR`).
//!
//! The identity key lives in the OS keychain, or where none runs in `identity.key` with mode
//! 0600 (see the `keychain` module). Servers joined, with their invite links (which carry each
//! group's secret), live in `client.db` (SQLite, mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;

use crate::keychain::{self, KeyStore};
use crate::verification::VerifiedKey;

/// Why the profile could not be read or written. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// There is no home directory to keep a profile in.
    #[error("no home directory to keep the profile in; set SOTTO_DATA_DIR")]
    NoHome,
    /// A file or directory could not be created or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `creating`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The profile database failed.
    #[error("the profile database failed: {0}")]
    Database(#[from] rusqlite::Error),
    /// The identity key file cannot be read.
    #[error(
        "reading your identity key {} (it is missing or unreadable; restore it, or remove the \
         profile and join again): {source}", path.display()
    )]
    IdentityFileUnreadable {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The identity key file holds no valid key.
    #[error("{} is damaged; move it away to start a new identity", path.display())]
    IdentityFileDamaged {
        /// The key file.
        path: PathBuf,
    },
    /// The keychain no longer has the profile's key.
    #[error(
        "your identity key is missing from the OS keychain (entry \"{service}\" for {}); it was \
         deleted there, so this profile cannot sign in any more: remove {} and join again with a \
         new invite link", data_dir.display(), data_dir.display()
    )]
    KeychainEntryMissing {
        /// The keychain service name.
        service: &'static str,
        /// The profile directory.
        data_dir: PathBuf,
    },
    /// The keychain holding the key cannot be reached now.
    #[error(
        "cannot reach the OS keychain that holds your identity key ({0}); unlock it or start your \
         desktop session's keyring, then try again"
    )]
    KeychainUnreachable(String),
    /// The key in the keychain is not a valid key.
    #[error("the identity key in the OS keychain for {} is damaged", data_dir.display())]
    KeychainKeyDamaged {
        /// The profile directory.
        data_dir: PathBuf,
    },
    /// A newer client stored the key somewhere this one does not know.
    #[error(
        "this profile keeps its identity in \"{0}\", which this version of Sotto does not know; \
         update Sotto"
    )]
    UnknownKeyStore(String),
    /// A saved invite link does not parse.
    #[error("the saved link of {0} is damaged; join it again with a new invite link")]
    DamagedLink(String),
    /// No joined server has that name.
    #[error("you have not joined a server named \"{0}\"; `sotto servers` lists them")]
    NoSuchServer(String),
    /// No server joined yet.
    #[error("you have not joined a server yet; run `sotto join <invite link>` first")]
    NoServers,
}

/// Something worth telling the person about where their new identity key went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityNotice {
    /// A new key was created in the OS keychain.
    CreatedInKeychain,
    /// No keychain took it: the key is in a private file instead.
    CreatedInFile {
        /// Why the keychain did not take it.
        reason: String,
        /// The key file.
        path: PathBuf,
    },
}

impl std::fmt::Display for IdentityNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CreatedInKeychain => {
                write!(f, "note: created your identity key in the OS keychain")
            }
            Self::CreatedInFile { reason, path } => write!(
                f,
                "warning: {reason}; your identity key is in {} (mode 0600) instead",
                path.display()
            ),
        }
    }
}

/// A joined server as remembered locally.
#[derive(Debug, Clone)]
pub struct SavedServer {
    /// The server's name.
    pub name: String,
    /// The invite link it was joined with (it carries the group secret).
    pub link: InviteLink,
    /// The name we show there.
    pub display_name: String,
}

/// The local profile directory.
#[derive(Debug)]
pub struct Profile {
    dir: PathBuf,
    db: Connection,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let io = |source| ProfileError::Io {
        action: "creating",
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

fn read_identity_file(path: &Path) -> Result<Identity, ProfileError> {
    let bytes = fs::read(path).map_err(|source| ProfileError::IdentityFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    Identity::from_secret_bytes(&bytes).map_err(|_| ProfileError::IdentityFileDamaged {
        path: path.to_owned(),
    })
}

impl Profile {
    /// Opens (creating) the profile in `SOTTO_DATA_DIR` or the platform data directory.
    pub fn open() -> Result<Self, ProfileError> {
        let dir = match std::env::var_os("SOTTO_DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("org", "Sotto", "sotto")
                .map(|dirs| dirs.data_dir().to_owned())
                .ok_or(ProfileError::NoHome)?,
        };
        Self::open_at(dir)
    }

    /// Where the local copy of the messages this member could open lives (see
    /// [`crate::chat::store`]).
    pub fn chat_store_path(&self) -> PathBuf {
        self.dir.join("chat.db")
    }

    /// A private working directory for files being sent or fetched (sealed bytes only).
    pub fn transfers_dir(&self) -> PathBuf {
        self.dir.join("transfers")
    }

    /// Where the servers' encryption group state lives (sealed; see [`crate::group::store`]).
    pub fn group_store_path(&self) -> PathBuf {
        self.dir.join("group.db")
    }

    /// Opens (creating) the profile in `dir`.
    pub fn open_at(dir: PathBuf) -> Result<Self, ProfileError> {
        fs::create_dir_all(&dir).map_err(|source| ProfileError::Io {
            action: "creating",
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("client.db");
        if !path.exists() {
            write_private(&path, b"")?;
        }
        let db = Connection::open(&path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS servers (
                 name TEXT PRIMARY KEY,
                 link TEXT NOT NULL,
                 display_name TEXT NOT NULL,
                 joined_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS settings (
                 key TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS verified_keys (
                 public_key BLOB PRIMARY KEY CHECK (length(public_key) = 32),
                 verified_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS blocked_keys (
                 public_key BLOB PRIMARY KEY CHECK (length(public_key) = 32),
                 display_name TEXT NOT NULL,
                 blocked_at INTEGER NOT NULL
             );
             -- Links saved by older versions carried a secret after '#': drop it.
             UPDATE servers SET link = substr(link, 1, instr(link, '#') - 1)
             WHERE instr(link, '#') > 0;",
        )?;
        // Verified keys remember the name they had, so a key change under that name shows.
        let has_names: bool = db
            .prepare(
                "SELECT 1 FROM pragma_table_info('verified_keys') WHERE name = 'display_name'",
            )?
            .exists([])?;
        if !has_names {
            db.execute_batch(
                "ALTER TABLE verified_keys ADD COLUMN display_name TEXT NOT NULL DEFAULT ''",
            )?;
        }
        Ok(Self { dir, db })
    }

    /// The identity key, created on first use: in the OS keychain when one runs, else in a
    /// mode-0600 file; `notice` hears where a new key went.
    pub fn identity(&self, notice: impl FnOnce(IdentityNotice)) -> Result<Identity, ProfileError> {
        let path = self.dir.join("identity.key");
        let stored = self.setting("identity_store")?;
        match stored.as_deref().map(keychain::parse_stored).transpose()? {
            Some(KeyStore::Keychain) => keychain::load(&self.dir),
            Some(KeyStore::File) => read_identity_file(&path),
            // Profiles from before the keychain: the file is the key.
            None if path.exists() => {
                self.set_setting("identity_store", KeyStore::File.as_str())?;
                read_identity_file(&path)
            }
            None => self.create_identity(&path, notice),
        }
    }

    fn create_identity(
        &self,
        path: &Path,
        notice: impl FnOnce(IdentityNotice),
    ) -> Result<Identity, ProfileError> {
        let identity = Identity::generate();
        match keychain::store_new(&self.dir, &identity) {
            Ok(()) => {
                self.set_setting("identity_store", KeyStore::Keychain.as_str())?;
                notice(IdentityNotice::CreatedInKeychain);
            }
            Err(error) => {
                write_private(path, &identity.secret_bytes())?;
                self.set_setting("identity_store", KeyStore::File.as_str())?;
                notice(IdentityNotice::CreatedInFile {
                    reason: keychain::describe(&error),
                    path: path.to_owned(),
                });
            }
        }
        Ok(identity)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, ProfileError> {
        Ok(self
            .db
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), ProfileError> {
        self.db.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Remembers a joined server (its link without any secret: secrets never go to
    /// `client.db`).
    pub fn save_server(&self, server: &SavedServer) -> Result<(), ProfileError> {
        let link = sotto_net::invite::InviteLink {
            secret: None,
            ..server.link.clone()
        };
        self.db.execute(
            "INSERT INTO servers (name, link, display_name, joined_at) VALUES (?1, ?2, ?3, strftime('%s'))
             ON CONFLICT (name) DO UPDATE SET link = excluded.link, display_name = excluded.display_name",
            params![server.name, link.to_link(), server.display_name],
        )?;
        Ok(())
    }

    /// Forgets a joined server (after leaving it).
    pub fn forget_server(&self, name: &str) -> Result<(), ProfileError> {
        self.db
            .execute("DELETE FROM servers WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// Identity keys the user compared safety numbers with and confirmed, with the names they
    /// had then.
    pub fn verified_keys(&self) -> Result<Vec<VerifiedKey>, ProfileError> {
        self.named_keys("SELECT public_key, display_name FROM verified_keys")
    }

    /// Keys with names, as `sql` selects them (key, then name).
    fn named_keys(&self, sql: &str) -> Result<Vec<VerifiedKey>, ProfileError> {
        let mut statement = self.db.prepare(sql)?;
        let keys = statement
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
            })?
            .filter_map(|row| {
                let (key, display_name) = row.ok()?;
                Some(VerifiedKey {
                    public_key: key.try_into().ok()?,
                    display_name,
                })
            })
            .collect();
        Ok(keys)
    }

    /// Records that the user verified `key`'s safety number while it was called
    /// `display_name`; an earlier key verified under that name is forgotten (its change is
    /// settled).
    pub fn mark_verified(&self, key: &[u8; 32], display_name: &str) -> Result<(), ProfileError> {
        self.forget_verified_name(display_name)?;
        self.db.execute(
            "INSERT OR REPLACE INTO verified_keys (public_key, verified_at, display_name)
             VALUES (?1, strftime('%s'), ?2)",
            params![key.as_slice(), display_name],
        )?;
        Ok(())
    }

    /// Forgets the keys verified under `display_name` (the user accepts a key change without
    /// checking the new key).
    pub fn forget_verified_name(&self, display_name: &str) -> Result<(), ProfileError> {
        if !display_name.is_empty() {
            self.db.execute(
                "DELETE FROM verified_keys WHERE display_name = ?1",
                params![display_name],
            )?;
        }
        Ok(())
    }

    /// Blocks `key` (called `display_name` now): its messages are hidden and its voice
    /// silenced on this device. Nobody else is told.
    pub fn block(&self, key: &[u8; 32], display_name: &str) -> Result<(), ProfileError> {
        self.db.execute(
            "INSERT OR REPLACE INTO blocked_keys (public_key, display_name, blocked_at)
             VALUES (?1, ?2, strftime('%s'))",
            params![key.as_slice(), display_name],
        )?;
        Ok(())
    }

    /// Unblocks `key`; false if it was not blocked.
    pub fn unblock(&self, key: &[u8; 32]) -> Result<bool, ProfileError> {
        Ok(self.db.execute(
            "DELETE FROM blocked_keys WHERE public_key = ?1",
            params![key.as_slice()],
        )? > 0)
    }

    /// The blocked keys, with the names they had when blocked, oldest block first.
    pub fn blocked_keys(&self) -> Result<Vec<VerifiedKey>, ProfileError> {
        self.named_keys("SELECT public_key, display_name FROM blocked_keys ORDER BY blocked_at")
    }

    /// Every joined server, oldest first.
    pub fn servers(&self) -> Result<Vec<SavedServer>, ProfileError> {
        let mut statement = self
            .db
            .prepare("SELECT name, link, display_name FROM servers ORDER BY joined_at, name")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get(2)?,
            ))
        })?;
        rows.map(|row| {
            let (name, link, display_name) = row?;
            let Ok(link) = InviteLink::parse(&link) else {
                return Err(ProfileError::DamagedLink(name));
            };
            Ok(SavedServer {
                name,
                link,
                display_name,
            })
        })
        .collect()
    }

    /// The server named `name`, or the only/first one when `name` is none.
    pub fn server(&self, name: Option<&str>) -> Result<SavedServer, ProfileError> {
        let mut servers = self.servers()?.into_iter();
        match name {
            Some(name) => servers
                .find(|server| server.name == name)
                .ok_or_else(|| ProfileError::NoSuchServer(name.to_owned())),
            None => servers.next().ok_or(ProfileError::NoServers),
        }
    }
}
