//! Devices that come back: reopened after a failure, and moved when the system default changes.
//!
//! Each device has an opener thread that does the slow work (opening, retrying, asking the
//! sound server for the default device) and hands opened streams over through a one-slot queue;
//! the processing thread's [`ResilientCapture::poll`] / [`ResilientPlayback::poll`] only check
//! for failure and for a handed-over stream, never wait.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
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

/// What the processing side tells its opener thread.
enum Request<S> {
    /// The stream handed over as this generation failed: open another.
    Lost(u64),
    /// A stream taken out of use: closed on the opener thread, since closing can wait on the
    /// sound server.
    Retire(Box<S>),
}

/// A stream the opener thread opened, for the processing side to take up.
struct Opened<S> {
    stream: Box<S>,
    /// Counts the streams handed over: a loss report names the one it is about.
    generation: u64,
    /// Whether it replaces a failed stream (else it follows a new system default).
    recovered: bool,
}

/// The opener thread: retries a failed device and follows the system default, so that opening
/// a device (which can take the sound server a while) never holds up the processing thread.
/// Streams it opens are handed over through a one-slot queue that the processing side checks
/// without waiting.
struct Opener<S> {
    selector: DeviceSelector,
    requests: Receiver<Request<S>>,
    opened: SyncSender<Opened<S>>,
    generation: u64,
    /// The name of the stream in use; `None` while the device is being reopened.
    current: Option<String>,
    /// A new default seen at the last check, not yet followed.
    candidate_default: Option<String>,
}

