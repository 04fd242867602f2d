//! Devices that come back: reopened after a failure, and moved when the system default changes.

use std::time::{Duration, Instant};

use crate::device::{
    CaptureStream, DeviceError, DeviceSelector, Direction, IoStats, PlaybackStream, default_name,
};
use crate::frame::Frame;

/// How often a failed device is retried.
const RETRY_EVERY: Duration = Duration::from_millis(200);
/// How often the system default is checked (when following it). A new default is followed
/// once two checks in a row agree, so a device that only flickers past is ignored.
const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A stream whose callbacks stop for this long counts as failed.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// Something that happened to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The device failed; it is being retried.
    Lost {
        /// Input or output.
        direction: Direction,
    },
    /// The device is open again.
    Recovered {
        /// Input or output.
        direction: Direction,
        /// The device now open.
        name: String,
    },
    /// The system default changed and the stream moved to it.
    Switched {
        /// Input or output.
        direction: Direction,
        /// The new device.
        name: String,
    },
}

/// What the two stream kinds share for reopening.
trait Reopen: Sized {
    const DIRECTION: Direction;
    fn open_stream(selector: &DeviceSelector) -> Result<Self, DeviceError>;
    fn device_name(&self) -> &str;
    fn failed(&self) -> bool;
    fn io_stats(&self) -> IoStats;
}

impl Reopen for CaptureStream {
    const DIRECTION: Direction = Direction::Input;
    fn open_stream(selector: &DeviceSelector) -> Result<Self, DeviceError> {
        Self::open(selector)
    }
    fn device_name(&self) -> &str {
        self.name()
    }
    fn failed(&self) -> bool {
        self.failure()
    }
    fn io_stats(&self) -> IoStats {
        self.stats()
    }
}

impl Reopen for PlaybackStream {
    const DIRECTION: Direction = Direction::Output;
    fn open_stream(selector: &DeviceSelector) -> Result<Self, DeviceError> {
        Self::open(selector)
    }
    fn device_name(&self) -> &str {
        self.name()
    }
    fn failed(&self) -> bool {
        self.failure()
    }
    fn io_stats(&self) -> IoStats {
        self.stats()
    }
}

/// A stream with its recovery state.
struct Resilient<S> {
    selector: DeviceSelector,
    stream: Option<Box<S>>,
    last_retry: Instant,
    last_default_check: Instant,
    /// Counters of streams already closed.
    closed: IoStats,
    /// A new default seen at the last check, not yet followed.
    candidate_default: Option<String>,
    /// Callback count at the last sign of life, and when.
    last_progress: (u64, Instant),
}

