//! Sharing files in a text channel.
//!
//! Sending: the file is sealed on this device under a fresh key (the sealed copy waits in the
//! transfers directory and holds nothing readable), uploaded on a stream of its own — resumed
//! where the relay's copy ends after a lost connection or a relay restart — and then announced
//! by a sealed message that carries its key. Receiving: the sealed bytes are fetched into the
//! transfers directory (resumed the same way), opened chunk by chunk (a damaged chunk is fetched
//! again) and checked against the sender's SHA-256; the file appears at its destination only
//! whole.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sotto_net::client::{BlobUpload, Posted, TransferError};
use sotto_net::identity::Identity;
use sotto_net::seal::file::{
    CHUNK_LEN, CHUNK_OVERHEAD, FileManifest, FileOpenError, FileOpener, FileSealer, encode_manifest,
};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use super::action::{Action, Attachment, MAX_FILE_NAME_LEN, valid_file_name};
use super::{ChatError, post_action};
use crate::Session;

/// A transfer gives up after this long without a byte of progress (the relay unreachable).
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// First wait before trying again; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// Times a download whose bytes fail to open is fetched again before giving up.
const REFETCHES: u32 = 3;

/// Why a file could not be shared or fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The local file could not be read or written.
    #[error("{action} {path}: {source}")]
    Local {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The path names no regular file.
    #[error("{0} is not a file (folders cannot be shared; zip them first)")]
    NotAFile(PathBuf),
    /// The transfer failed and trying again would not help.
    #[error("{0}")]
    Transfer(#[from] TransferError),
    /// The relay stayed out of reach.
    #[error(
        "gave up after {} s without reaching the relay; check the connection and try again",
        STALL_LIMIT.as_secs()
    )]
    Unreachable,
    /// What the relay holds does not open as the file that was shared.
    #[error(
        "the relay's copy of the file is damaged (it does not match what its sender sealed); ask them to send it again"
    )]
    Damaged,
    /// The message announcing the file failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
}

/// How a transfer is going, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Sealing the file on this device.
    Sealing {
        /// Bytes of the file.
        total: u64,
    },
    /// Bytes of the sealed file the relay holds (uploads) or this device holds (downloads).
    Moving {
        /// Sealed bytes done.
        done: u64,
        /// Sealed bytes in all.
        total: u64,
    },
    /// Something went wrong on the way; trying again.
    Retrying {
        /// What happened, for people.
        why: String,
    },
    /// Opening the fetched file and checking it.
    Opening,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn local(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError::Local {
        action,
        path,
        source,
    }
}

/// A guess at a file's media type from its name, for receivers' display (images get previews,
/// the rest an icon).
pub fn media_type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "txt" | "log" | "md" => "text/plain",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// The name a file is shared under: its own, cleaned of control characters and cut to 255
/// bytes (at a character boundary, keeping the extension when it can).
pub fn shared_name(path: &Path) -> Option<String> {
    let raw = path.file_name()?.to_string_lossy();
    let clean: String = raw
        .chars()
        .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
        .collect();
    let clean = clean.trim().to_owned();
    if clean.len() <= MAX_FILE_NAME_LEN {
        return valid_file_name(&clean).then_some(clean);
    }
    let (stem, extension) = match clean.rsplit_once('.') {
        Some((stem, extension)) if extension.len() <= 16 => (stem, format!(".{extension}")),
        _ => (clean.as_str(), String::new()),
    };
    let mut cut = MAX_FILE_NAME_LEN - extension.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = format!("{}{extension}", &stem[..cut]);
    valid_file_name(&name).then_some(name)
}

/// A transfer's retries: how long to wait before the next, and when to give up (nothing new
/// moved for [`STALL_LIMIT`]; a retry reports its starting point again, which is not news).
struct Retries {
    wait: Duration,
    most: u64,
    last_progress: Instant,
}

impl Retries {
    fn new() -> Self {
        Self {
            wait: FIRST_RETRY_WAIT,
            most: 0,
            last_progress: Instant::now(),
        }
    }

    /// `done` bytes are moved (held by the relay, or here).
    fn moved(&mut self, done: u64) {
        if done > self.most {
            self.most = done;
            self.last_progress = Instant::now();
        }
    }

    /// Waits before the next try; `Err` once nothing has moved for too long.
    async fn pause(
        &mut self,
        error: &TransferError,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), FileError> {
        if self.last_progress.elapsed() > STALL_LIMIT {
            return Err(FileError::Unreachable);
        }
        progress(Progress::Retrying {
            why: error.to_string(),
        });
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(MAX_RETRY_WAIT);
        Ok(())
    }
}

