//! One file stream: a member's upload or download of a sealed file, on a QUIC stream of its own
//! (see `sotto_net::proto::file_stream`). Uploads resume where the stored bytes end; a file is
//! complete only once its bytes are on disk and match the SHA-256 its uploader announced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sotto_net::proto::control::ErrorCode;
use sotto_net::proto::file_stream::{BlobId, FileReply, FileRequest, head_len};
use sotto_net::seal::file::sealed_len_of;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tracing::{debug, warn};

use crate::db::UploadStart;
use crate::rate_limit::TokenBucket;
use crate::server::Shared;

/// How long a member has to say what a new stream is for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read or written at a time.
const PIECE: usize = 64 * 1024;
/// Bytes of an upload gathered before they go to the disk.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Why a stream ends without doing what was asked.
enum Failure {
    /// Tell the member why.
    Refuse(ErrorCode, String),
    /// The stream or connection went away, or the disk failed (logged already).
    Gone,
}

fn refuse(code: ErrorCode, reason: impl Into<String>) -> Failure {
    Failure::Refuse(code, reason.into())
}

/// Who is on the other end of a file stream.
pub(crate) struct Uploader {
    /// The member.
    pub(crate) member_id: u32,
    /// Their upload rate, shared by their streams.
    pub(crate) uploads: Arc<Mutex<TokenBucket>>,
}

/// Serves one file stream to its end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    member: Uploader,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut recv)).await {
        Err(_) => Err(refuse(
            ErrorCode::ProtocolViolation,
            "a file stream must start with its request",
        )),
        Ok(Err(failure)) => Err(failure),
        Ok(Ok(FileRequest::Upload {
            blob_id,
            sealed_len,
            sealed_sha256,
        })) => {
            upload(
                &shared,
                &member,
                &mut send,
                &mut recv,
                blob_id,
                sealed_len,
                sealed_sha256,
            )
            .await
        }
        Ok(Ok(FileRequest::Download { blob_id, from })) => {
            download(&shared, member.member_id, &mut send, blob_id, from).await
        }
    };
    match outcome {
        Ok(()) => {}
        Err(Failure::Refuse(code, reason)) => {
            debug!(
                member = member.member_id,
                ?code,
                "file request refused: {reason}"
            );
            let _ = recv.stop(0u32.into());
            let _ = write_reply(&mut send, &FileReply::Refused { code, reason }).await;
        }
        Err(Failure::Gone) => {}
    }
    let _ = send.finish();
    // Let the reply reach the member before the stream is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

async fn read_request(recv: &mut quinn::RecvStream) -> Result<FileRequest, Failure> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|_| Failure::Gone)?;
    let len = head_len(prefix)
        .map_err(|error| refuse(ErrorCode::ProtocolViolation, error.to_string()))?;
    let mut head = vec![0u8; len];
    recv.read_exact(&mut head)
        .await
        .map_err(|_| Failure::Gone)?;
    FileRequest::decode(&head)
        .map_err(|error| refuse(ErrorCode::ProtocolViolation, error.to_string()))
}

async fn write_reply(send: &mut quinn::SendStream, reply: &FileReply) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    reply
        .encode(&mut bytes)
        .expect("the relay's replies are within bounds");
    send.write_all(&bytes).await.map_err(|_| Failure::Gone)
}

fn internal(what: &str, error: impl std::fmt::Display) -> Failure {
    warn!("{what}: {error}");
    refuse(
        ErrorCode::Internal,
        "the relay could not store or read the file; try again later",
    )
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("file bookkeeping does not panic")
}

