//! Sealed files: any length, in 64 KiB chunks, under a fresh random key, read and written as a
//! stream so that no file is ever held in memory whole.
//!
//! ```text
//! sealed file = chunk 0 ‖ chunk 1 ‖ … ‖ chunk n-1          n = max(1, ⌈plaintext length / 65,536⌉)
//! chunk i     = index i (u32 BE) ‖ ciphertext (65,536 bytes; the last chunk 0…65,536) ‖ tag (16)
//! nonce i     = nonce prefix (7) ‖ i (u32 BE) ‖ last (u8: 1 for chunk n-1, else 0)
//! manifest    = version (u8 = 1) ‖ file key (32) ‖ nonce prefix (7) ‖ plaintext length (u64 BE)
//!               ‖ SHA-256 of the sealed file (32)
//! ```
//!
//! Chunks are ChaCha20-Poly1305 with empty associated data, nonces built by the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) as implemented by
//! [`chacha20poly1305::aead::stream::StreamBE32`]: the chunk's position and a last-chunk flag
//! are in the nonce, so a chunk authenticates only at its own place, and only the real last
//! chunk authenticates as the last. An empty file is one empty last chunk; a file of exactly
//! 65,536 bytes is one full last chunk.
//!
//! The index in clear before each chunk is not needed for security (the nonce carries the
//! position, and the opener insists that the index equals the position it expects); it lets the
//! opener say *what* went wrong: a chunk repeated, skipped or moved, rather than only "failed
//! authentication". The manifest, which carries the key, travels inside a sealed text message;
//! its hash of the sealed bytes lets whoever stores or fetches the sealed file check it without
//! the key.

use std::io::{ErrorKind, Read, Write};

use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{EncryptorBE32, NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Version byte of the manifest (and of the sealed-file format it describes).
pub const MANIFEST_VERSION: u8 = 1;
/// Plaintext bytes in every chunk but the last.
pub const CHUNK_LEN: usize = 64 * 1024;
/// Bytes of the clear chunk index before each chunk.
pub const CHUNK_INDEX_LEN: usize = 4;
/// Bytes of the Poly1305 tag after each chunk.
pub const TAG_LEN: usize = 16;
/// Bytes each chunk adds to its plaintext: index and tag.
pub const CHUNK_OVERHEAD: usize = CHUNK_INDEX_LEN + TAG_LEN;
/// Bytes of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Bytes of an encoded manifest.
pub const MANIFEST_LEN: usize = 1 + 32 + NONCE_PREFIX_LEN + 8 + 32;
/// Largest file that can be sealed: 2^32 − 1 chunks (the STREAM counter is 32 bits), just under
/// 256 TiB.
pub const MAX_FILE_LEN: u64 = u32::MAX as u64 * CHUNK_LEN as u64;

/// The random part of every chunk's nonce.
pub type NoncePrefix = [u8; NONCE_PREFIX_LEN];

/// A file's ChaCha20-Poly1305 key, fresh and random for every file; wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes (for test vectors; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// What a recipient needs to open a sealed file, and to check the sealed bytes before opening.
///
/// It holds the file key: send it only inside a sealed message. Made by [`FileSealer::finish`]
/// or [`decode_manifest`], so its length is always within [`MAX_FILE_LEN`].
#[derive(Clone)]
pub struct FileManifest {
    key: FileKey,
    nonce_prefix: NoncePrefix,
    plaintext_len: u64,
    sealed_sha256: [u8; 32],
}

impl std::fmt::Debug for FileManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileManifest")
            .field("plaintext_len", &self.plaintext_len)
            .field("chunk_count", &self.chunk_count())
            .finish_non_exhaustive()
    }
}

impl FileManifest {
    /// The file key.
    pub fn key(&self) -> &FileKey {
        &self.key
    }

    /// The random first 7 bytes of every chunk's nonce.
    pub fn nonce_prefix(&self) -> &NoncePrefix {
        &self.nonce_prefix
    }

