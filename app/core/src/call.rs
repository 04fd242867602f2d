//! A voice call: the glue between the media engine and the network client, written once for
//! every front end.
//!
//! [`Call::join`] takes a connected [`Session`], joins a voice channel and starts the engine.
//! From then on the call moves encoded voice from the engine to the network (a send thread),
//! routes received voice into the engine, keeps the roster, forgets speakers who leave,
//! exchanges receiver reports and tunes the encoder from them, and delivers what a front end
//! shows — meters, statistics, who is here — as batched [`CallEvent`]s, never per audio frame.
//! [`Call::stop`] hands the session back.

mod controls;
mod pump;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sotto_media::device::DeviceEvent;
use sotto_media::engine::{Engine, EngineClosed, EngineConfig, EngineError, Meters};
use sotto_net::client::{ClientError, ClientEvent, ConnectionStats};
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::{ErrorCode, Participant};
use tokio::sync::{mpsc, oneshot};

pub use controls::CallControls;
use controls::{ControlState, SharedEngine};

use crate::connection::Session;

/// How long [`Call::join`] waits for the relay to seat us by default.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes each voice packet costs on top of its Opus payload (header and tag, end to end).
const SEALING_OVERHEAD: u64 = sotto_net::proto::datagram::OVERHEAD as u64;
/// How long a call waits for the group's keys before joining anyway (a member still waiting to
/// be let in hears and is heard once it is).
const KEYS_WAIT: Duration = Duration::from_secs(2);

/// Call events queued for the front end before the oldest statistics are dropped.
const EVENT_QUEUE: usize = 64;

/// How to run a call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The media engine: devices or files, stage set, gate, codec.
    pub engine: EngineConfig,
    /// How often [`CallEvent::Stats`] arrives (and receiver reports are considered).
    pub stats_interval: Duration,
    /// How long the relay has to seat us.
    pub join_timeout: Duration,
    /// How often we rotate the group's keys while in the call (a self-update commit).
    pub key_rotation: Duration,
}

impl CallOptions {
    /// Options with statistics twice a second.
    pub fn new(engine: EngineConfig) -> Self {
        Self {
            engine,
            stats_interval: Duration::from_millis(500),
            join_timeout: JOIN_TIMEOUT,
            key_rotation: pump::VOICE_ROTATION,
        }
    }
}

