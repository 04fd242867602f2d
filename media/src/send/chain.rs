//! The whole send chain with its switches.

use crate::frame::{Frame, rms_dbfs};
use crate::send::{
    AutomaticGain, EchoCanceller, GateMode, HighPass, NoiseSuppressor, VoiceDetector, VoiceGate,
};

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageToggles {
    /// High-pass filter.
    pub high_pass: bool,
    /// Acoustic echo cancellation.
    pub echo: bool,
    /// Noise suppression.
    pub noise: bool,
    /// Automatic gain control.
    pub gain: bool,
    /// Voice gate (off: always send).
    pub gate: bool,
}

/// Ready-made stage sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Loudspeakers: everything on.
    Speakers,
    /// Headset: no echo to cancel, so no echo canceller and its cost and risk.
    Headset,
}

impl Profile {
    /// The stages this profile runs.
    pub fn toggles(self) -> StageToggles {
        StageToggles {
            high_pass: true,
            echo: self == Self::Speakers,
            noise: true,
            gain: true,
            gate: true,
        }
    }
}

/// What the chain found in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameReport {
    /// Whether the frame should be sent.
    pub send: bool,
    /// Whether voice was detected.
    pub voice: bool,
    /// The voice score, 0…1: RNNoise's probability, damped where the frame does not stand out
    /// from the noise floor.
    pub voice_probability: f32,
    /// Microphone level before processing, dBFS.
    pub input_dbfs: f32,
    /// Level after processing, dBFS.
    pub output_dbfs: f32,
}

/// high-pass → echo cancellation → noise suppression → gain control → voice gate.
#[derive(Debug)]
pub struct SendChain {
    high_pass: HighPass,
    echo: EchoCanceller,
    noise: NoiseSuppressor,
    detector: VoiceDetector,
    gain: AutomaticGain,
    gate: VoiceGate,
    toggles: StageToggles,
}

impl SendChain {
    /// A chain running `profile`'s stages, gated by voice activity.
    pub fn new(profile: Profile) -> Self {
        let mut chain = Self {
            high_pass: HighPass::default(),
            echo: EchoCanceller::new(),
            noise: NoiseSuppressor::new(),
            detector: VoiceDetector::new(),
            gain: AutomaticGain::default(),
            gate: VoiceGate::new(GateMode::VoiceActivity),
            toggles: profile.toggles(),
        };
        chain.set_toggles(profile.toggles());
        chain
    }

    /// Switches stages on or off from the next frame.
    pub fn set_toggles(&mut self, toggles: StageToggles) {
        if toggles.high_pass && !self.toggles.high_pass {
            self.high_pass.reset();
        }
        self.echo.set_enabled(toggles.echo);
        self.noise.set_enabled(toggles.noise);
        self.gain.set_enabled(toggles.gain);
        self.toggles = toggles;
    }

    /// The stages that run.
    pub fn toggles(&self) -> StageToggles {
        self.toggles
    }

    /// The voice gate, to change its mode or press push-to-talk.
    pub fn gate_mut(&mut self) -> &mut VoiceGate {
        &mut self.gate
    }

    /// Gives the echo canceller the frame now handed to the speakers.
    pub fn render(&mut self, far: &Frame) {
        self.echo.render(far);
    }

    /// Processes a microphone frame in place.
    pub fn process(&mut self, frame: &mut Frame) -> FrameReport {
        let input_dbfs = rms_dbfs(frame) as f32;
        if self.toggles.high_pass {
            self.high_pass.process(frame);
        }
        self.echo.process(frame);
        // Judge the level before suppression: the floor is the room's, not what is left of it.
        let level = rms_dbfs(frame);
        let rnn_probability = self.noise.process(frame);
        let voice_probability = self.detector.score(level, rnn_probability);
        let voice = voice_probability >= 0.5;
        self.gain.process(frame, voice);
        let send = if self.toggles.gate {
            self.gate.process(frame, voice_probability)
        } else {
            true
        };
        FrameReport {
            send,
            voice,
            voice_probability,
            input_dbfs,
            output_dbfs: rms_dbfs(frame) as f32,
        }
    }
}

/// Engine state must move to the processing thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<SendChain>();
};
