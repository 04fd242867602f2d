//! Any byte stream fed to the control-frame decoder: no panic, and whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_net::proto::control::{ControlFrame, FrameDecoder, LENGTH_PREFIX_LEN};

fuzz_target!(|data: &[u8]| {
    // Split the input in two pushes to exercise partial frames.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = FrameDecoder::new();
    decoder.push(&data[..split]);
    decoder.push(&data[split..]);
    while let Ok(Some(frame)) = decoder.poll_frame() {
        let bytes = frame.to_bytes().expect("a decoded frame re-encodes");
        assert_eq!(ControlFrame::decode(&bytes[LENGTH_PREFIX_LEN..]), Ok(frame));
    }
    let _ = ControlFrame::decode(data);
});