/// Why a call could not start or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The relay refused to seat us.
    #[error("could not join the voice channel: {message}")]
    Refused {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// The relay did not answer the join in time.
    #[error("the relay did not let us into the voice channel within {0:?}")]
    JoinTimeout(Duration),
    /// The client failed or gave up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The client stopped for good while we were in the call.
    #[error(transparent)]
    ClientStopped(Arc<ClientError>),
    /// The media engine could not start, or failed.
    #[error("audio failed: {0}")]
    Engine(#[from] EngineError),
    /// The media engine stopped while the call ran.
    #[error(transparent)]
    EngineClosed(#[from] EngineClosed),
}

/// Statistics of a running call, delivered every [`CallOptions::stats_interval`].
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// Time since the call started.
    pub elapsed: Duration,
    /// The engine's latest meters: input level, who speaks, jitter buffers, codec mode.
    pub meters: Meters,
    /// The connection: RTT, loss, datagrams.
    pub connection: ConnectionStats,
    /// Voice bytes sent so far, sealing included.
    pub bytes_sent: u64,
}

impl CallStats {
    /// Our sending rate so far, kbit/s.
    pub fn sent_kbps(&self) -> f64 {
        self.bytes_sent as f64 * 8.0 / self.elapsed.as_secs_f64().max(0.001) / 1000.0
    }
}

/// What a call tells its front end.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CallEvent {
    /// Statistics; see [`CallStats`].
    Stats(CallStats),
    /// Everyone in the channel now (ourselves included), at most once per statistics interval.
    Participants(Vec<Participant>),
    /// The connection dropped; the client reconnects and rejoins by itself.
    Reconnecting {
        /// What happened.
        reason: String,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// Back in the channel after a reconnect, sending with a new slot.
    Rejoined {
        /// Our new sender slot.
        slot: u16,
    },
    /// A device failed, came back, or followed the system default.
    Device(DeviceEvent),
    /// The file source ended (headless calls).
    SourceEnded,
    /// The relay refused a request made during the call.
    RequestFailed {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// The call cannot go on (the client stopped for good, or the engine failed); stop it.
    Ended(Arc<CallError>),
}

/// A running voice call. Stop it with [`Call::stop`] to get the session back.
#[derive(Debug)]
pub struct Call {
    session: SessionParts,
    channel_id: u32,
    own_slot: u16,
    options: CallOptions,
    engine: SharedEngine,
    controls: CallControls,
    clock_origin: Instant,
    sender: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
    bytes_sent: Arc<AtomicU64>,
    engine_closed: Arc<Mutex<Option<EngineClosed>>>,
    pump: tokio::task::JoinHandle<mpsc::Receiver<ClientEvent>>,
    stop_pump: Option<oneshot::Sender<()>>,
}

/// The session minus its events, which the call's pump holds while it runs.
#[derive(Debug, Clone)]
struct SessionParts {
    client: sotto_net::client::Client,
    member_id: u32,
    server: sotto_net::proto::control::ServerInfo,
    channels: Vec<sotto_net::proto::control::ChannelInfo>,
    group: crate::group::GroupHandle,
    display_name: String,
}

/// A join that failed, with the session to try again with.
#[derive(Debug)]
pub struct JoinFailure {
    /// What went wrong.
    pub error: CallError,
    /// The session, still connected.
    pub session: Session,
}

impl Call {
    /// Joins `channel_id` and starts the engine. On failure the session comes back.
    pub async fn join(
        mut session: Session,
        channel_id: u32,
        options: CallOptions,
    ) -> Result<(Self, mpsc::Receiver<CallEvent>), Box<JoinFailure>> {
        let fail = |error: CallError, session: Session| Box::new(JoinFailure { error, session });
        // Right after connecting, the group's keys may still be on their way: the first words
        // would be sealed with nothing and lost. Wait (briefly) until the group has settled.
        session.group.wait_idle(KEYS_WAIT).await;
        if let Err(error) = session.client.join_voice(channel_id).await {
            return Err(fail(error.into(), session));
        }
        let own_slot = match wait_joined(&mut session, options.join_timeout).await {
            Ok(slot) => slot,
            Err(error) => {
                let _ = session.client.leave_voice().await;
                return Err(fail(error, session));
            }
        };
        let config = options.engine.clone();
        // Opening devices can take a while: not on the async runtime's threads.
        let started = tokio::task::spawn_blocking(move || Engine::start(config))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        let engine = match started {
            Ok(engine) => engine,
            Err(error) => {
                let _ = session.client.leave_voice().await;
                return Err(fail(error.into(), session));
            }
        };
        let Session {
            client,
            events,
            member_id,
            server,
            channels,
            group,
            display_name,
        } = session;
        let (call_events, call_events_rx) = mpsc::channel(EVENT_QUEUE);
        let clock_origin = engine.clock_origin();
        let engine: SharedEngine = Arc::new(ArcSwapOption::from_pointee(engine));
        let controls = CallControls::new(
            engine.clone(),
            Arc::new(Mutex::new(ControlState::default())),
        );
        let bytes_sent = Arc::new(AtomicU64::new(0));
        let engine_closed = Arc::new(Mutex::new(None));
        let (stop_pump, stopped) = oneshot::channel();
        let pump = tokio::spawn(pump::run(pump::Pump {
            events,
            out: call_events,
            client: client.clone(),
            engine: engine.clone(),
            controls: controls.clone(),
            own_slot,
            interval: options.stats_interval,
            group: group.clone(),
            rotation: options.key_rotation,
            bytes_sent: bytes_sent.clone(),
            engine_closed: engine_closed.clone(),
            stop: stopped,
        }));
        let mut call = Self {
            session: SessionParts {
                client,
                member_id,
                server,
                channels,
                group,
                display_name,
            },
            channel_id,
            own_slot,
            options,
            engine,
            controls,
            clock_origin,
            sender: None,
            done: Arc::new(AtomicBool::new(false)),
            bytes_sent,
            engine_closed,
            pump,
            stop_pump: Some(stop_pump),
        };
        call.start_sender();
        Ok((call, call_events_rx))
    }

    /// The voice channel.
    pub fn channel_id(&self) -> u32 {
        self.channel_id
    }

    /// Our sender slot when the call started.
    pub fn own_slot(&self) -> u16 {
        self.own_slot
    }

    /// When the engine's clock started (the first sample it captured or read).
    pub fn clock_origin(&self) -> Instant {
        self.clock_origin
    }

    /// The connection's statistics now.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.session.client.stats()
    }

    /// The server the call is on.
    pub fn server(&self) -> &sotto_net::proto::control::ServerInfo {
        &self.session.server
    }

    /// Mute, deafen, push-to-talk, volumes, stages: a handle any thread may keep.
    pub fn controls(&self) -> CallControls {
        self.controls.clone()
    }

    /// Switches devices (or files): the engine restarts with `engine` while the call stays
    /// in the channel, keeping mute, deafen, push-to-talk, volumes and stages. Others hear a gap
    /// of about the time the new devices take to open. Blocking: call it from a blocking
    /// context in async code.
    pub fn change_devices(&mut self, engine: EngineConfig) -> Result<(), CallError> {
        let new_engine = Arc::new(Engine::start(engine.clone())?);
        self.controls.apply_to(&new_engine);
        self.stop_sender();
        let old = self.engine.swap(Some(new_engine.clone()));
        // A setting changed while we swapped reached only the old engine: apply them again.
        self.controls.apply_to(&new_engine);
        drop(new_engine);
        self.options.engine = engine;
        *self
            .engine_closed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        self.start_sender();
        if let Some(old) = old
            && let Err(error) = stop_engine(old)
        {
            // The switch worked; the old devices' trouble no longer matters to the call.
            tracing::warn!("the previous audio devices failed while closing: {error}");
        }
        Ok(())
    }

    fn start_sender(&mut self) {
        self.done.store(false, Ordering::Relaxed);
        let (engine, client, done, bytes_sent, closed) = (
            self.engine.clone(),
            self.session.client.clone(),
            self.done.clone(),
            self.bytes_sent.clone(),
            self.engine_closed.clone(),
        );
        let sender = std::thread::Builder::new()
            .name("sotto-send".into())
            .spawn(move || send_voice(&engine, &client, &done, &bytes_sent, &closed))
            .expect("a thread can be started");
        self.sender = Some(sender);
    }

    fn stop_sender(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }

    /// Leaves the channel, stops the engine, and hands the session back. The result says
    /// whether the engine ran to the end without failing.
    pub async fn stop(mut self) -> (Session, Result<(), CallError>) {
        self.stop_sender();
        // Leave first, while the pump still drains what the relay sends until then.
        let _ = self.session.client.leave_voice().await;
        if let Some(stop) = self.stop_pump.take() {
            let _ = stop.send(());
        }
        let events = match (&mut self.pump).await {
            Ok(events) => events,
            Err(_) => {
                // The pump panicked; the client's events are lost with it.
                let (_, events) = mpsc::channel(1);
                events
            }
        };
        let result = match self.engine.swap(None) {
            Some(engine) => tokio::task::spawn_blocking(move || stop_engine(engine))
                .await
                .unwrap_or(Ok(())),
            None => Ok(()),
        };
        let SessionParts {
            client,
            member_id,
            server,
            channels,
            group,
            display_name,
        } = self.session.clone();
        let session = Session {
            client,
            events,
            member_id,
            server,
            channels,
            group,
            display_name,
        };
        (session, result)
    }
}

impl Drop for Call {
    /// A call dropped without [`Call::stop`] still ends its send thread and its task; the
    /// engine stops with its last reference.
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(stop) = self.stop_pump.take() {
            let _ = stop.send(());
        }
    }
}

