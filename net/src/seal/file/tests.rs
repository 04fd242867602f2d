use std::io::Cursor;

use proptest::prelude::*;

use super::*;

/// A file of `len` bytes that differ from chunk to chunk.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn seal(plaintext: &[u8]) -> (Vec<u8>, FileManifest) {
    let mut sealed = Vec::new();
    let manifest = FileSealer::new(plaintext).seal_to(&mut sealed).unwrap();
    (sealed, manifest)
}

fn open(sealed: &[u8], manifest: &FileManifest) -> Result<Vec<u8>, FileOpenError> {
    let mut plaintext = Vec::new();
    let len = FileOpener::new(manifest).open_to(sealed, &mut plaintext)?;
    assert_eq!(len, plaintext.len() as u64);
    Ok(plaintext)
}

/// The sealed file cut into its chunks.
fn chunks(sealed: &[u8], manifest: &FileManifest) -> Vec<Vec<u8>> {
    let mut rest = sealed;
    let chunks: Vec<Vec<u8>> = (0..manifest.chunk_count())
        .map(|index| {
            let (chunk, tail) = rest.split_at(manifest.sealed_chunk_len(index).unwrap());
            rest = tail;
            chunk.to_vec()
        })
        .collect();
    assert!(rest.is_empty());
    chunks
}

/// A file of two full chunks and a short third one.
fn three_chunks() -> (Vec<Vec<u8>>, FileManifest) {
    let (sealed, manifest) = seal(&data(2 * CHUNK_LEN + 100));
    assert_eq!(manifest.chunk_count(), 3);
    (chunks(&sealed, &manifest), manifest)
}

#[test]
fn round_trips_at_every_chunk_boundary() {
    for (len, chunk_count) in [
        (0, 1),
        (1, 1),
        (5, 1),
        (CHUNK_LEN - 1, 1),
        (CHUNK_LEN, 1),
        (CHUNK_LEN + 1, 2),
        (2 * CHUNK_LEN, 2),
        (3 * CHUNK_LEN + 7, 4),
    ] {
        let plaintext = data(len);
        let (sealed, manifest) = seal(&plaintext);
        assert_eq!(manifest.plaintext_len(), len as u64, "{len}");
        assert_eq!(manifest.chunk_count(), chunk_count, "{len}");
        assert_eq!(manifest.sealed_len(), sealed.len() as u64, "{len}");
        assert_eq!(
            sealed.len(),
            len + chunk_count as usize * CHUNK_OVERHEAD,
            "{len}"
        );
        assert_eq!(
            <[u8; 32]>::from(Sha256::digest(&sealed)),
            *manifest.sealed_sha256()
        );
        assert_eq!(open(&sealed, &manifest).unwrap(), plaintext, "{len}");
    }
}

#[test]
fn an_empty_file_is_one_empty_last_chunk() {
    let (sealed, manifest) = seal(b"");
    assert_eq!(sealed.len(), CHUNK_OVERHEAD);
    assert_eq!(&sealed[..CHUNK_INDEX_LEN], &[0, 0, 0, 0]);
    assert_eq!(manifest.chunk_count(), 1);
    assert_eq!(open(&sealed, &manifest).unwrap(), b"");
    assert!(matches!(
        open(b"", &manifest),
        Err(FileOpenError::Truncated {
            opened: 0,
            chunk_count: 1
        })
    ));
}

