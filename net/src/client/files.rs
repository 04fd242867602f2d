//! Moving sealed files' bytes to and from the relay, each transfer on a QUIC stream of its own
//! (see [`crate::proto::file_stream`]). One call is one attempt; the caller resumes an
//! interrupted transfer by calling again once the client has reconnected (see
//! [`TransferError::is_retryable`]).

use std::io::SeekFrom;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::client::Client;
use crate::proto::control::ErrorCode;
use crate::proto::file_stream::{BlobId, FileReply, FileRequest, head_len};

/// How long the relay may take to answer a request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the relay may take to check and store a finished upload (it hashes the whole file).
const STORED_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes moved at a time.
const PIECE: usize = 64 * 1024;

/// A sealed file to upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUpload {
    /// Its id: 16 random bytes.
    pub id: BlobId,
    /// Bytes of the sealed file.
    pub sealed_len: u64,
    /// SHA-256 of the sealed file.
    pub sealed_sha256: [u8; 32],
}

/// Why a transfer stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No connection now; the client is reconnecting.
    #[error("not connected to the relay right now; the client is reconnecting")]
    NotConnected,
    /// The connection or the stream broke off mid-transfer.
    #[error("the transfer broke off: {0}")]
    Interrupted(String),
    /// The relay said no.
    #[error("{reason}")]
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        reason: String,
    },
    /// The relay answered with something that makes no sense.
    #[error("the relay broke the file protocol: {0}")]
    Protocol(String),
    /// Reading or writing the local file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl TransferError {
    /// Whether trying again (after a reconnect) may succeed: the connection broke, or the relay
    /// lost the bytes on the way (a damaged upload is sent again whole).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotConnected | Self::Interrupted(_) => true,
            Self::Refused { code, .. } => matches!(
                code,
                ErrorCode::FileDamaged | ErrorCode::RateLimited | ErrorCode::Internal
            ),
            Self::Protocol(_) | Self::Io(_) => false,
        }
    }
}

fn broke(error: impl std::fmt::Display) -> TransferError {
    TransferError::Interrupted(error.to_string())
}

async fn read_reply(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<FileReply, TransferError> {
    let read = async {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.map_err(broke)?;
        let len = head_len(prefix).map_err(|error| TransferError::Protocol(error.to_string()))?;
        let mut head = vec![0u8; len];
        recv.read_exact(&mut head).await.map_err(broke)?;
        FileReply::decode(&head).map_err(|error| TransferError::Protocol(error.to_string()))
    };
    let reply = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| TransferError::Interrupted("the relay did not answer in time".into()))??;
    if let FileReply::Refused { code, reason } = reply {
        return Err(TransferError::Refused { code, reason });
    }
    Ok(reply)
}

fn unexpected(reply: &FileReply) -> TransferError {
    TransferError::Protocol(format!("unexpected answer {reply:?}"))
}

impl Client {
    async fn open_file_stream(
        &self,
        request: &FileRequest,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), TransferError> {
        let connection = self
            .shared
            .connection
            .load_full()
            .ok_or(TransferError::NotConnected)?;
        let (mut send, recv) = connection.open_bi().await.map_err(broke)?;
        let mut head = Vec::new();
        request
            .encode(&mut head)
            .expect("file requests are within bounds");
        send.write_all(&head).await.map_err(broke)?;
        Ok((send, recv))
    }

    /// Uploads the sealed file `source` reads, or the part the relay lacks: it says how much it
    /// holds, and the rest is sent from there. `progress` hears the bytes the relay holds or was
    /// sent. Done once the relay has stored the whole file durably and checked its SHA-256.
    pub async fn upload_blob<R>(
        &self,
        blob: &BlobUpload,
        source: &mut R,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), TransferError>
    where
        R: AsyncRead + AsyncSeek + Unpin + Send,
    {
        let (mut send, mut recv) = self
            .open_file_stream(&FileRequest::Upload {
                blob_id: blob.id,
                sealed_len: blob.sealed_len,
                sealed_sha256: blob.sealed_sha256,
            })
            .await?;
        let offset = match read_reply(&mut recv, REPLY_TIMEOUT).await? {
            FileReply::UploadFrom { offset } if offset <= blob.sealed_len => offset,
            FileReply::Stored { sealed_len } if sealed_len == blob.sealed_len => {
                progress(sealed_len);
                return Ok(());
            }
            other => return Err(unexpected(&other)),
        };
        source.seek(SeekFrom::Start(offset)).await?;
        progress(offset);
        let mut sent = offset;
        let mut buffer = vec![0u8; PIECE];
        while sent < blob.sealed_len {
            let want = buffer
                .len()
                .min(usize::try_from(blob.sealed_len - sent).unwrap_or(usize::MAX));
            let read = source.read(&mut buffer[..want]).await?;
            if read == 0 {
                return Err(TransferError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the sealed file is shorter than announced",
                )));
            }
            if let Err(error) = send.write_all(&buffer[..read]).await {
                // The relay may have stopped reading to refuse: its reason beats ours.
                return match read_reply(&mut recv, Duration::from_secs(2)).await {
                    Err(refusal @ TransferError::Refused { .. }) => Err(refusal),
                    _ => Err(broke(error)),
                };
            }
            sent += read as u64;
            progress(sent);
        }
        send.finish().map_err(broke)?;
        match read_reply(&mut recv, STORED_TIMEOUT).await? {
            FileReply::Stored { sealed_len } if sealed_len == blob.sealed_len => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Downloads a stored file's sealed bytes from offset `from` into `sink`, which must
    /// already hold the bytes before it. Returns the sealed file's length; `progress` hears how
    /// many of its bytes `sink` holds.
    pub async fn download_blob<W>(
        &self,
        blob_id: &BlobId,
        from: u64,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, TransferError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let (mut send, mut recv) = self
            .open_file_stream(&FileRequest::Download {
                blob_id: *blob_id,
                from,
            })
            .await?;
        let _ = send.finish();
        let sealed_len = match read_reply(&mut recv, REPLY_TIMEOUT).await? {
            FileReply::Sending {
                sealed_len,
                from: sent_from,
            } if sent_from == from => sealed_len,
            other => return Err(unexpected(&other)),
        };
        let mut held = from;
        progress(held);
        let mut buffer = vec![0u8; PIECE];
        loop {
            match recv.read(&mut buffer).await.map_err(broke)? {
                Some(read) => {
                    held += read as u64;
                    if held > sealed_len {
                        return Err(TransferError::Protocol(
                            "the relay sent more bytes than the file has".into(),
                        ));
                    }
                    sink.write_all(&buffer[..read]).await?;
                    progress(held);
                }
                None if held == sealed_len => break,
                None => {
                    return Err(TransferError::Interrupted(format!(
                        "the relay ended the download after {held} of {sealed_len} bytes"
                    )));
                }
            }
        }
        sink.flush().await?;
        Ok(sealed_len)
    }
}
