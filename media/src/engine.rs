//! The engine the client runs: one processing thread that captures, cleans and encodes the
//! local voice, and decodes, mixes and plays everyone else's.
//!
//! Audio comes from a device or a WAV file and goes to a device or a WAV file; encoded frames
//! leave through [`Engine::next_outgoing`] and arrive through [`Engine::push_incoming`], so the
//! network layer stays outside. Settings change between frames through commands. Meters and
//! statistics are published every [`METER_INTERVAL`], never per frame. All queues are bounded.
//!
//! When the processing thread ends on its own (the file source ended, an error, a panic),
//! [`Engine::next_outgoing`] says so with [`EngineClosed`] and [`Engine::stop`] returns the
//! error ([`EngineError::Crashed`] for a panic).

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{CodecError, EncoderSettings, VoiceEncoder};
use crate::device::{
    DeviceError, DeviceEvent, DeviceSelector, ResilientCapture, ResilientPlayback,
};
use crate::frame::{FRAME_SAMPLES, Frame, SILENCE};
use crate::jitter::JitterStats;
use crate::receive::{SpeakerStream, soft_limit};
use crate::send::{GateMode, Profile, SendChain, StageToggles};
use crate::wav::WavError;

/// How often meters are published (20 Hz).
pub const METER_INTERVAL: Duration = Duration::from_millis(50);
/// Encoded frames queued for the network before the oldest are dropped.
const OUTGOING_QUEUE: usize = 64;
/// Incoming frames queued from the network.
const INCOMING_QUEUE: usize = 512;

/// A packet from the network: speaker, sender counter, Opus payload, and when it arrived.
type Incoming = (u16, u32, Bytes, Instant);

/// When a packet that `arrived` came, on the frame clock that reads `now` at `taken_at`.
fn arrival_on_frame_clock(now: Duration, taken_at: Instant, arrived: Instant) -> Duration {
    now.saturating_sub(taken_at.saturating_duration_since(arrived))
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// A capture device.
    Device(DeviceSelector),
    /// A 48 kHz WAV file, played at real time (or as fast as possible when `paced` is false).
    File {
        /// The file.
        path: PathBuf,
        /// Whether to run at real time.
        paced: bool,
    },
}

/// Where audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSink {
    /// A playback device.
    Device(DeviceSelector),
    /// A WAV file written when the engine stops.
    File(PathBuf),
    /// Nowhere (a listener-less test or a muted headless client).
    Discard,
}

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Microphone.
    pub source: AudioSource,
    /// Speakers.
    pub sink: AudioSink,
    /// Stage set.
    pub profile: Profile,
    /// Voice activity or push-to-talk.
    pub gate: GateMode,
    /// Opus settings.
    pub encoder: EncoderSettings,
}

/// Changes applied between frames.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineCommand {
    /// Switch stages.
    SetToggles(StageToggles),
    /// Stop sending our voice.
    SetMuted(bool),
    /// Stop playing others (and sending, as clients do).
    SetDeafened(bool),
    /// Press or release push-to-talk.
    PushToTalk(bool),
    /// Volume of one remote speaker (1 = unchanged).
    SetSpeakerGain {
        /// The speaker.
        speaker: u16,
        /// Linear gain.
        gain: f32,
    },
    /// Forget a speaker who left.
    RemoveSpeaker(u16),
    /// Packet loss the network reports, percent (tunes Opus FEC).
    SetExpectedLoss(i32),
    /// Panics on the processing thread with this message: stands in for a bug there, so tests
    /// can check that a crash reaches the caller. Only with the `test-support` feature.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    Crash(String),
}

/// One encoded frame for the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFrame {
    /// The Opus packet.
    pub payload: Bytes,
}

