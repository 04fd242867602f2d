//! Media datagrams: an 8-byte header in the clear, then ChaCha20-Poly1305 ciphertext.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Ver|Stream |Rsv|    Key id     |          Sender slot          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Counter                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Ciphertext (payload length) ...                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Poly1305 tag (16 bytes)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The relay routes on the header alone. The header is the AEAD's associated data, so a
//! relay that rewrites it makes the datagram fail authentication at every receiver.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

use crate::crypto::MediaKey;
use crate::proto::PROTOCOL_VERSION;

/// Bytes of the clear header.
pub const HEADER_LEN: usize = 8;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes every datagram adds to its payload: header plus tag.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Largest payload a datagram may carry (a QUIC datagram fits a 1200-byte path MTU).
pub const MAX_PAYLOAD_LEN: usize = 1100;

/// What a media stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamKind {
    /// Opus voice.
    Voice,
    /// Screen-share video.
    Screen,
    /// Camera video.
    Camera,
    /// Receiver reports: how much of each sender's media arrived (see [`super::feedback`]).
    Feedback,
}

impl StreamKind {
    /// The 3-bit code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Voice => 0,
            Self::Screen => 1,
            Self::Camera => 2,
            Self::Feedback => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Voice),
            1 => Some(Self::Screen),
            2 => Some(Self::Camera),
            3 => Some(Self::Feedback),
            _ => None,
        }
    }
}

/// The clear part of a media datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// What the stream carries.
    pub stream: StreamKind,
    /// Which of the sender's keys sealed it (the low byte of the key epoch).
    pub key_id: u8,
    /// The sender's slot in the voice channel, assigned by the relay.
    pub sender: u16,
    /// Per-stream packet counter; the nonce is built from it and it never repeats for a key.
    pub counter: u32,
}

/// Why a datagram's header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Shorter than a header plus tag.
    #[error("datagram of {0} bytes is shorter than the {OVERHEAD}-byte minimum")]
    TooShort(usize),
    /// Longer than any valid datagram.
    #[error("datagram of {0} bytes exceeds the maximum")]
    TooLong(usize),
    /// Version bits are not this build's.
    #[error("datagram has protocol version {0}, this build speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion(u8),
    /// Unknown stream kind.
    #[error("datagram has unknown stream kind {0}")]
    UnknownStream(u8),
    /// Reserved bits set.
    #[error("datagram has reserved header bits set")]
    ReservedBits,
}

impl MediaHeader {
    /// Parses and validates the header of `datagram`, which must also hold at least a tag.
    pub fn parse(datagram: &[u8]) -> Result<Self, HeaderError> {
        if datagram.len() < OVERHEAD {
            return Err(HeaderError::TooShort(datagram.len()));
        }
        if datagram.len() > OVERHEAD + MAX_PAYLOAD_LEN {
            return Err(HeaderError::TooLong(datagram.len()));
        }
        let first = datagram[0];
        let version = first >> 6;
        if version != PROTOCOL_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if first & 0b11 != 0 {
            return Err(HeaderError::ReservedBits);
        }
        let stream_code = (first >> 2) & 0b1111;
        let stream =
            StreamKind::from_code(stream_code).ok_or(HeaderError::UnknownStream(stream_code))?;
        Ok(Self {
            stream,
            key_id: datagram[1],
            sender: u16::from_be_bytes([datagram[2], datagram[3]]),
            counter: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
        })
    }

    /// The header's 8 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [s0, s1] = self.sender.to_be_bytes();
        let [c0, c1, c2, c3] = self.counter.to_be_bytes();
        [
            (PROTOCOL_VERSION << 6) | (self.stream.code() << 2),
            self.key_id,
            s0,
            s1,
            c0,
            c1,
            c2,
            c3,
        ]
    }

    /// The AEAD nonce: the stream code in byte 0, the counter in bytes 8..12, zeros between.
    /// Keys are per sender and per join, so stream and counter make it unique for the key.
    pub fn nonce(&self) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[0] = self.stream.code();
        nonce[8..].copy_from_slice(&self.counter.to_be_bytes());
        Nonce::from(nonce)
    }
}