    /// Bytes of the file before sealing.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// SHA-256 of the whole sealed file, chunk indices and tags included.
    pub fn sealed_sha256(&self) -> &[u8; 32] {
        &self.sealed_sha256
    }

    /// How many chunks the sealed file has: one per started 64 KiB, and one (empty) for an empty
    /// file. Derived from the length rather than stored, so the two cannot disagree.
    pub fn chunk_count(&self) -> u32 {
        chunk_count(self.plaintext_len)
    }

    /// Bytes of the sealed file.
    pub fn sealed_len(&self) -> u64 {
        self.plaintext_len + u64::from(self.chunk_count()) * CHUNK_OVERHEAD as u64
    }

    /// Bytes of sealed chunk `index`, if the file has such a chunk.
    pub fn sealed_chunk_len(&self, index: u32) -> Option<usize> {
        let count = self.chunk_count();
        if index >= count {
            return None;
        }
        let plaintext = if index + 1 < count {
            CHUNK_LEN
        } else {
            // The remainder after the full chunks: at most CHUNK_LEN, so it fits.
            let full = u64::from(index) * CHUNK_LEN as u64;
            usize::try_from(self.plaintext_len - full).unwrap_or(CHUNK_LEN)
        };
        Some(plaintext + CHUNK_OVERHEAD)
    }
}

/// Bytes of the sealed form of a file of `plaintext_len` bytes (for lengths up to
/// [`MAX_FILE_LEN`]).
pub fn sealed_len_of(plaintext_len: u64) -> u64 {
    plaintext_len + u64::from(chunk_count(plaintext_len)) * CHUNK_OVERHEAD as u64
}

fn chunk_count(plaintext_len: u64) -> u32 {
    let count = plaintext_len.div_ceil(CHUNK_LEN as u64).max(1);
    // The constructors keep lengths within MAX_FILE_LEN, so this always fits.
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Why bytes are not a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not [`MANIFEST_LEN`] bytes.
    #[error("file manifest of {0} bytes, expected {MANIFEST_LEN}")]
    WrongLength(usize),
    /// A format version this build does not speak.
    #[error("file manifest has version {0}, this build speaks version {MANIFEST_VERSION}")]
    UnsupportedVersion(u8),
    /// A file longer than can be sealed.
    #[error("file manifest gives a length of {0} bytes, over the {MAX_FILE_LEN}-byte maximum")]
    TooLarge(u64),
}

/// The manifest's [`MANIFEST_LEN`] bytes, wiped when dropped since they hold the key.
pub fn encode_manifest(manifest: &FileManifest) -> Zeroizing<[u8; MANIFEST_LEN]> {
    let mut out = Zeroizing::new([0u8; MANIFEST_LEN]);
    out[0] = MANIFEST_VERSION;
    out[1..33].copy_from_slice(&manifest.key.0);
    out[33..40].copy_from_slice(&manifest.nonce_prefix);
    out[40..48].copy_from_slice(&manifest.plaintext_len.to_be_bytes());
    out[48..].copy_from_slice(&manifest.sealed_sha256);
    out
}

/// Reads a manifest, checking its length, version and file length.
pub fn decode_manifest(bytes: &[u8]) -> Result<FileManifest, ManifestError> {
    let bytes: &[u8; MANIFEST_LEN] = bytes
        .try_into()
        .map_err(|_| ManifestError::WrongLength(bytes.len()))?;
    let [version, rest @ ..] = bytes;
    if *version != MANIFEST_VERSION {
        return Err(ManifestError::UnsupportedVersion(*version));
    }
    let (key, rest) = rest.split_at(32);
    let (nonce_prefix, rest) = rest.split_at(NONCE_PREFIX_LEN);
    let (plaintext_len, sealed_sha256) = rest.split_at(8);
    let mut plaintext_len_bytes = [0u8; 8];
    plaintext_len_bytes.copy_from_slice(plaintext_len);
    let plaintext_len = u64::from_be_bytes(plaintext_len_bytes);
    if plaintext_len > MAX_FILE_LEN {
        return Err(ManifestError::TooLarge(plaintext_len));
    }
    let mut manifest = FileManifest {
        key: FileKey([0; 32]),
        nonce_prefix: [0; NONCE_PREFIX_LEN],
        plaintext_len,
        sealed_sha256: [0; 32],
    };
    manifest.key.0.copy_from_slice(key);
    manifest.nonce_prefix.copy_from_slice(nonce_prefix);
    manifest.sealed_sha256.copy_from_slice(sealed_sha256);
    Ok(manifest)
}

