//! `sotto demo`: a relay on loopback, two members in a voice channel, real speech from one to
//! the other through the whole stack — media engine, end-to-end encryption, QUIC, the relay —
//! and a report of what the listener heard and how long it took.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{AudioSink, AudioSource, Engine, EngineConfig, EngineEvent, Meters};
use sotto_media::frame::{FRAME_SAMPLES, SAMPLE_RATE, power};
use sotto_media::send::{GateMode, Profile};
use sotto_net::client::{Client, ClientEvent, ClientOptions};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::{ChannelInfo, ChannelKind};
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};
use tokio::sync::mpsc;

/// Options of `sotto demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Keep the recordings (what Ada said, what Bob heard) in this directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Human speech shipped by Debian's alsa-utils, used when present.
const SPEECH_CLIPS: [&str; 4] = ["Front_Center", "Front_Left", "Rear_Center", "Side_Right"];

/// Ada's lines: recorded speech if alsa-utils is installed, else a generated voice-like signal.
fn ada_speech() -> (Vec<f32>, &'static str) {
    let mut speech = Vec::new();
    for clip in SPEECH_CLIPS {
        match sotto_media::wav::read_mono(Path::new(&format!("/usr/share/sounds/alsa/{clip}.wav")))
        {
            Ok(samples) => speech.extend(samples),
            Err(_) => {
                speech.clear();
                break;
            }
        }
        speech.extend(std::iter::repeat_n(0.0, SAMPLE_RATE as usize * 3 / 10));
    }
    if !speech.is_empty() {
        return (speech, "recorded speech from alsa-utils");
    }
    // A 140 Hz voice with harmonics, syllable-rate modulation and pauses.
    let samples = (0..SAMPLE_RATE as usize * 5)
        .map(|n| {
            let t = n as f32 / SAMPLE_RATE as f32;
            let voice: f32 = (1..10)
                .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            let syllables = (2.0 * std::f32::consts::PI * 3.0 * t).sin().max(0.0);
            let pause = if (t % 1.5) < 1.1 { 1.0 } else { 0.0 };
            0.1 * voice * syllables * pause
        })
        .collect();
    (
        samples,
        "a generated voice (install alsa-utils for recorded speech)",
    )
}

async fn wait_connected(
    events: &mut mpsc::Receiver<ClientEvent>,
    who: &str,
) -> Result<Vec<ChannelInfo>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(ClientEvent::Connected { channels, .. })) => return Ok(channels),
            Ok(Some(ClientEvent::Stopped(error))) => bail!("{who} could not connect: {error}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("{who} could not connect to the relay within 10 s"),
        }
    }
}

async fn wait_joined(
    events: &mut mpsc::Receiver<ClientEvent>,
    who: &str,
    others: usize,
) -> Result<()> {
    let mut joined = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(ClientEvent::VoiceJoined { .. })) => joined = true,
            Ok(Some(ClientEvent::Roster { participants, .. }))
                if joined && participants.len() > others =>
            {
                return Ok(());
            }
            Ok(Some(ClientEvent::Stopped(error))) => bail!("{who} lost the relay: {error}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("{who} could not join the voice channel within 10 s"),
        }
    }
}

fn engine(source: AudioSource, sink: AudioSink) -> Result<Arc<Engine>> {
    let config = EngineConfig {
        source,
        sink,
        profile: Profile::Headset,
        gate: GateMode::VoiceActivity,
        encoder: EncoderSettings::default(),
    };
    Ok(Arc::new(Engine::start(config)?))
}

/// The newest meters an engine has published.
fn latest_meters(engine: &Engine, last: &mut Meters) {
    while let Some(event) = engine.try_event() {
        if let EngineEvent::Meters(meters) = event {
            *last = meters;
        }
    }
}

