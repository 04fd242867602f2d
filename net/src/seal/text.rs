//! Text envelopes: one chat message, sealed under a key of its own and signed by its author.
//!
//! ```text
//! envelope  = version (u8 = 1) ‖ header (53) ‖ message id (16) ‖ ciphertext (64 + body) ‖ tag (16)
//! header    = channel id (u32 BE) ‖ epoch (u64 BE) ‖ author public key (32) ‖ sent at, Unix ms (u64 BE) ‖ kind (u8)
//! key       = HKDF-SHA256(salt = "sotto/1 text key", ikm = text secret, info = message id), 32 bytes
//! nonce     = 00 × 12
//! AAD       = version ‖ header ‖ message id
//! plaintext = signature (64) ‖ body (at most 64 KiB)
//! signature = Ed25519(author, "sotto/1 text signature" ‖ header ‖ message id ‖ body)
//! ```
//!
//! The header travels in the clear so the relay can route and store by it; it is the AEAD's
//! associated data and is signed, so nobody can change it unnoticed. The signature sits inside the
//! ciphertext: only members see who signed what. Other members hold the same text secret and
//! could seal a message in anyone's name; the signature is what stops them.
//!
//! Opening checks the AEAD first, then the signature against the author key in the header. It
//! does not check that the author is a member of the group, that the channel and epoch are the
//! ones expected, or that the message id is new: those are the caller's (MLS membership, chat
//! sync) to decide from [`OpenedMessage::header`] and [`OpenedMessage::message_id`].
//!
//! The signature names the channel and the epoch but not the group: someone who is a member of
//! two groups alongside the author could re-seal a message from one into the other when the
//! channel id and epoch happen to coincide. The MLS release should bind the group (its group id
//! in the header, or a value derived from the epoch secret in the signature input).

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::proto::control::PublicKey;

/// Version byte of the envelope format.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes of an encoded [`MessageHeader`].
pub const HEADER_LEN: usize = 4 + 8 + 32 + 8 + 1;
/// Bytes of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Bytes of the author's Ed25519 signature inside the ciphertext.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Largest body a message may carry: 64 KiB.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Bytes in the clear before the ciphertext (version, header, message id): the AEAD's
/// associated data.
pub const CLEAR_LEN: usize = 1 + HEADER_LEN + MESSAGE_ID_LEN;
/// Bytes an envelope adds to its body: the clear part, the signature and the tag.
pub const OVERHEAD: usize = CLEAR_LEN + SIGNATURE_LEN + TAG_LEN;
/// Largest valid envelope.
pub const MAX_ENVELOPE_LEN: usize = OVERHEAD + MAX_BODY_LEN;

const TEXT_KEY_SALT: &[u8] = b"sotto/1 text key";
const SIGNATURE_LABEL: &[u8] = b"sotto/1 text signature";

/// A random 16-byte name for one message, fresh for every sealing. It selects the message's key
/// and lets chat sync recognise duplicates.
pub type MessageId = [u8; MESSAGE_ID_LEN];

/// The group's 32-byte per-epoch text secret (from MLS), wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TextSecret([u8; 32]);

impl TextSecret {
    /// Wraps raw secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes (to keep it sealed on disk; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TextSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextSecret(..)")
    }
}

/// The ChaCha20-Poly1305 key of one message, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TextKey([u8; 32]);

impl TextKey {
    /// The raw key bytes (for test vectors; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextKey(..)")
    }
}

/// Derives the key of message `message_id` from the group's text secret.
pub fn derive_text_key(secret: &TextSecret, message_id: &MessageId) -> TextKey {
    let hkdf = Hkdf::<Sha256>::new(Some(TEXT_KEY_SALT), &secret.0);
    let mut key = [0u8; 32];
    hkdf.expand(message_id, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    TextKey(key)
}

/// The clear part of a message: what it is bound to. The relay may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// The text channel the message was posted in.
    pub channel_id: u32,
    /// The MLS epoch whose text secret sealed it; tells a receiver which secret to open it with.
    pub epoch: u64,
    /// The author's Ed25519 public key; the signature inside must verify against it.
    pub author: PublicKey,
    /// When the author sent it, in milliseconds since the Unix epoch, by the author's clock.
    pub sent_at_ms: u64,
    /// What the body holds. Meanings are the chat feature's; this layer carries any value.
    pub kind: u8,
}

impl MessageHeader {
    /// The header's [`HEADER_LEN`] bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.channel_id.to_be_bytes());
        out[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        out[12..44].copy_from_slice(&self.author);
        out[44..52].copy_from_slice(&self.sent_at_ms.to_be_bytes());
        out[52] = self.kind;
        out
    }