/// Why a file could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileSealError {
    /// Reading the file (or writing the sealed bytes) failed. The sealer keeps what it had read:
    /// after a transient error, calling [`FileSealer::next_chunk`] again carries on.
    #[error("cannot seal the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is longer than [`MAX_FILE_LEN`].
    #[error("the file is larger than the {MAX_FILE_LEN}-byte maximum")]
    TooLarge,
    /// [`FileSealer::finish`] was called before the last chunk was taken.
    #[error("the manifest was asked for before the whole file was sealed")]
    NotFinished,
}

/// Why a sealed file was not accepted. Every variant means the same for the caller (discard
/// what was written so far); they differ to make the cause plain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileOpenError {
    /// The sealed file ended before its last chunk: it was cut short.
    #[error("the sealed file is truncated: it ends within chunk {opened} of {chunk_count}")]
    Truncated {
        /// Chunks opened before the end (so the chunk that is missing or incomplete).
        opened: u32,
        /// Chunks the manifest promises.
        chunk_count: u32,
    },
    /// A chunk came again after it had been opened.
    #[error("chunk {index} of the sealed file appears twice")]
    Duplicated {
        /// The repeated chunk's index.
        index: u32,
    },
    /// A later chunk came where an earlier one was due: chunks were skipped or moved.
    #[error("the sealed file's chunks are out of order: chunk {found} where {expected} was due")]
    OutOfOrder {
        /// The chunk that was due.
        expected: u32,
        /// The chunk that came.
        found: u32,
    },
    /// A chunk's length is not the one its position calls for.
    #[error("chunk {index} of the sealed file is {len} bytes, expected {expected}")]
    ChunkLength {
        /// The chunk's index.
        index: u32,
        /// Its length.
        len: usize,
        /// The length the manifest calls for.
        expected: usize,
    },
    /// A chunk failed authentication: its bytes were changed.
    #[error("chunk {index} of the sealed file failed authentication: it was altered")]
    Corrupted {
        /// The chunk's index.
        index: u32,
    },
    /// Bytes follow the last chunk.
    #[error("the sealed file has bytes after its last chunk")]
    TrailingData,
    /// Every chunk authenticated, but the sealed bytes do not hash to the manifest's SHA-256:
    /// the manifest does not describe this file.
    #[error("the sealed file does not match its manifest's SHA-256")]
    HashMismatch,
    /// Reading the sealed file or writing the plaintext failed.
    #[error("cannot open the sealed file: {0}")]
    Io(#[from] std::io::Error),
}

/// The part of a chunk buffer after its clear index, as the AEAD's in-place buffer, so a chunk
/// is sealed and opened where it lies.
struct AfterIndex<'a>(&'a mut Vec<u8>);

impl AsRef<[u8]> for AfterIndex<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.get(CHUNK_INDEX_LEN..).unwrap_or_default()
    }
}

impl AsMut<[u8]> for AfterIndex<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.get_mut(CHUNK_INDEX_LEN..).unwrap_or_default()
    }
}

impl chacha20poly1305::aead::Buffer for AfterIndex<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.0.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.0.truncate(CHUNK_INDEX_LEN + len);
    }
}

fn stream_nonce(prefix: &NoncePrefix) -> &GenericArray<u8, chacha20poly1305::consts::U7> {
    GenericArray::from_slice(prefix)
}