/// Meters and statistics, published every [`METER_INTERVAL`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meters {
    /// Microphone level, dBFS.
    pub input_dbfs: f32,
    /// Whether we are sending voice now.
    pub voice: bool,
    /// Remote speakers and whether each is speaking.
    pub speaking: BTreeMap<u16, bool>,
    /// Each remote speaker's jitter-buffer statistics.
    pub jitter: BTreeMap<u16, JitterStats>,
    /// Playback underruns and capture overruns so far.
    pub underruns: u64,
    /// Capture overruns so far.
    pub overruns: u64,
    /// Samples the playback device had no room for (it fell behind the engine's clock).
    pub playback_dropped: u64,
    /// The longest the playback device played between two frames handed to it since the last
    /// meters, in samples of its own clock at 48 kHz: 480 (one frame) when the processing thread
    /// keeps time; more when it was held up. Zero without a playback device.
    pub playback_gap_samples: u64,
    /// Frames processed so far.
    pub frames: u64,
    /// Whether our packets carry in-band FEC now (the adaptive codec turned it on for loss).
    pub fec_active: bool,
    /// The loss our encoder plans for now, percent.
    pub expected_loss_percent: i32,
}

/// What the engine tells its owner.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// New meters.
    Meters(Meters),
    /// A device failed, came back, or followed the system default.
    Device(DeviceEvent),
    /// The file source ended.
    SourceEnded,
}

/// Why the engine could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A device could not be opened.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A file could not be read or written.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The processing thread panicked (a bug); the panic's message.
    #[error("the audio engine crashed: {0}")]
    Crashed(String),
}

/// Why [`Engine::next_outgoing`] has nothing more to hand out: the processing thread ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineClosed {
    /// The file source ended; every frame it made has been handed out.
    #[error("the audio source ended")]
    SourceEnded,
    /// The processing thread failed with this error (its message); [`Engine::stop`] returns
    /// the error itself.
    #[error("the audio engine failed: {0}")]
    Failed(String),
    /// The processing thread panicked with this message; [`Engine::stop`] returns
    /// [`EngineError::Crashed`].
    #[error("the audio engine crashed: {0}")]
    Crashed(String),
}

impl EngineClosed {
    /// How a processing thread that returned `outcome` ended.
    fn from_outcome(outcome: &Result<(), EngineError>) -> Self {
        match outcome {
            Ok(()) => Self::SourceEnded,
            Err(EngineError::Crashed(message)) => Self::Crashed(message.clone()),
            Err(error) => Self::Failed(error.to_string()),
        }
    }
}

/// The message a panic carried.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A running engine. Dropping it stops the thread.
#[derive(Debug)]
pub struct Engine {
    commands: SyncSender<EngineCommand>,
    incoming: SyncSender<Incoming>,
    // Receivers are not `Sync`; the locks are taken only by the network side, never by the
    // audio thread, so the handle can be shared between tasks.
    outgoing: Mutex<Receiver<OutgoingFrame>>,
    events: Mutex<Receiver<EngineEvent>>,
    stop: SyncSender<()>,
    thread: Option<JoinHandle<Result<(), EngineError>>>,
    /// Set by the processing thread as it ends, before the outgoing queue closes.
    closed: Arc<OnceLock<EngineClosed>>,
    clock_origin: Instant,
}

/// The processing thread's ends of the engine's queues.
struct WorkerQueues {
    commands: Receiver<EngineCommand>,
    incoming: Receiver<Incoming>,
    outgoing: SyncSender<OutgoingFrame>,
    events: SyncSender<EngineEvent>,
    stop: Receiver<()>,
}