/// Deletes a transfer's working file when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Seals the file at `path`, uploads it (resuming across disconnects and relay restarts) and
/// posts it to `channel_id` with `caption`. `transfers` is a private working directory.
pub async fn share_file(
    session: &Session,
    identity: &Identity,
    channel_id: u32,
    path: &Path,
    caption: &str,
    transfers: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(Posted, Attachment), FileError> {
    let metadata = std::fs::metadata(path).map_err(local("cannot read", path))?;
    if !metadata.is_file() {
        return Err(FileError::NotAFile(path.to_owned()));
    }
    let name = shared_name(path).ok_or_else(|| FileError::NotAFile(path.to_owned()))?;
    std::fs::create_dir_all(transfers).map_err(local("cannot create", transfers))?;
    let blob_id: [u8; 16] = rand::random();
    let sealed_path = transfers.join(format!("{}.upload", hex(&blob_id)));
    let _scratch = Scratch(sealed_path.clone());
    progress(Progress::Sealing {
        total: metadata.len(),
    });
    let manifest = seal(path, &sealed_path).await?;
    let upload = BlobUpload {
        id: blob_id,
        sealed_len: manifest.sealed_len(),
        sealed_sha256: *manifest.sealed_sha256(),
    };
    let mut retries = Retries::new();
    loop {
        let mut source = tokio::fs::File::open(&sealed_path)
            .await
            .map_err(local("cannot read", &sealed_path))?;
        let mut report = |done| {
            retries.moved(done);
            progress(Progress::Moving {
                done,
                total: upload.sealed_len,
            });
        };
        match session
            .client
            .upload_blob(&upload, &mut source, &mut report)
            .await
        {
            Ok(()) => break,
            Err(error) if error.is_retryable() => {
                retries.pause(&error, progress).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let media_type = media_type_of(path.to_string_lossy().as_ref());
    let thumbnail = if media_type.starts_with("image/") && media_type != "image/svg+xml" {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || super::thumbnail::thumbnail_of(&path))
            .await
            .unwrap_or_default()
    } else {
        None
    };
    let attachment = Attachment {
        blob_id,
        manifest: Zeroizing::new(encode_manifest(&manifest).to_vec()),
        name,
        media_type: media_type.to_owned(),
        size: manifest.plaintext_len(),
        thumbnail,
    };
    let action = Action::File {
        file: attachment.clone(),
        text: caption.to_owned(),
    };
    let posted = post_action(session, identity, channel_id, &action).await?;
    Ok((posted, attachment))
}

/// Seals the file at `path` into `sealed_path` (off the async threads).
async fn seal(path: &Path, sealed_path: &Path) -> Result<FileManifest, FileError> {
    let (path, sealed_path) = (path.to_owned(), sealed_path.to_owned());
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(local("cannot read", &path))?;
        let out =
            std::fs::File::create(&sealed_path).map_err(local("cannot write", &sealed_path))?;
        let mut out = std::io::BufWriter::new(out);
        let manifest = FileSealer::new(std::io::BufReader::new(file))
            .seal_to(&mut out)
            .map_err(|error| FileError::Local {
                action: "cannot seal",
                path: path.clone(),
                source: std::io::Error::other(error.to_string()),
            })?;
        let out = out
            .into_inner()
            .map_err(|error| local("cannot write", &sealed_path)(error.into_error()))?;
        out.sync_all()
            .map_err(local("cannot write", &sealed_path))?;
        Ok(manifest)
    })
    .await
    .expect("sealing does not panic")
}

/// Fetches the file `attachment` describes into `destination` (which must not exist yet),
/// resuming across disconnects, fetching damaged chunks again, and checking it whole. Returns
/// its length.
pub async fn fetch_file(
    session: &Session,
    attachment: &Attachment,
    destination: &Path,
    transfers: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<u64, FileError> {
    let manifest = attachment.manifest().map_err(|_| FileError::Damaged)?;
    let sealed_len = manifest.sealed_len();
    std::fs::create_dir_all(transfers).map_err(local("cannot create", transfers))?;
    // Named by the file id: a download broken off earlier goes on where it stopped.
    let part = transfers.join(format!("{}.download", hex(&attachment.blob_id)));
    for _ in 0..=REFETCHES {
        if let Err(error) = fetch_sealed(session, attachment, &part, sealed_len, progress).await {
            // Gone for good on the relay: the bytes held here are of no use.
            if matches!(&error, FileError::Transfer(TransferError::Refused { code, .. })
                if *code == sotto_net::proto::control::ErrorCode::NoSuchFile)
            {
                let _ = std::fs::remove_file(&part);
            }
            return Err(error);
        }
        progress(Progress::Opening);
        match open_into(&manifest, &part, destination).await? {
            Ok(len) => {
                let _ = std::fs::remove_file(&part);
                return Ok(len);
            }
            Err(keep) => {
                progress(Progress::Retrying {
                    why: if keep == 0 {
                        "the fetched file does not match its sender's hash; fetching it again"
                            .to_owned()
                    } else {
                        format!(
                            "a damaged piece after byte {keep} of the fetched file; fetching it again"
                        )
                    },
                });
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&part)
                    .map_err(local("cannot write", &part))?;
                file.set_len(keep).map_err(local("cannot write", &part))?;
            }
        }
    }
    let _ = std::fs::remove_file(&part);
    Err(FileError::Damaged)
}

/// Brings `part` to the sealed file's full length, fetching what it lacks.
async fn fetch_sealed(
    session: &Session,
    attachment: &Attachment,
    part: &Path,
    sealed_len: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), FileError> {
    let mut retries = Retries::new();
    loop {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await
            .map_err(local("cannot write", part))?;
        let mut held = file
            .metadata()
            .await
            .map_err(local("cannot read", part))?
            .len();
        if held > sealed_len {
            file.set_len(0).await.map_err(local("cannot write", part))?;
            held = 0;
        }
        if held == sealed_len {
            return Ok(());
        }
        let mut report = |done| {
            retries.moved(done);
            progress(Progress::Moving {
                done,
                total: sealed_len,
            });
        };
        let result = session
            .client
            .download_blob(&attachment.blob_id, held, &mut file, &mut report)
            .await;
        file.flush().await.map_err(local("cannot write", part))?;
        match result {
            Ok(len) if len == sealed_len => return Ok(()),
            Ok(_) => return Err(FileError::Damaged),
            Err(error) if error.is_retryable() => {
                retries.pause(&error, progress).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Opens the sealed file in `part` into `destination` (through a temporary file beside it).
/// `Ok(Err(keep))` when its bytes do not open: keep the first `keep` bytes of `part` (the
/// chunks before the damage) and fetch the rest again.
async fn open_into(
    manifest: &FileManifest,
    part: &Path,
    destination: &Path,
) -> Result<Result<u64, u64>, FileError> {
    let (manifest, part, destination) = (manifest.clone(), part.to_owned(), destination.to_owned());
    tokio::task::spawn_blocking(move || {
        let file_name = destination
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = destination.with_file_name(format!(".{file_name}.sotto-partial"));
        let _scratch = Scratch(temporary.clone());
        let sealed = std::fs::File::open(&part).map_err(local("cannot read", &part))?;
        let out = std::fs::File::create(&temporary).map_err(local("cannot write", &temporary))?;
        let mut out = std::io::BufWriter::new(out);
        let opened = FileOpener::new(&manifest).open_to(std::io::BufReader::new(sealed), &mut out);
        let chunk = (CHUNK_LEN + CHUNK_OVERHEAD) as u64;
        match opened {
            Ok(len) => {
                let out = out
                    .into_inner()
                    .map_err(|error| local("cannot write", &temporary)(error.into_error()))?;
                out.sync_all().map_err(local("cannot write", &temporary))?;
                // A link fails if the name is taken meanwhile: nothing is ever replaced.
                std::fs::hard_link(&temporary, &destination).map_err(|source| {
                    FileError::Local {
                        action: if source.kind() == std::io::ErrorKind::AlreadyExists {
                            "will not replace"
                        } else {
                            "cannot write"
                        },
                        path: destination.clone(),
                        source,
                    }
                })?;
                Ok(Ok(len))
            }
            Err(FileOpenError::Io(error)) => {
                Err(local("cannot open the fetched file", &part)(error))
            }
            Err(
                FileOpenError::Corrupted { index }
                | FileOpenError::ChunkLength { index, .. }
                | FileOpenError::Duplicated { index },
            ) => Ok(Err(u64::from(index) * chunk)),
            Err(FileOpenError::OutOfOrder { expected, .. }) => Ok(Err(u64::from(expected) * chunk)),
            Err(FileOpenError::Truncated { opened, .. }) => Ok(Err(u64::from(opened) * chunk)),
            Err(_) => Ok(Err(0)),
        }
    })
    .await
    .expect("opening does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_names_are_clean_and_short() {
        assert_eq!(
            shared_name(Path::new("/home/ada/Q3 report.pdf")).as_deref(),
            Some("Q3 report.pdf")
        );
        assert_eq!(
            shared_name(Path::new("bad\u{1b}[31mname.txt")).as_deref(),
            Some("bad[31mname.txt")
        );
        let long = format!("{}.tar.gz", "é".repeat(200));
        let name = shared_name(Path::new(&long)).unwrap();
        assert!(name.len() <= MAX_FILE_NAME_LEN);
        assert!(name.ends_with(".gz"), "{name}");
        assert_eq!(shared_name(Path::new("/")), None);
        assert_eq!(media_type_of("Photo.JPG"), "image/jpeg");
        assert_eq!(media_type_of("notes"), "application/octet-stream");
    }
}