    /// Reads a header; every byte string of the right length is one.
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Self {
        let (channel_id, rest) = split::<4>(bytes);
        let (epoch, rest) = split::<8>(rest);
        let (author, rest) = split::<32>(rest);
        let (sent_at_ms, rest) = split::<8>(rest);
        Self {
            channel_id: u32::from_be_bytes(channel_id),
            epoch: u64::from_be_bytes(epoch),
            author,
            sent_at_ms: u64::from_be_bytes(sent_at_ms),
            kind: rest[0],
        }
    }
}

/// The first `N` bytes of `bytes` as an array, and the rest. Callers pass slices known to be
/// long enough; a short one yields zeros rather than a panic.
fn split<const N: usize>(bytes: &[u8]) -> ([u8; N], &[u8]) {
    let (head, tail) = bytes.split_at(N.min(bytes.len()));
    let mut out = [0u8; N];
    out[..head.len()].copy_from_slice(head);
    (out, tail)
}

/// A sealed message: the clear header and message id, and the ciphertext of signature and body.
///
/// Made by [`seal_message`] or [`decode_envelope`], so its ciphertext always has a valid length;
/// [`encode_envelope`] turns it into bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMessage {
    header: MessageHeader,
    message_id: MessageId,
    /// Signature and body, encrypted, then the tag.
    ciphertext: Vec<u8>,
}

impl SealedMessage {
    /// The clear header.
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// The message id.
    pub fn message_id(&self) -> &MessageId {
        &self.message_id
    }

    /// The ciphertext: signature and body, encrypted, followed by the tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// Bytes of the encoded envelope.
    pub fn encoded_len(&self) -> usize {
        CLEAR_LEN + self.ciphertext.len()
    }

    /// The AEAD's associated data: version, header, message id.
    fn clear_part(&self) -> [u8; CLEAR_LEN] {
        clear_part(&self.header, &self.message_id)
    }
}

/// A message that authenticated and whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMessage {
    /// The header, as sealed and signed by the author.
    pub header: MessageHeader,
    /// The message id, as sealed and signed by the author.
    pub message_id: MessageId,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The body is larger than [`MAX_BODY_LEN`].
    #[error("message body of {0} bytes exceeds the {MAX_BODY_LEN}-byte limit")]
    BodyTooLong(usize),
    /// The header names another author than the signing key; nobody could open the message.
    #[error("the message header names another author than the signing key")]
    AuthorMismatch,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than an envelope with an empty body.
    #[error("text envelope of {0} bytes is shorter than the {OVERHEAD}-byte minimum")]
    TooShort(usize),
    /// Longer than an envelope with the largest body.
    #[error("text envelope of {0} bytes exceeds the {MAX_ENVELOPE_LEN}-byte maximum")]
    TooLong(usize),
    /// A format version this build does not speak.
    #[error("text envelope has version {0}, this build speaks version {ENVELOPE_VERSION}")]
    UnsupportedVersion(u8),
}

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The bytes are not an envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Authentication failed: sealed under another text secret (another group or epoch), or
    /// changed on the way.
    #[error("text message failed authentication: wrong epoch secret, or altered in transit")]
    Undecryptable,
    /// The author key in the header is not a valid Ed25519 public key.
    #[error("text message names an author key that is not a valid Ed25519 public key")]
    InvalidAuthorKey,
    /// The signature does not verify against the author key in the header: a member forged the
    /// message in someone else's name.
    #[error("text message signature does not verify against its author's key")]
    BadSignature,
}

/// Seals `body` as a message by `identity` (whose key the header names as author) with a
/// fresh random message id.
pub fn seal_message_by(
    secret: &TextSecret,
    identity: &crate::identity::Identity,
    header: &MessageHeader,
    body: &[u8],
) -> Result<SealedMessage, SealError> {
    seal_message(secret, identity.signing_key(), header, body)
}

/// Seals `body` as a message by `author` with a fresh random message id.
///
/// `header.author` must be `author`'s public key.
pub fn seal_message(
    secret: &TextSecret,
    author: &SigningKey,
    header: &MessageHeader,
    body: &[u8],
) -> Result<SealedMessage, SealError> {
    let mut message_id = [0u8; MESSAGE_ID_LEN];
    rand::rngs::OsRng.fill_bytes(&mut message_id);
    seal_message_with_id(secret, author, header, body, message_id)
}

/// [`seal_message`] with a chosen message id, for test vectors only.
///
/// Sealing two messages under one id and secret reuses a key and nonce: never do it outside
/// tests.
#[doc(hidden)]
pub fn seal_message_with_id(
    secret: &TextSecret,
    author: &SigningKey,
    header: &MessageHeader,
    body: &[u8],
    message_id: MessageId,
) -> Result<SealedMessage, SealError> {
    if body.len() > MAX_BODY_LEN {
        return Err(SealError::BodyTooLong(body.len()));
    }
    if author.verifying_key().to_bytes() != header.author {
        return Err(SealError::AuthorMismatch);
    }
    let signature = author.sign(&signature_input(header, &message_id, body));
    Ok(seal_signed(
        secret,
        header,
        message_id,
        &signature.to_bytes(),
        body,
    ))
}

