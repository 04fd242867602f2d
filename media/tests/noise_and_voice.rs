//! Noise suppression and voice activity on real speech and on noise.

mod common;

use common::*;
use sotto_media::frame::{FRAME_SAMPLES, power_db, rms_dbfs};
use sotto_media::send::{NoiseSuppressor, VoiceDetector};

/// Runs the suppressor over `signal`; returns output (re-aligned by the stage's one-frame delay)
/// and per-frame voice scores.
fn suppress(signal: &[f32], enabled: bool) -> (Vec<f32>, Vec<f32>) {
    let mut suppressor = NoiseSuppressor::new();
    let mut detector = VoiceDetector::new();
    suppressor.set_enabled(enabled);
    let mut out = Vec::new();
    let mut probabilities = Vec::new();
    for mut frame in frames(signal) {
        let level = rms_dbfs(&frame);
        probabilities.push(detector.score(level, suppressor.process(&mut frame)));
        out.extend_from_slice(&frame);
    }
    let delay = NoiseSuppressor::DELAY_FRAMES * FRAME_SAMPLES;
    (out[delay..].to_vec(), probabilities)
}

#[test]
fn lowers_the_noise_floor_15_db_and_keeps_speech_within_3_db() {
    let lead = 2 * RATE;
    let clean: Vec<f32> = std::iter::repeat_n(0.0, lead)
        .chain(speech(0, 4, 0.2))
        .chain(std::iter::repeat_n(0.0, RATE))
        .collect();
    let mut clean = clean;
    scale_to(&mut clean[lead..], -26.0);
    let noise = room_noise(clean.len(), -40.0, 7);
    let noisy = add(&clean, &noise);
    let (out, _) = suppress(&noisy, true);

    // Noise floor: the noise-only lead-in after the suppressor has adapted (0.5 s onwards).
    let floor = RATE / 2..lead;
    let reduction = power_db(power(&noisy, floor.clone())) - power_db(power(&out, floor));
    // Speech: where the clean speech is loud, output energy against clean speech energy.
    let speech_range = lead..noisy.len() - RATE - FRAME_SAMPLES;
    let change =
        power_db(power(&out, speech_range.clone())) - power_db(power(&clean, speech_range));
    println!("noise floor lowered by {reduction:.1} dB; speech energy changed by {change:+.1} dB");
    assert!(
        reduction >= 15.0,
        "noise floor lowered by only {reduction:.1} dB"
    );
    assert!(
        change.abs() <= 3.0,
        "speech energy changed by {change:+.1} dB"
    );
}

#[test]
fn off_passes_audio_through_with_the_same_delay() {
    let signal = speech(1, 1, 0.0);
    let (out, _) = suppress(&signal, false);
    let skip = FRAME_SAMPLES; // the first frame crossfades from nothing
    for (index, (a, b)) in out.iter().zip(&signal).enumerate().skip(skip) {
        assert!((a - b).abs() < 1e-6, "sample {index}: {a} vs {b}");
    }
}

#[test]
fn voice_activity_flags_speech_and_not_noise() {
    // Speech at −26 dBFS over room noise at −40 dBFS, after a second of noise alone.
    let mut clips: Vec<f32> = std::iter::repeat_n(0.0, RATE)
        .chain(speech(2, 4, 0.3))
        .collect();
    scale_to(&mut clips[RATE..], -26.0);
    let noisy = add(&clips, &room_noise(clips.len(), -40.0, 9));
    let (_, probabilities) = suppress(&noisy, true);
    let loud: Vec<bool> = frames(&clips)
        .iter()
        .map(|frame| rms_dbfs(frame) > -35.0)
        .collect();
    let speech_frames = loud.iter().filter(|loud| **loud).count();
    let flagged = probabilities
        .iter()
        .zip(&loud)
        .filter(|(p, loud)| **loud && **p >= 0.5)
        .count();
    let speech_hit = flagged as f64 / speech_frames as f64;

    let mut false_alarms = 0;
    let mut noise_frames = 0;
    for noise in [room_noise(3 * RATE, -30.0, 3), recorded_noise()] {
        let (_, probabilities) = suppress(&noise, true);
        let mean = probabilities.iter().sum::<f32>() / probabilities.len() as f32;
        println!(
            "noise: mean probability {mean:.2}, {} of {} flagged",
            probabilities.iter().filter(|p| **p >= 0.5).count(),
            probabilities.len()
        );
        noise_frames += probabilities.len() - 10;
        false_alarms += probabilities.iter().skip(10).filter(|p| **p >= 0.5).count();
    }
    let false_rate = false_alarms as f64 / noise_frames as f64;
    println!(
        "voice detected in {:.0}% of speech frames, {:.1}% of noise frames",
        speech_hit * 100.0,
        false_rate * 100.0
    );
    assert!(
        speech_hit >= 0.8,
        "voice detected in only {:.0}% of speech frames",
        speech_hit * 100.0
    );
    assert!(
        false_rate <= 0.05,
        "voice detected in {:.1}% of noise frames",
        false_rate * 100.0
    );
}
