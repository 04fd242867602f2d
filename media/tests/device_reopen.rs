//! A microphone that is slow to reopen does not hold up the speakers: the engine runs on a
//! private PulseAudio server (null sinks stand in for the sound card), its capture stream is
//! killed by the server, and the reopen is made to take 500 ms.
//!
//! This binary holds one test: it points the process's environment at its own sound server.

// Edition 2024 makes setting an environment variable `unsafe` (other threads may read the
// environment at the same time); this binary's only test does it before starting any audio.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use sotto_media::FRAME_SAMPLES;
use sotto_media::codec::EncoderSettings;
use sotto_media::device::{DeviceEvent, DeviceSelector, Direction};
use sotto_media::engine::{AudioSink, AudioSource, Engine, EngineConfig, EngineEvent, Meters};
use sotto_media::send::{GateMode, Profile};
use sotto_media::test_support::{SoundServer, set_device_reopen_delay, slow_reopen_threads};

/// How long the simulated slow driver takes to open a device.
const SLOW_OPEN: Duration = Duration::from_millis(500);

/// Events until `done` says stop (or 15 s pass), with the meters among them.
fn collect(engine: &Engine, mut done: impl FnMut(&EngineEvent) -> bool) -> Vec<EngineEvent> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        while let Some(event) = engine.try_event() {
            let finished = done(&event);
            events.push(event);
            if finished {
                return events;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out; events so far: {events:?}")
}

fn meters(events: &[EngineEvent]) -> impl Iterator<Item = &Meters> {
    events.iter().filter_map(|event| match event {
        EngineEvent::Meters(meters) => Some(meters),
        _ => None,
    })
}

/// The largest gap between two frames handed to the speakers, in frames of the device's clock.
fn largest_gap_frames(events: &[EngineEvent]) -> f64 {
    let samples = meters(events)
        .map(|meters| meters.playback_gap_samples)
        .max()
        .unwrap_or(0);
    samples as f64 / FRAME_SAMPLES as f64
}

/// The index of the engine's capture stream on the server (the only one recording).
fn capture_stream_index(server: &SoundServer) -> String {
    let listing = server.pactl(&["list", "short", "source-outputs"]);
    let text = String::from_utf8_lossy(&listing.stdout).to_string();
    text.lines()
        .next()
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no capture stream on the server: {text:?}"))
        .to_owned()
}

#[test]
fn a_slow_microphone_reopen_does_not_stall_playback() {
    let server = SoundServer::start();
    for (name, value) in server.environment() {
        // SAFETY: no other thread of this binary reads the environment now (see the top).
        unsafe { std::env::set_var(name, value) };
    }
    let _running = server.keep_sink_running();
    // A second null sink whose monitor is the microphone, so the input can fail on its own.
    let mic = server.pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=mic",
        "sink_properties=device.description=Mic",
    ]);
    assert!(mic.status.success(), "{mic:?}");
    let engine = Engine::start(EngineConfig {
        source: AudioSource::Device(DeviceSelector::Named("Monitor of Mic".into())),
        sink: AudioSink::Device(DeviceSelector::Default),
        profile: Profile::Headset,
        gate: GateMode::Open,
        encoder: EncoderSettings::default(),
    })
    .unwrap();
    // One second of steady running first.
    let steady = collect(
        &engine,
        |event| matches!(event, EngineEvent::Meters(meters) if meters.frames >= 100),
    );
    let steady_gap = largest_gap_frames(&steady[steady.len().saturating_sub(10)..]);

    // From now on, every reopen takes the simulated slow driver 500 ms. The server then
    // kills the capture stream, as it does when a device goes away.
    set_device_reopen_delay(Direction::Input, SLOW_OPEN);
    let killed = server
        .command("pacmd")
        .args(["kill-source-output", &capture_stream_index(&server)])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let reopen = collect(&engine, |event| {
        matches!(
            event,
            EngineEvent::Device(DeviceEvent::Recovered {
                direction: Direction::Input,
                ..
            })
        )
    });
    // The meters of the next 100 ms cover the last frames before the recovery.
    let after = collect(&engine, |event| matches!(event, EngineEvent::Meters(_)));
    let window: Vec<EngineEvent> = reopen
        .iter()
        .skip_while(|event| {
            !matches!(
                event,
                EngineEvent::Device(DeviceEvent::Lost {
                    direction: Direction::Input
                })
            )
        })
        .chain(&after)
        .cloned()
        .collect();
    let played: Vec<u64> = meters(&window).map(|meters| meters.frames).collect();
    let (first, last) = (played.iter().min(), played.iter().max());
    let gap = largest_gap_frames(&window);
    let threads = slow_reopen_threads();
    println!(
        "steady: largest playback gap {steady_gap:.1} frames; while the microphone reopened \
         ({} slow opens of {SLOW_OPEN:?}, on {threads:?}): {} frames played, largest gap {gap:.1} frames",
        threads.len(),
        last.unwrap_or(&0) - first.unwrap_or(&0),
    );
    assert!(
        !window.is_empty(),
        "the input loss was not reported: {reopen:?}"
    );
    assert!(
        !threads.is_empty() && threads.iter().all(|thread| thread != "sotto-audio"),
        "the slow open ran on {threads:?}"
    );
    assert!(
        !window.iter().any(|event| matches!(
            event,
            EngineEvent::Device(DeviceEvent::Lost {
                direction: Direction::Output
            })
        )),
        "the speakers failed too: {window:?}"
    );
    // A stalled processing thread would leave a gap of the whole slow open: 50 frames.
    assert!(gap <= 10.0, "playback stalled for {gap:.1} frames");
    engine.stop().unwrap();
}
