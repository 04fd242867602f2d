//! The whole voice path in real time, on sound devices or files: the engine captures, cleans
//! and encodes; a simulated network (loss, jitter) hands each packet back to the same engine as
//! a remote speaker, which decodes and plays it. With a microphone and speakers it is a voice
//! check that sounds the way the others in a call will hear you.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::engine::{Engine, EngineCommand, EngineConfig, EngineError, EngineEvent, Meters};
use crate::jitter::JitterStats;
use crate::loopback::{Draw, NetworkModel};
use crate::send::StageToggles;

/// The speaker slot the engine hears itself as.
const SELF_SPEAKER: u16 = 1;

/// A real-time loopback run.
#[derive(Debug, Clone)]
pub struct LiveLoopback {
    /// The engine: source, sink, profile, gate and encoder.
    pub engine: EngineConfig,
    /// Which send stages run (the profile's when `None`).
    pub toggles: Option<StageToggles>,
    /// What the simulated network does to packets.
    pub network: NetworkModel,
    /// How long to run; `None` runs until a file source ends or `stop` is set.
    pub duration: Option<Duration>,
}

/// What a real-time loopback run measured.
#[derive(Debug, Clone, Default)]
pub struct LiveOutcome {
    /// Packets the engine sent.
    pub packets_sent: u64,
    /// Packets the network dropped.
    pub packets_lost: u64,
    /// The receiving side's jitter buffer at the end.
    pub jitter: JitterStats,
    /// The engine's last meters (levels, underruns, overruns).
    pub meters: Meters,
    /// Device events seen (a device lost, recovered or followed), as text.
    pub device_events: Vec<String>,
}

/// Runs the loopback until its duration passes, a file source ends, or `stop` is set.
pub fn run_live(config: LiveLoopback, stop: &AtomicBool) -> Result<LiveOutcome, EngineError> {
    let engine = Engine::start(config.engine)?;
    if let Some(toggles) = config.toggles {
        engine.command(EngineCommand::SetToggles(toggles));
    }
    let started = Instant::now();
    let network = config.network;
    let mut draw = Draw::new(network.seed);
    // Packets on their way back, earliest due first.
    let mut in_flight: BinaryHeap<Reverse<(Instant, u32, Bytes)>> = BinaryHeap::new();
    let mut outcome = LiveOutcome::default();
    loop {
        if stop.load(Ordering::Relaxed)
            || config
                .duration
                .is_some_and(|limit| started.elapsed() >= limit)
        {
            break;
        }
        let mut ended = false;
        while let Some(event) = engine.try_event() {
            match event {
                EngineEvent::Meters(meters) => outcome.meters = meters,
                EngineEvent::SourceEnded => ended = true,
                EngineEvent::Device(device) => outcome.device_events.push(format!("{device:?}")),
            }
        }
        if ended {
            break;
        }
        let wait = in_flight
            .peek()
            .map_or(Duration::from_millis(5), |Reverse((due, _, _))| {
                due.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(5));
        // The engine ended on its own: `stop` below reports why.
        let Ok(sent) = engine.next_outgoing(wait) else {
            break;
        };
        if let Some(frame) = sent {
            // The sender's counter wraps, as a real sender's does.
            let seq = outcome.packets_sent as u32;
            outcome.packets_sent += 1;
            if draw.unit() * 100.0 < network.loss_percent {
                outcome.packets_lost += 1;
            } else {
                let delay = network.base_delay + network.jitter.mul_f64(draw.unit());
                in_flight.push(Reverse((Instant::now() + delay, seq, frame.payload)));
            }
        }
        while in_flight
            .peek()
            .is_some_and(|Reverse((due, _, _))| *due <= Instant::now())
        {
            if let Some(Reverse((_, seq, payload))) = in_flight.pop() {
                engine.push_incoming(SELF_SPEAKER, seq, payload);
            }
        }
    }
    if let Some(stats) = outcome.meters.jitter.get(&SELF_SPEAKER) {
        outcome.jitter = *stats;
    }
    engine.stop()?;
    Ok(outcome)
}
