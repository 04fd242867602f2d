//! Real sound devices: a private PulseAudio server with a null sink (whose monitor source hears
//! what is played), started by this test. The speaker and microphone themselves are the only
//! parts that cannot exist here; the null sink stands in for them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

struct SoundServer {
    runtime_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SoundServer {
    fn start() -> Self {
        let runtime_dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            runtime_dir,
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
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
                "--load=module-null-sink sink_name=vsink rate=48000",
                "--load=module-always-sink",
            ])
            .env("XDG_RUNTIME_DIR", self.runtime_dir.path())
            .env("HOME", self.runtime_dir.path())
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

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pactl(&self, args: &[&str]) -> Output {
        Command::new("pactl")
            .args(args)
            .env("XDG_RUNTIME_DIR", self.runtime_dir.path())
            .env("HOME", self.runtime_dir.path())
            .output()
            .expect("pactl runs")
    }

    fn media(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sotto-media"));
        command
            .args(args)
            .env("XDG_RUNTIME_DIR", self.runtime_dir.path())
            .env("HOME", self.runtime_dir.path());
        command
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Parses "captured N frames …, tone heard in M; device failures F, recoveries R; …".
fn summary(stdout: &str) -> (u64, u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("captured"))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter_map(|word| word.parse::<u64>().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

#[test]
fn cpal_moves_audio_and_survives_the_sink_and_the_server_going_away() {
    let mut server = SoundServer::start();

    let listed = server.media(&["devices"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("Null Output") && listed.contains("Monitor of Null Output"),
        "{listed}"
    );

    // The tone played on the output is heard on the input for the whole run.
    let plain = server
        .media(&["device-check", "--seconds", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(
        plain.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let (captured, heard, _, _) = summary(&stdout);
    println!("{stdout}");
    assert!(captured >= 180, "captured only {captured} frames in 2 s");
    assert!(
        heard * 10 >= captured * 8,
        "tone heard in {heard} of {captured} frames"
    );

    // The sink is unloaded and loaded again mid-run: PulseAudio moves the streams; audio goes on.
    let run = server
        .media(&["device-check", "--seconds", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(1500));
    let modules =
        String::from_utf8_lossy(&server.pactl(&["list", "short", "modules"]).stdout).to_string();
    let module = modules
        .lines()
        .find(|line| line.contains("sink_name=vsink"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    assert!(server.pactl(&["unload-module", &module]).status.success());
    sleep(Duration::from_millis(500));
    assert!(
        server
            .pactl(&[
                "load-module",
                "module-null-sink",
                "sink_name=vsink",
                "rate=48000"
            ])
            .status
            .success()
    );
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{stdout}");
    assert!(output.status.success());
    let (captured, _, _, _) = summary(&stdout);
    assert!(
        captured >= 350,
        "capture stalled across the sink reload: {captured} frames in 4 s"
    );

    // The whole sound server dies and comes back: the failure is reported and the devices
    // reopened without user action.
    let mut run = server
        .media(&["device-check", "--seconds", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has its devices open.
    let mut stdout_reader = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut stdout_reader, &mut first_line).unwrap();
    assert!(first_line.starts_with("input"), "{first_line}");
    sleep(Duration::from_millis(1000));
    server.kill();
    sleep(Duration::from_millis(500));
    server.launch();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut stdout_reader, &mut stdout).unwrap();
    let output = run.wait_with_output().unwrap();
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, heard, failures, recoveries) = summary(&stdout);
    assert!(failures >= 1, "the failure was not reported");
    assert!(recoveries >= 1, "the devices were not reopened");
    assert!(stdout.contains("device failed at") && stdout.contains("device back at"));
    assert!(heard >= 100, "little tone heard ({heard} frames)");

    // A new device becomes the system default: both streams follow it.
    let mut run = server
        .media(&["device-check", "--seconds", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first_line).unwrap();
    let second = server.pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=second",
        "sink_properties=device.description=Second",
    ]);
    assert!(second.status.success());
    assert!(
        server
            .pactl(&["set-default-sink", "second"])
            .status
            .success()
    );
    assert!(
        server
            .pactl(&["set-default-source", "second.monitor"])
            .status
            .success()
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut reader, &mut stdout).unwrap();
    assert!(run.wait().unwrap().success());
    println!("{stdout}");
    assert!(
        stdout.contains("Input default changed") && stdout.contains("now Monitor of Second"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Output default changed") && stdout.contains("now Second"),
        "{stdout}"
    );
    let (captured, heard, _, _) = summary(&stdout);
    // Opening the new devices takes a moment (slower in unoptimised builds): most of the run
    // must still be captured, and the tone heard through the new devices.
    assert!(
        captured >= 250,
        "capture stalled while switching: {captured} frames in 5 s"
    );
    assert!(
        heard >= 200,
        "the tone was lost after switching: heard in {heard} frames"
    );
}
