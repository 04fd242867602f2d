//! Per-packet cost of sealing and opening a media datagram (160-byte Opus payload), against
//! the bare ChaCha20-Poly1305 primitive on the same bytes as the baseline.
//!
//! Run: `cargo bench -p sotto-benches --bench media_crypto`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sotto_net::crypto::{SenderContext, derive_media_key};
use sotto_net::proto::datagram::{MediaHeader, MediaOpener, MediaSealer};
use sotto_net::proto::replay::ReplayWindow;
use sotto_net::proto::{ControlFrame, StreamKind};

const PAYLOAD_LEN: usize = 160;

fn sender() -> SenderContext {
    SenderContext {
        channel_id: 2,
        public_key: [7; 32],
        session_salt: [9; 16],
    }
}

/// Sealing and opening media datagrams, with the bare AEAD as the baseline.
fn datagram(c: &mut Criterion) {
    let key = derive_media_key(&[3; 32], &sender(), 0);
    let payload = [0x5a_u8; PAYLOAD_LEN];
    let mut group = c.benchmark_group("datagram_160B");
    group.throughput(Throughput::Elements(1));

    // Baseline: the AEAD primitive alone, on the same payload with an 8-byte AAD.
    let cipher = ChaCha20Poly1305::new_from_slice(&[1; 32]).unwrap();
    let mut buffer = payload.to_vec();
    group.bench_function("baseline_chacha20poly1305_encrypt", |b| {
        b.iter(|| {
            let tag = cipher
                .encrypt_in_place_detached(
                    &Nonce::default(),
                    black_box(&[0u8; 8]),
                    black_box(&mut buffer[..]),
                )
                .unwrap();
            black_box(tag);
        })
    });

    let mut sealer = MediaSealer::new(&key, 0, 1);
    let mut out = Vec::with_capacity(256);
    group.bench_function("encode_and_encrypt", |b| {
        b.iter(|| {
            // The counter space is 2^32 per key: rekey between criterion's batches if needed.
            if sealer
                .seal(StreamKind::Voice, black_box(&payload), &mut out)
                .is_err()
            {
                sealer = MediaSealer::new(&key, 0, 1);
            }
            black_box(&out);
        })
    });

    // Pre-seal a ring of packets with increasing counters so the replay window accepts them.
    let opener = MediaOpener::new(&key);
    let mut fresh_sealer = MediaSealer::new(&key, 0, 1);
    let sealed: Vec<Vec<u8>> = (0..4096)
        .map(|_| {
            let mut datagram = Vec::new();
            fresh_sealer
                .seal(StreamKind::Voice, &payload, &mut datagram)
                .unwrap();
            datagram
        })
        .collect();
    let mut scratch = vec![0u8; 256];
    let mut index = 0usize;
    let mut window = ReplayWindow::new();
    let mut epoch = 0u64;
    group.bench_function("decrypt_and_decode", |b| {
        b.iter(|| {
            let source = &sealed[index];
            let lap = epoch;
            index += 1;
            if index == sealed.len() {
                index = 0;
                epoch += sealed.len() as u64;
            }
            let buffer = &mut scratch[..source.len()];
            buffer.copy_from_slice(source);
            let header = MediaHeader::parse(buffer).unwrap();
            // Each lap over the ring replays the same packets: offset the window's counter so
            // the check and commit run as they would on fresh traffic.
            let counter = lap + u64::from(header.counter);
            assert!(window.check(counter));
            let len = opener.open_in_place(&header, buffer).unwrap();
            window.commit(counter);
            black_box(len);
        })
    });
    group.finish();
}

/// Encoding and decoding a small control frame.
fn control(c: &mut Criterion) {
    let frame = ControlFrame::JoinVoice {
        channel_id: 2,
        session_salt: [1; 16],
    };
    let bytes = frame.to_bytes().unwrap();
    c.bench_function("control_frame_round_trip", |b| {
        b.iter(|| {
            let encoded = black_box(&frame).to_bytes().unwrap();
            black_box(ControlFrame::decode(&encoded[4..]).unwrap());
        })
    });
    black_box(bytes);
}

criterion_group!(benches, datagram, control);
criterion_main!(benches);