/// Reads into `buf` until it is full or the reader ends; the bytes read. Retries interruptions.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n.min(buf.len() - filled),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Seals a file chunk by chunk as it reads it, under a fresh random key and nonce prefix.
///
/// Take the chunks with [`next_chunk`](Self::next_chunk) (or write them all with
/// [`seal_to`](Self::seal_to)), then the manifest with [`finish`](Self::finish). It holds one
/// chunk in memory.
pub struct FileSealer<R> {
    reader: R,
    key: FileKey,
    nonce_prefix: NoncePrefix,
    /// Taken to seal the last chunk; `None` once the file is sealed.
    encryptor: Option<EncryptorBE32<ChaCha20Poly1305>>,
    /// The chunk being read (index, then `filled` plaintext bytes) or the sealed chunk last
    /// handed out.
    chunk: Vec<u8>,
    /// Plaintext bytes of the next chunk read so far.
    filled: usize,
    /// A byte read past a full chunk to learn that the file goes on: the next chunk's first.
    lookahead: Option<u8>,
    next_index: u32,
    plaintext_len: u64,
    hasher: Sha256,
}

impl<R> std::fmt::Debug for FileSealer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSealer")
            .field("next_index", &self.next_index)
            .field("plaintext_len", &self.plaintext_len)
            .field("finished", &self.encryptor.is_none())
            .finish_non_exhaustive()
    }
}

impl<R: Read> FileSealer<R> {
    /// A sealer for the file `reader` yields, under a fresh random key and nonce prefix.
    pub fn new(reader: R) -> Self {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
        Self::with_key(reader, FileKey::generate(), nonce_prefix)
    }

    /// A sealer with a chosen key and nonce prefix, for test vectors only. Sealing two files
    /// under one key and prefix reuses nonces: never do it outside tests.
    #[doc(hidden)]
    pub fn with_key(reader: R, key: FileKey, nonce_prefix: NoncePrefix) -> Self {
        let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_bytes()));
        Self {
            reader,
            encryptor: Some(EncryptorBE32::from_aead(
                cipher,
                stream_nonce(&nonce_prefix),
            )),
            key,
            nonce_prefix,
            chunk: Vec::with_capacity(CHUNK_LEN + CHUNK_OVERHEAD),
            filled: 0,
            lookahead: None,
            next_index: 0,
            plaintext_len: 0,
            hasher: Sha256::new(),
        }
    }

    /// The next sealed chunk, or `None` once the last has been returned.
    ///
    /// Reads up to 64 KiB (and one byte more, to know whether this chunk is the last). After an
    /// I/O error nothing read is lost, and calling again carries on.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, FileSealError> {
        if self.encryptor.is_none() {
            return Ok(None);
        }
        // Keep bytes already read if a previous call was interrupted by an error.
        self.chunk.resize(CHUNK_INDEX_LEN + CHUNK_LEN, 0);
        if self.filled == 0
            && let Some(byte) = self.lookahead.take()
        {
            self.chunk[CHUNK_INDEX_LEN] = byte;
            self.filled = 1;
        }
        // Count each read as it lands, so an error loses nothing.
        let mut at_end = false;
        while self.filled < CHUNK_LEN {
            let space = &mut self.chunk[CHUNK_INDEX_LEN + self.filled..];
            let room = space.len();
            match self.reader.read(space) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(read) => self.filled += read.min(room),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        let last = if at_end {
            true
        } else {
            // A full chunk: it is the last only if the file ends right after it.
            let mut byte = [0u8; 1];
            let more = read_full(&mut self.reader, &mut byte)? == 1;
            if more {
                self.lookahead = Some(byte[0]);
            }
            !more
        };
        self.seal_filled(last)?;
        Ok(Some(&self.chunk))
    }

    /// Seals the `filled` plaintext bytes in the chunk buffer in place.
    fn seal_filled(&mut self, last: bool) -> Result<(), FileSealError> {
        let plaintext_len = self.plaintext_len + self.filled as u64;
        if plaintext_len > MAX_FILE_LEN {
            return Err(FileSealError::TooLarge);
        }
        self.chunk.truncate(CHUNK_INDEX_LEN + self.filled);
        self.chunk[..CHUNK_INDEX_LEN].copy_from_slice(&self.next_index.to_be_bytes());
        let mut body = AfterIndex(&mut self.chunk);
        let sealed = if last {
            match self.encryptor.take() {
                Some(encryptor) => encryptor.encrypt_last_in_place(&[], &mut body),
                None => return Err(FileSealError::NotFinished),
            }
        } else {
            match self.encryptor.as_mut() {
                Some(encryptor) => encryptor.encrypt_next_in_place(&[], &mut body),
                None => return Err(FileSealError::NotFinished),
            }
        };
        // The only failure is the STREAM counter running out.
        sealed.map_err(|_| FileSealError::TooLarge)?;
        self.hasher.update(&self.chunk);
        self.plaintext_len = plaintext_len;
        self.filled = 0;
        if !last {
            self.next_index = self
                .next_index
                .checked_add(1)
                .ok_or(FileSealError::TooLarge)?;
        }
        Ok(())
    }

    /// The manifest of the sealed file, once [`next_chunk`](Self::next_chunk) has returned
    /// `None` (or the last chunk).
    pub fn finish(self) -> Result<FileManifest, FileSealError> {
        if self.encryptor.is_some() {
            return Err(FileSealError::NotFinished);
        }
        Ok(FileManifest {
            key: self.key,
            nonce_prefix: self.nonce_prefix,
            plaintext_len: self.plaintext_len,
            sealed_sha256: self.hasher.finalize().into(),
        })
    }

    /// Seals the whole file into `out` and returns its manifest.
    pub fn seal_to(mut self, mut out: impl Write) -> Result<FileManifest, FileSealError> {
        while let Some(chunk) = self.next_chunk()? {
            out.write_all(chunk)?;
        }
        self.finish()
    }
}

