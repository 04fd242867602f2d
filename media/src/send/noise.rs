//! Noise suppression with nnnoiseless (RNNoise), which also yields the voice probability the
//! gate and gain control use.

use nnnoiseless::DenoiseState;

use crate::frame::{FRAME_SAMPLES, Frame};

/// RNNoise works on samples in the 16-bit integer range.
const I16_SCALE: f32 = 32_767.0;

/// Suppresses stationary and non-stationary noise (fans, keyboards, traffic) in speech.
///
/// The network always runs, so the voice probability is there even when suppression is off;
/// off, the frame passes through delayed exactly as much as the suppressed path (one frame),
/// so switching never jumps in time, and each switch crossfades over one frame.
pub struct NoiseSuppressor {
    state: Box<DenoiseState<'static>>,
    scratch_in: Frame,
    scratch_out: Frame,
    /// The previous input frame, for the bypass path.
    delayed: Frame,
    enabled: bool,
    /// Whether the last frame was suppressed (for crossfading a switch).
    was_enabled: bool,
    frames: u64,
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

impl NoiseSuppressor {
    /// Frames of delay this stage adds.
    pub const DELAY_FRAMES: usize = 1;

    /// A suppressor, switched on.
    pub fn new() -> Self {
        debug_assert_eq!(DenoiseState::FRAME_SIZE, FRAME_SAMPLES);
        Self {
            state: DenoiseState::new(),
            scratch_in: [0.0; FRAME_SAMPLES],
            scratch_out: [0.0; FRAME_SAMPLES],
            delayed: [0.0; FRAME_SAMPLES],
            enabled: true,
            was_enabled: true,
            frames: 0,
        }
    }

    /// Switches suppression on or off from the next frame.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Whether suppression is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Processes a frame in place; returns the probability (0…1) that it holds speech.
    pub fn process(&mut self, frame: &mut Frame) -> f32 {
        for (scaled, sample) in self.scratch_in.iter_mut().zip(frame.iter()) {
            *scaled = sample * I16_SCALE;
        }
        let probability = self
            .state
            .process_frame(&mut self.scratch_out, &self.scratch_in);
        self.frames += 1;
        // RNNoise's very first output frame is a fade-in artefact.
        if self.frames == 1 {
            self.scratch_out = [0.0; FRAME_SAMPLES];
        }
        let bypass = self.delayed;
        self.delayed = *frame;
        let last = FRAME_SAMPLES as f32;
        for (index, sample) in frame.iter_mut().enumerate() {
            let suppressed = self.scratch_out[index] / I16_SCALE;
            let raw = bypass[index];
            // Weight of the suppressed path, ramping across the frame on a switch.
            let ramp = index as f32 / last;
            let weight = match (self.was_enabled, self.enabled) {
                (true, true) => 1.0,
                (false, false) => 0.0,
                (false, true) => ramp,
                (true, false) => 1.0 - ramp,
            };
            *sample = weight * suppressed + (1.0 - weight) * raw;
        }
        self.was_enabled = self.enabled;
        probability
    }
}
