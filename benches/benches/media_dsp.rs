//! Per-10 ms-frame cost of every voice stage and of the whole send and receive chains, on
//! speech-like input. Baseline in the same run: copying a frame and taking its level, the least
//! any stage does. The real-time budget is 10 ms per frame; the goal is send + receive ≤ 300 µs.
//!
//! Run: `cargo bench -p sotto-benches --bench media_dsp`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sotto_media::codec::{EncoderSettings, PacketDuration, VoiceDecoder, VoiceEncoder};
use sotto_media::frame::{FRAME_SAMPLES, Frame, rms_dbfs};
use sotto_media::receive::{SpeakerStream, mix};
use sotto_media::send::{
    AutomaticGain, EchoCanceller, HighPass, NoiseSuppressor, Profile, SendChain, VoiceGate,
};

/// A second of a voice-like signal: a 140 Hz harmonic series, amplitude-modulated at 4 Hz,
/// plus a little noise, at about −20 dBFS.
fn voice_like() -> Vec<Frame> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let samples: Vec<f32> = (0..48_000)
        .map(|n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let t = n as f32 / 48_000.0;
            let voice: f32 = (1..12)
                .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            let envelope = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            0.08 * voice * envelope + 0.002 * ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        })
        .collect();
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|chunk| chunk.try_into().unwrap())
        .collect()
}

fn stages(c: &mut Criterion) {
    let input = voice_like();
    let mut group = c.benchmark_group("voice_frame_10ms");
    group.measurement_time(Duration::from_secs(3));
    let mut index = 0usize;
    let mut next = move || {
        index = (index + 1) % 100;
        index
    };

    group.bench_function("baseline_copy_and_level", |b| {
        b.iter(|| {
            let frame = input[next()];
            black_box(rms_dbfs(black_box(&frame)));
        })
    });
    let mut high_pass = HighPass::default();
    group.bench_function("high_pass", |b| {
        b.iter(|| {
            let mut frame = input[next()];
            high_pass.process(&mut frame);
            black_box(frame);
        })
    });
    let mut echo = EchoCanceller::new();
    group.bench_function("echo_canceller_render_and_capture", |b| {
        b.iter(|| {
            let i = next();
            echo.render(&input[(i + 50) % 100]);
            let mut frame = input[i];
            echo.process(&mut frame);
            black_box(frame);
        })
    });
    let mut noise = NoiseSuppressor::new();
    group.bench_function("noise_suppressor", |b| {
        b.iter(|| {
            let mut frame = input[next()];
            black_box(noise.process(&mut frame));
        })
    });
    let mut gain = AutomaticGain::default();
    group.bench_function("automatic_gain", |b| {
        b.iter(|| {
            let mut frame = input[next()];
            gain.process(&mut frame, true);
            black_box(frame);
        })
    });
    let mut gate = VoiceGate::default();
    group.bench_function("voice_gate", |b| {
        b.iter(|| {
            let mut frame = input[next()];
            black_box(gate.process(&mut frame, 0.9));
        })
    });
    let mut encoder = VoiceEncoder::new(EncoderSettings::default()).unwrap();
    group.bench_function("opus_encode_32k", |b| {
        b.iter(|| black_box(encoder.encode(&input[next()]).unwrap().map(<[u8]>::len)))
    });
    let packets: Vec<Bytes> = {
        let mut encoder = VoiceEncoder::new(EncoderSettings::default()).unwrap();
        input
            .iter()
            .map(|frame| Bytes::copy_from_slice(encoder.encode(frame).unwrap().unwrap()))
            .collect()
    };
    let mut decoder = VoiceDecoder::new(PacketDuration::Ms10).unwrap();
    let mut pcm = [0.0f32; FRAME_SAMPLES];
    group.bench_function("opus_decode", |b| {
        b.iter(|| {
            decoder.decode(&packets[next()], &mut pcm).unwrap();
            black_box(pcm[0]);
        })
    });

    // Whole chains.
    let mut chain = SendChain::new(Profile::Speakers);
    let mut chain_encoder = VoiceEncoder::new(EncoderSettings::default()).unwrap();
    group.bench_function("send_chain_with_aec_and_encode", |b| {
        b.iter(|| {
            let i = next();
            chain.render(&input[(i + 50) % 100]);
            let mut frame = input[i];
            let report = chain.process(&mut frame);
            black_box((
                report,
                chain_encoder.encode(&frame).unwrap().map(<[u8]>::len),
            ));
        })
    });
    let mut speakers = vec![SpeakerStream::new(PacketDuration::Ms10).unwrap()];
    let mut seq = 0u32;
    let mut out = [0.0f32; FRAME_SAMPLES];
    group.bench_function("receive_chain_jitter_decode_mix", |b| {
        b.iter(|| {
            let now = Duration::from_millis(10 * u64::from(seq));
            speakers[0].push(seq, packets[seq as usize % 100].clone(), now);
            seq += 1;
            mix(&mut speakers, now, &mut out).unwrap();
            black_box(out[0]);
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
