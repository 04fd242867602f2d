//! Cost of sealing chat messages and files, against the bare primitives on the same bytes
//! measured in the same run, so the overhead reads as a ratio:
//!
//! - `text_200B`: seal, encode, decode and open a 200-byte message, against a bare
//!   ChaCha20-Poly1305 encrypt and decrypt of the same plaintext (signature and body) with the
//!   same associated data, and against that plus an Ed25519 sign and strict verify of the same
//!   signature input (the floor for a signed message).
//! - `file_1MiB`: seal (and open) 1 MiB in 64 KiB chunks, against bare ChaCha20-Poly1305 over
//!   the same 16 chunks, and against that plus the SHA-256 of the result that the manifest
//!   carries (the floor for this format).
//!
//! Run: `cargo bench -p sotto-benches --bench seal`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use sotto_net::seal::file::{CHUNK_LEN, FileOpener, FileSealer};
use sotto_net::seal::text::{
    CLEAR_LEN, HEADER_LEN, MESSAGE_ID_LEN, MessageHeader, SIGNATURE_LEN, TextSecret,
    encode_envelope, open_message, seal_message,
};

const MESSAGE_LEN: usize = 200;
const FILE_LEN: usize = 1024 * 1024;

/// Sealing and opening one chat message, with the bare primitives as baselines.
fn text(c: &mut Criterion) {
    let secret = TextSecret::from_bytes([3; 32]);
    let author = SigningKey::from_bytes(&[4; 32]);
    let header = MessageHeader {
        channel_id: 2,
        epoch: 1,
        author: author.verifying_key().to_bytes(),
        sent_at_ms: 1_700_000_000_000,
        kind: 1,
    };
    let body = [0x5a_u8; MESSAGE_LEN];
    let mut group = c.benchmark_group("text_200B");
    group.throughput(Throughput::Elements(1));

    // Baseline: the AEAD alone, encrypting and decrypting what the envelope encrypts.
    let cipher = ChaCha20Poly1305::new_from_slice(&[1; 32]).unwrap();
    let aad = [0u8; CLEAR_LEN];
    let mut buffer = vec![0x5a_u8; SIGNATURE_LEN + MESSAGE_LEN];
    group.bench_function("baseline_chacha20poly1305_encrypt_decrypt", |b| {
        b.iter(|| {
            let nonce = Nonce::default();
            let tag = cipher
                .encrypt_in_place_detached(&nonce, black_box(&aad), black_box(&mut buffer[..]))
                .unwrap();
            cipher
                .decrypt_in_place_detached(&nonce, &aad, &mut buffer[..], &tag)
                .unwrap();
        })
    });

    // Baseline: the AEAD plus an Ed25519 signature and its strict verification.
    let verifying = author.verifying_key();
    let label = b"sotto/1 text signature".len();
    let signature_input = vec![0x5a_u8; label + HEADER_LEN + MESSAGE_ID_LEN + MESSAGE_LEN];
    group.bench_function("baseline_chacha20poly1305_plus_ed25519", |b| {
        b.iter(|| {
            let signature = author.sign(black_box(&signature_input));
            let nonce = Nonce::default();
            let tag = cipher
                .encrypt_in_place_detached(&nonce, black_box(&aad), black_box(&mut buffer[..]))
                .unwrap();
            cipher
                .decrypt_in_place_detached(&nonce, &aad, &mut buffer[..], &tag)
                .unwrap();
            verifying
                .verify_strict(&signature_input, &signature)
                .unwrap();
        })
    });

    group.bench_function("seal_and_open", |b| {
        b.iter(|| {
            let sealed = seal_message(&secret, &author, &header, black_box(&body)).unwrap();
            let bytes = encode_envelope(&sealed);
            black_box(open_message(&secret, black_box(&bytes)).unwrap());
        })
    });
    group.finish();
}

/// Sealing and opening a 1 MiB file, with the bare AEAD over the same chunks as the baseline.
fn file(c: &mut Criterion) {
    let plaintext = vec![0x5a_u8; FILE_LEN];
    let mut group = c.benchmark_group("file_1MiB");
    group.throughput(Throughput::Bytes(FILE_LEN as u64));

    let cipher = ChaCha20Poly1305::new_from_slice(&[1; 32]).unwrap();
    let mut buffer = plaintext.clone();
    group.bench_function("baseline_chacha20poly1305_encrypt", |b| {
        b.iter(|| {
            for (index, chunk) in buffer.chunks_mut(CHUNK_LEN).enumerate() {
                let mut nonce = [0u8; 12];
                nonce[7..11].copy_from_slice(&(index as u32).to_be_bytes());
                let tag = cipher
                    .encrypt_in_place_detached(&Nonce::from(nonce), &[], black_box(chunk))
                    .unwrap();
                black_box(tag);
            }
        })
    });

    // Baseline: the same, plus the SHA-256 of the sealed bytes that the manifest carries.
    group.bench_function("baseline_chacha20poly1305_encrypt_plus_sha256", |b| {
        b.iter(|| {
            let mut hasher = Sha256::new();
            for (index, chunk) in buffer.chunks_mut(CHUNK_LEN).enumerate() {
                let mut nonce = [0u8; 12];
                nonce[7..11].copy_from_slice(&(index as u32).to_be_bytes());
                let tag = cipher
                    .encrypt_in_place_detached(&Nonce::from(nonce), &[], black_box(chunk))
                    .unwrap();
                hasher.update(&*chunk);
                hasher.update(tag);
            }
            black_box(hasher.finalize());
        })
    });

    let mut sealed = Vec::with_capacity(FILE_LEN + 1024);
    group.bench_function("seal", |b| {
        b.iter(|| {
            sealed.clear();
            let manifest = FileSealer::new(black_box(&plaintext[..]))
                .seal_to(&mut sealed)
                .unwrap();
            black_box(manifest);
        })
    });

    sealed.clear();
    let manifest = FileSealer::new(&plaintext[..])
        .seal_to(&mut sealed)
        .unwrap();
    group.bench_function("open", |b| {
        b.iter(|| {
            let len = FileOpener::new(&manifest)
                .open_to(black_box(&sealed[..]), std::io::sink())
                .unwrap();
            black_box(len);
        })
    });
    group.finish();
}

criterion_group!(benches, text, file);
criterion_main!(benches);
