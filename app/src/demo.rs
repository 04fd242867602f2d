//! `sotto demo`: a relay on loopback, two members in a voice channel, real speech from one to
//! the other through the whole stack — media engine, end-to-end encryption, QUIC, the relay —
//! and a report of what the listener heard and how long it took.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_client::group::{GroupSetup, GroupState};
use sotto_client::{Call, CallEvent, CallOptions, CallStats, Session};
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{AudioSink, AudioSource, EngineConfig};
use sotto_media::frame::{FRAME_SAMPLES, SAMPLE_RATE, power};
use sotto_media::send::{GateMode, Profile};
use sotto_net::client::ClientOptions;
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_relay::{RelayConfig, RelayHandle};
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

/// Connects a member (its group store in `dir`) and waits until it is in the server's
/// encryption group.
async fn member(name: &str, link: InviteLink, dir: &Path) -> Result<Session> {
    let identity = Identity::generate();
    let group = GroupSetup::open(
        &dir.join(format!("{name}-group.db")),
        &identity,
        link.secret.clone(),
    )?;
    let options = ClientOptions::new(link, identity, name, group.keys())?;
    let mut session = Session::connect(options, group, Duration::from_secs(10), |_| {})
        .await
        .with_context(|| format!("{name} could not connect to the relay"))?;
    match session.group.join_within(Duration::from_secs(10)).await {
        GroupState::Member { .. } => Ok(session),
        other => anyhow::bail!("{name} was not let into the encryption group: {other:?}"),
    }
}

/// Joins `channel_id` with a headset-profile engine on files.
async fn join(
    who: &str,
    session: Session,
    channel_id: u32,
    source: AudioSource,
    sink: AudioSink,
) -> Result<(Call, mpsc::Receiver<CallEvent>)> {
    let engine = EngineConfig {
        source,
        sink,
        profile: Profile::Headset,
        gate: GateMode::VoiceActivity,
        encoder: EncoderSettings::default(),
    };
    let mut options = CallOptions::new(engine);
    // Fresh numbers for the status line printed twice a second.
    options.stats_interval = Duration::from_millis(100);
    Call::join(session, channel_id, options)
        .await
        .map_err(|failure| {
            anyhow::anyhow!("{who} could not join the voice channel: {}", failure.error)
        })
}

/// Keeps the newest statistics of a call; fails if the call ended.
fn take_stats(who: &str, event: Option<CallEvent>, latest: &mut CallStats) -> Result<()> {
    match event {
        Some(CallEvent::Stats(stats)) => *latest = stats,
        Some(CallEvent::Ended(error)) => bail!("{who}'s call ended: {error}"),
        _ => {}
    }
    Ok(())
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
    let (relay, owner_link) = RelayHandle::spawn_on_loopback(
        &scratch.path().join("relay"),
        "Sotto demo",
        RelayConfig::default(),
    )
    .await?;
    println!(
        "relay    listening on udp://{} (QUIC); it routes encrypted voice it cannot decrypt",
        relay.local_addr()
    );

    // 2. Ada creates the server's first membership with the owner link, and invites Bob.
    let ada = member("Ada", owner_link, scratch.path()).await?;
    let invite = ada
        .group
        .create_invite(Some(Duration::from_secs(600)), Some(1))
        .await?;
    let bob = member("Bob", invite, scratch.path()).await?;
    let voice = ada
        .voice_channels()
        .next()
        .context("the server has no voice channel")?;
    let (voice_id, voice_name) = (voice.id, voice.name.clone());

    // 3. Ada speaks from a file; Bob's engine plays into a file. Both run at real time. Bob
    // joins first and listens; Ada starts talking as she joins.
    let (speech, source) = ada_speech();
    let said_path = recordings.join("ada-said.wav");
    let heard_path = recordings.join("bob-heard.wav");
    let quiet_path = scratch.path().join("bob-mic.wav");
    sotto_media::wav::write_mono(&said_path, &speech)?;
    sotto_media::wav::write_mono(&quiet_path, &vec![0.0; speech.len() + SAMPLE_RATE as usize])?;
    let (bob_call, mut bob_events) = join(
        "Bob",
        bob,
        voice_id,
        AudioSource::File {
            path: quiet_path,
            paced: true,
        },
        AudioSink::File(heard_path.clone()),
    )
    .await?;
    let (ada_call, mut ada_events) = join(
        "Ada",
        ada,
        voice_id,
        AudioSource::File {
            path: said_path.clone(),
            paced: true,
        },
        AudioSink::Discard,
    )
    .await?;
    println!(
        "members  Ada and Bob joined #{voice_name} (end-to-end keys from their MLS group; the invite proved Bob was invited)"
    );
    println!(
        "speech   Ada says {:.1} s of {source}",
        speech.len() as f64 / f64::from(SAMPLE_RATE)
    );
    let ada_start = ada_call.clock_origin();
    // Bob's recording started this many samples before Ada's first one.
    let lead = (ada_start
        .saturating_duration_since(bob_call.clock_origin())
        .as_secs_f64()
        * f64::from(SAMPLE_RATE)) as usize;

    // 4. A live status line twice a second.
    let run_for = Duration::from_secs_f64(speech.len() as f64 / f64::from(SAMPLE_RATE))
        + Duration::from_millis(600);
    let (mut ada_stats, mut bob_stats) = (CallStats::default(), CallStats::default());
    let mut status = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(500),
        Duration::from_millis(500),
    );
    while ada_start.elapsed() < run_for {
        tokio::select! {
            event = ada_events.recv() => take_stats("Ada", event, &mut ada_stats)?,
            event = bob_events.recv() => take_stats("Bob", event, &mut bob_stats)?,
            _ = status.tick() => print_live(ada_start, &ada_stats, &bob_stats),
        }
    }

    // 5. Stop, and compare what Bob heard with what Ada said.
    let (_, ada_stopped) = ada_call.stop().await;
    let (_, bob_stopped) = bob_call.stop().await;
    ada_stopped.context("Ada's audio failed")?;
    bob_stopped.context("Bob's audio failed")?;
    relay.shutdown().await;
    // Put Bob's recording on Ada's clock.
    let recording = sotto_media::wav::read_mono(&heard_path)?;
    let heard: Vec<f32> = recording.get(lead..).unwrap_or_default().to_vec();
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

fn print_live(ada_start: std::time::Instant, ada: &CallStats, bob: &CallStats) {
    let jitter = bob
        .meters
        .jitter
        .values()
        .next()
        .copied()
        .unwrap_or_default();
    println!(
        "live     {:>4.1} s | Ada {} input {:>6.1} dBFS | Bob hears Ada: {} | RTT {:.1} ms | buffer {} (target {}) | FEC {} concealed {} | received {}",
        ada_start.elapsed().as_secs_f64(),
        if ada.meters.voice {
            "speaking"
        } else {
            "quiet   "
        },
        ada.meters.input_dbfs,
        if bob.meters.speaking.values().any(|s| *s) {
            "yes"
        } else {
            "no "
        },
        bob.connection.rtt.as_secs_f64() * 1000.0,
        jitter.depth,
        jitter.target,
        jitter.recovered,
        jitter.concealed + jitter.stretched,
        bob.connection.datagrams_received,
    );
}
