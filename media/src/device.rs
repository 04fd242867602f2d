//! Real sound devices through cpal: capture and playback at any device rate and channel
//! count, converted to and from the engine's 48 kHz mono frames.
//!
//! The device callbacks only move samples between the device buffer and a lock-free SPSC ring
//! (`rtrb`): no allocation, no lock, no blocking, and no printing. Everything else — re-chunking
//! the device's variable buffers into 10 ms frames, resampling (`rubato`), down- and up-mixing —
//! happens on the caller's processing thread. Underruns (playback ring empty) and overruns
//! (capture ring full) are counted. A failed device (unplugged, server gone) is reported by
//! [`CaptureStream::failure`] / [`PlaybackStream::failure`]; the owner reopens it.

pub mod callbacks;
mod capture;
mod playback;
mod resample;
mod resilient;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cpal::traits::{DeviceTrait, HostTrait};

pub use capture::CaptureStream;
pub use playback::PlaybackStream;
#[cfg(feature = "test-support")]
pub(crate) use resilient::test_hooks;
pub use resilient::{DeviceEvent, ResilientCapture, ResilientPlayback};

/// Which device to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// The system's default device.
    Default,
    /// The device whose name is this.
    Named(String),
}

impl DeviceSelector {
    /// `default` (any case) for the default device, else a name.
    pub fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("default") {
            Self::Default
        } else {
            Self::Named(text.to_owned())
        }
    }
}

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Microphones.
    Input,
    /// Speakers and headphones.
    Output,
}

/// A device the system offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its name, usable with [`DeviceSelector::Named`].
    pub name: String,
    /// Whether it is the system default.
    pub is_default: bool,
}

/// Why a device could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device matched.
    #[error("no {direction} device named \"{name}\"; run `sotto-media devices` to list them")]
    NotFound {
        /// Input or output.
        direction: &'static str,
        /// The name asked for.
        name: String,
    },
    /// There is no default device.
    #[error("there is no default {0} device; plug one in or pick one by name")]
    NoDefault(&'static str),
    /// The sound server stopped; it is waited for.
    #[error(
        "the sound server (PulseAudio or PipeWire) is not running; start it, or wait while it restarts"
    )]
    SoundServerGone,
    /// cpal refused.
    #[error("audio device error: {0}")]
    Backend(#[from] cpal::Error),
    /// The thread that reopens the device and follows the default could not be started.
    #[error("could not start the audio device's opener thread: {0}")]
    Opener(#[source] std::io::Error),
    /// The device's format cannot be converted.
    #[error("cannot convert between the device's {rate} Hz and 48000 Hz: {reason}")]
    Resampler {
        /// The device rate.
        rate: u32,
        /// Why.
        reason: String,
    },
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Input => "input",
        Direction::Output => "output",
    }
}

/// The audio host: PulseAudio (which also fronts PipeWire) where it runs. Once it has been
/// reachable, a sound server that restarts is waited for rather than replaced by raw ALSA.
fn host() -> Result<cpal::Host, DeviceError> {
    static PREFER_PULSE: AtomicBool = AtomicBool::new(false);
    #[cfg(target_os = "linux")]
    match cpal::host_from_id(cpal::HostId::PulseAudio) {
        Ok(host) => {
            PREFER_PULSE.store(true, Ordering::Relaxed);
            return Ok(host);
        }
        Err(_) if PREFER_PULSE.load(Ordering::Relaxed) => return Err(DeviceError::SoundServerGone),
        Err(_) => {}
    }
    Ok(cpal::default_host())
}

fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|description| description.name().to_owned())
        .unwrap_or_else(|_| "unknown device".into())
}

/// The devices of the default host in `direction`.
pub fn list(direction: Direction) -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = host()?;
    let default = match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
    .map(|device| device_name(&device));
    let devices: Vec<cpal::Device> = match direction {
        Direction::Input => host.input_devices()?.collect(),
        Direction::Output => host.output_devices()?.collect(),
    };
    Ok(devices
        .iter()
        .map(|device| {
            let name = device_name(device);
            DeviceInfo {
                is_default: default.as_deref() == Some(name.as_str()),
                name,
            }
        })
        .collect())
}

