//! Two engines talking through their frame queues, as the client wires them to the network:
//! A's file in, B's file out; mute, deafen and per-speaker volume take effect between frames.

mod common;

use std::time::Duration;

use common::*;
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{
    AudioSink, AudioSource, Engine, EngineClosed, EngineCommand, EngineConfig, EngineError,
    EngineEvent,
};
use sotto_media::frame::{power_db, rms_dbfs};
use sotto_media::send::{GateMode, Profile};

fn config(source: AudioSource, sink: AudioSink) -> EngineConfig {
    EngineConfig {
        source,
        sink,
        profile: Profile::Headset,
        gate: GateMode::VoiceActivity,
        encoder: EncoderSettings::default(),
    }
}

#[test]
fn a_talks_b_hears_with_meters_and_controls() {
    let dir = tempfile::tempdir().unwrap();
    let mut talk: Vec<f32> = speech(0, 3, 0.3);
    scale_to(&mut talk, -22.0);
    let (input, output) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    sotto_media::wav::write_mono(&input, &talk).unwrap();

    // A runs at real time from its file; B plays into a file, driven by a silent paced source.
    let silence = dir.path().join("quiet.wav");
    sotto_media::wav::write_mono(&silence, &vec![0.0; talk.len() + 48_000]).unwrap();
    let a = Engine::start(config(
        AudioSource::File {
            path: input,
            paced: true,
        },
        AudioSink::Discard,
    ))
    .unwrap();
    let b = Engine::start(config(
        AudioSource::File {
            path: silence,
            paced: true,
        },
        AudioSink::File(output.clone()),
    ))
    .unwrap();

    let mut seq = 0u32;
    let mut voiced_meters = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(frame)) = a.next_outgoing(Duration::from_millis(5)) {
            b.push_incoming(7, seq, frame.payload);
            seq += 1;
        }
        let mut ended = false;
        while let Some(event) = a.try_event() {
            match event {
                EngineEvent::Meters(meters) => voiced_meters += usize::from(meters.voice),
                EngineEvent::SourceEnded => ended = true,
                _ => {}
            }
        }
        if ended || std::time::Instant::now() > deadline {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut b_meters = None;
    while let Some(event) = b.try_event() {
        if let EngineEvent::Meters(meters) = event {
            b_meters = Some(meters);
        }
    }
    a.stop().unwrap();
    b.stop().unwrap();

    assert!(seq > 100, "A sent only {seq} frames");
    assert!(voiced_meters > 5, "A's meters never showed voice");
    let meters = b_meters.expect("B published meters");
    assert!(
        meters.jitter.contains_key(&7),
        "B tracked speaker 7: {meters:?}"
    );
    let heard = sotto_media::wav::read_mono(&output).unwrap();
    let loud = rms_dbfs(&heard);
    println!(
        "A sent {seq} frames; B heard {:.1} dBFS over {} samples",
        loud,
        heard.len()
    );
    assert!(loud > -45.0, "B heard almost nothing ({loud:.1} dBFS)");
}

