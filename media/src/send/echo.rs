//! Acoustic echo cancellation with sonora, a pure-Rust port of WebRTC's AEC3.

use sonora::config::EchoCanceller as EchoConfig;
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// Removes the far end's voice, as played by the speakers, from the microphone signal.
///
/// Feed every frame handed to the playback device to [`EchoCanceller::render`] and every
/// microphone frame to [`EchoCanceller::process`], in step. AEC3 estimates the acoustic delay
/// itself.
pub struct EchoCanceller {
    processor: AudioProcessing,
    scratch: Frame,
    enabled: bool,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

fn build_processor() -> AudioProcessing {
    let config = Config {
        // Our own high-pass stage runs before this one.
        echo_canceller: Some(EchoConfig {
            enforce_high_pass_filtering: false,
            ..EchoConfig::default()
        }),
        ..Config::default()
    };
    let stream = StreamConfig::new(SAMPLE_RATE, 1);
    AudioProcessing::builder()
        .config(config)
        .capture_config(stream)
        .render_config(stream)
        .build()
}

impl EchoCanceller {
    /// A canceller, switched on.
    pub fn new() -> Self {
        Self {
            processor: build_processor(),
            scratch: [0.0; FRAME_SAMPLES],
            enabled: true,
        }
    }

    /// Switches cancellation on or off. Switching on starts from a fresh state, since the echo
    /// path may have changed while it was off.
    pub fn set_enabled(&mut self, enabled: bool) {
        if enabled && !self.enabled {
            self.processor = build_processor();
        }
        self.enabled = enabled;
    }

    /// Whether cancellation is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Tells the canceller what the speakers are playing now.
    pub fn render(&mut self, far: &Frame) {
        if !self.enabled {
            return;
        }
        // The render output is not used; AEC3 only analyses it.
        let mut unused = [0.0f32; FRAME_SAMPLES];
        let _ = self
            .processor
            .process_render_f32(&[far.as_slice()], &mut [unused.as_mut_slice()]);
    }

    /// Removes echo from a microphone frame in place.
    pub fn process(&mut self, frame: &mut Frame) {
        if !self.enabled {
            return;
        }
        self.scratch = *frame;
        if self
            .processor
            .process_capture_f32(&[self.scratch.as_slice()], &mut [frame.as_mut_slice()])
            .is_err()
        {
            // Formats are fixed at construction, so this cannot happen; keep the input if it does.
            *frame = self.scratch;
        }
    }
}