#[test]
fn exactly_64_kib_is_one_full_chunk_and_one_more_byte_makes_two() {
    let (sealed, manifest) = seal(&data(CHUNK_LEN));
    assert_eq!(sealed.len(), CHUNK_LEN + CHUNK_OVERHEAD);
    assert_eq!(
        manifest.sealed_chunk_len(0),
        Some(CHUNK_LEN + CHUNK_OVERHEAD)
    );
    assert_eq!(manifest.sealed_chunk_len(1), None);
    assert_eq!(open(&sealed, &manifest).unwrap(), data(CHUNK_LEN));

    let (sealed, manifest) = seal(&data(CHUNK_LEN + 1));
    assert_eq!(
        manifest.sealed_chunk_len(0),
        Some(CHUNK_LEN + CHUNK_OVERHEAD)
    );
    assert_eq!(manifest.sealed_chunk_len(1), Some(1 + CHUNK_OVERHEAD));
    let chunks = chunks(&sealed, &manifest);
    assert_eq!(&chunks[1][..CHUNK_INDEX_LEN], &[0, 0, 0, 1]);
    assert_eq!(open(&sealed, &manifest).unwrap(), data(CHUNK_LEN + 1));
}

#[test]
fn two_sealings_of_one_file_differ() {
    let (first, first_manifest) = seal(b"same file");
    let (second, second_manifest) = seal(b"same file");
    assert_ne!(first, second);
    assert_ne!(
        first_manifest.key().as_bytes(),
        second_manifest.key().as_bytes()
    );
    assert_ne!(
        first_manifest.nonce_prefix(),
        second_manifest.nonce_prefix()
    );
    assert!(matches!(
        open(&first, &second_manifest),
        Err(FileOpenError::Corrupted { index: 0 })
    ));
}

#[test]
fn a_missing_last_chunk_is_truncation() {
    let (chunks, manifest) = three_chunks();
    let cut = chunks[..2].concat();
    assert!(matches!(
        open(&cut, &manifest),
        Err(FileOpenError::Truncated {
            opened: 2,
            chunk_count: 3
        })
    ));
    // So is a chunk cut short, or a file cut inside a chunk index.
    let whole = chunks.concat();
    for len in [whole.len() - 1, 2 * (CHUNK_LEN + CHUNK_OVERHEAD) + 2, 10] {
        let error = open(&whole[..len], &manifest).unwrap_err();
        assert!(
            matches!(error, FileOpenError::Truncated { chunk_count: 3, .. }),
            "{len}: {error}"
        );
    }
    // The sans-IO opener says the same when finished early.
    let mut opener = FileOpener::new(&manifest);
    opener.open_chunk(&chunks[0]).unwrap();
    opener.open_chunk(&chunks[1]).unwrap();
    assert!(matches!(
        opener.finish(),
        Err(FileOpenError::Truncated {
            opened: 2,
            chunk_count: 3
        })
    ));
}

#[test]
fn reordered_chunks_are_out_of_order() {
    let (chunks, manifest) = three_chunks();
    let swapped = [&chunks[1][..], &chunks[0], &chunks[2]].concat();
    assert!(matches!(
        open(&swapped, &manifest),
        Err(FileOpenError::OutOfOrder {
            expected: 0,
            found: 1
        })
    ));
    // The short last chunk moved to the front is caught before its length confuses anything.
    let moved = [&chunks[2][..], &chunks[0], &chunks[1]].concat();
    assert!(matches!(
        open(&moved, &manifest),
        Err(FileOpenError::OutOfOrder {
            expected: 0,
            found: 2
        })
    ));
    // A chunk skipped reads the same way.
    let skipped = [&chunks[0][..], &chunks[2]].concat();
    assert!(matches!(
        open(&skipped, &manifest),
        Err(FileOpenError::OutOfOrder {
            expected: 1,
            found: 2
        })
    ));
}

#[test]
fn a_chunk_relabelled_to_fit_its_new_place_fails_authentication() {
    // Chunk 1 moved to the front with its clear index rewritten to 0: the nonce still
    // carries the true position, so the chunk does not authenticate there.
    let (chunks, manifest) = three_chunks();
    let mut relabelled = chunks[1].clone();
    relabelled[..CHUNK_INDEX_LEN].copy_from_slice(&0u32.to_be_bytes());
    let forged = [&relabelled[..], &chunks[0], &chunks[2]].concat();
    assert!(matches!(
        open(&forged, &manifest),
        Err(FileOpenError::Corrupted { index: 0 })
    ));
}