impl<S: Reopen + Send + 'static> Opener<S> {
    fn run(mut self) {
        let mut next_step = Instant::now() + DEFAULT_CHECK_EVERY;
        loop {
            let wait = next_step.saturating_duration_since(Instant::now());
            match self.requests.recv_timeout(wait) {
                Ok(Request::Retire(stream)) => drop(stream),
                Ok(Request::Lost(generation)) => {
                    if generation == self.generation && self.current.take().is_some() {
                        self.candidate_default = None;
                        next_step = Instant::now() + RETRY_EVERY;
                    }
                }
                Err(RecvTimeoutError::Timeout) => match self.step() {
                    Some(interval) => next_step = Instant::now() + interval,
                    None => return,
                },
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Retries a lost device, or checks the system default. Returns when to step again, or
    /// `None` once the processing side is gone.
    fn step(&mut self) -> Option<Duration> {
        if self.current.is_none() {
            if let Ok(stream) = open_from_helper::<S>(&self.selector) {
                self.hand_over(stream, true)?;
                return Some(DEFAULT_CHECK_EVERY);
            }
            return Some(RETRY_EVERY);
        }
        if self.selector == DeviceSelector::Default {
            self.follow_default()?;
        }
        Some(DEFAULT_CHECK_EVERY)
    }

    /// Opens the new system default once two checks in a row agree on it.
    fn follow_default(&mut self) -> Option<()> {
        let default = default_name(S::DIRECTION)
            .filter(|default| self.current.as_deref() != Some(default.as_str()));
        let confirmed = default.is_some() && default == self.candidate_default;
        self.candidate_default = default;
        if confirmed && let Ok(stream) = open_from_helper::<S>(&DeviceSelector::Default) {
            self.hand_over(stream, false)?;
        }
        Some(())
    }

    /// Hands `stream` to the processing side (waiting while it has not taken the last one).
    fn hand_over(&mut self, stream: S, recovered: bool) -> Option<()> {
        self.generation += 1;
        self.current = Some(stream.device_name().to_owned());
        self.candidate_default = None;
        self.opened
            .send(Opened {
                stream: Box::new(stream),
                generation: self.generation,
                recovered,
            })
            .ok()
    }
}

/// Opens a stream on the opener thread (where a test may make it slow).
fn open_from_helper<S: Reopen>(selector: &DeviceSelector) -> Result<S, DeviceError> {
    #[cfg(feature = "test-support")]
    test_hooks::before_reopen(S::DIRECTION);
    S::open_stream(selector)
}

/// A stream with its recovery state, on the processing side: it only checks, never waits.
struct Resilient<S> {
    selector: DeviceSelector,
    stream: Option<Box<S>>,
    generation: u64,
    requests: SyncSender<Request<S>>,
    opened: Receiver<Opened<S>>,
    /// A loss the opener has not been told of yet (its queue was full).
    unreported_loss: Option<u64>,
    /// Counters of streams already closed.
    closed: IoStats,
    /// Callback count at the last sign of life, and when.
    last_progress: (u64, Instant),
}

/// Requests queued for an opener thread before the processing side falls back on its own
/// (a loss is reported again at the next poll; a retired stream gets a thread to close it).
const REQUEST_QUEUE: usize = 8;

impl<S: Reopen + Send + 'static> Resilient<S> {
    /// Opens the device on the calling thread, then starts its opener thread.
    fn open(selector: DeviceSelector) -> Result<Self, DeviceError> {
        let stream = Box::new(S::open_stream(&selector)?);
        let (requests, request_rx) = sync_channel(REQUEST_QUEUE);
        let (opened_tx, opened) = sync_channel(1);
        let opener = Opener {
            selector: selector.clone(),
            requests: request_rx,
            opened: opened_tx,
            generation: 0,
            current: Some(stream.device_name().to_owned()),
            candidate_default: None,
        };
        let direction = match S::DIRECTION {
            Direction::Input => "input",
            Direction::Output => "output",
        };
        std::thread::Builder::new()
            .name(format!("sotto-{direction}-opener"))
            .spawn(move || opener.run())
            .map_err(DeviceError::Opener)?;
        Ok(Self {
            selector,
            stream: Some(stream),
            generation: 0,
            requests,
            opened,
            unreported_loss: None,
            closed: IoStats::default(),
            last_progress: (0, Instant::now()),
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
            if let Err(error) = self.requests.try_send(Request::Retire(stream)) {
                let (TrySendError::Full(request) | TrySendError::Disconnected(request)) = error;
                std::thread::spawn(move || drop(request));
            }
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

    /// Takes up a stream the opener has handed over, if any.
    fn take_opened(&mut self) -> Option<DeviceEvent> {
        let Opened {
            stream,
            generation,
            recovered,
        } = self.opened.try_recv().ok()?;
        self.close();
        let name = stream.device_name().to_owned();
        self.stream = Some(stream);
        self.generation = generation;
        self.unreported_loss = None;
        self.last_progress = (0, Instant::now());
        let direction = S::DIRECTION;
        Some(if recovered {
            DeviceEvent::Recovered { direction, name }
        } else {
            DeviceEvent::Switched { direction, name }
        })
    }

    fn report_loss(&mut self) {
        if let Some(generation) = self.unreported_loss
            && self.requests.try_send(Request::Lost(generation)).is_ok()
        {
            self.unreported_loss = None;
        }
    }

    fn poll(&mut self) -> Option<DeviceEvent> {
        self.report_loss();
        if let Some(event) = self.take_opened() {
            return Some(event);
        }
        if self.stream.as_ref().is_some_and(|stream| stream.failed()) || self.stalled() {
            self.close();
            self.unreported_loss = Some(self.generation);
            self.report_loss();
            return Some(DeviceEvent::Lost {
                direction: S::DIRECTION,
            });
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

/// A slow driver, simulated for tests (feature `test-support`): every open on an opener
/// thread first sleeps, and records which thread it ran on.
#[cfg(feature = "test-support")]
pub(crate) mod test_hooks {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use crate::device::Direction;

    static INPUT_DELAY_MICROS: AtomicU64 = AtomicU64::new(0);
    static OUTPUT_DELAY_MICROS: AtomicU64 = AtomicU64::new(0);
    static SLOW_OPENS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn delay(direction: Direction) -> &'static AtomicU64 {
        match direction {
            Direction::Input => &INPUT_DELAY_MICROS,
            Direction::Output => &OUTPUT_DELAY_MICROS,
        }
    }

    pub(crate) fn set_reopen_delay(direction: Direction, wait: Duration) {
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        delay(direction).store(micros, Ordering::Relaxed);
    }

    pub(crate) fn slow_reopen_threads() -> Vec<String> {
        SLOW_OPENS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn before_reopen(direction: Direction) {
        let micros = delay(direction).load(Ordering::Relaxed);
        if micros == 0 {
            return;
        }
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        SLOW_OPENS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(thread);
        std::thread::sleep(Duration::from_micros(micros));
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

    /// Checks for failure and takes up a stream the opener thread reopened or moved to a new
    /// default; never waits. Call between frames.
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

    /// Checks for failure and takes up a stream the opener thread reopened or moved to a new
    /// default; never waits. Call between frames.
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::Sender;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A fake capture device whose opens wait until the test hands them the stream's failure
    /// flag: a driver that takes as long to open as the test says.
    struct FakeStream {
        failed: Arc<AtomicBool>,
    }

    static OPENS: Mutex<Option<Receiver<Arc<AtomicBool>>>> = Mutex::new(None);
    static OPENED_ON: Mutex<Vec<String>> = Mutex::new(Vec::new());

    impl Reopen for FakeStream {
        const DIRECTION: Direction = Direction::Input;
        fn open_stream(_: &DeviceSelector) -> Result<Self, DeviceError> {
            let thread = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned();
            OPENED_ON.lock().unwrap().push(thread);
            let opens = OPENS.lock().unwrap();
            let failed = opens
                .as_ref()
                .and_then(|opens| opens.recv_timeout(Duration::from_secs(10)).ok())
                .ok_or(DeviceError::NoDefault("fake"))?;
            Ok(Self { failed })
        }
        fn device_name(&self) -> &str {
            "fake"
        }
        fn failed(&self) -> bool {
            self.failed.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn io_stats(&self) -> IoStats {
            IoStats::default()
        }
    }

    fn open_fake() -> (
        Resilient<FakeStream>,
        Sender<Arc<AtomicBool>>,
        Arc<AtomicBool>,
    ) {
        let (streams, opens) = std::sync::mpsc::channel();
        *OPENS.lock().unwrap() = Some(opens);
        let first = Arc::new(AtomicBool::new(false));
        streams.send(first.clone()).unwrap();
        let resilient = Resilient::open(DeviceSelector::Named("fake".into())).unwrap();
        (resilient, streams, first)
    }

    #[test]
    fn poll_never_waits_for_a_reopen() {
        let (mut resilient, streams, first) = open_fake();
        first.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            resilient.poll(),
            Some(DeviceEvent::Lost {
                direction: Direction::Input
            })
        );
        // The opener is now stuck in an open that cannot finish until the test lets it: every
        // poll returns at once all the same (one that opened itself would wait here for 10 s
        // and then fail the assertions below).
        std::thread::sleep(RETRY_EVERY * 2);
        for _ in 0..100 {
            assert_eq!(resilient.poll(), None);
        }
        assert!(resilient.stream.is_none(), "no stream while reopening");
        streams.send(Arc::new(AtomicBool::new(false))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let recovered = loop {
            if let Some(event) = resilient.poll() {
                break event;
            }
            assert!(Instant::now() < deadline, "the reopened stream never came");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(
            recovered,
            DeviceEvent::Recovered {
                direction: Direction::Input,
                name: "fake".into()
            }
        );
        let threads = OPENED_ON.lock().unwrap().clone();
        let test_thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        // The first open is the caller's; every reopen is the opener thread's.
        assert_eq!(threads[0], test_thread);
        assert!(
            threads[1..]
                .iter()
                .all(|thread| thread == "sotto-input-opener"),
            "{threads:?}"
        );
    }
}
