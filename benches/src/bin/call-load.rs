//! `call-load`: CPU per participant in an N-person voice call on one machine.
//!
//! A relay runs on its own runtime (threads named `relay`); N clients (network threads named
//! `client`) each drive a media engine (audio threads `sotto-audio`) speaking recorded speech
//! from alsa-utils with an open mic — everyone talks at once, the worst case — while every
//! engine decodes and mixes everyone else. CPU time per thread group comes from /proc.
//!
//! Run: `cargo run --release -p sotto-benches --bin call-load -- [--people 10] [--seconds 10]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use sotto_benches::cpu::thread_cpu_seconds;
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{AudioSink, AudioSource, Engine, EngineConfig};
use sotto_media::send::{GateMode, Profile};
use sotto_media::test_support::{ALSA_SPEECH_CLIPS, alsa_clip};
use sotto_net::client::{Client, ClientEvent, ClientOptions};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::ChannelKind;
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let people = arg("--people", 10)? as usize;
    let seconds = arg("--seconds", 10)?;
    let relay_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay")
        .enable_all()
        .build()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("client")
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("relay"));
    let report = data.initialize(&InitOptions {
        server_name: "load".into(),
        public_address: "127.0.0.1:7878".into(),
    })?;
    let relay = relay_runtime.block_on(RelayHandle::spawn(
        &data,
        RelayConfig {
            listen: "127.0.0.1:0".parse()?,
            ..RelayConfig::default()
        },
    ))?;
    let owner = InviteLink {
        port: relay.local_addr().port(),
        ..report.owner_link
    };

    // Speech for everyone: alsa-utils' recordings, looped to the run length.
    let mut speech = Vec::new();
    for clip in &ALSA_SPEECH_CLIPS[..6] {
        speech.extend(alsa_clip(clip));
    }
    let total = (seconds as usize + 2) * 48_000;
    let looped: Vec<f32> = speech.iter().copied().cycle().take(total).collect();
    let talk = dir.path().join("talk.wav");
    sotto_media::wav::write_mono(&talk, &looped)?;

    let done = Arc::new(AtomicBool::new(false));
    let mut engines = Vec::new();
    client_runtime.block_on(async {
        let (first, mut first_events) = Client::start(ClientOptions::from_link(
            owner.clone(),
            Identity::generate(),
            "p0",
        )?)?;
        let channels = loop {
            if let Some(ClientEvent::Connected { channels, .. }) = first_events.recv().await {
                break channels;
            }
        };
        let voice = channels
            .iter()
            .find(|c| c.kind == ChannelKind::Voice)
            .context("voice channel")?
            .id;
        let invite = first.create_invite(None, None).await?;
        let mut clients = vec![(first, first_events)];
        for index in 1..people {
            let (client, mut events) = Client::start(ClientOptions::from_link(
                invite.clone(),
                Identity::generate(),
                format!("p{index}"),
            )?)?;
            while !matches!(events.recv().await, Some(ClientEvent::Connected { .. })) {}
            clients.push((client, events));
        }
        for (client, events) in clients {
            client.join_voice(voice).await?;
            let engine = Arc::new(Engine::start(EngineConfig {
                source: AudioSource::File {
                    path: talk.clone(),
                    paced: true,
                },
                sink: AudioSink::Discard,
                profile: Profile::Speakers,
                gate: GateMode::Open,
                encoder: EncoderSettings::default(),
            })?);
            let (sender_engine, sender_client, stop) =
                (engine.clone(), client.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The talker's file has ended (or its engine failed): stop sending.
                    let Ok(sent) = sender_engine.next_outgoing(Duration::from_millis(20)) else {
                        break;
                    };
                    if let Some(frame) = sent {
                        let _ = sender_client.send_media(StreamKind::Voice, &frame.payload);
                    }
                }
            });
            let receiver_engine = engine.clone();
            tokio::spawn(async move {
                let mut events = events;
                while let Some(event) = events.recv().await {
                    if let ClientEvent::Media(frame) = event {
                        receiver_engine.push_incoming(
                            frame.sender_slot,
                            frame.counter,
                            frame.payload,
                        );
                    }
                }
            });
            engines.push((engine, client));
        }
        anyhow::Ok(())
    })?;

    // Warm up, then measure.
    std::thread::sleep(Duration::from_secs(1));
    let before = [
        thread_cpu_seconds("relay"),
        thread_cpu_seconds("client"),
        thread_cpu_seconds("sotto-audio"),
    ];
    std::thread::sleep(Duration::from_secs(seconds));
    let after = [
        thread_cpu_seconds("relay"),
        thread_cpu_seconds("client"),
        thread_cpu_seconds("sotto-audio"),
    ];
    let per = |i: usize| (after[i] - before[i]) / seconds as f64 * 100.0;
    let received: u64 = engines
        .iter()
        .map(|(_, client)| client.stats().datagrams_received)
        .sum();
    println!("{people} people all talking for {seconds} s (open mic, AEC + NS + AGC + Opus each):");
    println!(
        "  relay:             {:>5.1}% of a core in all = {:.2}% per participant",
        per(0),
        per(0) / people as f64
    );
    println!(
        "  client network:    {:>5.1}% in all = {:.2}% per participant",
        per(1),
        per(1) / people as f64
    );
    println!(
        "  client audio:      {:>5.1}% in all = {:.2}% per participant",
        per(2),
        per(2) / people as f64
    );
    println!("  datagrams received by clients: {received}");
    done.store(true, Ordering::Relaxed);
    drop(engines);
    relay_runtime.block_on(relay.shutdown());
    Ok(())
}
