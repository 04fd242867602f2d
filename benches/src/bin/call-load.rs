//! `call-load`: CPU per participant in an N-person voice call on one machine.
//!
//! A relay runs on its own runtime (threads named `relay`); N clients (network threads named
//! `client`, plus each call's `sotto-send` thread) each drive a media engine (audio threads `sotto-audio`) speaking recorded speech
//! from alsa-utils with an open mic — everyone talks at once, the worst case — while every
//! engine decodes and mixes everyone else. CPU time per thread group comes from /proc.
//!
//! Run: `cargo run --release -p sotto-benches --bin call-load -- [--people 10] [--seconds 10]`

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use sotto_benches::cpu::thread_cpu_seconds;
use sotto_client::group::{GroupSetup, GroupState};
use sotto_client::{Call, CallOptions, Session};
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{AudioSink, AudioSource, EngineConfig};
use sotto_media::send::{GateMode, Profile};
use sotto_media::test_support::{ALSA_SPEECH_CLIPS, alsa_clip};
use sotto_net::client::ClientOptions;
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_relay::{RelayConfig, RelayHandle};

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

/// Connects participant `index` (its group store under `dir`) and waits until it is in the
/// server's encryption group, so its media keys are there.
async fn member(link: InviteLink, index: usize, dir: &Path) -> Result<Session> {
    let identity = Identity::generate();
    let group = GroupSetup::open(
        &dir.join(format!("group-{index}.db")),
        &identity,
        link.secret.clone(),
    )?;
    let options = ClientOptions::new(link, identity, format!("p{index}"), group.keys())?;
    let mut session = Session::connect(options, group, Duration::from_secs(15), |_| {}).await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        session
            .group
            .wait_for(|state| matches!(state, GroupState::Member { .. })),
    )
    .await
    .context("not let into the group within 30 s")??;
    Ok(session)
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
    let (relay, owner) = relay_runtime.block_on(RelayHandle::spawn_on_loopback(
        &dir.path().join("relay"),
        "load",
        RelayConfig::default(),
    ))?;

    // Speech for everyone: alsa-utils' recordings, looped to the run length.
    let mut speech = Vec::new();
    for clip in &ALSA_SPEECH_CLIPS[..6] {
        speech.extend(alsa_clip(clip));
    }
    let total = (seconds as usize + 2) * 48_000;
    let looped: Vec<f32> = speech.iter().copied().cycle().take(total).collect();
    let talk = dir.path().join("talk.wav");
    sotto_media::wav::write_mono(&talk, &looped)?;

    let mut calls = Vec::new();
    client_runtime.block_on(async {
        let first = member(owner.clone(), 0, dir.path()).await?;
        let voice = first.voice_channels().next().context("voice channel")?.id;
        let invite = first.group.create_invite(None, None).await?;
        let mut sessions = vec![first];
        for index in 1..people {
            sessions.push(member(invite.clone(), index, dir.path()).await?);
        }
        for session in sessions {
            let engine = EngineConfig {
                source: AudioSource::File {
                    path: talk.clone(),
                    paced: true,
                },
                sink: AudioSink::Discard,
                profile: Profile::Speakers,
                gate: GateMode::Open,
                encoder: EncoderSettings::default(),
            };
            let (call, events) = Call::join(session, voice, CallOptions::new(engine))
                .await
                .map_err(|failure| anyhow::anyhow!("joining: {}", failure.error))?;
            calls.push((call, events));
        }
        anyhow::Ok(())
    })?;

    // Warm up, then measure.
    std::thread::sleep(Duration::from_secs(1));
    // The client's network work: its runtime's threads and each call's send thread.
    let sample = || {
        [
            thread_cpu_seconds("relay"),
            thread_cpu_seconds("client") + thread_cpu_seconds("sotto-send"),
            thread_cpu_seconds("sotto-audio"),
            thread_cpu_seconds("sotto-send"),
        ]
    };
    let before = sample();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = sample();
    let per = |i: usize| (after[i] - before[i]) / seconds as f64 * 100.0;
    let received: u64 = calls
        .iter()
        .map(|(call, _)| call.connection_stats().datagrams_received)
        .sum();
    println!("{people} people all talking for {seconds} s (open mic, AEC + NS + AGC + Opus each):");
    println!(
        "  relay:             {:>5.1}% of a core in all = {:.2}% per participant",
        per(0),
        per(0) / people as f64
    );
    println!(
        "  client network:    {:>5.1}% in all = {:.2}% per participant (of which the send threads {:.2}%)",
        per(1),
        per(1) / people as f64,
        per(3) / people as f64
    );
    println!(
        "  client audio:      {:>5.1}% in all = {:.2}% per participant",
        per(2),
        per(2) / people as f64
    );
    println!("  datagrams received by clients: {received}");
    client_runtime.block_on(async {
        for (call, _) in calls {
            let _ = call.stop().await;
        }
    });
    relay_runtime.block_on(relay.shutdown());
    Ok(())
}
