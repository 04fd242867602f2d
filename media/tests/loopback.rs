//! The whole voice path through a simulated network: quality under loss and jitter, and the
//! algorithmic latency of the chain.

mod common;

use std::time::Duration;

use common::*;
use sotto_media::codec::EncoderSettings;
use sotto_media::loopback::{NetworkModel, run};
use sotto_media::send::{Profile, StageToggles};

fn toggles_for_quality() -> StageToggles {
    // The gate would mute the gaps between clips, which only helps; measure the codec path.
    StageToggles {
        gate: false,
        ..Profile::Headset.toggles()
    }
}

fn quality(loss_percent: f64, jitter_ms: u64) -> (f64, sotto_media::loopback::LoopbackOutcome) {
    let mut talk = speech(0, 6, 0.2);
    scale_to(&mut talk, -20.0);
    let encoder = EncoderSettings {
        expected_loss_percent: loss_percent as i32,
        ..EncoderSettings::default()
    };
    let network = NetworkModel {
        loss_percent,
        jitter: Duration::from_millis(jitter_ms),
        seed: 99,
        ..NetworkModel::default()
    };
    let outcome = run(&talk, toggles_for_quality(), encoder, network).unwrap();
    assert_eq!(outcome.output.len(), talk.len());
    let lag = best_lag(&talk, &outcome.output);
    (envelope_correlation(&talk, &outcome.output, lag), outcome)
}

#[test]
fn speech_survives_0_10_and_20_percent_loss() {
    // Thresholds set from measurement (see media/README.md), with margin.
    for (loss, threshold) in [(0.0, 0.95), (10.0, 0.90), (20.0, 0.85)] {
        let (correlation, outcome) = quality(loss, 0);
        let stats = outcome.jitter;
        println!(
            "loss {loss:>4}%: envelope correlation {correlation:.3}; lost {}, FEC {}, concealed {}",
            outcome.packets_lost, stats.recovered, stats.concealed
        );
        assert!(
            correlation >= threshold,
            "{loss}% loss: correlation {correlation:.3} < {threshold}"
        );
        if loss > 0.0 {
            assert!(stats.recovered > 0, "FEC recovered nothing at {loss}% loss");
        }
    }
}

#[test]
fn jitter_grows_the_buffer_and_speech_survives() {
    let (correlation, outcome) = quality(0.0, 40);
    println!(
        "40 ms jitter: correlation {correlation:.3}, max target {} packets",
        outcome.max_target
    );
    assert!(outcome.max_target >= 4);
    assert!(correlation >= 0.9);
}

/// Position of the loudest sample.
fn peak(signal: &[f32]) -> usize {
    signal
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0
}

fn click_track() -> Vec<f32> {
    let mut signal = vec![0.0f32; RATE];
    // A short broadband click, then silence.
    for (offset, value) in [0.9f32, -0.7, 0.5, -0.3].iter().enumerate() {
        signal[RATE / 2 + offset] = *value;
    }
    signal
}

#[test]
fn algorithmic_latency_of_process_and_loopback() {
    let input = click_track();
    let click_at = RATE / 2;
    // `process` path: the send-chain DSP alone (noise suppression bypassed, which keeps its
    // delay, so the click is not removed as noise).
    for profile in [Profile::Headset, Profile::Speakers] {
        let mut chain = sotto_media::send::SendChain::new(profile);
        chain.set_toggles(StageToggles {
            noise: false,
            gain: false,
            gate: false,
            ..profile.toggles()
        });
        let mut out = Vec::new();
        for mut frame in frames(&input) {
            chain.render(&sotto_media::frame::SILENCE);
            chain.process(&mut frame);
            out.extend_from_slice(&frame);
        }
        let delay_ms = (peak(&out) - click_at) as f64 / 48.0;
        println!("{profile:?} send DSP delay: {delay_ms:.2} ms");
        // RNNoise's one frame, plus AEC3's internal buffering with speakers.
        let bound = if profile == Profile::Headset {
            12.0
        } else {
            22.0
        };
        assert!(delay_ms <= bound, "{profile:?}: {delay_ms} ms");
    }
    // Whole loopback at 0 loss, 10 ms packets, no network delay: capture → playout.
    for profile in [Profile::Headset, Profile::Speakers] {
        let toggles = StageToggles {
            noise: false,
            gain: false,
            gate: false,
            ..profile.toggles()
        };
        let outcome = run(
            &input,
            toggles,
            EncoderSettings::default(),
            NetworkModel::default(),
        )
        .unwrap();
        let delay_ms = (peak(&outcome.output) - click_at) as f64 / 48.0;
        println!(
            "{profile:?} loopback delay (frame + DSP + Opus + jitter buffer + playout): {delay_ms:.2} ms"
        );
        assert!(delay_ms > 10.0, "at least the 10 ms frame accumulation");
        // The goals: 25 ms with a headset, 35 ms with echo cancellation (simulated clock, so
        // this is arithmetic on the chain's look-ahead, not a timing measurement).
        let goal = if profile == Profile::Headset {
            25.0
        } else {
            35.0
        };
        assert!(delay_ms <= goal, "{profile:?}: {delay_ms} ms");
        // The same by cross-correlating real speech (1 ms resolution), which Opus does not smear.
        let mut talk = speech(0, 2, 0.1);
        scale_to(&mut talk, -20.0);
        let outcome = run(
            &talk,
            toggles,
            EncoderSettings::default(),
            NetworkModel::default(),
        )
        .unwrap();
        let lag_ms = best_lag(&talk, &outcome.output) as f64 / 48.0;
        println!("{profile:?} loopback delay by speech correlation: {lag_ms:.1} ms");
        assert!(
            (lag_ms - delay_ms).abs() <= 6.0,
            "click {delay_ms} ms vs speech {lag_ms} ms"
        );
    }
}
