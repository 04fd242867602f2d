//! The `sotto-media process` command on real files.

mod common;

use std::process::Command;

use common::*;
use sotto_media::frame::{power_db, rms_dbfs};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sotto-media"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cleans_a_noisy_recording_and_keeps_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut clean: Vec<f32> = std::iter::repeat_n(0.0, RATE)
        .chain(speech(0, 2, 0.2))
        .collect();
    scale_to(&mut clean[RATE..], -26.0);
    // An odd length: not a whole number of frames.
    clean.truncate(clean.len() - 123);
    let noisy = add(&clean, &room_noise(clean.len(), -40.0, 4));
    let input = dir.path().join("mic.wav");
    let output = dir.path().join("out.wav");
    sotto_media::wav::write_mono(&input, &noisy).unwrap();

    let result = run(&[
        "process",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--no-gate",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let out = sotto_media::wav::read_mono(&output).unwrap();
    assert_eq!(out.len(), noisy.len(), "output exactly as long as input");
    let floor = RATE / 2..RATE;
    let reduction = power_db(power(&noisy, floor.clone())) - power_db(power(&out, floor));
    assert!(reduction > 15.0, "noise floor lowered by {reduction:.1} dB");
    assert!(rms_dbfs(&out[RATE..]) > -40.0, "speech is still there");
}

#[test]
fn cancels_echo_given_the_far_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut far = speech(0, 6, 0.1);
    scale_to(&mut far, -20.0);
    let mic = convolve(&far, &room_response(3));
    let (far_path, mic_path, out_path) = (
        dir.path().join("far.wav"),
        dir.path().join("mic.wav"),
        dir.path().join("out.wav"),
    );
    sotto_media::wav::write_mono(&far_path, &far).unwrap();
    sotto_media::wav::write_mono(&mic_path, &mic).unwrap();
    let args = [
        "process",
        "--input",
        mic_path.to_str().unwrap(),
        "--far",
        far_path.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
        "--no-agc",
        "--no-gate",
    ];
    let result = run(&args);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let out = sotto_media::wav::read_mono(&out_path).unwrap();
    let tail = 2 * RATE..out.len();
    let attenuation = power_db(power(&mic, tail.clone())) - power_db(power(&out, tail));
    assert!(
        attenuation > 30.0,
        "echo attenuated by only {attenuation:.1} dB"
    );
}

#[test]
fn wrong_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(&[
        "process",
        "--input",
        "/nonexistent.wav",
        "--output",
        "/tmp/x.wav",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.wav"));

    let path = dir.path().join("44k.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    writer.write_sample(0i16).unwrap();
    writer.finalize().unwrap();
    let wrong_rate = run(&[
        "process",
        "--input",
        path.to_str().unwrap(),
        "--output",
        "/tmp/x.wav",
    ]);
    let message = String::from_utf8_lossy(&wrong_rate.stderr);
    assert!(
        message.contains("44100 Hz") && message.contains("48000"),
        "{message}"
    );
}