#[test]
fn the_last_chunk_flag_stops_a_file_passing_for_a_shorter_one() {
    // A manifest claiming the file ends after its first chunk (same key and prefix): chunk 0
    // was sealed as "not last", so it does not open as the last.
    let (chunks, manifest) = three_chunks();
    let mut bytes = *encode_manifest(&manifest);
    bytes[40..48].copy_from_slice(&(CHUNK_LEN as u64).to_be_bytes());
    let shorter = decode_manifest(&bytes).unwrap();
    assert_eq!(shorter.chunk_count(), 1);
    assert!(matches!(
        open(&chunks[0], &shorter),
        Err(FileOpenError::Corrupted { index: 0 })
    ));
}

#[test]
fn duplicated_chunks_are_named() {
    let (chunks, manifest) = three_chunks();
    let repeated = [&chunks[0][..], &chunks[0], &chunks[1], &chunks[2]].concat();
    assert!(matches!(
        open(&repeated, &manifest),
        Err(FileOpenError::Duplicated { index: 0 })
    ));
    let last_twice = [&chunks[0][..], &chunks[1], &chunks[2], &chunks[2]].concat();
    assert!(matches!(
        open(&last_twice, &manifest),
        Err(FileOpenError::Duplicated { index: 2 })
    ));
    for junk in [&[0xff][..], &[0, 0, 0, 9], &[0, 0, 0, 3, 1, 2]] {
        let trailing = [&chunks.concat()[..], junk].concat();
        assert!(
            matches!(open(&trailing, &manifest), Err(FileOpenError::TrailingData)),
            "{junk:?}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_is_caught() {
    let (chunks, manifest) = three_chunks();
    let whole = chunks.concat();
    let chunk_len = CHUNK_LEN + CHUNK_OVERHEAD;
    for (at, index) in [
        (CHUNK_INDEX_LEN, 0),
        (chunk_len - 1, 0),
        (chunk_len + CHUNK_INDEX_LEN + 1000, 1),
        (2 * chunk_len + CHUNK_INDEX_LEN, 2),
        (whole.len() - 1, 2),
    ] {
        let mut tampered = whole.clone();
        tampered[at] ^= 0x10;
        let error = open(&tampered, &manifest).unwrap_err();
        assert!(
            matches!(error, FileOpenError::Corrupted { index: i } if i == index),
            "{at}: {error}"
        );
    }
    // A flipped bit in a clear index makes the chunk look moved or repeated.
    let mut tampered = whole.clone();
    tampered[3] ^= 0x01;
    assert!(matches!(
        open(&tampered, &manifest),
        Err(FileOpenError::OutOfOrder {
            expected: 0,
            found: 1
        })
    ));
    let mut tampered = whole.clone();
    tampered[chunk_len + 3] ^= 0x01;
    assert!(matches!(
        open(&tampered, &manifest),
        Err(FileOpenError::Duplicated { index: 0 })
    ));
}

#[test]
fn a_manifest_with_another_hash_is_refused_at_the_end() {
    let (sealed, manifest) = seal(&data(1000));
    let mut bytes = *encode_manifest(&manifest);
    bytes[MANIFEST_LEN - 1] ^= 1;
    let other = decode_manifest(&bytes).unwrap();
    assert!(matches!(
        open(&sealed, &other),
        Err(FileOpenError::HashMismatch)
    ));
}

#[test]
fn a_refused_chunk_changes_nothing() {
    let (chunks, manifest) = three_chunks();
    let mut opener = FileOpener::new(&manifest);
    assert_eq!(opener.next_chunk_len(), Some(CHUNK_LEN + CHUNK_OVERHEAD));
    assert_eq!(opener.open_chunk(&chunks[0]).unwrap(), &data(CHUNK_LEN)[..]);
    let mut corrupted = chunks[1].clone();
    corrupted[100] ^= 1;
    assert!(matches!(
        opener.open_chunk(&corrupted),
        Err(FileOpenError::Corrupted { index: 1 })
    ));
    assert!(matches!(
        opener.open_chunk(&chunks[0]),
        Err(FileOpenError::Duplicated { index: 0 })
    ));
    assert!(matches!(
        opener.open_chunk(&chunks[2]),
        Err(FileOpenError::OutOfOrder {
            expected: 1,
            found: 2
        })
    ));
    assert!(matches!(
        opener.open_chunk(&chunks[1][..100]),
        Err(FileOpenError::ChunkLength {
            index: 1,
            len: 100,
            ..
        })
    ));
    assert!(matches!(
        opener.open_chunk(&[0, 0]),
        Err(FileOpenError::ChunkLength {
            index: 1,
            len: 2,
            ..
        })
    ));
    opener.open_chunk(&chunks[1]).unwrap();
    assert_eq!(opener.open_chunk(&chunks[2]).unwrap().len(), 100);
    assert_eq!(opener.next_chunk_len(), None);
    assert!(matches!(
        opener.open_chunk(&chunks[2]),
        Err(FileOpenError::Duplicated { index: 2 })
    ));
    assert!(matches!(
        opener.open_chunk(&[1]),
        Err(FileOpenError::TrailingData)
    ));
    assert_eq!(opener.finish().unwrap(), 2 * CHUNK_LEN as u64 + 100);
}

/// Yields a few bytes at a time, interrupted and failing now and then.
struct Awkward {
    data: Cursor<Vec<u8>>,
    calls: usize,
}

impl Read for Awkward {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        match self.calls % 7 {
            3 => Err(ErrorKind::Interrupted.into()),
            5 => Err(ErrorKind::WouldBlock.into()),
            step => {
                let len = buf.len().min(step * 1000 + 1);
                self.data.read(&mut buf[..len])
            }
        }
    }
}

#[test]
fn a_reader_that_stutters_and_fails_loses_nothing() {
    let plaintext = data(3 * CHUNK_LEN + 7);
    let key = || FileKey::from_bytes([3; 32]);
    let mut expected = Vec::new();
    let expected_manifest = FileSealer::with_key(&plaintext[..], key(), [4; 7])
        .seal_to(&mut expected)
        .unwrap();

    let reader = Awkward {
        data: Cursor::new(plaintext.clone()),
        calls: 0,
    };
    let mut sealer = FileSealer::with_key(reader, key(), [4; 7]);
    let mut sealed = Vec::new();
    let mut failures = 0;
    loop {
        match sealer.next_chunk() {
            Ok(Some(chunk)) => sealed.extend_from_slice(chunk),
            Ok(None) => break,
            Err(FileSealError::Io(error)) if error.kind() == ErrorKind::WouldBlock => {
                failures += 1;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(failures > 10);
    let manifest = sealer.finish().unwrap();
    assert_eq!(sealed, expected);
    assert_eq!(
        *encode_manifest(&manifest),
        *encode_manifest(&expected_manifest)
    );
    assert_eq!(open(&sealed, &manifest).unwrap(), plaintext);
}

#[test]
fn the_manifest_waits_for_the_last_chunk() {
    let plaintext = data(CHUNK_LEN + 1);
    let mut sealer = FileSealer::new(&plaintext[..]);
    assert!(matches!(
        sealer.next_chunk(),
        Ok(Some(chunk)) if chunk.len() == CHUNK_LEN + CHUNK_OVERHEAD
    ));
    assert!(matches!(
        FileSealer::new(&plaintext[..]).finish(),
        Err(FileSealError::NotFinished)
    ));
    assert!(matches!(sealer.next_chunk(), Ok(Some(chunk)) if chunk.len() == 1 + CHUNK_OVERHEAD));
    assert!(matches!(sealer.next_chunk(), Ok(None)));
    assert!(matches!(sealer.next_chunk(), Ok(None)));
    assert_eq!(
        sealer.finish().unwrap().plaintext_len(),
        CHUNK_LEN as u64 + 1
    );
}

#[test]
fn manifests_round_trip_and_are_checked() {
    let (_, manifest) = seal(&data(CHUNK_LEN + 1));
    let bytes = encode_manifest(&manifest);
    assert_eq!(bytes[0], MANIFEST_VERSION);
    let decoded = decode_manifest(&bytes[..]).unwrap();
    assert_eq!(*encode_manifest(&decoded), *bytes);
    assert_eq!(decoded.key().as_bytes(), manifest.key().as_bytes());
    assert_eq!(decoded.nonce_prefix(), manifest.nonce_prefix());
    assert_eq!(decoded.plaintext_len(), CHUNK_LEN as u64 + 1);
    assert_eq!(decoded.sealed_sha256(), manifest.sealed_sha256());

    assert_eq!(
        decode_manifest(&bytes[..MANIFEST_LEN - 1]).unwrap_err(),
        ManifestError::WrongLength(MANIFEST_LEN - 1)
    );
    assert_eq!(
        decode_manifest(&[bytes.as_slice(), &[0]].concat()).unwrap_err(),
        ManifestError::WrongLength(MANIFEST_LEN + 1)
    );
    let mut future = *bytes;
    future[0] = 2;
    assert_eq!(
        decode_manifest(&future).unwrap_err(),
        ManifestError::UnsupportedVersion(2)
    );
    let mut largest = *bytes;
    largest[40..48].copy_from_slice(&MAX_FILE_LEN.to_be_bytes());
    let largest = decode_manifest(&largest).unwrap();
    assert_eq!(largest.chunk_count(), u32::MAX);
    assert_eq!(
        largest.sealed_chunk_len(u32::MAX - 1),
        Some(CHUNK_LEN + CHUNK_OVERHEAD)
    );
    let mut huge = *bytes;
    huge[40..48].copy_from_slice(&(MAX_FILE_LEN + 1).to_be_bytes());
    assert_eq!(
        decode_manifest(&huge).unwrap_err(),
        ManifestError::TooLarge(MAX_FILE_LEN + 1)
    );
}

#[test]
fn debug_output_hides_the_key() {
    let (_, manifest) = seal(b"x");
    let shown = format!("{manifest:?} {:?}", manifest.key());
    assert!(shown.contains("FileKey(..)"), "{shown}");
    assert!(!shown.contains("key:"), "{shown}");
}

proptest! {
    #[test]
    fn random_manifest_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(manifest) = decode_manifest(&bytes) {
            prop_assert_eq!(&encode_manifest(&manifest)[..], &bytes[..]);
            let _ = manifest.sealed_len();
            let _ = manifest.sealed_chunk_len(manifest.chunk_count() - 1);
        }
    }

    #[test]
    fn random_manifests_are_total(
        mut bytes in proptest::collection::vec(any::<u8>(), MANIFEST_LEN..=MANIFEST_LEN)
    ) {
        bytes[0] = MANIFEST_VERSION;
        if let Ok(manifest) = decode_manifest(&bytes) {
            let count = manifest.chunk_count();
            prop_assert!(count >= 1);
            prop_assert!(manifest.sealed_chunk_len(count - 1).is_some());
            prop_assert!(manifest.sealed_chunk_len(count).is_none());
        }
    }

    #[test]
    fn random_sealed_bytes_never_open(
        sealed in proptest::collection::vec(any::<u8>(), 0..200), len in 0u64..150
    ) {
        let mut bytes = [0u8; MANIFEST_LEN];
        bytes[0] = MANIFEST_VERSION;
        bytes[40..48].copy_from_slice(&len.to_be_bytes());
        let manifest = decode_manifest(&bytes).unwrap();
        prop_assert!(open(&sealed, &manifest).is_err());
        let mut opener = FileOpener::new(&manifest);
        prop_assert!(opener.open_chunk(&sealed).is_err());
    }
}
