//! Sealed files' bytes in the data directory:
//!
//! ```text
//! DIR/blobs/ID.part   an unfinished upload (ID: the file id in hex)
//! DIR/blobs/ID        a complete file, its SHA-256 checked, synced to disk
//! ```
//!
//! The relay cannot open these: they are sealed by the uploader's client under a key only the
//! members hold. Which files exist and which messages carry them is in the database.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sotto_net::proto::file_stream::BlobId;
use tracing::{debug, warn};

/// Where the relay keeps files' bytes.
#[derive(Debug, Clone)]
pub(crate) struct BlobFiles {
    dir: PathBuf,
}

fn hex(id: &BlobId) -> String {
    id.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The id a file name stands for, if it is one of ours (`ID` or `ID.part`).
fn id_of(name: &str) -> Option<BlobId> {
    let stem = name.strip_suffix(".part").unwrap_or(name);
    if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0u8; 16];
    for (index, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&stem[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(id)
}

impl BlobFiles {
    /// The `blobs` directory under `root`, created (mode 0700) if missing.
    pub(crate) fn open(root: &Path) -> std::io::Result<Self> {
        let dir = root.join("blobs");
        fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    /// Where an unfinished upload's bytes are.
    pub(crate) fn part_path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(format!("{}.part", hex(id)))
    }

    /// Where a complete file's bytes are.
    pub(crate) fn path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(hex(id))
    }

    /// A hasher that has seen the first `len` bytes of an unfinished upload (to go on hashing
    /// where a broken-off upload resumes).
    pub(crate) fn hash_prefix(&self, id: &BlobId, len: u64) -> std::io::Result<Sha256> {
        let mut file = fs::File::open(self.part_path(id))?.take(len);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hasher)
    }

    /// Makes a finished upload (its hash checked) the complete file, durably.
    pub(crate) fn commit_upload(&self, id: &BlobId) -> std::io::Result<()> {
        let part = self.part_path(id);
        fs::File::open(&part)?.sync_all()?;
        fs::rename(&part, self.path(id))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Deletes a file's bytes, finished or not.
    pub(crate) fn remove(&self, id: &BlobId) {
        for path in [self.path(id), self.part_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => debug!(path = %path.display(), "deleted a stored file"),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => warn!(path = %path.display(), "cannot delete a stored file: {error}"),
            }
        }
    }

    /// Deletes the bytes of files that have no record (left by a crash between deleting a
    /// record and its bytes). Returns how many were deleted.
    pub(crate) fn sweep_orphans(&self, known: &HashSet<BlobId>) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(id_of) else {
                continue;
            };
            if !known.contains(&id) {
                // One entry that will not go (say, a directory) must not keep the relay down.
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(error) => warn!(path = %entry.path().display(), "cannot delete: {error}"),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_ids() {
        let id = [0xa5; 16];
        assert_eq!(id_of(&hex(&id)), Some(id));
        assert_eq!(id_of(&format!("{}.part", hex(&id))), Some(id));
        assert_eq!(id_of("relay.db"), None);
        assert_eq!(id_of(&"g".repeat(32)), None);
    }

    #[test]
    fn a_finished_upload_is_checked_and_orphans_are_swept() {
        let root = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(root.path()).unwrap();
        let (good, bad, orphan) = ([1; 16], [2; 16], [3; 16]);
        fs::write(files.part_path(&good), b"sealed bytes").unwrap();
        fs::write(files.part_path(&bad), b"sealed bytes").unwrap();
        fs::write(files.path(&orphan), b"left behind").unwrap();
        let mut resumed = files.hash_prefix(&good, 6).unwrap();
        resumed.update(b" bytes");
        assert_eq!(resumed.finalize(), Sha256::digest(b"sealed bytes"));
        files.commit_upload(&good).unwrap();
        assert_eq!(fs::read(files.path(&good)).unwrap(), b"sealed bytes");
        assert!(!files.part_path(&good).exists());
        files.remove(&bad);
        assert!(!files.part_path(&bad).exists());
        let known = HashSet::from([good]);
        assert_eq!(files.sweep_orphans(&known).unwrap(), 1);
        assert!(files.path(&good).exists());
        assert!(!files.path(&orphan).exists());
    }
}
