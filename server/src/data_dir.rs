//! The relay's data directory: the database, and the TLS certificate whose fingerprint invite
//! links pin.
//!
//! ```text
//! DIR/relay.db          SQLite database (WAL: also relay.db-wal, relay.db-shm)
//! DIR/relay-cert.der    self-signed certificate
//! DIR/relay-key.der     its private key, mode 0600
//! DIR/relay-reset.key   QUIC stateless-reset secret, mode 0600 (kept so clients of a
//!                       restarted relay learn at once that their old connection is gone)
//! DIR/blobs/            shared files, sealed by their senders (see `crate::blob_files`)
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sotto_net::group::InviteSecret;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::InviteToken;
use sotto_net::transport::{RelayCertificate, generate_certificate};

use crate::db::{InviteTerms, Role, Store, StoreError};

const DATABASE: &str = "relay.db";
const CERTIFICATE: &str = "relay-cert.der";
const PRIVATE_KEY: &str = "relay-key.der";
const RESET_KEY: &str = "relay-reset.key";
/// Setting holding the `host:port` that invite links point at.
pub const PUBLIC_ADDRESS_SETTING: &str = "public_address";

/// Why the data directory could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory was already initialised.
    #[error("{0} already holds a relay; serve it with `sotto-relay serve --data {0}`")]
    AlreadyInitialized(PathBuf),
    /// The directory was never initialised.
    #[error("{0} holds no relay yet; create one with `sotto-relay init --data {0}`")]
    NotInitialized(PathBuf),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] sotto_net::transport::ConfigError),
}

/// What `init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The server's name.
    pub server_name: String,
    /// The `host:port` clients reach the relay at, printed in invite links.
    pub public_address: String,
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    /// A single-use link that makes its first user the server's owner. It carries a fresh group
    /// secret that the relay did not store.
    pub owner_link: InviteLink,
}

/// An opened data directory.
#[derive(Debug)]
pub struct OpenedDataDir {
    /// The database.
    pub store: Store,
    /// The TLS certificate and key.
    pub certificate: RelayCertificate,
    /// The QUIC stateless-reset secret.
    pub reset_secret: Vec<u8>,
}

/// A relay data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> DataDirError + use<> {
    let path = path.to_owned();
    move |source| DataDirError::Io {
        action,
        path,
        source,
    }
}

impl DataDir {
    /// The directory at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.root.join(DATABASE)
    }

    /// Whether `init` has run here.
    pub fn is_initialized(&self) -> bool {
        self.database_path().exists()
            && self.root.join(CERTIFICATE).exists()
            && self.root.join(PRIVATE_KEY).exists()
    }

    /// Creates the database, certificate, default server and an owner invite.
    pub fn initialize(&self, options: &InitOptions) -> Result<InitReport, DataDirError> {
        if self.is_initialized() {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        fs::create_dir_all(&self.root).map_err(io_error("cannot create", &self.root))?;
        let certificate = generate_certificate()?;
        write_private(&self.root.join(PRIVATE_KEY), &certificate.private_key_der)?;
        write_private(&self.root.join(RESET_KEY), &rand::random::<[u8; 32]>())?;
        let certificate_path = self.root.join(CERTIFICATE);
        fs::write(&certificate_path, &certificate.certificate_der)
            .map_err(io_error("cannot write", &certificate_path))?;
        let store = Store::open(&self.database_path())?;
        let server = store.ensure_default_server(&options.server_name)?;
        store.set_setting(PUBLIC_ADDRESS_SETTING, &options.public_address)?;
        let terms = InviteTerms {
            expires_at: None,
            max_uses: Some(1),
            role: Role::Owner,
        };
        let token = store.create_invite(server.id, None, terms, unix_now())?;
        let owner_link = self.invite_link(&store, &certificate, token, None)?;
        Ok(InitReport { owner_link })
    }

    /// Opens the database and loads the certificate and reset secret (creating the latter if
    /// an older data directory lacks it).
    pub fn open(&self) -> Result<OpenedDataDir, DataDirError> {
        if !self.is_initialized() {
            return Err(DataDirError::NotInitialized(self.root.clone()));
        }
        let read = |name: &str| {
            let path = self.root.join(name);
            fs::read(&path).map_err(|source| DataDirError::Io {
                action: "cannot read",
                path,
                source,
            })
        };
        let certificate = RelayCertificate {
            certificate_der: read(CERTIFICATE)?,
            private_key_der: read(PRIVATE_KEY)?,
        };
        let reset_path = self.root.join(RESET_KEY);
        if !reset_path.exists() {
            write_private(&reset_path, &rand::random::<[u8; 32]>())?;
        }
        Ok(OpenedDataDir {
            store: Store::open(&self.database_path())?,
            certificate,
            reset_secret: read(RESET_KEY)?,
        })
    }

    /// A link for `token`, pointing at the stored public address and pinning `certificate`.
    pub fn invite_link(
        &self,
        store: &Store,
        certificate: &RelayCertificate,
        token: InviteToken,
        secret: Option<InviteSecret>,
    ) -> Result<InviteLink, DataDirError> {
        let address = store
            .setting(PUBLIC_ADDRESS_SETTING)?
            .unwrap_or_else(|| "127.0.0.1:7878".to_owned());
        let (host, port) = address
            .rsplit_once(':')
            .ok_or(StoreError::Corrupt("public address"))?;
        Ok(InviteLink {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port
                .parse()
                .map_err(|_| StoreError::Corrupt("public address"))?,
            token,
            fingerprint: certificate.fingerprint(),
            secret,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(io_error("cannot create", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot write", path))
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