impl<S: Reopen + Send + 'static> Resilient<S> {
    fn open(selector: DeviceSelector) -> Result<Self, DeviceError> {
        let stream = Box::new(S::open_stream(&selector)?);
        let now = Instant::now();
        Ok(Self {
            selector,
            stream: Some(stream),
            last_retry: now,
            last_default_check: now,
            closed: IoStats::default(),
            candidate_default: None,
            last_progress: (0, now),
        })
    }

    fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            let stats = stream.io_stats();
            self.closed.callbacks += stats.callbacks;
            self.closed.samples += stats.samples;
            self.closed.underruns += stats.underruns;
            self.closed.overruns += stats.overruns;
            // Closing a stream can wait on the sound server for a while: never on this thread.
            std::thread::spawn(move || drop(stream));
        }
    }

    /// Whether the open stream's callbacks have stopped coming.
    fn stalled(&mut self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        let callbacks = stream.io_stats().callbacks;
        if callbacks != self.last_progress.0 {
            self.last_progress = (callbacks, Instant::now());
            return false;
        }
        self.last_progress.1.elapsed() >= STALL_AFTER
    }

    fn opened(&mut self, stream: S) -> String {
        let name = stream.device_name().to_owned();
        self.stream = Some(Box::new(stream));
        self.last_progress = (0, Instant::now());
        self.candidate_default = None;
        name
    }

    fn poll(&mut self) -> Option<DeviceEvent> {
        let direction = S::DIRECTION;
        if self.stream.as_ref().is_some_and(|stream| stream.failed()) || self.stalled() {
            self.close();
            self.last_retry = Instant::now();
            return Some(DeviceEvent::Lost { direction });
        }
        if self.stream.is_none() {
            if self.last_retry.elapsed() < RETRY_EVERY {
                return None;
            }
            self.last_retry = Instant::now();
            let stream = S::open_stream(&self.selector).ok()?;
            let name = self.opened(stream);
            return Some(DeviceEvent::Recovered { direction, name });
        }
        if self.selector == DeviceSelector::Default
            && self.last_default_check.elapsed() >= DEFAULT_CHECK_EVERY
        {
            self.last_default_check = Instant::now();
            let current = self
                .stream
                .as_ref()
                .map(|stream| stream.device_name().to_owned());
            let default = default_name(direction)
                .filter(|default| current.as_deref() != Some(default.as_str()));
            let confirmed = default.is_some() && default == self.candidate_default;
            self.candidate_default = default;
            if confirmed && let Ok(stream) = S::open_stream(&DeviceSelector::Default) {
                self.close();
                let name = self.opened(stream);
                return Some(DeviceEvent::Switched { direction, name });
            }
        }
        None
    }

    fn stats(&self) -> IoStats {
        let live = self
            .stream
            .as_ref()
            .map(|stream| stream.io_stats())
            .unwrap_or_default();
        IoStats {
            callbacks: self.closed.callbacks + live.callbacks,
            samples: self.closed.samples + live.samples,
            underruns: self.closed.underruns + live.underruns,
            overruns: self.closed.overruns + live.overruns,
        }
    }
}

/// A capture device that is reopened after failures and follows the default device.
pub struct ResilientCapture(Resilient<CaptureStream>);

impl std::fmt::Debug for ResilientCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientCapture")
            .field("selector", &self.0.selector)
            .finish_non_exhaustive()
    }
}

impl ResilientCapture {
    /// Opens the device; it must be there at first.
    pub fn open(selector: DeviceSelector) -> Result<Self, DeviceError> {
        Resilient::open(selector).map(Self)
    }

    /// Checks for failure, retries, and follows the default; call between frames.
    pub fn poll(&mut self) -> Option<DeviceEvent> {
        self.0.poll()
    }

    /// The next 10 ms frame, if the device delivered one.
    pub fn read_frame(&mut self, out: &mut Frame) -> bool {
        self.0
            .stream
            .as_mut()
            .is_some_and(|stream| stream.read_frame(out))
    }

    /// Whether a device is open now.
    pub fn is_open(&self) -> bool {
        self.0.stream.is_some()
    }

    /// The open device, if any.
    pub fn stream(&self) -> Option<&CaptureStream> {
        self.0.stream.as_deref()
    }

    /// Counters over every stream opened so far.
    pub fn stats(&self) -> IoStats {
        self.0.stats()
    }
}

/// A playback device that is reopened after failures and follows the default device.
pub struct ResilientPlayback(Resilient<PlaybackStream>);

impl std::fmt::Debug for ResilientPlayback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientPlayback")
            .field("selector", &self.0.selector)
            .finish_non_exhaustive()
    }
}

impl ResilientPlayback {
    /// Opens the device; it must be there at first.
    pub fn open(selector: DeviceSelector) -> Result<Self, DeviceError> {
        Resilient::open(selector).map(Self)
    }

    /// Checks for failure, retries, and follows the default; call between frames.
    pub fn poll(&mut self) -> Option<DeviceEvent> {
        self.0.poll()
    }

    /// Queues a frame (dropped while no device is open).
    pub fn write_frame(&mut self, frame: &Frame) {
        if let Some(stream) = self.0.stream.as_mut() {
            stream.write_frame(frame);
        }
    }

    /// Samples the open device had no room for.
    pub fn dropped(&self) -> u64 {
        self.0.stream.as_deref().map_or(0, PlaybackStream::dropped)
    }

    /// The open device, if any.
    pub fn stream(&self) -> Option<&PlaybackStream> {
        self.0.stream.as_deref()
    }

    /// Counters over every stream opened so far.
    pub fn stats(&self) -> IoStats {
        self.0.stats()
    }
}
