//! The user's local profile: identity key and joined servers, in the platform data directory
//! (or `SOTTO_DATA_DIR`).
//!
//! The identity key lives in `identity.key` with mode 0600. Servers joined, with their invite
//! links (which carry each group's secret), live in `client.db` (SQLite, mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;

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
             );",
        )?;
        Ok(Self { dir, db })
    }

    /// The identity key, created on first use.
    pub(crate) fn identity(&self) -> Result<Identity> {
        let path = self.dir.join("identity.key");
        if path.exists() {
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            return Identity::from_secret_bytes(&bytes).with_context(|| {
                format!(
                    "{} is damaged; move it away to start a new identity",
                    path.display()
                )
            });
        }
        let identity = Identity::generate();
        write_private(&path, &identity.secret_bytes())?;
        eprintln!(
            "note: created your identity key in {} (mode 0600); keychain storage is not supported yet",
            path.display()
        );
        Ok(identity)
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