async fn upload(
    shared: &Arc<Shared>,
    member: &Uploader,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    blob_id: BlobId,
    sealed_len: u64,
    sealed_sha256: [u8; 32],
) -> Result<(), Failure> {
    let limit = shared.config.max_file_size;
    if sealed_len > sealed_len_of(limit) {
        return Err(refuse(
            ErrorCode::FileTooLarge,
            format!(
                "files on this server are at most {}; this one is larger",
                human_size(limit)
            ),
        ));
    }
    let allowed = member
        .uploads
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .try_take(Instant::now());
    if !allowed {
        shared
            .metrics
            .requests_rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(refuse(
            ErrorCode::RateLimited,
            format!(
                "too many uploads: at most {} a second; wait a moment and upload again",
                shared.config.upload_rate
            ),
        ));
    }
    // One stream at a time writes a file.
    let Some(_writing) = Writing::start(shared, blob_id) else {
        return Err(refuse(
            ErrorCode::RateLimited,
            "this file is still being received on another stream; wait a moment and go on",
        ));
    };
    let store = shared.store.clone();
    let member_id = member.member_id;
    let quota = shared.config.member_storage;
    let start = blocking(move || {
        store.begin_upload(
            &blob_id,
            member_id,
            sealed_len,
            &sealed_sha256,
            quota,
            crate::data_dir::unix_now_ms(),
        )
    })
    .await
    .map_err(|error| internal("cannot record an upload", error))?;
    match start {
        UploadStart::Complete => {
            return write_reply(send, &FileReply::Stored { sealed_len }).await;
        }
        UploadStart::IdTaken => {
            return Err(refuse(
                ErrorCode::ProtocolViolation,
                "another file has this id; pick a random one",
            ));
        }
        UploadStart::OverQuota { used } => {
            return Err(refuse(
                ErrorCode::FileTooLarge,
                format!(
                    "your files on this server take {} of the {} each member may keep; delete some messages with files first",
                    human_size(used),
                    human_size(quota)
                ),
            ));
        }
        UploadStart::New | UploadStart::Resume => {}
    }
    let part_path = shared.blobs.part_path(&blob_id);
    let mut part = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part_path)
        .await
        .map_err(|error| internal("cannot open an upload's file", error))?;
    let mut offset = part
        .metadata()
        .await
        .map_err(|error| internal("cannot read an upload's file", error))?
        .len();
    if offset > sealed_len {
        // Bytes of something else: start over.
        part.set_len(0)
            .await
            .map_err(|error| internal("cannot reset an upload's file", error))?;
        offset = 0;
    }
    part.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|error| internal("cannot seek in an upload's file", error))?;
    // The hash follows the bytes as they arrive; a resumed upload first hashes what is there.
    let mut hasher = if offset > 0 {
        let blobs = shared.blobs.clone();
        blocking(move || blobs.hash_prefix(&blob_id, offset))
            .await
            .map_err(|error| internal("cannot read an upload's file", error))?
    } else {
        Sha256::new()
    };
    let mut part = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, part);
    write_reply(send, &FileReply::UploadFrom { offset }).await?;
    let mut received = offset;
    let mut buffer = vec![0u8; PIECE];
    loop {
        match recv.read(&mut buffer).await {
            Ok(Some(read)) => {
                received += read as u64;
                if received > sealed_len {
                    let _ = part.flush().await;
                    return Err(refuse(
                        ErrorCode::ProtocolViolation,
                        "the upload carried more bytes than it announced",
                    ));
                }
                hasher.update(&buffer[..read]);
                part.write_all(&buffer[..read])
                    .await
                    .map_err(|error| internal("cannot write an upload's file", error))?;
                shared
                    .metrics
                    .file_bytes_in
                    .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(None) => break,
            Err(_) => {
                // The member went away: what arrived stays, for them to resume.
                let _ = part.flush().await;
                return Err(Failure::Gone);
            }
        }
    }
    part.flush()
        .await
        .map_err(|error| internal("cannot write an upload's file", error))?;
    drop(part);
    if received < sealed_len {
        return Err(refuse(
            ErrorCode::ProtocolViolation,
            format!(
                "the upload ended after {received} of {sealed_len} bytes; open a new stream to go on"
            ),
        ));
    }
    if hasher.finalize().as_slice() != sealed_sha256 {
        shared.blobs.remove(&blob_id);
        return Err(refuse(
            ErrorCode::FileDamaged,
            "the uploaded bytes do not match their SHA-256; upload the file again",
        ));
    }
    let blobs = shared.blobs.clone();
    blocking(move || blobs.commit_upload(&blob_id))
        .await
        .map_err(|error| internal("cannot finish an upload", error))?;
    let store = shared.store.clone();
    let recorded =
        blocking(move || store.complete_upload(&blob_id, crate::data_dir::unix_now_ms()))
            .await
            .map_err(|error| internal("cannot record a finished upload", error))?;
    if !recorded {
        shared.blobs.remove(&blob_id);
        return Err(internal("a finished upload had lost its record", "deleted"));
    }
    shared
        .metrics
        .files_stored
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    write_reply(send, &FileReply::Stored { sealed_len }).await
}