#[test]
fn mute_stops_sending_and_speaker_volume_applies() {
    let dir = tempfile::tempdir().unwrap();
    let mut talk: Vec<f32> = speech(1, 2, 0.1);
    scale_to(&mut talk, -22.0);
    let a = open_gate_engine(dir.path(), &talk, AudioSink::Discard);
    assert!(
        a.next_outgoing(Duration::from_millis(500))
            .unwrap()
            .is_some(),
        "an open gate sends"
    );
    a.command(EngineCommand::SetMuted(true));
    // Frames encoded before the command took effect may still be queued: drain them.
    std::thread::sleep(Duration::from_millis(50));
    while a.next_outgoing(Duration::ZERO).unwrap().is_some() {}
    assert!(
        a.next_outgoing(Duration::from_millis(500))
            .unwrap()
            .is_none(),
        "a muted engine sent audio"
    );
    a.command(EngineCommand::SetMuted(false));
    assert!(
        a.next_outgoing(Duration::from_millis(500))
            .unwrap()
            .is_some(),
        "unmuting sends again"
    );
    a.stop().unwrap();

    // Per-speaker volume: the same packets, one speaker at full volume, one at a quarter.
    let mut encoded = Vec::new();
    let mut encoder = sotto_media::codec::VoiceEncoder::new(EncoderSettings::default()).unwrap();
    for frame in frames(&talk) {
        encoded.push(bytes::Bytes::copy_from_slice(
            encoder.encode(&frame).unwrap().unwrap(),
        ));
    }
    let mut levels = Vec::new();
    for gain in [1.0f32, 0.25] {
        let out = dir.path().join(format!("b{gain}.wav"));
        let silence = dir.path().join("quiet.wav");
        sotto_media::wav::write_mono(&silence, &vec![0.0; talk.len() + 24_000]).unwrap();
        let b = Engine::start(config(
            AudioSource::File {
                path: silence,
                paced: true,
            },
            AudioSink::File(out.clone()),
        ))
        .unwrap();
        b.command(EngineCommand::SetSpeakerGain { speaker: 1, gain });
        for (seq, packet) in encoded.iter().enumerate() {
            b.push_incoming(1, seq as u32, packet.clone());
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        b.stop().unwrap();
        let heard = sotto_media::wav::read_mono(&out).unwrap();
        levels.push(power_db(sotto_media::frame::power(&heard)));
    }
    let difference = levels[0] - levels[1];
    println!("volume 1.0 vs 0.25: {difference:.1} dB apart");
    assert!(
        (difference - 12.0).abs() < 1.5,
        "a quarter of the volume is 12 dB down, got {difference:.1}"
    );
}

/// Drains `engine`'s outgoing frames until it reports that it closed; how many came first.
fn frames_until_closed(engine: &Engine) -> (usize, EngineClosed) {
    let mut frames = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match engine.next_outgoing(Duration::from_millis(50)) {
            Ok(Some(_)) => frames += 1,
            Ok(None) => assert!(
                std::time::Instant::now() < deadline,
                "the engine never reported closing"
            ),
            Err(closed) => return (frames, closed),
        }
    }
}

/// An engine sending every frame of `talk` (written to a file in `dir`, played at real time,
/// gate open), then ending.
fn open_gate_engine(dir: &std::path::Path, talk: &[f32], sink: AudioSink) -> Engine {
    let input = dir.join("talk.wav");
    sotto_media::wav::write_mono(&input, talk).unwrap();
    let mut open = config(
        AudioSource::File {
            path: input,
            paced: true,
        },
        sink,
    );
    open.gate = GateMode::Open;
    Engine::start(open).unwrap()
}

/// 1.7 s of speech through [`open_gate_engine`].
fn talking_engine(dir: &std::path::Path, sink: AudioSink) -> Engine {
    open_gate_engine(dir, &speech(0, 1, 0.3), sink)
}

#[test]
fn a_panic_on_the_processing_thread_reaches_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    // 30 s: the engine is still running when the crash comes.
    let engine = open_gate_engine(dir.path(), &vec![0.1; 48_000 * 30], AudioSink::Discard);
    assert!(
        engine
            .next_outgoing(Duration::from_secs(2))
            .unwrap()
            .is_some()
    );
    // Injected: the test-only command panics on the processing thread, standing in for a bug
    // there (no input makes the real code panic on purpose).
    engine.command(EngineCommand::Crash("injected for the test".into()));
    let (frames, closed) = frames_until_closed(&engine);
    println!("after the crash: {frames} queued frames, then {closed}");
    assert_eq!(
        closed,
        EngineClosed::Crashed("injected for the test".into())
    );
    assert_eq!(engine.closed(), Some(closed));
    // Once closed, the send loop is told so at once, every time (it can end, not spin).
    assert!(engine.next_outgoing(Duration::from_secs(5)).is_err());
    match engine.stop() {
        Err(EngineError::Crashed(message)) => assert_eq!(message, "injected for the test"),
        other => panic!("stop() returned {other:?}"),
    }
}

#[test]
fn a_failure_on_the_processing_thread_reaches_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    // A real failure, not injected: the output file cannot be written when the source ends.
    let unwritable = dir.path().join("missing-directory").join("heard.wav");
    let engine = talking_engine(dir.path(), AudioSink::File(unwritable));
    let (frames, closed) = frames_until_closed(&engine);
    println!("{frames} frames, then {closed}");
    assert!(
        frames >= 90,
        "the frames made before the failure still go out: {frames}"
    );
    assert!(
        matches!(&closed, EngineClosed::Failed(message) if message.contains("heard.wav")),
        "{closed:?}"
    );
    assert!(
        matches!(engine.stop(), Err(EngineError::Wav(_))),
        "stop() returns the error itself"
    );
}

#[test]
fn a_file_source_that_ends_closes_the_engine_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = talking_engine(dir.path(), AudioSink::Discard);
    let (frames, closed) = frames_until_closed(&engine);
    assert!(frames >= 90, "{frames} frames");
    assert_eq!(closed, EngineClosed::SourceEnded);
    engine.stop().unwrap();
}
