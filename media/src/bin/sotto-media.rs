//! `sotto-media`: run Sotto's media engine on files, for headless use and debugging.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sotto_media::frame::{FRAME_SAMPLES, SILENCE};
use sotto_media::send::{Profile, SendChain};
use sotto_media::wav;

/// Sotto's media engine on files.
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
    /// simulated network, from a 48 kHz WAV file to another.
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
    /// What the talker says (48 kHz WAV).
    #[arg(long)]
    input: PathBuf,
    /// What the listener hears (48 kHz mono WAV), as long as the input.
    #[arg(long)]
    output: PathBuf,
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
}

fn loopback(args: &LoopbackArgs) -> Result<()> {
    for path in [&args.input, &args.output] {
        if path.extension().and_then(|e| e.to_str()) != Some("wav") {
            bail!(
                "{} is not a .wav file; this build runs loopback on files only (audio devices are not supported yet)",
                path.display()
            );
        }
    }
    let packet = match args.packet_ms {
        10 => sotto_media::codec::PacketDuration::Ms10,
        20 => sotto_media::codec::PacketDuration::Ms20,
        other => bail!("--packet-ms must be 10 or 20, not {other}"),
    };
    if !(0.0..=100.0).contains(&args.loss) {
        bail!("--loss is a percentage from 0 to 100");
    }
    let input = wav::read_mono(&args.input)?;
    let mut toggles = Profile::Headset.toggles();
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
    let outcome = sotto_media::loopback::run(&input, toggles, encoder, network)?;
    wav::write_mono(&args.output, &outcome.output)?;
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
        args.output.display()
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
