//! `sotto voice`: join a voice channel with the media engine on devices or files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use sotto_media::codec::EncoderSettings;
use sotto_media::device::DeviceSelector;
use sotto_media::engine::{AudioSink, AudioSource, Engine, EngineConfig, EngineEvent, Meters};
use sotto_media::send::{GateMode, Profile as StageProfile, StageToggles};
use sotto_net::client::ClientEvent;
use sotto_net::proto::StreamKind;

use crate::feedback::Feedback;
use crate::ptt::KeyWatcher;
use sotto_net::proto::control::ChannelKind;

use crate::profile::Profile;
use crate::session::connect;

/// Options of `sotto voice`.
#[derive(Debug, clap::Args)]
pub(crate) struct VoiceArgs {
    /// Voice channel name. Default: the server's first voice channel.
    channel: Option<String>,
    /// Which joined server. Default: the first one joined.
    #[arg(long)]
    server: Option<String>,
    /// Microphone: a device name, `default`, or a 48 kHz WAV file to speak from.
    #[arg(long, default_value = "default")]
    input: String,
    /// Speakers: a device name, `default`, or a WAV file to record what you hear.
    #[arg(long, default_value = "default")]
    output: String,
    /// Leave after this long, e.g. `30s`, `5m`. Default: when a file input ends, else Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Talk while KEY is held, whichever window has the focus (X11): a letter, a digit,
    /// F1…F24, space, Control_R, Alt_L, Caps_Lock, …
    #[arg(long, value_name = "KEY", conflicts_with_all = ["vad", "open_mic"])]
    ptt: Option<String>,
    /// Talk when your voice is detected (the default).
    #[arg(long, conflicts_with = "open_mic")]
    vad: bool,
    /// Always send (no gate).
    #[arg(long)]
    open_mic: bool,
    /// No noise suppression.
    #[arg(long)]
    no_ns: bool,
    /// No echo cancellation (headset).
    #[arg(long)]
    no_aec: bool,
    /// Audio per packet: 10 ms (lowest latency) or 20 ms (less overhead).
    #[arg(long, default_value_t = 10)]
    packet_ms: u32,
    /// Opus bitrate, bits per second.
    #[arg(long, default_value_t = 32_000)]
    bitrate: i32,
}

fn source(text: &str) -> AudioSource {
    if text.ends_with(".wav") {
        AudioSource::File {
            path: text.into(),
            paced: true,
        }
    } else {
        AudioSource::Device(DeviceSelector::parse(text))
    }
}

fn sink(text: &str) -> AudioSink {
    if text.ends_with(".wav") {
        AudioSink::File(text.into())
    } else {
        AudioSink::Device(DeviceSelector::parse(text))
    }
}

