//! Helpers shared by the client's end-to-end tests.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use sotto_media::test_support::{ALSA_SPEECH_CLIPS, alsa_clip};
pub use sotto_media::test_support::{correlation, envelope};

pub const SOTTO: &str = env!("CARGO_BIN_EXE_sotto");

/// A D-Bus session address where nothing listens.
pub const NO_SESSION_BUS: &str = "unix:path=/nonexistent/sotto-tests-bus";

pub struct Host(pub Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sotto` on the profile in `profile`. No keychain is reachable (the session bus address
/// leads nowhere), so test identities never land in a developer's own keychain; the keychain
/// has its own test.
pub fn sotto(profile: &Path, args: &[&str]) -> Output {
    let output = Command::new(SOTTO)
        .args(args)
        .env("SOTTO_DATA_DIR", profile)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .output()
        .expect("sotto runs");
    assert!(
        output.status.success(),
        "sotto {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `sotto join` as `name`, with the link on standard input (as a person pastes it: a link's
/// secret never goes on a command line).
pub fn join(profile: &Path, link: &str, name: &str) -> Output {
    let output = sotto_with_input(profile, &["join", "--name", name], &format!("{link}\n"));
    assert!(
        output.status.success(),
        "sotto join failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A member comes online long enough to let waiting joiners into the encryption group
/// (`sotto members` waits until it has), as happens when people who joined while nobody was
/// online are let in by the first member to connect.
pub fn let_in(member: &Path) -> String {
    String::from_utf8(sotto(member, &["members"]).stdout).unwrap()
}

pub fn read(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32_768.0)
        .collect()
}

pub fn write(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for sample in samples {
        writer.write_sample((sample * 32_767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The audio clock origin a `sotto voice` process printed, in µs since the Unix epoch.
pub fn clock_origin(output: &Output) -> i128 {
    clock_origin_in(&String::from_utf8_lossy(&output.stdout))
}

/// The audio clock origin in a `sotto voice` process's output, in µs since the Unix epoch.
pub fn clock_origin_in(stdout: &str) -> i128 {
    let line = stdout
        .lines()
        .find(|line| line.contains("audio clock origin"))
        .expect("an origin line");
    line.split("origin ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A free UDP address on loopback.
pub fn free_address() -> String {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Starts `sotto host` on `data`, listening on `listen` and advertising `public`; returns it and,
/// on the first start of a data directory, the owner invite link it printed.
pub fn start_host(data: &Path, listen: &str, public: &str) -> (Host, Option<String>) {
    use std::io::{BufRead, BufReader};
    let first_start = !data.exists();
    let mut child = Command::new(SOTTO)
        .args(["host", "--data"])
        .arg(data)
        .args(["--listen", listen, "--public-addr", public])
        // Its log, at debug level, beside its data: tests check it holds nothing secret.
        .env("RUST_LOG", "debug")
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.with_extension("log"))
                .expect("the host's log file opens"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sotto host starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let owner_link = first_start.then(|| {
        let line = lines.next().unwrap().unwrap();
        let link = line.split_whitespace().nth(1).unwrap().to_owned();
        assert!(link.starts_with("sotto://"), "{line}");
        link
    });
    std::thread::spawn(move || lines.for_each(drop));
    (Host(child), owner_link)
}

/// Every recording alsa-utils ships (48 kHz mono human speech, about 1.4 s each).
pub const ALL_CLIPS: [&str; 8] = ALSA_SPEECH_CLIPS;

/// alsa-utils' recorded speech: `clips`, each followed by `gap` samples of silence.
pub fn alsa_speech(clips: &[&str], gap: usize) -> Vec<f32> {
    let mut speech = Vec::new();
    for clip in clips {
        speech.extend(alsa_clip(clip));
        speech.extend(std::iter::repeat_n(0.0, gap));
    }
    speech
}

/// Envelope correlation that tolerates a delay that changes during the call (the jitter buffer
/// grows and shrinks): each 1 s window of what was said is matched at its own best delay (up to
/// `max_lag` 10 ms frames later) in what was heard; the mean over windows holding speech.
pub fn windowed_correlation(said: &[f64], heard: &[f64], max_lag: usize) -> f64 {
    const WINDOW: usize = 100;
    let loud = said.iter().copied().fold(0.0, f64::max) * 0.05;
    let mut scores = Vec::new();
    for start in (0..said.len().saturating_sub(WINDOW)).step_by(WINDOW) {
        let window = &said[start..start + WINDOW];
        if window.iter().filter(|level| **level > loud).count() < WINDOW / 4 {
            continue;
        }
        // A window the recording does not reach was not heard: it scores 0.
        let best = (0..=max_lag)
            .filter(|lag| start + lag + WINDOW <= heard.len())
            .map(|lag| correlation(window, &heard[start + lag..start + lag + WINDOW]))
            .fold(0.0, f64::max);
        scores.push(best);
    }

    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// The delay of `heard` behind `said` in samples, to the sample: the waveform
/// cross-correlation peak within 10 ms of `coarse` (the envelope's lag, in samples), over
/// the first four seconds of `said`.
pub fn fine_lag(said: &[f32], heard: &[f32], coarse: usize) -> usize {
    let span = said.len().min(4 * 48_000);
    let score = |lag: usize| -> f64 {
        let shifted = heard.get(lag..).unwrap_or(&[]);
        said[..span.min(shifted.len())]
            .iter()
            .zip(shifted)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    };
    (coarse.saturating_sub(480)..=coarse + 480)
        .max_by(|a, b| score(*a).total_cmp(&score(*b)))
        .unwrap_or(coarse)
}

/// Stops a `sotto voice` process the way Ctrl-C does (SIGINT), so it leaves the channel and
/// writes its recording, and collects its output.
pub fn interrupt(child: std::process::Child) -> Output {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT failed");
    child.wait_with_output().unwrap()
}

/// A running `sotto voice` whose output is collected as it comes, so a test can wait for it
/// to reach a point (joined, say) before going on.
pub struct VoiceProcess {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl VoiceProcess {
    /// Starts `command` with its standard output collected.
    pub fn spawn(command: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sotto starts");
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                collected.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            reader,
        }
    }

    /// Waits until a line containing `needle` has been printed.
    pub fn wait_for(&self, needle: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no \"{needle}\" within {timeout:?}:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Writes a line to its standard input (spawn it with stdin piped).
    pub fn write_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The lines printed so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }

    /// Closes its standard input and waits for it to end; whether it exited cleanly.
    pub fn finish(self) -> bool {
        let Self {
            mut child, reader, ..
        } = self;
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        let _ = reader.join();
        status.success()
    }

    /// Stops it as Ctrl-C does; whether it exited cleanly, and everything it printed.
    pub fn interrupt(self) -> (bool, String) {
        let Self {
            child,
            lines,
            reader,
        } = self;
        let output = interrupt(child);
        let _ = reader.join();
        let stdout = lines.lock().unwrap().join("\n");
        (output.status.success(), stdout)
    }
}

/// A server hosted by `sotto host`, with `names` joined and let into its group.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub relay_data: PathBuf,
    pub address: String,
    pub host: Host,
    pub members: Vec<PathBuf>,
}

impl Server {
    pub fn start(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = free_address();
        let relay_data = dir.path().join("relay");
        let (host, owner_link) = start_host(&relay_data, &address, &address);
        let mut members: Vec<PathBuf> = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let profile = dir.path().join(name.to_lowercase());
            if index == 0 {
                join(&profile, owner_link.as_deref().unwrap(), name);
            } else {
                let invite = String::from_utf8(sotto(&members[0], &["invite"]).stdout).unwrap();
                join(&profile, invite.trim(), name);
                let_in(&members[0]);
            }
            members.push(profile);
        }
        Self {
            dir,
            relay_data,
            address,
            host,
            members,
        }
    }

    pub fn kill_and_restart_relay(&mut self) {
        self.host.0.kill().unwrap(); // SIGKILL
        self.host.0.wait().unwrap();
        self.host = start_host(&self.relay_data, &self.address, &self.address).0;
    }
}

/// Every file under `dir`, as bytes.
pub fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

/// `sotto` on `profile`, success or not.
pub fn try_sotto(profile: &Path, args: &[&str]) -> Output {
    Command::new(SOTTO)
        .args(args)
        .env("SOTTO_DATA_DIR", profile)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .output()
        .expect("sotto runs")
}

/// The epoch and privacy code `sotto members` shows for `profile`.
pub fn epoch_and_code(profile: &Path) -> (u64, String) {
    let output = sotto(profile, &["members"]);
    let warnings = String::from_utf8_lossy(&output.stderr);
    if !warnings.is_empty() {
        println!("sotto members for {}: {warnings}", profile.display());
    }
    let listing = String::from_utf8(output.stdout).unwrap();
    let header = listing.lines().next().unwrap_or_default();
    let epoch = header
        .split("epoch ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {listing:?}"));
    let code = header
        .split("privacy code ")
        .nth(1)
        .unwrap_or_else(|| panic!("no privacy code in {listing:?}"))
        .to_owned();
    (epoch, code)
}

/// Every member shows the same epoch and privacy code; returns them.
pub fn converged(members: &[PathBuf]) -> (u64, String) {
    let views: Vec<(u64, String)> = members.iter().map(|m| epoch_and_code(m)).collect();
    assert!(
        views.windows(2).all(|pair| pair[0] == pair[1]),
        "members disagree (a fork): {views:?}"
    );
    views[0].clone()
}

/// Panics if any file of the relay's data directory, or its debug log, holds one of `needles`.
pub fn assert_relay_holds_none(server: &Server, needles: &[&str]) {
    let mut relay_files = files_under(&server.relay_data);
    let log = server.relay_data.with_extension("log");
    relay_files.push((log.clone(), std::fs::read(&log).unwrap()));
    for (path, bytes) in relay_files {
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds \"{needle}\"",
                path.display()
            );
        }
    }
}

/// A command's standard output, as text.
pub fn stdout_of(output: Output) -> String {
    String::from_utf8(output.stdout).unwrap()
}

/// `sotto` on `profile` with `input` on its standard input (success or not).
pub fn sotto_with_input(profile: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(SOTTO)
        .args(args)
        .env("SOTTO_DATA_DIR", profile)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sotto runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("piped"), input.as_bytes())
        .expect("sotto reads its input");
    child.wait_with_output().expect("sotto runs")
}
