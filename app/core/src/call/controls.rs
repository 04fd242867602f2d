//! What the person set during a call — mute, deafen, push-to-talk, volumes, stages — applied
//! to the engine at once and kept, so a device change or a new engine keeps them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use sotto_media::engine::{Engine, EngineCommand};
use sotto_media::send::StageToggles;

/// The call's engine, swapped when devices change and taken out when the call stops.
pub(crate) type SharedEngine = Arc<ArcSwapOption<Engine>>;

/// Sends `command` to the engine, if the call still has one.
pub(crate) fn command(engine: &SharedEngine, command: EngineCommand) {
    if let Some(engine) = engine.load().as_ref() {
        engine.command(command);
    }
}

/// The settings a person made, as the engine must see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ControlState {
    muted: bool,
    deafened: bool,
    push_to_talk: bool,
    volumes: BTreeMap<u16, f32>,
    toggles: Option<StageToggles>,
}

impl ControlState {
    /// Commands that bring a fresh engine to this state.
    fn commands(&self) -> Vec<EngineCommand> {
        let mut commands = vec![
            EngineCommand::SetMuted(self.muted),
            EngineCommand::SetDeafened(self.deafened),
            EngineCommand::PushToTalk(self.push_to_talk),
        ];
        commands.extend(
            self.volumes
                .iter()
                .map(|(&speaker, &gain)| EngineCommand::SetSpeakerGain { speaker, gain }),
        );
        commands.extend(self.toggles.map(EngineCommand::SetToggles));
        commands
    }
}

/// Controls of a running call that any thread may hold (a push-to-talk watcher, a UI).
#[derive(Debug, Clone)]
pub struct CallControls {
    engine: SharedEngine,
    state: Arc<Mutex<ControlState>>,
}

impl CallControls {
    pub(crate) fn new(engine: SharedEngine, state: Arc<Mutex<ControlState>>) -> Self {
        Self { engine, state }
    }

    /// Records a change and applies it.
    fn set(&self, change: impl FnOnce(&mut ControlState), applied: EngineCommand) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        command(&self.engine, applied);
    }

    /// Stop or resume sending our voice.
    pub fn set_muted(&self, muted: bool) {
        self.set(|s| s.muted = muted, EngineCommand::SetMuted(muted));
    }

    /// Stop or resume hearing others (deafened also mutes, as people expect).
    pub fn set_deafened(&self, deafened: bool) {
        self.set(
            |s| s.deafened = deafened,
            EngineCommand::SetDeafened(deafened),
        );
    }

    /// Press or release push-to-talk.
    pub fn push_to_talk(&self, pressed: bool) {
        self.set(
            |s| s.push_to_talk = pressed,
            EngineCommand::PushToTalk(pressed),
        );
    }

    /// Volume of the participant in `slot`, linear (1 = unchanged, 0 = silent). It lasts
    /// until they leave.
    pub fn set_volume(&self, slot: u16, gain: f32) {
        self.set(
            |s| {
                s.volumes.insert(slot, gain);
            },
            EngineCommand::SetSpeakerGain {
                speaker: slot,
                gain,
            },
        );
    }

    /// Switch processing stages (noise suppression, echo cancellation, ...).
    pub fn set_toggles(&self, toggles: StageToggles) {
        self.set(
            |s| s.toggles = Some(toggles),
            EngineCommand::SetToggles(toggles),
        );
    }

    /// The participant in `slot` left: the engine forgets them, and their volume does not
    /// pass to whoever takes the slot next.
    pub(crate) fn forget(&self, slot: u16) {
        self.set(
            |s| {
                s.volumes.remove(&slot);
            },
            EngineCommand::RemoveSpeaker(slot),
        );
    }

    /// Commands that bring a fresh engine to the current settings.
    pub(crate) fn state_commands(&self) -> Vec<EngineCommand> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .commands()
    }

    /// Brings `engine` to the current settings.
    pub(crate) fn apply_to(&self, engine: &Engine) {
        for command in self.state_commands() {
            engine.command(command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_kept_for_the_next_engine_and_a_departed_volume_is_dropped() {
        let controls = CallControls::new(Arc::default(), Arc::default());
        // With no engine the commands go nowhere, but the settings are kept.
        controls.set_muted(true);
        controls.set_volume(3, 0.5);
        controls.set_volume(4, 2.0);
        controls.forget(3);
        controls.push_to_talk(true);
        let commands = controls.state_commands();
        assert!(commands.contains(&EngineCommand::SetMuted(true)));
        assert!(commands.contains(&EngineCommand::PushToTalk(true)));
        assert!(commands.contains(&EngineCommand::SetSpeakerGain {
            speaker: 4,
            gain: 2.0
        }));
        assert!(
            !commands
                .iter()
                .any(|c| matches!(c, EngineCommand::SetSpeakerGain { speaker: 3, .. })),
            "{commands:?}"
        );
    }
}