/// A file being uploaded, in the relay's list while the upload runs.
struct Writing<'a> {
    shared: &'a Shared,
    blob_id: BlobId,
}

impl<'a> Writing<'a> {
    /// Lists `blob_id` as being written, unless another stream writes it.
    fn start(shared: &'a Shared, blob_id: BlobId) -> Option<Self> {
        let fresh = shared
            .uploading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(blob_id);
        fresh.then_some(Self { shared, blob_id })
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.shared
            .uploading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.blob_id);
    }
}

async fn download(
    shared: &Arc<Shared>,
    member_id: u32,
    send: &mut quinn::SendStream,
    blob_id: BlobId,
    from: u64,
) -> Result<(), Failure> {
    let store = shared.store.clone();
    let record = blocking(move || store.blob(&blob_id))
        .await
        .map_err(|error| internal("cannot look up a file", error))?;
    let store = shared.store.clone();
    let carriers = blocking(move || store.messages_carrying(&blob_id))
        .await
        .map_err(|error| internal("cannot look up a file", error))?;
    // A file travels with messages: only those who may read one of them may fetch it (a file
    // no message carries yet is its uploader's, known to nobody else).
    let readable = carriers.is_empty()
        || carriers
            .iter()
            .any(|(channel_id, _)| shared.may_read(member_id, *channel_id));
    let Some(record) = record.filter(|record| record.complete && readable) else {
        return Err(refuse(
            ErrorCode::NoSuchFile,
            "no such file here: it was never uploaded, is not finished, or was deleted",
        ));
    };
    if from > record.sealed_len {
        return Err(refuse(
            ErrorCode::ProtocolViolation,
            format!(
                "the file has {} bytes; cannot start at byte {from}",
                record.sealed_len
            ),
        ));
    }
    let mut file = tokio::fs::File::open(shared.blobs.path(&blob_id))
        .await
        .map_err(|error| internal("cannot open a stored file", error))?;
    file.seek(std::io::SeekFrom::Start(from))
        .await
        .map_err(|error| internal("cannot seek in a stored file", error))?;
    write_reply(
        send,
        &FileReply::Sending {
            sealed_len: record.sealed_len,
            from,
        },
    )
    .await?;
    let mut remaining = record.sealed_len - from;
    let mut buffer = vec![0u8; PIECE];
    while remaining > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let read = tokio::io::AsyncReadExt::read(&mut file, &mut buffer[..want])
            .await
            .map_err(|error| {
                warn!("cannot read a stored file: {error}");
                Failure::Gone
            })?;
        if read == 0 {
            warn!("a stored file is shorter than its record says");
            send.reset(1u32.into()).ok();
            return Err(Failure::Gone);
        }
        send.write_all(&buffer[..read])
            .await
            .map_err(|_| Failure::Gone)?;
        remaining -= read as u64;
        shared
            .metrics
            .file_bytes_out
            .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// "100 MiB", "512 KiB", "1.5 GiB".
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(100), "100 bytes");
        assert_eq!(human_size(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_size(1536 * 1024 * 1024), "1.5 GiB");
    }
}
