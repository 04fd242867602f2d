//! `sotto-media`: run Sotto's media engine on files, for headless use and debugging.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sotto_media::frame::{FRAME_SAMPLES, SILENCE};
use sotto_media::send::{Profile, SendChain};
use sotto_media::wav;

/// Sotto's media engine on files and sound devices.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the send-chain DSP (high-pass, echo cancellation, noise suppression, gain control,
    /// voice gate; no codec) over a 48 kHz WAV file. The output is exactly as long as the input.
    Process(ProcessArgs),
    /// Run the full send and receive chains (DSP, Opus, jitter buffer, decoder, mix) through a
    /// simulated network, from a WAV file or microphone to a WAV file or speakers. File to file
    /// runs on a simulated clock unless `--real-time`; anything with a device runs in real time.
    Loopback(LoopbackArgs),
    /// List the audio input and output devices.
    Devices,
    /// Check the sound devices: play a quiet 440 Hz tone on the output and listen on the input,
    /// surviving a device that disappears and comes back; reports levels and counters.
    DeviceCheck(DeviceCheckArgs),
}

#[derive(Debug, Args)]
struct DeviceCheckArgs {
    /// Input device name, or `default`.
    #[arg(long, default_value = "default")]
    input: String,
    /// Output device name, or `default`.
    #[arg(long, default_value = "default")]
    output: String,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

fn devices() -> Result<()> {
    print!("{}", sotto_media::device::listing()?);
    Ok(())
}

fn device_check(args: &DeviceCheckArgs) -> Result<()> {
    use sotto_media::device::{DeviceEvent, DeviceSelector, ResilientCapture, ResilientPlayback};
    use std::time::{Duration, Instant};

    let mut capture = ResilientCapture::open(DeviceSelector::parse(&args.input))?;
    let mut playback = ResilientPlayback::open(DeviceSelector::parse(&args.output))?;
    if let (Some(c), Some(p)) = (capture.stream(), playback.stream()) {
        println!(
            "input \"{}\" {} Hz {} ch; output \"{}\" {} Hz",
            c.name(),
            c.device_rate(),
            c.device_channels(),
            p.name(),
            p.device_rate()
        );
    }
    let start = Instant::now();
    let (mut phase, mut captured, mut loud_frames, mut failures, mut recoveries) =
        (0u64, 0u64, 0u64, 0u32, 0u32);
    let mut frame = SILENCE;
    while start.elapsed().as_secs_f64() < args.seconds {
        let at = start.elapsed().as_secs_f64();
        for event in [capture.poll(), playback.poll()].into_iter().flatten() {
            match event {
                DeviceEvent::Lost { direction } => {
                    failures += 1;
                    println!("{direction:?} device failed at {at:.2} s; reopening");
                }
                DeviceEvent::Recovered { direction, name } => {
                    recoveries += 1;
                    println!("{direction:?} device back at {at:.2} s: {name}");
                }
                DeviceEvent::Switched { direction, name } => {
                    println!("{direction:?} default changed at {at:.2} s: now {name}");
                }
                _ => {}
            }
        }
        if let Some(rate) = playback.stream().map(|p| p.device_rate() as usize) {
            // Keep about 30 ms queued.
            while playback
                .stream()
                .is_some_and(|p| p.queued() < rate * 3 / 100)
            {
                let tone: sotto_media::Frame = std::array::from_fn(|i| {
                    let n = (phase + i as u64) as f32;
                    0.1 * (2.0 * std::f32::consts::PI * 440.0 * n / 48_000.0).sin()
                });
                phase += FRAME_SAMPLES as u64;
                playback.write_frame(&tone);
            }
        }
        while capture.read_frame(&mut frame) {
            captured += 1;
            if sotto_media::frame::rms_dbfs(&frame) > -40.0 {
                loud_frames += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "captured {captured} frames ({:.1} s), tone heard in {loud_frames}; device failures {failures}, recoveries {recoveries}; underruns {}, overruns {}",
        captured as f64 / 100.0,
        playback.stats().underruns,
        capture.stats().overruns,
    );
    Ok(())
}

#[derive(Debug, Args)]
struct LoopbackArgs {
    /// What the talker says: a 48 kHz WAV file (`*.wav`), or a capture device by name
    /// (`default` for the system's).
    #[arg(long)]
    input: String,
    /// What the listener hears: a 48 kHz mono WAV file (`*.wav`; as long as a file input), or
    /// a playback device by name (`default` for the system's).
    #[arg(long)]
    output: String,
    /// Random packet loss, percent.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Network jitter: extra delay per packet, uniform in 0..MS milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter: u64,
    /// Opus bitrate, bits per second.
    #[arg(long, default_value_t = 32_000)]
    bitrate: i32,
    /// Audio per packet: 10 or 20 ms.
    #[arg(long, default_value_t = 10)]
    packet_ms: u32,
    /// No noise suppression.
    #[arg(long)]
    no_ns: bool,
    /// No voice gate.
    #[arg(long)]
    no_gate: bool,
    /// Echo cancellation on (for loudspeakers; off by default, as with a headset).
    #[arg(long)]
    aec: bool,
    /// With a device: how long to run, seconds (default 10; a file input runs to its end).
    #[arg(long)]
    duration: Option<f64>,
    /// Run files in real time through the engine too (as devices are), instead of on a
    /// simulated clock.
    #[arg(long)]
    real_time: bool,
}

/// A loopback end: a WAV file or a sound device.
enum Endpoint {
    File(PathBuf),
    Device(sotto_media::device::DeviceSelector),
}

impl Endpoint {
    fn parse(text: &str) -> Self {
        if text.to_ascii_lowercase().ends_with(".wav") {
            Self::File(PathBuf::from(text))
        } else {
            Self::Device(sotto_media::device::DeviceSelector::parse(text))
        }
    }
}

fn loopback(args: &LoopbackArgs) -> Result<()> {
    let packet = match args.packet_ms {
        10 => sotto_media::codec::PacketDuration::Ms10,
        20 => sotto_media::codec::PacketDuration::Ms20,
        other => bail!("--packet-ms must be 10 or 20, not {other}"),
    };
    if !(0.0..=100.0).contains(&args.loss) {
        bail!("--loss is a percentage from 0 to 100");
    }
    let profile = if args.aec {
        Profile::Speakers
    } else {
        Profile::Headset
    };
    let mut toggles = profile.toggles();
    toggles.noise = !args.no_ns;
    toggles.gate = !args.no_gate;
    let encoder = sotto_media::codec::EncoderSettings {
        bitrate: args.bitrate,
        packet,
        expected_loss_percent: args.loss.round() as i32,
        ..Default::default()
    };
    let network = sotto_media::loopback::NetworkModel {
        loss_percent: args.loss,
        jitter: std::time::Duration::from_millis(args.jitter),
        ..Default::default()
    };
    match (Endpoint::parse(&args.input), Endpoint::parse(&args.output)) {
        (Endpoint::File(input), Endpoint::File(output)) if !args.real_time && !args.aec => {
            simulated_loopback(&input, &output, toggles, encoder, network)
        }
        (input, output) => live_loopback(args, input, output, profile, toggles, encoder, network),
    }
}

/// Files on a simulated clock: deterministic and faster than real time.
fn simulated_loopback(
    input: &std::path::Path,
    output: &std::path::Path,
    toggles: sotto_media::send::StageToggles,
    encoder: sotto_media::codec::EncoderSettings,
    network: sotto_media::loopback::NetworkModel,
) -> Result<()> {
    let samples = wav::read_mono(input)?;
    let outcome = sotto_media::loopback::run(&samples, toggles, encoder, network)?;
    wav::write_mono(output, &outcome.output)?;
    let stats = outcome.jitter;
    eprintln!(
        "sent {} packets, lost {}; recovered {} by FEC, concealed {}; jitter buffer target {} (max {}), late {}; wrote {}",
        outcome.packets_sent,
        outcome.packets_lost,
        stats.recovered,
        stats.concealed + stats.stretched,
        stats.target,
        outcome.max_target,
        stats.late,
        output.display()
    );
    Ok(())
}

/// Devices (or files in real time) through the engine.
fn live_loopback(
    args: &LoopbackArgs,
    input: Endpoint,
    output: Endpoint,
    profile: Profile,
    toggles: sotto_media::send::StageToggles,
    encoder: sotto_media::codec::EncoderSettings,
    network: sotto_media::loopback::NetworkModel,
) -> Result<()> {
    use sotto_media::engine::{AudioSink, AudioSource, EngineConfig};
    use sotto_media::send::GateMode;

    let device_input = matches!(input, Endpoint::Device(_));
    let duration = match args.duration {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Some(std::time::Duration::from_secs_f64(seconds))
        }
        Some(_) => bail!("--duration is a number of seconds above 0"),
        None if device_input => Some(std::time::Duration::from_secs(10)),
        None => None,
    };
    let written = match &output {
        Endpoint::File(path) => Some(path.clone()),
        Endpoint::Device(_) => None,
    };
    let config = sotto_media::live_loopback::LiveLoopback {
        engine: EngineConfig {
            source: match input {
                Endpoint::File(path) => AudioSource::File { path, paced: true },
                Endpoint::Device(selector) => AudioSource::Device(selector),
            },
            sink: match output {
                Endpoint::File(path) => AudioSink::File(path),
                Endpoint::Device(selector) => AudioSink::Device(selector),
            },
            profile,
            gate: if toggles.gate {
                GateMode::VoiceActivity
            } else {
                GateMode::Open
            },
            encoder,
        },
        toggles: Some(toggles),
        network,
        duration,
    };
    if device_input {
        eprintln!(
            "speak now: you hear yourself through the whole voice path for {:.0} s",
            duration.unwrap_or_default().as_secs_f64()
        );
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let outcome = sotto_media::live_loopback::run_live(config, &stop)
        .context("running the loopback on the sound devices")?;
    let stats = outcome.jitter;
    for event in &outcome.device_events {
        eprintln!("device: {event}");
    }
    eprintln!(
        "sent {} packets, lost {}; recovered {} by FEC, concealed {}; jitter buffer target {}, late {}; playback underruns {} (samples dropped {}), capture overruns {}{}",
        outcome.packets_sent,
        outcome.packets_lost,
        stats.recovered,
        stats.concealed + stats.stretched,
        stats.target,
        stats.late,
        outcome.meters.underruns,
        outcome.meters.playback_dropped,
        outcome.meters.overruns,
        written.map_or_else(String::new, |path| format!("; wrote {}", path.display()))
    );
    Ok(())
}

#[derive(Debug, Args)]
struct ProcessArgs {
    /// Microphone recording (48 kHz WAV; channels are mixed to mono).
    #[arg(long)]
    input: PathBuf,
    /// What the speakers played meanwhile (48 kHz WAV), for echo cancellation.
    #[arg(long)]
    far: Option<PathBuf>,
    /// Where to write the result (48 kHz mono 16-bit WAV).
    #[arg(long)]
    output: PathBuf,
    /// No echo cancellation (the headset profile).
    #[arg(long)]
    no_aec: bool,
    /// No noise suppression.
    #[arg(long)]
    no_ns: bool,
    /// No automatic gain control.
    #[arg(long)]
    no_agc: bool,
    /// No voice gate: keep the silence between words instead of muting it.
    #[arg(long)]
    no_gate: bool,
}

fn process(args: &ProcessArgs) -> Result<()> {
    let ProcessArgs {
        input,
        far,
        output,
        no_aec,
        no_ns,
        no_agc,
        no_gate,
    } = args;
    let (no_aec, no_ns, no_agc, no_gate) = (*no_aec, *no_ns, *no_agc, *no_gate);
    let mic = wav::read_mono(input)?;
    let far = far.as_deref().map(wav::read_mono).transpose()?;
    if no_aec && far.is_some() {
        bail!("--far is only used for echo cancellation; drop --no-aec or --far");
    }
    let profile = if no_aec || far.is_none() {
        Profile::Headset
    } else {
        Profile::Speakers
    };
    let mut chain = SendChain::new(profile);
    let mut toggles = chain.toggles();
    toggles.noise = !no_ns;
    toggles.gain = !no_agc;
    toggles.gate = !no_gate;
    chain.set_toggles(toggles);

    let mut out = Vec::with_capacity(mic.len() + FRAME_SAMPLES);
    let mut voiced = 0usize;
    let frame_count = mic.len().div_ceil(FRAME_SAMPLES);
    for index in 0..frame_count {
        let range = index * FRAME_SAMPLES..((index + 1) * FRAME_SAMPLES).min(mic.len());
        let mut frame = SILENCE;
        frame[..range.len()].copy_from_slice(&mic[range.clone()]);
        if let Some(far) = &far {
            let mut far_frame = SILENCE;
            let far_range = range.start.min(far.len())..range.end.min(far.len());
            far_frame[..far_range.len()].copy_from_slice(&far[far_range]);
            chain.render(&far_frame);
        }
        let report = chain.process(&mut frame);
        voiced += usize::from(report.voice);
        out.extend_from_slice(&frame);
    }
    out.truncate(mic.len());
    wav::write_mono(output, &out).with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "processed {:.2} s ({} frames, voice in {}); wrote {}",
        mic.len() as f64 / f64::from(sotto_media::SAMPLE_RATE),
        frame_count,
        voiced,
        output.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Process(args) => process(args),
        Command::Loopback(args) => loopback(args),
        Command::Devices => devices(),
        Command::DeviceCheck(args) => device_check(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