impl Engine {
    /// Opens the source and sink (on the calling thread) and starts the processing thread.
    pub fn start(config: EngineConfig) -> Result<Self, EngineError> {
        let input = Input::open(&config.source)?;
        let output = Output::open(&config.sink)?;
        let (commands, command_rx) = sync_channel(64);
        let (incoming, incoming_rx) = sync_channel(INCOMING_QUEUE);
        let (outgoing_tx, outgoing) = sync_channel(OUTGOING_QUEUE);
        let (events_tx, events) = sync_channel(256);
        let (stop, stop_rx) = sync_channel(1);
        let (ready_tx, ready) = sync_channel(1);
        let closed = Arc::new(OnceLock::new());
        let queues = WorkerQueues {
            commands: command_rx,
            incoming: incoming_rx,
            outgoing: outgoing_tx,
            events: events_tx,
            stop: stop_rx,
        };
        let thread_closed = closed.clone();
        let thread = std::thread::Builder::new()
            .name("sotto-audio".into())
            .spawn(move || {
                // Keeps the outgoing queue open until the end is recorded, so whoever finds the
                // queue closed finds the reason too.
                let hold_open = queues.outgoing.clone();
                let worker = || Worker::start_and_run(&config, input, output, queues, ready_tx);
                let outcome = run_recording_the_end(worker, &thread_closed);
                drop(hold_open);
                outcome
            })
            .expect("spawning the audio thread");
        let clock_origin = match ready.recv() {
            Ok(Ok(origin)) => origin,
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(error);
            }
            // The thread ended without a word: it panicked while starting.
            Err(_) => {
                return Err(join(thread).err().unwrap_or_else(|| {
                    EngineError::Crashed("the audio thread ended while starting".into())
                }));
            }
        };
        Ok(Self {
            clock_origin,
            commands,
            incoming,
            outgoing: Mutex::new(outgoing),
            events: Mutex::new(events),
            stop,
            thread: Some(thread),
            closed,
        })
    }

    /// When the engine's frame clock started: frame `n` of a paced file source, and sample `n`
    /// of a file sink, belong to `clock_origin + n × 10 ms`.
    pub fn clock_origin(&self) -> Instant {
        self.clock_origin
    }

    /// Applies a setting from the next frame. Never blocks; a full queue drops the command.
    pub fn command(&self, command: EngineCommand) {
        let _ = self.commands.try_send(command);
    }

    /// Hands over an Opus packet from remote `speaker` with its sender counter. Never blocks;
    /// a full queue drops it (the jitter buffer conceals it). The arrival time is noted here,
    /// so the jitter buffer sees when the packet really came, not the next 10 ms tick.
    pub fn push_incoming(&self, speaker: u16, seq: u32, payload: Bytes) {
        let _ = self
            .incoming
            .try_send((speaker, seq, payload, Instant::now()));
    }

    /// The next encoded frame to send, waiting up to `timeout`: `Ok(None)` when none came in
    /// time. Once the processing thread has ended and every frame it made has been handed out,
    /// `Err` says why (a send loop should end); [`Self::stop`] then returns any error.
    pub fn next_outgoing(&self, timeout: Duration) -> Result<Option<OutgoingFrame>, EngineClosed> {
        let received = self
            .outgoing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv_timeout(timeout);
        match received {
            Ok(frame) => Ok(Some(frame)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.closed().unwrap_or_else(|| {
                // Not reached: the thread records its reason before the queue closes.
                EngineClosed::Crashed("the audio thread ended without a reason".into())
            })),
        }
    }

    /// Why the processing thread ended, once it has.
    pub fn closed(&self) -> Option<EngineClosed> {
        self.closed.get().cloned()
    }

    /// The next event, if any.
    pub fn try_event(&self) -> Option<EngineEvent> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_recv()
            .ok()
    }

    /// Stops the thread (writing the output file, if any) and reports how it ended: the
    /// error that ended it early, or [`EngineError::Crashed`] with a panic's message.
    pub fn stop(mut self) -> Result<(), EngineError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        let _ = self.stop.try_send(());
        self.thread.take().map_or(Ok(()), join)
    }
}

/// Runs the processing thread's `work`, turning a panic into [`EngineError::Crashed`], and
/// records in `closed` how it ended.
fn run_recording_the_end(
    work: impl FnOnce() -> Result<(), EngineError>,
    closed: &OnceLock<EngineClosed>,
) -> Result<(), EngineError> {
    let outcome = catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(EngineError::Crashed(panic_message(&*panic))));
    let _ = closed.set(EngineClosed::from_outcome(&outcome));
    outcome
}

