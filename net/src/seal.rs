//! Sealing chat messages and files end to end.
//!
//! Both are sans-IO building blocks for the chat feature; neither knows about the relay.
//!
//! - [`text`] seals one chat message into an envelope under a key of its own, derived from the
//!   group's per-epoch [`TextSecret`] and a fresh random message id, and signs it with the
//!   author's Ed25519 key inside the ciphertext. The relay reads the header (channel, epoch,
//!   author, time, kind) and nothing else.
//! - [`file`](mod@file) seals a file of any length in 64 KiB chunks under a fresh random key
//!   with the STREAM construction, reading and writing as it goes. The [`FileManifest`] it
//!   produces (the key, the nonce prefix, the length and a hash of the sealed bytes) is what a
//!   chat message carries so that its recipients can fetch and open the file.
//!
//! The byte formats are specified in `net/PROTOCOL.md`, section "Text and files".

pub mod file;
pub mod text;

pub use file::{
    FileKey, FileManifest, FileOpenError, FileOpener, FileSealError, FileSealer, ManifestError,
    decode_manifest, encode_manifest,
};
pub use text::{
    EnvelopeError, MessageHeader, MessageId, OpenError, OpenedMessage, SealError, SealedMessage,
    TextKey, TextSecret, decode_envelope, derive_text_key, encode_envelope, open_message,
    seal_message,
};
