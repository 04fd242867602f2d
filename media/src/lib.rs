//! Sotto's real-time media engine.
//!
//! Audio runs at [`SAMPLE_RATE`] in mono frames of [`FRAME_SAMPLES`] (10 ms), with samples as
//! `f32` in −1…1. The send chain cleans a microphone frame (high-pass, echo cancellation, noise
//! suppression, gain control, voice gate); see [`send::SendChain`]. Every stage keeps its state
//! allocated once and can be switched on and off between frames.
//!
//! `media/README.md` states the choices and the measured numbers.

pub mod codec;
pub mod device;
pub mod engine;
pub mod frame;
pub mod jitter;
pub mod live_loopback;
pub mod loopback;
pub mod loss;
pub mod receive;
pub mod send;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod wav;

pub use frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