/// Raises its flag when dropped.
struct DoneOnDrop(Arc<AtomicBool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Tells the engine when the push-to-talk key goes down and up, until `done`.
fn watch_key(watcher: &KeyWatcher, engine: &Engine, done: &AtomicBool) {
    let mut held = false;
    while !done.load(Ordering::Relaxed) {
        match watcher.is_held() {
            Ok(now) if now != held => {
                held = now;
                engine.command(sotto_media::engine::EngineCommand::PushToTalk(held));
            }
            Ok(_) => {}
            Err(error) => {
                // The display went away: release, so the microphone is not left open.
                eprintln!("push-to-talk stopped: {error:#}");
                engine.command(sotto_media::engine::EngineCommand::PushToTalk(false));
                return;
            }
        }
        std::thread::sleep(crate::ptt::POLL_INTERVAL);
    }
}

fn unix_micros(at: Instant) -> u128 {
    let now_wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (now_wall.saturating_sub(at.elapsed())).as_micros()
}

/// Runs a voice session.
pub(crate) async fn run(args: &VoiceArgs) -> Result<()> {
    // Find the push-to-talk key first: without a display there is no call to set up.
    let ptt_key = args.ptt.as_deref().map(KeyWatcher::connect).transpose()?;
    let profile = Profile::open()?;
    let saved = profile.server(args.server.as_deref())?;
    let mut session = connect(&profile, &saved).await?;
    let voice_channels: Vec<_> = session
        .channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Voice)
        .collect();
    let channel = match &args.channel {
        Some(name) => voice_channels
            .iter()
            .find(|c| c.name == *name)
            .with_context(|| {
                format!(
                    "no voice channel \"{name}\" on {}; `sotto channels` lists them",
                    saved.name
                )
            })?,
        None => voice_channels
            .first()
            .with_context(|| format!("{} has no voice channel", saved.name))?,
    };
    session.client.join_voice(channel.id).await?;
    let own_slot = loop {
        match tokio::time::timeout(Duration::from_secs(10), session.events.recv()).await {
            Ok(Some(ClientEvent::VoiceJoined { slot, .. })) => break slot,
            Ok(Some(ClientEvent::RequestFailed { message, .. })) => {
                bail!("could not join #{}: {message}", channel.name)
            }
            Ok(Some(_)) => {}
            _ => bail!(
                "the relay did not let us into #{} within 10 s",
                channel.name
            ),
        }
    };

    let profile_kind = if args.no_aec {
        StageProfile::Headset
    } else {
        StageProfile::Speakers
    };
    let config = EngineConfig {
        source: source(&args.input),
        sink: sink(&args.output),
        profile: profile_kind,
        gate: if args.open_mic {
            GateMode::Open
        } else if args.ptt.is_some() {
            GateMode::PushToTalk
        } else {
            GateMode::VoiceActivity
        },
        encoder: EncoderSettings {
            packet: match args.packet_ms {
                10 => sotto_media::codec::PacketDuration::Ms10,
                20 => sotto_media::codec::PacketDuration::Ms20,
                other => bail!("--packet-ms must be 10 or 20, not {other}"),
            },
            bitrate: args.bitrate,
            ..EncoderSettings::default()
        },
    };
    let engine = Arc::new(Engine::start(config).context(
        "could not start audio; `sotto devices` lists the sound devices, and \
         --input FILE.wav --output FILE.wav runs without any",
    )?);
    if args.no_ns {
        engine.command(sotto_media::engine::EngineCommand::SetToggles(
            StageToggles {
                noise: false,
                ..profile_kind.toggles()
            },
        ));
    }
    println!(
        "voice    joined #{} on {} as {} (slot {own_slot}); audio clock origin {} µs since the Unix epoch",
        channel.name,
        session.server.name,
        saved.display_name,
        unix_micros(engine.clock_origin())
    );

    let done = Arc::new(AtomicBool::new(false));
    // Set on every way out, an error or a panic too, so the helper threads end with us.
    let _done_on_exit = DoneOnDrop(done.clone());
    let key_watch = ptt_key.map(|watcher| {
        println!(
            "voice    push-to-talk: hold {} to talk",
            args.ptt.as_deref().unwrap_or_default()
        );
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::spawn(move || watch_key(&watcher, &engine, &done))
    });
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (engine, done, client, bytes_sent) = (
            engine.clone(),
            done.clone(),
            session.client.clone(),
            bytes_sent.clone(),
        );
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                let frame = match engine.next_outgoing(Duration::from_millis(20)) {
                    Ok(frame) => frame,
                    // `engine.stop()` at the end reports an error.
                    Err(closed) => {
                        println!("voice    audio engine stopped: {closed}");
                        break;
                    }
                };
                if let Some(frame) = frame
                    && client.send_media(StreamKind::Voice, &frame.payload).is_ok()
                {
                    bytes_sent.fetch_add(frame.payload.len() as u64 + 24, Ordering::Relaxed);
                }
            }
        })
    };

    let started = Instant::now();
    let mut feedback = Feedback::new(own_slot);
    let mut names: BTreeMap<u16, String> = BTreeMap::new();
    let mut meters = Meters::default();
    let mut status = tokio::time::interval(Duration::from_millis(500));
    let mut ended = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            event = session.events.recv() => match event {
                Some(ClientEvent::Media(frame)) => match frame.stream {
                    StreamKind::Voice => engine.push_incoming(frame.sender_slot, frame.counter, frame.payload),
                    StreamKind::Feedback => feedback.on_report(frame.sender_slot, &frame.payload),
                    _ => {}
                },
                Some(ClientEvent::VoiceJoined { slot, .. }) => feedback.set_own_slot(slot),
                Some(ClientEvent::Roster { participants, .. }) => {
                    let now: BTreeMap<u16, String> =
                        participants.into_iter().filter(|p| p.slot != own_slot).map(|p| (p.slot, p.display_name)).collect();
                    for slot in names.keys().filter(|slot| !now.contains_key(slot)) {
                        engine.command(sotto_media::engine::EngineCommand::RemoveSpeaker(*slot));
                        feedback.forget(*slot);
                    }
                    names = now;
                }
                Some(ClientEvent::RosterChanged { joined, left, .. }) => {
                    let replaced = joined.iter().map(|p| p.slot);
                    for slot in left.iter().copied().chain(replaced) {
                        if names.remove(&slot).is_some() {
                            engine.command(sotto_media::engine::EngineCommand::RemoveSpeaker(slot));
                            feedback.forget(slot);
                        }
                    }
                    names.extend(joined.into_iter().filter(|p| p.slot != own_slot).map(|p| (p.slot, p.display_name)));
                }
                Some(ClientEvent::Disconnected { reason, .. }) => println!("voice    connection lost ({reason}); reconnecting"),
                Some(ClientEvent::Connected { .. }) => println!("voice    reconnected"),
                Some(ClientEvent::Stopped(error)) => bail!("{error}"),
                Some(_) => {}
                None => bail!("the connection ended"),
            },
            _ = status.tick() => {
                while let Some(event) = engine.try_event() {
                    match event {
                        EngineEvent::Meters(latest) => meters = latest,
                        EngineEvent::SourceEnded => ended = true,
                        EngineEvent::Device(device) => println!("voice    audio device: {device:?}"),
                        _ => {}
                    }
                }
                if let Some(report) = feedback.due_report(&meters) {
                    let _ = session.client.send_media(StreamKind::Feedback, &report);
                }
                if let Some(percent) = feedback.changed_expectation() {
                    engine.command(sotto_media::engine::EngineCommand::SetExpectedLoss(percent));
                }
                print_status(started, &names, &meters, &session.client.stats(), bytes_sent.load(Ordering::Relaxed));
                if ended || args.duration.is_some_and(|limit| started.elapsed() >= limit) {
                    break;
                }
            }
            _ = &mut ctrl_c => break,
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(watch) = key_watch {
        let _ = watch.join();
    }
    let _ = sender.await;
    let engine =
        Arc::try_unwrap(engine).map_err(|_| anyhow::anyhow!("audio engine still in use"))?;
    engine.stop()?;
    session.client.leave_voice().await?;
    println!("voice    left #{}", channel.name);
    Ok(())
}