/// Waits for the processing thread; a panic that escaped it becomes [`EngineError::Crashed`].
fn join(thread: JoinHandle<Result<(), EngineError>>) -> Result<(), EngineError> {
    thread
        .join()
        .unwrap_or_else(|panic| Err(EngineError::Crashed(panic_message(&*panic))))
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

enum Input {
    Device(ResilientCapture),
    File {
        samples: Vec<f32>,
        position: usize,
        paced: bool,
    },
}

impl Input {
    fn open(source: &AudioSource) -> Result<Self, EngineError> {
        Ok(match source {
            AudioSource::Device(selector) => {
                Self::Device(ResilientCapture::open(selector.clone())?)
            }
            AudioSource::File { path, paced } => Self::File {
                samples: crate::wav::read_mono(path)?,
                position: 0,
                paced: *paced,
            },
        })
    }
}

enum Output {
    Device(ResilientPlayback),
    File { path: PathBuf, samples: Vec<f32> },
    Discard,
}

impl Output {
    fn open(sink: &AudioSink) -> Result<Self, EngineError> {
        Ok(match sink {
            AudioSink::Device(selector) => Self::Device(ResilientPlayback::open(selector.clone())?),
            AudioSink::File(path) => Self::File {
                path: path.clone(),
                samples: Vec::new(),
            },
            AudioSink::Discard => Self::Discard,
        })
    }
}

struct Worker {
    input: Input,
    output: Output,
    chain: SendChain,
    encoder: VoiceEncoder,
    packet: crate::codec::PacketDuration,
    speakers: BTreeMap<u16, SpeakerStream>,
    gains: BTreeMap<u16, f32>,
    muted: bool,
    deafened: bool,
    commands: Receiver<EngineCommand>,
    incoming: Receiver<Incoming>,
    /// The frame clock at the previous hand-over: no later packet is stamped before it.
    last_take: Duration,
    outgoing: SyncSender<OutgoingFrame>,
    events: SyncSender<EngineEvent>,
    stop: Receiver<()>,
    meters: Meters,
    started: Instant,
    /// Keeps time while the capture device is away.
    stand_in_clock: StandInClock,
    /// Samples the playback device had played when the last frame was handed to it.
    last_played: Option<u64>,
}

impl Worker {
    /// Builds the worker, reports its clock origin (or why it could not start) on `ready`,
    /// and runs it until it stops.
    fn start_and_run(
        config: &EngineConfig,
        input: Input,
        output: Output,
        queues: WorkerQueues,
        ready: SyncSender<Result<Instant, EngineError>>,
    ) -> Result<(), EngineError> {
        match Self::new(config, input, output, queues) {
            Ok(mut worker) => {
                let _ = ready.send(Ok(worker.started));
                worker.run()
            }
            Err(error) => {
                let _ = ready.send(Err(error));
                Ok(())
            }
        }
    }

    fn new(
        config: &EngineConfig,
        input: Input,
        output: Output,
        queues: WorkerQueues,
    ) -> Result<Self, EngineError> {
        let mut chain = SendChain::new(config.profile);
        chain.gate_mut().set_mode(config.gate);
        let encoder = VoiceEncoder::new(config.encoder)?;
        let meters = Meters {
            fec_active: encoder.fec_active(),
            expected_loss_percent: config.encoder.expected_loss_percent,
            ..Meters::default()
        };
        let WorkerQueues {
            commands,
            incoming,
            outgoing,
            events,
            stop,
        } = queues;
        Ok(Self {
            input,
            output,
            chain,
            encoder,
            packet: config.encoder.packet,
            speakers: BTreeMap::new(),
            gains: BTreeMap::new(),
            muted: false,
            deafened: false,
            commands,
            incoming,
            last_take: Duration::ZERO,
            outgoing,
            events,
            stop,
            meters,
            started: Instant::now(),
            stand_in_clock: StandInClock::default(),
            last_played: None,
        })
    }

    fn run(&mut self) -> Result<(), EngineError> {
        let mut last_meters = Instant::now();
        let mut frame = SILENCE;
        let mut frame_index = 0u64;
        loop {
            match self.stop.try_recv() {
                Ok(()) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            self.apply_commands();
            match self.next_input(&mut frame, frame_index)? {
                Some(()) => {}
                None => break,
            }
            let now = Duration::from_millis(10 * frame_index);
            self.take_incoming(now);
            let heard = self.mix(now)?;
            self.chain.render(&heard);
            self.play(&heard);
            self.send(&mut frame)?;
            frame_index += 1;
            self.meters.frames = frame_index;
            if last_meters.elapsed() >= METER_INTERVAL {
                last_meters = Instant::now();
                self.publish_meters();
            }
        }
        if let Output::File { path, samples } = &self.output {
            crate::wav::write_mono(path, samples)?;
        }
        Ok(())
    }

    fn apply_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                EngineCommand::SetToggles(toggles) => self.chain.set_toggles(toggles),
                EngineCommand::SetMuted(muted) => self.muted = muted,
                EngineCommand::SetDeafened(deafened) => self.deafened = deafened,
                EngineCommand::PushToTalk(held) => self.chain.gate_mut().set_push_to_talk(held),
                EngineCommand::SetSpeakerGain { speaker, gain } => {
                    self.gains.insert(speaker, gain);
                    if let Some(stream) = self.speakers.get_mut(&speaker) {
                        stream.set_gain(gain);
                    }
                }
                EngineCommand::RemoveSpeaker(speaker) => {
                    self.speakers.remove(&speaker);
                }
                EngineCommand::SetExpectedLoss(percent) => {
                    let _ = self.encoder.set_expected_loss(percent);
                    self.meters.fec_active = self.encoder.fec_active();
                    self.meters.expected_loss_percent =
                        self.encoder.settings().expected_loss_percent;
                }
                #[cfg(feature = "test-support")]
                EngineCommand::Crash(message) => panic!("{message}"),
            }
        }
    }

    /// The next microphone frame; `None` when a file source has ended.
    fn next_input(&mut self, frame: &mut Frame, index: u64) -> Result<Option<()>, EngineError> {
        match &mut self.input {
            Input::File {
                samples,
                position,
                paced,
            } => {
                if *position >= samples.len() {
                    let _ = self.events.try_send(EngineEvent::SourceEnded);
                    return Ok(None);
                }
                if *paced {
                    let due = self.started + Duration::from_millis(10 * index);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let end = (*position + FRAME_SAMPLES).min(samples.len());
                *frame = SILENCE;
                frame[..end - *position].copy_from_slice(&samples[*position..end]);
                *position = end;
                Ok(Some(()))
            }
            Input::Device(capture) => {
                if let Some(event) = capture.poll() {
                    let _ = self.events.try_send(EngineEvent::Device(event));
                }
                if !capture.is_open() {
                    // The device is being reopened (on its opener thread): keep time with
                    // silence on a clock of our own, so playback goes on.
                    *frame = SILENCE;
                    return Ok(self.stand_in_clock.tick(&self.stop).then_some(()));
                }
                self.stand_in_clock.reset();
                let deadline = Instant::now() + Duration::from_millis(20);
                loop {
                    if capture.read_frame(frame) {
                        return Ok(Some(()));
                    }
                    if Instant::now() >= deadline {
                        // No audio in time: keep time with silence.
                        *frame = SILENCE;
                        return Ok(Some(()));
                    }
                    match self.stop.recv_timeout(Duration::from_millis(2)) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return Ok(None),
                    }
                }
            }
        }
    }

    /// Hands queued packets to their speakers' jitter buffers, each stamped with when it
    /// arrived on the frame clock (`now` minus how long it waited in the queue). Stamping them
    /// all `now` would round arrivals to 10 ms ticks: a sender whose packets land near a tick
    /// boundary would look 10 ms jittery and cost every listener a packet of extra delay.
    fn take_incoming(&mut self, now: Duration) {
        let taken_at = Instant::now();
        while let Ok((speaker, seq, payload, arrived)) = self.incoming.try_recv() {
            // After a stall the frame clock lags the wall clock; never stamp a packet before
            // those already handed over.
            let arrival = arrival_on_frame_clock(now, taken_at, arrived).max(self.last_take);
            let stream = match self.speakers.entry(speaker) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    match SpeakerStream::new(self.packet) {
                        Ok(mut stream) => {
                            stream.set_gain(self.gains.get(&speaker).copied().unwrap_or(1.0));
                            entry.insert(stream)
                        }
                        Err(_) => continue,
                    }
                }
            };
            stream.push(seq, payload, arrival);
        }
        self.last_take = now;
    }

    fn mix(&mut self, now: Duration) -> Result<Frame, EngineError> {
        let mut heard = SILENCE;
        for stream in self.speakers.values_mut() {
            stream.mix_into(now, &mut heard)?;
        }
        soft_limit(&mut heard);
        if self.deafened {
            heard = SILENCE;
        }
        Ok(heard)
    }

    fn play(&mut self, heard: &Frame) {
        match &mut self.output {
            Output::File { samples, .. } => samples.extend_from_slice(heard),
            Output::Discard => {}
            Output::Device(playback) => {
                if let Some(event) = playback.poll() {
                    let _ = self.events.try_send(EngineEvent::Device(event));
                }
                playback.write_frame(heard);
                let gap = playback_gap(playback, &mut self.last_played);
                self.meters.playback_gap_samples = self.meters.playback_gap_samples.max(gap);
            }
        }
    }

    fn send(&mut self, frame: &mut Frame) -> Result<(), EngineError> {
        let report = self.chain.process(frame);
        self.meters.input_dbfs = report.input_dbfs;
        let sending = report.send && !self.muted && !self.deafened;
        self.meters.voice = sending && report.voice;
        let packet = self
            .encoder
            .encode(if sending { frame } else { &SILENCE })?;
        if let Some(packet) = packet.filter(|_| sending) {
            // A full queue means the network side is stuck: drop rather than block audio.
            let _ = self.outgoing.try_send(OutgoingFrame {
                payload: Bytes::copy_from_slice(packet),
            });
        }
        Ok(())
    }

    fn publish_meters(&mut self) {
        if let Input::Device(capture) = &self.input {
            self.meters.overruns = capture.stats().overruns;
        }
        if let Output::Device(playback) = &self.output {
            self.meters.underruns = playback.stats().underruns;
            self.meters.playback_dropped = playback.dropped();
        }
        self.meters.speaking = self
            .speakers
            .iter()
            .map(|(id, stream)| (*id, stream.is_speaking()))
            .collect();
        self.meters.jitter = self
            .speakers
            .iter()
            .map(|(id, stream)| (*id, stream.stats()))
            .collect();
        let _ = self
            .events
            .try_send(EngineEvent::Meters(self.meters.clone()));
        self.meters.playback_gap_samples = 0;
    }
}

