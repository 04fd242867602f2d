//! Any bytes received as a text envelope: decoding and opening never panic, whatever decodes
//! re-encodes to the same bytes, and nothing opens under a secret the fuzzer does not know.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_net::seal::text::{TextSecret, decode_envelope, encode_envelope, open_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = decode_envelope(data) {
        assert_eq!(
            encode_envelope(&sealed),
            data,
            "a decoded envelope re-encodes to its bytes"
        );
    }
    let secret = TextSecret::from_bytes([7; 32]);
    assert!(
        open_message(&secret, data).is_err(),
        "random bytes never open"
    );
});