fn print_status(
    started: Instant,
    names: &BTreeMap<u16, String>,
    meters: &Meters,
    stats: &sotto_net::client::ConnectionStats,
    bytes_sent: u64,
) {
    let speaking: Vec<&str> = names
        .iter()
        .filter(|(slot, _)| meters.speaking.get(slot).copied().unwrap_or(false))
        .map(|(_, name)| name.as_str())
        .collect();
    let (mut depth, mut jitter_ms, mut fec, mut concealed) = (0, 0.0, 0, 0);
    for stats in meters.jitter.values() {
        depth = depth.max(stats.depth);
        jitter_ms = f64::max(jitter_ms, stats.jitter.as_secs_f64() * 1000.0);
        fec += stats.recovered;
        concealed += stats.concealed + stats.stretched;
    }
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "status   {:>5.1} s | speaking: {} | you: {} {:>6.1} dBFS | RTT {:.1} ms | loss {:.1}% | jitter {:.1} ms | buffer {} | FEC {} | concealed {} | sent {:.1} kbit/s | opus {}",
        seconds,
        if speaking.is_empty() {
            "-".to_owned()
        } else {
            speaking.join(", ")
        },
        if meters.voice { "talking" } else { "quiet  " },
        meters.input_dbfs,
        stats.rtt.as_secs_f64() * 1000.0,
        stats.loss() * 100.0,
        jitter_ms,
        depth,
        fec,
        concealed,
        bytes_sent as f64 * 8.0 / seconds / 1000.0,
        if meters.fec_active {
            format!("fec@{}%", meters.expected_loss_percent)
        } else {
            "low-delay".to_owned()
        },
    );
}