/// The name of the system's default device in `direction`, if there is one.
pub fn default_name(direction: Direction) -> Option<String> {
    let host = host().ok()?;
    let device = match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }?;
    Some(device_name(&device))
}

/// A listing of every input and output device, one per line, defaults marked — what the
/// `devices` commands print.
pub fn listing() -> Result<String, DeviceError> {
    let mut text = String::new();
    for (label, direction) in [("Inputs", Direction::Input), ("Outputs", Direction::Output)] {
        text.push_str(label);
        text.push_str(":\n");
        for device in list(direction)? {
            text.push_str(&format!(
                "  {}{}\n",
                device.name,
                if device.is_default { "  (default)" } else { "" }
            ));
        }
    }
    Ok(text)
}

fn find(selector: &DeviceSelector, direction: Direction) -> Result<cpal::Device, DeviceError> {
    let host = host()?;
    let label = direction_name(direction);
    match selector {
        DeviceSelector::Default => match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or(DeviceError::NoDefault(label)),
        DeviceSelector::Named(name) => {
            let mut devices: Box<dyn Iterator<Item = cpal::Device>> = match direction {
                Direction::Input => Box::new(host.input_devices()?),
                Direction::Output => Box::new(host.output_devices()?),
            };
            devices
                .find(|device| device_name(device) == *name)
                .ok_or_else(|| DeviceError::NotFound {
                    direction: label,
                    name: name.clone(),
                })
        }
    }
}

/// Picks a stream configuration: 48 kHz when the device offers it (no resampling), else its
/// default rate; the device's default channel count; 10 ms buffers when allowed.
fn choose_config(
    device: &cpal::Device,
    direction: Direction,
) -> Result<cpal::SupportedStreamConfig, DeviceError> {
    let default = match direction {
        Direction::Input => device.default_input_config()?,
        Direction::Output => device.default_output_config()?,
    };
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => device.supported_input_configs()?.collect(),
        Direction::Output => device.supported_output_configs()?.collect(),
    };
    let at_48k = ranges.into_iter().find(|range| {
        range.channels() == default.channels()
            && range.sample_format() == default.sample_format()
            && range.min_sample_rate() <= crate::SAMPLE_RATE
            && range.max_sample_rate() >= crate::SAMPLE_RATE
    });
    Ok(at_48k.map_or(default, |range| range.with_sample_rate(crate::SAMPLE_RATE)))
}

fn stream_config(supported: &cpal::SupportedStreamConfig, period_ms: u32) -> cpal::StreamConfig {
    let mut config = supported.config();
    let period = supported.sample_rate() * period_ms / 1000;
    if let cpal::SupportedBufferSize::Range { min, max } = supported.buffer_size()
        && (*min..=*max).contains(&period)
    {
        config.buffer_size = cpal::BufferSize::Fixed(period);
    }
    config
}

/// Counters shared with a device callback.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Callbacks run.
    pub callbacks: AtomicU64,
    /// Device samples (per channel) moved.
    pub samples: AtomicU64,
    /// Playback callbacks that found too little audio (filled with silence).
    pub underruns: AtomicU64,
    /// Capture callbacks that found the ring full (samples dropped).
    pub overruns: AtomicU64,
    failed: AtomicBool,
}

impl IoCounters {
    /// Marks the device as failed (called from cpal's error callback).
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// Whether the device reported a failure.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// What a device stream reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoStats {
    /// Callbacks run.
    pub callbacks: u64,
    /// Device samples (per channel) moved.
    pub samples: u64,
    /// Underruns.
    pub underruns: u64,
    /// Overruns.
    pub overruns: u64,
}

fn snapshot(counters: &Arc<IoCounters>) -> IoStats {
    IoStats {
        callbacks: counters.callbacks.load(Ordering::Relaxed),
        samples: counters.samples.load(Ordering::Relaxed),
        underruns: counters.underruns.load(Ordering::Relaxed),
        overruns: counters.overruns.load(Ordering::Relaxed),
    }
}
