//! Where the identity key is kept: the OS keychain (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows) through `keyring`, or, where no keychain service is running
//! (a headless box, CI), a mode-0600 file in the data directory.
//!
//! The profile remembers which one holds the key, so a keychain that is merely unreachable
//! today (a headless login to a desktop machine) gives a clear error instead of a silently
//! new identity.

use std::path::Path;

use sotto_net::identity::Identity;

use crate::profile::ProfileError;

/// The keychain service name entries are filed under.
const SERVICE: &str = "sotto";

/// Which store holds a profile's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyStore {
    /// The OS keychain.
    Keychain,
    /// `identity.key` in the data directory.
    File,
}

impl KeyStore {
    /// The name kept in the profile database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Keychain => "keychain",
            Self::File => "file",
        }
    }
}

/// The keychain entry of the profile in `data_dir` (each profile has its own identity).
fn entry(data_dir: &Path) -> keyring::Result<keyring::Entry> {
    let account = format!("identity {}", data_dir.display());
    keyring::Entry::new(SERVICE, &account)
}

/// Puts a new identity's key into the keychain and reads it back, so a keychain that accepts
/// writes it cannot return is not trusted.
pub(crate) fn store_new(data_dir: &Path, identity: &Identity) -> keyring::Result<()> {
    let entry = entry(data_dir)?;
    entry.set_secret(&identity.secret_bytes())?;
    let back = entry.get_secret()?;
    if back != identity.secret_bytes() {
        return Err(keyring::Error::Invalid(
            "secret".into(),
            "the keychain returned another key than was stored".into(),
        ));
    }
    Ok(())
}

/// The identity kept in the keychain for the profile in `data_dir`.
pub(crate) fn load(data_dir: &Path) -> Result<Identity, ProfileError> {
    let secret = entry(data_dir)
        .and_then(|entry| entry.get_secret())
        .map_err(|error| match error {
            keyring::Error::NoEntry => ProfileError::KeychainEntryMissing {
                service: SERVICE,
                data_dir: data_dir.to_owned(),
            },
            other => ProfileError::KeychainUnreachable(other.to_string()),
        })?;
    Identity::from_secret_bytes(&secret).map_err(|_| ProfileError::KeychainKeyDamaged {
        data_dir: data_dir.to_owned(),
    })
}

/// Why the keychain could not take a new key, in a few words for the warning line.
pub(crate) fn describe(error: &keyring::Error) -> String {
    match error {
        keyring::Error::NoDefaultStore | keyring::Error::NoStorageAccess(_) => {
            "no OS keychain service is running".to_owned()
        }
        other => format!("the OS keychain refused it: {other}"),
    }
}

/// Fails when a key store name in the profile is unknown (a newer client wrote it).
pub(crate) fn parse_stored(text: &str) -> Result<KeyStore, ProfileError> {
    match text {
        "keychain" => Ok(KeyStore::Keychain),
        "file" => Ok(KeyStore::File),
        _ => Err(ProfileError::UnknownKeyStore(text.to_owned())),
    }
}