/// Why a payload could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The payload is larger than [`MAX_PAYLOAD_LEN`].
    #[error("media payload of {0} bytes exceeds the {MAX_PAYLOAD_LEN}-byte limit")]
    PayloadTooLong(usize),
    /// The stream's counter is used up for this key; rejoin to get a fresh key.
    #[error("the packet counter for this key is exhausted; rejoin the channel to rekey")]
    CounterExhausted,
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The header is malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Authentication failed: forged, corrupted, or sealed with another key.
    #[error("datagram failed authentication")]
    Forged,
    /// Already received, or too old for the replay window.
    #[error("datagram counter {0} was already seen or is too old")]
    Replayed(u32),
    /// No key is known for the sender or key id.
    #[error("no key for sender slot {sender} key id {key_id}")]
    UnknownKey {
        /// The sender slot.
        sender: u16,
        /// The key id.
        key_id: u8,
    },
}

/// Seals outgoing media for one sender, one counter per stream kind.
pub struct MediaSealer {
    cipher: ChaCha20Poly1305,
    key_id: u8,
    sender: u16,
    next_counter: [u64; 16],
}

impl std::fmt::Debug for MediaSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSealer")
            .field("key_id", &self.key_id)
            .field("sender", &self.sender)
            .finish()
    }
}

impl MediaSealer {
    /// A sealer for `sender` using `key`, whose id is `key_id`. Counters start at 0: the key
    /// must never have sealed anything before (keys are derived per join from a fresh salt).
    pub fn new(key: &MediaKey, key_id: u8, sender: u16) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(key.as_key()),
            key_id,
            sender,
            next_counter: [0; 16],
        }
    }

    /// A sealer with a new key (a new epoch) whose counters go on from this one's, so the
    /// receivers' media sequence continues across the change. (The key is new, so no
    /// (key, nonce) pair can repeat.)
    pub fn rekeyed(&self, key: &MediaKey, key_id: u8) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(key.as_key()),
            key_id,
            sender: self.sender,
            next_counter: self.next_counter,
        }
    }

    /// The key id this sealer seals with.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// Appends the sealed datagram for `payload` on `stream` to `out` (cleared first).
    pub fn seal(
        &mut self,
        stream: StreamKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<MediaHeader, SealError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(SealError::PayloadTooLong(payload.len()));
        }
        let slot = &mut self.next_counter[usize::from(stream.code())];
        let counter = u32::try_from(*slot).map_err(|_| SealError::CounterExhausted)?;
        *slot += 1;
        let header = MediaHeader {
            stream,
            key_id: self.key_id,
            sender: self.sender,
            counter,
        };
        out.clear();
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(payload);
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&header.nonce(), head, body)
            .expect("payload length is bounded far below the AEAD limit");
        out.extend_from_slice(&tag);
        Ok(header)
    }
}

/// Opens datagrams sealed with one sender key: authenticates, then decrypts in place.
pub struct MediaOpener {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for MediaOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaOpener").finish_non_exhaustive()
    }
}

impl MediaOpener {
    /// An opener for datagrams sealed with `key`.
    pub fn new(key: &MediaKey) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(key.as_key()),
        }
    }

    /// Authenticates `datagram` (whose header is `header`) and decrypts its payload in place;
    /// returns the plaintext's length: the payload is `datagram[HEADER_LEN..HEADER_LEN + len]`.
    /// Replay checks are the caller's (see [`crate::proto::replay`]).
    pub fn open_in_place(
        &self,
        header: &MediaHeader,
        datagram: &mut [u8],
    ) -> Result<usize, OpenError> {
        let tag_start = datagram.len() - TAG_LEN;
        let (rest, tag) = datagram.split_at_mut(tag_start);
        let (head, body) = rest.split_at_mut(HEADER_LEN);
        let tag = Tag::clone_from_slice(tag);
        self.cipher
            .decrypt_in_place_detached(&header.nonce(), head, body, &tag)
            .map_err(|_| OpenError::Forged)?;
        Ok(body.len())
    }
}

#[cfg(test)]
mod tests;