/// Encrypts a signature and a body that the caller has checked.
fn seal_signed(
    secret: &TextSecret,
    header: &MessageHeader,
    message_id: MessageId,
    signature: &[u8; SIGNATURE_LEN],
    body: &[u8],
) -> SealedMessage {
    let mut ciphertext = Vec::with_capacity(SIGNATURE_LEN + body.len() + TAG_LEN);
    ciphertext.extend_from_slice(signature);
    ciphertext.extend_from_slice(body);
    let key = derive_text_key(secret, &message_id);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_bytes()));
    let tag = cipher
        .encrypt_in_place_detached(
            &message_nonce(),
            &clear_part(header, &message_id),
            &mut ciphertext,
        )
        .expect("bodies are bounded far below the AEAD limit");
    ciphertext.extend_from_slice(&tag);
    SealedMessage {
        header: *header,
        message_id,
        ciphertext,
    }
}

/// Decodes and opens an envelope: checks the AEAD under `secret`, then the author's signature.
pub fn open_message(secret: &TextSecret, sealed: &[u8]) -> Result<OpenedMessage, OpenError> {
    let sealed = decode_envelope(sealed)?;
    let key = derive_text_key(secret, &sealed.message_id);
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_bytes()));
    let clear = sealed.clear_part();
    let SealedMessage {
        header,
        message_id,
        ciphertext: mut plaintext,
    } = sealed;
    // decode_envelope guarantees a signature and a tag; stay total regardless.
    let Some(tag_at) = plaintext.len().checked_sub(TAG_LEN) else {
        return Err(OpenError::Undecryptable);
    };
    let tag = *Tag::from_slice(&plaintext[tag_at..]);
    plaintext.truncate(tag_at);
    cipher
        .decrypt_in_place_detached(&message_nonce(), &clear, &mut plaintext, &tag)
        .map_err(|_| OpenError::Undecryptable)?;
    let (signature, _) = split::<SIGNATURE_LEN>(&plaintext);
    let body = plaintext.split_off(SIGNATURE_LEN.min(plaintext.len()));
    let author =
        VerifyingKey::from_bytes(&header.author).map_err(|_| OpenError::InvalidAuthorKey)?;
    author
        .verify_strict(
            &signature_input(&header, &message_id, &body),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| OpenError::BadSignature)?;
    Ok(OpenedMessage {
        header,
        message_id,
        body,
    })
}

/// The envelope's bytes.
pub fn encode_envelope(sealed: &SealedMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed.encoded_len());
    out.extend_from_slice(&sealed.clear_part());
    out.extend_from_slice(&sealed.ciphertext);
    out
}

/// Reads an envelope, checking its version and length. The header can be read (to pick the
/// epoch's secret, say) before anything is decrypted.
pub fn decode_envelope(bytes: &[u8]) -> Result<SealedMessage, EnvelopeError> {
    if bytes.len() < OVERHEAD {
        return Err(EnvelopeError::TooShort(bytes.len()));
    }
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(EnvelopeError::TooLong(bytes.len()));
    }
    let (version, rest) = split::<1>(bytes);
    if version[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version[0]));
    }
    let (header, rest) = split::<HEADER_LEN>(rest);
    let (message_id, ciphertext) = split::<MESSAGE_ID_LEN>(rest);
    Ok(SealedMessage {
        header: MessageHeader::from_bytes(&header),
        message_id,
        ciphertext: ciphertext.to_vec(),
    })
}

fn clear_part(header: &MessageHeader, message_id: &MessageId) -> [u8; CLEAR_LEN] {
    let mut out = [0u8; CLEAR_LEN];
    out[0] = ENVELOPE_VERSION;
    out[1..1 + HEADER_LEN].copy_from_slice(&header.to_bytes());
    out[1 + HEADER_LEN..].copy_from_slice(message_id);
    out
}

fn signature_input(header: &MessageHeader, message_id: &MessageId, body: &[u8]) -> Vec<u8> {
    [SIGNATURE_LABEL, &header.to_bytes(), message_id, body].concat()
}

/// The all-zero nonce. Every message has a key of its own, derived from its random 128-bit
/// message id, and each key seals exactly one plaintext, so a fixed nonce never repeats under a
/// key: two messages would share a key only if their ids collided, which takes around 2^64
/// messages under one epoch secret. This saves 12 bytes per message over a random nonce.
fn message_nonce() -> Nonce {
    Nonce::default()
}

#[cfg(test)]
mod tests;
