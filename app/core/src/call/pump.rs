//! The call's task: client events into the engine, engine events and statistics out to the
//! front end, receiver reports both ways. It moves things; the decisions are in [`Feedback`]
//! and [`Roster`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sotto_media::engine::{EngineClosed, EngineCommand, EngineEvent, Meters};
use sotto_net::client::{Client, ClientEvent};
use sotto_net::proto::StreamKind;
use tokio::sync::{mpsc, oneshot};

use super::controls::{SharedEngine, command};
use super::{CallControls, CallError, CallEvent, CallStats};
use crate::feedback::Feedback;
use crate::roster::Roster;

/// Everything the pump owns.
pub(super) struct Pump {
    pub(super) events: mpsc::Receiver<ClientEvent>,
    pub(super) out: mpsc::Sender<CallEvent>,
    pub(super) client: Client,
    pub(super) engine: SharedEngine,
    pub(super) controls: CallControls,
    pub(super) own_slot: u16,
    pub(super) interval: Duration,
    pub(super) bytes_sent: Arc<AtomicU64>,
    pub(super) engine_closed: Arc<Mutex<Option<EngineClosed>>>,
    pub(super) stop: oneshot::Receiver<()>,
    /// The server's group, whose keys the call rotates.
    pub(super) group: crate::group::GroupHandle,
    /// How often (of call time).
    pub(super) rotation: Duration,
}

/// By default every member of a voice channel rotates its group keys (a self-update commit, with path)
/// after this long in a call, so a key stolen during a long call stops working soon.
pub(crate) const VOICE_ROTATION: Duration = Duration::from_secs(15 * 60);

/// The pump's working state.
struct State {
    started: Instant,
    feedback: Feedback,
    roster: Roster,
    roster_changed: bool,
    meters: Meters,
    /// Why the call cannot go on, once it cannot.
    ended: Option<Arc<CallError>>,
    /// Whether the front end has been told.
    end_told: bool,
}

/// Runs until told to stop; hands the client's events back.
pub(super) async fn run(mut pump: Pump) -> mpsc::Receiver<ClientEvent> {
    let mut state = State {
        started: Instant::now(),
        feedback: Feedback::new(pump.own_slot),
        roster: Roster::new(),
        roster_changed: false,
        meters: Meters::default(),
        ended: None,
        end_told: false,
    };
    // The first statistics come after one interval, when there are meters to show.
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + pump.interval, pump.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rotation =
        tokio::time::interval_at(tokio::time::Instant::now() + pump.rotation, pump.rotation);
    rotation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut pump.stop => break,
            event = pump.events.recv() => match event {
                Some(event) => on_client_event(&pump, &mut state, event),
                None => {
                    // The client is gone: nothing more will arrive.
                    end(&pump, &mut state, CallError::Client(sotto_net::client::ClientError::Stopped));
                    let _ = (&mut pump.stop).await;
                    break;
                }
            },
            _ = tick.tick() => on_tick(&pump, &mut state),
            _ = rotation.tick() => {
                // Not awaited: the commit settles in the group's own task.
                let group = pump.group.clone();
                tokio::spawn(async move {
                    if let Err(error) = group.self_update().await {
                        tracing::debug!("key rotation skipped: {error}");
                    }
                });
            }
        }
    }
    pump.events
}

/// Queues an event without ever blocking the call; false if it was not queued. Statistics and
/// participant lists wait while the front end is behind (newer ones supersede them), so rarer
/// events always find room.
fn emit(pump: &Pump, event: CallEvent) -> bool {
    let superseded = matches!(event, CallEvent::Stats(_) | CallEvent::Participants(_));
    if superseded && pump.out.capacity() <= pump.out.max_capacity() / 2 {
        return false;
    }
    pump.out.try_send(event).is_ok()
}

/// Tells the front end the call cannot go on: once, retried each tick until it is queued.
fn end(pump: &Pump, state: &mut State, error: CallError) {
    if state.ended.is_none() {
        state.ended = Some(Arc::new(error));
        state.end_told = emit(
            pump,
            CallEvent::Ended(state.ended.clone().expect("just set")),
        );
    }
}

fn on_client_event(pump: &Pump, state: &mut State, event: ClientEvent) {
    if let Some(departed) = state.roster.apply(&event) {
        for slot in departed {
            pump.controls.forget(slot);
            state.feedback.forget(slot);
        }
        state.roster_changed = true;
        return;
    }
    match event {
        ClientEvent::Media(frame) => match frame.stream {
            StreamKind::Voice => {
                if let Some(engine) = pump.engine.load().as_ref() {
                    engine.push_incoming(frame.sender_slot, frame.counter, frame.payload);
                }
            }
            StreamKind::Feedback => state.feedback.on_report(frame.sender_slot, &frame.payload),
            _ => {}
        },
        ClientEvent::VoiceJoined { slot, .. } => {
            state.feedback.set_own_slot(slot);
            emit(pump, CallEvent::Rejoined { slot });
        }
        ClientEvent::Disconnected { reason, retry_in } => {
            // Everyone rejoins with fresh keys and counters: forget them all, so their streams
            // start afresh and no volume passes to whoever holds their slot next.
            for slot in state.roster.participants().map(|p| p.slot) {
                pump.controls.forget(slot);
                state.feedback.forget(slot);
            }
            state.roster.clear();
            state.roster_changed = true;
            emit(pump, CallEvent::Reconnecting { reason, retry_in });
        }
        ClientEvent::RequestFailed { code, message } => {
            emit(pump, CallEvent::RequestFailed { code, message });
        }
        ClientEvent::Stopped(error) => end(pump, state, CallError::ClientStopped(error)),
        _ => {}
    }
}

fn on_tick(pump: &Pump, state: &mut State) {
    if let Some(error) = state.ended.clone().filter(|_| !state.end_told) {
        state.end_told = emit(pump, CallEvent::Ended(error));
    }
    if let Some(engine) = pump.engine.load().as_ref() {
        while let Some(event) = engine.try_event() {
            match event {
                EngineEvent::Meters(meters) => state.meters = meters,
                EngineEvent::Device(device) => {
                    emit(pump, CallEvent::Device(device));
                }
                EngineEvent::SourceEnded => {
                    emit(pump, CallEvent::SourceEnded);
                }
                _ => {}
            }
        }
    }
    let closed = pump
        .engine_closed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match closed {
        // A file that ended was already reported by the engine's own event.
        Some(EngineClosed::SourceEnded) | None => {}
        Some(reason) => end(pump, state, CallError::EngineClosed(reason)),
    }
    if let Some(report) = state.feedback.due_report(&state.meters) {
        let _ = pump.client.send_media(StreamKind::Feedback, &report);
    }
    if let Some(percent) = state.feedback.changed_expectation() {
        command(&pump.engine, EngineCommand::SetExpectedLoss(percent));
    }
    if state.roster_changed {
        // Not sent while the front end is behind: tried again at the next tick.
        let participants = state.roster.participants().cloned().collect();
        state.roster_changed = !emit(pump, CallEvent::Participants(participants));
    }
    emit(
        pump,
        CallEvent::Stats(CallStats {
            elapsed: state.started.elapsed(),
            meters: state.meters.clone(),
            connection: pump.client.stats(),
            bytes_sent: pump.bytes_sent.load(Ordering::Relaxed),
        }),
    );
}
