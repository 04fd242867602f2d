//! Any bytes received as a file manifest, and any bytes then offered as the sealed file:
//! decoding and opening never panic, a decoded manifest re-encodes to its bytes, and random
//! bytes never open as a file sealed under a key the fuzzer does not choose.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_net::seal::file::{
    FileOpener, MANIFEST_LEN, MANIFEST_VERSION, decode_manifest, encode_manifest,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = decode_manifest(data) {
        assert_eq!(
            encode_manifest(&manifest).as_slice(),
            data,
            "a manifest re-encodes"
        );
        let _ = manifest.sealed_len();
    }

    // The first bytes as a manifest of the fuzzer's making, the rest as the sealed file.
    let (head, sealed) = data.split_at(MANIFEST_LEN.min(data.len()));
    if let Ok(manifest) = decode_manifest(head) {
        let _ = FileOpener::new(&manifest).open_chunk(sealed);
        let _ = FileOpener::new(&manifest).open_to(sealed, std::io::sink());
    }

    // The first two bytes as the length of a file under a fixed key, the rest as its chunks.
    let [high, low, sealed @ ..] = data else {
        return;
    };
    let mut bytes = [0x5a; MANIFEST_LEN];
    bytes[0] = MANIFEST_VERSION;
    bytes[40..48].copy_from_slice(&u64::from(u16::from_be_bytes([*high, *low])).to_be_bytes());
    let manifest = decode_manifest(&bytes).expect("a valid manifest");
    let mut opener = FileOpener::new(&manifest);
    let mut rest = sealed;
    while let Some(len) = opener.next_chunk_len() {
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        if opener.open_chunk(chunk).is_err() {
            break;
        }
    }
    assert!(
        opener.finish().is_err(),
        "random bytes never open as a file"
    );
    assert!(
        FileOpener::new(&manifest)
            .open_to(sealed, std::io::sink())
            .is_err()
    );
});