/// How much the playback device played (in samples at 48 kHz) since the frame handed over
/// before this one, whose position `last` holds. A processing thread that keeps time hands a
/// frame over every 480 samples.
fn playback_gap(playback: &ResilientPlayback, last: &mut Option<u64>) -> u64 {
    let position = playback.stats().samples;
    let rate = playback
        .stream()
        .map_or(crate::SAMPLE_RATE, |stream| stream.device_rate())
        .max(1);
    last.replace(position).map_or(0, |previous| {
        position.saturating_sub(previous) * u64::from(crate::SAMPLE_RATE) / u64::from(rate)
    })
}

/// Keeps frame time while no capture device sets the pace (it is being reopened).
#[derive(Debug, Default)]
struct StandInClock {
    next_due: Option<Instant>,
}

impl StandInClock {
    /// One frame's time.
    const FRAME: Duration = Duration::from_millis(10);

    /// Waits until the next frame is due; `false` when told to stop meanwhile.
    fn tick(&mut self, stop: &Receiver<()>) -> bool {
        let now = Instant::now();
        // Starting, or more than a frame behind: count from now rather than rush to catch up.
        let due = self
            .next_due
            .filter(|due| now.saturating_duration_since(*due) < Self::FRAME)
            .unwrap_or(now);
        self.next_due = Some(due + Self::FRAME);
        let wait = due.saturating_duration_since(now);
        wait.is_zero() || matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout))
    }

    /// The device sets the pace again.
    fn reset(&mut self) {
        self.next_due = None;
    }
}

/// The engine's handle is shared with network tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};

#[cfg(test)]
mod arrival_tests {
    use super::*;

    #[test]
    fn arrivals_keep_their_time_within_a_tick() {
        let taken_at = Instant::now();
        let now = Duration::from_millis(500);
        // Two packets 10 ms apart that straddle a tick: without their own times they would
        // read as 0 and 10 ms late (one packet of jitter); with them, 0.5 ms apart from the
        // 10 ms cadence.
        let early = arrival_on_frame_clock(now, taken_at, taken_at - Duration::from_micros(9_800));
        let late = arrival_on_frame_clock(now, taken_at, taken_at - Duration::from_micros(300));
        assert_eq!(late - early, Duration::from_micros(9_500));
        // A packet from before the clock started, or stamped after the tick, stays in range.
        assert_eq!(
            arrival_on_frame_clock(Duration::ZERO, taken_at, taken_at - Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!(
            arrival_on_frame_clock(now, taken_at, taken_at + Duration::from_millis(1)),
            now
        );
    }
}