/// Opens a sealed file chunk by chunk, in order, as it arrives.
///
/// Each chunk's plaintext is authentic when [`open_chunk`](Self::open_chunk) returns it, but the
/// file is known to be whole only when [`finish`](Self::finish) succeeds: until then, write the
/// plaintext somewhere temporary and throw it away on any error.
pub struct FileOpener {
    stream: StreamBE32<ChaCha20Poly1305>,
    manifest: FileManifest,
    chunk_count: u32,
    /// Chunks opened so far; the index of the chunk due next.
    next_index: u32,
    hasher: Sha256,
    /// The chunk being opened, index included.
    buffer: Vec<u8>,
}

impl std::fmt::Debug for FileOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileOpener")
            .field("next_index", &self.next_index)
            .field("chunk_count", &self.chunk_count)
            .finish_non_exhaustive()
    }
}

impl FileOpener {
    /// An opener for the file `manifest` describes.
    pub fn new(manifest: &FileManifest) -> Self {
        let cipher =
            ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(manifest.key.as_bytes()));
        Self {
            stream: StreamBE32::from_aead(cipher, stream_nonce(&manifest.nonce_prefix)),
            manifest: manifest.clone(),
            chunk_count: manifest.chunk_count(),
            next_index: 0,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(CHUNK_LEN + CHUNK_OVERHEAD),
        }
    }

    /// Bytes of the sealed chunk due next, or `None` once every chunk is open.
    pub fn next_chunk_len(&self) -> Option<usize> {
        self.manifest.sealed_chunk_len(self.next_index)
    }

    /// Opens the chunk due next and returns its plaintext.
    ///
    /// A chunk that is refused changes nothing: the right chunk can still be given after it.
    pub fn open_chunk(&mut self, sealed: &[u8]) -> Result<&[u8], FileOpenError> {
        self.buffer.clear();
        self.buffer.extend_from_slice(sealed);
        self.open_buffered()
    }

    /// Whether chunk `index` may come now.
    fn check_index(&self, index: u32) -> Result<(), FileOpenError> {
        if index < self.next_index {
            return Err(FileOpenError::Duplicated { index });
        }
        if self.next_index == self.chunk_count {
            return Err(FileOpenError::TrailingData);
        }
        if index > self.next_index {
            return Err(FileOpenError::OutOfOrder {
                expected: self.next_index,
                found: index,
            });
        }
        Ok(())
    }

    /// Opens the sealed chunk in `self.buffer` in place.
    fn open_buffered(&mut self) -> Result<&[u8], FileOpenError> {
        let Some(expected) = self.next_chunk_len() else {
            // Every chunk is open: anything more is a repeat or junk.
            if let Some(index) = self.buffer.first_chunk::<CHUNK_INDEX_LEN>() {
                self.check_index(u32::from_be_bytes(*index))?;
            }
            return Err(FileOpenError::TrailingData);
        };
        let Some(index) = self.buffer.first_chunk::<CHUNK_INDEX_LEN>() else {
            return Err(FileOpenError::ChunkLength {
                index: self.next_index,
                len: self.buffer.len(),
                expected,
            });
        };
        let index = u32::from_be_bytes(*index);
        self.check_index(index)?;
        if self.buffer.len() != expected {
            return Err(FileOpenError::ChunkLength {
                index,
                len: self.buffer.len(),
                expected,
            });
        }
        let mut hasher = self.hasher.clone();
        hasher.update(&self.buffer);
        let last = index + 1 == self.chunk_count;
        self.stream
            .decrypt_in_place(index, last, &[], &mut AfterIndex(&mut self.buffer))
            .map_err(|_| FileOpenError::Corrupted { index })?;
        self.hasher = hasher;
        self.next_index += 1;
        Ok(self.buffer.get(CHUNK_INDEX_LEN..).unwrap_or_default())
    }

    /// Checks that every chunk was opened and that the sealed bytes match the manifest's hash;
    /// the plaintext length.
    pub fn finish(self) -> Result<u64, FileOpenError> {
        if self.next_index < self.chunk_count {
            return Err(FileOpenError::Truncated {
                opened: self.next_index,
                chunk_count: self.chunk_count,
            });
        }
        if <[u8; 32]>::from(self.hasher.finalize()) != self.manifest.sealed_sha256 {
            return Err(FileOpenError::HashMismatch);
        }
        Ok(self.manifest.plaintext_len)
    }

    /// Reads the whole sealed file from `reader`, writes its plaintext to `out` and checks it
    /// is whole; the plaintext length. On error, `out` holds an authentic but incomplete prefix
    /// of the file: discard it.
    pub fn open_to(
        mut self,
        mut reader: impl Read,
        mut out: impl Write,
    ) -> Result<u64, FileOpenError> {
        let mut index = [0u8; CHUNK_INDEX_LEN];
        while let Some(len) = self.next_chunk_len() {
            if read_full(&mut reader, &mut index)? < CHUNK_INDEX_LEN {
                return Err(self.truncated());
            }
            // Judge the index before reading on, so a moved short chunk reads as moved.
            self.check_index(u32::from_be_bytes(index))?;
            self.buffer.clear();
            self.buffer.extend_from_slice(&index);
            self.buffer.resize(len, 0);
            if read_full(&mut reader, &mut self.buffer[CHUNK_INDEX_LEN..])? < len - CHUNK_INDEX_LEN
            {
                return Err(self.truncated());
            }
            out.write_all(self.open_buffered()?)?;
        }
        match read_full(&mut reader, &mut index)? {
            0 => {}
            CHUNK_INDEX_LEN => {
                self.check_index(u32::from_be_bytes(index))?;
                return Err(FileOpenError::TrailingData);
            }
            _ => return Err(FileOpenError::TrailingData),
        }
        self.finish()
    }

    fn truncated(&self) -> FileOpenError {
        FileOpenError::Truncated {
            opened: self.next_index,
            chunk_count: self.chunk_count,
        }
    }
}

#[cfg(test)]
mod tests;
