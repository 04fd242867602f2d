//! Echo cancellation in a synthetic room: attenuation with only the far end talking, and the
//! near-end talker kept audible when both talk.

mod common;

use common::*;
use sotto_media::frame::power_db;
use sotto_media::send::EchoCanceller;

/// Runs far-end playback and microphone through the canceller frame by frame.
fn cancel(far: &[f32], mic: &[f32]) -> Vec<f32> {
    let mut canceller = EchoCanceller::new();
    let mut out = Vec::new();
    for (far_frame, mut mic_frame) in frames(far).into_iter().zip(frames(mic)) {
        canceller.render(&far_frame);
        canceller.process(&mut mic_frame);
        out.extend_from_slice(&mic_frame);
    }
    out
}

#[test]
fn far_end_only_echo_is_attenuated_35_db_within_2_seconds() {
    let mut far = speech(0, 8, 0.1);
    scale_to(&mut far, -20.0);
    let echo = convolve(&far, &room_response(11));
    let mic = add(&echo, &room_noise(echo.len(), -75.0, 5));
    let out = cancel(&far, &mic);
    let after_convergence = 2 * RATE..out.len();
    let erle =
        power_db(power(&mic, after_convergence.clone())) - power_db(power(&out, after_convergence));
    println!("ERLE after 2 s: {erle:.1} dB");
    assert!(
        erle >= 35.0,
        "echo return loss enhancement only {erle:.1} dB"
    );
}

#[test]
fn near_end_talker_survives_double_talk_within_6_db() {
    let mut far = speech(0, 8, 0.1);
    scale_to(&mut far, -20.0);
    let echo = convolve(&far, &room_response(11));
    // The near end starts talking at 5 s, once the canceller has converged.
    let start = 5 * RATE;
    let mut near_speech = speech(4, 3, 0.1);
    scale_to(&mut near_speech, -26.0);
    let mut near = vec![0.0f32; echo.len()];
    for (slot, sample) in near[start..].iter_mut().zip(&near_speech) {
        *slot = *sample;
    }
    let mic = add(&add(&echo, &near), &room_noise(echo.len(), -75.0, 5));
    let out = cancel(&far, &mic);
    let double_talk = start..(start + near_speech.len()).min(out.len());
    let kept = power_db(power(&out, double_talk.clone())) - power_db(power(&near, double_talk));
    println!("near-end level through double talk: {kept:+.1} dB");
    assert!(
        kept.abs() <= 6.0,
        "near-end talker level changed by {kept:+.1} dB in double talk"
    );
}