/// The delay (samples, 1 ms resolution) that best aligns `heard` with `said`, and the
/// normalised correlation of their 10 ms envelopes at that delay.
fn align(said: &[f32], heard: &[f32]) -> (usize, f64) {
    let max_lag = (SAMPLE_RATE as usize * 3 / 10).min(heard.len());
    let lag = (0..max_lag)
        .step_by(48)
        .max_by(|&a, &b| {
            let score = |lag: usize| -> f64 {
                said.iter()
                    .zip(&heard[lag..])
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum()
            };
            score(a).total_cmp(&score(b))
        })
        .unwrap_or(0);
    let envelope = |signal: &[f32]| -> Vec<f64> {
        signal
            .chunks(FRAME_SAMPLES)
            .map(|c| power(c).sqrt())
            .collect()
    };
    let (a, b) = (envelope(said), envelope(&heard[lag..]));
    let n = a.len().min(b.len());
    let mean = |e: &[f64]| e[..n].iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(&a), mean(&b));
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..n {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    (lag, num / (da.sqrt() * db.sqrt()).max(f64::MIN_POSITIVE))
}

/// Runs the demo.
pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> Result<()> {
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let recordings = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    std::fs::create_dir_all(&recordings)
        .with_context(|| format!("creating {}", recordings.display()))?;

    // 1. A relay on loopback, with its database in a temporary directory.
    let data = DataDir::new(scratch.path().join("relay"));
    let report = data.initialize(&InitOptions {
        server_name: "Sotto demo".into(),
        public_address: "127.0.0.1:7878".into(),
    })?;
    let relay = RelayHandle::spawn(
        &data,
        RelayConfig {
            listen: "127.0.0.1:0".parse()?,
            ..RelayConfig::default()
        },
    )
    .await?;
    let owner_link = InviteLink {
        port: relay.local_addr().port(),
        ..report.owner_link
    };
    println!(
        "relay    listening on udp://{} (QUIC); it routes encrypted voice it cannot decrypt",
        relay.local_addr()
    );

    // 2. Ada creates the server's first membership with the owner link, and invites Bob.
    let (ada, mut ada_events) = Client::start(ClientOptions::from_link(
        owner_link,
        Identity::generate(),
        "Ada",
    )?)?;
    let channels = wait_connected(&mut ada_events, "Ada").await?;
    let invite = ada
        .create_invite(Some(Duration::from_secs(600)), Some(1))
        .await?;
    let (bob, mut bob_events) = Client::start(ClientOptions::from_link(
        invite,
        Identity::generate(),
        "Bob",
    )?)?;
    wait_connected(&mut bob_events, "Bob").await?;
    let voice = channels
        .iter()
        .find(|c| c.kind == ChannelKind::Voice)
        .context("the server has no voice channel")?;
    ada.join_voice(voice.id).await?;
    wait_joined(&mut ada_events, "Ada", 0).await?;
    bob.join_voice(voice.id).await?;
    wait_joined(&mut bob_events, "Bob", 1).await?;
    println!(
        "members  Ada and Bob joined #{} (end-to-end keys derived from the invite link's secret)",
        voice.name
    );

    // 3. Ada speaks from a file; Bob's engine plays into a file. Both run at real time.
    let (speech, source) = ada_speech();
    let said_path = recordings.join("ada-said.wav");
    let heard_path = recordings.join("bob-heard.wav");
    let quiet_path = scratch.path().join("bob-mic.wav");
    sotto_media::wav::write_mono(&said_path, &speech)?;
    sotto_media::wav::write_mono(&quiet_path, &vec![0.0; speech.len() + SAMPLE_RATE as usize])?;
    println!(
        "speech   Ada says {:.1} s of {source}",
        speech.len() as f64 / f64::from(SAMPLE_RATE)
    );
    let ada_engine = engine(
        AudioSource::File {
            path: said_path.clone(),
            paced: true,
        },
        AudioSink::Discard,
    )?;
    let bob_engine = engine(
        AudioSource::File {
            path: quiet_path,
            paced: true,
        },
        AudioSink::File(heard_path.clone()),
    )?;
    let ada_start = ada_engine.clock_origin();
    // Bob's recording starts this much after Ada's first sample.
    let start_offset = bob_engine
        .clock_origin()
        .saturating_duration_since(ada_start);

    // Ada's encoded frames go out through her client (sealed, sent as QUIC datagrams).
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (engine, done, ada) = (ada_engine.clone(), done.clone(), ada.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                // Ada's file has ended (or her engine failed): nothing more to send.
                let Ok(sent) = engine.next_outgoing(Duration::from_millis(20)) else {
                    break;
                };
                if let Some(frame) = sent {
                    let _ = ada.send_media(StreamKind::Voice, &frame.payload);
                }
            }
        })
    };
    // Bob's client opens them and hands them to his engine's jitter buffer.
    let receiver = {
        let engine = bob_engine.clone();
        tokio::spawn(async move {
            while let Some(event) = bob_events.recv().await {
                if let ClientEvent::Media(frame) = event
                    && frame.stream == StreamKind::Voice
                {
                    engine.push_incoming(frame.sender_slot, frame.counter, frame.payload);
                }
            }
        })
    };

    // 4. A live status line twice a second.
    let run_for = Duration::from_secs_f64(speech.len() as f64 / f64::from(SAMPLE_RATE))
        + Duration::from_millis(600);
    let (mut ada_meters, mut bob_meters) = (Meters::default(), Meters::default());
    while ada_start.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(500)).await;
        latest_meters(&ada_engine, &mut ada_meters);
        latest_meters(&bob_engine, &mut bob_meters);
        let stats = bob.stats();
        let jitter = bob_meters
            .jitter
            .values()
            .next()
            .copied()
            .unwrap_or_default();
        println!(
            "live     {:>4.1} s | Ada {} input {:>6.1} dBFS | Bob hears Ada: {} | RTT {:.1} ms | buffer {} (target {}) | FEC {} concealed {} | received {}",
            ada_start.elapsed().as_secs_f64(),
            if ada_meters.voice {
                "speaking"
            } else {
                "quiet   "
            },
            ada_meters.input_dbfs,
            if bob_meters.speaking.values().any(|s| *s) {
                "yes"
            } else {
                "no "
            },
            stats.rtt.as_secs_f64() * 1000.0,
            jitter.depth,
            jitter.target,
            jitter.recovered,
            jitter.concealed + jitter.stretched,
            stats.datagrams_received,
        );
    }

    // 5. Stop, and compare what Bob heard with what Ada said.
    done.store(true, Ordering::Relaxed);
    let _ = sender.await;
    receiver.abort();
    // Wait for the cancelled task to let go of Bob's engine.
    let _ = receiver.await;
    drop(ada_engine);
    Arc::try_unwrap(bob_engine)
        .map_err(|_| anyhow::anyhow!("Bob's engine is still in use"))?
        .stop()?;
    relay.shutdown().await;
    // Put Bob's recording on Ada's clock: it started `start_offset` after her first sample.
    let offset = (start_offset.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
    let heard: Vec<f32> = std::iter::repeat_n(0.0, offset)
        .chain(sotto_media::wav::read_mono(&heard_path)?)
        .collect();
    let (lag, correlation) = align(&speech, &heard);
    // A paced file hands over each 10 ms frame at its start; a microphone completes it 10 ms
    // later. Count that accumulation, as a real call would.
    let delay_ms = lag as f64 / 48.0 + 10.0;
    println!(
        "result   Bob heard Ada: envelope correlation {correlation:.2}, mouth-to-ear delay {delay_ms:.0} ms \
         (10 ms frame, DSP, Opus, encryption, QUIC through the relay, jitter buffer; no device buffers)"
    );
    if args.keep.is_some() {
        println!(
            "files    {} and {}",
            said_path.display(),
            heard_path.display()
        );
    }
    if correlation < 0.5 {
        bail!(
            "Bob did not hear Ada clearly (correlation {correlation:.2}); run with RUST_LOG=debug to see why"
        );
    }
    Ok(())
}
