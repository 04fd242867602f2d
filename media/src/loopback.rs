//! The whole voice path on one machine: send chain → Opus → a simulated network → jitter
//! buffer → decoder → mix, on a simulated 10 ms clock.

use std::time::Duration;

use bytes::Bytes;

use crate::codec::{CodecError, EncoderSettings, VoiceEncoder};
use crate::frame::{FRAME_SAMPLES, SILENCE};
use crate::jitter::JitterStats;
use crate::receive::{SpeakerStream, mix};
use crate::send::{SendChain, StageToggles};

/// What the simulated network does to packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkModel {
    /// Chance of losing each packet, percent.
    pub loss_percent: f64,
    /// Fixed one-way delay.
    pub base_delay: Duration,
    /// Extra delay per packet, uniform in 0..jitter.
    pub jitter: Duration,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
}

impl Default for NetworkModel {
    fn default() -> Self {
        Self {
            loss_percent: 0.0,
            base_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 1,
        }
    }
}

/// What a loopback run produced.
#[derive(Debug, Clone)]
pub struct LoopbackOutcome {
    /// What the listener heard, as long as the input.
    pub output: Vec<f32>,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets the network dropped.
    pub packets_lost: u64,
    /// The listener's jitter-buffer statistics at the end.
    pub jitter: JitterStats,
    /// Largest jitter-buffer target seen.
    pub max_target: usize,
}

/// A small deterministic generator for the network model.
pub(crate) struct Draw(u64);

impl Draw {
    /// A generator seeded with `seed` (0 counts as 1).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next draw, uniform in 0…1.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `input` through the whole voice path.
pub fn run(
    input: &[f32],
    toggles: StageToggles,
    encoder: EncoderSettings,
    network: NetworkModel,
) -> Result<LoopbackOutcome, CodecError> {
    let mut chain = SendChain::new(crate::send::Profile::Headset);
    chain.set_toggles(toggles);
    let mut voice = VoiceEncoder::new(encoder)?;
    let mut listener = vec![SpeakerStream::new(encoder.packet)?];
    let mut draw = Draw::new(network.seed);
    let mut in_flight: Vec<(Duration, u32, Bytes)> = Vec::new();
    let (mut sent, mut lost, mut max_target) = (0u64, 0u64, 0usize);
    // The listener's first 10 ms pass before any frame is captured.
    let mut output = Vec::with_capacity(input.len() + 2 * FRAME_SAMPLES);
    output.extend_from_slice(&SILENCE);
    let frames = input.len().div_ceil(FRAME_SAMPLES);
    for index in 0..frames {
        // Frame `index` is fully captured at the end of its 10 ms.
        let captured_at = Duration::from_millis(10 * (index as u64 + 1));
        let range = index * FRAME_SAMPLES..((index + 1) * FRAME_SAMPLES).min(input.len());
        let mut frame = SILENCE;
        frame[..range.len()].copy_from_slice(&input[range]);
        let report = chain.process(&mut frame);
        let packet = voice.encode(&frame)?;
        if let Some(packet) = packet.filter(|_| report.send || !toggles.gate) {
            let seq = u32::try_from(sent).expect("fewer than 2^32 packets");
            sent += 1;
            if draw.unit() * 100.0 < network.loss_percent {
                lost += 1;
            } else {
                let delay = network.base_delay + network.jitter.mul_f64(draw.unit());
                in_flight.push((captured_at + delay, seq, Bytes::copy_from_slice(packet)));
            }
        }
        // The listener plays the 10 ms starting now (output position = time).
        let now = captured_at;
        in_flight.sort_by_key(|(at, _, _)| *at);
        let arrived = in_flight.iter().take_while(|(at, _, _)| *at <= now).count();
        for (at, seq, payload) in in_flight.drain(..arrived) {
            listener[0].push(seq, payload, at);
        }
        let mut heard = SILENCE;
        mix(&mut listener, now, &mut heard)?;
        max_target = max_target.max(listener[0].stats().target);
        output.extend_from_slice(&heard);
    }
    output.truncate(input.len());
    Ok(LoopbackOutcome {
        output,
        packets_sent: sent,
        packets_lost: lost,
        jitter: listener[0].stats(),
        max_target,
    })
}
