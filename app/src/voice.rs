//! `sotto voice`: join a voice channel with the media engine on devices or files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use sotto_client::{Call, CallControls, CallError, CallEvent, CallOptions, CallStats, Session};
use sotto_media::codec::EncoderSettings;
use sotto_media::device::DeviceSelector;
use sotto_media::engine::{AudioSink, AudioSource, EngineConfig};
use sotto_media::send::{GateMode, Profile as StageProfile, StageToggles};

use crate::ptt::KeyWatcher;
use crate::session::connect;
use sotto_client::Profile;

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

/// Tells the call when the push-to-talk key goes down and up, until `done`.
fn watch_key(watcher: &KeyWatcher, controls: &CallControls, done: &AtomicBool) {
    let mut held = false;
    while !done.load(Ordering::Relaxed) {
        match watcher.is_held() {
            Ok(now) if now != held => {
                held = now;
                controls.push_to_talk(held);
            }
            Ok(_) => {}
            Err(error) => {
                // The display went away: release, so the microphone is not left open.
                eprintln!("push-to-talk stopped: {error:#}");
                controls.push_to_talk(false);
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

fn engine_config(args: &VoiceArgs) -> Result<EngineConfig> {
    let profile = if args.no_aec {
        StageProfile::Headset
    } else {
        StageProfile::Speakers
    };
    Ok(EngineConfig {
        source: source(&args.input),
        sink: sink(&args.output),
        profile,
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
    })
}

/// Picks the voice channel named `wanted`, or the first.
fn pick_channel(session: &Session, wanted: Option<&str>, server: &str) -> Result<(u32, String)> {
    let mut voice = session.voice_channels();
    let channel = match wanted {
        Some(name) => voice.find(|c| c.name == name).with_context(|| {
            format!("no voice channel \"{name}\" on {server}; `sotto channels` lists them")
        })?,
        None => voice
            .next()
            .with_context(|| format!("{server} has no voice channel"))?,
    };
    Ok((channel.id, channel.name.clone()))
}

/// Runs a voice session.
pub(crate) async fn run(args: &VoiceArgs) -> Result<()> {
    // Find the push-to-talk key first: without a display there is no call to set up.
    let ptt_key = args.ptt.as_deref().map(KeyWatcher::connect).transpose()?;
    let config = engine_config(args)?;
    let profile = Profile::open()?;
    let saved = profile.server(args.server.as_deref())?;
    let mut session = connect(&profile, &saved, None).await?;
    // A verified member's changed key blocks the call until the user looks at it.
    crate::members::refuse_unsettled_key_changes(&profile, &mut session).await?;
    let (channel_id, channel_name) = pick_channel(&session, args.channel.as_deref(), &saved.name)?;
    let (call, mut events) = Call::join(session, channel_id, CallOptions::new(config))
        .await
        .map_err(|failure| match failure.error {
            CallError::Engine(error) => anyhow::anyhow!(
                "could not start audio: {error}; `sotto devices` lists the sound devices, and \
                 --input FILE.wav --output FILE.wav runs without any"
            ),
            error => anyhow::anyhow!("could not join #{channel_name}: {error}"),
        })?;
    let controls = call.controls();
    if args.no_ns {
        let profile = if args.no_aec {
            StageProfile::Headset
        } else {
            StageProfile::Speakers
        };
        controls.set_toggles(StageToggles {
            noise: false,
            ..profile.toggles()
        });
    }
    println!(
        "voice    joined #{channel_name} on {} as {} (slot {}); audio clock origin {} µs since the Unix epoch",
        call.server().name,
        saved.display_name,
        call.own_slot(),
        unix_micros(call.clock_origin())
    );

    let done = Arc::new(AtomicBool::new(false));
    // Set on every way out, an error or a panic too, so the helper thread ends with us.
    let _done_on_exit = DoneOnDrop(done.clone());
    let key_watch = ptt_key.map(|watcher| {
        println!(
            "voice    push-to-talk: hold {} to talk",
            args.ptt.as_deref().unwrap_or_default()
        );
        let (controls, done) = (controls.clone(), done.clone());
        std::thread::spawn(move || watch_key(&watcher, &controls, &done))
    });

    let mut own_slot = call.own_slot();
    let mut names: BTreeMap<u16, String> = BTreeMap::new();
    // Members this device blocked are silenced here (nobody else is told).
    let blocked: std::collections::HashSet<_> = profile
        .blocked_keys()?
        .into_iter()
        .map(|key| key.public_key)
        .collect();
    let mut silenced: std::collections::HashSet<u16> = std::collections::HashSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(CallEvent::Stats(stats)) => {
                    print_status(&names, &stats);
                    if args.duration.is_some_and(|limit| stats.elapsed >= limit) {
                        break Ok(());
                    }
                }
                Some(CallEvent::Participants(participants)) => {
                    let now_blocked: std::collections::HashSet<u16> = participants
                        .iter()
                        .filter(|p| blocked.contains(&p.public_key))
                        .map(|p| p.slot)
                        .collect();
                    for slot in silenced.difference(&now_blocked) {
                        controls.set_volume(*slot, 1.0);
                    }
                    for slot in &now_blocked {
                        controls.set_volume(*slot, 0.0);
                    }
                    silenced = now_blocked;
                    names = participants
                        .into_iter()
                        .filter(|p| p.slot != own_slot)
                        .map(|p| {
                            let name = if silenced.contains(&p.slot) {
                                format!("{} (blocked)", p.display_name)
                            } else {
                                p.display_name
                            };
                            (p.slot, name)
                        })
                        .collect();
                }
                Some(CallEvent::Reconnecting { reason, .. }) => {
                    println!("voice    connection lost ({reason}); reconnecting");
                }
                Some(CallEvent::Rejoined { slot }) => {
                    own_slot = slot;
                    println!("voice    reconnected");
                }
                Some(CallEvent::Device(device)) => println!("voice    audio device: {device:?}"),
                Some(CallEvent::SourceEnded) => break Ok(()),
                Some(CallEvent::RequestFailed { message, .. }) => println!("voice    refused: {message}"),
                Some(CallEvent::Ended(error)) => break Err(anyhow::anyhow!("{error}")),
                Some(_) => {}
                None => break Err(anyhow::anyhow!("the call ended")),
            },
            _ = &mut ctrl_c => break Ok(()),
        }
    };
    done.store(true, Ordering::Relaxed);
    if let Some(watch) = key_watch {
        let _ = watch.join();
    }
    let (_session, stopped) = call.stop().await;
    outcome?;
    stopped?;
    println!("voice    left #{channel_name}");
    Ok(())
}

fn print_status(names: &BTreeMap<u16, String>, stats: &CallStats) {
    let meters = &stats.meters;
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
    let connection = &stats.connection;
    println!(
        "status   {:>5.1} s | speaking: {} | you: {} {:>6.1} dBFS | RTT {:.1} ms | loss {:.1}% | jitter {:.1} ms | buffer {} | FEC {} | concealed {} | sent {:.1} kbit/s | opus {}",
        stats.elapsed.as_secs_f64(),
        if speaking.is_empty() {
            "-".to_owned()
        } else {
            speaking.join(", ")
        },
        if meters.voice { "talking" } else { "quiet  " },
        meters.input_dbfs,
        connection.rtt.as_secs_f64() * 1000.0,
        connection.loss() * 100.0,
        jitter_ms,
        depth,
        fec,
        concealed,
        stats.sent_kbps(),
        if meters.fec_active {
            format!("fec@{}%", meters.expected_loss_percent)
        } else {
            "low-delay".to_owned()
        },
    );
}
