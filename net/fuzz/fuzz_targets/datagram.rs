//! Any bytes received as a media datagram: header parsing, authentication and the replay
//! window never panic, and nothing unauthenticated is accepted; nor does reading the bytes as
//! a receiver report (the plaintext of stream 3) panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_net::crypto::{SenderContext, derive_media_key};
use sotto_net::proto::datagram::{MediaHeader, MediaOpener};
use sotto_net::proto::feedback::ReceiverReport;
use sotto_net::proto::replay::ReplayWindow;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = ReceiverReport::decode(data) {
        assert_eq!(report.encode(), data, "a valid report re-encodes to its bytes");
    }
    let sender = SenderContext { channel_id: 1, public_key: [2; 32], session_salt: [3; 16] };
    let opener = MediaOpener::new(&derive_media_key(&[4; 32], &sender, 0));
    let mut window = ReplayWindow::new();
    let Ok(header) = MediaHeader::parse(data) else { return };
    assert_eq!(&header.to_bytes()[..], &data[..8], "header round-trips");
    let mut buffer = data.to_vec();
    if window.check(u64::from(header.counter)) {
        // Random bytes never authenticate under a key the fuzzer does not know.
        assert!(opener.open_in_place(&header, &mut buffer).is_err());
    }
    window.commit(u64::from(header.counter));
});
