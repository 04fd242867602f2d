//! The send chain: what happens to a microphone frame before it is encoded.
//!
//! high-pass → echo cancellation → noise suppression → gain control → voice gate
//!
//! Each stage works in place on a [`crate::Frame`] and can be switched off between frames
//! without a click (stages that hold state reset it when re-enabled).

mod chain;
mod echo;
mod gain;
mod gate;
mod high_pass;
mod noise;
mod vad;

pub use chain::{FrameReport, Profile, SendChain, StageToggles};
pub use echo::EchoCanceller;
pub use gain::{AutomaticGain, GainSettings};
pub use gate::{GateMode, VoiceGate};
pub use high_pass::HighPass;
pub use noise::NoiseSuppressor;
pub use vad::VoiceDetector;
