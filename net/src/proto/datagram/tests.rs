use super::*;
use crate::crypto::{SenderContext, derive_media_key};

fn key(salt: u8) -> MediaKey {
    let sender = SenderContext {
        channel_id: 2,
        public_key: [4; 32],
        session_salt: [salt; 16],
    };
    derive_media_key(&[9; 32], &sender, 0)
}

#[test]
fn overhead_is_at_most_24_bytes() {
    const { assert!(OVERHEAD <= 24) };
    let mut sealer = MediaSealer::new(&key(1), 0, 3);
    let mut out = Vec::new();
    sealer
        .seal(StreamKind::Voice, &[0u8; 160], &mut out)
        .unwrap();
    assert_eq!(out.len(), 160 + OVERHEAD);
}

#[test]
fn seal_then_open_round_trips_and_counts_up() {
    let mut sealer = MediaSealer::new(&key(1), 7, 3);
    let opener = MediaOpener::new(&key(1));
    let mut out = Vec::new();
    for expected in 0..3u32 {
        let header = sealer
            .seal(StreamKind::Voice, b"opus frame", &mut out)
            .unwrap();
        assert_eq!(
            header,
            MediaHeader {
                stream: StreamKind::Voice,
                key_id: 7,
                sender: 3,
                counter: expected
            }
        );
        let parsed = MediaHeader::parse(&out).unwrap();
        assert_eq!(parsed, header);
        let len = opener.open_in_place(&parsed, &mut out).unwrap();
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + len], b"opus frame");
    }
    // Streams count independently.
    let header = sealer.seal(StreamKind::Screen, b"x", &mut out).unwrap();
    assert_eq!(header.counter, 0);
}

#[test]
fn any_flipped_bit_fails_authentication() {
    let mut sealer = MediaSealer::new(&key(1), 0, 3);
    let opener = MediaOpener::new(&key(1));
    let mut sealed = Vec::new();
    sealer
        .seal(StreamKind::Voice, b"hello there", &mut sealed)
        .unwrap();
    for byte in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[byte] ^= 0x01;
        let outcome = MediaHeader::parse(&tampered)
            .map_err(OpenError::from)
            .and_then(|header| opener.open_in_place(&header, &mut tampered));
        assert!(outcome.is_err(), "flipping byte {byte} went unnoticed");
    }
}

#[test]
fn another_join_key_cannot_open() {
    let mut sealer = MediaSealer::new(&key(1), 0, 3);
    let mut sealed = Vec::new();
    let header = sealer
        .seal(StreamKind::Voice, b"secret", &mut sealed)
        .unwrap();
    assert_eq!(
        MediaOpener::new(&key(2)).open_in_place(&header, &mut sealed),
        Err(OpenError::Forged)
    );
}

#[test]
fn malformed_headers_are_rejected() {
    assert_eq!(
        MediaHeader::parse(&[0x40; 10]),
        Err(HeaderError::TooShort(10))
    );
    assert_eq!(
        MediaHeader::parse(&[0x40; 2000]),
        Err(HeaderError::TooLong(2000))
    );
    let mut bytes = [0u8; 30];
    bytes[0] = 0x80; // version 2
    assert_eq!(
        MediaHeader::parse(&bytes),
        Err(HeaderError::UnsupportedVersion(2))
    );
    bytes[0] = 0x40 | 0x01;
    assert_eq!(MediaHeader::parse(&bytes), Err(HeaderError::ReservedBits));
    bytes[0] = 0x40 | (9 << 2);
    assert_eq!(
        MediaHeader::parse(&bytes),
        Err(HeaderError::UnknownStream(9))
    );
}

#[test]
fn oversized_payload_is_refused() {
    let mut sealer = MediaSealer::new(&key(1), 0, 3);
    let mut out = Vec::new();
    assert_eq!(
        sealer.seal(StreamKind::Voice, &vec![0; MAX_PAYLOAD_LEN + 1], &mut out),
        Err(SealError::PayloadTooLong(MAX_PAYLOAD_LEN + 1))
    );
}
