//! The user's local profile: identity key and joined servers, in the platform data directory
//! (or `SOTTO_DATA_DIR`).
//!
//! The identity key lives in the OS keychain, or where none runs in `identity.key` with mode
//! 0600 (see [`crate::keychain`]). Servers joined, with their invite links (which carry each
//! group's secret), live in `client.db` (SQLite, mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;

use crate::keychain::{self, KeyStore};

/// A joined server as remembered locally.
#[derive(Debug, Clone)]
pub(crate) struct SavedServer {
    pub(crate) name: String,
    pub(crate) link: InviteLink,
    pub(crate) display_name: String,
}

/// The local profile directory.
pub(crate) struct Profile {
    dir: PathBuf,
    db: Connection,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn read_identity_file(path: &Path) -> Result<Identity> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "reading your identity key {} (it is missing or unreadable; restore it, or remove \
             the profile and join again)",
            path.display()
        )
    })?;
    Identity::from_secret_bytes(&bytes).with_context(|| {
        format!(
            "{} is damaged; move it away to start a new identity",
            path.display()
        )
    })
}

impl Profile {
    /// Opens (creating) the profile in `SOTTO_DATA_DIR` or the platform data directory.
    pub(crate) fn open() -> Result<Self> {
        let dir = match std::env::var_os("SOTTO_DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("org", "Sotto", "sotto")
                .map(|dirs| dirs.data_dir().to_owned())
                .context("no home directory to keep the profile in; set SOTTO_DATA_DIR")?,
        };
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("client.db");
        if !path.exists() {
            write_private(&path, b"")?;
        }
        let db = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
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
             );",
        )?;
        Ok(Self { dir, db })
    }

    /// The identity key, created on first use: in the OS keychain when one runs, else in a
    /// mode-0600 file with a one-line warning.
    pub(crate) fn identity(&self) -> Result<Identity> {
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
            None => self.create_identity(&path),
        }
    }

    fn create_identity(&self, path: &Path) -> Result<Identity> {
        let identity = Identity::generate();
        match keychain::store_new(&self.dir, &identity) {
            Ok(()) => {
                self.set_setting("identity_store", KeyStore::Keychain.as_str())?;
                eprintln!("note: created your identity key in the OS keychain");
            }
            Err(error) => {
                write_private(path, &identity.secret_bytes())?;
                self.set_setting("identity_store", KeyStore::File.as_str())?;
                eprintln!(
                    "warning: {}; your identity key is in {} (mode 0600) instead",
                    keychain::describe(&error),
                    path.display()
                );
            }
        }
        Ok(identity)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Remembers a joined server.
    pub(crate) fn save_server(&self, server: &SavedServer) -> Result<()> {
        self.db.execute(
            "INSERT INTO servers (name, link, display_name, joined_at) VALUES (?1, ?2, ?3, strftime('%s'))
             ON CONFLICT (name) DO UPDATE SET link = excluded.link, display_name = excluded.display_name",
            params![server.name, server.link.to_link(), server.display_name],
        )?;
        Ok(())
    }

    /// Every joined server, oldest first.
    pub(crate) fn servers(&self) -> Result<Vec<SavedServer>> {
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
            let link = InviteLink::parse(&link)
                .with_context(|| format!("the saved link of {name} is damaged"))?;
            Ok(SavedServer {
                name,
                link,
                display_name,
            })
        })
        .collect()
    }

    /// The server named `name`, or the only/first one when `name` is none.
    pub(crate) fn server(&self, name: Option<&str>) -> Result<SavedServer> {
        match name {
            Some(name) => {
                let found: Option<String> = self
                    .db
                    .query_row("SELECT name FROM servers WHERE name = ?1", [name], |row| {
                        row.get(0)
                    })
                    .optional()?;
                if found.is_none() {
                    bail!(
                        "you have not joined a server named \"{name}\"; `sotto servers` lists them"
                    );
                }
                self.servers()?
                    .into_iter()
                    .find(|server| server.name == name)
                    .context("server vanished")
            }
            None => {
                self.servers()?.into_iter().next().context(
                    "you have not joined a server yet; run `sotto join <invite link>` first",
                )
            }
        }
    }
}
