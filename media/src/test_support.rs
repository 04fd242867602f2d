//! Test support (feature `test-support`): a private PulseAudio server with a null sink, whose
//! monitor source hears whatever is played into it. The speaker and microphone themselves are
//! the only parts that cannot exist on a machine without a sound card; the null sink stands in
//! for them, and everything between (the sound server, cpal, the engine) is real.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The human speech recordings Debian's alsa-utils ships in `/usr/share/sounds/alsa` (48 kHz
/// mono, about 1.4 s each): real voices for tests, with no download.
pub const ALSA_SPEECH_CLIPS: [&str; 8] = [
    "Front_Center",
    "Front_Left",
    "Front_Right",
    "Rear_Center",
    "Rear_Left",
    "Rear_Right",
    "Side_Left",
    "Side_Right",
];

/// One alsa-utils recording (see [`ALSA_SPEECH_CLIPS`]), as 48 kHz mono samples.
///
/// # Panics
/// When alsa-utils is not installed.
pub fn alsa_clip(name: &str) -> Vec<f32> {
    let path = format!("/usr/share/sounds/alsa/{name}.wav");
    crate::wav::read_mono(Path::new(&path)).unwrap_or_else(|error| {
        panic!("{path}: {error}; install Debian's alsa-utils (bash .ci/install-deps)")
    })
}

/// The RMS level of each 10 ms frame of `signal`.
pub fn envelope(signal: &[f32]) -> Vec<f64> {
    signal
        .chunks(crate::FRAME_SAMPLES)
        .map(|chunk| crate::frame::power(chunk).sqrt())
        .collect()
}

/// Pearson correlation of `a` and `b` over their common length.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mean = |values: &[f64]| values[..n].iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    num / (da.sqrt() * db.sqrt())
}

/// Makes every device open on an opener thread (reopening after a failure, following a new
/// default) in `direction` first sleep `delay`: a test double for a slow driver. Zero turns it
/// off. Opens on the caller's thread (the first one) are not slowed.
pub fn set_device_reopen_delay(direction: crate::device::Direction, delay: Duration) {
    crate::device::test_hooks::set_reopen_delay(direction, delay);
}

/// The names of the threads that slowed-down opens (see [`set_device_reopen_delay`]) ran on,
/// oldest first.
pub fn slow_reopen_threads() -> Vec<String> {
    crate::device::test_hooks::slow_reopen_threads()
}

/// The null sink every [`SoundServer`] starts with.
pub const NULL_SINK: &str = "vsink";

/// A private PulseAudio server, stopped on drop.
#[derive(Debug)]
pub struct SoundServer {
    runtime_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SoundServer {
    /// Starts a server with one null sink, [`NULL_SINK`], at 48 kHz.
    ///
    /// # Panics
    /// When PulseAudio is not installed or does not come up within 10 s.
    pub fn start() -> Self {
        let runtime_dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = Self {
            runtime_dir,
            child: None,
        };
        server.launch();
        server
    }

    /// Starts the server process (again, after [`Self::kill`]).
    ///
    /// # Panics
    /// When PulseAudio is not installed or does not come up within 10 s.
    pub fn launch(&mut self) {
        assert!(
            Path::new("/usr/bin/pulseaudio").exists(),
            "PulseAudio is not installed: run `bash .ci/install-deps`"
        );
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix",
                &format!("--load=module-null-sink sink_name={NULL_SINK} rate=48000"),
                "--load=module-always-sink",
            ])
            .envs(self.environment())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pactl(&["info"]).status.success() {
            assert!(Instant::now() < deadline, "PulseAudio did not come up");
            sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server process (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The variables a client needs to find this server.
    pub fn environment(&self) -> [(&'static str, &Path); 2] {
        [
            ("XDG_RUNTIME_DIR", self.runtime_dir.path()),
            ("HOME", self.runtime_dir.path()),
        ]
    }

    /// Runs `pactl` against this server.
    ///
    /// # Panics
    /// When `pactl` cannot be run.
    pub fn pactl(&self, args: &[&str]) -> Output {
        Command::new("pactl")
            .args(args)
            .envs(self.environment())
            .output()
            .expect("pactl runs")
    }

    /// A command for `program` that talks to this server.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(self.environment());
        command
    }

    /// Keeps the null sink running at low latency, as a sound card always is, by playing
    /// silence into it with `pacat` until the guard is dropped. An idle null sink falls back
    /// to a 2 s latency and then takes about that long to start a new stream (measured), which
    /// no real device does.
    ///
    /// # Panics
    /// When `pacat` cannot be started.
    pub fn keep_sink_running(&self) -> SinkKeeper {
        let child = self
            .command("pacat")
            .args([
                "--playback",
                "--latency-msec=10",
                "--rate=48000",
                "--channels=1",
                "--format=s16le",
                "/dev/zero",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pacat starts (pulseaudio-utils)");
        // The sink first plays out what it rendered ahead at its idle latency: wait until its
        // latency is down to tens of milliseconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .sink_latency()
            .is_none_or(|latency| latency > Duration::from_millis(50))
        {
            assert!(
                Instant::now() < deadline,
                "the null sink did not come down to a low latency"
            );
            sleep(Duration::from_millis(100));
        }
        SinkKeeper { child }
    }

    /// The null sink's current latency, as `pactl` reports it.
    pub fn sink_latency(&self) -> Option<Duration> {
        let listing = self.pactl(&["list", "sinks"]);
        let text = String::from_utf8_lossy(&listing.stdout);
        let micros = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("Latency: "))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(Duration::from_micros(micros))
    }

    /// Starts recording what is played into the null sink to a 48 kHz mono WAV file (with
    /// `parecord` from its monitor source); stop it with [`Recording::finish`].
    ///
    /// # Panics
    /// When `parecord` cannot be started.
    pub fn record_sink(&self, path: &Path) -> Recording {
        let child = self
            .command("parecord")
            .args([
                &format!("--device={NULL_SINK}.monitor"),
                "--rate=48000",
                "--channels=1",
                "--format=s16le",
                "--file-format=wav",
            ])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("parecord starts (pulseaudio-utils)");
        Recording { child }
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `parecord` run; see [`SoundServer::record_sink`].
#[derive(Debug)]
pub struct Recording {
    child: Child,
}

impl Recording {
    /// Stops recording (SIGINT, so the WAV header is finished) and waits for the file.
    ///
    /// # Panics
    /// When the recorder cannot be signalled.
    pub fn finish(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "could not stop parecord");
        let _ = self.child.wait();
    }
}

/// Silence playing into the null sink; see [`SoundServer::keep_sink_running`].
#[derive(Debug)]
pub struct SinkKeeper {
    child: Child,
}

impl Drop for SinkKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