/// Stops an engine taken out of the call, once the send thread and the pump have let go of it
/// (they hold it only for a moment at a time).
fn stop_engine(mut engine: Arc<Engine>) -> Result<(), CallError> {
    for _ in 0..100 {
        match Arc::try_unwrap(engine) {
            Ok(engine) => return engine.stop().map_err(CallError::from),
            Err(shared) => {
                engine = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // Still shared after 100 ms: dropping our reference stops the thread when the last goes.
    Ok(())
}

/// Waits for the relay's answer to our join; returns our slot.
async fn wait_joined(session: &mut Session, timeout: Duration) -> Result<u16, CallError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, session.events.recv()).await {
            Ok(Some(ClientEvent::VoiceJoined { slot, .. })) => return Ok(slot),
            Ok(Some(ClientEvent::RequestFailed { code, message })) => {
                return Err(CallError::Refused { code, message });
            }
            Ok(Some(ClientEvent::Stopped(error))) => return Err(CallError::ClientStopped(error)),
            Ok(Some(_)) => {}
            Ok(None) => return Err(CallError::Client(ClientError::Stopped)),
            Err(_) => return Err(CallError::JoinTimeout(timeout)),
        }
    }
}

/// The send thread: encoded frames from the engine to the network until told to stop or the
/// engine closes (then the reason is left for the pump to report).
fn send_voice(
    engine: &SharedEngine,
    client: &sotto_net::client::Client,
    done: &AtomicBool,
    bytes_sent: &AtomicU64,
    closed: &Mutex<Option<EngineClosed>>,
) {
    while !done.load(Ordering::Relaxed) {
        let Some(current) = engine.load_full() else {
            return;
        };
        let next = current.next_outgoing(Duration::from_millis(20));
        drop(current);
        match next {
            Ok(Some(frame)) => {
                if client.send_media(StreamKind::Voice, &frame.payload).is_ok() {
                    bytes_sent.fetch_add(
                        frame.payload.len() as u64 + SEALING_OVERHEAD,
                        Ordering::Relaxed,
                    );
                }
            }
            Ok(None) => {}
            Err(reason) => {
                *closed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
                return;
            }
        }
    }
}
