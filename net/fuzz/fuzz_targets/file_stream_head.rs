//! Any bytes received as the head of a file stream, by the relay (a request) or a client (a
//! reply): decoding never panics, and what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_net::proto::file_stream::{FileReply, FileRequest, head_len};

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.first_chunk::<4>() {
        let _ = head_len(*prefix);
    }
    if let Ok(request) = FileRequest::decode(data) {
        let mut bytes = Vec::new();
        request.encode(&mut bytes).expect("a decoded request encodes");
        assert_eq!(&bytes[4..], data, "a request re-encodes");
    }
    if let Ok(reply) = FileReply::decode(data) {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes).expect("a decoded reply encodes");
        assert_eq!(&bytes[4..], data, "a reply re-encodes");
    }
});
