//! The heads of file streams: each upload or download runs on a bidirectional QUIC stream of its
//! own, never on the control stream, so a 50 MB file never delays a chat message or a roster.
//!
//! ```text
//! upload:   C→R Upload ─── R→C UploadFrom(offset) ─── C→R sealed bytes [offset..len), FIN
//!                                                   ─── R→C Stored (durable, hash checked)
//! download: C→R Download(from) ─── R→C Sending(len, from) then sealed bytes [from..len), FIN
//! refusal:  R→C Refused(code, reason) instead of UploadFrom, Stored or Sending
//! ```
//!
//! A head has the control frames' layout (u32 length, version, kind, body) with kinds of its own
//! and is at most [`MAX_HEAD_LEN`] bytes, so a reader takes exactly its bytes from the stream and
//! what follows is the file.

use crate::proto::PROTOCOL_VERSION;
use crate::proto::control::{DecodeError, EncodeError, ErrorCode, MAX_MESSAGE_LEN};
use crate::proto::wire::{Reader, Writer};

/// The largest head (after its length prefix).
pub const MAX_HEAD_LEN: usize = 1024;

/// A stored file's id: 16 random bytes its uploader chose.
pub type BlobId = [u8; 16];

mod kind {
    pub(super) const UPLOAD: u8 = 0x40;
    pub(super) const DOWNLOAD: u8 = 0x41;
    pub(super) const UPLOAD_FROM: u8 = 0x48;
    pub(super) const STORED: u8 = 0x49;
    pub(super) const SENDING: u8 = 0x4a;
    pub(super) const REFUSED: u8 = 0x4b;
}

/// What a client asks for when it opens a file stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRequest {
    /// Store (or go on storing) this sealed file.
    Upload {
        /// Its id.
        blob_id: BlobId,
        /// Bytes of the whole sealed file.
        sealed_len: u64,
        /// SHA-256 of the whole sealed file; the relay checks it before saying `Stored`.
        sealed_sha256: [u8; 32],
    },
    /// Send me this file's sealed bytes from offset `from`.
    Download {
        /// Its id.
        blob_id: BlobId,
        /// The first byte wanted (what the client already holds).
        from: u64,
    },
}

/// What the relay answers on a file stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileReply {
    /// It holds the first `offset` bytes already: send the rest, then finish the stream.
    UploadFrom {
        /// Bytes it holds.
        offset: u64,
    },
    /// The whole file is stored durably and its hash checked.
    Stored {
        /// Bytes of the sealed file.
        sealed_len: u64,
    },
    /// The bytes from `from` to `sealed_len` follow, then the stream ends.
    Sending {
        /// Bytes of the whole sealed file.
        sealed_len: u64,
        /// The first byte that follows.
        from: u64,
    },
    /// Not done.
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        reason: String,
    },
}

fn encode_head(
    kind: u8,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Writer),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut w = Writer::new(out);
    w.u8(PROTOCOL_VERSION);
    w.u8(kind);
    body(&mut w);
    let len = out.len() - start - 4;
    if len > MAX_HEAD_LEN {
        out.truncate(start);
        return Err(EncodeError::FrameTooLong {
            len,
            max: MAX_HEAD_LEN,
        });
    }
    let prefix = u32::try_from(len).expect("bounded by MAX_HEAD_LEN");
    out[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// Checks a head's length prefix: how many bytes of head follow it.
pub fn head_len(prefix: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_HEAD_LEN {
        return Err(DecodeError::FrameTooLong {
            len,
            max: MAX_HEAD_LEN,
        });
    }
    Ok(len)
}

/// Reads version and kind; the reader is left at the body.
fn open_head(head: &[u8]) -> Result<(Reader<'_>, u8), DecodeError> {
    if head.len() > MAX_HEAD_LEN {
        return Err(DecodeError::FrameTooLong {
            len: head.len(),
            max: MAX_HEAD_LEN,
        });
    }
    let mut r = Reader::new(head);
    let version = r.u8("version")?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let kind = r.u8("kind")?;
    Ok((r, kind))
}

impl FileRequest {
    /// Appends the head, length prefix included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Upload {
                blob_id,
                sealed_len,
                sealed_sha256,
            } => encode_head(kind::UPLOAD, out, |w| {
                w.bytes(blob_id);
                w.u64(*sealed_len);
                w.bytes(sealed_sha256);
            }),
            Self::Download { blob_id, from } => encode_head(kind::DOWNLOAD, out, |w| {
                w.bytes(blob_id);
                w.u64(*from);
            }),
        }
    }

    /// Decodes a head: the bytes after its length prefix.
    pub fn decode(head: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, kind) = open_head(head)?;
        let request = match kind {
            kind::UPLOAD => Self::Upload {
                blob_id: r.array("blob id")?,
                sealed_len: r.u64("sealed length")?,
                sealed_sha256: r.array("sealed SHA-256")?,
            },
            kind::DOWNLOAD => Self::Download {
                blob_id: r.array("blob id")?,
                from: r.u64("from")?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(request)
    }

    /// The file it names.
    pub fn blob_id(&self) -> &BlobId {
        match self {
            Self::Upload { blob_id, .. } | Self::Download { blob_id, .. } => blob_id,
        }
    }
}

