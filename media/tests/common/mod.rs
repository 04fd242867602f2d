//! Test material made here: real speech from Debian's alsa-utils, synthetic noise and rooms.

#![allow(dead_code, unreachable_pub)]

use sotto_media::frame::{FRAME_SAMPLES, Frame};
use sotto_media::test_support::{ALSA_SPEECH_CLIPS, alsa_clip, correlation, envelope};

pub const RATE: usize = 48_000;

/// `count` speech clips (starting at `first`), each followed by `gap` seconds of silence.
pub fn speech(first: usize, count: usize, gap: f32) -> Vec<f32> {
    let mut out = Vec::new();
    for index in 0..count {
        out.extend(alsa_clip(
            ALSA_SPEECH_CLIPS[(first + index) % ALSA_SPEECH_CLIPS.len()],
        ));
        out.extend(std::iter::repeat_n(0.0, (gap * RATE as f32) as usize));
    }
    out
}

/// The alsa-utils "Noise" recording.
pub fn recorded_noise() -> Vec<f32> {
    alsa_clip("Noise")
}

/// A small deterministic generator (xorshift), so tests are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in −1…1.
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Background noise like a room with a fan: low-passed noise, 50 Hz hum and its harmonics, and
/// keyboard-like clicks, scaled to `level_dbfs` RMS.
pub fn room_noise(samples: usize, level_dbfs: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut low = 0.0f32;
    let mut out: Vec<f32> = (0..samples)
        .map(|n| {
            let white = rng.next();
            low = 0.9 * low + 0.1 * white;
            let t = n as f32 / RATE as f32;
            let hum = 0.3 * (2.0 * std::f32::consts::PI * 50.0 * t).sin()
                + 0.15 * (2.0 * std::f32::consts::PI * 150.0 * t).sin();
            let click = if n % 9_600 < 24 {
                2.0 * rng.next()
            } else {
                0.0
            };
            low * 3.0 + 0.3 * white + hum * 0.2 + click
        })
        .collect();
    scale_to(&mut out, level_dbfs);
    out
}

/// Scales `signal` to an RMS of `level_dbfs`.
pub fn scale_to(signal: &mut [f32], level_dbfs: f64) {
    let current = sotto_media::frame::rms_dbfs(signal);
    let gain = 10f64.powf((level_dbfs - current) / 20.0) as f32;
    signal.iter_mut().for_each(|s| *s *= gain);
}

/// A synthetic room: direct path after 3 ms, then reflections decaying with RT60 = 250 ms.
/// Sparse taps as (delay in samples, gain).
pub fn room_response(seed: u64) -> Vec<(usize, f32)> {
    let mut rng = Rng::new(seed);
    let mut taps = vec![(144, 0.6)];
    let rt60 = 0.25f32;
    for _ in 0..120 {
        let delay = 200 + ((rng.next() * 0.5 + 0.5) * 0.2 * RATE as f32) as usize;
        let t = delay as f32 / RATE as f32;
        let gain = 0.35 * (-6.9 * t / rt60).exp() * rng.next();
        taps.push((delay, gain));
    }
    taps
}

/// `signal` played into `room`.
pub fn convolve(signal: &[f32], room: &[(usize, f32)]) -> Vec<f32> {
    let mut out = vec![0.0f32; signal.len()];
    for &(delay, gain) in room {
        for (index, sample) in signal.iter().enumerate() {
            if let Some(slot) = out.get_mut(index + delay) {
                *slot += gain * sample;
            }
        }
    }
    out
}

/// Splits into whole frames (dropping a partial tail).
pub fn frames(signal: &[f32]) -> Vec<Frame> {
    signal
        .chunks_exact(FRAME_SAMPLES)
        .map(|chunk| chunk.try_into().unwrap())
        .collect()
}

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Mean power of `signal[range]`.
pub fn power(signal: &[f32], range: std::ops::Range<usize>) -> f64 {
    sotto_media::frame::power(&signal[range])
}

/// Normalised cross-correlation of the 10 ms RMS envelopes of `a` and `b`, with `b` shifted
/// back by `lag` samples.
pub fn envelope_correlation(a: &[f32], b: &[f32], lag: usize) -> f64 {
    correlation(&envelope(a), &envelope(&b[lag.min(b.len())..]))
}

/// The delay in samples that best aligns `output` with `input` (searching up to 200 ms).
pub fn best_lag(input: &[f32], output: &[f32]) -> usize {
    (0..9_600)
        .step_by(48)
        .map(|lag| {
            let score: f64 = input
                .iter()
                .zip(&output[lag..])
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            (lag, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0
}

/// The delay in samples (a whole number of 10 ms frames, up to `max_frames`) at which the
/// envelope of `output` best matches that of `input`, and that correlation.
pub fn best_envelope_lag(input: &[f32], output: &[f32], max_frames: usize) -> (usize, f64) {
    (0..=max_frames)
        .map(|frame| frame * FRAME_SAMPLES)
        .filter(|lag| lag + input.len() / 2 <= output.len())
        .map(|lag| (lag, envelope_correlation(input, output, lag)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}