impl FileReply {
    /// Appends the head, length prefix included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::UploadFrom { offset } => encode_head(kind::UPLOAD_FROM, out, |w| w.u64(*offset)),
            Self::Stored { sealed_len } => encode_head(kind::STORED, out, |w| w.u64(*sealed_len)),
            Self::Sending { sealed_len, from } => encode_head(kind::SENDING, out, |w| {
                w.u64(*sealed_len);
                w.u64(*from);
            }),
            Self::Refused { code, reason } => {
                crate::proto::control::validate_text(reason, MAX_MESSAGE_LEN)?;
                encode_head(kind::REFUSED, out, |w| {
                    w.u16(code.to_u16());
                    w.string(reason);
                })
            }
        }
    }

    /// Decodes a head: the bytes after its length prefix.
    pub fn decode(head: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, kind) = open_head(head)?;
        let reply = match kind {
            kind::UPLOAD_FROM => Self::UploadFrom {
                offset: r.u64("offset")?,
            },
            kind::STORED => Self::Stored {
                sealed_len: r.u64("sealed length")?,
            },
            kind::SENDING => {
                let sealed_len = r.u64("sealed length")?;
                let from = r.u64("from")?;
                if from > sealed_len {
                    return Err(DecodeError::InvalidValue { field: "from" });
                }
                Self::Sending { sealed_len, from }
            }
            kind::REFUSED => Self::Refused {
                code: ErrorCode::from_u16(r.u16("code")?),
                reason: r.string("reason", MAX_MESSAGE_LEN)?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_request(request: FileRequest) {
        let mut bytes = Vec::new();
        request.encode(&mut bytes).unwrap();
        let len = head_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(FileRequest::decode(&bytes[4..]).unwrap(), request);
    }

    fn round_trip_reply(reply: FileReply) {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes).unwrap();
        assert_eq!(FileReply::decode(&bytes[4..]).unwrap(), reply);
    }

    #[test]
    fn heads_round_trip() {
        round_trip_request(FileRequest::Upload {
            blob_id: [7; 16],
            sealed_len: 52_428_800,
            sealed_sha256: [9; 32],
        });
        round_trip_request(FileRequest::Download {
            blob_id: [1; 16],
            from: 65_556,
        });
        round_trip_reply(FileReply::UploadFrom { offset: 3 });
        round_trip_reply(FileReply::Stored { sealed_len: 20 });
        round_trip_reply(FileReply::Sending {
            sealed_len: 20,
            from: 20,
        });
        round_trip_reply(FileReply::Refused {
            code: ErrorCode::FileTooLarge,
            reason: "files on this server are at most 100 MiB".into(),
        });
    }

    #[test]
    fn upload_head_layout() {
        let mut bytes = Vec::new();
        FileRequest::Download {
            blob_id: [0xab; 16],
            from: 1,
        }
        .encode(&mut bytes)
        .unwrap();
        let mut expected = vec![0, 0, 0, 26, 1, 0x41];
        expected.extend_from_slice(&[0xab; 16]);
        expected.extend_from_slice(&1u64.to_be_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(matches!(
            head_len((MAX_HEAD_LEN as u32 + 1).to_be_bytes()),
            Err(DecodeError::FrameTooLong { .. })
        ));
        assert!(matches!(
            FileRequest::decode(&[1, 0x49, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::UnknownKind(0x49))
        ));
        assert!(matches!(
            FileRequest::decode(&[2, 0x41]),
            Err(DecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            FileRequest::decode(&[1, 0x41, 0, 0]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut trailing = Vec::new();
        FileReply::Stored { sealed_len: 1 }
            .encode(&mut trailing)
            .unwrap();
        trailing.push(0);
        assert!(matches!(
            FileReply::decode(&trailing[4..]),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
        let mut sending = vec![1, 0x4a];
        sending.extend_from_slice(&5u64.to_be_bytes());
        sending.extend_from_slice(&6u64.to_be_bytes());
        assert!(matches!(
            FileReply::decode(&sending),
            Err(DecodeError::InvalidValue { field: "from" })
        ));
        let long_reason = "x".repeat(MAX_MESSAGE_LEN + 1);
        assert!(
            FileReply::Refused {
                code: ErrorCode::Internal,
                reason: long_reason,
            }
            .encode(&mut Vec::new())
            .is_err()
        );
    }
}
